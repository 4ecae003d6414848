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
 * After the peak, the same tile loop with its loads (amx_loads), which
 * bounds what the GEMM can reach.
 *
 * Then batch 1 x 16 tokens, which is memory-bound: the four linear layers of
 * BERT-base (768 x 2304, 768 x 768, 768 x 3072, 3072 x 768) at M = 16, in
 * enough copies to exceed the last-level cache, the columns split over 2
 * threads as the forward pass splits them for small batches; reported as the
 * GB/s at which the weights stream, against a plain 2-thread read of a
 * buffer of the same size measured in the same run.
 *
 * Then the GEMM alone on one thread at M = 16, 128 and 4096 rows and the
 * BERT-base K/N (768/768, 768/3072, 3072/768), already quantized, timed in
 * thread CPU time, the median of reps runs after a warm-up, as GOP/s and as a
 * percentage of the peak measured right after each shape (the weights and
 * activations are warm in cache, so M = 16 shows the kernel, not DRAM).
 *
 *   build/qgemm-bench [reps]      (default 5; the best run is reported)
 *
 * With --clip, instead, one member's share of each linear layer of issue
 * 17's CLIP ViT-B/32 vision tower against the one-thread VPDPBUSD peak
 * (bench_clip says how):
 *
 *   build/qgemm-bench --clip [reps]   (default 5; medians) */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"
#include "quantize.h"
#include "cpu.h"
#include "linear_int8.h"
#include "qgemm.h"

enum { CHAINS = 16 };
#define PEAK_ITERS 5000000L

/* Every buffer 64-byte aligned, as the engine's are (activation rows and
 * scratch, outputs, mmapped weights): an AMX tile row that straddles two
 * cache lines loads at about half speed, and malloc's 16-byte alignment
 * made the GEMM look half as fast as it runs in the engine. */
static void *amalloc(size_t n)
{
    return aligned_alloc(64, (n + 63) & ~(size_t)63);
}

static void *azalloc(size_t n)
{
    void *p = amalloc(n);
    if (p)
        memset(p, 0, n);
    return p;
}

/* CHAINS independent VPDPBUSD chains, enough to cover the instruction's
 * latency at full throughput, iters rounds of them; the sum is kept so
 * nothing is elided. */
typedef struct {
    long iters;
    int sink;
} vnni_job;

__attribute__((target("avx512f,avx512vnni"))) static void *vnni_loop(void *arg)
{
    vnni_job *job = arg;
    __m512i acc[CHAINS];
    const __m512i a = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x01ff01ff);
    for (int j = 0; j < CHAINS; j++)
        acc[j] = _mm512_set1_epi32(j);
    for (long i = 0; i < job->iters; i++)
#pragma GCC unroll 16
        for (int j = 0; j < CHAINS; j++)
            acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
    __m512i s = acc[0];
    for (int j = 1; j < CHAINS; j++)
        s = _mm512_add_epi32(s, acc[j]);
    job->sink = _mm512_reduce_add_epi32(s);
    return NULL;
}

/* GOP/s of the loop on n threads (each VPDPBUSD zmm is 64 multiply-adds),
 * the best of 3 runs. */
static double vnni_peak(int n)
{
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        pthread_t tid[2];
        vnni_job job[2] = {{PEAK_ITERS, 0}, {PEAK_ITERS, 0}};
        double t0 = bench_now_s();
        for (int t = 1; t < n; t++)
            if (pthread_create(&tid[t], NULL, vnni_loop, &job[t]) != 0)
                return 0;
        vnni_loop(&job[0]);
        for (int t = 1; t < n; t++)
            pthread_join(tid[t], NULL);
        double dt = bench_now_s() - t0;
        if (dt < best)
            best = dt;
    }
    return (double)n * PEAK_ITERS * CHAINS * 64 * 2 / best / 1e9;
}

#define AMX_ITERS 2000000L

/* Four independent TDPBUSD accumulators (tmm0-3) from two A and two B tiles,
 * no memory traffic: the 2 x 2 register tile of qgemm_amx.c at full speed. */
