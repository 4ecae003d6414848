/* redis_worker.c: build/engine worker, an engine process serving requests from
 * a Redis stream through a consumer group (docs/REDIS.md is the protocol).
 *
 * Three kinds of threads, each with its own Redis connection where it has one
 * (a hiredis context is not thread-safe):
 *  - the reader (main thread): re-reads this consumer's own pending entries
 *    after a start or reconnect, claims entries idle past --claim-idle-ms
 *    (a dead consumer's), and reads new ones with a blocking XREADGROUP; each
 *    entry becomes one scheduler request, so entries of many producers batch
 *    together. It never holds more than --max-inflight entries.
 *  - the scheduler's workers: run the batches; the completion callback turns
 *    a result into its JSON body and queues it for the writer.
 *  - for a CLIP model, the zero-shot threads (zs_pool.c): score zero_shot
 *    entries (embedding a label set the model has not seen, which takes a
 *    while) and queue their answers the same way.
 *  - the writer: pipelines, for each finished entry, the reply XADD (and the
 *    dead-letter XADD) and only then the XACK, so an entry is acknowledged
 *    after its reply is in Redis (at least once delivery).
 * Uses only include/engine.h. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redis_common.h"
#include "serve.h"   /* the metrics families engine serve has */

/* X(worker, ...) in tools/cli/cli.h's table, which this folder may not include. */
int eng__cli_worker(int argc, char **argv);

typedef struct wreq {
    struct wreq *next;
    char *entry;          /* the stream entry id */
    char *id;             /* the client's id, NULL when missing */
    char *reply_to;       /* NULL: nothing to answer (dead-lettered) */
    char *input;
    size_t input_len;
    const char *status;   /* wire status name */
    buf body;
    int want_raw;         /* the entry asked for the raw result (a gateway) */
    buf raw;
    int ack_only;         /* the entry was deleted: acknowledge, nothing else */
    char *dead_reason;    /* non-NULL: copy the entry to the dead-letter stream */
    long long deliveries;
    int n_fields;         /* the entry's field/value strings, for the dead letter */
    char **fields;
    size_t *field_lens;
    int64_t t_read;       /* srv_now_ns() when read */
} wreq;

