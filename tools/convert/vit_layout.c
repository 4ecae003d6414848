/* vit_layout.c: Hugging Face ViT (ViTForImageClassification, ViTModel) and CLIPModel
 * folders to .eng files for src/vit (tensor names and metadata in
 * src/vit/vit.h). Linear weights are transposed to [in, out]; q, k and v are
 * concatenated into one qkv layer; the patch convolution becomes a linear
 * layer over the unfolded patch (channel, row, column); the preprocessing
 * recipe comes from preprocessor_config.json (the processor's defaults where
 * a key is absent). The encoder layers' linear weights are stored as
 * `weights` says, and so is the patch embedding for int8 (the model's one
 * other large GEMM; bf16 leaves it fp32); heads and projections stay fp32.
 * A CLIP folder's tokenizer.json goes in as it is (tensor "tok.json"). */
#include "vit_layout.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert_layout.h"
#include "error.h"
#include "writer.h"

/* One conversion: the first error sticks. */
typedef struct {
    const src_tensors *s;
    eng__writer *w;
    const char *weights; /* of the encoder layers */
    int n;               /* tensors added */
    eng_status st;
    char *err;
    size_t errlen;
} job;

__attribute__((format(printf, 3, 4))) static void fail(job *j, eng_status s, const char *fmt, ...)
{
    if (j->st)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err, j->errlen, fmt, ap);
    va_end(ap);
    j->st = s;
}

/* A float copy of tensor name holding exactly numel values, or NULL with the
 * job failed. */
static float *get(job *j, const char *name, int64_t numel)
{
    if (j->st)
        return NULL;
    const src_tensor *t = src_find(j->s, name);
    if (!t) {
        fail(j, ENG_ERR_FORMAT, "checkpoint has no tensor %s", name);
        return NULL;
    }
    if (src_numel(t) != numel) {
        fail(j, ENG_ERR_FORMAT, "tensor %s has %lld values, expected %lld", name,
             (long long)src_numel(t), (long long)numel);
        return NULL;
    }
    float *f;
    j->st = src_to_f32(t, &f, j->err, j->errlen);
    return j->st ? NULL : f;
}

static void add(job *j, const char *name, const float *data, uint64_t d0, uint64_t d1)
{
    if (j->st)
        return;
    const uint64_t shape[2] = {d0, d1};
    if (eng__writer_add(j->w, name, ENG_DT_F32, d1 ? 2 : 1, shape, data))
        fail(j, ENG_ERR_NOMEM, "cannot add tensor %s", name);
    else
        j->n++;
}

/* Copies tensor src (numel d0 x max(d1, 1)) to engine tensor dst. */
static void copy(job *j, const char *src, const char *dst, uint64_t d0, uint64_t d1)
{
    float *f = get(j, src, (int64_t)(d0 * (d1 ? d1 : 1)));
    add(j, dst, f, d0, d1);
    free(f);
}

static void layer_norm(job *j, const char *hf, const char *eng, int H)
{
    char a[256], b[256];
    snprintf(a, sizeof a, "%s.weight", hf);
    snprintf(b, sizeof b, "%s.g", eng);
    copy(j, a, b, (uint64_t)H, 0);
    snprintf(a, sizeof a, "%s.bias", hf);
    snprintf(b, sizeof b, "%s.b", eng);
    copy(j, a, b, (uint64_t)H, 0);
}

/* Engine linear layer eng [K -> N] from the HF weights hf[0..parts) (each
 * [N / parts, K], torch's [out, in]) concatenated along the outputs, and
 * their biases (zero where has_bias is 0). */
