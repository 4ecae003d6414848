/* redis_wire.c: see redis_wire.h. */
#include "redis_wire.h"

#include <ctype.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static int is(eng_redis_str v, const char *s)
{
    return v.p && v.n == strlen(s) && !memcmp(v.p, s, v.n);
}

eng_redis_str eng__redis_find(const eng_redis_str *kv, size_t n, const char *name)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        if (is(kv[i], name))
            return kv[i + 1];
    return (eng_redis_str){0};
}

/* A decimal integer in lo..hi filling v exactly; 0 when not. */
static int int_of(eng_redis_str v, long long lo, long long hi, long long *out)
{
    if (!v.p || v.n == 0 || v.n > 19)
        return 0;
    long long x = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return 0;
        x = x * 10 + (v.p[i] - '0');
    }
    if (x < lo || x > hi)
        return 0;
    *out = x;
    return 1;
}

eng_status eng__redis_parse_request(const eng_redis_str *kv, size_t n, eng_redis_request *q,
                                    char *why, size_t why_size)
{
    memset(q, 0, sizeof *q);
    q->truncate = 1;
    q->reply_to = eng__redis_find(kv, n, "reply_to");
    q->id = eng__redis_find(kv, n, "id");
    q->task = eng__redis_find(kv, n, "task");
    q->input = eng__redis_find(kv, n, "input");
    q->model = eng__redis_find(kv, n, "model");
    q->labels = eng__redis_find(kv, n, "labels");
    q->templ = eng__redis_find(kv, n, "template");
    q->label_ids = eng__redis_find(kv, n, "label_ids");
    const char *bad = NULL;
    long long v = 0, dlv = 0;
    eng_redis_str prio = eng__redis_find(kv, n, "priority"),
                  dl = eng__redis_find(kv, n, "deadline_ms"),
                  tr = eng__redis_find(kv, n, "truncate"), raw = eng__redis_find(kv, n, "raw"),
                  fmt = eng__redis_find(kv, n, "format"), sp = eng__redis_find(kv, n, "special");
    if (!q->id.p)
        bad = "missing field id";
    else if (!q->task.p)
        bad = "missing field task";
    else if (!q->input.p)
        bad = "missing field input";
    else if (prio.p && !int_of(prio, 0, ENG_SCHED_PRIORITIES - 1, &v))
        bad = "priority is not 0..3";
    else if (dl.p && !int_of(dl, 1, INT64_MAX, &dlv))
        bad = "deadline_ms is not a positive integer";
    else if (tr.p && !is(tr, "0") && !is(tr, "1"))
        bad = "truncate is not 0 or 1";
    else if (fmt.p && !is(fmt, "tei"))
        bad = "format is not tei";
    else if (sp.p && !is(sp, "0") && !is(sp, "1"))
        bad = "special is not 0 or 1";
    if (bad) {
        snprintf(why, why_size, "%s", bad);
        return ENG_ERR_INVALID_ARG;
    }
    q->priority = (int)v;
    q->deadline_ms = dlv;
    q->truncate = !is(tr, "0");
    q->raw = is(raw, "1");
    q->tei = fmt.p != NULL;
    q->skip_special = is(sp, "0");
    if (is(q->task, "classify"))
        q->kind = ENG_REDIS_CLASSIFY;
    else if (is(q->task, "embed"))
        q->kind = ENG_REDIS_EMBED;
    else if (is(q->task, "tokenize"))
        q->kind = ENG_REDIS_TOKENIZE;
    else if (is(q->task, "zero_shot"))
        q->kind = ENG_REDIS_ZERO_SHOT;
    else {
        snprintf(why, why_size, "unknown task (classify, embed, tokenize or zero_shot)");
        return ENG_ERR_UNSUPPORTED;
    }
    if (q->kind == ENG_REDIS_ZERO_SHOT && !q->labels.p) {
        snprintf(why, why_size, "missing field labels");
        return ENG_ERR_INVALID_ARG;
    }
    return ENG_OK;
}

int eng__redis_parse_reply(const eng_redis_str *kv, size_t n, eng_redis_reply *r)
{
    r->id = eng__redis_find(kv, n, "id");
    r->status = eng__redis_find(kv, n, "status");
    r->body = eng__redis_find(kv, n, "body");
    r->raw = eng__redis_find(kv, n, "raw");
    if (!r->id.p || !r->status.p)
        return 0;
    r->st = eng__redis_status_of(r->status.p, r->status.n);
    r->dead_letter = is(r->status, "dead_letter");
    return 1;
}

