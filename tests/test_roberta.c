/* test_roberta.c: the RoBERTa family (RoBERTa, XLM-RoBERTa, CamemBERT) beyond
 * what test_golden_tiny (fp32 against tests/golden/robertaref.py) and
 * test_int8 (int8 against it) check on the same tiny folders of
 * tests/golden/tiny: bf16 (a --dtype bf16 file and bf16 contexts) against the
 * reference; the longest sequence, max_position_embeddings - pad_token_id - 1,
 * and one more refused; the file's metadata; text input refused by name while
 * a folder has no tokenizer.json (by the library, every item failing with
 * ENG_ERR_UNSUPPORTED, and by the command line, which refuses the model);
 * text through tokenizer.json, the same as the library's ids;
 * and the configurations convert refuses, each
 * by the name of what it does not support. Needs nothing from ../shared. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bert_layout.h"
#include "bgemm.h"
#include "engine.h"
#include "format.h"
#include "testutil.h"

#define GOLDEN_DIR "tests/golden/tiny"
/* bf16 against the fp32 reference: |engine - reference| <= TOL_BF16_ABS +
 * TOL_BF16_REL * max|reference row|. Every GEMM input is rounded to 8
 * significant bits (relative error 2^-9 each), on random weights of std 0.2
 * whose activations are far from a trained model's; measured worst 0.46
 * of this bound on these models. */
#define TOL_BF16_ABS 0.01f
#define TOL_BF16_REL 0.02f

static const char *MODELS[] = {"roberta-cls-3labels",   "xlmr-cls-bin",     "xlmr-st-mean-norm-f16",
                               "camembert-st-cls-bf16", "roberta-text-f16", "xlmr-text-st-f16"};
/* Their longest sequences: max_position_embeddings - pad_token_id - 1. */
static const int LONGEST[] = {26 - 1 - 1, 22 - 1 - 1, 20 - 1 - 1, 24 - 3 - 1, 50 - 1 - 1, 50 - 1 - 1};
enum {
    N_MODELS = sizeof MODELS / sizeof MODELS[0],
    MAX_ROWS = TEST_GOLDEN_ROWS,
    MAX_IDS = TEST_GOLDEN_IDS,
    MAX_OUT = TEST_GOLDEN_OUT
};

static void tmp_out(char *out, size_t len, const char *name, const char *what)
{
    snprintf(out, len, "/tmp/eng-test-roberta-%d-%s-%s.eng", (int)getpid(), name, what);
}

static eng_model *convert_and_load(const char *name, const char *dtype, char *out, size_t len)
{
    char dir[512], err[512];
    snprintf(dir, sizeof dir, "%s/%s", GOLDEN_DIR, name);
    tmp_out(out, len, name, dtype);
    cv_config c;
    cv_report r;
    ck_assert_msg(cv_convert_hf_as(dir, dtype, out, &c, &r, err, sizeof err) == ENG_OK, "%s: %s",
                  name, err);
    cv_config_free(&c);
    eng_model *m = NULL;
    ck_assert_msg(eng_model_load(out, NULL, &m) == ENG_OK, "%s", eng_last_error());
    return m;
}

static eng_ctx *ctx_new(const eng_model *m, eng_precision p)
{
    eng_ctx_params cp = eng_ctx_default_params();
    cp.precision = p;
    eng_ctx *c = NULL;
    ck_assert_msg(eng_ctx_init(m, &cp, &c) == ENG_OK, "%s", eng_last_error());
    return c;
}

/* Runs g's sequences on c and checks them against the reference within
 * abs + rel * max|reference row|; returns the worst error as a share of it. */
static float check_against_reference(eng_ctx *c, const test_golden *g, const char *what, float abs_tol,
                                     float rel_tol)
{
    static float got[MAX_ROWS * MAX_OUT];
    eng_status s = g->is_logits ? eng_classify_ids(c, g->seq, g->n, got, NULL, NULL, NULL)
                                : eng_embed_ids(c, g->seq, g->n, got, NULL);
    ck_assert_msg(s == ENG_OK, "%s: %s", what, eng_ctx_last_error(c));
    float worst = 0.0f;
    for (int r = 0; r < g->n; r++) {
        float scale = 0.0f;
        for (int k = 0; k < g->width; k++)
            scale = fmaxf(scale, fabsf(g->expect[r][k]));
        const float tol = abs_tol + rel_tol * scale;
        for (int k = 0; k < g->width; k++) {
            float d = fabsf(got[r * g->width + k] - g->expect[r][k]);
            worst = fmaxf(worst, d / tol);
            ck_assert_msg(d <= tol, "%s row %d (%d ids) output %d: %g, reference %g", what, r,
                          g->seq[r].n_ids, k, (double)got[r * g->width + k],
                          (double)g->expect[r][k]);
        }
    }
    return worst;
}

