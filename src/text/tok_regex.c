/* tok_regex.c: the regular expressions tokenizer.json files use (Split
 * pre-tokenizers, Replace normalizers, ByteLevel's GPT-2 pattern).
 *
 * A small backtracking matcher over code points rather than libpcre2: the
 * patterns are short and fixed per model (GPT-2's
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+,
 * CLIP's, Llama-3's, \w+|[^\w\s]+), and the Rust library runs them with
 * Oniguruma, whose classes differ from PCRE2's (Oniguruma's \s is Unicode
 * White_Space, so it matches U+0085, which PCRE2's \s does not). Matching
 * over our own code point classes (utf8proc's Unicode tables, the same ones
 * the normalizers use) keeps one definition of every class, and keeps a
 * dependency out. Supported: literals and escapes, . ^ $, classes [...] with
 * ranges, negation and \p{..}/\P{..} (general categories and their one-letter
 * groups), \s \S \w \W \d \D, groups (...) (?:...) (?i:...) (?i), alternation,
 * greedy, lazy and possessive quantifiers * + ? {n} {n,} {n,m}, lookahead
 * (?=...) (?!...). Anything else (backreferences, lookbehind) fails to
 * compile with its name. A step budget per call bounds pathological
 * patterns: past it the text fails rather than hangs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_int.h"

enum { N_CHAR, N_ANY, N_CLASS, N_ALT, N_REP, N_LOOK, N_BOL, N_EOL, N_GROUP };
enum { CI_RANGE, CI_CAT, CI_SPACE, CI_WORD, CI_DIGIT };

typedef struct {
    int kind, neg;
    int32_t lo, hi;       /* CI_RANGE */
    uint32_t cats;        /* CI_CAT: bit per utf8proc category */
} citem;

typedef struct rnode rnode;
struct rnode {
    int type;
    int icase;
    int32_t c;                 /* N_CHAR */
    citem *items;              /* N_CLASS */
    int nitems, neg;
    rnode **alts;              /* N_ALT: each a sequence (linked by next) */
    int nalts;
    rnode *sub;                /* N_REP, N_LOOK, N_GROUP: a sequence */
    int min, max;              /* N_REP: max -1 = unbounded */
    int lazy, possessive;      /* N_REP */
    int look_neg;              /* N_LOOK */
    rnode *next;               /* the sequence's next node */
    uint64_t ascii[2];         /* N_CLASS: the class's answer for code points < 128 */
};

struct tok_regex {
    rnode *root;
    rnode **all;               /* every node, for freeing */
    int nall, capall;
};

/* ---- Classes ------------------------------------------------------------- */

/* Oniguruma's Unicode \w (UTS #18 "word"): Alphabetic, marks, decimal
 * digits, connector punctuation and Join_Control (ZWNJ, ZWJ). Alphabetic
 * is L + Nl + Other_Alphabetic; the Other_Alphabetic chars outside marks
 * are the enclosed letters tested below. */
static int is_word(int32_t c)
{
    if (c < 128) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
        (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189))
        return 1;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

static int item_match(const citem *it, int32_t c)
{
    int m;
    switch (it->kind) {
    case CI_RANGE: m = c >= it->lo && c <= it->hi; break;
    case CI_CAT: m = (it->cats >> utf8proc_category(c)) & 1; break;
    case CI_SPACE: m = eng__tok_is_whitespace(c); break;
    case CI_WORD: m = is_word(c); break;
    default: m = utf8proc_category(c) == UTF8PROC_CATEGORY_ND; break;
    }
    return m != it->neg;
}

static int class_match_slow(const rnode *n, int32_t c)
{
    int m = 0;
    for (int i = 0; i < n->nitems && !m; i++) m = item_match(&n->items[i], c);
    if (!m && n->icase) {
        int32_t l = utf8proc_tolower(c), u = utf8proc_toupper(c);
        for (int i = 0; i < n->nitems && !m; i++)
            m = (l != c && item_match(&n->items[i], l)) || (u != c && item_match(&n->items[i], u));
    }
    return m != n->neg;
}

