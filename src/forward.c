/* forward.c: the transformer encoder over a packed batch, and the context that
 * owns its scratch memory.
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

#include "cuda_dispatch.h"
#include "error.h"
#include "model.h"
#include "team.h"

eng_ctx_params eng_ctx_default_params(void)
{
    eng_ctx_params p = {.max_batch_tokens = 0};
    return p;
}

static void *alloc_floats(size_t n)
{
    /* 64-byte aligned so AVX-512 rows start on a cache line. */
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

/* Each team member's share of c->scores: the attention kernel's scratch for
 * the longest sequence, a multiple of 16 floats so every share stays 64-byte
 * aligned as the kernel requires. */
static size_t attention_scratch_floats(const eng_model *m)
{
    return ENG_ATTENTION_SCRATCH(m->max_positions, m->hidden / m->heads);
}

eng_status eng_ctx_init(const eng_model *m, const eng_ctx_params *params, eng_ctx **out)
{
    if (!out)
        return eng__fail(ENG_ERR_INVALID_ARG, "eng_ctx_init: out is NULL");
    *out = NULL;
    if (!m)
        return eng__fail(ENG_ERR_INVALID_ARG, "eng_ctx_init: model is NULL");
    eng_ctx_params p = params ? *params : eng_ctx_default_params();
    int nt = p.n_threads > 0 ? p.n_threads : m->n_threads;
    eng_status ds = eng__device_check(m, &p); /* CUDA: src/cuda_dispatch.c */
    if (ds)
        return ds;
    if (nt > 1024)
        return eng__fail(ENG_ERR_INVALID_ARG, "n_threads %d is too large", nt);
    if (m->cnn) {
        eng_ctx *c = calloc(1, sizeof *c);
        if (!c)
            return eng__fail(ENG_ERR_NOMEM, "out of memory");
        c->model = m;
        c->kern = eng__kernels_get();
        eng_status s = eng__team_create(&c->team, nt);
        if (s || (s = eng__ctx_init_images(c, &p))) {
            eng__fail(s, "%s", s == ENG_ERR_NOMEM ? "out of memory" : c->error);
            eng_ctx_free(c);
            return s;
        }
        *out = c;
        return ENG_OK;
    }
    long T = p.max_batch_tokens > 0 ? p.max_batch_tokens
                                    : (m->max_positions > 4096 ? m->max_positions : 4096);
    if (T < m->max_positions)
        return eng__fail(ENG_ERR_INVALID_ARG,
                         "max_batch_tokens %ld is below the model's position limit %d", T,
                         m->max_positions);
    if (T > (1L << 24))
        return eng__fail(ENG_ERR_INVALID_ARG, "max_batch_tokens %ld is too large", T);
    if (T * m->hidden < m->n_labels)
        return eng__fail(ENG_ERR_INVALID_ARG, "max_batch_tokens %ld is too small for %d labels", T,
                         m->n_labels);

    /* bf16 on the CPU (eng__device_check found a unit). The weights of the
     * other precision than the file's are made once per model, here at its
     * first context that needs them. */
    const int bf16 = p.device == ENG_DEVICE_CPU && p.precision == ENG_PREC_BF16;
    char err[256];
    if ((ds = eng__model_prepare(m, bf16, err, sizeof err)))
        return eng__fail(ds, "%s", err);
    eng_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return eng__fail(ENG_ERR_NOMEM, "out of memory");
    const size_t t = (size_t)T, H = (size_t)m->hidden, P = (size_t)m->max_positions;
    c->model = m;
    c->kern = eng__kernels_get();
    c->bgemm = bf16 ? eng__bgemm_get() : NULL;
    c->max_tokens = (int)T;
    c->h = alloc_floats(t * H);
    c->tmp = alloc_floats(t * H);
    c->attn = alloc_floats(t * H);
    c->qkv = alloc_floats(t * 3 * H);
    c->ffn = alloc_floats(t * (size_t)m->intermediate);
    c->scores = alloc_floats((size_t)nt * attention_scratch_floats(m));
    c->pooled = alloc_floats(t * H);
    c->pooled2 = alloc_floats(t * H);
    /* Each member gets its own linear-layer scratch, sized for all T rows
     * since one member may run them all. */
    size_t lin_bytes = 0;
    for (int i = 0; i <= m->layers; i++) {
        const eng__layer *L = &m->layer[i < m->layers ? i : 0];
        const eng__linear *ls[4] = {&L->qkv, &L->attn_out, &L->ffn_in, &L->ffn_out};
        if (i == m->layers) { /* the head, when there is one */
            ls[0] = ls[1] = &m->head_dense;
            ls[2] = ls[3] = &m->head_out;
        }
        for (int j = 0; j < 4; j++) {
            size_t b = eng__linear_scratch_bytes(ls[j], (int)T, bf16);
            lin_bytes = b > lin_bytes ? b : lin_bytes;
        }
    }
    c->lin_scratch_bytes = (lin_bytes + 63) & ~(size_t)63;
    size_t lin = c->lin_scratch_bytes * (size_t)nt;
    c->lin_scratch = lin ? aligned_alloc(64, lin) : NULL;
    c->tok_id = malloc(t * sizeof *c->tok_id);
    c->tok_pos = malloc(t * sizeof *c->tok_pos);
    c->seq_off = malloc(t * sizeof *c->seq_off);
    c->seq_len = malloc(t * sizeof *c->seq_len);
    c->seq_index = malloc(t * sizeof *c->seq_index);
    c->chunk_seqs = malloc(t * sizeof *c->chunk_seqs);
    c->text_ids = malloc((t + P) * sizeof *c->text_ids);
    c->text_seqs = malloc(t * sizeof *c->text_seqs);
    c->text_status = malloc(t * sizeof *c->text_status);
    if (!c->h || !c->tmp || !c->attn || !c->qkv || !c->ffn || !c->scores || !c->pooled ||
        !c->pooled2 || (lin && !c->lin_scratch) || !c->seq_off || !c->seq_len || !c->seq_index ||
        !c->chunk_seqs || !c->text_ids || !c->text_seqs || !c->text_status || !c->tok_id ||
        !c->tok_pos || eng__team_create(&c->team, nt) != ENG_OK) {
        eng_ctx_free(c);
        return eng__fail(ENG_ERR_NOMEM, "out of memory for a context of %ld tokens", T);
    }
    if (p.device == ENG_DEVICE_CUDA && (ds = eng__cuda_ctx_init(c, &p)) != ENG_OK) {
        eng_ctx_free(c);
        return ds;
    }
    *out = c;
    return ENG_OK;
}

