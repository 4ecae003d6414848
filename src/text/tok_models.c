/* tok_models.c: tokenizer.json models: BPE, Unigram and WordPiece, each
 * as Hugging Face's Rust implementation (models/bpe/model.rs merge_word and
 * word.rs merge_all; models/unigram/model.rs encode_optimized and tokenize;
 * models/wordpiece). A split arrives as chars with original ranges; the
 * models work on its UTF-8 bytes, each byte knowing its char's range, so a
 * token's offsets are its first byte's start and its last byte's end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_int.h"

enum { M_BPE, M_UNIGRAM, M_WORDPIECE };

typedef struct {
    uint32_t off, len;
    int32_t id;      /* -1: empty */
} slot;

/* BPE merges: (left id, right id) -> rank and merged id. */
typedef struct {
    int32_t a, b;    /* a = -1: empty */
    int32_t rank, id;
} mslot;

struct tok_model {
    int type;
    char *blob;              /* every token's text */
    size_t nblob, capblob;
    uint32_t *tok_off, *tok_len;   /* by id */
    int nvocab;              /* largest id + 1 */
    slot *tab;
    uint32_t mask;
    size_t max_len;          /* longest token in bytes */
    int32_t unk_id;          /* -1: none */
    /* BPE */
    mslot *merges;
    uint32_t mmask;
    int nmerges;
    char prefix[32], suffix[32];   /* continuing_subword_prefix, end_of_word_suffix */
    size_t nprefix, nsuffix;
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_ids[256];   /* <0xXX> tokens, -1 when absent */
    /* Unigram */
    double *scores;
    double min_score;
    /* WordPiece */
    int max_chars;
};

/* FNV-1a, kept as a running 64-bit state so that Unigram's lookups of
 * ever longer prefixes hash each byte once. */
#define FNV_INIT 1469598103934665603ull
static inline uint64_t fnv_add(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static inline uint32_t fnv_final(uint64_t h) { return (uint32_t)(h ^ (h >> 32)); }

static uint32_t hash_bytes(const char *s, size_t n) { return fnv_final(fnv_add(FNV_INIT, s, n)); }

/* The id of s[0..n) whose hash_bytes is h, or -1. */
static int32_t find_hashed(const tok_model *m, const char *s, size_t n, uint32_t h)
{
    uint32_t i = h & m->mask;
    for (;;) {
        const slot *e = &m->tab[i];
        if (e->id < 0) return -1;
        if (e->len == n && memcmp(m->blob + e->off, s, n) == 0) return e->id;
        i = (i + 1) & m->mask;
    }
}

int32_t eng__tok_model_id(const tok_model *m, const char *s, size_t n)
{
    if (n > m->max_len) return -1;
    return find_hashed(m, s, n, hash_bytes(s, n));
}

const char *eng__tok_model_token(const tok_model *m, int32_t id, size_t *len)
{
    if (id < 0 || id >= m->nvocab || m->tok_len[id] == UINT32_MAX) return NULL;
    *len = m->tok_len[id];
    return m->blob + m->tok_off[id];
}

int eng__tok_model_vocab_size(const tok_model *m) { return m->nvocab; }

void eng__tok_model_free(tok_model *m)
{
    if (!m) return;
    free(m->blob);
    free(m->tok_off);
    free(m->tok_len);
    free(m->tab);
    free(m->merges);
    free(m->scores);
    free(m);
}

/* Adds token s with id; fails on a duplicate text or id. */
static int add_token(tok_model *m, const char *s, size_t n, int32_t id)
{
    if (n > UINT32_MAX / 2 || m->nblob + n > UINT32_MAX / 2) return 0;
    if (m->nblob + n > m->capblob) {
        size_t nc = (m->capblob + n) * 2;
        char *nb = realloc(m->blob, nc);
        if (!nb) return 0;
        m->blob = nb;
        m->capblob = nc;
    }
    if (m->tok_len[id] != UINT32_MAX) return 0;
    uint32_t i = hash_bytes(s, n) & m->mask;
    for (;;) {
        slot *e = &m->tab[i];
        if (e->id < 0) break;
        if (e->len == n && memcmp(m->blob + e->off, s, n) == 0) return 0;
        i = (i + 1) & m->mask;
    }
    memcpy(m->blob + m->nblob, s, n);
    m->tab[i] = (slot){(uint32_t)m->nblob, (uint32_t)n, id};
    m->tok_off[id] = (uint32_t)m->nblob;
    m->tok_len[id] = (uint32_t)n;
    m->nblob += n;
    if (n > m->max_len) m->max_len = n;
    return 1;
}

static int alloc_vocab(tok_model *m, int n)
{
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n) cap *= 2;
    m->tab = malloc(cap * sizeof *m->tab);
    m->tok_off = malloc((size_t)n * sizeof *m->tok_off);
    m->tok_len = malloc((size_t)n * sizeof *m->tok_len);
    if (!m->tab || !m->tok_off || !m->tok_len) return 0;
    for (uint32_t i = 0; i < cap; i++) m->tab[i].id = -1;
    for (int i = 0; i < n; i++) m->tok_len[i] = UINT32_MAX;
    m->mask = cap - 1;
    m->nvocab = n;
    return 1;
}

