/* redis_wire.c: see redis_wire.h. */
#include "redis_wire.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    else {
        snprintf(why, why_size, "unknown task (classify, embed or tokenize)");
        return ENG_ERR_UNSUPPORTED;
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
    return 1;
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

static void put_floats32(buf *b, const float *v, int n)
{
    for (int i = 0; i < n; i++) {
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
