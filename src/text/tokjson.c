/* tokjson.c: the tokenizer.json interpreter's top level (see tokjson.h):
 * parsing, added tokens, the pipeline of one encode, truncation and the
 * post-processors, following the Rust crate's tokenizer/mod.rs and
 * added_vocabulary.rs:
 *   1. added tokens with normalized=false are matched in the raw text
 *      (leftmost-longest; single_word, lstrip and rstrip as AddedVocabulary),
 *   2. each piece between them is normalized on its own, and added tokens
 *      with normalized=true are matched in the normalized piece,
 *   3. the pre-tokenizer splits the pieces, the model tokenizes each split,
 *   4. the ids are cut to max_len minus the post-processor's tokens, then
 *      the post-processor adds its tokens (and trims byte-level offsets). */
#include "tokjson.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_int.h"

/* Regex steps one encode may take, per input byte plus a floor: far above
 * what the shipped patterns need (a few per char), far below a hang. */
#define TOK_STEPS_PER_BYTE 4096
#define TOK_STEPS_MIN (1 << 20)

typedef struct {
    char *content;
    size_t len;
    int32_t *cps;        /* the pattern matched (normalized content when normalized) */
    int ncps;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} added_token;

enum { PP_NONE, PP_BERT, PP_ROBERTA, PP_TEMPLATE, PP_BYTELEVEL, PP_SEQUENCE };
static const char *const pp_names[] = {"none", "BertProcessing", "RobertaProcessing",
                                       "TemplateProcessing", "ByteLevel", "Sequence"};

typedef struct postproc postproc;
struct postproc {
    int type;
    int32_t *before, *after;   /* ids around $A */
    int nbefore, nafter;
    int trim_offsets, add_prefix_space;
    postproc *seq;
    int nseq;
};

struct eng__tokjson {
    tok_norm *norm;
    tok_pretok *pretok;
    tok_model *model;
    postproc pp;
    added_token *added;
    int nadded;
    int has_normalized_added;
    int vocab_size;
    uint8_t first_ascii[128];   /* an added token starts with this ASCII char */
    int first_non_ascii;        /* one starts with a non-ASCII char */
};

/* ---- Working memory --------------------------------------------------------- */

int eng__tw_grow(twork *w)
{
    size_t nc = w->pcap ? w->pcap * 2 : 1024;
    if (nc > INT32_MAX) return w->oom = 1, 0;
    tchar *n = realloc(w->pool, nc * sizeof *n);
    if (!n) return w->oom = 1, 0;
    w->pool = n;
    w->pcap = nc;
    return 1;
}

static int grow(void **p, int *cap, size_t elem)
{
    int nc = *cap ? *cap * 2 : 64;
    void *n = realloc(*p, (size_t)nc * elem);
    if (!n) return 0;
    *p = n;
    *cap = nc;
    return 1;
}

int eng__tw_split(twork *w, int32_t off, int32_t n, int32_t id, int32_t s, int32_t e, int32_t o0)
{
    if (w->nsp2 == w->spcap2 && !grow((void **)&w->sp2, &w->spcap2, sizeof *w->sp2)) return w->oom = 1, 0;
    w->sp2[w->nsp2++] = (tsplit){off, n, id, s, e, o0};
    return 1;
}

int eng__tw_token(twork *w, int32_t id, int32_t s, int32_t e)
{
    if (w->ntok == w->tokcap && !grow((void **)&w->tok, &w->tokcap, sizeof *w->tok)) return w->oom = 1, 0;
    w->tok[w->ntok++] = (ttoken){id, s, e, -1, 0};
    return 1;
}

void *eng__tw_scratch(twork *w, size_t bytes)
{
    if (bytes > w->scratch_cap) {
        void *n = realloc(w->scratch, bytes);
        if (!n) return w->oom = 1, NULL;
        w->scratch = n;
        w->scratch_cap = bytes;
    }
    return w->scratch;
}

void eng__tw_swap_splits(twork *w)
{
    tsplit *t = w->sp;
    int c = w->spcap;
    w->sp = w->sp2;
    w->nsp = w->nsp2;
    w->spcap = w->spcap2;
    w->sp2 = t;
    w->spcap2 = c;
    w->nsp2 = 0;
}

