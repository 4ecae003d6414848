/* attention_avx512.c: fused single-head attention, 16 lanes (AVX-512F).
 *
 * Shapes: q, k, v [S][ld] (first d floats of each row), out [S][ldo] (only the
 * first d floats of each of the S rows written, by masked stores). scratch
 * (ENG_ATTENTION_SCRATCH(S, d) floats): kt, K^T packed once per call in
 * panels of 16 keys [Sp / 16][d][16] (pack_kt), zero-padded to Sp =
 * S rounded up to 16; then sc [ROWS][Sp], the scores and then the
 * probabilities of one block of query rows.
 *
 * Per block of ROWS query rows: scores against all keys with the keys across
 * the lanes, 32 keys (two K^T panels) per pass so 2 ROWS independent FMA
 * chains hide the latency and each q broadcast feeds two FMAs; the softmax of
 * all ROWS rows in lockstep (max subtraction, padded lanes zeroed, 1/sum kept
 * aside); then P V with d across the lanes, 32 columns (two vectors) for 4
 * rows or 16 columns for 8 rows per pass, ROWS accumulators, the 1/sum applied
 * at the store. A last, partial block repeats the sequence's last query row
 * in its spare rows rather than having separate tail code; only its real rows
 * are stored.
 *
 * The bf16 variant at the end of the file differs only in how it computes
 * the scores. */
#include <math.h>
#include <stdint.h>

#include "kernels_isa.h"
#include "vmath_avx512.h"

#define ROWS 8

/* t[c] lane i = r[i] lane c: a 16 x 16 transpose of 32-bit elements in
 * registers. Element by element, or by gathers, the packing cost a fifth of a
 * short sequence's attention. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16], __m512 t[16])
{
    /* Within each 128-bit lane: pairs of rows interleaved, then 4 x 4
     * transposes, leaving t[4g + m] lane L = element 4L + m of rows 4g ..
     * 4g + 3. */
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {
        r[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
        r[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xee);
        r[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        r[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xee);
    }
    /* Then, per m, a 4 x 4 transpose of 128-bit blocks gathers the four row
     * groups of element 4L + m into one vector. */
    for (int m = 0; m < 4; m++) {
        const __m512 b0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x44);
        const __m512 b1 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xee);
        const __m512 b2 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x44);
        const __m512 b3 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xee);
        t[m] = _mm512_shuffle_f32x4(b0, b2, 0x88);
        t[4 + m] = _mm512_shuffle_f32x4(b0, b2, 0xdd);
        t[8 + m] = _mm512_shuffle_f32x4(b1, b3, 0x88);
        t[12 + m] = _mm512_shuffle_f32x4(b1, b3, 0xdd);
    }
}

/* K^T in panels of 16 keys: kt[j / 16][c][j % 16] = k[j][c] for c < d,
 * j < S, and 0 for S <= j < Sp. k: [S][ld]; kt: [Sp / 16][d][16]. A panel is
 * d contiguous cache lines, so the scores loop streams through it. Each 16 x
 * 16 tile (16 keys by 16 features) is loaded row by row and transposed in
 * registers. Keys past S are zero, which keeps their scores finite (they are
 * masked out of the softmax afterwards). */
