/* layernorm_scalar.c: row layer normalisation, the portable fallback and the
 * reference for the vector versions.
 *
 * Shapes: x[rows][n], y[rows][n] (y may equal x), g[n], b[n]. Mean and
 * variance are two passes over fp32 values (the variance is the mean of
 * (x - mean)^2, which does not cancel as E[x^2] - mean^2 does); eps is added
 * inside the square root, as PyTorch does. The sums are kept in double: one
 * fp32 accumulator over 1024 terms drifts by ~5e-6 relative, where the vector
 * versions, spreading the sums over 8 or 16 lanes, stay near 5e-7. */
#include <stddef.h>
#include <math.h>

#include "kernels_isa.h"

void eng__layernorm_scalar(float *y, const float *x, const float *g, const float *b,
                           int rows, int n, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        double sum = 0.0;
        for (int i = 0; i < n; i++)
            sum += xr[i];
        float mean = (float)(sum / n);
        double sq = 0.0;
        for (int i = 0; i < n; i++) {
            float d = xr[i] - mean;
            sq += (double)d * d;
        }
        float rstd = 1.0f / sqrtf((float)(sq / n) + eps);
        for (int i = 0; i < n; i++)
            yr[i] = (xr[i] - mean) * rstd * g[i] + b[i];
    }
}
