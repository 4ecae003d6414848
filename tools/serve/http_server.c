/* http_server.c: the libmicrohttpd side of `engine serve`: feeding a
 * request's headers and body to request.c (routing, checks, parsing), reading
 * bodies under the payload limit, submitting items to the scheduler with a
 * completion callback, suspending the connection until the last one is back,
 * and answering (serve.h describes the flow). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

int64_t srv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- Request lifetime -------------------------------------------------------- */

/* Requests waiting on the scheduler, for the exit timeout to answer. */
static pthread_mutex_t waiting_mu = PTHREAD_MUTEX_INITIALIZER;
static srv_req *waiting_head;

static void req_unref(srv_req *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1)
        srv_req_free(r);
}

/* Whoever wins this resumes the connection: the last completion, or the exit
 * timeout; never both (a connection resumed twice may be gone already). */
static void req_resume(srv_req *r)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&r->resumed, &expected, 1))
        MHD_resume_connection(r->conn);
}

/* Adds a suspended request; 0 (not added) once the exit timeout has
 * passed: nobody would resume it then. */
static int waiting_add(srv_req *r)
{
    pthread_mutex_lock(&waiting_mu);
    if (atomic_load(&r->s->expired)) {
        pthread_mutex_unlock(&waiting_mu);
        return 0;
    }
    r->wnext = waiting_head;
    r->wprev = NULL;
    if (waiting_head)
        waiting_head->wprev = r;
    waiting_head = r;
    r->in_waiting = 1;
    pthread_mutex_unlock(&waiting_mu);
    return 1;
}

/* Called on the connection's own epoll thread, the only one that adds or
 * removes it, so the unlocked test of in_waiting is exact. */
static void waiting_remove(srv_req *r)
{
    if (!r->in_waiting)
        return;
    pthread_mutex_lock(&waiting_mu);
    if (r->in_waiting) {
        if (r->wprev) r->wprev->wnext = r->wnext; else waiting_head = r->wnext;
        if (r->wnext) r->wnext->wprev = r->wprev;
        r->in_waiting = 0;
    }
    pthread_mutex_unlock(&waiting_mu);
}

void srv_expire_waiting(srv *s)
{
    pthread_mutex_lock(&waiting_mu);
    atomic_store(&s->expired, 1);
    for (srv_req *r = waiting_head; r; r = r->wnext)
        req_resume(r);
    pthread_mutex_unlock(&waiting_mu);
}

/* ---- Answers ------------------------------------------------------------------- */

static void add_ms_header(struct MHD_Response *resp, const char *name, int64_t ns)
{
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)(ns / 1000000));
    MHD_add_response_header(resp, name, v);
}

static srv_metrics *req_metrics(srv_req *r)
{
    return r->m ? &r->m->metrics : &r->s->global;
}

/* Queues the answer: body (taken over), content type, the timing and id
 * headers, and the count in /metrics. */
static enum MHD_Result respond(srv_req *r, int code, buf *body, const char *ctype)
{
    srv *s = r->s;
    if (body->failed) {
        buf_free(body);
        code = 500;
        buf_str(body, "{\"error\":\"out of memory\",\"error_type\":\"backend\"}");
        ctype = "application/json";
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        buf_free(body);
        return MHD_NO;
    }
    body->data = NULL;   /* libmicrohttpd frees it */
    buf_free(body);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "x-request-id", r->request_id);
    /* Items still in the scheduler (an exit-timeout answer) are being
     * written by workers: their times are not read. */
    if (r->n && atomic_load(&r->pending) == 0) {
        int64_t q = 0, c = 0;
        for (int i = 0; i < r->n; i++) {
            if (r->items[i].queue_ns > q) q = r->items[i].queue_ns;
            if (r->items[i].compute_ns > c) c = r->items[i].compute_ns;
        }
        add_ms_header(resp, "x-queue-time", q);
        add_ms_header(resp, "x-inference-time", c);
        add_ms_header(resp, "x-tokenization-time", r->tok_ns);
    }
    int64_t total = srv_now_ns() - r->t_start;
    add_ms_header(resp, "x-total-time", total);
    if (code == 429)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    /* While draining every answer closes its connection, so keep-alive
     * clients reconnect (and are refused) instead of queueing more here. */
    if (atomic_load(&s->draining) || code == 413 ||
        atomic_load(&s->connections) > s->o.max_connections)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    srv_metrics *mt = req_metrics(r);
    int ci = srv_code_index(code);
    if (ci >= 0)
        atomic_fetch_add_explicit(&mt->requests[r->route][ci], 1, memory_order_relaxed);
    if (r->m && r->n)
        hist_observe(&mt->total_s, (uint64_t)(total / 1000));
    if (code >= 500)
        fprintf(stderr, "engine serve: %s %d %s (request %s)\n", srv_route_path[r->route], code,
                r->err_code ? r->err_msg : "", r->request_id);
    return ret;
}

