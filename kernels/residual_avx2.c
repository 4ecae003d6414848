/* residual_avx2.c: bias + residual add, 8 lanes (AVX2).
 *
 * Shapes: y[rows][n], bias[n], res[rows][n] or NULL;
 * y[r][i] = (y[r][i] + bias[i]) + res[r][i], the scalar's order, so the
 * result is bit for bit the scalar's. */
#include <stddef.h>

#include "kernels_isa.h"
#include "vmath_avx2.h"

void eng__bias_residual_avx2(float *y, const float *bias, const float *res, int rows, int n)
{
    const int rem = n % 8, body = n - rem;
    const __m256i tail = tail_mask8(rem);
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * n;
        const float *rr = res ? res + (size_t)r * n : NULL;
        for (int i = 0; i < body; i += 8) {
            __m256 v = _mm256_add_ps(_mm256_loadu_ps(yr + i), _mm256_loadu_ps(bias + i));
            if (rr)
                v = _mm256_add_ps(v, _mm256_loadu_ps(rr + i));
            _mm256_storeu_ps(yr + i, v);
        }
        if (rem) {
            __m256 v = _mm256_add_ps(_mm256_maskload_ps(yr + body, tail),
                                     _mm256_maskload_ps(bias + body, tail));
            if (rr)
                v = _mm256_add_ps(v, _mm256_maskload_ps(rr + body, tail));
            _mm256_maskstore_ps(yr + body, tail, v);
        }
    }
}
