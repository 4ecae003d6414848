/* test_qgemm.c: the int8 GEMM kernels (kernels/qgemm*.c) and the int8 linear
 * layer (src/text/linear_int8.c): every path this CPU runs against the scalar
 * reference and a plain triple loop, with exact int32 equality on awkward
 * shapes and extreme values; the weight quantizer's error bound; the whole
 * layer against an fp32 product within a derived error bound; batch
 * invariance; and which path each ENG_ISA value picks. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantize.h"
#include "cpu.h"
#include "qgemm.h"
#include "testutil.h"

/* Slack on the rigorous int8 error bound for float rounding in the epilogue
 * and in the reference itself (relative to the bound, plus absolute). */
#define TOL_BOUND_REL 1e-3
#define TOL_BOUND_ABS 1e-5
/* GELU's slope never exceeds this, so an input error e moves it by <= e * this. */
#define GELU_MAX_SLOPE 1.13


/* Plain-layout int8 weights W[K][N] in [-127, 127], packed through the real
 * quantizer: a 127 in every column makes scale 1, so q == W exactly. */
typedef struct {
    int K, N;
    int8_t *w;        /* K x N */
    int8_t *packed;
    float *scale;
    int32_t *wsum;
} qweights;

static qweights make_weights(int K, int N, int lo, int hi)
{
    qweights q = {K, N, malloc((size_t)K * N), malloc(eng__quantized_weight_bytes(K, N)),
                  malloc((size_t)N * sizeof(float)), malloc((size_t)N * sizeof(int32_t))};
    float *wf = malloc((size_t)K * N * sizeof *wf);
    for (size_t i = 0; i < (size_t)K * N; i++) {
        q.w[i] = (int8_t)(lo + (int)(test_rand_u32() % (unsigned)(hi - lo + 1)));
        if (i < (size_t)N && q.w[i] != -127)
            q.w[i] = 127;
        wf[i] = q.w[i];
    }
    ck_assert_int_eq(eng__quantize_weights(wf, K, N, q.packed, q.scale, q.wsum), ENG_OK);
    for (int n = 0; n < N; n++)
        ck_assert_float_eq(q.scale[n], 1.0f);
    free(wf);
    return q;
}

static void free_weights(qweights *q)
{
    free(q->w);
    free(q->packed);
    free(q->scale);
    free(q->wsum);
}

static size_t lda_of(int K) { return (size_t)(K + 3) / 4 * 4; }

static uint8_t *make_acts(int M, int K, int lo, int hi)
{
    size_t lda = lda_of(K);
    uint8_t *a = malloc((size_t)M * lda);
    for (int m = 0; m < M; m++)
        for (size_t k = 0; k < lda; k++)
            a[m * lda + k] = (int)k < K ? (uint8_t)(lo + (int)(test_rand_u32() % (unsigned)(hi - lo + 1)))
                                        : 128;
    return a;
}

/* C = A W, int32, the plainest loops. */
static void reference_i32(const uint8_t *a, const qweights *q, int M, int32_t *c)
{
    size_t lda = lda_of(q->K);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < q->N; n++) {
            int32_t s = 0;
            for (int k = 0; k < q->K; k++)
                s += (int32_t)a[m * lda + k] * q->w[(size_t)k * q->N + n];
            c[(size_t)m * q->N + n] = s;
        }
}

static void run_i32(const eng__qgemm_kernels *qk, const uint8_t *a, const qweights *q, int M,
                    int32_t *c)
{
    eng__qgemm_args g = {.a = a, .lda = lda_of(q->K), .b = q->packed, .k = q->K, .n = q->N,
                         .sx = NULL, .c = c,
                         .ldc = (size_t)q->N};
    eng__qgemm_run(qk, &g, 0, M, 0, (q->N + 15) / 16);
}