static void linear(job *j, const char *const *hf, int parts, const char *eng, int K, int N,
                   int has_bias, const char *weights)
{
    if (j->st)
        return;
    const int n = N / parts;
    /* The sizes come from config.json: checked against the checkpoint
     * before K x N floats are allocated. */
    for (int p = 0; p < parts && !j->st; p++) {
        char name[256];
        snprintf(name, sizeof name, "%s.weight", hf[p]);
        const src_tensor *t = src_find(j->s, name);
        if (!t || src_numel(t) != (int64_t)n * K)
            fail(j, ENG_ERR_FORMAT, "checkpoint has no tensor %s of %lld values", name,
                 (long long)n * K);
    }
    if (j->st)
        return;
    float *wt = malloc((size_t)K * N * sizeof *wt), *b = calloc((size_t)N, sizeof *b);
    if (!wt || !b) {
        fail(j, ENG_ERR_NOMEM, "out of memory");
    }
    for (int p = 0; p < parts && !j->st; p++) {
        char name[256];
        snprintf(name, sizeof name, "%s.weight", hf[p]);
        float *w = get(j, name, (int64_t)n * K);
        for (int o = 0; w && o < n; o++)
            for (int i = 0; i < K; i++)
                wt[(size_t)i * N + p * n + o] = w[(size_t)o * K + i];
        free(w);
        if (has_bias) {
            snprintf(name, sizeof name, "%s.bias", hf[p]);
            float *bb = get(j, name, n);
            if (bb)
                memcpy(b + p * n, bb, (size_t)n * sizeof *b);
            free(bb);
        }
    }
    if (!j->st) {
        eng_status s = cv_add_linear_weight(j->w, eng, wt, K, N, weights, &j->n, j->err, j->errlen);
        j->st = s;
        char bn[256];
        snprintf(bn, sizeof bn, "%s.b", eng);
        add(j, bn, b, (uint64_t)N, 0);
    }
    free(wt);
    free(b);
}

static void linear1(job *j, const char *hf, const char *eng, int K, int N, int has_bias,
                    const char *weights)
{
    linear(j, &hf, 1, eng, K, N, has_bias, weights);
}

typedef struct {
    int hidden, layers, heads, inter;
    double eps;
    const char *act;
} tower;

/* The sizes and ids a config may hold: any real model's are far below, and
 * products of two fit an int64. */
#define CFG_INT_MAX (1 << 24)

/* o[key] as an integer in 0..CFG_INT_MAX, dflt when absent; anything else
 * fails the job (and gives dflt). */
static int cfg_int(job *j, const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return dflt;
    const double d = v->valuedouble;
    if (!(d >= 0 && d <= CFG_INT_MAX) || d != (double)(int)d) {
        fail(j, ENG_ERR_FORMAT, "config: %s %g is not an integer in 0..%d", key, d, CFG_INT_MAX);
        return dflt;
    }
    return (int)d;
}

static double cfg_num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *cfg_str(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static tower read_tower(job *j, const cJSON *c, int clip)
{
    tower t = {cfg_int(j, c, "hidden_size", 768),
               cfg_int(j, c, "num_hidden_layers", 12),
               cfg_int(j, c, "num_attention_heads", 12),
               cfg_int(j, c, "intermediate_size", 3072),
               cfg_num(c, "layer_norm_eps", clip ? 1e-5 : 1e-12),
               cfg_str(c, "hidden_act", clip ? "quick_gelu" : "gelu")};
    if (!strcmp(t.act, "gelu_new") || !strcmp(t.act, "gelu_pytorch_tanh"))
        t.act = "gelu_tanh";
    return t;
}

static cJSON *tower_meta(const tower *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "hidden", t->hidden);
    cJSON_AddNumberToObject(o, "layers", t->layers);
    cJSON_AddNumberToObject(o, "heads", t->heads);
    cJSON_AddNumberToObject(o, "intermediate", t->inter);
    cJSON_AddNumberToObject(o, "eps", t->eps);
    cJSON_AddStringToObject(o, "act", t->act);
    return o;
}

/* The encoder layers under hf_prefix ("vit.encoder.layer." / "vision_model.encoder.layers.")
 * as the engine tower eng ("v", "t"). */
