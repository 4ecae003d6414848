/* test_tokenizer.c: the BERT WordPiece tokenizer (src/text/tokenizer.c) against
 * Hugging Face's ids: the 872 SST-2 dev sentences and the hard texts of
 * tests/golden/tokenizer_hard.txt (made by make_tokenizer_golden.sh), plus
 * invalid UTF-8, truncation, long words, init errors and a short fuzz run on a
 * small built-in vocabulary. Run from the repository root. The reference tests
 * need $ENGINE_SHARED (default ../shared); without it the built-in tests still
 * run and the program exits 77 so the missing coverage is reported as a skip. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer.h"

#define GOLDEN_TEXTS "tests/golden/tokenizer_hard.txt"
#define GOLDEN_IDS "tests/golden/tokenizer_hard.ids.jsonl"
#define GOLDEN_SPANS "tests/golden/tokenizer_hard.spans.jsonl"
#define MAX_IDS 1024
/* A 10,000-word text must tokenize well within this (it takes about a
 * millisecond; the bound is loose for sanitizer builds on a busy machine). */
#define LONG_TEXT_MAX_SECONDS 0.5
#define FUZZ_CASES 4000

static const eng__tok_config bert_cfg = {
    .lowercase = 1, .strip_accents = 1, .chinese_chars = 1, .max_chars_per_word = 100,
    .unk = "[UNK]", .cls = "[CLS]", .sep = "[SEP]", .pad = "[PAD]",
};

/* ---- Helpers ------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf) *len = n;
    return buf;
}

static const char *shared_dir(void)
{
    const char *s = getenv("ENGINE_SHARED");
    return s && *s ? s : "../shared";
}

static eng__tokenizer *shared_tok;   /* the sst2-bert-mini vocabulary, or NULL */

static eng__tokenizer *load_shared_tokenizer(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/models/sst2-bert-mini/vocab.txt", shared_dir());
    size_t len;
    char *vocab = read_file(path, &len);
    if (!vocab) return NULL;
    eng__tokenizer *tok = NULL;
    char err[256] = "";
    eng_status s = eng__tokenizer_init(&tok, vocab, len, &bert_cfg, err, sizeof err);
    free(vocab);
    if (s != ENG_OK) fprintf(stderr, "vocab.txt did not load: %s\n", err);
    return tok;
}

/* Parses one JSON list of integers ("[101,7592,102]"); returns the count or -1. */
static int parse_ids(const char *line, int32_t *ids, int cap)
{
    const char *p = strchr(line, '[');
    if (!p) return -1;
    int n = 0;
    p++;
    while (*p && *p != ']') {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || n == cap) return -1;
        ids[n++] = (int32_t)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return *p == ']' ? n : -1;
}

static void print_ids(const char *label, const int32_t *ids, int n)
{
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Tokenizes text and compares with the reference line; prints a diff. */
static int matches_reference(const eng__tokenizer *tok, const char *text, size_t len,
                             const char *ref_line, int line_no)
{
    int32_t want[MAX_IDS], got[MAX_IDS];
    int n_want = parse_ids(ref_line, want, MAX_IDS);
    ck_assert_msg(n_want >= 2, "bad reference line %d", line_no);
    int n_got = 0, trunc = 0;
    eng_status s = eng__tokenize(tok, text, len, MAX_IDS, got, MAX_IDS, &n_got, &trunc);
    ck_assert_int_eq(s, ENG_OK);
    if (n_got == n_want && memcmp(got, want, (size_t)n_got * sizeof *got) == 0) return 1;
    fprintf(stderr, "mismatch on text %d: \"%.*s\"\n", line_no, (int)len, text);
    print_ids("want", want, n_want);
    print_ids("got ", got, n_got);
    return 0;
}

/* Reads every integer of one JSON line ("[[-1,-1],[0,5]]" gives -1 -1 0 5);
 * returns the count, or -1 when there are more than cap. */
static int parse_ints(const char *line, int32_t *v, int cap)
{
    int n = 0;
    for (const char *p = line; *p && *p != '\n';) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p) {
            p++;
            continue;
        }
        if (n == cap) return -1;
        v[n++] = (int32_t)x;
        p = end;
    }
    return n;
}

/* Tokenizes text with spans and compares them, flattened, with the
 * reference line; prints a diff. */
