/* stream_bench.c: issue 13's small-M figures. At batch 1 a linear layer has
 * few rows (BERT-base 1 x 16 tokens: M = 16; a ViT-B/32 image: M = 50), and
 * its time is the streaming of its weights from memory. Measured in the same
 * run, on 1 and 2 threads:
 *   - the references: a plain read of a 1 GiB buffer (four times the 260 MiB
 *     L3 of this machine's CPU, so it measures DRAM: each thread reads its
 *     half, 64-byte vector loads), and the fp32 FMA peak (24 independent zmm
 *     FMA chains on registers only, AVX-512);
 *   - the linear layers as the forward pass runs them (eng__linear_run_cols:
 *     the columns' 16-wide panels shared among the threads as
 *     src/text/forward.c shares them for small batches, a barrier after each
 *     layer) at M = 1, 16 and 50 and the BERT-base / ViT-B K x N (768 x 2304,
 *     768 x 768, 768 x 3072, 3072 x 768), each over a stack of distinct
 *     weight matrices of about 1 GiB, so every layer's weights come from
 *     DRAM as a 12-layer pass's do; for the fp32 weights and, where this CPU
 *     runs them, the bf16 (AVX512-BF16 or AMX) and int8 (VNNI) forms, whose
 *     bytes are half and a quarter.
 * Reported: GB/s of weight bytes, and % of the read reference on as many
 * threads; GFLOP/s and % of the FMA peak on as many threads (fp32 only).
 * Wall time, medians of reps passes over the stack, each pass alternating
 * with a read of the reference buffer on as many threads (the % of the read
 * is the median of the rounds' own ratios); the load average is printed, the
 * machine being shared.
 *
 *   build/stream-bench [reps [fp32|bf16|int8|all [MiB]]]
 *
 * (default 5 reps, every form, 1024 MiB). A smaller stack (e.g. 32 MiB, in
 * L3) shows the same layers with their weights in cache. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "bgemm.h"
#include "linear.h"
#include "linear_int8.h"
#include "qgemm.h"
#include "sgemm.h"
#include "team.h"

enum { MAX_REPS = 31, THREADS = 2, MAX_M = 50, MAX_K = 3072 };
#define STACK_BYTES ((size_t)1 << 30)
#define PEAK_ROUNDS 20000000L

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

/* What one pass asks of every member. */
typedef struct {
    eng__team *team;
    /* the read: bytes of buf, split in halves by member */
    const uint8_t *buf;
    size_t bytes;
    /* the layers: n of them, M rows of x each */
    const eng__linear *l;
    int n, M;
    const float *x;
    float *y;
    void *scratch[THREADS];
    size_t scratch_bytes;
    const eng__bgemm_kernels *bk;
    const eng__kernels *kern;
    double sink[THREADS][8]; /* one cache line each */
} job;

__attribute__((target("avx512f"))) static void read_member(void *arg, int tid, int nt)
{
    job *j = arg;
    const size_t part = j->bytes / (size_t)nt / 256 * 256;
    const uint8_t *p = j->buf + (size_t)tid * part;
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < part; i += 256) {
        s0 = _mm512_add_epi64(s0, _mm512_load_si512(p + i));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512(p + i + 64));
        s2 = _mm512_add_epi64(s2, _mm512_load_si512(p + i + 128));
        s3 = _mm512_add_epi64(s3, _mm512_load_si512(p + i + 192));
    }
    j->sink[tid][0] = (double)_mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
}

/* The FMA peak's loop (benchutil.h), on every member. */
static void peak_member(void *arg, int tid, int nt)
{
    job *j = arg;
    j->sink[tid][0] = bench_fma_peak(PEAK_ROUNDS);
}

/* The member's panels of every layer, a barrier after each, as
 * src/text/forward.c runs a small batch. */
static void layers_member(void *arg, int tid, int nt)
{
    job *j = arg;
    for (int i = 0; i < j->n; i++) {
        int p0, p1;
        eng__team_share((j->l[i].N + 15) / 16, tid, nt, &p0, &p1);
        eng__linear_run_cols(&j->l[i], j->x, j->M, j->y, NULL, ENG_ACT_NONE, j->scratch[tid],
                             j->kern, j->l[i].dtype == ENG_DT_BF16 ? j->bk : NULL, p0, p1);
        if (nt > 1)
            eng__team_barrier(j->team);
    }
}

/* Seconds of one run of fn on team. */
static double time_team(eng__team *team, eng__team_fn fn, job *j)
{
    const double t0 = bench_now_s();
    eng__team_run(team, fn, j);
    return bench_now_s() - t0;
}

