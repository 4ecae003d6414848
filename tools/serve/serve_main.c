/* serve_main.c: `engine serve`: options (each also read from an ENGINE_*
 * environment variable, as containers expect), loading the models, warming
 * them up, and the signal-driven drain. */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

/* X(serve, ...) in tools/cli/cli.h's table, which this folder may not include. */
int eng__cli_serve(int argc, char **argv);

typedef enum { OPT_STR, OPT_INT, OPT_SIZE, OPT_I64, OPT_SEC } opt_kind;

static srv_opts opts;

static const struct {
    const char *flag, *env;
    opt_kind kind;
    void *ptr;
    const char *help;
} options[] = {
    {"--host", "ENGINE_HOST", OPT_STR, &opts.host, "address to listen on (127.0.0.1)"},
    {"--port", "ENGINE_PORT", OPT_INT, &opts.port, "TCP port (8080; 0 = any free one)"},
    {"--api-key", "ENGINE_API_KEY", OPT_STR, &opts.api_key,
     "require Authorization: Bearer KEY (health routes excepted)"},
    {"--payload-limit", "ENGINE_PAYLOAD_LIMIT", OPT_SIZE, &opts.payload_limit,
     "largest request body in bytes (2000000)"},
    {"--max-client-batch-size", "ENGINE_MAX_CLIENT_BATCH_SIZE", OPT_INT, &opts.max_client_batch,
     "most inputs in one request (32)"},
    {"--max-connections", "ENGINE_MAX_CONNECTIONS", OPT_INT, &opts.max_connections,
     "open connections beyond this are answered 503 (1024)"},
    {"--idle-timeout", "ENGINE_IDLE_TIMEOUT", OPT_INT, &opts.idle_timeout_s,
     "seconds a connection may stay silent (slow clients are cut off) (30)"},
    {"--drain-delay", "ENGINE_DRAIN_DELAY", OPT_SEC, &opts.drain_delay_s,
     "seconds between SIGTERM and refusing new connections (0)"},
    {"--exit-timeout", "ENGINE_EXIT_TIMEOUT", OPT_SEC, &opts.exit_timeout_s,
     "seconds the drain waits; what is still queued then is answered 503 (30)"},
    {"--http-threads", "ENGINE_HTTP_THREADS", OPT_INT, &opts.http_threads,
     "libmicrohttpd epoll threads, which also tokenize (2)"},
    {"--cache-entries", "ENGINE_CACHE_ENTRIES", OPT_SIZE, &opts.cache_entries,
     "result cache entries (0 = off)"},
    {"--cache-bytes", "ENGINE_CACHE_BYTES", OPT_SIZE, &opts.cache_bytes,
     "result cache memory bound (67108864)"},
    {"--request-timeout-ms", "ENGINE_REQUEST_TIMEOUT_MS", OPT_I64, &opts.request_timeout_ms,
     "default queueing deadline (0 = none); X-Request-Timeout-Ms overrides"},
    {"--workers", "ENGINE_WORKERS", OPT_INT, &opts.workers, "scheduler workers per model (auto)"},
    {"--threads", "ENGINE_THREADS", OPT_INT, &opts.threads, "threads per worker (auto)"},
    {"--cpus", "ENGINE_CPUS", OPT_STR, &opts.cpus,
     "CPUs every model may use (default: the cores shared out between the models)"},
    {"--max-batch-size", "ENGINE_MAX_BATCH_SIZE", OPT_INT, &opts.max_batch, "(32)"},
    {"--max-batch-tokens", "ENGINE_MAX_BATCH_TOKENS", OPT_INT, &opts.max_batch_tokens,
     "(0 = 16 x the position limit)"},
    {"--max-queue", "ENGINE_MAX_QUEUE", OPT_INT, &opts.queue_capacity,
     "queued inputs per model before 429 (4096)"},
    {"--max-wait-us", "ENGINE_MAX_WAIT_US", OPT_I64, &opts.max_wait_us,
     "how long a partial batch waits for company (0)"},
    {"--idle-spin-us", "ENGINE_IDLE_SPIN_US", OPT_INT, &opts.idle_spin_us,
     "idle workers poll this long before sleeping (20)"},
    {"--zero-shot-threads", "ENGINE_ZERO_SHOT_THREADS", OPT_INT, &opts.zs_threads,
     "a CLIP model's threads scoring zero-shot requests; each new label set holds one (2)"},
    {"--null-batch-us", "ENGINE_NULL_BATCH_US", OPT_INT, &opts.null_batch_us,
     "null model: sleep per batch"},
    {"--null-token-ns", "ENGINE_NULL_TOKEN_NS", OPT_INT, &opts.null_token_ns,
     "null model: sleep per token"},
    {"--backend", "ENGINE_BACKEND", OPT_STR, &opts.backend,
     "redis://HOST:PORT[/DB]: a gateway: no model here, the items go to workers (docs/REDIS.md)"},
    {"--stream", "ENGINE_STREAM", OPT_STR, &opts.stream,
     "gateway: serve the models whose workers read this stream (engine:requests)"},
    {"--reply-timeout-ms", "ENGINE_REPLY_TIMEOUT_MS", OPT_I64, &opts.reply_timeout_ms,
     "gateway: an item no worker answered in this long is answered 503 (30000; past a deadline, 504)"},
    {"--connect-timeout-ms", "ENGINE_CONNECT_TIMEOUT_MS", OPT_I64, &opts.connect_timeout_ms,
     "gateway: how long to wait for Redis and for the workers' model metadata (10000)"},
};
#define N_OPTIONS (int)(sizeof options / sizeof options[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: engine serve MODEL.eng [MODEL.eng...] [--model null] [options]\n"
               "       engine serve --backend redis://HOST:PORT [MODEL...] [options]\n"
               "  serves the models over HTTP (TEI routes, KServe v2); a model's name is its\n"
               "  file name without .eng, the first is the default. --model null adds the\n"
               "  scheduler's null model (for measuring the server itself). With --backend,\n"
               "  a gateway: the named models (default: every model whose workers read\n"
               "  --stream, by name) are served by `engine worker`s through Redis. Options,\n"
               "  each also read from the environment variable named:\n");
    for (int i = 0; i < N_OPTIONS; i++)
        fprintf(f, "  %-24s %-30s %s\n", options[i].flag, options[i].env, options[i].help);
}

