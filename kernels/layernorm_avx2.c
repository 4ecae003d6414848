/* layernorm_avx2.c: row layer normalisation, 8 lanes (AVX2 + FMA).
 *
 * Shapes: x[rows][n], y[rows][n] (y may equal x: each element is read before
 * it is written), g[n], b[n]. Same method as layernorm_scalar.c (two fp32
 * passes, eps inside the square root); only the order of the sums differs. */
#include <stddef.h>
#include <math.h>

#include "kernels_isa.h"
#include "vmath_avx2.h"

void eng__layernorm_avx2(float *y, const float *x, const float *g, const float *b,
                         int rows, int n, float eps)
{
    const int rem = n % 8, body = n - rem;
    const __m256i tail = tail_mask8(rem);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 16 <= body; i += 16) {
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(xr + i));
            s1 = _mm256_add_ps(s1, _mm256_loadu_ps(xr + i + 8));
        }
        if (i < body)
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(xr + i));
        if (rem)
            s1 = _mm256_add_ps(s1, _mm256_maskload_ps(xr + body, tail));
        const float mean = hsum8(_mm256_add_ps(s0, s1)) / (float)n;
        const __m256 vmean = _mm256_set1_ps(mean);

        /* Masked-off tail lanes load as 0, so their d = -mean is cleared. */
        __m256 q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
        for (i = 0; i + 16 <= body; i += 16) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(xr + i), vmean);
            __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(xr + i + 8), vmean);
            q0 = _mm256_fmadd_ps(d0, d0, q0);
            q1 = _mm256_fmadd_ps(d1, d1, q1);
        }
        if (i < body) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xr + i), vmean);
            q0 = _mm256_fmadd_ps(d, d, q0);
        }
        if (rem) {
            __m256 d = _mm256_sub_ps(_mm256_maskload_ps(xr + body, tail), vmean);
            d = _mm256_and_ps(d, _mm256_castsi256_ps(tail));
            q1 = _mm256_fmadd_ps(d, d, q1);
        }
        const float var = hsum8(_mm256_add_ps(q0, q1)) / (float)n;
        const __m256 rstd = _mm256_set1_ps(1.0f / sqrtf(var + eps));

        for (i = 0; i < body; i += 8) {
            __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vmean), rstd);
            _mm256_storeu_ps(yr + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(g + i), _mm256_loadu_ps(b + i)));
        }
        if (rem) {
            __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(xr + body, tail), vmean), rstd);
            _mm256_maskstore_ps(yr + body, tail,
                                _mm256_fmadd_ps(d, _mm256_maskload_ps(g + body, tail),
                                                _mm256_maskload_ps(b + body, tail)));
        }
    }
}
