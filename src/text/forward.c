/* forward.c: the transformer encoder over a packed batch, and its heads (the
 * classifier, the pooling).
 *
 * Sequences are packed back to back with no padding: token t of the batch is
 * row t of every [T, *] activation. The linear layers run once over all T rows
 * (one GEMM each); attention runs per sequence and head on that sequence's rows
 * only, so nothing masks anything and no sequence can see another. That is why
 * a sentence's result does not depend on its batch.
 *
 * The context's team (team.h) splits every row-local step by rows and the
 * attention by (sequence, head) pairs; BLAS runs one thread per call. A batch
 * with too few rows for that (COL_SPLIT_ROWS) splits each linear layer by
 * columns instead. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "team.h"

/* Each team member's share of c->scores: the attention kernel's scratch for
 * the longest sequence, a multiple of 16 floats so every share stays 64-byte
 * aligned as the kernel requires. */
size_t eng__attention_scratch_floats(const eng__text_model *m)
{
    return ENG_ATTENTION_SCRATCH(m->max_positions, m->hidden / m->heads);
}

/* Work shared by the team for one chunk. */
typedef struct {
    eng__text_ctx *c;
    int T; /* packed tokens */
    int n; /* sequences */
} encode_job;

/* Rows [lo, hi) of h = LayerNorm(word[id] + pos[position]). */
static void embed_rows(eng__text_ctx *c, int lo, int hi)
{
    const eng__text_model *m = c->model;
    const size_t H = (size_t)m->hidden;
    for (int t = lo; t < hi; t++) {
        const float *w = m->word_emb + (size_t)c->tok_id[t] * H;
        const float *pe = m->pos_emb + (size_t)c->tok_pos[t] * H;
        float *row = c->h + (size_t)t * H;
        for (size_t i = 0; i < H; i++)
            row[i] = w[i] + pe[i];
    }
    c->kern->layernorm(c->h + (size_t)lo * H, c->h + (size_t)lo * H, m->emb_ln_g, m->emb_ln_b,
                       hi - lo, m->hidden, m->ln_eps);
}

/* attn[T,H] = per sequence and head: softmax(Q K^T / sqrt(d)) V, where Q, K, V
 * are column blocks of qkv[T,3H] (row stride 3H). Member tid takes every nt-th
 * (sequence, head) pair and runs the fused attention kernel on it, with its
 * own share of c->scores as the kernel's scratch. */
static void attention(eng__text_ctx *c, int n, int tid, int nt)
{
    const eng__text_model *m = c->model;
    const int H = m->hidden, d = H / m->heads, ld = 3 * H;
    const float scale = 1.0f / sqrtf((float)d);
    float *scratch = c->scores + (size_t)tid * eng__attention_scratch_floats(m);
    /* An int8 model's attention runs at bf16 precision (kernels.h): its
     * linear layers round far more coarsely, and in fp32 the attention took
     * a quarter of its time. */
    const int int8 = m->layers > 0 && m->layer[0].qkv.dtype == ENG_DT_I8;
    /* Under bf16 precision too: its GEMMs round their inputs the same way. */
    void (*attend)(const float *, const float *, const float *, int, int, int, float, float *,
                   int, float *) = int8 || c->bgemm ? c->kern->attention_bf16
                                                    : c->kern->attention;
    for (int p = tid; p < n * m->heads; p += nt) {
        const int s = p / m->heads, a = p % m->heads;
        const int S = c->seq_len[s];
        const float *base = c->qkv + (size_t)c->seq_off[s] * ld;
        float *out = c->attn + (size_t)c->seq_off[s] * H;
        const float *Q = base + a * d, *K = base + H + a * d, *V = base + 2 * H + a * d;
        attend(Q, K, V, ld, S, d, scale, out + a * d, H, scratch);
    }
}

/* Rows of the row-local chain run together in an int8 model: small enough
 * that a block's activations (its FFN rows: 64 x 1536 floats = 384 KiB for
 * MiniLM) stay in L2 from the step that writes them to the step that reads
 * them, large enough that each int8 GEMM still reuses a weight tile over 8
 * register tiles of rows. The fp32 GEMM keeps the member's rows in one block:
 * it packs and blocks them itself. */
enum { INT8_CHAIN_ROWS = 64 };

/* The row-local steps of layer L after its attention, for the n rows from
 * row r (pointers into the context's [T, *] buffers), then the QKV projection
 * of the next layer when next is not NULL: everything a row needs until the
 * next attention. f holds the FFN activations of these n rows. */
