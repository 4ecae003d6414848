/* sgemm_avx2.c: the fp32 GEMM tile on 8-lane registers (AVX2 + FMA), the
 * contract and packed layout in sgemm.h.
 *
 * Shapes: nseg segments of rows a[r] + s*aseg [kc], b = one panel of
 * [nseg*kc][16], rows c[r][ncols]; mr <= 6, np == 1. The full tile keeps 6
 * rows x 2 halves = 12 ymm accumulators, plus 2 weight vectors and a
 * broadcast: 15 of the 16 ymm registers. Column
 * tails use masked loads and stores only where a half is partial (VMASKMOVPS
 * stores are slow on some cores); the packed panel is zero-padded, so the
 * sums need no masking. The epilogue (bias, residual, activation from
 * vmath_avx2.h) runs before the only store of the last K block. */
#include <stddef.h>

#include "sgemm.h"
#include "vmath_avx2.h"

enum { MR = 6, NP = 1 };

/* Loads w <= 8 floats (w < 1: none, zeros) of p, masking only a partial half. */
static inline __m256 load_part(const float *p, int w)
{
    return w >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask8(w < 0 ? 0 : w));
}

static inline void store_part(float *p, int w, __m256 v)
{
    if (w >= 8)
        _mm256_storeu_ps(p, v);
    else if (w > 0)
        _mm256_maskstore_ps(p, tail_mask8(w), v);
}

/* One tile of mr rows; always inlined with a constant mr, so the accumulators
 * live in registers and the row loop unrolls. */
static inline __attribute__((always_inline)) void
tile_n(const float *const *ap, ptrdiff_t aseg, int nseg, const float *b, int kc, const int mr,
       int ncols, float *const *c, int flags, const eng__sepi *epi)
{
    const float *a[MR];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        a[r] = ap[r];
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++)
            acc[r][h] = (flags & ENG_ST_ACCUM) ? load_part(c[r] + 8 * h, ncols - 8 * h)
                                               : _mm256_setzero_ps();
    for (int s = 0; s < nseg; s++, b += (size_t)kc * 16) {
#pragma GCC unroll 4
        for (int k = 0; k < kc; k++) {
            const __m256 b0 = _mm256_loadu_ps(b + (size_t)k * 16);
            const __m256 b1 = _mm256_loadu_ps(b + (size_t)k * 16 + 8);
#pragma GCC unroll 6
            for (int r = 0; r < mr; r++) {
                const __m256 av = _mm256_broadcast_ss(a[r] + k);
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
        }
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++)
            a[r] += aseg;
    }
    if (flags & ENG_ST_FINAL) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256 bias = load_part(epi->bias + 8 * h, ncols - 8 * h);
#pragma GCC unroll 6
            for (int r = 0; r < mr; r++) {
                __m256 v = _mm256_add_ps(acc[r][h], bias);
                if (epi->res)
                    v = _mm256_add_ps(v, load_part(epi->res[r] + 8 * h, ncols - 8 * h));
                acc[r][h] = epi->act != ENG_ACT_NONE ? vact(v, epi->act) : v;
            }
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++)
            store_part(c[r] + 8 * h, ncols - 8 * h, acc[r][h]);
}

#define TILE_ARGS                                                                          \
    const float *const *a, ptrdiff_t aseg, int nseg, const float *b, size_t ldb, int kc,   \
        int mr, int np, int ncols, float *const *c, int flags, const eng__sepi *epi
#define TILE(R)                                                                            \
    static void tile_##R(TILE_ARGS) { tile_n(a, aseg, nseg, b, kc, R, ncols, c, flags, epi); }
TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6)

typedef void (*tile_fn)(TILE_ARGS);
static const tile_fn tiles[MR] = { tile_1, tile_2, tile_3, tile_4, tile_5, tile_6 };

static void tile(TILE_ARGS)
{
    tiles[mr - 1](a, aseg, nseg, b, ldb, kc, mr, np, ncols, c, flags, epi);
}

const eng__sgemm_kernels eng__sgemm_avx2 = { ENG_ISA_AVX2, MR, NP, tile };