/* Every runnable path gives exactly the reference's int32 sums on a shape. */
static void check_exact(int M, int N, int K, int wlo, int whi, int alo, int ahi)
{
    qweights q = make_weights(K, N, wlo, whi);
    uint8_t *a = make_acts(M, K, alo, ahi);
    int32_t *ref = malloc((size_t)M * N * sizeof *ref), *c = malloc((size_t)M * N * sizeof *c);
    reference_i32(a, &q, M, ref);
    for (int isa = 0; isa < ENG_QISA_COUNT; isa++) {
        const eng__qgemm_kernels *qk = eng__qgemm_for((eng__qisa)isa);
        if (!qk)
            continue;
        memset(c, 0x55, (size_t)M * N * sizeof *c);
        run_i32(qk, a, &q, M, c);
        for (size_t i = 0; i < (size_t)M * N; i++)
            if (c[i] != ref[i])
                ck_abort_msg("%s M=%d N=%d K=%d: C[%zu] = %d, reference %d", qk->name, M, N, K,
                             i, c[i], ref[i]);
    }
    free(ref);
    free(c);
    free(a);
    free_weights(&q);
}

START_TEST(test_exact_awkward_shapes)
{
    static const int sizes[] = {1, 3, 15, 16, 17, 63, 64, 65};
    enum { S = sizeof sizes / sizeof *sizes };
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++)
            for (int k = 0; k < S; k++)
                check_exact(sizes[i], sizes[j], sizes[k], -127, 127, 0, 255);
    /* 255 in each position, and K past one K block (512) so partial sums are
     * parked and resumed, M past one row block. */
    check_exact(255, 17, 63, -127, 127, 0, 255);
    check_exact(17, 255, 65, -127, 127, 0, 255);
    check_exact(15, 63, 255, -127, 127, 0, 255);
    check_exact(255, 65, 1027, -127, 127, 0, 255);
    check_exact(130, 100, 1537, -127, 127, 0, 255);
}
END_TEST

/* All weights at +-127 and activations at 255 (or 0): the pair sums that
 * VPMADDUBSW would saturate; every path, the AVX2 one included, must equal
 * the reference. */
START_TEST(test_exact_extreme_values)
{
    check_exact(17, 33, 1027, 127, 127, 255, 255);
    check_exact(17, 33, 1027, -127, -127, 255, 255);
    check_exact(9, 40, 515, -127, -127, 0, 0);
    check_exact(9, 40, 515, -127, 127, 255, 255);
    /* Alternating extremes: +-127 weights against 0/255 activations. */
    check_exact(8, 48, 256, -127, 127, 0, 255);
}
END_TEST

