/* test_int8.c: the int8 path end to end. The converter's --dtype int8 (which
 * tensors become I8, their sizes, the "weights" metadata key, refusal of other
 * dtypes); the tiny golden models of tests/golden/tiny converted to int8
 * against their fp32 PyTorch outputs, with a looser tolerance; and, when
 * $ENGINE_SHARED has them, the SST-2 models converted to int8: accuracy on the
 * 872 dev sentences against the fp32 reference, agreement with it, embedding
 * cosines and batch invariance. The kernels under every ENG_ISA are covered by
 * test_qgemm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bert_layout.h"
#include "engine.h"
#include "format.h"
#include "quantize.h"
#include "sgemm.h"
#include "synthetic.h"
#include "testutil.h"

/* Issue 4: int8 accuracy within half a point of the fp32 reference's. */
#define MAX_ACCURACY_DROP 0.005
/* int8 weights (per channel) and activations (per row) each carry a relative
 * rounding error of about 2^-8 per element; over a normalised 256-wide
 * embedding that costs 1 - cosine ~ 1e-4 (measured: worst 0.99988, mean
 * 0.99999 on SST-2's 872 sentences), so 5e-4 leaves 4x for other CPUs' kernels
 * (VNNI or not: the integer sums are exact, only the float epilogues differ). */
#define MIN_EMBED_COSINE 0.9995
/* Activations are quantized per row, so a sentence's result is the same
 * integers alone or in any batch: exactly equal in practice. */
#define TOL_BATCH_INVARIANT 1e-6f
/* The tiny golden models (random weights of std 0.2, outputs of size ~1) in
 * int8 against fp32 PyTorch: |engine - reference| <= TOL_TINY_ABS +
 * TOL_TINY_REL * max|reference row|. The fp32 path meets 1e-4; per-channel
 * int8 weights and per-row int8 activations cost about two decimal digits. */
#define TOL_TINY_ABS 0.02f
#define TOL_TINY_REL 0.05f

#define GOLDEN_DIR "tests/golden/tiny"

typedef struct {
    char s[256];
} tmp_name;

static tmp_name tmp_path(const char *what)
{
    tmp_name t;
    snprintf(t.s, sizeof t.s, "/tmp/eng-test-int8-%d-%s.eng", (int)getpid(), what);
    return t;
}

/* ---- Converter --------------------------------------------------------- */

static void synth(const char *name, const char *weights, const char *out)
{
    cv_synth_opts o = {7, 0, NULL};
    cv_config c;
    cv_report r;
    char err[512];
    ck_assert_msg(cv_synthetic_as(name, &o, weights, out, &c, &r, err, sizeof err) == ENG_OK, "%s",
                  err);
    ck_assert_str_eq(c.weights, weights);
    cv_config_free(&c);
}

static const eng__file_tensor *must_find(const eng__file *f, const char *name)
{
    const eng__file_tensor *t = eng__file_find(f, name);
    ck_assert_msg(t != NULL, "missing tensor %s", name);
    return t;
}

