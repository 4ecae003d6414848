/* sgemm_avx512.c: the fp32 GEMM tile on 16-lane registers (AVX-512F), the
 * contract and packed layout in sgemm.h.
 *
 * Shapes: nseg segments of rows a[r] + s*aseg [kc], b = np panels of
 * [nseg*kc][16] (ldb floats apart), rows c[r][ncols]; mr <= 6, np <= 4. The
 * full tile keeps 6 x 4 = 24 zmm accumulators; each k step loads 4 weight vectors and broadcasts 6
 * activations, 10 loads for 24 FMAs, so the FMA units, not the loads, set the
 * pace. Column tails use masked loads and stores (the packed panels are
 * zero-padded, so the sums need no masking). The epilogue (bias, residual,
 * activation from vmath_avx512.h) runs on the accumulators before the only
 * store of the last K block. With ENG_ST_PREFETCH it spreads its share of
 * the next column tile's lines over its k steps (one step's np lines every
 * of-th step), so they arrive while it and its fellow row tiles multiply. */
#include <stddef.h>

#include "sgemm.h"
#include "vmath_avx512.h"

enum { MR = 6, NP = 4 };

/* One tile of mr x np panels; always inlined with constant mr and np, so the
 * accumulators live in registers and the row and panel loops unroll. */
static inline __attribute__((always_inline)) void
tile_n(const float *const *ap, ptrdiff_t aseg, int nseg, const float *b, size_t ldb, int kc,
       const int mr, const int np, const int pf_on, int ncols, float *const *c, int flags,
       const eng__sepi *epi)
{
    const float *a[MR];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
        a[r] = ap[r];
    __m512 acc[MR][NP];
    __mmask16 m[NP];
#pragma GCC unroll 4
    for (int j = 0; j < np; j++)
        m[j] = ncols - 16 * j >= 16 ? (__mmask16)0xffff : tail_mask16(ncols - 16 * j);
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int j = 0; j < np; j++)
            acc[r][j] = (flags & ENG_ST_ACCUM) ? _mm512_maskz_loadu_ps(m[j], c[r] + 16 * j)
                                               : _mm512_setzero_ps();
    /* ENG_ST_PREFETCH (sgemm.h): the next column tile's k steps from pf,
     * one step's np lines at the start of each chunk of `of` k steps, pf_n
     * times. The k loop runs in those chunks so that its body tests nothing
     * else: with a compare per step the compiler ran out of registers and
     * kept an accumulator on the stack (a load and a store per step). */
    int chunk = kc, pf_n = 0;
    const char *pf = NULL;
    if (pf_on) {
        chunk = flags >> ENG_ST_PF_OF_SHIFT & ENG_ST_PF_MAX;
        const int part = flags >> ENG_ST_PF_PART_SHIFT & ENG_ST_PF_MAX;
        const int steps = (kc + chunk - 1) / chunk;
        pf_n = kc - part * steps < steps ? kc - part * steps : steps;
        if (pf_n > 0)
            pf = (const char *)(b + (size_t)np * ldb + (size_t)part * steps * 16);
    }
    for (int s = 0; s < nseg; s++, b += (size_t)kc * 16) {
        for (int k0 = 0; k0 < kc; k0 += chunk) {
            if (pf_on && pf_n > 0) {
#pragma GCC unroll 4
                for (int j = 0; j < np; j++)
                    _mm_prefetch(pf + (size_t)j * ldb * sizeof(float), _MM_HINT_T1);
                pf += 64;
                pf_n--;
            }
            const int k1 = kc - k0 < chunk ? kc : k0 + chunk;
#pragma GCC unroll 4
            for (int k = k0; k < k1; k++) {
                __m512 bv[NP];
#pragma GCC unroll 4
                for (int j = 0; j < np; j++)
                    bv[j] = _mm512_loadu_ps(b + (size_t)j * ldb + (size_t)k * 16);
#pragma GCC unroll 6
                for (int r = 0; r < mr; r++) {
                    const __m512 av = _mm512_set1_ps(a[r][k]);
#pragma GCC unroll 4
                    for (int j = 0; j < np; j++)
                        acc[r][j] = _mm512_fmadd_ps(av, bv[j], acc[r][j]);
                }
            }
        }
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++)
            a[r] += aseg;
    }
    if (flags & ENG_ST_FINAL) {
#pragma GCC unroll 4
        for (int j = 0; j < np; j++) {
            const __m512 bias = _mm512_maskz_loadu_ps(m[j], epi->bias + 16 * j);
#pragma GCC unroll 6
            for (int r = 0; r < mr; r++) {
                __m512 v = _mm512_add_ps(acc[r][j], bias);
                if (epi->res)
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[j], epi->res[r] + 16 * j));
                acc[r][j] = epi->act != ENG_ACT_NONE ? vact(v, epi->act) : v;
            }
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int j = 0; j < np; j++)
            _mm512_mask_storeu_ps(c[r] + 16 * j, m[j], acc[r][j]);
}

#define TILE_ARGS                                                                          \
    const float *const *a, ptrdiff_t aseg, int nseg, const float *b, size_t ldb, int kc,   \
        int mr, int np, int ncols, float *const *c, int flags, const eng__sepi *epi
#define TILE(R, P)                                                                         \
    static void tile_##R##_##P(TILE_ARGS)                                                  \
    {                                                                                      \
        if (flags & ENG_ST_PREFETCH)                                                       \
            tile_n(a, aseg, nseg, b, ldb, kc, R, P, 1, ncols, c, flags, epi);              \
        else                                                                               \
            tile_n(a, aseg, nseg, b, ldb, kc, R, P, 0, ncols, c, flags, epi);              \
    }
#define TILE_ROW(R) TILE(R, 1) TILE(R, 2) TILE(R, 3) TILE(R, 4)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)
#define TILE_PTRS(R) { tile_##R##_1, tile_##R##_2, tile_##R##_3, tile_##R##_4 }

typedef void (*tile_fn)(TILE_ARGS);
static const tile_fn tiles[MR][NP] = {
    TILE_PTRS(1), TILE_PTRS(2), TILE_PTRS(3), TILE_PTRS(4), TILE_PTRS(5), TILE_PTRS(6),
};

static void tile(TILE_ARGS)
{
    tiles[mr - 1][np - 1](a, aseg, nseg, b, ldb, kc, mr, np, ncols, c, flags, epi);
}

const eng__sgemm_kernels eng__sgemm_avx512 = { ENG_ISA_AVX512, MR, NP, tile };
