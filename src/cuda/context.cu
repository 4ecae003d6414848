/* context.cu: the CUDA context (stream, cuBLAS handle, device activations,
 * pinned host buffers, all allocated once), the device list behind
 * eng_cuda_info(), and the error reports of failed CUDA/cuBLAS calls. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

#define BLAS_WORKSPACE (32u << 20) /* what cuBLAS recommends for Hopper */

static eng_status status_of(cudaError_t e)
{
    switch (e) {
    case cudaErrorMemoryAllocation:
        return ENG_ERR_NOMEM;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
        return ENG_ERR_NO_DEVICE;
    default:
        return ENG_ERR_INTERNAL;
    }
}

eng_status eng__gpu_cuda_error(cudaError_t e, const char *call, const char *file, int line,
                               char *err, size_t errlen)
{
    return eng__errf(status_of(e), err, errlen, "%s:%d: %s (%s) in %s", file, line,
                     cudaGetErrorString(e), cudaGetErrorName(e), call);
}

eng_status eng__gpu_cublas_error(cublasStatus_t e, const char *call, const char *file, int line,
                                 char *err, size_t errlen)
{
    eng_status s = e == CUBLAS_STATUS_ALLOC_FAILED ? ENG_ERR_NOMEM
                   : e == CUBLAS_STATUS_NOT_INITIALIZED ? ENG_ERR_NO_DEVICE
                                                        : ENG_ERR_INTERNAL;
    return eng__errf(s, err, errlen, "%s:%d: %s (%s) in %s", file, line, cublasGetStatusString(e),
                     cublasGetStatusName(e), call);
}

/* ---- eng_cuda_info -------------------------------------------------------- */

static char info_text[1024];
static pthread_once_t info_once = PTHREAD_ONCE_INIT;

static void make_info(void)
{
    size_t at = 0, cap = sizeof info_text;
#define ADD(...) (at += (size_t)snprintf(info_text + at, at < cap ? cap - at : 0, __VA_ARGS__))
    int rt = 0, drv = 0, n = 0;
    if (cudaRuntimeGetVersion(&rt) == cudaSuccess)
        ADD("CUDA runtime %d.%d", rt / 1000, rt % 1000 / 10);
    if (cudaDriverGetVersion(&drv) == cudaSuccess && drv > 0)
        ADD(", driver %d.%d", drv / 1000, drv % 1000 / 10);
    else
        ADD(", no CUDA driver");
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        ADD(": no usable device (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        return;
    }
    if (n == 0)
        ADD(": no device");
    for (int d = 0; d < n && at < cap; d++) {
        cudaDeviceProp p;
        if ((e = cudaGetDeviceProperties(&p, d)) != cudaSuccess)
            ADD("%s %d: %s", d ? ";" : ":", d, cudaGetErrorString(e));
        else
            ADD("%s %d: %s (sm_%d%d, %.0f GiB)", d ? ";" : ":", d, p.name, p.major, p.minor,
                (double)p.totalGlobalMem / (1u << 30));
    }
#undef ADD
}

const char *eng__gpu_info(void)
{
    pthread_once(&info_once, make_info);
    return info_text;
}

/* ---- Context -------------------------------------------------------------- */

