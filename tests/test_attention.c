/* test_attention.c: the fused attention kernels of kernels/kernels.h.
 *
 * Every vector ISA the CPU can run is compared with the scalar table (which
 * works in double and so is the reference) over sequence lengths and head
 * widths around every vector and block boundary, with q, k, v read at a row
 * stride wider than 3 d (as in the packed qkv matrix) and out written at a
 * stride wider than d, whose gaps and the memory past the last row hold guard
 * values that must survive. Scratch is exactly ENG_ATTENTION_SCRATCH floats
 * (AddressSanitizer catches any overrun) and is filled with NaN first, so a
 * kernel that read scratch it had not written would fail. Every ISA, scalar
 * included, is also checked against closed forms: one token attends only to
 * itself, and zero queries give the mean of the values. The bf16 variant
 * (attention_bf16) is compared with the scalar bf16 reference, and the
 * reference with the fp32 one; it meets the closed forms too. ISAs the CPU
 * lacks are skipped with a message. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "testutil.h"

/* Vector against scalar, per element, relative to the largest |v| of that
 * column: every output is a convex combination of the column's values, so
 * that is its natural scale (relative to |out| itself would be meaningless
 * where the mix cancels to near zero). Covers fp32 scores of up to 128 terms,
 * the vector exp (a few ulp) and fp32 sums of up to 512 terms. */
#define TOL_ATTN_REL 1e-5
/* Closed forms (self-attention of one token, mean of the values), any ISA,
 * relative to the largest |v| of the column as above: the fp32 sum of up to
 * 512 values, about sqrt(512) roundings. */
#define TOL_ATTN_CLOSED_REL 4e-6
/* attention_bf16 (kernels.h): a real bf16 kernel against the scalar bf16
 * reference, relative to the column scale as above. Both round q and k
 * alike and their products are exact in fp32, so what is left is what
 * TOL_ATTN_REL covers. */
#define TOL_BF16_REL TOL_ATTN_REL
/* Any bf16 result against fp32 attention: q and k rounded to 8 bits move
 * each score by up to about 2^-9 sqrt(d) |q| |k| (about 0.1 for the sharp
 * cases here), a few percent of a weight. */
#define TOL_BF16_VS_FP32_REL 3e-2
/* A value no kernel produces from these inputs, placed where nothing may be
 * written. */
#define GUARD 12345.0f

static const int seq_lens[] = {1, 2, 3, 15, 16, 17, 31, 33, 64, 127, 128, 129, 255, 512};
static const int widths[] = {1, 7, 16, 32, 33, 64, 128};
#define N_LENS ((int)(sizeof seq_lens / sizeof seq_lens[0]))
#define N_WIDTHS ((int)(sizeof widths / sizeof widths[0]))

/* One problem: qkv [S][ld] with q, k, v the column blocks at 0, d, 2d (ld =
 * 3d + 3, so rows start unaligned), out [S][ldo] plus a guard row past it. */
typedef struct {
    int S, d, ld, ldo;
    float *qkv, *out, *scratch;
} problem;

static problem problem_new(int S, int d, float qk_range)
{
    problem p = {S, d, 3 * d + 3, d + 5, NULL, NULL, NULL};
    const size_t nqkv = (size_t)S * p.ld, nout = (size_t)(S + 1) * p.ldo;
    p.qkv = malloc(nqkv * sizeof *p.qkv);
    p.out = malloc(nout * sizeof *p.out);
    p.scratch = aligned_alloc(64, ENG_ATTENTION_SCRATCH(S, d) * sizeof(float));
    ck_assert(p.qkv && p.out && p.scratch);
    for (int j = 0; j < S; j++)
        for (int c = 0; c < p.ld; c++)
            p.qkv[(size_t)j * p.ld + c] = c < 2 * d ? test_uniform(-qk_range, qk_range) : test_uniform(-1, 1);
    return p;
}

static void problem_free(problem *p)
{
    free(p->qkv);
    free(p->out);
    free(p->scratch);
}

typedef void attention_fn(const float *q, const float *k, const float *v, int ld, int S, int d,
                          float scale, float *out, int ldo, float *scratch);

/* Runs one kernel on p into p->out (guards first, scratch poisoned). */
static void run_fn(attention_fn *f, problem *p, float scale)
{
    for (size_t i = 0; i < (size_t)(p->S + 1) * p->ldo; i++)
        p->out[i] = GUARD;
    for (size_t i = 0; i < ENG_ATTENTION_SCRATCH(p->S, p->d); i++)
        p->scratch[i] = NAN;
    f(p->qkv, p->qkv + p->d, p->qkv + 2 * p->d, p->ld, p->S, p->d, scale, p->out, p->ldo,
      p->scratch);
}

