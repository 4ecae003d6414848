/* qgemm_bench.c: the int8 linear layer's speed against the CPU's own peak,
 * measured in the same run: register-only loops of VPDPBUSD (1 and 2
 * threads) and, where AMX runs, of TDPBUSD (1 thread); then at the BERT
 * shapes, M = 4096 rows (32 sentences x 128 tokens):
 *   - eng__linear_int8_run (activation quantization, int8 GEMM, fused
 *     dequantization and bias) with the rows split over 2 threads as the
 *     forward pass's team splits them, and its first half on 1 thread;
 *   - the GEMM alone on all 4096 already quantized rows, 1 thread,
 * reported as GOP/s (2 ops per multiply-add) and as a percentage of the peak
 * of the path in use (AMX's where it runs, else VNNI's).
 *
 * Then batch 1 x 16 tokens, which is memory-bound: the four linear layers of
 * BERT-base (768 x 2304, 768 x 768, 768 x 3072, 3072 x 768) at M = 16, in
 * enough copies to exceed the last-level cache, the columns split over 2
 * threads as the forward pass splits them for small batches; reported as the
 * GB/s at which the weights stream, against a plain 2-thread read of a
 * buffer of the same size measured in the same run.
 *
 *   build/qgemm-bench [reps]      (default 5; the best run is reported) */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "linear_int8.h"
#include "qgemm.h"

enum { CHAINS = 16 };
#define PEAK_ITERS 5000000L

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CHAINS independent VPDPBUSD chains, enough to cover the instruction's
 * latency at full throughput; the sum is returned so nothing is elided. */
__attribute__((target("avx512f,avx512vnni"))) static void *vnni_loop(void *out)
{
    __m512i acc[CHAINS];
    const __m512i a = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x01ff01ff);
    for (int j = 0; j < CHAINS; j++)
        acc[j] = _mm512_set1_epi32(j);
    for (long i = 0; i < PEAK_ITERS; i++)
#pragma GCC unroll 16
        for (int j = 0; j < CHAINS; j++)
            acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
    __m512i s = acc[0];
    for (int j = 1; j < CHAINS; j++)
        s = _mm512_add_epi32(s, acc[j]);
    *(int *)out = _mm512_reduce_add_epi32(s);
    return NULL;
}

/* GOP/s of the loop on n threads (each VPDPBUSD zmm is 64 multiply-adds),
 * the best of 3 runs. */
static double vnni_peak(int n)
{
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        pthread_t tid[2];
        int sink[2];
        double t0 = now();
        for (int t = 1; t < n; t++)
            if (pthread_create(&tid[t], NULL, vnni_loop, &sink[t]) != 0)
                return 0;
        vnni_loop(&sink[0]);
        for (int t = 1; t < n; t++)
            pthread_join(tid[t], NULL);
        double dt = now() - t0;
        if (dt < best)
            best = dt;
    }
    return (double)n * PEAK_ITERS * CHAINS * 64 * 2 / best / 1e9;
}

/* One thread's half of a layer, as a forward-pass team member runs it. */
typedef struct {
    const eng__linear *l;
    const float *x;
    float *y;
    void *scratch;
    int m;
} half;

static void *run_half(void *arg)
{
    const half *h = arg;
    eng__linear_int8_run(h->l, h->x, h->m, h->y, NULL, -1, h->scratch, eng__kernels_get(), 0,
                         (h->l->N + 15) / 16);
    return NULL;
}

/* Best GOP/s of reps runs of one M x K x N layer with its rows split over 2
 * threads, as the team splits them; (*layer1_gops) of the first half alone
 * on this thread; and (*gemm1_gops) of the GEMM alone on M/4 already
 * quantized rows on this thread, which isolates the kernel from the
 * quantization. */
