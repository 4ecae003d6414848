/* serve.h: `engine serve`, an HTTP front end (libmicrohttpd) for the
 * scheduler, wire-compatible with Hugging Face TEI and the KServe v2 / Triton
 * protocol. A client of include/engine.h only.
 *
 * Flow of a request: libmicrohttpd's epoll thread reads it (body bounded by
 * --payload-limit), a route parses it into items (texts or images), each item
 * is looked up in the result cache and the misses are submitted to the
 * model's scheduler with a completion callback; the connection is suspended.
 * The last completion (on a worker thread) resumes it, and the epoll thread
 * formats the answer. No thread per request, no blocking wait.
 *
 * Where the items are computed is the backend's business (srv_backend): the
 * local one (backend_local.c) runs the models in this process; the Redis one
 * (backend_redis.c, --backend redis://...) is a gateway that loads no model
 * and sends each item to `engine worker`s as a stream entry (docs/REDIS.md).
 * Parsing, the cache, deadlines' answers and formatting are shared, so the
 * two answer a request with the same bytes. */
#ifndef SERVE_H
#define SERVE_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#include "buf.h"   /* the growable output buffer */

/* ---- Zero-shot scoring off the reading threads (zs_pool.c) ---- */
typedef struct srv_zs_job srv_zs_job;
struct srv_zs_job {
    const eng_label_set *ls;   /* these stay valid until done is called */
    const float *features;
    int n;
    float *probs;              /* n x n_labels */
    int *top;                  /* n */
    /* On a pool thread: st and why (when st is not ENG_OK) say how it went. */
    void (*done)(srv_zs_job *j, eng_status st, const char *why);
    void *user;
    int64_t t_start;           /* srv_now_ns() when a thread took it */
    srv_zs_job *next;          /* the pool's */
    uint64_t key;
};
typedef struct srv_zs_pool srv_zs_pool;
/* --zero-shot-threads of engine serve and engine worker: two by default, one
 * for a new label set, one for the requests of cached ones behind it (more
 * when new sets come together); each holds a context's scratch, and the text
 * tower's passes already use the context's threads. */
enum { SRV_ZS_THREADS = 2, SRV_ZS_THREADS_MAX = 64 };
/* n_threads threads for a CLIP model's eng_zero_shot_scores; NULL when none
 * started. */
srv_zs_pool *srv_zs_pool_create(const eng_model *model, int n_threads);
/* Queues j; j->done is called once, later, on a pool thread. */
void srv_zs_pool_submit(srv_zs_pool *p, srv_zs_job *j);
/* Runs every queued job, then stops the threads; NULL is fine. */
void srv_zs_pool_free(srv_zs_pool *p);

/* ---- Routes and status codes, as counted by /metrics ---- */
#define SRV_ROUTES(X)                                                           \
    X(R_EMBED, "/embed") X(R_PREDICT, "/predict") X(R_TOKENIZE, "/tokenize")    \
    X(R_OPENAI, "/v1/embeddings") X(R_INFO, "/info") X(R_HEALTH, "/health")     \
    X(R_METRICS, "/metrics") X(R_LIVE, "/v2/health/live")                      \
    X(R_READY, "/v2/health/ready") X(R_MODEL, "/v2/models/{name}")             \
    X(R_MODEL_READY, "/v2/models/{name}/ready")                                \
    X(R_INFER, "/v2/models/{name}/infer")                                      \
    X(R_CLASSIFY, "/v2/models/{name}/classify")                                \
    X(R_ZERO_SHOT, "/v2/models/{name}/zero-shot") X(R_UNKNOWN, "other")

typedef enum {
#define SRV_X_ENUM(e, path) e,
    SRV_ROUTES(SRV_X_ENUM)
#undef SRV_X_ENUM
    R_COUNT
} srv_route;

#define SRV_CODES(X) X(200) X(400) X(401) X(404) X(405) X(413) X(422) X(429) \
                     X(500) X(503) X(504)