static void pack_kt(float *kt, const float *k, int ld, int S, int Sp, int d)
{
    for (int j0 = 0; j0 < Sp; j0 += 16) {
        const int nk = S - j0 < 16 ? S - j0 : 16;
        float *panel = kt + (size_t)j0 * d;
        for (int c0 = 0; c0 < d; c0 += 16) {
            const int nc = d - c0 < 16 ? d - c0 : 16;
            const __mmask16 cols = (__mmask16)(nc == 16 ? 0xffff : tail_mask16(nc));
            __m512 r[16], t[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < nk ? _mm512_maskz_loadu_ps(cols, k + (size_t)(j0 + i) * ld + c0)
                              : _mm512_setzero_ps();
            transpose16(r, t);
            for (int c = 0; c < nc; c++)
                _mm512_store_ps(panel + (size_t)(c0 + c) * 16, t[c]);
        }
    }
}

/* sc[r][j0 .. j0 + 16 nk) = scale * q_row[r] . K^T for the ROWS rows qr[] and
 * nk = 1 or 2 panels of keys: 2 ROWS accumulators when nk = 2, so twice the
 * FMA latency is covered and each broadcast of q feeds two FMAs. */
static inline __attribute__((always_inline)) void scores_tile(const float *const *qr,
                                                              const float *kt, int Sp, int d,
                                                              int j0, int nk, __m512 vs, float *sc)
{
    __m512 acc[2 * ROWS];
#pragma GCC unroll 16
    for (int a = 0; a < 2 * ROWS; a++)
        acc[a] = _mm512_setzero_ps();
    const float *p0 = kt + (size_t)j0 * d, *p1 = p0 + (size_t)16 * d;
    for (int c = 0; c < d; c++) {
        const __m512 k0 = _mm512_load_ps(p0 + (size_t)c * 16);
        const __m512 k1 = nk > 1 ? _mm512_load_ps(p1 + (size_t)c * 16) : k0;
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
            const __m512 qv = _mm512_set1_ps(qr[r][c]);
            acc[2 * r] = _mm512_fmadd_ps(qv, k0, acc[2 * r]);
            if (nk > 1)
                acc[2 * r + 1] = _mm512_fmadd_ps(qv, k1, acc[2 * r + 1]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
        float *o = sc + (size_t)r * Sp + j0;
        _mm512_store_ps(o, _mm512_mul_ps(vs, acc[2 * r]));
        if (nk > 1)
            _mm512_store_ps(o + 16, _mm512_mul_ps(vs, acc[2 * r + 1]));
    }
}

/* sc[r][0..Sp) = scale * q_row[r] . K^T for the ROWS rows qr[], all keys. */
static void block_scores(const float *const *qr, const float *kt, int Sp, int d, float scale,
                         float *sc)
{
    const __m512 vs = _mm512_set1_ps(scale);
    int j = 0;
    for (; j + 32 <= Sp; j += 32)
        scores_tile(qr, kt, Sp, d, j, 2, vs, sc);
    if (j < Sp)
        scores_tile(qr, kt, Sp, d, j, 1, vs, sc);
}

/* Each row r of sc [ROWS][Sp]: sc[r][0..S) = exp(sc[r] - max), the padding to
 * Sp zeroed; inv[r] = 1 / sum. The rows go through each step together: one
 * row alone is a chain of dependent exp polynomials and reductions that
 * leaves the vector units mostly idle. */
static void block_exp(float *sc, int Sp, int S, float *inv)
{
    const int body = S & ~15;
    const __mmask16 tail = tail_mask16(S & 15);
    __m512 vm[ROWS], vsum[ROWS];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
        vm[r] = _mm512_set1_ps(-INFINITY);
        vsum[r] = _mm512_setzero_ps();
    }
    for (int j = 0; j < body; j += 16)
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
            vm[r] = _mm512_max_ps(vm[r], _mm512_load_ps(sc + (size_t)r * Sp + j));
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
        if (tail)
            vm[r] =
                _mm512_mask_max_ps(vm[r], tail, vm[r], _mm512_load_ps(sc + (size_t)r * Sp + body));
        vm[r] = _mm512_set1_ps(-_mm512_reduce_max_ps(vm[r]));
    }
    for (int j = 0; j < Sp; j += 16) {
        const __mmask16 live = j < body ? (__mmask16)0xffff : tail;
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
            float *x = sc + (size_t)r * Sp + j;
            const __m512 e =
                _mm512_maskz_mov_ps(live, vexp(_mm512_add_ps(_mm512_load_ps(x), vm[r])));
            _mm512_store_ps(x, e);
            vsum[r] = _mm512_add_ps(vsum[r], e);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
        inv[r] = 1.0f / _mm512_reduce_add_ps(vsum[r]);
}

/* out rows [0, nr) columns [c0, c0 + width) = inv[r] * sum_j p[r][j] v[j];
 * width <= 16 * nv, nv = 1 or 2 vectors, the columns past width masked off
 * (m0, m1). ROWS accumulators (ROWS / nv rows at a time) keep enough FMA
 * chains in flight; the rows are taken in groups so a partial block stops
 * after its last real row. */
static inline __attribute__((always_inline)) void block_pv(const float *p, int Sp, const float *v,
                                                           int ld, int S, int c0, __mmask16 m0,
                                                           __mmask16 m1, int nv, const float *inv,
                                                           int nr, float *out, int ldo)
{
    const int group = ROWS / nv;
    for (int r0 = 0; r0 < nr; r0 += group) {
        const float *pg = p + (size_t)r0 * Sp;
        __m512 acc[ROWS];
#pragma GCC unroll 8
        for (int a = 0; a < ROWS; a++)
            acc[a] = _mm512_setzero_ps();
        for (int j = 0; j < S; j++) {
            const float *vj = v + (size_t)j * ld + c0;
            const __m512 v0 = _mm512_maskz_loadu_ps(m0, vj);
            const __m512 v1 = nv > 1 ? _mm512_maskz_loadu_ps(m1, vj + 16) : v0;
#pragma GCC unroll 8
            for (int r = 0; r < group; r++) {
                const __m512 pr = _mm512_set1_ps(pg[(size_t)r * Sp + j]);
                acc[r * nv] = _mm512_fmadd_ps(pr, v0, acc[r * nv]);
                if (nv > 1)
                    acc[r * nv + 1] = _mm512_fmadd_ps(pr, v1, acc[r * nv + 1]);
            }
        }
        /* A fixed trip count with the test inside, so that the loop unrolls and
         * acc stays in registers rather than being indexed in memory. */
#pragma GCC unroll 8
        for (int r = 0; r < group; r++) {
            if (r0 + r >= nr)
                break;
            float *o = out + (size_t)(r0 + r) * ldo + c0;
            const __m512 vi = _mm512_set1_ps(inv[r0 + r]);
            _mm512_mask_storeu_ps(o, m0, _mm512_mul_ps(vi, acc[r * nv]));
            if (nv > 1)
                _mm512_mask_storeu_ps(o + 16, m1, _mm512_mul_ps(vi, acc[r * nv + 1]));
        }
    }
}

/* The rest of a block once its scores are in sc [ROWS][Sp]: the softmax,
 * then out rows [0, nr) = P V over all d columns, 32 at a time. */
static void block_softmax_pv(float *sc, int Sp, const float *v, int ld, int S, int d, int nr,
                             float *out, int ldo)
{
    float inv[ROWS];
    block_exp(sc, Sp, S, inv);
    for (int c = 0; c < d; c += 32) {
        const int w = d - c;
        const __mmask16 m0 = (__mmask16)(w >= 16 ? 0xffff : tail_mask16(w));
        const __mmask16 m1 = (__mmask16)(w >= 32 ? 0xffff : w > 16 ? tail_mask16(w - 16) : 0);
        if (w > 16)
            block_pv(sc, Sp, v, ld, S, c, m0, m1, 2, inv, nr, out, ldo);
        else
            block_pv(sc, Sp, v, ld, S, c, m0, m1, 1, inv, nr, out, ldo);
    }
}

void eng__attention_avx512(const float *q, const float *k, const float *v, int ld, int S, int d,
                           float scale, float *out, int ldo, float *scratch)
{
    const int Sp = (S + 15) & ~15;
    float *kt = scratch, *sc = scratch + (size_t)d * Sp;
    pack_kt(kt, k, ld, S, Sp, d);
    for (int i = 0; i < S; i += ROWS) {
        const int nr = S - i < ROWS ? S - i : ROWS;
        const float *qr[ROWS];
        for (int r = 0; r < ROWS; r++)
            qr[r] = q + (size_t)(r < nr ? i + r : S - 1) * ld;
        block_scores(qr, kt, Sp, d, scale, sc);
        block_softmax_pv(sc, Sp, v, ld, S, d, nr, out + (size_t)i * ldo, ldo);
    }
}

/* The bf16 variant (kernels.h, attention_bf16), for CPUs with AVX512-BF16:
 * the scores come from VDPBF16PS, which multiplies pairs of bf16 numbers and
 * adds both products (exact in fp32) to an fp32 lane, so each instruction
 * does twice the work of an fp32 FMA; the softmax and P V are the fp32
 * code above (bf16 probabilities or values cost the tiny int8 golden models
 * half their error budget; bf16 scores cost nothing measurable). The
 * functions carry the target attribute, since this file's flags stop at
 * AVX-512F/BW/VL/DQ; dispatch.c installs the kernel only where CPUID reports
 * the extension. Conversions round to nearest even (VCVTNE2PS2BF16).
 *
 * Scratch (ENG_ATTENTION_SCRATCH(S, d) floats, 64-byte aligned), with
 * d2 = ceil(d / 2) feature pairs; a "word" is a pair of bf16 in 32 bits, the
 * even feature in the low half:
 *   kt [Sp / 16][d2][16] words    K^T: word c2 of keys j0 .. j0 + 15
 *   sc [ROWS][Sp] floats          scores, then probabilities
 *   qb [ROWS][round16(d2)] words  the block's query rows
 * Sp d2 <= Sp d, 8 Sp and 8 round16(d2) <= 4 d + 124: within the macro, and
 * each part a multiple of 16 words, so each starts on a cache line. Features
 * past d are zero in kt and qb, keys past S zero in kt. */
#define BF16_FN __attribute__((target("avx512bf16")))

/* Features [c0, c0 + 32) of one row (floats, d wide) as 16 words, zero past
 * d. */
static inline __attribute__((always_inline)) BF16_FN __m512i row_words(const float *row, int c0,
                                                                       int d)
{
    const int n0 = d - c0, n1 = d - c0 - 16;
    const __mmask16 m0 = (__mmask16)(n0 >= 16 ? 0xffff : tail_mask16(n0));
    const __mmask16 m1 = (__mmask16)(n1 >= 16 ? 0xffff : n1 <= 0 ? 0 : tail_mask16(n1));
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, row + c0 + 16),
                                        _mm512_maskz_loadu_ps(m0, row + c0));
}