START_TEST(test_convert_int8_writes_quantized_linears)
{
    /* The same seed in fp32 and int8: the int8 tensors must be exactly the
     * quantizer's output for the fp32 file's weights. */
    tmp_name f32_tmp = tmp_path("synth-f32"), i8_tmp = tmp_path("synth-i8");
    const char *f32_path = f32_tmp.s, *i8_path = i8_tmp.s;
    synth("tiny-distilbert", "fp32", f32_path);
    synth("tiny-distilbert", "int8", i8_path);
    eng__file f32, i8;
    char err[512];
    ck_assert_msg(eng__file_open(&f32, f32_path, err, sizeof err) == ENG_OK, "%s", err);
    ck_assert_msg(eng__file_open(&i8, i8_path, err, sizeof err) == ENG_OK, "%s", err);

    cJSON *meta = cJSON_ParseWithLength(i8.meta, i8.meta_size);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(meta, "weights")), "int8");
    cJSON_Delete(meta);
    meta = cJSON_ParseWithLength(f32.meta, f32.meta_size);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(meta, "weights")), "fp32");
    cJSON_Delete(meta);

    const int H = 32, F = 64; /* the "tiny-distilbert" shape, 2 layers */
    const char *lin[4] = {"qkv", "attn_out", "ffn_in", "ffn_out"};
    const int K[4] = {H, H, H, F}, N[4] = {3 * H, H, F, H};
    for (int layer = 0; layer < 2; layer++)
        for (int j = 0; j < 4; j++) {
            char name[64];
            snprintf(name, sizeof name, "L%d.%s.w", layer, lin[j]);
            const eng__file_tensor *w = must_find(&i8, name), *ref = must_find(&f32, name);
            size_t bytes = eng__quantized_weight_bytes(K[j], N[j]);
            ck_assert_int_eq(w->dtype, ENG_DT_I8);
            ck_assert_int_eq(w->ndim, 1);
            ck_assert_uint_eq(w->shape[0], bytes);
            ck_assert_uint_eq(w->nbytes, bytes);
            snprintf(name, sizeof name, "L%d.%s.w.scale", layer, lin[j]);
            const eng__file_tensor *sc = must_find(&i8, name);
            ck_assert(sc->dtype == ENG_DT_F32 && sc->ndim == 1 && sc->shape[0] == (uint64_t)N[j]);
            snprintf(name, sizeof name, "L%d.%s.w.sum", layer, lin[j]);
            const eng__file_tensor *sum = must_find(&i8, name);
            ck_assert(sum->dtype == ENG_DT_I32 && sum->ndim == 1 &&
                      sum->shape[0] == (uint64_t)N[j]);

            int8_t *q = malloc(bytes);
            float *s = malloc((size_t)N[j] * sizeof *s);
            int32_t *ws = malloc((size_t)N[j] * sizeof *ws);
            float *wf = malloc((size_t)K[j] * N[j] * sizeof *wf);
            ck_assert(q && s && ws && wf);
            eng__sgemm_unpack(eng__file_data(&f32, ref), K[j], N[j], wf);
            ck_assert_int_eq(eng__quantize_weights(wf, K[j], N[j], q, s, ws), ENG_OK);
            ck_assert(memcmp(q, eng__file_data(&i8, w), bytes) == 0);
            ck_assert(memcmp(s, eng__file_data(&i8, sc), (size_t)N[j] * sizeof *s) == 0);
            ck_assert(memcmp(ws, eng__file_data(&i8, sum), (size_t)N[j] * sizeof *ws) == 0);
            free(q);
            free(s);
            free(ws);
            free(wf);
        }
    /* Everything else stays F32 and identical. */
    const char *kept[] = {"emb.word", "emb.pos",      "emb.ln.g",     "L0.qkv.b",   "L1.ffn_out.b",
                          "L1.ln2.g", "head.dense.w", "head.dense.b", "head.out.w", "head.out.b"};
    for (size_t k = 0; k < sizeof kept / sizeof kept[0]; k++) {
        const eng__file_tensor *a = must_find(&i8, kept[k]), *b = must_find(&f32, kept[k]);
        ck_assert_msg(a->dtype == ENG_DT_F32 && a->nbytes == b->nbytes, "%s", kept[k]);
        ck_assert_msg(memcmp(eng__file_data(&i8, a), eng__file_data(&f32, b), a->nbytes) == 0,
                      "%s differs", kept[k]);
    }
    ck_assert_ptr_null(eng__file_find(&i8, "head.dense.w.scale"));
    ck_assert_uint_lt(i8.size, f32.size);
    eng__file_close(&f32);
    eng__file_close(&i8);

    /* And the engine runs it. */
    eng_model *m = NULL;
    ck_assert_msg(eng_model_load(i8_path, NULL, &m) == ENG_OK, "%s", eng_last_error());
    eng_model_free(m);
    unlink(f32_path);
    unlink(i8_path);
}
END_TEST

