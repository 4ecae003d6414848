/* vmath_avx512.h: 16-lane helpers for the AVX-512 kernels: tail masks, exp,
 * erf and the activations, the same approximations as vmath_avx2.h. Include
 * only from *_avx512.c, which the Makefile builds with -mavx512f/bw/vl/dq and
 * -mfma. NaN inputs give NaN outputs: every clamp is written min(limit, x) /
 * max(limit, x), and those instructions return their second operand when either
 * is NaN. */
#ifndef ENG_VMATH_AVX512_H
#define ENG_VMATH_AVX512_H

#include <float.h>
#include <immintrin.h>

#include "kernels.h"
#include "vmath_coef.h"

/* Lanes [0, rem) set, for a tail of rem < 16 floats; masked-off lanes of a
 * masked load are never read, so the tail never touches memory past n. */
static inline __mmask16 tail_mask16(int rem)
{
    return (__mmask16)((1u << rem) - 1u);
}

/* exp on 16 lanes; see vmath_coef.h for the method and its range. */
static inline __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(VM_EXP_HI), x);
    x = _mm512_max_ps(_mm512_set1_ps(VM_EXP_LO), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(VM_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VM_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VM_LN2_LO), r);
    __m512 p = _mm512_set1_ps(VM_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VM_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VM_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VM_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VM_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VM_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* erf on 16 lanes; see vmath_coef.h. */
static inline __m512 erf16(__m512 x)
{
    __m512 c = _mm512_min_ps(_mm512_set1_ps(VM_ERF_CLAMP), x);
    c = _mm512_max_ps(_mm512_set1_ps(-VM_ERF_CLAMP), c);
    __m512 c2 = _mm512_mul_ps(c, c);
    __m512 p = _mm512_set1_ps(VM_ERF_A13);
    p = _mm512_fmadd_ps(p, c2, _mm512_set1_ps(VM_ERF_A11));
    p = _mm512_fmadd_ps(p, c2, _mm512_set1_ps(VM_ERF_A9));
    p = _mm512_fmadd_ps(p, c2, _mm512_set1_ps(VM_ERF_A7));
    p = _mm512_fmadd_ps(p, c2, _mm512_set1_ps(VM_ERF_A5));
    p = _mm512_fmadd_ps(p, c2, _mm512_set1_ps(VM_ERF_A3));
    p = _mm512_fmadd_ps(p, c2, _mm512_set1_ps(VM_ERF_A1));
    p = _mm512_mul_ps(p, c);
    __m512 q = _mm512_set1_ps(VM_ERF_B8);
    q = _mm512_fmadd_ps(q, c2, _mm512_set1_ps(VM_ERF_B6));
    q = _mm512_fmadd_ps(q, c2, _mm512_set1_ps(VM_ERF_B4));
    q = _mm512_fmadd_ps(q, c2, _mm512_set1_ps(VM_ERF_B2));
    q = _mm512_fmadd_ps(q, c2, _mm512_set1_ps(VM_ERF_B0));
    __m512 e = _mm512_max_ps(_mm512_set1_ps(-1.0f), _mm512_div_ps(p, q));
    return _mm512_min_ps(_mm512_set1_ps(1.0f), e);
}

/* x, except -inf becomes -FLT_MAX: the GELUs multiply x by a factor that is
 * exactly 0 far left, and -inf * 0 would be NaN where the limit is 0. */
static inline __m512 finite_left16(__m512 x)
{
    return _mm512_max_ps(_mm512_set1_ps(-FLT_MAX), x);
}

/* GELU, erf form: 0.5 x (1 + erf(x / sqrt 2)). */
static inline __m512 gelu_erf16(__m512 x)
{
    __m512 e = erf16(_mm512_mul_ps(x, _mm512_set1_ps(VM_SQRT1_2)));
    __m512 h = _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    return _mm512_mul_ps(finite_left16(x), h);
}

/* GELU, tanh form, as x sigmoid(v), v = 2u (vmath_coef.h). The sigmoid is
 * taken as (v >= 0 ? 1 : t) / (1 + t), t = exp(-|v|) in (0, 1], so exp never
 * overflows whatever x is. */
static inline __m512 gelu_tanh16(__m512 x)
{
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 v = _mm512_mul_ps(x, _mm512_fmadd_ps(_mm512_set1_ps(VM_GELU_K1), x2,
                                                _mm512_set1_ps(VM_GELU_K0)));
    __m512 t = exp16(_mm512_or_ps(v, _mm512_set1_ps(-0.0f)));
    __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ);
    __m512 num = _mm512_mask_mov_ps(t, pos, _mm512_set1_ps(1.0f));
    __m512 s = _mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0f), t));
    return _mm512_mul_ps(finite_left16(x), s);
}

/* ReLU; max(0, x) returns x for NaN and keeps -0 as -0, as the scalar does. */
static inline __m512 relu16(__m512 x)
{
    return _mm512_max_ps(_mm512_setzero_ps(), x);
}

/* The activation act (identity for ENG_ACT_NONE) on 16 lanes. */
static inline __m512 act16(__m512 v, eng__act act)
{
    switch (act) {
    case ENG_ACT_NONE: break;
    case ENG_ACT_GELU: return gelu_erf16(v);
    case ENG_ACT_GELU_TANH: return gelu_tanh16(v);
    case ENG_ACT_RELU: return relu16(v);
    }
    return v;
}

#endif
