/* test_sgemm.c: the packed fp32 GEMM (kernels/sgemm*.c): the packed layout,
 * the dispatch, and every ISA this CPU runs against a double-precision
 * reference at awkward shapes (tails in M, N and K; K over several K blocks,
 * M over several row blocks), with every epilogue (bias, bias + residual, each
 * activation), row strides wider than the rows, and the padding between rows
 * left untouched. ISAs the CPU lacks are skipped with a message. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgemm.h"
#include "testutil.h"

/* Float rounding of the sums, relative to sum_k |x_k w_k| + |bias| + |res|:
 * a K-term float sum errs by at most about K * 2^-24 of that in the worst
 * case, and far less in practice; 1024 * 6e-8 = 6e-5 covers the largest K. */
#define TOL_SUM_REL 6e-5
/* The vector GELUs' approximations (vmath_coef.h: erf to ~3.4e-7 absolute,
 * exp to ~1 ulp), relative to max(1, |x|). */
#define TOL_ACT_REL 2e-6
/* GELU's slope never exceeds this, so an input error e moves it by <= e * this. */
#define GELU_MAX_SLOPE 1.13
/* What the padding between rows of Y holds before and must hold after. */
#define SENTINEL 12345.0f

static double act_ref(double v, int act)
{
    switch (act) {
    case ENG_ACT_GELU: return 0.5 * v * erfc(-v / sqrt(2.0));
    case ENG_ACT_GELU_TANH:
        return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    case ENG_ACT_RELU: return v < 0 ? 0 : v;
    }
    return v;
}

enum { EPI_BIAS, EPI_RES, EPI_GELU, EPI_GELU_TANH, EPI_RELU, EPI_COUNT };
static const char *const epi_name[EPI_COUNT] = {"bias", "bias+res", "gelu", "gelu_tanh", "relu"};
static int epi_act(int e)
{
    return e == EPI_GELU ? ENG_ACT_GELU
         : e == EPI_GELU_TANH ? ENG_ACT_GELU_TANH
         : e == EPI_RELU ? ENG_ACT_RELU
                         : -1;
}

/* Runs one ISA on one shape and epilogue and checks every element against
 * the double reference, and the padding of Y against the sentinel. Row
 * strides are wider than the rows when wide is set. */
static void check_one(const eng__sgemm_kernels *sk, int M, int N, int K, int epi, int wide)
{
    const size_t ldx = (size_t)K + (wide ? 3 : 0), ldy = (size_t)N + (wide ? 5 : 0);
    float *x = malloc((size_t)M * ldx * sizeof *x), *w = malloc((size_t)K * N * sizeof *w);
    float *bias = malloc((size_t)N * sizeof *bias), *res = NULL;
    float *y = malloc((size_t)M * ldy * sizeof *y);
    float *packed = aligned_alloc(64, eng__sgemm_packed_bytes(K, N));
    ck_assert(x && w && bias && y && packed);
    for (size_t i = 0; i < (size_t)M * ldx; i++)
        x[i] = test_uniform(-1.0f, 1.0f);
    for (size_t i = 0; i < (size_t)K * N; i++)
        w[i] = test_uniform(-1.0f, 1.0f);
    for (int i = 0; i < N; i++)
        bias[i] = test_uniform(-1.0f, 1.0f);
    if (epi == EPI_RES) {
        ck_assert((res = malloc((size_t)M * ldy * sizeof *res)) != NULL);
        for (size_t i = 0; i < (size_t)M * ldy; i++)
            res[i] = 4.0f * test_uniform(-1.0f, 1.0f);
    }
    for (size_t i = 0; i < (size_t)M * ldy; i++)
        y[i] = SENTINEL;
    eng__sgemm_pack(w, K, N, packed);
    const int act = epi_act(epi);
    eng__sgemm_packed(sk, x, M, K, ldx, packed, N, y, ldy, bias, res, act);

    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double s = bias[n], mag = fabs(bias[n]);
            for (int k = 0; k < K; k++) {
                const double t = (double)x[m * ldx + k] * w[(size_t)k * N + n];
                s += t;
                mag += fabs(t);
            }
            if (res) {
                s += res[m * ldy + n];
                mag += fabs(res[m * ldy + n]);
            }
            const double ref = act_ref(s, act), got = y[m * ldy + n];
            double tol = TOL_SUM_REL * mag * (act >= 0 ? GELU_MAX_SLOPE : 1.0);
            if (act == ENG_ACT_GELU || act == ENG_ACT_GELU_TANH)
                tol += TOL_ACT_REL * fmax(1.0, fabs(s));
            if (!(fabs(got - ref) <= tol))
                ck_abort_msg("%s M=%d N=%d K=%d %s%s: Y[%d][%d] = %.9g, reference %.9g (tol %.3g)",
                             eng__isa_str(sk->isa), M, N, K, epi_name[epi], wide ? " wide" : "", m,
                             n, got, ref, tol);
        }
        for (size_t n = (size_t)N; n < ldy; n++)
            if (y[m * ldy + n] != SENTINEL)
                ck_abort_msg("%s M=%d N=%d K=%d: padding Y[%d][%zu] overwritten",
                             eng__isa_str(sk->isa), M, N, K, m, n);
    }
    free(x), free(w), free(bias), free(res), free(y), free(packed);
}