static eng_status create(eng__gpu_ctx *g, const eng__gpu_model_src *m, char *err, size_t errlen)
{
    const size_t T = (size_t)g->T, H = (size_t)g->H, F = (size_t)g->F;
    const size_t P = (size_t)m->max_positions, A = (size_t)g->A, os = g->op_size;
    CU_TRY(cudaSetDevice(g->device));
    eng_status s = eng__gpu_weights_acquire(m, g->device, g->precision, &g->w, err, errlen);
    if (s)
        return s;
    CU_TRY(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
    CUBLAS_TRY(cublasCreate(&g->blas));
    CUBLAS_TRY(cublasSetStream(g->blas, g->stream));
    CU_TRY(cudaMalloc(&g->blas_ws, BLAS_WORKSPACE));
    CUBLAS_TRY(cublasSetWorkspace(g->blas, g->blas_ws, BLAS_WORKSPACE));
    /* FP32 must not silently become TF32: the compute type says which. */
    CUBLAS_TRY(cublasSetMathMode(g->blas, CUBLAS_DEFAULT_MATH));

    CU_TRY(cudaMalloc((void **)&g->d_ints, 4 * T * sizeof(int)));
    CU_TRY(cudaMalloc((void **)&g->d_labels, T * sizeof(int)));
    CU_TRY(cudaMalloc((void **)&g->h, T * H * sizeof(float)));
    CU_TRY(cudaMalloc((void **)&g->tmp, T * H * sizeof(float)));
    CU_TRY(cudaMalloc((void **)&g->attn, T * H * sizeof(float)));
    CU_TRY(cudaMalloc((void **)&g->qkv, 3 * T * H * sizeof(float)));
    CU_TRY(cudaMalloc((void **)&g->ffn, T * F * sizeof(float)));
    CU_TRY(cudaMalloc((void **)&g->pv, T * H * sizeof(float)));
    CU_TRY(cudaMalloc((void **)&g->pooled, T * H * sizeof(float)));
    CU_TRY(cudaMalloc((void **)&g->pooled2, T * H * sizeof(float)));
    CU_TRY(cudaMalloc((void **)&g->scores, A * T * P * sizeof(float)));
    CU_TRY(cudaMalloc(&g->qkvp, 3 * T * H * os));
    if (g->op_type == CUDA_R_32F) {
        g->probs_op = g->scores; /* the softmax runs in place */
    } else {
        CU_TRY(cudaMalloc(&g->probs_op, A * T * P * os));
        CU_TRY(cudaMalloc(&g->opx, T * (F > H ? F : H) * os));
    }
    CU_TRY(cudaMallocHost((void **)&g->h_ints, 4 * T * sizeof(int)));
    CU_TRY(cudaMallocHost((void **)&g->h_out, T * H * sizeof(float)));
    CU_TRY(cudaMallocHost((void **)&g->h_probs, T * H * sizeof(float)));
    CU_TRY(cudaMallocHost((void **)&g->h_labels, T * sizeof(int)));
    if (!(g->grp = (int *)malloc(3 * T * sizeof(int))))
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    return ENG_OK;
}

eng_status eng__gpu_ctx_create(const eng__gpu_model_src *m, int device, eng_precision precision,
                               int max_tokens, eng__gpu_ctx **out, char *err, size_t errlen)
{
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        return eng__errf(ENG_ERR_NO_DEVICE, err, errlen, "no usable CUDA device (%s)",
                         e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    if (device >= n)
        return eng__errf(ENG_ERR_NO_DEVICE, err, errlen, "no CUDA device %d: %d present", device,
                         n);
    if (max_tokens < m->max_positions || m->hidden % m->heads)
        return eng__errf(ENG_ERR_INVALID_ARG, err, errlen, "bad context size");
    eng__gpu_ctx *g = (eng__gpu_ctx *)calloc(1, sizeof *g);
    if (!g)
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    g->device = device;
    g->precision = precision;
    g->op_type = eng__gpu_op_type(precision);
    g->compute = eng__gpu_compute_type(precision);
    g->op_size = g->op_type == CUDA_R_32F ? 4 : 2;
    g->H = m->hidden;
    g->L = m->layers;
    g->A = m->heads;
    g->F = m->intermediate;
    g->C = m->n_labels;
    g->T = max_tokens;
    g->act = m->act;
    g->head = m->head;
    g->pool_cls = m->pool_cls;
    g->normalize = m->normalize;
    g->eps = m->ln_eps;
    eng_status s = create(g, m, err, errlen);
    if (s) {
        eng__gpu_ctx_destroy(g);
        return s;
    }
    *out = g;
    return ENG_OK;
}

/* Teardown has no caller to report to: failures here are ignored (a device
 * that fails to free is already lost). */
void eng__gpu_ctx_destroy(eng__gpu_ctx *g)
{
    if (!g)
        return;
    (void)cudaSetDevice(g->device);
    if (g->stream)
        (void)cudaStreamSynchronize(g->stream);
    if (g->blas)
        (void)cublasDestroy(g->blas);
    if (g->stream)
        (void)cudaStreamDestroy(g->stream);
    void *dev[] = {g->blas_ws, g->d_ints, g->d_labels, g->h,      g->tmp,     g->attn, g->qkv,
                   g->ffn,     g->pv,     g->pooled,   g->pooled2, g->scores, g->qkvp, g->opx};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i])
            (void)cudaFree(dev[i]);
    if (g->probs_op && g->probs_op != g->scores)
        (void)cudaFree(g->probs_op);
    void *host[] = {g->h_ints, g->h_out, g->h_probs, g->h_labels};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        if (host[i])
            (void)cudaFreeHost(host[i]);
    eng__gpu_weights_release(g->w);
    free(g->grp);
    free(g);
}

/* The library's one exported symbol (cuda_backend.h). */
__attribute__((visibility("default"))) const eng__gpu_backend eng__cuda_backend = {
    ENG__GPU_ABI, eng__gpu_info, eng__gpu_ctx_create, eng__gpu_ctx_destroy, eng__gpu_run};
