/* redis_submit.c: build/engine submit, the client of the Redis wire protocol
 * (docs/REDIS.md) for scripts, tests and benchmarks: one request per stdin
 * line, the replies printed in input order. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redis_common.h"

/* X(submit, ...) in tools/cli/cli.h's table, which this folder may not include. */
int eng__cli_submit(int argc, char **argv);

typedef struct {
    char *input;
    size_t len;
    char *status, *body;   /* the first reply; NULL while none came */
    int64_t sent_us, latency_us;
    int64_t sent_ms, reply_ms;   /* Unix epoch, for --times */
} item;

static void usage(FILE *f)
{
    fputs("usage: engine submit --redis redis://HOST:PORT[/DB] [--stream engine:requests]\n"
          "         [--task classify|embed|tokenize] [--model NAME] [--priority 0..3]\n"
          "         [--deadline-ms N] [--wait-ms 30000] [--concurrency N] [--files] [--stats]\n"
          "         [--times FILE]\n"
          "  sends one request per stdin line (--files: the line names a file whose bytes\n"
          "  are the input), prints each reply's body in input order; exits 1 when a\n"
          "  reply is an error or missing (after its deadline, or --wait-ms without any);\n"
          "  --times writes \"index sent_ms reply_ms\" (Unix epoch ms, -1: none) per request\n",
          f);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    buf b = {0};
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_add(&b, tmp, n);
    int ok = !ferror(f) && !b.failed;
    fclose(f);
    if (!ok) {
        free(b.data);
        return 0;
    }
    *out = b.data ? b.data : strdup("");
    *len = b.len;
    return *out != NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int eng__cli_submit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"redis", 1, 0, 'r'},       {"stream", 1, 0, 's'},  {"task", 1, 0, 't'},
        {"model", 1, 0, 'm'},       {"priority", 1, 0, 'p'}, {"deadline-ms", 1, 0, 'd'},
        {"wait-ms", 1, 0, 'w'},     {"concurrency", 1, 0, 'c'}, {"files", 0, 0, 'f'},
        {"stats", 0, 0, 'S'},       {"help", 0, 0, 'h'},    {"times", 1, 0, 'T'},
        {0, 0, 0, 0}};
    const char *url = NULL, *stream = "engine:requests", *task = "classify", *model = NULL,
               *priority = NULL, *times = NULL;
    long deadline_ms = 0, wait_ms = 30000, concurrency = 0;
    int files = 0, stats = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        errno = 0;
        switch (o) {
        case 'r': url = optarg; break;
        case 's': stream = optarg; break;
        case 't': task = optarg; break;
        case 'm': model = optarg; break;
        case 'p': priority = optarg; break;
        case 'f': files = 1; break;
        case 'S': stats = 1; break;
        case 'T': times = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'd': deadline_ms = strtol(optarg, &end, 10); break;
        case 'w': wait_ms = strtol(optarg, &end, 10); break;
        case 'c': concurrency = strtol(optarg, &end, 10); break;
        default: usage(stderr); return 2;
        }
        if (end && (*end || end == optarg || errno || deadline_ms < 0 || wait_ms < 0 ||
                    concurrency < 0)) {
            fprintf(stderr, "engine submit: bad value %s\n", optarg);
            return 2;
        }
    }
    eng_redis_addr addr;
    if (!url || optind != argc || !eng__redis_parse_url(url, &addr)) {
        usage(stderr);
        return 2;
    }
    /* Every input first: the requests then go out as fast as Redis takes them. */
    item *items = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (n == cap) {
            item *p = realloc(items, (cap = cap ? cap * 2 : 64) * sizeof *items);
            if (!p) {
                fprintf(stderr, "engine submit: out of memory\n");
                return 3;
            }
            items = p;
        }
        item *it = &items[n];
        memset(it, 0, sizeof *it);
        if (files) {
            if (!read_file(line, &it->input, &it->len)) {
                fprintf(stderr, "engine submit: cannot read %s: %s\n", line, strerror(errno));
                return 3;
            }
        } else if (!(it->input = strdup(line))) {
            return 3;
        } else
            it->len = (size_t)len;
        n++;
    }
    free(line);
    if (!concurrency || (size_t)concurrency > n)
        concurrency = (long)n;

    char err[256];
    redisContext *c = eng__redis_connect(&addr, 5000, 10000, err, sizeof err);
    if (!c) {
        fprintf(stderr, "engine submit: cannot reach Redis: %s\n", err);
        return 3;
    }
    char host[128] = "host", reply_to[256], prefix[200];
    gethostname(host, sizeof host - 1);
    snprintf(prefix, sizeof prefix, "%s-%d-%lld", host, (int)getpid(), (long long)now_us());
    snprintf(reply_to, sizeof reply_to, "engine:reply:%s", prefix);

    size_t sent = 0, received = 0, duplicates = 0;
    char last[64] = "0";
    int64_t start = now_us(), last_progress = start, last_deadline = 0;
    int rc = 0;
    while (received < n) {
        /* Keep `concurrency` requests outstanding, pipelined. */
        size_t batch = 0;
        while (sent < n && sent - received < (size_t)concurrency) {
            char id[256], dl[32];
            snprintf(id, sizeof id, "%s-%zu", prefix, sent);
            const char *a[16];
            size_t l[16];
            int k = 0;
#define ARG(s, n_) (a[k] = (s), l[k++] = (n_))
            ARG("XADD", 4);
            ARG(stream, strlen(stream));
            ARG("*", 1);
            ARG("id", 2);
            ARG(id, strlen(id));
            ARG("task", 4);
            ARG(task, strlen(task));
            ARG("input", 5);
            ARG(items[sent].input, items[sent].len);
            ARG("reply_to", 8);
            ARG(reply_to, strlen(reply_to));
            if (model) {
                ARG("model", 5);
                ARG(model, strlen(model));
            }
            if (priority) {
                ARG("priority", 8);
                ARG(priority, strlen(priority));
            }
            if (deadline_ms) {
                int64_t d = eng__redis_now_ms() + deadline_ms;
                snprintf(dl, sizeof dl, "%lld", (long long)d);
                ARG("deadline_ms", 11);
                ARG(dl, strlen(dl));
                last_deadline = now_us() + deadline_ms * 1000;
            }
#undef ARG
            redisAppendCommandArgv(c, k, a, l);
            items[sent].sent_ms = eng__redis_now_ms();
            items[sent++].sent_us = now_us();
            batch++;
        }
        for (size_t i = 0; i < batch; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) {
                fprintf(stderr, "engine submit: Redis: %s\n", c->errstr);
                rc = 3;
                goto out;
            }
            if (r->type == REDIS_REPLY_ERROR)
                fprintf(stderr, "engine submit: XADD: %s\n", r->str);
            freeReplyObject(r);
        }
        redisReply *r = redisCommand(c, "XREAD COUNT 1000 BLOCK 100 STREAMS %s %s", reply_to, last);
        if (!r) {
            fprintf(stderr, "engine submit: Redis: %s\n", c->errstr);
            rc = 3;
            goto out;
        }
        int64_t t = now_us();
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->elements == 2) {
            const redisReply *es = r->element[0]->element[1];
            for (size_t i = 0; i < es->elements; i++) {
                const redisReply *e = es->element[i];
                snprintf(last, sizeof last, "%s", e->element[0]->str);
                size_t n_kv = 0;
                eng_redis_str *kv = eng__redis_kv(e->element[1], &n_kv);
                eng_redis_reply rep;
                int ok = kv && eng__redis_parse_reply(kv, n_kv, &rep) && rep.body.p;
                free(kv);
                size_t pl = strlen(prefix);
                /* hiredis ends every string with a NUL: strtoull stops there */
                if (!ok || rep.id.n <= pl + 1 || memcmp(rep.id.p, prefix, pl) || rep.id.p[pl] != '-')
                    continue;
                char *end;
                unsigned long long idx = strtoull(rep.id.p + pl + 1, &end, 10);
                if (*end || idx >= sent)
                    continue;
                item *it = &items[idx];
                if (it->status) {   /* at least once: keep the first */
                    duplicates++;
                    continue;
                }
                it->status = strndup(rep.status.p, rep.status.n);
                it->body = strndup(rep.body.p, rep.body.n);
                it->latency_us = t - it->sent_us;
                it->reply_ms = eng__redis_now_ms();
                received++;
                last_progress = t;
            }
        }
        freeReplyObject(r);
        if (last_deadline ? t > last_deadline + 2000000 && sent == n
                          : t - last_progress > wait_ms * 1000)
            break;
    }
