/* test_tokjson.c: the tokenizer.json interpreter (src/text/tokjson.c)
 * against Hugging Face's tokenizers library on three small tokenizers made by
 * tests/golden/tokjson/make_tokjson.sh (a RoBERTa-like byte-level BPE, a
 * CLIP-like BPE with the </w> suffix, an XLM-R-like Unigram with a real
 * SentencePiece Precompiled charsmap): ids and byte offsets identical on the
 * SST-2 dev sentences, the hard strings and the added-token lines of
 * texts.txt; and five more pipelines covering the other components on the
 * hard strings. Plus truncation, invalid UTF-8 and components refused by name.
 * With $ENGINE_SHARED (default ../shared) also: the interpreter on the
 * sst2-bert-mini tokenizer.json gives the WordPiece fast path's ids and
 * spans on every text (the two engines behind src/text/tokenizer.h agree);
 * without it that part is skipped and the program exits 77.
 * Run from the repository root. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tokenizer.h"
#include "tokjson.h"

#define DIR "tests/golden/tokjson/"

#define MAX_IDS 4096

static eng__tokjson *load(const char *name)
{
    char path[256], err[256];
    snprintf(path, sizeof path, DIR "%s/tokenizer.json", name);
    size_t len;
    char *json = test_read_file(path, &len);
    ck_assert_msg(json, "cannot read %s", path);
    eng__tokjson *t = NULL;
    eng_status s = eng__tokjson_init(&t, json, len, err, sizeof err);
    free(json);
    ck_assert_msg(s == ENG_OK, "%s: %s", path, err);
    return t;
}

/* Every text of texts.txt (texts_hard.txt for the misc-* pipelines) against
 * the name's golden.jsonl. */
static void check_golden(const char *name)
{
    int misc = strncmp(name, "misc", 4) == 0;
    eng__tokjson *t = load(name);
    char path[256];
    size_t tlen, glen;
    char *texts = test_read_file(misc ? DIR "texts_hard.txt" : DIR "texts.txt", &tlen);
    snprintf(path, sizeof path, DIR "%s/golden.jsonl", name);
    char *gold = test_read_file(path, &glen);
    ck_assert(texts && gold);
    int32_t *ids = malloc(MAX_IDS * sizeof *ids);
    eng_token_span *spans = malloc(MAX_IDS * sizeof *spans);
    char *tp = texts, *gp = gold, *tend = texts + tlen, *gend = gold + glen;
    int n_texts = 0, bad = 0;
    while (tp < tend && gp < gend) {
        /* memchr: some texts hold NUL bytes. */
        char *tnl = memchr(tp, '\n', (size_t)(tend - tp)), *gnl = memchr(gp, '\n', (size_t)(gend - gp));
        ck_assert(tnl && gnl);
        *gnl = '\0';
        cJSON *g = cJSON_Parse(gp);
        ck_assert(g);
        const cJSON *gids = cJSON_GetArrayItem(g, 0), *gsp = cJSON_GetArrayItem(g, 1);
        int n = 0, trunc = 0;
        eng_status s = eng__tokjson_encode(t, tp, (size_t)(tnl - tp), MAX_IDS, ids, spans, MAX_IDS, &n, &trunc);
        int ok = s == ENG_OK && n == cJSON_GetArraySize(gids) && !trunc;
        for (int i = 0; ok && i < n; i++) {
            /* A null offset: the library's own offset lies past the text
             * (byte_fallback counts a continuation prefix's bytes as text),
             * so there is nothing to compare; the id still is. */
            const cJSON *sp = cJSON_GetArrayItem(gsp, i), *a = cJSON_GetArrayItem(sp, 0), *b = cJSON_GetArrayItem(sp, 1);
            ok = ids[i] == cJSON_GetArrayItem(gids, i)->valueint &&
                 (cJSON_IsNull(a) || spans[i].start == a->valueint) && (cJSON_IsNull(b) || spans[i].stop == b->valueint);
        }
        if (!ok && bad++ < 5) {
            fprintf(stderr, "%s text %d: %.*s\n  want %s\n  got ", name, n_texts + 1, (int)(tnl - tp), tp, gp);
            for (int i = 0; i < n; i++) fprintf(stderr, "%d[%d,%d] ", ids[i], spans[i].start, spans[i].stop);
            fprintf(stderr, "(status %d)\n", (int)s);
        }
        cJSON_Delete(g);
        n_texts++;
        tp = tnl + 1;
        gp = gnl + 1;
    }
    ck_assert_msg(tp == tend && gp == gend, "%s: texts.txt and golden.jsonl differ in length", name);
    ck_assert_msg(n_texts > (misc ? 200 : 1000), "%s: only %d texts", name, n_texts);
    ck_assert_msg(bad == 0, "%s: %d of %d texts differ from Hugging Face", name, bad, n_texts);
    free(ids);
    free(spans);
    free(texts);
    free(gold);
    eng__tokjson_free(t);
}

START_TEST(test_roberta_like) { check_golden("roberta-like"); }
END_TEST