static void layer_rows(eng__text_ctx *c, const eng__layer *L, const eng__layer *next, size_t r, int n,
                       float *f, void *scratch)
{
    const eng__text_model *m = c->model;
    const eng__kernels *k = c->kern;
    const size_t H = (size_t)m->hidden;
    float *h = c->h + r * H, *tmp = c->tmp + r * H;
    const eng__bgemm_kernels *bk = c->bgemm;
    eng__linear_run(&L->attn_out, c->attn + r * H, n, tmp, h, ENG_ACT_NONE, scratch, k, bk);
    k->layernorm(h, tmp, L->ln1_g, L->ln1_b, n, m->hidden, m->ln_eps);
    eng__linear_run(&L->ffn_in, h, n, f, NULL, m->act, scratch, k, bk);
    eng__linear_run(&L->ffn_out, f, n, tmp, h, ENG_ACT_NONE, scratch, k, bk);
    k->layernorm(h, tmp, L->ln2_g, L->ln2_b, n, m->hidden, m->ln_eps);
    if (next)
        eng__linear_run(&next->qkv, h, n, c->qkv + r * 3 * H, NULL, ENG_ACT_NONE, scratch, k, bk);
}

/* Below this many rows per member, the members share each linear layer by
 * columns rather than by rows. A small batch's time is the streaming of the
 * weights from memory: split by rows, every member streams all of them (and
 * AMX's 16-row tiles run part empty); split by columns, each streams its
 * share. It costs four barriers per layer more, microseconds against the
 * milliseconds a BERT-base layer's weights take to stream. */
enum { COL_SPLIT_ROWS = 32 };

/* Layer L after its attention on all T rows, then the next layer's QKV
 * projection, with the columns of every linear layer split among the
 * members and the layernorms split by rows [lo, hi); the barriers separate
 * steps that read what other members wrote. */
static void layer_cols(eng__text_ctx *c, const eng__layer *L, const eng__layer *next, int T, int lo,
                       int hi, int tid, int nt, void *scratch)
{
    const eng__text_model *m = c->model;
    const eng__kernels *k = c->kern;
    const size_t H = (size_t)m->hidden;
    int p0, p1;
#define COLS(lin, X, Y, res, act)                                                          \
    (eng__team_share(((lin)->N + 15) / 16, tid, nt, &p0, &p1),                              \
     eng__linear_run_cols(lin, X, T, Y, res, act, scratch, k, c->bgemm, p0, p1))
    COLS(&L->attn_out, c->attn, c->tmp, c->h, ENG_ACT_NONE);
    eng__team_barrier(c->team);
    k->layernorm(c->h + lo * H, c->tmp + lo * H, L->ln1_g, L->ln1_b, hi - lo, m->hidden,
                 m->ln_eps);
    eng__team_barrier(c->team);
    COLS(&L->ffn_in, c->h, c->ffn, NULL, m->act);
    eng__team_barrier(c->team);
    COLS(&L->ffn_out, c->ffn, c->tmp, c->h, ENG_ACT_NONE);
    eng__team_barrier(c->team);
    k->layernorm(c->h + lo * H, c->tmp + lo * H, L->ln2_g, L->ln2_b, hi - lo, m->hidden,
                 m->ln_eps);
    if (next) {
        eng__team_barrier(c->team);
        COLS(&next->qkv, c->h, c->qkv, NULL, ENG_ACT_NONE);
    }
#undef COLS
}

/* One member's part of the encoder: its rows of every row-local step (the
 * linear layers, layernorms, activations), its pairs of the attention. Only
 * attention reads rows of other members, hence the two barriers per layer.
 * Between two attentions a member runs its rows through every step in blocks
 * (one block for fp32, see INT8_CHAIN_ROWS), each block reusing the first
 * rows of the member's share of c->ffn, so the activations of an int8 model
 * are re-read from cache rather than memory. Every step is row-local, so the
 * blocking changes no result. */