START_TEST(test_bf16_against_reference)
{
    const char *name = MODELS[_i];
    test_golden g;
    test_read_golden(name, &g);
    char out32[512], out16[512], what[160];
    eng_model *m32 = convert_and_load(name, "fp32", out32, sizeof out32);
    eng_model *m16 = convert_and_load(name, "bf16", out16, sizeof out16);
    eng_model_info info;
    eng_model_get_info(m16, &info);
    ck_assert_str_eq(info.weights, "bf16");
    /* The bf16 file under bf16 and under fp32 (widened once), and the fp32
     * file under bf16 (rounded once). */
    const struct {
        eng_model *m;
        eng_precision p;
        const char *label;
    } runs[] = {{m16, ENG_PREC_BF16, "bf16 file, bf16 context"},
                {m16, ENG_PREC_FP32, "bf16 file, fp32 context"},
                {m32, ENG_PREC_BF16, "fp32 file, bf16 context"}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        eng_ctx *c = ctx_new(runs[k].m, runs[k].p);
        snprintf(what, sizeof what, "%s (%s)", name, runs[k].label);
        float worst = check_against_reference(c, &g, what, TOL_BF16_ABS, TOL_BF16_REL);
        printf("%s: %d sequences, worst error %.2f of the tolerance\n", what, g.n, (double)worst);
        eng_ctx_free(c);
    }
    eng_model_free(m32);
    eng_model_free(m16);
    unlink(out32);
    unlink(out16);
}
END_TEST

START_TEST(test_longest_sequence_and_metadata)
{
    const char *name = MODELS[_i];
    char out[512];
    eng_model *m = convert_and_load(name, "fp32", out, sizeof out);
    eng_model_info info;
    eng_model_get_info(m, &info);
    ck_assert_int_eq(info.max_positions, LONGEST[_i]);

    /* The metadata records the folded offset and that no tokenizer came. */
    eng__file f;
    char err[256];
    ck_assert_msg(eng__file_open(&f, out, err, sizeof err) == ENG_OK, "%s", err);
    cJSON *meta = cJSON_ParseWithLength(f.meta, f.meta_size);
    char cfg_path[512];
    snprintf(cfg_path, sizeof cfg_path, "%s/%s/config.json", GOLDEN_DIR, name);
    char *cfg_text = test_read_file(cfg_path, NULL);
    cJSON *cfg = cJSON_Parse(cfg_text);
    ck_assert_int_eq(cJSON_GetObjectItem(meta, "position_offset")->valueint,
                     cJSON_GetObjectItem(cfg, "pad_token_id")->valueint + 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(meta, "tokenizer"), "type")->valuestring,
                     "none");
    ck_assert_ptr_null(eng__file_find(&f, "tok.vocab"));
    cJSON_Delete(cfg);
    free(cfg_text);
    cJSON_Delete(meta);
    eng__file_close(&f);

    eng_ctx *c = ctx_new(m, ENG_PREC_FP32);
    int32_t ids[MAX_IDS + 1];
    for (int i = 0; i <= LONGEST[_i]; i++)
        ids[i] = 4 + i % 7;
    eng_seq seq[2] = {{ids, LONGEST[_i]}, {ids, LONGEST[_i] + 1}};
    float outv[2 * MAX_OUT];
    eng_status st[2];
    eng_status s = info.n_labels ? eng_classify_ids(c, seq, 2, outv, NULL, NULL, st)
                                 : eng_embed_ids(c, seq, 2, outv, st);
    ck_assert_int_eq(s, ENG_ERR_TOO_LONG);
    ck_assert_int_eq(st[0], ENG_OK);
    ck_assert_int_eq(st[1], ENG_ERR_TOO_LONG);
    eng_ctx_free(c);
    eng_model_free(m);
    unlink(out);
}
END_TEST

