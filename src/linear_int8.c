/* linear_int8.c: the int8 linear layer (see linear_int8.h for the scheme):
 * the weight quantizer and packer used by the converter, and the forward
 * step, which quantizes activation rows, runs the int8 GEMM of kernels/qgemm.h
 * with the dequantization fused in its epilogue, and finishes bias,
 * activation or residual while each row block is still in cache, on 2
 * threads. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "error.h"
#include "linear_int8.h"
#include "qgemm.h"

/* Threads per layer: the fp32 path gives OpenBLAS 2 as well. */
enum { N_THREADS = 2 };
/* Below this many multiply-adds a second thread costs more than it saves. */
#define MIN_PARALLEL_MACS (1L << 22)
/* Rows quantized, multiplied and finished together, so the activation bytes
 * and the output block are reused from L2. */
enum { ROW_BLOCK = 64 };

static size_t row_bytes(int K) { return (size_t)(K + 3) / 4 * 4; }

size_t eng__quantized_weight_bytes(int K, int N)
{
    if (K < 1 || K > ENG_QGEMM_MAX_K || N < 1)
        return 0;
    return (size_t)(N + 15) / 16 * row_bytes(K) * 16;
}

eng_status eng__quantize_weights(const float *w, int K, int N, int8_t *wq, float *scale,
                                 int32_t *wsum)
{
    size_t bytes = eng__quantized_weight_bytes(K, N);
    if (!w || !wq || !scale || bytes == 0)
        return eng__fail(ENG_ERR_INVALID_ARG, "quantize: bad %d x %d weight matrix", K, N);
    for (int n = 0; n < N; n++)
        scale[n] = 0.0f;
    /* Row by row, so the K x N matrix is read in order. */
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++) {
            float v = w[(size_t)k * N + n];
            if (!isfinite(v))
                return eng__fail(ENG_ERR_INVALID_ARG, "quantize: weight [%d,%d] is not finite",
                                 k, n);
            scale[n] = fmaxf(scale[n], fabsf(v));
        }
    for (int n = 0; n < N; n++)
        scale[n] /= 127.0f;
    memset(wq, 0, bytes);
    if (wsum)
        memset(wsum, 0, (size_t)N * sizeof *wsum);
    const size_t k4 = row_bytes(K) / 4;
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++) {
            /* In double, so the rounding error stays within scale/2 exactly;
             * an all-zero column has scale 0 and quantizes to 0. */
            long q = scale[n] > 0.0f ? lrint((double)w[(size_t)k * N + n] / scale[n]) : 0;
            q = q < -127 ? -127 : q > 127 ? 127 : q;
            wq[(((size_t)(n / 16) * k4 + (size_t)k / 4) * 16 + (size_t)n % 16) * 4 + k % 4] =
                (int8_t)q;
            if (wsum)
                wsum[n] += (int32_t)q;
        }
    return ENG_OK;
}

size_t eng__linear_int8_scratch_bytes(int M, int K)
{
    /* M rows of quantized activations, then M row scales. */
    return (size_t)M * (row_bytes(K) + sizeof(float));
}

/* One thread's share: rows [m0, m1) x panels [p0, p1). quantize and finish
 * say whether this share quantizes its rows and applies bias/act/res (only
 * when it owns whole rows). */
typedef struct {
    const eng__linear *l;
    const eng__qgemm_kernels *qk;
    const eng__kernels *kern;
    const float *X, *res;
    float *Y;
    uint8_t *a;
    float *sx;
    int act, m0, m1, p0, p1, quantize, finish;
} part;

static void quantize_rows(const part *p, int r0, int r1)
{
    const int K = p->l->K;
    const size_t lda = row_bytes(K);
    p->qk->quantize(p->X + (size_t)r0 * K, r1 - r0, K, p->a + (size_t)r0 * lda, lda, p->sx + r0);
    if (lda > (size_t)K)
        for (int r = r0; r < r1; r++)
            memset(p->a + (size_t)r * lda + K, 128, lda - (size_t)K);
}

/* Bias and activation, or bias and residual, on rows [r0, r1); the bias was
 * already added by the GEMM epilogue when there is neither. */
static void finish_rows(const part *p, int r0, int r1)
{
    const int N = p->l->N;
    float *y = p->Y + (size_t)r0 * N;
    if (p->act >= 0)
        p->kern->bias_act(y, p->l->b, r1 - r0, N, (eng__act)p->act);
    else if (p->res)
        p->kern->bias_residual(y, p->l->b, p->res + (size_t)r0 * N, r1 - r0, N);
}

static void *run_part(void *arg)
{
    const part *p = arg;
    const eng__linear *l = p->l;
    const int fused_bias = p->act < 0 && !p->res;
    const eng__qgemm_args g = {
        .a = p->a, .lda = row_bytes(l->K), .b = l->wq, .k = l->K, .n = l->N,
        .sx = p->sx, .sw = l->wscale, .wsum = l->wsum, .bias = fused_bias ? l->b : NULL,
        .c = p->Y, .ldc = (size_t)l->N,
    };
    for (int r0 = p->m0; r0 < p->m1; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < p->m1 ? r0 + ROW_BLOCK : p->m1;
        if (p->quantize)
            quantize_rows(p, r0, r1);
        eng__qgemm_run(p->qk, &g, r0, r1, p->p0, p->p1);
        if (p->finish)
            finish_rows(p, r0, r1);
    }
    return NULL;
}

void eng__linear_int8_run(const eng__linear *l, const float *X, int M, float *Y, const float *res,
                          int act, void *scratch, const eng__kernels *kern)
{
    if (M <= 0)
        return;
    const int panels = (l->N + 15) / 16;
    part parts[N_THREADS];
    const part whole = {
        .l = l, .qk = eng__qgemm_get(), .kern = kern, .X = X, .res = res, .Y = Y,
        .a = scratch, .sx = (float *)((uint8_t *)scratch + (size_t)M * row_bytes(l->K)),
        .act = act, .m0 = 0, .m1 = M, .p0 = 0, .p1 = panels, .quantize = 1, .finish = 1,
    };
    int n_parts = (double)M * l->N * l->K < (double)MIN_PARALLEL_MACS ? 1 : N_THREADS;
    /* Split the rows when there are enough for every thread to fill whole
     * row blocks; otherwise split the columns, quantizing and finishing the
     * (few) rows on this thread around the parallel GEMM. */
    const int by_rows = M >= n_parts * ROW_BLOCK;
    if (!by_rows && panels < n_parts)
        n_parts = 1;
    for (int t = 0; t < n_parts; t++) {
        parts[t] = whole;
        if (n_parts == 1)
            break;
        if (by_rows) {
            parts[t].m0 = (int)((long)M * t / n_parts);
            parts[t].m1 = (int)((long)M * (t + 1) / n_parts);
        } else {
            parts[t].p0 = panels * t / n_parts;
            parts[t].p1 = panels * (t + 1) / n_parts;
            parts[t].quantize = parts[t].finish = 0;
        }
    }
    if (n_parts > 1 && !by_rows)
        quantize_rows(&whole, 0, M);
    pthread_t tid[N_THREADS];
    int started[N_THREADS] = {0};
    for (int t = 1; t < n_parts; t++)
        started[t] = pthread_create(&tid[t], NULL, run_part, &parts[t]) == 0;
    run_part(&parts[0]);
    /* A thread that could not start has its share run here instead. */
    for (int t = 1; t < n_parts; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            run_part(&parts[t]);
    }
    if (n_parts > 1 && !by_rows)
        finish_rows(&whole, 0, M);
}