/* Every runnable ISA on one shape, each epilogue, packed and wide strides. */
static void check_shape(int M, int N, int K)
{
    for (int isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AVX512; isa++) {
        const eng__sgemm_kernels *sk = eng__sgemm_for((eng__isa)isa);
        if (!sk)
            continue;
        ck_assert_int_eq(sk->isa, isa);
        for (int e = 0; e < EPI_COUNT; e++)
            check_one(sk, M, N, K, e, (M + N + K + e) % 2);
    }
}

START_TEST(test_isas_available)
{
    ck_assert_ptr_nonnull(eng__sgemm_for(ENG_ISA_SCALAR));
    /* The GEMM tables follow the kernel tables' CPU checks (main notes the
     * ISAs that cannot run as skipped). */
    for (int isa = ENG_ISA_AVX2; isa <= ENG_ISA_AVX512; isa++)
        if (!eng__sgemm_for((eng__isa)isa))
            printf("test_sgemm: skipping %s: this CPU (or its OS) cannot run it\n",
                   eng__isa_str((eng__isa)isa));
    /* The chosen table follows the kernel table's ISA (CPUID and ENG_ISA);
     * fp32 has no AMX form, so the amx level multiplies with AVX-512. */
    const eng__isa isa = eng__kernels_get()->isa;
    ck_assert_ptr_eq(eng__sgemm_get(), eng__sgemm_for(isa));
    ck_assert_int_eq(eng__sgemm_get()->isa, isa == ENG_ISA_AMX ? ENG_ISA_AVX512 : isa);
}
END_TEST

START_TEST(test_pack_layout)
{
    enum { K = 3, N = 19 };
    float w[K * N];
    for (int i = 0; i < K * N; i++)
        w[i] = (float)(i + 1);
    ck_assert_uint_eq(eng__sgemm_packed_bytes(K, N), 2 * K * 16 * sizeof(float));
    ck_assert_uint_eq(eng__sgemm_packed_bytes(0, N), 0);
    ck_assert_uint_eq(eng__sgemm_packed_bytes(K, 0), 0);
    float packed[2 * K * 16];
    memset(packed, 0xff, sizeof packed);
    eng__sgemm_pack(w, K, N, packed);
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < 16; j++) {
                const int n = 16 * p + j;
                ck_assert_float_eq(packed[(p * K + k) * 16 + j], n < N ? w[k * N + n] : 0.0f);
            }
}
END_TEST

/* Unpacking gives back exactly what was packed, for a column count on a
 * panel boundary, one past it and one short of it, and writes nothing past
 * K x N. */
