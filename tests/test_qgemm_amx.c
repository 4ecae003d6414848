/* test_qgemm_amx.c: the AMX int8 GEMM (kernels/qgemm_amx.c) and the tile
 * set-up around it (kernels/cpu.c). test_qgemm runs every path on its shapes;
 * this program adds what only AMX has: exact int32 equality with the scalar
 * reference on shapes around the tile sizes (16 rows, 16 columns, 64 k) and
 * its 32 x 32 register tile, K tails, strided operands and sub-ranges, the
 * fused epilogue bit for bit equal to the AVX512-VNNI one's, GEMMs on threads
 * that never set up their tiles explicitly, and the fallback when Linux
 * refuses the tile permission (simulated with ENG_AMX_DENY=1). Without AMX
 * (CPU, OS or permission) it prints why and exits 77. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu.h"
#include "quantize.h"
#include "qgemm.h"
#include "testutil.h"

/* Random int8 weights in [-127, 127] (a 127 in the first row, so the
 * quantizer's scale is 1 and q == w) packed by the real quantizer, and the
 * plain K x N copy the reference reads. */
typedef struct {
    int K, N;
    int8_t *w, *packed;
    float *scale;
    int32_t *wsum;
} qweights;

static qweights make_weights(int K, int N)
{
    qweights q = {K, N, malloc((size_t)K * N), malloc(eng__quantized_weight_bytes(K, N)),
                  malloc((size_t)N * sizeof(float)), malloc((size_t)N * sizeof(int32_t))};
    float *wf = malloc((size_t)K * N * sizeof *wf);
    for (size_t i = 0; i < (size_t)K * N; i++) {
        q.w[i] = i < (size_t)N ? 127 : (int8_t)((int)(test_rand_u32() % 255u) - 127);
        wf[i] = q.w[i];
    }
    ck_assert_int_eq(eng__quantize_weights(wf, K, N, q.packed, q.scale, q.wsum), ENG_OK);
    free(wf);
    return q;
}

static void free_weights(qweights *q)
{
    free(q->w), free(q->packed), free(q->scale), free(q->wsum);
}

/* M rows of lda bytes: K random bytes, then 128 (the padding the callers
 * write) up to a multiple of 4, then a guard that the kernel must not read
 * into its sums (it would change them if it did, since it is not 128). */
static uint8_t *make_acts(int M, int K, size_t lda)
{
    uint8_t *a = malloc((size_t)M * lda);
    const size_t k4 = (size_t)(K + 3) / 4 * 4;
    for (int m = 0; m < M; m++)
        for (size_t k = 0; k < lda; k++)
            a[m * lda + k] = (int)k < K ? (uint8_t)(test_rand_u32() & 255u) : k < k4 ? 128 : 7;
    return a;
}

static int32_t reference(const uint8_t *a, size_t lda, const qweights *q, int m, int n)
{
    int32_t s = 0;
    for (int k = 0; k < q->K; k++)
        s += (int32_t)a[m * lda + k] * q->w[(size_t)k * q->N + n];
    return s;
}

/* The AMX path on rows [m0, m1) and panels [p0, p1) of an M x N x K product
 * with row strides lda (activations) and ldc (output, a sentinel elsewhere):
 * raw int32 sums equal to the reference inside the range, the sentinel
 * untouched outside; then with the epilogue, floats bit for bit equal to the
 * AVX512-VNNI path's on the same range. */
