/* backend_redis.c: the gateway backend of `engine serve --backend redis://...`.
 * No model is loaded here: each item of a request becomes an entry on its
 * model's request stream (docs/REDIS.md), asking for the raw result, so that
 * the answer is formatted here from the very floats a local server would
 * have (the same bytes). Replies come back on one reply stream per gateway
 * process, read by one thread, and are matched to the waiting items by id:
 * "<slot>-<generation>" in a table of waiting items, so a second reply for
 * the same entry (delivery is at least once) finds its slot taken or reused
 * under another generation and is dropped.
 *
 * Threads and Redis connections (a hiredis context is not thread-safe):
 *  - each HTTP epoll thread writes its requests' entries on its own
 *    connection (a thread-specific one, pipelined per request);
 *  - the reader thread reads the reply stream (XREAD BLOCK), deletes what it
 *    read, and answers the items whose time is up: past their deadline plus
 *    DEADLINE_GRACE_MS with 504 (a worker would have said timeout), and
 *    without a deadline after --reply-timeout-ms with 503 (no worker).
 * The models and their metadata (/info, KServe model metadata) come from the
 * hashes engine:model:<name> that workers write at start. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "redis_common.h"
#include "serve.h"

/* A worker answers an item queued past its deadline with timeout itself; the
 * gateway waits this much longer for that answer (or for a result computed
 * just in time) before answering 504 on its own: a dead worker's item. */
enum { DEADLINE_GRACE_MS = 1000 };

typedef struct {
    char *stream;              /* the workers' request stream */
    char *arch, *weights;      /* info's strings */
    char **label_names;        /* owned; m->labels points at them */
    _Atomic uint64_t waiting;  /* items sent and not answered */
} gw_model;

typedef struct {
    srv_item *it;              /* NULL: free */
    uint32_t gen;
    int64_t expire_ns;
    eng_status expire_st;      /* ENG_ERR_TIMEOUT (had a deadline) or ENG_ERR_NO_DEVICE */
} gw_slot;

static struct {
    eng_redis_addr addr;
    char reply[200];           /* this gateway's reply stream */
    pthread_key_t conn_key;    /* each HTTP thread's redisContext */
    int key_made;
    pthread_mutex_t mu;        /* the slot table */
    gw_slot *slots;
    uint32_t *free_ids, n_free, cap, high;   /* slots [0, high) have been used */
    pthread_t reader;
    int reader_started;
    _Atomic int stop;
    _Atomic uint64_t sent, answered, duplicates, malformed, expired, reconnects;
} G = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- the slot table -------------------------------------------------------- */

/* A slot for it (its generation in *gen), or -1 when the table is full. */
static int64_t slot_put(srv_item *it, int64_t expire_ns, eng_status expire_st, uint32_t *gen)
{
    pthread_mutex_lock(&G.mu);
    int64_t id = -1;
    if (G.n_free) {
        id = G.free_ids[--G.n_free];
    } else if (G.high < G.cap) {
        id = G.high++;
    }
    if (id >= 0) {
        G.slots[id] = (gw_slot){it, G.slots[id].gen + 1, expire_ns, expire_st};
        *gen = G.slots[id].gen;
    }
    pthread_mutex_unlock(&G.mu);
    return id;
}

/* Takes the item out of slot id if it is still that generation's; NULL when
 * it was answered already (a duplicate) or the id is not one of ours. */
static srv_item *slot_take(uint32_t id, uint32_t gen)
{
    srv_item *it = NULL;
    pthread_mutex_lock(&G.mu);
    if (id < G.high && G.slots[id].it && G.slots[id].gen == gen) {
        it = G.slots[id].it;
        G.slots[id].it = NULL;
        G.free_ids[G.n_free++] = id;
    }
    pthread_mutex_unlock(&G.mu);
    return it;
}

static void item_answered(srv_item *it, int batch_size, int batch_tokens)
{
    gw_model *gm = it->r->m->be;
    atomic_fetch_sub(&gm->waiting, 1);
    srv_item_done(it, batch_size, batch_tokens);
}