START_TEST(test_weight_quantizer_bound)
{
    const int K = 67, N = 35;
    float *w = malloc((size_t)K * N * sizeof *w), scale[35];
    int32_t wsum[35];
    int8_t *wq = malloc(eng__quantized_weight_bytes(K, N));
    for (int i = 0; i < K * N; i++)
        w[i] = test_uniform(-3.0f, 3.0f) * (float)(1 + i % N);
    for (int k = 0; k < K; k++)
        w[(size_t)k * N + 7] = 0.0f;   /* an all-zero column */
    ck_assert_int_eq(eng__quantize_weights(w, K, N, wq, scale, wsum), ENG_OK);
    const size_t k4 = lda_of(K) / 4, bytes = eng__quantized_weight_bytes(K, N);
    ck_assert_uint_eq(bytes, (size_t)3 * k4 * 64);
    for (int n = 0; n < N; n++) {
        int32_t sum = 0;
        for (int k = 0; k < (int)(4 * k4); k++) {
            int q = wq[(((size_t)(n / 16) * k4 + (size_t)k / 4) * 16 + (size_t)n % 16) * 4 + k % 4];
            if (k >= K) {
                ck_assert_int_eq(q, 0);
                continue;
            }
            ck_assert_int_le(abs(q), 127);
            double err = fabs((double)scale[n] * q - w[(size_t)k * N + n]);
            ck_assert_msg(err <= scale[n] / 2.0 * (1 + 1e-9),
                          "w[%d][%d] = %g, q = %d, scale %g: error %g", k, n,
                          (double)w[(size_t)k * N + n], q, (double)scale[n], err);
            sum += q;
        }
        ck_assert_int_eq(sum, wsum[n]);
    }
    ck_assert_float_eq(scale[7], 0.0f);
    /* Padding columns of the last panel are zero. */
    for (size_t i = 2 * k4 * 64; i < bytes; i++)
        if ((i / 4) % 16 >= (size_t)(N - 32))
            ck_assert_int_eq(wq[i], 0);
    w[5] = NAN;
    ck_assert_int_eq(eng__quantize_weights(w, K, N, wq, scale, wsum), ENG_ERR_INVALID_ARG);
    w[5] = INFINITY;
    ck_assert_int_eq(eng__quantize_weights(w, K, N, wq, scale, NULL), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(eng__quantize_weights(w, 0, N, wq, scale, NULL), ENG_ERR_INVALID_ARG);
    ck_assert_uint_eq(eng__quantized_weight_bytes(0, 5), 0);
    ck_assert_uint_eq(eng__quantized_weight_bytes(5, -1), 0);
    ck_assert_uint_eq(eng__quantized_weight_bytes(ENG_QGEMM_MAX_K + 1, 5), 0);
    free(w);
    free(wq);
}
END_TEST

/* Every path quantizes activation rows to the same bytes and scales. */
START_TEST(test_activation_quantizers_agree)
{
    static const int ks[] = {1, 3, 7, 8, 15, 16, 17, 33, 63, 64, 65, 100, 128, 1027};
    for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
        const int K = ks[t], M = 5;
        const size_t lda = lda_of(K) + 4;
        float *x = malloc((size_t)M * K * sizeof *x);
        for (int i = 0; i < M * K; i++)
            x[i] = test_uniform(-4.0f, 4.0f) * (i % 3 ? 1.0f : 10.0f);
        for (int k = 0; k < K; k++)
            x[2 * K + k] = 0.0f;   /* an all-zero row */
        x[0] = 1000.0f;            /* one outlier */
        uint8_t *ref = malloc(M * lda), *a = malloc(M * lda);
        float sref[5], sx[5];
        eng__qgemm_scalar.quantize(x, M, K, ref, lda, sref);
        ck_assert_float_eq(sref[2], 0.0f);
        for (int k = 0; k < K; k++)
            ck_assert_int_eq(ref[2 * lda + k], 128);
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) {
                double back = ((double)ref[m * lda + k] - 128.0) * sref[m];
                ck_assert(fabs(back - x[m * K + k]) <= sref[m] * 0.5 * (1 + 1e-5) + 1e-30);
            }
        for (int isa = 1; isa < ENG_QISA_COUNT; isa++) {
            const eng__qgemm_kernels *qk = eng__qgemm_for((eng__qisa)isa);
            if (!qk)
                continue;
            qk->quantize(x, M, K, a, lda, sx);
            for (int m = 0; m < M; m++) {
                ck_assert_msg(sx[m] == sref[m], "%s K=%d row %d scale", qk->name, K, m);
                ck_assert_msg(memcmp(a + m * lda, ref + m * lda, (size_t)K) == 0,
                              "%s K=%d row %d bytes differ", qk->name, K, m);
            }
        }
        free(x);
        free(ref);
        free(a);
    }
}
END_TEST

/* A random int8 layer of M x K x N on one path: Y against the fp32 product in
 * double, within the worst case of the two roundings per term, and every
 * path's floats bit for bit equal to the scalar one's. */
typedef struct {
    int M, K, N;
    float *x, *w, *b, *res;
    eng__linear l;
    int8_t *wq;
    float *wscale;
    int32_t *wsum;
    double *ref, *bound;   /* X W + b in double, and the int8 error bound */
} layer;

