/* clip_bench.c: build/clip-bench, the speed of a CLIP model (issue 17;
 * bench/clip.sh runs it beside ONNX Runtime).
 *
 *   clip-bench MODEL.eng IMAGE... [--batch 1,8,32] [--threads 2] [--samples 5]
 *              [--labels 80] [--zs-runs 200] [--precision fp32|bf16]
 *   clip-bench MODEL.eng IMAGE... --agree OTHER.eng [--labels 80] [--threads 2]
 *   clip-bench MODEL.eng IMAGE --preprocess [--samples 5]
 *
 * The image files are read into memory first (no disk in the timings) and
 * cycled to fill each batch. Per batch size, one JSON line: the whole call
 * (eng_embed_image_data: decode, bicubic resize and crop, network) and the
 * network alone on already-preprocessed pixels (the internal
 * eng__vit_embed_pixels; what ONNX Runtime's figure measures); each sample
 * repeats the batch for at least 0.2 s, the figures are medians of the
 * samples. Then zero-shot at batch 1 over --labels seeded random prompts
 * (token ids of CLIP's shape: start, 5 to 9 words, end): the cold call (the
 * label set's text embeddings computed and cached, one image) over 3 fresh
 * label sets, and --zs-runs warm calls (cache hit), p50 and p95. The
 * engine's name gives the linear layers' dtype (fp32, int8; bf16 for
 * --precision bf16).
 *
 * --agree: no timings; zero-shot of every image over --labels seeded
 * prompts on MODEL and on OTHER (the same weights in another dtype, at fp32
 * precision), one JSON line: how many images get the same top-1 label, the
 * worst cosine between their image features, MODEL's median top-1 to top-2
 * logit gap (how near a tie the labels are) and the widest such gap among
 * the images whose top-1 label differs.
 *
 * --preprocess: no network; the first image's decode (eng__image_decode)
 * and then its preprocessing for MODEL (eng__image_preprocess: resize, crop,
 * normalise), each timed alone on the calling thread as above, one JSON line
 * with the resize kernels' ISA (ENG_ISA picks it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "engine.h"
#include "kernels.h"
#include "model.h"
#include "vit.h"

#define SAMPLE_SECONDS 0.2
#define MAX_BATCHES 16

/* Median seconds per call of fn over samples samples of >= SAMPLE_SECONDS. */
typedef int (*call_fn)(void *arg);
static double time_calls(call_fn fn, void *arg, int samples)
{
    double t[64];
    if (samples > 64)
        samples = 64;
    if (fn(arg))
        return -1;
    for (int s = 0; s < samples; s++) {
        int reps = 0;
        double t0 = bench_now_s(), el;
        do {
            if (fn(arg))
                return -1;
            reps++;
        } while ((el = bench_now_s() - t0) < SAMPLE_SECONDS);
        t[s] = el / reps;
    }
    qsort(t, (size_t)samples, sizeof *t, bench_cmp_double);
    return t[samples / 2];
}

typedef struct {
    eng_ctx *ctx;
    const void **data;
    size_t *size;
    float *pixels, *out;
    int batch;
} job;

static int whole_call(void *arg)
{
    job *j = arg;
    return eng_embed_image_data(j->ctx, j->data, j->size, j->batch, j->out, NULL) != ENG_OK;
}

static int network(void *arg)
{
    job *j = arg;
    return eng__vit_embed_pixels(j->ctx, j->pixels, j->batch, j->out) != ENG_OK;
}

static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* n_labels prompts of random ids: start (vocab - 2), 5..9 words, end (vocab - 1). */
static eng_seq *random_prompts(int n_labels, int vocab)
{
    eng_seq *s = calloc((size_t)n_labels, sizeof *s);
    for (int i = 0; s && i < n_labels; i++) {
        int len = 7 + (int)(next_rand() % 5);
        int32_t *ids = malloc((size_t)len * sizeof *ids);
        ids[0] = vocab - 2;
        for (int k = 1; k < len - 1; k++)
            ids[k] = (int32_t)(next_rand() % (uint32_t)(vocab - 2));
        ids[len - 1] = vocab - 1;
        s[i] = (eng_seq){ids, len};
    }
    return s;
}

/* Zero-shot of the n images (data, size) over ls on ctx: probs (n x L),
 * top (n) and features (n x D), in chunks of max_batch. */
