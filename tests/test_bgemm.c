/* test_bgemm.c: the bf16 GEMM (kernels/bgemm*.c): the rounding, the packed
 * layout, the scalar reference against a double-precision sum of the same
 * bf16 operands, and every unit this CPU has (the FMA on widened weights,
 * AVX512-BF16, AMX-BF16) against the scalar reference at awkward shapes (M,
 * N, K off every tile size, K tails, wide row strides), with every epilogue,
 * on the calling thread and on a fresh one (AMX tile state); the choice of
 * unit under ENG_ISA, ENG_BGEMM and when Linux refuses the tile permission
 * (ENG_AMX_DENY=1). Units the CPU lacks are skipped, and the program exits
 * 77 when it has none. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgemm.h"
#include "cpu.h"
#include "sgemm.h"
#include "testutil.h"

/* The operands are the same bf16 values everywhere and their products are
 * exact in fp32 (8 x 8 significant bits), so the units differ from the
 * reference only in the order (and, for VDPBF16PS and TDPBF16PS, the
 * grouping) of the fp32 additions: each of two K-term fp32 sums errs by at
 * most K * 2^-24 of sum_k |a_k b_k| (+ |bias| + |res|), hence 2 K 2^-24.
 * The FMA unit adds the same exact products in the reference's k order
 * (an FMA of an exact product rounds once, as the reference's add does; the
 * operands here are far from fp32's underflow), and its epilogue adds bias
 * and residual in the reference's order: its sums, and so its results
 * without GELU, must be the reference's bit for bit. */
#define TOL_SUM_PER_K (2.0 / 16777216.0)
/* The vector GELUs' approximations against the scalar one (vmath_coef.h:
 * erf to ~3.4e-7 absolute, exp to ~1 ulp), relative to max(1, |x|). */
#define TOL_ACT_REL 2e-6
/* GELU's slope never exceeds this, so an input error e moves it by <= e * this. */
#define GELU_MAX_SLOPE 1.13
#define SENTINEL 12345.0f

enum { EPI_BIAS, EPI_RES, EPI_GELU, EPI_GELU_TANH, EPI_RELU, EPI_COUNT };
static const char *const epi_name[EPI_COUNT] = {"bias", "bias+res", "gelu", "gelu_tanh", "relu"};
static int epi_act(int e)
{
    return e == EPI_GELU ? ENG_ACT_GELU
         : e == EPI_GELU_TANH ? ENG_ACT_GELU_TANH
         : e == EPI_RELU ? ENG_ACT_RELU
                         : -1;
}

typedef struct {
    int M, N, K, ldx, ldy;
    float *x, *bias, *res;
    eng__bf16 *packed;
    double *mag; /* [M][N]: sum_k |a_k b_k| + |bias| + |res| */
    void *scratch;
} problem;

static void problem_make(problem *p, int M, int N, int K, int epi, int wide)
{
    p->M = M, p->N = N, p->K = K;
    p->ldx = K + (wide ? 3 : 0), p->ldy = N + (wide ? 5 : 0);
    float *w = malloc((size_t)K * N * sizeof *w);
    float *sg = aligned_alloc(64, eng__sgemm_packed_bytes(K, N));
    p->x = malloc((size_t)M * p->ldx * sizeof *p->x);
    p->bias = malloc((size_t)N * sizeof *p->bias);
    p->res = epi == EPI_RES ? malloc((size_t)M * p->ldy * sizeof *p->res) : NULL;
    p->packed = aligned_alloc(64, eng__bgemm_packed_bytes(K, N));
    p->mag = malloc((size_t)M * N * sizeof *p->mag);
    p->scratch = aligned_alloc(64, eng__bgemm_scratch_bytes(M, K));
    ck_assert(w && sg && p->x && p->bias && (epi != EPI_RES || p->res) && p->packed && p->mag &&
              p->scratch);
    for (size_t i = 0; i < (size_t)M * p->ldx; i++)
        p->x[i] = test_uniform(-1.0f, 1.0f);
    for (size_t i = 0; i < (size_t)K * N; i++)
        w[i] = test_uniform(-1.0f, 1.0f);
    for (int i = 0; i < N; i++)
        p->bias[i] = test_uniform(-1.0f, 1.0f);
    if (p->res)
        for (size_t i = 0; i < (size_t)M * p->ldy; i++)
            p->res[i] = 4.0f * test_uniform(-1.0f, 1.0f);
    eng__sgemm_pack(w, K, N, sg);
    eng__bgemm_pack(sg, K, N, p->packed);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = fabs(p->bias[n]) + (p->res ? fabs(p->res[(size_t)m * p->ldy + n]) : 0.0);
            for (int k = 0; k < K; k++)
                s += fabs((double)eng__bf16_float(eng__bf16_round(p->x[(size_t)m * p->ldx + k])) *
                          eng__bf16_float(eng__bf16_round(w[(size_t)k * N + n])));
            p->mag[(size_t)m * N + n] = s;
        }
    free(w), free(sg);
}