static uint32_t pair_hash(int32_t a, int32_t b)
{
    uint64_t h = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32);
}

static const mslot *merge_find(const tok_model *m, int32_t a, int32_t b)
{
    uint32_t i = pair_hash(a, b) & m->mmask;
    for (;;) {
        const mslot *e = &m->merges[i];
        if (e->a < 0) return NULL;
        if (e->a == a && e->b == b) return e;
        i = (i + 1) & m->mmask;
    }
}

static const char *get_str(const cJSON *j, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static int get_bool(const cJSON *j, const char *k, int def)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsBool(x) ? cJSON_IsTrue(x) : def;
}

static int parse_bpe(tok_model *m, const cJSON *j, char *err, size_t errlen)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(j, "vocab"), *e;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(j, "merges");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(j, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0)) {
        snprintf(err, errlen, "tokenizer.json: BPE dropout is not supported (not deterministic)");
        return 0;
    }
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        snprintf(err, errlen, "tokenizer.json: BPE needs vocab and merges");
        return 0;
    }
    int n = 0;
    cJSON_ArrayForEach(e, vocab)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (1 << 24) ||
            e->valuedouble != (int)e->valuedouble) {
            snprintf(err, errlen, "tokenizer.json: BPE vocab ids must be integers in 0..2^24");
            return 0;
        }
        if ((int)e->valuedouble + 1 > n) n = (int)e->valuedouble + 1;
    }
    if (!alloc_vocab(m, n ? n : 1)) goto nomem;
    cJSON_ArrayForEach(e, vocab)
    {
        if (!add_token(m, e->string, strlen(e->string), (int32_t)e->valuedouble)) {
            snprintf(err, errlen, "tokenizer.json: BPE vocab has a token or id twice");
            return 0;
        }
    }
    const char *p = get_str(j, "continuing_subword_prefix"), *s = get_str(j, "end_of_word_suffix");
    if ((p && strlen(p) >= sizeof m->prefix) || (s && strlen(s) >= sizeof m->suffix)) {
        snprintf(err, errlen, "tokenizer.json: BPE prefix/suffix too long");
        return 0;
    }
    if (p) snprintf(m->prefix, sizeof m->prefix, "%s", p), m->nprefix = strlen(p);
    if (s) snprintf(m->suffix, sizeof m->suffix, "%s", s), m->nsuffix = strlen(s);
    m->byte_fallback = get_bool(j, "byte_fallback", 0);
    m->fuse_unk = get_bool(j, "fuse_unk", 0);
    m->ignore_merges = get_bool(j, "ignore_merges", 0);
    const char *unk = get_str(j, "unk_token");
    m->unk_id = unk ? eng__tok_model_id(m, unk, strlen(unk)) : -1;
    if (unk && m->unk_id < 0) {
        snprintf(err, errlen, "tokenizer.json: BPE unk_token is not in the vocabulary");
        return 0;
    }

    int nm = cJSON_GetArraySize(merges);
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)nm + 2) cap *= 2;
    m->merges = malloc(cap * sizeof *m->merges);
    if (!m->merges) goto nomem;
    for (uint32_t i = 0; i < cap; i++) m->merges[i].a = -1;
    m->mmask = cap - 1;
    int rank = 0;
    char buf[1024];
    cJSON_ArrayForEach(e, merges)
    {
        /* "a b" (one space separates them) or ["a", "b"]. */
        const char *a, *b;
        size_t na, nb;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) goto bad_merge;
            a = e->valuestring, na = (size_t)(sp - a), b = sp + 1, nb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring, na = strlen(a);
            b = cJSON_GetArrayItem(e, 1)->valuestring, nb = strlen(b);
        } else {
            goto bad_merge;
        }
        int32_t ia = eng__tok_model_id(m, a, na), ib = eng__tok_model_id(m, b, nb);
        /* The merged token: a, then b without the continuation prefix. */
        size_t skip = m->nprefix && nb >= m->nprefix && memcmp(b, m->prefix, m->nprefix) == 0 ? m->nprefix : 0;
        if (na + nb - skip > sizeof buf) goto bad_merge;
        memcpy(buf, a, na);
        memcpy(buf + na, b + skip, nb - skip);
        int32_t id = eng__tok_model_id(m, buf, na + nb - skip);
        if (ia < 0 || ib < 0 || id < 0) {
            snprintf(err, errlen, "tokenizer.json: BPE merge %d uses a token missing from the vocabulary", rank);
            return 0;
        }
        uint32_t i = pair_hash(ia, ib) & m->mmask;
        while (m->merges[i].a >= 0 && !(m->merges[i].a == ia && m->merges[i].b == ib)) i = (i + 1) & m->mmask;
        if (m->merges[i].a < 0) m->merges[i] = (mslot){ia, ib, rank, id};   /* the first rank wins */
        rank++;
    }
    m->nmerges = rank;
    for (int b = 0; b < 256; b++) {
        char t[8];
        snprintf(t, sizeof t, "<0x%02X>", b);
        m->byte_ids[b] = eng__tok_model_id(m, t, 6);
    }
    return 1;