static int spans_match_reference(const eng__tokenizer *tok, const char *text, size_t len,
                                 const char *ref_line, int line_no)
{
    int32_t want[2 * MAX_IDS], ids[MAX_IDS];
    eng_token_span got[MAX_IDS];
    int n_want = parse_ints(ref_line, want, 2 * MAX_IDS);
    ck_assert_msg(n_want >= 4 && n_want % 2 == 0, "bad reference line %d", line_no);
    int n = 0, trunc = 0;
    ck_assert_int_eq(eng__tokenize_spans(tok, text, len, MAX_IDS, ids, got, MAX_IDS, &n, &trunc),
                     ENG_OK);
    int same = 2 * n == n_want;
    for (int i = 0; same && i < n; i++)
        same = got[i].start == want[2 * i] && got[i].stop == want[2 * i + 1];
    if (same) return 1;
    fprintf(stderr, "span mismatch on text %d: \"%.*s\"\n  want:", line_no, (int)len, text);
    for (int i = 0; i < n_want; i += 2) fprintf(stderr, " %d-%d", want[i], want[i + 1]);
    fprintf(stderr, "\n  got: ");
    for (int i = 0; i < n; i++) fprintf(stderr, " %d-%d", got[i].start, got[i].stop);
    fprintf(stderr, "\n");
    return 0;
}

/* A tiny vocabulary for the tests that need no reference. Ids: [PAD]=0
 * [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 un=5 ##aff=6 ##able=7 a=8 ##a=9 .=10 b=11. */
static const char tiny_vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\na\n##a\n.\nb\n";

static eng__tokenizer *tiny_tokenizer(void)
{
    eng__tokenizer *tok = NULL;
    char err[128];
    ck_assert_int_eq(eng__tokenizer_init(&tok, tiny_vocab, sizeof tiny_vocab - 1, &bert_cfg, err, sizeof err),
                     ENG_OK);
    return tok;
}

static void tokenize_expect_n(const eng__tokenizer *tok, const char *text, size_t len, const int32_t *want,
                              int n_want)
{
    int32_t got[64];
    int n = -1, trunc = -1;
    ck_assert_int_eq(eng__tokenize(tok, text, len, 64, got, 64, &n, &trunc), ENG_OK);
    ck_assert_int_eq(trunc, 0);
    ck_assert_int_eq(n, n_want);
    for (int i = 0; i < n; i++) ck_assert_int_eq(got[i], want[i]);
}

static void tokenize_expect(const eng__tokenizer *tok, const char *text, const int32_t *want, int n_want)
{
    tokenize_expect_n(tok, text, strlen(text), want, n_want);
}

/* ---- Built-in tests ------------------------------------------------------------- */

START_TEST(test_wordpiece_basics)
{
    eng__tokenizer *tok = tiny_tokenizer();
    ck_assert_int_eq(eng__tokenizer_vocab_size(tok), 12);
    tokenize_expect(tok, "", (const int32_t[]){2, 3}, 2);
    tokenize_expect(tok, " \t\r ", (const int32_t[]){2, 3}, 2);
    tokenize_expect(tok, "UnAffable", (const int32_t[]){2, 5, 6, 7, 3}, 5);
    tokenize_expect(tok, "unaffablex b", (const int32_t[]){2, 1, 11, 3}, 4);   /* any miss: one [UNK] */
    tokenize_expect(tok, "aaa.b", (const int32_t[]){2, 8, 9, 9, 10, 11, 3}, 7);
    tokenize_expect(tok, "ÁÄ", (const int32_t[]){2, 8, 9, 3}, 4);               /* accents stripped */
    tokenize_expect(tok, "a[MASK]b", (const int32_t[]){2, 8, 4, 11, 3}, 5);      /* literal special */
    tokenize_expect(tok, "[mask]", (const int32_t[]){2, 1, 1, 1, 3}, 5);         /* "[" "mask" "]" */
    /* NUL and soft hyphen are dropped, leaving "aba", which has no "##b". */
    tokenize_expect_n(tok, "a\0b\xC2\xAD" "a", 6, (const int32_t[]){2, 1, 3}, 3);
    tokenize_expect_n(tok, "a\0a", 3, (const int32_t[]){2, 8, 9, 3}, 4);
    eng__tokenizer_free(tok);
}
END_TEST

