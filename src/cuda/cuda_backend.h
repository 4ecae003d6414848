/* cuda_backend.h: the C interface of the CUDA backend (the .cu files in
 * src/cuda/), built as its own library, build/libengine-cuda.so, which only
 * it links cuBLAS and the CUDA runtime into. src/cuda/cuda_dispatch.c loads
 * it with dlopen() when a CUDA context is first asked for, so no binary links
 * CUDA and one build runs anywhere. The library exports one symbol,
 * eng__cuda_backend, the table below. Plain C types, no CUDA headers, so the
 * C side never needs the CUDA toolkit's headers and the .cu files never need
 * the engine's internal headers (text.h pulls in C11-only code nvcc's C++
 * front end would not take), nor link any of its code but src/core/error.c.
 *
 * Weights are uploaded once per (model, device, precision) and shared by all
 * contexts that use that triple (src/cuda/weights.cu, a reference-counted list
 * under a mutex); each context owns its stream, cuBLAS handle, activations and
 * pinned host buffers, all sized once at creation. */
#ifndef ENG_CUDA_BACKEND_H
#define ENG_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One fp32 linear layer in host memory: w is K x N in the panel layout of
 * kernels/sgemm.h ([ceil(N/16)][K][16], as the model file stores it), b is
 * N. */
typedef struct {
    const float *w, *b;
} eng__gpu_linear_src;

typedef struct {
    eng__gpu_linear_src qkv, attn_out, ffn_in, ffn_out;
    const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
} eng__gpu_layer_src;

/* Activation and head codes; the activations equal eng__act's values. */
enum { ENG_GPU_ACT_GELU = 0, ENG_GPU_ACT_GELU_TANH = 1, ENG_GPU_ACT_RELU = 2, ENG_GPU_ACT_TANH = 3,
       ENG_GPU_ACT_NONE = 4 };
enum { ENG_GPU_HEAD_NONE = 0, ENG_GPU_HEAD_BERT_POOLER = 1, ENG_GPU_HEAD_DISTILBERT = 2 };

/* A text model as the backend sees it: sizes, and fp32 tensors in host
 * memory (the mapped model file), read only during eng__gpu_ctx_create. */
typedef struct {
    const void *key;   /* identity of the model for the weight cache */
    int hidden, layers, heads, intermediate, max_positions, vocab_size, n_labels;
    int act;           /* ENG_GPU_ACT_GELU, _GELU_TANH or _RELU */
    float ln_eps;
    int head;          /* ENG_GPU_HEAD_* */
    int pool_cls;      /* embeddings: 1 = the [CLS] row, 0 = the mean of all rows */
    int normalize;     /* embeddings are L2-normalised */
    const float *word_emb;   /* [vocab_size, hidden] */
    const float *pos_emb;    /* [max_positions, hidden] */
    const float *emb_ln_g, *emb_ln_b;
    const eng__gpu_layer_src *layer;   /* [layers] */
    eng__gpu_linear_src head_dense, head_out;   /* when head != NONE */
    /* eng__sgemm_unpack (kernels/sgemm.h): the panel layout to K x N, passed
     * in so the backend links none of the CPU kernels. */
    void (*unpack)(const float *packed, int K, int N, float *W);
} eng__gpu_model_src;

typedef struct eng__gpu_ctx eng__gpu_ctx;

/* The device list or why none is usable, computed once; never NULL. */
const char *eng__gpu_info(void);

/* A context for sequences of at most max_tokens tokens in all (max_tokens >=
 * max_positions) on CUDA device `device`, GEMMs in `precision`. Uploads the
 * weights unless another context already holds them. ENG_ERR_NO_DEVICE when
 * the device is absent or unusable; the reason, with the failing call's file
 * and line, goes to err. */
eng_status eng__gpu_ctx_create(const eng__gpu_model_src *m, int device, eng_precision precision,
                               int max_tokens, eng__gpu_ctx **out, char *err, size_t errlen);
void eng__gpu_ctx_destroy(eng__gpu_ctx *g);   /* NULL is fine */

/* Runs n valid sequences (total ids <= max_tokens, n * n_labels <= max_tokens
 * * hidden) through the encoder and then the classifier head (want_logits) or
 * the pooling. Row j of the results goes to row index[j] of the caller's
 * arrays: out (n_labels or hidden floats a row), probs and labels (classify
 * only; each may be NULL). Returns ENG_ERR_INTERNAL with the failing call's
 * file and line in err when CUDA or cuBLAS fails. */
eng_status eng__gpu_run(eng__gpu_ctx *g, const eng_seq *seqs, int n, int want_logits,
                        const int *index, float *out, float *probs, int *labels, char *err,
                        size_t errlen);

/* The backend's entry points, as the library exports them. abi is
 * ENG__GPU_ABI, checked at load: a backend built from other sources than the
 * engine loading it is refused rather than called. */
#define ENG__GPU_ABI 1
typedef struct {
    int abi;
    const char *(*info)(void);
    eng_status (*ctx_create)(const eng__gpu_model_src *m, int device, eng_precision precision,
                             int max_tokens, eng__gpu_ctx **out, char *err, size_t errlen);
    void (*ctx_destroy)(eng__gpu_ctx *g);
    eng_status (*run)(eng__gpu_ctx *g, const eng_seq *seqs, int n, int want_logits,
                      const int *index, float *out, float *probs, int *labels, char *err,
                      size_t errlen);
} eng__gpu_backend;

/* Defined in context.cu; looked up by name with dlsym(). */
extern const eng__gpu_backend eng__cuda_backend;

#ifdef __cplusplus
}
#endif

#endif