static void encode_member(void *arg, int tid, int nt)
{
    const encode_job *job = arg;
    eng__text_ctx *c = job->c;
    const eng__text_model *m = c->model;
    int lo, hi;
    eng__team_share(job->T, tid, nt, &lo, &hi);
    const int rows = hi - lo;
    /* Where no linear layer needs scratch (fp32), lin_scratch is NULL, and
     * offsetting NULL is undefined (clang's UBSan stops there). */
    void *scratch =
        c->lin_scratch ? (char *)c->lin_scratch + (size_t)tid * c->lin_scratch_bytes : NULL;
    float *f = c->ffn + (size_t)lo * (size_t)m->intermediate;
    const int block = m->layers > 0 && m->layer[0].ffn_in.dtype == ENG_DT_I8 ? INT8_CHAIN_ROWS
                      : rows > 0                                            ? rows
                                                                            : 1;

    const int by_cols = nt > 1 && job->T < COL_SPLIT_ROWS * nt;

    if (by_cols) {
        embed_rows(c, lo, hi);
        eng__team_barrier(c->team);
        if (m->layers > 0) {
            int p0, p1;
            eng__team_share((m->layer[0].qkv.N + 15) / 16, tid, nt, &p0, &p1);
            eng__linear_run_cols(&m->layer[0].qkv, c->h, job->T, c->qkv, NULL, ENG_ACT_NONE, scratch,
                                 c->kern, c->bgemm, p0, p1);
        }
    } else {
        for (int r = lo; r < hi; r += block) {
            const int n = hi - r < block ? hi - r : block;
            embed_rows(c, r, r + n);
            if (m->layers > 0)
                eng__linear_run(&m->layer[0].qkv, c->h + (size_t)r * m->hidden, n,
                                c->qkv + (size_t)r * 3 * m->hidden, NULL, ENG_ACT_NONE, scratch, c->kern,
                                c->bgemm);
        }
    }
    for (int i = 0; i < m->layers; i++) {
        eng__team_barrier(c->team);
        attention(c, job->n, tid, nt);
        eng__team_barrier(c->team);
        const eng__layer *next = i + 1 < m->layers ? &m->layer[i + 1] : NULL;
        if (by_cols)
            layer_cols(c, &m->layer[i], next, job->T, lo, hi, tid, nt, scratch);
        else
            for (int r = lo; r < hi; r += block)
                layer_rows(c, &m->layer[i], next, (size_t)r, hi - r < block ? hi - r : block, f,
                           scratch);
    }
}

void eng__encode(eng__text_ctx *c, const eng_seq *seqs, int n)
{
    int T = 0;
    for (int s = 0; s < n; s++) {
        c->seq_off[s] = T;
        c->seq_len[s] = seqs[s].n_ids;
        for (int p = 0; p < seqs[s].n_ids; p++, T++) {
            c->tok_id[T] = seqs[s].ids[p];
            c->tok_pos[T] = p;
        }
    }
    encode_job job = {c, T, n};
    eng__team_run(c->team, encode_member, &job);
}

/* ---- Heads ------------------------------------------------------------- */

/* The classifier over the [CLS] rows of cn packed sequences. */
void eng__classify_head(eng__text_ctx *c, int cn, float *out, float *probs, int *labels)
{
    const eng__text_model *m = c->model;
    const int H = m->hidden, C = m->n_labels;
    for (int j = 0; j < cn; j++)
        memcpy(c->pooled + (size_t)j * H, c->h + (size_t)c->seq_off[j] * H, H * sizeof(float));
    if (m->head == ENG_HEAD_DISTILBERT) {
        eng__linear_run(&m->head_dense, c->pooled, cn, c->pooled2, NULL, ENG_ACT_RELU,
                        c->lin_scratch, c->kern, c->bgemm);
    } else {
        eng__linear_run(&m->head_dense, c->pooled, cn, c->pooled2, NULL, ENG_ACT_NONE, c->lin_scratch,
                        c->kern, c->bgemm);
        for (size_t i = 0; i < (size_t)cn * H; i++)
            c->pooled2[i] = tanhf(c->pooled2[i]);
    }
    /* pooled is reused for the logits: cn * C <= T * H by the chunking rule. */
    float *logits = c->pooled;
    eng__linear_run(&m->head_out, c->pooled2, cn, logits, NULL, ENG_ACT_NONE, c->lin_scratch, c->kern,
                    c->bgemm);
    for (int j = 0; j < cn; j++) {
        const float *row = logits + (size_t)j * C;
        size_t at = (size_t)c->seq_index[j] * C;
        memcpy(out + at, row, C * sizeof(float));
        if (probs) {
            memcpy(probs + at, row, C * sizeof(float));
            c->kern->softmax(probs + at, 1, C, C, 1.0f);
        }
        if (labels)
            labels[c->seq_index[j]] = c->kern->argmax(row, C);
    }
}

/* Mean ([CLS] when the model says so) pooling, optionally L2-normalised. */
void eng__embed_head(eng__text_ctx *c, int cn, float *out)
{
    const eng__text_model *m = c->model;
    const size_t H = (size_t)m->hidden;
    for (int j = 0; j < cn; j++) {
        float *dst = out + (size_t)c->seq_index[j] * H;
        const float *rows = c->h + (size_t)c->seq_off[j] * H;
        int S = m->pooling == ENG_POOL_CLS ? 1 : c->seq_len[j];
        for (size_t i = 0; i < H; i++) {
            double sum = 0.0;
            for (int t = 0; t < S; t++)
                sum += rows[(size_t)t * H + i];
            dst[i] = (float)(sum / S);
        }
        if (m->normalize) {
            double ss = 0.0;
            for (size_t i = 0; i < H; i++)
                ss += (double)dst[i] * dst[i];
            float inv = ss > 0.0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
            for (size_t i = 0; i < H; i++)
                dst[i] *= inv;
        }
    }
}
