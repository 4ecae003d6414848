/* tok_pretok.c: tokenizer.json pre-tokenizers (see tokjson.h for the list),
 * as Hugging Face's NormalizedString::split and PreTokenizedString::split
 * define them: a pattern gives (range, is_match) pieces covering a split,
 * the behaviour (Removed, Isolated, Contiguous, MergedWithPrevious,
 * MergedWithNext) turns them into sub-splits, and empty ones are dropped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_int.h"

enum {
    PT_BERT, PT_BYTELEVEL, PT_METASPACE, PT_SPLIT, PT_WHITESPACE, PT_WHITESPACE_SPLIT,
    PT_PUNCT, PT_DIGITS, PT_SEQUENCE
};
static const char *const pt_names[] = {"BertPreTokenizer", "ByteLevel", "Metaspace", "Split",
                                       "Whitespace", "WhitespaceSplit", "Punctuation", "Digits",
                                       "Sequence"};

enum { B_REMOVED, B_ISOLATED, B_CONTIGUOUS, B_MERGED_PREV, B_MERGED_NEXT };
static const char *const behaviours[] = {"Removed", "Isolated", "Contiguous",
                                         "MergedWithPrevious", "MergedWithNext"};

enum { PREPEND_ALWAYS, PREPEND_NEVER, PREPEND_FIRST };

/* GPT-2's pattern, which ByteLevel uses when use_regex is set. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct tok_pretok {
    int type;
    int add_prefix_space, use_regex;   /* ByteLevel */
    int32_t replacement;               /* Metaspace */
    int prepend, split;                /* Metaspace */
    tok_regex *re;                     /* Split, Whitespace, ByteLevel */
    int behaviour, invert;             /* Split, Punctuation */
    int individual;                    /* Digits */
    tok_pretok **seq;
    int nseq;
};

int32_t eng__tok_byte_char(uint8_t b)
{
    /* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for
     * themselves; the others (0-32, 127-160, 173) take U+0100 on, in order. */
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b <= 32) return 256 + b;
    if (b <= 160) return 256 + 33 + (b - 127);
    return 256 + 33 + 34;   /* 0xAD */
}

static int get_bool(const cJSON *j, const char *k, int def)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsBool(x) ? cJSON_IsTrue(x) : def;
}

static int parse_behaviour(const cJSON *j, int def, char *err, size_t errlen)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "behavior");
    if (!b) return def;
    if (cJSON_IsString(b))
        for (int i = 0; i < 5; i++)
            if (strcmp(b->valuestring, behaviours[i]) == 0) return i;
    snprintf(err, errlen, "tokenizer.json: split behavior '%s' is not supported",
             cJSON_IsString(b) ? b->valuestring : "?");
    return -1;
}

void eng__tok_pretok_free(tok_pretok *p)
{
    if (!p) return;
    eng__tok_regex_free(p->re);
    for (int i = 0; i < p->nseq; i++) eng__tok_pretok_free(p->seq[i]);
    free(p->seq);
    free(p);
}

