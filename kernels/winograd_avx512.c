/* winograd_avx512.c: the Winograd transforms (kernels.h) on 16 channels per
 * register (AVX-512F); the body is winograd_vec.h's, the arithmetic and its
 * order winograd_scalar.c's (bit for bit the same).
 *
 * Shapes (a = m + 2): input d[a*a][c] to v[a*a][vs]; output m[a*a][ms] to
 * y[m*m][c]. */
#include <stddef.h>

#include "kernels_isa.h"
#include "vmath_avx512.h"

#define VEC __m512
#define LANES 16
#define MASK __mmask16
#define MASK_FOR(rem) tail_mask16(rem)
#define ALL ((__mmask16)0xffff)
#define LOAD(p, k) _mm512_maskz_loadu_ps(k, p)
#define STORE(p, k, v) _mm512_mask_storeu_ps(p, k, v)
#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define MUL _mm512_mul_ps
#define SET1 _mm512_set1_ps
#define RELU vrelu
#include "winograd_vec.h"

WINO_ENTRY_POINTS(avx512)