/* Answers the items whose time is up (outside the lock: answering resumes
 * connections). */
static void expire_items(int64_t now)
{
    for (;;) {
        srv_item *due[64];
        eng_status st[64];
        int n = 0;
        pthread_mutex_lock(&G.mu);
        for (uint32_t i = 0; i < G.high && n < 64; i++)
            if (G.slots[i].it && G.slots[i].expire_ns <= now) {
                due[n] = G.slots[i].it;
                st[n++] = G.slots[i].expire_st;
                G.slots[i].it = NULL;
                G.free_ids[G.n_free++] = i;
            }
        pthread_mutex_unlock(&G.mu);
        for (int k = 0; k < n; k++) {
            due[k]->st = st[k];
            srv_req *r = due[k]->r;
            if (due[k] == &r->zs_item) {   /* (no deadline: ENG_ERR_NO_DEVICE) */
                r->zs_st = st[k];
                snprintf(r->zs_why, sizeof r->zs_why,
                         "Zero-shot scores: no worker answered in time");
            }
            atomic_fetch_add(&G.expired, 1);
            item_answered(due[k], 0, 0);
        }
        if (n < 64)
            return;
    }
}

/* ---- sending ----------------------------------------------------------------- */

static void free_conn(void *c) { redisFree(c); }

/* The calling thread's connection, made on first use; NULL (err set) when
 * Redis cannot be reached now. */
static redisContext *thread_conn(char *err, size_t err_size)
{
    redisContext *c = pthread_getspecific(G.conn_key);
    if (!c && (c = eng__redis_connect(&G.addr, 0, 5000, err, err_size)))
        pthread_setspecific(G.conn_key, c);
    return c;
}

static void drop_conn(redisContext *c)
{
    redisFree(c);
    pthread_setspecific(G.conn_key, NULL);
}

/* What an item's entry needs besides the item. */
typedef struct {
    const char *task, *deadline, *prio;
    int tokenize;
    const buf *zs;   /* a zero_shot entry's labels, label_ids and input (the features) */
} entry_args;

/* Appends the zero_shot entry of r's scores (docs/REDIS.md) to c's pipeline. */
static void append_scores(redisContext *c, srv_req *r, const char *id, const entry_args *e)
{
    srv_model *m = r->m;
    gw_model *gm = m->be;
    const char *a[20] = {"XADD", gm->stream, "*", "id", id, "model", m->name, "task",
                         "zero_shot", "reply_to", G.reply, "raw", "1", "input", e->zs[2].data,
                         "labels", e->zs[0].data};
    size_t l[20];
    int k = 13;
    for (int j = 0; j < k; j++)
        l[j] = strlen(a[j]);
    l[k++] = 5, l[k++] = e->zs[2].len;   /* binary, as the next ones */
    l[k++] = 6, l[k++] = e->zs[0].len;
    if (r->zs.ids)
        a[k] = "label_ids", l[k++] = 9, a[k] = e->zs[1].data, l[k++] = e->zs[1].len;
    if (r->zs.templ)
        a[k] = "template", l[k++] = 8, a[k] = r->zs.templ, l[k++] = strlen(r->zs.templ);
    redisAppendCommandArgv(c, k, a, l);
}

/* Appends the XADD of item i (its id "<slot>-<gen>") to c's pipeline: r's
 * scores when e->zs is set. */
static void append_entry(redisContext *c, srv_req *r, int i, uint32_t slot, uint32_t gen,
                         const entry_args *e)
{
    srv_model *m = r->m;
    gw_model *gm = m->be;
    char id[32];
    snprintf(id, sizeof id, "%u-%u", (unsigned)slot, (unsigned)gen);
    if (e->zs) {
        append_scores(c, r, id, e);
        return;
    }
    srv_item *it = &r->items[i];
    const char *a[24] = {"XADD", gm->stream, "*", "id", id, "model", m->name, "task", e->task,
                         "input", it->data, "reply_to", G.reply, "raw", "1", "priority", e->prio};
    size_t l[24];
    int k = 17;
    if (e->tokenize)
        a[k++] = "format", a[k++] = "tei", a[k++] = "special", a[k++] = r->skip_special ? "0" : "1";
    if (!r->truncate)
        a[k++] = "truncate", a[k++] = "0";
    if (e->deadline[0])
        a[k++] = "deadline_ms", a[k++] = e->deadline;
    for (int j = 0; j < k; j++)   /* the input (10) is bytes: an image's hold NULs, end without one */
        l[j] = j == 10 ? it->len : strlen(a[j]);
    redisAppendCommandArgv(c, k, a, l);
}