static inline int class_match(const rnode *n, int32_t c)
{
    if (c >= 0 && c < 128) return (int)((n->ascii[c >> 6] >> (c & 63)) & 1);
    return class_match_slow(n, c);
}

static int char_match(const rnode *n, int32_t c)
{
    switch (n->type) {
    case N_CHAR:
        return c == n->c || (n->icase && utf8proc_tolower(c) == utf8proc_tolower(n->c));
    case N_ANY:
        return c != '\n';
    default:
        return class_match(n, c);
    }
}

/* ---- Parser ---------------------------------------------------------------- */

typedef struct {
    const char *p, *end;
    tok_regex *r;
    int icase;
    char *err;
    size_t errlen;
    int failed;
} parser;

static void perr(parser *ps, const char *msg)
{
    if (!ps->failed && ps->err && ps->errlen) snprintf(ps->err, ps->errlen, "regex: %s", msg);
    ps->failed = 1;
}

static rnode *node_new(parser *ps, int type)
{
    tok_regex *r = ps->r;
    if (r->nall == r->capall) {
        int nc = r->capall ? r->capall * 2 : 32;
        rnode **na = realloc(r->all, (size_t)nc * sizeof *na);
        if (!na) { perr(ps, "out of memory"); return NULL; }
        r->all = na;
        r->capall = nc;
    }
    rnode *n = calloc(1, sizeof *n);
    if (!n) { perr(ps, "out of memory"); return NULL; }
    n->type = type;
    n->icase = ps->icase;
    r->all[r->nall++] = n;
    return n;
}

static int32_t next_cp(parser *ps)
{
    int32_t c;
    size_t k = eng__tok_utf8_decode((const unsigned char *)ps->p, (size_t)(ps->end - ps->p), &c);
    if (!k) { perr(ps, "invalid UTF-8 in pattern"); return -1; }
    ps->p += k;
    return c;
}

static int add_item(parser *ps, rnode *n, citem it)
{
    citem *ni = realloc(n->items, (size_t)(n->nitems + 1) * sizeof *ni);
    if (!ni) { perr(ps, "out of memory"); return 0; }
    n->items = ni;
    n->items[n->nitems++] = it;
    return 1;
}

/* The categories \p{NAME} names: a two-letter category or a one-letter group. */
static uint32_t cat_bits(const char *name, size_t len)
{
    static const char *names[] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd",
                                  "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm",
                                  "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"};
    /* utf8proc's enum order is the order above, Cn = 0. */
    uint32_t bits = 0;
    if (len == 1 || (len > 1 && strncmp(name, "L&", len) == 0)) {
        for (int i = 0; i < 30; i++)
            if (names[i][0] == name[0]) bits |= 1u << i;
        if (len == 2) bits &= (1u << 1) | (1u << 2) | (1u << 3);
        return bits;
    }
    if (len == 2)
        for (int i = 0; i < 30; i++)
            if (names[i][0] == name[0] && names[i][1] == name[1]) return 1u << i;
    static const struct { const char *n; const char *c; } longn[] = {
        {"Letter", "L"}, {"Mark", "M"}, {"Number", "N"}, {"Punctuation", "P"},
        {"Symbol", "S"}, {"Separator", "Z"}, {"Other", "C"}};
    for (size_t i = 0; i < sizeof longn / sizeof *longn; i++)
        if (strlen(longn[i].n) == len && memcmp(longn[i].n, name, len) == 0) return cat_bits(longn[i].c, 1);
    return 0;
}

/* After a backslash: one of the class escapes, written to *it; 0 if the
 * escape is a plain character (its code point in *lit). */
