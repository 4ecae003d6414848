/* layernorm_avx2.c: row layer normalisation, 8 lanes (AVX2 + FMA); the body is
 * layernorm_vec.h's. */
#include "kernels_isa.h"
#include "vmath_avx2.h"
#include "layernorm_vec.h"

void eng__layernorm_avx2(float *y, const float *x, const float *g, const float *b, int rows,
                         int n, float eps)
{
    layernorm_vec(y, x, g, b, rows, n, eps);
}
