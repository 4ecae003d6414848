/* sched_backend.c: the scheduler's model backend, real or null (see
 * sched_backend.h and the null model's contract in engine.h). */
#include "sched_backend.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

#define NULL_CLS 101
#define NULL_SEP 102
#define NULL_WORD_BASE 1000
#define NULL_WORD_MAX 999
#define NULL_SUM_MOD 4096

void eng__backend_init(eng__backend *b, const eng_model *model, int null_batch_us,
                       int null_token_ns)
{
    b->model = model;
    b->null_batch_us = null_batch_us;
    b->null_token_ns = null_token_ns;
    if (model) {
        eng_model_info info;
        eng_model_get_info(model, &info);
        b->input = info.input;
        b->max_positions = info.input == ENG_INPUT_IMAGE ? 0 : info.max_positions;
        b->n_labels = info.n_labels;
        b->hidden = info.embed_size;
    } else {
        b->input = ENG_INPUT_TEXT;
        b->max_positions = ENG__SCHED_NULL_POSITIONS;
        b->n_labels = ENG__NULL_LABELS;
        b->hidden = ENG__NULL_HIDDEN;
    }
}

/* ASCII white space as a table: the null tokenizer runs in the submitting
 * thread for every request, and a lookup per byte beats six compares. */
static const unsigned char is_space[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, ['\v'] = 1, ['\f'] = 1,
};

static eng_status null_tokenize(int max_positions, const char *text, size_t len, int32_t *ids,
                                int *n_ids)
{
    const unsigned char *t = (const unsigned char *)text;
    int n = 0;
    ids[n++] = NULL_CLS;
    size_t i = 0;
    while (i < len && n < max_positions - 1) {
        while (i < len && is_space[t[i]])
            i++;
        size_t start = i;
        while (i < len && !is_space[t[i]])
            i++;
        if (i > start) {
            size_t w = i - start;
            ids[n++] = NULL_WORD_BASE + (int32_t)(w < NULL_WORD_MAX ? w : NULL_WORD_MAX);
        }
    }
    ids[n++] = NULL_SEP;
    *n_ids = n;
    return ENG_OK;
}

eng_status eng__backend_tokenize(const eng__backend *b, const char *text, size_t len,
                                 int32_t *ids, int *n_ids)
{
    if (!text)
        return ENG_ERR_INVALID_ARG;
    if (!b->model)
        return null_tokenize(b->max_positions, text, len, ids, n_ids);
    return eng_tokenize(b->model, text, len, ids, b->max_positions, n_ids, NULL);
}

eng_status eng__backend_ctx_init(const eng__backend *b, const eng_ctx_params *base,
                                 int max_batch_tokens, int max_batch_images, int n_threads,
                                 eng_ctx **ctx, char *err, size_t errlen)
{
    *ctx = NULL;
    if (!b->model)
        return ENG_OK;
    eng_ctx_params cp = base ? *base : eng_ctx_default_params();
    cp.max_batch_tokens = max_batch_tokens;
    cp.max_batch_images = max_batch_images;
    cp.n_threads = n_threads;
    eng_status st = eng_ctx_init(b->model, &cp, ctx);
    if (st != ENG_OK)
        snprintf(err, errlen, "eng_ctx_init: %s", eng_last_error());
    return st;
}

static void null_sleep(const eng__backend *b, long tokens)
{
    long long ns = (long long)b->null_batch_us * 1000 + (long long)b->null_token_ns * tokens;
    if (ns <= 0)
        return;
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static eng_status null_run(const eng__backend *b, eng_task task, const eng_seq *seqs, int n,
                           float *out, float *probs, int *labels, eng_status *item_status)
{
    eng_status first = ENG_OK;
    long tokens = 0;
    int width = task == ENG_TASK_EMBED ? b->hidden : b->n_labels;
    for (int i = 0; i < n; i++) {
        const eng_seq *q = &seqs[i];
        float *o = out + (size_t)i * width;
        eng_status st = q->n_ids >= 2 && q->n_ids <= b->max_positions ? ENG_OK
                                                                      : ENG_ERR_INVALID_ARG;
        long sum = 0;
        for (int j = 0; st == ENG_OK && j < q->n_ids; j++) {
            if (q->ids[j] < 0 || q->ids[j] >= ENG__SCHED_NULL_VOCAB)
                st = ENG_ERR_INVALID_ARG;
            sum += q->ids[j];
        }
        tokens += q->n_ids > 0 ? q->n_ids : 0;
        item_status[i] = st;
        for (int k = 0; k < width; k++)
            o[k] = 0.0f;
        if (st != ENG_OK) {
            if (first == ENG_OK)
                first = st;
            if (task == ENG_TASK_CLASSIFY) {
                labels[i] = 0;
                probs[(size_t)i * width] = probs[(size_t)i * width + 1] = 0.0f;
            }
            continue;
        }
        o[0] = (float)q->n_ids;
        o[1] = (float)(sum % NULL_SUM_MOD);
        if (task == ENG_TASK_EMBED) {
            o[2] = (float)q->ids[0];
            o[3] = (float)q->ids[q->n_ids - 1];
        } else {
            /* Softmax of two logits, computed stably. */
            float m = o[0] > o[1] ? o[0] : o[1];
            float e0 = expf(o[0] - m), e1 = expf(o[1] - m);
            probs[(size_t)i * width] = e0 / (e0 + e1);
            probs[(size_t)i * width + 1] = e1 / (e0 + e1);
            labels[i] = o[1] > o[0] ? 1 : 0;
        }
    }
    null_sleep(b, tokens);
    return first;
}

eng_status eng__backend_run(const eng__backend *b, eng_ctx *ctx, eng_task task,
                            const eng_seq *seqs, int n, float *out, float *probs, int *labels,
                            eng_status *item_status)
{
    if (!b->model)
        return null_run(b, task, seqs, n, out, probs, labels, item_status);
    if (task == ENG_TASK_EMBED)
        return eng_embed_ids(ctx, seqs, n, out, item_status);
    return eng_classify_ids(ctx, seqs, n, out, probs, labels, item_status);
}

eng_status eng__backend_run_images(const eng__backend *b, eng_ctx *ctx, eng_task task,
                                   const void *const *data, const size_t *size, int n, float *out,
                                   float *probs, int *labels, eng_status *item_status)
{
    if (task == ENG_TASK_EMBED)
        return eng_embed_image_data(ctx, data, size, n, out, item_status);
    return eng_classify_image_data(ctx, data, size, n, out, probs, labels, item_status);
}