void eng_ctx_free(eng_ctx *c)
{
    if (!c)
        return;
    free(c->h);
    free(c->tmp);
    free(c->attn);
    free(c->qkv);
    free(c->ffn);
    free(c->scores);
    free(c->pooled);
    free(c->pooled2);
    free(c->lin_scratch);
    free(c->tok_id);
    free(c->tok_pos);
    eng__team_free(c->team);
    free(c->seq_off);
    free(c->seq_len);
    free(c->seq_index);
    free(c->chunk_seqs);
    free(c->text_ids);
    free(c->text_seqs);
    free(c->text_status);
    eng__ctx_free_images(c);
    eng__cuda_ctx_free(c);
    free(c);
}

const char *eng_ctx_last_error(const eng_ctx *c)
{
    return c ? c->error : "no context";
}

/* Work shared by the team for one chunk. */
typedef struct {
    eng_ctx *c;
    int T; /* packed tokens */
    int n; /* sequences */
} encode_job;

/* Rows [lo, hi) of h = LayerNorm(word[id] + pos[position]). */
static void embed_rows(eng_ctx *c, int lo, int hi)
{
    const eng_model *m = c->model;
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
static void attention(eng_ctx *c, int n, int tid, int nt)
{
    const eng_model *m = c->model;
    const int H = m->hidden, d = H / m->heads, ld = 3 * H;
    const float scale = 1.0f / sqrtf((float)d);
    float *scratch = c->scores + (size_t)tid * attention_scratch_floats(m);
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
static void layer_rows(eng_ctx *c, const eng__layer *L, const eng__layer *next, size_t r, int n,
                       float *f, void *scratch)
{
    const eng_model *m = c->model;
    const eng__kernels *k = c->kern;
    const size_t H = (size_t)m->hidden;
    float *h = c->h + r * H, *tmp = c->tmp + r * H;
    const eng__bgemm_kernels *bk = c->bgemm;
    eng__linear_run(&L->attn_out, c->attn + r * H, n, tmp, h, -1, scratch, k, bk);
    k->layernorm(h, tmp, L->ln1_g, L->ln1_b, n, m->hidden, m->ln_eps);
    eng__linear_run(&L->ffn_in, h, n, f, NULL, (int)m->act, scratch, k, bk);
    eng__linear_run(&L->ffn_out, f, n, tmp, h, -1, scratch, k, bk);
    k->layernorm(h, tmp, L->ln2_g, L->ln2_b, n, m->hidden, m->ln_eps);
    if (next)
        eng__linear_run(&next->qkv, h, n, c->qkv + r * 3 * H, NULL, -1, scratch, k, bk);
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
static void layer_cols(eng_ctx *c, const eng__layer *L, const eng__layer *next, int T, int lo,
                       int hi, int tid, int nt, void *scratch)
{
    const eng_model *m = c->model;
    const eng__kernels *k = c->kern;
    const size_t H = (size_t)m->hidden;
    int p0, p1;
#define COLS(lin, X, Y, res, act)                                                          \
    (eng__team_share(((lin)->N + 15) / 16, tid, nt, &p0, &p1),                              \
     eng__linear_run_cols(lin, X, T, Y, res, act, scratch, k, c->bgemm, p0, p1))
    COLS(&L->attn_out, c->attn, c->tmp, c->h, -1);
    eng__team_barrier(c->team);
    k->layernorm(c->h + lo * H, c->tmp + lo * H, L->ln1_g, L->ln1_b, hi - lo, m->hidden,
                 m->ln_eps);
    eng__team_barrier(c->team);
    COLS(&L->ffn_in, c->h, c->ffn, NULL, (int)m->act);
    eng__team_barrier(c->team);
    COLS(&L->ffn_out, c->ffn, c->tmp, c->h, -1);
    eng__team_barrier(c->team);
    k->layernorm(c->h + lo * H, c->tmp + lo * H, L->ln2_g, L->ln2_b, hi - lo, m->hidden,
                 m->ln_eps);
    if (next) {
        eng__team_barrier(c->team);
        COLS(&next->qkv, c->h, c->qkv, NULL, -1);
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
    eng_ctx *c = job->c;
    const eng_model *m = c->model;
    int lo, hi;
    eng__team_share(job->T, tid, nt, &lo, &hi);
    const int rows = hi - lo;
    void *scratch = (char *)c->lin_scratch + (size_t)tid * c->lin_scratch_bytes;
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
            eng__linear_run_cols(&m->layer[0].qkv, c->h, job->T, c->qkv, NULL, -1, scratch,
                                 c->kern, c->bgemm, p0, p1);
        }
    } else {
        for (int r = lo; r < hi; r += block) {
            const int n = hi - r < block ? hi - r : block;
            embed_rows(c, r, r + n);
            if (m->layers > 0)
                eng__linear_run(&m->layer[0].qkv, c->h + (size_t)r * m->hidden, n,
                                c->qkv + (size_t)r * 3 * m->hidden, NULL, -1, scratch, c->kern,
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

void eng__encode(eng_ctx *c, const eng_seq *seqs, int n)
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
