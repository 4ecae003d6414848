/* layernorm_avx512.c: row layer normalisation, 16 lanes (AVX-512F).
 *
 * Shapes: x[rows][n], y[rows][n] (y may equal x: each element is read before
 * it is written), g[n], b[n]. Same method as layernorm_scalar.c (two fp32
 * passes, eps inside the square root); only the order of the sums differs. */
#include <stddef.h>
#include <math.h>

#include "kernels_isa.h"
#include "vmath_avx512.h"

void eng__layernorm_avx512(float *y, const float *x, const float *g, const float *b,
                           int rows, int n, float eps)
{
    const int rem = n % 16, body = n - rem;
    const __mmask16 tail = tail_mask16(rem);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        int i = 0;
        for (; i + 32 <= body; i += 32) {
            s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xr + i));
            s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xr + i + 16));
        }
        if (i < body)
            s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xr + i));
        if (rem)
            s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(tail, xr + body));
        const float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)n;
        const __m512 vmean = _mm512_set1_ps(mean);

        __m512 q0 = _mm512_setzero_ps(), q1 = _mm512_setzero_ps();
        for (i = 0; i + 32 <= body; i += 32) {
            __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(xr + i), vmean);
            __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(xr + i + 16), vmean);
            q0 = _mm512_fmadd_ps(d0, d0, q0);
            q1 = _mm512_fmadd_ps(d1, d1, q1);
        }
        if (i < body) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(xr + i), vmean);
            q0 = _mm512_fmadd_ps(d, d, q0);
        }
        if (rem) {
            __m512 d = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, xr + body), vmean);
            q1 = _mm512_fmadd_ps(d, d, q1);
        }
        const float var = _mm512_reduce_add_ps(_mm512_add_ps(q0, q1)) / (float)n;
        const __m512 rstd = _mm512_set1_ps(1.0f / sqrtf(var + eps));

        for (i = 0; i < body; i += 16) {
            __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + i), vmean), rstd);
            _mm512_storeu_ps(yr + i, _mm512_fmadd_ps(d, _mm512_loadu_ps(g + i), _mm512_loadu_ps(b + i)));
        }
        if (rem) {
            __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, xr + body), vmean), rstd);
            _mm512_mask_storeu_ps(yr + body, tail,
                                  _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(tail, g + body),
                                                  _mm512_maskz_loadu_ps(tail, b + body)));
        }
    }
}
