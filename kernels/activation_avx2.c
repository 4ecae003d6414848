/* activation_avx2.c: bias + activation (GELU erf form, GELU tanh form, ReLU),
 * 8 lanes (AVX2 + FMA).
 *
 * Shapes: x[rows][n], bias[n]; x[r][i] = act(x[r][i] + bias[i]) in place.
 * The approximations are in vmath_avx2.h; special values as
 * activation_scalar.c. */
#include <stddef.h>

#include "kernels_isa.h"
#include "vmath_avx2.h"

/* The row loop for one activation; always inlined with a constant act, so
 * each call below compiles to a loop with no switch inside. */
static inline __attribute__((always_inline)) void
run(float *x, const float *bias, int rows, int n, eng__act act)
{
    const int rem = n % 8, body = n - rem;
    const __m256i tail = tail_mask8(rem);
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * n;
        for (int i = 0; i < body; i += 8) {
            __m256 v = _mm256_add_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(bias + i));
            _mm256_storeu_ps(row + i, act8(v, act));
        }
        if (rem) {
            __m256 v = _mm256_add_ps(_mm256_maskload_ps(row + body, tail),
                                     _mm256_maskload_ps(bias + body, tail));
            _mm256_maskstore_ps(row + body, tail, act8(v, act));
        }
    }
}

void eng__bias_act_avx2(float *x, const float *bias, int rows, int n, eng__act act)
{
    switch (act) {
    case ENG_ACT_NONE: run(x, bias, rows, n, ENG_ACT_NONE); break;
    case ENG_ACT_GELU: run(x, bias, rows, n, ENG_ACT_GELU); break;
    case ENG_ACT_GELU_TANH: run(x, bias, rows, n, ENG_ACT_GELU_TANH); break;
    case ENG_ACT_RELU: run(x, bias, rows, n, ENG_ACT_RELU); break;
    }
}
