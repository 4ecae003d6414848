/* infer_redis.c: see infer_redis.h. Uses the server's Redis helpers
 * (tools/serve/redis_common.c: the URL, connecting, reading entries). */
#include "infer_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redis_common.h"

int redis_client_open(redis_client *rc, const char *url, const char *stream, const char *task,
                      int index)
{
    eng_redis_addr a;
    char err[256];
    memset(rc, 0, sizeof *rc);
    if (!eng__redis_parse_url(url, &a)) {
        fprintf(stderr, "infer-bench: bad --redis %s (redis://HOST:PORT[/DB])\n", url);
        return -1;
    }
    if (!(rc->c = eng__redis_connect(&a, 2000, 35000, err, sizeof err))) {
        fprintf(stderr, "infer-bench: %s\n", err);
        return -1;
    }
    rc->stream = stream;
    rc->task = task;
    snprintf(rc->reply, sizeof rc->reply, "bench:reply:%d:%d", (int)getpid(), index);
    snprintf(rc->last, sizeof rc->last, "0-0");
    return 0;
}

int redis_client_call(redis_client *rc, const char *text, size_t len)
{
    redisContext *c = rc->c;
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)++rc->seq);
    const char *a[] = {"XADD", rc->stream, "*", "id", id, "task", rc->task, "input", text,
                       "reply_to", rc->reply};
    size_t l[11];
    for (int i = 0; i < 11; i++)
        l[i] = strlen(a[i]);
    l[8] = len;
    redisReply *r = redisCommandArgv(c, 11, a, l);
    if (!r)
        return -1;
    freeReplyObject(r);
    /* One request outstanding: the next reply with this id is its answer
     * (a duplicate of an earlier one, at least once delivery, is skipped). */
    for (;;) {
        r = redisCommand(c, "XREAD COUNT 1 BLOCK 30000 STREAMS %s %s", rc->reply, rc->last);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 1) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        const redisReply *e = r->element[0]->element[1]->element[0];
        snprintf(rc->last, sizeof rc->last, "%s", e->element[0]->str);
        size_t n = 0;
        eng_redis_str *kv = eng__redis_kv(e->element[1], &n);
        eng_redis_reply rep;
        int got = kv && eng__redis_parse_reply(kv, n, &rep) && rep.id.n == strlen(id) &&
                  !memcmp(rep.id.p, id, rep.id.n);
        int ok = got && rep.st == ENG_OK;
        free(kv);
        freeReplyObject(r);
        if (got) {
            redisReply *d = redisCommand(c, "XTRIM %s MINID %s", rc->reply, rc->last);
            if (d)
                freeReplyObject(d);
            return ok;
        }
    }
}

void redis_client_close(redis_client *rc)
{
    if (!rc->c)
        return;
    redisReply *d = redisCommand(rc->c, "DEL %s", rc->reply);
    if (d)
        freeReplyObject(d);
    redisFree(rc->c);
    rc->c = NULL;
}
