/* test_bf16.c: --precision bf16 on the CPU end to end (eng_ctx_params
 * precision ENG_PREC_BF16) on the SST-2 models converted from $ENGINE_SHARED
 * by `make models`: accuracy on the 872 dev sentences against the same
 * model's fp32 run, label agreement, embedding cosines, a sentence's result
 * alone and in a batch; the same models converted with --dtype bf16 (BF16
 * linear weights of half the bytes, bit-identical results under bf16, fp32
 * contexts on them); and the refusals (fp16 on the CPU, bf16 without a
 * unit). The GEMM units themselves are covered by
 * test_bgemm. Exits 77 when the CPU has no bf16 unit or the models are
 * missing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bert_layout.h"
#include "bgemm.h"
#include "engine.h"
#include "format.h"
#include "testutil.h"

/* Issue 13: bf16 accuracy within half a point of fp32, labels agreeing on
 * at least 99% of the sentences, embeddings at cosine >= 0.999. */
#define MAX_ACCURACY_DROP 0.005
#define MIN_AGREEMENT 0.99
#define MIN_EMBED_COSINE 0.999
/* Every step is row-local and the bf16 GEMMs sum each row in the same order
 * whatever the batch, so a sentence alone and in a batch agree exactly. */
#define TOL_BATCH_INVARIANT 0.0f
/* Sentences the embedding and batch checks use (of the 872). */
#define N_EMBED 256

static const char *const MODELS[] = {"sst2-bert-mini", "sst2-distilbert-mini"};
enum { N_MODELS = 2 };
static eng_model *model[N_MODELS];
static eng_model *model_b[N_MODELS]; /* converted with --dtype bf16 */
static char path_b[N_MODELS][256];
static char **sentences;
static int *gold, n_sent;

static eng_ctx *ctx_new(const eng_model *m, eng_precision p)
{
    eng_ctx_params cp = eng_ctx_default_params();
    cp.precision = p;
    cp.n_threads = 2;
    eng_ctx *c = NULL;
    ck_assert_msg(eng_ctx_init(m, &cp, &c) == ENG_OK, "%s", eng_last_error());
    return c;
}

static int *classify(const eng_model *m, eng_precision p, int C)
{
    eng_ctx *c = ctx_new(m, p);
    float *logits = malloc((size_t)n_sent * C * sizeof *logits);
    int *labels = malloc((size_t)n_sent * sizeof *labels);
    ck_assert(logits && labels);
    for (int i = 0; i < n_sent; i += 32) {
        const int b = n_sent - i < 32 ? n_sent - i : 32;
        ck_assert_int_eq(eng_classify(c, (const char *const *)sentences + i, b,
                                      logits + (size_t)i * C, NULL, labels + i, NULL),
                         ENG_OK);
    }
    eng_ctx_free(c);
    free(logits);
    return labels;
}

START_TEST(test_sst2_accuracy_and_agreement)
{
    eng_model_info info;
    eng_model_get_info(model[_i], &info);
    int *l32 = classify(model[_i], ENG_PREC_FP32, info.n_labels);
    int *l16 = classify(model[_i], ENG_PREC_BF16, info.n_labels);
    int ok32 = 0, ok16 = 0, agree = 0;
    for (int i = 0; i < n_sent; i++) {
        ok32 += l32[i] == gold[i];
        ok16 += l16[i] == gold[i];
        agree += l32[i] == l16[i];
    }
    const double a32 = (double)ok32 / n_sent, a16 = (double)ok16 / n_sent;
    printf("test_bf16: %s: accuracy fp32 %.4f, bf16 %.4f; labels agree on %d of %d\n", MODELS[_i],
           a32, a16, agree, n_sent);
    ck_assert_msg(fabs(a16 - a32) <= MAX_ACCURACY_DROP, "%s: bf16 accuracy %.4f vs fp32 %.4f",
                  MODELS[_i], a16, a32);
    ck_assert_msg(agree >= MIN_AGREEMENT * n_sent, "%s: labels agree on %d of %d", MODELS[_i],
                  agree, n_sent);
    free(l32), free(l16);
}
END_TEST

static float *embed(eng_ctx *c, int first, int n, int H)
{
    float *e = malloc((size_t)n * H * sizeof *e);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(eng_embed(c, (const char *const *)sentences + first, n, e, NULL), ENG_OK);
    return e;
}