static int parse_escape(parser *ps, citem *it, int32_t *lit)
{
    if (ps->p >= ps->end) { perr(ps, "trailing backslash"); return 0; }
    int32_t c = next_cp(ps);
    memset(it, 0, sizeof *it);
    switch (c) {
    case 's': case 'S': it->kind = CI_SPACE; it->neg = c == 'S'; return 1;
    case 'w': case 'W': it->kind = CI_WORD; it->neg = c == 'W'; return 1;
    case 'd': case 'D': it->kind = CI_DIGIT; it->neg = c == 'D'; return 1;
    case 'p': case 'P': {
        const char *name = ps->p;
        size_t len = 1;
        if (ps->p < ps->end && *ps->p == '{') {
            const char *close = memchr(ps->p, '}', (size_t)(ps->end - ps->p));
            if (!close) { perr(ps, "unterminated \\p{"); return 0; }
            name = ps->p + 1;
            len = (size_t)(close - name);
            ps->p = close + 1;
        } else if (ps->p < ps->end) {
            ps->p++;
        } else {
            perr(ps, "\\p without a name");
            return 0;
        }
        int neg = c == 'P';
        if (len && name[0] == '^') name++, len--, neg = !neg;
        it->kind = CI_CAT;
        it->neg = neg;
        it->cats = cat_bits(name, len);
        if (!it->cats) { perr(ps, "this \\p{} property is not supported"); return 0; }
        return 1;
    }
    case 'n': *lit = '\n'; return 0;
    case 'r': *lit = '\r'; return 0;
    case 't': *lit = '\t'; return 0;
    case 'f': *lit = '\f'; return 0;
    case 'v': *lit = '\v'; return 0;
    case 'x': case 'u': {
        int32_t v = 0;
        int braces = ps->p < ps->end && *ps->p == '{', nd = 0, maxd = braces ? 8 : c == 'x' ? 2 : 4;
        if (braces) ps->p++;
        while (ps->p < ps->end && nd < maxd) {
            char h = *ps->p;
            int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0) break;
            v = v * 16 + d;
            ps->p++, nd++;
        }
        if (braces) {
            if (ps->p >= ps->end || *ps->p != '}') { perr(ps, "bad \\x{...}"); return 0; }
            ps->p++;
        }
        if (!nd || v > 0x10FFFF) { perr(ps, "bad hex escape"); return 0; }
        *lit = v;
        return 0;
    }
    default:
        if ((c >= '0' && c <= '9') || c == 'b' || c == 'B' || c == 'A' || c == 'z' || c == 'Z' ||
            c == 'k' || c == 'g' || c == 'G' || c == 'X' || c == 'R')
        {
            perr(ps, "escape not supported (backreference, word boundary or anchor)");
            return 0;
        }
        *lit = c;
        return 0;
    }
}

static rnode *parse_class(parser *ps)
{
    rnode *n = node_new(ps, N_CLASS);
    if (!n) return NULL;
    if (ps->p < ps->end && *ps->p == '^') n->neg = 1, ps->p++;
    int first = 1;
    while (!ps->failed) {
        if (ps->p >= ps->end) { perr(ps, "unterminated ["); return NULL; }
        if (*ps->p == ']' && !first) { ps->p++; break; }
        if (*ps->p == '[') { perr(ps, "nested classes: not supported"); return NULL; }
        first = 0;
        int32_t lo;
        citem it;
        if (*ps->p == '\\') {
            ps->p++;
            if (parse_escape(ps, &it, &lo)) {
                add_item(ps, n, it);
                continue;
            }
        } else {
            lo = next_cp(ps);
        }
        int32_t hi = lo;
        if (ps->p + 1 < ps->end && ps->p[0] == '-' && ps->p[1] != ']') {
            ps->p++;
            if (*ps->p == '\\') {
                ps->p++;
                if (parse_escape(ps, &it, &hi)) { perr(ps, "class escape as a range end"); return NULL; }
            } else {
                hi = next_cp(ps);
            }
            if (hi < lo) { perr(ps, "reversed range"); return NULL; }
        }
        add_item(ps, n, (citem){CI_RANGE, 0, lo, hi, 0});
    }
    return n;
}

static rnode *parse_alt(parser *ps);

static int parse_int(parser *ps, int *v)
{
    int nd = 0;
    *v = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9' && nd < 6) *v = *v * 10 + (*ps->p++ - '0'), nd++;
    return nd > 0;
}

