/* test_kernels.c: the fp32 kernel tables of kernels/kernels.h.
 *
 * Every vector ISA the CPU can run is compared with the scalar table at
 * awkward sizes (tails of every length, several rows, strided softmax rows
 * with guard values past n), and the scalar table is compared with
 * double-precision libm math, the activations over a sweep that includes huge
 * magnitudes, denormals, +-0, +-inf and NaN. ISAs the CPU lacks are skipped
 * with a message. Dispatch is checked through eng__isa_parse_override and by
 * re-running this program with ENG_ISA set (detection runs once per process,
 * so setenv here would come too late).
 *
 * With ENG_KERNEL_BENCH=1 the program first prints rough timings for each ISA
 * (GELU over 32x128x1536 floats, softmax, layernorm); nothing is asserted. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "kernels.h"
#include "testutil.h"

/* Vector softmax against scalar: relative per element; a few ulp of exp plus
 * the fused multiply-add in the vector exponent's argument. */
#define TOL_SOFTMAX_REL 4e-6
/* Scalar softmax against double: the float rounding of scale*x - max (whose
 * magnitude reaches ~16 here) moves exp by up to |arg| * 2^-24. */
#define TOL_SOFTMAX_REF_REL 4e-6
/* Softmax outputs below this are compared absolutely (relative error of tiny
 * probabilities near underflow is meaningless). */
#define TOL_SOFTMAX_ABS 1e-30
/* Layernorm outputs (|y| up to ~5): vector against scalar and scalar against
 * double; the vector versions' fp32 lane sums of up to 3072 terms stay within
 * ~6e-7 relative of the exact mean and variance. */
#define TOL_LAYERNORM_ABS 3e-6
/* GELU (both forms), any ISA against double: |got - ref| <= ABS + REL |ref|. */
#define TOL_GELU_ABS 1e-6
#define TOL_GELU_REL 1e-6
/* Vector GELU against scalar GELU: both within the above of the truth. */
#define TOL_GELU_VS_SCALAR_ABS 2e-6
#define TOL_GELU_VS_SCALAR_REL 2e-6

static const int sizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 255,
                            256, 257, 384, 1000, 1024, 1536, 3072};
static const int row_counts[] = {1, 2, 5};
#define N_SIZES ((int)(sizeof sizes / sizeof sizes[0]))
#define N_ROWS ((int)(sizeof row_counts / sizeof row_counts[0]))

static float *alloc_floats(size_t n)
{
    float *p = malloc(n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static float *random_floats(size_t n, float lo, float hi)
{
    float *p = alloc_floats(n);
    for (size_t i = 0; i < n; i++)
        p[i] = test_uniform(lo, hi);
    return p;
}

static float *copy_floats(const float *src, size_t n)
{
    float *p = alloc_floats(n);
    memcpy(p, src, n * sizeof *p);
    return p;
}

/* The table for an ISA, or NULL after saying the CPU cannot run it. */
static const eng__kernels *kernels_or_skip(int isa, const char *test)
{
    const eng__kernels *k = eng__kernels_for((eng__isa)isa);
    if (!k)
        printf("skip: %s: this CPU cannot run %s\n", test, eng__isa_str((eng__isa)isa));
    return k;
}

/* Whether got matches want within abs + rel |want|; NaN matches only NaN and
 * an infinity only the same infinity. */
static int close_enough(double got, double want, double abs_tol, double rel_tol)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got))
        return got == want;
    return fabs(got - want) <= abs_tol + rel_tol * fabs(want);
}

/* Asserts that got[i] is close to want[i] for all i, naming the first
 * offender. */
static void assert_close(const float *got, const float *want, size_t len, double abs_tol,
                         double rel_tol, const char *what, const char *isa, int rows, int n)
{
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(close_enough(got[i], want[i], abs_tol, rel_tol),
                      "%s %s rows=%d n=%d: element %zu is %.9g, expected %.9g", what, isa, rows,
                      n, i, (double)got[i], (double)want[i]);
}

/* ---- dispatch ---------------------------------------------------------- */

static eng__isa best_isa(void)
{
    eng__isa best = ENG_ISA_SCALAR;
    for (int isa = ENG_ISA_AVX2; isa <= ENG_ISA_AMX; isa++)
        if (eng__kernels_for((eng__isa)isa))
            best = (eng__isa)isa;
    return best;
}

/* What cpu.c found hangs together: each level needs its CPUID bits and the
 * OS state, AMX the permission too, and ENG_ISA only lowers. */
