/* vmath_avx2.h: 8-lane helpers for the AVX2 kernels: tail masks, horizontal
 * reductions, exp, erf and the activations. Include only from *_avx2.c, which
 * the Makefile builds with -mavx2 -mfma. NaN inputs give NaN outputs: every
 * clamp is written min(limit, x) / max(limit, x), and those instructions return
 * their second operand when either is NaN. */
#ifndef ENG_VMATH_AVX2_H
#define ENG_VMATH_AVX2_H

#include <float.h>
#include <immintrin.h>

#include "kernels.h"
#include "vmath_coef.h"

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

/* exp on 8 lanes; see vmath_coef.h for the method and its range. */
static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_set1_ps(VM_EXP_HI), x);
    x = _mm256_max_ps(_mm256_set1_ps(VM_EXP_LO), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(VM_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VM_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VM_LN2_LO), r);
    __m256 p = _mm256_set1_ps(VM_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VM_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VM_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VM_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VM_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VM_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* erf on 8 lanes; see vmath_coef.h. */
static inline __m256 erf8(__m256 x)
{
    __m256 c = _mm256_min_ps(_mm256_set1_ps(VM_ERF_CLAMP), x);
    c = _mm256_max_ps(_mm256_set1_ps(-VM_ERF_CLAMP), c);
    __m256 c2 = _mm256_mul_ps(c, c);
    __m256 p = _mm256_set1_ps(VM_ERF_A13);
    p = _mm256_fmadd_ps(p, c2, _mm256_set1_ps(VM_ERF_A11));
    p = _mm256_fmadd_ps(p, c2, _mm256_set1_ps(VM_ERF_A9));
    p = _mm256_fmadd_ps(p, c2, _mm256_set1_ps(VM_ERF_A7));
    p = _mm256_fmadd_ps(p, c2, _mm256_set1_ps(VM_ERF_A5));
    p = _mm256_fmadd_ps(p, c2, _mm256_set1_ps(VM_ERF_A3));
    p = _mm256_fmadd_ps(p, c2, _mm256_set1_ps(VM_ERF_A1));
    p = _mm256_mul_ps(p, c);
    __m256 q = _mm256_set1_ps(VM_ERF_B8);
    q = _mm256_fmadd_ps(q, c2, _mm256_set1_ps(VM_ERF_B6));
    q = _mm256_fmadd_ps(q, c2, _mm256_set1_ps(VM_ERF_B4));
    q = _mm256_fmadd_ps(q, c2, _mm256_set1_ps(VM_ERF_B2));
    q = _mm256_fmadd_ps(q, c2, _mm256_set1_ps(VM_ERF_B0));
    __m256 e = _mm256_max_ps(_mm256_set1_ps(-1.0f), _mm256_div_ps(p, q));
    return _mm256_min_ps(_mm256_set1_ps(1.0f), e);
}

/* x, except -inf becomes -FLT_MAX: the GELUs multiply x by a factor that is
 * exactly 0 far left, and -inf * 0 would be NaN where the limit is 0. */
static inline __m256 finite_left8(__m256 x)
{
    return _mm256_max_ps(_mm256_set1_ps(-FLT_MAX), x);
}

/* GELU, erf form: 0.5 x (1 + erf(x / sqrt 2)). */
static inline __m256 gelu_erf8(__m256 x)
{
    __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(VM_SQRT1_2)));
    __m256 h = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    return _mm256_mul_ps(finite_left8(x), h);
}

/* GELU, tanh form, as x sigmoid(v), v = 2u (vmath_coef.h). The sigmoid is
 * taken as (v >= 0 ? 1 : t) / (1 + t), t = exp(-|v|) in (0, 1], so exp never
 * overflows whatever x is. */
static inline __m256 gelu_tanh8(__m256 x)
{
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 v = _mm256_mul_ps(x, _mm256_fmadd_ps(_mm256_set1_ps(VM_GELU_K1), x2,
                                                _mm256_set1_ps(VM_GELU_K0)));
    __m256 t = exp8(_mm256_or_ps(v, _mm256_set1_ps(-0.0f)));
    __m256 pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
    __m256 num = _mm256_blendv_ps(t, _mm256_set1_ps(1.0f), pos);
    __m256 s = _mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), t));
    return _mm256_mul_ps(finite_left8(x), s);
}

/* ReLU; max(0, x) returns x for NaN and keeps -0 as -0, as the scalar does. */
static inline __m256 relu8(__m256 x)
{
    return _mm256_max_ps(_mm256_setzero_ps(), x);
}

/* The activation act (identity for ENG_ACT_NONE) on 8 lanes. */
static inline __m256 act8(__m256 v, eng__act act)
{
    switch (act) {
    case ENG_ACT_NONE: break;
    case ENG_ACT_GELU: return gelu_erf8(v);
    case ENG_ACT_GELU_TANH: return gelu_tanh8(v);
    case ENG_ACT_RELU: return relu8(v);
    }
    return v;
}

#endif
