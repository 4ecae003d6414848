/* weights.cu: a text model's weights on a device, uploaded once per (model,
 * device, precision) and shared by every context using that triple: a list
 * of reference-counted sets under one mutex. Contexts never outlive their
 * model, so a set is freed (its refs reach 0) before the model's address can
 * be reused.
 *
 * A set is one cudaMalloc (the arena). GEMM weights arrive in the CPU GEMM's
 * panel layout (the model file's, kernels/sgemm.h) and are unpacked on the
 * host to the K x N row-major matrix cuBLAS reads, then stored in the operand
 * type: fp32 as they are; fp16/bf16 converted on the device from an fp32
 * staging copy (round to nearest even). Everything else stays fp32. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static gpu_weights *cache;

cudaDataType_t eng__gpu_op_type(eng_precision p)
{
    return p == ENG_PREC_FP16 ? CUDA_R_16F : p == ENG_PREC_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

cublasComputeType_t eng__gpu_compute_type(eng_precision p)
{
    return p == ENG_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

/* Places tensors in the arena. Run twice: with arena NULL it only measures
 * (used, the arena's size, and staging, the largest GEMM weight); then for
 * real. */
typedef struct {
    char *arena;
    size_t used;
    float *host;      /* host fp32, `staging_n` floats: the unpacked weight */
    float *staging;   /* device fp32, `staging_n` floats: fp16/bf16 only */
    size_t staging_n;
    cudaDataType_t op;
    void (*unpack)(const float *packed, int K, int N, float *W);   /* the model's */
} uploader;