bad_merge:
    snprintf(err, errlen, "tokenizer.json: BPE merge %d is malformed", rank);
    return 0;
nomem:
    snprintf(err, errlen, "tokenizer.json: out of memory");
    return 0;
}

static int parse_unigram(tok_model *m, const cJSON *j, char *err, size_t errlen)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(j, "vocab"), *e;
    int n = cJSON_GetArraySize(vocab);
    if (!cJSON_IsArray(vocab) || n == 0) {
        snprintf(err, errlen, "tokenizer.json: Unigram needs a vocab");
        return 0;
    }
    if (!alloc_vocab(m, n) || !(m->scores = malloc((size_t)n * sizeof *m->scores))) {
        snprintf(err, errlen, "tokenizer.json: out of memory");
        return 0;
    }
    int id = 0;
    m->min_score = INFINITY;
    cJSON_ArrayForEach(e, vocab)
    {
        const cJSON *t = cJSON_GetArrayItem(e, 0), *s = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || !cJSON_IsString(t) || !cJSON_IsNumber(s) || !isfinite(s->valuedouble) ||
            !add_token(m, t->valuestring, strlen(t->valuestring), id)) {
            snprintf(err, errlen, "tokenizer.json: Unigram vocab entry %d is malformed or repeated", id);
            return 0;
        }
        m->scores[id] = s->valuedouble;
        if (s->valuedouble < m->min_score) m->min_score = s->valuedouble;
        id++;
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(j, "unk_id");
    m->unk_id = -1;
    if (cJSON_IsNumber(unk)) {
        if (unk->valuedouble < 0 || unk->valuedouble >= n) {
            snprintf(err, errlen, "tokenizer.json: Unigram unk_id is out of range");
            return 0;
        }
        m->unk_id = (int32_t)unk->valuedouble;
    }
    m->byte_fallback = get_bool(j, "byte_fallback", 0);
    for (int b = 0; b < 256; b++) {
        char t[8];
        snprintf(t, sizeof t, "<0x%02X>", b);
        m->byte_ids[b] = eng__tok_model_id(m, t, 6);
    }
    return 1;
}

