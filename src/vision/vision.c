/* vision.c: the CNN kind (kind.h): a ResNet model (cnn.h), its context and
 * its batch runner. A pass decodes up to max_images images on the context's
 * team (decoding and resizing are a real share of the time), each member its
 * share of the images, packs the ones that decoded, and runs the network on them on the
 * whole team, every layer split among the members (cnn.h), so one image uses
 * every thread too. A bad image fails alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "team.h"
#include "vision.h"

extern const eng__kind eng__kind_cnn;

typedef struct {
    eng__cnn_ctx *cnn_ctx;      /* the network's scratch; its passes run on the team */
    int max_images;
    float *images;              /* [max_images][3][crop][crop] */
    float *image_logits;        /* [max_images][n_labels] */
    int *image_index;           /* [max_images]: caller index of each decoded image */
    eng_status *image_status;   /* [max_images] */
    char (*image_error)[192];   /* [max_images]: why an image failed */
    int image_first, image_n;   /* the caller indices [first, first + n) of the
                                   last pass, the items image_error describes */
} vision_ctx;

const eng__cnn *eng__cnn_of(const eng_model *m)
{
    return m && m->kind == &eng__kind_cnn ? m->impl : NULL;
}

/* cnn.c reads the metadata it needs from the file itself. */
static eng_status vision_load(void **impl, const eng__file *f, const cJSON *meta,
                              const eng_model_params *p, char *err, size_t errlen)
{
    return eng__cnn_init((eng__cnn **)impl, f, err, errlen);
}

static void vision_free(void *impl)
{
    eng__cnn_free(impl);
}

static void vision_describe(const void *impl, eng_model_info *info, const char **gemm_name)
{
    const eng__cnn *cnn = impl;
    info->arch = eng__cnn_arch(cnn);
    info->input = ENG_INPUT_IMAGE;
    info->weights = "fp32";
    info->n_labels = eng__cnn_num_classes(cnn);
    info->image_size = eng__cnn_image_spec(cnn)->crop;
    *gemm_name = "builtin (convolution tiles)";
}

static const char *vision_label(const void *impl, int i)
{
    return eng__cnn_label(impl, i);
}

static void vision_ctx_free(eng_ctx *ctx)
{
    vision_ctx *c = ctx->impl;
    if (!c)
        return;
    eng__cnn_ctx_free(c->cnn_ctx);
    free(c->images);
    free(c->image_logits);
    free(c->image_index);
    free(c->image_status);
    free(c->image_error);
    free(c);
    ctx->impl = NULL;
}

static eng_status vision_ctx_create(eng_ctx *ctx, const eng_ctx_params *p)
{
    const eng__cnn *cnn = ctx->model->impl;
    const int B = p->max_batch_images > 0 ? p->max_batch_images : 32;
    if (B > 4096)
        return eng__errf(ENG_ERR_INVALID_ARG, ctx->error, sizeof ctx->error,
                         "max_batch_images %d is too large", B);
    vision_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return ENG_ERR_NOMEM;
    ctx->impl = c;
    const size_t F = eng__cnn_input_floats(cnn), C = (size_t)eng__cnn_num_classes(cnn);
    c->max_images = B;
    c->images = malloc((size_t)B * F * sizeof *c->images);
    c->image_logits = malloc((size_t)B * C * sizeof *c->image_logits);
    c->image_index = malloc((size_t)B * sizeof *c->image_index);
    c->image_status = malloc((size_t)B * sizeof *c->image_status);
    c->image_error = malloc((size_t)B * sizeof *c->image_error);
    if (!c->images || !c->image_logits || !c->image_index || !c->image_status || !c->image_error)
        return ENG_ERR_NOMEM;
    return eng__cnn_ctx_init(cnn, B, eng__team_size(ctx->team), &c->cnn_ctx, ctx->error,
                             sizeof ctx->error);
}

typedef struct {
    eng_ctx *c;
    const char *const *paths; /* or data/size */
    const void *const *data;
    const size_t *size;
    int first; /* caller index of slot 0 */
    int n;     /* images in this pass */
} image_pass;

