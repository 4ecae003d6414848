/* vit.c: the vision-transformer kind (kind.h): ViT classifiers and encoders
 * and CLIP (vit.h), their contexts and batch runner.
 *
 * Images: a pass decodes up to max_images images on the team (as
 * src/vision/vision.c does), unfolds each into its patches, runs the patch
 * embedding as one GEMM over all patches of the pass, prepends the class
 * token, adds the position embeddings (CLIP: then pre_layrnorm), and runs
 * the shared tower (tower.h) over the images packed back to back. The heads
 * take token 0 of each image: the final layernorm (ViT) or post_layernorm
 * (CLIP), then the classifier, pooler or visual projection.
 *
 * CLIP texts (token ids, or texts through the tok.json tokenizer): the tower
 * is causal and the pooled token is the end-of-text one, so the tokens after
 * it change nothing: each sequence runs up to its pooled position only,
 * packed like images. A bad item fails alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "model.h"
#include "kind.h"
#include "team.h"
#include "vit.h"

extern const eng__kind eng__kind_vit;

#define MAX_SIDE 4096
#define MAX_CLASSES 100000
/* Tokens per image ([CLS] included): ViT-H/14 at 518 px has 1370; the
 * bound keeps a context's row counts far inside int. */
#define MAX_IMAGE_TOKENS 16384

/* ---- Loading ---------------------------------------------------------------- */

static int json_num(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return 0;
    *out = v->valuedouble;
    return 1;
}

static const char *json_str(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static const float *f32(const eng__file *f, const char *name, uint64_t d0, uint64_t d1, char *err,
                        size_t errlen)
{
    const eng__file_tensor *t = eng__file_find(f, name);
    int ok = t && t->dtype == ENG_DT_F32 &&
             (d1 ? t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1
                 : t->ndim == 1 && t->shape[0] == d0);
    if (!ok) {
        if (d1)
            snprintf(err, errlen, "tensor %s missing or not F32 [%llu,%llu]", name,
                     (unsigned long long)d0, (unsigned long long)d1);
        else
            snprintf(err, errlen, "tensor %s missing or not F32 [%llu]", name,
                     (unsigned long long)d0);
        return NULL;
    }
    return eng__file_data(f, t);
}

/* A tower's shape from its metadata object. */
static int tower_config(eng__tower *t, const cJSON *o, char *err, size_t errlen)
{
    double eps;
    const char *act = json_str(o, "act", "");
    if (!eng__meta_int(o, "hidden", 1, 65536, &t->hidden) ||
        !eng__meta_int(o, "layers", 0, 1024, &t->layers) || !eng__meta_int(o, "heads", 1, 1024, &t->heads) ||
        !eng__meta_int(o, "intermediate", 1, 1 << 20, &t->inter) || !json_num(o, "eps", &eps) ||
        eps <= 0) {
        snprintf(err, errlen,
                 "metadata lacks a valid tower {hidden, layers, heads, intermediate, eps}");
        return 0;
    }
    t->eps = (float)eps;
    if (!strcmp(act, "gelu"))
        t->act = ENG_ACT_GELU;
    else if (!strcmp(act, "gelu_tanh"))
        t->act = ENG_ACT_GELU_TANH;
    else if (!strcmp(act, "quick_gelu"))
        t->act = ENG_ACT_QUICK_GELU;
    else if (!strcmp(act, "relu"))
        t->act = ENG_ACT_RELU;
    else {
        snprintf(err, errlen, "unknown activation \"%s\"", act);
        return 0;
    }
    return 1;
}

static int image_config(eng__vit_model *m, const cJSON *img, char *err, size_t errlen)
{
    eng__image_spec *s = &m->spec;
    const char *filter = json_str(img, "filter", "bilinear");
    if (!eng__meta_int(img, "resize", 0, ENG_IMAGE_MAX_SIDE, &s->resize) ||
        !eng__meta_int(img, "crop", 1, MAX_SIDE, &s->crop) || !eng__meta_floats3(img, "mean", s->mean) ||
        !eng__meta_floats3(img, "std", s->std) || !(s->std[0] > 0 && s->std[1] > 0 && s->std[2] > 0) ||
        !eng__meta_int(img, "square", 0, 1, &s->square) ||
        !eng__meta_int(img, "crop_floor", 0, 1, &s->crop_floor) ||
        !json_num(img, "rescale", &s->rescale) || s->rescale < 0 ||
        (s->resize && s->crop > s->resize) ||
        (strcmp(filter, "bilinear") && strcmp(filter, "bicubic"))) {
        snprintf(err, errlen,
                 "metadata lacks a valid image {resize, crop, mean[3], std[3], filter, "
                 "square, crop_floor, rescale}");
        return 0;
    }
    s->filter = strcmp(filter, "bicubic") ? ENG__FILTER_BILINEAR : ENG__FILTER_BICUBIC;
    return 1;
}

static eng_status load_labels(eng__vit_model *m, const cJSON *meta, char *err, size_t errlen)
{
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
    if (!labels)
        return ENG_OK;
    if (!cJSON_IsArray(labels) || cJSON_GetArraySize(labels) != m->n_labels) {
        snprintf(err, errlen, "metadata labels are not num_classes strings");
        return ENG_ERR_FORMAT;
    }
    if (!(m->labels = calloc((size_t)m->n_labels, sizeof *m->labels)))
        return ENG_ERR_NOMEM;
    for (int i = 0; i < m->n_labels; i++) {
        const cJSON *v = cJSON_GetArrayItem(labels, i);
        if (!cJSON_IsString(v)) {
            snprintf(err, errlen, "label %d is not a string", i);
            return ENG_ERR_FORMAT;
        }
        if (!(m->labels[i] = strdup(v->valuestring)))
            return ENG_ERR_NOMEM;
    }
    return ENG_OK;
}

static eng_status load_vision(eng__vit_model *m, const cJSON *meta, char *err, size_t errlen)
{
    const eng__file *f = m->file;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, "vision");
    int pre_ln = 0;
    if (!tower_config(&m->vis, v, err, errlen))
        return ENG_ERR_FORMAT;
    if (!eng__meta_int(v, "patch", 1, MAX_SIDE, &m->patch) ||
        !eng__meta_int(v, "image_size", 1, MAX_SIDE, &m->image_size) || m->image_size % m->patch ||
        !eng__meta_int(v, "pre_ln", 0, 1, &pre_ln)) {
        snprintf(err, errlen, "metadata lacks a valid vision {patch, image_size, pre_ln}");
        return ENG_ERR_FORMAT;
    }
    if (m->spec.crop != m->image_size) {
        snprintf(err, errlen, "the image recipe makes %d px images, the model takes %d",
                 m->spec.crop, m->image_size);
        return ENG_ERR_FORMAT;
    }
    const int H = m->vis.hidden, side = m->image_size / m->patch;
    m->grid = side * side;
    if (m->grid + 1 > MAX_IMAGE_TOKENS) {
        snprintf(err, errlen, "%d patches per image: over the %d tokens supported", m->grid,
                 MAX_IMAGE_TOKENS - 1);
        return ENG_ERR_UNSUPPORTED;
    }
    eng_status s;
    if ((s = eng__tower_bind(&m->vis, f, "v", err, errlen)) ||
        (s = eng__linear_bind(&m->patch_lin, f, "v.patch", 3 * m->patch * m->patch, H, err,
                              errlen)))
        return s;
    if (!(m->cls = f32(f, "v.cls", (uint64_t)H, 0, err, errlen)) ||
        !(m->pos = f32(f, "v.pos", (uint64_t)m->grid + 1, (uint64_t)H, err, errlen)) ||
        !(m->ln_g = f32(f, "v.ln.g", (uint64_t)H, 0, err, errlen)) ||
        !(m->ln_b = f32(f, "v.ln.b", (uint64_t)H, 0, err, errlen)))
        return ENG_ERR_FORMAT;
    if (pre_ln && (!(m->pre_g = f32(f, "v.pre_ln.g", (uint64_t)H, 0, err, errlen)) ||
                   !(m->pre_b = f32(f, "v.pre_ln.b", (uint64_t)H, 0, err, errlen))))
        return ENG_ERR_FORMAT;
    return ENG_OK;
}

