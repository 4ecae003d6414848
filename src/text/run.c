/* run.c: the text kind's batch runner. It validates each item (a bad one
 * fails alone), tokenizes texts, packs valid sequences into chunks that fit the
 * context's token budget, runs the encoder and applies the classifier head or
 * the pooling (forward.c), or hands the chunk to the GPU. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "text_gpu.h"
#include "error.h"
#include "model.h"
#include "text.h"

typedef enum { WANT_LOGITS, WANT_EMBEDDING } want;

typedef struct {
    float *out;   /* n x width: logits or embeddings */
    float *probs; /* n x n_labels or NULL */
    int *labels;  /* n or NULL */
} outputs;

static eng_status check_seq(const eng__text_model *m, const eng_seq *q)
{
    if (!q->ids || q->n_ids < 1)
        return ENG_ERR_INVALID_ARG;
    if (q->n_ids > m->max_positions)
        return ENG_ERR_TOO_LONG;
    for (int i = 0; i < q->n_ids; i++)
        if (q->ids[i] < 0 || q->ids[i] >= m->vocab_size)
            return ENG_ERR_INVALID_ARG;
    return ENG_OK;
}

/* A failed item's outputs: zeros and label -1. */
static void clear_item(const outputs *o, int i, int width)
{
    memset(o->out + (size_t)i * width, 0, (size_t)width * sizeof(float));
    if (o->probs)
        memset(o->probs + (size_t)i * width, 0, (size_t)width * sizeof(float));
    if (o->labels)
        o->labels[i] = -1;
}

/* A model of finite weights can still overflow (one flipped exponent bit in
 * a LayerNorm gain does): an item whose output is not finite fails with
 * ENG_ERR_NUMERIC instead of handing NaN to the caller as a result. Returns
 * the batch's first error. */
static eng_status fail_non_finite(eng__text_ctx *c, int cn, int width, const outputs *o,
                                  eng_status *item_status, eng_status first)
{
    for (int j = 0; j < cn; j++) {
        const int i = c->seq_index[j];
        const float *row = o->out + (size_t)i * width;
        int k = 0;
        while (k < width && isfinite(row[k]))
            k++;
        if (k == width)
            continue;
        clear_item(o, i, width);
        if (item_status)
            item_status[i] = ENG_ERR_NUMERIC;
        if (!first)
            first = eng__errf(ENG_ERR_NUMERIC, c->error, ENG__ERROR_LEN,
                              "item %d: the model's output is not finite (NaN or infinity)", i);
    }
    return first;
}

static eng_status run_ids(eng__text_ctx *c, const eng_seq *seqs, int n, want w, const outputs *o,
                          eng_status *item_status)
{
    const eng__text_model *m = c->model;
    const int width = w == WANT_LOGITS ? m->n_labels : m->hidden;
    /* At most this many sequences per chunk, so the logits fit in pooled. */
    const long max_seqs = w == WANT_LOGITS && m->n_labels > m->hidden
                              ? (long)c->max_tokens * m->hidden / m->n_labels
                              : c->max_tokens; /* >= 1: checked in eng_ctx_init */
    eng_status first = ENG_OK;
    int i = 0;
    while (i < n) {
        int cn = 0, tokens = 0;
        for (; i < n; i++) {
            eng_status s = check_seq(m, &seqs[i]);
            if (item_status)
                item_status[i] = s;
            if (s) {
                if (!first) {
                    first = s;
                    eng__errf(s, c->error, ENG__ERROR_LEN, "item %d: %s", i,
                              s == ENG_ERR_TOO_LONG ? "more ids than the model's position limit"
                                                    : "empty sequence or id out of range");
                }
                clear_item(o, i, width);
                continue;
            }
            if (cn == max_seqs || tokens + seqs[i].n_ids > c->max_tokens)
                break;
            c->seq_index[cn] = i;
            c->chunk_seqs[cn++] = seqs[i];
            tokens += seqs[i].n_ids;
        }
        if (cn == 0)
            continue;
        if (c->gpu) { /* a CUDA context: src/cuda/cuda_dispatch.h */
            eng_status s = eng__cuda_encode_and_head(c, cn, w == WANT_LOGITS, o->out, o->probs,
                                                     o->labels, item_status,
                                                     first ? NULL : c->error, ENG__ERROR_LEN);
            first = first ? first : s;
            if (s)
                continue;
        } else {
            eng__encode(c, c->chunk_seqs, cn);
            if (w == WANT_LOGITS)
                eng__classify_head(c, cn, o->out, o->probs, o->labels);
            else
                eng__embed_head(c, cn, o->out);
        }
        first = fail_non_finite(c, cn, width, o, item_status, first);
    }
    return first;
}