/* Source spans by hand: a lowercased, accent-stripped subword split ("Ú" is
 * two bytes), punctuation, a literal special token (it has its bytes; only
 * the [CLS]/[SEP] around the text have none), an over-long word as one [UNK]
 * over all of it, and the [SEP] that ends a truncated text. */
START_TEST(test_spans)
{
    eng__tokenizer *tok = tiny_tokenizer();
    const char *text = "\xC3\x9aNAFFABLE. a[SEP]b";
    int32_t ids[128];
    eng_token_span sp[128];
    int n, trunc;
    ck_assert_int_eq(eng__tokenize_spans(tok, text, strlen(text), 16, ids, sp, 16, &n, &trunc), ENG_OK);
    const int32_t want_ids[] = {2, 5, 6, 7, 10, 8, 3, 11, 3};
    const eng_token_span want[] = {{-1, -1}, {0, 3}, {3, 6}, {6, 10}, {10, 11},
                                   {12, 13}, {13, 18}, {18, 19}, {-1, -1}};
    ck_assert_int_eq(n, 9);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(ids[i], want_ids[i]);
        ck_assert_int_eq(sp[i].start, want[i].start);
        ck_assert_int_eq(sp[i].stop, want[i].stop);
    }

    char word[120];
    word[0] = ' ';
    memset(word + 1, 'a', 101);   /* over max_chars_per_word (100) */
    ck_assert_int_eq(eng__tokenize_spans(tok, word, 102, 16, ids, sp, 16, &n, &trunc), ENG_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ids[1], 1);
    ck_assert_int_eq(sp[1].start, 1);
    ck_assert_int_eq(sp[1].stop, 102);

    ck_assert_int_eq(eng__tokenize_spans(tok, "a b a", 5, 3, ids, sp, 16, &n, &trunc), ENG_OK);
    ck_assert_int_eq(n, 3);
    ck_assert(trunc);
    ck_assert_int_eq(sp[1].start, 0);
    ck_assert_int_eq(sp[1].stop, 1);
    ck_assert_int_eq(sp[2].start, -1);
    eng__tokenizer_free(tok);
}
END_TEST

START_TEST(test_long_words_are_unk)
{
    eng__tokenizer *tok = tiny_tokenizer();
    char text[400];
    memset(text, 'a', 100);
    text[100] = '\0';
    int32_t ids[128];
    int n, trunc;
    ck_assert_int_eq(eng__tokenize(tok, text, 100, 128, ids, 128, &n, &trunc), ENG_OK);
    ck_assert_int_eq(n, 102);   /* 100 chars: a ##a x 99 */
    memset(text, 'a', 101);
    ck_assert_int_eq(eng__tokenize(tok, text, 101, 128, ids, 128, &n, &trunc), ENG_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ids[1], 1);
    /* 150 two-byte chars that strip to 'a': counted in chars after normalising. */
    for (int i = 0; i < 150; i++) memcpy(text + 2 * i, "\xC3\xA1", 2);
    ck_assert_int_eq(eng__tokenize(tok, text, 300, 128, ids, 128, &n, &trunc), ENG_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(ids[1], 1);
    eng__tokenizer_free(tok);
}
END_TEST

START_TEST(test_invalid_utf8)
{
    eng__tokenizer *tok = tiny_tokenizer();
    static const char *bad[] = {
        "\x80", "a\xBF", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xE0\x9F\xBF", "\xED\xA0\x80",
        "\xED\xBF\xBF", "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80",
        "\xFE", "\xFF", "\xC3", "ab\xE2\x82", "\xF0\x9F\x98", "\xC3(", "\xE2\x28\xA1", "[MASK]\xC3",
    };
    int32_t ids[16];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int n = -1, trunc = -1;
        ck_assert_msg(eng__tokenize(tok, bad[i], strlen(bad[i]), 16, ids, 16, &n, &trunc) == ENG_ERR_UTF8,
                      "case %zu accepted", i);
        ck_assert_int_eq(n, 0);
    }
    /* Boundaries that are valid: U+007F, U+0080, U+07FF, U+0800, U+FFFF,
     * U+10000, U+10FFFF, and an embedded NUL. */
    static const char good[] = "\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF\0a";
    int n;
    ck_assert_int_eq(eng__tokenize(tok, good, sizeof good - 1, 16, ids, 16, &n, NULL), ENG_OK);
    /* A bad byte far past the truncation point still fails the text. */
    char text[300];
    memset(text, 'b', sizeof text);
    for (int i = 1; i < 299; i += 2) text[i] = ' ';
    text[299] = '\xFF';
    ck_assert_int_eq(eng__tokenize(tok, text, sizeof text, 8, ids, 16, &n, NULL), ENG_ERR_UTF8);
    eng__tokenizer_free(tok);
}
END_TEST

