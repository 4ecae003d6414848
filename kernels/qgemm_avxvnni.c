/* qgemm_avxvnni.c: the int8 GEMM tile on AVX-VNNI (VEX VPDPBUSD ymm), for
 * CPUs or ENG_ISA=avx2 settings without AVX-512. Layouts: see qgemm.h.
 *
 * Register tile: up to 6 rows x 1 panel (16 columns = 2 ymm) = 12
 * accumulators, 2 weight registers and 1 broadcast: 15 of 16 ymm. */
#include <immintrin.h>
#include <string.h>

#include "qgemm_ymm.h"

enum { MR = 6, NP = 1 };

/* The tile for compile-time R rows; see qgemm.h. */
static inline __attribute__((always_inline)) void
tile_r(const int R, const uint8_t *a, size_t lda, const int8_t *b, int k4n, int ncols, void *c,
       size_t ldc, int flags, const eng__qepi *epi)
{
    __m256i acc[MR][2];
    const __m256i m0 = ymm_colmask(ncols), m1 = ymm_colmask(ncols - 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        acc[r][0] = (flags & ENG_QT_ACCUM) ? ymm_load_c((const int32_t *)c + r * ldc, m0)
                                           : _mm256_setzero_si256();
        acc[r][1] = (flags & ENG_QT_ACCUM) ? ymm_load_c((const int32_t *)c + r * ldc + 8, m1)
                                           : _mm256_setzero_si256();
    }
    for (int k4 = 0; k4 < k4n; k4++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)(b + (size_t)k4 * 64));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(b + (size_t)k4 * 64 + 32));
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            int32_t w;
            memcpy(&w, a + r * lda + (size_t)k4 * 4, 4);
            __m256i av = _mm256_set1_epi32(w);
            acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], av, b0);
            acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], av, b1);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        ymm_store_c(acc[r][0], c, ldc, r, 0, m0, flags, epi);
        ymm_store_c(acc[r][1], c, ldc, r, 8, m1, flags, epi);
    }
}

#define TILE_FN(R)                                                                             \
    static void tile_##R(const uint8_t *a, size_t lda, const int8_t *b, int k4n, int ncols,    \
                         void *c, size_t ldc, int flags, const eng__qepi *epi)                 \
    {                                                                                          \
        tile_r(R, a, lda, b, k4n, ncols, c, ldc, flags, epi);                                  \
    }
TILE_FN(1) TILE_FN(2) TILE_FN(3) TILE_FN(4) TILE_FN(5) TILE_FN(6)

typedef void (*tile_fn)(const uint8_t *, size_t, const int8_t *, int, int, void *, size_t, int,
                        const eng__qepi *);
static const tile_fn tiles[MR] = {tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};

static void tile_avxvnni(const uint8_t *a, size_t lda, const int8_t *b, size_t ldb, int k4n,
                         int mr, int np, int ncols, void *c, size_t ldc, int flags,
                         const eng__qepi *epi)
{
    (void)ldb;
    (void)np;
    tiles[mr - 1](a, lda, b, k4n, ncols, c, ldc, flags, epi);
}

const eng__qgemm_kernels eng__qgemm_avxvnni = {
    .isa = ENG_QISA_AVXVNNI, .name = "avxvnni", .mr = MR, .np = NP, .kc4 = ENG_QGEMM_KC4,
    .quantize = eng__qgemm_quantize_avx2, .tile = tile_avxvnni,
};