/* Tokenizes texts into the context's id buffer in groups that fit one token
 * budget, and runs each group through run_ids. */
static eng_status run_texts(eng__text_ctx *c, const char *const *texts, int n, want w, const outputs *o,
                            eng_status *item_status)
{
    const eng__text_model *m = c->model;
    const int width = w == WANT_LOGITS ? m->n_labels : m->hidden;
    eng_status first = ENG_OK;
    int g0 = 0;
    while (g0 < n) {
        int g = 0, used = 0;
        /* Room for one more text of the longest possible length is kept. */
        while (g0 + g < n && g < c->max_tokens && used <= c->max_tokens) {
            const char *t = texts[g0 + g];
            int n_ids = 0, trunc = 0;
            eng_status s = t ? eng__tokenize(m->tok, t, strlen(t), m->max_positions,
                                             c->text_ids + used, m->max_positions, &n_ids, &trunc)
                             : ENG_ERR_INVALID_ARG;
            c->text_status[g] = s;
            c->text_seqs[g].ids = c->text_ids + used;
            c->text_seqs[g].n_ids = s ? 0 : n_ids;
            used += s ? 0 : n_ids;
            g++;
        }
        outputs og = {o->out + (size_t)g0 * width, o->probs ? o->probs + (size_t)g0 * width : NULL,
                      o->labels ? o->labels + g0 : NULL};
        eng_status *st = item_status ? item_status + g0 : NULL;
        eng_status s = run_ids(c, c->text_seqs, g, w, &og, st);
        for (int j = 0; j < g; j++) {
            if (c->text_status[j] == ENG_OK)
                continue;
            if (st)
                st[j] = c->text_status[j];
            if (!first) {
                first = c->text_status[j];
                eng__errf(first, c->error, ENG__ERROR_LEN, "text %d: %s", g0 + j,
                          first == ENG_ERR_UTF8 ? "invalid UTF-8" : eng_status_str(first));
            }
        }
        if (!first && s)
            first = s;
        g0 += g;
    }
    return first;
}

/* A batch the model cannot run at all: every item fails with s, its outputs
 * zero, so a caller reading item_status (the command line does) sees why. */
static eng_status refuse_batch(eng__text_ctx *c, const eng__batch *b, eng_status s,
                               const char *why)
{
    const int width = b->task == ENG_TASK_CLASSIFY ? c->model->n_labels : c->model->hidden;
    const outputs o = {b->out, b->probs, b->labels};
    for (int i = 0; i < b->n; i++) {
        clear_item(&o, i, width);
        if (b->item_status)
            b->item_status[i] = s;
    }
    return eng__errf(s, c->error, ENG__ERROR_LEN, "%s", why);
}

eng_status eng__text_run(eng_ctx *ctx, const eng__batch *b)
{
    eng__text_ctx *c = ctx->impl;
    if (b->input == ENG__IN_IMAGE_PATHS || b->input == ENG__IN_IMAGE_DATA)
        return refuse_batch(c, b, ENG_ERR_UNSUPPORTED, "this is a text model: use eng_classify");
    if (b->task == ENG_TASK_CLASSIFY && c->model->head == ENG_HEAD_NONE)
        return refuse_batch(c, b, ENG_ERR_UNSUPPORTED,
                            "this model has no classifier head: use eng_embed");
    if (b->input != ENG__IN_IDS && !c->model->tok)
        return refuse_batch(c, b, ENG_ERR_UNSUPPORTED, "this model has no tokenizer; pass token ids");
    const want w = b->task == ENG_TASK_CLASSIFY ? WANT_LOGITS : WANT_EMBEDDING;
    const outputs o = {b->out, b->probs, b->labels};
    return b->input == ENG__IN_IDS ? run_ids(c, b->seqs, b->n, w, &o, b->item_status)
                                   : run_texts(c, b->texts, b->n, w, &o, b->item_status);
}