static void check_range(int M, int N, int K, size_t lda, size_t ldc, int m0, int m1, int p0,
                        int p1)
{
    const eng__qgemm_kernels *amx = eng__qgemm_for(ENG_QISA_AMX),
                             *vnni = eng__qgemm_for(ENG_QISA_AVX512VNNI);
    ck_assert_ptr_nonnull(amx);
    qweights q = make_weights(K, N);
    uint8_t *a = make_acts(M, K, lda);
    int32_t *c = malloc((size_t)M * ldc * sizeof *c);
    const int32_t sentinel = 0x5a5a5a5a;
    for (size_t i = 0; i < (size_t)M * ldc; i++)
        c[i] = sentinel;
    eng__qgemm_args g = {.a = a, .lda = lda, .b = q.packed, .k = K, .n = N, .c = c, .ldc = ldc};
    eng__qgemm_run(amx, &g, m0, m1, p0, p1);
    const int n0 = 16 * p0, n1 = 16 * p1 < N ? 16 * p1 : N;
    for (int m = 0; m < M; m++)
        for (size_t n = 0; n < ldc; n++) {
            const int inside = m >= m0 && m < m1 && (int)n >= n0 && (int)n < n1;
            const int32_t want = inside ? reference(a, lda, &q, m, (int)n) : sentinel;
            if (c[m * ldc + n] != want)
                ck_abort_msg("amx M=%d N=%d K=%d lda=%zu ldc=%zu rows [%d,%d) panels [%d,%d): "
                             "C[%d][%zu] = %d, expected %d",
                             M, N, K, lda, ldc, m0, m1, p0, p1, m, n, c[m * ldc + n], want);
        }
    if (vnni) {
        float *sx = malloc((size_t)M * sizeof *sx), *bias = malloc((size_t)N * sizeof *bias);
        float *y0 = malloc((size_t)M * ldc * sizeof *y0), *y1 = malloc((size_t)M * ldc * sizeof *y1);
        for (int m = 0; m < M; m++)
            sx[m] = test_uniform(1e-3f, 1e-1f);
        for (int n = 0; n < N; n++)
            bias[n] = test_uniform(-1.0f, 1.0f);
        memset(y0, 0, (size_t)M * ldc * sizeof *y0);
        memset(y1, 0, (size_t)M * ldc * sizeof *y1);
        g.sx = sx, g.sw = q.scale, g.wsum = q.wsum, g.bias = bias;
        g.c = y0;
        eng__qgemm_run(vnni, &g, m0, m1, p0, p1);
        g.c = y1;
        eng__qgemm_run(amx, &g, m0, m1, p0, p1);
        ck_assert_msg(memcmp(y0, y1, (size_t)M * ldc * sizeof *y0) == 0,
                      "amx M=%d N=%d K=%d: epilogue differs from avx512vnni", M, N, K);
        free(sx), free(bias), free(y0), free(y1);
    }
    free(a), free(c);
    free_weights(&q);
}

static void check_shape(int M, int N, int K)
{
    const size_t lda = (size_t)(K + 3) / 4 * 4;
    check_range(M, N, K, lda, (size_t)N, 0, M, 0, (N + 15) / 16);
}

START_TEST(test_amx_exact_awkward_shapes)
{
    static const int sizes[] = {1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255};
    enum { S = sizeof sizes / sizeof *sizes };
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++)
            for (int k = 0; k < S; k++)
                check_shape(sizes[i], sizes[j], sizes[k]);
}
END_TEST

/* K across several K blocks (partial sums parked in C and resumed) with and
 * without a tail step, and M across several row blocks. */
START_TEST(test_amx_exact_long_k)
{
    check_shape(33, 40, 4096);   /* one K block of 1024 k4 steps exactly */
    check_shape(33, 40, 4100);   /* two blocks, the second one step */
    check_shape(17, 33, 9001);   /* three blocks and a K tail */
    check_shape(130, 70, 3072);  /* BERT's FFN-down K */
    check_shape(300, 48, 130);
}
END_TEST

/* Several of run_strips' column blocks (kernels/qgemm.c: 1 MiB of weights
 * each, 20 panels at K = 3072), the last one partial, under row strips
 * with a short last one (run_strips takes calls of more than 128 rows). */
START_TEST(test_amx_column_blocks)
{
    check_shape(140, 700, 3072);
}
END_TEST

START_TEST(test_amx_strided)
{
    /* Row strides past the data (the guard bytes must not be summed), and
     * row and column sub-ranges that start inside the matrices. */
    check_range(40, 50, 67, 100, 70, 0, 40, 0, 4);
    check_range(70, 100, 130, 200, 130, 5, 66, 1, 6);
    check_range(33, 33, 64, 64 + 4, 35, 17, 33, 2, 3);
    check_range(300, 64, 257, 300, 64, 31, 299, 0, 4);
}
END_TEST

