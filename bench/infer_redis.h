/* infer_redis.h: infer-bench --redis, the stream mode through Redis: each
 * client thread writes one request entry at a time to an `engine worker`'s
 * stream (docs/REDIS.md) and waits for its reply on its own reply stream. */
#ifndef INFER_REDIS_H
#define INFER_REDIS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *c;              /* redisContext */
    const char *stream, *task;
    char reply[96];       /* this client's reply stream */
    char last[64];        /* the last reply entry read */
    uint64_t seq;         /* ids sent */
} redis_client;

/* Connects to redis://HOST:PORT[/DB]; 0 or -1 (why on stderr). */
int redis_client_open(redis_client *rc, const char *url, const char *stream, const char *task,
                      int index);
/* One request: 1 answered ok, 0 answered with an error, -1 no answer
 * (connection lost, or nothing within 30 s). */
int redis_client_call(redis_client *rc, const char *text, size_t len);
void redis_client_close(redis_client *rc);

#endif