#define SRV_X_COUNT(c) +1
enum { SRV_N_CODES = 0 SRV_CODES(SRV_X_COUNT) };
#undef SRV_X_COUNT
extern const int srv_codes[SRV_N_CODES];
int srv_code_index(int code);   /* -1 when not counted */
extern const char *const srv_route_path[R_COUNT];

/* ---- metrics.c: Prometheus counters and histograms (lock-free) ---- */
enum { HIST_MAX_BUCKETS = 24 };
typedef struct {
    const double *bounds;   /* upper bounds, ascending; +Inf implied */
    int n_bounds;
    double scale;           /* observed integer units per exposed unit */
    _Atomic uint64_t count[HIST_MAX_BUCKETS + 1];
    _Atomic uint64_t sum;   /* in observed units */
} hist;

typedef struct {
    _Atomic uint64_t requests[R_COUNT][SRV_N_CODES];
    hist queue_s, infer_s, total_s, batch_size, batch_tokens;
    _Atomic uint64_t cache_hits, cache_misses, items;
} srv_metrics;

void metrics_init(srv_metrics *m);
void hist_observe(hist *h, uint64_t v);

/* ---- The server ---- */
typedef struct {
    char name[128];
    const char *path;         /* NULL for the null model */
    eng_model *model;         /* NULL for the null model and in a gateway */
    eng_model_info info;
    const char **labels;      /* info.n_labels names (NULL: LABEL_i), from the model or workers */
    void *be;                 /* the backend's own per-model state */
    eng_sched *sched;
    int width_classify, width_embed;   /* floats per result */
    srv_metrics metrics;
    /* CLIP, local backend: the threads zero-shot answers are scored on
     * (label sets the model has not seen are embedded there). */
    srv_zs_pool *zs_pool;
} srv_model;

typedef struct {
    const char *host;
    int port;
    const char *api_key;
    size_t payload_limit;
    int max_client_batch;
    int max_connections;
    int idle_timeout_s;
    double drain_delay_s, exit_timeout_s;
    int http_threads;
    size_t cache_entries, cache_bytes;
    int64_t request_timeout_ms;   /* default deadline; 0 = none */
    /* scheduler */
    int workers, threads, max_batch, max_batch_tokens, queue_capacity, idle_spin_us;
    int64_t max_wait_us;
    const char *cpus;
    int null_batch_us, null_token_ns;
    int zs_threads;               /* a CLIP model's zero-shot threads (zs_pool.c) */
    /* gateway (--backend redis://...) */
    const char *backend, *stream;
    int64_t reply_timeout_ms, connect_timeout_ms;
} srv_opts;

typedef struct srv_backend srv_backend;

typedef struct srv srv;
struct srv {
    srv_opts o;
    const srv_backend *be;
    srv_model *models;
    int n_models;
    struct MHD_Daemon *d;
    eng_cache *cache;
    _Atomic int ready, draining, expired;
    _Atomic int64_t inflight, connections;
    srv_metrics global;   /* routes without a model (health, metrics, 404) */
    int64_t t0_ns;
};

typedef struct srv_req srv_req;

/* One input of a request and its result. */
typedef struct {
    srv_req *r;
    const char *data;
    size_t len;
    int image;
    int cached;
    eng_status st;
    int label, n_tokens, truncated, submitted;
    int64_t queue_ns, compute_ns;
    float *vals;   /* r->width floats: classify logits then probs; embed the vector */
    char *json;    /* /tokenize through a gateway: the worker's list for this text */
    char *why;     /* through a gateway: why the workers gave up on it (a dead letter) */
} srv_item;

enum { PH_NEW, PH_BODY, PH_WAIT, PH_DONE };