/* Fails item i (in slot, gen; i < 0: r's scores) unless the reader answered
 * it already (its XADD went through before the connection broke). */
static void fail_sent(srv_req *r, uint32_t slot, uint32_t gen, int i, const char *err)
{
    if (slot_take(slot, gen)) {
        atomic_fetch_sub(&((gw_model *)r->m->be)->waiting, 1);
        srv_item_unhold(r);
        if (i < 0)
            srv_fail(r, 503, "unhealthy", "Zero-shot scores: Redis: %s", err);
        else
            srv_fail(r, 503, "unhealthy", "Input %d: Redis: %s", i, err);
    }
}

/* Waits for the XADD replies of the sent entries (idx[k] the item of slot
 * ids[k] / gens[k], -1 for r's scores); a connection found broken (Redis
 * restarted since this thread's last request) is made again once and the
 * rest sent again: an entry that went through twice is answered twice, and
 * the second answer dropped. What could not be sent fails r. */
static void send_entries(redisContext *c, srv_req *r, int sent, const uint32_t *ids,
                         const uint32_t *gens, const int *idx, const entry_args *e)
{
    char err[256] = "";
    int k = 0, retried = 0;
    while (k < sent) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) == REDIS_OK) {
            if (rep->type == REDIS_REPLY_ERROR) {
                snprintf(err, sizeof err, "XADD: %s", rep->str);
                fail_sent(r, ids[k], gens[k], idx[k], err);
            } else {
                atomic_fetch_add(&G.sent, 1);
            }
            freeReplyObject(rep);
            k++;
            continue;
        }
        snprintf(err, sizeof err, "%s", c->errstr);
        drop_conn(c);
        if (retried++ || !(c = thread_conn(err, sizeof err)))
            break;
        for (int j = k; j < sent; j++)
            append_entry(c, r, idx[j], ids[j], gens[j], e);
    }
    for (; k < sent; k++)
        fail_sent(r, ids[k], gens[k], idx[k], err);
}

static void gw_submit(srv_req *r)
{
    gw_model *gm = r->m->be;
    char err[256] = "";
    redisContext *c = thread_conn(err, sizeof err);
    if (!c) {
        srv_fail(r, 503, "unhealthy", "Redis is unreachable: %s", err);
        return;
    }
    uint32_t *ids = malloc((size_t)r->n * sizeof *ids), *gens = malloc((size_t)r->n * sizeof *gens);
    int *idx = malloc((size_t)r->n * sizeof *idx);
    if (!ids || !gens || !idx) {
        free(ids), free(gens), free(idx);
        srv_fail(r, 500, "backend", "out of memory");
        return;
    }
    /* The worker's deadline is the local scheduler's queueing deadline. */
    char deadline[24] = "", prio[8];
    int64_t now = srv_now_ns(), expire;
    eng_status expire_st;
    if (r->timeout_us) {
        snprintf(deadline, sizeof deadline, "%lld",
                 (long long)(eng__redis_now_ms() + (r->timeout_us + 999) / 1000));
        expire = now + r->timeout_us * 1000 + (int64_t)DEADLINE_GRACE_MS * 1000000;
        expire_st = ENG_ERR_TIMEOUT;
    } else {
        expire = now + r->s->o.reply_timeout_ms * 1000000;
        expire_st = ENG_ERR_NO_DEVICE;
    }
    snprintf(prio, sizeof prio, "%d", r->priority);
    int tokenize = r->route == R_TOKENIZE;
    entry_args e = {tokenize ? "tokenize" : r->task == ENG_TASK_EMBED ? "embed" : "classify",
                    deadline, prio, tokenize, NULL};
    int sent = 0;
    for (int i = 0; i < r->n; i++) {
        srv_item *it = &r->items[i];
        if (it->cached)
            continue;
        /* Held before the reader can see it (it may expire it at once). */
        srv_item_hold(r);
        atomic_fetch_add(&gm->waiting, 1);
        uint32_t gen = 0;
        int64_t slot = slot_put(it, expire, expire_st, &gen);
        if (slot < 0) {
            atomic_fetch_sub(&gm->waiting, 1);
            srv_item_unhold(r);
            srv_fail_status(r, i, ENG_ERR_OVERLOADED);
            break;
        }
        append_entry(c, r, i, (uint32_t)slot, gen, &e);
        ids[sent] = (uint32_t)slot;
        gens[sent] = gen;
        idx[sent++] = i;
    }
    send_entries(c, r, sent, ids, gens, idx, &e);
    free(ids);
    free(gens);
    free(idx);
}

