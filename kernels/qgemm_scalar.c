/* qgemm_scalar.c: the reference int8 GEMM tile and activation quantizer
 * (plain C, exact int32 sums); the fallback for CPUs without AVX2 and the
 * oracle the vector paths are tested against. Layouts: see qgemm.h. */
#include <math.h>
#include <string.h>

#include "qgemm.h"

enum { MR = 4, NP = 1 };

/* x: rows x k floats; a: rows x lda bytes (first k written); sx: rows. */
static void quantize_scalar(const float *x, int rows, int k, uint8_t *a, size_t lda, float *sx)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * k;
        uint8_t *ar = a + (size_t)r * lda;
        float mx = 0.0f;
        for (int i = 0; i < k; i++)
            mx = fmaxf(mx, fabsf(xr[i]));
        /* An all-zero row quantizes to the zero point with scale 0, so the
         * epilogue yields exactly 0 (or the bias). */
        float inv = mx > 0.0f ? 127.0f / mx : 0.0f;
        sx[r] = mx > 0.0f ? mx / 127.0f : 0.0f;
        for (int i = 0; i < k; i++) {
            long q = lrintf(xr[i] * inv) + 128;
            ar[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
        }
    }
}

/* One tile of up to MR rows x 16 columns; see qgemm.h for the contract. */
static void tile_scalar(const uint8_t *a, size_t lda, const int8_t *b, size_t ldb, int k4n, int mr,
                        int np, int ncols, void *c, size_t ldc, int flags, const eng__qepi *epi)
{
    (void)ldb;
    (void)np;
    int32_t acc[MR][16];
    for (int r = 0; r < mr; r++) {
        for (int j = 0; j < 16; j++)
            acc[r][j] = 0;
        if (flags & ENG_QT_ACCUM)
            memcpy(acc[r], (const int32_t *)c + (size_t)r * ldc, (size_t)ncols * 4);
    }
    for (int k4 = 0; k4 < k4n; k4++) {
        const int8_t *bk = b + (size_t)k4 * 64;
        for (int r = 0; r < mr; r++) {
            const uint8_t *ak = a + (size_t)r * lda + (size_t)k4 * 4;
            for (int j = 0; j < 16; j++)
                for (int t = 0; t < 4; t++)
                    acc[r][j] += (int32_t)ak[t] * (int32_t)bk[j * 4 + t];
        }
    }
    for (int r = 0; r < mr; r++) {
        if ((flags & ENG_QT_FINAL) && epi) {
            float *y = (float *)c + (size_t)r * ldc;
            for (int j = 0; j < ncols; j++) {
                /* Wrapping arithmetic, like the vector paths: a hostile
                 * file's wsum must not be undefined behaviour. */
                int32_t d = (int32_t)((uint32_t)acc[r][j] - ((uint32_t)epi->wsum[j] << 7));
                float v = (float)d * epi->sw[j] * epi->sx[r];
                y[j] = epi->bias ? v + epi->bias[j] : v;
            }
        } else {
            memcpy((int32_t *)c + (size_t)r * ldc, acc[r], (size_t)ncols * 4);
        }
    }
}

const eng__qgemm_kernels eng__qgemm_scalar = {
    .isa = ENG_QISA_SCALAR, .name = "scalar", .mr = MR, .np = NP, .kc4 = ENG_QGEMM_KC4,
    .quantize = quantize_scalar, .tile = tile_scalar,
};
