/* tokenizer.c: BERT WordPiece tokenization (see tokenizer.h), matching Hugging
 * Face's Rust tokenizers: BertNormalizer, BertPreTokenizer, WordPiece and the
 * [CLS] $A [SEP] template, plus the special-token split that runs before them.
 *
 * The text is processed in one streaming pass: each code point is cleaned,
 * decomposed and lowercased as it is read, and the pre-tokenizer's word and
 * punctuation boundaries are decided on the normalised output at once, so no
 * normalised copy of the text is ever built. The only per-call memory is a
 * bounded word buffer on the stack (max_chars_per_word is capped at
 * TOK_MAX_WORD_CHARS for that reason); tokenization never calls malloc.
 *
 * Character classes come from utf8proc, corrected by tokenizer_legacy.h where
 * the Rust library's older Unicode tables disagree (measured over every code
 * point by tests/golden/make_tokenizer_golden.sh). */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_int.h"
#include "tokenizer_legacy.h"
#include "tokjson.h"

/* The longest word WordPiece is asked to split; longer words become [UNK]
 * without being looked at, so the stack buffer only needs this many chars. */
#define TOK_MAX_WORD_CHARS 256
/* A code point's canonical decomposition is at most 4 code points in current
 * Unicode (Hangul syllables give 3); 8 leaves room. */
#define TOK_MAX_DECOMP 8
/* The special tokens matched literally in raw text: unk, cls, sep, pad, mask. */
#define TOK_N_SPECIAL 5

typedef struct {
    uint32_t off;   /* byte offset of the token in tok->blob */
    uint32_t len;
    int32_t id;     /* -1 marks an empty slot */
} vocab_slot;

typedef struct {
    const char *s;
    size_t len;
    int32_t id;
} special_token;

struct eng__tokenizer {
    eng__tokjson *tj;    /* non-NULL: a tokenizer.json, nothing below is used */
    int tj_max_len;
    eng__tok_config cfg;
    char *blob;          /* private copy of the vocabulary text */
    int n_vocab;
    uint32_t *id_off;    /* [n_vocab + 1]: where token id starts in blob (the
                            next one's start - 1 is where it ends) */
    vocab_slot *slots;   /* open-addressing hash table, power-of-two size */
    uint32_t mask;
    size_t max_token_len;
    int32_t unk_id, cls_id, sep_id, pad_id;
    special_token special[TOK_N_SPECIAL];
    int n_special;
    unsigned char special_first[256];   /* bytes a special token starts with */
    char special_names[TOK_N_SPECIAL][32];
};

/* ---- Vocabulary hash table ------------------------------------------------ */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

/* The id of the token s[0..n), or -1. */
static int32_t vocab_find(const eng__tokenizer *tok, const char *s, size_t n)
{
    if (n > tok->max_token_len) return -1;
    uint32_t i = hash_bytes(s, n) & tok->mask;
    for (;;) {
        const vocab_slot *e = &tok->slots[i];
        if (e->id < 0) return -1;
        if (e->len == n && memcmp(tok->blob + e->off, s, n) == 0) return e->id;
        i = (i + 1) & tok->mask;
    }
}

/* A repeated token keeps its last id, as Hugging Face's vocab.txt loaders do
 * (they fill a map line by line). */
static void vocab_insert(eng__tokenizer *tok, uint32_t off, uint32_t len, int32_t id)
{
    uint32_t i = hash_bytes(tok->blob + off, len) & tok->mask;
    for (;;) {
        vocab_slot *e = &tok->slots[i];
        if (e->id < 0 || (e->len == len && memcmp(tok->blob + e->off, tok->blob + off, len) == 0)) {
            e->off = off;
            e->len = len;
            e->id = id;
            return;
        }
        i = (i + 1) & tok->mask;
    }
}

static eng_status tok_error(char *err, size_t errlen, eng_status s, const char *msg, const char *arg)
{
    if (err && errlen) snprintf(err, errlen, "tokenizer: %s%s", msg, arg ? arg : "");
    return s;
}