/* Decodes slots [lo, hi) of the pass into v->images. */
static void decode_member(void *arg, int tid, int nt)
{
    const image_pass *ip = arg;
    vision_ctx *v = ip->c->impl;
    const eng__cnn *cnn = ip->c->model->impl;
    const eng__image_spec *spec = eng__cnn_image_spec(cnn);
    const size_t F = eng__cnn_input_floats(cnn);
    int lo, hi;
    eng__team_share(ip->n, tid, nt, &lo, &hi);
    for (int j = lo; j < hi; j++) {
        int i = ip->first + j;
        char *err = v->image_error[j];
        float *dst = v->images + (size_t)j * F;
        snprintf(err, sizeof v->image_error[j], "no image given");
        if (ip->paths)
            v->image_status[j] = ip->paths[i] ? eng__image_load(ip->paths[i], spec, dst, err,
                                                                sizeof v->image_error[j])
                                              : ENG_ERR_INVALID_ARG;
        else
            v->image_status[j] = ip->data[i]
                                     ? eng__image_load_mem(ip->data[i], ip->size[i], spec, dst, err,
                                                           sizeof v->image_error[j])
                                     : ENG_ERR_INVALID_ARG;
    }
}

static eng_status vision_run(eng_ctx *c, const eng__batch *b)
{
    if (b->input == ENG__IN_IDS || b->input == ENG__IN_TEXTS || b->task != ENG_TASK_CLASSIFY)
        return eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error,
                         "this is an image model: use eng_classify_images");
    vision_ctx *v = c->impl;
    const eng__cnn *cnn = c->model->impl;
    const size_t F = eng__cnn_input_floats(cnn), C = (size_t)eng__cnn_num_classes(cnn);
    const int n = b->n;
    float *logits = b->out, *probs = b->probs;
    int *labels = b->labels;
    eng_status first = ENG_OK;
    v->image_n = 0;
    for (int base = 0; base < n; base += v->max_images) {
        image_pass ip = {c,       b->paths, b->data,
                         b->size, base,     n - base < v->max_images ? n - base : v->max_images};
        eng__team_run(c->team, decode_member, &ip);
        v->image_first = base;
        v->image_n = ip.n;
        /* Pack the decoded images to the front, remembering where each came from. */
        int ok = 0;
        for (int j = 0; j < ip.n; j++) {
            int i = base + j;
            if (b->item_status)
                b->item_status[i] = v->image_status[j];
            if (v->image_status[j]) {
                if (!first) {
                    first = v->image_status[j];
                    eng__errf(first, c->error, sizeof c->error, "image %d: %s", i,
                              v->image_error[j]);
                }
                memset(logits + (size_t)i * C, 0, C * sizeof(float));
                if (probs)
                    memset(probs + (size_t)i * C, 0, C * sizeof(float));
                if (labels)
                    labels[i] = -1;
                continue;
            }
            if (ok != j)
                memcpy(v->images + (size_t)ok * F, v->images + (size_t)j * F, F * sizeof(float));
            v->image_index[ok++] = i;
        }
        eng__cnn_forward(v->cnn_ctx, c->team, v->images, ok, v->image_logits);
        for (int k = 0; k < ok; k++) {
            const float *row = v->image_logits + (size_t)k * C;
            size_t at = (size_t)v->image_index[k] * C;
            memcpy(logits + at, row, C * sizeof(float));
            if (probs) {
                memcpy(probs + at, row, C * sizeof(float));
                c->kern->softmax(probs + at, 1, (int)C, (int)C, 1.0f);
            }
            if (labels)
                labels[v->image_index[k]] = c->kern->argmax(row, (int)C);
        }
    }
    return first;
}

static const char *vision_item_error(const eng_ctx *c, int i)
{
    const vision_ctx *v = c->impl;
    if (i < v->image_first || i >= v->image_first + v->image_n)
        return NULL;
    int j = i - v->image_first;
    return v->image_status[j] ? v->image_error[j] : NULL;
}

const eng__kind eng__kind_cnn = {
    .name = "cnn",
    .cuda = 0,
    .load = vision_load,
    .free_model = vision_free,
    .describe = vision_describe,
    .label = vision_label,
    .tokenize = NULL,
    .token = NULL,
    .ctx_create = vision_ctx_create,
    .ctx_free = vision_ctx_free,
    .run = vision_run,
    .item_error = vision_item_error,
};
