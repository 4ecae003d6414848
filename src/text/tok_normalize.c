/* tok_normalize.c: tokenizer.json normalizers (see tokjson.h for the list).
 *
 * Alignment follows Hugging Face's NormalizedString::transform: a char that
 * replaces a source char takes that char's original range; a char inserted
 * (change > 0) takes the range of the char before it, or (0, 0) at the
 * start; a char that absorbs following chars (change < 0) keeps the range
 * of the first. Every rule below says which case it is.
 *
 * Unicode data comes from utf8proc, the library's one Unicode table (its
 * version is Debian 12's utf8proc 2.8, Unicode 15.0; the Rust crate's
 * unicode-normalization-alignments is older, see README "Tokenizers"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_int.h"

enum {
    NZ_BERT, NZ_NFC, NZ_NFD, NZ_NFKC, NZ_NFKD, NZ_LOWER, NZ_STRIP_ACCENTS, NZ_REPLACE,
    NZ_STRIP, NZ_PREPEND, NZ_PRECOMPILED, NZ_SEQUENCE
};
static const char *const nz_names[] = {"BertNormalizer", "NFC", "NFD", "NFKC", "NFKD",
                                       "Lowercase", "StripAccents", "Replace", "Strip",
                                       "Prepend", "Precompiled", "Sequence"};

struct tok_norm {
    int type;
    /* BertNormalizer */
    int clean_text, chinese, strip_accents, lowercase;
    /* Replace */
    tok_regex *re;
    int32_t *content;     /* Replace content / Prepend text, code points */
    int ncontent;
    /* Strip */
    int left, right;
    /* Precompiled */
    uint8_t *charsmap;
    const uint32_t *trie;
    size_t ntrie;
    const char *blob;     /* normalized strings, NUL-separated */
    size_t nblob;
    /* Sequence */
    tok_norm **seq;
    int nseq;
};

static int get_bool(const cJSON *j, const char *k, int def)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsBool(x) ? cJSON_IsTrue(x) : def;
}

int eng__tok_utf8_cps(const char *s, size_t len, int32_t **out, int *n)
{
    *out = malloc((len + 1) * sizeof **out);
    if (!*out) return 0;
    *n = 0;
    for (size_t i = 0; i < len;) {
        size_t k = eng__tok_utf8_decode((const unsigned char *)s + i, len - i, &(*out)[*n]);
        if (!k) return 0;
        i += k;
        (*n)++;
    }
    return 1;
}

static const signed char b64[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
    ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
    ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
    ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
    ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
    ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
    ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64};

/* Standard base64 (padding optional); value+1 in the table so 0 = invalid. */
static uint8_t *b64_decode(const char *s, size_t *n)
{
    size_t len = strlen(s);
    uint8_t *out = malloc(len / 4 * 3 + 3);
    if (!out) return NULL;
    uint32_t acc = 0;
    int bits = 0;
    *n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '=') break;
        int v = b64[(unsigned char)s[i]] - 1;
        if (v < 0) { free(out); return NULL; }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[(*n)++] = (uint8_t)(acc >> bits);
        }
    }
    return out;
}