static void problem_free(problem *p)
{
    free(p->x), free(p->bias), free(p->res), free(p->packed), free(p->mag), free(p->scratch);
}

/* Y with the sentinel in its row padding, from one unit. */
static float *run(const eng__bgemm_kernels *bk, problem *p, int act)
{
    float *y = malloc((size_t)p->M * p->ldy * sizeof *y);
    ck_assert_ptr_nonnull(y);
    for (size_t i = 0; i < (size_t)p->M * p->ldy; i++)
        y[i] = SENTINEL;
    eng__bgemm(bk, p->x, p->M, p->K, (size_t)p->ldx, p->packed, p->N, y, (size_t)p->ldy, p->bias,
               p->res, act, p->scratch);
    return y;
}

static void check_one(const eng__bgemm_kernels *bk, int M, int N, int K, int epi, int wide)
{
    problem p;
    problem_make(&p, M, N, K, epi, wide);
    const int act = epi_act(epi);
    float *ref = run(&eng__bgemm_scalar, &p, act);
    float *got = run(bk, &p, act);
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            const double r = ref[(size_t)m * p.ldy + n], g = got[(size_t)m * p.ldy + n];
            double tol = bk->isa == ENG_BGEMM_AVX512FMA
                             ? 0.0
                             : TOL_SUM_PER_K * eng__bgemm_kp(K) * p.mag[(size_t)m * N + n] *
                                   (act >= 0 ? GELU_MAX_SLOPE : 1.0);
            if (act == ENG_ACT_GELU || act == ENG_ACT_GELU_TANH)
                tol += TOL_ACT_REL * fmax(1.0, p.mag[(size_t)m * N + n]);
            if (!(fabs(g - r) <= tol))
                ck_abort_msg("%s M=%d N=%d K=%d %s%s: Y[%d][%d] = %.9g, reference %.9g (tol %.3g)",
                             bk->name, M, N, K, epi_name[epi], wide ? " wide" : "", m, n, g, r,
                             tol);
        }
        for (int n = N; n < p.ldy; n++)
            if (got[(size_t)m * p.ldy + n] != SENTINEL)
                ck_abort_msg("%s M=%d N=%d K=%d: padding Y[%d][%d] overwritten", bk->name, M, N,
                             K, m, n);
    }
    free(ref), free(got);
    problem_free(&p);
}

static const eng__bgemm_kernels *units[3];
static int n_units;

static void check_shape(int M, int N, int K)
{
    for (int u = 0; u < n_units; u++)
        for (int e = 0; e < EPI_COUNT; e++)
            check_one(units[u], M, N, K, e, (M + N + K + e) % 2);
}

