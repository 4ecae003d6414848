/* vmath_vec.h: exp, erf and the activations on a vector register, written
 * once in the generic vocabulary (vfloat, vadd, ...) that vmath_avx2.h and
 * vmath_avx512.h define before including this file; the constants are
 * vmath_coef.h's, so both ISAs compute the same approximations. NaN inputs
 * give NaN outputs: every clamp is written vmin(limit, x) / vmax(limit, x),
 * which return x when either is NaN. */
#ifndef ENG_VMATH_VEC_H
#define ENG_VMATH_VEC_H

#include "vmath_coef.h"

/* exp; see vmath_coef.h for the method and its range. */
static inline vfloat vexp(vfloat x)
{
    x = vmin(vset1(VM_EXP_HI), x);
    x = vmax(vset1(VM_EXP_LO), x);
    vfloat n = vround(vmul(x, vset1(VM_LOG2E)));
    vfloat r = vfnmadd(n, vset1(VM_LN2_HI), x);
    r = vfnmadd(n, vset1(VM_LN2_LO), r);
    vfloat p = vset1(VM_EXP_P0);
    p = vfmadd(p, r, vset1(VM_EXP_P1));
    p = vfmadd(p, r, vset1(VM_EXP_P2));
    p = vfmadd(p, r, vset1(VM_EXP_P3));
    p = vfmadd(p, r, vset1(VM_EXP_P4));
    p = vfmadd(p, r, vset1(VM_EXP_P5));
    p = vfmadd(p, vmul(r, r), vadd(r, vset1(1.0f)));
    return vmul(p, vpow2(n));
}

/* erf; see vmath_coef.h. */
static inline vfloat verf(vfloat x)
{
    vfloat c = vmin(vset1(VM_ERF_CLAMP), x);
    c = vmax(vset1(-VM_ERF_CLAMP), c);
    vfloat c2 = vmul(c, c);
    vfloat p = vset1(VM_ERF_A13);
    p = vfmadd(p, c2, vset1(VM_ERF_A11));
    p = vfmadd(p, c2, vset1(VM_ERF_A9));
    p = vfmadd(p, c2, vset1(VM_ERF_A7));
    p = vfmadd(p, c2, vset1(VM_ERF_A5));
    p = vfmadd(p, c2, vset1(VM_ERF_A3));
    p = vfmadd(p, c2, vset1(VM_ERF_A1));
    p = vmul(p, c);
    vfloat q = vset1(VM_ERF_B8);
    q = vfmadd(q, c2, vset1(VM_ERF_B6));
    q = vfmadd(q, c2, vset1(VM_ERF_B4));
    q = vfmadd(q, c2, vset1(VM_ERF_B2));
    q = vfmadd(q, c2, vset1(VM_ERF_B0));
    vfloat e = vmax(vset1(-1.0f), vdiv(p, q));
    return vmin(vset1(1.0f), e);
}

/* x, except -inf becomes -FLT_MAX: the GELUs multiply x by a factor that is
 * exactly 0 far left, and -inf * 0 would be NaN where the limit is 0. */
static inline vfloat vfinite_left(vfloat x)
{
    return vmax(vset1(-FLT_MAX), x);
}

/* GELU, erf form: 0.5 x (1 + erf(x / sqrt 2)). */
static inline vfloat vgelu_erf(vfloat x)
{
    vfloat e = verf(vmul(x, vset1(VM_SQRT1_2)));
    vfloat h = vmul(vset1(0.5f), vadd(vset1(1.0f), e));
    return vmul(vfinite_left(x), h);
}

/* GELU, tanh form, as x sigmoid(v), v = 2u (vmath_coef.h). The sigmoid is
 * taken as (v >= 0 ? 1 : t) / (1 + t), t = exp(-|v|) in (0, 1], so exp never
 * overflows whatever x is. */
static inline vfloat vgelu_tanh(vfloat x)
{
    vfloat x2 = vmul(x, x);
    vfloat v = vmul(x, vfmadd(vset1(VM_GELU_K1), x2, vset1(VM_GELU_K0)));
    vfloat t = vexp(vor(v, vset1(-0.0f)));
    vfloat num = vsel(vge(v, vzero()), vset1(1.0f), t);
    vfloat s = vdiv(num, vadd(vset1(1.0f), t));
    return vmul(vfinite_left(x), s);
}

/* quick_gelu (CLIP): x sigmoid(1.702 x), the sigmoid taken as in
 * vgelu_tanh so exp never overflows. */
static inline vfloat vquick_gelu(vfloat x)
{
    vfloat v = vmul(x, vset1(VM_QUICK_GELU_K));
    vfloat t = vexp(vor(v, vset1(-0.0f)));
    vfloat num = vsel(vge(v, vzero()), vset1(1.0f), t);
    vfloat s = vdiv(num, vadd(vset1(1.0f), t));
    return vmul(vfinite_left(x), s);
}

/* ReLU; max(0, x) returns x for NaN and keeps -0 as -0, as the scalar does. */
static inline vfloat vrelu(vfloat x)
{
    return vmax(vzero(), x);
}

/* The activation act (identity for ENG_ACT_NONE). */
static inline vfloat vact(vfloat v, eng__act act)
{
    switch (act) {
    case ENG_ACT_NONE: break;
    case ENG_ACT_GELU: return vgelu_erf(v);
    case ENG_ACT_GELU_TANH: return vgelu_tanh(v);
    case ENG_ACT_RELU: return vrelu(v);
    case ENG_ACT_QUICK_GELU: return vquick_gelu(v);
    }
    return v;
}

#endif
