/* layernorm_avx512.c: row layer normalisation, 16 lanes (AVX-512F); the body is
 * layernorm_vec.h's. */
#include "kernels_isa.h"
#include "vmath_avx512.h"
#include "layernorm_vec.h"

void eng__layernorm_avx512(float *y, const float *x, const float *g, const float *b, int rows,
                         int n, float eps)
{
    layernorm_vec(y, x, g, b, rows, n, eps);
}