static int set_option(int i, const char *v)
{
    char *end;
    errno = 0;
    switch (options[i].kind) {
    case OPT_STR:
        *(const char **)options[i].ptr = v;
        return 0;
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (errno || *end || end == v || x < 0 || x > INT_MAX)
            return -1;
        *(int *)options[i].ptr = (int)x;
        return 0;
    }
    case OPT_SIZE: {
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end || end == v || v[0] == '-')
            return -1;
        *(size_t *)options[i].ptr = (size_t)x;
        return 0;
    }
    case OPT_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || *end || end == v || x < 0)
            return -1;
        *(int64_t *)options[i].ptr = x;
        return 0;
    }
    case OPT_SEC: {
        double x = strtod(v, &end);
        if (errno || *end || end == v || !(x >= 0))
            return -1;
        *(double *)options[i].ptr = x;
        return 0;
    }
    }
    return -1;
}

int srv_resolve(const char *host, int port, struct sockaddr_storage *ss, unsigned *len)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *res;
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc) {
        fprintf(stderr, "engine serve: cannot resolve --host %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static double now_s(void) { return (double)srv_now_ns() / 1e9; }

/* Waits up to seconds for a signal; returns it, or 0. */
static int wait_signal(const sigset_t *set, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

/* Frees what eng__cli_serve allocated and returns rc. */
static int finish(srv *s, int rc)
{
    if (!s)
        return rc;
    if (s->be)
        s->be->close(s);
    eng_cache_free(s->cache);
    free(s->models);
    free(s);
    return rc;
}

int eng__cli_serve(int argc, char **argv)
{
    opts = (srv_opts){.host = "127.0.0.1", .port = 8080, .payload_limit = 2000000,
                      .max_client_batch = 32, .max_connections = 1024, .idle_timeout_s = 30,
                      .drain_delay_s = 0, .exit_timeout_s = 30, .http_threads = 2,
                      .cache_bytes = (size_t)64 << 20, .idle_spin_us = -1,
                      .stream = "engine:requests", .reply_timeout_ms = 30000,
                      .connect_timeout_ms = 10000, .zs_threads = SRV_ZS_THREADS};
    for (int i = 0; i < N_OPTIONS; i++) {
        const char *v = getenv(options[i].env);
        if (v && *v && set_option(i, v)) {
            fprintf(stderr, "engine serve: bad value %s=%s\n", options[i].env, v);
            return 2;
        }
    }
    srv *s = calloc(1, sizeof *s);
    if (!s || !(s->models = calloc((size_t)argc, sizeof *s->models))) {
        fprintf(stderr, "engine serve: out of memory\n");
        return finish(s, 1);
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return finish(s, 0);
        }
        if (!strcmp(arg, "--model") && a + 1 < argc && !strcmp(argv[a + 1], "null")) {
            srv_model *m = &s->models[s->n_models++];
            snprintf(m->name, sizeof m->name, "null");
            a++;
            continue;
        }
        if (arg[0] == '-') {
            int i = 0;
            while (i < N_OPTIONS && strcmp(arg, options[i].flag))
                i++;
            if (i == N_OPTIONS || a + 1 >= argc || set_option(i, argv[a + 1])) {
                fprintf(stderr, "engine serve: bad option %s%s%s\n", arg, a + 1 < argc ? " " : "",
                        a + 1 < argc ? argv[a + 1] : "");
                usage(stderr);
                return finish(s, 2);
            }
            a++;
            continue;
        }
        srv_model *m = &s->models[s->n_models++];
        m->path = arg;
        const char *base = strrchr(arg, '/') ? strrchr(arg, '/') + 1 : arg;
        size_t len = strlen(base);
        if (len > 4 && !strcmp(base + len - 4, ".eng"))
            len -= 4;
        snprintf(m->name, sizeof m->name, "%.*s", (int)len, base);
    }
    if (s->n_models == 0 && !opts.backend) {
        usage(stderr);
        return finish(s, 2);
    }
    for (int i = 0; i < s->n_models; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(s->models[i].name, s->models[j].name)) {
                fprintf(stderr, "engine serve: two models named %s\n", s->models[i].name);
                return finish(s, 2);
            }
    if (opts.http_threads < 1 || opts.max_client_batch < 1 || opts.max_connections < 1) {
        fprintf(stderr, "engine serve: --http-threads, --max-client-batch-size and "
                        "--max-connections must be at least 1\n");
        return finish(s, 2);
    }
    if (opts.zs_threads < 1 || opts.zs_threads > SRV_ZS_THREADS_MAX) {
        fprintf(stderr, "engine serve: --zero-shot-threads must be 1 to %d, not %d\n",
                SRV_ZS_THREADS_MAX, opts.zs_threads);
        return finish(s, 2);
    }
    s->o = opts;
    s->be = opts.backend ? &srv_backend_redis : &srv_backend_local;
    s->t0_ns = srv_now_ns();
    metrics_init(&s->global);
    /* The gateway finds its models (and their metadata) before listening:
     * the HTTP threads read the model list without a lock. */
    if (s->be->prepare && s->be->prepare(s))
        return finish(s, 1);
    for (int i = 0; i < s->n_models; i++)
        metrics_init(&s->models[i].metrics);
    if (opts.cache_entries) {
        eng_cache_params cp = {.max_entries = opts.cache_entries, .max_bytes = opts.cache_bytes};
        if (eng_cache_create(&cp, &s->cache) != ENG_OK) {
            fprintf(stderr, "engine serve: cannot create the result cache\n");
            return finish(s, 1);
        }
    }

    /* Signals go to this thread only (sigtimedwait below), never to the
     * HTTP or worker threads, which inherit this mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Listening first: live answers 200 while the models load, ready 503. */
    if (srv_start(s))
        return finish(s, 1);
    fprintf(stderr, "engine serve: listening on http://%s:%d\n", s->o.host, s->o.port);
    if (s->be->open && s->be->open(s)) {
        srv_stop(s);
        return finish(s, 1);
    }
    atomic_store(&s->ready, 1);
    fprintf(stderr, "engine serve: ready\n");

    int sig;
    while (!(sig = wait_signal(&set, 3600)))
        ;
    atomic_store(&s->draining, 1);
    fprintf(stderr, "engine serve: signal %d: draining (%lld requests in flight)\n", sig,
            (long long)atomic_load(&s->inflight));
    double t0 = now_s();
    /* A second signal exits at once. */
    if (wait_signal(&set, s->o.drain_delay_s))
        _exit(1);
    srv_quiesce(s);
    while (atomic_load(&s->inflight) > 0 && now_s() - t0 < s->o.exit_timeout_s)
        if (wait_signal(&set, 0.002))
            _exit(1);
    int expired = atomic_load(&s->inflight) > 0;
    if (expired) {
        fprintf(stderr, "engine serve: exit timeout: answering %lld requests 503\n",
                (long long)atomic_load(&s->inflight));
        srv_expire_waiting(s);
        double t1 = now_s();
        while (atomic_load(&s->inflight) > 0 && now_s() - t1 < 1.0)
            if (wait_signal(&set, 0.002))
                _exit(1);
    }
    srv_stop(s);
    fprintf(stderr, "engine serve: stopped\n");
    if (expired) {
        /* Workers may still be computing what was answered 503: freeing the
         * schedulers would wait for them, so the process ends around them. */
        fflush(stderr);
        _exit(0);
    }
    return finish(s, 0);
}
