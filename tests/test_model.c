/* test_model.c: end to end on the real SST-2 models of $ENGINE_SHARED,
 * converted by `make models` into $ENGINE_BUILD/models: token ids, logits,
 * accuracy and embeddings against the Hugging Face / PyTorch reference files
 * (../shared/data/sst2, made by ../shared/reference), batch invariance, and bad
 * input on the loaded model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "engine.h"
#include "testutil.h"

/* Issue 2 asked for logits within 1e-4 of PyTorch's; fp32 in another
 * summation order achieves 1.8e-6 on SST-2 (logits of size ~3, 4 layers of
 * width 256), so the check holds it to 2e-5: about 10x for other CPUs'
 * kernels and OpenBLAS versions. */
#define TOL_LOGIT_ABS 2e-5f
#define TOL_BATCH_INVARIANT 1e-5f /* alone vs in a batch of 64 */
#define MIN_EMBED_COSINE 0.99999

static const char *MODELS[] = {"sst2-bert-mini", "sst2-distilbert-mini"};
enum { N_MODELS = 2 };

static eng_model *model[N_MODELS];
static char **sentences; /* the dev set's texts, trailing space kept */
static int *gold;        /* the dev set's labels */
static int n_sent;

START_TEST(test_token_ids_match_reference)
{
    char *text = test_read_file(test_shared_path("data/sst2/dev.ids.jsonl"), NULL);
    ck_assert_ptr_nonnull(text);
    int n = 0;
    char **lines = test_split_lines(text, &n);
    ck_assert_int_eq(n, n_sent);
    int32_t ids[512];
    for (int m = 0; m < N_MODELS; m++) {
        for (int i = 0; i < n; i++) {
            int n_ids = 0;
            ck_assert_int_eq(
                eng_tokenize(model[m], sentences[i], strlen(sentences[i]), ids, 512, &n_ids, NULL),
                ENG_OK);
            cJSON *ref = cJSON_Parse(lines[i]);
            ck_assert_int_eq(cJSON_GetArraySize(ref), n_ids);
            int k = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, ref)
            {
                ck_assert_msg(ids[k] == v->valueint, "sentence %d token %d: %d, reference %d", i, k,
                              ids[k], v->valueint);
                k++;
            }
            cJSON_Delete(ref);
        }
    }
    free(lines);
    free(text);
}
END_TEST

START_TEST(test_logits_and_accuracy_match_reference)
{
    int m = _i;
    char rel[256];
    snprintf(rel, sizeof rel, "data/sst2/%s.logits.jsonl", MODELS[m]);
    int n = 0, C = 0;
    float *ref = test_read_jsonl_floats(test_shared_path(rel), "logits", &n, &C);
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(n, n_sent);
    int *labels = NULL;
    float *logits = test_classify_all(model[m], sentences, n, &labels);
    float worst = 0.0f;
    int correct = 0, ref_correct = 0;
    for (int i = 0; i < n; i++) {
        int ref_label = ref[(size_t)i * C + 1] > ref[(size_t)i * C] ? 1 : 0;
        for (int k = 0; k < C; k++)
            worst = fmaxf(worst, fabsf(logits[(size_t)i * C + k] - ref[(size_t)i * C + k]));
        correct += labels[i] == gold[i];
        ref_correct += ref_label == gold[i];
    }
    printf("%s: max |logit - reference| = %.3g, accuracy %d/%d (reference %d/%d)\n", MODELS[m],
           (double)worst, correct, n, ref_correct, n);
    ck_assert_float_le(worst, TOL_LOGIT_ABS);
    ck_assert_int_eq(correct, ref_correct);
    free(logits);
    free(labels);
    free(ref);
}
END_TEST

START_TEST(test_embeddings_match_reference)
{
    int m = _i;
    char rel[256];
    snprintf(rel, sizeof rel, "data/sst2/%s.embeddings.jsonl", MODELS[m]);
    int n = 0, H = 0;
    float *ref = test_read_jsonl_floats(test_shared_path(rel), "embedding", &n, &H);
    ck_assert_ptr_nonnull(ref);
    eng_model_info info;
    eng_model_get_info(model[m], &info);
    ck_assert_int_eq(H, info.hidden);
    eng_ctx *ctx = NULL;
    ck_assert_int_eq(eng_ctx_init(model[m], NULL, &ctx), ENG_OK);
    float *emb = malloc((size_t)n * H * sizeof *emb);
    ck_assert_int_eq(eng_embed(ctx, (const char *const *)sentences, n, emb, NULL), ENG_OK);
    double worst = 1.0;
    for (int i = 0; i < n; i++) {
        const double cosine = test_cosine(emb + (size_t)i * H, ref + (size_t)i * H, H);
        worst = cosine < worst ? cosine : worst;
    }
    printf("%s: worst embedding cosine %.9f\n", MODELS[m], worst);
    ck_assert_double_ge(worst, MIN_EMBED_COSINE);
    free(emb);
    free(ref);
    eng_ctx_free(ctx);
}
END_TEST

START_TEST(test_result_does_not_depend_on_batch)
{
    eng_model *mdl = model[_i];
    eng_ctx *ctx = NULL;
    ck_assert_int_eq(eng_ctx_init(mdl, NULL, &ctx), ENG_OK);
    enum { B = 64 };
    float batch[B * 2], alone[2];
    /* A batch mixing short and long sentences. */
    const char *texts[B];
    for (int i = 0; i < B; i++)
        texts[i] = sentences[(i * 13) % n_sent];
    ck_assert_int_eq(eng_classify(ctx, texts, B, batch, NULL, NULL, NULL), ENG_OK);
    for (int i = 0; i < B; i++) {
        ck_assert_int_eq(eng_classify(ctx, texts + i, 1, alone, NULL, NULL, NULL), ENG_OK);
        for (int k = 0; k < 2; k++)
            ck_assert_float_eq_tol(alone[k], batch[i * 2 + k], TOL_BATCH_INVARIANT);
    }
    eng_ctx_free(ctx);
}
END_TEST

