/* blas.h: OpenBLAS's sgemm, the alternative GEMM of the fp32 linear layers
 * (eng_gemm in engine.h; the built-in packed GEMM of kernels/sgemm.h is the
 * default). src/core/blas.c loads OpenBLAS at run time so that it can select
 * OpenBLAS's AVX-512 kernels on CPUs the library's own detection misses.
 * Row-major, like cblas with CblasRowMajor. */
#ifndef ENG_BLAS_H
#define ENG_BLAS_H

#include "engine.h"

/* Loads the BLAS once per process (thread-safe). */
eng_status eng__blas_init(char *err, size_t errlen);

/* C[M,N] = alpha * op(A) * op(B) + beta * C, row-major.
 * op(A) is M x K (A is K x M when trans_a), op(B) is K x N. */
void eng__sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta,
                float *C, int ldc);

/* e.g. "OpenBLAS 0.3.21 (SkylakeX)" */
const char *eng__blas_name(void);

#endif