static struct {
    eng_redis_addr addr;
    const char *stream, *group, *consumer, *model_name;
    char dead_stream[512];
    int count, block_ms, claim_idle_ms, max_deliveries, max_inflight, connect_ms;
    size_t max_input;
    eng_model *model;
    eng_model_info info;
    eng_sched *sched;
    srv_zs_pool *zs_pool; /* CLIP: zero_shot entries are scored there */
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* done queue changed, or inflight fell */
    wreq *done_head, *done_tail;
    int inflight;         /* entries read and not yet acknowledged */
    int writer_stop;
    atomic_ullong entries_read, entries_claimed, dead_lettered, reconnects, replies;
    atomic_ullong answers[ENG__STATUS_COUNT];   /* by status (dead letters apart) */
    srv_model m;          /* name, scheduler and metrics, as engine serve's models */
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static char *memdup0(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void wreq_free(wreq *r)
{
    free(r->entry);
    free(r->id);
    free(r->reply_to);
    free(r->input);
    free(r->body.data);
    free(r->raw.data);
    free(r->dead_reason);
    for (int i = 0; i < r->n_fields; i++)
        free(r->fields[i]);
    free(r->fields);
    free(r->field_lens);
    free(r);
}

/* Hands a finished entry to the writer. */
static void finish(wreq *r)
{
    hist_observe(&W.m.metrics.total_s, (uint64_t)((srv_now_ns() - r->t_read) / 1000));
    pthread_mutex_lock(&W.mu);
    if (W.done_tail)
        W.done_tail->next = r;
    else
        W.done_head = r;
    W.done_tail = r;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

/* Answers r with {"error": detail} under the wire status name. */
static void fail_named(wreq *r, const char *name, eng_status s, const char *detail)
{
    r->status = name;
    r->body.len = 0;
    buf_add(&r->body, "{\"error\":", 9);
    const char *d = detail && *detail ? detail : eng_status_str(s);
    buf_json_str(&r->body, d, strlen(d));
    buf_add(&r->body, "}", 1);
    finish(r);
}

static void fail(wreq *r, eng_status s, const char *detail)
{
    atomic_fetch_add(&W.answers[(unsigned)s < ENG__STATUS_COUNT ? s : ENG_ERR_INTERNAL], 1);
    fail_named(r, eng__redis_status_name(s), s, detail);
}

/* Answers r "ok" with the reply it has built, or NOMEM when building it ran
 * out of memory. */
static void succeed(wreq *r)
{
    if (r->body.failed || r->raw.failed) {
        fail(r, ENG_ERR_NOMEM, NULL);
        return;
    }
    r->status = "ok";
    atomic_fetch_add(&W.answers[ENG_OK], 1);
    finish(r);
}

/* Floats as the command line writes them (%.8g, null when not finite), so a
 * worker's answer equals build/engine's line byte for byte. */
static void put_floats(buf *b, const float *v, int n)
{
    buf_add(b, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i)
            buf_add(b, ",", 1);
        if (isfinite(v[i]))
            buf_printf(b, "%.8g", (double)v[i]);
        else
            buf_add(b, "null", 4);
    }
    buf_add(b, "]", 1);
}

static void put_label(buf *b, int i)
{
    const char *l = W.model ? eng_model_label(W.model, i) : NULL;
    if (l)
        buf_json_str(b, l, strlen(l));
    else
        buf_printf(b, "\"%d\"", i);   /* the null model has no label names */
}

/* The JSON object `engine classify|embed` prints for the same input. */
static void on_done(const eng_sched_result *res)
{
    wreq *r = res->user;
    free(r->input);   /* image bytes: the request is complete */
    r->input = NULL;
    srv_metrics *mt = &W.m.metrics;
    hist_observe(&mt->queue_s, (uint64_t)(res->queue_ns / 1000));
    if (res->batch_size > 0) {
        hist_observe(&mt->infer_s, (uint64_t)(res->compute_ns / 1000));
        hist_observe(&mt->batch_size, (uint64_t)res->batch_size);
        hist_observe(&mt->batch_tokens, (uint64_t)res->batch_tokens);
    }
    if (res->status) {
        fail(r, res->status, NULL);
        return;
    }
    buf *b = &r->body;
    if (res->task == ENG_TASK_EMBED) {
        buf_add(b, "{\"embedding\":", 13);
    } else {
        buf_add(b, "{\"label\":", 9);
        put_label(b, res->label);
        buf_printf(b, ",\"score\":%.8g", (double)res->probs[res->label]);
        if (W.info.input == ENG_INPUT_IMAGE) {
            int top[5], k = res->n_out < 5 ? res->n_out : 5;
            for (int j = 0; j < k; j++) {
                int best = -1;
                for (int i = 0; i < res->n_out; i++) {
                    int taken = 0;
                    for (int q = 0; q < j; q++)
                        taken |= top[q] == i;
                    if (!taken && (best < 0 || res->out[i] > res->out[best]))
                        best = i;
                }
                top[j] = best;
            }
            buf_add(b, ",\"top5\":[", 9);
            for (int j = 0; j < k; j++) {
                buf_printf(b, "%s{\"index\":%d,\"label\":", j ? "," : "", top[j]);
                put_label(b, top[j]);
                buf_printf(b, ",\"score\":%.8g}", (double)res->probs[top[j]]);
            }
            buf_add(b, "]", 1);
        }
        buf_add(b, ",\"logits\":", 10);
    }
    put_floats(b, res->out, res->n_out);
    buf_add(b, "}", 1);
    if (r->want_raw) {
        eng_redis_raw h = {res->label, res->n_tokens, res->batch_size, res->batch_tokens,
                           res->n_out, res->probs ? res->n_out : 0, res->queue_ns, res->compute_ns};
        eng__redis_raw_put(&r->raw, &h, res->out, res->probs);
    }
    succeed(r);
}

/* A zero_shot entry's scoring on the zero-shot threads, and what it owns. */
typedef struct {
    srv_zs_job job;
    wreq *r;
    eng_redis_zero_shot z;
    float *probs;   /* n x n_labels, then n more: the raw result's n_probs */
    int *top;
    int64_t t0;
} zs_entry;

static void zero_shot_done(srv_zs_job *j, eng_status s, const char *why)
{
    zs_entry *e = j->user;
    wreq *r = e->r;
    const int n = e->z.n, L = e->z.ls.n_labels;
    float *probs = e->probs;
    if (s) {
        fail(r, s, why);
    } else {
        buf *b = &r->body;
        buf_add(b, "{\"top\":[", 8);
        for (int i = 0; i < n; i++) {
            buf_printf(b, i ? ",%d" : "%d", e->top[i]);
            probs[(size_t)n * L + i] = (float)e->top[i];
        }
        buf_add(b, "],\"probs\":[", 11);
        for (int i = 0; i < n; i++) {
            if (i)
                buf_add(b, ",", 1);
            put_floats(b, probs + (size_t)i * L, L);
        }
        buf_add(b, "]}", 2);
        if (r->want_raw) {
            eng_redis_raw h = {-1, 0, 0, 0, n * L, n, j->t_start - e->t0, srv_now_ns() - j->t_start};
            eng__redis_raw_put(&r->raw, &h, probs, probs + (size_t)n * L);
        }
        succeed(r);
    }
    free(e->z.mem);
    free(e->probs);
    free(e->top);
    free(e);
}

/* A zero_shot entry (a gateway's /zero-shot): the images' features scored
 * against the label set, as engine serve scores them, on the zero-shot
 * threads: a label set the model has not seen is embedded there (its prompts
 * through the text tower), while this thread reads on. The body:
 * {"top":[best label per image],"probs":[[per label]...]}. */
static void zero_shot_entry(wreq *r, const eng_redis_request *q)
{
    if (!W.zs_pool) {
        fail(r, ENG_ERR_UNSUPPORTED, "zero-shot classification needs a CLIP model");
        return;
    }
    zs_entry *e = calloc(1, sizeof *e);
    if (!e) {
        fail(r, ENG_ERR_NOMEM, NULL);
        return;
    }
    char why[256];   /* as long as engine serve's reason (srv_req.zs_why) */
    eng_status s = eng__redis_zero_shot_get(q, W.info.embed_size, &e->z, why, sizeof why);
    if (s) {
        free(e);
        fail(r, s, why);
        return;
    }
    const size_t n = (size_t)e->z.n;
    e->r = r;
    e->probs = malloc((n * (size_t)e->z.ls.n_labels + n) * sizeof *e->probs);
    e->top = malloc(n * sizeof *e->top);
    e->t0 = srv_now_ns();
    e->job = (srv_zs_job){.ls = &e->z.ls, .features = e->z.features, .n = e->z.n,
                          .probs = e->probs, .top = e->top, .done = zero_shot_done, .user = e};
    if (!e->probs || !e->top)
        zero_shot_done(&e->job, ENG_ERR_NOMEM, "out of memory");
    else
        srv_zs_pool_submit(W.zs_pool, &e->job);
}

/* Turns one stream entry into a scheduler request, or answers it at once. */
static void handle_entry(const redisReply *e, long long deliveries)
{
    wreq *r = calloc(1, sizeof *r);
    if (!r || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || !(r->entry = strdup(e->element[0]->str))) {
        free(r);   /* not an entry at all: Redis answered something else */
        return;
    }
    pthread_mutex_lock(&W.mu);
    W.inflight++;
    pthread_mutex_unlock(&W.mu);
    atomic_fetch_add(&W.entries_read, 1);
    r->deliveries = deliveries;
    r->t_read = srv_now_ns();
    const redisReply *f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY) {   /* deleted since it was delivered */
        r->ack_only = 1;
        finish(r);
        return;
    }
    size_t n_kv = 0;
    eng_redis_str *kv = eng__redis_kv(f, &n_kv);
    if (!kv) {
        fail(r, ENG_ERR_NOMEM, NULL);
        return;
    }
    eng_redis_request q;
    char why[160] = "";
    eng_status pst = eng__redis_parse_request(kv, n_kv, &q, why, sizeof why);
    free(kv);
    if (q.id.p)
        r->id = memdup0(q.id.p, q.id.n);
    if (q.reply_to.p)
        r->reply_to = memdup0(q.reply_to.p, q.reply_to.n);
    char reason[160] = "";
    if (deliveries > W.max_deliveries)
        snprintf(reason, sizeof reason, "delivered %lld times, more than --max-deliveries %d",
                 deliveries, W.max_deliveries);
    else if (!q.reply_to.p)
        snprintf(reason, sizeof reason, "no reply_to field");
    if (reason[0]) {
        /* Keep the whole entry in the dead-letter stream with the reason. */
        r->dead_reason = strdup(reason);
        r->n_fields = (int)f->elements;
        r->fields = calloc(f->elements ? f->elements : 1, sizeof *r->fields);
        r->field_lens = calloc(f->elements ? f->elements : 1, sizeof *r->field_lens);
        for (size_t i = 0; r->fields && r->field_lens && i < f->elements; i++) {
            const redisReply *v = f->element[i];
            r->fields[i] = memdup0(v->type == REDIS_REPLY_STRING ? v->str : "",
                                   v->type == REDIS_REPLY_STRING ? v->len : 0);
            r->field_lens[i] = v->type == REDIS_REPLY_STRING ? v->len : 0;
        }
        atomic_fetch_add(&W.dead_lettered, 1);
        if (!r->dead_reason || !r->fields || !r->field_lens) {
            fail(r, ENG_ERR_NOMEM, NULL);
            return;
        }
        fail_named(r, "dead_letter", ENG_ERR_INTERNAL, reason);
        return;
    }
    if (pst) {
        fail(r, pst, why);
        return;
    }
    if (q.input.n > W.max_input) {
        char d[96];
        snprintf(d, sizeof d, "input of %zu bytes, more than --max-input-bytes %zu", q.input.n,
                 W.max_input);
        fail(r, ENG_ERR_TOO_LONG, d);
        return;
    }
    if (q.model.p && (q.model.n != strlen(W.model_name) || memcmp(q.model.p, W.model_name, q.model.n))) {
        fail(r, ENG_ERR_UNSUPPORTED, "this worker serves another model");
        return;
    }
    r->want_raw = q.raw;
    eng_sched_req sq = eng_sched_default_req();
    sq.done = on_done;
    sq.user = r;
    sq.priority = q.priority;
    if (q.deadline_ms) {
        int64_t left = q.deadline_ms - eng__redis_now_ms();
        if (left <= 0) {
            fail(r, ENG_ERR_TIMEOUT, NULL);
            return;
        }
        sq.timeout_us = left * 1000;
    }
    if (q.kind == ENG_REDIS_ZERO_SHOT) {
        zero_shot_entry(r, &q);
        return;
    }
    int32_t ids[ENG_SCHED_MAX_POSITIONS];
    if (q.kind == ENG_REDIS_TOKENIZE) {
        if (!W.model || W.info.input != ENG_INPUT_TEXT) {
            fail(r, ENG_ERR_UNSUPPORTED, "tokenize needs a text model");
            return;
        }
        eng_status s;
        if (q.tei) {   /* a gateway's /tokenize: engine serve's list for the text */
            s = tei_text_tokens(W.model, W.info.max_positions, q.input.p, q.input.n, q.truncate,
                                q.skip_special, &r->body);
        } else {
            int n = 0;
            s = eng_tokenize(W.model, q.input.p, q.input.n, ids, ENG_SCHED_MAX_POSITIONS, &n, NULL);
            buf_add(&r->body, "{\"ids\":[", 8);
            for (int k = 0; s == ENG_OK && k < n; k++)
                buf_printf(&r->body, k ? ",%d" : "%d", (int)ids[k]);
            buf_add(&r->body, "]}", 2);
        }
        if (s) {
            fail(r, s, NULL);
            return;
        }
        r->status = "ok";
        atomic_fetch_add(&W.answers[ENG_OK], 1);
        finish(r);
        return;
    }
    sq.task = q.kind == ENG_REDIS_CLASSIFY ? ENG_TASK_CLASSIFY : ENG_TASK_EMBED;
    if (sq.task == ENG_TASK_CLASSIFY && W.model && W.info.n_labels == 0) {
        fail(r, ENG_ERR_UNSUPPORTED, "the model has no classifier head; use embed");
        return;
    }
    eng_status s;
    if (W.info.input == ENG_INPUT_IMAGE) {
        /* The scheduler reads the bytes until the request completes. */
        if (!(r->input = memdup0(q.input.p, q.input.n))) {
            fail(r, ENG_ERR_NOMEM, NULL);
            return;
        }
        r->input_len = q.input.n;
        s = eng_sched_submit_image(W.sched, r->input, r->input_len, &sq, NULL);
    } else if (!q.truncate && W.model) {
        /* Tokenized here to see whether the text fits (the scheduler would
         * cut it silently), as engine serve does for truncate false. */
        int n = 0, cut = 0;
        s = eng_tokenize(W.model, q.input.p, q.input.n, ids, W.info.max_positions, &n, &cut);
        if (s == ENG_OK && cut) {
            char d[96];
            snprintf(d, sizeof d, "longer than the model's %d tokens", W.info.max_positions);
            fail(r, ENG_ERR_TOO_LONG, d);
            return;
        }
        if (s == ENG_OK)
            s = eng_sched_submit_ids(W.sched, ids, n, &sq, NULL);
    } else {
        s = eng_sched_submit(W.sched, q.input.p, q.input.n, &sq, NULL);
    }
    if (s)
        fail(r, s, eng_last_error());
    else
        atomic_fetch_add_explicit(&W.m.metrics.items, 1, memory_order_relaxed);
}

/* ---- the writer ---------------------------------------------------------- */

static redisContext *reconnect(redisContext *c, const char *who)
{
    if (c)
        redisFree(c);
    char err[256];
    int backoff = 100;
    for (;;) {
        c = eng__redis_connect(&W.addr, 0, 5000, err, sizeof err);
        if (c) {
            atomic_fetch_add(&W.reconnects, 1);
            fprintf(stderr, "engine worker: %s reconnected\n", who);
            return c;
        }
        if (stop_requested && !strcmp(who, "reader"))
            return NULL;
        usleep((useconds_t)backoff * 1000);
        backoff = backoff < 1000 ? backoff * 2 : 2000;
    }
}

/* Sends the replies, dead letters and acknowledgements of a list, pipelined;
 * 0 when the connection broke (the caller reconnects and sends all again:
 * a reply may then be written twice, which the protocol allows). */
static int send_list(redisContext *c, wreq *list)
{
    int n_cmds = 0;
    for (wreq *r = list; r; r = r->next) {
        if (r->reply_to && !r->ack_only) {
            const char *a[] = {"XADD", r->reply_to, "*", "id", r->id ? r->id : "",
                               "status", r->status, "body", r->body.data ? r->body.data : "{}",
                               "entry", r->entry, "raw", r->raw.data};
            size_t l[13];
            for (int i = 0; i < 11; i++)
                l[i] = strlen(a[i]);
            l[11] = 3;
            l[12] = r->raw.len;   /* binary */
            redisAppendCommandArgv(c, r->raw.len ? 13 : 11, a, l);
            n_cmds++;
        }
        if (r->dead_reason) {
            int n = r->n_fields + 9;
            const char **a = malloc((size_t)n * sizeof *a);
            size_t *l = malloc((size_t)n * sizeof *l);
            if (a && l) {
                char dl[24];
                snprintf(dl, sizeof dl, "%lld", r->deliveries);
                const char *head[] = {"XADD", W.dead_stream, "*"};
                const char *tail[] = {"reason", r->dead_reason, "deliveries", dl, "entry", r->entry};
                for (int i = 0; i < 3; i++)
                    a[i] = head[i], l[i] = strlen(head[i]);
                for (int i = 0; i < r->n_fields; i++)
                    a[3 + i] = r->fields[i], l[3 + i] = r->field_lens[i];
                for (int i = 0; i < 6; i++)
                    a[3 + r->n_fields + i] = tail[i], l[3 + r->n_fields + i] = strlen(tail[i]);
                redisAppendCommandArgv(c, n, a, l);
                n_cmds++;
            }
            free(a);
            free(l);
        }
        const char *a[] = {"XACK", W.stream, W.group, r->entry};
        size_t l[4];
        for (int i = 0; i < 4; i++)
            l[i] = strlen(a[i]);
        redisAppendCommandArgv(c, 4, a, l);
        n_cmds++;
    }
    for (int i = 0; i < n_cmds; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK)
            return 0;
        /* An error reply (NOGROUP after Redis lost its data) is not retried:
         * the entry it would acknowledge is gone with the group. */
        freeReplyObject(rep);
    }
    for (wreq *r = list; r; r = r->next)
        if (r->reply_to && !r->ack_only)
            atomic_fetch_add(&W.replies, 1);
    return 1;
}

