/* bias_residual_avx2.c: bias + residual add, 8 lanes (AVX2 + FMA); the body is
 * bias_residual_vec.h's. */
#include "kernels_isa.h"
#include "vmath_avx2.h"
#include "bias_residual_vec.h"

void eng__bias_residual_avx2(float *y, const float *bias, const float *res, int rows, int n)
{
    bias_residual_vec(y, bias, res, rows, n);
}
