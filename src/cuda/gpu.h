/* gpu.h: what the CUDA backend's .cu files share: error checking with file
 * and line, the device weights and their cache (weights.cu), the context
 * (context.cu, forward.cu), and the kernel launchers (kernels.cu). Internal
 * to src/cuda/; compiled by nvcc as C++. */
#ifndef ENG_GPU_H
#define ENG_GPU_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda_backend.h"
extern "C" {
#include "error.h"
}

/* Reasons for a failed CUDA or cuBLAS call, with where it was made: the
 * status follows the error (out of memory, no device, else internal). */
eng_status eng__gpu_cuda_error(cudaError_t e, const char *call, const char *file, int line,
                               char *err, size_t errlen);
eng_status eng__gpu_cublas_error(cublasStatus_t e, const char *call, const char *file, int line,
                                 char *err, size_t errlen);

/* Every CUDA and cuBLAS call goes through one of these. They return from the
 * enclosing function, which returns eng_status and has `char *err, size_t
 * errlen` in scope. */
#define CU_TRY(call)                                                                          \
    do {                                                                                      \
        cudaError_t cu_e_ = (call);                                                           \
        if (cu_e_ != cudaSuccess)                                                             \
            return eng__gpu_cuda_error(cu_e_, #call, __FILE__, __LINE__, err, errlen);        \
    } while (0)
#define CUBLAS_TRY(call)                                                                      \
    do {                                                                                      \
        cublasStatus_t cb_e_ = (call);                                                        \
        if (cb_e_ != CUBLAS_STATUS_SUCCESS)                                                   \
            return eng__gpu_cublas_error(cb_e_, #call, __FILE__, __LINE__, err, errlen);      \
    } while (0)

/* A linear layer on the device: w is K x N row-major in the GEMM operand type
 * (fp32, fp16 or bf16), b is N fp32. */
typedef struct {
    const void *w;
    const float *b;
    int K, N;
} gpu_linear;

typedef struct {
    gpu_linear qkv, attn_out, ffn_in, ffn_out;
    const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
} gpu_layer;

/* One model's weights on one device in one operand type, in a single device
 * allocation (arena). Shared by every context with the same key, device and
 * precision; refs counts them (under the cache's mutex). */
typedef struct gpu_weights {
    const void *key;
    int device;
    eng_precision precision;
    int refs;
    struct gpu_weights *next;
    void *arena;
    const float *word_emb, *pos_emb, *emb_ln_g, *emb_ln_b;
    gpu_layer *layer;   /* host array [layers] of device pointers */
    gpu_linear head_dense, head_out;
} gpu_weights;

/* The operand type and cuBLAS compute type of a precision. */
cudaDataType_t eng__gpu_op_type(eng_precision p);
cublasComputeType_t eng__gpu_compute_type(eng_precision p);

/* Finds or uploads the weights of m for (device, precision); the current
 * device must be `device`. Release each acquired set once. */
eng_status eng__gpu_weights_acquire(const eng__gpu_model_src *m, int device,
                                    eng_precision precision, gpu_weights **out, char *err,
                                    size_t errlen);
void eng__gpu_weights_release(gpu_weights *w);

/* The context: everything one forward pass needs, sized once for T =
 * max_tokens packed tokens. Activations are fp32 [rows, width] row-major;
 * opx and qkvp hold GEMM operands in the operand type. */
struct eng__gpu_ctx {
    int device;
    eng_precision precision;
    cudaDataType_t op_type;
    cublasComputeType_t compute;
    size_t op_size;               /* bytes of one operand element */
    gpu_weights *w;
    int H, L, A, F, C, T;         /* hidden, layers, heads, intermediate, labels, max tokens */
    int act, head, pool_cls, normalize;
    float eps;

    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;                /* cuBLAS workspace, so it never allocates per call */

    int *d_ints;                  /* [4T]: token ids, positions, sequence offsets, lengths */
    int *d_labels;                /* [T] */
    float *h, *tmp, *attn;        /* [T, H] */
    float *qkv;                   /* [T, 3H] */
    float *ffn;                   /* [T, F] */
    float *pv;                    /* [T, H]: attention output, padded [g, A, S, d] */
    float *pooled, *pooled2;      /* [T, H]: head rows, logits, embeddings */
    float *scores;                /* [A T P]: padded [g, A, S, S] */
    void *probs_op;               /* [A T P] operand type; == scores for fp32 */
    void *qkvp;                   /* [3][T H] operand type: padded Q, K, V [g, A, S, d] */
    void *opx;                    /* [T, max(H, F)] operand type; NULL for fp32 */

    int *h_ints;                  /* pinned [4T] */
    float *h_out, *h_probs;       /* pinned [T H] */
    int *h_labels;                /* pinned [T] */
    int *grp;                     /* host [3T]: attention groups (first, count, S) */
};

/* Kernel launchers (kernels.cu). Each enqueues on stream and returns
 * cudaGetLastError(). Shapes are in each kernel's comment there. */
cudaError_t eng__gpu_embed_ln(cudaStream_t st, const int *ids, const int *pos, int T,
                              const float *word, const float *pos_emb, const float *g,
                              const float *b, int H, float eps, float *h);
cudaError_t eng__gpu_layernorm(cudaStream_t st, float *y, const float *x, const float *g,
                               const float *b, int rows, int n, float eps);
cudaError_t eng__gpu_bias_act(cudaStream_t st, float *x, const float *bias, int rows, int n,
                              int act);
cudaError_t eng__gpu_bias_residual(cudaStream_t st, float *y, const float *bias, const float *res,
                                   int rows, int n);
cudaError_t eng__gpu_convert(cudaStream_t st, const float *x, void *y, size_t n, cudaDataType_t t);
cudaError_t eng__gpu_gather_qkv(cudaStream_t st, const float *qkv, const int *off, const int *len,
                                int g, int S, int A, int d, void *qkvp, cudaDataType_t t);
cudaError_t eng__gpu_masked_softmax(cudaStream_t st, const float *scores, void *probs,
                                    const int *len, int g, int A, int S, cudaDataType_t t);
cudaError_t eng__gpu_scatter_heads(cudaStream_t st, const float *pv, const int *off,
                                   const int *len, int g, int S, int A, int d, float *attn);
cudaError_t eng__gpu_gather_rows(cudaStream_t st, const float *h, const int *off, int n, int H,
                                 float *out);
cudaError_t eng__gpu_pool(cudaStream_t st, const float *h, const int *off, const int *len, int n,
                          int H, int cls, int normalize, float *out);
cudaError_t eng__gpu_softmax_rows(cudaStream_t st, const float *x, float *y, int rows, int n);
cudaError_t eng__gpu_argmax_rows(cudaStream_t st, const float *x, int rows, int n, int *out);

#endif