static void *writer_main(void *arg)
{
    redisContext *c = arg;
    for (;;) {
        pthread_mutex_lock(&W.mu);
        while (!W.done_head && !W.writer_stop)
            pthread_cond_wait(&W.cv, &W.mu);
        wreq *list = W.done_head;
        W.done_head = W.done_tail = NULL;
        pthread_mutex_unlock(&W.mu);
        if (!list)
            break;
        while (!c || !send_list(c, list))
            c = reconnect(c, "writer");
        int k = 0;
        while (list) {
            wreq *next = list->next;
            wreq_free(list);
            list = next;
            k++;
        }
        pthread_mutex_lock(&W.mu);
        W.inflight -= k;
        pthread_cond_broadcast(&W.cv);
        pthread_mutex_unlock(&W.mu);
    }
    redisFree(c);
    return NULL;
}

/* ---- metrics ------------------------------------------------------------- */

static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload, size_t *upload_size, void **state)
{
    if (strcmp(method, "GET"))
        return MHD_NO;
    buf b = {0};
    int code = MHD_HTTP_OK;
    if (!strcmp(url, "/metrics")) {
        /* engine serve's model families, then the worker's own. */
        metrics_render_models(&b, &W.m, 1, srv_backend_local.queue_depth);
        metrics_family(&b, "engine_redis_answers_total", "counter",
                       "Entries answered, by status (dead letters apart)");
        for (int s = 0; s < ENG__STATUS_COUNT; s++)
            buf_printf(&b, "engine_redis_answers_total{model=\"%s\",status=\"%s\"} %llu\n",
                       W.m.name, eng__redis_status_name((eng_status)s),
                       (unsigned long long)atomic_load(&W.answers[s]));
        static const struct { const char *name, *help; } c[] = {
            {"engine_redis_entries_read_total", "Stream entries read (new, re-read or claimed)"},
            {"engine_redis_entries_claimed_total", "Entries claimed from a dead consumer"},
            {"engine_redis_dead_lettered_total", "Entries copied to the dead-letter stream"},
            {"engine_redis_reconnects_total", "Connections to Redis made again after a loss"},
            {"engine_redis_replies_total", "Replies written to their reply stream"},
        };
        unsigned long long v[] = {atomic_load(&W.entries_read), atomic_load(&W.entries_claimed),
                                  atomic_load(&W.dead_lettered), atomic_load(&W.reconnects),
                                  atomic_load(&W.replies)};
        for (int i = 0; i < 5; i++) {
            metrics_family(&b, c[i].name, "counter", c[i].help);
            buf_printf(&b, "%s %llu\n", c[i].name, v[i]);
        }
        pthread_mutex_lock(&W.mu);
        int inflight = W.inflight;
        pthread_mutex_unlock(&W.mu);
        metrics_family(&b, "engine_redis_inflight", "gauge", "Entries read and not yet acknowledged");
        buf_printf(&b, "engine_redis_inflight %d\n", inflight);
    } else {
        code = MHD_HTTP_NOT_FOUND;
        buf_add(&b, "not found\n", 10);
    }
    if (b.failed || !b.data) {
        free(b.data);
        return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- the reader ---------------------------------------------------------- */

/* Creates the group at the stream's start (an entry nobody read yet is owed
 * an answer even when Redis lost the group meanwhile); an existing one is
 * fine. 0 when the connection broke. */
static int ensure_group(redisContext *c)
{
    redisReply *r = redisCommand(c, "XGROUP CREATE %s %s 0 MKSTREAM", W.stream, W.group);
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9))
        fprintf(stderr, "engine worker: XGROUP CREATE: %s\n", r->str);
    freeReplyObject(r);
    return 1;
}

