/* cnn.c: the ResNet forward pass (see cnn.h): metadata and tensor binding,
 * scratch sizing, and the block sequence on NHWC activations. The layer
 * arithmetic lives in conv.c. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cnn.h"
#include "conv.h"

#define MAX_BLOCKS_PER_LAYER 64
#define MAX_WIDTH 1024
#define MAX_CLASSES 100000
#define MIN_CROP 32       /* the network divides the edge by 32 */
#define MAX_CROP 1024
#define MAX_BATCH 4096
#define MIN_COL_ROWS 64   /* im2col rows per GEMM at the least */

typedef struct {
    eng__conv conv[3];    /* conv3 only in bottleneck blocks */
    eng__conv down;       /* down.w NULL: identity shortcut */
    int in_edge;          /* square input edge of the block */
} block;

struct eng__cnn {
    char *arch;
    char **labels;        /* NULL or num_classes strings */
    int num_classes;
    int bottleneck;
    eng__image_spec spec;
    eng__conv stem;
    int stem_edge;        /* after the stem conv (before max pooling) */
    block *blocks;
    int n_blocks;
    int features;         /* channels into the classifier */
    int final_edge;
    const float *fc_w, *fc_b;
};

struct eng__cnn_ctx {
    const eng__cnn *cnn;
    int max_batch;
    float *buf[4];        /* activations, each max_batch x the largest layer */
    float *col;
    size_t col_floats;
    float *pooled;        /* max_batch x features */
};

int eng__cnn_num_classes(const eng__cnn *cnn) { return cnn->num_classes; }
const char *eng__cnn_arch(const eng__cnn *cnn) { return cnn->arch; }
const eng__image_spec *eng__cnn_image_spec(const eng__cnn *cnn) { return &cnn->spec; }

const char *eng__cnn_label(const eng__cnn *cnn, int i)
{
    return cnn->labels && i >= 0 && i < cnn->num_classes ? cnn->labels[i] : NULL;
}

size_t eng__cnn_input_floats(const eng__cnn *cnn)
{
    return 3 * (size_t)cnn->spec.crop * cnn->spec.crop;
}

void eng__cnn_free(eng__cnn *cnn)
{
    if (!cnn)
        return;
    if (cnn->labels)
        for (int i = 0; i < cnn->num_classes; i++)
            free(cnn->labels[i]);
    free(cnn->labels);
    free(cnn->arch);
    free(cnn->blocks);
    free(cnn);
}

/* ---- Binding ------------------------------------------------------------- */

/* The F32 tensor name with exactly the given shape, or NULL with err set. */
static const float *tensor(const eng__file *f, const char *name, int ndim, const uint64_t *shape,
                           char *err, size_t errlen)
{
    const eng__file_tensor *t = eng__file_find(f, name);
    if (!t) {
        snprintf(err, errlen, "tensor %s missing", name);
        return NULL;
    }
    int ok = t->dtype == ENG_DT_F32 && t->ndim == (uint32_t)ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == shape[i];
    if (!ok) {
        snprintf(err, errlen, "tensor %s has the wrong dtype or shape", name);
        return NULL;
    }
    return eng__file_data(f, t);
}

static int bind_conv(eng__conv *c, const eng__file *f, const char *prefix, int k, int stride,
                     int cin, int cout, char *err, size_t errlen)
{
    char name[ENG_FILE_NAME_MAX];
    uint64_t ws[4] = { (uint64_t)k, (uint64_t)k, (uint64_t)cin, (uint64_t)cout };
    uint64_t bs[1] = { (uint64_t)cout };
    *c = (eng__conv){ .kh = k, .kw = k, .stride = stride, .pad = k / 2, .cin = cin, .cout = cout };
    snprintf(name, sizeof name, "%s.w", prefix);
    c->w = tensor(f, name, 4, ws, err, errlen);
    snprintf(name, sizeof name, "%s.b", prefix);
    c->b = c->w ? tensor(f, name, 1, bs, err, errlen) : NULL;
    return c->w && c->b;
}

static int json_int(const cJSON *obj, const char *key, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
        v->valuedouble != (int)v->valuedouble)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

static int json_floats3(const cJSON *obj, const char *key, float *out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3)
        return 0;
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(v))
            return 0;
        out[i] = (float)v->valuedouble;
    }
    return 1;
}