static void tower_layers(job *j, const tower *t, int clip, const char *hf_prefix, const char *eng)
{
    const int H = t->hidden, F = t->inter;
    for (int i = 0; i < t->layers && !j->st; i++) {
        char q[256], k[256], v[256], o[256], f1[256], f2[256], l1[256], l2[256], e[128];
        if (clip) {
            snprintf(q, sizeof q, "%s%d.self_attn.q_proj", hf_prefix, i);
            snprintf(k, sizeof k, "%s%d.self_attn.k_proj", hf_prefix, i);
            snprintf(v, sizeof v, "%s%d.self_attn.v_proj", hf_prefix, i);
            snprintf(o, sizeof o, "%s%d.self_attn.out_proj", hf_prefix, i);
            snprintf(f1, sizeof f1, "%s%d.mlp.fc1", hf_prefix, i);
            snprintf(f2, sizeof f2, "%s%d.mlp.fc2", hf_prefix, i);
            snprintf(l1, sizeof l1, "%s%d.layer_norm1", hf_prefix, i);
            snprintf(l2, sizeof l2, "%s%d.layer_norm2", hf_prefix, i);
        } else {
            snprintf(q, sizeof q, "%s%d.attention.attention.query", hf_prefix, i);
            snprintf(k, sizeof k, "%s%d.attention.attention.key", hf_prefix, i);
            snprintf(v, sizeof v, "%s%d.attention.attention.value", hf_prefix, i);
            snprintf(o, sizeof o, "%s%d.attention.output.dense", hf_prefix, i);
            snprintf(f1, sizeof f1, "%s%d.intermediate.dense", hf_prefix, i);
            snprintf(f2, sizeof f2, "%s%d.output.dense", hf_prefix, i);
            snprintf(l1, sizeof l1, "%s%d.layernorm_before", hf_prefix, i);
            snprintf(l2, sizeof l2, "%s%d.layernorm_after", hf_prefix, i);
        }
        const char *qkv[3] = {q, k, v};
        snprintf(e, sizeof e, "%s.l%d.qkv", eng, i);
        linear(j, qkv, 3, e, H, 3 * H, 1, j->weights);
        snprintf(e, sizeof e, "%s.l%d.out", eng, i);
        linear1(j, o, e, H, H, 1, j->weights);
        snprintf(e, sizeof e, "%s.l%d.fc1", eng, i);
        linear1(j, f1, e, H, F, 1, j->weights);
        snprintf(e, sizeof e, "%s.l%d.fc2", eng, i);
        linear1(j, f2, e, F, H, 1, j->weights);
        snprintf(e, sizeof e, "%s.l%d.ln1", eng, i);
        layer_norm(j, l1, e, H);
        snprintf(e, sizeof e, "%s.l%d.ln2", eng, i);
        layer_norm(j, l2, e, H);
    }
}

/* The patch convolution [H, 3, p, p] (bias or none) as the linear layer
 * v.patch: int8 when the encoder is (ViT-B/32's is 1/36 of the
 * multiply-adds, but fp32 it took 5-7% of int8's time), else fp32. Files
 * written before keep an fp32 v.patch, which still loads: the linear layer
 * binds whichever dtype is stored. */
static void patch_embedding(job *j, const char *hf, int H, int p, int has_bias)
{
    linear1(j, hf, "v.patch", 3 * p * p, H, has_bias,
            strcmp(j->weights, "int8") ? "fp32" : "int8");
}

/* The bytes of dir/name (malloc'd, *len set), or NULL: a missing optional
 * file leaves the job alone, anything else fails it. */
static char *slurp(const char *dir, const char *name, int optional, job *j, size_t *len)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (!optional)
            fail(j, ENG_ERR_IO, "cannot open %s", path);
        return NULL;
    }
    char *buf = NULL;
    *len = 0;
    for (;;) {
        char *nb = realloc(buf, *len + 65536);
        if (!nb) {
            fail(j, ENG_ERR_NOMEM, "out of memory reading %s", path);
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        size_t got = fread(buf + *len, 1, 65536, f);
        *len += got;
        if (!got)
            break;
    }
    fclose(f);
    return buf;
}

static cJSON *load_json(const char *dir, const char *name, int optional, job *j)
{
    size_t len;
    char *buf = slurp(dir, name, optional, j, &len);
    if (!buf)
        return NULL;
    cJSON *o = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        fail(j, ENG_ERR_FORMAT, "%s/%s is not a JSON object", dir, name);
        return NULL;
    }
    return o;
}

/* The image recipe from preprocessor_config.json (pp, may be NULL: the
 * processor's defaults), as src/vision/image.h's spec in metadata. */
