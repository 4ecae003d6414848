/* api_image.c: the image entry points and the image part of a context. A
 * pass decodes up to max_images images on the context's team (decoding and
 * resizing are a real share of the time), each member its share of the
 * images, packs the ones that decoded, and runs the network on them on the
 * whole team, every layer split among the members (cnn.h), so one image uses
 * every thread too. A bad image fails alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "team.h"

eng_status eng__ctx_init_images(eng_ctx *c, const eng_ctx_params *p)
{
    const eng__cnn *cnn = c->model->cnn;
    const int B = p->max_batch_images > 0 ? p->max_batch_images : 32;
    if (B > 4096)
        return eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error,
                         "max_batch_images %d is too large", B);
    const size_t F = eng__cnn_input_floats(cnn), C = (size_t)c->model->n_labels;
    c->max_images = B;
    c->images = malloc((size_t)B * F * sizeof *c->images);
    c->image_logits = malloc((size_t)B * C * sizeof *c->image_logits);
    c->image_index = malloc((size_t)B * sizeof *c->image_index);
    c->image_status = malloc((size_t)B * sizeof *c->image_status);
    c->image_error = malloc((size_t)B * sizeof *c->image_error);
    if (!c->images || !c->image_logits || !c->image_index || !c->image_status || !c->image_error)
        return ENG_ERR_NOMEM;
    return eng__cnn_ctx_init(cnn, B, eng__team_size(c->team), &c->cnn_ctx, c->error, sizeof c->error);
}

void eng__ctx_free_images(eng_ctx *c)
{
    eng__cnn_ctx_free(c->cnn_ctx);
    free(c->images);
    free(c->image_logits);
    free(c->image_index);
    free(c->image_status);
    free(c->image_error);
}

typedef struct {
    eng_ctx *c;
    const char *const *paths; /* or data/size */
    const void *const *data;
    const size_t *size;
    int first; /* caller index of slot 0 */
    int n;     /* images in this pass */
} image_pass;

/* Decodes slots [lo, hi) of the pass into c->images. */
static void decode_member(void *arg, int tid, int nt)
{
    const image_pass *ip = arg;
    eng_ctx *c = ip->c;
    const eng__image_spec *spec = eng__cnn_image_spec(c->model->cnn);
    const size_t F = eng__cnn_input_floats(c->model->cnn);
    int lo, hi;
    eng__team_share(ip->n, tid, nt, &lo, &hi);
    for (int j = lo; j < hi; j++) {
        int i = ip->first + j;
        char *err = c->image_error[j];
        float *dst = c->images + (size_t)j * F;
        snprintf(err, sizeof c->image_error[j], "no image given");
        if (ip->paths)
            c->image_status[j] = ip->paths[i] ? eng__image_load(ip->paths[i], spec, dst, err,
                                                                sizeof c->image_error[j])
                                              : ENG_ERR_INVALID_ARG;
        else
            c->image_status[j] = ip->data[i]
                                     ? eng__image_load_mem(ip->data[i], ip->size[i], spec, dst, err,
                                                           sizeof c->image_error[j])
                                     : ENG_ERR_INVALID_ARG;
    }
}

static eng_status classify_images(eng_ctx *c, const char *const *paths, const void *const *data,
                                  const size_t *size, int n, float *logits, float *probs,
                                  int *labels, eng_status *item_status)
{
    if (!c)
        return ENG_ERR_INVALID_ARG;
    if (n < 0 || (n > 0 && (!logits || (!paths && (!data || !size)))))
        return eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error,
                         "eng_classify_images: NULL argument");
    const eng_model *m = c->model;
    if (!m->cnn)
        return eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error,
                         "this is a text model: use eng_classify");
    const size_t F = eng__cnn_input_floats(m->cnn), C = (size_t)m->n_labels;
    eng_status first = ENG_OK;
    for (int base = 0; base < n; base += c->max_images) {
        image_pass ip = {c,    paths, data,
                         size, base,  n - base < c->max_images ? n - base : c->max_images};
        eng__team_run(c->team, decode_member, &ip);
        /* Pack the decoded images to the front, remembering where each came from. */
        int ok = 0;
        for (int j = 0; j < ip.n; j++) {
            int i = base + j;
            if (item_status)
                item_status[i] = c->image_status[j];
            if (c->image_status[j]) {
                if (!first) {
                    first = c->image_status[j];
                    eng__errf(first, c->error, sizeof c->error, "image %d: %s", i,
                              c->image_error[j]);
                }
                memset(logits + (size_t)i * C, 0, C * sizeof(float));
                if (probs)
                    memset(probs + (size_t)i * C, 0, C * sizeof(float));
                if (labels)
                    labels[i] = -1;
                continue;
            }
            if (ok != j)
                memcpy(c->images + (size_t)ok * F, c->images + (size_t)j * F, F * sizeof(float));
            c->image_index[ok++] = i;
        }
        eng__cnn_forward(c->cnn_ctx, c->team, c->images, ok, c->image_logits);
        for (int k = 0; k < ok; k++) {
            const float *row = c->image_logits + (size_t)k * C;
            size_t at = (size_t)c->image_index[k] * C;
            memcpy(logits + at, row, C * sizeof(float));
            if (probs) {
                memcpy(probs + at, row, C * sizeof(float));
                c->kern->softmax(probs + at, 1, (int)C, (int)C, 1.0f);
            }
            if (labels)
                labels[c->image_index[k]] = c->kern->argmax(row, (int)C);
        }
    }
    return first;
}

eng_status eng_classify_images(eng_ctx *c, const char *const *paths, int n, float *logits,
                               float *probs, int *labels, eng_status *item_status)
{
    if (n > 0 && !paths)
        return c ? eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error,
                             "eng_classify_images: paths is NULL")
                 : ENG_ERR_INVALID_ARG;
    return classify_images(c, paths, NULL, NULL, n, logits, probs, labels, item_status);
}

eng_status eng_classify_image_data(eng_ctx *c, const void *const *data, const size_t *size, int n,
                                   float *logits, float *probs, int *labels,
                                   eng_status *item_status)
{
    return classify_images(c, NULL, data, size, n, logits, probs, labels, item_status);
}
