/* linear.h: one linear layer, Y[M,N] = X[M,K] W + b, in whatever form the
 * model file stores it: fp32 weights in the panel layout of the fused GEMM of
 * kernels/sgemm.h, int8 weights (per output channel scales, activations
 * quantized per row) for the VNNI kernels. Both are views of the mapped file;
 * nothing is allocated or repacked at bind (unless the model asks for the
 * OpenBLAS GEMM). The forward pass only calls eng__linear_run(). */
#ifndef ENG_LINEAR_H
#define ENG_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "bgemm.h"
#include "format.h"
#include "kernels.h"

typedef struct {
    int K, N;                 /* in and out features */
    eng__dtype dtype;         /* as the file stores "<name>.w": ENG_DT_F32,
                               * ENG_DT_BF16 (convert --dtype bf16) or ENG_DT_I8 */
    const float *packed;      /* F32: "<name>.w", [ceil(N/16)][K][16] as kernels/sgemm.h
                               * packs it; BF16: the same widened, made by
                               * eng__linear_prepare for fp32 contexts, owned */
    const int8_t *wq;         /* I8: layout owned by src/text/linear_int8.c ("<name>.w") */
    const float *wscale;      /* I8: N per-output-channel scales ("<name>.w.scale") */
    const int32_t *wsum;      /* I8: optional per-channel column sums ("<name>.w.sum") */
    const float *b;           /* N ("<name>.b") */
    float *w_blas;            /* F32 on OpenBLAS: W [K,N] unpacked at load, owned */
    const eng__bf16 *wb;      /* BF16: "<name>.w", packed as kernels/bgemm.h says;
                               * F32: the same rounded, made by
                               * eng__linear_prepare for bf16 contexts, owned */
    void *owned;              /* the one of packed and wb made by eng__linear_prepare */
} eng__linear;

/* Binds the tensors "<prefix>.w", "<prefix>.b" (and the int8 extras) of f to
 * l, checking shapes against K and N; l points into f, which must outlive it. */
eng_status eng__linear_bind(eng__linear *l, const eng__file *f, const char *prefix, int K, int N,
                            char *err, size_t errlen);

/* Switches an fp32 layer to the OpenBLAS GEMM: unpacks its weights into an
 * owned [K,N] copy (eng__blas_init must have succeeded). No-op for int8. */
eng_status eng__linear_use_blas(eng__linear *l, char *err, size_t errlen);
/* Makes the weights a context of precision bf16 (l->wb) or fp32 (l->packed)
 * runs from the stored ones, when the file stores the other (no-op for int8
 * and when they exist). */
eng_status eng__linear_prepare(eng__linear *l, int bf16, char *err, size_t errlen);
/* Frees what eng__linear_use_blas and eng__linear_prepare allocated; safe on
 * any bound layer. */
void eng__linear_release(eng__linear *l);

/* Y = X W + b, plus res (M x N, may be NULL), then act when act != ENG_ACT_NONE (else no
 * activation; res and act are never both given). bk: a bf16 context's GEMM
 * unit (l->wb prepared), NULL for fp32; int8 layers ignore it. scratch must
 * hold eng__linear_scratch_bytes(l, M, bk != NULL) bytes. */
void eng__linear_run(const eng__linear *l, const float *X, int M, float *Y, const float *res,
                     eng__act act, void *scratch, const eng__kernels *kern,
                     const eng__bgemm_kernels *bk);
/* The same for the columns of 16-column panels [p0, p1) only (columns
 * [16 p0, min(16 p1, N)) of Y; the rest of Y untouched): how team members
 * share a layer between them when the batch has too few rows to split (each
 * then streams only its part of the weights). */
void eng__linear_run_cols(const eng__linear *l, const float *X, int M, float *Y,
                          const float *res, eng__act act, void *scratch, const eng__kernels *kern,
                          const eng__bgemm_kernels *bk, int p0, int p1);
size_t eng__linear_scratch_bytes(const eng__linear *l, int M, int bf16);

#endif
