/* bias_residual_avx512.c: bias + residual add, 16 lanes (AVX-512F); the body is
 * bias_residual_vec.h's. */
#include "kernels_isa.h"
#include "vmath_avx512.h"
#include "bias_residual_vec.h"

void eng__bias_residual_avx512(float *y, const float *bias, const float *res, int rows, int n)
{
    bias_residual_vec(y, bias, res, rows, n);
}
