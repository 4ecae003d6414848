/* request.c: what a request to `engine serve` is before and after the
 * scheduler, without a socket: its headers, its route and the checks that
 * need no body, its body parsed into items (routes_tei.c, routes_kserve.c),
 * and its lifetime's end. http_server.c feeds these from libmicrohttpd;
 * fuzz/fuzz_http.c feeds them arbitrary bytes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serve.h"

const char *const srv_route_path[R_COUNT] = {
#define SRV_X_PATH(e, path) path,
    SRV_ROUTES(SRV_X_PATH)
#undef SRV_X_PATH
};

const int srv_codes[SRV_N_CODES] = {
#define SRV_X_CODE(c) c,
    SRV_CODES(SRV_X_CODE)
#undef SRV_X_CODE
};

int srv_code_index(int code)
{
    for (int i = 0; i < SRV_N_CODES; i++)
        if (srv_codes[i] == code)
            return i;
    return -1;
}

void srv_fail(srv_req *r, int code, const char *type, const char *fmt, ...)
{
    if (r->err_code)   /* the first failure is the one reported */
        return;
    r->err_code = code;
    r->err_type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
}

void srv_fail_status(srv_req *r, int i, eng_status st)
{
    switch (st) {
    case ENG_ERR_OVERLOADED:
        srv_fail(r, 429, "overloaded", "Model is overloaded: the queue is full");
        break;
    case ENG_ERR_SHUTDOWN:
        srv_fail(r, 503, "unhealthy", "The server is shutting down");
        break;
    case ENG_ERR_TIMEOUT:
        srv_fail(r, 504, "timeout", "Input %d: the deadline passed while it was queued", i);
        break;
    case ENG_ERR_TOO_LONG:
        if (!r->truncate && !r->items[i].image) {
            srv_fail(r, 422, "validation",
                     "Input validation error: input %d is longer than the model's %d tokens "
                     "(set truncate to true to cut it)",
                     i, r->m->info.max_positions);
            break;
        }
        /* fall through */
    case ENG_ERR_UTF8:
    case ENG_ERR_INVALID_ARG:
    case ENG_ERR_UNSUPPORTED:
        srv_fail(r, 422, "validation", "Input validation error: input %d: %s", i,
                 eng_status_str(st));
        break;
    case ENG_ERR_FORMAT:
    case ENG_ERR_IO:
        srv_fail(r, 422, "validation", "Input %d: the image does not decode: %s", i,
                 eng_status_str(st));
        break;
    case ENG_ERR_NO_DEVICE:   /* a gateway's: no worker answered in time */
        srv_fail(r, 503, "unhealthy", "Input %d: no worker answered in time", i);
        break;
    default:
        srv_fail(r, 500, "backend", "Input %d: %s", i,
                 r->items[i].why ? r->items[i].why : eng_status_str(st));
    }
}

srv_model *srv_find_model(srv *s, const char *name, size_t len)
{
    for (int i = 0; i < s->n_models; i++)
        if (strlen(s->models[i].name) == len && !memcmp(s->models[i].name, name, len))
            return &s->models[i];
    return NULL;
}

void srv_req_free(srv_req *r)
{
    if (r->json)
        cJSON_Delete(r->json);
    for (int i = 0; i < r->n_owned; i++)
        free(r->owned[i]);
    for (int i = 0; r->items && i < r->n; i++) {
        free(r->items[i].json);
        free(r->items[i].why);
    }
    free(r->owned);
    free((void *)r->zs.labels);
    free((void *)r->zs.ids);
    free(r->zs_id_buf);
    free(r->zs_probs);
    free(r->zs_top);
    free(r->items);
    free(r->vals);
    buf_free(&r->body);
    free(r);
}

void srv_error_body(buf *b, const char *type, const char *msg)
{
    buf_str(b, "{\"error\":");
    buf_json_str(b, msg, strlen(msg));
    buf_str(b, ",\"error_type\":");
    buf_json_str(b, type, strlen(type));
    buf_str(b, "}");
}

void srv_req_headers(srv_req *r, const srv_headers *h)
{
    const char *id = h->request_id;
    size_t n = 0;
    /* Echoed as given when it is short and plain; generated otherwise. */
    if (id)
        for (; id[n] && n < sizeof r->request_id - 1 && id[n] > 0x20 && id[n] < 0x7f; n++)
            ;
    if (id && n > 0 && !id[n]) {
        memcpy(r->request_id, id, n + 1);
    } else {
        static _Atomic uint64_t counter;
        snprintf(r->request_id, sizeof r->request_id, "%llx-%llx", (unsigned long long)r->s->t0_ns,
                 (unsigned long long)atomic_fetch_add(&counter, 1));
    }
    r->timeout_us = r->s->o.request_timeout_ms * 1000;
    const char *t = h->timeout_ms;
    if (t) {
        char *end;
        long long v = strtoll(t, &end, 10);
        if (end != t && !*end && v > 0)   /* the scheduler reads one past its range as none */
            r->timeout_us = v < INT64_MAX / 1000 ? v * 1000 : INT64_MAX;
    }
    const char *p = h->priority;
    if (p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end != p && !*end && v >= 0 && v < ENG_SCHED_PRIORITIES)
            r->priority = (int)v;
        else
            r->bad_priority = 1;
    }
    r->content_type = h->content_type;
}

/* Sets r->route (and r->m for /v2/models/{name}...); returns the method the
 * route wants ("GET"/"POST"). Unknown routes leave R_UNKNOWN. */
