/* vmath_avx2.h: the 8-lane vocabulary of the AVX2 kernels (tail masks, loads
 * and stores, arithmetic, horizontal reductions), under the generic names
 * (vfloat, vadd, ...) that vmath_vec.h and the shared kernel bodies
 * (*_vec.h) are written in; then vmath_vec.h's exp, erf and activations.
 * Include only from *_avx2.c, which the Makefile builds with -mavx2 -mfma. */
#ifndef ENG_VMATH_AVX2_H
#define ENG_VMATH_AVX2_H

#include <float.h>
#include <immintrin.h>

#include "kernels.h"

typedef __m256 vfloat;
typedef __m256i vmask;   /* lanes set to all ones */
#define VLANES 8

/* Lanes [0, rem) set, for masked loads and stores of a tail of rem < 8 floats;
 * _mm256_maskload_ps never touches the memory of a clear lane. */
static inline __m256i tail_mask8(int rem)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline vmask vtail(int rem) { return tail_mask8(rem); }
static inline vfloat vload(const float *p) { return _mm256_loadu_ps(p); }
/* Clear lanes read as 0 and their memory is never touched. */
static inline vfloat vload_m(const float *p, vmask m) { return _mm256_maskload_ps(p, m); }
static inline void vstore(float *p, vfloat v) { _mm256_storeu_ps(p, v); }
static inline void vstore_m(float *p, vmask m, vfloat v) { _mm256_maskstore_ps(p, m, v); }
static inline vfloat vset1(float x) { return _mm256_set1_ps(x); }
static inline vfloat vzero(void) { return _mm256_setzero_ps(); }
static inline vfloat vadd(vfloat a, vfloat b) { return _mm256_add_ps(a, b); }
static inline vfloat vsub(vfloat a, vfloat b) { return _mm256_sub_ps(a, b); }
static inline vfloat vmul(vfloat a, vfloat b) { return _mm256_mul_ps(a, b); }
static inline vfloat vdiv(vfloat a, vfloat b) { return _mm256_div_ps(a, b); }
static inline vfloat vfmadd(vfloat a, vfloat b, vfloat c) { return _mm256_fmadd_ps(a, b, c); }
static inline vfloat vfnmadd(vfloat a, vfloat b, vfloat c) { return _mm256_fnmadd_ps(a, b, c); }
/* min(a, b) / max(a, b) return b when either is NaN. */
static inline vfloat vmin(vfloat a, vfloat b) { return _mm256_min_ps(a, b); }
static inline vfloat vmax(vfloat a, vfloat b) { return _mm256_max_ps(a, b); }
static inline vfloat vor(vfloat a, vfloat b) { return _mm256_or_ps(a, b); }
static inline vfloat vround(vfloat x)
{
    return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* 2^n for integral n in [-127, 127] (0 at -127), built in the exponent field. */
static inline vfloat vpow2(vfloat n)
{
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
static inline vmask vge(vfloat a, vfloat b)
{
    return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_GE_OQ));
}
/* m ? a : b, lane by lane. */
static inline vfloat vsel(vmask m, vfloat a, vfloat b)
{
    return _mm256_blendv_ps(b, a, _mm256_castsi256_ps(m));
}
static inline float vhsum(vfloat v) { return hsum8(v); }
static inline float vhmax(vfloat v) { return hmax8(v); }

#include "vmath_vec.h"

#endif
