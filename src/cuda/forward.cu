/* forward.cu: the BERT/DistilBERT forward pass on the GPU, step for step the
 * one in src/text/forward.c and the heads of src/text/api.c.
 *
 * Sequences are packed back to back as on the CPU: token t of the chunk is
 * row t of every [T, *] activation, and the linear layers run as one GEMM
 * over all rows. Attention runs on padded groups of consecutive sequences:
 * a group of g sequences, padded to its longest S (g * S <= T), is gathered
 * into [g, A, S, d] Q, K, V, and two strided-batched GEMMs over its g * A
 * (sequence, head) pairs give the scores and the outputs; the softmax masks
 * the padded keys, so no sequence sees another or its padding. Results are
 * the CPU's within rounding; cuBLAS may pick other kernels for other batch
 * shapes, so a sequence's result can differ in the last bits between
 * batches (never beyond the tolerance the tests state).
 *
 * GEMM operands are in the context's operand type (fp32, or fp16/bf16
 * converted just before the GEMM) and the GEMMs accumulate and write fp32;
 * everything between GEMMs is fp32. */
#include <math.h>
#include <string.h>

#include "gpu.h"

/* Y[M,N] = X[M,K] W[K,N], row-major, X and W in the operand type, Y fp32.
 * cuBLAS is column-major: the row-major X, W, Y are the column-major X^T
 * (K x M, ld K), W^T (N x K, ld N), Y^T (N x M, ld N), and Y^T = W^T X^T. */
static eng_status gemm(eng__gpu_ctx *g, int M, int N, int K, const void *X, const void *W, float *Y,
                       char *err, size_t errlen)
{
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_TRY(cublasGemmEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one, W, g->op_type, N, X,
                            g->op_type, K, &zero, Y, CUDA_R_32F, N, g->compute,
                            CUBLAS_GEMM_DEFAULT));
    return ENG_OK;
}

/* Y[M,N] = act(X W + b) or X W + b + res, as eng__linear_run. */
static eng_status linear(eng__gpu_ctx *g, const gpu_linear *l, const float *X, int M, float *Y,
                         const float *res, int act, char *err, size_t errlen)
{
    const void *x = X;
    if (g->op_type != CUDA_R_32F) {
        CU_TRY(eng__gpu_convert(g->stream, X, g->opx, (size_t)M * l->K, g->op_type));
        x = g->opx;
    }
    eng_status s = gemm(g, M, l->N, l->K, x, l->w, Y, err, errlen);
    if (s)
        return s;
    if (res)
        CU_TRY(eng__gpu_bias_residual(g->stream, Y, l->b, res, M, l->N));
    else
        CU_TRY(eng__gpu_bias_act(g->stream, Y, l->b, M, l->N, act));
    return ENG_OK;
}

/* attn[T,H] = softmax(Q K^T / sqrt(d)) V per sequence and head, for the
 * sequences [s0, s0 + gc) padded to S; off/len are the device arrays of all
 * the chunk's sequences. */
static eng_status attention_group(eng__gpu_ctx *g, const int *off, const int *len, int s0, int gc,
                                  int S, char *err, size_t errlen)
{
    const int A = g->A, d = g->H / g->A;
    const size_t part = (size_t)gc * S * g->H * g->op_size; /* bytes of one of Q, K, V */
    const char *Q = (const char *)g->qkvp, *K = Q + part, *V = K + part;
    const long long sd = (long long)S * d, ss = (long long)S * S;
    const float scale = 1.0f / sqrtf((float)d), one = 1.0f, zero = 0.0f;
    CU_TRY(eng__gpu_gather_qkv(g->stream, g->qkv, off + s0, len + s0, gc, S, A, d, g->qkvp,
                               g->op_type));
    /* Per pair b: scores_b[S,S] (row-major) = scale Q_b K_b^T, computed as
     * the column-major scores_b^T = K_b Q_b^T. */
    CUBLAS_TRY(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, S, S, d, &scale, K,
                                          g->op_type, d, sd, Q, g->op_type, d, sd, &zero,
                                          g->scores, CUDA_R_32F, S, ss, gc * A, g->compute,
                                          CUBLAS_GEMM_DEFAULT));
    CU_TRY(eng__gpu_masked_softmax(g->stream, g->scores, g->probs_op, len + s0, gc, A, S,
                                   g->op_type));
    /* pv_b[S,d] (row-major) = P_b V_b, as the column-major pv_b^T = V_b^T P_b^T. */
    CUBLAS_TRY(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, d, S, S, &one, V,
                                          g->op_type, d, sd, g->probs_op, g->op_type, S, ss,
                                          &zero, g->pv, CUDA_R_32F, d, sd, gc * A, g->compute,
                                          CUBLAS_GEMM_DEFAULT));
    CU_TRY(eng__gpu_scatter_heads(g->stream, g->pv, off + s0, len + s0, gc, S, A, d, g->attn));
    return ENG_OK;
}