void eng__redis_reply_error(const eng_redis_reply *r, char *out, size_t out_size)
{
    cJSON *j = r->body.p ? cJSON_ParseWithLength(r->body.p, r->body.n) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    snprintf(out, out_size, "%s", cJSON_IsString(e) ? e->valuestring : "");
    cJSON_Delete(j);
}

const char *eng__redis_status_name(eng_status s)
{
    /* "ENG_ERR_TOO_LONG" -> "too_long", made once from the status list. */
    static const char *const full[] = {
#define ENG__X_NAME(name, text) #name,
        ENG_STATUS_LIST(ENG__X_NAME)
#undef ENG__X_NAME
    };
    static char names[ENG__STATUS_COUNT][32];
    if ((unsigned)s >= ENG__STATUS_COUNT)
        s = ENG_ERR_INTERNAL;
    if (s == ENG_OK)
        return "ok";
    char *nm = names[s];
    if (!nm[0]) {   /* benign race: every writer writes the same bytes */
        const char *src = full[s] + strlen("ENG_ERR_");
        size_t i = 0;
        for (; src[i] && i + 1 < sizeof names[s]; i++)
            nm[i] = (char)tolower((unsigned char)src[i]);
        nm[i] = '\0';
    }
    return nm;
}

eng_status eng__redis_status_of(const char *name, size_t len)
{
    for (int s = 0; s < ENG__STATUS_COUNT; s++) {
        const char *nm = eng__redis_status_name((eng_status)s);
        if (strlen(nm) == len && !memcmp(nm, name, len))
            return (eng_status)s;
    }
    return ENG_ERR_INTERNAL;
}

enum { RAW_HEAD = 4 + 6 * 4 + 2 * 8 };


/* Little-endian on the wire whatever the host (memcpy alone would write the
 * host's order). */
static void put32(buf *b, uint32_t v)
{
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    buf_add(b, c, 4);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_floats32(buf *b, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        put32(b, u);
    }
}

void eng__redis_raw_put(buf *b, const eng_redis_raw *h, const float *out, const float *probs)
{
    buf_add(b, "ENG1", 4);
    int32_t ints[6] = {h->label, h->n_tokens, h->batch_size, h->batch_tokens, h->n_out, h->n_probs};
    for (int i = 0; i < 6; i++)
        put32(b, (uint32_t)ints[i]);
    int64_t longs[2] = {h->queue_ns, h->compute_ns};
    for (int i = 0; i < 2; i++) {
        put32(b, (uint32_t)((uint64_t)longs[i] & 0xffffffffu));
        put32(b, (uint32_t)((uint64_t)longs[i] >> 32));
    }
    put_floats32(b, out, h->n_out);
    put_floats32(b, probs, h->n_probs);
}

int eng__redis_raw_get(const char *p, size_t n, eng_redis_raw *h, float *vals, int width)
{
    const unsigned char *u = (const unsigned char *)p;
    if (!p || n < RAW_HEAD || memcmp(p, "ENG1", 4))
        return 0;
    int32_t ints[6];
    for (int i = 0; i < 6; i++)
        ints[i] = (int32_t)get32(u + 4 + 4 * i);
    *h = (eng_redis_raw){ints[0], ints[1], ints[2], ints[3], ints[4], ints[5],
                         (int64_t)((uint64_t)get32(u + 28) | (uint64_t)get32(u + 32) << 32),
                         (int64_t)((uint64_t)get32(u + 36) | (uint64_t)get32(u + 40) << 32)};
    if (h->n_out < 0 || h->n_probs < 0 || (int64_t)h->n_out + h->n_probs != width ||
        n != RAW_HEAD + (size_t)width * 4)
        return 0;
    for (int i = 0; i < width; i++) {
        uint32_t x = get32(u + RAW_HEAD + 4 * (size_t)i);
        memcpy(&vals[i], &x, 4);
    }
    return 1;
}