START_TEST(test_convert_refuses_other_dtypes)
{
    const char *bad[] = {"fp16", "int4", "INT8", ""};
    tmp_name out_tmp = tmp_path("bad");
    const char *out = out_tmp.s;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char err[512] = "";
        cv_config c;
        cv_report r;
        cv_synth_opts o = {1, 0, NULL};
        ck_assert_int_eq(cv_synthetic_as("tiny", &o, bad[k], out, &c, &r, err, sizeof err),
                         ENG_ERR_INVALID_ARG);
        ck_assert_msg(strstr(err, bad[k]) && strstr(err, "fp32, bf16 or int8"), "reason: %s", err);
        cv_config_free(&c);
        err[0] = '\0';
        ck_assert_int_eq(
            cv_convert_hf_as(GOLDEN_DIR "/bert-legacy-bf16", bad[k], out, &c, &r, err, sizeof err),
            ENG_ERR_INVALID_ARG);
        ck_assert_msg(strstr(err, "fp32, bf16 or int8") != NULL, "reason: %s", err);
        cv_config_free(&c);
        ck_assert_int_ne(access(out, F_OK), 0);
    }
}
END_TEST

/* ---- Tiny golden models ------------------------------------------------ */

static const char *TINY[] = {
    "bert-gelu-new-3labels",   "bert-legacy-bf16",       "distilbert-relu-bin",
    "st-encoder-cls-norm-f16", "bert-encoder-mean-relu", "roberta-cls-3labels",
    "xlmr-cls-bin",            "xlmr-st-mean-norm-f16",  "camembert-st-cls-bf16",
    "roberta-text-f16",        "xlmr-text-st-f16",
};
enum { N_TINY = sizeof TINY / sizeof TINY[0] };

START_TEST(test_tiny_golden_models_in_int8)
{
    const char *name = TINY[_i];
    static test_golden g;
    test_read_golden(name, &g);
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, name);
    tmp_name out_tmp = tmp_path(name);
    const char *out = out_tmp.s;
    cv_config c;
    cv_report r;
    ck_assert_msg(cv_convert_hf_as(path, "int8", out, &c, &r, err, sizeof err) == ENG_OK, "%s: %s",
                  name, err);
    cv_config_free(&c);
    eng_model *m = NULL;
    ck_assert_msg(eng_model_load(out, NULL, &m) == ENG_OK, "%s", eng_last_error());
    eng_ctx *ctx = NULL;
    ck_assert_int_eq(eng_ctx_init(m, NULL, &ctx), ENG_OK);

    static float got[TEST_GOLDEN_ROWS * TEST_GOLDEN_OUT], alone[TEST_GOLDEN_OUT];
    const int n = g.n, width = g.width;
    eng_status s = g.is_logits ? eng_classify_ids(ctx, g.seq, n, got, NULL, NULL, NULL)
                               : eng_embed_ids(ctx, g.seq, n, got, NULL);
    ck_assert_msg(s == ENG_OK, "%s: %s", name, eng_ctx_last_error(ctx));
    float worst = 0.0f;
    for (int i = 0; i < n; i++) {
        float scale = 0.0f;
        for (int k = 0; k < width; k++)
            scale = fmaxf(scale, fabsf(g.expect[i][k]));
        s = g.is_logits ? eng_classify_ids(ctx, &g.seq[i], 1, alone, NULL, NULL, NULL)
                        : eng_embed_ids(ctx, &g.seq[i], 1, alone, NULL);
        ck_assert_int_eq(s, ENG_OK);
        for (int k = 0; k < width; k++) {
            float d = fabsf(got[i * width + k] - g.expect[i][k]);
            worst = fmaxf(worst, d / (TOL_TINY_ABS + TOL_TINY_REL * scale));
            ck_assert_msg(d <= TOL_TINY_ABS + TOL_TINY_REL * scale,
                          "%s row %d (%d ids) output %d: int8 %g, fp32 reference %g", name, i,
                          g.seq[i].n_ids, k, (double)got[i * width + k], (double)g.expect[i][k]);
            ck_assert_float_eq_tol(alone[k], got[i * width + k], TOL_BATCH_INVARIANT);
        }
    }
    printf("%s int8: %d sequences, worst error %.2f of the tolerance\n", name, n, (double)worst);
    eng_ctx_free(ctx);
    eng_model_free(m);
    unlink(out);
}
END_TEST