static int parse_wordpiece(tok_model *m, const cJSON *j, char *err, size_t errlen)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(j, "vocab"), *e;
    if (!cJSON_IsObject(vocab)) {
        snprintf(err, errlen, "tokenizer.json: WordPiece needs a vocab");
        return 0;
    }
    int n = 0;
    cJSON_ArrayForEach(e, vocab)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (1 << 24) ||
            e->valuedouble != (int)e->valuedouble) {
            snprintf(err, errlen, "tokenizer.json: WordPiece vocab ids must be integers in 0..2^24");
            return 0;
        }
        if ((int)e->valuedouble + 1 > n) n = (int)e->valuedouble + 1;
    }
    if (!alloc_vocab(m, n ? n : 1)) {
        snprintf(err, errlen, "tokenizer.json: out of memory");
        return 0;
    }
    cJSON_ArrayForEach(e, vocab)
    {
        if (!add_token(m, e->string, strlen(e->string), (int32_t)e->valuedouble)) {
            snprintf(err, errlen, "tokenizer.json: WordPiece vocab has a token or id twice");
            return 0;
        }
    }
    const char *p = get_str(j, "continuing_subword_prefix");
    if (!p) p = "##";
    if (strlen(p) >= sizeof m->prefix) {
        snprintf(err, errlen, "tokenizer.json: WordPiece prefix too long");
        return 0;
    }
    snprintf(m->prefix, sizeof m->prefix, "%s", p);
    m->nprefix = strlen(p);
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(j, "max_input_chars_per_word");
    m->max_chars = cJSON_IsNumber(mc) && mc->valuedouble >= 0 && mc->valuedouble < 1e9 ? (int)mc->valuedouble : 100;
    const char *unk = get_str(j, "unk_token");
    m->unk_id = eng__tok_model_id(m, unk ? unk : "[UNK]", strlen(unk ? unk : "[UNK]"));
    if (m->unk_id < 0) {
        snprintf(err, errlen, "tokenizer.json: WordPiece unk_token is not in the vocabulary");
        return 0;
    }
    return 1;
}

tok_model *eng__tok_model_parse(const cJSON *j, char *err, size_t errlen)
{
    const char *ty = get_str(j, "type");
    tok_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    int ok;
    if (!ty) {
        /* Old files leave the type out; the fields tell. */
        ty = cJSON_GetObjectItemCaseSensitive(j, "merges") ? "BPE"
             : cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "vocab")) ? "Unigram" : "WordPiece";
    }
    if (strcmp(ty, "BPE") == 0) {
        m->type = M_BPE;
        ok = parse_bpe(m, j, err, errlen);
    } else if (strcmp(ty, "Unigram") == 0) {
        m->type = M_UNIGRAM;
        ok = parse_unigram(m, j, err, errlen);
    } else if (strcmp(ty, "WordPiece") == 0) {
        m->type = M_WORDPIECE;
        ok = parse_wordpiece(m, j, err, errlen);
    } else {
        snprintf(err, errlen, "tokenizer.json: model type '%s' is not supported", ty);
        ok = 0;
    }
    if (!ok) {
        eng__tok_model_free(m);
        return NULL;
    }
    return m;
}

void eng__tok_model_describe(const tok_model *m, char *buf, size_t n)
{
    switch (m->type) {
    case M_BPE:
        snprintf(buf, n, "BPE (%d tokens, %d merges%s%s%s%s%s)", m->nvocab, m->nmerges,
                 m->nprefix ? ", continuing_subword_prefix" : "", m->nsuffix ? ", end_of_word_suffix " : "",
                 m->nsuffix ? m->suffix : "", m->byte_fallback ? ", byte_fallback" : "",
                 m->unk_id >= 0 ? ", unk" : "");
        break;
    case M_UNIGRAM:
        snprintf(buf, n, "Unigram (%d pieces%s)", m->nvocab, m->byte_fallback ? ", byte_fallback" : "");
        break;
    default:
        snprintf(buf, n, "WordPiece (%d tokens)", m->nvocab);
        break;
    }
}