struct srv_req {
    srv *s;
    struct MHD_Connection *conn;
    const char *url;
    srv_route route;
    srv_model *m;
    int phase;
    buf body;
    int too_large;
    const char *content_type;
    /* the parsed request */
    void *json;          /* cJSON tree the texts point into */
    eng_task task;
    int n;
    srv_item *items;
    float *vals;
    int width;
    int normalize, truncate, raw_scores, single;
    int skip_special;    /* /tokenize with add_special_tokens false */
    int priority;
    int bad_priority;   /* X-Priority is not 0..ENG_SCHED_PRIORITIES-1: 422 */
    int64_t timeout_us;
    char **owned;        /* decoded base64 images */
    int n_owned;
    eng_label_set zs;    /* /zero-shot: labels (into json), template, ids */
    int32_t *zs_id_buf;  /* the ids zs.ids point into */
    /* /zero-shot's scores (the backend's zero_shot): n x n_labels probabilities
     * (and room for n more floats: a gateway's raw result) and each image's
     * best label; or zs_st and why the label set failed. */
    float *zs_probs;
    int *zs_top;
    int zs_asked;        /* the backend's zero_shot was called */
    eng_status zs_st;
    char zs_why[256];
    srv_item zs_item;    /* their completion (no scheduler result) */
    srv_zs_job zs_job;   /* the local backend's scoring of them */
    char kserve_id[128];
    /* completion */
    _Atomic int pending;
    _Atomic int refs;    /* libmicrohttpd's + one per item in the scheduler */
    _Atomic int resumed;
    srv_req *wprev, *wnext;   /* the list of requests waiting on the scheduler */
    int in_waiting;
    int err_code;        /* HTTP status of a failure, 0 = none */
    char err_msg[256];
    const char *err_type;
    int64_t t_start, tok_ns;
    char request_id[64];
};

/* ---- Backends ---- */
struct srv_backend {
    const char *name;
    /* Before listening (may be NULL): may set the model list. 0 or -1 (logged). */
    int (*prepare)(srv *s);
    /* After listening, before ready (may be NULL): loads the models, starts
     * threads. 0 or -1 (logged). */
    int (*open)(srv *s);
    /* Runs the items of r that are not cached, on r's epoll thread: for each
     * one srv_item_hold, then srv_item_done when its result is in (any
     * thread), or srv_item_unhold and srv_fail_status when it failed at once.
     * Stops at the first failure (r->err_code set). */
    void (*submit)(srv_req *r);
    /* /tokenize: 1 when answered now (into out, or srv_fail); 0 when r was
     * suspended (srv_suspend) and its items' it->json come later, as submit's. */
    int (*tokenize)(srv_req *r, buf *out);
    /* /zero-shot, every image's features in r->vals: scores them against
     * r->zs into r->zs_probs and r->zs_top (or sets r->zs_st and r->zs_why).
     * 1 when done now; 0 when r was suspended (srv_suspend) and they come
     * later, as an item's result does (srv_item_done of r->zs_item). */
    int (*zero_shot)(srv_req *r);
    /* Inputs of the model queued and not yet answered (/metrics). */
    uint64_t (*queue_depth)(srv_model *m);
    /* The backend's own /metrics families (may be NULL). */
    void (*metrics)(srv *s, buf *out);
    /* Frees what prepare and open made, whatever they got to. */
    void (*close)(srv *s);
};
extern const srv_backend srv_backend_local, srv_backend_redis;

/* http_server.c, for the backends */
/* Suspends r's connection until its items are done (1), holding it while
 * they are sent; 0 when the server is past its exit timeout (r answers 503).
 * srv_release drops that hold once they are. */
int srv_suspend(srv_req *r);
void srv_release(srv_req *r);
void srv_item_hold(srv_req *r);
void srv_item_unhold(srv_req *r);
/* it->st, label, n_tokens, queue_ns, compute_ns and vals are set: caches
 * the result, observes the metrics (neither for r->zs_item), and resumes r
 * after its last item. */
void srv_item_done(srv_item *it, int batch_size, int batch_tokens);
void srv_fail_status(srv_req *r, int i, eng_status st);   /* request.c: srv_fail with st's answer */
const char *srv_label(srv_model *m, int i, char *tmp, size_t n);   /* routes_tei.c */

int64_t srv_now_ns(void);

/* ---- request.c: a request without a socket (http_server.c feeds it from
 * libmicrohttpd, fuzz/fuzz_http.c from arbitrary bytes) ---- */