START_TEST(test_sst2_embeddings_close_to_fp32)
{
    eng_model_info info;
    eng_model_get_info(model[_i], &info);
    const int H = info.hidden;
    eng_ctx *c32 = ctx_new(model[_i], ENG_PREC_FP32), *c16 = ctx_new(model[_i], ENG_PREC_BF16);
    float *e32 = embed(c32, 0, N_EMBED, H), *e16 = embed(c16, 0, N_EMBED, H);
    double worst = 1.0;
    for (int i = 0; i < N_EMBED; i++) {
        const double cosine = test_cosine(e32 + (size_t)i * H, e16 + (size_t)i * H, H);
        worst = cosine < worst ? cosine : worst;
        ck_assert_msg(cosine >= MIN_EMBED_COSINE, "%s: sentence %d: cosine %.6f", MODELS[_i], i,
                      cosine);
    }
    printf("test_bf16: %s: lowest embedding cosine to fp32 %.6f over %d sentences\n", MODELS[_i],
           worst, N_EMBED);
    eng_ctx_free(c32), eng_ctx_free(c16);
    free(e32), free(e16);
}
END_TEST

START_TEST(test_sst2_result_does_not_depend_on_batch)
{
    eng_model_info info;
    eng_model_get_info(model[_i], &info);
    const int H = info.hidden;
    eng_ctx *c = ctx_new(model[_i], ENG_PREC_BF16);
    float *all = embed(c, 0, N_EMBED, H);
    for (int i = 0; i < N_EMBED; i += 37) {
        float *one = embed(c, i, 1, H);
        for (int j = 0; j < H; j++)
            ck_assert_msg(fabsf(one[j] - all[(size_t)i * H + j]) <= TOL_BATCH_INVARIANT,
                          "%s: sentence %d dim %d: alone %.9g, in the batch %.9g", MODELS[_i], i,
                          j, one[j], all[(size_t)i * H + j]);
        free(one);
    }
    eng_ctx_free(c);
    free(all);
}
END_TEST

/* Linear weight "<name>.w" of the two files: F32 in the one, BF16 of the
 * packed bf16 size (half, K padded to 32) in the other, for every linear
 * layer of the encoder. */
START_TEST(test_bf16_file_halves_the_linear_weights)
{
    char rel[128], err[256];
    snprintf(rel, sizeof rel, "models/%s.eng", MODELS[_i]);
    eng__file f32, b16;
    ck_assert_msg(eng__file_open(&f32, test_build_path(rel), err, sizeof err) == ENG_OK, "%s", err);
    ck_assert_msg(eng__file_open(&b16, path_b[_i], err, sizeof err) == ENG_OK, "%s", err);
    int n = 0;
    for (uint32_t t = 0; t < f32.n_tensors; t++) {
        const eng__file_tensor *a = &f32.dir[t];
        const size_t len = strlen(a->name);
        /* The head stays fp32, as with --dtype int8. */
        if (a->ndim != 3 || len < 2 || strcmp(a->name + len - 2, ".w") ||
            !strncmp(a->name, "head.", 5))
            continue;
        const eng__file_tensor *b = eng__file_find(&b16, a->name);
        ck_assert_msg(b && b->dtype == ENG_DT_BF16, "%s not BF16", a->name);
        const int K = (int)a->shape[1], N = 16 * (int)a->shape[0]; /* N rounded up: same bytes */
        ck_assert_uint_eq(b->nbytes, eng__bgemm_packed_bytes(K, N));
        ck_assert_uint_eq(2 * b->nbytes, a->nbytes * eng__bgemm_kp(K) / K);
        n++;
    }
    ck_assert_int_ge(n, 4); /* one layer's four, at least */
    eng__file_close(&f32);
    eng__file_close(&b16);
}
END_TEST

/* bf16 contexts round the fp32 file's weights exactly as the converter
 * does: the same logits, bit for bit. fp32 contexts on the bf16 file (its
 * weights widened) keep the accuracy. */
START_TEST(test_bf16_file_results)
{
    eng_model_info info;
    eng_model_get_info(model[_i], &info);
    const int C = info.n_labels, n = 64;
    float *a = malloc((size_t)n * C * sizeof *a), *b = malloc((size_t)n * C * sizeof *b);
    ck_assert(a && b);
    eng_ctx *ca = ctx_new(model[_i], ENG_PREC_BF16), *cb = ctx_new(model_b[_i], ENG_PREC_BF16);
    ck_assert_int_eq(eng_classify(ca, (const char *const *)sentences, n, a, NULL, NULL, NULL), ENG_OK);
    ck_assert_int_eq(eng_classify(cb, (const char *const *)sentences, n, b, NULL, NULL, NULL), ENG_OK);
    ck_assert_msg(memcmp(a, b, (size_t)n * C * sizeof *a) == 0, "%s: bf16 file differs",
                  MODELS[_i]);
    eng_ctx_free(ca), eng_ctx_free(cb);
    free(a), free(b);
    int *l32 = classify(model[_i], ENG_PREC_FP32, C), *lb = classify(model_b[_i], ENG_PREC_FP32, C);
    int ok32 = 0, okb = 0;
    for (int i = 0; i < n_sent; i++)
        ok32 += l32[i] == gold[i], okb += lb[i] == gold[i];
    ck_assert_msg(abs(okb - ok32) <= MAX_ACCURACY_DROP * n_sent,
                  "%s: fp32 on bf16 weights %d correct, fp32 weights %d", MODELS[_i], okb, ok32);
    free(l32), free(lb);
}
END_TEST