tok_pretok *eng__tok_pretok_parse(const cJSON *j, char *err, size_t errlen)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(ty)) {
        snprintf(err, errlen, "tokenizer.json: pre_tokenizer without a type");
        return NULL;
    }
    int type = -1;
    for (int i = 0; i < (int)(sizeof pt_names / sizeof *pt_names); i++)
        if (strcmp(ty->valuestring, pt_names[i]) == 0) type = i;
    if (type < 0) {
        snprintf(err, errlen, "tokenizer.json: pre_tokenizer type '%s' is not supported", ty->valuestring);
        return NULL;
    }
    tok_pretok *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->type = type;
    char rerr[160];
    switch (type) {
    case PT_BYTELEVEL:
        p->add_prefix_space = get_bool(j, "add_prefix_space", 1);
        p->use_regex = get_bool(j, "use_regex", 1);
        if (p->use_regex && !(p->re = eng__tok_regex_compile(gpt2_pattern, 0, rerr, sizeof rerr))) goto nomem;
        break;
    case PT_METASPACE: {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "replacement");
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme");
        p->replacement = 0x2581;
        if (cJSON_IsString(r)) {
            size_t len = strlen(r->valuestring);
            if (!len || eng__tok_utf8_decode((const unsigned char *)r->valuestring, len, &p->replacement) != len) {
                snprintf(err, errlen, "tokenizer.json: Metaspace replacement must be one character");
                goto fail;
            }
        }
        p->prepend = get_bool(j, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
        if (cJSON_IsString(ps)) {
            if (strcmp(ps->valuestring, "always") == 0) p->prepend = PREPEND_ALWAYS;
            else if (strcmp(ps->valuestring, "never") == 0) p->prepend = PREPEND_NEVER;
            else if (strcmp(ps->valuestring, "first") == 0) p->prepend = PREPEND_FIRST;
            else {
                snprintf(err, errlen, "tokenizer.json: Metaspace prepend_scheme '%s' is not supported",
                         ps->valuestring);
                goto fail;
            }
        }
        p->split = get_bool(j, "split", 1);
        break;
    }
    case PT_SPLIT: {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        if (!cJSON_IsString(s) && !cJSON_IsString(r)) {
            snprintf(err, errlen, "tokenizer.json: Split needs pattern.String or pattern.Regex");
            goto fail;
        }
        p->re = eng__tok_regex_compile(cJSON_IsString(s) ? s->valuestring : r->valuestring, cJSON_IsString(s),
                                  rerr, sizeof rerr);
        if (!p->re) {
            snprintf(err, errlen, "tokenizer.json: Split pattern: %s", rerr);
            goto fail;
        }
        if ((p->behaviour = parse_behaviour(j, B_REMOVED, err, errlen)) < 0) goto fail;
        p->invert = get_bool(j, "invert", 0);
        break;
    }
    case PT_WHITESPACE:
        if (!(p->re = eng__tok_regex_compile("\\w+|[^\\w\\s]+", 0, rerr, sizeof rerr))) goto nomem;
        p->behaviour = B_REMOVED;
        p->invert = 1;
        break;
    case PT_PUNCT:
        if ((p->behaviour = parse_behaviour(j, B_ISOLATED, err, errlen)) < 0) goto fail;
        break;
    case PT_DIGITS:
        p->individual = get_bool(j, "individual_digits", 0);
        break;
    case PT_SEQUENCE: {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers"), *e;
        if (!cJSON_IsArray(a)) {
            snprintf(err, errlen, "tokenizer.json: Sequence needs pretokenizers");
            goto fail;
        }
        p->seq = calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof *p->seq);
        if (!p->seq) goto nomem;
        cJSON_ArrayForEach(e, a)
        {
            if (!(p->seq[p->nseq] = eng__tok_pretok_parse(e, err, errlen))) goto fail;
            p->nseq++;
        }
        break;
    }
    default:
        break;
    }
    return p;
nomem:
    snprintf(err, errlen, "tokenizer.json: out of memory");
fail:
    eng__tok_pretok_free(p);
    return NULL;
}

void eng__tok_pretok_describe(const tok_pretok *p, char *buf, size_t n)
{
    if (p->type != PT_SEQUENCE) {
        snprintf(buf, n, "%s", pt_names[p->type]);
        return;
    }
    size_t k = (size_t)snprintf(buf, n, "Sequence[");
    for (int i = 0; i < p->nseq && k < n; i++) {
        eng__tok_pretok_describe(p->seq[i], buf + k, n - k);
        k += strlen(buf + k);
        if (i + 1 < p->nseq && k < n) k += (size_t)snprintf(buf + k, n - k, ", ");
    }
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* ---- Matches and behaviours ---------------------------------------------- */

static int mt_push(twork *w, int32_t s, int32_t e, int32_t m)
{
    if (w->nmt + 1 > w->mtcap) {
        int nc = w->mtcap ? w->mtcap * 2 : 256;
        int32_t *n = realloc(w->mt, (size_t)nc * 3 * sizeof *n);
        if (!n) return 0;
        w->mt = n;
        w->mtcap = nc;
    }
    w->mt[3 * w->nmt] = s;
    w->mt[3 * w->nmt + 1] = e;
    w->mt[3 * w->nmt + 2] = m;
    w->nmt++;
    return 1;
}

/* Pattern = a char predicate: each matching char is a match of its own. */
typedef int (*char_pred)(int32_t c, const void *arg);

static int matches_pred(twork *w, const tchar *c, int32_t n, char_pred f, const void *arg)
{
    w->nmt = 0;
    int32_t last = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!f(c[i].c, arg)) continue;
        if (last < i && !mt_push(w, last, i, 0)) return 0;
        if (!mt_push(w, i, i + 1, 1)) return 0;
        last = i + 1;
    }
    if (last < n && !mt_push(w, last, n, 0)) return 0;
    return 1;
}

/* Pattern = a regex, as Oniguruma's find_iter: an empty match moves the
 * search one char on. Returns -1 when the step budget ran out. */