static void run(const eng__kernels *k, problem *p, float scale)
{
    run_fn(k->attention, p, scale);
}

static const float *value(const problem *p, int j)
{
    return p->qkv + (size_t)j * p->ld + 2 * p->d;
}

/* The largest |v[j][c]| over j: the scale of column c of the output. */
static double column_scale(const problem *p, int c)
{
    double m = 0.0;
    for (int j = 0; j < p->S; j++)
        m = fmax(m, fabs(value(p, j)[c]));
    return m;
}

/* Asserts got's [S][d] window matches want (a [S][ldo] array) within tol
 * times each column's scale, and that every float of got outside the window,
 * the guard row included, still holds GUARD. */
static void assert_matches(const problem *p, const float *got, const float *want, double tol,
                           const char *what, const char *isa)
{
    for (int c = 0; c < p->d; c++) {
        const double lim = tol * column_scale(p, c);
        for (int i = 0; i < p->S; i++) {
            const size_t at = (size_t)i * p->ldo + c;
            const double err = fabs((double)got[at] - want[at]);
            if (!(err <= lim))
                ck_abort_msg("%s %s S=%d d=%d: out[%d][%d] = %.9g, want %.9g (error %.3g > %.3g)",
                             what, isa, p->S, p->d, i, c, got[at], want[at], err, lim);
        }
    }
    for (int i = 0; i <= p->S; i++)
        for (int c = i < p->S ? p->d : 0; c < p->ldo; c++)
            if (got[(size_t)i * p->ldo + c] != GUARD)
                ck_abort_msg("%s %s S=%d d=%d: wrote out[%d][%d] outside its window", what, isa,
                             p->S, p->d, i, c);
}

/* The table for an ISA, or NULL after saying the CPU cannot run it. */
static const eng__kernels *kernels_or_skip(int isa, const char *test)
{
    const eng__kernels *k = eng__kernels_for((eng__isa)isa);
    if (!k)
        printf("skip: %s: this CPU cannot run %s\n", test, eng__isa_str((eng__isa)isa));
    return k;
}

/* got against ref over every size, each twice: the model's scale 1/sqrt(d)
 * on q, k in [-2, 2], and a sharper softmax (scores spread over about +-12)
 * that exercises the max subtraction. */
static void sweep_vs_reference(attention_fn *got, attention_fn *ref, double tol,
                               const char *what, const char *isa)
{
    char label[64];
    for (int li = 0; li < N_LENS; li++)
        for (int wi = 0; wi < N_WIDTHS; wi++)
            for (int sharp = 0; sharp < 2; sharp++) {
                const int S = seq_lens[li], d = widths[wi];
                const float scale = (sharp ? 3.0f : 1.0f) / sqrtf((float)d);
                problem p = problem_new(S, d, 2.0f);
                const size_t nout = (size_t)(S + 1) * p.ldo;
                run_fn(ref, &p, scale);
                float *want = malloc(nout * sizeof *want);
                ck_assert_ptr_nonnull(want);
                memcpy(want, p.out, nout * sizeof *want);
                run_fn(got, &p, scale);
                snprintf(label, sizeof label, "%s%s", what, sharp ? " sharp" : "");
                assert_matches(&p, p.out, want, tol, label, isa);
                free(want);
                problem_free(&p);
            }
}

START_TEST(test_attention_isa)
{
    const eng__kernels *k = kernels_or_skip(_i, "attention"), *s = eng__kernels_for(ENG_ISA_SCALAR);
    if (!k)
        return;
    sweep_vs_reference(k->attention, s->attention, TOL_ATTN_REL, "attention",
                       eng__isa_str(k->isa));
}
END_TEST

/* attention_bf16 against the scalar table's, which rounds exactly as the
 * contract says: within TOL_BF16_REL for a real bf16 kernel,
 * TOL_BF16_VS_FP32_REL for the fp32 fallback (AVX2, AVX-512 without the
 * extension). */
START_TEST(test_attention_bf16_isa)
{
    const eng__kernels *k = kernels_or_skip(_i, "attention bf16");
    const eng__kernels *s = eng__kernels_for(ENG_ISA_SCALAR);
    if (!k)
        return;
    const int real = k->attention_bf16 != k->attention;
    printf("attention_bf16 on %s: %s\n", eng__isa_str(k->isa),
           real ? "the AVX512-BF16 kernel" : "the fp32 kernel");
    sweep_vs_reference(k->attention_bf16, s->attention_bf16,
                       real ? TOL_BF16_REL : TOL_BF16_VS_FP32_REL, "bf16", eng__isa_str(k->isa));
}
END_TEST

/* The scalar bf16 reference against the fp32 one: within the bf16 bound, and
 * not equal to it (so the rounding it claims does happen). */