static uint32_t rng = 12345;
static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)(rng >> 8) / 16777216.0f - 0.5f;
}

enum { FORMS = 3 };
static const char *const form_name[FORMS] = {"fp32", "bf16", "int8"};
static const int shapes[][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
static const int rows[] = {1, 16, 50};
enum { NSHAPES = sizeof shapes / sizeof shapes[0], NROWS = sizeof rows / sizeof rows[0] };

static size_t form_bytes(int form, int K, int N)
{
    return form == 0   ? eng__sgemm_packed_bytes(K, N)
           : form == 1 ? eng__bgemm_packed_bytes(K, N)
                       : eng__quantized_weight_bytes(K, N);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    const char *only = argc > 2 && strcmp(argv[2], "all") ? argv[2] : NULL;
    /* The layers' stack; the read's buffer stays STACK_BYTES. */
    const size_t stack = argc > 3 ? (size_t)atoi(argv[3]) << 20 : STACK_BYTES;
    if (stack < 1 || stack > STACK_BYTES) {
        fprintf(stderr, "stream-bench: the stack is 1 to %zu MiB\n", STACK_BYTES >> 20);
        return 2;
    }
    if (reps < 1 || reps > MAX_REPS)
        reps = 5;
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "stream-bench: needs AVX-512 (its read and peak loops)\n");
        return 77;
    }
    const eng__kernels *kern = eng__kernels_get();
    const eng__bgemm_kernels *bk = eng__bgemm_get();
    const eng__qgemm_kernels *qk = eng__qgemm_get();
    eng__team *teams[THREADS + 1] = {0};
    for (int t = 1; t <= THREADS; t++)
        if (eng__team_create(&teams[t], t) != ENG_OK) {
            fprintf(stderr, "stream-bench: cannot start %d threads\n", t);
            return 1;
        }
    uint8_t *buf = aligned_alloc(64, STACK_BYTES);
    float *x = aligned_alloc(64, (size_t)MAX_M * MAX_K * sizeof *x);
    float *y = aligned_alloc(64, (size_t)MAX_M * MAX_K * sizeof *y);
    float *w = aligned_alloc(64, eng__sgemm_packed_bytes(MAX_K, MAX_K));
    eng__bf16 *wb = aligned_alloc(64, eng__bgemm_packed_bytes(MAX_K, MAX_K));
    float *bias = aligned_alloc(64, MAX_K * sizeof *bias);
    float *scale = aligned_alloc(64, MAX_K * sizeof *scale);
    int32_t *wsum = aligned_alloc(64, MAX_K * sizeof *wsum);
    eng__linear *l = calloc(STACK_BYTES / eng__quantized_weight_bytes(768, 768) + 1, sizeof *l);
    job j = {.buf = buf, .bytes = STACK_BYTES, .x = x, .y = y, .bk = bk, .kern = kern};
    for (int s = 0; s < NSHAPES; s++)
        for (int bf = 0; bf < 2; bf++) {
            const eng__linear probe = {.K = shapes[s][0], .N = shapes[s][1],
                                       .dtype = bf ? ENG_DT_BF16 : ENG_DT_I8};
            const size_t b = eng__linear_scratch_bytes(&probe, MAX_M, bf);
            j.scratch_bytes = b > j.scratch_bytes ? b : j.scratch_bytes;
        }
    for (int t = 0; t < THREADS; t++)
        j.scratch[t] = aligned_alloc(64, (j.scratch_bytes + 63) / 64 * 64);
    if (!buf || !x || !y || !w || !wb || !bias || !scale || !wsum || !l || !j.scratch[0] ||
        !j.scratch[1]) {
        fprintf(stderr, "stream-bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)MAX_M * MAX_K; i++)
        x[i] = frand();
    for (int i = 0; i < MAX_K; i++)
        bias[i] = frand(), scale[i] = 1e-3f, wsum[i] = 0;
    /* Written, so the read maps real pages. */
    for (size_t i = 0; i < STACK_BYTES; i += 4096)
        memset(buf + i, (int)(i >> 12), 4096);

    char load[64] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(load, sizeof load, f))
            strcpy(load, "?");
        fclose(f);
        load[strcspn(load, "\n")] = 0;
    }
    printf("stream-bench: fp32 tile %s %dx%d, bf16 %s, int8 %s; %zu MiB of weights per shape; "
           "medians of %d; load average %s\n",
           eng__isa_str(eng__sgemm_get()->isa), eng__sgemm_get()->mr, 16 * eng__sgemm_get()->np,
           bk ? bk->name : "none", qk->name, stack >> 20, reps, load);
    double peak_gfs[THREADS + 1];
    for (int t = 1; t <= THREADS; t++) {
        double pk[MAX_REPS];
        j.team = teams[t];
        time_team(teams[t], read_member, &j);
        for (int r = 0; r < reps; r++)
            pk[r] = 2.0 * 16 * 24 * PEAK_ROUNDS * t / time_team(teams[t], peak_member, &j) / 1e9;
        peak_gfs[t] = median(pk, reps);
        printf("fp32 FMA peak, %d thread%s: %.0f GFLOP/s\n", t, t > 1 ? "s" : "", peak_gfs[t]);
    }
    printf("%-5s %3s %5s %5s %3s  %9s %9s %6s  %10s %s\n", "form", "M", "K", "N", "thr",
           "weights", "read", "%read", "GFLOP/s", "%fp32 peak");
    for (int form = 0; form < FORMS; form++) {
        if (only && strcmp(only, form_name[form]))
            continue;
        if ((form == 1 && !bk) || (form == 2 && qk->isa == ENG_QISA_SCALAR)) {
            printf("%s: skipped, this CPU has no fast %s unit\n", form_name[form], form_name[form]);
            continue;
        }
        for (int s = 0; s < NSHAPES; s++) {
            const int K = shapes[s][0], N = shapes[s][1];
            const size_t bytes = form_bytes(form, K, N);
            const int n = stack / bytes > 0 ? (int)(stack / bytes) : 1;
            /* One random matrix in the form, copied through the stack. */
            float *fbuf = (float *)(void *)buf; /* aligned_alloc(64): fit for floats */
            for (size_t i = 0; i < (size_t)K * N; i++)
                fbuf[i] = frand();
            eng__sgemm_pack(fbuf, K, N, w);
            if (form == 1)
                eng__bgemm_pack(w, K, N, wb);
            else if (form == 2)
                for (size_t i = 0; i < bytes; i++)
                    ((int8_t *)w)[i] = (int8_t)(frand() * 254.0f);
            for (int c = 0; c < n; c++) {
                uint8_t *m = buf + (size_t)c * bytes;
                memcpy(m, form == 1 ? (const void *)wb : (const void *)w, bytes);
                l[c] = (eng__linear){.K = K, .N = N, .b = bias};
                if (form == 0)
                    l[c].dtype = ENG_DT_F32, l[c].packed = (const float *)(void *)m;
                else if (form == 1)
                    l[c].dtype = ENG_DT_BF16, l[c].wb = (const eng__bf16 *)(void *)m;
                else
                    l[c].dtype = ENG_DT_I8, l[c].wq = (const int8_t *)m, l[c].wscale = scale,
                    l[c].wsum = wsum;
            }
            j.l = l;
            j.n = n;
            for (int mi = 0; mi < NROWS; mi++) {
                j.M = rows[mi];
                for (int t = 1; t <= THREADS; t++) {
                    /* The read and the layers alternate; the ratio is the
                     * median of each round's own. */
                    double g[MAX_REPS], rd[MAX_REPS], ratio[MAX_REPS];
                    j.team = teams[t];
                    time_team(teams[t], layers_member, &j);
                    for (int r = 0; r < reps; r++) {
                        rd[r] = STACK_BYTES / time_team(teams[t], read_member, &j) / 1e9;
                        /* The read evicted a stack smaller than it. */
                        if (stack < STACK_BYTES)
                            time_team(teams[t], layers_member, &j);
                        g[r] = (double)n * bytes / time_team(teams[t], layers_member, &j) / 1e9;
                        ratio[r] = g[r] / rd[r];
                    }
                    const double gbs = median(g, reps);
                    const double gfs = gbs * 1e9 / bytes * 2.0 * j.M * K * N / 1e9;
                    printf("%-5s %3d %5d %5d %3d  %4.1f GB/s %4.1f GB/s %5.0f%%  %5.1f GF/s %5.1f%%\n",
                           form_name[form], j.M, K, N, t, gbs, median(rd, reps),
                           100.0 * median(ratio, reps), gfs, 100.0 * gfs / peak_gfs[t]);
                    fflush(stdout);
                }
            }
        }
    }
    for (int t = 1; t <= THREADS; t++)
        eng__team_free(teams[t]);
    free(buf), free(x), free(y), free(w), free(wb), free(bias), free(scale), free(wsum), free(l);
    free(j.scratch[0]), free(j.scratch[1]);
    return 0;
}
