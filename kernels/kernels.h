/* kernels.h: the hand-written kernel table. Each family has a scalar (the
 * fallback and the test reference), an AVX2 and an AVX-512 version, in
 * kernels/<family>_<isa>.c; dispatch.c picks one table once, from CPUID and
 * XGETBV, lowered by ENG_ISA=scalar|avx2|avx512. All rows are contiguous,
 * row-major, n floats wide (ld = n unless a stride is given); every kernel
 * handles any n >= 1 including the tail. */
#ifndef ENG_KERNELS_H
#define ENG_KERNELS_H

typedef enum { ENG_ISA_SCALAR = 0, ENG_ISA_AVX2 = 1, ENG_ISA_AVX512 = 2 } eng__isa;

typedef enum { ENG_ACT_GELU = 0, ENG_ACT_GELU_TANH = 1, ENG_ACT_RELU = 2 } eng__act;

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
} eng__kernels;

/* The table for the best ISA this CPU and ENG_ISA allow; detection runs once. */
const eng__kernels *eng__kernels_get(void);
/* The table for one ISA, or NULL when this CPU cannot run it (for tests). */
const eng__kernels *eng__kernels_for(eng__isa isa);
const char *eng__isa_str(eng__isa isa);
/* The ISA that ENG_ISA's value env selects when the CPU can run up to best:
 * "scalar", "avx2" or "avx512" (any case), never above best; NULL, an unknown
 * value or one above best gives best. Exposed so tests can check the rule
 * without re-running detection. */
eng__isa eng__isa_parse_override(const char *env, eng__isa best);

#endif