START_TEST(test_attention_bf16_vs_fp32)
{
    const eng__kernels *s = eng__kernels_for(ENG_ISA_SCALAR);
    double worst = 0.0;
    for (int li = 0; li < N_LENS; li += 2)
        for (int wi = 0; wi < N_WIDTHS; wi++) {
            const int S = seq_lens[li], d = widths[wi];
            problem p = problem_new(S, d, 2.0f);
            const size_t nout = (size_t)(S + 1) * p.ldo;
            run(s, &p, 3.0f / sqrtf((float)d));
            float *want = malloc(nout * sizeof *want);
            ck_assert_ptr_nonnull(want);
            memcpy(want, p.out, nout * sizeof *want);
            run_fn(s->attention_bf16, &p, 3.0f / sqrtf((float)d));
            assert_matches(&p, p.out, want, TOL_BF16_VS_FP32_REL, "bf16 vs fp32", "scalar");
            for (size_t i = 0; i < nout; i++)
                worst = fmax(worst, fabs((double)p.out[i] - want[i]));
            free(want);
            problem_free(&p);
        }
    ck_assert_msg(worst > 0.0, "the bf16 reference equals the fp32 one: no rounding happened");
}
END_TEST

/* S = 1: the only key is the token itself, so out = v_0 whatever q and k. */
START_TEST(test_attention_single_token)
{
    const eng__kernels *k = kernels_or_skip(_i, "attention single token");
    if (!k)
        return;
    for (int wi = 0; wi < N_WIDTHS; wi++) {
        problem p = problem_new(1, widths[wi], 5.0f);
        float *want = malloc((size_t)2 * p.ldo * sizeof *want);
        ck_assert_ptr_nonnull(want);
        for (int c = 0; c < p.ldo; c++) {
            want[c] = c < p.d ? value(&p, 0)[c] : GUARD;
            want[p.ldo + c] = GUARD;
        }
        run(k, &p, 1.0f);
        assert_matches(&p, p.out, want, TOL_ATTN_CLOSED_REL, "single token", eng__isa_str(k->isa));
        run_fn(k->attention_bf16, &p, 1.0f);
        assert_matches(&p, p.out, want, TOL_ATTN_CLOSED_REL, "bf16 single token",
                       eng__isa_str(k->isa));
        free(want);
        problem_free(&p);
    }
}
END_TEST

/* Zero queries score every key 0: uniform weights, out[i] = mean of v. */
START_TEST(test_attention_uniform)
{
    const eng__kernels *k = kernels_or_skip(_i, "attention uniform");
    if (!k)
        return;
    for (int li = 0; li < N_LENS; li++)
        for (int wi = 0; wi < N_WIDTHS; wi += 2) {
            const int S = seq_lens[li], d = widths[wi];
            problem p = problem_new(S, d, 1.0f);
            for (int j = 0; j < S; j++)
                memset(p.qkv + (size_t)j * p.ld, 0, (size_t)d * sizeof(float));
            const size_t nout = (size_t)(S + 1) * p.ldo;
            float *want = malloc(nout * sizeof *want);
            ck_assert_ptr_nonnull(want);
            for (size_t i = 0; i < nout; i++)
                want[i] = GUARD;
            for (int c = 0; c < d; c++) {
                double sum = 0.0;
                for (int j = 0; j < S; j++)
                    sum += value(&p, j)[c];
                for (int i = 0; i < S; i++)
                    want[(size_t)i * p.ldo + c] = (float)(sum / S);
            }
            run(k, &p, 0.5f);
            assert_matches(&p, p.out, want, TOL_ATTN_CLOSED_REL, "uniform", eng__isa_str(k->isa));
            run_fn(k->attention_bf16, &p, 0.5f);
            assert_matches(&p, p.out, want, TOL_ATTN_CLOSED_REL, "bf16 uniform",
                           eng__isa_str(k->isa));
            free(want);
            problem_free(&p);
        }
}
END_TEST

int main(void)
{
    test_note_missing_isas();
    Suite *suite = suite_create("attention");
    /* _i is the ISA: the closed forms run on every ISA, scalar included; the
     * vector ISAs are compared with scalar. */
    TCase *tc = tcase_create("isa");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_attention_single_token, ENG_ISA_SCALAR, ENG_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, test_attention_uniform, ENG_ISA_SCALAR, ENG_ISA_AVX512 + 1);
    tcase_add_loop_test(tc, test_attention_isa, ENG_ISA_AVX2, ENG_ISA_AVX512 + 1);
    tcase_add_test(tc, test_attention_bf16_vs_fp32);
    tcase_add_loop_test(tc, test_attention_bf16_isa, ENG_ISA_AVX2, ENG_ISA_AVX512 + 1);
    suite_add_tcase(suite, tc);
    return test_run_suite(suite);
}
