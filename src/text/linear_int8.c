/* linear_int8.c: the int8 linear layer (see linear_int8.h for the scheme;
 * tools/convert/quantize.c packs its weights): the forward step quantizes
 * activation rows, runs the int8 GEMM of kernels/qgemm.h with the
 * dequantization fused in its epilogue, and finishes bias, activation or
 * residual while each row block is still in cache. One thread:
 * the forward pass's team (src/core/team.h) gives each member its own rows. */
#include <string.h>

#include "linear_int8.h"
#include "qgemm.h"

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

size_t eng__linear_int8_scratch_bytes(int M, int K)
{
    /* M rows of quantized activations, then M row scales. */
    return (size_t)M * (row_bytes(K) + sizeof(float));
}

/* Quantizes rows [r0, r1) of X into a (K bytes and 128 padding per row) and
 * sx. */
static void quantize_rows(const eng__qgemm_kernels *qk, const float *X, int K, int r0, int r1,
                          uint8_t *a, float *sx)
{
    const size_t lda = row_bytes(K);
    qk->quantize(X + (size_t)r0 * K, r1 - r0, K, a + (size_t)r0 * lda, lda, sx + r0);
    if (lda > (size_t)K)
        for (int r = r0; r < r1; r++)
            memset(a + (size_t)r * lda + K, 128, lda - (size_t)K);
}

void eng__linear_int8_run(const eng__linear *l, const float *X, int M, float *Y, const float *res,
                          eng__act act, void *scratch, const eng__kernels *kern, int p0, int p1)
{
    const eng__qgemm_kernels *qk = eng__qgemm_get();
    const size_t lda = row_bytes(l->K);
    uint8_t *a = scratch;
    /* lda is a multiple of 4 and scratch is 64-byte aligned: sx is float-aligned. */
    float *sx = (float *)(void *)(a + (size_t)M * lda);
    /* With neither activation nor residual the epilogue adds the bias;
     * otherwise the kernel table's pass adds it with the rest. */
    const int fused_bias = act == ENG_ACT_NONE && !res;
    const eng__qgemm_args g = {
        .a = a, .lda = lda, .b = l->wq, .k = l->K, .n = l->N, .sx = sx, .sw = l->wscale,
        .wsum = l->wsum, .bias = fused_bias ? l->b : NULL, .c = Y, .ldc = (size_t)l->N,
    };
    const int c0 = 16 * p0, cols = (16 * p1 < l->N ? 16 * p1 : l->N) - c0;
    if (cols <= 0)
        return;
    /* The finishing pass covers whole row blocks at once when the columns
     * are whole rows, else one row at a time. */
    const int whole = cols == l->N;
    /* Blocks as even as they can be: 200 rows are 4 x 50, not 3 x 64 + 8,
     * whose last block would stream all the weights again for 8 rows. */
    const int nblk = (M + ROW_BLOCK - 1) / ROW_BLOCK;
    for (int b = 0; b < nblk; b++) {
        const int r0 = (int)((int64_t)b * M / nblk), r1 = (int)((int64_t)(b + 1) * M / nblk);
        quantize_rows(qk, X, l->K, r0, r1, a, sx);
        eng__qgemm_run(qk, &g, r0, r1, p0, p1);
        if (act == ENG_ACT_NONE && !res)
            continue;
        for (int r = r0; r < r1; r += whole ? r1 - r0 : 1) {
            const int rows = whole ? r1 - r0 : 1;
            float *y = Y + (size_t)r * l->N + c0;
            if (act != ENG_ACT_NONE)
                kern->bias_act(y, l->b + c0, rows, cols, act);
            else
                kern->bias_residual(y, l->b + c0, res + (size_t)r * l->N + c0, rows, cols);
        }
    }
}