/* Precompiled charsmap: [u32 trie bytes][trie: u32 units][normalized strings]. */
static int precompiled_init(tok_norm *nz, const char *base64, char *err, size_t errlen)
{
    size_t n;
    nz->charsmap = b64_decode(base64, &n);
    if (!nz->charsmap || n < 4) goto bad;
    uint32_t tsize = (uint32_t)nz->charsmap[0] | (uint32_t)nz->charsmap[1] << 8 |
                     (uint32_t)nz->charsmap[2] << 16 | (uint32_t)nz->charsmap[3] << 24;
    if (tsize % 4 || tsize > n - 4 || tsize < 4) goto bad;
    /* Copy the trie to aligned, host-order memory. */
    uint32_t *trie = malloc(tsize);
    if (!trie) goto bad;
    for (uint32_t i = 0; i < tsize / 4; i++) {
        const uint8_t *p = nz->charsmap + 4 + 4 * i;
        trie[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    nz->trie = trie;
    nz->ntrie = tsize / 4;
    nz->blob = (const char *)nz->charsmap + 4 + tsize;
    nz->nblob = n - 4 - tsize;
    return 1;
bad:
    snprintf(err, errlen, "tokenizer.json: Precompiled precompiled_charsmap is malformed");
    return 0;
}

void eng__tok_norm_free(tok_norm *nz)
{
    if (!nz) return;
    eng__tok_regex_free(nz->re);
    free(nz->content);
    free(nz->charsmap);
    free((void *)nz->trie);
    for (int i = 0; i < nz->nseq; i++) eng__tok_norm_free(nz->seq[i]);
    free(nz->seq);
    free(nz);
}

tok_norm *eng__tok_norm_parse(const cJSON *j, char *err, size_t errlen)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(ty)) {
        snprintf(err, errlen, "tokenizer.json: normalizer without a type");
        return NULL;
    }
    int type = -1;
    for (int i = 0; i < (int)(sizeof nz_names / sizeof *nz_names); i++)
        if (strcmp(ty->valuestring, nz_names[i]) == 0) type = i;
    if (type < 0) {
        snprintf(err, errlen, "tokenizer.json: normalizer type '%s' is not supported", ty->valuestring);
        return NULL;
    }
    tok_norm *nz = calloc(1, sizeof *nz);
    if (!nz) return NULL;
    nz->type = type;
    switch (type) {
    case NZ_BERT: {
        nz->clean_text = get_bool(j, "clean_text", 1);
        nz->chinese = get_bool(j, "handle_chinese_chars", 1);
        nz->lowercase = get_bool(j, "lowercase", 1);
        nz->strip_accents = get_bool(j, "strip_accents", nz->lowercase);
        break;
    }
    case NZ_REPLACE: {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
        if (!(cJSON_IsString(s) || cJSON_IsString(r)) || !cJSON_IsString(c)) {
            snprintf(err, errlen, "tokenizer.json: Replace needs pattern.String or pattern.Regex and content");
            goto fail;
        }
        char rerr[160];
        nz->re = eng__tok_regex_compile(cJSON_IsString(s) ? s->valuestring : r->valuestring,
                                   cJSON_IsString(s), rerr, sizeof rerr);
        if (!nz->re) {
            snprintf(err, errlen, "tokenizer.json: Replace pattern: %s", rerr);
            goto fail;
        }
        if (!eng__tok_utf8_cps(c->valuestring, strlen(c->valuestring), &nz->content, &nz->ncontent)) goto bad_utf8;
        break;
    }
    case NZ_PREPEND: {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prepend");
        if (!cJSON_IsString(p)) {
            snprintf(err, errlen, "tokenizer.json: Prepend needs prepend");
            goto fail;
        }
        if (!eng__tok_utf8_cps(p->valuestring, strlen(p->valuestring), &nz->content, &nz->ncontent)) goto bad_utf8;
        break;
    }
    case NZ_STRIP:
        nz->left = get_bool(j, "strip_left", 1);
        nz->right = get_bool(j, "strip_right", 1);
        break;
    case NZ_PRECOMPILED: {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "precompiled_charsmap");
        if (cJSON_IsNull(m) || (cJSON_IsString(m) && !*m->valuestring)) break;   /* identity */
        if (!cJSON_IsString(m)) {
            snprintf(err, errlen, "tokenizer.json: Precompiled needs precompiled_charsmap");
            goto fail;
        }
        if (!precompiled_init(nz, m->valuestring, err, errlen)) goto fail;
        break;
    }
    case NZ_SEQUENCE: {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "normalizers"), *e;
        int n = cJSON_GetArraySize(a);
        if (!cJSON_IsArray(a)) {
            snprintf(err, errlen, "tokenizer.json: Sequence needs normalizers");
            goto fail;
        }
        nz->seq = calloc((size_t)n + 1, sizeof *nz->seq);
        if (!nz->seq) goto fail;
        cJSON_ArrayForEach(e, a)
        {
            if (!(nz->seq[nz->nseq] = eng__tok_norm_parse(e, err, errlen))) goto fail;
            nz->nseq++;
        }
        break;
    }
    default:
        break;
    }
    return nz;
bad_utf8:
    snprintf(err, errlen, "tokenizer.json: %s: invalid UTF-8", nz_names[type]);
fail:
    eng__tok_norm_free(nz);
    return NULL;
}