static int matches_regex(twork *w, const tok_regex *re, int32_t off, int32_t n)
{
    w->nmt = 0;
    int32_t prev = 0, from = 0;
    while (from <= n) {
        int ms, me;
        int r = eng__tok_regex_find(re, w->pool + off, n, from, &ms, &me, &w->steps_left);
        if (r < 0) return -1;
        if (!r) break;
        if (prev != ms && !mt_push(w, prev, ms, 0)) return 0;
        if (!mt_push(w, ms, me, 1)) return 0;
        prev = me;
        from = me > ms ? me : me + 1;
    }
    if (prev < n && !mt_push(w, prev, n, 0)) return 0;
    return 1;
}

/* Applies the behaviour to w->mt (in place) and emits the kept pieces of
 * split sp as sub-splits. */
static int emit_pieces(twork *w, const tsplit *sp, int behaviour, int invert)
{
    int32_t *m = w->mt;
    int n = w->nmt, k = 0;
    if (invert)
        for (int i = 0; i < n; i++) m[3 * i + 2] = !m[3 * i + 2];
    switch (behaviour) {
    case B_REMOVED:
        for (int i = 0; i < n; i++)
            if (!m[3 * i + 2]) memmove(&m[3 * k++], &m[3 * i], 3 * sizeof *m);
        break;
    case B_ISOLATED:
        k = n;
        break;
    case B_CONTIGUOUS: case B_MERGED_PREV: {
        int prev = 0;
        for (int i = 0; i < n; i++) {
            int is = m[3 * i + 2];
            int merge = behaviour == B_CONTIGUOUS ? is == prev : is && !prev;
            if (merge && k > 0) m[3 * (k - 1) + 1] = m[3 * i + 1];
            else memmove(&m[3 * k++], &m[3 * i], 3 * sizeof *m);
            prev = is;
        }
        break;
    }
    case B_MERGED_NEXT: {
        /* Walk backwards, merging each match into the piece after it. */
        int prev = 0;
        k = n;
        int top = n;   /* the pieces kept so far are m[top..n) */
        for (int i = n - 1; i >= 0; i--) {
            int is = m[3 * i + 2];
            if (is && !prev && top < n) {
                m[3 * top] = m[3 * i];
            } else {
                top--;
                memmove(&m[3 * top], &m[3 * i], 3 * sizeof *m);
            }
            prev = is;
        }
        memmove(m, &m[3 * top], (size_t)(n - top) * 3 * sizeof *m);
        k = n - top;
        break;
    }
    }
    for (int i = 0; i < k; i++) {
        int32_t a = m[3 * i], b = m[3 * i + 1];
        if (b <= a) continue;
        if (!eng__tw_split(w, sp->off + a, b - a, -1, 0, 0, w->pool[sp->off + a].s)) return 0;
    }
    return 1;
}