static cJSON *image_meta(const cJSON *pp, int clip, int image_size, job *j)
{
    static const double clip_mean[3] = {0.48145466, 0.4578275, 0.40821073};
    static const double clip_std[3] = {0.26862954, 0.26130258, 0.27577711};
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(pp, "size");
    const cJSON *crop = cJSON_GetObjectItemCaseSensitive(pp, "crop_size");
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(pp, "image_mean");
    const cJSON *std = cJSON_GetObjectItemCaseSensitive(pp, "image_std");
    const cJSON *do_crop = cJSON_GetObjectItemCaseSensitive(pp, "do_center_crop");
    const cJSON *do_resize = cJSON_GetObjectItemCaseSensitive(pp, "do_resize");
    const cJSON *do_rescale = cJSON_GetObjectItemCaseSensitive(pp, "do_rescale");
    const cJSON *do_norm = cJSON_GetObjectItemCaseSensitive(pp, "do_normalize");
    if (cJSON_IsFalse(do_resize) || cJSON_IsFalse(do_rescale) || cJSON_IsFalse(do_norm)) {
        fail(j, ENG_ERR_UNSUPPORTED,
             "preprocessor_config.json turns off resize, rescale or "
             "normalize, which the engine always does");
        return NULL;
    }
    int resample = cfg_int(j, pp, "resample", clip ? 3 : 2);
    if (resample != 2 && resample != 3) {
        fail(j, ENG_ERR_UNSUPPORTED, "resample %d: only bilinear (2) and bicubic (3)", resample);
        return NULL;
    }
    /* Absent sizes default to the model's; a plain number (older
     * feature-extractor configs) is CLIP's shortest edge, ViT's square. */
    int square = 0, resize, crop_side;
    if (cJSON_IsNumber(size)) {
        square = !clip;
        resize = (int)size->valuedouble;
    } else if (size && cJSON_GetObjectItemCaseSensitive(size, "shortest_edge")) {
        resize = cfg_int(j, size, "shortest_edge", image_size);
    } else if (size) {
        square = 1;
        resize = cfg_int(j, size, "height", image_size);
        if (cfg_int(j, size, "width", resize) != resize) {
            fail(j, ENG_ERR_UNSUPPORTED, "non-square size in preprocessor_config.json");
            return NULL;
        }
    } else {
        square = !clip;
        resize = image_size;
    }
    const int crops = do_crop ? cJSON_IsTrue(do_crop) : clip;
    crop_side = !crops                 ? resize
                : cJSON_IsNumber(crop) ? (int)crop->valuedouble
                : crop                 ? cfg_int(j, crop, "height", image_size)
                                       : image_size;
    if (crops && cJSON_IsObject(crop) && cfg_int(j, crop, "width", crop_side) != crop_side) {
        fail(j, ENG_ERR_UNSUPPORTED, "non-square crop_size in preprocessor_config.json");
        return NULL;
    }
    if (!crops && !square) {
        fail(j, ENG_ERR_UNSUPPORTED,
             "a shortest-edge resize without a centre crop makes "
             "images of varying shape");
        return NULL;
    }
    if (resize < 1 || resize > 65536) {
        fail(j, ENG_ERR_FORMAT, "preprocessor_config.json: bad size %d", resize);
        return NULL;
    }
    if (crop_side != image_size) {
        fail(j, ENG_ERR_FORMAT, "preprocessing makes %d px images, the model takes %d", crop_side,
             image_size);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject(), *m = cJSON_AddArrayToObject(o, "mean"),
          *s = cJSON_AddArrayToObject(o, "std");
    for (int i = 0; i < 3; i++) {
        const cJSON *mi = cJSON_GetArrayItem(mean, i), *si = cJSON_GetArrayItem(std, i);
        cJSON_AddItemToArray(m, cJSON_CreateNumber(cJSON_IsNumber(mi) ? mi->valuedouble
                                                   : clip             ? clip_mean[i]
                                                                      : 0.5));
        cJSON_AddItemToArray(s, cJSON_CreateNumber(cJSON_IsNumber(si) ? si->valuedouble
                                                   : clip             ? clip_std[i]
                                                                      : 0.5));
    }
    cJSON_AddNumberToObject(o, "resize", resize);
    cJSON_AddNumberToObject(o, "crop", crop_side);
    cJSON_AddStringToObject(o, "filter", resample == 3 ? "bicubic" : "bilinear");
    cJSON_AddNumberToObject(o, "square", square);
    cJSON_AddNumberToObject(o, "crop_floor", 1);
    cJSON_AddNumberToObject(o, "rescale", cfg_num(pp, "rescale_factor", 1.0 / 255));
    return o;
}

/* The patches of an S px image in p px patches, or -1 with the job failed.
 * S is bounded so that (S / p)^2 and a patch's 3 p^2 values fit an int. */
static int patch_grid(job *j, int S, int p)
{
    if (p < 1 || S < p || S % p || S > 16384) {
        fail(j, ENG_ERR_UNSUPPORTED,
             "image_size %d is not a multiple of patch_size %d (or is over 16384)", S, p);
        return -1;
    }
    return (S / p) * (S / p);
}

static void convert_vit(job *j, const cJSON *cfg, cJSON *meta)
{
    const tower t = read_tower(j, cfg, 0);
    const int H = t.hidden, p = cfg_int(j, cfg, "patch_size", 16), S = cfg_int(j, cfg, "image_size", 224);
    const int grid = patch_grid(j, S, p);
    const char *pre = src_find(j->s, "vit.embeddings.cls_token") ? "vit." : "";
    char n[256], e[256];
    if (grid < 0)
        return;
    if (cfg_int(j, cfg, "num_channels", 3) != 3 ||
        cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "qkv_bias"))) {
        fail(j, ENG_ERR_UNSUPPORTED, "ViT with other than 3 channels or qkv_bias false");
        return;
    }
    snprintf(n, sizeof n, "%sembeddings.patch_embeddings.projection", pre);
    patch_embedding(j, n, H, p, 1);
    snprintf(n, sizeof n, "%sembeddings.cls_token", pre);
    copy(j, n, "v.cls", (uint64_t)H, 0);
    snprintf(n, sizeof n, "%sembeddings.position_embeddings", pre);
    copy(j, n, "v.pos", (uint64_t)grid + 1, (uint64_t)H);
    snprintf(n, sizeof n, "%sencoder.layer.", pre);
    tower_layers(j, &t, 0, n, "v");
    snprintf(n, sizeof n, "%slayernorm", pre);
    layer_norm(j, n, "v.ln", H);
    cJSON *v = tower_meta(&t);
    cJSON_AddNumberToObject(v, "patch", p);
    cJSON_AddNumberToObject(v, "image_size", S);
    cJSON_AddNumberToObject(v, "pre_ln", 0);
    cJSON_AddItemToObject(meta, "vision", v);
    snprintf(n, sizeof n, "%spooler.dense.weight", pre);
    if (src_find(j->s, "classifier.weight")) {
        const src_tensor *c = src_find(j->s, "classifier.weight");
        const int C = (int)c->shape[0];
        linear1(j, "classifier", "head", H, C, 1, "fp32");
        cJSON_AddStringToObject(meta, "head", "classifier");
        cJSON_AddNumberToObject(meta, "num_classes", C);
        const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(cfg, "id2label");
        if (cJSON_GetArraySize(id2label) == C) {
            cJSON *labels = cJSON_AddArrayToObject(meta, "labels");
            for (int i = 0; i < C; i++) {
                snprintf(e, sizeof e, "%d", i);
                const char *l = cfg_str(id2label, e, NULL);
                if (!l) {
                    fail(j, ENG_ERR_FORMAT, "config.json id2label lacks \"%d\"", i);
                    return;
                }
                cJSON_AddItemToArray(labels, cJSON_CreateString(l));
            }
        }
    } else if (src_find(j->s, n)) {
        snprintf(n, sizeof n, "%spooler.dense", pre);
        linear1(j, n, "pooler", H, H, 1, "fp32");
        cJSON_AddStringToObject(meta, "head", "pooler");
    } else {
        cJSON_AddStringToObject(meta, "head", "none");
    }
}