/* The model's metadata in the hash engine:model:<name>, for a gateway's /info
 * (every worker of a model writes the same values). 0 when the connection broke. */
static int publish_info(redisContext *c)
{
    buf labels = {0};
    buf_add(&labels, "[", 1);
    for (int i = 0; W.model && i < W.info.n_labels; i++) {
        const char *l = eng_model_label(W.model, i);
        if (i)
            buf_add(&labels, ",", 1);
        buf_json_str(&labels, l ? l : "", l ? strlen(l) : 0);
    }
    buf_add(&labels, "]", 1);
    char key[400];
    snprintf(key, sizeof key, "engine:model:%s", W.model_name);
    redisReply *r = redisCommand(
        c,
        "HSET %s arch %s input %s weights %s n_labels %d hidden %d embed_size %d layers %d "
        "max_positions %d image_size %d embed_normalize %d labels %s stream %s version %s",
        key, W.model ? W.info.arch : "null",
        W.info.input == ENG_INPUT_IMAGE ? "image" : "text", W.model ? W.info.weights : "none",
        W.model ? W.info.n_labels : 2, W.model ? W.info.hidden : 4,
        W.model ? W.info.embed_size : 4, W.info.layers,
        W.model ? W.info.max_positions : ENG__SCHED_NULL_POSITIONS, W.info.image_size,
        W.info.embed_normalize, labels.failed ? "[]" : labels.data, W.stream, eng_version());
    free(labels.data);
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "engine worker: HSET %s: %s\n", key, r->str);
    freeReplyObject(r);
    return 1;
}

