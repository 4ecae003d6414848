/* text_bench.c: build/text-bench, the offline throughput of the fp32 forward
 * pass, for the figures issue 2 asks for (bench/sst2.sh runs it beside ONNX
 * Runtime on the same ids).
 *
 *   text-bench MODEL --ids IDS.jsonl [--batch 32] [--sort] [--seconds 5]
 *       sentences/s over the given token ids, batched like ort_bench.mjs does.
 *   text-bench MODEL --synthetic-len 128 [--batch 32] [--seconds 5]
 *       batch x len random-id sequences: GFLOP/s of the encoder, against the
 *       AVX-512 FMA peak of the same cores measured in the same run.
 *
 * Threads: --threads N (default: all online cores). --precision fp32|bf16
 * (default fp32) is the context's GEMM precision. Prints one JSON object. */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "benchutil.h"
#include "engine.h"

/* Register-only FMA loop: 12 independent accumulators, named one by one so
 * the compiler keeps them in registers, hide the FMA latency on two pipes. */
__attribute__((target("avx512f"))) static void *fma_peak_thread(void *arg)
{
    double *out = arg;
    __m512 a0 = _mm512_set1_ps(0.f), a1 = _mm512_set1_ps(1.f), a2 = _mm512_set1_ps(2.f),
           a3 = _mm512_set1_ps(3.f), a4 = _mm512_set1_ps(4.f), a5 = _mm512_set1_ps(5.f),
           a6 = _mm512_set1_ps(6.f), a7 = _mm512_set1_ps(7.f), a8 = _mm512_set1_ps(8.f),
           a9 = _mm512_set1_ps(9.f), a10 = _mm512_set1_ps(10.f), a11 = _mm512_set1_ps(11.f);
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    const long iters = 50000000;
    double t0 = bench_now_s();
    for (long it = 0; it < iters; it++) {
        a0 = _mm512_fmadd_ps(a0, x, y);
        a1 = _mm512_fmadd_ps(a1, x, y);
        a2 = _mm512_fmadd_ps(a2, x, y);
        a3 = _mm512_fmadd_ps(a3, x, y);
        a4 = _mm512_fmadd_ps(a4, x, y);
        a5 = _mm512_fmadd_ps(a5, x, y);
        a6 = _mm512_fmadd_ps(a6, x, y);
        a7 = _mm512_fmadd_ps(a7, x, y);
        a8 = _mm512_fmadd_ps(a8, x, y);
        a9 = _mm512_fmadd_ps(a9, x, y);
        a10 = _mm512_fmadd_ps(a10, x, y);
        a11 = _mm512_fmadd_ps(a11, x, y);
    }
    double t = bench_now_s() - t0;
    __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                               _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    volatile float sink = _mm512_reduce_add_ps(sum);
    (void)sink;
    *out = (double)iters * 12 * 16 * 2 / t / 1e9;
    return NULL;
}

/* GFLOP/s of AVX-512 FMAs over n threads at once. */
static double fma_peak(int n)
{
    pthread_t th[64];
    double g[64] = {0}, total = 0;
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, fma_peak_thread, &g[i]);
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += g[i];
    }
    return total;
}

typedef struct {
    int32_t *ids;
    int n;
} row;

static int by_len(const void *a, const void *b)
{
    return ((const row *)a)->n - ((const row *)b)->n;
}

static row *read_ids(const char *path, int *n_rows)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    row *rows = NULL;
    int n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        int len = cJSON_GetArraySize(j);
        if (!cJSON_IsArray(j) || len < 1) {
            cJSON_Delete(j);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            rows = realloc(rows, (size_t)cap * sizeof *rows);
        }
        rows[n].ids = malloc((size_t)len * sizeof(int32_t));
        rows[n].n = len;
        int k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, j) rows[n].ids[k++] = v->valueint;
        cJSON_Delete(j);
        n++;
    }
    free(line);
    fclose(f);
    *n_rows = n;
    return rows;
}

