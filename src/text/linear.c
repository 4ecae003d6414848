/* linear.c: binding a linear layer's tensors and running it. The fp32 form
 * runs kernels/sgemm.h on the weights as the file stores them (already
 * packed by the converter), with the bias/residual/activation fused into the
 * GEMM's stores; the int8 form is in linear_int8.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "linear.h"
#include "linear_int8.h"
#include "sgemm.h"

static const eng__file_tensor *find(const eng__file *f, const char *prefix, const char *suffix)
{
    char name[ENG_FILE_NAME_MAX];
    if ((size_t)snprintf(name, sizeof name, "%s%s", prefix, suffix) >= sizeof name)
        return NULL;
    return eng__file_find(f, name);
}

static int is_shape(const eng__file_tensor *t, eng__dtype dt, int ndim, uint64_t d0, uint64_t d1)
{
    return t && t->dtype == (uint32_t)dt && t->ndim == (uint32_t)ndim && t->shape[0] == d0 &&
           (ndim < 2 || t->shape[1] == d1);
}

/* The int8 form: "<prefix>.w" packed (linear_int8.h), ".w.scale", ".w.sum". */
static eng_status bind_int8(eng__linear *l, const eng__file *f, const char *prefix,
                            const eng__file_tensor *w, char *err, size_t errlen)
{
    const eng__file_tensor *scale = find(f, prefix, ".w.scale");
    const eng__file_tensor *sum = find(f, prefix, ".w.sum");
    size_t bytes = eng__quantized_weight_bytes(l->K, l->N);
    if (bytes == 0 || w->ndim != 1 || w->nbytes != bytes) {
        snprintf(err, errlen, "tensor %s.w should be I8 [%zu] (packed %dx%d)", prefix, bytes, l->K,
                 l->N);
        return ENG_ERR_FORMAT;
    }
    if (!is_shape(scale, ENG_DT_F32, 1, (uint64_t)l->N, 0) ||
        !is_shape(sum, ENG_DT_I32, 1, (uint64_t)l->N, 0)) {
        snprintf(err, errlen, "int8 tensor %s.w needs %s.w.scale F32 [%d] and %s.w.sum I32 [%d]",
                 prefix, prefix, l->N, prefix, l->N);
        return ENG_ERR_FORMAT;
    }
    l->dtype = ENG_DT_I8;
    l->wq = eng__file_data(f, w);
    l->wscale = eng__file_data(f, scale);
    l->wsum = eng__file_data(f, sum);
    return ENG_OK;
}

eng_status eng__linear_bind(eng__linear *l, const eng__file *f, const char *prefix, int K, int N,
                            char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    l->K = K;
    l->N = N;
    const eng__file_tensor *w = find(f, prefix, ".w");
    const eng__file_tensor *b = find(f, prefix, ".b");
    if (!w || !b) {
        snprintf(err, errlen, "missing tensor %s.%c", prefix, w ? 'b' : 'w');
        return ENG_ERR_FORMAT;
    }
    if (!is_shape(b, ENG_DT_F32, 1, (uint64_t)N, 0)) {
        snprintf(err, errlen, "tensor %s.b should be F32 [%d]", prefix, N);
        return ENG_ERR_FORMAT;
    }
    l->b = eng__file_data(f, b);
    if (w->dtype == ENG_DT_I8)
        return bind_int8(l, f, prefix, w, err, errlen);
    const uint64_t n16 = ((uint64_t)N + 15) / 16;
    if (w->dtype == ENG_DT_BF16) {
        const uint64_t kp2 = (uint64_t)eng__bgemm_kp(K) / 2;
        if (w->ndim != 3 || w->shape[0] != n16 || w->shape[1] != kp2 || w->shape[2] != 32) {
            snprintf(err, errlen, "tensor %s.w should be BF16 [%llu,%llu,32] (%dx%d packed)",
                     prefix, (unsigned long long)n16, (unsigned long long)kp2, K, N);
            return ENG_ERR_FORMAT;
        }
        l->dtype = ENG_DT_BF16;
        l->wb = eng__file_data(f, w);
        return ENG_OK;
    }
    if (w->dtype != ENG_DT_F32) {
        snprintf(err, errlen, "tensor %s.w has dtype %s, which this build cannot run", prefix,
                 eng__dtype_name((eng__dtype)w->dtype));
        return ENG_ERR_UNSUPPORTED;
    }
    if (w->ndim != 3 || w->shape[0] != n16 || w->shape[1] != (uint64_t)K || w->shape[2] != 16) {
        snprintf(err, errlen, "tensor %s.w should be F32 [%llu,%d,16] (%dx%d packed)", prefix,
                 (unsigned long long)n16, K, K, N);
        return ENG_ERR_FORMAT;
    }
    l->dtype = ENG_DT_F32;
    l->packed = eng__file_data(f, w);
    return ENG_OK;
}