static void tw_free(twork *w)
{
    free(w->pool);
    free(w->sp);
    free(w->sp2);
    free(w->tok);
    free(w->scratch);
    free(w->mt);
}

/* Each thread keeps its working memory from one text to the next, so that a
 * warm thread tokenizes without allocating (the tokenizer itself is shared
 * and immutable); the key's destructor frees it when the thread ends. A text
 * that grew the pool past TW_KEEP_CHARS chars gives its memory back after
 * the call rather than holding it for the thread's life. */
enum { TW_KEEP_CHARS = 1 << 16 };
static pthread_key_t tw_key;
static int tw_key_ok;
static pthread_once_t tw_once = PTHREAD_ONCE_INIT;

static void tw_destroy(void *p)
{
    tw_free(p);
    free(p);
}

static void tw_key_init(void) { tw_key_ok = pthread_key_create(&tw_key, tw_destroy) == 0; }

/* This thread's working memory; NULL when it cannot have one (the caller
 * then works in a local one). */
static twork *tw_thread(void)
{
    pthread_once(&tw_once, tw_key_init);
    if (!tw_key_ok) return NULL;
    twork *w = pthread_getspecific(tw_key);
    if (!w && (w = calloc(1, sizeof *w)) != NULL && pthread_setspecific(tw_key, w) != 0) {
        free(w);
        w = NULL;
    }
    return w;
}

/* ---- Parsing ------------------------------------------------------------------ */

static int get_bool(const cJSON *j, const char *k, int def)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsBool(x) ? cJSON_IsTrue(x) : def;
}

static void pp_free(postproc *p)
{
    free(p->before);
    free(p->after);
    for (int i = 0; i < p->nseq; i++) pp_free(&p->seq[i]);
    free(p->seq);
}

/* ["token", id] as BertProcessing and RobertaProcessing store cls and sep. */
static int pair_id(const cJSON *j, const char *k, int32_t *id)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, k);
    const cJSON *v = cJSON_GetArrayItem(a, 1);
    if (!cJSON_IsArray(a) || !cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= (1 << 24)) return 0;
    *id = (int32_t)v->valuedouble;
    return 1;
}

static int push_ids(int32_t **v, int *n, const int32_t *ids, int k)
{
    int32_t *nv = realloc(*v, (size_t)(*n + k + 1) * sizeof *nv);
    if (!nv) return 0;
    memcpy(nv + *n, ids, (size_t)k * sizeof *ids);
    *v = nv;
    *n += k;
    return 1;
}