__attribute__((target("amx-tile,amx-int8"))) static void *amx_loop(void *out)
{
    eng__amx_thread_init();
    static const uint8_t ones[1024] __attribute__((aligned(64))) = {1};
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, ones, 64);
    _tile_loadd(5, ones, 64);
    _tile_loadd(6, ones, 64);
    _tile_loadd(7, ones, 64);
    for (long i = 0; i < AMX_ITERS; i++) {
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    int32_t c[256] __attribute__((aligned(64)));
    _tile_stored(0, c, 64);
    *(int *)out = c[0];
    return NULL;
}

/* GOP/s of the TDPBUSD loop on one thread (each is 16 x 16 x 64
 * multiply-adds), the best of 3 runs. */
static double amx_peak(void)
{
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        int sink;
        double t0 = bench_cpu_s();
        amx_loop(&sink);
        double dt = bench_cpu_s() - t0;
        if (dt < best)
            best = dt;
    }
    return (double)AMX_ITERS * 4 * 16 * 16 * 64 * 2 / best / 1e9;
}

/* The register tile's loop with its loads, as qgemm_amx.c runs it on one
 * 32-row strip at K = 768 (12 steps of 16 k4), the sum tiles stored after
 * each pair of panels, no epilogue: the activations (24 KiB) stay in L1,
 * the weights of `pairs` panel pairs (24 KiB each) come from L1 (1 pair)
 * or L2 (32 pairs, 768 KiB). What this loop reaches bounds the GEMM. */
__attribute__((target("amx-tile,amx-int8"))) static double amx_loads(int pairs)
{
    enum { STEPS = 12, LDA = STEPS * 64, LDB = STEPS * 1024, ROUNDS = 400 };
    uint8_t *a = amalloc(32 * LDA);
    int8_t *b = amalloc((size_t)2 * LDB * pairs);
    int32_t c[4][256] __attribute__((aligned(64)));
    if (!a || !b)
        return 0;
    unsigned s = 99; /* nonzero operands, like a real layer's */
    for (int i = 0; i < 32 * LDA; i++)
        a[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 24);
    for (size_t i = 0; i < (size_t)2 * LDB * pairs; i++)
        b[i] = (int8_t)((s = s * 1103515245u + 12345u) >> 24);
    eng__amx_thread_init();
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        const double t0 = bench_cpu_s();
        for (int r = 0; r < ROUNDS; r++)
            for (int p = 0; p < pairs; p++) {
                const int8_t *bp = b + (size_t)2 * LDB * p;
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (int k = 0; k < STEPS; k++) {
                    _tile_loadd(4, a + k * 64, LDA);
                    _tile_loadd(6, bp + k * 1024, 64);
                    _tile_dpbusd(0, 4, 6);
                    _tile_loadd(7, bp + LDB + k * 1024, 64);
                    _tile_dpbusd(1, 4, 7);
                    _tile_loadd(5, a + 16 * LDA + k * 64, LDA);
                    _tile_dpbusd(2, 5, 6);
                    _tile_dpbusd(3, 5, 7);
                }
                _tile_stored(0, c[0], 64);
                _tile_stored(1, c[1], 64);
                _tile_stored(2, c[2], 64);
                _tile_stored(3, c[3], 64);
            }
        const double dt = bench_cpu_s() - t0;
        if (dt < best)
            best = dt;
    }
    free(a);
    free(b);
    return (double)ROUNDS * pairs * STEPS * 4 * 16 * 16 * 64 * 2 / best / 1e9;
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
    eng__linear_int8_run(h->l, h->x, h->m, h->y, NULL, ENG_ACT_NONE, h->scratch, eng__kernels_get(), 0,
                         (h->l->N + 15) / 16);
    return NULL;
}

/* Best GOP/s of reps runs of one M x K x N layer with its rows split over 2
 * threads, as the team splits them; (*layer1_gops) of the first half alone
 * on this thread; (*gemm1_gops) of the GEMM alone on all M already
 * quantized rows on this thread, which isolates the kernel from the
 * quantization; and (*gemm_blk_gops) of the same with the output kept in
 * cache (see below). */