out:;
    double wall = (double)(now_us() - start) / 1e6;
    redisReply *r = redisCommand(c, "DEL %s", reply_to);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    size_t ok = 0, failed = 0, missing = 0;
    int64_t *lat = malloc((n ? n : 1) * sizeof *lat);
    for (size_t i = 0; i < n; i++) {
        if (!items[i].status) {
            missing++;
            puts("{\"error\":\"no reply\"}");
        } else {
            puts(items[i].body);
            if (strcmp(items[i].status, "ok"))
                failed++;
            else if (lat)
                lat[ok++] = items[i].latency_us;
        }
    }
    if (stats && lat) {
        qsort(lat, ok, sizeof *lat, cmp_i64);
        fprintf(stderr,
                "submit: %zu requests, %zu ok, %zu failed, %zu missing, %zu duplicates, "
                "%.3f s, %.1f ok/s, latency p50 %.2f ms p99 %.2f ms (concurrency %ld)\n",
                n, ok, failed, missing, duplicates, wall, ok / (wall > 0 ? wall : 1),
                ok ? lat[ok / 2] / 1e3 : 0.0, ok ? lat[(ok * 99) / 100 < ok ? (ok * 99) / 100 : ok - 1] / 1e3 : 0.0,
                concurrency);
    }
    free(lat);
    FILE *tf = times ? fopen(times, "w") : NULL;
    if (times && !tf)
        fprintf(stderr, "engine submit: cannot write %s: %s\n", times, strerror(errno));
    for (size_t i = 0; tf && i < n; i++)
        fprintf(tf, "%zu %lld %lld\n", i, (long long)items[i].sent_ms,
                items[i].status ? (long long)items[i].reply_ms : -1LL);
    if (tf && fclose(tf))
        rc = 3;
    for (size_t i = 0; i < n; i++) {
        free(items[i].input);
        free(items[i].status);
        free(items[i].body);
    }
    free(items);
    if (fflush(stdout))
        return 3;
    if (missing)
        fprintf(stderr, "engine submit: %zu of %zu requests got no reply\n", missing, n);
    return rc ? rc : (failed || missing) ? 1 : 0;
}