START_TEST(test_round)
{
    /* Ties go to the even neighbour; halfway and above round away. */
    ck_assert_uint_eq(eng__bf16_round(1.0f), 0x3f80);
    ck_assert_uint_eq(eng__bf16_round(1.0f + 0x1p-8f), 0x3f80);            /* tie, even down */
    ck_assert_uint_eq(eng__bf16_round(1.0f + 3 * 0x1p-8f), 0x3f82);        /* tie, even up */
    ck_assert_uint_eq(eng__bf16_round(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81); /* above the tie */
    ck_assert_uint_eq(eng__bf16_round(-2.0f), 0xc000);
    ck_assert_uint_eq(eng__bf16_round(INFINITY), 0x7f80);
    ck_assert_uint_eq(eng__bf16_round(3.4e38f), 0x7f80); /* rounds past the largest bf16 */
    ck_assert(isnan(eng__bf16_float(eng__bf16_round(NAN))));
    ck_assert(isnan(eng__bf16_float(eng__bf16_round(-NAN))));
    ck_assert_float_eq(eng__bf16_float(eng__bf16_round(0x1p-130f)), 0x1p-130f); /* denormal kept */
}
END_TEST

/* Row r, step k of a unit's rounded activations (bgemm.h's layouts). */
static eng__bf16 rounded_at(const eng__bgemm_kernels *bk, const void *A, int K, int r, int k)
{
    const int kp = eng__bgemm_kp(K), mr = ENG_BGEMM_FMA_MR;
    if (bk->isa != ENG_BGEMM_AVX512FMA)
        return ((const eng__bf16 *)A)[(size_t)r * kp + k];
    uint32_t u;
    const size_t at = (((size_t)(r / mr) * kp / 16 + k / 16) * mr + r % mr) * 16 + k % 16;
    memcpy(&u, (const float *)A + at, sizeof u);
    /* The fp32 a bf16 stands for has nothing in its bottom half. */
    ck_assert_msg((u & 0xffff) == 0, "%s: a[%d][%d] = %#x is not a bf16", bk->name, r, k, u);
    return (eng__bf16)(u >> 16);
}

/* Every unit rounds activations exactly as eng__bf16_round does, specials,
 * ties and denormals included, with the zeros past K (and past M for the
 * bf16 units) of its layout, and writes nothing past the scratch. */
START_TEST(test_round_rows)
{
    enum { M = 14, K = 77, LDX = 80 };
    const int kp = eng__bgemm_kp(K);
    ck_assert_int_eq(kp, 96);
    float x[M * LDX];
    for (int i = 0; i < M * LDX; i++)
        x[i] = test_uniform(-3.0f, 3.0f);
    const float special[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p-130f, -0x1p-149f,
                             3.4e38f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f)};
    memcpy(x + 13, special, sizeof special);
    memcpy(x + 12 * LDX + 60, special, sizeof special); /* the FMA unit's second strip */
    const size_t bytes = eng__bgemm_scratch_bytes(M, K);
    unsigned char *A = aligned_alloc(64, bytes + 64);
    ck_assert_ptr_nonnull(A);
    const eng__bgemm_kernels *all[4] = {&eng__bgemm_scalar};
    for (int u = 0; u < n_units; u++)
        all[u + 1] = units[u];
    for (int u = 0; u < n_units + 1; u++) {
        memset(A, 0xab, bytes + 64);
        all[u]->round(x, M, K, LDX, A);
        const int rows = all[u]->isa == ENG_BGEMM_AVX512FMA ? M : 16;
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < kp; k++) {
                const eng__bf16 want = r < M && k < K ? eng__bf16_round(x[r * LDX + k]) : 0;
                const eng__bf16 got = rounded_at(all[u], A, K, r, k);
                ck_assert_msg(got == want, "%s: a[%d][%d] = %#x, expected %#x", all[u]->name, r,
                              k, got, want);
            }
        for (size_t i = bytes; i < bytes + 64; i++)
            ck_assert_msg(A[i] == 0xab, "%s: wrote past the scratch", all[u]->name);
    }
    free(A);
}
END_TEST

/* The packed layout of bgemm.h, element by element, and the way back. */
START_TEST(test_pack_layout)
{
    enum { K = 35, N = 19 };
    const int kp = eng__bgemm_kp(K);
    ck_assert_int_eq(kp, 64);
    ck_assert_uint_eq(eng__bgemm_packed_bytes(K, N), 2 * 64 * 16 * 2);
    ck_assert_uint_eq(eng__bgemm_packed_bytes(0, N), 0);
    ck_assert_uint_eq(eng__bgemm_scratch_bytes(5, 0), 0); /* a layer without inputs */
    float w[K * N], sg[2 * K * 16], back[2 * K * 16];
    for (int i = 0; i < K * N; i++)
        w[i] = (float)(i + 1) * 1.0009765625f; /* 11 significant bits: rounding shows */
    eng__sgemm_pack(w, K, N, sg);
    eng__bf16 packed[2 * 64 * 16];
    memset(packed, 0xff, sizeof packed);
    eng__bgemm_pack(sg, K, N, packed);
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < kp; k++)
            for (int j = 0; j < 16; j++) {
                const int n = 16 * p + j;
                const eng__bf16 want = n < N && k < K ? eng__bf16_round(w[k * N + n]) : 0;
                ck_assert_uint_eq(packed[(p * kp / 2 + k / 2) * 32 + 2 * j + (k & 1)], want);
            }
    eng__bgemm_unpack(packed, K, N, back);
    for (int i = 0; i < 2 * K * 16; i++)
        ck_assert_float_eq(back[i], eng__bf16_float(eng__bf16_round(sg[i])));
}
END_TEST