/* Looks a required special token up; fails when it is absent. */
static eng_status find_special(eng__tokenizer *tok, const char *name, int32_t *id, char *err,
                               size_t errlen)
{
    if (!name || !*name) return tok_error(err, errlen, ENG_ERR_FORMAT, "special token not set", NULL);
    *id = vocab_find(tok, name, strlen(name));
    if (*id < 0) return tok_error(err, errlen, ENG_ERR_FORMAT, "special token missing from vocabulary: ", name);
    return ENG_OK;
}

/* Registers a special token for the literal match in raw text; names are
 * copied so the tokenizer does not depend on the caller's strings. */
static void add_special(eng__tokenizer *tok, const char *name, int32_t id)
{
    size_t n = strlen(name);
    for (int i = 0; i < tok->n_special; i++)
        if (tok->special[i].len == n && memcmp(tok->special[i].s, name, n) == 0) return;
    if (n >= sizeof tok->special_names[0] || tok->n_special == TOK_N_SPECIAL) return;
    memcpy(tok->special_names[tok->n_special], name, n + 1);
    tok->special_first[(unsigned char)name[0]] = 1;
    tok->special[tok->n_special] =
        (special_token){tok->special_names[tok->n_special], n, id};
    tok->n_special++;
}

eng_status eng__tokenizer_init(eng__tokenizer **out, const char *vocab, size_t vocab_len,
                               const eng__tok_config *cfg, char *err, size_t errlen)
{
    if (!out || !cfg || (!vocab && vocab_len))
        return tok_error(err, errlen, ENG_ERR_INVALID_ARG, "NULL argument", NULL);
    *out = NULL;
    if (vocab_len >= UINT32_MAX) return tok_error(err, errlen, ENG_ERR_FORMAT, "vocabulary too large", NULL);
    if (cfg->max_chars_per_word < 1 || cfg->max_chars_per_word > TOK_MAX_WORD_CHARS)
        return tok_error(err, errlen, ENG_ERR_UNSUPPORTED, "max_chars_per_word must be in 1..256", NULL);

    eng__tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return tok_error(err, errlen, ENG_ERR_NOMEM, "out of memory", NULL);
    tok->cfg = *cfg;
    /* The config's strings are not kept: they point into the caller's memory. */
    tok->cfg.unk = tok->cfg.cls = tok->cfg.sep = tok->cfg.pad = NULL;
    tok->blob = malloc(vocab_len + 1);
    if (!tok->blob) goto nomem;
    if (vocab_len) memcpy(tok->blob, vocab, vocab_len);
    tok->blob[vocab_len] = '\0';

    size_t n_lines = 0;
    for (size_t i = 0; i < vocab_len; i++) n_lines += tok->blob[i] == '\n';
    if (vocab_len && tok->blob[vocab_len - 1] != '\n') n_lines++;
    if (n_lines == 0 || n_lines > INT32_MAX / 4) {
        eng__tokenizer_free(tok);
        return tok_error(err, errlen, ENG_ERR_FORMAT, "empty vocabulary", NULL);
    }
    uint32_t cap = 16;
    while (cap < 2 * n_lines) cap *= 2;
    tok->slots = malloc(cap * sizeof *tok->slots);
    if (!tok->slots) goto nomem;
    for (uint32_t i = 0; i < cap; i++) tok->slots[i].id = -1;
    tok->mask = cap - 1;
    tok->id_off = malloc((n_lines + 1) * sizeof *tok->id_off);
    if (!tok->id_off) goto nomem;

    size_t start = 0;
    for (size_t i = 0; i <= vocab_len; i++) {
        if (i < vocab_len && tok->blob[i] != '\n') continue;
        if (i == vocab_len && start == vocab_len) break;   /* the optional final '\n' */
        size_t len = i - start;
        if (len > tok->max_token_len) tok->max_token_len = len;
        tok->id_off[tok->n_vocab] = (uint32_t)start;
        vocab_insert(tok, (uint32_t)start, (uint32_t)len, tok->n_vocab++);
        start = i + 1;
    }
    tok->id_off[tok->n_vocab] = (uint32_t)start;

    eng_status s;
    if ((s = find_special(tok, cfg->unk, &tok->unk_id, err, errlen)) != ENG_OK ||
        (s = find_special(tok, cfg->cls, &tok->cls_id, err, errlen)) != ENG_OK ||
        (s = find_special(tok, cfg->sep, &tok->sep_id, err, errlen)) != ENG_OK ||
        (s = find_special(tok, cfg->pad, &tok->pad_id, err, errlen)) != ENG_OK) {
        eng__tokenizer_free(tok);
        return s;
    }
    add_special(tok, cfg->unk, tok->unk_id);
    add_special(tok, cfg->cls, tok->cls_id);
    add_special(tok, cfg->sep, tok->sep_id);
    add_special(tok, cfg->pad, tok->pad_id);
    /* BERT checkpoints list [MASK] among tokenizer.json's added tokens, but the
     * engine's config does not carry it; take it when the vocabulary has it. */
    int32_t mask_id = vocab_find(tok, "[MASK]", 6);
    if (mask_id >= 0) add_special(tok, "[MASK]", mask_id);
    *out = tok;
    return ENG_OK;

nomem:
    eng__tokenizer_free(tok);
    return tok_error(err, errlen, ENG_ERR_NOMEM, "out of memory", NULL);
}