/* The delivery count of each entry (XPENDING), pipelined; 0 when the
 * connection broke. */
static int delivery_counts(redisContext *c, const redisReply *entries, long long *out)
{
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        const char *id = e->type == REDIS_REPLY_ARRAY && e->elements && e->element[0]->str
                             ? e->element[0]->str
                             : "0-0";
        redisAppendCommand(c, "XPENDING %s %s %s %s 1", W.stream, W.group, id, id);
    }
    for (size_t i = 0; i < entries->elements; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            return 0;
        out[i] = 1;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 4)
            out[i] = r->element[0]->element[3]->integer;
        freeReplyObject(r);
    }
    return 1;
}

static void usage(FILE *f)
{
    fputs("usage: engine worker MODEL_FILE|--null --redis redis://HOST:PORT[/DB]\n"
          "         [--stream engine:requests] [--group engine] [--consumer NAME]\n"
          "         [--count 32] [--block-ms 100] [--claim-idle-ms 30000] [--max-deliveries 3]\n"
          "         [--max-inflight 256] [--max-input-bytes 8388608] [--connect-timeout-ms 5000]\n"
          "         [--model-name NAME] [--metrics-port PORT]\n"
          "         [--workers N] [--threads N] [--max-batch N] [--max-wait-us N]\n"
          "         [--null-batch-us N] [--zero-shot-threads 2]\n"
          "  serves the requests of a Redis stream (docs/REDIS.md); SIGTERM finishes\n"
          "  and acknowledges what it holds, then exits 0\n",
          f);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

int eng__cli_worker(int argc, char **argv)
{
    static const struct option opts[] = {
        {"redis", 1, 0, 'r'},          {"stream", 1, 0, 's'},        {"group", 1, 0, 'g'},
        {"consumer", 1, 0, 'c'},       {"count", 1, 0, 'n'},         {"block-ms", 1, 0, 'b'},
        {"claim-idle-ms", 1, 0, 'i'},  {"max-deliveries", 1, 0, 'd'}, {"max-inflight", 1, 0, 'f'},
        {"max-input-bytes", 1, 0, 'x'}, {"connect-timeout-ms", 1, 0, 'T'},
        {"model-name", 1, 0, 'm'},     {"metrics-port", 1, 0, 'p'},  {"workers", 1, 0, 'w'},
        {"threads", 1, 0, 't'},        {"max-batch", 1, 0, 'B'},     {"max-wait-us", 1, 0, 'W'},
        {"null-batch-us", 1, 0, 'N'},  {"null", 0, 0, '0'},          {"help", 0, 0, 'h'},
        {"zero-shot-threads", 1, 0, 'Z'},
        {0, 0, 0, 0}};
    const char *url = NULL;
    W.stream = "engine:requests";
    W.group = "engine";
    W.count = 32;
    W.block_ms = 100;
    W.claim_idle_ms = 30000;
    W.max_deliveries = 3;
    W.max_inflight = 256;
    W.max_input = 8u << 20;
    W.connect_ms = 5000;
    long metrics_port = 0, v;
    int zs_threads = SRV_ZS_THREADS;
    int null_model = 0;
    eng_sched_params sp = eng_sched_default_params();
    char consumer[300];
    char host[256] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(consumer, sizeof consumer, "%s-%d", host, (int)getpid());
    W.consumer = consumer;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int ok = 1;
        switch (o) {
        case 'r': url = optarg; break;
        case 's': W.stream = optarg; break;
        case 'g': W.group = optarg; break;
        case 'c': W.consumer = optarg; break;
        case 'm': W.model_name = optarg; break;
        case '0': null_model = 1; break;
        case 'h': usage(stdout); return 0;
        case 'n': ok = parse_long(optarg, 1, 4096, &v) && (W.count = (int)v); break;
        case 'b': ok = parse_long(optarg, 1, 60000, &v) && (W.block_ms = (int)v); break;
        case 'i': ok = parse_long(optarg, 1, 86400000, &v) && (W.claim_idle_ms = (int)v); break;
        case 'd': ok = parse_long(optarg, 1, 1000000, &v) && (W.max_deliveries = (int)v); break;
        case 'f': ok = parse_long(optarg, 1, 1 << 20, &v) && (W.max_inflight = (int)v); break;
        case 'x': ok = parse_long(optarg, 1, 1L << 30, &v) && (W.max_input = (size_t)v); break;
        case 'T': ok = parse_long(optarg, 0, 3600000, &v) && ((W.connect_ms = (int)v) || 1); break;
        case 'p': ok = parse_long(optarg, 1, 65535, &metrics_port); break;
        case 'w': ok = parse_long(optarg, 1, 1024, &v) && (sp.n_workers = (int)v); break;
        case 't': ok = parse_long(optarg, 1, 1024, &v) && (sp.threads_per_worker = (int)v); break;
        case 'B': ok = parse_long(optarg, 1, ENG_SCHED_MAX_BATCH, &v) && (sp.max_batch_size = (int)v); break;
        case 'W': ok = parse_long(optarg, 0, 10000000, &v) && ((sp.max_wait_us = v) || 1); break;
        case 'N': ok = parse_long(optarg, 0, 10000000, &v) && ((sp.null_batch_us = (int)v) || 1); break;
        case 'Z':
            if (!parse_long(optarg, 1, SRV_ZS_THREADS_MAX, &v)) {
                fprintf(stderr, "engine worker: --zero-shot-threads must be 1 to %d, not %s\n",
                        SRV_ZS_THREADS_MAX, optarg);
                return 2;
            }
            zs_threads = (int)v;
            break;
        default: ok = 0;
        }
        if (!ok) {
            if (o != '?')
                fprintf(stderr, "engine worker: bad value %s\n", optarg);
            usage(stderr);
            return 2;
        }
    }
    const char *file = optind < argc ? argv[optind] : NULL;
    if (!url || (!file) == !null_model || optind + (file != NULL) != argc) {
        fprintf(stderr, "engine worker: give a MODEL_FILE or --null, and --redis\n");
        usage(stderr);
        return 2;
    }
    if (!eng__redis_parse_url(url, &W.addr)) {
        fprintf(stderr, "engine worker: bad address %s (redis://HOST:PORT[/DB])\n", url);
        return 2;
    }
    snprintf(W.dead_stream, sizeof W.dead_stream, "%s:dead", W.stream);
    if (file && eng_model_load(file, NULL, &W.model)) {
        fprintf(stderr, "engine worker: %s\n", eng_last_error());
        return 4;
    }
    if (W.model)
        eng_model_get_info(W.model, &W.info);
    char name[256] = "null";
    if (file) {
        const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
        snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
    }
    if (!W.model_name)
        W.model_name = name;
    snprintf(W.m.name, sizeof W.m.name, "%s", W.model_name);
    W.m.model = W.model;   /* /metrics: the zero-shot label-set cache's counts */
    W.m.info = W.info;
    metrics_init(&W.m.metrics);
    if (W.max_inflight > sp.queue_capacity)
        sp.queue_capacity = W.max_inflight;   /* the scheduler never refuses an entry read */
    sp.model = W.model;

    char err[256];
    redisContext *c = eng__redis_connect(&W.addr, W.connect_ms, W.block_ms + 5000, err, sizeof err);
    redisContext *wc = c ? eng__redis_connect(&W.addr, W.connect_ms, 5000, err, sizeof err) : NULL;
    if (!c || !wc || !ensure_group(c) || !publish_info(c)) {
        fprintf(stderr, "engine worker: cannot reach Redis after %d ms: %s\n", W.connect_ms,
                c && !wc ? err : c ? c->errstr : err);
        redisFree(c);
        redisFree(wc);
        eng_model_free(W.model);
        return 3;
    }
    if (eng_sched_create(&sp, &W.sched)) {
        fprintf(stderr, "engine worker: %s\n", eng_last_error());
        redisFree(c);
        redisFree(wc);
        eng_model_free(W.model);
        return 4;
    }
    W.m.sched = W.sched;   /* the local backend's queue depth reads it */
    if (W.model && !strcmp(W.info.arch, "clip") &&
        !(W.zs_pool = srv_zs_pool_create(W.model, zs_threads))) {
        fprintf(stderr, "engine worker: cannot start the zero-shot threads\n");
        eng_sched_free(W.sched);
        redisFree(c);
        redisFree(wc);
        eng_model_free(W.model);
        return 4;
    }
    struct MHD_Daemon *mhd = NULL;
    if (metrics_port) {
        mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)metrics_port, NULL, NULL,
                               metrics_handler, NULL, MHD_OPTION_END);
        if (!mhd)
            fprintf(stderr, "engine worker: cannot serve /metrics on port %ld\n", metrics_port);
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pthread_t writer;
    pthread_create(&writer, NULL, writer_main, wc);
    fprintf(stderr, "engine worker: %s serving %s (group %s) as %s\n", W.model_name, W.stream,
            W.group, W.consumer);

    char hist_from[64] = "0", cursor[64] = "0-0";
    int history = 1;
    int64_t next_claim = 0;
    long long *deliv = malloc((size_t)W.count * sizeof *deliv);
    while (!stop_requested && deliv) {
        if (!c) {
            if (!(c = reconnect(NULL, "reader")))
                break;
            if (!ensure_group(c) || !publish_info(c)) {
                redisFree(c);
                c = NULL;
                continue;
            }
            history = 1;
            strcpy(hist_from, "0");
        }
        /* Room for more; the history pass waits until nothing is in flight,
         * since in-flight entries are in the history too. */
        pthread_mutex_lock(&W.mu);
        while (!stop_requested && (W.inflight >= W.max_inflight || (history && W.inflight))) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100000000;
            if (ts.tv_nsec >= 1000000000)
                ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&W.cv, &W.mu, &ts);
        }
        int room = W.max_inflight - W.inflight;
        pthread_mutex_unlock(&W.mu);
        if (stop_requested)
            break;
        int n = room < W.count ? room : W.count;
        redisReply *rep;
        const redisReply *entries = NULL;
        int claiming = 0;
        int64_t now = eng__redis_now_ms();
        if (history) {
            rep = redisCommand(c, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s %s", W.group,
                               W.consumer, n, W.stream, hist_from);
        } else if (now >= next_claim) {
            claiming = 1;
            rep = redisCommand(c, "XAUTOCLAIM %s %s %s %d %s COUNT %d", W.stream, W.group,
                               W.consumer, W.claim_idle_ms, cursor, n);
        } else {
            rep = redisCommand(c, "XREADGROUP GROUP %s %s COUNT %d BLOCK %d STREAMS %s >", W.group,
                               W.consumer, n, W.block_ms, W.stream);
        }
        if (!rep) {
            fprintf(stderr, "engine worker: Redis connection lost: %s\n", c->errstr);
            redisFree(c);
            c = NULL;
            continue;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            if (!strncmp(rep->str, "NOGROUP", 7)) {   /* Redis restarted without its data */
                ensure_group(c);
                publish_info(c);
            }
            else {
                fprintf(stderr, "engine worker: %s\n", rep->str);
                usleep(100000);
            }
            freeReplyObject(rep);
            continue;
        }
        if (claiming && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) {
            snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str ? rep->element[0]->str : "0-0");
            if (!strcmp(cursor, "0-0"))   /* a full pass: the next one in a while */
                next_claim = now + (W.claim_idle_ms / 4 > 50 ? W.claim_idle_ms / 4 : 50);
            entries = rep->element[1];
            atomic_fetch_add(&W.entries_claimed, entries->elements);
        } else if (!claiming && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
                   rep->element[0]->elements == 2) {
            entries = rep->element[0]->element[1];
        }
        if (history) {
            if (!entries || !entries->elements)
                history = 0;
            else {
                const redisReply *last = entries->element[entries->elements - 1];
                snprintf(hist_from, sizeof hist_from, "%s", last->element[0]->str);
            }
        }
        if (entries && entries->elements) {
            if (history || claiming) {
                if (!delivery_counts(c, entries, deliv)) {
                    freeReplyObject(rep);
                    redisFree(c);
                    c = NULL;
                    continue;
                }
            } else
                for (size_t i = 0; i < entries->elements; i++)
                    deliv[i] = 1;
            for (size_t i = 0; i < entries->elements; i++)
                handle_entry(entries->element[i], deliv[i]);
        }
        freeReplyObject(rep);
    }
    free(deliv);
    redisFree(c);
    /* Finish and acknowledge what is held: the scheduler and the zero-shot
     * threads complete every accepted request (a new label set takes what it
     * takes: the time limit below is Redis's), the writer sends every reply. */
    eng_sched_shutdown(W.sched);
    srv_zs_pool_free(W.zs_pool);
    int rc = 0;
    int64_t give_up = eng__redis_now_ms() + 30000;
    pthread_mutex_lock(&W.mu);
    while (W.inflight && eng__redis_now_ms() < give_up) {
        pthread_mutex_unlock(&W.mu);
        usleep(10000);
        pthread_mutex_lock(&W.mu);
    }
    if (W.inflight) {
        fprintf(stderr, "engine worker: %d entries left unacknowledged (Redis unreachable); "
                        "another worker will claim them\n", W.inflight);
        rc = 1;
    }
    W.writer_stop = 1;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    if (!rc)
        pthread_join(writer, NULL);
    if (mhd)
        MHD_stop_daemon(mhd);
    if (!rc) {
        eng_sched_free(W.sched);
        eng_model_free(W.model);
    }
    return rc;
}
