/* bias_act_vec.h: bias + activation (GELU erf form, GELU tanh form, ReLU,
 * or none), the body shared by bias_act_avx2.c and bias_act_avx512.c, in
 * vmath_*.h's vocabulary (include one of them first).
 *
 * Shapes: x[rows][n], bias[n]; x[r][i] = act(x[r][i] + bias[i]) in place.
 * The approximations are vmath_vec.h's; special values as
 * bias_act_scalar.c. */
#ifndef ENG_BIAS_ACT_VEC_H
#define ENG_BIAS_ACT_VEC_H

#include <stddef.h>

/* The row loop for one activation; always inlined with a constant act, so
 * each call below compiles to a loop with no switch inside. */
static inline __attribute__((always_inline)) void
bias_act_rows(float *x, const float *bias, int rows, int n, eng__act act)
{
    const int rem = n % VLANES, body = n - rem;
    const vmask tail = vtail(rem);
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * n;
        for (int i = 0; i < body; i += VLANES)
            vstore(row + i, vact(vadd(vload(row + i), vload(bias + i)), act));
        if (rem) {
            vfloat v = vadd(vload_m(row + body, tail), vload_m(bias + body, tail));
            vstore_m(row + body, tail, vact(v, act));
        }
    }
}

static inline void bias_act_vec(float *x, const float *bias, int rows, int n, eng__act act)
{
    switch (act) {
    case ENG_ACT_NONE: bias_act_rows(x, bias, rows, n, ENG_ACT_NONE); break;
    case ENG_ACT_GELU: bias_act_rows(x, bias, rows, n, ENG_ACT_GELU); break;
    case ENG_ACT_GELU_TANH: bias_act_rows(x, bias, rows, n, ENG_ACT_GELU_TANH); break;
    case ENG_ACT_RELU: bias_act_rows(x, bias, rows, n, ENG_ACT_RELU); break;
    case ENG_ACT_QUICK_GELU: bias_act_rows(x, bias, rows, n, ENG_ACT_QUICK_GELU); break;
    }
}

#endif
