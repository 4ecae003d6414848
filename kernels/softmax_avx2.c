/* softmax_avx2.c: row softmax with a scale, 8 lanes (AVX2 + FMA); the body is
 * softmax_vec.h's. */
#include "kernels_isa.h"
#include "vmath_avx2.h"
#include "softmax_vec.h"

void eng__softmax_avx2(float *x, int rows, int n, int ld, float scale)
{
    softmax_vec(x, rows, n, ld, scale);
}