static eng_status load_vit_head(eng__vit_model *m, const cJSON *meta, char *err, size_t errlen)
{
    const char *head = json_str(meta, "head", "none");
    const int H = m->vis.hidden;
    m->embed_size = H;
    if (!strcmp(head, "classifier")) {
        m->head = VIT_HEAD_CLASSIFIER;
        if (!eng__meta_int(meta, "num_classes", 1, MAX_CLASSES, &m->n_labels)) {
            snprintf(err, errlen, "metadata lacks num_classes");
            return ENG_ERR_FORMAT;
        }
        eng_status s = eng__linear_bind(&m->head_lin, m->file, "head", H, m->n_labels, err, errlen);
        return s ? s : load_labels(m, meta, err, errlen);
    }
    if (!strcmp(head, "pooler")) {
        m->head = VIT_HEAD_POOLER;
        return eng__linear_bind(&m->head_lin, m->file, "pooler", H, H, err, errlen);
    }
    if (strcmp(head, "none")) {
        snprintf(err, errlen, "unknown ViT head \"%s\"", head);
        return ENG_ERR_FORMAT;
    }
    return ENG_OK;
}

static eng_status load_clip(eng__vit_model *m, const cJSON *meta, char *err, size_t errlen)
{
    const eng__file *f = m->file;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(meta, "text");
    if (!eng__meta_int(meta, "projection", 1, 65536, &m->embed_size) ||
        !tower_config(&m->txt, t, err, errlen) || !eng__meta_int(t, "vocab", 1, 1 << 24, &m->vocab) ||
        !eng__meta_int(t, "positions", 1, ENG_SCHED_MAX_POSITIONS, &m->positions) ||
        !eng__meta_int(t, "eos_id", 0, 1 << 24, &m->eos_id)) {
        if (!*err)
            snprintf(err, errlen,
                     "metadata lacks a valid projection or text {vocab, positions, eos_id}");
        return ENG_ERR_FORMAT;
    }
    m->txt.causal = 1;
    const int Ht = m->txt.hidden, D = m->embed_size;
    eng_status s;
    if ((s = eng__tower_bind(&m->txt, f, "t", err, errlen)) ||
        (s = eng__linear_bind(&m->vproj, f, "v.proj", m->vis.hidden, D, err, errlen)) ||
        (s = eng__linear_bind(&m->tproj, f, "t.proj", Ht, D, err, errlen)))
        return s;
    const float *scale;
    if (!(m->tok_emb = f32(f, "t.emb", (uint64_t)m->vocab, (uint64_t)Ht, err, errlen)) ||
        !(m->tpos = f32(f, "t.pos", (uint64_t)m->positions, (uint64_t)Ht, err, errlen)) ||
        !(m->tln_g = f32(f, "t.ln.g", (uint64_t)Ht, 0, err, errlen)) ||
        !(m->tln_b = f32(f, "t.ln.b", (uint64_t)Ht, 0, err, errlen)) ||
        !(scale = f32(f, "logit_scale", 1, 0, err, errlen)))
        return ENG_ERR_FORMAT;
    m->logit_scale = expf(scale[0]);
    /* The tokenizer, when the folder had a tokenizer.json: capped at the text
     * tower's positions (HF truncates to model_max_length, keeping the
     * end-of-text id last). Without one, texts come as ids (eng_embed_ids). */
    const eng__file_tensor *tj = eng__file_find(f, "tok.json");
    if (!tj)
        return ENG_OK;
    if (tj->dtype != ENG_DT_U8 || tj->ndim != 1) {
        snprintf(err, errlen, "tensor tok.json is not U8 bytes");
        return ENG_ERR_FORMAT;
    }
    if ((s = eng__tokenizer_init_json(&m->tok, eng__file_data(f, tj), (size_t)tj->nbytes,
                                      m->positions, err, errlen)))
        return s;
    if (eng__tokenizer_vocab_size(m->tok) > m->vocab) {
        snprintf(err, errlen, "the tokenizer has %d tokens, the text tower %d",
                 eng__tokenizer_vocab_size(m->tok), m->vocab);
        return ENG_ERR_FORMAT;
    }
    return ENG_OK;
}

