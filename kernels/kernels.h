/* kernels.h: the hand-written kernel table. Each family has a scalar (the
 * fallback and the test reference), an AVX2 and an AVX-512 version, in
 * kernels/<family>_<isa>.c; dispatch.c picks one table once, from what
 * kernels/cpu.c detects, lowered by ENG_ISA=scalar|avx2|avx512|amx. All rows are contiguous,
 * row-major, n floats wide (ld = n unless a stride is given); every kernel
 * handles any n >= 1 including the tail. */
#ifndef ENG_KERNELS_H
#define ENG_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ENG_ISA_AMX: the AVX-512 kernels, and the GEMMs on Intel's AMX tiles. */
typedef enum { ENG_ISA_SCALAR = 0, ENG_ISA_AVX2 = 1, ENG_ISA_AVX512 = 2, ENG_ISA_AMX = 3 } eng__isa;

/* ENG_ACT_NONE: no activation (a layer's epilogue takes one optionally). */
typedef enum {
    ENG_ACT_NONE = -1,
    ENG_ACT_GELU = 0,
    ENG_ACT_GELU_TANH = 1,
    ENG_ACT_RELU = 2,
    ENG_ACT_QUICK_GELU = 3   /* x sigmoid(1.702 x): CLIP's quick_gelu */
} eng__act;

typedef struct {
    eng__isa isa;
    /* x[rows][ld]: x[r][0..n) = softmax(scale * x[r][0..n)), in place. */
    void (*softmax)(float *x, int rows, int n, int ld, float scale);
    /* Index of the largest of x[0..n); the first one on ties; NaN never wins
     * over a number. */
    int (*argmax)(const float *x, int n);
    /* y[r] = (x[r] - mean) / sqrt(var + eps) * g + b for rows of n; y may be x. */
    void (*layernorm)(float *y, const float *x, const float *g, const float *b,
                      int rows, int n, float eps);
    /* x[r][i] = act(x[r][i] + bias[i]) for rows of n; GELU in erf form,
     * GELU tanh form (gelu_new), or ReLU. */
    void (*bias_act)(float *x, const float *bias, int rows, int n, eng__act act);
    /* y[r][i] = y[r][i] + bias[i] + res[r][i]; res may be NULL (bias only). */
    void (*bias_residual)(float *y, const float *bias, const float *res, int rows, int n);
    /* One attention head over one sequence of S tokens, fused:
     *   out[i][0..d) = sum_j softmax_j(scale * q_i . k_j) v_j,  i, j in [0, S).
     * q, k, v: [S][ld] each, the first d floats of every row used (ld >= d;
     * in the forward pass they are column blocks of one qkv matrix). out:
     * [S][ldo], only the first d floats of each of the S rows written.
     * scratch: ENG_ATTENTION_SCRATCH(S, d) floats, 64-byte aligned, clobbered.
     * Any S >= 1 and d >= 1. Finite inputs give finite outputs; a row with a
     * non-finite score has no meaningful result (NaN in practice). */
    void (*attention)(const float *q, const float *k, const float *v, int ld, int S, int d,
                      float scale, float *out, int ldo, float *scratch);
    /* The same contract as attention, with the scores at bfloat16
     * precision: q and k may be rounded to bf16 (8 significant bits, to
     * nearest even) before they are multiplied, the products summed in fp32;
     * the softmax and P V stay fp32. For the int8 models, whose linear layers
     * are far coarser. The scalar version rounds exactly so and is the
     * reference; AVX-512 with AVX512-BF16 uses VDPBF16PS, two products per
     * lane per instruction; elsewhere (AVX2, AVX-512 without the extension)
     * this is the fp32 kernel, since emulating the rounding would only make
     * it slower. */
    void (*attention_bf16)(const float *q, const float *k, const float *v, int ld, int S, int d,
                           float scale, float *out, int ldo, float *scratch);
    /* The transforms of Winograd's F(m x m, 3 x 3) convolution
     * (src/vision/conv_winograd.c), [0] for m = 2 and [1] for m = 4, over c
     * channels, with a = m + 2 the patch edge; every ISA does the same
     * arithmetic in the same order (no fused multiply-add), so all agree bit
     * for bit.
     * wino_input: the a x a input patch d (element (i, j) of every channel at
     *   d[a i + j][0..c)) to v[x * vs + ch] = (B^T d B)[x], x < a*a row-major.
     * wino_output: from m[x * ms + ch], x < a*a, the m x m output A^T m A;
     *   its pixel k (row-major) goes to y[k][ch] = relu?(Y[k] + bias[ch]
     *   (+ res[k][ch])), written only where y[k] is not NULL (pixels past the
     *   edge of the map); res NULL, or res[k] read where y[k] is written. */
    void (*wino_input[2])(const float *const *d, int c, float *v, size_t vs);
    void (*wino_output[2])(const float *m, size_t ms, int c, const float *bias,
                           const float *const *res, float *const *y, int relu);
    /* The two passes of Pillow's 8-bit resampling (ImagingResample, 22
     * fraction bits; src/vision/image.c plans the taps), on uint8 RGB:
     *   clip8(v) = 0 for v <= 0, 255 for v >= 255 << 22, else v >> 22;
     *   sums start at 1 << 21 and are int32 that wrap, as Pillow's do in
     *   practice, so every ISA's pixels agree bit for bit whatever the taps.
     * resize_h: the horizontal pass over `rows` source rows src[r * sstride
     *   + 3 x + c], x < w, c < 3, to dst[r * dstride + 3 j + c], j < out:
     *   clip8(sum over t < n_j of src[.. 3 (x_j + t) + c] * k[j * ksize + t]),
     *   x_j = bounds[2 j], n_j = bounds[2 j + 1], x_j + n_j <= w, n_j <=
     *   ksize. Reads no byte outside the w pixels of a row.
     * resize_v: one output row of the vertical pass: dst[i] = clip8(sum over
     *   t < n of src[t * sstride + i] * k[t]), i < len. */
    void (*resize_h)(const uint8_t *src, size_t sstride, int rows, int w, const int *bounds,
                     const int32_t *k, int ksize, uint8_t *dst, size_t dstride, int out);
    void (*resize_v)(const uint8_t *src, size_t sstride, int n, const int32_t *k, uint8_t *dst,
                     int len);
} eng__kernels;

