/* bias_act_avx2.c: bias + activation, 8 lanes (AVX2 + FMA); the body is
 * bias_act_vec.h's. */
#include "kernels_isa.h"
#include "vmath_avx2.h"
#include "bias_act_vec.h"

void eng__bias_act_avx2(float *x, const float *bias, int rows, int n, eng__act act)
{
    bias_act_vec(x, bias, rows, n, act);
}