eng_status eng__tokenizer_init_json(eng__tokenizer **out, const char *json, size_t len, int max_len,
                                    char *err, size_t errlen)
{
    if (!out || max_len < 0) return tok_error(err, errlen, ENG_ERR_INVALID_ARG, "bad argument", NULL);
    *out = NULL;
    eng__tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return tok_error(err, errlen, ENG_ERR_NOMEM, "out of memory", NULL);
    eng_status s = eng__tokjson_init(&tok->tj, json, len, err, errlen);
    if (s != ENG_OK) {
        free(tok);
        return s;
    }
    tok->tj_max_len = max_len;
    *out = tok;
    return ENG_OK;
}

void eng__tokenizer_free(eng__tokenizer *tok)
{
    if (!tok) return;
    eng__tokjson_free(tok->tj);
    free(tok->slots);
    free(tok->id_off);
    free(tok->blob);
    free(tok);
}

int eng__tokenizer_vocab_size(const eng__tokenizer *tok)
{
    return tok->tj ? eng__tokjson_vocab_size(tok->tj) : tok->n_vocab;
}

const char *eng__tokenizer_token(const eng__tokenizer *tok, int32_t id, size_t *len, int *special)
{
    if (tok->tj) return eng__tokjson_token(tok->tj, id, len, special);
    if (id < 0 || id >= tok->n_vocab)
        return NULL;
    *len = tok->id_off[id + 1] - tok->id_off[id] - 1;
    *special = 0;
    for (int i = 0; i < tok->n_special; i++)
        *special |= tok->special[i].id == id;
    return tok->blob + tok->id_off[id];
}

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Decodes one code point from s[0..n) strictly (no overlong forms, surrogates,
 * values past U+10FFFF or truncated sequences). Returns its length, or 0. */
size_t eng__tok_utf8_decode(const unsigned char *s, size_t n, int32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = (int32_t)v;
    return len;
}

size_t eng__tok_utf8_encode(int32_t cp, char *out)
{
    uint32_t c = (uint32_t)cp;
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- Character classes (Hugging Face's normalizers/bert.rs and
 * pre_tokenizers/bert.rs) ------------------------------------------------- */

/* Rust's class for a code point where its old Unicode tables disagree with
 * utf8proc (LEGACY_*), or 0 where they agree. */
static int legacy_class(int32_t c)
{
    size_t lo = 0, hi = sizeof legacy_class_table / sizeof *legacy_class_table;
    if (c < legacy_class_table[0].lo) return 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < legacy_class_table[mid].lo) hi = mid;
        else if (c > legacy_class_table[mid].hi) lo = mid + 1;
        else return legacy_class_table[mid].cls;
    }
    return 0;
}

