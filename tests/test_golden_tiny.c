/* test_golden_tiny.c: the configurations the SST-2 models do not cover
 * (gelu_new and relu activations, 1 to 5 heads of odd sizes, 3 labels, BF16 and
 * F16 weights, legacy gamma/beta names, pytorch_model.bin, bare encoders with
 * mean or [CLS] pooling and normalisation; RoBERTa, XLM-RoBERTa and CamemBERT
 * classifiers and sentence-transformers encoders, up to their longest
 * sequence), each converted from a Hugging Face folder in tests/golden/tiny
 * and run against the outputs that tests/golden/make_tiny_models.py computed
 * with ../shared/reference/hfref.py (make_tiny_roberta.py with
 * tests/golden/robertaref.py), on the built-in GEMM and on OpenBLAS. Needs
 * nothing from ../shared. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bert_layout.h"
#include "engine.h"
#include "testutil.h"

#define GOLDEN_DIR "tests/golden/tiny"
/* fp32 against PyTorch fp32: the same arithmetic in another summation order
 * (GEMM blocking, OpenBLAS or builtin, AVX2 or AVX-512), whose rounding
 * differences grow as about sqrt(K) float epsilons per layer on outputs of
 * size ~1: measured at most 1.8e-6 on every model and GEMM; 2e-5 leaves
 * about 10x for other CPUs' summation orders. */
#define TOL_ABS 2e-5f

static const char *MODELS[] = {
    "bert-gelu-new-3labels",   "bert-legacy-bf16",       "distilbert-relu-bin",
    "st-encoder-cls-norm-f16", "bert-encoder-mean-relu",
    /* tests/golden/make_tiny_roberta.py, reference tests/golden/robertaref.py */
    "roberta-cls-3labels",     "xlmr-cls-bin",           "xlmr-st-mean-norm-f16",
    "camembert-st-cls-bf16",   "roberta-text-f16",       "xlmr-text-st-f16",
};
enum {
    N_MODELS = sizeof MODELS / sizeof MODELS[0],
    MAX_ROWS = TEST_GOLDEN_ROWS,
    MAX_IDS = TEST_GOLDEN_IDS,
    MAX_OUT = TEST_GOLDEN_OUT
};

static eng_model *convert_and_load(const char *name, eng_gemm gemm, char *out_path,
                                   size_t out_len)
{
    char dir[512], err[512];
    snprintf(dir, sizeof dir, "%s/%s", GOLDEN_DIR, name);
    snprintf(out_path, out_len, "/tmp/eng-test-tiny-%d-%s.eng", (int)getpid(), name);
    cv_config cfg;
    cv_report rep;
    eng_status s = cv_convert_hf(dir, out_path, &cfg, &rep, err, sizeof err);
    ck_assert_msg(s == ENG_OK, "convert %s: %s", name, err);
    cv_config_free(&cfg);
    eng_model *m = NULL;
    eng_model_params mp = eng_model_default_params();
    mp.gemm = gemm;
    ck_assert_msg(eng_model_load(out_path, &mp, &m) == ENG_OK, "load %s: %s", name,
                  eng_last_error());
    return m;
}

START_TEST(test_matches_reference_alone_and_batched)
{
    const char *name = MODELS[_i % N_MODELS];
    const eng_gemm gemm = _i < N_MODELS ? ENG_GEMM_BUILTIN : ENG_GEMM_OPENBLAS;
    test_golden g;
    test_read_golden(name, &g);
    char path[600];
    eng_model *m = convert_and_load(name, gemm, path, sizeof path);
    eng_model_info info;
    eng_model_get_info(m, &info);
    eng_ctx *ctx = NULL;
    ck_assert_int_eq(eng_ctx_init(m, NULL, &ctx), ENG_OK);
    ck_assert_int_eq(g.width, g.is_logits ? info.n_labels : info.hidden);

    float batch[MAX_ROWS * MAX_OUT], alone[MAX_OUT];
    eng_status st[MAX_ROWS];
    eng_status s = g.is_logits ? eng_classify_ids(ctx, g.seq, g.n, batch, NULL, NULL, st)
                               : eng_embed_ids(ctx, g.seq, g.n, batch, st);
    ck_assert_msg(s == ENG_OK, "%s: %s", name, eng_ctx_last_error(ctx));
    float worst = 0.0f;
    for (int r = 0; r < g.n; r++) {
        s = g.is_logits ? eng_classify_ids(ctx, &g.seq[r], 1, alone, NULL, NULL, NULL)
                        : eng_embed_ids(ctx, &g.seq[r], 1, alone, NULL);
        ck_assert_int_eq(s, ENG_OK);
        for (int k = 0; k < g.width; k++) {
            float want = g.expect[r][k];
            worst = fmaxf(worst, fabsf(batch[r * g.width + k] - want));
            ck_assert_msg(fabsf(batch[r * g.width + k] - want) <= TOL_ABS,
                          "%s row %d (%d ids) output %d: %g, reference %g", name, r, g.seq[r].n_ids,
                          k, (double)batch[r * g.width + k], (double)want);
            /* Alone vs batched: bit-equal here with both GEMMs, but OpenBLAS may
             * pick its kernel by the row count, and so a row's summation order,
             * on other CPUs: one rounding step on outputs of size ~1. */
            ck_assert_float_eq_tol(alone[k], batch[r * g.width + k], 1e-6f);
        }
    }
    printf("%s on %s: %d sequences, max |engine - reference| = %.3g\n", name,
           eng_model_gemm_name(m), g.n, (double)worst);
    eng_ctx_free(ctx);
    eng_model_free(m);
    unlink(path);
}
END_TEST

int main(void)
{
    if (access(GOLDEN_DIR, R_OK) != 0) {
        printf("FAIL test_golden_tiny: %s not found (run from the repository root)\n", GOLDEN_DIR);
        return 1;
    }
    Suite *s = suite_create("golden_tiny");
    TCase *tc = tcase_create("hfref");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_matches_reference_alone_and_batched, 0, 2 * N_MODELS);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
