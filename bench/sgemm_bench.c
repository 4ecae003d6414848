/* sgemm_bench.c: the packed fp32 GEMM with its fused bias epilogue
 * (kernels/sgemm.h) against what the linear layers ran before it, OpenBLAS
 * cblas_sgemm (beta = 0) followed by the kernel table's separate bias pass,
 * both single-threaded, at the BERT shapes with M = 400 and M = 2048 rows.
 * The two are timed in alternation, reps rounds of about 5 ms each; the
 * median of each is reported as GFLOP/s (2 flops per multiply-add), and the
 * speedup is the median of the rounds' own ratios. Time is
 * the thread's CPU time, not wall time: on a shared machine that leaves out
 * the time the thread waits for a core, and the median of interleaved runs
 * leaves out most of the rest of the noise.
 *
 *   build/sgemm-bench [reps]      (default 15)
 *
 * With --bf16 it times instead the bf16 GEMM (kernels/bgemm.h) on each unit
 * this CPU runs (avx512fma, avx512bf16, amx; the line above the table names
 * the one --precision bf16 picks), rounding of the activations included,
 * against the unit's peak measured in the same run (its register tile's
 * arithmetic on operands held in registers; GFLOP/s = 2 x multiply-adds) and
 * against the packed fp32 GEMM, all alternating, at M = 4096 and the
 * BERT-base/MiniLM K/N, then at M = 16, 128 and 4096 with BERT-base's K/N
 * (768/768, 768/3072, 3072/768; small products repeated so each timing lasts
 * a few ms). x/fp32 is the median of the rounds' own ratios.
 *
 *   build/sgemm-bench --bf16 [reps]
 *
 * With --clip it times the packed fp32 GEMM alone at issue 17's CLIP
 * ViT-B/32 vision shapes, M = 800 and 200 rows (one member's half of batch
 * 32 and 8 x 50 tokens on 2 threads), K x N 768 x 2304 (QKV), 768 x 768
 * (attention out), 768 x 3072 and 3072 x 768 (MLP), against the one-thread
 * AVX-512 FMA peak (24 independent FMA chains on registers, as many as the
 * tile's accumulators) timed in alternation with it, rounds of about 5 ms;
 * %peak is the median of the rounds' own ratios.
 *
 *   build/sgemm-bench --clip [reps] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "bgemm.h"
#include "blas.h"
#include "kernels.h"
#include "sgemm.h"

enum { MAX_REPS = 31 };

typedef struct {
    int M, K, N;
    const float *x, *w, *packed, *bias;
    float *y;
    const eng__kernels *kern;
    const eng__sgemm_kernels *sk;
    const eng__bgemm_kernels *bk;
    const eng__bf16 *bpacked;
    void *scratch;
} problem;

static void run_blas(const problem *p)
{
    eng__sgemm(0, 0, p->M, p->N, p->K, 1.0f, p->x, p->K, p->w, p->N, 0.0f, p->y, p->N);
    p->kern->bias_residual(p->y, p->bias, NULL, p->M, p->N);
}

static void run_packed(const problem *p)
{
    eng__sgemm_packed(p->sk, p->x, p->M, p->K, (size_t)p->K, p->packed, p->N, p->y,
                      (size_t)p->N, p->bias, NULL, ENG_ACT_NONE);
}

static void run_bf16(const problem *p)
{
    eng__bgemm(p->bk, p->x, p->M, p->K, (size_t)p->K, p->bpacked, p->N, p->y, (size_t)p->N,
               p->bias, NULL, ENG_ACT_NONE, p->scratch);
}

/* Seconds per call, averaged over iters calls. */
static double time_one(void (*fn)(const problem *), const problem *p, int iters)
{
    double t0 = bench_cpu_s();
    for (int i = 0; i < iters; i++)
        fn(p);
    return (bench_cpu_s() - t0) / iters;
}

static float *random_floats(size_t n)
{
    /* 64-byte aligned, as the engine's activations are (a row that
     * straddles cache lines costs the GEMMs' loads and stores extra). */
    float *v = aligned_alloc(64, (n * sizeof *v + 63) & ~(size_t)63);
    for (size_t i = 0; v && i < n; i++)
        v[i] = (float)(rand() % 2001 - 1000) / 1000.0f;
    return v;
}

static void problem_free(problem *p)
{
    free((void *)p->x), free((void *)p->w), free((void *)p->packed), free((void *)p->bias);
    free(p->y), free((void *)p->bpacked), free(p->scratch);
}
/* *p = the M x K x N product's random operands, the weights packed for the
 * fp32 GEMM (and for bf16 when bf16 is set, with its scratch); 0, or -1 with
 * a message when out of memory (what was allocated is freed). */