/* ---- SST-2 (needs $ENGINE_SHARED) -------------------------------------- */

static const char *SST2[] = {"sst2-bert-mini", "sst2-distilbert-mini"};
enum { N_SST2 = 2 };

static eng_model *sst2_model[N_SST2];
static tmp_name sst2_path[N_SST2];
static char **sentences; /* the dev set's texts */
static int *gold;        /* and labels */
static int n_sent;

/* Converts the shared SST-2 models to int8 in /tmp; 0 when one fails. */
static int convert_sst2(void)
{
    for (int m = 0; m < N_SST2; m++) {
        char rel[128], err[512];
        snprintf(rel, sizeof rel, "models/%s", SST2[m]);
        const char *dir = test_shared_path(rel);
        sst2_path[m] = tmp_path(SST2[m]);
        cv_config c;
        cv_report r;
        if (!dir ||
            cv_convert_hf_as(dir, "int8", sst2_path[m].s, &c, &r, err, sizeof err) != ENG_OK) {
            printf("FAIL test_int8: cannot convert %s: %s\n", SST2[m], dir ? err : "not found");
            return 0;
        }
        cv_config_free(&c);
        if (eng_model_load(sst2_path[m].s, NULL, &sst2_model[m]) != ENG_OK) {
            printf("FAIL test_int8: cannot load %s: %s\n", sst2_path[m].s, eng_last_error());
            return 0;
        }
    }
    return 1;
}

START_TEST(test_sst2_accuracy_within_half_a_point)
{
    int m = _i;
    char rel[256];
    snprintf(rel, sizeof rel, "data/sst2/%s.logits.jsonl", SST2[m]);
    int n = 0, C = 0;
    float *ref = test_read_jsonl_floats(test_shared_path(rel), "logits", &n, &C);
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(n, n_sent);
    ck_assert_int_eq(C, 2);
    int *labels = NULL;
    float *logits = test_classify_all(sst2_model[m], sentences, n, &labels);
    float worst = 0.0f;
    int correct = 0, ref_correct = 0, agree = 0;
    for (int i = 0; i < n; i++) {
        int ref_label = ref[(size_t)i * C + 1] > ref[(size_t)i * C] ? 1 : 0;
        for (int k = 0; k < C; k++)
            worst = fmaxf(worst, fabsf(logits[(size_t)i * C + k] - ref[(size_t)i * C + k]));
        correct += labels[i] == gold[i];
        ref_correct += ref_label == gold[i];
        agree += labels[i] == ref_label;
    }
    printf("%s int8: accuracy %d/%d = %.2f%% (fp32 reference %d/%d = %.2f%%), labels agree with "
           "fp32 on %d/%d, max |logit - fp32 reference| = %.3g\n",
           SST2[m], correct, n, 100.0 * correct / n, ref_correct, n, 100.0 * ref_correct / n, agree,
           n, (double)worst);
    ck_assert_int_eq(ref_correct, m == 0 ? 711 : 707); /* the reference files are the ones known */
    ck_assert_msg(correct >= ref_correct - MAX_ACCURACY_DROP * n,
                  "int8 accuracy %d/%d is more than %.1f points below fp32's %d/%d", correct, n,
                  100 * MAX_ACCURACY_DROP, ref_correct, n);
    free(logits);
    free(labels);
    free(ref);
}
END_TEST