eng_status eng__linear_use_blas(eng__linear *l, char *err, size_t errlen)
{
    if (l->dtype != ENG_DT_F32 || l->w_blas)
        return ENG_OK;
    size_t bytes = ((size_t)l->K * (size_t)l->N * sizeof(float) + 63) & ~(size_t)63;
    if (!(l->w_blas = aligned_alloc(64, bytes))) {
        snprintf(err, errlen, "out of memory unpacking a %dx%d weight for OpenBLAS", l->K, l->N);
        return ENG_ERR_NOMEM;
    }
    eng__sgemm_unpack(l->packed, l->K, l->N, l->w_blas);
    return ENG_OK;
}

eng_status eng__linear_prepare(eng__linear *l, int bf16, char *err, size_t errlen)
{
    if (l->dtype == ENG_DT_I8 || (bf16 ? l->wb != NULL : l->packed != NULL))
        return ENG_OK;
    const size_t bytes =
        bf16 ? eng__bgemm_packed_bytes(l->K, l->N) : eng__sgemm_packed_bytes(l->K, l->N);
    if (!(l->owned = aligned_alloc(64, bytes))) {
        snprintf(err, errlen, "out of memory converting a %dx%d weight to %s", l->K, l->N,
                 bf16 ? "bf16" : "fp32");
        return ENG_ERR_NOMEM;
    }
    if (bf16) {
        eng__bgemm_pack(l->packed, l->K, l->N, l->owned);
        l->wb = l->owned;
    } else {
        eng__bgemm_unpack(l->wb, l->K, l->N, l->owned);
        l->packed = l->owned;
    }
    return ENG_OK;
}

void eng__linear_release(eng__linear *l)
{
    free(l->w_blas);
    l->w_blas = NULL;
    free(l->owned);
    l->owned = NULL;
}

size_t eng__linear_scratch_bytes(const eng__linear *l, int M, int bf16)
{
    if (l->dtype == ENG_DT_I8)
        return eng__linear_int8_scratch_bytes(M, l->K);
    return bf16 ? eng__bgemm_scratch_bytes(M, l->K) : 0;
}

void eng__linear_run(const eng__linear *l, const float *X, int M, float *Y, const float *res,
                     eng__act act, void *scratch, const eng__kernels *kern,
                     const eng__bgemm_kernels *bk)
{
    eng__linear_run_cols(l, X, M, Y, res, act, scratch, kern, bk, 0, (l->N + 15) / 16);
}

void eng__linear_run_cols(const eng__linear *l, const float *X, int M, float *Y,
                          const float *res, eng__act act, void *scratch, const eng__kernels *kern,
                          const eng__bgemm_kernels *bk, int p0, int p1)
{
    if (l->dtype == ENG_DT_I8) {
        eng__linear_int8_run(l, X, M, Y, res, act, scratch, kern, p0, p1);
        return;
    }
    const int c0 = 16 * p0, cols = (16 * p1 < l->N ? 16 * p1 : l->N) - c0;
    if (cols <= 0)
        return;
    if (bk) {
        /* The packed panels [p0, p1) are a K x cols matrix of their own. */
        eng__bgemm(bk, X, M, l->K, (size_t)l->K, l->wb + (size_t)p0 * eng__bgemm_kp(l->K) * 16,
                   cols, Y + c0, (size_t)l->N, l->b + c0, res ? res + c0 : NULL, act, scratch);
        return;
    }
    if (l->w_blas) {
        /* OpenBLAS: the GEMM, then bias (+ res) or bias + act in one pass,
         * row by row unless the columns are whole rows. */
        eng__sgemm(0, 0, M, cols, l->K, 1.0f, X, l->K, l->w_blas + c0, l->N, 0.0f, Y + c0, l->N);
        const int whole = cols == l->N, rows = whole ? M : 1;
        for (int r = 0; r < M; r += rows) {
            float *y = Y + (size_t)r * l->N + c0;
            if (act != ENG_ACT_NONE)
                kern->bias_act(y, l->b + c0, rows, cols, act);
            else
                kern->bias_residual(y, l->b + c0, res ? res + (size_t)r * l->N + c0 : NULL, rows,
                                    cols);
        }
        return;
    }
    /* Y[M,N] = act(X[M,K] W[K,N] + b (+ res)) in one pass; the GEMM's ISA
     * follows the caller's kernel table. Panel p of the packed weights starts
     * at p K 16 floats. */
    eng__sgemm_packed(eng__sgemm_for(kern->isa), X, M, l->K, (size_t)l->K,
                      l->packed + (size_t)p0 * l->K * 16, cols, Y + c0, (size_t)l->N, l->b + c0,
                      res ? res + c0 : NULL, act);
}
