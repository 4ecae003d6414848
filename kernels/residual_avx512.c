/* residual_avx512.c: bias + residual add, 16 lanes (AVX-512F).
 *
 * Shapes: y[rows][n], bias[n], res[rows][n] or NULL;
 * y[r][i] = (y[r][i] + bias[i]) + res[r][i], the scalar's order, so the
 * result is bit for bit the scalar's. */
#include <stddef.h>

#include "kernels_isa.h"
#include "vmath_avx512.h"

void eng__bias_residual_avx512(float *y, const float *bias, const float *res, int rows, int n)
{
    const int rem = n % 16, body = n - rem;
    const __mmask16 tail = tail_mask16(rem);
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * n;
        const float *rr = res ? res + (size_t)r * n : NULL;
        for (int i = 0; i < body; i += 16) {
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(yr + i), _mm512_loadu_ps(bias + i));
            if (rr)
                v = _mm512_add_ps(v, _mm512_loadu_ps(rr + i));
            _mm512_storeu_ps(yr + i, v);
        }
        if (rem) {
            __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(tail, yr + body),
                                     _mm512_maskz_loadu_ps(tail, bias + body));
            if (rr)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(tail, rr + body));
            _mm512_mask_storeu_ps(yr + body, tail, v);
        }
    }
}
