/* kind.h: the interface every model kind implements, and their one
 * registration list (kind.c).
 *
 * A kind (text encoders, CNNs, ...) owns its model and context state behind
 * the opaque impl pointers of eng_model and eng_ctx (model.h); the shared code
 * (model.c, ctx.c) opens the file, finds the kind its metadata names
 * ("kind"), and calls these operations, so it never tests which kind it holds.
 * Adding a kind: its own folder and files with an eng__kind table, one line
 * in kind.c's list, its converter in tools/convert (README "Architecture"). */
#ifndef ENG_KIND_H
#define ENG_KIND_H

#include <stddef.h>

#include "engine.h"
#include "format.h"

typedef struct cJSON cJSON;

/* What a batch carries; a kind refuses the inputs it does not take with
 * ENG_ERR_UNSUPPORTED and a message saying which call to use. */
typedef enum {
    ENG__IN_IDS,          /* seqs */
    ENG__IN_TEXTS,        /* texts */
    ENG__IN_IMAGE_PATHS,  /* paths */
    ENG__IN_IMAGE_DATA,   /* data, size */
} eng__input;

/* One call of a batch entry point (eng_classify*, eng_embed*), its arguments
 * already checked for NULL by ctx.c. out is n x n_labels (classify) or
 * n x the embedding width (embed); probs, labels, item_status may be NULL. */
typedef struct {
    eng__input input;
    eng_task task;
    int n;
    const eng_seq *seqs;
    const char *const *texts;
    const char *const *paths;
    const void *const *data;
    const size_t *size;
    float *out, *probs;
    int *labels;
    eng_status *item_status;
} eng__batch;

typedef struct {
    const char *name;   /* the metadata's "kind" */
    int cuda;           /* whether its contexts may run on ENG_DEVICE_CUDA */
    int cpu_bf16;       /* whether its CPU contexts may run ENG_PREC_BF16 (bgemm.h) */

    /* Builds the kind's model from the open file f (it stays mapped while
     * the model lives) and its parsed metadata. On failure *impl is NULL
     * (or freed by free_model) and err says why. */
    eng_status (*load)(void **impl, const eng__file *f, const cJSON *meta,
                       const eng_model_params *p, char *err, size_t errlen);
    void (*free_model)(void *impl);   /* NULL is fine */
    /* Fills the fields of info that describe the model, and the name of the
     * GEMM its layers run on (a string the model owns). */
    void (*describe)(const void *impl, eng_model_info *info, const char **gemm_name);
    const char *(*label)(const void *impl, int i);   /* NULL when out of range */
    /* NULL for kinds without a tokenizer. spans may be NULL (not asked). */
    eng_status (*tokenize)(const void *impl, const char *text, size_t len, int32_t *ids,
                           eng_token_span *spans, int cap, int *n_ids, int *truncated);
    /* eng_model_token: the text of token id (*len bytes, not NUL-terminated)
     * and whether it is special, or NULL when out of range; NULL (the
     * operation) for kinds without a tokenizer. */
    const char *(*token)(const void *impl, int32_t id, size_t *len, int *special);

    /* Sizes the context's own scratch once; c->model, c->kern and c->team are
     * set. Reports through c->error, or eng_last_error() for device errors. */
    eng_status (*ctx_create)(eng_ctx *c, const eng_ctx_params *p);
    void (*ctx_free)(eng_ctx *c);   /* frees what ctx_create made, even partly */
    /* Runs one batch; each item fails alone. Reports through c->error. */
    eng_status (*run)(eng_ctx *c, const eng__batch *b);
    /* eng_ctx_item_error: why item i of the last run failed, or NULL; NULL
     * (the operation) for kinds whose item statuses say it all. */
    const char *(*item_error)(const eng_ctx *c, int i);
} eng__kind;

/* Metadata readers the kinds share: 1 when key holds an integer in [lo, hi]
 * (resp. an array of 3 numbers) and *out is set, else 0. */
int eng__meta_int(const cJSON *o, const char *key, int lo, int hi, int *out);
int eng__meta_floats3(const cJSON *o, const char *key, float *out);

/* The kind whose name is name, or NULL. */
const eng__kind *eng__kind_find(const char *name);
/* The registered names, "text, cnn", into buf, for error messages. */
void eng__kind_names(char *buf, size_t len);

#endif