static double bench_layer(int M, int K, int N, int reps, double *layer1_gops, double *gemm1_gops)
{
    float *x = malloc((size_t)M * K * sizeof *x), *w = malloc((size_t)K * N * sizeof *w);
    float *b = malloc((size_t)N * sizeof *b), *y = malloc((size_t)M * N * sizeof *y);
    float *scale = malloc((size_t)N * sizeof *scale);
    int32_t *wsum = malloc((size_t)N * sizeof *wsum);
    int8_t *wq = malloc(eng__quantized_weight_bytes(K, N));
    const int mh = M / 2;
    void *scratch[2] = {malloc(eng__linear_int8_scratch_bytes(mh, K)),
                        malloc(eng__linear_int8_scratch_bytes(M - mh, K))};
    unsigned s = 12345;
    for (size_t i = 0; i < (size_t)M * K; i++)
        x[i] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        w[i] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
    for (int i = 0; i < N; i++)
        b[i] = 0.1f;
    double best = 1e30;
    if (eng__quantize_weights(w, K, N, wq, scale, wsum) == ENG_OK) {
        eng__linear l = {.K = K, .N = N, .dtype = ENG_DT_I8, .wq = wq, .wscale = scale,
                         .wsum = wsum, .b = b};
        half h[2] = {{&l, x, y, scratch[0], mh},
                     {&l, x + (size_t)mh * K, y + (size_t)mh * N, scratch[1], M - mh}};
        for (int r = 0; r < reps + 1; r++) {   /* the first run warms up */
            pthread_t tid;
            double t0 = now();
            int started = pthread_create(&tid, NULL, run_half, &h[1]) == 0;
            run_half(&h[0]);
            if (started)
                pthread_join(tid, NULL);
            else
                run_half(&h[1]);
            double dt = now() - t0;
            if (r > 0 && dt < best)
                best = dt;
        }
        double best_half = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            run_half(&h[0]);
            double dt = now() - t0;
            if (dt < best_half)
                best_half = dt;
        }
        *layer1_gops = 2.0 * mh * K * N / best_half / 1e9;
        /* scratch[0] now holds the first half's quantized rows and scales. */
        const size_t lda = (size_t)(K + 3) / 4 * 4;
        const eng__qgemm_args g = {
            .a = scratch[0], .lda = lda, .b = wq, .k = K, .n = N,
            .sx = (const float *)((const uint8_t *)scratch[0] + (size_t)mh * lda), .sw = scale,
            .wsum = wsum, .bias = b, .c = y, .ldc = (size_t)N,
        };
        double best1 = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            eng__qgemm_run(eng__qgemm_get(), &g, 0, M / 4, 0, (N + 15) / 16);
            double dt = now() - t0;
            if (dt < best1)
                best1 = dt;
        }
        *gemm1_gops = 2.0 * (M / 4) * K * N / best1 / 1e9;
    }
    free(x); free(w); free(b); free(y); free(scale); free(wsum); free(wq);
    free(scratch[0]); free(scratch[1]);
    return 2.0 * M * K * N / best / 1e9;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1)
        reps = 1;
    printf("int8 path: %s\n", eng__qgemm_get()->name);
    const int vnni = __builtin_cpu_supports("avx512vnni");
    if (!vnni)
        printf("no AVX512-VNNI: peak not measured\n");
    static const int shapes[][2] = {{384, 1536}, {1536, 384}, {768, 3072}, {3072, 768}};
    enum { S = sizeof shapes / sizeof *shapes };
    const int M = 4096;
    double g2[S], l1[S], g1[S], p1 = 0, p2 = 0;
    /* The peak is measured around every shape and the highest kept: load
     * from other processes only ever lowers it, so the percentages below are
     * against the cleanest measurement, never flattered by a bad one. */
    for (int i = 0; i < S; i++) {
        if (vnni) {
            p2 = fmax(p2, vnni_peak(2));
            p1 = fmax(p1, vnni_peak(1));
        }
        g2[i] = bench_layer(M, shapes[i][0], shapes[i][1], reps, &l1[i], &g1[i]);
    }
    if (vnni)
        printf("VPDPBUSD zmm peak: %.0f GOP/s on 1 thread, %.0f GOP/s on 2\n", p1, p2);
    printf("%-22s %26s %26s %26s\n", "shape", "layer, 2 threads", "layer, 1 thread",
           "GEMM alone, 1 thread");
    for (int i = 0; i < S; i++) {
        printf("M=%d K=%-4d N=%-4d  %6.0f GOP/s", M, shapes[i][0], shapes[i][1], g2[i]);
        if (vnni)
            printf(" (%5.1f%% of peak)", 100.0 * g2[i] / p2);
        printf("  %6.0f GOP/s", l1[i]);
        if (vnni)
            printf(" (%5.1f%% of peak)", 100.0 * l1[i] / p1);
        printf("  %6.0f GOP/s", g1[i]);
        if (vnni)
            printf(" (%5.1f%% of peak)", 100.0 * g1[i] / p1);
        printf("\n");
    }
    return 0;
}
