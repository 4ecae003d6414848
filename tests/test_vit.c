/* test_vit.c: the vision-transformer kind (src/vit) against the references of
 * tests/golden/make_vit_clip.py (PyTorch forward passes written from
 * transformers' modeling_vit.py / modeling_clip.py, preprocessing through
 * Pillow as HF's image processors do it): ViTForImageClassification logits,
 * ViTModel pooler outputs, CLIP image and text features and logits, the
 * preprocessed pixels bit for bit (bilinear and bicubic, square resize and
 * shortest-edge + centre crop), and bad images failing alone. The tiny models
 * are in tests/golden/tiny; the images are $ENGINE_SHARED's ImageNet sample. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "engine.h"
#include "image.h"
#include "model.h"
#include "testutil.h"
#include "vit.h"
#include "vit_layout.h"

#define GOLDEN_DIR "tests/golden/tiny"
/* fp32 against PyTorch fp32: the same arithmetic summed in other orders
 * (GEMM blocking, the attention kernel's exp), outputs of size ~1 through 2
 * layers: measured below 2e-6; 1e-4 is the bound for logits. */
#define TOL_LOGIT 1e-4f
/* Embeddings: the bound on the cosine to the reference. */
#define MIN_COSINE 0.99999
/* bf16 GEMM inputs (8 significant bits) and int8 weights through 2 layers of
 * width 24-64: measured worst cosines 0.99999 (bf16) and 0.9998 (int8). */
#define MIN_COSINE_REDUCED 0.999

enum { N_IMAGES = 4, MAX_W = 64, N_TEXTS = 5, MAX_IDS = 16 };

typedef struct {
    char names[N_IMAGES][128];
    char paths[N_IMAGES][512];
    float out[N_IMAGES][MAX_W]; /* logits, pooler outputs or CLIP image features */
    int width;
    int32_t ids[N_TEXTS][MAX_IDS];
    eng_seq seqs[N_TEXTS];
    float text[N_TEXTS][MAX_W];
    float logits[N_IMAGES][N_TEXTS];
} golden;

static int read_rows(const cJSON *a, float *dst, int stride, int rows)
{
    int w = 0;
    ck_assert_int_eq(cJSON_GetArraySize(a), rows);
    for (int r = 0; r < rows; r++) {
        const cJSON *row = cJSON_GetArrayItem(a, r), *v;
        w = 0;
        cJSON_ArrayForEach(v, row) dst[r * stride + w++] = (float)v->valuedouble;
        ck_assert_int_le(w, stride);
    }
    return w;
}

static void read_golden(const char *name, const char *field, golden *g)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/expected.json", GOLDEN_DIR, name);
    char *text = test_read_file(path, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    memset(g, 0, sizeof *g);
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(j, "images");
    ck_assert_int_eq(cJSON_GetArraySize(images), N_IMAGES);
    for (int i = 0; i < N_IMAGES; i++) {
        snprintf(g->names[i], sizeof g->names[i], "%s", cJSON_GetArrayItem(images, i)->valuestring);
        char rel[256];
        snprintf(rel, sizeof rel, "data/imagenet-sample/images/%s", g->names[i]);
        const char *p = test_shared_path(rel);
        snprintf(g->paths[i], sizeof g->paths[i], "%s", p ? p : "");
    }
    g->width =
        read_rows(cJSON_GetObjectItemCaseSensitive(j, field), &g->out[0][0], MAX_W, N_IMAGES);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "text_ids");
    if (ids) {
        for (int t = 0; t < N_TEXTS; t++) {
            const cJSON *row = cJSON_GetArrayItem(ids, t), *v;
            int k = 0;
            cJSON_ArrayForEach(v, row) g->ids[t][k++] = v->valueint;
            g->seqs[t] = (eng_seq){g->ids[t], k};
        }
        read_rows(cJSON_GetObjectItemCaseSensitive(j, "text_embeds"), &g->text[0][0], MAX_W,
                  N_TEXTS);
        read_rows(cJSON_GetObjectItemCaseSensitive(j, "logits_per_image"), &g->logits[0][0],
                  N_TEXTS, N_IMAGES);
    }
    cJSON_Delete(j);
}

static eng_model *convert_and_load(const char *name, const char *weights)
{
    char dir[512], out[512], err[512];
    snprintf(dir, sizeof dir, "%s/%s", GOLDEN_DIR, name);
    snprintf(out, sizeof out, "/tmp/eng-test-vit-%d-%s-%s.eng", (int)getpid(), name, weights);
    cv_vit_report r;
    eng_status s = cv_convert_vit(dir, weights, out, &r, err, sizeof err);
    ck_assert_msg(s == ENG_OK, "convert %s: %s", name, err);
    eng_model *m;
    s = eng_model_load(out, NULL, &m);
    ck_assert_msg(s == ENG_OK, "load %s: %s", name, eng_last_error());
    unlink(out);
    return m;
}

static eng_ctx *ctx_for(const eng_model *m, int threads)
{
    eng_ctx_params p = eng_ctx_default_params();
    p.n_threads = threads;
    eng_ctx *c;
    ck_assert_msg(eng_ctx_init(m, &p, &c) == ENG_OK, "%s", eng_last_error());
    return c;
}

static void assert_close(const float *got, const float *want, int n, float tol, const char *what)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabsf(got[i] - want[i]) <= tol, "%s[%d] = %.7g, reference %.7g", what, i,
                      (double)got[i], (double)want[i]);
}