/* ---- Tokenizing one split ----------------------------------------------------- */

/* The split as UTF-8: bytes, and for each byte its char's original range. */
typedef struct {
    char *b;
    int32_t *cs, *ce;
    int32_t *charb;   /* byte offset of each char, and the end */
    int n, nchars;
} word;

static int to_word(twork *w, const tsplit *sp, word *wd, size_t extra_per_byte)
{
    size_t nb = (size_t)sp->n * 4;
    size_t need = nb * (1 + 2 * sizeof(int32_t)) + ((size_t)sp->n + 1) * sizeof(int32_t) + nb * extra_per_byte + 64;
    int32_t *mem = eng__tw_scratch(w, need);
    if (!mem) return 0;
    wd->cs = mem;
    wd->ce = wd->cs + nb;
    wd->charb = wd->ce + nb;
    wd->b = (char *)(wd->charb + sp->n + 1);
    wd->n = 0;
    wd->nchars = sp->n;
    for (int32_t i = 0; i < sp->n; i++) {
        tchar t = w->pool[sp->off + i];
        wd->charb[i] = wd->n;
        size_t k = eng__tok_utf8_encode(t.c, wd->b + wd->n);
        for (size_t q = 0; q < k; q++) {
            wd->cs[wd->n] = t.s;
            wd->ce[wd->n] = t.e;
            wd->n++;
        }
    }
    wd->charb[sp->n] = wd->n;
    return 1;
}

/* The scratch after the word's arrays, for a model's own use. */
static void *word_tail(const word *wd)
{
    return (void *)(((uintptr_t)(wd->b + (size_t)wd->nchars * 4) + 7) & ~(uintptr_t)7);
}

typedef struct {
    int32_t id;
    int32_t start, len;   /* bytes of the word */
    int32_t prev, next;
    int32_t rank, merged; /* the merge of this symbol with the next: its rank
                             (INT32_MAX: none) and the token it makes */
} sym;

static int emit(twork *w, const word *wd, int32_t id, int32_t start, int32_t len)
{
    return eng__tw_token(w, id, wd->cs[start], wd->ce[start + len - 1]);
}

static void set_rank(const tok_model *m, sym *s, int i)
{
    const mslot *e = s[i].next >= 0 ? merge_find(m, s[i].id, s[s[i].next].id) : NULL;
    s[i].rank = e ? e->rank : INT32_MAX;
    s[i].merged = e ? e->id : -1;
}