/* Floats of scratch either attention kernel needs for S keys of width d,
 * with Sp = S rounded up to a multiple of 16 (so every panel and row starts
 * on a cache line when scratch does): K^T (d x Sp, in panels of 16 keys; half
 * that in bf16) and the scores of a block of 8 query rows [8][Sp], and for
 * bf16 the block's queries (at most 4 d + 124; see attention_avx512.c). A
 * multiple of 16, and non-decreasing in S and d, so a buffer sized for the
 * largest S serves every shorter sequence. */
#define ENG_ATTENTION_SCRATCH(S, d)                                                         \
    ((size_t)(((S) + 15) & ~15) * (size_t)((d) + 8) + 16 * (size_t)(d) + 128)

/* The table for the best ISA this CPU and ENG_ISA allow; detection runs once. */
const eng__kernels *eng__kernels_get(void);
/* The table for one ISA, or NULL when this CPU cannot run it (for tests). */
const eng__kernels *eng__kernels_for(eng__isa isa);
const char *eng__isa_str(eng__isa isa);
/* The ISA that ENG_ISA's value env selects when the CPU can run up to best:
 * "scalar", "avx2", "avx512" or "amx" (any case), never above best; NULL, an unknown
 * value or one above best gives best. Exposed so tests can check the rule
 * without re-running detection. */
eng__isa eng__isa_parse_override(const char *env, eng__isa best);

#endif