static const char *const *path_list(const golden *g)
{
    static const char *p[N_IMAGES];
    for (int i = 0; i < N_IMAGES; i++)
        p[i] = g->paths[i];
    return p;
}

/* The preprocessed pixels, float for float, against HF's processor on Pillow. */
START_TEST(test_pixels_exact)
{
    static const char *const models[] = {"vit-cls", "vit-pool", "clip"};
    const char *name = models[_i];
    golden g;
    read_golden(name,
                !strcmp(name, "clip")      ? "image_embeds"
                : !strcmp(name, "vit-cls") ? "logits"
                                           : "embeddings",
                &g);
    eng_model *m = convert_and_load(name, "fp32");
    const eng__vit_model *vm = m->impl;
    const size_t S = (size_t)vm->image_size, F = 3 * S * S;
    char path[512];
    snprintf(path, sizeof path, "%s/%s/pixels.f32", GOLDEN_DIR, name);
    size_t len = 0;
    void *raw = test_read_file(path, &len); /* malloc'd: aligned for floats */
    float *want = raw;
    ck_assert_msg(want && len == N_IMAGES * F * sizeof(float), "%s: bad pixels file", path);
    float *got = malloc(F * sizeof *got);
    for (int i = 0; i < N_IMAGES; i++) {
        char err[256];
        ck_assert_msg(eng__image_load(g.paths[i], &vm->spec, got, err, sizeof err) == ENG_OK, "%s",
                      err);
        for (size_t k = 0; k < F; k++)
            ck_assert_msg(got[k] == want[i * F + k],
                          "%s %s: pixel value %zu (channel %zu, row %zu, col %zu) = %.9g, "
                          "Pillow + HF %.9g",
                          name, g.names[i], k, k / (S * S), k / S % S, k % S, (double)got[k],
                          (double)want[i * F + k]);
    }
    free(got);
    free(want);
    eng_model_free(m);
}
END_TEST

START_TEST(test_vit_logits)
{
    golden g;
    read_golden("vit-cls", "logits", &g);
    eng_model *m = convert_and_load("vit-cls", "fp32");
    eng_model_info info;
    eng_model_get_info(m, &info);
    ck_assert_str_eq(info.arch, "vit");
    ck_assert_int_eq(info.n_labels, g.width);
    ck_assert_str_eq(eng_model_label(m, 1), "lorikeet");
    for (int threads = 1; threads <= 2; threads++) {
        eng_ctx *c = ctx_for(m, threads);
        float logits[N_IMAGES * MAX_W], probs[N_IMAGES * MAX_W];
        int labels[N_IMAGES];
        eng_status st[N_IMAGES];
        ck_assert_msg(eng_classify_images(c, path_list(&g), N_IMAGES, logits, probs, labels, st) ==
                          ENG_OK,
                      "%s", eng_ctx_last_error(c));
        for (int i = 0; i < N_IMAGES; i++) {
            assert_close(logits + i * g.width, g.out[i], g.width, TOL_LOGIT, g.names[i]);
            int best = 0;
            for (int k = 1; k < g.width; k++)
                best = g.out[i][k] > g.out[i][best] ? k : best;
            ck_assert_int_eq(labels[i], best);
        }
        eng_ctx_free(c);
    }
    eng_model_free(m);
}
END_TEST

START_TEST(test_vit_pooler)
{
    golden g;
    read_golden("vit-pool", "embeddings", &g);
    eng_model *m = convert_and_load("vit-pool", "fp32");
    eng_model_info info;
    eng_model_get_info(m, &info);
    ck_assert_int_eq(info.embed_size, g.width);
    eng_ctx *c = ctx_for(m, 2);
    float out[N_IMAGES * MAX_W], logits[MAX_W];
    ck_assert_msg(eng_embed_images(c, path_list(&g), N_IMAGES, out, NULL) == ENG_OK, "%s",
                  eng_ctx_last_error(c));
    for (int i = 0; i < N_IMAGES; i++) {
        ck_assert_double_ge(test_cosine(out + i * g.width, g.out[i], g.width), MIN_COSINE);
        assert_close(out + i * g.width, g.out[i], g.width, TOL_LOGIT, g.names[i]);
    }
    /* No classifier: classify refuses, saying what to call. */
    ck_assert_int_eq(eng_classify_images(c, path_list(&g), 1, logits, NULL, NULL, NULL),
                     ENG_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(eng_ctx_last_error(c), "eng_embed_images"));
    eng_ctx_free(c);
    eng_model_free(m);
}
END_TEST