static const char *route_of(srv_req *r, const char *url, int *unknown_model)
{
    static const struct { const char *path; srv_route route; const char *method; } fixed[] = {
        {"/embed", R_EMBED, "POST"},         {"/predict", R_PREDICT, "POST"},
        {"/tokenize", R_TOKENIZE, "POST"},   {"/v1/embeddings", R_OPENAI, "POST"},
        {"/info", R_INFO, "GET"},            {"/health", R_HEALTH, "GET"},
        {"/metrics", R_METRICS, "GET"},      {"/v2/health/live", R_LIVE, "GET"},
        {"/v2/health/ready", R_READY, "GET"},
    };
    r->route = R_UNKNOWN;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (!strcmp(url, fixed[i].path)) {
            r->route = fixed[i].route;
            return fixed[i].method;
        }
    const char *pre = "/v2/models/";
    if (strncmp(url, pre, strlen(pre)))
        return NULL;
    const char *name = url + strlen(pre), *slash = strchr(name, '/');
    size_t len = slash ? (size_t)(slash - name) : strlen(name);
    const char *rest = slash ? slash : "";
    const char *method = NULL;
    if (!*rest) { r->route = R_MODEL; method = "GET"; }
    else if (!strcmp(rest, "/ready")) { r->route = R_MODEL_READY; method = "GET"; }
    else if (!strcmp(rest, "/infer")) { r->route = R_INFER; method = "POST"; }
    else if (!strcmp(rest, "/classify")) { r->route = R_CLASSIFY; method = "POST"; }
    else if (!strcmp(rest, "/zero-shot")) { r->route = R_ZERO_SHOT; method = "POST"; }
    else return NULL;
    r->m = srv_find_model(r->s, name, len);
    *unknown_model = !r->m;
    return method;
}

static int authorized(const srv *s, const srv_headers *h)
{
    if (!s->o.api_key)
        return 1;
    const char *a = h->authorization;
    return a && !strncmp(a, "Bearer ", 7) && !strcmp(a + 7, s->o.api_key);
}

srv_early srv_req_route(srv_req *r, const char *method, const srv_headers *h)
{
    srv *s = r->s;
    int unknown_model = 0;
    const char *want = route_of(r, r->url, &unknown_model);
    int ready = atomic_load(&s->ready) && !atomic_load(&s->draining);
    if (atomic_load(&s->connections) > s->o.max_connections) {
        srv_fail(r, 503, "unhealthy", "Too many connections");
        return SRV_EARLY_FAILED;
    }
    if (!want) {
        srv_fail(r, 404, "not_found", "No such route");
        return SRV_EARLY_FAILED;
    }
    if (strcmp(method, want)) {
        srv_fail(r, 405, "method_not_allowed", "Method not allowed on this route");
        return SRV_EARLY_FAILED;
    }
    if (unknown_model) {
        srv_fail(r, 404, "not_found", "No such model");
        return SRV_EARLY_FAILED;
    }
    int health = r->route == R_LIVE || r->route == R_READY || r->route == R_HEALTH ||
                 r->route == R_MODEL_READY;
    if (!health && !authorized(s, h)) {
        srv_fail(r, 401, "unauthorized", "Missing or wrong Authorization: Bearer key");
        return SRV_EARLY_FAILED;
    }
    switch (r->route) {
    case R_LIVE:
        return SRV_EARLY_EMPTY;
    case R_READY:
    case R_HEALTH:
    case R_MODEL_READY:
        if (ready)
            return SRV_EARLY_EMPTY;
        srv_fail(r, 503, "unhealthy", "%s",
                 atomic_load(&s->draining) ? "Draining" : "Loading models");
        return SRV_EARLY_FAILED;
    case R_METRICS:
        return SRV_EARLY_METRICS;
    default:
        break;
    }
    if (!atomic_load(&s->ready)) {
        srv_fail(r, 503, "unhealthy", "Models are loading");
        return SRV_EARLY_FAILED;
    }
    if (r->route == R_INFO)
        return SRV_EARLY_INFO;
    if (r->route == R_MODEL)
        return SRV_EARLY_MODEL;
    if (!r->m) {
        const char *name = h->model_arg;
        r->m = name ? srv_find_model(s, name, strlen(name)) : &s->models[0];
        if (!r->m) {
            srv_fail(r, 404, "not_found", "No such model");
            return SRV_EARLY_FAILED;
        }
    }
    if (r->bad_priority) {
        srv_fail(r, 422, "validation", "X-Priority must be an integer 0..%d",
                 ENG_SCHED_PRIORITIES - 1);
        return SRV_EARLY_FAILED;
    }
    /* A declared length over the limit is refused before a byte is read. */
    const char *cl = h->content_length;
    if (cl && strtoull(cl, NULL, 10) > s->o.payload_limit) {
        srv_fail(r, 413, "payload_too_large", "Payload is larger than the limit of %zu bytes",
                 s->o.payload_limit);
        return SRV_EARLY_FAILED;
    }
    return SRV_EARLY_BODY;
}

int srv_req_parse(srv_req *r)
{
    if (r->route == R_INFER)
        return kserve_parse(r);
    if (r->route == R_ZERO_SHOT)
        return zs_parse(r);
    return tei_parse(r);
}

/* Strict UTF-8 (no overlong forms, surrogates or values past U+10FFFF):
 * checked by the server before a text is submitted, so that the failing
 * input's index is known, for every model. */
int srv_utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
        if (c < 0xC2 || c > 0xF4 || k >= n - i)
            return 0;
        unsigned cp = c & (0x3Fu >> k);
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += k + 1;
    }
    return 1;
}

void srv_req_format(srv_req *r, buf *out)
{
    if (r->route == R_ZERO_SHOT)
        zs_format(r, out);
    else if (r->route == R_INFER)
        kserve_format(r, out);
    else if (r->route == R_CLASSIFY || r->items[0].image)
        image_format(r, out);
    else
        tei_format(r, out);
}