START_TEST(test_sst2_embeddings_close_to_reference)
{
    int m = _i;
    char rel[256];
    snprintf(rel, sizeof rel, "data/sst2/%s.embeddings.jsonl", SST2[m]);
    int n = 0, H = 0;
    float *ref = test_read_jsonl_floats(test_shared_path(rel), "embedding", &n, &H);
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(n, n_sent);
    eng_model_info info;
    eng_model_get_info(sst2_model[m], &info);
    ck_assert_int_eq(H, info.hidden);
    eng_ctx *ctx = NULL;
    ck_assert_int_eq(eng_ctx_init(sst2_model[m], NULL, &ctx), ENG_OK);
    float *emb = malloc((size_t)n * H * sizeof *emb);
    ck_assert_int_eq(eng_embed(ctx, (const char *const *)sentences, n, emb, NULL), ENG_OK);
    double worst = 1.0, sum = 0.0;
    for (int i = 0; i < n; i++) {
        const double cosine = test_cosine(emb + (size_t)i * H, ref + (size_t)i * H, H);
        worst = cosine < worst ? cosine : worst;
        sum += cosine;
    }
    printf("%s int8: embedding cosine to fp32 reference: worst %.5f, mean %.5f\n", SST2[m], worst,
           sum / n);
    ck_assert_double_ge(worst, MIN_EMBED_COSINE);
    free(emb);
    free(ref);
    eng_ctx_free(ctx);
}
END_TEST

START_TEST(test_sst2_result_does_not_depend_on_batch)
{
    eng_ctx *ctx = NULL;
    ck_assert_int_eq(eng_ctx_init(sst2_model[_i], NULL, &ctx), ENG_OK);
    enum { B = 64 };
    float batch[B * 2], alone[2];
    const char *texts[B]; /* short and long sentences mixed */
    for (int i = 0; i < B; i++)
        texts[i] = sentences[(i * 13) % n_sent];
    ck_assert_int_eq(eng_classify(ctx, texts, B, batch, NULL, NULL, NULL), ENG_OK);
    int exact = 0;
    for (int i = 0; i < B; i++) {
        ck_assert_int_eq(eng_classify(ctx, texts + i, 1, alone, NULL, NULL, NULL), ENG_OK);
        for (int k = 0; k < 2; k++)
            ck_assert_float_eq_tol(alone[k], batch[i * 2 + k], TOL_BATCH_INVARIANT);
        exact += memcmp(alone, batch + i * 2, sizeof alone) == 0;
    }
    printf("%s int8: %d/%d sentences bit-identical alone and in a batch of %d\n", SST2[_i], exact,
           B, B);
    eng_ctx_free(ctx);
}
END_TEST

int main(void)
{
    if (access(GOLDEN_DIR, R_OK) != 0) {
        printf("FAIL test_int8: %s not found (run from the repository root)\n", GOLDEN_DIR);
        return 1;
    }
    Suite *s = suite_create("int8");
    TCase *tc = tcase_create("convert");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_convert_int8_writes_quantized_linears);
    tcase_add_test(tc, test_convert_refuses_other_dtypes);
    tcase_add_loop_test(tc, test_tiny_golden_models_in_int8, 0, N_TINY);
    suite_add_tcase(s, tc);

    int have_shared = test_shared_path("data/sst2/dev.tsv") != NULL;
    if (!have_shared) {
        test_note_skip("the SST-2 part of test_int8: $ENGINE_SHARED (../shared) with data/sst2 "
                       "not found");
    } else {
        if ((n_sent = test_read_sst2_dev(&sentences, &gold)) != 872) {
            printf("FAIL test_int8: cannot read the 872 sentences of data/sst2/dev.tsv\n");
            return 1;
        }
        if (!convert_sst2())
            return 1;
        TCase *sst2 = tcase_create("sst2");
        tcase_set_timeout(sst2, 300);
        tcase_add_loop_test(sst2, test_sst2_accuracy_within_half_a_point, 0, N_SST2);
        tcase_add_loop_test(sst2, test_sst2_embeddings_close_to_reference, 0, N_SST2);
        tcase_add_loop_test(sst2, test_sst2_result_does_not_depend_on_batch, 0, N_SST2);
        suite_add_tcase(s, sst2);
    }
    int rc = test_run_suite(s);
    for (int m = 0; m < N_SST2; m++) {
        eng_model_free(sst2_model[m]);
        if (sst2_path[m].s[0])
            unlink(sst2_path[m].s);
    }
    return rc;
}