START_TEST(test_refusals)
{
    eng_ctx_params cp = eng_ctx_default_params();
    eng_ctx *c = NULL;
    cp.precision = ENG_PREC_FP16;
    ck_assert_int_eq(eng_ctx_init(model[0], &cp, &c), ENG_ERR_UNSUPPORTED);
    ck_assert_ptr_null(c);
}
END_TEST

/* The child of test_refused_without_unit: under ENG_ISA=avx2 no bf16 unit
 * is chosen, and a bf16 context is refused, saying why. 0 when so. */
static int refusal_child(void)
{
    eng_ctx_params cp = eng_ctx_default_params();
    cp.precision = ENG_PREC_BF16;
    eng_ctx *c = NULL;
    const eng_status s = eng_ctx_init(model[0], &cp, &c);
    printf("test_bf16 (ENG_ISA=avx2): %s: %s\n", eng_status_str(s), eng_last_error());
    return !(s == ENG_ERR_UNSUPPORTED && !c && strstr(eng_last_error(), "AVX-512"));
}

/* The kernel table is picked once per process, so the refusal runs in a
 * fresh one with ENG_ISA set. */
START_TEST(test_refused_without_unit)
{
    char cmd[4200];
    const int n = snprintf(cmd, sizeof cmd, "ENG_ISA=avx2 /proc/%d/exe --refusal", (int)getpid());
    ck_assert(n > 0 && (size_t)n < sizeof cmd);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(int argc, char **argv)
{
    const int refusal = argc > 1 && !strcmp(argv[1], "--refusal");
    if (!refusal && !eng__bgemm_get()) {
        printf("test_bf16: skipped: no bf16 unit (AVX-512) on this CPU\n");
        return TEST_SKIP;
    }
    if (!test_shared_path("data/sst2/dev.tsv")) {
        printf("test_bf16: skipped: $ENGINE_SHARED (../shared) with data/sst2 not found\n");
        return TEST_SKIP;
    }
    if ((n_sent = test_read_sst2_dev(&sentences, &gold)) != 872) {
        printf("FAIL test_bf16: cannot read the 872 sentences of data/sst2/dev.tsv\n");
        return 1;
    }
    for (int m = 0; m < N_MODELS; m++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/%s.eng", MODELS[m]);
        if (eng_model_load(test_build_path(rel), NULL, &model[m]) != ENG_OK) {
            printf("test_bf16: skipped: cannot load %s (make models): %s\n", test_build_path(rel),
                   eng_last_error());
            return TEST_SKIP;
        }
        if (refusal)
            continue;
        snprintf(rel, sizeof rel, "models/%s", MODELS[m]);
        snprintf(path_b[m], sizeof path_b[m], "/tmp/eng-test-bf16-%d-%s.eng", (int)getpid(),
                 MODELS[m]);
        cv_config c;
        cv_report r;
        char err[512];
        const char *dir = test_shared_path(rel);
        if (!dir || cv_convert_hf_as(dir, "bf16", path_b[m], &c, &r, err, sizeof err) != ENG_OK ||
            (cv_config_free(&c), eng_model_load(path_b[m], NULL, &model_b[m])) != ENG_OK) {
            printf("FAIL test_bf16: cannot convert %s to bf16: %s\n", MODELS[m],
                   dir ? err : "not found");
            return 1;
        }
    }
    if (refusal)
        return refusal_child();
    Suite *s = suite_create("bf16");
    TCase *tc = tcase_create("sst2");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_sst2_accuracy_and_agreement, 0, N_MODELS);
    tcase_add_loop_test(tc, test_sst2_embeddings_close_to_fp32, 0, N_MODELS);
    tcase_add_loop_test(tc, test_sst2_result_does_not_depend_on_batch, 0, N_MODELS);
    tcase_add_loop_test(tc, test_bf16_file_halves_the_linear_weights, 0, N_MODELS);
    tcase_add_loop_test(tc, test_bf16_file_results, 0, N_MODELS);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_refused_without_unit);
    suite_add_tcase(s, tc);
    const int rc = test_run_suite(s);
    for (int m = 0; m < N_MODELS; m++) {
        eng_model_free(model[m]);
        eng_model_free(model_b[m]);
        unlink(path_b[m]);
    }
    return rc;
}