static int is_ws(int32_t c, const void *arg) { (void)arg; return eng__tok_is_whitespace(c); }
static int is_punct(int32_t c, const void *arg) { (void)arg; return eng__tok_is_bert_punct(c); }
static int is_char(int32_t c, const void *arg) { return c == *(const int32_t *)arg; }
static int is_numeric(int32_t c, const void *arg)
{
    (void)arg;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

/* Copies split sp to the pool with prefix chars in front (they take the
 * first char's range, as NormalizedString::prepend does); *sp is updated. */
static int prepend(twork *w, tsplit *sp, int32_t c)
{
    int32_t start = (int32_t)w->np;
    tchar first = w->pool[sp->off];
    if (!eng__tw_push(w, c, first.s, first.e)) return 0;
    for (int32_t i = 0; i < sp->n; i++) {
        tchar t = w->pool[sp->off + i];
        if (!eng__tw_push(w, t.c, t.s, t.e)) return 0;
    }
    sp->off = start;
    sp->n++;
    return 1;
}

/* One pre-tokenizer over every split of w->sp, into w->sp2. */
static int apply_one(const tok_pretok *p, twork *w)
{
    if (p->type == PT_SEQUENCE) {
        for (int i = 0; i < p->nseq; i++) {
            int r = apply_one(p->seq[i], w);
            if (r <= 0) return r;
        }
        return 1;
    }
    w->nsp2 = 0;
    for (int si = 0; si < w->nsp; si++) {
        tsplit sp = w->sp[si];
        if (sp.id >= 0) {
            if (!eng__tw_split(w, sp.off, sp.n, sp.id, sp.s, sp.e, sp.o0)) return 0;
            continue;
        }
        if (sp.n == 0) continue;   /* empty splits are dropped */
        int ok = 1;
        switch (p->type) {
        case PT_BERT: {
            /* Whitespace removed, then punctuation isolated: with char
             * predicates both come to one pass. */
            int32_t a = 0;
            for (int32_t i = 0; i <= sp.n && ok; i++) {
                int32_t c = i < sp.n ? w->pool[sp.off + i].c : ' ';
                int ws = eng__tok_is_whitespace(c), pu = !ws && eng__tok_is_bert_punct(c);
                if (!ws && !pu) continue;
                if (i > a) ok = eng__tw_split(w, sp.off + a, i - a, -1, 0, 0, w->pool[sp.off + a].s);
                if (ok && pu) ok = eng__tw_split(w, sp.off + i, 1, -1, 0, 0, w->pool[sp.off + i].s);
                a = i + 1;
            }
            break;
        }
        case PT_WHITESPACE_SPLIT:
            ok = matches_pred(w, w->pool + sp.off, sp.n, is_ws, NULL) && emit_pieces(w, &sp, B_REMOVED, 0);
            break;
        case PT_PUNCT:
            ok = matches_pred(w, w->pool + sp.off, sp.n, is_punct, NULL) &&
                 emit_pieces(w, &sp, p->behaviour, 0);
            break;
        case PT_DIGITS:
            ok = matches_pred(w, w->pool + sp.off, sp.n, is_numeric, NULL) &&
                 emit_pieces(w, &sp, p->individual ? B_ISOLATED : B_CONTIGUOUS, 0);
            break;
        case PT_SPLIT: case PT_WHITESPACE: {
            int r = matches_regex(w, p->re, sp.off, sp.n);
            if (r <= 0) return r;
            ok = emit_pieces(w, &sp, p->behaviour, p->invert);
            break;
        }
        case PT_METASPACE: {
            /* Spaces become the replacement (each keeps its space's range),
             * then the replacement is prepended, then split before each. */
            int32_t start = (int32_t)w->np;
            for (int32_t i = 0; i < sp.n && ok; i++) {
                tchar t = w->pool[sp.off + i];
                ok = eng__tw_push(w, t.c == ' ' ? p->replacement : t.c, t.s, t.e);
            }
            if (!ok) break;
            tsplit ns = sp;
            ns.off = start;
            if ((p->prepend == PREPEND_ALWAYS || (p->prepend == PREPEND_FIRST && sp.o0 == 0)) &&
                w->pool[start].c != p->replacement)
                ok = prepend(w, &ns, p->replacement);
            if (!ok) break;
            if (p->split)
                ok = matches_pred(w, w->pool + ns.off, ns.n, is_char, &p->replacement) &&
                     emit_pieces(w, &ns, B_MERGED_NEXT, 0);
            else
                ok = eng__tw_split(w, ns.off, ns.n, -1, 0, 0, ns.o0);
            break;
        }
        case PT_BYTELEVEL: {
            tsplit ns = sp;
            if (p->add_prefix_space && w->pool[sp.off].c != ' ') ok = prepend(w, &ns, ' ');
            if (!ok) break;
            int first = w->nsp2;
            if (p->use_regex) {
                int r = matches_regex(w, p->re, ns.off, ns.n);
                if (r <= 0) return r;
                ok = emit_pieces(w, &ns, B_ISOLATED, 0);
            } else {
                ok = eng__tw_split(w, ns.off, ns.n, -1, 0, 0, ns.o0);
            }
            /* Every char becomes the chars of its UTF-8 bytes, all with
             * its range. */
            for (int k = first; k < w->nsp2 && ok; k++) {
                tsplit *q = &w->sp2[k];
                int32_t start = (int32_t)w->np;
                for (int32_t i = 0; i < q->n && ok; i++) {
                    tchar t = w->pool[q->off + i];
                    char u[4];
                    size_t nb = eng__tok_utf8_encode(t.c, u);
                    for (size_t b = 0; b < nb && ok; b++) ok = eng__tw_push(w, eng__tok_byte_char((uint8_t)u[b]), t.s, t.e);
                }
                q = &w->sp2[k];
                q->off = start;
                q->n = (int32_t)w->np - start;
            }
            break;
        }
        }
        if (!ok) return 0;
    }
    eng__tw_swap_splits(w);
    return 1;
}

int eng__tok_pretok_apply(const tok_pretok *p, twork *w) { return apply_one(p, w); }