START_TEST(test_unpack_round_trip)
{
    const int shapes[][2] = {{1, 1}, {5, 16}, {7, 17}, {3, 31}, {64, 48}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int K = shapes[s][0], N = shapes[s][1];
        const size_t n = (size_t)K * N;
        float *w = malloc(n * sizeof *w), *back = malloc((n + 1) * sizeof *back);
        float *packed = malloc(eng__sgemm_packed_bytes(K, N));
        ck_assert(w && back && packed);
        for (size_t i = 0; i < n; i++)
            w[i] = (float)i * 0.5f - 3.0f;
        for (size_t i = 0; i < n; i++)
            back[i] = NAN;
        back[n] = 42.0f;
        eng__sgemm_pack(w, K, N, packed);
        eng__sgemm_unpack(packed, K, N, back);
        ck_assert_msg(memcmp(w, back, n * sizeof *w) == 0, "%d x %d differs", K, N);
        ck_assert_float_eq(back[n], 42.0f);
        free(w), free(back), free(packed);
    }
}
END_TEST

START_TEST(test_awkward_shapes)
{
    static const int sizes[] = {1, 3, 15, 16, 17, 31, 33, 47, 48, 49, 63, 64, 65, 255, 256, 257, 384};
    enum { S = sizeof sizes / sizeof *sizes };
    /* Each size in each position, the other two small and odd. */
    for (int i = 0; i < S; i++) {
        check_shape(sizes[i], 33, 17);
        check_shape(7, sizes[i], 49);
        check_shape(13, 65, sizes[i]);
    }
    /* Small mixes of every tail. */
    static const int small[] = {1, 3, 15, 16, 17, 47, 64, 65};
    enum { T = sizeof small / sizeof *small };
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++)
            check_shape(small[i], small[j], small[(i + j) % T]);
}
END_TEST

START_TEST(test_large_shapes)
{
    /* K over several K blocks with a tail, M over several row blocks where
     * the L2 is small (test_row_blocks_bitwise covers them on any L2), N with
     * a partial register tile. */
    check_shape(257, 63, 1024);
    check_shape(65, 1024, 256);
    check_shape(384, 257, 255);
    check_shape(31, 48, 1024);
    check_shape(9, 70, 1100);
}
END_TEST

/* Few rows (up to 64) take their own order, K blocks outside the column
 * tiles, with prefetching (sgemm.h, ENG_ST_PREFETCH); many rows the blocked
 * one. Each row's sums run in the same order either way, so the first rows
 * of a many-row product are bit for bit the few-row product of those rows:
 * M from 1 to past 64, K in two K blocks for few rows and three for many,
 * N with a partial column tile, every epilogue but bias+res (covered by
 * check_one). */
START_TEST(test_few_rows_bitwise)
{
    enum { MBIG = 200, K = 1100, N = 330 };
    float *x = malloc((size_t)MBIG * K * sizeof *x), *w = malloc((size_t)K * N * sizeof *w);
    float *bias = malloc(N * sizeof *bias), *big = malloc((size_t)MBIG * N * sizeof *big);
    float *few = malloc((size_t)MBIG * N * sizeof *few);
    float *packed = aligned_alloc(64, eng__sgemm_packed_bytes(K, N));
    ck_assert(x && w && bias && big && few && packed);
    uint32_t s = 99;
    for (size_t i = 0; i < (size_t)MBIG * K; i++)
        x[i] = (float)((s = s * 1103515245u + 12345u) >> 9) / 4194304.0f - 1.0f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        w[i] = (float)((s = s * 1103515245u + 12345u) >> 9) / 4194304.0f - 1.0f;
    for (int i = 0; i < N; i++)
        bias[i] = (float)i * 0.01f;
    eng__sgemm_pack(w, K, N, packed);
    static const int rows[] = {1, 2, 5, 6, 7, 16, 50, 63, 64, 65};
    for (int isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AVX512; isa++) {
        const eng__sgemm_kernels *sk = eng__sgemm_for((eng__isa)isa);
        if (!sk)
            continue;
        for (int e = 0; e < EPI_COUNT; e++) {
            if (e == EPI_RES)
                continue;
            const eng__act act = (eng__act)epi_act(e);
            eng__sgemm_packed(sk, x, MBIG, K, K, packed, N, big, N, bias, NULL, act);
            for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
                memset(few, 0, (size_t)rows[r] * N * sizeof *few);
                eng__sgemm_packed(sk, x, rows[r], K, K, packed, N, few, N, bias, NULL, act);
                ck_assert_msg(memcmp(few, big, (size_t)rows[r] * N * sizeof *few) == 0,
                              "%s %s M=%d differs from the first rows of M=%d",
                              eng__isa_str(sk->isa), epi_name[e], rows[r], MBIG);
            }
        }
    }
    free(x), free(w), free(bias), free(big), free(few), free(packed);
}
END_TEST