START_TEST(test_text_input_refused_without_tokenizer)
{
    char out[512];
    eng_model *m = convert_and_load("roberta-cls-3labels", "fp32", out, sizeof out);
    int32_t ids[8];
    int n = -1;
    ck_assert_int_eq(eng_tokenize(m, "a text", 6, ids, 8, &n, NULL), ENG_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(eng_last_error(), "no tokenizer; pass token ids"), "%s", eng_last_error());
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_null(eng_model_token(m, 5, NULL, NULL));

    eng_ctx *c = ctx_new(m, ENG_PREC_FP32);
    const char *texts[2] = {"a text", "another"};
    float logits[2 * 3] = {1, 1, 1, 1, 1, 1}, emb[48];
    int labels[2] = {7, 7};
    eng_status st[2] = {ENG_OK, ENG_OK};
    /* Every item fails, and says why: outputs zero, labels -1. */
    ck_assert_int_eq(eng_classify(c, texts, 2, logits, NULL, labels, st), ENG_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(eng_ctx_last_error(c), "no tokenizer; pass token ids"), "%s",
                  eng_ctx_last_error(c));
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(st[i], ENG_ERR_UNSUPPORTED);
        ck_assert_int_eq(labels[i], -1);
        ck_assert(logits[3 * i] == 0.0f && logits[3 * i + 2] == 0.0f);
    }
    ck_assert_int_eq(eng_embed(c, texts, 1, emb, NULL), ENG_ERR_UNSUPPORTED);
    /* The ids entry points still work on the same context. */
    int32_t seq_ids[3] = {0, 9, 2};
    eng_seq seq = {seq_ids, 3};
    ck_assert_int_eq(eng_classify_ids(c, &seq, 1, logits, NULL, NULL, NULL), ENG_OK);
    ck_assert(isfinite(logits[0]) && isfinite(logits[2]));
    eng_ctx_free(c);
    eng_model_free(m);

    /* The command line reads text lines: it refuses the model up front
     * (exit 4, "model unfit") instead of failing every line. */
    char cmd[2048], log[600];
    snprintf(log, sizeof log, "%s.log", out);
    snprintf(cmd, sizeof cmd, "echo hello | %s classify %s > %s 2>&1", test_build_path("engine"),
             out, log);
    int rc = system(cmd);
    ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 4, "%s: exit %d", cmd, WEXITSTATUS(rc));
    char *said = test_read_file(log, NULL);
    ck_assert_msg(said && strstr(said, "has no tokenizer"), "%s", said ? said : "(nothing)");
    free(said);
    unlink(log);
    unlink(out);
}
END_TEST

/* A temporary folder of links to tests/golden/tiny/<name>'s files (but its
 * expected.jsonl) and to tests/golden/tokjson/<tok>/tokenizer.json. */
static void folder_with_tokenizer(char *dir, size_t len, const char *name, const char *tok)
{
    snprintf(dir, len, "/tmp/eng-test-roberta-%d-%s", (int)getpid(), name);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    static const char *const files[] = {"config.json", "model.safetensors", "modules.json",
                                        "1_Pooling", "tokenizer.json"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char src[512], dst[600];
        if (k + 1 < sizeof files / sizeof files[0])
            snprintf(src, sizeof src, "%s/%s/%s", GOLDEN_DIR, name, files[k]);
        else
            snprintf(src, sizeof src, "tests/golden/tokjson/%s/tokenizer.json", tok);
        char *real = realpath(src, NULL);
        if (!real)
            continue; /* modules.json and 1_Pooling: sentence-transformers only */
        snprintf(dst, sizeof dst, "%s/%s", dir, files[k]);
        ck_assert_int_eq(symlink(real, dst), 0);
        free(real);
    }
}