/* The scalar reference against double sums of the same bf16 operands. */
START_TEST(test_scalar_reference)
{
    static const int shapes[][3] = {{1, 1, 1}, {3, 17, 33}, {17, 31, 65}, {5, 48, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        problem p;
        problem_make(&p, M, N, K, EPI_RES, 1);
        float *y = run(&eng__bgemm_scalar, &p, ENG_ACT_NONE);
        float *sg = aligned_alloc(64, eng__sgemm_packed_bytes(K, N));
        ck_assert_ptr_nonnull(sg);
        eng__bgemm_unpack(p.packed, K, N, sg);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double ref = (double)p.bias[n] + p.res[(size_t)m * p.ldy + n];
                for (int k = 0; k < K; k++)
                    ref += (double)eng__bf16_float(eng__bf16_round(p.x[(size_t)m * p.ldx + k])) *
                           sg[((size_t)(n / 16) * K + k) * 16 + n % 16];
                const double tol = K / 16777216.0 * p.mag[(size_t)m * N + n] + 1e-6;
                ck_assert_msg(fabs(y[(size_t)m * p.ldy + n] - ref) <= tol,
                              "M=%d N=%d K=%d: Y[%d][%d] = %.9g, double %.9g", M, N, K, m, n,
                              y[(size_t)m * p.ldy + n], ref);
            }
        free(y), free(sg);
        problem_free(&p);
    }
}
END_TEST

START_TEST(test_awkward_shapes)
{
    static const int sizes[] = {1,  3,  11, 12, 13, 15, 16,  17,  24, 25,
                                31, 32, 33, 63, 64, 65, 255, 256, 257};
    enum { S = sizeof sizes / sizeof *sizes };
    for (int i = 0; i < S; i++) {
        check_shape(sizes[i], 33, 17);
        check_shape(7, sizes[i], 49);
        check_shape(13, 65, sizes[i]);
    }
    static const int small[] = {1, 3, 15, 16, 17, 47, 64, 65};
    enum { T = sizeof small / sizeof *small };
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++)
            check_shape(small[i], small[j], small[(i + j) % T]);
}
END_TEST

START_TEST(test_large_shapes)
{
    /* Many row strips, K 3072 as in BERT's FFN output, N with a partial
     * tile; then several of the AMX unit's column blocks (1 MiB of weights:
     * 10 panels at K = 3072), the last one a single panel. */
    check_shape(300, 97, 3072);
    check_shape(1100, 50, 768);
    check_shape(40, 330, 3072);
}
END_TEST

static void *on_thread(void *arg)
{
    (void)arg;
    check_shape(33, 35, 70);
    return NULL;
}

/* A thread that never ran a tile instruction: the kernel configures its
 * tiles itself. */
START_TEST(test_fresh_thread)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, on_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}
END_TEST

/* The unit a fresh process picks with the environment assignments env (and
 * none of this process's own ENG_ISA, ENG_BGEMM, ENG_AMX_DENY): the child
 * prints eng__bgemm_get()'s name (or "none") into got. */
static void choice(const char *env, char got[64])
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "env -u ENG_ISA -u ENG_BGEMM -u ENG_AMX_DENY %s /proc/%d/exe --choice",
             env, (int)getpid());
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    got[0] = 0;
    ck_assert_ptr_nonnull(fgets(got, 64, f));
    ck_assert_int_eq(pclose(f), 0);
    got[strcspn(got, "\n")] = 0;
}

static void check_choice(const char *env, const char *want)
{
    char got[64];
    choice(env, got);
    ck_assert_msg(!strcmp(got, want), "%s: %s, expected %s", env, got, want);
}