eng_status eng__redis_zero_shot_get(const eng_redis_request *q, int dim, eng_redis_zero_shot *z,
                                    char *why, size_t why_size)
{
    memset(z, 0, sizeof *z);
    const unsigned char *ids = (const unsigned char *)q->label_ids.p;
    size_t L = 0, total = 0;
    for (size_t i = 0; i < q->labels.n; i++)
        L += q->labels.p[i] == '\0';
    const char *bad = NULL;
    if (dim < 1 || !q->input.p || q->input.n % ((size_t)dim * 4) || q->input.n == 0)
        bad = "input is not a whole number of image features";
    else if (!q->labels.p || L == 0 || q->labels.p[q->labels.n - 1] != '\0')
        bad = "labels is not NUL-terminated labels";
    else if (q->templ.p && memchr(q->templ.p, '\0', q->templ.n))
        bad = "template holds a NUL";
    else if (L > INT32_MAX || q->input.n / 4 / (size_t)dim > INT32_MAX)
        bad = "too many labels or images";
    /* label_ids: L rows of a count and that many ids, nothing more. */
    for (size_t l = 0, at = 0; !bad && ids && l <= L; l++) {
        if (l == L) {
            if (at != q->label_ids.n)
                bad = "label_ids has bytes after its last row";
            break;
        }
        const size_t left = q->label_ids.n - at;
        const uint32_t k = left >= 4 ? get32(ids + at) : 0;
        if (left < 4 || k > (left - 4) / 4) {
            bad = "label_ids is not one row of ids per label";
            break;
        }
        at += 4 + 4 * (size_t)k;
        total += k;
    }
    if (bad) {
        snprintf(why, why_size, "%s", bad);
        return ENG_ERR_INVALID_ARG;
    }
    const size_t n_feat = q->input.n / 4, tl = q->templ.p ? q->templ.n + 1 : 0;
    /* One block: the rows and label pointers, the features, the ids, the
     * labels' and template's bytes. */
    size_t off_ptr = ids ? L * sizeof(eng_seq) : 0, off_feat = off_ptr + L * sizeof(char *),
           off_ids = off_feat + n_feat * sizeof(float), off_txt = off_ids + total * 4;
    _Static_assert(alignof(eng_seq) >= alignof(char *) && alignof(char *) >= alignof(float) &&
                       sizeof(float) == sizeof(int32_t),
                   "the block's parts are in decreasing alignment");
    char *mem = malloc(off_txt + q->labels.n + tl);
    if (!mem) {
        snprintf(why, why_size, "out of memory");
        return ENG_ERR_NOMEM;
    }
    eng_seq *seqs = ids ? (eng_seq *)(void *)mem : NULL;
    const char **names = (const char **)(void *)(mem + off_ptr);
    float *feat = (float *)(void *)(mem + off_feat);
    int32_t *idv = (int32_t *)(void *)(mem + off_ids);
    char *txt = mem + off_txt;
    for (size_t i = 0; i < n_feat; i++) {
        uint32_t u = get32((const unsigned char *)q->input.p + 4 * i);
        memcpy(&feat[i], &u, 4);
    }
    memcpy(txt, q->labels.p, q->labels.n);
    for (size_t l = 0, at = 0; l < L; l++) {
        names[l] = txt + at;
        at += strlen(txt + at) + 1;
    }
    for (size_t l = 0, at = 0, k = 0; seqs && l < L; l++) {
        uint32_t c = get32(ids + at);
        seqs[l] = (eng_seq){idv + k, (int)c};
        for (uint32_t j = 0; j < c; j++)
            idv[k++] = (int32_t)get32(ids + at + 4 + 4 * (size_t)j);
        at += 4 + 4 * (size_t)c;
    }
    char *templ = NULL;
    if (q->templ.p) {
        templ = txt + q->labels.n;
        memcpy(templ, q->templ.p, q->templ.n);
        templ[q->templ.n] = '\0';
    }
    z->ls = (eng_label_set){names, (int)L, templ, seqs};
    z->features = feat;
    z->n = (int)(n_feat / (size_t)dim);
    z->mem = mem;
    return ENG_OK;
}

void eng__redis_zero_shot_put(buf *labels, buf *label_ids, buf *input, const eng_label_set *ls,
                              const float *features, size_t n_floats)
{
    for (int l = 0; l < ls->n_labels; l++) {
        buf_add(labels, ls->labels[l], strlen(ls->labels[l]) + 1);
        if (ls->ids) {
            put32(label_ids, (uint32_t)ls->ids[l].n_ids);
            for (int k = 0; k < ls->ids[l].n_ids; k++)
                put32(label_ids, (uint32_t)ls->ids[l].ids[k]);
        }
    }
    put_floats32(input, features, n_floats);
}