/* /zero-shot: the images' features and the label set as one zero_shot
 * entry, which a worker scores on its own context (the library's label-set
 * cache is the worker's model's); the reply's raw result is the scores. It
 * has no deadline (a local server scores without one): it expires after
 * --reply-timeout-ms. */
static int gw_zero_shot(srv_req *r)
{
    gw_model *gm = r->m->be;
    srv_item *it = &r->zs_item;
    it->r = r;
    buf zs[3] = {{0}};   /* labels, label_ids, input */
    eng__redis_zero_shot_put(&zs[0], &zs[1], &zs[2], &r->zs, r->vals,
                             (size_t)r->n * (size_t)r->width);
    char err[256] = "";
    redisContext *c = NULL;
    int suspended = 0;
    if (zs[0].failed || zs[1].failed || zs[2].failed) {
        r->zs_st = ENG_ERR_NOMEM;
        snprintf(r->zs_why, sizeof r->zs_why, "out of memory");
    } else if (!(c = thread_conn(err, sizeof err))) {
        srv_fail(r, 503, "unhealthy", "Redis is unreachable: %s", err);
    } else {
        suspended = 1;   /* (srv_suspend failing answers r on resuming too) */
        if (srv_suspend(r)) {
            srv_item_hold(r);
            atomic_fetch_add(&gm->waiting, 1);
            uint32_t gen = 0;
            int64_t slot = slot_put(it, srv_now_ns() + r->s->o.reply_timeout_ms * 1000000,
                                    ENG_ERR_NO_DEVICE, &gen);
            if (slot < 0) {
                atomic_fetch_sub(&gm->waiting, 1);
                srv_item_unhold(r);
                srv_fail_status(r, 0, ENG_ERR_OVERLOADED);
            } else {
                const entry_args e = {.zs = zs};
                const uint32_t id = (uint32_t)slot;
                const int scores = -1;
                append_entry(c, r, scores, id, gen, &e);
                send_entries(c, r, 1, &id, &gen, &scores, &e);
            }
            srv_release(r);
        }
    }
    for (int i = 0; i < 3; i++)
        buf_free(&zs[i]);
    return !suspended;
}

/* ---- the reader ---------------------------------------------------------------- */

/* r's zero-shot scores from a worker's reply, into r->zs_probs and
 * r->zs_top, or r->zs_st and why not. */
static void scores_reply(srv_req *r, const eng_redis_reply *rep)
{
    const int L = r->zs.n_labels;
    const size_t np = (size_t)r->n * L;
    eng_redis_raw h;
    r->zs_st = rep->st;
    if (rep->dead_letter) {
        char why[200];
        eng__redis_reply_error(rep, why, sizeof why);
        snprintf(r->zs_why, sizeof r->zs_why, "the workers gave up on the zero-shot scores: %s",
                 why);
        return;
    }
    if (rep->st) {   /* the library's reason, as a local server gives it */
        eng__redis_reply_error(rep, r->zs_why, sizeof r->zs_why);
        return;
    }
    int ok = np + r->n <= INT32_MAX &&
             eng__redis_raw_get(rep->raw.p, rep->raw.n, &h, r->zs_probs, (int)(np + r->n)) &&
             (size_t)h.n_out == np;
    for (int i = 0; ok && i < r->n; i++) {   /* each image's best label, exact as a float */
        const float t = r->zs_probs[np + i];
        ok = t >= 0 && t < L && t == (float)(int)t;
        r->zs_top[i] = ok ? (int)t : 0;
    }
    if (!ok) {   /* a worker of another version */
        atomic_fetch_add(&G.malformed, 1);
        r->zs_st = ENG_ERR_INTERNAL;
        snprintf(r->zs_why, sizeof r->zs_why, "a worker answered zero-shot without scores");
    }
}

