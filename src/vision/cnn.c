/* cnn.c: the ResNet forward pass (see cnn.h): metadata and tensor binding,
 * weight packing, scratch sizing, and the block sequence on padded NHWC
 * feature maps, run SPMD on a team. The layer arithmetic lives in conv.c. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "conv.h"
#include "kind.h"
#include "team.h"

#define MAX_BLOCKS_PER_LAYER 64
#define MAX_WIDTH 1024
#define MAX_CLASSES 100000
#define MIN_CROP 32       /* the network divides the edge by 32 */
#define MAX_CROP 1024
#define MAX_BATCH 4096
#define MAX_MEMBERS 1024
#define STEM_PAD 3        /* the input's border: the 7x7 stem conv's padding */
#define PAD 1             /* every later feature map's: the 3x3 convs' padding */

static int min_int(int a, int b) { return a < b ? a : b; }

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
    const float *fc_packed;
    float *packed;        /* every conv's and fc's packed weights, one block */
};

struct eng__cnn_ctx {
    const eng__cnn *cnn;
    int max_batch;
    float *buf[4];        /* feature maps, each max_batch x the largest padded layer */
    size_t buf_floats;    /* of each buf */
    float *pooled;        /* max_batch x features */
    float *wino;          /* the Winograd layers' scratch for every member, or NULL */
    size_t wino_floats;
    eng__team_counter *work;   /* one per conv of the network (all_convs' order) */
    int n_work;
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
    free(cnn->packed);
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
        cJSON_GetArraySize(ls) != 4 || !eng__meta_int(rn, "width", 1, MAX_WIDTH, width) ||
        !eng__meta_int(m, "num_classes", 1, MAX_CLASSES, &cnn->num_classes)) {
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
    if (!eng__meta_int(img, "resize", 0, ENG_IMAGE_MAX_SIDE, &s->resize) ||
        !eng__meta_int(img, "crop", MIN_CROP, MAX_CROP, &s->crop) ||
        (s->resize && s->crop > s->resize) || !eng__meta_floats3(img, "mean", s->mean) ||
        !eng__meta_floats3(img, "std", s->std) || !(s->std[0] > 0 && s->std[1] > 0 && s->std[2] > 0)) {
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

/* Every conv of the network in a fixed order: the stem, then each block's
 * convs and shortcut projection; edge[i] the output edge of list[i]. */
static int all_convs(eng__cnn *cnn, eng__conv **list, int *edge)
{
    int n = 0;
    list[n] = &cnn->stem;
    edge[n++] = cnn->stem_edge;
    for (int i = 0; i < cnn->n_blocks; i++) {
        block *b = &cnn->blocks[i];
        int e = b->in_edge;
        for (int j = 0; j < (cnn->bottleneck ? 3 : 2); j++) {
            e = eng__conv_out(e, b->conv[j].kh, b->conv[j].stride, b->conv[j].pad);
            list[n] = &b->conv[j];
            edge[n++] = e;
        }
        if (b->down.w) {
            list[n] = &b->down;
            edge[n++] = e;
        }
    }
    return n;
}

/* Bytes of c's packed weights: transformed for Winograd's tiles of m, or
 * as they are (m = 0). */
static size_t packed_bytes(const eng__conv *c, int m)
{
    return m ? eng__conv_winograd_bytes(c, m)
             : eng__sgemm_packed_bytes(c->kh * c->kw * c->cin, c->cout);
}

/* Packs every conv's weights and fc's into one 64-byte aligned block, once,
 * so the forward pass streams panels (sgemm.h) and never repacks: the convs
 * that suit Winograd's algorithm in its transformed form only, the rest as
 * they are. */
static int pack_weights(eng__cnn *cnn)
{
    const size_t most = (size_t)(1 + 4 * cnn->n_blocks);
    eng__conv **list = malloc(sizeof *list * most);
    int *edge = malloc(sizeof *edge * most);
    if (!list || !edge) {
        free(list);
        free(edge);
        return 0;
    }
    const int nc = all_convs(cnn, list, edge);
    size_t bytes = eng__sgemm_packed_bytes(cnn->features, cnn->num_classes);
    for (int i = 0; i < nc; i++)
        bytes += packed_bytes(list[i], eng__conv_winograd_suits(list[i], edge[i]));
    cnn->packed = aligned_alloc(64, bytes);
    if (cnn->packed) {
        /* Every packed size is a multiple of 64 bytes, so each stays aligned. */
        float *at = cnn->packed;
        for (int i = 0; i < nc; i++) {
            eng__conv *c = list[i];
            const int m = eng__conv_winograd_suits(c, edge[i]);
            if (m) {
                eng__conv_winograd_pack(c, m, at);
                c->wino = at;
                c->wino_m = m;
            } else {
                eng__sgemm_pack(c->w, c->kh * c->kw * c->cin, c->cout, at);
                c->packed = at;
            }
            at += packed_bytes(c, m) / sizeof(float);
        }
        eng__sgemm_pack(cnn->fc_w, cnn->features, cnn->num_classes, at);
        cnn->fc_packed = at;
    }
    free(list);
    free(edge);
    return cnn->packed != NULL;
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
    if (!pack_weights(cnn)) {
        eng__cnn_free(cnn);
        snprintf(err, errlen, "out of memory for the packed weights");
        return ENG_ERR_NOMEM;
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

/* Floats of one image's padded output of c over a square input edge. */
static size_t conv_out_floats(const eng__conv *c, int edge)
{
    int e = eng__conv_out(edge, c->kh, c->stride, c->pad);
    return eng__fmap_floats(1, e, e, c->cout, PAD);
}

eng_status eng__cnn_ctx_init(const eng__cnn *cnn, int max_batch, int members,
                             eng__cnn_ctx **out, char *err, size_t errlen)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > MAX_BATCH || members < 1 || members > MAX_MEMBERS) {
        snprintf(err, errlen, "max_batch %d or members %d is outside 1..%d or 1..%d", max_batch,
                 members, MAX_BATCH, MAX_MEMBERS);
        return ENG_ERR_INVALID_ARG;
    }
    /* The largest padded feature map of one image, the input included (the
     * stem's output is pooled as it goes, never stored). */
    const int crop = cnn->spec.crop;
    size_t act = eng__fmap_floats(1, crop, crop, 3, STEM_PAD), wino = 0;
    for (int i = 0; i < cnn->n_blocks; i++) {
        const block *b = &cnn->blocks[i];
        int edge = b->in_edge;
        grow(&act, eng__fmap_floats(1, edge, edge, b->conv[0].cin, PAD));
        for (int j = 0; j < (cnn->bottleneck ? 3 : 2); j++) {
            grow(&act, conv_out_floats(&b->conv[j], edge));
            if (b->conv[j].wino)
                grow(&wino, eng__conv_winograd_scratch(&b->conv[j]));
            edge = eng__conv_out(edge, b->conv[j].kh, b->conv[j].stride, b->conv[j].pad);
        }
    }
    /* Each buffer holds a batch's map, and buf[1] also the stem's scratch of
     * every member. aligned_alloc wants a multiple of the alignment. */
    const eng__fmap input = { NULL, 1, crop, crop, 3, STEM_PAD };
    size_t floats = act * (size_t)max_batch;
    grow(&floats, eng__conv_maxpool_scratch(&cnn->stem, &input) * (size_t)members);
    const size_t bytes = (sizeof(float) * floats + 63) & ~(size_t)63;
    eng__cnn_ctx *ctx = calloc(1, sizeof *ctx);
    int ok = ctx != NULL;
    if (ok) {
        ctx->cnn = cnn;
        ctx->max_batch = max_batch;
        ctx->buf_floats = floats;
        ctx->wino_floats = wino * (size_t)members;
        if (wino)
            ok = (ctx->wino = aligned_alloc(64, sizeof(float) * ctx->wino_floats)) != NULL;
        for (int i = 0; i < 4; i++)
            ok = ok && (ctx->buf[i] = aligned_alloc(64, bytes));
        ok = ok && (ctx->pooled = malloc(sizeof(float) * (size_t)cnn->features * max_batch));
        ctx->n_work = 1 + 4 * cnn->n_blocks;
        ok = ok && (ctx->work = aligned_alloc(_Alignof(eng__team_counter),
                                              sizeof *ctx->work * (size_t)ctx->n_work));
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
    free(ctx->pooled);
    free(ctx->wino);
    free(ctx->work);
    free(ctx);
}

/* ---- Forward ------------------------------------------------------------- */

typedef struct {
    eng__cnn_ctx *ctx;
    eng__team *team;
    const eng__sgemm_kernels *sk;
    const eng__kernels *k;
    const float *images;
    int n;
    float *logits;
} pass;

/* The three buffers other than cur, in o[0..2]. */
static void others(float *const buf[4], const float *cur, float *o[3])
{
    for (int i = 0, j = 0; i < 4; i++)
        if (buf[i] != cur)
            o[j++] = buf[i];
}

/* The feature map c writes when it reads in, stored in d. */
static eng__fmap out_map(const eng__conv *c, const eng__fmap *in, float *d)
{
    int e = eng__conv_out(in->h, c->kh, c->stride, c->pad);
    return (eng__fmap){ d, in->n, e, e, c->cout, PAD };
}

/* Member tid's part of out = act(c(in) + b + res), by Winograd's algorithm
 * where c was packed for it, else directly (conv.h). */
static void conv(const pass *ps, const eng__conv *c, const eng__fmap *in, const eng__fmap *out,
                 const eng__fmap *res, int relu, eng__team_counter *work, int tid, int nt)
{
    if (c->wino)
        eng__conv_winograd_forward(ps->sk, ps->k, c, in, out, res, relu, ps->ctx->wino,
                                   ps->ctx->wino_floats, work, tid, nt);
    else
        eng__conv_forward(ps->sk, c, in, out, res, relu, work, tid, nt);
}

/* One member's part of a batch: every layer split among the members, with a
 * barrier wherever the next layer reads what other members wrote. */
static void forward_member(void *arg, int tid, int nt)
{
    const pass *ps = arg;
    const eng__cnn *cnn = ps->ctx->cnn;
    const eng__sgemm_kernels *sk = ps->sk;
    float *const *buf = ps->ctx->buf;
    const int n = ps->n, crop = cnn->spec.crop;
    const size_t plane = (size_t)crop * crop;

    /* NCHW input to padded NHWC, a share of the padded rows each. */
    const eng__fmap x = { buf[0], n, crop, crop, 3, STEM_PAD };
    int lo, hi;
    eng__team_share(n * (crop + 2 * STEM_PAD), tid, nt, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        const int img = r / (crop + 2 * STEM_PAD), y = r % (crop + 2 * STEM_PAD) - STEM_PAD;
        float *dst = eng__fmap_at(&x, img, y, -STEM_PAD);
        memset(dst, 0, sizeof(float) * 3 * (size_t)(crop + 2 * STEM_PAD));
        if (y < 0 || y >= crop)
            continue;
        const float *src = ps->images + (size_t)img * 3 * plane + (size_t)y * crop;
        dst += 3 * STEM_PAD;
        for (int xx = 0; xx < crop; xx++)
            for (int ch = 0; ch < 3; ch++)
                dst[3 * xx + ch] = src[ch * plane + (size_t)xx];
    }
    eng__team_barrier(ps->team);
    /* Each conv takes its work from the next counter, in all_convs' order. */
    eng__team_counter *work = ps->ctx->work;
    /* The stem and its pooling in one pass, buf[1] the members' scratch. */
    const int pe = eng__conv_out(cnn->stem_edge, 3, 2, 1);
    eng__fmap cur = { buf[2], n, pe, pe, cnn->stem.cout, PAD };
    eng__conv_maxpool_forward(sk, &cnn->stem, &x, &cur, buf[1], ps->ctx->buf_floats, 1, work++,
                              tid, nt);
    eng__team_barrier(ps->team);

    for (int i = 0; i < cnn->n_blocks; i++) {
        const block *b = &cnn->blocks[i];
        float *o[3];
        others(buf, cur.d, o);
        eng__fmap id = cur;
        /* The shortcut projection and conv1 both read cur only. all_convs
         * lists the convs before the projection. */
        eng__team_counter *conv_work = work, *down_work = work + (cnn->bottleneck ? 3 : 2);
        work = down_work + (b->down.w ? 1 : 0);
        if (b->down.w) {
            id = out_map(&b->down, &cur, o[2]);
            conv(ps, &b->down, &cur, &id, NULL, 0, down_work, tid, nt);
        }
        const eng__fmap h1 = out_map(&b->conv[0], &cur, o[0]);
        conv(ps, &b->conv[0], &cur, &h1, NULL, 1, conv_work, tid, nt);
        eng__team_barrier(ps->team);
        const eng__fmap h2 = out_map(&b->conv[1], &h1, o[1]);
        if (cnn->bottleneck) {
            conv(ps, &b->conv[1], &h1, &h2, NULL, 1, conv_work + 1, tid, nt);
            eng__team_barrier(ps->team);
            /* o[0] is free again: conv3 adds the shortcut and lands there. */
            cur = out_map(&b->conv[2], &h2, o[0]);
            conv(ps, &b->conv[2], &h2, &cur, &id, 1, conv_work + 2, tid, nt);
        } else {
            conv(ps, &b->conv[1], &h1, &h2, &id, 1, conv_work + 1, tid, nt);
            cur = h2;
        }
        eng__team_barrier(ps->team);
    }
    eng__global_avgpool(&cur, ps->ctx->pooled, tid, nt);
    eng__team_barrier(ps->team);
    /* The classifier, a share of its 16-column panels each. */
    const int K = cnn->features, nc = cnn->num_classes;
    eng__team_share((nc + 15) / 16, tid, nt, &lo, &hi);
    if (hi > lo)
        eng__sgemm_packed(sk, ps->ctx->pooled, n, K, (size_t)K,
                          cnn->fc_packed + (size_t)lo * K * 16, min_int(nc, 16 * hi) - 16 * lo,
                          ps->logits + 16 * lo, (size_t)nc, cnn->fc_b + 16 * lo, NULL, ENG_ACT_NONE);
}

void eng__cnn_forward(eng__cnn_ctx *ctx, eng__team *team, const float *images, int n,
                      float *logits)
{
    size_t in = eng__cnn_input_floats(ctx->cnn), nc = (size_t)ctx->cnn->num_classes;
    for (int i = 0; i < n; i += ctx->max_batch) {
        pass ps = { ctx, team, eng__sgemm_get(), eng__kernels_get(), images + (size_t)i * in,
                    n - i < ctx->max_batch ? n - i : ctx->max_batch, logits + (size_t)i * nc };
        for (int j = 0; j < ctx->n_work; j++)
            eng__team_counter_zero(&ctx->work[j]);
        eng__team_run(team, forward_member, &ps);
    }
}
