/* attention_avx2.c: fused single-head attention, 8 lanes (AVX2 + FMA).
 *
 * Shapes and scratch as attention_avx512.c: q, k, v [S][ld], out [S][ldo]
 * (only the first d floats of each of the S rows written), scratch kt
 * [Sp / 16][d][16] (K^T in panels of 16 keys) then sc [ROWS][Sp], Sp = S
 * rounded up to 16. The same three steps per block of ROWS query rows (scores
 * with keys across the lanes, softmax, P V with d across the lanes); with 16
 * registers P V takes one vector of 8 columns per pass, ROWS accumulators, and
 * only a column tail uses masked loads. Lanes of sc past S8 = S rounded up to
 * 8 are never touched. */
#include <math.h>

#include "kernels_isa.h"
#include "vmath_avx2.h"

#define ROWS 8

/* K^T in panels of 16 keys: kt[j / 16][c][j % 16] = k[j][c] for c < d,
 * j < S, and 0 for S <= j < Sp. k: [S][ld]; kt: [Sp / 16][d][16], Sp >= S a
 * multiple of 16, the layout of attention_avx512.c. Plain C: AVX2 has no
 * cheap 8 x 8 transpose worth the code here, and packing is O(S d) against
 * the kernel's O(S^2 d). Zero padding keeps the padded lanes of a score vector
 * finite (they are masked out of the softmax afterwards). */
static void pack_kt(float *kt, const float *k, int ld, int S, int Sp, int d)
{
    for (int j0 = 0; j0 < Sp; j0 += 16) {
        const int n = S - j0 < 16 ? S - j0 : 16;
        float *panel = kt + (size_t)j0 * d;
        for (int c = 0; c < d; c++) {
            for (int jj = 0; jj < n; jj++)
                panel[(size_t)c * 16 + jj] = k[(size_t)(j0 + jj) * ld + c];
            for (int jj = n; jj < 16; jj++)
                panel[(size_t)c * 16 + jj] = 0.0f;
        }
    }
}

/* sc[r][0..S8) = scale * q_row[r] . K^T for the ROWS rows qr[]. */
static inline void block_scores(const float *const *qr, const float *kt, int Sp, int S8, int d,
                                float scale, float *sc)
{
    const __m256 vs = _mm256_set1_ps(scale);
    for (int j = 0; j < S8; j += 8) {
        __m256 acc[ROWS];
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
            acc[r] = _mm256_setzero_ps();
        const float *kc = kt + (size_t)(j & ~15) * d + (j & 15);
        for (int c = 0; c < d; c++) {
            const __m256 kv = _mm256_load_ps(kc + (size_t)c * 16);
#pragma GCC unroll 8
            for (int r = 0; r < ROWS; r++)
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(qr[r][c]), kv, acc[r]);
        }
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
            _mm256_store_ps(sc + (size_t)r * Sp + j, _mm256_mul_ps(vs, acc[r]));
    }
}

/* row[0..S) = exp(row - max), and the padding up to the next multiple of 8
 * zeroed; returns 1 / sum. */
static inline float row_exp(float *row, int S)
{
    const int body = S & ~7, rem = S & 7;
    const __m256 tail = _mm256_castsi256_ps(tail_mask8(rem));
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 vm = ninf;
    for (int j = 0; j < body; j += 8)
        vm = _mm256_max_ps(vm, _mm256_load_ps(row + j));
    if (rem)
        vm = _mm256_max_ps(vm, _mm256_blendv_ps(ninf, _mm256_load_ps(row + body), tail));
    const __m256 nm = _mm256_set1_ps(-hmax8(vm));
    __m256 vsum = _mm256_setzero_ps();
    for (int j = 0; j < body; j += 8) {
        const __m256 e = vexp(_mm256_add_ps(_mm256_load_ps(row + j), nm));
        _mm256_store_ps(row + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    if (rem) {
        const __m256 e = _mm256_and_ps(tail, vexp(_mm256_add_ps(_mm256_load_ps(row + body), nm)));
        _mm256_store_ps(row + body, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    return 1.0f / hsum8(vsum);
}

/* out rows [0, nr) columns [c0, c0 + 8) = inv[r] * sum_j p[r][j] v[j]; when
 * full is 0 only the lanes of mask are loaded and stored. */
static inline __attribute__((always_inline)) void block_pv(const float *p, int Sp, const float *v,
                                                           int ld, int S, int c0, __m256i mask,
                                                           int full, const float *inv, int nr,
                                                           float *out, int ldo)
{
    __m256 acc[ROWS];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
        acc[r] = _mm256_setzero_ps();
    for (int j = 0; j < S; j++) {
        const float *vj = v + (size_t)j * ld + c0;
        const __m256 vv = full ? _mm256_loadu_ps(vj) : _mm256_maskload_ps(vj, mask);
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(p[(size_t)r * Sp + j]), vv, acc[r]);
    }
    /* A fixed trip count with the test inside, so that the loop unrolls and
     * acc stays in registers rather than being indexed in memory. */
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
        if (r >= nr)
            break;
        float *o = out + (size_t)r * ldo + c0;
        const __m256 y = _mm256_mul_ps(_mm256_set1_ps(inv[r]), acc[r]);
        if (full)
            _mm256_storeu_ps(o, y);
        else
            _mm256_maskstore_ps(o, mask, y);
    }
}

void eng__attention_avx2(const float *q, const float *k, const float *v, int ld, int S, int d,
                         float scale, float *out, int ldo, float *scratch)
{
    const int Sp = (S + 15) & ~15, S8 = (S + 7) & ~7;
    float *kt = scratch, *sc = scratch + (size_t)d * Sp;
    pack_kt(kt, k, ld, S, Sp, d);
    const __m256i all = _mm256_set1_epi32(-1), tail = tail_mask8(d & 7);
    for (int i = 0; i < S; i += ROWS) {
        const int nr = S - i < ROWS ? S - i : ROWS;
        const float *qr[ROWS];
        for (int r = 0; r < ROWS; r++)
            qr[r] = q + (size_t)(r < nr ? i + r : S - 1) * ld;
        block_scores(qr, kt, Sp, S8, d, scale, sc);
        float inv[ROWS];
        for (int r = 0; r < ROWS; r++)
            inv[r] = row_exp(sc + (size_t)r * Sp, S);
        float *o = out + (size_t)i * ldo;
        int c = 0;
        for (; c + 8 <= d; c += 8)
            block_pv(sc, Sp, v, ld, S, c, all, 1, inv, nr, o, ldo);
        if (c < d)
            block_pv(sc, Sp, v, ld, S, c, tail, 0, inv, nr, o, ldo);
    }
}