static rnode *parse_atom(parser *ps)
{
    char c = *ps->p;
    if (c == '(') {
        ps->p++;
        int save_icase = ps->icase, look = 0, neg = 0;
        if (ps->p < ps->end && *ps->p == '?') {
            ps->p++;
            if (ps->p < ps->end && (*ps->p == '=' || *ps->p == '!')) {
                look = 1;
                neg = *ps->p++ == '!';
            } else if (ps->p < ps->end && *ps->p == ':') {
                ps->p++;
            } else if (ps->p + 1 < ps->end && ps->p[0] == 'i' && (ps->p[1] == ':' || ps->p[1] == ')')) {
                ps->icase = 1;
                if (ps->p[1] == ')') {
                    /* (?i) applies to the rest of the enclosing group. */
                    ps->p += 2;
                    return node_new(ps, N_GROUP);
                }
                ps->p += 2;
            } else {
                perr(ps, "group not supported (lookbehind, named or atomic group, flags)");
                return NULL;
            }
        }
        rnode *sub = parse_alt(ps);
        if (!sub || ps->p >= ps->end || *ps->p != ')') { perr(ps, "unbalanced ("); return NULL; }
        ps->p++;
        ps->icase = save_icase;
        rnode *g = node_new(ps, look ? N_LOOK : N_GROUP);
        if (!g) return NULL;
        g->sub = sub;
        g->look_neg = neg;
        return g;
    }
    if (c == '[') {
        ps->p++;
        return parse_class(ps);
    }
    if (c == '.') { ps->p++; return node_new(ps, N_ANY); }
    if (c == '^') { ps->p++; return node_new(ps, N_BOL); }
    if (c == '$') { ps->p++; return node_new(ps, N_EOL); }
    if (c == '*' || c == '+' || c == '?' || c == '{') { perr(ps, "quantifier without a target"); return NULL; }
    int32_t lit;
    if (c == '\\') {
        ps->p++;
        citem it;
        if (parse_escape(ps, &it, &lit)) {
            rnode *n = node_new(ps, N_CLASS);
            if (n) add_item(ps, n, it);
            return n;
        }
    } else {
        lit = next_cp(ps);
    }
    rnode *n = node_new(ps, N_CHAR);
    if (n) n->c = lit;
    return n;
}

/* A sequence of quantified atoms up to | or ) or the end; an empty
 * sequence is an empty N_GROUP. */
static rnode *parse_seq(parser *ps)
{
    rnode *head = NULL, **tail = &head;
    while (!ps->failed && ps->p < ps->end && *ps->p != '|' && *ps->p != ')') {
        rnode *a = parse_atom(ps);
        if (!a) return NULL;
        for (;;) {
            if (ps->p >= ps->end) break;
            int min, max;
            char q = *ps->p;
            if (q == '*') min = 0, max = -1, ps->p++;
            else if (q == '+') min = 1, max = -1, ps->p++;
            else if (q == '?') min = 0, max = 1, ps->p++;
            else if (q == '{') {
                const char *save = ps->p++;
                if (!parse_int(ps, &min)) { ps->p = save; break; }
                max = min;
                if (ps->p < ps->end && *ps->p == ',') {
                    ps->p++;
                    if (!parse_int(ps, &max)) max = -1;
                }
                if (ps->p >= ps->end || *ps->p != '}' || (max >= 0 && max < min)) {
                    perr(ps, "bad {n,m} quantifier");
                    return NULL;
                }
                ps->p++;
            } else {
                break;
            }
            if (a->type == N_BOL || a->type == N_EOL || a->type == N_LOOK) {
                perr(ps, "quantified anchor or lookahead");
                return NULL;
            }
            rnode *r = node_new(ps, N_REP);
            if (!r) return NULL;
            r->sub = a;
            r->min = min;
            r->max = max;
            if (ps->p < ps->end && *ps->p == '?') r->lazy = 1, ps->p++;
            else if (ps->p < ps->end && *ps->p == '+') r->possessive = 1, ps->p++;
            a = r;
        }
        *tail = a;
        tail = &a->next;
    }
    if (ps->failed) return NULL;
    return head ? head : node_new(ps, N_GROUP);
}