START_TEST(test_choice)
{
    const eng__cpu *cpu = eng__cpu_get();
    const int fma = eng__bgemm_for(ENG_BGEMM_AVX512FMA) != NULL;
    const int dp = eng__bgemm_for(ENG_BGEMM_AVX512BF16) != NULL;
    const int amx = cpu->best >= ENG_ISA_AMX && cpu->amx_bf16;
    check_choice("ENG_ISA=avx2", "none");
    check_choice("ENG_ISA=avx2 ENG_BGEMM=avx512fma", "none");
    /* Below AMX, with AVX512-BF16, the faster by the peaks: one of the two;
     * with AVX-512 alone, the FMA form. */
    char got[64];
    const char *const envs[] = {"ENG_ISA=avx512", "ENG_AMX_DENY=1", "ENG_ISA=avx512 ENG_BGEMM=amx",
                                "ENG_ISA=avx512 ENG_BGEMM=scalar"};
    for (size_t i = 0; i < sizeof envs / sizeof *envs; i++) {
        choice(envs[i], got);
        if (dp)
            ck_assert_msg(!strcmp(got, "avx512fma") || !strcmp(got, "avx512bf16"), "%s: %s",
                          envs[i], got);
        else
            ck_assert_msg(!strcmp(got, fma ? "avx512fma" : "none"), "%s: %s, expected %s", envs[i],
                          got, fma ? "avx512fma" : "none");
    }
    /* ENG_BGEMM forces any unit this CPU runs. */
    if (fma)
        check_choice("ENG_BGEMM=avx512fma", "avx512fma");
    if (dp)
        check_choice("ENG_BGEMM=avx512bf16", "avx512bf16");
    if (amx) {
        check_choice("ENG_ISA=amx", "amx");
        check_choice("ENG_BGEMM=amx", "amx");
    }
}
END_TEST

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--choice")) {
        const eng__bgemm_kernels *bk = eng__bgemm_get();
        printf("%s\n", bk ? bk->name : "none");
        return 0;
    }
    const eng__bgemm_isa isas[3] = {ENG_BGEMM_AVX512FMA, ENG_BGEMM_AVX512BF16, ENG_BGEMM_AMX};
    static const char *const names[3] = {"AVX-512 FMA", "AVX512-BF16", "AMX-BF16"};
    for (int i = 0; i < 3; i++) {
        const eng__bgemm_kernels *bk = eng__bgemm_for(isas[i]);
        if (bk)
            units[n_units++] = bk;
        else
            printf("test_bgemm: skipping %s: this CPU (or its OS) cannot run it\n", names[i]);
    }
    /* Unforced, the chosen unit is AMX where it runs, else with AVX512-BF16
     * one of the two AVX-512 forms, else with AVX-512 the FMA form, else
     * none. */
    const eng__bgemm_kernels *best = eng__bgemm_get();
    const eng__bgemm_kernels *amx = eng__bgemm_for(ENG_BGEMM_AMX);
    const eng__bgemm_kernels *dp = eng__bgemm_for(ENG_BGEMM_AVX512BF16);
    if (eng__cpu_get()->level == eng__cpu_get()->best && !getenv("ENG_BGEMM") &&
        (amx ? best != amx
             : dp ? best != dp && best != eng__bgemm_for(ENG_BGEMM_AVX512FMA)
                  : best != eng__bgemm_for(ENG_BGEMM_AVX512FMA))) {
        printf("test_bgemm: eng__bgemm_get() is %s\n", best ? best->name : "NULL");
        return 1;
    }
    Suite *s = suite_create("bgemm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_round);
    tcase_add_test(tc, test_pack_layout);
    tcase_add_test(tc, test_scalar_reference);
    tcase_add_test(tc, test_choice);
    tcase_add_test(tc, test_round_rows);
    if (n_units) {
        tcase_add_test(tc, test_awkward_shapes);
        tcase_add_test(tc, test_large_shapes);
        tcase_add_test(tc, test_fresh_thread);
    }
    suite_add_tcase(s, tc);
    const int rc = test_run_suite(s);
    if (rc == 0 && !n_units) {
        printf("test_bgemm: skipped: no vector bf16 unit (AVX-512) on this CPU\n");
        return TEST_SKIP;
    }
    return rc;
}