START_TEST(test_clip_like) { check_golden("clip-like"); }
END_TEST

START_TEST(test_xlmr_like) { check_golden("xlmr-like"); }
END_TEST

/* The remaining components, a pipeline each (see make_tokjson.mjs). */
START_TEST(test_misc)
{
    static const char *const names[] = {"misc-bpe-fallback", "misc-bpe-unk", "misc-unigram", "misc-split",
                                        "misc-llama3"};
    check_golden(names[_i]);
}
END_TEST

/* Truncation keeps the template's tokens: the first max_len - 2 content ids,
 * then </s>; invalid UTF-8 fails the text. */
START_TEST(test_truncation_utf8)
{
    eng__tokjson *t = load("roberta-like");
    const char *text = "it 's a charming and often affecting journey , with many words in it";
    int32_t full[64], cut[8];
    int n_full, n_cut, tr;
    ck_assert_int_eq(eng__tokjson_encode(t, text, strlen(text), 64, full, NULL, 64, &n_full, &tr), ENG_OK);
    ck_assert(!tr && n_full > 8);
    ck_assert_int_eq(eng__tokjson_encode(t, text, strlen(text), 6, cut, NULL, 8, &n_cut, &tr), ENG_OK);
    ck_assert(tr);
    ck_assert_int_eq(n_cut, 6);
    ck_assert_int_eq(memcmp(cut, full, 5 * sizeof *cut), 0);
    ck_assert_int_eq(cut[5], full[n_full - 1]);
    ck_assert_int_eq(eng__tokjson_encode(t, "a\xC0\x80", 3, 8, cut, NULL, 8, &n_cut, &tr), ENG_ERR_UTF8);
    ck_assert_int_eq(eng__tokjson_encode(t, "a\xED\xA0\x80", 4, 8, cut, NULL, 8, &n_cut, &tr), ENG_ERR_UTF8);
    size_t len;
    int special;
    ck_assert_int_eq(eng__tokjson_encode(t, "", 0, 8, cut, NULL, 8, &n_cut, &tr), ENG_OK);
    ck_assert_int_eq(n_cut, 2);
    const char *s = eng__tokjson_token(t, cut[0], &len, &special);
    ck_assert(s && len == 3 && memcmp(s, "<s>", 3) == 0 && special);
    ck_assert_int_eq(eng__tokjson_token_id(t, "<mask>", 6), eng__tokjson_vocab_size(t) - 1);
    eng__tokjson_free(t);
}
END_TEST

/* A word whose chars are all unknown to a BPE without unk_token gives no
 * tokens (the library drops them), and the rest of the text still does. */
START_TEST(test_bpe_all_unknown)
{
    static const char json[] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
                               "\"merges\":[\"a b\"]},\"pre_tokenizer\":{\"type\":\"WhitespaceSplit\"}}";
    eng__tokjson *t;
    char err[256];
    ck_assert_msg(eng__tokjson_init(&t, json, strlen(json), err, sizeof err) == ENG_OK, "%s", err);
    int32_t ids[8];
    eng_token_span sp[8];
    int n, tr;
    ck_assert_int_eq(eng__tokjson_encode(t, "zz ab", 5, 8, ids, sp, 8, &n, &tr), ENG_OK);
    ck_assert_int_eq(n, 1);
    ck_assert(ids[0] == 2 && sp[0].start == 3 && sp[0].stop == 5);
    ck_assert_int_eq(eng__tokjson_encode(t, "zz", 2, 8, ids, sp, 8, &n, &tr), ENG_OK);
    ck_assert_int_eq(n, 0);
    eng__tokjson_free(t);
}
END_TEST