static int pp_parse(postproc *p, const cJSON *j, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!j || cJSON_IsNull(j)) return 1;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    const char *t = cJSON_IsString(ty) ? ty->valuestring : "?";
    int type = -1;
    for (int i = 1; i < (int)(sizeof pp_names / sizeof *pp_names); i++)
        if (strcmp(t, pp_names[i]) == 0) type = i;
    if (type < 0) {
        snprintf(err, errlen, "tokenizer.json: post_processor type '%s' is not supported", t);
        return 0;
    }
    p->type = type;
    switch (type) {
    case PP_BERT: case PP_ROBERTA: {
        int32_t cls, sep;
        if (!pair_id(j, "cls", &cls) || !pair_id(j, "sep", &sep)) {
            snprintf(err, errlen, "tokenizer.json: %s needs cls and sep", t);
            return 0;
        }
        if (!push_ids(&p->before, &p->nbefore, &cls, 1) || !push_ids(&p->after, &p->nafter, &sep, 1)) goto nomem;
        if (type == PP_ROBERTA) {
            p->trim_offsets = get_bool(j, "trim_offsets", 1);
            p->add_prefix_space = get_bool(j, "add_prefix_space", 1);
        }
        return 1;
    }
    case PP_BYTELEVEL:
        p->trim_offsets = get_bool(j, "trim_offsets", 1);
        p->add_prefix_space = get_bool(j, "add_prefix_space", 1);
        return 1;
    case PP_TEMPLATE: {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single"), *e;
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
        int seen_a = 0;
        if (!cJSON_IsArray(single)) {
            snprintf(err, errlen, "tokenizer.json: TemplateProcessing needs single");
            return 0;
        }
        cJSON_ArrayForEach(e, single)
        {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            const cJSON *sq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
            if (sq) {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(sq, "id");
                if (seen_a || !cJSON_IsString(id) || strcmp(id->valuestring, "A") != 0) {
                    snprintf(err, errlen, "tokenizer.json: TemplateProcessing single must hold $A once");
                    return 0;
                }
                seen_a = 1;
                continue;
            }
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
            const cJSON *st = cJSON_IsString(name) ? cJSON_GetObjectItemCaseSensitive(specials, name->valuestring) : NULL;
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids"), *x;
            if (!cJSON_IsArray(ids)) {
                snprintf(err, errlen, "tokenizer.json: TemplateProcessing special token '%s' is not defined",
                         cJSON_IsString(name) ? name->valuestring : "?");
                return 0;
            }
            cJSON_ArrayForEach(x, ids)
            {
                if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= (1 << 24)) {
                    snprintf(err, errlen, "tokenizer.json: TemplateProcessing ids must be token ids");
                    return 0;
                }
                int32_t id = (int32_t)x->valuedouble;
                if (!(seen_a ? push_ids(&p->after, &p->nafter, &id, 1) : push_ids(&p->before, &p->nbefore, &id, 1)))
                    goto nomem;
            }
        }
        if (!seen_a) {
            snprintf(err, errlen, "tokenizer.json: TemplateProcessing single has no $A");
            return 0;
        }
        return 1;
    }
    case PP_SEQUENCE: {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "processors"), *e;
        if (!cJSON_IsArray(a)) {
            snprintf(err, errlen, "tokenizer.json: Sequence needs processors");
            return 0;
        }
        p->seq = calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof *p->seq);
        if (!p->seq) goto nomem;
        cJSON_ArrayForEach(e, a)
        {
            if (!pp_parse(&p->seq[p->nseq], e, err, errlen)) return 0;
            p->nseq++;
        }
        return 1;
    }
    }
    return 1;
nomem:
    snprintf(err, errlen, "tokenizer.json: out of memory");
    return 0;
}

/* The number of ids the post-processor adds to one sequence. */
static int pp_added(const postproc *p)
{
    int n = p->nbefore + p->nafter;
    for (int i = 0; i < p->nseq; i++) n += pp_added(&p->seq[i]);
    return n;
}

static int parse_added(eng__tokjson *t, const cJSON *a, char *err, size_t errlen)
{
    const cJSON *e;
    if (!a || cJSON_IsNull(a)) return 1;
    if (!cJSON_IsArray(a)) {
        snprintf(err, errlen, "tokenizer.json: added_tokens must be a list");
        return 0;
    }
    t->added = calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof *t->added);
    if (!t->added) goto nomem;
    cJSON_ArrayForEach(e, a)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsString(c) || !*c->valuestring || !cJSON_IsNumber(id) || id->valuedouble < 0 ||
            id->valuedouble >= (1 << 24)) {
            snprintf(err, errlen, "tokenizer.json: added token %d needs content and id", t->nadded);
            return 0;
        }
        added_token *at = &t->added[t->nadded++];
        at->len = strlen(c->valuestring);
        if (!(at->content = strdup(c->valuestring))) goto nomem;
        at->id = (int32_t)id->valuedouble;
        at->special = get_bool(e, "special", 0);
        at->lstrip = get_bool(e, "lstrip", 0);
        at->rstrip = get_bool(e, "rstrip", 0);
        at->single_word = get_bool(e, "single_word", 0);
        at->normalized = get_bool(e, "normalized", !at->special);
        if (!eng__tok_utf8_cps(at->content, at->len, &at->cps, &at->ncps)) {
            snprintf(err, errlen, "tokenizer.json: added token %d is not valid UTF-8", t->nadded - 1);
            return 0;
        }
        if (at->normalized) t->has_normalized_added = 1;
        if (at->ncps && at->cps[0] < 128) t->first_ascii[at->cps[0]] = 1;
        else t->first_non_ascii = 1;
        if (at->id + 1 > t->vocab_size) t->vocab_size = at->id + 1;
    }
    return 1;