void eng__tok_norm_describe(const tok_norm *nz, char *buf, size_t n)
{
    if (nz->type != NZ_SEQUENCE) {
        snprintf(buf, n, "%s", nz_names[nz->type]);
        return;
    }
    size_t k = (size_t)snprintf(buf, n, "Sequence[");
    for (int i = 0; i < nz->nseq && k < n; i++) {
        eng__tok_norm_describe(nz->seq[i], buf + k, n - k);
        k += strlen(buf + k);
        if (i + 1 < nz->nseq && k < n) k += (size_t)snprintf(buf + k, n - k, ", ");
    }
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* ---- Unicode normal forms --------------------------------------------------- */

static int ccc(int32_t c)
{
    return c < 0x300 ? 0 : utf8proc_get_property(c)->combining_class;
}

/* Appends the decomposition of pool[off..off+n): each char's chars take its
 * range (the first replaces it, the rest are inserted after it), then marks
 * are put in canonical order. Ordering moves code points only: in the Rust
 * crate the alignments stay in position order. */
static int decompose(twork *w, int32_t off, int32_t n, int compat)
{
    size_t start = w->np;
    for (int32_t i = 0; i < n; i++) {
        tchar t = w->pool[off + i];
        if (t.c < 0xA0) {   /* nothing below U+00A0 decomposes, even for NFKD */
            if (!eng__tw_push(w, t.c, t.s, t.e)) return 0;
            continue;
        }
        utf8proc_int32_t d[32];
        int bound = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char(
            t.c, d, 32, (utf8proc_option_t)(UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0)), &bound);
        if (nd < 1 || nd > 32) d[0] = t.c, nd = 1;
        for (utf8proc_ssize_t k = 0; k < nd; k++)
            if (!eng__tw_push(w, d[k], t.s, t.e)) return 0;
    }
    /* Canonical ordering: a stable insertion sort of each run of marks. */
    tchar *p = w->pool + start;
    size_t m = w->np - start;
    for (size_t i = 1; i < m; i++) {
        int ci = ccc(p[i].c);
        if (!ci) continue;
        int32_t c = p[i].c;
        size_t j = i;
        while (j > 0 && ccc(p[j - 1].c) > ci) {
            p[j].c = p[j - 1].c;
            j--;
        }
        p[j].c = c;
    }
    return 1;
}

/* The primary composite of a + b, or -1. */
static int32_t compose_pair(int32_t a, int32_t b)
{
    utf8proc_int32_t buf[2] = {a, b};
    utf8proc_ssize_t r = utf8proc_normalize_utf32(buf, 2, UTF8PROC_COMPOSE);
    return r == 1 ? buf[0] : -1;
}

/* Canonical composition of pool[off..off+n) in place (the chars a starter
 * absorbs disappear; the starter keeps its range); returns the new length. */
static int32_t compose(tchar *p, int32_t n)
{
    int32_t out = 0, starter = -1;
    int last_ccc = -1;   /* -1: nothing since the starter */
    for (int32_t i = 0; i < n; i++) {
        int32_t c = p[i].c;
        int cc = ccc(c);
        if (starter >= 0 && (last_ccc < 0 || (last_ccc != 0 && last_ccc < cc))) {
            int32_t k = compose_pair(p[starter].c, c);
            if (k >= 0) {
                p[starter].c = k;
                continue;
            }
        }
        if (cc == 0) {
            starter = out;
            last_ccc = -1;
        } else {
            last_ccc = cc;
        }
        p[out++] = p[i];
        if (cc == 0 && out - 1 != starter) last_ccc = 0;
    }
    return out;
}

/* ---- Precompiled (SentencePiece's darts-clone double array) ---------------- */

/* The replacement of the shortest key that prefixes s[0..n), as
 * spm_precompiled's transform (common_prefix_search's first result). */
static const char *pc_lookup(const tok_norm *nz, const unsigned char *s, size_t n, size_t *rlen)
{
    const uint32_t *a = nz->trie;
    size_t pos = 0;
#define DA_OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
    uint32_t unit = a[0];
    pos ^= DA_OFFSET(unit);
    for (size_t i = 0; i < n; i++) {
        if (!s[i]) return NULL;
        pos ^= s[i];
        if (pos >= nz->ntrie) return NULL;
        unit = a[pos];
        if ((unit & ((1u << 31) | 0xFF)) != s[i]) return NULL;
        pos ^= DA_OFFSET(unit);
        if (pos >= nz->ntrie) return NULL;
        if ((unit >> 8) & 1) {
            uint32_t v = a[pos] & ((1u << 31) - 1);
            if (v >= nz->nblob) return NULL;
            *rlen = strnlen(nz->blob + v, nz->nblob - v);
            return nz->blob + v;
        }
    }
#undef DA_OFFSET
    return NULL;
}

/* Appends a replacement of the source chars p[i..i+k) by the UTF-8 string
 * r, with spm's change pattern: chars replace one to one, extra ones are
 * inserted, a shorter result absorbs the rest into its last char. */