static layer make_layer(int M, int K, int N)
{
    layer L = {.M = M, .K = K, .N = N};
    L.x = malloc((size_t)M * K * sizeof(float));
    L.w = malloc((size_t)K * N * sizeof(float));
    L.b = malloc((size_t)N * sizeof(float));
    L.res = malloc((size_t)M * N * sizeof(float));
    L.wq = malloc(eng__quantized_weight_bytes(K, N));
    L.wscale = malloc((size_t)N * sizeof(float));
    L.wsum = malloc((size_t)N * sizeof(int32_t));
    L.ref = malloc((size_t)M * N * sizeof(double));
    L.bound = malloc((size_t)M * N * sizeof(double));
    for (int i = 0; i < M * K; i++)
        L.x[i] = test_uniform(-2.0f, 2.0f) * (i % 7 == 0 ? 5.0f : 1.0f);
    for (int i = 0; i < K * N; i++)
        L.w[i] = test_uniform(-0.1f, 0.1f);
    for (int i = 0; i < N; i++)
        L.b[i] = test_uniform(-1.0f, 1.0f);
    for (int i = 0; i < M * N; i++)
        L.res[i] = test_uniform(-1.0f, 1.0f);
    ck_assert_int_eq(eng__quantize_weights(L.w, K, N, L.wq, L.wscale, L.wsum), ENG_OK);
    L.l = (eng__linear){.K = K, .N = N, .dtype = ENG_DT_I8, .wq = L.wq, .wscale = L.wscale,
                        .wsum = L.wsum, .b = L.b};
    for (int m = 0; m < M; m++) {
        double mx = 0;
        for (int k = 0; k < K; k++)
            mx = fmax(mx, fabs(L.x[m * K + k]));
        double sx = mx / 127.0;   /* x's rounding error is at most sx/2 */
        for (int n = 0; n < N; n++) {
            double s = L.b[n], e = 0, sw = L.wscale[n];
            for (int k = 0; k < K; k++) {
                double xv = L.x[m * K + k], wv = L.w[(size_t)k * N + n];
                s += xv * wv;
                /* |x'w' - xw| <= |x| dw + |w| dx + dx dw */
                e += fabs(xv) * sw / 2 + fabs(wv) * sx / 2 + sx * sw / 4;
            }
            L.ref[(size_t)m * N + n] = s;
            L.bound[(size_t)m * N + n] = e * (1 + TOL_BOUND_REL) + TOL_BOUND_ABS;
        }
    }
    return L;
}

static void free_layer(layer *L)
{
    free(L->x); free(L->w); free(L->b); free(L->res); free(L->wq); free(L->wscale);
    free(L->wsum); free(L->ref); free(L->bound);
}

static float *run_layer(const layer *L, eng__act act, const float *res)
{
    float *y = malloc((size_t)L->M * L->N * sizeof *y);
    void *scratch = malloc(eng__linear_int8_scratch_bytes(L->M, L->K));
    eng__linear_int8_run(&L->l, L->x, L->M, y, res, act, scratch, eng__kernels_get(), 0,
                         (L->N + 15) / 16);
    free(scratch);
    return y;
}