static size_t align256(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

static eng_status put_f32(uploader *u, const float *src, size_t n, const float **dst, char *err,
                          size_t errlen)
{
    char *at = u->arena ? u->arena + u->used : NULL;
    u->used += align256(n * sizeof(float));
    if (!u->arena)
        return ENG_OK;
    CU_TRY(cudaMemcpy(at, src, n * sizeof(float), cudaMemcpyHostToDevice));
    *dst = (const float *)at;
    return ENG_OK;
}

static eng_status put_linear(uploader *u, const eng__gpu_linear_src *src, int K, int N,
                             gpu_linear *dst, char *err, size_t errlen)
{
    const size_t n = (size_t)K * N;
    const size_t esize = u->op == CUDA_R_32F ? 4 : 2;
    char *at = u->arena ? u->arena + u->used : NULL;
    u->used += align256(n * esize);
    dst->K = K;
    dst->N = N;
    if (!u->arena) {
        u->staging_n = n > u->staging_n ? n : u->staging_n;
    } else {
        /* A copy from pageable memory returns once its source has been read,
         * so one host buffer serves every weight. */
        u->unpack(src->w, K, N, u->host);
        if (u->op == CUDA_R_32F) {
            CU_TRY(cudaMemcpy(at, u->host, n * sizeof(float), cudaMemcpyHostToDevice));
        } else {
            /* The legacy default stream orders the copy after the previous
             * conversion, so one staging buffer serves every weight. */
            CU_TRY(cudaMemcpy(u->staging, u->host, n * sizeof(float), cudaMemcpyHostToDevice));
            CU_TRY(eng__gpu_convert(0, u->staging, at, n, u->op));
        }
    }
    dst->w = at;
    return put_f32(u, src->b, (size_t)N, &dst->b, err, errlen);
}

static eng_status layout(uploader *u, const eng__gpu_model_src *m, gpu_weights *w, char *err,
                         size_t errlen)
{
    const size_t H = (size_t)m->hidden;
    const int h = m->hidden, F = m->intermediate;
    eng_status s;
    if ((s = put_f32(u, m->word_emb, (size_t)m->vocab_size * H, &w->word_emb, err, errlen)) ||
        (s = put_f32(u, m->pos_emb, (size_t)m->max_positions * H, &w->pos_emb, err, errlen)) ||
        (s = put_f32(u, m->emb_ln_g, H, &w->emb_ln_g, err, errlen)) ||
        (s = put_f32(u, m->emb_ln_b, H, &w->emb_ln_b, err, errlen)))
        return s;
    for (int i = 0; i < m->layers; i++) {
        const eng__gpu_layer_src *ls = &m->layer[i];
        gpu_layer *L = &w->layer[i];
        if ((s = put_linear(u, &ls->qkv, h, 3 * h, &L->qkv, err, errlen)) ||
            (s = put_linear(u, &ls->attn_out, h, h, &L->attn_out, err, errlen)) ||
            (s = put_linear(u, &ls->ffn_in, h, F, &L->ffn_in, err, errlen)) ||
            (s = put_linear(u, &ls->ffn_out, F, h, &L->ffn_out, err, errlen)) ||
            (s = put_f32(u, ls->ln1_g, H, &L->ln1_g, err, errlen)) ||
            (s = put_f32(u, ls->ln1_b, H, &L->ln1_b, err, errlen)) ||
            (s = put_f32(u, ls->ln2_g, H, &L->ln2_g, err, errlen)) ||
            (s = put_f32(u, ls->ln2_b, H, &L->ln2_b, err, errlen)))
            return s;
    }
    if (m->head != ENG_GPU_HEAD_NONE &&
        ((s = put_linear(u, &m->head_dense, h, h, &w->head_dense, err, errlen)) ||
         (s = put_linear(u, &m->head_out, h, m->n_labels, &w->head_out, err, errlen))))
        return s;
    return ENG_OK;
}

/* Frees a set that is not (or no longer) in the list. Runs on teardown paths
 * with no caller to report to, so a failing cudaFree is ignored: the memory
 * is lost with the device anyway. */
static void free_set(gpu_weights *w)
{
    if (w->arena) {
        int cur = 0;
        if (cudaGetDevice(&cur) == cudaSuccess && cudaSetDevice(w->device) == cudaSuccess) {
            (void)cudaFree(w->arena);
            (void)cudaSetDevice(cur);
        }
    }
    free(w->layer);
    free(w);
}

/* The second pass of layout(), into a new arena; u->host is the caller's. */
static eng_status fill(uploader *u, const eng__gpu_model_src *m, gpu_weights *w, char *err,
                       size_t errlen)
{
    CU_TRY(cudaMalloc(&w->arena, u->used));
    if (u->op != CUDA_R_32F)
        CU_TRY(cudaMalloc((void **)&u->staging, u->staging_n * sizeof(float)));
    u->arena = (char *)w->arena;
    u->used = 0;
    eng_status s = layout(u, m, w, err, errlen);
    /* Contexts compute on their own non-blocking streams: the upload must be
     * complete before any of them reads it. */
    cudaError_t e = cudaDeviceSynchronize();
    if (u->staging)
        (void)cudaFree(u->staging); /* after the sync; an error here is reported by e */
    if (s)
        return s;
    CU_TRY(e);
    return ENG_OK;
}

static eng_status upload(const eng__gpu_model_src *m, gpu_weights *w, char *err, size_t errlen)
{
    uploader u = {NULL, 0, NULL, NULL, 0, eng__gpu_op_type(w->precision), m->unpack};
    eng_status s = layout(&u, m, w, err, errlen);
    if (s)
        return s;
    if (!(u.host = (float *)malloc(u.staging_n * sizeof(float))))
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    s = fill(&u, m, w, err, errlen);
    free(u.host);
    return s;
}

eng_status eng__gpu_weights_acquire(const eng__gpu_model_src *m, int device,
                                    eng_precision precision, gpu_weights **out, char *err,
                                    size_t errlen)
{
    *out = NULL;
    pthread_mutex_lock(&cache_lock);
    for (gpu_weights *w = cache; w; w = w->next) {
        if (w->key == m->key && w->device == device && w->precision == precision) {
            w->refs++;
            pthread_mutex_unlock(&cache_lock);
            *out = w;
            return ENG_OK;
        }
    }
    /* Uploading under the lock keeps a second worker on the same device from
     * uploading the same model again; it waits for this copy instead. */
    gpu_weights *w = (gpu_weights *)calloc(1, sizeof *w);
    eng_status s = ENG_ERR_NOMEM;
    if (w && (w->layer = (gpu_layer *)calloc((size_t)m->layers, sizeof *w->layer))) {
        w->key = m->key;
        w->device = device;
        w->precision = precision;
        w->refs = 1;
        s = upload(m, w, err, errlen);
    } else {
        eng__errf(s, err, errlen, "out of memory");
    }
    if (s == ENG_OK) {
        w->next = cache;
        cache = w;
        *out = w;
    } else if (w) {
        free_set(w);
    }
    pthread_mutex_unlock(&cache_lock);
    return s;
}

void eng__gpu_weights_release(gpu_weights *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&cache_lock);
    if (--w->refs > 0) {
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    for (gpu_weights **p = &cache; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    free_set(w);
}