START_TEST(test_cpu_features)
{
    const eng__cpu *c = eng__cpu_get();
    ck_assert_ptr_eq(c, eng__cpu_get());
    ck_assert_int_eq(c->best, best_isa());
    ck_assert_int_le(c->level, c->best);
    ck_assert_int_eq(eng__kernels_get()->isa, c->level);
    if (c->best >= ENG_ISA_AVX2)
        ck_assert(c->avx2 && c->fma && c->f16c && c->os_ymm);
    if (c->best >= ENG_ISA_AVX512)
        ck_assert(c->avx512 && c->os_zmm);
    if (c->best >= ENG_ISA_AMX)
        ck_assert(c->amx_tile && c->amx_int8 && c->os_tile && c->amx_permitted);
    else
        ck_assert(!(c->amx_tile && c->amx_int8 && c->os_tile && c->amx_permitted &&
                    c->avx512 && c->os_zmm));
    printf("note: cpu: avx2 %d avx512 %d avx512_vnni %d avx_vnni %d avx512_bf16 %d amx_tile %d "
           "amx_int8 %d amx_bf16 %d; OS ymm %d zmm %d tile %d; AMX permitted %d\n",
           c->avx2, c->avx512, c->avx512_vnni, c->avx_vnni, c->avx512_bf16, c->amx_tile,
           c->amx_int8, c->amx_bf16, c->os_ymm, c->os_zmm, c->os_tile, c->amx_permitted);
}
END_TEST

START_TEST(test_tables)
{
    const eng__kernels *scalar = eng__kernels_for(ENG_ISA_SCALAR);
    ck_assert_ptr_nonnull(scalar);
    ck_assert_int_eq(scalar->isa, ENG_ISA_SCALAR);
    for (int isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AMX; isa++) {
        const eng__kernels *k = eng__kernels_for((eng__isa)isa);
        if (!k) {
            printf("note: this CPU cannot run %s\n", eng__isa_str((eng__isa)isa));
            continue;
        }
        ck_assert_int_eq(k->isa, isa);
        ck_assert(k->softmax && k->argmax && k->layernorm && k->bias_act && k->bias_residual &&
                  k->wino_input[0] && k->wino_input[1] && k->wino_output[0] &&
                  k->wino_output[1] && k->resize_h && k->resize_v);
    }
    const eng__kernels *chosen = eng__kernels_get();
    ck_assert_ptr_nonnull(chosen);
    ck_assert_ptr_eq(chosen, eng__kernels_get());
    ck_assert_int_le(chosen->isa, best_isa());
    ck_assert_ptr_null(eng__kernels_for((eng__isa)7));
    ck_assert_str_eq(eng__isa_str(ENG_ISA_SCALAR), "scalar");
    ck_assert_str_eq(eng__isa_str(ENG_ISA_AVX2), "avx2");
    ck_assert_str_eq(eng__isa_str(ENG_ISA_AVX512), "avx512");
    ck_assert_str_eq(eng__isa_str(ENG_ISA_AMX), "amx");
    ck_assert_str_eq(eng__isa_str((eng__isa)7), "unknown");
    printf("note: kernels in use: %s (best this CPU can run: %s)\n", eng__isa_str(chosen->isa),
           eng__isa_str(best_isa()));
}
END_TEST

START_TEST(test_parse_override)
{
    ck_assert_int_eq(eng__isa_parse_override(NULL, ENG_ISA_AVX512), ENG_ISA_AVX512);
    ck_assert_int_eq(eng__isa_parse_override("", ENG_ISA_AVX2), ENG_ISA_AVX2);
    ck_assert_int_eq(eng__isa_parse_override("scalar", ENG_ISA_AVX512), ENG_ISA_SCALAR);
    ck_assert_int_eq(eng__isa_parse_override("avx2", ENG_ISA_AVX512), ENG_ISA_AVX2);
    ck_assert_int_eq(eng__isa_parse_override("AVX2", ENG_ISA_AVX512), ENG_ISA_AVX2);
    ck_assert_int_eq(eng__isa_parse_override("avx512", ENG_ISA_AVX512), ENG_ISA_AVX512);
    ck_assert_int_eq(eng__isa_parse_override("avx512", ENG_ISA_AMX), ENG_ISA_AVX512);
    ck_assert_int_eq(eng__isa_parse_override("AMX", ENG_ISA_AMX), ENG_ISA_AMX);
    ck_assert_int_eq(eng__isa_parse_override(NULL, ENG_ISA_AMX), ENG_ISA_AMX);
    /* Never above what the CPU can run. */
    ck_assert_int_eq(eng__isa_parse_override("amx", ENG_ISA_AVX512), ENG_ISA_AVX512);
    ck_assert_int_eq(eng__isa_parse_override("avx512", ENG_ISA_AVX2), ENG_ISA_AVX2);
    ck_assert_int_eq(eng__isa_parse_override("avx2", ENG_ISA_SCALAR), ENG_ISA_SCALAR);
    /* Unknown values fall back to the best. */
    ck_assert_int_eq(eng__isa_parse_override("sse4", ENG_ISA_AVX2), ENG_ISA_AVX2);
    ck_assert_int_eq(eng__isa_parse_override("avx2 ", ENG_ISA_AVX512), ENG_ISA_AVX512);
}
END_TEST

/* Runs this program again with ENG_ISA=value (unset when NULL), ENG_AMX_DENY
 * =1 when deny, and --print-isa, and returns the ISA name it printed, in a
 * static buffer. */
