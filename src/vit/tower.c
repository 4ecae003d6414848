/* tower.c: the pre-LN transformer encoder of tower.h, run SPMD on a team as
 * src/text/forward.c runs BERT's post-LN one: the members split the row-local
 * steps by rows (or, for few rows, every linear layer by columns) and the
 * attention by (sequence, head) pairs; barriers only where a step reads rows
 * another member wrote (eng__tower_member counts them). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tower.h"

/* Below this many rows per member the linear layers are split by columns
 * (src/text/forward.c, COL_SPLIT_ROWS, says why). */
enum { COL_SPLIT_ROWS = 32 };

static const float *vec(const eng__file *f, const char *name, int n, char *err, size_t errlen)
{
    const eng__file_tensor *t = eng__file_find(f, name);
    if (!t || t->dtype != ENG_DT_F32 || t->ndim != 1 || t->shape[0] != (uint64_t)n) {
        snprintf(err, errlen, "tensor %s missing or not F32 [%d]", name, n);
        return NULL;
    }
    return eng__file_data(f, t);
}

eng_status eng__tower_bind(eng__tower *t, const eng__file *f, const char *prefix, char *err,
                           size_t errlen)
{
    const int H = t->hidden, F = t->inter;
    if (H < 1 || t->heads < 1 || H % t->heads || F < 1 || t->layers < 0) {
        snprintf(err, errlen, "%s: bad shape (hidden %d, heads %d, intermediate %d)", prefix, H,
                 t->heads, F);
        return ENG_ERR_FORMAT;
    }
    t->layer = calloc((size_t)t->layers + 1, sizeof *t->layer);
    if (!t->layer)
        return ENG_ERR_NOMEM;
    for (int i = 0; i < t->layers; i++) {
        eng__tower_layer *L = &t->layer[i];
        char n[64];
#define NAME(s) (snprintf(n, sizeof n, "%s.l%d.%s", prefix, i, s), n)
        if (!(L->ln1_g = vec(f, NAME("ln1.g"), H, err, errlen)) ||
            !(L->ln1_b = vec(f, NAME("ln1.b"), H, err, errlen)) ||
            !(L->ln2_g = vec(f, NAME("ln2.g"), H, err, errlen)) ||
            !(L->ln2_b = vec(f, NAME("ln2.b"), H, err, errlen)))
            return ENG_ERR_FORMAT;
        eng_status s;
        if ((s = eng__linear_bind(&L->qkv, f, NAME("qkv"), H, 3 * H, err, errlen)) ||
            (s = eng__linear_bind(&L->out, f, NAME("out"), H, H, err, errlen)) ||
            (s = eng__linear_bind(&L->fc1, f, NAME("fc1"), H, F, err, errlen)) ||
            (s = eng__linear_bind(&L->fc2, f, NAME("fc2"), F, H, err, errlen)))
            return s;
#undef NAME
    }
    return ENG_OK;
}

eng_status eng__tower_prepare(eng__tower *t, int bf16, char *err, size_t errlen)
{
    eng_status s = ENG_OK;
    for (int i = 0; !s && i < t->layers; i++) {
        eng__tower_layer *L = &t->layer[i];
        eng__linear *ls[4] = {&L->qkv, &L->out, &L->fc1, &L->fc2};
        for (int j = 0; j < 4 && !s; j++)
            s = eng__linear_prepare(ls[j], bf16, err, errlen);
    }
    return s;
}

void eng__tower_release(eng__tower *t)
{
    for (int i = 0; t->layer && i < t->layers; i++) {
        eng__linear_release(&t->layer[i].qkv);
        eng__linear_release(&t->layer[i].out);
        eng__linear_release(&t->layer[i].fc1);
        eng__linear_release(&t->layer[i].fc2);
    }
    free(t->layer);
    t->layer = NULL;
}

