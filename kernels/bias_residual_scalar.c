/* bias_residual_scalar.c: bias + residual add, the portable fallback and the
 * reference for the vector versions.
 *
 * Shapes: y[rows][n], bias[n], res[rows][n] or NULL;
 * y[r][i] = (y[r][i] + bias[i]) + res[r][i], in that order in every ISA, so
 * all versions agree bit for bit. */
#include <stddef.h>

#include "kernels_isa.h"

void eng__bias_residual_scalar(float *y, const float *bias, const float *res, int rows, int n)
{
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * n;
        const float *rr = res ? res + (size_t)r * n : NULL;
        for (int i = 0; i < n; i++) {
            float v = yr[i] + bias[i];
            yr[i] = rr ? v + rr[i] : v;
        }
    }
}