/* Unsupported components are refused by name. */
START_TEST(test_refused)
{
    static const struct { const char *json, *want; } cases[] = {
        {"{\"pre_tokenizer\":{\"type\":\"CharDelimiterSplit\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
         "pre_tokenizer type 'CharDelimiterSplit' is not supported"},
        {"{\"normalizer\":{\"type\":\"Nmt\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
         "normalizer type 'Nmt' is not supported"},
        {"{\"model\":{\"type\":\"WordLevel\",\"vocab\":{}}}", "model type 'WordLevel' is not supported"},
        {"{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{},\"merges\":[]}}", "BPE dropout is not supported"},
        {"{\"post_processor\":{\"type\":\"Foo\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
         "post_processor type 'Foo' is not supported"},
        {"{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?<=a)b\"},\"behavior\":\"Isolated\"},"
         "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
         "Split pattern: regex: group not supported"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}", "uses a token missing"},
        {"[1,2]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        eng__tokjson *t = NULL;
        char err[256] = "";
        eng_status s = eng__tokjson_init(&t, cases[i].json, strlen(cases[i].json), err, sizeof err);
        ck_assert_msg(s != ENG_OK && !t, "case %zu accepted", i);
        ck_assert_int_eq(s, strstr(cases[i].want, "not supported") ? ENG_ERR_UNSUPPORTED : ENG_ERR_FORMAT);
        ck_assert_msg(strstr(err, cases[i].want), "case %zu: '%s' lacks '%s'", i, err, cases[i].want);
    }
}
END_TEST

#if TEST_COUNT_ALLOCS
/* Once a thread has tokenized a text, texts of up to the kept size run in
 * its working memory: none of the golden texts allocates on a warm thread,
 * with each model kind (BPE, Unigram) and pipeline. */
START_TEST(test_warm_encode_does_not_allocate)
{
    static const char *const names[] = {"roberta-like", "clip-like", "xlmr-like"};
    size_t tlen;
    char *texts = test_read_file(DIR "texts.txt", &tlen);
    ck_assert_ptr_nonnull(texts);
    static int32_t ids[MAX_IDS];
    static eng_token_span spans[MAX_IDS];
    for (int m = 0; m < 3; m++) {
        eng__tokjson *t = load(names[m]);
        for (int pass = 0; pass < 2; pass++) {
            /* No Check assertion inside the loop: Check allocates. */
            const long before = test_allocs();
            int n_texts = 0, failed = 0;
            for (char *p = texts, *end = texts + tlen; p < end; n_texts++) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = (size_t)((nl ? nl : end) - p);
                int n, tr;
                failed += eng__tokjson_encode(t, p, len, MAX_IDS, ids, spans, MAX_IDS, &n, &tr) != ENG_OK;
                p += len + 1;
            }
            const long allocs = test_allocs() - before;
            ck_assert_int_eq(failed, 0);
            /* The first pass grows the working memory; the second must not. */
            if (pass == 1)
                ck_assert_msg(allocs == 0, "%s: %ld allocations over %d warm texts", names[m], allocs,
                              n_texts);
        }
        eng__tokjson_free(t);
    }
    free(texts);
}
END_TEST
#endif

/* BERT's tokenizer.json through the interpreter and its vocab.txt through
 * the fast path: the same ids and spans on SST-2 dev and the hard texts. */
START_TEST(test_bert_both_engines)
{
    char err[512];
    size_t jlen, vlen, tlen;
    char *json = test_read_file(test_shared_path("models/sst2-bert-mini/tokenizer.json"), &jlen);
    char *vocab = test_read_file(test_shared_path("models/sst2-bert-mini/vocab.txt"), &vlen);
    char *texts = test_read_file(DIR "texts.txt", &tlen);
    ck_assert(json && vocab && texts);
    eng__tokenizer *interp, *fast;
    ck_assert_msg(eng__tokenizer_init_json(&interp, json, jlen, 0, err, sizeof err) == ENG_OK, "%s", err);
    const eng__tok_config cfg = {.lowercase = 1, .strip_accents = 1, .chinese_chars = 1, .max_chars_per_word = 100,
                                 .unk = "[UNK]", .cls = "[CLS]", .sep = "[SEP]", .pad = "[PAD]"};
    ck_assert_msg(eng__tokenizer_init(&fast, vocab, vlen, &cfg, err, sizeof err) == ENG_OK, "%s", err);
    static int32_t a[MAX_IDS], b[MAX_IDS];
    static eng_token_span sa[MAX_IDS], sb[MAX_IDS];
    int n_texts = 0, bad = 0;
    for (char *p = texts, *end = texts + tlen; p < end; n_texts++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        int na, nb, ta, tb;
        /* 128: truncation too, as the models run. */
        eng_status s1 = eng__tokenize_spans(interp, p, len, 128, a, sa, MAX_IDS, &na, &ta);
        eng_status s2 = eng__tokenize_spans(fast, p, len, 128, b, sb, MAX_IDS, &nb, &tb);
        int same = s1 == s2 && na == nb && ta == tb && !memcmp(a, b, (size_t)na * sizeof *a) &&
                   !memcmp(sa, sb, (size_t)na * sizeof *sa);
        if (!same && bad++ < 5) fprintf(stderr, "bert text %d differs: %.*s\n", n_texts + 1, (int)len, p);
        p += len + 1;
    }
    ck_assert_int_gt(n_texts, 1000);
    ck_assert_msg(bad == 0, "%d of %d texts differ between the engines", bad, n_texts);
    eng__tokenizer_free(interp);
    eng__tokenizer_free(fast);
    free(json);
    free(vocab);
    free(texts);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokjson");
    TCase *tc = tcase_create("tokjson");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_roberta_like);
    tcase_add_test(tc, test_clip_like);
    tcase_add_test(tc, test_xlmr_like);
    tcase_add_loop_test(tc, test_misc, 0, 5);
    tcase_add_test(tc, test_truncation_utf8);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_bpe_all_unknown);
#if TEST_COUNT_ALLOCS
    tcase_add_test(tc, test_warm_encode_does_not_allocate);
#else
    test_note_skip("a sanitizer owns malloc in this build: the no-allocation check did not run");
#endif
    if (test_shared_path("models/sst2-bert-mini/tokenizer.json"))
        tcase_add_test(tc, test_bert_both_engines);
    else
        test_note_skip("no $ENGINE_SHARED/models/sst2-bert-mini/tokenizer.json: the BERT two-engine test did not run");
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