int main(int argc, char **argv)
{
    const char *model_path = argc > 1 ? argv[1] : NULL, *ids_path = NULL;
    int batch = 32, sort = 0, synth_len = 0, threads = 0;
    eng_ctx_params cp = eng_ctx_default_params();
    double seconds = 5;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--ids") && i + 1 < argc)
            ids_path = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--synthetic-len") && i + 1 < argc)
            synth_len = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sort"))
            sort = 1;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "fp32") || !strcmp(argv[i + 1], "bf16")))
            cp.precision = !strcmp(argv[++i], "bf16") ? ENG_PREC_BF16 : ENG_PREC_FP32;
        else {
            fprintf(stderr, "text-bench: bad option %s\n", argv[i]);
            return 2;
        }
    }
    if (!model_path || (!ids_path && synth_len <= 0) || batch < 1) {
        fprintf(stderr, "usage: text-bench MODEL (--ids IDS.jsonl [--sort] | --synthetic-len N)"
                        " [--batch N] [--seconds S] [--threads N] [--precision fp32|bf16]\n");
        return 2;
    }
    if (threads <= 0)
        threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    eng_model_params mp = eng_model_default_params();
    mp.n_threads = threads;
    eng_model *model;
    eng_ctx *ctx;
    if (eng_model_load(model_path, &mp, &model) || eng_ctx_init(model, &cp, &ctx)) {
        fprintf(stderr, "text-bench: %s\n", eng_last_error());
        return 1;
    }
    eng_model_info info;
    eng_model_get_info(model, &info);

    int n = 0;
    row *rows;
    if (ids_path) {
        rows = read_ids(ids_path, &n);
        if (!rows || n == 0) {
            fprintf(stderr, "text-bench: no ids in %s\n", ids_path);
            return 1;
        }
        if (sort)
            qsort(rows, (size_t)n, sizeof *rows, by_len);
    } else {
        n = batch;
        rows = malloc((size_t)n * sizeof *rows);
        srand(1);
        for (int i = 0; i < n; i++) {
            rows[i].n = synth_len;
            rows[i].ids = malloc((size_t)synth_len * sizeof(int32_t));
            for (int k = 0; k < synth_len; k++)
                rows[i].ids[k] = 1000 + rand() % (info.vocab_size - 1000);
            rows[i].ids[0] = 101;
            rows[i].ids[synth_len - 1] = 102;
        }
    }
    eng_seq *seqs = malloc((size_t)n * sizeof *seqs);
    long tokens = 0;
    for (int i = 0; i < n; i++) {
        seqs[i] = (eng_seq){rows[i].ids, rows[i].n};
        tokens += rows[i].n;
    }
    int width = info.n_labels ? info.n_labels : info.hidden;
    float *out = malloc((size_t)batch * width * sizeof *out);
    int classify = info.n_labels > 0;

    /* One warm-up pass, then whole passes for at least the given time. */
    long passes = 0;
    double t0 = 0;
    for (int warm = 1; warm >= 0; warm--) {
        t0 = bench_now_s();
        do {
            for (int i = 0; i < n; i += batch) {
                int b = n - i < batch ? n - i : batch;
                eng_status s = classify ? eng_classify_ids(ctx, seqs + i, b, out, NULL, NULL, NULL)
                                        : eng_embed_ids(ctx, seqs + i, b, out, NULL);
                if (s) {
                    fprintf(stderr, "text-bench: %s\n", eng_ctx_last_error(ctx));
                    return 1;
                }
            }
            passes += !warm;
        } while (!warm && bench_now_s() - t0 < seconds);
    }
    double wall = bench_now_s() - t0;
    double per_s = (double)passes * n / wall;

    /* Encoder FLOPs per pass: the four linear layers and the two attention
     * products per layer (softmax, layernorm and the head are not counted). */
    double H = info.hidden, F = info.intermediate, flops = 0;
    for (int i = 0; i < n; i++) {
        double S = rows[i].n;
        flops += info.layers * (2 * S * (3 * H * H + H * H + 2 * H * F) + 4 * S * S * H);
    }
    double gflops = flops * passes / wall / 1e9;
    printf("{\"engine\":\"libengine\",\"weights\":\"%s\",\"isa\":\"%s\",\"gemm\":\"%s\","
           "\"precision\":\"%s\",\"threads\":%d,\"batch\":%d,"
           "\"sequences\":%d,\"tokens\":%ld,\"sequences_per_s\":%.1f,\"gflops\":%.1f",
           info.weights, eng_isa_name(), eng_model_gemm_name(model),
           cp.precision == ENG_PREC_BF16 ? "bf16" : "fp32", threads, batch, n, tokens, per_s, gflops);
    /* The fp32 FMA peak is the yardstick of fp32 GEMMs only. */
    if (synth_len > 0 && !strcmp(info.weights, "fp32") && cp.precision == ENG_PREC_FP32 &&
        __builtin_cpu_supports("avx512f")) {
        double peak = fma_peak(threads);
        printf(",\"avx512_peak_gflops\":%.1f,\"share_of_peak\":%.3f", peak, gflops / peak);
    }
    puts("}");
    for (int i = 0; i < n; i++)
        free(rows[i].ids);
    free(rows);
    free(seqs);
    free(out);
    eng_ctx_free(ctx);
    eng_model_free(model);
    return 0;
}