static double bench_layer(int M, int K, int N, int reps, double *layer1_gops, double *gemm1_gops,
                          double *gemm_blk_gops)
{
    float *x = amalloc((size_t)M * K * sizeof *x), *w = amalloc((size_t)K * N * sizeof *w);
    float *b = amalloc((size_t)N * sizeof *b), *y = amalloc((size_t)M * N * sizeof *y);
    float *scale = amalloc((size_t)N * sizeof *scale);
    int32_t *wsum = amalloc((size_t)N * sizeof *wsum);
    int8_t *wq = amalloc(eng__quantized_weight_bytes(K, N));
    const int mh = M / 2;
    void *scratch[2] = {amalloc(eng__linear_int8_scratch_bytes(mh, K)),
                        amalloc(eng__linear_int8_scratch_bytes(M - mh, K))};
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
            double t0 = bench_now_s();
            int started = pthread_create(&tid, NULL, run_half, &h[1]) == 0;
            run_half(&h[0]);
            if (started)
                pthread_join(tid, NULL);
            else
                run_half(&h[1]);
            double dt = bench_now_s() - t0;
            if (r > 0 && dt < best)
                best = dt;
        }
        double best_half = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = bench_now_s();
            run_half(&h[0]);
            double dt = bench_now_s() - t0;
            if (dt < best_half)
                best_half = dt;
        }
        *layer1_gops = 2.0 * mh * K * N / best_half / 1e9;
        /* All M rows quantized once, then the GEMM alone on one thread. */
        const eng__qgemm_kernels *qk = eng__qgemm_get();
        const size_t lda = (size_t)(K + 3) / 4 * 4;
        uint8_t *a = amalloc((size_t)M * lda);
        float *sx = amalloc((size_t)M * sizeof *sx);
        qk->quantize(x, M, K, a, lda, sx);
        const eng__qgemm_args g = {
            .a = a, .lda = lda, .b = wq, .k = K, .n = N, .sx = sx, .sw = scale, .wsum = wsum,
            .bias = b, .c = y, .ldc = (size_t)N,
        };
        double best1 = 1e30, best_blk = 1e30;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = bench_cpu_s();
            eng__qgemm_run(qk, &g, 0, M, 0, (N + 15) / 16);
            double dt = bench_cpu_s() - t0;
            if (r > 0 && dt < best1)
                best1 = dt;
        }
        /* The same rows in blocks of BLK, each block's output into the same
         * BLK-row buffer, which stays in cache as the forward pass's row
         * blocks do (its next step reads them there): the GEMM without the
         * cost of writing a 4096-row fp32 output to memory, which at
         * K = 384 alone takes longer than AMX's multiplications. */
        enum { BLK = 128 };
        for (int r = 0; r < reps + 1; r++) {
            double t0 = bench_cpu_s();
            for (int m = 0; m < M; m += BLK) {
                eng__qgemm_args gb = g;
                gb.a = a + (size_t)m * lda;
                gb.sx = sx + m;
                eng__qgemm_run(qk, &gb, 0, BLK, 0, (N + 15) / 16);
            }
            double dt = bench_cpu_s() - t0;
            if (r > 0 && dt < best_blk)
                best_blk = dt;
        }
        *gemm1_gops = 2.0 * M * K * N / best1 / 1e9;
        *gemm_blk_gops = 2.0 * M * K * N / best_blk / 1e9;
        free(a);
        free(sx);
    }
    free(x); free(w); free(b); free(y); free(scale); free(wsum); free(wq);
    free(scratch[0]); free(scratch[1]);
    return 2.0 * M * K * N / best / 1e9;
}

/* ---- batch 1 x 16: streaming the weights --------------------------------- */

enum { SM = 16, SHAPES_1 = 4 };
static const int shapes1[SHAPES_1][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};