static void check_layer(int M, int K, int N)
{
    layer L = make_layer(M, K, N);
    const eng__kernels *kern = eng__kernels_get();
    /* Bias fused in the epilogue. */
    float *y = run_layer(&L, ENG_ACT_NONE, NULL);
    for (int i = 0; i < M * N; i++)
        ck_assert_msg(fabs(y[i] - L.ref[i]) <= L.bound[i], "M=%d K=%d N=%d: y[%d] = %g, fp %g, bound %g",
                      M, K, N, i, (double)y[i], L.ref[i], L.bound[i]);
    /* Bias and residual. */
    float *yr = run_layer(&L, ENG_ACT_NONE, L.res);
    for (int i = 0; i < M * N; i++)
        ck_assert(fabs(yr[i] - (L.ref[i] + L.res[i])) <= L.bound[i] + 1e-6);
    /* Bias and GELU, against the library's GELU of the fp reference. */
    float *yg = run_layer(&L, ENG_ACT_GELU, NULL);
    float *g = malloc((size_t)M * N * sizeof *g), *zero = calloc((size_t)N, sizeof *zero);
    for (int i = 0; i < M * N; i++)
        g[i] = (float)L.ref[i];
    kern->bias_act(g, zero, M, N, ENG_ACT_GELU);
    for (int i = 0; i < M * N; i++)
        ck_assert(fabs(yg[i] - g[i]) <= L.bound[i] * GELU_MAX_SLOPE + 1e-6);
    /* Every path's epilogue rounds alike: bit-identical floats. */
    uint8_t *a = malloc((size_t)M * lda_of(K));
    float *sx = malloc((size_t)M * sizeof *sx), *c0 = malloc((size_t)M * N * sizeof *c0),
          *c = malloc((size_t)M * N * sizeof *c);
    eng__qgemm_scalar.quantize(L.x, M, K, a, lda_of(K), sx);
    for (int m = 0; m < M; m++)
        memset(a + m * lda_of(K) + K, 128, lda_of(K) - K);
    eng__qgemm_args ga = {.a = a, .lda = lda_of(K), .b = L.wq, .k = K, .n = N, .sx = sx,
                          .sw = L.wscale, .wsum = L.wsum, .bias = L.b, .c = c0, .ldc = (size_t)N};
    eng__qgemm_run(&eng__qgemm_scalar, &ga, 0, M, 0, (N + 15) / 16);
    for (int i = 0; i < M * N; i++)
        ck_assert_float_eq(c0[i], y[i]);
    for (int isa = 1; isa < ENG_QISA_COUNT; isa++) {
        const eng__qgemm_kernels *qk = eng__qgemm_for((eng__qisa)isa);
        if (!qk)
            continue;
        ga.c = c;
        eng__qgemm_run(qk, &ga, 0, M, 0, (N + 15) / 16);
        ck_assert_msg(memcmp(c, c0, (size_t)M * N * sizeof *c) == 0, "%s epilogue differs", qk->name);
    }
    free(a); free(sx); free(c0); free(c);
    free(y); free(yr); free(yg); free(g); free(zero);
    free_layer(&L);
}

START_TEST(test_linear_vs_fp32)
{
    check_layer(1, 1, 1);
    check_layer(7, 37, 19);
    check_layer(67, 200, 130);    /* two row blocks (33 + 34 rows) */
    check_layer(300, 128, 130);   /* rows past one GEMM row block */
    check_layer(10, 1030, 515);   /* K over three blocks */
}
END_TEST

/* A row's result does not depend on the rows batched with it. */
START_TEST(test_batch_invariance)
{
    layer L = make_layer(300, 96, 160);
    float *all = run_layer(&L, ENG_ACT_GELU, NULL);
    layer one = L;
    for (int m = 0; m < L.M; m += 37) {
        one.M = 1;
        one.x = L.x + (size_t)m * L.K;
        float *y = run_layer(&one, ENG_ACT_GELU, NULL);
        ck_assert(memcmp(y, all + (size_t)m * L.N, (size_t)L.N * sizeof *y) == 0);
        free(y);
    }
    free(all);
    free_layer(&L);
}
END_TEST

/* Which path a ceiling and feature set select, and ENG_ISA's values through
 * dispatch.c's parser, without touching the environment. */