START_TEST(test_clip_features)
{
    golden g;
    read_golden("clip", "image_embeds", &g);
    eng_model *m = convert_and_load("clip", "fp32");
    eng_model_info info;
    eng_model_get_info(m, &info);
    ck_assert_str_eq(info.arch, "clip");
    ck_assert_int_eq(info.embed_size, g.width);
    const int D = g.width;
    eng_ctx *c = ctx_for(m, 2);
    float img[N_IMAGES * MAX_W], txt[N_TEXTS * MAX_W];
    ck_assert_msg(eng_embed_images(c, path_list(&g), N_IMAGES, img, NULL) == ENG_OK, "%s",
                  eng_ctx_last_error(c));
    ck_assert_msg(eng_embed_ids(c, g.seqs, N_TEXTS, txt, NULL) == ENG_OK, "%s",
                  eng_ctx_last_error(c));
    for (int i = 0; i < N_IMAGES; i++)
        ck_assert_double_ge(test_cosine(img + i * D, g.out[i], D), MIN_COSINE);
    for (int t = 0; t < N_TEXTS; t++)
        ck_assert_double_ge(test_cosine(txt + t * D, g.text[t], D), MIN_COSINE);
    /* logits_per_image = exp(logit_scale) x cosine. */
    const float scale = ((const eng__vit_model *)m->impl)->logit_scale;
    for (int i = 0; i < N_IMAGES; i++)
        for (int t = 0; t < N_TEXTS; t++) {
            float l = scale * (float)test_cosine(img + i * D, txt + t * D, D);
            ck_assert_msg(fabsf(l - g.logits[i][t]) <= TOL_LOGIT, "logit %d,%d = %.7g, ref %.7g", i,
                          t, (double)l, (double)g.logits[i][t]);
        }
    /* Texts need the tokenizer; CLIP has no classifier. */
    const char *texts[1] = {"a photo of a cat"};
    ck_assert_int_eq(eng_embed(c, texts, 1, txt, NULL), ENG_ERR_UNSUPPORTED);
    ck_assert_int_eq(eng_classify_images(c, path_list(&g), 1, img, NULL, NULL, NULL),
                     ENG_ERR_UNSUPPORTED);
    eng_ctx_free(c);
    eng_model_free(m);
}
END_TEST

/* Zero-shot over the reference's prompts (given as ids): the probabilities
 * are the softmax of the reference's logits_per_image and the top labels the
 * same; the second call is a cache hit giving the very same numbers; another
 * template is another entry. */
START_TEST(test_zero_shot_cache)
{
    golden g;
    read_golden("clip", "image_embeds", &g);
    eng_model *m = convert_and_load("clip", "fp32");
    eng_ctx *c = ctx_for(m, 2);
    const char *names[N_TEXTS] = {"empty", "two", "five", "padded", "long"};
    eng_label_set ls = {names, N_TEXTS, NULL, g.seqs};
    float probs[N_IMAGES * N_TEXTS], again[N_IMAGES * N_TEXTS];
    int top[N_IMAGES], top2[N_IMAGES];
    eng_zero_shot_stats zs;
    ck_assert_msg(eng_zero_shot_images(c, &ls, path_list(&g), N_IMAGES, probs, top, NULL) == ENG_OK,
                  "%s", eng_ctx_last_error(c));
    eng_zero_shot_get_stats(m, &zs);
    ck_assert(zs.misses == 1 && zs.hits == 0 && zs.entries == 1);
    for (int i = 0; i < N_IMAGES; i++) {
        double mx = g.logits[i][0], sum = 0, want[N_TEXTS];
        int best = 0;
        for (int t = 1; t < N_TEXTS; t++)
            if (g.logits[i][t] > mx)
                mx = g.logits[i][t], best = t;
        for (int t = 0; t < N_TEXTS; t++)
            sum += want[t] = exp(g.logits[i][t] - mx);
        for (int t = 0; t < N_TEXTS; t++)
            ck_assert_msg(fabs(probs[i * N_TEXTS + t] - want[t] / sum) <= TOL_LOGIT,
                          "p[%d][%d] = %.7g, reference %.7g", i, t, (double)probs[i * N_TEXTS + t],
                          want[t] / sum);
        ck_assert_int_eq(top[i], best);
    }
    /* A hit gives exactly what the miss gave. */
    ck_assert_int_eq(eng_zero_shot_images(c, &ls, path_list(&g), N_IMAGES, again, top2, NULL),
                     ENG_OK);
    eng_zero_shot_get_stats(m, &zs);
    ck_assert(zs.misses == 1 && zs.hits == 1 && zs.entries == 1);
    ck_assert_mem_eq(probs, again, sizeof probs);
    ck_assert_mem_eq(top, top2, sizeof top);
    /* From features computed apart (the scheduler's way): the same. */
    float feats[N_IMAGES * MAX_W];
    ck_assert_int_eq(eng_embed_images(c, path_list(&g), N_IMAGES, feats, NULL), ENG_OK);
    ck_assert_int_eq(eng_zero_shot_scores(c, &ls, feats, N_IMAGES, again, top2), ENG_OK);
    ck_assert_mem_eq(probs, again, sizeof probs);
    ck_assert_mem_eq(top, top2, sizeof top);
    /* Another template is another entry (the ids are the same here, so the
     * numbers are too). */
    ls.templ = "a picture of a {}";
    ck_assert_int_eq(eng_zero_shot_images(c, &ls, path_list(&g), 1, again, top2, NULL), ENG_OK);
    eng_zero_shot_get_stats(m, &zs);
    ck_assert(zs.misses == 2 && zs.hits == 2 && zs.entries == 2);
    ck_assert_mem_eq(probs, again, N_TEXTS * sizeof *probs);
    /* A bad image fails alone. */
    const char *paths[2] = {"/nonexistent.png", g.paths[2]};
    eng_status st[2];
    ck_assert_int_eq(eng_zero_shot_images(c, &ls, paths, 2, again, top2, st), ENG_ERR_IO);
    ck_assert(st[0] == ENG_ERR_IO && st[1] == ENG_OK && top2[0] == -1 && top2[1] == top[2]);
    ck_assert_mem_eq(again + N_TEXTS, probs + 2 * N_TEXTS, N_TEXTS * sizeof *probs);
    /* A negative id count, or ids missing, is refused (not read). */
    eng_seq bad[N_TEXTS];
    memcpy(bad, g.seqs, sizeof bad);
    eng_label_set bad_ls = {names, N_TEXTS, NULL, bad};
    bad[3].n_ids = -1;
    ck_assert_int_eq(eng_zero_shot_images(c, &bad_ls, path_list(&g), 1, again, top2, NULL),
                     ENG_ERR_INVALID_ARG);
    bad[3] = (eng_seq){NULL, 2};
    ck_assert_int_eq(eng_zero_shot_images(c, &bad_ls, path_list(&g), 1, again, top2, NULL),
                     ENG_ERR_INVALID_ARG);
    eng_ctx_free(c);
    eng_model_free(m);

    /* A ViT has no text tower. */
    m = convert_and_load("vit-cls", "fp32");
    c = ctx_for(m, 1);
    ck_assert_int_eq(eng_zero_shot_images(c, &ls, path_list(&g), 1, again, NULL, NULL),
                     ENG_ERR_UNSUPPORTED);
    eng_ctx_free(c);
    eng_model_free(m);
}
END_TEST