static rnode *parse_alt(parser *ps)
{
    int save_icase = ps->icase;
    rnode *first = parse_seq(ps);
    if (!first || ps->p >= ps->end || *ps->p != '|') {
        ps->icase = save_icase;
        return first;
    }
    rnode *alt = node_new(ps, N_ALT);
    if (!alt) return NULL;
    rnode **v = malloc(sizeof *v);
    if (!v) { perr(ps, "out of memory"); return NULL; }
    v[0] = first;
    alt->alts = v;
    alt->nalts = 1;
    while (!ps->failed && ps->p < ps->end && *ps->p == '|') {
        ps->p++;
        rnode *s = parse_seq(ps);
        if (!s) return NULL;
        v = realloc(alt->alts, (size_t)(alt->nalts + 1) * sizeof *v);
        if (!v) { perr(ps, "out of memory"); return NULL; }
        alt->alts = v;
        alt->alts[alt->nalts++] = s;
    }
    ps->icase = save_icase;
    return ps->failed ? NULL : alt;
}

void eng__tok_regex_free(tok_regex *r)
{
    if (!r) return;
    for (int i = 0; i < r->nall; i++) {
        free(r->all[i]->items);
        free(r->all[i]->alts);
        free(r->all[i]);
    }
    free(r->all);
    free(r);
}

tok_regex *eng__tok_regex_compile(const char *pat, int literal, char *err, size_t errlen)
{
    tok_regex *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    parser ps = {pat, pat + strlen(pat), r, 0, err, errlen, 0};
    if (literal) {
        /* A string pattern: its chars in sequence. */
        rnode *head = NULL, **tail = &head;
        while (ps.p < ps.end && !ps.failed) {
            int32_t c = next_cp(&ps);
            rnode *n = node_new(&ps, N_CHAR);
            if (!n) break;
            n->c = c;
            *tail = n;
            tail = &n->next;
        }
        r->root = head ? head : node_new(&ps, N_GROUP);
    } else {
        r->root = parse_alt(&ps);
        if (!ps.failed && ps.p < ps.end) perr(&ps, "unbalanced )");
    }
    if (ps.failed || !r->root) {
        if (!ps.failed && err && errlen) snprintf(err, errlen, "regex: out of memory");
        eng__tok_regex_free(r);
        return NULL;
    }
    for (int i = 0; i < r->nall; i++)
        if (r->all[i]->type == N_CLASS)
            for (int32_t c = 0; c < 128; c++)
                if (class_match_slow(r->all[i], c)) r->all[i]->ascii[c >> 6] |= 1ull << (c & 63);
    return r;
}

/* ---- Matcher ---------------------------------------------------------------- */

/* What follows the node being matched: the rest of a sequence, then the
 * continuations of the enclosing constructs. A repetition's continuation
 * carries its iteration count. */
typedef struct cont {
    const rnode *n;           /* the node to match next (NULL: pop) */
    const rnode *rep;         /* non-NULL: re-enter this repetition */
    int count, start;         /* its iterations so far and where the last began */
    const struct cont *up;
} cont;

typedef struct {
    const tchar *c;
    int n;
    int *steps;
    int out_of_steps;
    int depth;
} mstate;

/* Recursion depth bound: deep enough for any realistic word, shallow
 * enough for a worker thread's stack. */
#define RE_MAX_DEPTH 4000

static int m_node(mstate *st, const rnode *n, int pos, const cont *k, int *end);

static int m_rep(mstate *st, const rnode *r, int count, int start, int pos, const cont *k, int *end);

static int m_cont(mstate *st, int pos, const cont *k, int *end)
{
    while (k) {
        if (k->rep) return m_rep(st, k->rep, k->count, k->start, pos, k->up, end);
        if (k->n) return m_node(st, k->n, pos, k->up, end);
        k = k->up;
    }
    *end = pos;
    return 1;
}

static int single_char(const rnode *n)
{
    return !n->next && (n->type == N_CHAR || n->type == N_ANY || n->type == N_CLASS);
}

/* The repetition r, having matched count iterations (the last starting at
 * start), at pos. */