static void convert_clip(job *j, const cJSON *cfg, cJSON *meta)
{
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(cfg, "vision_config");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(cfg, "text_config");
    const tower vt = read_tower(j, vc, 1), tt = read_tower(j, tc, 1);
    const int p = cfg_int(j, vc, "patch_size", 32), S = cfg_int(j, vc, "image_size", 224);
    const int grid = patch_grid(j, S, p), D = cfg_int(j, cfg, "projection_dim", 512);
    const int V = cfg_int(j, tc, "vocab_size", 49408), P = cfg_int(j, tc, "max_position_embeddings", 77);
    if (grid < 0)
        return;
    if (cfg_int(j, vc, "num_channels", 3) != 3) {
        fail(j, ENG_ERR_UNSUPPORTED, "CLIP vision with other than 3 channels");
        return;
    }
    patch_embedding(j, "vision_model.embeddings.patch_embedding", vt.hidden, p, 0);
    copy(j, "vision_model.embeddings.class_embedding", "v.cls", (uint64_t)vt.hidden, 0);
    copy(j, "vision_model.embeddings.position_embedding.weight", "v.pos", (uint64_t)grid + 1,
         (uint64_t)vt.hidden);
    layer_norm(j, "vision_model.pre_layrnorm", "v.pre_ln", vt.hidden);
    tower_layers(j, &vt, 1, "vision_model.encoder.layers.", "v");
    layer_norm(j, "vision_model.post_layernorm", "v.ln", vt.hidden);
    linear1(j, "visual_projection", "v.proj", vt.hidden, D, 0, "fp32");
    copy(j, "text_model.embeddings.token_embedding.weight", "t.emb", (uint64_t)V,
         (uint64_t)tt.hidden);
    copy(j, "text_model.embeddings.position_embedding.weight", "t.pos", (uint64_t)P,
         (uint64_t)tt.hidden);
    tower_layers(j, &tt, 1, "text_model.encoder.layers.", "t");
    layer_norm(j, "text_model.final_layer_norm", "t.ln", tt.hidden);
    linear1(j, "text_projection", "t.proj", tt.hidden, D, 0, "fp32");
    copy(j, "logit_scale", "logit_scale", 1, 0);
    cJSON *v = tower_meta(&vt), *t = tower_meta(&tt);
    cJSON_AddNumberToObject(v, "patch", p);
    cJSON_AddNumberToObject(v, "image_size", S);
    cJSON_AddNumberToObject(v, "pre_ln", 1);
    cJSON_AddItemToObject(meta, "vision", v);
    cJSON_AddNumberToObject(t, "vocab", V);
    cJSON_AddNumberToObject(t, "positions", P);
    /* transformers' CLIPTextConfig default (2) selects the argmax pooling. */
    cJSON_AddNumberToObject(t, "eos_id", cfg_int(j, tc, "eos_token_id", 2));
    cJSON_AddItemToObject(meta, "text", t);
    cJSON_AddNumberToObject(meta, "projection", D);
}

