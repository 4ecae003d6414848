/* tok_int.h: internals of the tokenizer.json interpreter (tokjson.h), shared
 * by tokjson.c (parsing, added tokens, post-processing), tok_normalize.c,
 * tok_pretok.c, tok_models.c and tok_regex.c.
 *
 * Text flows as arrays of tchar: a code point plus the byte range of the
 * original text it came from, which is how Hugging Face's NormalizedString
 * aligns every normalized byte (all bytes of one char share one range, so a
 * per-char range is the same information). Each normalizer and
 * pre-tokenizer appends its output to one growing pool per call; splits
 * refer to pool ranges by index so the pool may move when it grows. */
#ifndef ENG_TOK_INT_H
#define ENG_TOK_INT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine.h"

typedef struct {
    int32_t c;      /* code point */
    int32_t s, e;   /* original byte range */
} tchar;

/* One piece of the text between pipeline stages. id >= 0: an added token
 * matched already (left alone by every later stage). */
typedef struct {
    int32_t off, n;   /* range in the pool */
    int32_t id;
    int32_t s, e;     /* added token: its original byte range */
    int32_t o0;       /* where the split starts in the original text (its
                         NormalizedString's original offset) */
} tsplit;

typedef struct {
    int32_t id;
    int32_t s, e;     /* original byte range; -1 for post-processor tokens */
    int32_t voff, vn; /* an added token's matched chars in the pool; voff -1
                         for model tokens (their value is the vocabulary's) */
} ttoken;

/* Per-call working memory. Allocation failure sets oom; callers check it
 * once per stage. */
typedef struct {
    tchar *pool;
    size_t np, pcap;
    tsplit *sp, *sp2;
    int nsp, nsp2, spcap, spcap2;
    ttoken *tok;
    int ntok, tokcap;
    int oom;
    int steps_left;      /* the regex step budget of this call */
    void *scratch;       /* models' scratch (grown on demand) */
    size_t scratch_cap;
    int32_t *mt;         /* pre-tokenizers' matches: (start, end, is_match) */
    int nmt, mtcap;
} twork;

int eng__tw_grow(twork *w);   /* 0 on OOM */
/* Appends a char to the pool; 0 on OOM. */
static inline int eng__tw_push(twork *w, int32_t c, int32_t s, int32_t e)
{
    if (w->np == w->pcap && !eng__tw_grow(w)) return 0;
    w->pool[w->np++] = (tchar){c, s, e};
    return 1;
}
int eng__tw_split(twork *w, int32_t off, int32_t n, int32_t id, int32_t s, int32_t e, int32_t o0);   /* into sp2 */
int eng__tw_token(twork *w, int32_t id, int32_t s, int32_t e);
void *eng__tw_scratch(twork *w, size_t bytes);
/* sp2 becomes sp (the output of a stage becomes the next one's input). */
void eng__tw_swap_splits(twork *w);

/* ---- UTF-8 and character classes ---------------------------------------- */
size_t eng__tok_utf8_decode(const unsigned char *s, size_t n, int32_t *cp);
/* s[0..len) as a malloc'd array of *n code points; 0 on invalid UTF-8 or
 * out of memory (*out may then be set: the caller frees it). */
int eng__tok_utf8_cps(const char *s, size_t len, int32_t **out, int *n);
size_t eng__tok_utf8_encode(int32_t cp, char *out);
int eng__tok_is_whitespace(int32_t c);        /* Rust char::is_whitespace */
int eng__tok_is_bert_punct(int32_t c);        /* BertPreTokenizer / Punctuation */
int eng__tok_is_bert_control(int32_t c);      /* BertNormalizer clean_text */
int eng__tok_is_chinese(int32_t c);
int eng__tok_is_mn(int32_t c);                /* nonspacing mark as Rust sees it */
int eng__tok_is_mark(int32_t c);              /* any mark as Rust sees it */
int eng__tok_lower(int32_t c, int32_t out[3]);   /* Rust to_lowercase; count */

/* ---- Regex (tok_regex.c) ------------------------------------------------ */
typedef struct tok_regex tok_regex;
/* NULL on a syntax error or an unsupported construct (err says which). */
tok_regex *eng__tok_regex_compile(const char *pat, int literal, char *err, size_t errlen);
void eng__tok_regex_free(tok_regex *r);
/* Leftmost match at or after from in c[0..n); 1 with [*ms, *me), 0 when none,
 * -1 when the step budget ran out. */
int eng__tok_regex_find(const tok_regex *r, const tchar *c, int n, int from, int *ms, int *me,
                   int *steps_left);

/* ---- Normalizers (tok_normalize.c) --------------------------------------- */
typedef struct tok_norm tok_norm;
tok_norm *eng__tok_norm_parse(const cJSON *j, char *err, size_t errlen);
void eng__tok_norm_free(tok_norm *nz);
void eng__tok_norm_describe(const tok_norm *nz, char *buf, size_t n);
/* Normalizes pool[off..off+n) to a new range appended to the pool. */
int eng__tok_norm_apply(const tok_norm *nz, twork *w, int32_t off, int32_t n, int32_t *out_off,
                   int32_t *out_n);

/* ---- Pre-tokenizers (tok_pretok.c) --------------------------------------- */
typedef struct tok_pretok tok_pretok;
tok_pretok *eng__tok_pretok_parse(const cJSON *j, char *err, size_t errlen);
void eng__tok_pretok_free(tok_pretok *p);
void eng__tok_pretok_describe(const tok_pretok *p, char *buf, size_t n);
/* Splits w->sp further (added-token splits pass through). */
int eng__tok_pretok_apply(const tok_pretok *p, twork *w);
/* The byte-level alphabet: the char standing for byte b (GPT-2's map). */
int32_t eng__tok_byte_char(uint8_t b);

/* ---- Models (tok_models.c) ------------------------------------------------ */
typedef struct tok_model tok_model;
tok_model *eng__tok_model_parse(const cJSON *j, char *err, size_t errlen);
void eng__tok_model_free(tok_model *m);
void eng__tok_model_describe(const tok_model *m, char *buf, size_t n);
int eng__tok_model_vocab_size(const tok_model *m);
const char *eng__tok_model_token(const tok_model *m, int32_t id, size_t *len);
int32_t eng__tok_model_id(const tok_model *m, const char *s, size_t len);
/* Appends the tokens of one pre-tokenized split to w->tok. */
int eng__tok_model_apply(const tok_model *m, twork *w, const tsplit *sp);

#endif