static void handle_reply(const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) {
        atomic_fetch_add(&G.malformed, 1);
        return;
    }
    size_t n = 0;
    eng_redis_str *kv = eng__redis_kv(e->element[1], &n);
    eng_redis_reply rep;
    char id[32];
    unsigned slot, gen;
    char tail;
    if (!kv || !eng__redis_parse_reply(kv, n, &rep) || rep.id.n >= sizeof id ||
        (memcpy(id, rep.id.p, rep.id.n), id[rep.id.n] = '\0',
         sscanf(id, "%u-%u%c", &slot, &gen, &tail) != 2)) {
        free(kv);
        atomic_fetch_add(&G.malformed, 1);
        return;
    }
    srv_item *it = slot_take(slot, gen);
    if (!it) {
        free(kv);
        atomic_fetch_add(&G.duplicates, 1);
        return;
    }
    atomic_fetch_add(&G.answered, 1);
    eng_redis_raw h = {0};
    it->st = rep.st;
    if (it == &it->r->zs_item) {
        scores_reply(it->r, &rep);
    } else if (rep.dead_letter) {
        char why[200];
        eng__redis_reply_error(&rep, why, sizeof why);
        if (asprintf(&it->why, "the workers gave up on it: %s", why) < 0)
            it->why = NULL;
    } else if (rep.st == ENG_OK && it->r->route == R_TOKENIZE) {
        if (!(it->json = strndup(rep.body.p ? rep.body.p : "[]", rep.body.n)))
            it->st = ENG_ERR_NOMEM;
    } else if (rep.st == ENG_OK) {
        if (eng__redis_raw_get(rep.raw.p, rep.raw.n, &h, it->vals, it->r->width)) {
            it->label = h.label;
            it->n_tokens = h.n_tokens;
            it->queue_ns = h.queue_ns;
            it->compute_ns = h.compute_ns;
        } else {   /* ok without a usable raw result: a worker of another version */
            atomic_fetch_add(&G.malformed, 1);
            it->st = ENG_ERR_INTERNAL;
        }
    }
    free(kv);
    item_answered(it, h.batch_size, h.batch_tokens);
}

static void *reader_main(void *arg)
{
    redisContext *c = NULL;
    char last[64] = "0-0", err[256];
    int64_t next_scan = 0;
    int connected = 0;
    while (!atomic_load(&G.stop)) {
        int64_t now = srv_now_ns();
        if (now >= next_scan) {
            expire_items(now);
            next_scan = now + 10 * 1000000;
        }
        if (!c) {
            if (!(c = eng__redis_connect(&G.addr, 1000, 5000, err, sizeof err)))
                continue;   /* expiry goes on meanwhile */
            if (connected)
                atomic_fetch_add(&G.reconnects, 1);
            connected = 1;
        }
        redisReply *rep = redisCommand(c, "XREAD COUNT 512 BLOCK 20 STREAMS %s %s", G.reply, last);
        if (!rep) {
            fprintf(stderr, "engine serve: gateway: Redis connection lost: %s\n", c->errstr);
            redisFree(c);
            c = NULL;
            continue;
        }
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
            rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2) {
            const redisReply *es = rep->element[0]->element[1];
            /* What was read is deleted: the stream holds only unread replies. */
            const char **a = malloc((es->elements + 2) * sizeof *a);
            size_t *l = malloc((es->elements + 2) * sizeof *l);
            int k = 2;
            for (size_t i = 0; i < es->elements; i++) {
                const redisReply *e = es->element[i];
                if (e->type == REDIS_REPLY_ARRAY && e->elements && e->element[0]->str) {
                    snprintf(last, sizeof last, "%s", e->element[0]->str);
                    if (a && l)
                        a[k] = e->element[0]->str, l[k++] = e->element[0]->len;
                }
                handle_reply(e);
            }
            if (a && l && k > 2) {
                a[0] = "XDEL", l[0] = 4, a[1] = G.reply, l[1] = strlen(G.reply);
                redisReply *d = redisCommandArgv(c, k, a, l);
                if (d)
                    freeReplyObject(d);
            }
            free(a);
            free(l);
        }
        freeReplyObject(rep);
    }
    if (c) {
        redisReply *d = redisCommand(c, "DEL %s", G.reply);
        if (d)
            freeReplyObject(d);
        redisFree(c);
    }
    return arg;
}