START_TEST(test_bad_item_fails_alone)
{
    eng_model *mdl = model[0];
    eng_ctx *ctx = NULL;
    ck_assert_int_eq(eng_ctx_init(mdl, NULL, &ctx), ENG_OK);
    /* A 10,000-word text: truncated to the position limit, still classified. */
    size_t big_len = 10000 * 6;
    char *big = malloc(big_len + 1);
    for (size_t i = 0; i < big_len; i += 6)
        memcpy(big + i, "movie ", 6);
    big[big_len] = '\0';
    const char *texts[5] = {sentences[0], "bad \xff\xfe utf-8", "", big, sentences[1]};
    float logits[5 * 2], probs[5 * 2];
    int labels[5];
    eng_status st[5];
    eng_status s = eng_classify(ctx, texts, 5, logits, probs, labels, st);
    ck_assert_int_eq(s, ENG_ERR_UTF8);
    ck_assert_int_eq(st[0], ENG_OK);
    ck_assert_int_eq(st[1], ENG_ERR_UTF8);
    ck_assert_int_eq(st[2], ENG_OK);
    ck_assert_int_eq(st[3], ENG_OK);
    ck_assert_int_eq(st[4], ENG_OK);
    ck_assert(strstr(eng_ctx_last_error(ctx), "UTF-8") != NULL);
    /* Neighbours of the bad item give what they give alone. */
    float alone[2];
    ck_assert_int_eq(eng_classify(ctx, texts + 4, 1, alone, NULL, NULL, NULL), ENG_OK);
    ck_assert_float_eq_tol(alone[0], logits[8], TOL_BATCH_INVARIANT);
    ck_assert_float_eq_tol(probs[6] + probs[7], 1.0f, 1e-6f);

    int32_t ids[512];
    int n_ids = 0, truncated = 0;
    ck_assert_int_eq(eng_tokenize(mdl, "", 0, ids, 512, &n_ids, &truncated), ENG_OK);
    ck_assert_int_eq(n_ids, 2); /* [CLS] [SEP], as Hugging Face does */
    ck_assert_int_eq(ids[0], 101);
    ck_assert_int_eq(ids[1], 102);
    ck_assert_int_eq(eng_tokenize(mdl, big, big_len, ids, 512, &n_ids, &truncated), ENG_OK);
    ck_assert_int_eq(n_ids, 512);
    ck_assert_int_eq(truncated, 1);
    ck_assert_int_eq(ids[511], 102);

    /* Ids out of range and over-long sequences fail alone too. */
    int32_t bad_ids[3] = {101, 999999, 102};
    eng_seq seqs[2] = {{bad_ids, 3}, {ids, 513}};
    ck_assert_int_eq(eng_classify_ids(ctx, seqs, 2, logits, NULL, labels, st), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(st[0], ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(st[1], ENG_ERR_TOO_LONG);
    ck_assert_int_eq(labels[0], -1);
    free(big);
    eng_ctx_free(ctx);
}
END_TEST

START_TEST(test_damaged_model_file_is_refused)
{
    size_t len = 0;
    char *bytes = test_read_file(test_build_path("models/sst2-bert-mini.eng"), &len);
    ck_assert_ptr_nonnull(bytes);
    char path[] = "/tmp/eng-test-damaged-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "wb");
    fwrite(bytes, 1, len / 3, f); /* truncated */
    fclose(f);
    eng_model *m = (eng_model *)1;
    ck_assert_int_eq(eng_model_load(path, NULL, &m), ENG_ERR_FORMAT);
    ck_assert_ptr_null(m);
    ck_assert(strlen(eng_last_error()) > 0);
    unlink(path);
    ck_assert_int_eq(eng_model_load("/nonexistent/model.eng", NULL, &m), ENG_ERR_IO);
    free(bytes);
}
END_TEST

int main(void)
{
    if (!test_shared_path("data/sst2/dev.tsv")) {
        printf("SKIP test_model: $ENGINE_SHARED (../shared) with data/sst2 not found\n");
        return TEST_SKIP;
    }
    for (int m = 0; m < N_MODELS; m++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/%s.eng", MODELS[m]);
        if (eng_model_load(test_build_path(rel), NULL, &model[m]) != ENG_OK) {
            printf("FAIL test_model: cannot load %s: %s (run `make models`)\n",
                   test_build_path(rel), eng_last_error());
            return 1;
        }
    }
    if ((n_sent = test_read_sst2_dev(&sentences, &gold)) != 872) {
        printf("FAIL test_model: cannot read the 872 sentences of data/sst2/dev.tsv\n");
        return 1;
    }
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("sst2");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_token_ids_match_reference);
    tcase_add_loop_test(tc, test_logits_and_accuracy_match_reference, 0, N_MODELS);
    tcase_add_loop_test(tc, test_embeddings_match_reference, 0, N_MODELS);
    tcase_add_loop_test(tc, test_result_does_not_depend_on_batch, 0, N_MODELS);
    tcase_add_test(tc, test_bad_item_fails_alone);
    tcase_add_test(tc, test_damaged_model_file_is_refused);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    for (int m = 0; m < N_MODELS; m++)
        eng_model_free(model[m]);
    return rc;
}