static void remove_folder(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Text input through tokenizer.json: tests/golden/tokjson's RoBERTa-like
 * byte-level BPE and XLM-R-like Unigram (their ids checked against Hugging
 * Face's tokenizers library by test_tokjson) beside tiny models of their
 * vocabulary sizes. For every text of texts.txt (those without NUL bytes),
 * eng_tokenize gives the library's ids, truncated as the pipelines truncate
 * (the first max_positions - 1 ids and the closing one), and eng_classify /
 * eng_embed give what the ids entry points give on those ids. */
static const struct {
    const char *model, *tok;
} TEXT_MODELS[] = {{"roberta-text-f16", "roberta-like"}, {"xlmr-text-st-f16", "xlmr-like"}};
/* The same ids through the same row-local computation: equal but for the
 * batch's chunking, which the built-in GEMM's results do not depend on;
 * one rounding step on outputs of size ~1 leaves room for other GEMMs. */
#define TOL_SAME_IDS 1e-6f

/* eng_classify (eng_embed) on n texts against eng_classify_ids
 * (eng_embed_ids) on their ids. */
static void same_by_text_and_ids(eng_ctx *ctx, const eng_model_info *info, const char *const *texts,
                                 const eng_seq *seqs, int n, const char *name)
{
    static float by_text[64 * MAX_OUT], by_ids[64 * MAX_OUT];
    const int width = info->n_labels ? info->n_labels : info->hidden;
    ck_assert_int_le(n, 64);
    eng_status s = info->n_labels ? eng_classify(ctx, texts, n, by_text, NULL, NULL, NULL)
                                  : eng_embed(ctx, texts, n, by_text, NULL);
    ck_assert_msg(s == ENG_OK, "%s", eng_ctx_last_error(ctx));
    s = info->n_labels ? eng_classify_ids(ctx, seqs, n, by_ids, NULL, NULL, NULL)
                       : eng_embed_ids(ctx, seqs, n, by_ids, NULL);
    ck_assert_int_eq(s, ENG_OK);
    for (int i = 0; i < n * width; i++)
        ck_assert_msg(fabsf(by_text[i] - by_ids[i]) <= TOL_SAME_IDS,
                      "%s: output %d by text %g, by ids %g", name, i, (double)by_text[i],
                      (double)by_ids[i]);
}

START_TEST(test_text_through_tokenizer_json)
{
    const char *name = TEXT_MODELS[_i].model, *tok = TEXT_MODELS[_i].tok;
    char dir[256], out[512], err[512], path[512];
    folder_with_tokenizer(dir, sizeof dir, name, tok);
    tmp_out(out, sizeof out, name, "text");
    cv_config c;
    cv_report r;
    ck_assert_msg(cv_convert_hf(dir, out, &c, &r, err, sizeof err) == ENG_OK, "%s: %s", name, err);
    ck_assert(!c.no_tokenizer && c.tok_json);
    cv_config_free(&c);
    remove_folder(dir);
    eng_model *m = NULL;
    ck_assert_msg(eng_model_load(out, NULL, &m) == ENG_OK, "%s", eng_last_error());
    eng_model_info info;
    eng_model_get_info(m, &info);
    const int P = info.max_positions;
    eng_ctx *ctx = ctx_new(m, ENG_PREC_FP32);

    size_t tlen = 0, glen = 0;
    char *texts = test_read_file("tests/golden/tokjson/texts.txt", &tlen);
    snprintf(path, sizeof path, "tests/golden/tokjson/%s/golden.jsonl", tok);
    char *gold = test_read_file(path, &glen);
    ck_assert(texts && gold);
    enum { B = 64 };
    static const char *batch[B];
    static int32_t ids[B][MAX_IDS];
    eng_seq seqs[B];
    char *tp = texts, *gp = gold, *const tend = texts + tlen, *const gend = gold + glen;
    int n = 0, n_texts = 0, n_truncated = 0;
    while (tp < tend && gp < gend) {
        /* memchr: some texts hold NUL bytes (C strings cannot: skipped). */
        char *tnl = memchr(tp, '\n', (size_t)(tend - tp)), *gnl = memchr(gp, '\n', (size_t)(gend - gp));
        ck_assert(tnl && gnl);
        *tnl = *gnl = '\0';
        const char *text = tp, *line = gp;
        tp = tnl + 1;
        gp = gnl + 1;
        if (strlen(text) != (size_t)(tnl - text))
            continue;
        cJSON *g = cJSON_Parse(line);
        const cJSON *gids = cJSON_GetArrayItem(g, 0);
        const int k = cJSON_GetArraySize(gids);
        ck_assert(k >= 2);
        /* HF truncation to the position limit: keeps <s>, the first
         * P - 2 tokens of the text and </s>. */
        const int want = k > P ? P : k;
        for (int i = 0; i < want; i++)
            ids[n][i] = cJSON_GetArrayItem(gids, i < want - 1 ? i : k - 1)->valueint;
        n_truncated += k > P;
        cJSON_Delete(g);
        int32_t got[MAX_IDS];
        int got_n = 0, trunc = 0;
        ck_assert_int_eq(eng_tokenize(m, text, strlen(text), got, MAX_IDS, &got_n, &trunc), ENG_OK);
        ck_assert_msg(got_n == want && !memcmp(got, ids[n], (size_t)want * sizeof *got),
                      "%s text %d (%s): %d ids, the library's %d (truncated to %d)", name,
                      n_texts + 1, text, got_n, k, want);
        ck_assert_int_eq(trunc, k > P);
        seqs[n] = (eng_seq){ids[n], want};
        batch[n++] = text;
        n_texts++;
        if (n == B || tp >= tend) {
            same_by_text_and_ids(ctx, &info, batch, seqs, n, name);
            n = 0;
        }
    }
    if (n > 0)
        same_by_text_and_ids(ctx, &info, batch, seqs, n, name);
    printf("%s with %s: %d texts (%d truncated to %d ids), text and ids agree\n", name, tok,
           n_texts, n_truncated, P);
    ck_assert_int_gt(n_texts, 1000);
    free(texts);
    free(gold);
    eng_ctx_free(ctx);
    eng_model_free(m);
    unlink(out);
}
END_TEST

/* A copy of roberta-cls-3labels whose config.json has `key` set to the JSON
 * `value` (or `architectures` replaced); convert must refuse it with `want`
 * in its one-line message and write nothing. */
START_TEST(test_refused_configs)
{
    static const struct {
        const char *key, *value, *want;
    } cases[] = {
        {"position_embedding_type", "\"relative_key_query\"", "relative_key_query"},
        {"is_decoder", "true", "is_decoder"},
        {"add_cross_attention", "true", "add_cross_attention"},
        {"hidden_act", "\"silu\"", "silu"},
        {"architectures", "[\"RobertaForMaskedLM\"]", "RobertaForMaskedLM"},
        {"architectures", "[\"XLMRobertaForSequenceClassification\"]",
         "XLMRobertaForSequenceClassification"},   /* not a model_type roberta name */
        {"model_type", "\"xlm-roberta-xl\"", "xlm-roberta-xl"},
        {"pad_token_id", "24", "max_position_embeddings"},   /* 26 - 25: no room for text */
        {"pad_token_id", "61", "pad_token_id"},              /* not below vocab_size */
        {"pad_token_id", "-1", "pad_token_id"},
    };
    const char *src = GOLDEN_DIR "/roberta-cls-3labels";
    char dir[256], path[512], cfg_path[512];
    snprintf(dir, sizeof dir, "/tmp/eng-test-roberta-%d-bad", (int)getpid());
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    char *real = realpath(src, NULL);
    char target[600];
    snprintf(target, sizeof target, "%s/model.safetensors", real);
    free(real);
    ck_assert_int_eq(symlink(target, path), 0);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", src);
    char *base = test_read_file(cfg_path, NULL);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *cfg = cJSON_Parse(base);
        cJSON *v = cJSON_Parse(cases[i].value);
        if (!cJSON_ReplaceItemInObject(cfg, cases[i].key, v))
            cJSON_AddItemToObject(cfg, cases[i].key, v);
        char *text = cJSON_Print(cfg);
        FILE *f = fopen(cfg_path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
        free(text);
        cJSON_Delete(cfg);
        char out[512], err[512] = "";
        tmp_out(out, sizeof out, "bad", cases[i].want);
        cv_config c;
        cv_report r;
        eng_status s = cv_convert_hf(dir, out, &c, &r, err, sizeof err);
        ck_assert_msg(s != ENG_OK, "case %zu (%s) converted", i, cases[i].want);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: wanted '%s' in '%s'", i,
                      cases[i].want, err);
        ck_assert_msg(strchr(err, '\n') == NULL, "one line");
        ck_assert_int_ne(access(out, F_OK), 0);
    }
    free(base);
    unlink(cfg_path);
    unlink(path);
    rmdir(dir);
}
END_TEST

int main(void)
{
    if (access(GOLDEN_DIR, R_OK) != 0) {
        printf("FAIL test_roberta: %s not found (run from the repository root)\n", GOLDEN_DIR);
        return 1;
    }
    Suite *s = suite_create("roberta");
    TCase *tc = tcase_create("roberta");
    tcase_set_timeout(tc, 60);
    if (eng__bgemm_get())
        tcase_add_loop_test(tc, test_bf16_against_reference, 0, N_MODELS);
    else
        test_note_skip("bf16: no bf16 unit (AVX-512) on this CPU");
    tcase_add_loop_test(tc, test_longest_sequence_and_metadata, 0, N_MODELS);
    tcase_add_test(tc, test_text_input_refused_without_tokenizer);
    tcase_add_test(tc, test_refused_configs);
    tcase_add_loop_test(tc, test_text_through_tokenizer_json, 0,
                        sizeof TEXT_MODELS / sizeof TEXT_MODELS[0]);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
