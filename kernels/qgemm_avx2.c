/* qgemm_avx2.c: the int8 GEMM tile for AVX2 CPUs without VNNI, and the
 * 256-bit activation quantizer (shared with the avxvnni table). Layouts: see
 * qgemm.h.
 *
 * No saturation: VPMADDUBSW would add two u8*s8 products in 16 bits and
 * saturate (255*127*2 = 64770 > 32767). Instead the weights are widened to
 * 16 bits (VPMOVSXBW) and the activation word to 4 x u16, and VPMADDWD adds
 * the pairs in 32 bits, exactly. The accumulators then hold, per column, two
 * partial sums (k = 0,1 and 2,3 of each step), which VPHADDD folds at the end.
 *
 * Register tile: up to 2 rows x 1 panel: 8 accumulators (4 columns x 2
 * partial sums each), 4 widened weight registers, 2 broadcasts: 14 ymm. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "qgemm_ymm.h"

enum { MR = 2, NP = 1 };

/* x: rows x k floats; a: rows x lda bytes (first k written); sx: rows. */
void eng__qgemm_quantize_avx2(const float *x, int rows, int k, uint8_t *a, size_t lda, float *sx)
{
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * k;
        uint8_t *ar = a + (size_t)r * lda;
        __m256 vmx = _mm256_setzero_ps();
        int i = 0;
        for (; i + 8 <= k; i += 8)
            vmx = _mm256_max_ps(vmx, _mm256_and_ps(_mm256_loadu_ps(xr + i), sign));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(vmx), _mm256_extractf128_ps(vmx, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float mx = _mm_cvtss_f32(h);
        for (; i < k; i++)
            mx = fmaxf(mx, fabsf(xr[i]));
        float inv = mx > 0.0f ? 127.0f / mx : 0.0f;
        sx[r] = mx > 0.0f ? mx / 127.0f : 0.0f;
        const __m256 vinv = _mm256_set1_ps(inv);
        const __m256i zp = _mm256_set1_epi32(128);
        for (i = 0; i + 16 <= k; i += 16) {
            __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + i), vinv));
            __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + i + 8), vinv));
            /* Saturating packs clamp to [0, 255]; packs work per 128-bit
             * lane, so the permute restores element order. */
            __m256i w = _mm256_packs_epi32(_mm256_add_epi32(q0, zp), _mm256_add_epi32(q1, zp));
            w = _mm256_permute4x64_epi64(w, 0xD8);
            __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(w),
                                             _mm256_extracti128_si256(w, 1));
            _mm_storeu_si128((__m128i *)(void *)(ar + i), bytes);
        }
        for (; i < k; i++) {
            long q = lrintf(xr[i] * inv) + 128;
            ar[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
        }
    }
}

/* Folds the pair sums of columns 4q..4q+3 (x) and 4q+4..4q+7 (y) into 8
 * columns in order. */
static inline __m256i fold_pairs(__m256i x, __m256i y)
{
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(x, y), 0xD8);
}

/* The tile for compile-time R rows; see qgemm.h. */
static inline __attribute__((always_inline)) void
tile_r(const int R, const uint8_t *a, size_t lda, const int8_t *b, int k4n, int ncols, void *c,
       size_t ldc, int flags, const eng__qepi *epi)
{
    __m256i acc[MR][4];
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4; q++)
            acc[r][q] = _mm256_setzero_si256();
    for (int k4 = 0; k4 < k4n; k4++) {
        const int8_t *bk = b + (size_t)k4 * 64;
        __m256i bw[4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++)
            bw[q] = _mm256_cvtepi8_epi16(
                _mm_loadu_si128((const __m128i *)(const void *)(bk + 16 * q)));
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            int32_t w;
            memcpy(&w, a + r * lda + (size_t)k4 * 4, 4);
            __m256i av = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(w)));
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(av, bw[q]));
        }
    }
    const __m256i m0 = ymm_colmask(ncols), m1 = ymm_colmask(ncols - 8);
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        __m256i lo = fold_pairs(acc[r][0], acc[r][1]), hi = fold_pairs(acc[r][2], acc[r][3]);
        if (flags & ENG_QT_ACCUM) {
            lo = _mm256_add_epi32(lo, ymm_load_c((const int32_t *)c + r * ldc, m0));
            hi = _mm256_add_epi32(hi, ymm_load_c((const int32_t *)c + r * ldc + 8, m1));
        }
        ymm_store_c(lo, c, ldc, r, 0, m0, flags, epi);
        ymm_store_c(hi, c, ldc, r, 8, m1, flags, epi);
    }
}

static void tile_1(const uint8_t *a, size_t lda, const int8_t *b, int k4n, int ncols, void *c,
                   size_t ldc, int flags, const eng__qepi *epi)
{
    tile_r(1, a, lda, b, k4n, ncols, c, ldc, flags, epi);
}

static void tile_2(const uint8_t *a, size_t lda, const int8_t *b, int k4n, int ncols, void *c,
                   size_t ldc, int flags, const eng__qepi *epi)
{
    tile_r(2, a, lda, b, k4n, ncols, c, ldc, flags, epi);
}

static void tile_avx2(const uint8_t *a, size_t lda, const int8_t *b, size_t ldb, int k4n, int mr,
                      int np, int ncols, void *c, size_t ldc, int flags, const eng__qepi *epi)
{
    (void)ldb;
    (void)np;
    (mr == 1 ? tile_1 : tile_2)(a, lda, b, k4n, ncols, c, ldc, flags, epi);
}

const eng__qgemm_kernels eng__qgemm_avx2 = {
    .isa = ENG_QISA_AVX2, .name = "avx2", .mr = MR, .np = NP, .kc4 = ENG_QGEMM_KC4,
    .quantize = eng__qgemm_quantize_avx2, .tile = tile_avx2,
};