nomem:
    snprintf(err, errlen, "tokenizer.json: out of memory");
    return 0;
}

/* A normalized added token is matched by its normalized content. */
static int normalize_added(eng__tokjson *t)
{
    if (!t->norm) return 1;
    for (int i = 0; i < t->nadded; i++) {
        added_token *at = &t->added[i];
        if (!at->normalized) continue;
        twork w = {0};
        w.steps_left = TOK_STEPS_MIN;
        int ok = 1;
        for (int k = 0; k < at->ncps && ok; k++) ok = eng__tw_push(&w, at->cps[k], 0, 0);
        int32_t off, n;
        if (ok && eng__tok_norm_apply(t->norm, &w, 0, at->ncps, &off, &n) > 0) {
            int32_t *c = realloc(at->cps, ((size_t)n + 1) * sizeof *c);
            if (c) {
                for (int32_t k = 0; k < n; k++) c[k] = w.pool[off + k].c;
                at->cps = c;
                at->ncps = n;
                if (n && c[0] < 128) t->first_ascii[c[0]] = 1;
                else t->first_non_ascii = 1;
            } else {
                ok = 0;
            }
        } else {
            ok = 0;
        }
        tw_free(&w);
        if (!ok) return 0;
    }
    return 1;
}

void eng__tokjson_free(eng__tokjson *t)
{
    if (!t) return;
    eng__tok_norm_free(t->norm);
    eng__tok_pretok_free(t->pretok);
    eng__tok_model_free(t->model);
    pp_free(&t->pp);
    for (int i = 0; i < t->nadded; i++) {
        free(t->added[i].content);
        free(t->added[i].cps);
    }
    free(t->added);
    free(t);
}

eng_status eng__tokjson_init(eng__tokjson **out, const char *json, size_t len, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) err = dummy, errlen = sizeof dummy;
    err[0] = '\0';
    if (!out || (!json && len)) return ENG_ERR_INVALID_ARG;
    *out = NULL;
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(err, errlen, "tokenizer.json: not a JSON object");
        return ENG_ERR_FORMAT;
    }
    eng_status st;
    eng__tokjson *t = calloc(1, sizeof *t);
    if (!t) {
        cJSON_Delete(j);
        return ENG_ERR_NOMEM;
    }
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(j, "normalizer");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "model");
    /* "truncation" and "padding" are not read: the engine truncates to the
     * model's positions and pads itself. */
    if (nz && !cJSON_IsNull(nz) && !(t->norm = eng__tok_norm_parse(nz, err, errlen))) goto fail;
    if (pt && !cJSON_IsNull(pt) && !(t->pretok = eng__tok_pretok_parse(pt, err, errlen))) goto fail;
    if (!cJSON_IsObject(md)) {
        snprintf(err, errlen, "tokenizer.json: no model");
        goto fail;
    }
    if (!(t->model = eng__tok_model_parse(md, err, errlen))) goto fail;
    t->vocab_size = eng__tok_model_vocab_size(t->model);
    if (!pp_parse(&t->pp, cJSON_GetObjectItemCaseSensitive(j, "post_processor"), err, errlen)) goto fail;
    if (!parse_added(t, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), err, errlen)) goto fail;
    if (!normalize_added(t)) {
        snprintf(err, errlen, "tokenizer.json: out of memory");
        goto fail;
    }
    cJSON_Delete(j);
    *out = t;
    return ENG_OK;
fail:
    /* The parsers say what failed in err; the status follows from it. */
    if (!err[0]) snprintf(err, errlen, "tokenizer.json: out of memory");
    st = strstr(err, "not supported") ? ENG_ERR_UNSUPPORTED
         : strstr(err, "out of memory") ? ENG_ERR_NOMEM
                                        : ENG_ERR_FORMAT;
    cJSON_Delete(j);
    eng__tokjson_free(t);
    return st;
}