/* 64-byte aligned, so AVX-512 rows start on a cache line. */
static void *alloc_floats(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

eng_status eng__tower_scratch_init(eng__tower_scratch *s, const eng__tower *t,
                                   const eng__linear *extra, int max_rows, int max_seq, int members,
                                   int bf16)
{
    memset(s, 0, sizeof *s);
    const size_t T = (size_t)max_rows, H = (size_t)t->hidden;
    s->max_rows = max_rows;
    s->max_seq = max_seq;
    s->members = members;
    s->h = alloc_floats(T * H);
    s->tmp = alloc_floats(T * H);
    /* Split by columns (T < COL_SPLIT_ROWS members), each member layernorms
     * every row into its own x, so the linear layer after it needs no
     * barrier: members copies of those rows. */
    const size_t col_rows = (size_t)COL_SPLIT_ROWS * members,
                 x_rows = members * (T < col_rows ? T : col_rows);
    s->x = alloc_floats((T > x_rows ? T : x_rows) * H);
    s->qkv = alloc_floats(T * 3 * H);
    s->attn = alloc_floats(T * H);
    s->ffn = alloc_floats(T * (size_t)t->inter);
    /* The attention kernel's scratch, or the causal attention's row of
     * probabilities; a multiple of 16 floats keeps every share aligned. */
    s->att_floats = (ENG_ATTENTION_SCRATCH(max_seq, t->hidden / t->heads) + 15) & ~(size_t)15;
    s->att = alloc_floats((size_t)members * s->att_floats);
    size_t lin = extra ? eng__linear_scratch_bytes(extra, max_rows, bf16) : 0;
    for (int i = 0; i < t->layers; i++) {
        const eng__tower_layer *L = &t->layer[i];
        const eng__linear *ls[4] = {&L->qkv, &L->out, &L->fc1, &L->fc2};
        for (int j = 0; j < 4; j++) {
            size_t b = eng__linear_scratch_bytes(ls[j], max_rows, bf16);
            lin = b > lin ? b : lin;
        }
    }
    s->lin_bytes = (lin + 63) & ~(size_t)63;
    s->lin = s->lin_bytes ? aligned_alloc(64, s->lin_bytes * (size_t)members) : NULL;
    if (!s->h || !s->tmp || !s->x || !s->qkv || !s->attn || !s->ffn || !s->att ||
        (s->lin_bytes && !s->lin)) {
        eng__tower_scratch_free(s);
        return ENG_ERR_NOMEM;
    }
    return ENG_OK;
}

void eng__tower_scratch_free(eng__tower_scratch *s)
{
    free(s->h);
    free(s->tmp);
    free(s->x);
    free(s->qkv);
    free(s->attn);
    free(s->ffn);
    free(s->att);
    free(s->lin);
    memset(s, 0, sizeof *s);
}

void eng__tower_job_plan(eng__tower_job *j, int members)
{
    j->by_cols = members > 1 && j->T < COL_SPLIT_ROWS * members;
}

static void *member_lin(const eng__tower_job *j, int tid)
{
    /* fp32 layers need none: lin is NULL, and NULL may not be offset. */
    return j->s->lin ? (char *)j->s->lin + (size_t)tid * j->s->lin_bytes : NULL;
}

void eng__tower_linear(const eng__tower_job *j, const eng__linear *l, const float *X, float *Y,
                       const float *res, eng__act act, int tid, int nt)
{
    void *scratch = member_lin(j, tid);
    if (j->by_cols) {
        int p0, p1;
        eng__team_share((l->N + 15) / 16, tid, nt, &p0, &p1);
        if (p1 > p0)
            eng__linear_run_cols(l, X, j->T, Y, res, act, scratch, j->k, j->bk, p0, p1);
        eng__team_barrier(j->team);
        return;
    }
    int lo, hi;
    eng__team_share(j->T, tid, nt, &lo, &hi);
    if (hi > lo)
        eng__linear_run(l, X + (size_t)lo * l->K, hi - lo, Y + (size_t)lo * l->N,
                        res ? res + (size_t)lo * l->N : NULL, act, scratch, j->k, j->bk);
}

/* y = LayerNorm(x) for what the next step reads: the member's rows, or
 * (by_cols, where the next linear layer reads every row) all T rows into the
 * member's own copy: the other members' rows again instead of a barrier, on
 * whose wait a preempted member stalls the rest. Returns y's row 0. */
static float *layernorm(const eng__tower_job *j, const float *x, const float *g, const float *b,
                        int tid, int nt)
{
    const size_t H = (size_t)j->t->hidden;
    if (j->by_cols) {
        float *y = j->s->x + (size_t)tid * j->T * H;
        j->k->layernorm(y, x, g, b, j->T, (int)H, j->t->eps);
        return y;
    }
    int lo, hi;
    eng__team_share(j->T, tid, nt, &lo, &hi);
    if (hi > lo)
        j->k->layernorm(j->s->x + lo * H, x + lo * H, g, b, hi - lo, (int)H, j->t->eps);
    return j->s->x;
}

/* Token i of one head attends to tokens 0..i only (CLIP's causal mask, whose
 * masked scores are the most negative float: exactly 0 after the softmax).
 * p: S floats. Same arithmetic as the kernels' softmax: max-subtracted
 * exponentials, normalised after the weighted sum. */
static void causal_attention(const float *q, const float *k, const float *v, int ld, int S, int d,
                             float scale, float *out, int ldo, float *p)
{
    for (int i = 0; i < S; i++) {
        const float *qi = q + (size_t)i * ld;
        float m = -INFINITY;
        for (int t = 0; t <= i; t++) {
            const float *kt = k + (size_t)t * ld;
            float s = 0.0f;
            for (int e = 0; e < d; e++)
                s += qi[e] * kt[e];
            p[t] = s * scale;
            m = p[t] > m ? p[t] : m;
        }
        float sum = 0.0f;
        for (int t = 0; t <= i; t++) {
            p[t] = expf(p[t] - m);
            sum += p[t];
        }
        float *o = out + (size_t)i * ldo;
        for (int e = 0; e < d; e++)
            o[e] = 0.0f;
        for (int t = 0; t <= i; t++) {
            const float *vt = v + (size_t)t * ld;
            for (int e = 0; e < d; e++)
                o[e] += p[t] * vt[e];
        }
        const float inv = 1.0f / sum;
        for (int e = 0; e < d; e++)
            o[e] *= inv;
    }
}

/* attn = per sequence and head softmax(Q K^T / sqrt(d)) V; member tid takes
 * every nt-th (sequence, head) pair. */
static void attention(const eng__tower_job *j, int tid, int nt)
{
    const eng__tower *t = j->t;
    const int H = t->hidden, d = H / t->heads, ld = 3 * H;
    const float scale = 1.0f / sqrtf((float)d);
    float *scratch = j->s->att + (size_t)tid * j->s->att_floats;
    void (*attend)(const float *, const float *, const float *, int, int, int, float, float *, int,
                   float *) = t->causal ? causal_attention
                              : j->bk   ? j->k->attention_bf16
                                        : j->k->attention;
    for (int p = tid; p < j->n * t->heads; p += nt) {
        const int s = p / t->heads, a = p % t->heads;
        const float *base = j->s->qkv + (size_t)j->off[s] * ld;
        attend(base + a * d, base + H + a * d, base + 2 * H + a * d, ld, j->len[s], d, scale,
               j->s->attn + (size_t)j->off[s] * H + a * d, H, scratch);
    }
}

/* The MLP, h = tmp + FC2(act(FC1(x))). By rows with int8 layers, the
 * member's rows go in blocks of at most MLP_ROWS, FC2 right after FC1: the
 * block's [rows, F] activations (768 KiB at F = 3072, in L2) are quantized
 * for FC2 where FC1 left them, where the whole share's (9.4 MiB for 800
 * rows) went out to L3 and came back. The int8 layer streams its weights
 * once per 64-row block anyway (linear_int8.c); the fp32 GEMM sizes its own
 * row blocks to the call, so fp32 and bf16 layers keep the whole share. */
enum { MLP_ROWS = 64 };

static void mlp(const eng__tower_job *j, const eng__tower_layer *L, const float *x, int tid,
                int nt)
{
    eng__tower_scratch *s = j->s;
    if (j->by_cols || L->fc1.dtype != ENG_DT_I8 || L->fc2.dtype != ENG_DT_I8) {
        eng__tower_linear(j, &L->fc1, x, s->ffn, NULL, j->t->act, tid, nt);
        eng__tower_linear(j, &L->fc2, s->ffn, s->h, s->tmp, ENG_ACT_NONE, tid, nt);
        return;
    }
    const size_t H = (size_t)j->t->hidden, F = (size_t)j->t->inter;
    void *scratch = member_lin(j, tid);
    int lo, hi;
    eng__team_share(j->T, tid, nt, &lo, &hi);
    const int nblk = (hi - lo + MLP_ROWS - 1) / MLP_ROWS;
    for (int b = 0; b < nblk; b++) {
        const int r0 = lo + b * (hi - lo) / nblk, r1 = lo + (b + 1) * (hi - lo) / nblk;
        eng__linear_run(&L->fc1, x + r0 * H, r1 - r0, s->ffn + r0 * F, NULL, j->t->act, scratch,
                        j->k, j->bk);
        eng__linear_run(&L->fc2, s->ffn + r0 * F, r1 - r0, s->h + r0 * H, s->tmp + r0 * H,
                        ENG_ACT_NONE, scratch, j->k, j->bk);
    }
}

/* Barriers a layer: by rows, two (the attention reads every row of qkv, the
 * output projection every head of attn); by columns, five, one after each
 * linear layer and the attention (the next step reads every column or head),
 * none after the layernorms. The caller's eng__team_run ends with one. */
void eng__tower_member(const eng__tower_job *j, int tid, int nt)
{
    const eng__tower *t = j->t;
    eng__tower_scratch *s = j->s;
    eng__team_barrier(j->team);
    for (int i = 0; i < t->layers; i++) {
        const eng__tower_layer *L = &t->layer[i];
        float *x = layernorm(j, s->h, L->ln1_g, L->ln1_b, tid, nt);
        eng__tower_linear(j, &L->qkv, x, s->qkv, NULL, ENG_ACT_NONE, tid, nt);
        if (!j->by_cols)
            eng__team_barrier(j->team);
        attention(j, tid, nt);
        eng__team_barrier(j->team);
        eng__tower_linear(j, &L->out, s->attn, s->tmp, s->h, ENG_ACT_NONE, tid, nt);
        x = layernorm(j, s->tmp, L->ln2_g, L->ln2_b, tid, nt);
        mlp(j, L, x, tid, nt);
    }
}