START_TEST(test_dispatch_choice)
{
    const unsigned all = ENG_CPU_AVX2 | ENG_CPU_AVXVNNI | ENG_CPU_AVX512VNNI | ENG_CPU_AMX;
    ck_assert_int_eq(eng__qgemm_choose(ENG_ISA_AMX, all), ENG_QISA_AMX);
    ck_assert_int_eq(eng__qgemm_choose(ENG_ISA_AMX, all & ~ENG_CPU_AMX), ENG_QISA_AVX512VNNI);
    ck_assert_int_eq(eng__qgemm_choose(ENG_ISA_AVX512, all), ENG_QISA_AVX512VNNI);
    ck_assert_int_eq(eng__qgemm_choose(ENG_ISA_AVX2, all), ENG_QISA_AVXVNNI);
    ck_assert_int_eq(eng__qgemm_choose(ENG_ISA_SCALAR, all), ENG_QISA_SCALAR);
    ck_assert_int_eq(eng__qgemm_choose(ENG_ISA_AVX512, ENG_CPU_AVX2), ENG_QISA_AVX2);
    ck_assert_int_eq(eng__qgemm_choose(ENG_ISA_AVX512, ENG_CPU_AVX2 | ENG_CPU_AVXVNNI),
                     ENG_QISA_AVXVNNI);
    ck_assert_int_eq(eng__qgemm_choose(ENG_ISA_AVX2, ENG_CPU_AVX2 | ENG_CPU_AVX512VNNI),
                     ENG_QISA_AVX2);
    ck_assert_int_eq(eng__qgemm_choose(ENG_ISA_AVX512, 0), ENG_QISA_SCALAR);
    ck_assert_int_eq(eng__qgemm_choose(eng__isa_parse_override("scalar", ENG_ISA_AVX512), all),
                     ENG_QISA_SCALAR);
    ck_assert_int_eq(eng__qgemm_choose(eng__isa_parse_override("avx2", ENG_ISA_AVX512), all),
                     ENG_QISA_AVXVNNI);
    ck_assert_int_eq(eng__qgemm_choose(eng__isa_parse_override("avx2", ENG_ISA_AVX512),
                                       ENG_CPU_AVX2),
                     ENG_QISA_AVX2);
    ck_assert_int_eq(eng__qgemm_choose(eng__isa_parse_override("avx512", ENG_ISA_AVX512), all),
                     ENG_QISA_AVX512VNNI);
    ck_assert_int_eq(eng__qgemm_choose(eng__isa_parse_override("avx512", ENG_ISA_AMX), all),
                     ENG_QISA_AVX512VNNI);
    ck_assert_int_eq(eng__qgemm_choose(eng__isa_parse_override("amx", ENG_ISA_AVX512), all),
                     ENG_QISA_AVX512VNNI);
    ck_assert_int_eq(eng__qgemm_choose(eng__isa_parse_override(NULL, ENG_ISA_AVX2), all),
                     ENG_QISA_AVXVNNI);
    /* The path in use is one this CPU can run, under the ENG_ISA ceiling. */
    const eng__qgemm_kernels *qk = eng__qgemm_get();
    ck_assert_ptr_eq(eng__qgemm_for(qk->isa), qk);
    ck_assert_int_eq(qk->isa, eng__qgemm_choose(eng__kernels_get()->isa, eng__cpu_features()));
    ck_assert_ptr_nonnull(eng__qgemm_for(ENG_QISA_SCALAR));
    ck_assert_ptr_null(eng__qgemm_for(ENG_QISA_COUNT));
    printf("qgemm: using %s; runnable:", qk->name);
    for (int isa = 0; isa < ENG_QISA_COUNT; isa++)
        if (eng__qgemm_for((eng__qisa)isa))
            printf(" %s", eng__qisa_str((eng__qisa)isa));
    printf("\n");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qgemm");
    TCase *tc = tcase_create("qgemm");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_dispatch_choice);
    tcase_add_test(tc, test_exact_awkward_shapes);
    tcase_add_test(tc, test_exact_extreme_values);
    tcase_add_test(tc, test_weight_quantizer_bound);
    tcase_add_test(tc, test_activation_quantizers_agree);
    tcase_add_test(tc, test_linear_vs_fp32);
    tcase_add_test(tc, test_batch_invariance);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
