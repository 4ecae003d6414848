/* sched_backend.h: what the scheduler and infer-bench run a batch with: the
 * real model (eng_tokenize / eng_classify_ids / eng_embed_ids, or
 * eng_classify_image_data / eng_embed_image_data for an image model, on a
 * per-worker eng_ctx) or the
 * built-in null model documented in engine.h, which answers from the token
 * ids alone so the scheduler can be measured and tested without a model
 * file. */
#ifndef ENG_SCHED_BACKEND_H
#define ENG_SCHED_BACKEND_H

#include "engine.h"

#define ENG__NULL_LABELS 2
#define ENG__NULL_HIDDEN 4

typedef struct {
    const eng_model *model;   /* NULL: the null model */
    eng_input input;          /* texts (the null model too) or images */
    int max_positions;        /* 0 for an image model */
    int n_labels;             /* classify outputs per item */
    int hidden;               /* embed outputs per item (eng_model_info.embed_size);
                                 0: the model does not embed */
    int null_batch_us, null_token_ns;
} eng__backend;

void eng__backend_init(eng__backend *b, const eng_model *model, int null_batch_us,
                       int null_token_ns);

/* ids holds b->max_positions entries. */
eng_status eng__backend_tokenize(const eng__backend *b, const char *text, size_t len,
                                 int32_t *ids, int *n_ids);

/* A context on base's device and precision (NULL: the defaults) sized for
 * max_batch_tokens tokens or max_batch_images images (0: the defaults),
 * computing with n_threads threads. The null model needs no context: *ctx
 * is NULL then. */
eng_status eng__backend_ctx_init(const eng__backend *b, const eng_ctx_params *base,
                                 int max_batch_tokens, int max_batch_images, int n_threads,
                                 eng_ctx **ctx, char *err, size_t errlen);

/* out: n x n_labels (classify) or n x hidden (embed); probs (n x n_labels)
 * and labels are used by classify only. item_status: n entries. */
eng_status eng__backend_run(const eng__backend *b, eng_ctx *ctx, eng_task task,
                            const eng_seq *seqs, int n, float *out, float *probs, int *labels,
                            eng_status *item_status);

/* Image models: classify or embed n encoded images; outputs as for
 * eng__backend_run. */
eng_status eng__backend_run_images(const eng__backend *b, eng_ctx *ctx, eng_task task,
                                   const void *const *data, const size_t *size, int n, float *out,
                                   float *probs, int *labels, eng_status *item_status);

#endif