static int zero_shot_all(eng_ctx *ctx, const eng_label_set *ls, const void **data,
                         const size_t *size, int n, int max_batch, int L, int D, float *probs,
                         int *top, float *feats)
{
    for (int i = 0; i < n; i += max_batch) {
        const int b = n - i < max_batch ? n - i : max_batch;
        if (eng_embed_image_data(ctx, data + i, size + i, b, feats + (size_t)i * D, NULL) ||
            eng_zero_shot_scores(ctx, ls, feats + (size_t)i * D, b, probs + (size_t)i * L,
                                 top + i)) {
            fprintf(stderr, "clip-bench: %s\n", eng_ctx_last_error(ctx));
            return 1;
        }
    }
    return 0;
}

/* --agree: see the top of the file. */
static int agree(eng_model *model, eng_ctx *ctx, const char *other_path, int threads,
                 const char **paths, int n, int n_labels, int max_batch)
{
    eng_model_info info;
    eng_model_get_info(model, &info);
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = threads;
    eng_model *other;
    eng_ctx *octx;
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_batch_images = max_batch;
    if (eng_model_load(other_path, &mp, &other) || eng_ctx_init(other, &cp, &octx)) {
        fprintf(stderr, "clip-bench: %s: %s\n", other_path, eng_last_error());
        return 1;
    }
    eng_model_info oinfo;
    eng_model_get_info(other, &oinfo);
    const int L = n_labels, D = info.embed_size;
    const char **names = malloc((size_t)L * sizeof *names);
    char(*buf)[24] = malloc((size_t)L * sizeof *buf);
    for (int i = 0; i < L; i++) {
        snprintf(buf[i], sizeof buf[i], "label%d", i);
        names[i] = buf[i];
    }
    eng_label_set ls = {names, L, NULL, random_prompts(L, info.vocab_size)};
    const void **data = malloc((size_t)n * sizeof *data);
    size_t *size = malloc((size_t)n * sizeof *size);
    float *p[2] = {malloc((size_t)n * L * sizeof(float)), malloc((size_t)n * L * sizeof(float))};
    float *f[2] = {malloc((size_t)n * D * sizeof(float)), malloc((size_t)n * D * sizeof(float))};
    int *top[2] = {malloc((size_t)n * sizeof(int)), malloc((size_t)n * sizeof(int))};
    double *gap = malloc((size_t)n * sizeof *gap);
    for (int i = 0; i < n; i++)
        if (!(data[i] = bench_read_file(paths[i], &size[i]))) {
            fprintf(stderr, "clip-bench: cannot read %s\n", paths[i]);
            return 1;
        }
    if (zero_shot_all(ctx, &ls, data, size, n, max_batch, L, D, p[0], top[0], f[0]) ||
        zero_shot_all(octx, &ls, data, size, n, max_batch, L, D, p[1], top[1], f[1]))
        return 1;
    int same = 0;
    double worst = 1, flipped = 0;
    for (int i = 0; i < n; i++) {
        const float *a = f[0] + (size_t)i * D, *b = f[1] + (size_t)i * D, *q = p[0] + (size_t)i * L;
        double ab = 0, aa = 0, bb = 0;
        for (int k = 0; k < D; k++) {
            ab += (double)a[k] * b[k];
            aa += (double)a[k] * a[k];
            bb += (double)b[k] * b[k];
        }
        worst = ab / sqrt(aa * bb) < worst ? ab / sqrt(aa * bb) : worst;
        same += top[0][i] == top[1][i];
        float second = 0; /* probabilities are positive */
        for (int l = 0; l < L; l++)
            if (l != top[0][i] && q[l] > second)
                second = q[l];
        gap[i] = log((double)q[top[0][i]] / second);
        if (top[0][i] != top[1][i] && gap[i] > flipped)
            flipped = gap[i];
    }
    qsort(gap, (size_t)n, sizeof *gap, bench_cmp_double);
    printf("{\"agree\":\"%s vs %s\",\"images\":%d,\"labels\":%d,\"same_top1\":%d,"
           "\"worst_feature_cosine\":%.6f,\"median_top_gap\":%.4f,\"widest_flipped_gap\":%.4f}\n",
           info.weights, oinfo.weights, n, L, same, worst, gap[n / 2], flipped);
    eng_ctx_free(octx);
    eng_model_free(other);
    return 0;
}