/* Everything the metadata says, checked; layers[] gets the block counts. */
static int parse_meta(eng__cnn *cnn, const cJSON *m, int layers[4], int *width, char *err,
                      size_t errlen)
{
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(m, "arch");
    const cJSON *rn = cJSON_GetObjectItemCaseSensitive(m, "resnet");
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(m, "image");
    const cJSON *blk = cJSON_GetObjectItemCaseSensitive(rn, "block");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(rn, "layers");
    if (!cJSON_IsString(arch) || !cJSON_IsString(blk) || !cJSON_IsArray(ls) ||
        cJSON_GetArraySize(ls) != 4 || !json_int(rn, "width", 1, MAX_WIDTH, width) ||
        !json_int(m, "num_classes", 1, MAX_CLASSES, &cnn->num_classes)) {
        snprintf(err, errlen, "metadata lacks a valid arch, resnet {block, layers[4], width} "
                              "or num_classes");
        return 0;
    }
    cnn->bottleneck = strcmp(blk->valuestring, "bottleneck") == 0;
    if (!cnn->bottleneck && strcmp(blk->valuestring, "basic") != 0) {
        snprintf(err, errlen, "unknown ResNet block \"%s\"", blk->valuestring);
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetArrayItem(ls, i);
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > MAX_BLOCKS_PER_LAYER) {
            snprintf(err, errlen, "bad resnet.layers in metadata");
            return 0;
        }
        layers[i] = (int)v->valuedouble;
    }
    eng__image_spec *s = &cnn->spec;
    if (!json_int(img, "resize", 0, ENG_IMAGE_MAX_SIDE, &s->resize) ||
        !json_int(img, "crop", MIN_CROP, MAX_CROP, &s->crop) ||
        (s->resize && s->crop > s->resize) || !json_floats3(img, "mean", s->mean) ||
        !json_floats3(img, "std", s->std) || !(s->std[0] > 0 && s->std[1] > 0 && s->std[2] > 0)) {
        snprintf(err, errlen, "metadata lacks a valid image {resize, crop, mean[3], std[3]}");
        return 0;
    }
    cnn->arch = strdup(arch->valuestring);
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(m, "labels");
    if (labels) {
        if (!cJSON_IsArray(labels) || cJSON_GetArraySize(labels) != cnn->num_classes) {
            snprintf(err, errlen, "metadata labels are not num_classes strings");
            return 0;
        }
        cnn->labels = calloc((size_t)cnn->num_classes, sizeof(char *));
        if (!cnn->labels)
            return 0;
        for (int i = 0; i < cnn->num_classes; i++) {
            const cJSON *v = cJSON_GetArrayItem(labels, i);
            if (!cJSON_IsString(v) || !(cnn->labels[i] = strdup(v->valuestring))) {
                snprintf(err, errlen, "metadata label %d is not a string", i);
                return 0;
            }
        }
    }
    return cnn->arch != NULL;
}

/* torchvision's ResNet: layer L (0-based) has planes width << L, its first
 * block strides by 2 from layer 1 on; bottleneck blocks expand by 4 and
 * stride in their 3x3 conv. A shortcut projection appears where the shape
 * changes. */
static int bind_blocks(eng__cnn *cnn, const eng__file *f, const int layers[4], int width,
                       char *err, size_t errlen)
{
    int expansion = cnn->bottleneck ? 4 : 1, cin = width, edge = cnn->stem_edge;
    edge = eng__conv_out(edge, 3, 2, 1);
    cnn->n_blocks = layers[0] + layers[1] + layers[2] + layers[3];
    cnn->blocks = calloc((size_t)cnn->n_blocks, sizeof(block));
    if (!cnn->blocks) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    block *b = cnn->blocks;
    char p[64];
    for (int L = 0; L < 4; L++) {
        int planes = width << L;
        for (int i = 0; i < layers[L]; i++, b++) {
            int stride = (L > 0 && i == 0) ? 2 : 1, cout = planes * expansion, ok;
            b->in_edge = edge;
#define BIND(c, suffix, k, s, ci, co)                                                  \
    (snprintf(p, sizeof p, "layer%d.%d.%s", L + 1, i, suffix),                         \
     bind_conv(c, f, p, k, s, ci, co, err, errlen))
            if (cnn->bottleneck)
                ok = BIND(&b->conv[0], "conv1", 1, 1, cin, planes) &&
                     BIND(&b->conv[1], "conv2", 3, stride, planes, planes) &&
                     BIND(&b->conv[2], "conv3", 1, 1, planes, cout);
            else
                ok = BIND(&b->conv[0], "conv1", 3, stride, cin, planes) &&
                     BIND(&b->conv[1], "conv2", 3, 1, planes, planes);
            if (ok && (stride != 1 || cin != cout))
                ok = BIND(&b->down, "downsample", 1, stride, cin, cout);
#undef BIND
            if (!ok)
                return 0;
            edge = eng__conv_out(edge, 3, stride, 1);
            cin = cout;
        }
    }
    cnn->features = cin;
    cnn->final_edge = edge;
    return 1;
}

