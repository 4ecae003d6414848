/* api.c: the batch entry points. They validate each item (a bad one fails
 * alone), pack valid sequences into chunks that fit the context's token budget,
 * run the encoder and apply the classifier head or the pooling. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda_dispatch.h"
#include "error.h"
#include "model.h"

#define ENG__STR(x) #x
#define ENG__VERSION_STR(a, b, c) ENG__STR(a) "." ENG__STR(b) "." ENG__STR(c)

const char *eng_version(void)
{
    return ENG__VERSION_STR(ENG_VERSION_MAJOR, ENG_VERSION_MINOR, ENG_VERSION_PATCH);
}

const char *eng_isa_name(void)
{
    return eng__isa_str(eng__kernels_get()->isa);
}

#define IMAGE_MODEL "this is an image model: use eng_classify_images"
#define NO_HEAD "this model has no classifier head: use eng_embed"

typedef enum { WANT_LOGITS, WANT_EMBEDDING } want;

typedef struct {
    float *out;   /* n x width: logits or embeddings */
    float *probs; /* n x n_labels or NULL */
    int *labels;  /* n or NULL */
} outputs;

static eng_status check_seq(const eng_model *m, const eng_seq *q)
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

/* The classifier head over the [CLS] rows of cn packed sequences. */
static void classify_chunk(eng_ctx *c, int cn, const outputs *o)
{
    const eng_model *m = c->model;
    const int H = m->hidden, C = m->n_labels;
    for (int j = 0; j < cn; j++)
        memcpy(c->pooled + (size_t)j * H, c->h + (size_t)c->seq_off[j] * H, H * sizeof(float));
    if (m->head == ENG_HEAD_DISTILBERT) {
        eng__linear_run(&m->head_dense, c->pooled, cn, c->pooled2, NULL, ENG_ACT_RELU,
                        c->lin_scratch, c->kern);
    } else {
        eng__linear_run(&m->head_dense, c->pooled, cn, c->pooled2, NULL, -1, c->lin_scratch,
                        c->kern);
        for (size_t i = 0; i < (size_t)cn * H; i++)
            c->pooled2[i] = tanhf(c->pooled2[i]);
    }
    /* pooled is reused for the logits: cn * C <= T * H by the chunking rule. */
    float *logits = c->pooled;
    eng__linear_run(&m->head_out, c->pooled2, cn, logits, NULL, -1, c->lin_scratch, c->kern);
    for (int j = 0; j < cn; j++) {
        const float *row = logits + (size_t)j * C;
        size_t at = (size_t)c->seq_index[j] * C;
        memcpy(o->out + at, row, C * sizeof(float));
        if (o->probs) {
            memcpy(o->probs + at, row, C * sizeof(float));
            c->kern->softmax(o->probs + at, 1, C, C, 1.0f);
        }
        if (o->labels)
            o->labels[c->seq_index[j]] = c->kern->argmax(row, C);
    }
}

/* Mean ([CLS] when the model says so) pooling, optionally L2-normalised. */
static void embed_chunk(eng_ctx *c, int cn, const outputs *o)
{
    const eng_model *m = c->model;
    const size_t H = (size_t)m->hidden;
    for (int j = 0; j < cn; j++) {
        float *dst = o->out + (size_t)c->seq_index[j] * H;
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

static eng_status run_ids(eng_ctx *c, const eng_seq *seqs, int n, want w, const outputs *o,
                          eng_status *item_status)
{
    const eng_model *m = c->model;
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
                    eng__errf(s, c->error, sizeof c->error, "item %d: %s", i,
                              s == ENG_ERR_TOO_LONG ? "more ids than the model's position limit"
                                                    : "empty sequence or id out of range");
                }
                memset(o->out + (size_t)i * width, 0, (size_t)width * sizeof(float));
                if (o->probs)
                    memset(o->probs + (size_t)i * width, 0, (size_t)width * sizeof(float));
                if (o->labels)
                    o->labels[i] = -1;
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
        if (c->gpu) { /* a CUDA context: src/cuda_dispatch.h */
            eng_status s = eng__cuda_encode_and_head(c, cn, w == WANT_LOGITS, o->out, o->probs,
                                                     o->labels, item_status,
                                                     first ? NULL : c->error, sizeof c->error);
            first = first ? first : s;
            continue;
        }
        eng__encode(c, c->chunk_seqs, cn);
        if (w == WANT_LOGITS)
            classify_chunk(c, cn, o);
        else
            embed_chunk(c, cn, o);
    }
    return first;
}

eng_status eng_classify_ids(eng_ctx *c, const eng_seq *seqs, int n, float *logits, float *probs,
                            int *labels, eng_status *item_status)
{
    if (!c || (n > 0 && (!seqs || !logits)) || n < 0)
        return c ? eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error,
                             "eng_classify_ids: NULL argument")
                 : ENG_ERR_INVALID_ARG;
    if (c->model->cnn || c->model->head == ENG_HEAD_NONE)
        return eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error, "%s",
                         c->model->cnn ? IMAGE_MODEL : NO_HEAD);
    outputs o = {logits, probs, labels};
    return run_ids(c, seqs, n, WANT_LOGITS, &o, item_status);
}

eng_status eng_embed_ids(eng_ctx *c, const eng_seq *seqs, int n, float *out,
                         eng_status *item_status)
{
    if (!c || (n > 0 && (!seqs || !out)) || n < 0)
        return c ? eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error,
                             "eng_embed_ids: NULL argument")
                 : ENG_ERR_INVALID_ARG;
    if (c->model->cnn)
        return eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error, "%s", IMAGE_MODEL);
    outputs o = {out, NULL, NULL};
    return run_ids(c, seqs, n, WANT_EMBEDDING, &o, item_status);
}

/* Tokenizes texts into the context's id buffer in groups that fit one token
 * budget, and runs each group through run_ids. */
static eng_status run_texts(eng_ctx *c, const char *const *texts, int n, want w, const outputs *o,
                            eng_status *item_status)
{
    const eng_model *m = c->model;
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
                eng__errf(first, c->error, sizeof c->error, "text %d: %s", g0 + j,
                          first == ENG_ERR_UTF8 ? "invalid UTF-8" : eng_status_str(first));
            }
        }
        if (!first && s)
            first = s;
        g0 += g;
    }
    return first;
}

eng_status eng_classify(eng_ctx *c, const char *const *texts, int n, float *logits, float *probs,
                        int *labels, eng_status *item_status)
{
    if (!c || (n > 0 && (!texts || !logits)) || n < 0)
        return c ? eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error,
                             "eng_classify: NULL argument")
                 : ENG_ERR_INVALID_ARG;
    if (c->model->cnn || c->model->head == ENG_HEAD_NONE)
        return eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error, "%s",
                         c->model->cnn ? IMAGE_MODEL : NO_HEAD);
    outputs o = {logits, probs, labels};
    return run_texts(c, texts, n, WANT_LOGITS, &o, item_status);
}

eng_status eng_embed(eng_ctx *c, const char *const *texts, int n, float *out,
                     eng_status *item_status)
{
    if (!c || (n > 0 && (!texts || !out)) || n < 0)
        return c ? eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error,
                             "eng_embed: NULL argument")
                 : ENG_ERR_INVALID_ARG;
    if (c->model->cnn)
        return eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error, "%s", IMAGE_MODEL);
    outputs o = {out, NULL, NULL};
    return run_texts(c, texts, n, WANT_EMBEDDING, &o, item_status);
}