/* --preprocess: see the top of the file. */
typedef struct {
    const void *data;
    size_t size;
    const eng__image_spec *spec;
    eng__rgb_image img;
    float *chw;
} prep_job;

static int decode_once(void *arg)
{
    prep_job *p = arg;
    eng__rgb_image img;
    char err[256];
    eng_status st = eng__image_decode(p->data, p->size, &img, err, sizeof err);
    eng__rgb_image_free(&img);
    return st != ENG_OK;
}

static int preprocess_once(void *arg)
{
    prep_job *p = arg;
    char err[256];
    return eng__image_preprocess(&p->img, p->spec, p->chw, err, sizeof err) != ENG_OK;
}

static int preprocess(const eng_model *model, const char *path, int samples)
{
    if (strcmp(model->info.arch, "clip") && strcmp(model->info.arch, "vit")) {
        fprintf(stderr, "clip-bench: --preprocess needs a CLIP or ViT model\n");
        return 1;
    }
    const eng__image_spec *spec = &((const eng__vit_model *)model->impl)->spec;
    prep_job p = {NULL, 0, spec, {NULL, 0, 0}, NULL};
    char err[256];
    p.data = bench_read_file(path, &p.size);
    if (!p.data || eng__image_decode(p.data, p.size, &p.img, err, sizeof err)) {
        fprintf(stderr, "clip-bench: cannot decode %s\n", path);
        return 1;
    }
    p.chw = malloc(sizeof(float) * 3 * (size_t)spec->crop * spec->crop);
    double dec = time_calls(decode_once, &p, samples), pre = time_calls(preprocess_once, &p, samples);
    if (dec < 0 || pre < 0) {
        fprintf(stderr, "clip-bench: preprocessing %s failed\n", path);
        return 1;
    }
    printf("{\"preprocess\":\"%dx%d to %d\",\"isa\":\"%s\",\"threads\":1,\"decode_ms\":%.3f,"
           "\"preprocess_ms\":%.3f}\n",
           p.img.w, p.img.h, spec->crop, eng__isa_str(eng__kernels_get()->isa), dec * 1e3,
           pre * 1e3);
    eng__rgb_image_free(&p.img);
    free(p.chw);
    free((void *)p.data);
    return 0;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *batches_arg = "1,8,32", *agree_path = NULL;
    int threads = 2, samples = 5, n_labels = 80, zs_runs = 200, bf16 = 0, prep = 0;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    int n_paths = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batches_arg = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
            samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--labels") && i + 1 < argc)
            n_labels = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--zs-runs") && i + 1 < argc)
            zs_runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc)
            bf16 = !strcmp(argv[++i], "bf16");
        else if (!strcmp(argv[i], "--preprocess"))
            prep = 1;
        else if (!strcmp(argv[i], "--agree") && i + 1 < argc)
            agree_path = argv[++i];
        else if (!model_path)
            model_path = argv[i];
        else
            paths[n_paths++] = argv[i];
    }
    if (!model_path || !n_paths || threads < 1 || samples < 1 || n_labels < 1 || zs_runs < 1) {
        fprintf(stderr, "usage: clip-bench MODEL.eng IMAGE... [--batch 1,8,32] [--threads 2] "
                        "[--samples 5] [--labels 80] [--zs-runs 200] [--precision fp32|bf16] "
                        "[--agree OTHER.eng] [--preprocess]\n");
        return 2;
    }
    int batches[MAX_BATCHES], nb = 0, maxb = 1;
    for (char *p = (char *)batches_arg; *p && nb < MAX_BATCHES;) {
        batches[nb] = (int)strtol(p, &p, 10);
        maxb = batches[nb] > maxb ? batches[nb] : maxb;
        nb++;
        while (*p == ',')
            p++;
    }
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = threads;
    eng_model *model;
    if (eng_model_load(model_path, &mp, &model)) {
        fprintf(stderr, "clip-bench: %s\n", eng_last_error());
        return 1;
    }
    if (prep)
        return preprocess(model, paths[0], samples);
    eng_model_info info;
    eng_model_get_info(model, &info);
    eng_ctx_params cp = eng_ctx_default_params();
    cp.max_batch_images = maxb;
    cp.precision = bf16 ? ENG_PREC_BF16 : ENG_PREC_FP32;
    eng_ctx *ctx;
    if (eng_ctx_init(model, &cp, &ctx)) {
        fprintf(stderr, "clip-bench: %s\n", eng_last_error());
        return 1;
    }
    if (agree_path)
        return agree(model, ctx, agree_path, threads, paths, n_paths, n_labels, maxb);
    job j = {ctx,
             malloc((size_t)maxb * sizeof(void *)),
             malloc((size_t)maxb * sizeof(size_t)),
             NULL,
             malloc((size_t)maxb * info.embed_size * sizeof(float)),
             0};
    const size_t F = 3 * (size_t)info.image_size * info.image_size;
    j.pixels = malloc((size_t)maxb * F * sizeof(float));
    /* Seeded pixels in the normalised range: the network's time does not
     * depend on their values. */
    for (size_t i = 0; i < (size_t)maxb * F; i++)
        j.pixels[i] = (float)(next_rand() % 4001) / 1000.0f - 2.0f;
    for (int i = 0; i < maxb; i++) {
        j.data[i] = bench_read_file(paths[i % n_paths], &j.size[i]);
        if (!j.data[i]) {
            fprintf(stderr, "clip-bench: cannot read %s\n", paths[i % n_paths]);
            return 1;
        }
    }
    for (int b = 0; b < nb; b++) {
        j.batch = batches[b];
        double call = time_calls(whole_call, &j, samples), net = time_calls(network, &j, samples);
        if (call < 0 || net < 0) {
            fprintf(stderr, "clip-bench: %s\n", eng_ctx_last_error(ctx));
            return 1;
        }
        printf("{\"engine\":\"libengine %s %s\",\"batch\":%d,\"threads\":%d,\"ms_per_batch\":%.3f,"
               "\"images_per_s\":%.1f,\"net_ms_per_batch\":%.3f,\"net_images_per_s\":%.1f}\n",
               eng_version(), bf16 ? "bf16" : info.weights, j.batch, threads, call * 1e3, j.batch / call,
               net * 1e3, j.batch / net);
        fflush(stdout);
    }
    if (!strcmp(info.arch, "clip")) {
        const char **names = malloc((size_t)n_labels * sizeof *names);
        char(*buf)[24] = malloc((size_t)n_labels * sizeof *buf);   /* "label" and any int */
        for (int i = 0; i < n_labels; i++) {
            snprintf(buf[i], sizeof buf[i], "label%d", i);
            names[i] = buf[i];
        }
        float *probs = malloc((size_t)n_labels * sizeof *probs);
        double cold[3], *warm = malloc((size_t)zs_runs * sizeof *warm);
        for (int k = 0; k < 3; k++) {
            eng_label_set ls = {names, n_labels, NULL, random_prompts(n_labels, info.vocab_size)};
            double t0 = bench_now_s();
            if (eng_zero_shot_image_data(ctx, &ls, j.data, j.size, 1, probs, NULL, NULL)) {
                fprintf(stderr, "clip-bench: %s\n", eng_ctx_last_error(ctx));
                return 1;
            }
            cold[k] = bench_now_s() - t0;
            if (k < 2)
                continue;
            for (int r = 0; r < zs_runs; r++) { /* the last set stays warm */
                t0 = bench_now_s();
                eng_zero_shot_image_data(ctx, &ls, &j.data[r % maxb], &j.size[r % maxb], 1, probs,
                                         NULL, NULL);
                warm[r] = bench_now_s() - t0;
            }
        }
        qsort(cold, 3, sizeof *cold, bench_cmp_double);
        qsort(warm, (size_t)zs_runs, sizeof *warm, bench_cmp_double);
        eng_zero_shot_stats zs;
        eng_zero_shot_get_stats(model, &zs);
        printf("{\"zero_shot_labels\":%d,\"threads\":%d,\"warm_ms_p50\":%.3f,\"warm_ms_p95\":%.3f,"
               "\"cold_ms_median\":%.3f,\"cache_hits\":%llu,\"cache_misses\":%llu}\n",
               n_labels, threads, warm[zs_runs / 2] * 1e3, warm[zs_runs * 95 / 100] * 1e3,
               cold[1] * 1e3, (unsigned long long)zs.hits, (unsigned long long)zs.misses);
    }
    eng_ctx_free(ctx);
    eng_model_free(model);
    return 0;
}
