/* bias_act_scalar.c: bias + activation (GELU erf form, GELU tanh form,
 * ReLU, quick_gelu), the portable fallback and the reference for the vector versions.
 *
 * Shapes: x[rows][n], bias[n]; x[r][i] = act(x[r][i] + bias[i]) in place.
 * Every activation maps NaN to NaN, +inf to +inf and -inf to -0 (the limit;
 * the GELU formulas would give -inf * 0 = NaN there). The tanh form is computed
 * as x sigmoid(2u), the same function as 0.5 x (1 + tanh(u)) without its
 * cancellation for negative x. */
#include <stddef.h>
#include <float.h>
#include <math.h>

#include "kernels_isa.h"
#include "vmath_coef.h"

static float gelu_erf(float x)
{
    if (x < -FLT_MAX)
        return -0.0f;
    return 0.5f * x * erfcf(-x * VM_SQRT1_2);
}

static float gelu_tanh(float x)
{
    if (x < -FLT_MAX)
        return -0.0f;
    float v = x * (VM_GELU_K0 + VM_GELU_K1 * x * x);
    return x / (1.0f + expf(-v));
}

static float quick_gelu(float x)
{
    if (x < -FLT_MAX)
        return -0.0f;
    return x / (1.0f + expf(-VM_QUICK_GELU_K * x));
}

static float relu(float x)
{
    return x < 0.0f ? 0.0f : x;
}

void eng__bias_act_scalar(float *x, const float *bias, int rows, int n, eng__act act)
{
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * n;
        for (int i = 0; i < n; i++) {
            float v = row[i] + bias[i];
            switch (act) {
            case ENG_ACT_NONE: break;
            case ENG_ACT_GELU: v = gelu_erf(v); break;
            case ENG_ACT_GELU_TANH: v = gelu_tanh(v); break;
            case ENG_ACT_RELU: v = relu(v); break;
            case ENG_ACT_QUICK_GELU: v = quick_gelu(v); break;
            }
            row[i] = v;
        }
    }
}
