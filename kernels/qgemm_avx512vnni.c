/* qgemm_avx512vnni.c: the int8 GEMM tile on AVX512-VNNI (EVEX VPDPBUSD zmm)
 * and the 512-bit activation quantizer. Layouts: see qgemm.h.
 *
 * Register tile: up to 8 rows x 3 panels (48 columns) = 24 zmm accumulators,
 * 3 zmm of weights and 1 broadcast activation word: 28 of 32 registers. Each
 * k4 step loads 3 x 64 contiguous weight bytes and 8 activation words and
 * issues 24 VPDPBUSD (64 multiply-adds each). With ENG_QT_PREFETCH it spreads
 * its share of the next column tile's lines over its k4 steps. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "qgemm.h"

/* K blocks of up to KC4 k4 steps: K = 768 (CLIP's and BERT-base's hidden
 * size) in one block, the tile's weights 3 x 192 x 64 = 36 KiB of the 48
 * KiB L1d of Intel's AVX512-VNNI cores since Ice Lake, with no int32 partial
 * sums stored and reloaded between blocks: 2 to 7 points of the VPDPBUSD
 * peak over qgemm.h's 128 at CLIP's shapes on Sapphire Rapids
 * (qgemm-bench --clip, alternated). Not measured on a 32 KiB L1d. */
enum { MR = 8, NP = 3, KC4 = 192 };

/* x: rows x k floats; a: rows x lda bytes (first k written); sx: rows. */
void eng__qgemm_quantize_avx512(const float *x, int rows, int k, uint8_t *a, size_t lda, float *sx)
{
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * k;
        uint8_t *ar = a + (size_t)r * lda;
        __m512 vmx = _mm512_setzero_ps();
        for (int i = 0; i < k; i += 16) {
            __mmask16 m = k - i >= 16 ? 0xffff : (__mmask16)((1u << (k - i)) - 1);
            vmx = _mm512_max_ps(vmx, _mm512_and_ps(_mm512_maskz_loadu_ps(m, xr + i), sign));
        }
        float mx = _mm512_reduce_max_ps(vmx);
        float inv = mx > 0.0f ? 127.0f / mx : 0.0f;
        sx[r] = mx > 0.0f ? mx / 127.0f : 0.0f;
        const __m512 vinv = _mm512_set1_ps(inv);
        const __m512i zp = _mm512_set1_epi32(128), lo = _mm512_setzero_si512(),
                      hi = _mm512_set1_epi32(255);
        int i = 0;
        /* 64 at a time by saturating packs: a value q becomes the signed
         * byte clamp(q, -128, 127), and flipping its top bit adds 128, which
         * is clamp(q + 128, 0, 255), the same byte the loop below writes.
         * The packs interleave the four vectors by 128-bit lane; one dword
         * permutation puts them back in order. Half the instructions of the
         * 16-wide loop below, which finishes the row. */
        const __m512i order =
            _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        const __m512i flip = _mm512_set1_epi8((char)0x80);
        for (; i + 64 <= k; i += 64) {
            __m512i q[4];
            for (int j = 0; j < 4; j++)
                q[j] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + i + 16 * j), vinv));
            const __m512i b = _mm512_packs_epi16(_mm512_packs_epi32(q[0], q[1]),
                                                 _mm512_packs_epi32(q[2], q[3]));
            _mm512_storeu_si512(ar + i, _mm512_xor_si512(_mm512_permutexvar_epi32(order, b), flip));
        }
        for (; i < k; i += 16) {
            __mmask16 m = k - i >= 16 ? 0xffff : (__mmask16)((1u << (k - i)) - 1);
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), vinv));
            q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, zp), lo), hi);
            /* Narrow in a register, then store: the memory form of VPMOVDB
             * is microcoded and slow on AMD (Zen 4/5), where it took a third
             * of the GEMM's time. */
            const __m128i q8 = _mm512_cvtepi32_epi8(q);
            if (m == 0xffff)
                _mm_storeu_si128((__m128i *)(void *)(ar + i), q8);
            else
                _mm_mask_storeu_epi8(ar + i, m, q8);
        }
    }
}

static inline __mmask16 col_mask(int ncols, int j)
{
    int v = ncols - 16 * j;
    return v >= 16 ? (__mmask16)0xffff : v <= 0 ? (__mmask16)0 : (__mmask16)((1u << v) - 1);
}

/* The tile for compile-time R rows and P panels; see qgemm.h. Inlined into
 * one function per (R, P) so the accumulators live in registers. */