static enum MHD_Result respond_error(srv_req *r, int code, const char *type, const char *msg)
{
    buf b = {0};
    srv_error_body(&b, type, msg);
    return respond(r, code, &b, "application/json");
}

static enum MHD_Result respond_failed(srv_req *r)
{
    return respond_error(r, r->err_code, r->err_type, r->err_msg);
}

static enum MHD_Result respond_json(srv_req *r, buf *b)
{
    return respond(r, 200, b, "application/json");
}

/* ---- Submitting ------------------------------------------------------------------ */

/* The options in a cache key: the cache stores the scheduler's raw result,
 * which normalize and raw_scores do not change (they apply when answering);
 * truncate decides whether a long text is refused, so a hit must not answer
 * a request that a miss would refuse. */
static uint32_t cache_options(const srv_req *r) { return (uint32_t)r->truncate; }

void srv_item_done(srv_item *it, int batch_size, int batch_tokens)
{
    srv_req *r = it->r;
    srv_model *m = r->m;
    if (it != &r->zs_item) {   /* (zero-shot scores are no scheduler result) */
        if (it->st == ENG_OK && it->vals) {   /* (a gateway's /tokenize items have no vals) */
            eng_cache_key k = {m->name, r->task, cache_options(r), it->data, it->len};
            eng_cache_value v = {it->vals, r->width, it->label, it->n_tokens};
            eng_cache_put(r->s->cache, &k, &v);
        }
        srv_metrics *mt = &m->metrics;
        hist_observe(&mt->queue_s, (uint64_t)(it->queue_ns / 1000));
        if (batch_size > 0) {
            hist_observe(&mt->infer_s, (uint64_t)(it->compute_ns / 1000));
            hist_observe(&mt->batch_size, (uint64_t)batch_size);
            hist_observe(&mt->batch_tokens, (uint64_t)batch_tokens);
        }
    }
    if (atomic_fetch_sub(&r->pending, 1) == 1)
        req_resume(r);
    req_unref(r);
}

void srv_item_hold(srv_req *r)
{
    atomic_fetch_add(&r->pending, 1);
    atomic_fetch_add(&r->refs, 1);
}

void srv_item_unhold(srv_req *r)
{
    atomic_fetch_sub(&r->pending, 1);
    atomic_fetch_sub(&r->refs, 1);
}

int srv_suspend(srv_req *r)
{
    MHD_suspend_connection(r->conn);
    r->phase = PH_WAIT;
    /* A gateway's zero-shot request suspends twice (its images, then their
     * scores): the first resume has run, this thread is handling it. */
    atomic_store(&r->resumed, 0);
    if (!waiting_add(r)) {
        srv_fail(r, 503, "unhealthy", "The server is stopping (exit timeout)");
        req_resume(r);
        return 0;
    }
    atomic_store(&r->pending, 1);   /* the caller's own hold */
    return 1;
}

void srv_release(srv_req *r)
{
    if (atomic_fetch_sub(&r->pending, 1) == 1)
        req_resume(r);
}

/* Cache lookups, then the misses to the backend. Returns 1 when the answer
 * is ready now, 0 when the connection was suspended. */