typedef struct {
    const eng__linear *l; /* copies x SHAPES_1 layers */
    int n;
    const float *x;
    float *y;
    void *scratch;
    int tid;
    pthread_barrier_t *bar;
    const uint8_t *buf; /* the plain read: this thread's half of buf */
    size_t bytes;
    long long sum;
} stream_job;

/* One member's columns of every layer, as the forward pass shares a small
 * batch's layers (src/text/forward.c), a barrier after each. */
static void *stream_member(void *arg)
{
    stream_job *j = arg;
    for (int i = 0; i < j->n; i++) {
        const int panels = (j->l[i].N + 15) / 16, p0 = j->tid * panels / 2,
                  p1 = (j->tid + 1) * panels / 2;
        eng__linear_run_cols(&j->l[i], j->x, SM, j->y, NULL, ENG_ACT_NONE, j->scratch, eng__kernels_get(),
                             NULL, p0, p1);
        pthread_barrier_wait(j->bar);
    }
    return NULL;
}

/* The plain read: 64 bytes at a time, summed so nothing is elided. */
__attribute__((target("avx512f"))) static void *read_member(void *arg)
{
    stream_job *j = arg;
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 256 <= j->bytes; i += 256) {
        s0 = _mm512_add_epi64(s0, _mm512_load_si512(j->buf + i));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512(j->buf + i + 64));
        s2 = _mm512_add_epi64(s2, _mm512_load_si512(j->buf + i + 128));
        s3 = _mm512_add_epi64(s3, _mm512_load_si512(j->buf + i + 192));
    }
    j->sum = _mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
    return NULL;
}

/* Best seconds of reps runs of fn on 2 threads. */
static double best_of_2(void *(*fn)(void *), stream_job *jobs, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        pthread_t tid;
        double t0 = bench_now_s();
        if (pthread_create(&tid, NULL, fn, &jobs[1]) != 0)
            return 0;
        fn(&jobs[0]);
        pthread_join(tid, NULL);
        double dt = bench_now_s() - t0;
        if (r > 0 && dt < best)
            best = dt;
    }
    return best;
}