static inline __attribute__((always_inline)) void
tile_rp(const int R, const int P, const uint8_t *a, size_t lda, const int8_t *b, size_t ldb,
        int k4n, int ncols, void *c, size_t ldc, int flags, const eng__qepi *epi)
{
    __m512i acc[MR][NP];
    __mmask16 cm[NP];
#pragma GCC unroll 3
    for (int j = 0; j < P; j++)
        cm[j] = col_mask(ncols, j);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int j = 0; j < P; j++)
            acc[r][j] = (flags & ENG_QT_ACCUM)
                            ? _mm512_maskz_loadu_epi32(cm[j], (const int32_t *)c + r * ldc + 16 * j)
                            : _mm512_setzero_si512();
    /* ENG_QT_PREFETCH (qgemm.h): at k4 step pf_k, the next column tile's
     * k4 step at pf, pf_n times; never when pf_k stays at k4n. */
    int pf_k = k4n, pf_every = 1, pf_n = 0;
    const int8_t *pf = NULL;
    if (flags & ENG_QT_PREFETCH) {
        pf_every = flags >> ENG_QT_PF_OF_SHIFT & ENG_QT_PF_MAX;
        const int part = flags >> ENG_QT_PF_PART_SHIFT & ENG_QT_PF_MAX;
        const int steps = (k4n + pf_every - 1) / pf_every;
        pf_n = k4n - part * steps < steps ? k4n - part * steps : steps;
        if (pf_n > 0) {
            pf = b + (size_t)P * ldb + (size_t)part * steps * 64;
            pf_k = 0;
        }
    }
    for (int k4 = 0; k4 < k4n; k4++) {
        if (k4 == pf_k) {
#pragma GCC unroll 3
            for (int j = 0; j < P; j++)
                _mm_prefetch((const char *)(pf + (size_t)j * ldb), _MM_HINT_T1);
            pf += 64;
            pf_k = --pf_n > 0 ? pf_k + pf_every : k4n;
        }
        __m512i bv[NP];
#pragma GCC unroll 3
        for (int j = 0; j < P; j++)
            bv[j] = _mm512_loadu_si512(b + j * ldb + (size_t)k4 * 64);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            int32_t w;
            memcpy(&w, a + r * lda + (size_t)k4 * 4, 4);
            __m512i av = _mm512_set1_epi32(w);
#pragma GCC unroll 3
            for (int j = 0; j < P; j++)
                acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, bv[j]);
        }
    }
    if ((flags & ENG_QT_FINAL) && epi) {
#pragma GCC unroll 3
        for (int j = 0; j < P; j++) {
            __m512i corr = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(cm[j], epi->wsum + 16 * j), 7);
            __m512 sw = _mm512_maskz_loadu_ps(cm[j], epi->sw + 16 * j);
            __m512 bias = epi->bias ? _mm512_maskz_loadu_ps(cm[j], epi->bias + 16 * j)
                                    : _mm512_setzero_ps();
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][j], corr));
                v = _mm512_mul_ps(_mm512_mul_ps(v, sw), _mm512_set1_ps(epi->sx[r]));
                if (epi->bias)
                    v = _mm512_add_ps(v, bias);
                _mm512_mask_storeu_ps((float *)c + r * ldc + 16 * j, cm[j], v);
            }
        }
    } else {
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
#pragma GCC unroll 3
            for (int j = 0; j < P; j++)
                _mm512_mask_storeu_epi32((int32_t *)c + r * ldc + 16 * j, cm[j], acc[r][j]);
    }
}

#define TILE_FN(R, P)                                                                          \
    static void tile_##R##_##P(const uint8_t *a, size_t lda, const int8_t *b, size_t ldb,      \
                               int k4n, int ncols, void *c, size_t ldc, int flags,             \
                               const eng__qepi *epi)                                           \
    {                                                                                          \
        tile_rp(R, P, a, lda, b, ldb, k4n, ncols, c, ldc, flags, epi);                         \
    }
#define TILE_ROW(R) TILE_FN(R, 1) TILE_FN(R, 2) TILE_FN(R, 3)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6) TILE_ROW(7) TILE_ROW(8)

typedef void (*tile_fn)(const uint8_t *, size_t, const int8_t *, size_t, int, int, void *, size_t,
                        int, const eng__qepi *);
#define TILE_REF(R) {tile_##R##_1, tile_##R##_2, tile_##R##_3}
static const tile_fn tiles[MR][NP] = {TILE_REF(1), TILE_REF(2), TILE_REF(3), TILE_REF(4),
                                      TILE_REF(5), TILE_REF(6), TILE_REF(7), TILE_REF(8)};

static void tile_avx512vnni(const uint8_t *a, size_t lda, const int8_t *b, size_t ldb, int k4n,
                            int mr, int np, int ncols, void *c, size_t ldc, int flags,
                            const eng__qepi *epi)
{
    tiles[mr - 1][np - 1](a, lda, b, ldb, k4n, ncols, c, ldc, flags, epi);
}

const eng__qgemm_kernels eng__qgemm_avx512vnni = {
    .isa = ENG_QISA_AVX512VNNI, .name = "avx512vnni", .mr = MR, .np = NP, .kc4 = KC4,
    .quantize = eng__qgemm_quantize_avx512, .tile = tile_avx512vnni,
};