/* Rust's char::is_whitespace (the White_Space property). */
int eng__tok_is_whitespace(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* clean_text drops Cc, Cf, Co and Cs (the reference keeps unassigned code
 * points); tab, newline and carriage return are whitespace instead. Format
 * characters newer than Rust's table are kept, as it keeps them. */
int eng__tok_is_bert_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    if (legacy_class(c)) return 0;
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS;
}

/* The CJK blocks BertNormalizer surrounds with spaces. The Rust code's
 * Extension C-F range starts at U+2B920, not U+2B820 as in Google's BERT;
 * the reference confirms it. */
int eng__tok_is_chinese(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

int eng__tok_is_bert_punct(int32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return 1;
    if (c < 128) return 0;
    int legacy = legacy_class(c);
    if (legacy) return legacy == LEGACY_PUNCT;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return 1;
    default:
        return 0;
    }
}

/* A nonspacing mark, dropped when accents are stripped. */
int eng__tok_is_mn(int32_t c)
{
    int legacy = legacy_class(c);
    if (legacy) return legacy == LEGACY_DROP;
    return utf8proc_category(c) == UTF8PROC_CATEGORY_MN;
}

/* Any mark (Mn, Mc, Me), as StripAccents sees it: marks newer than the
 * Rust crate's tables are not marks there. */
