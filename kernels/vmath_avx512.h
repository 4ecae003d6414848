/* vmath_avx512.h: the 16-lane vocabulary of the AVX-512 kernels (tail masks,
 * loads and stores, arithmetic, horizontal reductions), under the generic
 * names (vfloat, vadd, ...) that vmath_vec.h and the shared kernel bodies
 * (*_vec.h) are written in; then vmath_vec.h's exp, erf and activations.
 * Include only from *_avx512.c, which the Makefile builds with
 * -mavx512f/bw/vl/dq and -mfma. */
#ifndef ENG_VMATH_AVX512_H
#define ENG_VMATH_AVX512_H

#include <float.h>
#include <immintrin.h>

#include "kernels.h"

typedef __m512 vfloat;
typedef __mmask16 vmask;
#define VLANES 16

/* Lanes [0, rem) set, for a tail of rem < 16 floats; masked-off lanes of a
 * masked load are never read, so the tail never touches memory past n. */
static inline __mmask16 tail_mask16(int rem)
{
    return (__mmask16)((1u << rem) - 1u);
}

static inline vmask vtail(int rem) { return tail_mask16(rem); }
static inline vfloat vload(const float *p) { return _mm512_loadu_ps(p); }
/* Clear lanes read as 0 and their memory is never touched. */
static inline vfloat vload_m(const float *p, vmask m) { return _mm512_maskz_loadu_ps(m, p); }
static inline void vstore(float *p, vfloat v) { _mm512_storeu_ps(p, v); }
static inline void vstore_m(float *p, vmask m, vfloat v) { _mm512_mask_storeu_ps(p, m, v); }
static inline vfloat vset1(float x) { return _mm512_set1_ps(x); }
static inline vfloat vzero(void) { return _mm512_setzero_ps(); }
static inline vfloat vadd(vfloat a, vfloat b) { return _mm512_add_ps(a, b); }
static inline vfloat vsub(vfloat a, vfloat b) { return _mm512_sub_ps(a, b); }
static inline vfloat vmul(vfloat a, vfloat b) { return _mm512_mul_ps(a, b); }
static inline vfloat vdiv(vfloat a, vfloat b) { return _mm512_div_ps(a, b); }
static inline vfloat vfmadd(vfloat a, vfloat b, vfloat c) { return _mm512_fmadd_ps(a, b, c); }
static inline vfloat vfnmadd(vfloat a, vfloat b, vfloat c) { return _mm512_fnmadd_ps(a, b, c); }
/* min(a, b) / max(a, b) return b when either is NaN. */
static inline vfloat vmin(vfloat a, vfloat b) { return _mm512_min_ps(a, b); }
static inline vfloat vmax(vfloat a, vfloat b) { return _mm512_max_ps(a, b); }
static inline vfloat vor(vfloat a, vfloat b) { return _mm512_or_ps(a, b); }
static inline vfloat vround(vfloat x)
{
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* 2^n for integral n in [-127, 127] (0 at -127), built in the exponent field. */
static inline vfloat vpow2(vfloat n)
{
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
static inline vmask vge(vfloat a, vfloat b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
/* m ? a : b, lane by lane. */
static inline vfloat vsel(vmask m, vfloat a, vfloat b) { return _mm512_mask_mov_ps(b, m, a); }
static inline float vhsum(vfloat v) { return _mm512_reduce_add_ps(v); }
static inline float vhmax(vfloat v) { return _mm512_reduce_max_ps(v); }

#include "vmath_vec.h"

#endif