static const char *child_isa_deny(const char *value, int deny)
{
    static char out[64];
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        if (value)
            setenv("ENG_ISA", value, 1);
        else
            unsetenv("ENG_ISA");
        if (deny)
            setenv("ENG_AMX_DENY", "1", 1);
        else
            unsetenv("ENG_AMX_DENY");
        execl("/proc/self/exe", "test_kernels", "--print-isa", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t got;
    while (len + 1 < sizeof out && (got = read(fd[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)got;
    close(fd[0]);
    out[len] = '\0';
    out[strcspn(out, "\n")] = '\0';
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child with ENG_ISA=%s failed", value ? value : "(unset)");
    return out;
}

static const char *child_isa(const char *value) { return child_isa_deny(value, 0); }

START_TEST(test_env_override)
{
    const eng__isa best = best_isa();
    const char *values[] = {"scalar", "avx2", "avx512", "amx", "AVX2", "bogus", ""};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        const char *want = eng__isa_str(eng__isa_parse_override(values[i], best));
        ck_assert_msg(strcmp(child_isa(values[i]), want) == 0, "ENG_ISA=%s chose %s, expected %s",
                      values[i], child_isa(values[i]), want);
    }
    ck_assert_str_eq(child_isa(NULL), eng__isa_str(best));
    ck_assert_str_eq(child_isa("scalar"), "scalar");
}
END_TEST

/* A refused tile permission (simulated with ENG_AMX_DENY=1, which cpu.c
 * treats as Linux saying no) leaves AVX-512, whatever ENG_ISA asks. */
START_TEST(test_amx_denied)
{
    const eng__isa best = best_isa();
    const eng__isa fallback = best == ENG_ISA_AMX ? ENG_ISA_AVX512 : best;
    if (best != ENG_ISA_AMX)
        printf("note: no AMX here: ENG_AMX_DENY=1 can only be checked to change nothing\n");
    ck_assert_str_eq(child_isa_deny(NULL, 1), eng__isa_str(fallback));
    ck_assert_str_eq(child_isa_deny("amx", 1), eng__isa_str(fallback));
    ck_assert_str_eq(child_isa_deny("avx2", 1),
                     eng__isa_str(eng__isa_parse_override("avx2", fallback)));
}
END_TEST

/* ---- softmax ----------------------------------------------------------- */

/* Fills rows x ld with values in [-8, 8), the padding past n with a guard. */
#define GUARD 12345.0f
static float *softmax_input(int rows, int n, int ld)
{
    float *x = alloc_floats((size_t)rows * ld);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < ld; i++)
            x[(size_t)r * ld + i] = i < n ? test_uniform(-8.0f, 8.0f) : GUARD;
    return x;
}

START_TEST(test_softmax_isa)
{
    const eng__kernels *k = kernels_or_skip(_i, "softmax"), *s = eng__kernels_for(ENG_ISA_SCALAR);
    if (!k)
        return;
    const float scales[] = {1.0f, 0.125f};
    for (int si = 0; si < N_SIZES; si++)
        for (int ri = 0; ri < N_ROWS; ri++)
            for (int ci = 0; ci < 2; ci++) {
                const int n = sizes[si], rows = row_counts[ri], ld = n + 5;
                float *x = softmax_input(rows, n, ld);
                /* Mask some scores as attention does, in one row all of them. */
                for (int i = 0; i < n; i += 3)
                    x[i] = -INFINITY;
                if (rows > 1)
                    for (int i = 0; i < n; i++)
                        x[ld + i] = -INFINITY;
                float *want = copy_floats(x, (size_t)rows * ld);
                s->softmax(want, rows, n, ld, scales[ci]);
                k->softmax(x, rows, n, ld, scales[ci]);
                assert_close(x, want, (size_t)rows * ld, TOL_SOFTMAX_ABS, TOL_SOFTMAX_REL,
                             "softmax", eng__isa_str(k->isa), rows, n);
                for (int r = 0; r < rows; r++)
                    for (int i = n; i < ld; i++)
                        ck_assert_float_eq(x[(size_t)r * ld + i], GUARD);
                free(x);
                free(want);
            }
}
END_TEST

START_TEST(test_softmax_scalar_vs_double)
{
    const eng__kernels *s = eng__kernels_for(ENG_ISA_SCALAR);
    for (int si = 0; si < N_SIZES; si++) {
        const int n = sizes[si], rows = 3;
        const float scale = 0.125f * (float)(si % 3 + 1);
        float *x = softmax_input(rows, n, n);
        float *y = copy_floats(x, (size_t)rows * n);
        float *want = alloc_floats((size_t)rows * n);
        s->softmax(y, rows, n, n, scale);
        for (int r = 0; r < rows; r++) {
            const float *xr = x + (size_t)r * n;
            double m = -INFINITY, sum = 0.0;
            for (int i = 0; i < n; i++)
                m = fmax(m, (double)scale * xr[i]);
            for (int i = 0; i < n; i++)
                sum += exp((double)scale * xr[i] - m);
            for (int i = 0; i < n; i++)
                want[(size_t)r * n + i] = (float)(exp((double)scale * xr[i] - m) / sum);
        }
        assert_close(y, want, (size_t)rows * n, TOL_SOFTMAX_ABS, TOL_SOFTMAX_REF_REL, "softmax",
                     "scalar vs double", rows, n);
        free(x);
        free(y);
        free(want);
    }
}
END_TEST

START_TEST(test_softmax_edges)
{
    const eng__kernels *k = kernels_or_skip(_i, "softmax edges");
    if (!k)
        return;
    float one[1] = {-3.0f};
    k->softmax(one, 1, 1, 1, 1.0f);
    ck_assert_float_eq(one[0], 1.0f);
    /* A fully masked row becomes zeros, not NaN. */
    for (int si = 0; si < N_SIZES; si++) {
        const int n = sizes[si];
        float *x = alloc_floats((size_t)n);
        for (int i = 0; i < n; i++)
            x[i] = -INFINITY;
        k->softmax(x, 1, n, n, 0.125f);
        for (int i = 0; i < n; i++)
            ck_assert_msg(x[i] == 0.0f, "%s n=%d: masked row gave %g", eng__isa_str(k->isa), n,
                          (double)x[i]);
        /* One unmasked score takes all the mass. */
        for (int i = 0; i < n; i++)
            x[i] = -INFINITY;
        x[n - 1] = 40.0f;
        k->softmax(x, 1, n, n, 1.0f);
        for (int i = 0; i < n; i++)
            ck_assert_float_eq(x[i], i == n - 1 ? 1.0f : 0.0f);
        /* Large scores do not overflow: the maximum is subtracted. */
        for (int i = 0; i < n; i++)
            x[i] = 1000.0f + (float)(i % 2);
        k->softmax(x, 1, n, n, 1.0f);
        double sum = 0.0;
        for (int i = 0; i < n; i++) {
            ck_assert(isfinite(x[i]));
            sum += x[i];
        }
        ck_assert_double_eq_tol(sum, 1.0, 1e-5);
        free(x);
    }
}
END_TEST

/* ---- argmax ------------------------------------------------------------ */

START_TEST(test_argmax)
{
    const eng__kernels *k = kernels_or_skip(_i, "argmax");
    if (!k)
        return;
    const char *isa = eng__isa_str(k->isa);
    for (int si = 0; si < N_SIZES; si++) {
        const int n = sizes[si];
        float *x = random_floats((size_t)n, -1.0f, 1.0f);
        const int positions[] = {0, n / 2, n - 1, n > 17 ? 17 : n - 1};
        for (int p = 0; p < 4; p++) {
            const int pos = positions[p];
            float *y = copy_floats(x, (size_t)n);
            y[pos] = 5.0f;
            ck_assert_msg(k->argmax(y, n) == pos, "%s n=%d: max at %d", isa, n, pos);
            /* Ties: the first index wins, whatever lane holds the later one. */
            for (int j = pos + 1; j < n; j += 7)
                y[j] = 5.0f;
            ck_assert_msg(k->argmax(y, n) == pos, "%s n=%d: tie, first at %d", isa, n, pos);
            /* NaN never wins over a number. */
            for (int j = 0; j < n; j++)
                if (j != pos)
                    y[j] = NAN;
            ck_assert_msg(k->argmax(y, n) == pos, "%s n=%d: NaNs, number at %d", isa, n, pos);
            y[pos] = -INFINITY;
            ck_assert_msg(k->argmax(y, n) == pos, "%s n=%d: NaNs, -inf at %d", isa, n, pos);
            y[pos] = NAN;
            ck_assert_msg(k->argmax(y, n) == 0, "%s n=%d: all NaN", isa, n);
            free(y);
        }
        ck_assert_int_eq(k->argmax(x, n), eng__kernels_for(ENG_ISA_SCALAR)->argmax(x, n));
        for (int j = 0; j < n; j++)
            x[j] = -INFINITY;
        ck_assert_int_eq(k->argmax(x, n), 0);
        free(x);
    }
}
END_TEST

/* ---- layernorm --------------------------------------------------------- */

START_TEST(test_layernorm_isa)
{
    const eng__kernels *k = kernels_or_skip(_i, "layernorm"), *s = eng__kernels_for(ENG_ISA_SCALAR);
    if (!k)
        return;
    for (int si = 0; si < N_SIZES; si++)
        for (int ri = 0; ri < N_ROWS; ri++) {
            const int n = sizes[si], rows = row_counts[ri];
            const size_t len = (size_t)rows * n;
            /* An offset mean, as hidden states have, tests the two-pass variance. */
            float *x = random_floats(len, 2.0f, 8.0f);
            float *g = random_floats((size_t)n, 0.5f, 1.5f);
            float *b = random_floats((size_t)n, -0.5f, 0.5f);
            float *want = alloc_floats(len), *y = alloc_floats(len);
            s->layernorm(want, x, g, b, rows, n, 1e-12f);
            k->layernorm(y, x, g, b, rows, n, 1e-12f);
            assert_close(y, want, len, TOL_LAYERNORM_ABS, 0.0, "layernorm", eng__isa_str(k->isa),
                         rows, n);
            /* In place gives the same. */
            k->layernorm(x, x, g, b, rows, n, 1e-12f);
            ck_assert_mem_eq(x, y, len * sizeof *x);
            free(x);
            free(g);
            free(b);
            free(want);
            free(y);
        }
}
END_TEST

START_TEST(test_layernorm_scalar_vs_double)
{
    const eng__kernels *s = eng__kernels_for(ENG_ISA_SCALAR);
    const float eps_values[] = {1e-12f, 1e-5f};
    for (int si = 0; si < N_SIZES; si++) {
        const int n = sizes[si], rows = 2;
        const float eps = eps_values[si % 2];
        float *x = random_floats((size_t)rows * n, -3.0f, 5.0f);
        float *g = random_floats((size_t)n, 0.5f, 1.5f);
        float *b = random_floats((size_t)n, -0.5f, 0.5f);
        float *y = alloc_floats((size_t)rows * n), *want = alloc_floats((size_t)rows * n);
        s->layernorm(y, x, g, b, rows, n, eps);
        for (int r = 0; r < rows; r++) {
            const float *xr = x + (size_t)r * n;
            double mean = 0.0, var = 0.0;
            for (int i = 0; i < n; i++)
                mean += xr[i];
            mean /= n;
            for (int i = 0; i < n; i++)
                var += (xr[i] - mean) * (xr[i] - mean);
            var /= n;
            for (int i = 0; i < n; i++)
                want[(size_t)r * n + i] = (float)((xr[i] - mean) / sqrt(var + eps) * g[i] + b[i]);
        }
        assert_close(y, want, (size_t)rows * n, TOL_LAYERNORM_ABS, 0.0, "layernorm",
                     "scalar vs double", rows, n);
        free(x);
        free(g);
        free(b);
        free(y);
        free(want);
    }
    /* A constant row normalises to b (variance 0, eps keeps it finite). */
    float x[5] = {3, 3, 3, 3, 3}, g[5] = {1, 2, 3, 4, 5}, b[5] = {0.5f, 0, -1, 2, 0}, y[5];
    for (int isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AVX512; isa++) {
        const eng__kernels *k = eng__kernels_for((eng__isa)isa);
        if (!k)
            continue;
        k->layernorm(y, x, g, b, 1, 5, 1e-5f);
        for (int i = 0; i < 5; i++)
            ck_assert_float_eq(y[i], b[i]);
    }
}
END_TEST

/* ---- activations ------------------------------------------------------- */

static double gelu_erf_ref(double x)
{
    return x == -INFINITY ? 0.0 : 0.5 * x * erfc(-x / sqrt(2.0));
}

static double gelu_tanh_ref(double x)
{
    if (x == -INFINITY)
        return 0.0;
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

/* HF's quick_gelu: x * sigmoid(1.702 x). */
static double quick_gelu_ref(double x)
{
    if (x == -INFINITY)
        return 0.0;
    return x / (1.0 + exp(-1.702 * x));
}

static double relu_ref(double x)
{
    return x < 0.0 ? 0.0 : x;
}

/* The activation sweep: a fine grid over [-12, 12], magnitudes from the
 * smallest denormal to FLT_MAX of both signs, and +-0, +-inf, NaN. */
static float *act_sweep(int *len)
{
    const int grid = 48001;
    float *x = alloc_floats((size_t)grid + 2 * 90 + 8);
    int n = 0;
    for (int i = 0; i < grid; i++)
        x[n++] = -12.0f + 24.0f * (float)i / (float)(grid - 1);
    for (int e = -45; e <= 38; e++) {
        float m = e == 38 ? FLT_MAX : (float)pow(10.0, e) * 1.7f;
        x[n++] = m;
        x[n++] = -m;
    }
    const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MIN, -FLT_MIN, 1e-40f};
    for (int i = 0; i < 8; i++)
        x[n++] = specials[i];
    *len = n;
    return x;
}

START_TEST(test_activation_vs_double)
{
    const eng__kernels *k = kernels_or_skip(_i, "activation vs double");
    if (!k)
        return;
    int n;
    float *x = act_sweep(&n);
    float *zero = calloc((size_t)n, sizeof *zero);
    ck_assert_ptr_nonnull(zero);
    float *y = alloc_floats((size_t)n);
    const struct {
        eng__act act;
        double (*ref)(double);
        double abs, rel;
        const char *name;
    } acts[] = {
        {ENG_ACT_GELU, gelu_erf_ref, TOL_GELU_ABS, TOL_GELU_REL, "gelu"},
        {ENG_ACT_GELU_TANH, gelu_tanh_ref, TOL_GELU_ABS, TOL_GELU_REL, "gelu_tanh"},
        {ENG_ACT_RELU, relu_ref, 0.0, 0.0, "relu"},
        {ENG_ACT_QUICK_GELU, quick_gelu_ref, TOL_GELU_ABS, TOL_GELU_REL, "quick_gelu"},
    };
    for (int a = 0; a < 4; a++) {
        memcpy(y, x, (size_t)n * sizeof *y);
        k->bias_act(y, zero, 1, n, acts[a].act);
        for (int i = 0; i < n; i++) {
            ck_assert_msg(close_enough(y[i], acts[a].ref(x[i]), acts[a].abs, acts[a].rel),
                          "%s %s(%.9g) = %.9g, expected %.9g", eng__isa_str(k->isa), acts[a].name,
                          (double)x[i], (double)y[i], acts[a].ref(x[i]));
            /* All three keep the sign of x (or give 0), however small the value. */
            ck_assert_msg(!(x[i] < 0.0f && y[i] > 0.0f) && !(x[i] > 0.0f && y[i] < 0.0f),
                          "%s %s(%.9g) = %.9g has the wrong sign", eng__isa_str(k->isa),
                          acts[a].name, (double)x[i], (double)y[i]);
        }
    }
    free(x);
    free(zero);
    free(y);
}
END_TEST

START_TEST(test_activation_isa)
{
    const eng__kernels *k = kernels_or_skip(_i, "activation"), *s = eng__kernels_for(ENG_ISA_SCALAR);
    if (!k)
        return;
    for (int si = 0; si < N_SIZES; si++)
        for (int ri = 0; ri < N_ROWS; ri++)
            for (int act = ENG_ACT_GELU; act <= ENG_ACT_QUICK_GELU; act++) {
                const int n = sizes[si], rows = row_counts[ri];
                const size_t len = (size_t)rows * n;
                float *x = random_floats(len, -10.0f, 10.0f);
                float *bias = random_floats((size_t)n, -1.0f, 1.0f);
                float *want = copy_floats(x, len);
                s->bias_act(want, bias, rows, n, (eng__act)act);
                k->bias_act(x, bias, rows, n, (eng__act)act);
                if (act == ENG_ACT_RELU)
                    ck_assert_mem_eq(x, want, len * sizeof *x);
                else
                    assert_close(x, want, len, TOL_GELU_VS_SCALAR_ABS, TOL_GELU_VS_SCALAR_REL,
                                 act == ENG_ACT_GELU        ? "gelu"
                                 : act == ENG_ACT_QUICK_GELU ? "quick_gelu"
                                                             : "gelu_tanh",
                                 eng__isa_str(k->isa),
                                 rows, n);
                free(x);
                free(bias);
                free(want);
            }
}
END_TEST

/* ---- bias + residual --------------------------------------------------- */

START_TEST(test_residual_isa)
{
    const eng__kernels *k = kernels_or_skip(_i, "bias_residual"), *s = eng__kernels_for(ENG_ISA_SCALAR);
    if (!k)
        return;
    for (int si = 0; si < N_SIZES; si++)
        for (int ri = 0; ri < N_ROWS; ri++) {
            const int n = sizes[si], rows = row_counts[ri];
            const size_t len = (size_t)rows * n;
            float *y = random_floats(len, -4.0f, 4.0f);
            float *bias = random_floats((size_t)n, -1.0f, 1.0f);
            float *res = random_floats(len, -4.0f, 4.0f);
            float *want = copy_floats(y, len), *y2 = copy_floats(y, len);
            s->bias_residual(want, bias, res, rows, n);
            k->bias_residual(y, bias, res, rows, n);
            ck_assert_mem_eq(y, want, len * sizeof *y);
            ck_assert_float_eq(want[len - 1], y2[len - 1] + bias[n - 1] + res[len - 1]);
            /* res == NULL adds the bias only. */
            memcpy(want, y2, len * sizeof *want);
            s->bias_residual(want, bias, NULL, rows, n);
            k->bias_residual(y2, bias, NULL, rows, n);
            ck_assert_mem_eq(y2, want, len * sizeof *y2);
            free(y);
            free(bias);
            free(res);
            free(want);
            free(y2);
        }
}
END_TEST

/* ---- Winograd transforms ------------------------------------------------ */

/* The transforms' matrices (kernels.h), v = B^T d B and y = A^T m A, for
 * output tiles of 2 (t = 0) and 4 (t = 1). */
static const double WINO_BT2[4][4] = { { 1, 0, -1, 0 }, { 0, 1, 1, 0 }, { 0, -1, 1, 0 },
                                       { 0, 1, 0, -1 } };
static const double WINO_AT2[2][4] = { { 1, 1, 1, 0 }, { 0, 1, -1, -1 } };
static const double WINO_BT4[6][6] = { { 4, 0, -5, 0, 1, 0 },  { 0, -4, -4, 1, 1, 0 },
                                       { 0, 4, -4, -1, 1, 0 }, { 0, -2, -1, 2, 1, 0 },
                                       { 0, 2, -1, -2, 1, 0 }, { 0, 4, 0, -5, 0, 1 } };
static const double WINO_AT4[4][6] = { { 1, 1, 1, 1, 1, 0 }, { 0, 1, -1, 2, -2, 0 },
                                       { 0, 1, 1, 4, 4, 0 }, { 0, 1, -1, 8, -8, 1 } };
/* The scalar transforms against the matrix products in double: each output
 * sums at most 36 inputs of |x| <= 4 with coefficients up to 25 (tiles of 4),
 * rounded a few times in fp32. */
#define TOL_WINO_ABS 1e-4
/* A value the kernels must leave alone (past c, or a pixel without output). */
#define WINO_GUARD 12345.0f

static double wino_bt(int t, int i, int j) { return t ? WINO_BT4[i][j] : WINO_BT2[i][j]; }
static double wino_at(int t, int i, int j) { return t ? WINO_AT4[i][j] : WINO_AT2[i][j]; }

/* Runs both transforms of table k for tiles of 2 + 2 t over c channels: v
 * from P = a^2 patch rows (a = 4 + 2 t), y from P rows of m (pixel 1 without
 * output when skip_one), with or without a residual and ReLU. v (P rows) and
 * y (o^2 rows, o = a - 2) are c + 1 floats apart, the last a guard; both are
 * filled with WINO_GUARD first. */
static void wino_run(const eng__kernels *k, int t, const float *d, const float *m,
                     const float *bias, const float *res, int c, int skip_one, int relu,
                     float *v, float *y)
{
    const int a = 4 + 2 * t, o = a - 2;
    const float *dp[36], *rp[16];
    float *yp[16];
    for (int x = 0; x < a * a; x++)
        dp[x] = d + (size_t)x * c;
    for (size_t i = 0; i < (size_t)(a * a) * (c + 1); i++)
        v[i] = WINO_GUARD;
    for (size_t i = 0; i < (size_t)(o * o) * (c + 1); i++)
        y[i] = WINO_GUARD;
    for (int q = 0; q < o * o; q++) {
        rp[q] = res ? res + (size_t)q * c : NULL;   /* no offset on NULL (UBSan) */
        yp[q] = skip_one && q == 1 ? NULL : y + (size_t)q * (c + 1);
    }
    k->wino_input[t](dp, c, v, (size_t)c + 1);
    k->wino_output[t](m, (size_t)c + 1, c, bias, res ? rp : NULL, yp, relu);
}

START_TEST(test_wino_scalar_vs_double)
{
    const eng__kernels *s = eng__kernels_for(ENG_ISA_SCALAR);
    const int c = 17, t = _i, a = 4 + 2 * t, o = a - 2;
    float *d = random_floats(36 * (size_t)c, -4.0f, 4.0f);
    float *m = random_floats(36 * (size_t)(c + 1), -4.0f, 4.0f);
    float *bias = random_floats((size_t)c, -1.0f, 1.0f), *res = random_floats(16 * (size_t)c, -4.0f, 4.0f);
    float *v = alloc_floats(36 * (size_t)(c + 1)), *y = alloc_floats(16 * (size_t)(c + 1));
    wino_run(s, t, d, m, bias, res, c, 0, 0, v, y);
    for (int ch = 0; ch < c; ch++) {
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++) {
                double want = 0;
                for (int p = 0; p < a; p++)
                    for (int q = 0; q < a; q++)
                        want += wino_bt(t, i, p) * d[(size_t)(a * p + q) * c + ch] * wino_bt(t, j, q);
                ck_assert_double_eq_tol(v[(size_t)(a * i + j) * (c + 1) + ch], want, TOL_WINO_ABS);
            }
        for (int i = 0; i < o; i++)
            for (int j = 0; j < o; j++) {
                double want = bias[ch] + res[(size_t)(o * i + j) * c + ch];
                for (int p = 0; p < a; p++)
                    for (int q = 0; q < a; q++)
                        want += wino_at(t, i, p) * m[(size_t)(a * p + q) * (c + 1) + ch] *
                                wino_at(t, j, q);
                ck_assert_double_eq_tol(y[(size_t)(o * i + j) * (c + 1) + ch], want, TOL_WINO_ABS);
            }
    }
    free(d), free(m), free(bias), free(res), free(v), free(y);
}
END_TEST

/* Every vector transform equals the scalar one bit for bit (the same
 * arithmetic in the same order), writes nothing past c nor to a pixel
 * without output, and clamps at zero under ReLU; both tile sizes. */
START_TEST(test_wino_isa)
{
    const eng__kernels *k = kernels_or_skip(_i, "wino"), *s = eng__kernels_for(ENG_ISA_SCALAR);
    if (!k)
        return;
    for (int t = 0; t < 2; t++)
        for (int si = 0; si < N_SIZES; si++)
            for (int variant = 0; variant < 4; variant++) {
                const int c = sizes[si], with_res = variant & 1, relu = variant >> 1;
                const int P = (4 + 2 * t) * (4 + 2 * t), Q = (2 + 2 * t) * (2 + 2 * t);
                const size_t vn = (size_t)P * (c + 1), yn = (size_t)Q * (c + 1);
                float *d = random_floats((size_t)P * c, -4.0f, 4.0f);
                float *m = random_floats(vn, -4.0f, 4.0f);
                float *bias = random_floats((size_t)c, -1.0f, 1.0f);
                float *res = with_res ? random_floats((size_t)Q * c, -4.0f, 4.0f) : NULL;
                float *v = alloc_floats(vn), *y = alloc_floats(yn);
                float *v2 = alloc_floats(vn), *y2 = alloc_floats(yn);
                wino_run(s, t, d, m, bias, res, c, 1, relu, v, y);
                wino_run(k, t, d, m, bias, res, c, 1, relu, v2, y2);
                ck_assert_mem_eq(v2, v, vn * sizeof *v);
                ck_assert_mem_eq(y2, y, yn * sizeof *y);
                for (int x = 0; x < P; x++)
                    ck_assert_float_eq(v2[(size_t)x * (c + 1) + c], WINO_GUARD);
                for (int q = 0; q < Q; q++)
                    ck_assert_float_eq(y2[(size_t)q * (c + 1) + c], WINO_GUARD);
                for (int ch = 0; ch < c; ch++) {
                    ck_assert_float_eq(y2[(size_t)(c + 1) + ch], WINO_GUARD);
                    ck_assert(!relu || y2[ch] >= 0.0f);
                }
                free(d), free(m), free(bias), free(res), free(v), free(y), free(v2), free(y2);
            }
}
END_TEST

/* ---- timings (ENG_KERNEL_BENCH=1) -------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of a few runs of one kernel call over buffers of floats; prints ns per
 * float and GB/s counting one read and one write of each. */
#define BENCH(label, isa, floats, call)                                                      \
    do {                                                                                     \
        double best = 1e30;                                                                  \
        for (int rep = 0; rep < 5; rep++) {                                                  \
            double t0 = now_s();                                                             \
            call;                                                                            \
            double t = now_s() - t0;                                                         \
            best = t < best ? t : best;                                                      \
        }                                                                                    \
        printf("bench %-7s %-28s %7.3f ns/float %7.2f GB/s\n", isa, label,                   \
               1e9 * best / (double)(floats), 8.0 * (double)(floats) / best / 1e9);          \
    } while (0)

static void bench(void)
{
    const int gelu_rows = 32 * 128, gelu_n = 1536;
    const size_t gelu_len = (size_t)gelu_rows * gelu_n;
    /* Plain malloc: the ck_assert in alloc_floats only works inside a test. */
    float *x = malloc(gelu_len * sizeof *x);
    float *bias = calloc((size_t)gelu_n, sizeof *bias);
    float *g = malloc(768 * sizeof *g);
    if (!x || !bias || !g) {
        printf("bench: out of memory\n");
        free(x);
        free(bias);
        free(g);
        return;
    }
    for (int i = 0; i < 768; i++)
        g[i] = test_uniform(0.5f, 1.5f);
    for (int isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AVX512; isa++) {
        const eng__kernels *k = eng__kernels_for((eng__isa)isa);
        if (!k) {
            printf("bench %s: not available on this CPU\n", eng__isa_str((eng__isa)isa));
            continue;
        }
        const char *name = eng__isa_str(k->isa);
        for (size_t i = 0; i < gelu_len; i++)
            x[i] = test_uniform(-3.0f, 3.0f);
        /* Inputs stay within [-3, 3]-ish: GELU of such values stays there too. */
        BENCH("gelu 32x128x1536", name, gelu_len, k->bias_act(x, bias, gelu_rows, gelu_n, ENG_ACT_GELU));
        BENCH("gelu_tanh 32x128x1536", name, gelu_len,
              k->bias_act(x, bias, gelu_rows, gelu_n, ENG_ACT_GELU_TANH));
        BENCH("softmax 12288x512", name, (size_t)12288 * 512,
              k->softmax(x, 12288, 512, 512, 0.125f));
        BENCH("layernorm 4096x768", name, (size_t)4096 * 768,
              k->layernorm(x, x, g, bias, 4096, 768, 1e-12f));
    }
    free(x);
    free(bias);
    free(g);
}

int main(int argc, char **argv)
{
    /* The child of test_env_override: report the ISA ENG_ISA led to. */
    if (argc == 2 && strcmp(argv[1], "--print-isa") == 0) {
        printf("%s\n", eng__isa_str(eng__kernels_get()->isa));
        return 0;
    }
    const char *b = getenv("ENG_KERNEL_BENCH");
    if (b && *b && strcmp(b, "0") != 0)
        bench();

    test_note_missing_isas();
    Suite *suite = suite_create("kernels");
    TCase *tc = tcase_create("dispatch");
    tcase_add_test(tc, test_tables);
    tcase_add_test(tc, test_parse_override);
    tcase_add_test(tc, test_env_override);
    tcase_add_test(tc, test_cpu_features);
    tcase_add_test(tc, test_amx_denied);
    suite_add_tcase(suite, tc);

    tc = tcase_create("scalar_vs_double");
    tcase_add_test(tc, test_softmax_scalar_vs_double);
    tcase_add_test(tc, test_layernorm_scalar_vs_double);
    tcase_add_loop_test(tc, test_wino_scalar_vs_double, 0, 2);
    suite_add_tcase(suite, tc);

    /* _i is the ISA; every ISA, scalar included, runs the edge cases and the
     * activation sweep against double; the vector ISAs are compared with
     * scalar. */
    tc = tcase_create("isa");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_softmax_edges, ENG_ISA_SCALAR, ENG_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, test_argmax, ENG_ISA_SCALAR, ENG_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, test_activation_vs_double, ENG_ISA_SCALAR, ENG_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, test_softmax_isa, ENG_ISA_AVX2, ENG_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, test_layernorm_isa, ENG_ISA_AVX2, ENG_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, test_activation_isa, ENG_ISA_AVX2, ENG_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, test_residual_isa, ENG_ISA_AVX2, ENG_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, test_wino_isa, ENG_ISA_AVX2, ENG_ISA_AVX512 + 1);
    suite_add_tcase(suite, tc);

    return test_run_suite(suite);
}