/* ---- the models' metadata ------------------------------------------------------- */

static char *str_of(eng_redis_str v, const char *dflt)
{
    return v.p ? strndup(v.p, v.n) : strdup(dflt);
}

static int int_field(const eng_redis_str *kv, size_t n, const char *name)
{
    eng_redis_str v = eng__redis_find(kv, n, name);
    char tmp[24];
    if (!v.p || v.n >= sizeof tmp)
        return 0;
    memcpy(tmp, v.p, v.n);
    tmp[v.n] = '\0';
    return atoi(tmp);
}

/* Fills m from the hash a worker wrote; 1 done, 0 not there yet, -1 bad. */
static int read_meta(redisContext *c, srv_model *m)
{
    redisReply *rep = redisCommand(c, "HGETALL engine:model:%s", m->name);
    if (!rep)
        return -1;
    size_t n = 0;
    eng_redis_str *kv = rep->elements ? eng__redis_kv(rep, &n) : NULL;
    if (!kv) {
        int empty = rep->type == REDIS_REPLY_ARRAY && rep->elements == 0;
        freeReplyObject(rep);
        return empty ? 0 : -1;
    }
    gw_model *gm = m->be;
    gm->stream = str_of(eng__redis_find(kv, n, "stream"), "engine:requests");
    gm->arch = str_of(eng__redis_find(kv, n, "arch"), "unknown");
    gm->weights = str_of(eng__redis_find(kv, n, "weights"), "unknown");
    eng_redis_str input = eng__redis_find(kv, n, "input"),
                  labels = eng__redis_find(kv, n, "labels");
    m->info.arch = gm->arch;
    m->info.weights = gm->weights;
    m->info.input = input.n == 5 && !memcmp(input.p, "image", 5) ? ENG_INPUT_IMAGE : ENG_INPUT_TEXT;
    m->info.n_labels = int_field(kv, n, "n_labels");
    m->info.hidden = int_field(kv, n, "hidden");
    m->info.layers = int_field(kv, n, "layers");
    m->info.max_positions = int_field(kv, n, "max_positions");
    m->info.image_size = int_field(kv, n, "image_size");
    m->info.embed_normalize = int_field(kv, n, "embed_normalize");
    /* CLIP's image features are projection-sized; a worker older than the
     * field had only text models, whose embeddings are hidden-sized. */
    m->info.embed_size = int_field(kv, n, "embed_size");
    if (m->info.embed_size <= 0)
        m->info.embed_size = m->info.hidden;
    int bad = m->info.n_labels < 0 || m->info.n_labels > 1000000 || m->info.hidden <= 0 ||
              !gm->stream || !gm->arch || !gm->weights;
    size_t nl = (size_t)(m->info.n_labels > 0 ? m->info.n_labels : 1);
    gm->label_names = bad ? NULL : calloc(nl, sizeof *gm->label_names);
    m->labels = bad ? NULL : calloc(nl, sizeof *m->labels);
    cJSON *arr = labels.p ? cJSON_ParseWithLength(labels.p, labels.n) : NULL;
    for (int i = 0; m->labels && gm->label_names && i < m->info.n_labels; i++) {
        cJSON *l = cJSON_GetArrayItem(arr, i);
        /* An empty name is a label the model file has no name for: LABEL_i. */
        if (cJSON_IsString(l) && l->valuestring[0])
            m->labels[i] = gm->label_names[i] = strdup(l->valuestring);
    }
    cJSON_Delete(arr);
    free(kv);
    freeReplyObject(rep);
    if (bad || !m->labels || !gm->label_names)
        return -1;
    m->width_classify = 2 * m->info.n_labels;
    m->width_embed = m->info.embed_size;
    return 1;
}