static int submit_all(srv_req *r)
{
    srv *s = r->s;
    srv_model *m = r->m;
    r->vals = calloc((size_t)r->n * (size_t)r->width, sizeof(float));
    if (!r->vals) {
        srv_fail(r, 500, "backend", "out of memory");
        return 1;
    }
    int misses = 0;
    for (int i = 0; i < r->n; i++) {
        srv_item *it = &r->items[i];
        it->r = r;
        it->vals = r->vals + (size_t)i * r->width;
        it->label = -1;
        if (!it->image && !srv_utf8_valid((const unsigned char *)it->data, it->len)) {
            srv_fail(r, 422, "validation", "Input validation error: input %d is not valid UTF-8", i);
            return 1;
        }
        eng_cache_key k = {m->name, r->task, cache_options(r), it->data, it->len};
        eng_cache_value v;
        if (s->cache && eng_cache_get(s->cache, &k, it->vals, r->width, &v)) {
            it->cached = 1;
            it->label = v.label;
            it->n_tokens = v.n_tokens;
            atomic_fetch_add_explicit(&m->metrics.cache_hits, 1, memory_order_relaxed);
        } else {
            if (s->cache)
                atomic_fetch_add_explicit(&m->metrics.cache_misses, 1, memory_order_relaxed);
            misses++;
        }
    }
    atomic_fetch_add_explicit(&m->metrics.items, (uint64_t)r->n, memory_order_relaxed);
    if (misses == 0)
        return 1;

    if (srv_suspend(r)) {
        s->be->submit(r);
        srv_release(r);
    }
    return 0;
}

/* ---- Routing ----------------------------------------------------------------------- */

/* The headers request.c reads, looked up once on the first call. */
static void request_headers(struct MHD_Connection *c, srv_headers *h)
{
    *h = (srv_headers){
        .request_id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-request-id"),
        .timeout_ms = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Timeout-Ms"),
        .priority = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Priority"),
        .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_TYPE),
        .authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_AUTHORIZATION),
        .content_length = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_CONTENT_LENGTH),
        .model_arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model"),
    };
}

/* GET routes and the checks that need no body (srv_req_route). Returns 1
 * with *ret set when answered. */
static int answer_early(srv_req *r, const char *method, const srv_headers *h,
                        enum MHD_Result *ret)
{
    buf b = {0};
    switch (srv_req_route(r, method, h)) {
    case SRV_EARLY_BODY:
        return 0;
    case SRV_EARLY_FAILED:
        *ret = respond_failed(r);
        return 1;
    case SRV_EARLY_EMPTY:
        *ret = respond(r, 200, &b, "text/plain");
        return 1;
    case SRV_EARLY_METRICS:
        metrics_render(r->s, &b);
        *ret = respond(r, 200, &b, "text/plain; version=0.0.4");
        return 1;
    case SRV_EARLY_INFO:
        tei_info(r->s, &b);
        break;
    case SRV_EARLY_MODEL:
        kserve_model_meta(r->m, &b);
        break;
    }
    *ret = respond_json(r, &b);
    return 1;
}

/* A chunked body that crosses the limit: libmicrohttpd accepts no answer
 * while it is reading a body, so the 413 is written to the socket directly,
 * at once, and the connection is closed (returning MHD_NO). Nothing else is
 * writing to the socket in that state. */