/* kt as above from k [S][ld]: 32 features of 16 keys at a time, converted to
 * words per key row, then transposed so that each vector holds one word of
 * 16 keys. */
static BF16_FN void pack_kt_bf16(uint32_t *kt, const float *k, int ld, int S, int Sp, int d)
{
    const int d2 = (d + 1) / 2;
    for (int j0 = 0; j0 < Sp; j0 += 16) {
        const int nk = S - j0 < 16 ? S - j0 : 16;
        uint32_t *panel = kt + (size_t)j0 * d2;
        for (int c0 = 0; c0 < d; c0 += 32) {
            __m512 r[16], t[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < nk ? _mm512_castsi512_ps(row_words(k + (size_t)(j0 + i) * ld, c0, d))
                              : _mm512_setzero_ps();
            transpose16(r, t);
            const int nw = d2 - c0 / 2 < 16 ? d2 - c0 / 2 : 16;
            for (int w = 0; w < nw; w++)
                _mm512_store_ps((float *)(panel + (size_t)(c0 / 2 + w) * 16), t[w]);
        }
    }
}

/* sc[r][j0 .. j0 + 16 nk) = scale * q_row[r] . K^T for the ROWS rows of qb
 * (row stride qs words) and nk = 1 or 2 panels of keys, as scores_tile. */
static inline __attribute__((always_inline)) BF16_FN void
scores_tile_bf16(const uint32_t *qb, int qs, const uint32_t *kt, int Sp, int d2, int j0, int nk,
                 __m512 vs, float *sc)
{
    __m512 acc[2 * ROWS];
#pragma GCC unroll 16
    for (int a = 0; a < 2 * ROWS; a++)
        acc[a] = _mm512_setzero_ps();
    const uint32_t *p0 = kt + (size_t)j0 * d2, *p1 = p0 + (size_t)16 * d2;
    for (int c = 0; c < d2; c++) {
        const __m512bh k0 = (__m512bh)_mm512_load_si512(p0 + (size_t)c * 16);
        const __m512bh k1 = nk > 1 ? (__m512bh)_mm512_load_si512(p1 + (size_t)c * 16) : k0;
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
            const __m512bh qv = (__m512bh)_mm512_set1_epi32((int)qb[(size_t)r * qs + c]);
            acc[2 * r] = _mm512_dpbf16_ps(acc[2 * r], qv, k0);
            if (nk > 1)
                acc[2 * r + 1] = _mm512_dpbf16_ps(acc[2 * r + 1], qv, k1);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
        float *o = sc + (size_t)r * Sp + j0;
        _mm512_store_ps(o, _mm512_mul_ps(vs, acc[2 * r]));
        if (nk > 1)
            _mm512_store_ps(o + 16, _mm512_mul_ps(vs, acc[2 * r + 1]));
    }
}

BF16_FN void eng__attention_bf16_avx512(const float *q, const float *k, const float *v, int ld,
                                        int S, int d, float scale, float *out, int ldo,
                                        float *scratch)
{
    const int Sp = (S + 15) & ~15, d2 = (d + 1) / 2, qs = (d2 + 15) & ~15;
    uint32_t *kt = (uint32_t *)(void *)scratch;
    float *sc = (float *)(void *)(kt + (size_t)Sp * d2);
    uint32_t *qb = (uint32_t *)(void *)(sc + (size_t)ROWS * Sp);
    const __m512 vs = _mm512_set1_ps(scale);
    pack_kt_bf16(kt, k, ld, S, Sp, d);
    for (int i = 0; i < S; i += ROWS) {
        const int nr = S - i < ROWS ? S - i : ROWS;
        /* The block's query rows as words; a partial block repeats the last
         * row, as above. */
        for (int r = 0; r < ROWS; r++) {
            const float *qr = q + (size_t)(r < nr ? i + r : S - 1) * ld;
            for (int c0 = 0; c0 < d; c0 += 32)
                _mm512_store_si512(qb + (size_t)r * qs + c0 / 2, row_words(qr, c0, d));
        }
        int j = 0;
        for (; j + 32 <= Sp; j += 32)
            scores_tile_bf16(qb, qs, kt, Sp, d2, j, 2, vs, sc);
        if (j < Sp)
            scores_tile_bf16(qb, qs, kt, Sp, d2, j, 1, vs, sc);
        block_softmax_pv(sc, Sp, v, ld, S, d, nr, out + (size_t)i * ldo, ldo);
    }
}