#if TEST_COUNT_ALLOCS
/* A warm zero-shot call (its label set cached, the context's scratch grown
 * as large by an earlier call) allocates nothing of its own: from features
 * nothing at all, from an encoded image exactly what embedding that image
 * allocates (the decoder's buffers, src/vision/image.c). */
START_TEST(test_zero_shot_no_alloc)
{
    golden g;
    read_golden("clip", "image_embeds", &g);
    eng_model *m = convert_and_load("clip", "fp32");
    eng_ctx *c = ctx_for(m, 2);
    const char *names[N_TEXTS] = {"a", "b", "c", "d", "e"};
    eng_label_set ls = {names, N_TEXTS, NULL, g.seqs};
    float feats[N_IMAGES * MAX_W], probs[N_IMAGES * N_TEXTS];
    int top[N_IMAGES];
    size_t size;
    char *data = test_read_file(g.paths[0], &size);
    ck_assert_ptr_nonnull(data);
    const void *d[1] = {data};
    ck_assert_int_eq(eng_zero_shot_images(c, &ls, path_list(&g), N_IMAGES, probs, top, NULL),
                     ENG_OK);
    ck_assert_int_eq(eng_embed_images(c, path_list(&g), N_IMAGES, feats, NULL), ENG_OK);

    long before = test_allocs();
    eng_status s = eng_zero_shot_scores(c, &ls, feats, N_IMAGES, probs, top);
    long n = test_allocs() - before;
    ck_assert_int_eq(s, ENG_OK);
    ck_assert_msg(n == 0, "a warm eng_zero_shot_scores allocated %ld times", n);

    before = test_allocs();
    s = eng_embed_image_data(c, d, &size, 1, feats, NULL);
    const long decode = test_allocs() - before;
    ck_assert_int_eq(s, ENG_OK);
    ck_assert_int_gt(decode, 0); /* the counter counts */

    before = test_allocs();
    s = eng_zero_shot_image_data(c, &ls, d, &size, 1, probs, top, NULL);
    n = test_allocs() - before;
    ck_assert_int_eq(s, ENG_OK);
    ck_assert_msg(n == decode, "a warm eng_zero_shot_image_data allocated %ld times, embedding %ld",
                  n, decode);
    free(data);
    eng_ctx_free(c);
    eng_model_free(m);
}
END_TEST
#endif

/* bf16 precision (the GEMMs' inputs rounded to bf16, fp32 accumulation) and
 * int8 encoder and patch embedding weights: CLIP features close to the reference, and zero-shot
 * picks the same label as fp32 on every image. */