static int problem_alloc(problem *p, int M, int K, int N, int bf16)
{
    float *x = random_floats((size_t)M * K), *w = random_floats((size_t)K * N);
    float *bias = random_floats((size_t)N), *y = random_floats((size_t)M * N);
    float *packed = aligned_alloc(64, eng__sgemm_packed_bytes(K, N));
    eng__bf16 *bpacked = bf16 ? aligned_alloc(64, eng__bgemm_packed_bytes(K, N)) : NULL;
    void *scratch = bf16 ? aligned_alloc(64, eng__bgemm_scratch_bytes(M, K)) : NULL;
    *p = (problem){M, K, N, x, w, packed, bias, y, NULL, NULL, NULL, bpacked, scratch};
    if (!x || !w || !bias || !y || !packed || (bf16 && (!bpacked || !scratch))) {
        fprintf(stderr, "sgemm-bench: out of memory\n");
        problem_free(p);
        return -1;
    }
    eng__sgemm_pack(w, K, N, packed);
    if (bf16)
        eng__bgemm_pack(packed, K, N, bpacked);
    return 0;
}

static int bench_clip(int reps)
{
    if (eng__kernels_get()->isa < ENG_ISA_AVX512) {
        fprintf(stderr, "sgemm-bench: --clip measures the AVX-512 FMA peak; this CPU (or ENG_ISA) "
                        "has no AVX-512\n");
        return 1;
    }
    const eng__sgemm_kernels *sk = eng__sgemm_get();
    printf("sgemm-bench --clip: packed %s (%dx%d tile), 1 thread, median of %d, FMA peak "
           "alternating\n",
           eng__isa_str(sk->isa), sk->mr, 16 * sk->np, reps);
    printf("%5s %5s %5s  %10s %10s %6s\n", "M", "K", "N", "GEMM", "peak", "%peak");
    static const int shapes[][3] = {
        {800, 768, 2304}, {800, 768, 768}, {800, 768, 3072}, {800, 3072, 768},
        {200, 768, 2304}, {200, 768, 768}, {200, 768, 3072}, {200, 3072, 768},
    };
    /* About 5 ms per peak round at 150 GFLOP/s. */
    const long peak_n = (long)(0.005 * 150e9 / (2.0 * 24 * 16));
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
        problem p;
        if (problem_alloc(&p, M, K, N, 0))
            return 1;
        p.sk = sk;
        const double flops = 2.0 * M * N * K;
        const int iters = (int)(0.005 * 150e9 / flops) + 1;
        double tg[MAX_REPS], tk[MAX_REPS], ratio[MAX_REPS];
        run_packed(&p);
        for (int r = 0; r < reps; r++) {
            tg[r] = flops / time_one(run_packed, &p, iters);
            const double t0 = bench_cpu_s(), macs = bench_fma_peak(peak_n);
            tk[r] = 2.0 * macs / (bench_cpu_s() - t0);
            ratio[r] = tg[r] / tk[r];
        }
        qsort(tg, (size_t)reps, sizeof *tg, bench_cmp_double);
        qsort(tk, (size_t)reps, sizeof *tk, bench_cmp_double);
        qsort(ratio, (size_t)reps, sizeof *ratio, bench_cmp_double);
        printf("%5d %5d %5d  %5.1f GF/s %5.1f GF/s %5.1f%%\n", M, K, N, tg[reps / 2] / 1e9,
               tk[reps / 2] / 1e9, 100.0 * ratio[reps / 2]);
        fflush(stdout);
        problem_free(&p);
    }
    return 0;
}