START_TEST(test_truncation_and_args)
{
    eng__tokenizer *tok = tiny_tokenizer();
    int32_t ids[16];
    int n, trunc;
    const char *text = "a b a b a b";   /* 6 tokens */
    ck_assert_int_eq(eng__tokenize(tok, text, strlen(text), 8, ids, 16, &n, &trunc), ENG_OK);
    ck_assert_int_eq(n, 8);
    ck_assert_int_eq(trunc, 0);
    ck_assert_int_eq(eng__tokenize(tok, text, strlen(text), 5, ids, 16, &n, &trunc), ENG_OK);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(trunc, 1);
    ck_assert_int_eq(ids[0], 2);
    ck_assert_int_eq(ids[1], 8);
    ck_assert_int_eq(ids[3], 8);
    ck_assert_int_eq(ids[4], 3);
    /* Truncation inside a word's pieces keeps the first pieces. */
    ck_assert_int_eq(eng__tokenize(tok, "unaffable", 9, 4, ids, 16, &n, &trunc), ENG_OK);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(trunc, 1);
    ck_assert_int_eq(ids[1], 5);
    ck_assert_int_eq(ids[2], 6);
    ck_assert_int_eq(ids[3], 3);
    ck_assert_int_eq(eng__tokenize(tok, text, strlen(text), 2, ids, 16, &n, &trunc), ENG_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(trunc, 1);
    ck_assert_int_eq(eng__tokenize(tok, text, strlen(text), 9, ids, 8, &n, &trunc), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(eng__tokenize(tok, text, strlen(text), 1, ids, 8, &n, &trunc), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(eng__tokenize(tok, NULL, 3, 8, ids, 8, &n, &trunc), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(eng__tokenize(tok, NULL, 0, 8, ids, 8, &n, &trunc), ENG_OK);
    ck_assert_int_eq(n, 2);
    eng__tokenizer_free(tok);
}
END_TEST

START_TEST(test_init_errors)
{
    eng__tokenizer *tok = (eng__tokenizer *)1;
    char err[128] = "";
    ck_assert_int_eq(eng__tokenizer_init(&tok, "", 0, &bert_cfg, err, sizeof err), ENG_ERR_FORMAT);
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(eng__tokenizer_init(&tok, "\n", 1, &bert_cfg, err, sizeof err), ENG_ERR_FORMAT);
    static const char no_sep[] = "[PAD]\n[UNK]\n[CLS]\n";
    ck_assert_int_eq(eng__tokenizer_init(&tok, no_sep, sizeof no_sep - 1, &bert_cfg, err, sizeof err),
                     ENG_ERR_FORMAT);
    ck_assert_msg(strstr(err, "[SEP]") != NULL, "message: %s", err);
    /* No final newline; [MASK] absent, so "[MASK]" is ordinary text. */
    static const char v[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nmask";
    ck_assert_int_eq(eng__tokenizer_init(&tok, v, sizeof v - 1, &bert_cfg, err, sizeof err), ENG_OK);
    ck_assert_int_eq(eng__tokenizer_vocab_size(tok), 5);
    tokenize_expect(tok, "[MASK]", (const int32_t[]){2, 1, 4, 1, 3}, 5);
    eng__tokenizer_free(tok);
}
END_TEST

START_TEST(test_fuzz)
{
    eng__tokenizer *tok = tiny_tokenizer();
    /* Random bytes drawn mostly from a pool of UTF-8 fragments, so many cases
     * are valid and reach the normaliser; the rest exercise the validator. */
    static const char *frags[] = {"a", "b", " ", "[MASK]", "[SEP", "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80",
                                  "\xCC\x81", "\t", "\0", "\xE2\x80\x8B", ".", "un", "\xC4\xB0", "\xEF\xAC\x81"};
    unsigned seed = 12345;
    char text[512];
    int32_t ids[64];
    for (int c = 0; c < FUZZ_CASES; c++) {
        size_t len = 0;
        int parts = (int)(rand_r(&seed) % 40);
        for (int p = 0; p < parts && len < sizeof text - 8; p++) {
            if (rand_r(&seed) % 4 == 0) {
                text[len++] = (char)(rand_r(&seed) & 0xFF);
            } else {
                const char *f = frags[rand_r(&seed) % (sizeof frags / sizeof *frags)];
                size_t fl = f[0] ? strlen(f) : 1;
                memcpy(text + len, f, fl);
                len += fl;
            }
        }
        int n = -1, trunc = -1, max_len = 2 + (int)(rand_r(&seed) % 62);
        eng_status s = eng__tokenize(tok, text, len, max_len, ids, 64, &n, &trunc);
        ck_assert_msg(s == ENG_OK || s == ENG_ERR_UTF8, "status %d", (int)s);
        if (s == ENG_OK) {
            ck_assert(n >= 2 && n <= max_len);
            ck_assert_int_eq(ids[0], 2);
            ck_assert_int_eq(ids[n - 1], 3);
            for (int i = 0; i < n; i++) ck_assert(ids[i] >= 0 && ids[i] < 12);
        }
    }
    eng__tokenizer_free(tok);
}
END_TEST

/* ---- Reference tests (need $ENGINE_SHARED) -------------------------------------- */

START_TEST(test_sst2_dev)
{
    char path[4096];
    size_t tlen, ilen;
    snprintf(path, sizeof path, "%s/data/sst2/dev.tsv", shared_dir());
    char *tsv = read_file(path, &tlen);
    snprintf(path, sizeof path, "%s/data/sst2/dev.ids.jsonl", shared_dir());
    char *jsonl = read_file(path, &ilen);
    ck_assert_msg(tsv && jsonl, "SST-2 dev files missing under %s/data/sst2", shared_dir());
    tsv = realloc(tsv, tlen + 1);
    tsv[tlen] = '\0';
    jsonl = realloc(jsonl, ilen + 1);
    jsonl[ilen] = '\0';
    char *line = strchr(tsv, '\n') + 1;   /* header */
    char *ref = jsonl;
    int n = 0, ok = 0;
    while (*line && *ref) {
        char *eol = strchr(line, '\n');
        char *tab = strchr(line, '\t');
        ck_assert(tab && (!eol || tab < eol));
        char *ref_eol = strchr(ref, '\n');
        ok += matches_reference(shared_tok, line, (size_t)(tab - line), ref, n + 1);
        n++;
        if (!eol || !ref_eol) break;
        line = eol + 1;
        ref = ref_eol + 1;
    }
    printf("SST-2 dev: %d of %d sentences match\n", ok, n);
    ck_assert_int_eq(n, 872);
    ck_assert_int_eq(ok, n);
    free(tsv);
    free(jsonl);
}
END_TEST

START_TEST(test_hard_golden)
{
    size_t tlen, ilen;
    char *texts = read_file(GOLDEN_TEXTS, &tlen);
    char *jsonl = read_file(GOLDEN_IDS, &ilen);
    ck_assert_msg(texts && jsonl, "%s or %s missing (run from the repository root)", GOLDEN_TEXTS, GOLDEN_IDS);
    jsonl = realloc(jsonl, ilen + 1);
    jsonl[ilen] = '\0';
    size_t pos = 0;
    char *ref = jsonl;
    int n = 0, ok = 0;
    while (pos < tlen && *ref) {
        char *eol = memchr(texts + pos, '\n', tlen - pos);
        ck_assert(eol);
        ok += matches_reference(shared_tok, texts + pos, (size_t)(eol - (texts + pos)), ref, n + 1);
        n++;
        pos = (size_t)(eol - texts) + 1;
        char *ref_eol = strchr(ref, '\n');
        ref = ref_eol ? ref_eol + 1 : ref + strlen(ref);
    }
    printf("hard texts: %d of %d match\n", ok, n);
    ck_assert_msg(pos == tlen && *ref == '\0', "golden texts and ids differ in length");
    ck_assert_int_ge(n, 150);
    ck_assert_int_eq(ok, n);
    free(texts);
    free(jsonl);
}
END_TEST

/* Every token's source bytes equal the library's offsets (converted to
 * bytes, as TEI reports them) on the hard texts: accents stripped from
 * precomposed and decomposed letters, lowercasing that changes a letter's
 * length, CJK, emoji, controls, subwords, literal special tokens. */
START_TEST(test_hard_spans)
{
    size_t tlen, slen;
    char *texts = read_file(GOLDEN_TEXTS, &tlen);
    char *jsonl = read_file(GOLDEN_SPANS, &slen);
    ck_assert_msg(texts && jsonl, "%s or %s missing (run from the repository root)", GOLDEN_TEXTS,
                  GOLDEN_SPANS);
    jsonl = realloc(jsonl, slen + 1);
    jsonl[slen] = '\0';
    size_t pos = 0;
    char *ref = jsonl;
    int n = 0, ok = 0;
    while (pos < tlen && *ref) {
        char *eol = memchr(texts + pos, '\n', tlen - pos);
        ck_assert(eol);
        ok += spans_match_reference(shared_tok, texts + pos, (size_t)(eol - (texts + pos)), ref,
                                    n + 1);
        n++;
        pos = (size_t)(eol - texts) + 1;
        char *ref_eol = strchr(ref, '\n');
        ref = ref_eol ? ref_eol + 1 : ref + strlen(ref);
    }
    printf("hard texts: %d of %d spans match\n", ok, n);
    ck_assert_msg(pos == tlen && *ref == '\0', "golden texts and spans differ in length");
    ck_assert_int_ge(n, 150);
    ck_assert_int_eq(ok, n);
    free(texts);
    free(jsonl);
}
END_TEST

START_TEST(test_long_text)
{
    /* 10,000 words of mixed content, truncated to 512 ids. */
    static const char *words[] = {"the", "Movie", "was", "café", "中文", "unbelievably", "good", "!", "😀"};
    size_t cap = 200000, len = 0;
    char *text = malloc(cap);
    for (int i = 0; i < 10000; i++) {
        const char *w = words[i % 9];
        memcpy(text + len, w, strlen(w));
        len += strlen(w);
        text[len++] = ' ';
    }
    int32_t ids[512];
    int n, trunc;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(eng__tokenize(shared_tok, text, len, 512, ids, 512, &n, &trunc), ENG_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    ck_assert_int_eq(n, 512);
    ck_assert_int_eq(trunc, 1);
    ck_assert_int_eq(ids[0], 101);
    ck_assert_int_eq(ids[511], 102);
    ck_assert_msg(sec < LONG_TEXT_MAX_SECONDS, "10,000 words took %.3f s", sec);
    printf("10,000 words: %.3f ms\n", 1e3 * sec);

    /* Speed of a typical sentence, for the record. */
    const char *s = "it 's a charming and often affecting journey . ";
    enum { REPS = 20000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < REPS; i++) eng__tokenize(shared_tok, s, strlen(s), 512, ids, 512, &n, &trunc);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("typical sentence: %.2f us per call\n", 1e6 * sec / REPS);
    free(text);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("tokenizer");
    TCase *tc = tcase_create("builtin");
    tcase_add_test(tc, test_wordpiece_basics);
    tcase_add_test(tc, test_spans);
    tcase_add_test(tc, test_long_words_are_unk);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_truncation_and_args);
    tcase_add_test(tc, test_init_errors);
    tcase_add_test(tc, test_fuzz);
    suite_add_tcase(suite, tc);

    shared_tok = load_shared_tokenizer();
    if (shared_tok) {
        TCase *ref = tcase_create("reference");
        tcase_set_timeout(ref, 60);
        tcase_add_test(ref, test_sst2_dev);
        tcase_add_test(ref, test_hard_golden);
        tcase_add_test(ref, test_hard_spans);
        tcase_add_test(ref, test_long_text);
        suite_add_tcase(suite, ref);
    }
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    eng__tokenizer_free(shared_tok);
    if (failed) return 1;
    if (!shared_tok) {
        printf("SKIP: %s/models/sst2-bert-mini/vocab.txt not found (set ENGINE_SHARED); "
               "the SST-2 and golden reference tests did not run\n", shared_dir());
        return 77;
    }
    return 0;
}