eng_status eng__cnn_init(eng__cnn **out, const eng__file *f, char *err, size_t errlen)
{
    *out = NULL;
    eng__cnn *cnn = calloc(1, sizeof *cnn);
    cJSON *m = cJSON_ParseWithLength(f->meta, f->meta_size);
    int layers[4], width, ok = cnn && m;
    if (!ok)
        snprintf(err, errlen, cnn ? "model metadata is not valid JSON" : "out of memory");
    ok = ok && parse_meta(cnn, m, layers, &width, err, errlen);
    cJSON_Delete(m);
    if (ok) {
        cnn->stem_edge = eng__conv_out(cnn->spec.crop, 7, 2, 3);
        uint64_t fs[2] = { 0, (uint64_t)cnn->num_classes };
        ok = bind_conv(&cnn->stem, f, "conv1", 7, 2, 3, width, err, errlen) &&
             bind_blocks(cnn, f, layers, width, err, errlen);
        fs[0] = (uint64_t)cnn->features;
        ok = ok && (cnn->fc_w = tensor(f, "fc.w", 2, fs, err, errlen)) &&
             (cnn->fc_b = tensor(f, "fc.b", 1, fs + 1, err, errlen));
    }
    if (!ok) {
        eng__cnn_free(cnn);
        return cnn ? ENG_ERR_FORMAT : ENG_ERR_NOMEM;
    }
    *out = cnn;
    return ENG_OK;
}

/* ---- Context ------------------------------------------------------------- */

static void grow(size_t *v, size_t x)
{
    if (x > *v)
        *v = x;
}

static size_t conv_out_floats(const eng__conv *c, int edge)
{
    size_t e = (size_t)eng__conv_out(edge, c->kh, c->stride, c->pad);
    return e * e * (size_t)c->cout;
}

eng_status eng__cnn_ctx_init(const eng__cnn *cnn, int max_batch, eng__cnn_ctx **out, char *err,
                             size_t errlen)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > MAX_BATCH) {
        snprintf(err, errlen, "max_batch %d is outside 1..%d", max_batch, MAX_BATCH);
        return ENG_ERR_INVALID_ARG;
    }
    /* The largest activation of one image, and the im2col scratch of the
     * hungriest convolution at full batch. */
    size_t act = eng__cnn_input_floats(cnn), col = 0;
    grow(&act, conv_out_floats(&cnn->stem, cnn->spec.crop));
    grow(&col, eng__conv_col_floats(&cnn->stem, max_batch, cnn->spec.crop, cnn->spec.crop,
                                    MIN_COL_ROWS));
    for (int i = 0; i < cnn->n_blocks; i++) {
        const block *b = &cnn->blocks[i];
        int edge = b->in_edge;
        for (int j = 0; j < (cnn->bottleneck ? 3 : 2); j++) {
            grow(&act, conv_out_floats(&b->conv[j], edge));
            grow(&col, eng__conv_col_floats(&b->conv[j], max_batch, edge, edge, MIN_COL_ROWS));
            edge = eng__conv_out(edge, b->conv[j].kh, b->conv[j].stride, b->conv[j].pad);
        }
        if (b->down.w)
            grow(&col, eng__conv_col_floats(&b->down, max_batch, b->in_edge, b->in_edge,
                                            MIN_COL_ROWS));
    }
    eng__cnn_ctx *ctx = calloc(1, sizeof *ctx);
    int ok = ctx != NULL;
    if (ok) {
        ctx->cnn = cnn;
        ctx->max_batch = max_batch;
        ctx->col_floats = col;
        for (int i = 0; i < 4; i++)
            ok = ok && (ctx->buf[i] = malloc(sizeof(float) * act * (size_t)max_batch));
        ok = ok && (ctx->col = malloc(sizeof(float) * (col ? col : 1)));
        ok = ok && (ctx->pooled = malloc(sizeof(float) * (size_t)cnn->features * max_batch));
    }
    if (!ok) {
        eng__cnn_ctx_free(ctx);
        snprintf(err, errlen, "out of memory for a batch of %d images", max_batch);
        return ENG_ERR_NOMEM;
    }
    *out = ctx;
    return ENG_OK;
}

