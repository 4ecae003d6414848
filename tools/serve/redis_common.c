/* redis_common.c: see redis_common.h. */
#include "redis_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int eng__redis_parse_url(const char *url, eng_redis_addr *a)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof scheme - 1))
        return 0;
    const char *h = url + sizeof scheme - 1;
    size_t hl = strcspn(h, ":/");
    if (hl == 0 || hl >= sizeof a->host)
        return 0;
    memcpy(a->host, h, hl);
    a->host[hl] = '\0';
    a->port = 6379;
    a->db = 0;
    const char *p = h + hl;
    char *end;
    if (*p == ':') {
        errno = 0;
        long v = strtol(p + 1, &end, 10);
        if (errno || end == p + 1 || v < 1 || v > 65535)
            return 0;
        a->port = (int)v;
        p = end;
    }
    if (*p == '/' && p[1]) {
        errno = 0;
        long v = strtol(p + 1, &end, 10);
        if (errno || *end || v < 0 || v > 1000000)
            return 0;
        a->db = (int)v;
    } else if (*p && strcmp(p, "/"))
        return 0;
    return 1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

redisContext *eng__redis_connect(const eng_redis_addr *a, int retry_ms, int io_timeout_ms,
                                 char *err, size_t err_size)
{
    int64_t give_up = eng__redis_now_ms() + retry_ms;
    int backoff = 100;
    for (;;) {
        struct timeval tv = {1, 0};
        redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
        if (c && !c->err) {
            if (io_timeout_ms > 0) {
                struct timeval io = {io_timeout_ms / 1000, (io_timeout_ms % 1000) * 1000};
                redisSetTimeout(c, io);
            }
            redisReply *r = a->db ? redisCommand(c, "SELECT %d", a->db) : NULL;
            int ok = !a->db || (r && r->type == REDIS_REPLY_STATUS);
            if (!ok)
                snprintf(err, err_size, "SELECT %d failed: %s", a->db,
                         r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
            if (r)
                freeReplyObject(r);
            if (ok)
                return c;
        } else {
            snprintf(err, err_size, "redis://%s:%d: %s", a->host, a->port,
                     c ? c->errstr : "cannot allocate a connection");
        }
        if (c)
            redisFree(c);
        int64_t now = eng__redis_now_ms();
        if (now >= give_up)
            return NULL;
        sleep_ms((int)(give_up - now < backoff ? give_up - now : backoff));
        backoff = backoff < 1000 ? backoff * 2 : 2000;
    }
}

int64_t eng__redis_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

eng_redis_str *eng__redis_kv(const redisReply *fields, size_t *n)
{
    if (!fields || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    eng_redis_str *kv = calloc(fields->elements ? fields->elements : 1, sizeof *kv);
    for (size_t i = 0; kv && i < fields->elements; i++)
        if (fields->element[i]->type == REDIS_REPLY_STRING)
            kv[i] = (eng_redis_str){fields->element[i]->str, fields->element[i]->len};
    *n = fields->elements;
    return kv;
}
