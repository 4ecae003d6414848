/* bias_act_avx512.c: bias + activation, 16 lanes (AVX-512F); the body is
 * bias_act_vec.h's. */
#include "kernels_isa.h"
#include "vmath_avx512.h"
#include "bias_act_vec.h"

void eng__bias_act_avx512(float *x, const float *bias, int rows, int n, eng__act act)
{
    bias_act_vec(x, bias, rows, n, act);
}