int eng__tok_is_mark(int32_t c)
{
    int legacy = legacy_class(c);
    if (legacy) return legacy == LEGACY_DROP;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

/* Rust's char::to_lowercase: utf8proc's simple mapping, plus the one
 * unconditional multi-character mapping (U+0130 -> i + U+0307). */
int eng__tok_lower(int32_t c, int32_t out[3])
{
    if (c == 0x130) {
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    out[0] = utf8proc_tolower(c);
    return 1;
}

/* ---- Streaming tokenization ------------------------------------------------- */

typedef struct {
    const eng__tokenizer *tok;
    int32_t *ids;
    int n;          /* ids written, [CLS] included */
    int limit;      /* index where [SEP] must go when the text is cut */
    int full;       /* a token did not fit: stop */
    /* The current word: its UTF-8 bytes start at word + 2, leaving room to
     * write the "##" continuation prefix in front of any suffix in place. */
    char word[TOK_MAX_WORD_CHARS * 4 + 2];
    int16_t char_off[TOK_MAX_WORD_CHARS + 1];   /* byte offset of each char */
    int n_chars;    /* may exceed max_chars_per_word; then the word is [UNK] */
    /* Source spans, tracked only when the caller asks (spans != NULL): the
     * raw code point being normalised, the original bytes of each char of
     * the word (a char made by lowercasing or decomposing one code point
     * covers that whole code point), and of the whole word. */
    eng_token_span *spans;
    eng_token_span src;
    eng_token_span char_src[TOK_MAX_WORD_CHARS];
    eng_token_span word_src;
} tok_state;

static void emit(tok_state *st, int32_t id, int32_t start, int32_t stop)
{
    if (st->n >= st->limit) {
        st->full = 1;
        return;
    }
    if (st->spans)
        st->spans[st->n] = (eng_token_span){start, stop};
    st->ids[st->n++] = id;
}

/* Greedy longest-match-first WordPiece over the current word; a word with any
 * piece missing from the vocabulary becomes a single [UNK]. */
static void flush_word(tok_state *st)
{
    const eng__tokenizer *tok = st->tok;
    int n = st->n_chars;
    if (n == 0) return;
    st->n_chars = 0;
    if (n > tok->cfg.max_chars_per_word) {
        emit(st, tok->unk_id, st->word_src.start, st->word_src.stop);
        return;
    }
    int32_t pieces[TOK_MAX_WORD_CHARS];
    int16_t piece_end[TOK_MAX_WORD_CHARS];   /* the char each piece ends before */
    int n_pieces = 0;
    int start = 0;
    while (start < n) {
        int32_t id = -1;
        int end = n;
        /* For a suffix, "##" goes over the two bytes before it: they hold
         * already-consumed characters (or the reserved head of the buffer). */
        char *base = st->word + st->char_off[start];
        if (start > 0) base[0] = base[1] = '#';
        size_t prefix = start > 0 ? 2 : 0;
        for (; end > start; end--) {
            size_t len = (size_t)(st->char_off[end] - st->char_off[start]) + prefix;
            id = vocab_find(tok, start > 0 ? base : base + 2, len);
            if (id >= 0) break;
        }
        if (id < 0) {
            emit(st, tok->unk_id, st->word_src.start, st->word_src.stop);
            return;
        }
        piece_end[n_pieces] = (int16_t)end;
        pieces[n_pieces++] = id;
        start = end;
    }
    for (int i = 0, c = 0; i < n_pieces && !st->full; c = piece_end[i++])
        emit(st, pieces[i], st->spans ? st->char_src[c].start : 0,
             st->spans ? st->char_src[piece_end[i] - 1].stop : 0);
}

static void push_char(tok_state *st, int32_t cp)
{
    if (st->spans) {
        if (st->n_chars == 0) st->word_src.start = st->src.start;
        st->word_src.stop = st->src.stop;
        if (st->n_chars < st->tok->cfg.max_chars_per_word) st->char_src[st->n_chars] = st->src;
    }
    if (st->n_chars >= st->tok->cfg.max_chars_per_word) {
        /* Too long already: only the count matters now. */
        st->n_chars = st->tok->cfg.max_chars_per_word + 1;
        return;
    }
    int16_t off = st->char_off[st->n_chars];
    off = (int16_t)(off + (int16_t)eng__tok_utf8_encode(cp, st->word + 2 + off));
    st->char_off[++st->n_chars] = off;
}

/* The pre-tokenizer's decision for one normalised code point. */
static void pretokenize_char(tok_state *st, int32_t cp)
{
    if (eng__tok_is_whitespace(cp)) {
        flush_word(st);
    } else if (eng__tok_is_bert_punct(cp)) {
        flush_word(st);
        push_char(st, cp);
        flush_word(st);
    } else {
        push_char(st, cp);
    }
}

/* Lowercasing (Rust's char::to_lowercase, eng__tok_lower) when asked for. */
static void lower_char(tok_state *st, int32_t cp)
{
    if (!st->tok->cfg.lowercase) {
        pretokenize_char(st, cp);
        return;
    }
    int32_t l[3];
    int k = eng__tok_lower(cp, l);
    for (int i = 0; i < k; i++) pretokenize_char(st, l[i]);
}

/* BertNormalizer for one raw code point, in Rust's order: clean_text, Chinese
 * characters, strip accents (NFD, drop Mn), lowercase. */
static void normalize_char(tok_state *st, int32_t cp)
{
    const eng__tokenizer *tok = st->tok;
    if (cp == 0 || cp == 0xFFFD || eng__tok_is_bert_control(cp)) return;
    if (eng__tok_is_whitespace(cp)) {
        flush_word(st);
        return;
    }
    int chinese = tok->cfg.chinese_chars && eng__tok_is_chinese(cp);
    if (chinese) flush_word(st);
    if (tok->cfg.strip_accents) {
        utf8proc_int32_t d[TOK_MAX_DECOMP];
        int boundclass = UTF8PROC_BOUNDCLASS_START;
        utf8proc_ssize_t nd = utf8proc_decompose_char(cp, d, TOK_MAX_DECOMP, UTF8PROC_DECOMPOSE, &boundclass);
        if (nd < 1 || nd > TOK_MAX_DECOMP) {
            d[0] = cp;
            nd = 1;
        }
        for (utf8proc_ssize_t i = 0; i < nd; i++)
            if (!eng__tok_is_mn(d[i])) lower_char(st, d[i]);
    } else {
        lower_char(st, cp);
    }
    if (chinese) flush_word(st);
}

/* The special token written literally at text[i..], or NULL. */
static const special_token *match_special(const eng__tokenizer *tok, const char *text, size_t i,
                                          size_t len)
{
    const special_token *best = NULL;
    for (int k = 0; k < tok->n_special; k++) {
        const special_token *sp = &tok->special[k];
        if (sp->len <= len - i && memcmp(text + i, sp->s, sp->len) == 0 &&
            (!best || sp->len > best->len))
            best = sp;
    }
    return best;
}

eng_status eng__tokenize(const eng__tokenizer *tok, const char *text, size_t len,
                         int max_len, int32_t *ids, int cap, int *n_ids, int *truncated)
{
    return eng__tokenize_spans(tok, text, len, max_len, ids, NULL, cap, n_ids, truncated);
}

/* The whole tokenization, inlined twice into eng__tokenize_spans (see there). */
static inline __attribute__((always_inline)) eng_status
tokenize(const eng__tokenizer *tok, const char *text, size_t len, int max_len, int32_t *ids,
         eng_token_span *spans, int cap, int *n_ids, int *truncated)
{
    if (n_ids) *n_ids = 0;
    if (truncated) *truncated = 0;
    if (!tok || (!text && len) || !ids || !n_ids || cap < 2 || max_len < 2 || max_len > cap ||
        (spans && len > INT32_MAX))
        return ENG_ERR_INVALID_ARG;
    const unsigned char *u = (const unsigned char *)text;
    /* Validate everything first so a bad byte past the truncation point still
     * fails the text rather than depending on where the cut fell. */
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t k = eng__tok_utf8_decode(u + i, len - i, &cp);
        if (!k) return ENG_ERR_UTF8;
        i += k;
    }

    tok_state st;
    st.tok = tok;
    st.ids = ids;
    st.n = 0;
    st.limit = max_len - 1;
    st.full = 0;
    st.n_chars = 0;
    st.char_off[0] = 0;
    st.spans = spans;
    if (spans) spans[0] = (eng_token_span){-1, -1};
    ids[st.n++] = tok->cls_id;
    for (size_t i = 0; i < len && !st.full;) {
        const special_token *sp = tok->special_first[u[i]] ? match_special(tok, text, i, len) : NULL;
        if (sp) {
            flush_word(&st);
            emit(&st, sp->id, (int32_t)i, (int32_t)(i + sp->len));
            i += sp->len;
            continue;
        }
        int32_t cp = 0;   /* set: the text was validated above */
        size_t k = eng__tok_utf8_decode(u + i, len - i, &cp);
        if (spans) st.src = (eng_token_span){(int32_t)i, (int32_t)(i + k)};
        i += k;
        normalize_char(&st, cp);
    }
    flush_word(&st);
    if (spans) spans[st.n] = (eng_token_span){-1, -1};
    ids[st.n++] = tok->sep_id;
    *n_ids = st.n;
    if (truncated) *truncated = st.full;
    return ENG_OK;
}

/* flatten inlines the helpers into both calls, so with spans a constant NULL
 * the compiler drops every span branch and store: without spans this runs
 * the same code as before spans existed. */
__attribute__((flatten)) eng_status
eng__tokenize_spans(const eng__tokenizer *tok, const char *text, size_t len, int max_len,
                    int32_t *ids, eng_token_span *spans, int cap, int *n_ids, int *truncated)
{
    if (tok && tok->tj) {
        if (tok->tj_max_len > 0 && max_len > tok->tj_max_len) max_len = tok->tj_max_len;
        return eng__tokjson_encode(tok->tj, text, len, max_len, ids, spans, cap, n_ids, truncated);
    }
    if (spans) return tokenize(tok, text, len, max_len, ids, spans, cap, n_ids, truncated);
    return tokenize(tok, text, len, max_len, ids, NULL, cap, n_ids, truncated);
}