static size_t describe_pp(const postproc *p, char *buf, size_t n)
{
    if (p->type != PP_SEQUENCE) return (size_t)snprintf(buf, n, "%s", pp_names[p->type]);
    size_t k = (size_t)snprintf(buf, n, "Sequence[");
    for (int i = 0; i < p->nseq && k < n; i++) {
        k += describe_pp(&p->seq[i], buf + k, n - k);
        if (i + 1 < p->nseq && k < n) k += (size_t)snprintf(buf + k, n - k, ", ");
    }
    if (k < n) k += (size_t)snprintf(buf + k, n - k, "]");
    return k;
}

void eng__tokjson_describe(const eng__tokjson *t, char *buf, size_t n)
{
    char a[512] = "none", b[512] = "none", c[256], d[256];
    if (t->norm) eng__tok_norm_describe(t->norm, a, sizeof a);
    if (t->pretok) eng__tok_pretok_describe(t->pretok, b, sizeof b);
    eng__tok_model_describe(t->model, c, sizeof c);
    describe_pp(&t->pp, d, sizeof d);
    int special = 0;
    for (int i = 0; i < t->nadded; i++) special += t->added[i].special;
    snprintf(buf, n, "normalizer %s; pre-tokenizer %s; model %s; post-processor %s; %d added tokens (%d special)",
             a, b, c, d, t->nadded, special);
}

int eng__tokjson_vocab_size(const eng__tokjson *t) { return t->vocab_size; }

const char *eng__tokjson_token(const eng__tokjson *t, int32_t id, size_t *len, int *special)
{
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].id == id) {
            *len = t->added[i].len;
            *special = t->added[i].special;
            return t->added[i].content;
        }
    *special = 0;
    return eng__tok_model_token(t->model, id, len);
}

int32_t eng__tokjson_token_id(const eng__tokjson *t, const char *s, size_t len)
{
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].len == len && memcmp(t->added[i].content, s, len) == 0) return t->added[i].id;
    return eng__tok_model_id(t->model, s, len);
}

/* ---- Added tokens ------------------------------------------------------------ */