/* Prints the 1 x 16 streaming figures. */
static void bench_stream(int reps)
{
    size_t set = 0, off[SHAPES_1 + 1];
    for (int i = 0; i < SHAPES_1; i++) {
        off[i] = set;
        set += eng__quantized_weight_bytes(shapes1[i][0], shapes1[i][1]);
    }
    off[SHAPES_1] = set;
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 <= 0)
        l3 = 64l << 20;
    /* Twice the last-level cache, so every pass streams from memory. */
    const int copies = (int)((2 * (size_t)l3 + set - 1) / set);
    const size_t bytes = (size_t)copies * set;
    uint8_t *buf = aligned_alloc(64, (bytes + 255) / 256 * 256);
    eng__linear *l = calloc((size_t)copies * SHAPES_1, sizeof *l);
    float *x = amalloc((size_t)SM * 3072 * sizeof *x), *y = amalloc((size_t)SM * 3072 * sizeof *y);
    float *w = amalloc((size_t)3072 * 3072 * sizeof *w), *scale = amalloc(3072 * sizeof *scale),
          *b = azalloc(3072 * sizeof *b);
    int32_t *wsum = amalloc(3072 * sizeof *wsum);
    void *scratch[2] = {amalloc(eng__linear_int8_scratch_bytes(SM, 3072)),
                        amalloc(eng__linear_int8_scratch_bytes(SM, 3072))};
    if (!buf || !l || !x || !y || !w || !scale || !b || !wsum || !scratch[0] || !scratch[1]) {
        printf("batch 1 x 16: out of memory for %zu MB of weights\n", bytes >> 20);
        return;
    }
    memset(buf + bytes, 0, (bytes + 255) / 256 * 256 - bytes);
    unsigned s = 777;
    for (size_t i = 0; i < (size_t)SM * 3072; i++)
        x[i] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
    /* One set quantized, copied to every copy (the scales are shared: only
     * the bytes streamed matter here). */
    for (int i = 0; i < SHAPES_1; i++) {
        const int K = shapes1[i][0], N = shapes1[i][1];
        for (size_t k = 0; k < (size_t)K * N; k++)
            w[k] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
        eng__quantize_weights(w, K, N, (int8_t *)buf + off[i], scale, wsum);
    }
    for (int c = 1; c < copies; c++)
        memcpy(buf + (size_t)c * set, buf, set);
    for (int c = 0; c < copies; c++)
        for (int i = 0; i < SHAPES_1; i++)
            l[c * SHAPES_1 + i] = (eng__linear){
                .K = shapes1[i][0], .N = shapes1[i][1], .dtype = ENG_DT_I8,
                .wq = (const int8_t *)buf + (size_t)c * set + off[i], .wscale = scale,
                .wsum = wsum, .b = b};
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    stream_job jobs[2];
    const size_t part = (bytes / 2 + 255) / 256 * 256;
    for (int t = 0; t < 2; t++)
        jobs[t] = (stream_job){.l = l, .n = copies * SHAPES_1, .x = x, .y = y,
                               .scratch = scratch[t], .tid = t, .bar = &bar,
                               .buf = buf + (t ? part : 0), .bytes = t ? bytes - part : part};
    const double t_read = best_of_2(read_member, jobs, reps);
    const double t_gemm = best_of_2(stream_member, jobs, reps);
    const double t_read2 = best_of_2(read_member, jobs, reps);
    const double rd = fmin(t_read, t_read2);
    printf("batch 1 x 16 tokens, BERT-base's 4 linear layers in int8 (%zu MB: %d copies, 2x the "
           "%ld MB last-level cache), columns split over 2 threads:\n",
           bytes >> 20, copies, l3 >> 20);
    printf("  plain read of the same bytes, 2 threads: %.1f GB/s; the layers stream them at "
           "%.1f GB/s = %.0f%% of it\n",
           bytes / rd / 1e9, bytes / t_gemm / 1e9, 100.0 * rd / t_gemm);
    pthread_barrier_destroy(&bar);
    free(buf); free(l); free(x); free(y); free(w); free(scale); free(b); free(wsum);
    free(scratch[0]); free(scratch[1]);
}

/* Median GOP/s of the GEMM alone (M x K x N, quantized rows, fused
 * epilogue) over reps runs on this thread, after one warm-up run. */
static double gemm_median(int M, int K, int N, int reps)
{
    const eng__qgemm_kernels *qk = eng__qgemm_get();
    const size_t lda = (size_t)(K + 3) / 4 * 4;
    float *x = amalloc((size_t)M * K * sizeof *x), *w = amalloc((size_t)K * N * sizeof *w);
    float *b = azalloc((size_t)N * sizeof *b), *y = amalloc((size_t)M * N * sizeof *y);
    float *scale = amalloc((size_t)N * sizeof *scale), *sx = amalloc((size_t)M * sizeof *sx);
    int32_t *wsum = amalloc((size_t)N * sizeof *wsum);
    int8_t *wq = amalloc(eng__quantized_weight_bytes(K, N));
    uint8_t *a = azalloc((size_t)M * lda);
    double *t = malloc((size_t)(reps + 1) * sizeof *t), gops = 0;
    unsigned s = 4242;
    for (size_t i = 0; i < (size_t)M * K; i++)
        x[i] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        w[i] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
    if (x && w && b && y && scale && sx && wsum && wq && a && t &&
        eng__quantize_weights(w, K, N, wq, scale, wsum) == ENG_OK) {
        qk->quantize(x, M, K, a, lda, sx);
        const eng__qgemm_args g = {.a = a, .lda = lda, .b = wq, .k = K, .n = N, .sx = sx,
                                   .sw = scale, .wsum = wsum, .bias = b, .c = y,
                                   .ldc = (size_t)N};
        /* Small products repeat within a run, so each run lasts a few ms. */
        const int iters = (int)(1 + 2e8 / ((double)M * K * N));
        for (int r = 0; r <= reps; r++) {
            const double t0 = bench_cpu_s();
            for (int i = 0; i < iters; i++)
                eng__qgemm_run(qk, &g, 0, M, 0, (N + 15) / 16);
            t[r] = (bench_cpu_s() - t0) / iters;
        }
        qsort(t + 1, (size_t)reps, sizeof *t, bench_cmp_double);
        gops = 2.0 * M * K * N / t[1 + reps / 2] / 1e9;
    }
    free(x); free(w); free(b); free(y); free(scale); free(sx); free(wsum); free(wq); free(a);
    free(t);
    return gops;
}