/* Many rows go in row blocks that hold their partial sums for every column
 * (kernels/sgemm.c sizes them from the L2): with two K blocks and N = 1000,
 * 390 rows make 3 blocks at 2 MiB of L2 and 10 at 512 KiB. Each row's sums
 * run in the same order in any block, so every row of the product is bit
 * for bit what the few-row order gives for a run of 61 rows (runs that cut
 * across register tiles and blocks). */
START_TEST(test_row_blocks_bitwise)
{
    enum { M = 390, K = 800, N = 1000, RUN = 61 };
    float *x = malloc((size_t)M * K * sizeof *x), *w = malloc((size_t)K * N * sizeof *w);
    float *bias = malloc(N * sizeof *bias), *big = malloc((size_t)M * N * sizeof *big);
    float *few = malloc((size_t)RUN * N * sizeof *few);
    float *packed = aligned_alloc(64, eng__sgemm_packed_bytes(K, N));
    ck_assert(x && w && bias && big && few && packed);
    for (size_t i = 0; i < (size_t)M * K; i++)
        x[i] = test_uniform(-1.0f, 1.0f);
    for (size_t i = 0; i < (size_t)K * N; i++)
        w[i] = test_uniform(-1.0f, 1.0f);
    for (int i = 0; i < N; i++)
        bias[i] = test_uniform(-1.0f, 1.0f);
    eng__sgemm_pack(w, K, N, packed);
    for (int isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AVX512; isa++) {
        const eng__sgemm_kernels *sk = eng__sgemm_for((eng__isa)isa);
        if (!sk)
            continue;
        eng__sgemm_packed(sk, x, M, K, K, packed, N, big, N, bias, NULL, ENG_ACT_GELU);
        for (int r = 0; r < M; r += RUN) {
            const int n = M - r < RUN ? M - r : RUN;
            eng__sgemm_packed(sk, x + (size_t)r * K, n, K, K, packed, N, few, N, bias, NULL,
                              ENG_ACT_GELU);
            ck_assert_msg(memcmp(few, big + (size_t)r * N, (size_t)n * N * sizeof *few) == 0,
                          "%s rows %d..%d of M=%d differ from those rows alone",
                          eng__isa_str(sk->isa), r, r + n - 1, M);
        }
    }
    free(x), free(w), free(bias), free(big), free(few), free(packed);
}
END_TEST

int main(void)
{
    test_note_missing_isas();
    Suite *s = suite_create("sgemm");
    TCase *tc = tcase_create("sgemm");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_isas_available);
    tcase_add_test(tc, test_pack_layout);
    tcase_add_test(tc, test_unpack_round_trip);
    tcase_add_test(tc, test_awkward_shapes);
    tcase_add_test(tc, test_large_shapes);
    tcase_add_test(tc, test_row_blocks_bitwise);
    tcase_add_test(tc, test_few_rows_bitwise);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