static int m_rep(mstate *st, const rnode *r, int count, int start, int pos, const cont *k, int *end)
{
    if (count > 0 && pos == start && count >= r->min) return m_cont(st, pos, k, end);   /* empty loop */
    int can_more = r->max < 0 || count < r->max;
    cont re = {NULL, r, count + 1, pos, k};
    if (count < r->min) return m_node(st, r->sub, pos, &re, end);
    if (r->lazy) {
        if (m_cont(st, pos, k, end)) return 1;
        return can_more && m_node(st, r->sub, pos, &re, end);
    }
    if (can_more && m_node(st, r->sub, pos, &re, end)) return 1;
    return !st->out_of_steps && m_cont(st, pos, k, end);
}

static int m_node(mstate *st, const rnode *n, int pos, const cont *k, int *end)
{
    if (--*st->steps < 0 || st->depth > RE_MAX_DEPTH) {
        st->out_of_steps = 1;
        return 0;
    }
    st->depth++;
    int ok = 0;
    for (;;) {
        if (!n) {
            ok = m_cont(st, pos, k, end);
            break;
        }
        switch (n->type) {
        case N_CHAR: case N_ANY: case N_CLASS:
            if (pos < st->n && char_match(n, st->c[pos].c)) {
                pos++;
                n = n->next;
                continue;
            }
            break;
        case N_BOL:
            if (pos == 0) { n = n->next; continue; }
            break;
        case N_EOL:
            if (pos == st->n) { n = n->next; continue; }
            break;
        case N_GROUP:
            if (n->sub) {
                cont c = {n->next, NULL, 0, 0, k};
                ok = m_node(st, n->sub, pos, &c, end);
                break;
            }
            n = n->next;
            continue;
        case N_LOOK: {
            int e2;
            int r = m_node(st, n->sub, pos, NULL, &e2);
            if (st->out_of_steps) break;
            if (r != n->look_neg) { n = n->next; continue; }
            break;
        }
        case N_ALT: {
            cont c = {n->next, NULL, 0, 0, k};
            for (int i = 0; i < n->nalts && !ok && !st->out_of_steps; i++) {
                const rnode *a = n->alts[i];
                /* A literal or class first: check it here, saving a call. */
                if ((a->type == N_CHAR || a->type == N_CLASS) &&
                    (pos >= st->n || !char_match(a, st->c[pos].c)))
                    continue;
                ok = m_node(st, a, pos, &c, end);
            }
            break;
        }
        case N_REP:
            if (single_char(n->sub) && !n->lazy) {
                /* The common case (\p{L}+, \s+): take the longest run, then
                 * give back one char at a time, without recursion per char. */
                int run = 0, lim = n->max < 0 ? st->n - pos : n->max;
                while (run < lim && pos + run < st->n && char_match(n->sub, st->c[pos + run].c)) run++;
                if (run < n->min) break;
                cont c = {n->next, NULL, 0, 0, k};
                if (n->possessive) {
                    ok = m_cont(st, pos + run, &c, end);
                    break;
                }
                for (int i = run; i >= n->min && !ok && !st->out_of_steps; i--) {
                    if (--*st->steps < 0) { st->out_of_steps = 1; break; }
                    ok = m_cont(st, pos + i, &c, end);
                }
                break;
            }
            {
                cont c = {n->next, NULL, 0, 0, k};
                if (n->possessive) {
                    int e2;
                    /* Atomic: the repetition's own longest match, no giving back. */
                    if (m_rep(st, n, 0, -1, pos, NULL, &e2)) ok = m_cont(st, e2, &c, end);
                } else {
                    ok = m_rep(st, n, 0, -1, pos, &c, end);
                }
            }
            break;
        }
        break;
    }
    st->depth--;
    return ok;
}

int eng__tok_regex_find(const tok_regex *r, const tchar *c, int n, int from, int *ms, int *me,
                   int *steps_left)
{
    mstate st = {c, n, steps_left, 0, 0};
    for (int p = from; p <= n; p++) {
        int e;
        if (m_node(&st, r->root, p, NULL, &e)) {
            *ms = p;
            *me = e;
            return 1;
        }
        if (st.out_of_steps) return -1;
    }
    return 0;
}
