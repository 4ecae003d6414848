/* vmath_coef.h: the constants of the vectorised exp, erf and GELU shared by
 * vmath_avx2.h and vmath_avx512.h, so both ISAs compute the same
 * approximations. The scalar kernels use libm instead and serve as the
 * reference the vector kernels are tested against. */
#ifndef ENG_VMATH_COEF_H
#define ENG_VMATH_COEF_H

/* exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 split in two
 * parts (Cody-Waite) so r is exact; exp(r) on |r| <= ln2/2 by the Cephes expf
 * polynomial 1 + r + r^2 P(r), about 1 ulp. Arguments are clamped to
 * [EXP_LO, EXP_HI] so that n + 127 stays within [0, 254]: at n = -127 the
 * built power of two is 0, which flushes results below FLT_MIN to zero. */
#define VM_EXP_HI 88.0f
#define VM_EXP_LO (-88.0f)
#define VM_LOG2E 1.44269504088896341f
#define VM_LN2_HI 0.693359375f
#define VM_LN2_LO (-2.12194440e-4f)
#define VM_EXP_P0 1.9875691500e-4f
#define VM_EXP_P1 1.3981999507e-3f
#define VM_EXP_P2 8.3334519073e-3f
#define VM_EXP_P3 4.1665795894e-2f
#define VM_EXP_P4 1.6666665459e-1f
#define VM_EXP_P5 5.0000001201e-1f

/* erf(x) = x A(x^2) / B(x^2) on x clamped to [-4, 4] (the rational
 * approximation Eigen and XLA use; absolute error ~3.4e-7). The result is then
 * clamped to [-1, 1]: the rational overshoots 1 by an ulp on [3.71, 4], which
 * would make 0.5 x (1 + erf(x / sqrt 2)) positive for some negative x. At the
 * input clamp it gives +-1 exactly (1 - erf(4) = 1.5e-8 rounds away), so GELU
 * of any x below -4 sqrt 2 is exactly -0. */
#define VM_ERF_CLAMP 4.0f
#define VM_ERF_A1 (-1.60960333262415e-02f)
#define VM_ERF_A3 (-2.95459980854025e-03f)
#define VM_ERF_A5 (-7.34990630326855e-04f)
#define VM_ERF_A7 (-5.69250639462346e-05f)
#define VM_ERF_A9 (-2.10102402082508e-06f)
#define VM_ERF_A11 2.77068142495902e-08f
#define VM_ERF_A13 (-2.72614225801306e-10f)
#define VM_ERF_B0 (-1.42647390514189e-02f)
#define VM_ERF_B2 (-7.37332916720468e-03f)
#define VM_ERF_B4 (-1.68282697438203e-03f)
#define VM_ERF_B6 (-2.13374055278905e-04f)
#define VM_ERF_B8 (-1.45660718464996e-05f)

#define VM_SQRT1_2 0.70710678118654752f

/* GELU, tanh form: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
 * is computed as x * sigmoid(2u) (the same function), which never subtracts
 * nearly equal numbers and never overflows: 2u = x (K0 + K1 x^2). */
#define VM_GELU_K0 1.5957691216057308f    /* 2 sqrt(2/pi) */
#define VM_GELU_K1 0.07135481627260025f   /* 2 sqrt(2/pi) 0.044715 */

/* quick_gelu (CLIP's activation): x sigmoid(K x). */
#define VM_QUICK_GELU_K 1.702f

#endif