static int bpe(const tok_model *m, twork *w, const tsplit *sp)
{
    word wd;
    if (!to_word(w, sp, &wd, sizeof(sym) * (1 + m->nprefix + m->nsuffix))) return 0;
    if (m->ignore_merges) {
        int32_t id = eng__tok_model_id(m, wd.b, (size_t)wd.n);
        if (id >= 0) return emit(w, &wd, id, 0, wd.n);
    }
    sym *s = word_tail(&wd);
    int ns = 0;
    /* Symbols sit at the sum of the lengths before them, as the Rust Word
     * counts: a byte-fallback token counts one byte, a continuation
     * prefix's bytes included, so later offsets drift as the library's do. */
    int32_t pos = 0;
    int32_t unk_start = -1, unk_len = 0;
    char buf[256];
    for (int ci = 0; ci < wd.nchars; ci++) {
        int32_t b0 = wd.charb[ci], blen = wd.charb[ci + 1] - b0;
        size_t k = 0;
        if (ci > 0 && m->nprefix) memcpy(buf, m->prefix, m->nprefix), k = m->nprefix;
        memcpy(buf + k, wd.b + b0, (size_t)blen);
        k += (size_t)blen;
        if (ci == wd.nchars - 1 && m->nsuffix) memcpy(buf + k, m->suffix, m->nsuffix), k += m->nsuffix;
        int32_t id = eng__tok_model_id(m, buf, k);
        if (id >= 0) {
            if (unk_start >= 0) {
                s[ns++] = (sym){m->unk_id, unk_start, unk_len, 0, 0, 0, 0};
                pos = unk_start + unk_len;
                unk_start = -1;
            }
            s[ns++] = (sym){id, pos, blen, 0, 0, 0, 0};
            pos += blen;
            continue;
        }
        if (m->byte_fallback) {
            int all = 1;
            for (size_t q = 0; q < k && all; q++) all = m->byte_ids[(unsigned char)buf[q]] >= 0;
            if (all) {
                /* One token per byte of the prefixed/suffixed char, each
                 * "one byte long" in the word as the Rust code counts. */
                if (unk_start >= 0) {
                    s[ns++] = (sym){m->unk_id, unk_start, unk_len, 0, 0, 0, 0};
                    pos = unk_start + unk_len;
                    unk_start = -1;
                }
                for (size_t q = 0; q < k; q++) s[ns++] = (sym){m->byte_ids[(unsigned char)buf[q]], pos++, 1, 0, 0, 0, 0};
                continue;
            }
        }
        if (m->unk_id >= 0) {
            if (unk_start >= 0 && m->fuse_unk) {
                unk_len += blen;
            } else {
                if (unk_start >= 0) s[ns++] = (sym){m->unk_id, unk_start, unk_len, 0, 0, 0, 0}, pos = unk_start + unk_len;
                unk_start = pos;
                unk_len = blen;
            }
        }
    }
    if (unk_start >= 0) s[ns++] = (sym){m->unk_id, unk_start, unk_len, 0, 0, 0, 0};
    for (int i = 0; i < ns; i++) {
        s[i].prev = i - 1;
        s[i].next = i + 1 < ns ? i + 1 : -1;
        set_rank(m, s, i);
    }
    /* Merge the lowest-ranked adjacent pair, leftmost first, until none: the
     * order of the Rust code's priority queue. */
    for (;;) {
        int best = -1;
        int32_t br = INT32_MAX;
        for (int i = ns ? 0 : -1; i >= 0; i = s[i].next)
            if (s[i].rank < br) br = s[i].rank, best = i;
        if (best < 0) break;
        int nx = s[best].next;
        s[best].id = s[best].merged;
        s[best].len += s[nx].len;
        s[best].next = s[nx].next;
        if (s[nx].next >= 0) s[s[nx].next].prev = best;
        set_rank(m, s, best);
        if (s[best].prev >= 0) set_rank(m, s, s[best].prev);
    }
    for (int i = 0; i >= 0 && i < ns; i = s[i].next) {
        /* Past the word's end (drifted byte-fallback offsets) the library
         * has no offsets either; the last byte's range stands in. */
        int32_t start = s[i].start < wd.n ? s[i].start : wd.n - 1, end = s[i].start + s[i].len;
        if (end > wd.n) end = wd.n;
        if (end <= start) end = start + 1;
        if (!emit(w, &wd, s[i].id, start, end - start)) return 0;
    }
    return 1;
}

typedef struct {
    double score;
    int32_t start;   /* -1: not reached */
    int32_t id;
} vnode;

