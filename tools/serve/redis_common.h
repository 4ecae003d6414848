/* redis_common.h: what the Redis worker (redis_worker.c), the submit client
 * (redis_submit.c), the gateway (backend_redis.c) and infer-bench --redis
 * share: the redis:// address, connecting with a bounded retry, an entry's
 * fields as strings (redis_wire.h reads them); JSON bodies are written with buf.h.
 * docs/REDIS.md describes the wire protocol. hiredis 0.14 speaks RESP2 only. */
#ifndef ENG_REDIS_COMMON_H
#define ENG_REDIS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "buf.h"
#include "engine.h"
#include "redis_wire.h"

typedef struct {
    char host[256];
    int port;
    int db;
} eng_redis_addr;

/* Parses redis://HOST[:PORT][/DB] (port 6379, db 0 by default); 0 when bad. */
int eng__redis_parse_url(const char *url, eng_redis_addr *a);

/* Connects (and SELECTs the db) within retry_ms, retrying every 100 ms doubling
 * to 2 s; NULL with the reason in err when it never succeeded. io_timeout_ms
 * bounds every later command (0 = none: blocking reads need BLOCK < it). */
redisContext *eng__redis_connect(const eng_redis_addr *a, int retry_ms, int io_timeout_ms,
                                 char *err, size_t err_size);

/* Milliseconds since the Unix epoch. */
int64_t eng__redis_now_ms(void);

/* A stream entry's field/value array as strings (a value that is not a
 * string reads as absent): *n of them, malloc'ed; NULL when fields is not an
 * array or memory ran out. */
eng_redis_str *eng__redis_kv(const redisReply *fields, size_t *n);

#endif