static int bench_bf16(int reps)
{
    /* Every vector unit this CPU runs, timed in alternation with the fp32 GEMM. */
    enum { MAX_UNITS = 3 };
    const eng__bgemm_isa isas[MAX_UNITS] = {ENG_BGEMM_AVX512FMA, ENG_BGEMM_AVX512BF16,
                                            ENG_BGEMM_AMX};
    const eng__bgemm_kernels *units[MAX_UNITS];
    int nu = 0;
    for (int i = 0; i < MAX_UNITS; i++)
        if (eng__bgemm_for(isas[i]))
            units[nu++] = eng__bgemm_for(isas[i]);
    const eng__bgemm_kernels *chosen = eng__bgemm_get();
    if (!nu) {
        fprintf(stderr, "sgemm-bench: this CPU has no AVX-512 bf16 GEMM unit\n");
        return 1;
    }
    const eng__kernels *kern = eng__kernels_get();
    const eng__sgemm_kernels *sk = eng__sgemm_get();
    double peak[MAX_UNITS];
    printf("sgemm-bench --bf16: 1 thread, median of %d; --precision bf16 runs %s; "
           "peaks (same run):",
           reps, chosen ? chosen->name : "none");
    for (int u = 0; u < nu; u++) {
        double pk[MAX_REPS];
        for (int r = 0; r < reps; r++) {
            const double t0 = bench_cpu_s(), macs = units[u]->peak(200000);
            pk[r] = 2.0 * macs / (bench_cpu_s() - t0);
        }
        qsort(pk, (size_t)reps, sizeof *pk, bench_cmp_double);
        peak[u] = pk[reps / 2];
        printf(" %s %.0f GFLOP/s%s", units[u]->name, peak[u] / 1e9, u + 1 < nu ? "," : "\n");
    }
    printf("%5s %5s %5s  %9s", "M", "K", "N", "fp32");
    for (int u = 0; u < nu; u++)
        printf("  %10s %6s %6s", units[u]->name, "%peak", "/fp32");
    printf("\n");
    static const int shapes[][3] = {
        {4096, 384, 1536}, {4096, 1536, 384}, {4096, 768, 3072}, {4096, 3072, 768},
        {16, 768, 768},    {16, 768, 3072},   {16, 3072, 768},   {128, 768, 768},
        {128, 768, 3072},  {128, 3072, 768},  {4096, 768, 768},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int M = shapes[si][0], K = shapes[si][1], N = shapes[si][2];
        const int iters = (int)(1 + 2e8 / ((double)M * K * N));
        problem p;
        if (problem_alloc(&p, M, K, N, 1))
            return 1;
        p.kern = kern, p.sk = sk;
        const double flops = 2.0 * M * N * K;
        double tf[MAX_REPS], tb[MAX_UNITS][MAX_REPS], ratio[MAX_UNITS][MAX_REPS];
        run_packed(&p);
        for (int u = 0; u < nu; u++) {
            p.bk = units[u];
            run_bf16(&p);
        }
        for (int r = 0; r < reps; r++) {
            tf[r] = time_one(run_packed, &p, iters);
            for (int u = 0; u < nu; u++) {
                p.bk = units[u];
                tb[u][r] = time_one(run_bf16, &p, 2 * iters);
                ratio[u][r] = tf[r] / tb[u][r];
            }
        }
        qsort(tf, (size_t)reps, sizeof *tf, bench_cmp_double);
        printf("%5d %5d %5d  %4.0f GF/s", M, K, N, flops / tf[reps / 2] / 1e9);
        for (int u = 0; u < nu; u++) {
            qsort(tb[u], (size_t)reps, sizeof *tb[u], bench_cmp_double);
            qsort(ratio[u], (size_t)reps, sizeof *ratio[u], bench_cmp_double);
            const double gb = flops / tb[u][reps / 2];
            printf("  %5.0f GF/s %5.1f%% %5.2fx", gb / 1e9, 100.0 * gb / peak[u],
                   ratio[u][reps / 2]);
        }
        printf("\n");
        fflush(stdout);
        problem_free(&p);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const int bf16 = argc > 1 && !strcmp(argv[1], "--bf16");
    const int clip = argc > 1 && !strcmp(argv[1], "--clip");
    if (bf16 || clip)
        argc--, argv++;
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    if (reps < 1 || reps > MAX_REPS)
        reps = 15;
    if (bf16)
        return bench_bf16(reps);
    if (clip)
        return bench_clip(reps);
    char err[256];
    if (eng__blas_init(err, sizeof err) != ENG_OK) {
        fprintf(stderr, "sgemm-bench: %s\n", err);
        return 1;
    }
    const eng__kernels *kern = eng__kernels_get();
    const eng__sgemm_kernels *sk = eng__sgemm_get();
    printf("sgemm-bench: %s vs packed %s (%dx%d tile), 1 thread, median of %d\n",
           eng__blas_name(), eng__isa_str(sk->isa), sk->mr, 16 * sk->np, reps);
    printf("%5s %5s %5s  %12s %12s %8s\n", "M", "K", "N", "blas+bias", "packed", "speedup");
    static const int shapes[][2] = {{256, 768},  {256, 256},  {256, 1024},
                                    {1024, 256}, {384, 1152}, {384, 1536},
                                    {1536, 384}, {768, 3072}, {3072, 768}};
    static const int rows[] = {400, 2048};
    for (size_t mi = 0; mi < sizeof rows / sizeof rows[0]; mi++) {
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int M = rows[mi], K = shapes[si][0], N = shapes[si][1];
            problem p;
            if (problem_alloc(&p, M, K, N, 0))
                return 1;
            p.kern = kern, p.sk = sk;
            const double flops = 2.0 * M * N * K;
            /* About 5 ms per round at 100 GFLOP/s. */
            int iters = (int)(0.005 * 100e9 / flops) + 1;
            double tb[MAX_REPS], tp[MAX_REPS], ratio[MAX_REPS];
            run_blas(&p);
            run_packed(&p);
            for (int r = 0; r < reps; r++) {
                tb[r] = time_one(run_blas, &p, iters);
                tp[r] = time_one(run_packed, &p, iters);
                ratio[r] = tb[r] / tp[r];
            }
            qsort(tb, (size_t)reps, sizeof *tb, bench_cmp_double);
            qsort(tp, (size_t)reps, sizeof *tp, bench_cmp_double);
            qsort(ratio, (size_t)reps, sizeof *ratio, bench_cmp_double);
            const double gb = flops / tb[reps / 2] / 1e9, gp = flops / tp[reps / 2] / 1e9;
            printf("%5d %5d %5d  %8.1f GF/s %7.1f GF/s %7.2fx\n", M, K, N, gb, gp, ratio[reps / 2]);
            fflush(stdout);
            problem_free(&p);
        }
    }
    return 0;
}