static enum MHD_Result refuse_body(srv_req *r)
{
    srv *s = r->s;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char body[128], msg[320];
    int bl = snprintf(body, sizeof body,
                      "{\"error\":\"Payload is larger than the limit of %zu bytes\","
                      "\"error_type\":\"payload_too_large\"}",
                      s->o.payload_limit);
    int ml = snprintf(msg, sizeof msg,
                      "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\nx-request-id: %.63s\r\n\r\n%s",
                      bl, r->request_id, body);
    if (ci && ml > 0 && ml < (int)sizeof msg) {
        ssize_t w = send(ci->connect_fd, msg, (size_t)ml, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;   /* a client that does not read its answer loses it */
        shutdown(ci->connect_fd, SHUT_WR);
    }
    int cx = srv_code_index(413);
    atomic_fetch_add(&req_metrics(r)->requests[r->route][cx], 1);
    return MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    srv *s = cls;
    srv_req *r = *con_cls;
    enum MHD_Result ret;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->s = s;
        r->conn = c;
        r->url = url;
        r->t_start = srv_now_ns();
        atomic_store(&r->refs, 1);
        *con_cls = r;
        atomic_fetch_add(&s->inflight, 1);
        srv_headers h;
        request_headers(c, &h);
        srv_req_headers(r, &h);
        if (answer_early(r, method, &h, &ret)) {
            r->phase = PH_DONE;
            return ret;
        }
        r->phase = PH_BODY;
        return MHD_YES;
    }
    if (r->phase == PH_BODY) {
        if (*upload_size) {
            if (r->body.len + *upload_size > s->o.payload_limit)
                return refuse_body(r);
            buf_add(&r->body, upload, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        if (r->body.failed) {
            srv_fail(r, 500, "backend", "out of memory");
            return respond_failed(r);
        }
        /* The whole body is here. */
        if (srv_req_parse(r) == 1) {   /* answered without the scheduler (/tokenize) */
            buf b = {0};
            if (!s->be->tokenize(r, &b))
                return MHD_YES;   /* suspended, as below */
            r->phase = PH_DONE;
            return r->err_code ? (buf_free(&b), respond_failed(r)) : respond_json(r, &b);
        }
        if (r->err_code)
            return respond_failed(r);
        if (!submit_all(r))
            return MHD_YES;   /* suspended; the last completion resumes it */
    } else if (r->phase == PH_WAIT) {
        waiting_remove(r);
        if (atomic_load(&r->pending) > 0)
            srv_fail(r, 503, "unhealthy", "The server stopped before the request ran (exit timeout)");
    } else {
        return MHD_NO;   /* answered already */
    }
    r->phase = PH_DONE;
    if (r->err_code)
        return respond_failed(r);
    int tokenize = r->route == R_TOKENIZE;
    for (int i = 0; i < r->n; i++)
        if (r->items[i].st != ENG_OK) {
            if (tokenize)
                tei_fail_tokenize(r, i, r->items[i].st);
            else
                srv_fail_status(r, i, r->items[i].st);
            return respond_failed(r);
        }
    buf b = {0};
    if (tokenize) {   /* a gateway's: the workers' lists */
        buf_add(&b, "[", 1);
        for (int i = 0; i < r->n; i++) {
            if (i)
                buf_add(&b, ",", 1);
            buf_str(&b, r->items[i].json);
        }
        buf_add(&b, "]", 1);
        return respond_json(r, &b);
    }
    if (r->route == R_ZERO_SHOT && !r->zs_asked) {
        r->zs_asked = 1;
        if (!s->be->zero_shot(r))
            return MHD_YES;   /* suspended until the scores are in */
        if (r->err_code)
            return respond_failed(r);
    }
    srv_req_format(r, &b);
    if (r->err_code) {   /* zero-shot's label set failed */
        buf_free(&b);
        return respond_failed(r);
    }
    return respond_json(r, &b);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv *s = cls;
    srv_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    waiting_remove(r);
    atomic_fetch_sub(&s->inflight, 1);
    req_unref(r);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    srv *s = cls;
    atomic_fetch_add(&s->connections, code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

int srv_start(srv *s)
{
    struct sockaddr_storage ss;
    unsigned sl;
    memset(&ss, 0, sizeof ss);
    if (srv_resolve(s->o.host, s->o.port, &ss, &sl))
        return -1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The connection limit leaves room to answer the connections over
     * --max-connections with a 503 instead of closing them unanswered. */
    unsigned limit = (unsigned)s->o.max_connections + 64;
    s->d = MHD_start_daemon(flags, (uint16_t)s->o.port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.idle_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.http_threads,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_END);
    if (!s->d) {
        fprintf(stderr, "engine serve: cannot listen on %s:%d: %s\n", s->o.host, s->o.port,
                strerror(errno));
        return -1;
    }
    if (s->o.port == 0) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
        if (di)
            s->o.port = di->port;
    }
    return 0;
}

/* Stops accepting: the listening socket is closed, so new connections are
 * refused while the accepted ones finish. */
void srv_quiesce(srv *s)
{
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void srv_stop(srv *s)
{
    if (s->d)
        MHD_stop_daemon(s->d);
    s->d = NULL;
}