START_TEST(test_reduced_precision)
{
    golden g;
    read_golden("clip", "image_embeds", &g);
    const int D = g.width;
    for (int v = 0; v < 2; v++) {
        eng_model *m = convert_and_load("clip", v ? "int8" : "fp32");
        /* --dtype int8 quantizes the patch embedding too (files converted
         * before have it F32, the dtype an fp32 conversion still writes). */
        ck_assert_int_eq(((const eng__vit_model *)m->impl)->patch_lin.dtype,
                         v ? ENG_DT_I8 : ENG_DT_F32);
        eng_ctx_params p = eng_ctx_default_params();
        p.n_threads = 2;
        p.precision = v ? ENG_PREC_FP32 : ENG_PREC_BF16;
        eng_ctx *c;
        if (eng_ctx_init(m, &p, &c) != ENG_OK) {
            ck_assert_msg(!v, "%s", eng_last_error()); /* no bf16 unit here */
            eng_model_free(m);
            continue;
        }
        float img[N_IMAGES * MAX_W], txt[N_TEXTS * MAX_W], probs[N_IMAGES * N_TEXTS];
        int top[N_IMAGES];
        ck_assert_int_eq(eng_embed_images(c, path_list(&g), N_IMAGES, img, NULL), ENG_OK);
        ck_assert_int_eq(eng_embed_ids(c, g.seqs, N_TEXTS, txt, NULL), ENG_OK);
        double worst = 1;
        for (int i = 0; i < N_IMAGES; i++) {
            double cs = test_cosine(img + i * D, g.out[i], D);
            worst = cs < worst ? cs : worst;
        }
        for (int t = 0; t < N_TEXTS; t++) {
            double cs = test_cosine(txt + t * D, g.text[t], D);
            worst = cs < worst ? cs : worst;
        }
        printf("%s: worst cosine to the fp32 reference %.6f\n", v ? "int8" : "bf16", worst);
        ck_assert_double_ge(worst, MIN_COSINE_REDUCED);
        const char *names[N_TEXTS] = {"a", "b", "c", "d", "e"};
        eng_label_set ls = {names, N_TEXTS, NULL, g.seqs};
        ck_assert_int_eq(eng_zero_shot_images(c, &ls, path_list(&g), N_IMAGES, probs, top, NULL),
                         ENG_OK);
        if (!v) { /* an fp32 context's entry is its own */
            eng_ctx *c32 = ctx_for(m, 1);
            float p32[N_IMAGES * N_TEXTS];
            ck_assert_int_eq(eng_zero_shot_images(c32, &ls, path_list(&g), 1, p32, NULL, NULL),
                             ENG_OK);
            eng_zero_shot_stats zs;
            eng_zero_shot_get_stats(m, &zs);
            ck_assert(zs.misses == 2 && zs.entries == 2);
            eng_ctx_free(c32);
        }
        for (int i = 0; i < N_IMAGES; i++) {
            int best = 0;
            for (int t = 1; t < N_TEXTS; t++)
                best = g.logits[i][t] > g.logits[i][best] ? t : best;
            ck_assert_int_eq(top[i], best);
        }
        eng_ctx_free(c);
        eng_model_free(m);
    }
}
END_TEST

/* eos_token_id 2 (the original CLIP configs) pools at the largest id: with
 * these prompts (the end-of-text id is the vocabulary's last) the same
 * token as the first end-of-text, so the reference's features again. */