/* New threads, which never called eng__amx_thread_init() themselves, run
 * the AMX GEMM (a tile instruction without the configuration would fault)
 * and get the configuration kernels/cpu.c sets. */
static void *thread_main(void *arg)
{
    (void)arg;
    check_shape(37, 45, 200);
    /* The configuration now loaded: palette 1, 16 rows of 64 bytes each. */
    uint8_t cfg[64] __attribute__((aligned(64)));
    __asm__ volatile("sttilecfg %0" : "=m"(cfg));
    int ok = cfg[0] == 1;
    for (int t = 0; t < 8; t++)
        ok &= cfg[16 + 2 * t] == 64 && cfg[17 + 2 * t] == 0 && cfg[48 + t] == 16;
    return ok ? (void *)1 : NULL;
}

START_TEST(test_amx_new_threads)
{
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thread_main, NULL), 0);
    for (int i = 0; i < 3; i++) {
        void *ok = NULL;
        ck_assert_int_eq(pthread_join(t[i], &ok), 0);
        ck_assert_msg(ok != NULL, "thread %d: tile configuration not as set up", i);
    }
}
END_TEST

/* The child of test_amx_denied, run with ENG_AMX_DENY=1: no permission, so
 * AVX-512 everywhere, the AMX table unavailable, and the int8 GEMM still
 * exact on the VNNI path. */
START_TEST(test_denied_child)
{
    const eng__cpu *c = eng__cpu_get();
    ck_assert(!c->amx_permitted);
    ck_assert_int_eq(c->best, ENG_ISA_AVX512);
    ck_assert_int_eq(c->level, ENG_ISA_AVX512);
    ck_assert_str_eq(eng_isa_name(), "avx512");
    ck_assert_ptr_null(eng__qgemm_for(ENG_QISA_AMX));
    ck_assert_int_eq(eng__qgemm_get()->isa, ENG_QISA_AVX512VNNI);
    qweights q = make_weights(70, 33);
    uint8_t *a = make_acts(20, 70, 72);
    int32_t c32[20 * 33];
    eng__qgemm_args g = {.a = a, .lda = 72, .b = q.packed, .k = 70, .n = 33, .c = c32, .ldc = 33};
    eng__qgemm_run(eng__qgemm_get(), &g, 0, 20, 0, 3);
    for (int m = 0; m < 20; m++)
        for (int n = 0; n < 33; n++)
            ck_assert_int_eq(c32[m * 33 + n], reference(a, 72, &q, m, n));
    free(a);
    free_weights(&q);
}
END_TEST

START_TEST(test_amx_denied)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv("ENG_AMX_DENY", "1", 1);
        unsetenv("ENG_ISA");
        execl("/proc/self/exe", "test_qgemm_amx", "--denied", (char *)NULL);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "with ENG_AMX_DENY=1 the fallback check failed (status %d; its output above)", status);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--denied") == 0) {
        Suite *s = suite_create("qgemm_amx_denied");
        TCase *tc = tcase_create("denied");
        tcase_add_test(tc, test_denied_child);
        suite_add_tcase(s, tc);
        return test_run_suite(s);
    }
    const eng__cpu *c = eng__cpu_get();
    if (c->best < ENG_ISA_AMX) {
        printf("skip: no AMX-INT8 here (CPUID amx_tile %d amx_int8 %d, OS tile state %d, "
               "permission %d)\n",
               c->amx_tile, c->amx_int8, c->os_tile, c->amx_permitted);
        return TEST_SKIP;
    }
    Suite *s = suite_create("qgemm_amx");
    TCase *tc = tcase_create("qgemm_amx");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_amx_exact_awkward_shapes);
    tcase_add_test(tc, test_amx_exact_long_k);
    tcase_add_test(tc, test_amx_column_blocks);
    tcase_add_test(tc, test_amx_strided);
    tcase_add_test(tc, test_amx_new_threads);
    tcase_add_test(tc, test_amx_denied);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