static int unigram(const tok_model *m, twork *w, const tsplit *sp)
{
    word wd;
    if (!to_word(w, sp, &wd, sizeof(vnode) + 3 * sizeof(int32_t))) return 0;
    vnode *best = word_tail(&wd);
    int32_t *piece = (void *)(best + wd.n + 1);   /* (start, end) pairs, back to front */
    const double unk_score = m->min_score - 10.0;   /* kUnkPenalty */
    for (int i = 0; i <= wd.n; i++) best[i] = (vnode){0, -1, -1};
    best[0].start = 0;
    for (int ci = 0; ci < wd.nchars; ci++) {
        int32_t at = wd.charb[ci];
        double here = best[at].score;
        int32_t mblen = wd.charb[ci + 1] - at;
        int single = 0;
        uint64_t h = FNV_INIT;
        for (int cj = ci + 1; cj <= wd.nchars; cj++) {
            int32_t len = wd.charb[cj] - at;
            if ((size_t)len > m->max_len) break;
            h = fnv_add(h, wd.b + wd.charb[cj - 1], (size_t)(wd.charb[cj] - wd.charb[cj - 1]));
            int32_t id = find_hashed(m, wd.b + at, (size_t)len, fnv_final(h));
            if (id < 0) continue;
            vnode *t = &best[at + len];
            double cand = m->scores[id] + here;
            if (t->start < 0 || cand > t->score) *t = (vnode){cand, at, id};
            if (len == mblen) single = 1;
        }
        if (!single) {
            vnode *t = &best[at + mblen];
            double cand = unk_score + here;
            if (t->start < 0 || cand > t->score) *t = (vnode){cand, at, m->unk_id};
        }
    }
    /* Back from the end; consecutive unknowns fuse into one piece
     * (Unigram always fuses them). Pieces are (start, end), last first. */
    int np = 0, pend = -1;   /* pend: end of the pending fused unknown */
    int32_t pstart = 0;
    for (int32_t end = wd.n; end > 0;) {
        int32_t st = best[end].start;
        if (st < 0) return 1;   /* unreachable: no unk id and a gap */
        if (m->unk_id >= 0 && best[end].id == m->unk_id) {
            if (pend < 0) pend = end;
            pstart = st;
        } else {
            if (pend >= 0) piece[2 * np] = pstart, piece[2 * np + 1] = pend, np++, pend = -1;
            piece[2 * np] = st, piece[2 * np + 1] = end, np++;
        }
        end = st;
    }
    if (pend >= 0) piece[2 * np] = pstart, piece[2 * np + 1] = pend, np++;
    for (int i = np - 1; i >= 0; i--) {
        int32_t st = piece[2 * i], len = piece[2 * i + 1] - st;
        int32_t id = eng__tok_model_id(m, wd.b + st, (size_t)len);
        if (id < 0 && m->byte_fallback) {
            int all = 1;
            for (int32_t q = 0; q < len && all; q++) all = m->byte_ids[(unsigned char)wd.b[st + q]] >= 0;
            if (all) {
                /* Each byte token gets the whole piece's offsets. */
                for (int32_t q = 0; q < len; q++)
                    if (!emit(w, &wd, m->byte_ids[(unsigned char)wd.b[st + q]], st, len)) return 0;
                continue;
            }
        }
        if (id < 0) id = m->unk_id;
        if (id >= 0 && !emit(w, &wd, id, st, len)) return 0;
    }
    return 1;
}

static int wordpiece(const tok_model *m, twork *w, const tsplit *sp)
{
    word wd;
    if (!to_word(w, sp, &wd, 8)) return 0;
    if (wd.nchars > m->max_chars) return emit(w, &wd, m->unk_id, 0, wd.n);
    char *buf = (char *)word_tail(&wd);
    int first_tok = w->ntok;
    for (int start = 0; start < wd.nchars;) {
        int32_t id = -1;
        int end = wd.nchars;
        for (; end > start; end--) {
            size_t k = 0;
            if (start > 0) memcpy(buf, m->prefix, m->nprefix), k = m->nprefix;
            size_t len = (size_t)(wd.charb[end] - wd.charb[start]);
            memcpy(buf + k, wd.b + wd.charb[start], len);
            id = eng__tok_model_id(m, buf, k + len);
            if (id >= 0) break;
        }
        if (id < 0) {
            w->ntok = first_tok;
            return emit(w, &wd, m->unk_id, 0, wd.n);
        }
        if (!emit(w, &wd, id, wd.charb[start], wd.charb[end] - wd.charb[start])) return 0;
        start = end;
    }
    return 1;
}

int eng__tok_model_apply(const tok_model *m, twork *w, const tsplit *sp)
{
    if (sp->n == 0) return 1;
    switch (m->type) {
    case M_BPE: return bpe(m, w, sp);
    case M_UNIGRAM: return unigram(m, w, sp);
    default: return wordpiece(m, w, sp);
    }
}