static int pc_replace(twork *w, int32_t src, int32_t k, const char *r, size_t len,
                      int32_t *prev_s, int32_t *prev_e)
{
    int32_t cps[64];
    int nc = 0;
    for (size_t i = 0; i < len && nc < 64;) {
        size_t q = eng__tok_utf8_decode((const unsigned char *)r + i, len - i, &cps[nc]);
        if (!q) break;
        i += q;
        nc++;
    }
    /* The first min(nc, k) chars replace source chars one by one; with more
     * new chars the extra ones (the last nc-k) are inserted and take the
     * range of the char before; with fewer, the last absorbs the rest. */
    for (int i = 0; i < nc; i++) {
        int32_t s, e;
        if (i < k) {
            s = w->pool[src + i].s;
            e = w->pool[src + i].e;
        } else {
            s = *prev_s;
            e = *prev_e;
        }
        if (!eng__tw_push(w, cps[i], s, e)) return 0;
        *prev_s = s;
        *prev_e = e;
    }
    return 1;
}

static int precompiled(const tok_norm *nz, twork *w, int32_t off, int32_t n)
{
    int32_t prev_s = 0, prev_e = 0;
    int32_t gstart = 0;
    utf8proc_int32_t state = 0;
    for (int32_t i = 1; i <= n; i++) {
        if (i < n) {
            int32_t a = w->pool[off + i - 1].c, b = w->pool[off + i].c;
            /* Between two ASCII chars there is always a boundary but in
             * CR LF; the state then starts afresh. */
            if (a < 128 && b < 128) {
                state = 0;
                if (a == '\r' && b == '\n') continue;
            } else if (!utf8proc_grapheme_break_stateful(a, b, &state)) {
                continue;
            }
        }
        /* The grapheme [gstart, i). */
        unsigned char g[8];
        size_t glen = 0;
        int small = 1;
        for (int32_t k = gstart; k < i && small; k++) {
            char u[4];
            size_t q = eng__tok_utf8_encode(w->pool[off + k].c, u);
            if (glen + q >= 6) small = 0;
            else memcpy(g + glen, u, q), glen += q;
        }
        size_t rlen;
        const char *r = small ? pc_lookup(nz, g, glen, &rlen) : NULL;
        if (r) {
            if (!pc_replace(w, off + gstart, i - gstart, r, rlen, &prev_s, &prev_e)) return 0;
        } else {
            for (int32_t k = gstart; k < i; k++) {
                char u[4];
                size_t q = eng__tok_utf8_encode(w->pool[off + k].c, u);
                size_t r1len;
                const char *r1 = pc_lookup(nz, (const unsigned char *)u, q, &r1len);
                if (r1) {
                    if (!pc_replace(w, off + k, 1, r1, r1len, &prev_s, &prev_e)) return 0;
                } else {
                    tchar t = w->pool[off + k];
                    if (!eng__tw_push(w, t.c, t.s, t.e)) return 0;
                    prev_s = t.s;
                    prev_e = t.e;
                }
            }
        }
        gstart = i;
    }
    return 1;
}

/* ---- The normalizers ------------------------------------------------------- */

/* Appends src's chars with the replace-by-content rule of Replace for each
 * match of nz->re (content chars are inserted after the removed match and
 * take the range of its last char). */
static int replace(const tok_norm *nz, twork *w, int32_t off, int32_t n)
{
    int32_t pos = 0;
    while (pos <= n) {
        int ms, me;
        int r = eng__tok_regex_find(nz->re, w->pool + off, n, pos, &ms, &me, &w->steps_left);
        if (r < 0) return -1;
        if (r == 0 || me == ms) {
            /* No more (non-empty) matches here. */
            int32_t stop = r == 0 ? n : ms + 1 > n ? n : ms + 1;
            for (int32_t i = pos; i < stop; i++) {
                tchar t = w->pool[off + i];
                if (!eng__tw_push(w, t.c, t.s, t.e)) return 0;
            }
            if (r == 0 || stop == n) break;
            pos = stop;
            continue;
        }
        for (int32_t i = pos; i < ms; i++) {
            tchar t = w->pool[off + i];
            if (!eng__tw_push(w, t.c, t.s, t.e)) return 0;
        }
        tchar last = w->pool[off + me - 1];
        for (int i = 0; i < nz->ncontent; i++)
            if (!eng__tw_push(w, nz->content[i], last.s, last.e)) return 0;
        pos = me;
    }
    return 1;
}