static void vit_free(void *impl)
{
    eng__vit_model *m = impl;
    if (!m)
        return;
    eng__tower_release(&m->vis);
    eng__tower_release(&m->txt);
    eng__linear_release(&m->patch_lin);
    eng__linear_release(&m->head_lin);
    eng__linear_release(&m->vproj);
    eng__linear_release(&m->tproj);
    for (int i = 0; m->labels && i < m->n_labels; i++)
        free(m->labels[i]);
    free(m->labels);
    eng__tokenizer_free(m->tok);
    eng__zs_free(m);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static eng_status vit_load(void **impl, const eng__file *f, const cJSON *meta,
                           const eng_model_params *p, char *err, size_t errlen)
{
    eng__vit_model *m = calloc(1, sizeof *m);
    *impl = m;
    if (!m)
        return ENG_ERR_NOMEM;
    pthread_mutex_init(&m->mu, NULL);
    m->file = f;
    const char *arch = json_str(meta, "arch", "");
    m->clip = !strcmp(arch, "clip");
    if (!m->clip && strcmp(arch, "vit")) {
        snprintf(err, errlen, "unknown vit arch \"%s\" (vit or clip)", arch);
        return ENG_ERR_FORMAT;
    }
    eng_status s = image_config(m, cJSON_GetObjectItemCaseSensitive(meta, "image"), err, errlen)
                       ? load_vision(m, meta, err, errlen)
                       : ENG_ERR_FORMAT;
    if (!s)
        s = m->clip ? load_clip(m, meta, err, errlen) : load_vit_head(m, meta, err, errlen);
    if (!s)
        snprintf(m->gemm_name, sizeof m->gemm_name, "builtin (%s linear layers)",
                 m->vis.layers ? eng__dtype_name(m->vis.layer[0].qkv.dtype) : "F32");
    return s;
}

static void vit_describe(const void *impl, eng_model_info *info, const char **gemm_name)
{
    const eng__vit_model *m = impl;
    info->arch = m->clip ? "clip" : "vit";
    info->input = ENG_INPUT_IMAGE;
    info->weights = m->vis.layers && m->vis.layer[0].qkv.dtype == ENG_DT_I8     ? "int8"
                    : m->vis.layers && m->vis.layer[0].qkv.dtype == ENG_DT_BF16 ? "bf16"
                                                                                : "fp32";
    info->n_labels = m->n_labels;
    info->image_size = m->image_size;
    info->hidden = m->vis.hidden;
    info->layers = m->vis.layers;
    info->heads = m->vis.heads;
    info->intermediate = m->vis.inter;
    info->max_positions = m->clip ? m->positions : 0;
    info->vocab_size = m->clip ? m->vocab : 0;
    info->embed_size = m->embed_size;
    *gemm_name = m->gemm_name;
}

static const char *vit_label(const void *impl, int i)
{
    const eng__vit_model *m = impl;
    return m->labels && i >= 0 && i < m->n_labels ? m->labels[i] : NULL;
}

/* ---- Context ---------------------------------------------------------------- */

typedef struct {
    int max_images, max_text_rows;
    const eng__bgemm_kernels *bk;      /* bf16 precision: the GEMM unit; fp32: NULL */
    eng__tower_scratch vs, ts;         /* the vision and text towers' scratch */
    float *images;                     /* [max_images][3][S][S] */
    float *patches;                    /* [max_images * grid][3 p p] */
    float *pooled;                     /* [max(max_images, max_text_rows)][max hidden] */
    float *head_out;                   /* [same rows][max(classes, embed, hidden)] */
    int *index;                        /* caller index of each packed item */
    eng_status *status;                /* [max(max_images, max_text_rows)] */
    char (*error)[192];                /* [max_images]: why an image failed */
    int first, n_err;                  /* the caller indices the errors describe */
    int *tok_id, *tok_pos, *off, *len; /* packed text rows and sequences */
    int32_t *text_ids;                 /* [positions]: the text being tokenized */
    eng__zs_scratch zs;                /* zeroshot.c's */
} vit_ctx;

static void vit_ctx_free(eng_ctx *ctx)
{
    vit_ctx *c = ctx->impl;
    if (!c)
        return;
    eng__tower_scratch_free(&c->vs);
    eng__tower_scratch_free(&c->ts);
    free(c->images);
    free(c->patches);
    free(c->pooled);
    free(c->head_out);
    free(c->index);
    free(c->status);
    free(c->error);
    free(c->tok_id);
    free(c->tok_pos);
    free(c->text_ids);
    free(c->off);
    free(c->len);
    free(c->zs.p);
    free(c);
    ctx->impl = NULL;
}

/* Makes the weights a context of precision bf16 or fp32 runs from, where the
 * file stores the other (eng__linear_prepare): once per model and precision,
 * at its first such context, under the model's lock; never changed once
 * made, and read by a context only after its ctx_create returned. */
static eng_status vit_prepare(const eng__vit_model *cm, int bf16, char *err, size_t errlen)
{
    eng__vit_model *m = (eng__vit_model *)cm;
    pthread_mutex_lock(&m->mu);
    eng_status s = eng__tower_prepare(&m->vis, bf16, err, errlen);
    if (!s)
        s = eng__linear_prepare(&m->patch_lin, bf16, err, errlen);
    if (!s && m->clip)
        s = eng__tower_prepare(&m->txt, bf16, err, errlen);
    pthread_mutex_unlock(&m->mu);
    return s;
}

static eng_status vit_ctx_create(eng_ctx *ctx, const eng_ctx_params *p)
{
    const eng__vit_model *m = ctx->model->impl;
    const int B = p->max_batch_images > 0 ? p->max_batch_images : 32;
    const int nt = eng__team_size(ctx->team);
    if (B > 4096 || (long)B * (m->grid + 1) > (1L << 22))
        return eng__errf(ENG_ERR_INVALID_ARG, ctx->error, sizeof ctx->error,
                         "max_batch_images %d is too large for %d tokens an image", B, m->grid + 1);
    /* CLIP's text tower packs up to max_batch_tokens tokens, at least one
     * whole sequence (an image context, the scheduler's, may ask for fewer:
     * its budget counts images). */
    long T = m->clip ? (p->max_batch_tokens > 0 ? p->max_batch_tokens : 4096) : 0;
    if (m->clip && T < m->positions)
        T = m->positions;
    if (T > (1L << 20))
        return eng__errf(ENG_ERR_INVALID_ARG, ctx->error, sizeof ctx->error,
                         "max_batch_tokens %ld is over 2^20", T);
    /* ctx.c let bf16 through only where a bf16 GEMM unit exists. */
    const int bf16 = p->precision == ENG_PREC_BF16;
    eng_status s = vit_prepare(m, bf16, ctx->error, sizeof ctx->error);
    if (s)
        return s;
    vit_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return ENG_ERR_NOMEM;
    ctx->impl = c;
    c->bk = bf16 ? eng__bgemm_get() : NULL;
    c->max_images = B;
    c->max_text_rows = (int)T;
    const size_t S = (size_t)m->image_size, P = (size_t)m->grid, pp = (size_t)m->patch * m->patch;
    const size_t rows = (size_t)(B > T ? B : T);
    const size_t wide = (size_t)(m->vis.hidden > m->txt.hidden ? m->vis.hidden : m->txt.hidden);
    size_t out = (size_t)m->embed_size > wide ? (size_t)m->embed_size : wide;
    out = (size_t)m->n_labels > out ? (size_t)m->n_labels : out;
    c->images = malloc((size_t)B * 3 * S * S * sizeof(float));
    c->patches = malloc((size_t)B * P * 3 * pp * sizeof(float));
    c->pooled = malloc(rows * wide * sizeof(float));
    c->head_out = malloc(rows * out * sizeof(float));
    c->index = malloc(rows * sizeof *c->index);
    c->off = malloc(rows * sizeof *c->off);
    c->len = malloc(rows * sizeof *c->len);
    c->status = malloc(rows * sizeof *c->status);
    c->error = malloc((size_t)B * sizeof *c->error);
    if (!c->images || !c->patches || !c->pooled || !c->head_out || !c->index || !c->status ||
        !c->error || !c->off || !c->len)
        return ENG_ERR_NOMEM;
    s = eng__tower_scratch_init(&c->vs, &m->vis, &m->patch_lin, (int)((size_t)B * (P + 1)),
                                (int)P + 1, nt, bf16);
    if (s)
        return s;
    if (m->clip) {
        c->tok_id = malloc((size_t)T * sizeof *c->tok_id);
        c->tok_pos = malloc((size_t)T * sizeof *c->tok_pos);
        c->text_ids = malloc((size_t)m->positions * sizeof *c->text_ids);
        if (!c->tok_id || !c->tok_pos || !c->text_ids)
            return ENG_ERR_NOMEM;
        s = eng__tower_scratch_init(&c->ts, &m->txt, NULL, (int)T, m->positions, nt, bf16);
    }
    return s;
}

/* ---- Images ----------------------------------------------------------------- */

typedef struct {
    eng_ctx *c;
    const eng__batch *b;
    int first, n; /* caller indices [first, first + n) of this pass */
    /* One image on a team: its pixels and resize, freed by the caller. */
    eng__rgb_image rgb;
    eng__resize rs;
} decode_pass;

/* One image on a team (batch 1): the first member decodes it and plans the
 * resize, then every member resizes a share of its rows, so the others do
 * not sleep through the bicubic passes; the pixels are the same. */
static void decode_shared(decode_pass *ip, int tid, int nt)
{
    vit_ctx *v = ip->c->impl;
    const eng__vit_model *m = ip->c->model->impl;
    if (tid == 0) {
        const int i = ip->first;
        char *err = v->error[0];
        const size_t errlen = sizeof v->error[0];
        eng_status st = ENG_ERR_INVALID_ARG;
        snprintf(err, errlen, "no image given");
        if (ip->b->paths ? ip->b->paths[i] != NULL : ip->b->data[i] != NULL)
            st = ip->b->paths
                     ? eng__image_decode_file(ip->b->paths[i], &ip->rgb, err, errlen)
                     : eng__image_decode(ip->b->data[i], ip->b->size[i], &ip->rgb, err, errlen);
        if (st == ENG_OK)
            st = eng__resize_plan(&ip->rs, &ip->rgb, &m->spec, err, errlen);
        v->status[0] = st;
    }
    eng__team_barrier(ip->c->team);
    if (v->status[0] != ENG_OK)
        return;
    int lo, hi;
    eng__team_share(ip->rs.rows, tid, nt, &lo, &hi);
    eng__resize_rows(&ip->rs, lo, hi);
    eng__team_barrier(ip->c->team);
    eng__team_share(m->spec.crop, tid, nt, &lo, &hi);
    eng__resize_finish(&ip->rs, v->images, lo, hi);
}

static void decode_member(void *arg, int tid, int nt)
{
    decode_pass *ip = arg;
    if (ip->n == 1 && nt > 1) {
        decode_shared(ip, tid, nt);
        return;
    }
    vit_ctx *v = ip->c->impl;
    const eng__vit_model *m = ip->c->model->impl;
    const size_t F = 3 * (size_t)m->image_size * m->image_size;
    int lo, hi;
    eng__team_share(ip->n, tid, nt, &lo, &hi);
    for (int j = lo; j < hi; j++) {
        const int i = ip->first + j;
        char *err = v->error[j];
        float *dst = v->images + (size_t)j * F;
        snprintf(err, sizeof v->error[j], "no image given");
        if (ip->b->paths)
            v->status[j] = ip->b->paths[i] ? eng__image_load(ip->b->paths[i], &m->spec, dst, err,
                                                             sizeof v->error[j])
                                           : ENG_ERR_INVALID_ARG;
        else
            v->status[j] = ip->b->data[i]
                               ? eng__image_load_mem(ip->b->data[i], ip->b->size[i], &m->spec, dst,
                                                     err, sizeof v->error[j])
                               : ENG_ERR_INVALID_ARG;
    }
}

typedef struct {
    eng__tower_job tj; /* all n (grid + 1) token rows */
    eng__tower_job pj; /* the n grid patch rows */
    const eng__vit_model *m;
    vit_ctx *v;
    int n;
} vision_pass;

/* Member tid's share of the patch rows unfolded, the patch GEMM, its token rows
 * assembled, then the tower. */
static void vision_member(void *arg, int tid, int nt)
{
    const vision_pass *vp = arg;
    const eng__vit_model *m = vp->m;
    vit_ctx *v = vp->v;
    const int p = m->patch, side = m->image_size / p, S = m->image_size, P = m->grid;
    const size_t K = 3 * (size_t)p * p, H = (size_t)m->vis.hidden, plane = (size_t)S * S;
    int lo, hi;
    eng__team_share(vp->pj.T, tid, nt, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        const int b = r / P, q = r % P;
        const float *img = v->images + (size_t)b * 3 * plane;
        float *row = v->patches + (size_t)r * K;
        const int y0 = (q / side) * p, x0 = (q % side) * p;
        for (int ch = 0; ch < 3; ch++)
            for (int ky = 0; ky < p; ky++)
                memcpy(row + ((size_t)ch * p + ky) * p,
                       img + ch * plane + (size_t)(y0 + ky) * S + x0, (size_t)p * sizeof(float));
    }
    /* By rows, each member's GEMM reads only the patch rows it unfolded. */
    if (vp->pj.by_cols)
        eng__team_barrier(vp->tj.team);
    eng__tower_linear(&vp->pj, &m->patch_lin, v->patches, v->vs.tmp, NULL, ENG_ACT_NONE, tid, nt);
    if (!vp->pj.by_cols)
        eng__team_barrier(vp->tj.team);
    eng__team_share(vp->tj.T, tid, nt, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        const int b = r / (P + 1), t = r % (P + 1);
        const float *src = t ? v->vs.tmp + ((size_t)b * P + t - 1) * H : m->cls;
        const float *pe = m->pos + (size_t)t * H;
        float *dst = v->vs.h + (size_t)r * H;
        for (size_t i = 0; i < H; i++)
            dst[i] = src[i] + pe[i];
    }
    if (m->pre_g && hi > lo)
        vp->tj.k->layernorm(v->vs.h + (size_t)lo * H, v->vs.h + (size_t)lo * H, m->pre_g, m->pre_b,
                            hi - lo, (int)H, m->vis.eps);
    eng__tower_member(&vp->tj, tid, nt);
}

/* The n decoded images at the front of v->images through the vision tower
 * and the head: v->head_out gets n rows of logits (classify) or embeddings. */
static void vision_forward(eng_ctx *c, int n, eng_task task)
{
    const eng__vit_model *m = c->model->impl;
    vit_ctx *v = c->impl;
    const int nt = eng__team_size(c->team), P1 = m->grid + 1, H = m->vis.hidden;
    for (int b = 0; b < n; b++) {
        v->off[b] = b * P1;
        v->len[b] = P1;
    }
    vision_pass vp = {.m = m, .v = v, .n = n};
    vp.tj =
        (eng__tower_job){&m->vis, &v->vs, c->team, c->kern, v->bk, n * P1, n, v->off, v->len, 0};
    eng__tower_job_plan(&vp.tj, nt);
    vp.pj = vp.tj;
    vp.pj.T = n * m->grid;
    eng__tower_job_plan(&vp.pj, nt);
    eng__team_run(c->team, vision_member, &vp);
    for (int b = 0; b < n; b++)
        c->kern->layernorm(v->pooled + (size_t)b * H, v->vs.h + (size_t)b * P1 * H, m->ln_g,
                           m->ln_b, 1, H, m->vis.eps);
    /* The heads are fp32 (the converter stores them so): no scratch. */
    if (m->clip) {
        eng__linear_run(&m->vproj, v->pooled, n, v->head_out, NULL, ENG_ACT_NONE, NULL, c->kern,
                        NULL);
    } else if (m->head == VIT_HEAD_CLASSIFIER && task == ENG_TASK_CLASSIFY) {
        eng__linear_run(&m->head_lin, v->pooled, n, v->head_out, NULL, ENG_ACT_NONE, NULL, c->kern,
                        NULL);
    } else if (m->head == VIT_HEAD_POOLER) {
        eng__linear_run(&m->head_lin, v->pooled, n, v->head_out, NULL, ENG_ACT_NONE, NULL, c->kern,
                        NULL);
        for (size_t i = 0; i < (size_t)n * H; i++)
            v->head_out[i] = tanhf(v->head_out[i]);
    } else {
        memcpy(v->head_out, v->pooled, (size_t)n * H * sizeof(float));
    }
}

int eng__vit_ctx_bf16(const eng_ctx *c)
{
    return ((const vit_ctx *)c->impl)->bk != NULL;
}

eng__zs_scratch *eng__vit_ctx_zs(eng_ctx *c)
{
    return &((vit_ctx *)c->impl)->zs;
}

eng_status eng__vit_embed_pixels(eng_ctx *c, const float *pixels, int n, float *out)
{
    if (c->model->kind != &eng__kind_vit || n < 0 || n > ((vit_ctx *)c->impl)->max_images)
        return ENG_ERR_INVALID_ARG;
    const eng__vit_model *m = c->model->impl;
    vit_ctx *v = c->impl;
    const size_t F = 3 * (size_t)m->image_size * m->image_size;
    memcpy(v->images, pixels, (size_t)n * F * sizeof(float));
    vision_forward(c, n, ENG_TASK_EMBED);
    memcpy(out, v->head_out, (size_t)n * m->embed_size * sizeof(float));
    return ENG_OK;
}

/* Zeroes item i's outputs (a failed item). */
static void clear_item(const eng__batch *b, int i, int W)
{
    memset(b->out + (size_t)i * W, 0, (size_t)W * sizeof(float));
    if (b->probs)
        memset(b->probs + (size_t)i * W, 0, (size_t)W * sizeof(float));
    if (b->labels)
        b->labels[i] = -1;
}

static eng_status run_images(eng_ctx *c, const eng__batch *b, int W)
{
    vit_ctx *v = c->impl;
    const eng__vit_model *m = c->model->impl;
    const size_t F = 3 * (size_t)m->image_size * m->image_size;
    eng_status first = ENG_OK;
    v->n_err = 0;
    for (int base = 0; base < b->n; base += v->max_images) {
        decode_pass dp = {.c = c, .b = b, .first = base,
                          .n = b->n - base < v->max_images ? b->n - base : v->max_images};
        eng__team_run(c->team, decode_member, &dp);
        eng__resize_free(&dp.rs);
        eng__rgb_image_free(&dp.rgb);
        v->first = base;
        v->n_err = dp.n;
        int ok = 0;
        for (int j = 0; j < dp.n; j++) {
            const int i = base + j;
            if (b->item_status)
                b->item_status[i] = v->status[j];
            if (v->status[j]) {
                if (!first)
                    first = eng__errf(v->status[j], c->error, sizeof c->error, "image %d: %s", i,
                                      v->error[j]);
                clear_item(b, i, W);
                continue;
            }
            if (ok != j)
                memcpy(v->images + (size_t)ok * F, v->images + (size_t)j * F, F * sizeof(float));
            v->index[ok++] = i;
        }
        if (!ok)
            continue;
        vision_forward(c, ok, b->task);
        for (int k = 0; k < ok; k++) {
            const float *row = v->head_out + (size_t)k * W;
            const size_t at = (size_t)v->index[k] * W;
            memcpy(b->out + at, row, (size_t)W * sizeof(float));
            if (b->probs) {
                memcpy(b->probs + at, row, (size_t)W * sizeof(float));
                c->kern->softmax(b->probs + at, 1, W, W, 1.0f);
            }
            if (b->labels)
                b->labels[v->index[k]] = c->kern->argmax(row, W);
        }
    }
    return first;
}

/* ---- CLIP texts (token ids) ---------------------------------------------------- */

/* Where HF's CLIPTextTransformer pools: the largest id (the original
 * vocabulary's end-of-text, when the config's eos_token_id is 2), else the
 * first eos_token_id (position 0 when there is none, as argmax of all zeros). */
static int pool_position(const eng__vit_model *m, const int32_t *ids, int n)
{
    int at = 0;
    for (int i = 0; i < n; i++) {
        if (m->eos_id == 2 ? ids[i] > ids[at] : ids[i] == m->eos_id) {
            at = i;
            if (m->eos_id != 2)
                break;
        }
    }
    return at;
}

typedef struct {
    eng__tower_job tj;
    const eng__vit_model *m;
    vit_ctx *v;
} text_pass;

static void text_member(void *arg, int tid, int nt)
{
    const text_pass *tp = arg;
    const eng__vit_model *m = tp->m;
    vit_ctx *v = tp->v;
    const size_t H = (size_t)m->txt.hidden;
    int lo, hi;
    eng__team_share(tp->tj.T, tid, nt, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        const float *w = m->tok_emb + (size_t)v->tok_id[r] * H,
                    *pe = m->tpos + (size_t)v->tok_pos[r] * H;
        float *dst = v->ts.h + (size_t)r * H;
        for (size_t i = 0; i < H; i++)
            dst[i] = w[i] + pe[i];
    }
    eng__tower_member(&tp->tj, tid, nt);
}

/* The cn packed sequences (c->off, c->len, c->index set; T rows) through the
 * text tower, final_layer_norm at each one's last row, text_projection, to
 * their rows of out. */
static void text_forward(eng_ctx *c, int cn, int T, float *out)
{
    const eng__vit_model *m = c->model->impl;
    vit_ctx *v = c->impl;
    const int H = m->txt.hidden, D = m->embed_size;
    text_pass tp = {.m = m, .v = v};
    tp.tj = (eng__tower_job){&m->txt, &v->ts, c->team, c->kern, v->bk, T, cn, v->off, v->len, 0};
    eng__tower_job_plan(&tp.tj, eng__team_size(c->team));
    eng__team_run(c->team, text_member, &tp);
    for (int j = 0; j < cn; j++)
        c->kern->layernorm(v->pooled + (size_t)j * H,
                           v->ts.h + (size_t)(v->off[j] + v->len[j] - 1) * H, m->tln_g, m->tln_b, 1,
                           H, m->txt.eps);
    eng__linear_run(&m->tproj, v->pooled, cn, v->head_out, NULL, ENG_ACT_NONE, NULL, c->kern, NULL);
    for (int j = 0; j < cn; j++)
        memcpy(out + (size_t)v->index[j] * D, v->head_out + (size_t)j * D,
               (size_t)D * sizeof(float));
}

/* Item i's ids: b->seqs[i], or b->texts[i] tokenized to v->text_ids (valid
 * until the next item). */
static eng_status item_ids(eng_ctx *c, const eng__batch *b, int i, const int32_t **ids, int *n)
{
    const eng__vit_model *m = c->model->impl;
    vit_ctx *v = c->impl;
    if (b->input == ENG__IN_IDS) {
        *ids = b->seqs[i].ids;
        *n = b->seqs[i].n_ids;
        return ENG_OK;
    }
    const char *t = b->texts[i];
    int truncated;
    *ids = v->text_ids;
    eng_status s = t ? eng__tokenize(m->tok, t, strlen(t), m->positions, v->text_ids,
                                     m->positions, n, &truncated)
                     : ENG_ERR_INVALID_ARG;
    return s ? eng__errf(s, c->error, sizeof c->error, "text %d: %s", i,
                         t ? eng_status_str(s) : "NULL")
             : s;
}

/* The sequences of b (ids, or texts through the tokenizer) through the text
 * tower, packed into chunks of at most max_text_rows rows. */
static eng_status run_texts(eng_ctx *c, const eng__batch *b)
{
    const eng__vit_model *m = c->model->impl;
    vit_ctx *v = c->impl;
    const int D = m->embed_size;
    eng_status first = ENG_OK;
    int cn = 0, T = 0;
    char err[ENG__ERROR_LEN] = "";
    v->n_err = 0; /* no image errors describe this call */
    for (int i = 0; i <= b->n; i++) {
        int len = 0, n_ids = 0;
        const int32_t *ids = NULL;
        if (i < b->n) {
            eng_status s = item_ids(c, b, i, &ids, &n_ids);
            if (!s && (!ids || n_ids < 1))
                s = eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error,
                              "sequence %d is empty", i);
            else if (!s && n_ids > m->positions)
                s = eng__errf(ENG_ERR_TOO_LONG, c->error, sizeof c->error,
                              "sequence %d has %d ids, over the %d positions", i, n_ids,
                              m->positions);
            for (int t = 0; !s && t < n_ids; t++)
                if (ids[t] < 0 || ids[t] >= m->vocab)
                    s = eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error,
                                  "sequence %d: id %d is outside the vocabulary", i,
                                  (int)ids[t]);
            if (b->item_status)
                b->item_status[i] = s;
            if (s) {
                if (!first) {
                    first = s;
                    snprintf(err, sizeof err, "%s", c->error);
                }
                memset(b->out + (size_t)i * D, 0, (size_t)D * sizeof(float));
                continue;
            }
            len = pool_position(m, ids, n_ids) + 1;
        }
        /* Run the chunk so far when this sequence does not fit (or at the end). */
        if (cn && (i == b->n || T + len > v->max_text_rows)) {
            text_forward(c, cn, T, b->out);
            cn = T = 0;
        }
        if (i == b->n)
            break;
        v->off[cn] = T;
        v->len[cn] = len;
        v->index[cn++] = i;
        for (int t = 0; t < len; t++, T++) {
            v->tok_id[T] = ids[t];
            v->tok_pos[T] = t;
        }
    }
    if (first)
        snprintf(c->error, sizeof c->error, "%s", err);
    return first;
}