eng_status cv_convert_vit(const char *dir, const char *weights, const char *out, cv_vit_report *r,
                          char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    job j = {.weights = weights ? weights : "fp32", .err = err, .errlen = errlen};
    src_tensors src = {0};
    cJSON *cfg = load_json(dir, "config.json", 0, &j);
    cJSON *pp = cfg ? load_json(dir, "preprocessor_config.json", 1, &j) : NULL;
    cJSON *meta = cJSON_CreateObject();
    const char *type = cfg_str(cfg, "model_type", "");
    r->clip = !strcmp(type, "clip");
    if (!j.st && !r->clip && strcmp(type, "vit"))
        fail(&j, ENG_ERR_UNSUPPORTED, "model_type \"%s\" is not vit or clip", type);
    if (!j.st)
        j.st = cv_weights_check(j.weights, err, errlen);
    if (!j.st)
        j.st = cv_load_weights(dir, &src, err, errlen);
    j.s = &src;
    if (!j.st && !(j.w = eng__writer_new()))
        fail(&j, ENG_ERR_NOMEM, "out of memory");
    if (!j.st) {
        const cJSON *vc = r->clip ? cJSON_GetObjectItemCaseSensitive(cfg, "vision_config") : cfg;
        cJSON *img = image_meta(pp, r->clip, cfg_int(&j, vc, "image_size", 224), &j);
        if (img)
            cJSON_AddItemToObject(meta, "image", img);
        cJSON_AddStringToObject(meta, "kind", "vit");
        cJSON_AddStringToObject(meta, "arch", r->clip ? "clip" : "vit");
        cJSON_AddStringToObject(meta, "weights", j.weights);
        if (r->clip)
            convert_clip(&j, cfg, meta);
        else
            convert_vit(&j, cfg, meta);
        /* CLIP's tokenizer, for the tokenizer.json interpreter: its bytes as
         * they are, in "tok.json" (U8). */
        size_t len = 0;
        char *tok = r->clip ? slurp(dir, "tokenizer.json", 1, &j, &len) : NULL;
        const uint64_t shape = len;
        if (tok && !j.st && eng__writer_add(j.w, "tok.json", ENG_DT_U8, 1, &shape, tok))
            fail(&j, ENG_ERR_NOMEM, "cannot add tensor tok.json");
        j.n += tok && !j.st;
        free(tok);
    }
    if (!j.st) {
        char *m = cJSON_PrintUnformatted(meta);
        j.st = m ? eng__writer_save(j.w, m, out, err, errlen) : ENG_ERR_NOMEM;
        free(m);
        r->n_tensors = j.n;
    }
    eng__writer_free(j.w);
    src_free(&src);
    cJSON_Delete(cfg);
    cJSON_Delete(pp);
    cJSON_Delete(meta);
    return j.st;
}

int cv_is_vit_folder(const char *dir)
{
    job j = {.err = NULL, .errlen = 0};
    char e[8];
    j.err = e;
    j.errlen = sizeof e;
    cJSON *cfg = load_json(dir, "config.json", 1, &j);
    const char *type = cfg_str(cfg, "model_type", "");
    int yes = !strcmp(type, "vit") || !strcmp(type, "clip");
    cJSON_Delete(cfg);
    return yes;
}