static int lower_into(twork *w, tchar t)
{
    int32_t l[3];
    int k = eng__tok_lower(t.c, l);
    for (int i = 0; i < k; i++)
        if (!eng__tw_push(w, l[i], t.s, t.e)) return 0;
    return 1;
}

static int bert(const tok_norm *nz, twork *w, int32_t off, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        tchar t = w->pool[off + i];
        if (nz->clean_text) {
            if (t.c == 0 || t.c == 0xFFFD || eng__tok_is_bert_control(t.c)) continue;
            if (eng__tok_is_whitespace(t.c)) t.c = ' ';
        }
        int ch = nz->chinese && eng__tok_is_chinese(t.c);
        if (ch && !eng__tw_push(w, ' ', t.s, t.e)) return 0;
        if (nz->strip_accents && t.c >= 0xC0) {
            utf8proc_int32_t d[32];
            int bound = 0;
            utf8proc_ssize_t nd = utf8proc_decompose_char(t.c, d, 32, UTF8PROC_DECOMPOSE, &bound);
            if (nd < 1 || nd > 32) d[0] = t.c, nd = 1;
            for (utf8proc_ssize_t k = 0; k < nd; k++) {
                if (eng__tok_is_mn(d[k])) continue;
                tchar u = {d[k], t.s, t.e};
                if (!(nz->lowercase ? lower_into(w, u) : eng__tw_push(w, u.c, u.s, u.e))) return 0;
            }
        } else if (!(nz->lowercase ? lower_into(w, t) : eng__tw_push(w, t.c, t.s, t.e))) {
            return 0;
        }
        if (ch && !eng__tw_push(w, ' ', t.s, t.e)) return 0;
    }
    return 1;
}

int eng__tok_norm_apply(const tok_norm *nz, twork *w, int32_t off, int32_t n, int32_t *out_off,
                   int32_t *out_n)
{
    if (nz->type == NZ_SEQUENCE) {
        for (int i = 0; i < nz->nseq; i++) {
            int r = eng__tok_norm_apply(nz->seq[i], w, off, n, &off, &n);
            if (r <= 0) return r;
        }
        *out_off = off;
        *out_n = n;
        return 1;
    }
    int32_t start = (int32_t)w->np;
    int ok = 1;
    switch (nz->type) {
    case NZ_BERT:
        ok = bert(nz, w, off, n);
        break;
    case NZ_NFD: case NZ_NFKD:
        ok = decompose(w, off, n, nz->type == NZ_NFKD);
        break;
    case NZ_NFC: case NZ_NFKC:
        ok = decompose(w, off, n, nz->type == NZ_NFKC);
        if (ok) w->np = (size_t)start + (size_t)compose(w->pool + start, (int32_t)w->np - start);
        break;
    case NZ_LOWER:
        for (int32_t i = 0; i < n && ok; i++) ok = lower_into(w, w->pool[off + i]);
        break;
    case NZ_STRIP_ACCENTS:
        for (int32_t i = 0; i < n && ok; i++) {
            tchar t = w->pool[off + i];
            if (!eng__tok_is_mark(t.c)) ok = eng__tw_push(w, t.c, t.s, t.e);
        }
        break;
    case NZ_REPLACE:
        ok = replace(nz, w, off, n);
        break;
    case NZ_STRIP: {
        int32_t a = 0, b = n;
        if (nz->left) while (a < b && eng__tok_is_whitespace(w->pool[off + a].c)) a++;
        if (nz->right) while (b > a && eng__tok_is_whitespace(w->pool[off + b - 1].c)) b--;
        for (int32_t i = a; i < b && ok; i++) {
            tchar t = w->pool[off + i];
            ok = eng__tw_push(w, t.c, t.s, t.e);
        }
        break;
    }
    case NZ_PREPEND:
        /* Hugging Face prepends only to non-empty strings; the prefix takes
         * the first char's range. */
        if (n > 0)
            for (int i = 0; i < nz->ncontent && ok; i++)
                ok = eng__tw_push(w, nz->content[i], w->pool[off].s, w->pool[off].e);
        for (int32_t i = 0; i < n && ok; i++) {
            tchar t = w->pool[off + i];
            ok = eng__tw_push(w, t.c, t.s, t.e);
        }
        break;
    case NZ_PRECOMPILED:
        if (!nz->trie) {
            *out_off = off;
            *out_n = n;
            return 1;
        }
        ok = precompiled(nz, w, off, n);
        break;
    }
    if (ok <= 0) return ok;
    *out_off = start;
    *out_n = (int32_t)w->np - start;
    return 1;
}