void srv_fail(srv_req *r, int code, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
srv_model *srv_find_model(srv *s, const char *name, size_t len);

/* The request headers (and the ?model= argument) the server reads; NULL when
 * absent. */
typedef struct {
    const char *request_id, *timeout_ms, *priority, *content_type, *authorization,
        *content_length, *model_arg;
} srv_headers;

/* What a request needs before its body: an answer now, or the body. */
typedef enum {
    SRV_EARLY_BODY,      /* read the body, then srv_req_parse */
    SRV_EARLY_FAILED,    /* answer r->err_code (srv_fail was called) */
    SRV_EARLY_EMPTY,     /* 200 with an empty body (health) */
    SRV_EARLY_METRICS,   /* metrics_render */
    SRV_EARLY_INFO,      /* tei_info */
    SRV_EARLY_MODEL,     /* kserve_model_meta(r->m) */
} srv_early;

/* r->s and r->url set; h lives as long as r. */
void srv_req_headers(srv_req *r, const srv_headers *h);   /* id, deadline, priority */
srv_early srv_req_route(srv_req *r, const char *method, const srv_headers *h);
/* r->body complete: 0 when the items are ready for the scheduler (or
 * r->err_code is set), 1 when tei_tokenize answers it (/tokenize). */
int srv_req_parse(srv_req *r);
/* Every item answered ENG_OK: the route's JSON answer (zero-shot may still
 * fail its label set: r->err_code is then set). */
void srv_req_format(srv_req *r, buf *out);
/* Strict UTF-8: what a text item is checked for before it is submitted. */
int srv_utf8_valid(const unsigned char *s, size_t n);
void srv_error_body(buf *out, const char *type, const char *msg);
void srv_req_free(srv_req *r);

/* routes_tei.c: parse a TEI / OpenAI request into items; format answers. */
int tei_parse(srv_req *r);                  /* 0 ok, else srv_fail was called */
void tei_format(srv_req *r, buf *out);
int tei_tokenize(srv_req *r, buf *out);     /* the local backend's /tokenize */
/* One text's /tokenize list into out (the local server's and a worker's):
 * ENG_ERR_TOO_LONG past max_positions unless truncate, or the tokenizer's status. */
eng_status tei_text_tokens(const eng_model *model, int max_positions, const char *text,
                           size_t len, int truncate, int skip_special, buf *out);
void tei_fail_tokenize(srv_req *r, int i, eng_status st);   /* srv_fail: item i failed */
void tei_info(srv *s, buf *out);
void image_format(srv_req *r, buf *out);    /* the CLI's image JSON */

/* routes_zeroshot.c: POST /v2/models/{name}/zero-shot (CLIP) */
int zs_parse(srv_req *r);                   /* 0 ok, else srv_fail was called */
void zs_format(srv_req *r, buf *out);       /* the scores; srv_fail when the labels failed */

/* routes_kserve.c */
char *b64_decode(const char *s, size_t n, size_t *out_len);   /* NULL: malformed */
int kserve_parse(srv_req *r);
void kserve_format(srv_req *r, buf *out);
void kserve_model_meta(srv_model *m, buf *out);

/* metrics.c */
void metrics_render(srv *s, buf *out);
void metrics_family(buf *o, const char *name, const char *type, const char *help);
/* The per-model families (histograms, inputs, cache, queue depth: depth
 * NULL reads 0), which the Redis worker's /metrics shares. */
void metrics_render_models(buf *o, srv_model *models, int n, uint64_t (*depth)(srv_model *));

/* http_server.c */
int srv_start(srv *s);        /* starts listening; 0 or -1 (logged) */
void srv_quiesce(srv *s);     /* stop accepting connections */
void srv_expire_waiting(srv *s);   /* answer 503 to whatever still waits */
void srv_stop(srv *s);
/* serve_main.c */
struct sockaddr_storage;
int srv_resolve(const char *host, int port, struct sockaddr_storage *ss, unsigned *len);

#endif