/* Prints the GEMM-alone grid (see the top of the file). */
static void bench_grid(int reps, int amx)
{
    static const int ms[] = {16, 128, 4096}, kn[][2] = {{768, 768}, {768, 3072}, {3072, 768}};
    printf("GEMM alone, 1 thread, median of %d (peak: %s, measured after each shape)\n", reps,
           amx ? "TDPBUSD" : "VPDPBUSD zmm");
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        for (size_t j = 0; j < sizeof kn / sizeof *kn; j++) {
            const double g = gemm_median(ms[i], kn[j][0], kn[j][1], reps);
            const double peak = amx ? amx_peak() : vnni_peak(1);
            printf("  M=%-4d K=%-4d N=%-4d %6.0f GOP/s = %5.1f%% of %.0f\n", ms[i], kn[j][0],
                   kn[j][1], g, 100.0 * g / peak, peak);
        }
}

/* ---- --clip: issue 17's CLIP ViT-B/32 shapes --------------------------- */

/* One member's part of each linear layer of the CLIP vision tower, as
 * src/vit/tower.c runs it on 2 threads: by rows, M = 800 and 200 (half of
 * batch 32 and 8 x 50 tokens), and at batch 1 all 50 rows on half the
 * 16-column panels (the split by columns). Each call is the whole
 * eng__linear_int8_run (quantizing the rows, the GEMM, the fused epilogue
 * and bias) on the next of enough copies of the weights to exceed L2 (as
 * the 12 layers' 85 MB come from L3 in the model). Rounds of about 5 ms
 * alternate with 5 ms of the one-thread VPDPBUSD loop, both in thread CPU
 * time; %peak is the median of the rounds' own ratios, and quant% the
 * share of the layer's time that quantizing its M x K activations alone
 * takes (timed the same way). */
enum { CLIP_COPY_BYTES = 8 << 20, CLIP_MAX_REPS = 64 };
/* Read after each peak round: the compiler may drop a call whose only
 * effect is a store to a local nobody reads. */
static volatile int clip_sink;

static double clip_layer_s(const eng__linear *l, int copies, int M, const float *x, float *y,
                           void *scratch, int p1, int iters)
{
    const double t0 = bench_cpu_s();
    for (int i = 0; i < iters; i++)
        eng__linear_int8_run(&l[i % copies], x, M, y, NULL, ENG_ACT_NONE, scratch,
                             eng__kernels_get(), 0, p1);
    return (bench_cpu_s() - t0) / iters;
}

