/* activation_avx512.c: bias + activation (GELU erf form, GELU tanh form,
 * ReLU), 16 lanes (AVX-512F).
 *
 * Shapes: x[rows][n], bias[n]; x[r][i] = act(x[r][i] + bias[i]) in place.
 * The approximations are in vmath_avx512.h; special values as
 * activation_scalar.c. */
#include <stddef.h>

#include "kernels_isa.h"
#include "vmath_avx512.h"

/* The row loop for one activation; always inlined with a constant act, so
 * each call below compiles to a loop with no switch inside. */
static inline __attribute__((always_inline)) void
run(float *x, const float *bias, int rows, int n, eng__act act)
{
    const int rem = n % 16, body = n - rem;
    const __mmask16 tail = tail_mask16(rem);
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * n;
        for (int i = 0; i < body; i += 16) {
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(row + i), _mm512_loadu_ps(bias + i));
            _mm512_storeu_ps(row + i, act16(v, act));
        }
        if (rem) {
            __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(tail, row + body),
                                     _mm512_maskz_loadu_ps(tail, bias + body));
            _mm512_mask_storeu_ps(row + body, tail, act16(v, act));
        }
    }
}

void eng__bias_act_avx512(float *x, const float *bias, int rows, int n, eng__act act)
{
    switch (act) {
    case ENG_ACT_NONE: run(x, bias, rows, n, ENG_ACT_NONE); break;
    case ENG_ACT_GELU: run(x, bias, rows, n, ENG_ACT_GELU); break;
    case ENG_ACT_GELU_TANH: run(x, bias, rows, n, ENG_ACT_GELU_TANH); break;
    case ENG_ACT_RELU: run(x, bias, rows, n, ENG_ACT_RELU); break;
    }
}