/* Splits the n sequences into groups of consecutive ones whose padded size
 * count * (longest length) stays within T (one sequence always fits, being
 * at most max_positions <= T long); writes (first, count, S) triples to
 * g->grp and returns the group count. */
static int make_groups(eng__gpu_ctx *g, const eng_seq *seqs, int n)
{
    int ng = 0;
    for (int s = 0; s < n; s++) {
        const int L = seqs[s].n_ids;
        if (ng > 0) {
            int *last = g->grp + 3 * (ng - 1);
            const int S = L > last[2] ? L : last[2];
            if ((long)(last[1] + 1) * S <= g->T) {
                last[1]++;
                last[2] = S;
                continue;
            }
        }
        int *cur = g->grp + 3 * ng++;
        cur[0] = s;
        cur[1] = 1;
        cur[2] = L;
    }
    return ng;
}

static eng_status run(eng__gpu_ctx *g, const eng_seq *seqs, int n, int want_logits,
                      const int *index, float *out, float *probs, int *labels, char *err,
                      size_t errlen)
{
    const gpu_weights *w = g->w;
    const int H = g->H, C = g->C;
    int T = 0;
    for (int s = 0; s < n; s++)
        T += seqs[s].n_ids;
    if (n < 1 || T > g->T || (want_logits && (long)n * C > (long)g->T * H))
        return eng__errf(ENG_ERR_INVALID_ARG, err, errlen, "chunk of %d sequences, %d tokens "
                         "exceeds the context", n, T);
    /* Host layout of h_ints, copied in one transfer: ids [T], positions [T],
     * sequence offsets [n], lengths [n]. */
    int *ids = g->h_ints, *pos = ids + T, *off = pos + T, *len = off + n;
    for (int s = 0, t = 0; s < n; s++) {
        off[s] = t;
        len[s] = seqs[s].n_ids;
        for (int p = 0; p < seqs[s].n_ids; p++, t++) {
            ids[t] = seqs[s].ids[p];
            pos[t] = p;
        }
    }
    const int *d_ids = g->d_ints, *d_pos = d_ids + T, *d_off = d_pos + T, *d_len = d_off + n;
    CU_TRY(cudaMemcpyAsync(g->d_ints, g->h_ints, (2 * (size_t)T + 2 * (size_t)n) * sizeof(int),
                           cudaMemcpyHostToDevice, g->stream));
    const int ng = make_groups(g, seqs, n);
    eng_status s;

    CU_TRY(eng__gpu_embed_ln(g->stream, d_ids, d_pos, T, w->word_emb, w->pos_emb, w->emb_ln_g,
                             w->emb_ln_b, H, g->eps, g->h));
    for (int i = 0; i < g->L; i++) {
        const gpu_layer *L = &w->layer[i];
        if ((s = linear(g, &L->qkv, g->h, T, g->qkv, NULL, ENG_GPU_ACT_NONE, err, errlen)))
            return s;
        for (int k = 0; k < ng; k++) {
            const int *gr = g->grp + 3 * k;
            if ((s = attention_group(g, d_off, d_len, gr[0], gr[1], gr[2], err, errlen)))
                return s;
        }
        if ((s = linear(g, &L->attn_out, g->attn, T, g->tmp, g->h, ENG_GPU_ACT_NONE, err,
                        errlen)))
            return s;
        CU_TRY(eng__gpu_layernorm(g->stream, g->h, g->tmp, L->ln1_g, L->ln1_b, T, H, g->eps));
        if ((s = linear(g, &L->ffn_in, g->h, T, g->ffn, NULL, g->act, err, errlen)) ||
            (s = linear(g, &L->ffn_out, g->ffn, T, g->tmp, g->h, ENG_GPU_ACT_NONE, err, errlen)))
            return s;
        CU_TRY(eng__gpu_layernorm(g->stream, g->h, g->tmp, L->ln2_g, L->ln2_b, T, H, g->eps));
    }

    const int width = want_logits ? C : H;
    if (want_logits) {
        /* As classify_chunk: [CLS] rows -> dense + tanh (BERT pooler) or
         * ReLU (DistilBERT) -> logits in pooled, probs in tmp. */
        const int act = g->head == ENG_GPU_HEAD_DISTILBERT ? ENG_GPU_ACT_RELU : ENG_GPU_ACT_TANH;
        CU_TRY(eng__gpu_gather_rows(g->stream, g->h, d_off, n, H, g->pooled));
        if ((s = linear(g, &w->head_dense, g->pooled, n, g->pooled2, NULL, act, err, errlen)) ||
            (s = linear(g, &w->head_out, g->pooled2, n, g->pooled, NULL, ENG_GPU_ACT_NONE, err,
                        errlen)))
            return s;
        CU_TRY(eng__gpu_softmax_rows(g->stream, g->pooled, g->tmp, n, C));
        CU_TRY(eng__gpu_argmax_rows(g->stream, g->pooled, n, C, g->d_labels));
        CU_TRY(cudaMemcpyAsync(g->h_out, g->pooled, (size_t)n * C * sizeof(float),
                               cudaMemcpyDeviceToHost, g->stream));
        CU_TRY(cudaMemcpyAsync(g->h_probs, g->tmp, (size_t)n * C * sizeof(float),
                               cudaMemcpyDeviceToHost, g->stream));
        CU_TRY(cudaMemcpyAsync(g->h_labels, g->d_labels, (size_t)n * sizeof(int),
                               cudaMemcpyDeviceToHost, g->stream));
    } else {
        CU_TRY(eng__gpu_pool(g->stream, g->h, d_off, d_len, n, H, g->pool_cls, g->normalize,
                             g->pooled));
        CU_TRY(cudaMemcpyAsync(g->h_out, g->pooled, (size_t)n * H * sizeof(float),
                               cudaMemcpyDeviceToHost, g->stream));
    }
    CU_TRY(cudaStreamSynchronize(g->stream));
    for (int j = 0; j < n; j++) {
        const size_t at = (size_t)index[j] * width, from = (size_t)j * width;
        memcpy(out + at, g->h_out + from, (size_t)width * sizeof(float));
        if (want_logits && probs)
            memcpy(probs + at, g->h_probs + from, (size_t)width * sizeof(float));
        if (want_logits && labels)
            labels[index[j]] = g->h_labels[j];
    }
    return ENG_OK;
}

eng_status eng__gpu_run(eng__gpu_ctx *g, const eng_seq *seqs, int n, int want_logits,
                        const int *index, float *out, float *probs, int *labels, char *err,
                        size_t errlen)
{
    CU_TRY(cudaSetDevice(g->device));
    eng_status s = run(g, seqs, n, want_logits, index, out, probs, labels, err, errlen);
    /* A failed pass may leave copies in flight into the pinned buffers the
     * next pass fills: wait for them (the error is already reported). */
    if (s)
        (void)cudaStreamSynchronize(g->stream);
    return s;
}