/* The models whose workers read --stream, by name, when none was named. */
static int discover(redisContext *c, srv *s)
{
    char cursor[32] = "0";
    do {
        redisReply *rep = redisCommand(c, "SCAN %s MATCH engine:model:* COUNT 1000", cursor);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            if (rep)
                freeReplyObject(rep);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        const redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const char *name = keys->element[i]->str + strlen("engine:model:");
            redisReply *st = redisCommand(c, "HGET %s stream", keys->element[i]->str);
            int ours = st && st->type == REDIS_REPLY_STRING && !strcmp(st->str, s->o.stream);
            if (st)
                freeReplyObject(st);
            if (!ours || srv_find_model(s, name, strlen(name)))
                continue;
            srv_model *more = realloc(s->models, (size_t)(s->n_models + 1) * sizeof *more);
            if (!more)
                break;
            s->models = more;
            srv_model *m = memset(&s->models[s->n_models++], 0, sizeof *m);
            snprintf(m->name, sizeof m->name, "%s", name);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0"));
    /* By name: the first is the default model. */
    for (int i = 1; i < s->n_models; i++)
        for (int j = i; j > 0 && strcmp(s->models[j - 1].name, s->models[j].name) > 0; j--) {
            srv_model t = s->models[j];
            s->models[j] = s->models[j - 1];
            s->models[j - 1] = t;
        }
    return 0;
}

static int gw_prepare(srv *s)
{
    if (!eng__redis_parse_url(s->o.backend, &G.addr)) {
        fprintf(stderr, "engine serve: bad --backend %s (redis://HOST:PORT[/DB])\n", s->o.backend);
        return -1;
    }
    if (s->o.reply_timeout_ms < 1) {
        fprintf(stderr, "engine serve: --reply-timeout-ms must be at least 1\n");
        return -1;
    }
    char err[256], host[128] = "host";
    int64_t give_up = srv_now_ns() + s->o.connect_timeout_ms * 1000000;
    redisContext *c = eng__redis_connect(&G.addr, (int)s->o.connect_timeout_ms, 5000, err, sizeof err);
    if (!c) {
        fprintf(stderr, "engine serve: cannot reach Redis after %lld ms: %s\n",
                (long long)s->o.connect_timeout_ms, err);
        return -1;
    }
    gethostname(host, sizeof host - 1);
    snprintf(G.reply, sizeof G.reply, "engine:reply:%s-%d-%llx", host, (int)getpid(),
             (unsigned long long)s->t0_ns);
    /* Every model must have a worker's metadata: wait for it (bounded). */
    int rc = 0, named = s->n_models > 0;
    for (;;) {
        if (!named && (rc = discover(c, s)))
            break;
        int missing = !s->n_models;
        for (int i = 0; i < s->n_models && !rc; i++) {
            srv_model *m = &s->models[i];
            if (m->labels)
                continue;
            if (!m->be && !(m->be = calloc(1, sizeof(gw_model)))) {
                rc = -1;
                break;
            }
            int got = read_meta(c, m);
            if (got < 0) {
                fprintf(stderr, "engine serve: engine:model:%s: unreadable metadata\n", m->name);
                rc = -1;
            }
            missing |= got == 0;
        }
        if (rc || !missing)
            break;
        if (srv_now_ns() >= give_up) {
            fprintf(stderr, "engine serve: no worker published %s%s within %lld ms "
                            "(start `engine worker --redis ...` first)\n",
                    s->n_models ? "the metadata of every model named" : "a model on stream ",
                    s->n_models ? "" : s->o.stream, (long long)s->o.connect_timeout_ms);
            rc = -1;
            break;
        }
        usleep(100000);
    }
    redisFree(c);
    if (rc)
        return -1;
    G.cap = (uint32_t)s->o.max_connections * (uint32_t)s->o.max_client_batch;
    G.slots = calloc(G.cap, sizeof *G.slots);
    G.free_ids = malloc(G.cap * sizeof *G.free_ids);
    if (!G.slots || !G.free_ids || pthread_key_create(&G.conn_key, free_conn)) {
        fprintf(stderr, "engine serve: out of memory\n");
        return -1;
    }
    G.key_made = 1;
    for (int i = 0; i < s->n_models; i++) {
        gw_model *gm = s->models[i].be;
        fprintf(stderr, "engine serve: model %s: %s, %s weights, served by the workers of %s\n",
                s->models[i].name, s->models[i].info.arch, s->models[i].info.weights, gm->stream);
    }
    fprintf(stderr, "engine serve: gateway: replies on %s\n", G.reply);
    return 0;
}

static int gw_open(srv *s)
{
    if (pthread_create(&G.reader, NULL, reader_main, NULL)) {
        fprintf(stderr, "engine serve: cannot start the reply reader: %s\n", strerror(errno));
        return -1;
    }
    G.reader_started = 1;
    return 0;
}

/* /tokenize through the workers (task tokenize, format tei): each text's
 * list comes back as its reply's body. */
static int gw_tokenize(srv_req *r, buf *out)
{
    if (!strcmp(r->m->info.arch, "null")) {   /* as a local server answers */
        srv_fail(r, 422, "validation", "the null model has no vocabulary");
        return 1;
    }
    for (int i = 0; i < r->n; i++)
        r->items[i].r = r;
    if (srv_suspend(r)) {
        gw_submit(r);
        srv_release(r);
    }
    return 0;
}

static uint64_t gw_queue_depth(srv_model *m) { return atomic_load(&((gw_model *)m->be)->waiting); }

static void gw_metrics(srv *s, buf *o)
{
    static const struct { const char *name, *help; _Atomic uint64_t *v; } c[] = {
        {"engine_gateway_entries_sent_total", "Items written to a request stream", &G.sent},
        {"engine_gateway_replies_total", "Replies matched to a waiting item", &G.answered},
        {"engine_gateway_replies_duplicate_total",
         "Replies for an item answered already (at least once delivery), dropped", &G.duplicates},
        {"engine_gateway_replies_malformed_total",
         "Reply entries without an id or status, or ok without a raw result", &G.malformed},
        {"engine_gateway_expired_total", "Items no worker answered in time (503 or 504)",
         &G.expired},
        {"engine_redis_reconnects_total", "Connections to Redis made again after a loss",
         &G.reconnects},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        metrics_family(o, c[i].name, "counter", c[i].help);
        buf_printf(o, "%s %llu\n", c[i].name, (unsigned long long)atomic_load(c[i].v));
    }
}

static void gw_close(srv *s)
{
    if (G.reader_started) {
        atomic_store(&G.stop, 1);
        pthread_join(G.reader, NULL);
    }
    if (G.key_made)
        pthread_key_delete(G.conn_key);
    for (int i = 0; s->models && i < s->n_models; i++) {
        gw_model *gm = s->models[i].be;
        for (int k = 0; gm && gm->label_names && k < s->models[i].info.n_labels; k++)
            free(gm->label_names[k]);
        if (gm) {
            free(gm->label_names);
            free(gm->stream);
            free(gm->arch);
            free(gm->weights);
        }
        free(gm);
        free(s->models[i].labels);
    }
    free(G.slots);
    free(G.free_ids);
}

const srv_backend srv_backend_redis = {
    .name = "redis",
    .prepare = gw_prepare,
    .open = gw_open,
    .submit = gw_submit,
    .tokenize = gw_tokenize,
    .zero_shot = gw_zero_shot,
    .queue_depth = gw_queue_depth,
    .metrics = gw_metrics,
    .close = gw_close,
};