static int bench_clip(int reps)
{
    static const int shapes[][4] = {
        /* M, K, N, columns split */
        {800, 768, 2304, 0}, {800, 768, 768, 0}, {800, 768, 3072, 0}, {800, 3072, 768, 0},
        {200, 768, 2304, 0}, {200, 768, 768, 0}, {200, 768, 3072, 0}, {200, 3072, 768, 0},
        {50, 768, 2304, 1},  {50, 768, 768, 1},  {50, 768, 3072, 1},  {50, 3072, 768, 1},
    };
    const eng__qgemm_kernels *qk = eng__qgemm_get();
    if (reps > CLIP_MAX_REPS)
        reps = CLIP_MAX_REPS;
    printf("qgemm-bench --clip: %s (%dx%d tile), 1 thread, median of %d rounds, VPDPBUSD peak "
           "alternating\n", qk->name, qk->mr, 16 * qk->np, reps);
    printf("%5s %5s %5s %5s  %9s %9s %6s %6s\n", "M", "K", "N", "cols", "layer", "peak", "%peak",
           "quant%");
    const long peak_iters = (long)(0.005 * 700e9 / (CHAINS * 64 * 2));
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
        const int N16 = (N + 15) / 16, p1 = shapes[si][3] ? (N16 + 1) / 2 : N16;
        const size_t wbytes = eng__quantized_weight_bytes(K, N);
        const int copies = (int)(CLIP_COPY_BYTES / wbytes) + 1;
        float *x = amalloc((size_t)M * K * sizeof *x), *w = amalloc((size_t)K * N * sizeof *w);
        float *b = azalloc((size_t)N * sizeof *b), *y = amalloc((size_t)M * N * sizeof *y);
        float *scale = amalloc((size_t)N * sizeof *scale), *sx = amalloc((size_t)M * sizeof *sx);
        int32_t *wsum = amalloc((size_t)N * sizeof *wsum);
        int8_t *wq = amalloc(wbytes * copies);
        uint8_t *a = amalloc((size_t)M * ((K + 3) / 4 * 4));
        void *scratch = amalloc(eng__linear_int8_scratch_bytes(M, K));
        eng__linear *l = calloc((size_t)copies, sizeof *l);
        unsigned s = 777;
        for (size_t i = 0; x && i < (size_t)M * K; i++)
            x[i] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
        for (size_t i = 0; w && i < (size_t)K * N; i++)
            w[i] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
        if (!x || !w || !b || !y || !scale || !sx || !wsum || !wq || !a || !scratch || !l ||
            eng__quantize_weights(w, K, N, wq, scale, wsum) != ENG_OK) {
            fprintf(stderr, "qgemm-bench: out of memory\n");
            return 1;
        }
        for (int c = 0; c < copies; c++) {
            memcpy(wq + (size_t)c * wbytes, wq, wbytes);
            l[c] = (eng__linear){.K = K, .N = N, .dtype = ENG_DT_I8, .wq = wq + (size_t)c * wbytes,
                                 .wscale = scale, .wsum = wsum, .b = b};
        }
        const double ops = 2.0 * M * K * (16.0 * p1 < N ? 16.0 * p1 : N);
        const int iters = (int)(0.005 * 600e9 / ops) + 1;
        double tg[CLIP_MAX_REPS], tk[CLIP_MAX_REPS], ratio[CLIP_MAX_REPS], quant[CLIP_MAX_REPS];
        clip_layer_s(l, copies, M, x, y, scratch, p1, copies);
        for (int r = 0; r < reps; r++) {
            const double lt = clip_layer_s(l, copies, M, x, y, scratch, p1, iters);
            tg[r] = ops / lt;
            vnni_job job = {peak_iters, 0};
            double t0 = bench_cpu_s();
            vnni_loop(&job);
            clip_sink += job.sink;
            tk[r] = (double)peak_iters * CHAINS * 64 * 2 / (bench_cpu_s() - t0);
            ratio[r] = tg[r] / tk[r];
            t0 = bench_cpu_s();
            for (int i = 0; i < iters; i++)
                qk->quantize(x, M, K, a, (size_t)(K + 3) / 4 * 4, sx);
            quant[r] = (bench_cpu_s() - t0) / iters / lt;
        }
        qsort(tg, (size_t)reps, sizeof *tg, bench_cmp_double);
        qsort(tk, (size_t)reps, sizeof *tk, bench_cmp_double);
        qsort(ratio, (size_t)reps, sizeof *ratio, bench_cmp_double);
        qsort(quant, (size_t)reps, sizeof *quant, bench_cmp_double);
        printf("%5d %5d %5d %5s  %5.0f GOP/s %5.0f GOP/s %5.1f%% %5.1f%%\n", M, K, N,
               shapes[si][3] ? "half" : "all", tg[reps / 2] / 1e9, tk[reps / 2] / 1e9,
               100.0 * ratio[reps / 2], 100.0 * quant[reps / 2]);
        fflush(stdout);
        free(x); free(w); free(b); free(y); free(scale); free(sx); free(wsum); free(wq); free(a);
        free(scratch); free(l);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const int clip = argc > 1 && !strcmp(argv[1], "--clip");
    int reps = argc > 1 + clip ? atoi(argv[1 + clip]) : 5;
    if (reps < 1)
        reps = 1;
    const eng__qgemm_kernels *qk = eng__qgemm_get();
    const eng__cpu *cpu = eng__cpu_get();
    const int vnni = cpu->avx512_vnni && cpu->best >= ENG_ISA_AVX512, amx = qk->isa == ENG_QISA_AMX;
    if (clip) {
        if (!vnni) {
            fprintf(stderr, "qgemm-bench: --clip measures the VPDPBUSD peak; this CPU (or ENG_ISA) "
                            "has no AVX512-VNNI\n");
            return 1;
        }
        return bench_clip(reps);
    }
    printf("int8 path: %s\n", qk->name);
    if (!vnni)
        printf("no AVX512-VNNI: VNNI peak not measured\n");
    static const int shapes[][2] = {{384, 1536}, {1536, 384}, {768, 3072}, {3072, 768}};
    enum { S = sizeof shapes / sizeof *shapes };
    const int M = 4096;
    double g2[S], l1[S], g1[S], gb[S], p1 = 0, p2 = 0, pa = 0;
    /* The peaks are measured around every shape and the highest kept: load
     * from other processes only ever lowers them, so the percentages below
     * are against the cleanest measurement, never flattered by a bad one. */
    for (int i = 0; i < S; i++) {
        if (vnni) {
            p2 = fmax(p2, vnni_peak(2));
            p1 = fmax(p1, vnni_peak(1));
        }
        if (amx)
            pa = fmax(pa, amx_peak());
        g2[i] = bench_layer(M, shapes[i][0], shapes[i][1], reps, &l1[i], &g1[i], &gb[i]);
    }
    if (vnni)
        printf("VPDPBUSD zmm peak: %.0f GOP/s on 1 thread, %.0f GOP/s on 2\n", p1, p2);
    if (amx) {
        printf("TDPBUSD (AMX) peak: %.0f GOP/s on 1 thread\n", pa);
        const double in_l1 = amx_loads(1), in_l2 = amx_loads(32);
        printf("  its 2 x 2 tile loop with loads (K = 768): weights in L1 %.0f GOP/s (%.0f%%), "
               "from L2 %.0f GOP/s (%.0f%%)\n", in_l1, 100.0 * in_l1 / pa, in_l2, 100.0 * in_l2 / pa);
    }
    /* Percentages against the path in use: AMX (one unit per core, so the
     * 2-thread peak is twice the 1-thread one) or VNNI. */
    const double peak1 = amx ? pa : p1, peak2 = amx ? 2 * pa : p2;
    printf("%-18s %26s %26s %26s %26s\n", "shape", "layer, 2 threads", "layer, 1 thread",
           "GEMM alone, 1 thread", "same, output in cache");
    for (int i = 0; i < S; i++) {
        printf("M=%d K=%-4d N=%-4d %6.0f GOP/s", M, shapes[i][0], shapes[i][1], g2[i]);
        if (peak2 > 0)
            printf(" (%5.1f%% of peak)", 100.0 * g2[i] / peak2);
        printf("  %6.0f GOP/s", l1[i]);
        if (peak1 > 0)
            printf(" (%5.1f%% of peak)", 100.0 * l1[i] / peak1);
        printf("  %6.0f GOP/s", g1[i]);
        if (peak1 > 0)
            printf(" (%5.1f%% of peak)", 100.0 * g1[i] / peak1);
        printf("  %6.0f GOP/s", gb[i]);
        if (peak1 > 0)
            printf(" (%5.1f%% of peak)", 100.0 * gb[i] / peak1);
        printf("\n");
    }
    bench_stream(reps);
    if (amx || vnni)
        bench_grid(reps, amx);
    return 0;
}
