/* winograd_avx2.c: the Winograd transforms (kernels.h) on 8 channels per
 * register (AVX2); the body is winograd_vec.h's, the arithmetic and its
 * order winograd_scalar.c's (bit for bit the same).
 *
 * Shapes (a = m + 2): input d[a*a][c] to v[a*a][vs]; output m[a*a][ms] to
 * y[m*m][c]. */
#include <stddef.h>

#include "kernels_isa.h"
#include "vmath_avx2.h"

#define VEC __m256
#define LANES 8
#define MASK __m256i
#define MASK_FOR(rem) tail_mask8(rem)
#define ALL _mm256_set1_epi32(-1)
#define LOAD(p, k) _mm256_maskload_ps(p, k)
#define STORE(p, k, v) _mm256_maskstore_ps(p, k, v)
#define ADD _mm256_add_ps
#define SUB _mm256_sub_ps
#define MUL _mm256_mul_ps
#define SET1 _mm256_set1_ps
#define RELU vrelu
#include "winograd_vec.h"

WINO_ENTRY_POINTS(avx2)