void eng__cnn_ctx_free(eng__cnn_ctx *ctx)
{
    if (!ctx)
        return;
    for (int i = 0; i < 4; i++)
        free(ctx->buf[i]);
    free(ctx->col);
    free(ctx->pooled);
    free(ctx);
}

/* ---- Forward ------------------------------------------------------------- */

/* The three buffers other than cur, in o[0..2]. */
static void others(float *const buf[4], const float *cur, float *o[3])
{
    for (int i = 0, j = 0; i < 4; i++)
        if (buf[i] != cur)
            o[j++] = buf[i];
}

static void forward_batch(eng__cnn_ctx *ctx, const float *images, int n, float *logits)
{
    const eng__cnn *cnn = ctx->cnn;
    float *const *buf = ctx->buf, *col = ctx->col;
    size_t cf = ctx->col_floats;
    int crop = cnn->spec.crop;
    size_t plane = (size_t)crop * crop;

    /* NCHW input to NHWC. */
    for (int img = 0; img < n; img++)
        for (size_t p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)
                buf[0][(img * plane + p) * 3 + c] = images[(img * 3 + (size_t)c) * plane + p];
    eng__conv_forward(&cnn->stem, buf[0], n, crop, crop, buf[1], NULL, 1, col, cf);
    eng__maxpool3x3s2(buf[1], n, cnn->stem_edge, cnn->stem_edge, cnn->stem.cout, buf[2]);

    float *cur = buf[2], *o[3];
    for (int i = 0; i < cnn->n_blocks; i++) {
        const block *b = &cnn->blocks[i];
        int e0 = b->in_edge;
        int e1 = eng__conv_out(e0, b->conv[0].kh, b->conv[0].stride, b->conv[0].pad);
        const float *id = cur;
        others(buf, cur, o);
        if (b->down.w) {
            eng__conv_forward(&b->down, cur, n, e0, e0, o[2], NULL, 0, col, cf);
            id = o[2];
        }
        eng__conv_forward(&b->conv[0], cur, n, e0, e0, o[0], NULL, 1, col, cf);
        if (cnn->bottleneck) {
            int e2 = eng__conv_out(e1, 3, b->conv[1].stride, 1);
            eng__conv_forward(&b->conv[1], o[0], n, e1, e1, o[1], NULL, 1, col, cf);
            /* o[0] is free again: conv3 adds the shortcut and lands there. */
            eng__conv_forward(&b->conv[2], o[1], n, e2, e2, o[0], id, 1, col, cf);
            cur = o[0];
        } else {
            eng__conv_forward(&b->conv[1], o[0], n, e1, e1, o[1], id, 1, col, cf);
            cur = o[1];
        }
    }
    int hw = cnn->final_edge * cnn->final_edge;
    eng__global_avgpool(cur, n, hw, cnn->features, ctx->pooled);
    eng__sgemm(0, 0, n, cnn->num_classes, cnn->features, 1.0f, ctx->pooled, cnn->features,
               cnn->fc_w, cnn->num_classes, 0.0f, logits, cnn->num_classes);
    for (int img = 0; img < n; img++)
        for (int k = 0; k < cnn->num_classes; k++)
            logits[(size_t)img * cnn->num_classes + k] += cnn->fc_b[k];
}

void eng__cnn_forward(eng__cnn_ctx *ctx, const float *images, int n, float *logits)
{
    size_t in = eng__cnn_input_floats(ctx->cnn), nc = (size_t)ctx->cnn->num_classes;
    for (int i = 0; i < n; i += ctx->max_batch) {
        int m = n - i < ctx->max_batch ? n - i : ctx->max_batch;
        forward_batch(ctx, images + (size_t)i * in, m, logits + (size_t)i * nc);
    }
}