/* ---- The kind ------------------------------------------------------------------ */

static eng_status vit_run(eng_ctx *c, const eng__batch *b)
{
    const eng__vit_model *m = c->model->impl;
    const int image = b->input == ENG__IN_IMAGE_PATHS || b->input == ENG__IN_IMAGE_DATA;
    if (image && b->task == ENG_TASK_CLASSIFY && m->head != VIT_HEAD_CLASSIFIER)
        return eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error,
                         m->clip ? "CLIP has no classifier: use eng_zero_shot_images or "
                                   "eng_embed_images"
                                 : "this ViT has no classifier: use eng_embed_images");
    if (image)
        return run_images(c, b, b->task == ENG_TASK_CLASSIFY ? m->n_labels : m->embed_size);
    if (!m->clip)
        return eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error,
                         "this is an image model: use eng_classify_images or eng_embed_images");
    if (b->task != ENG_TASK_EMBED)
        return eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error,
                         "CLIP embeds texts (eng_embed_ids) but does not classify them");
    if (b->input == ENG__IN_TEXTS && !m->tok)
        return eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error,
                         "this CLIP model has no tokenizer (its folder had no tokenizer.json): "
                         "give token ids (eng_embed_ids)");
    return run_texts(c, b);
}

static eng_status vit_tokenize(const void *impl, const char *text, size_t len, int32_t *ids,
                               eng_token_span *spans, int cap, int *n_ids, int *truncated)
{
    const eng__vit_model *m = impl;
    if (!m->tok)
        return ENG_ERR_UNSUPPORTED; /* eng_tokenize_spans says why */
    return eng__tokenize_spans(m->tok, text, len, cap < m->positions ? cap : m->positions, ids,
                               spans, cap, n_ids, truncated);
}

static const char *vit_token(const void *impl, int32_t id, size_t *len, int *special)
{
    const eng__vit_model *m = impl;
    return m->tok ? eng__tokenizer_token(m->tok, id, len, special) : NULL;
}

static const char *vit_item_error(const eng_ctx *c, int i)
{
    const vit_ctx *v = c->impl;
    if (i < v->first || i >= v->first + v->n_err)
        return NULL;
    const int j = i - v->first;
    return v->status[j] ? v->error[j] : NULL;
}

const eng__kind eng__kind_vit = {
    .name = "vit",
    .cuda = 0,
    .cpu_bf16 = 1,
    .load = vit_load,
    .free_model = vit_free,
    .describe = vit_describe,
    .label = vit_label,
    .tokenize = vit_tokenize,
    .token = vit_token,
    .ctx_create = vit_ctx_create,
    .ctx_free = vit_ctx_free,
    .run = vit_run,
    .item_error = vit_item_error,
};
