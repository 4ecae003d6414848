/* image_bench.c: build/image-bench, the speed of an image classifier (issue 5),
 * split into the whole call and the network alone, so the share of the time
 * spent decoding and preprocessing shows (bench/resnet.sh runs it beside ONNX
 * Runtime).
 *
 *   image-bench MODEL.eng IMAGE... [--batch 1,8,32] [--threads 2] [--samples 7]
 *
 * The image files are read into memory first (no disk in the timings) and
 * cycled to fill each batch. For each batch size it times, over the same
 * images: eng_classify_image_data (decode, preprocess, network: what a caller
 * gets) and the network alone on already-decoded tensors (the internal
 * eng__cnn_forward on a team of the same size). Each sample repeats the batch
 * for at least 0.2 s; the figures are medians of the samples. One JSON line
 * per batch size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "engine.h"
#include "vision.h"
#include "team.h"

#define SAMPLE_SECONDS 0.2
#define MAX_BATCHES 16

typedef struct {
    eng_ctx *ctx;
    const void *const *data;
    const size_t *size;
    eng__cnn_ctx *cnn_ctx;
    eng__team *team;
    const float *pixels;
    int batch;
    float *logits;
} job;

static void run_e2e(const job *j)
{
    if (eng_classify_image_data(j->ctx, j->data, j->size, j->batch, j->logits, NULL, NULL, NULL)) {
        fprintf(stderr, "image-bench: %s\n", eng_ctx_last_error(j->ctx));
        exit(1);
    }
}

static void run_net(const job *j)
{
    eng__cnn_forward(j->cnn_ctx, j->team, j->pixels, j->batch, j->logits);
}

/* Median seconds per call of fn over `samples` samples. */
static double median_time(void (*fn)(const job *), const job *j, int samples)
{
    double t[64];
    fn(j);   /* warm-up */
    for (int s = 0; s < samples; s++) {
        int reps = 0;
        double t0 = bench_now_s(), el;
        do {
            fn(j);
            reps++;
        } while ((el = bench_now_s() - t0) < SAMPLE_SECONDS);
        t[s] = el / reps;
    }
    qsort(t, (size_t)samples, sizeof t[0], bench_cmp_double);
    return t[samples / 2];
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *batches = "1,8,32";
    const char **paths = malloc(sizeof(char *) * (size_t)argc);
    int n_paths = 0, threads = 2, samples = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batches = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
            samples = atoi(argv[++i]);
        else if (!model_path)
            model_path = argv[i];
        else
            paths[n_paths++] = argv[i];
    }
    if (!model_path || n_paths == 0 || threads < 1 || samples < 1 || samples > 64) {
        fprintf(stderr, "usage: image-bench MODEL.eng IMAGE... [--batch 1,8,32] [--threads 2] "
                        "[--samples 7]\n");
        return 2;
    }
    int bs[MAX_BATCHES], nb = 0, maxb = 1;
    for (const char *p = batches; *p && nb < MAX_BATCHES; p += strcspn(p, ","), p += *p == ',') {
        bs[nb] = atoi(p);
        if (bs[nb] < 1) {
            fprintf(stderr, "image-bench: bad --batch %s\n", batches);
            return 2;
        }
        maxb = bs[nb] > maxb ? bs[nb] : maxb;
        nb++;
    }

    eng_model *model;
    if (eng_model_load(model_path, NULL, &model)) {
        fprintf(stderr, "image-bench: %s\n", eng_last_error());
        return 1;
    }
    const eng__cnn *cnn = eng__cnn_of(model);
    if (!cnn) {
        fprintf(stderr, "image-bench: %s is not an image model\n", model_path);
        return 1;
    }
    eng_ctx_params cp = eng_ctx_default_params();
    cp.n_threads = threads;
    cp.max_batch_images = maxb;
    eng_ctx *ctx;
    eng__cnn_ctx *cnn_ctx;
    eng__team *team;
    char err[256];
    if (eng_ctx_init(model, &cp, &ctx) || eng__team_create(&team, threads) ||
        eng__cnn_ctx_init(cnn, maxb, threads, &cnn_ctx, err, sizeof err)) {
        fprintf(stderr, "image-bench: cannot make a context\n");
        return 1;
    }

    /* The batch's encoded files and their decoded tensors. */
    const size_t F = eng__cnn_input_floats(cnn);
    const void **data = malloc(sizeof(void *) * (size_t)maxb);
    size_t *size = malloc(sizeof(size_t) * (size_t)maxb);
    float *pixels = malloc(sizeof(float) * F * (size_t)maxb);
    float *logits = malloc(sizeof(float) * (size_t)eng__cnn_num_classes(cnn) * (size_t)maxb);
    for (int i = 0; i < maxb; i++) {
        const char *path = paths[i % n_paths];
        if (i < n_paths) {
            data[i] = bench_read_file(path, &size[i]);
        } else {
            data[i] = data[i % n_paths];
            size[i] = size[i % n_paths];
        }
        if (!data[i] || eng__image_load_mem(data[i], size[i], eng__cnn_image_spec(cnn),
                                            pixels + F * (size_t)i, err, sizeof err)) {
            fprintf(stderr, "image-bench: %s: %s\n", path, data[i] ? err : "cannot read");
            return 1;
        }
    }

    for (int b = 0; b < nb; b++) {
        job j = { ctx, data, size, cnn_ctx, team, pixels, bs[b], logits };
        double e2e = median_time(run_e2e, &j, samples);
        double net = median_time(run_net, &j, samples);
        printf("{\"arch\": \"%s\", \"batch\": %d, \"threads\": %d, \"ms_per_batch\": %.3f, "
               "\"images_per_s\": %.1f, \"net_ms_per_batch\": %.3f, \"net_images_per_s\": %.1f, "
               "\"preprocess_share\": %.3f}\n",
               eng__cnn_arch(cnn), bs[b], threads, e2e * 1e3, bs[b] / e2e, net * 1e3,
               bs[b] / net, e2e > net ? (e2e - net) / e2e : 0.0);
        fflush(stdout);
    }
    eng__cnn_ctx_free(cnn_ctx);
    eng__team_free(team);
    eng_ctx_free(ctx);
    eng_model_free(model);
    for (int i = 0; i < n_paths && i < maxb; i++)
        free((void *)data[i]);
    free(data), free(size), free(pixels), free(logits), free(paths);
    return 0;
}