static int is_word_char(int32_t c)
{
    if (c < 128) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    utf8proc_category_t k = utf8proc_category(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* Splits the chars pool[off..off+n) on the added tokens of one kind
 * (normalized or not), appending to sp2: AddedVocabulary::find_matches
 * with leftmost-longest matching. o0 is the piece's original start. */
static int split_added(const eng__tokjson *t, twork *w, int32_t off, int32_t n, int normalized, int32_t o0)
{
    int32_t done = 0;   /* chars before this are emitted */
    for (int32_t i = 0; i < n; i++) {
        const added_token *best = NULL;
        int32_t c0 = w->pool[off + i].c;
        if (c0 < 128 ? !t->first_ascii[c0] : !t->first_non_ascii) continue;
        for (int k = 0; k < t->nadded; k++) {
            const added_token *at = &t->added[k];
            if (at->normalized != normalized || at->ncps == 0 || at->cps[0] != c0 || at->ncps > n - i) continue;
            if (best && at->ncps <= best->ncps) continue;
            int32_t q = 1;
            while (q < at->ncps && w->pool[off + i + q].c == at->cps[q]) q++;
            if (q == at->ncps) best = at;
        }
        if (!best) continue;
        int32_t start = i, stop = i + best->ncps;
        if (best->single_word &&
            ((start > 0 && is_word_char(w->pool[off + start - 1].c)) ||
             (stop < n && is_word_char(w->pool[off + stop].c))))
            continue;
        if (best->lstrip) {
            while (start > done && eng__tok_is_whitespace(w->pool[off + start - 1].c)) start--;
        }
        if (best->rstrip) {
            while (stop < n && eng__tok_is_whitespace(w->pool[off + stop].c)) stop++;
        }
        if (done < start && !eng__tw_split(w, off + done, start - done, -1, 0, 0, done ? w->pool[off + done].s : o0))
            return 0;
        if (!eng__tw_split(w, off + start, stop - start, best->id, w->pool[off + start].s, w->pool[off + stop - 1].e,
                      w->pool[off + start].s))
            return 0;
        done = stop;
        i = stop - 1;
    }
    if (done < n && !eng__tw_split(w, off + done, n - done, -1, 0, 0, done ? w->pool[off + done].s : o0)) return 0;
    return 1;
}

/* ---- Post-processing ----------------------------------------------------------- */

/* The ByteLevel offset trimming (pre_tokenizers/byte_level.rs
 * process_offsets): a token's leading and trailing spaces ('Ġ' or real
 * whitespace) leave its offsets, except the one space add_prefix_space put
 * in front of the first token. */
static void trim_offsets(const eng__tokjson *t, twork *w, int from, int to, int add_prefix_space)
{
    for (int i = from; i < to; i++) {
        ttoken *k = &w->tok[i];
        if (k->s < 0) continue;
        /* The token's value: the vocabulary's text, or for an added token
         * the text it matched (lstrip/rstrip spaces included). */
        int32_t cps[512];
        int n = 0;
        if (k->voff >= 0) {
            for (int32_t q = 0; q < k->vn && n < 512; q++) cps[n++] = w->pool[k->voff + q].c;
        } else {
            size_t len;
            int special;
            const char *s = eng__tokjson_token(t, k->id, &len, &special);
            for (size_t q = 0; s && q < len && n < 512;) {
                size_t r = eng__tok_utf8_decode((const unsigned char *)s + q, len - q, &cps[n]);
                if (!r) break;
                q += r;
                n++;
            }
        }
        int lead = 0, trail = 0;
        while (lead < n && (cps[lead] == 0x120 || eng__tok_is_whitespace(cps[lead]))) lead++;
        while (trail < n && (cps[n - 1 - trail] == 0x120 || eng__tok_is_whitespace(cps[n - 1 - trail]))) trail++;
        if (lead > 0) {
            int first = i == from || k->s == 0;
            if (first && add_prefix_space && lead == 1) lead = 0;
            k->s = k->s + lead < k->e ? k->s + lead : k->e;
        }
        if (trail > 0 && k->e >= trail) k->e = k->e - trail > k->s ? k->e - trail : k->s;
    }
}

/* Applies p to the tokens w->tok[from..]: the ids before and after
 * (spans -1) and the offset trimming. */
static int pp_apply(const eng__tokjson *t, const postproc *p, twork *w, int from)
{
    if (p->type == PP_SEQUENCE) {
        for (int i = 0; i < p->nseq; i++)
            if (!pp_apply(t, &p->seq[i], w, from)) return 0;
        return 1;
    }
    if (p->trim_offsets) trim_offsets(t, w, from, w->ntok, p->add_prefix_space);
    if (p->nbefore) {
        for (int i = 0; i < p->nbefore; i++)
            if (!eng__tw_token(w, 0, 0, 0)) return 0;
        memmove(&w->tok[from + p->nbefore], &w->tok[from], (size_t)(w->ntok - from - p->nbefore) * sizeof *w->tok);
        for (int i = 0; i < p->nbefore; i++) w->tok[from + i] = (ttoken){p->before[i], -1, -1, -1, 0};
    }
    for (int i = 0; i < p->nafter; i++)
        if (!eng__tw_token(w, p->after[i], -1, -1)) return 0;
    return 1;
}

/* ---- Encode ------------------------------------------------------------------------ */

static eng_status run(const eng__tokjson *t, twork *w, const char *text, size_t len, int max_len, int *truncated)
{
    /* The raw text as chars, each with its own byte range. */
    for (size_t i = 0; i < len;) {
        int32_t c;
        size_t k = eng__tok_utf8_decode((const unsigned char *)text + i, len - i, &c);
        if (!k) return ENG_ERR_UTF8;
        if (!eng__tw_push(w, c, (int32_t)i, (int32_t)(i + k))) return ENG_ERR_NOMEM;
        i += k;
    }
    int32_t n0 = (int32_t)w->np;
    /* 1. Added tokens in the raw text. */
    if (!split_added(t, w, 0, n0, 0, 0)) return ENG_ERR_NOMEM;
    eng__tw_swap_splits(w);
    /* 2. Normalize each piece, then its normalized added tokens. */
    for (int i = 0; i < w->nsp; i++) {
        tsplit sp = w->sp[i];
        if (sp.id >= 0) {
            if (!eng__tw_split(w, sp.off, sp.n, sp.id, sp.s, sp.e, sp.o0)) return ENG_ERR_NOMEM;
            continue;
        }
        int32_t off = sp.off, n = sp.n;
        if (t->norm) {
            int r = eng__tok_norm_apply(t->norm, w, sp.off, sp.n, &off, &n);
            if (r < 0) return ENG_ERR_INVALID_ARG;
            if (r == 0) return ENG_ERR_NOMEM;
        }
        if (t->has_normalized_added) {
            if (!split_added(t, w, off, n, 1, sp.o0)) return ENG_ERR_NOMEM;
        } else if (n > 0 && !eng__tw_split(w, off, n, -1, 0, 0, sp.o0)) {
            return ENG_ERR_NOMEM;
        }
    }
    eng__tw_swap_splits(w);
    /* 3. Pre-tokenize. */
    if (t->pretok) {
        int r = eng__tok_pretok_apply(t->pretok, w);
        if (r < 0) return ENG_ERR_INVALID_ARG;
        if (r == 0) return ENG_ERR_NOMEM;
    }
    /* 4. The model, on each split, stopping once the ids are enough. */
    int room = max_len - pp_added(&t->pp);
    if (room < 0) room = 0;
    for (int i = 0; i < w->nsp && w->ntok <= room; i++) {
        const tsplit *sp = &w->sp[i];
        int ok = sp->id >= 0 ? eng__tw_token(w, sp->id, sp->s, sp->e) : eng__tok_model_apply(t->model, w, sp);
        if (!ok) return ENG_ERR_NOMEM;
        if (sp->id >= 0) {
            w->tok[w->ntok - 1].voff = sp->off;
            w->tok[w->ntok - 1].vn = sp->n;
        }
    }
    if (w->oom) return ENG_ERR_NOMEM;
    *truncated = w->ntok > room;
    if (w->ntok > room) w->ntok = room;
    /* 5. Post-process. */
    if (!pp_apply(t, &t->pp, w, 0)) return ENG_ERR_NOMEM;
    return ENG_OK;
}

eng_status eng__tokjson_encode(const eng__tokjson *t, const char *text, size_t len, int max_len,
                               int32_t *ids, eng_token_span *spans, int cap, int *n_ids, int *truncated)
{
    if (n_ids) *n_ids = 0;
    if (truncated) *truncated = 0;
    if (!t || (!text && len) || !ids || !n_ids || max_len < 1 || max_len > cap || len > INT32_MAX / 2)
        return ENG_ERR_INVALID_ARG;
    twork local = {0}, *w = tw_thread();
    if (!w) w = &local;
    w->np = 0;
    w->nsp = w->nsp2 = w->ntok = w->nmt = w->oom = 0;
    w->steps_left = len > (size_t)(INT32_MAX / TOK_STEPS_PER_BYTE) ? INT32_MAX
                    : (int)len * TOK_STEPS_PER_BYTE < TOK_STEPS_MIN ? TOK_STEPS_MIN
                                                                   : (int)len * TOK_STEPS_PER_BYTE;
    int trunc = 0;
    eng_status s = run(t, w, text, len, max_len, &trunc);
    if (s == ENG_OK) {
        int n = w->ntok < max_len ? w->ntok : max_len;
        for (int i = 0; i < n; i++) {
            ids[i] = w->tok[i].id;
            if (spans) spans[i] = (eng_token_span){w->tok[i].s, w->tok[i].e};
        }
        *n_ids = n;
        if (truncated) *truncated = trunc || w->ntok > max_len;
    }
    if (w == &local || w->pcap > TW_KEEP_CHARS) {
        tw_free(w);
        *w = (twork){0};
    }
    return s;
}
