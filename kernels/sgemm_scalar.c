/* sgemm_scalar.c: the fp32 GEMM tile in plain C, the portable fallback and
 * the reference for the vector tiles (sgemm.h has the contract and layout).
 *
 * Shapes: nseg segments of rows a[r] + s*aseg [kc], b = np panels of
 * [nseg*kc][16] (ldb floats apart), rows c[r][ncols]. The epilogue is the
 * kernel table's own scalar passes on each finished row, so the activations
 * use the same libm-based functions as kernels/bias_act_scalar.c. */
#include <stddef.h>

#include "kernels_isa.h"
#include "sgemm.h"

enum { MR = 4, NP = 1 };

static void tile(const float *const *a, ptrdiff_t aseg, int nseg, const float *b, size_t ldb,
                 int kc, int mr, int np, int ncols, float *const *c, int flags,
                 const eng__sepi *epi)
{
    for (int r = 0; r < mr; r++) {
        float *cr = c[r];
        for (int j0 = 0; j0 < ncols; j0 += 16) {
            const float *bp = b + (size_t)(j0 / 16) * ldb;
            const int w = ncols - j0 < 16 ? ncols - j0 : 16;
            float acc[16];
            for (int j = 0; j < w; j++)
                acc[j] = (flags & ENG_ST_ACCUM) ? cr[j0 + j] : 0.0f;
            for (int s = 0; s < nseg; s++) {
                const float *ar = a[r] + s * aseg, *bs = bp + (size_t)s * kc * 16;
                for (int k = 0; k < kc; k++)
                    for (int j = 0; j < w; j++)
                        acc[j] += ar[k] * bs[(size_t)k * 16 + j];
            }
            for (int j = 0; j < w; j++)
                cr[j0 + j] = acc[j];
        }
        if (!(flags & ENG_ST_FINAL))
            continue;
        /* act(acc + bias) or acc + bias + res, in the vector epilogues'
         * order. Only when res and act come together (the forward pass never
         * asks for that) is res added before the bias, a rounding-level
         * difference. */
        const float *rr = epi->res ? epi->res[r] : NULL;
        if (epi->act != ENG_ACT_NONE) {
            if (rr)
                for (int j = 0; j < ncols; j++)
                    cr[j] += rr[j];
            eng__bias_act_scalar(cr, epi->bias, 1, ncols, epi->act);
        } else {
            eng__bias_residual_scalar(cr, epi->bias, rr, 1, ncols);
        }
    }
}

const eng__sgemm_kernels eng__sgemm_scalar = { ENG_ISA_SCALAR, MR, NP, tile };
