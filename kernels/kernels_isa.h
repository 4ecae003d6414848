/* kernels_isa.h: the per-ISA entry points that dispatch.c gathers into the
 * eng__kernels tables. Private to kernels/: everything else reaches them only
 * through kernels.h. Each function has the contract of the eng__kernels member
 * of the same name. */
#ifndef ENG_KERNELS_ISA_H
#define ENG_KERNELS_ISA_H

#include "kernels.h"

#define ENG_KERNELS_DECLARE(isa)                                                  \
    void eng__softmax_##isa(float *x, int rows, int n, int ld, float scale);      \
    int eng__argmax_##isa(const float *x, int n);                                 \
    void eng__layernorm_##isa(float *y, const float *x, const float *g,           \
                              const float *b, int rows, int n, float eps);        \
    void eng__bias_act_##isa(float *x, const float *bias, int rows, int n,        \
                             eng__act act);                                       \
    void eng__bias_residual_##isa(float *y, const float *bias, const float *res,  \
                                  int rows, int n);                               \
    void eng__attention_##isa(const float *q, const float *k, const float *v,     \
                              int ld, int S, int d, float scale, float *out,      \
                              int ldo, float *scratch);                          \
    void eng__wino2_input_##isa(const float *const *d, int c, float *v, size_t vs);   \
    void eng__wino2_output_##isa(const float *m, size_t ms, int c, const float *bias, \
                                 const float *const *res, float *const *y, int relu); \
    void eng__wino4_input_##isa(const float *const *d, int c, float *v, size_t vs);   \
    void eng__wino4_output_##isa(const float *m, size_t ms, int c, const float *bias, \
                                 const float *const *res, float *const *y, int relu); \
    void eng__resize_h_##isa(const uint8_t *src, size_t sstride, int rows, int w,      \
                             const int *bounds, const int32_t *k, int ksize,            \
                             uint8_t *dst, size_t dstride, int out);                    \
    void eng__resize_v_##isa(const uint8_t *src, size_t sstride, int n, const int32_t *k, \
                             uint8_t *dst, int len);

ENG_KERNELS_DECLARE(scalar)
ENG_KERNELS_DECLARE(avx2)
ENG_KERNELS_DECLARE(avx512)

#undef ENG_KERNELS_DECLARE

/* attention_bf16 where it is not the fp32 kernel: the scalar reference, and
 * the AVX512-BF16 kernel (which dispatch.c installs only where CPUID reports
 * the extension). */
void eng__attention_bf16_scalar(const float *q, const float *k, const float *v, int ld, int S,
                                int d, float scale, float *out, int ldo, float *scratch);
void eng__attention_bf16_avx512(const float *q, const float *k, const float *v, int ld, int S,
                                int d, float scale, float *out, int ldo, float *scratch);

#endif