START_TEST(test_clip_argmax_pooling)
{
    golden g;
    read_golden("clip", "image_embeds", &g);
    char dir[] = "/tmp/test_vit_eos_XXXXXX", cmd[512], out[600], err[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "cp %s/clip/* %s/ && sed -i 's/\"eos_token_id\": 63/\"eos_token_id\": 2/' "
             "%s/config.json && grep -q '\"eos_token_id\": 2' %s/config.json",
             GOLDEN_DIR, dir, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(out, sizeof out, "%s/clip.eng", dir);
    cv_vit_report r;
    ck_assert_msg(cv_convert_vit(dir, NULL, out, &r, err, sizeof err) == ENG_OK, "%s", err);
    eng_model *m;
    ck_assert_int_eq(eng_model_load(out, NULL, &m), ENG_OK);
    ck_assert_int_eq(((const eng__vit_model *)m->impl)->eos_id, 2);
    eng_ctx *c = ctx_for(m, 1);
    float txt[N_TEXTS * MAX_W];
    ck_assert_int_eq(eng_embed_ids(c, g.seqs, N_TEXTS, txt, NULL), ENG_OK);
    for (int t = 0; t < N_TEXTS; t++)
        ck_assert_double_ge(test_cosine(txt + t * g.width, g.text[t], g.width), MIN_COSINE);
    eng_ctx_free(c);
    eng_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Hostile config.json values (found by fuzz/fuzz_vit_config.c: a size past
 * int made a float-to-int conversion overflow) are refused with a reason: a
 * size that is no integer in 0..2^24, a zero patch, and a size the
 * checkpoint does not have (refused before its K x N floats are allocated). */
START_TEST(test_config_hostile)
{
    static const struct {
        const char *from, *to;
        eng_status want;
        const char *says;
    } cases[] = {
        {"\"hidden_size\": 32", "\"hidden_size\": 3.4e110", ENG_ERR_FORMAT, "hidden_size"},
        {"\"hidden_size\": 32", "\"hidden_size\": -32", ENG_ERR_FORMAT, "hidden_size"},
        {"\"patch_size\": 8", "\"patch_size\": 8.5", ENG_ERR_FORMAT, "patch_size"},
        {"\"patch_size\": 8", "\"patch_size\": 0", ENG_ERR_UNSUPPORTED, "patch_size 0"},
        {"\"hidden_size\": 32", "\"hidden_size\": 16000000", ENG_ERR_FORMAT,
         "no tensor vision_model.embeddings.patch_embedding.weight of 3072000000 values"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[] = "/tmp/test_vit_cfg_XXXXXX", cmd[768], out[600], err[512] = "";
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(cmd, sizeof cmd,
                 "cp %s/clip/* %s/ && sed -i 's/%s/%s/' %s/config.json && grep -qF '%s' "
                 "%s/config.json",
                 GOLDEN_DIR, dir, cases[i].from, cases[i].to, dir, cases[i].to, dir);
        ck_assert_int_eq(system(cmd), 0);
        snprintf(out, sizeof out, "%s/clip.eng", dir);
        cv_vit_report r;
        eng_status s = cv_convert_vit(dir, NULL, out, &r, err, sizeof err);
        ck_assert_msg(s == cases[i].want && strstr(err, cases[i].says),
                      "%s: status %d, %s", cases[i].to, (int)s, err);
        ck_assert_int_ne(access(out, F_OK), 0);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        ck_assert_int_eq(system(cmd), 0);
    }
}
END_TEST

/* Without preprocessor_config.json the converter takes ViTImageProcessor's
 * defaults at the model's size (bilinear, square, mean and std 0.5): what
 * vit-cls's config says, so the pixels are the reference's. */
START_TEST(test_processor_defaults)
{
    char dir[] = "/tmp/test_vit_pp_XXXXXX", cmd[512], out[600], err[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "cp %s/vit-cls/* %s/ && rm %s/preprocessor_config.json", GOLDEN_DIR,
             dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(out, sizeof out, "%s/vit.eng", dir);
    cv_vit_report r;
    ck_assert_msg(cv_convert_vit(dir, NULL, out, &r, err, sizeof err) == ENG_OK, "%s", err);
    eng_model *m, *ref = convert_and_load("vit-cls", "fp32");
    ck_assert_int_eq(eng_model_load(out, NULL, &m), ENG_OK);
    const eng__image_spec *a = &((const eng__vit_model *)m->impl)->spec;
    const eng__image_spec *b = &((const eng__vit_model *)ref->impl)->spec;
    ck_assert(a->resize == b->resize && a->crop == b->crop && a->filter == b->filter &&
              a->square == b->square && a->rescale == b->rescale &&
              !memcmp(a->mean, b->mean, sizeof a->mean) && !memcmp(a->std, b->std, sizeof a->std));
    eng_model_free(m);
    eng_model_free(ref);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* A CLIP folder's tokenizer.json travels in the file as it is ("tok.json"),
 * for the tokenizer.json interpreter; one it cannot run fails the load. */
START_TEST(test_tokenizer_json_kept)
{
    char dir[] = "/tmp/test_vit_tok_XXXXXX", cmd[512], out[600], err[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(out, sizeof out, "%s/clip.eng", dir);
    cv_vit_report r;
    ck_assert_msg(cv_convert_vit(GOLDEN_DIR "/clip-tok", NULL, out, &r, err, sizeof err) == ENG_OK,
                  "%s", err);
    size_t len = 0;
    char *tok = test_read_file(GOLDEN_DIR "/clip-tok/tokenizer.json", &len);
    ck_assert_ptr_nonnull(tok);
    eng_model *m;
    ck_assert_int_eq(eng_model_load(out, NULL, &m), ENG_OK);
    const eng__file_tensor *t = eng__file_find(&m->file, "tok.json");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, ENG_DT_U8);
    ck_assert_uint_eq(t->nbytes, len);
    ck_assert_mem_eq(eng__file_data(&m->file, t), tok, len);
    free(tok);
    eng_model_free(m);

    snprintf(cmd, sizeof cmd, "cp %s/clip/* %s/ && echo '{\"model\": {\"type\": \"BPE\"}}' > "
             "%s/tokenizer.json", GOLDEN_DIR, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_msg(cv_convert_vit(dir, NULL, out, &r, err, sizeof err) == ENG_OK, "%s", err);
    ck_assert_int_ne(eng_model_load(out, NULL, &m), ENG_OK);
    ck_assert_str_ne(eng_last_error(), "");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The scheduler batches CLIP image embeddings like ResNet's classifications:
 * each result equals the direct call's; classify is refused at submit. */
START_TEST(test_sched_embed)
{
    golden g;
    read_golden("clip", "image_embeds", &g);
    eng_model *m = convert_and_load("clip", "fp32");
    const int D = g.width;
    char *bytes[N_IMAGES];
    size_t len[N_IMAGES];
    for (int i = 0; i < N_IMAGES; i++)
        ck_assert_ptr_nonnull(bytes[i] = test_read_file(g.paths[i], &len[i]));
    eng_sched_params sp = eng_sched_default_params();
    sp.model = m;
    sp.n_workers = 1;
    sp.threads_per_worker = 1;
    sp.max_wait_us = 20000; /* so the four share a batch */
    sp.bind = 0;
    eng_sched *s;
    ck_assert_msg(eng_sched_create(&sp, &s) == ENG_OK, "%s", eng_last_error());
    eng_sched_req rq = eng_sched_default_req();
    eng_sched_ticket *t[N_IMAGES];
    ck_assert_int_eq(eng_sched_submit_image(s, bytes[0], len[0], &rq, &t[0]), ENG_ERR_UNSUPPORTED);
    rq.task = ENG_TASK_EMBED;
    for (int i = 0; i < N_IMAGES; i++)
        ck_assert_int_eq(eng_sched_submit_image(s, bytes[i], len[i], &rq, &t[i]), ENG_OK);
    for (int i = 0; i < N_IMAGES; i++) {
        eng_sched_result res;
        ck_assert_int_eq(eng_sched_wait(s, t[i], &res), ENG_OK);
        ck_assert_int_eq(res.n_out, D);
        ck_assert_double_ge(test_cosine(res.out, g.out[i], D), MIN_COSINE);
        eng_sched_release(s, t[i]);
    }
    eng_sched_free(s);
    for (int i = 0; i < N_IMAGES; i++)
        free(bytes[i]);
    eng_model_free(m);
}
END_TEST

typedef struct {
    const eng_model *m;
    const char *const *paths;
    const eng_label_set *ls;
    float probs[N_IMAGES * N_TEXTS];
    eng_status st;
} zs_thread;

static void *zs_run(void *arg)
{
    zs_thread *z = arg;
    eng_ctx_params p = eng_ctx_default_params();
    p.n_threads = 1;
    eng_ctx *c;
    z->st = eng_ctx_init(z->m, &p, &c);
    for (int r = 0; !z->st && r < 3; r++)
        z->st = eng_zero_shot_images(c, z->ls, z->paths, 1, z->probs, NULL, NULL);
    eng_ctx_free(c);
    return NULL;
}

/* Threads with their own contexts share the model's cache: the same label
 * set, asked for at once, is one entry and the same numbers for all. */
START_TEST(test_zero_shot_threads)
{
    golden g;
    read_golden("clip", "image_embeds", &g);
    const char *const *paths = path_list(&g);
    eng_model *m = convert_and_load("clip", "fp32");
    const char *names[N_TEXTS] = {"a", "b", "c", "d", "e"};
    eng_label_set ls = {names, N_TEXTS, "{}", g.seqs};
    enum { N_THREADS = 3 };
    zs_thread z[N_THREADS];
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        z[i] = (zs_thread){.m = m, .paths = paths, .ls = &ls};
        ck_assert_int_eq(pthread_create(&th[i], NULL, zs_run, &z[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(z[i].st, ENG_OK);
        ck_assert_mem_eq(z[i].probs, z[0].probs, N_TEXTS * sizeof(float));
    }
    eng_zero_shot_stats zs;
    eng_zero_shot_get_stats(m, &zs);
    ck_assert_uint_eq(zs.entries, 1);
    ck_assert_uint_eq(zs.hits + zs.misses, 3 * N_THREADS);
    ck_assert_uint_ge(zs.hits, 2 * N_THREADS); /* every thread's later calls hit */
    eng_model_free(m);
}
END_TEST

/* A missing file, garbage bytes and an out-of-vocabulary id fail alone; the
 * rest of the batch equals what it gives alone. */
START_TEST(test_bad_items_fail_alone)
{
    golden g;
    read_golden("clip", "image_embeds", &g);
    eng_model *m = convert_and_load("clip", "fp32");
    const int D = g.width;
    eng_ctx *c = ctx_for(m, 2);
    const char *paths[4] = {g.paths[0], "/nonexistent/x.jpg", "tests/test_vit.c", g.paths[1]};
    float out[4 * MAX_W], one[MAX_W];
    eng_status st[4];
    ck_assert_int_ne(eng_embed_images(c, paths, 4, out, st), ENG_OK);
    ck_assert_int_eq(st[0], ENG_OK);
    ck_assert_int_eq(st[1], ENG_ERR_IO);
    ck_assert_int_eq(st[2], ENG_ERR_FORMAT);
    ck_assert_int_eq(st[3], ENG_OK);
    ck_assert_ptr_nonnull(eng_ctx_item_error(c, 1));
    ck_assert_ptr_null(eng_ctx_item_error(c, 0));
    for (int k = 0; k < D; k++)
        ck_assert(out[D + k] == 0.0f && out[2 * D + k] == 0.0f);
    /* Alone on two threads (the first member decodes, both resize: vit.c's
     * decode_shared), an image fails or embeds as in a batch. */
    ck_assert_int_eq(eng_embed_images(c, &paths[1], 1, one, st), ENG_ERR_IO);
    ck_assert_int_eq(st[0], ENG_ERR_IO);
    ck_assert_int_eq(eng_embed_images(c, &paths[2], 1, one, st), ENG_ERR_FORMAT);
    ck_assert_int_eq(st[0], ENG_ERR_FORMAT);
    ck_assert_int_eq(eng_embed_images(c, &paths[3], 1, one, NULL), ENG_OK);
    ck_assert_double_ge(test_cosine(one, out + 3 * D, D), MIN_COSINE);
    ck_assert_double_ge(test_cosine(out, g.out[0], D), MIN_COSINE);

    int32_t bad_ids[3] = {62, 64, 63};
    eng_seq seqs[2] = {{bad_ids, 3}, g.seqs[1]};
    float txt[2 * MAX_W];
    ck_assert_int_eq(eng_embed_ids(c, seqs, 2, txt, st), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(st[0], ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(st[1], ENG_OK);
    ck_assert_double_ge(test_cosine(txt + D, g.text[1], D), MIN_COSINE);
    eng_ctx_free(c);
    eng_model_free(m);
}
END_TEST

/* tests/golden/tiny/clip-tok (make_clip_tok.py: the tiny CLIP with the
 * clip-like tokenizer.json): eng_tokenize gives the npm tokenizers' golden
 * ids (truncated as HF does to the 16 positions: <|startoftext|>, the first
 * 14 tokens, <|endoftext|>), texts embed bit-identically to those ids, and
 * zero-shot by label texts equals zero-shot by their ids. */
START_TEST(test_clip_tokenizer)
{
    enum { N = 120, L = 5 };
    golden g;
    read_golden("clip", "image_embeds", &g);
    eng_model *m = convert_and_load("clip-tok", "fp32");
    eng_model_info info;
    eng_model_get_info(m, &info);
    const int P = info.max_positions, D = info.embed_size;
    ck_assert_int_eq(P, MAX_IDS);
    size_t tlen = 0, glen = 0;
    char *texts = test_read_file("tests/golden/tokjson/texts.txt", &tlen);
    char *gold = test_read_file("tests/golden/tokjson/clip-like/golden.jsonl", &glen);
    ck_assert(texts && gold);
    static const char *batch[N];
    static int32_t ids[N][MAX_IDS];
    static eng_seq seqs[N];
    static float by_text[N * MAX_W], by_ids[N * MAX_W];
    char *tp = texts, *gp = gold;
    int n_truncated = 0;
    for (int n = 0; n < N; n++) {
        char *tnl = strchr(tp, '\n'), *gnl = strchr(gp, '\n');
        ck_assert(tnl && gnl);
        *tnl = *gnl = '\0';
        cJSON *j = cJSON_Parse(gp);
        const cJSON *gids = cJSON_GetArrayItem(j, 0);
        const int k = cJSON_GetArraySize(gids), want = k > P ? P : k;
        for (int i = 0; i < want; i++)
            ids[n][i] = cJSON_GetArrayItem(gids, i < want - 1 ? i : k - 1)->valueint;
        cJSON_Delete(j);
        int32_t got[MAX_IDS];
        int got_n = 0, trunc = 0;
        ck_assert_int_eq(eng_tokenize(m, tp, strlen(tp), got, MAX_IDS, &got_n, &trunc), ENG_OK);
        ck_assert_msg(got_n == want && !memcmp(got, ids[n], (size_t)want * sizeof *got),
                      "text %d (%s): %d ids, want %d", n + 1, tp, got_n, want);
        ck_assert_int_eq(trunc, k > P);
        n_truncated += k > P;
        seqs[n] = (eng_seq){ids[n], want};
        batch[n] = tp;
        tp = tnl + 1;
        gp = gnl + 1;
    }
    ck_assert_int_gt(n_truncated, 0);
    ck_assert_int_lt(n_truncated, N);
    size_t len;
    int special = 0;
    const char *t = eng_model_token(m, ids[0][0], &len, &special);
    ck_assert(t && len == strlen("<|startoftext|>") && !memcmp(t, "<|startoftext|>", len) &&
              special);

    eng_ctx *c = ctx_for(m, 2);
    ck_assert_msg(eng_embed(c, batch, N, by_text, NULL) == ENG_OK, "%s", eng_ctx_last_error(c));
    ck_assert_int_eq(eng_embed_ids(c, seqs, N, by_ids, NULL), ENG_OK);
    ck_assert_mem_eq(by_text, by_ids, (size_t)N * D * sizeof(float));
    /* Invalid UTF-8 and a NULL text fail alone. */
    const char *bad[4] = {batch[0], "a \xff b", NULL, batch[1]};
    eng_status st[4];
    float four[4 * MAX_W];
    ck_assert_int_eq(eng_embed(c, bad, 4, four, st), ENG_ERR_UTF8);
    ck_assert(st[0] == ENG_OK && st[1] == ENG_ERR_UTF8 && st[2] == ENG_ERR_INVALID_ARG &&
              st[3] == ENG_OK);
    ck_assert_double_ge(test_cosine(four, by_text, D), MIN_COSINE);
    ck_assert_double_ge(test_cosine(four + 3 * D, by_text + D, D), MIN_COSINE);

    /* The labels' prompts are the texts themselves (template "{}"). */
    const char *const *paths = path_list(&g);
    eng_label_set by_label = {batch, L, "{}", NULL}, by_seq = {batch, L, "{}", seqs};
    float p_text[N_IMAGES * L], p_ids[N_IMAGES * L];
    ck_assert_msg(eng_zero_shot_images(c, &by_label, paths, N_IMAGES, p_text, NULL, NULL) ==
                      ENG_OK,
                  "%s", eng_ctx_last_error(c));
    ck_assert_int_eq(eng_zero_shot_images(c, &by_seq, paths, N_IMAGES, p_ids, NULL, NULL), ENG_OK);
    ck_assert_mem_eq(p_text, p_ids, sizeof p_text);
    free(texts);
    free(gold);
    eng_ctx_free(c);
    eng_model_free(m);
}
END_TEST

int main(void)
{
    if (!test_shared_path("data/imagenet-sample/images")) {
        printf("skip: no $ENGINE_SHARED/data/imagenet-sample/images (the test images)\n");
        return TEST_SKIP;
    }
    Suite *s = suite_create("vit");
    TCase *tc = tcase_create("vit");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_pixels_exact, 0, 3);
    tcase_add_test(tc, test_vit_logits);
    tcase_add_test(tc, test_vit_pooler);
    tcase_add_test(tc, test_clip_features);
    tcase_add_test(tc, test_bad_items_fail_alone);
    tcase_add_test(tc, test_zero_shot_cache);
    tcase_add_test(tc, test_zero_shot_threads);
#if TEST_COUNT_ALLOCS
    tcase_add_test(tc, test_zero_shot_no_alloc);
#else
    test_note_skip("a sanitizer owns malloc in this build: the no-allocation check did not run");
#endif
    tcase_add_test(tc, test_sched_embed);
    tcase_add_test(tc, test_tokenizer_json_kept);
    tcase_add_test(tc, test_processor_defaults);
    tcase_add_test(tc, test_config_hostile);
    tcase_add_test(tc, test_clip_argmax_pooling);
    tcase_add_test(tc, test_clip_tokenizer);
    tcase_add_test(tc, test_reduced_precision);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
