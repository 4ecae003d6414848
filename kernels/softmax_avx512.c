/* softmax_avx512.c: row softmax with a scale, 16 lanes (AVX-512F); the body is
 * softmax_vec.h's. */
#include "kernels_isa.h"
#include "vmath_avx512.h"
#include "softmax_vec.h"

void eng__softmax_avx512(float *x, int rows, int n, int ld, float scale)
{
    softmax_vec(x, rows, n, ld, scale);
}
