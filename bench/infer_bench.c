/* infer_bench.c: build/infer-bench, throughput and latency of inference with
 * and without the batching scheduler (issue 3).
 *
 *   infer-bench --model FILE|null --input FILE [--mode single|batch|stream|all]
 *               [--batch N] [--concurrency N,N,...] [--rate R] [--duration S]
 *               [--workers N] [--threads N] [--max-wait-us US] [--queue N]
 *               [--idle-spin-us US] [--cpus LIST] [--bound-us US] [--plot FILE.svg|.png] [--json]
 *               [--device cpu|cuda] [--precision fp32|tf32|fp16|bf16]
 *
 * single: one request at a time, batch 1, no scheduler. batch: offline, the
 * input in batches of N, no scheduler. stream: through the scheduler, N
 * closed-loop clients (each waits on a ticket before its next request) for
 * each N of --concurrency; with --rate, one open-loop generator instead, with
 * Poisson arrivals at R requests/s and completion callbacks, latency measured
 * from the intended arrival (so a lagging generator cannot hide queueing).
 * Every stream run's p99 latency is compared to a bound: --bound-us, else
 * max(50 us, 2 x (max_wait + the run's p99 batch compute time)). Every mode
 * tokenizes inside the timed region.
 * --model null runs everything with the scheduler's null model, which answers
 * at once, to measure the scheduling machinery itself.
 *
 * Input, text models: a TSV with a header (SST-2's dev.tsv: the text before
 * the TAB), or any text file with one item per line. Image models: a folder
 * (its *.jpg, *.jpeg and *.png, sorted by name) or a text file with one image
 * path per line; every file is read into memory once, before any timing, and
 * the requests carry the encoded bytes (decoding is part of every request).
 * For image models the table also gives the decode+preprocess share: one
 * thread decoding every input once, against the single mode's time per image.
 * --device and --precision go to every context (single, batch and the
 * scheduler's workers); a device that is not there fails with its reason.
 * Output: a table, or with --json one JSON document with a "runs" list; a
 * progress line on stderr. requests/s counts the requests that succeeded;
 * "failed" those that ran and failed (an invalid text, a corrupt image). A
 * run in which no request succeeded is an error: exit status 1. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "benchutil.h"
#include "bgemm.h"
#include "engine.h"
#include "image.h"
#include "vision.h"
#include "sched_backend.h"
#include "sched_hist.h"
#include "infer_http.h"
#include "infer_redis.h"

#define MAX_CONC 32
#define MAX_RUNS (MAX_CONC + 4)
#define MAX_CB_THREADS 64       /* threads that may run completion callbacks */
#define PROGRESS_NS 500000000   /* progress line period */
#define SPIN_NS 50000           /* the generator sleeps only for longer gaps */
#define MAX_ARRIVALS 50000000   /* precomputed open-loop arrivals (8 bytes each) */

typedef struct {
    const char *model_path, *input, *mode, *cpus, *plot, *device, *precision;
    const char *url;      /* drive an `engine serve` at this URL instead of a scheduler */
    const char *redis;    /* or `engine worker`s through this Redis (stream, task) */
    const char *redis_stream, *redis_task;
    int url_conns;        /* open loop over HTTP: connections sending the arrivals */
    eng_ctx_params ctx;   /* device and precision of every context */
    int batch, workers, threads, queue, idle_spin_us, json;
    int conc[MAX_CONC], n_conc;
    double rate, duration, bound_us;
    int64_t max_wait_us;
} options;

typedef struct {
    char mode[16];
    int concurrency, batch;
    double rps;                       /* requests that succeeded, per second */
    double p50, p95, p99, max;        /* latency in ms */
    double mean_batch;
    uint64_t rejected, timed_out, failed;
    double queue_p99_us;              /* stream only */
    double compute_p50_us, compute_p99_us, bound_us;
    int open_loop;
} run_result;

static options opt;
static eng_model *model;
static eng__backend backend;
static char **items;
static size_t *item_len;
static int n_items;
static eng_task task;   /* classify, or embed for a model without labels */
static int images;      /* an image model: items are encoded image files */
static double decode_ms; /* image models: one thread decoding each input once */
static run_result runs[MAX_RUNS];
static int n_runs;
static http_target target;   /* --url */
static char **bodies;        /* --url: {"inputs": item} per item */
static size_t *body_len;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "infer-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* ---- Input ------------------------------------------------------------------ */

static void load_input(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open input %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n)
        die("cannot read input %s", path);
    fclose(f);
    text[n] = '\0';
    /* A TAB in the first line means a TSV whose first line is its header. */
    char *first_nl = strchr(text, '\n');
    int tsv = memchr(text, '\t', first_nl ? (size_t)(first_nl - text) : (size_t)n) != NULL;
    int cap = 1024;
    items = malloc((size_t)cap * sizeof *items);
    item_len = malloc((size_t)cap * sizeof *item_len);
    char *line = text;
    for (int ln = 0; line && *line; ln++) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (tsv) {
            char *tab = strchr(line, '\t');
            if (tab)
                *tab = '\0';
        }
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len > 0 && !(tsv && ln == 0)) {
            if (n_items == cap) {
                cap *= 2;
                items = realloc(items, (size_t)cap * sizeof *items);
                item_len = realloc(item_len, (size_t)cap * sizeof *item_len);
            }
            items[n_items] = line;
            item_len[n_items++] = len;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (n_items == 0)
        die("no items in %s", path);
}

/* Reads a whole file into items[n_items]. */
static void add_image_file(const char *path, int *cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open image %s (%s)", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc(n > 0 ? (size_t)n : 1);
    if (!data || n < 0 || fread(data, 1, (size_t)n, f) != (size_t)n)
        die("cannot read image %s", path);
    fclose(f);
    if (n_items == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        items = realloc(items, (size_t)*cap * sizeof *items);
        item_len = realloc(item_len, (size_t)*cap * sizeof *item_len);
        if (!items || !item_len)
            die("out of memory");
    }
    items[n_items] = data;
    item_len[n_items++] = (size_t)n;
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                   strcasecmp(dot, ".png") == 0);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A folder's images in name order, or the files a list names, one a line. */
static void load_images(const char *path)
{
    int cap = 0;
    DIR *d = opendir(path);
    if (d) {
        char **names = NULL;
        int n = 0, ncap = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (!is_image_name(e->d_name))
                continue;
            if (n == ncap) {
                ncap = ncap ? 2 * ncap : 64;
                names = realloc(names, (size_t)ncap * sizeof *names);
                if (!names)
                    die("out of memory");
            }
            names[n++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(names, (size_t)n, sizeof *names, by_name);
        for (int i = 0; i < n; i++) {
            char full[4096];
            snprintf(full, sizeof full, "%s/%s", path, names[i]);
            add_image_file(full, &cap);
            free(names[i]);
        }
        free(names);
    } else {
        load_input(path);   /* the list's lines, then each file they name */
        char **list = items;
        size_t *list_len = item_len;
        int n = n_items;
        items = NULL;
        item_len = NULL;
        n_items = 0;
        for (int i = 0; i < n; i++)
            add_image_file(list[i], &cap);
        free(list);
        free(list_len);
    }
    if (n_items == 0)
        die("no images (*.jpg, *.jpeg, *.png) in %s", path);
}

/* One thread decodes and preprocesses every input once: the share of a
 * request's time that is not the network. ResNets only (decode_ms stays 0,
 * and the share unreported, for the other image kinds). */
static void time_decoding(void)
{
    const eng__cnn *cnn = eng__cnn_of(model);
    if (!cnn)
        return;
    const eng__image_spec *spec = eng__cnn_image_spec(cnn);
    float *chw = malloc(eng__cnn_input_floats(cnn) * sizeof *chw);
    char err[200];
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < n_items; i++)
        eng__image_load_mem(items[i], item_len[i], spec, chw, err, sizeof err);
    decode_ms = (double)(bench_now_ns() - t0) / 1e6 / n_items;
    free(chw);
}

/* ---- Latency recording --------------------------------------------------------- */

static void fill_latency(run_result *r, const eng__hist *h)
{
    r->p50 = (double)eng__hist_quantile(h, 0.50) / 1e6;
    r->p95 = (double)eng__hist_quantile(h, 0.95) / 1e6;
    r->p99 = (double)eng__hist_quantile(h, 0.99) / 1e6;
    r->max = (double)h->max / 1e6;
}

static void progress(const char *what, int64_t t0, uint64_t done)
{
    double el = (double)(bench_now_ns() - t0) / 1e9;
    fprintf(stderr, "\r%-24s %5.1f/%.1f s  %10llu requests  %10.0f req/s   ", what, el,
            opt.duration, (unsigned long long)done, el > 0 ? (double)done / el : 0.0);
}

static void progress_end(void)
{
    fprintf(stderr, "\r%90s\r", "");
}

/* ---- single and batch: no scheduler --------------------------------------------- */

static void run_direct(const char *mode, int batch)
{
    eng_ctx *ctx = NULL;
    char err[256];
    if (eng__backend_ctx_init(&backend, &opt.ctx, 0, batch, 0, &ctx, err, sizeof err) != ENG_OK)
        die("%s", err);
    int width = backend.n_labels > backend.hidden ? backend.n_labels : backend.hidden;
    int32_t *ids = malloc((size_t)batch * (size_t)backend.max_positions * sizeof *ids);
    eng_seq *seqs = malloc((size_t)batch * sizeof *seqs);
    const void **data = malloc((size_t)batch * sizeof *data);
    size_t *sizes = malloc((size_t)batch * sizeof *sizes);
    float *out = malloc((size_t)batch * (size_t)width * sizeof *out);
    float *probs = malloc((size_t)batch * (size_t)width * sizeof *probs);
    int *labels = malloc((size_t)batch * sizeof *labels);
    eng_status *st = malloc((size_t)batch * sizeof *st);
    eng__hist *h = calloc(1, sizeof *h);
    uint64_t done = 0, failed = 0, batches = 0;
    int next = 0;
    int64_t t0 = bench_now_ns(), end = t0 + (int64_t)(opt.duration * 1e9), last = t0;
    /* At least one whole pass in batch mode, then until the duration. */
    while (bench_now_ns() < end || (batch > 1 && done < (uint64_t)n_items)) {
        int64_t tb = bench_now_ns();
        int n = 0;
        for (; images && n < batch; n++, next = (next + 1) % n_items) {
            data[n] = items[next];
            sizes[n] = item_len[next];
        }
        for (; !images && n < batch; n++, next = (next + 1) % n_items) {
            int32_t *row = ids + (size_t)n * (size_t)backend.max_positions;
            if (eng__backend_tokenize(&backend, items[next], item_len[next], row,
                                      &seqs[n].n_ids) != ENG_OK)
                seqs[n].n_ids = 0;
            seqs[n].ids = row;
        }
        if (images) {
            eng__backend_run_images(&backend, ctx, task, data, sizes, n, out, probs, labels, st);
        } else {
            eng__backend_run(&backend, ctx, task, seqs, n, out, probs, labels, st);
        }
        int64_t te = bench_now_ns();
        for (int i = 0; i < n; i++) {
            eng__hist_add(h, (uint64_t)(te - tb));
            failed += st[i] != ENG_OK;
        }
        done += (uint64_t)n;
        batches++;
        if (te - last > PROGRESS_NS && !opt.json) {
            progress(mode, t0, done);
            last = te;
        }
    }
    double el = (double)(bench_now_ns() - t0) / 1e9;
    progress_end();
    run_result *r = &runs[n_runs++];
    snprintf(r->mode, sizeof r->mode, "%s", mode);
    r->concurrency = 1;
    r->batch = batch;
    r->rps = (double)(done - failed) / el;
    r->mean_batch = (double)done / (double)batches;
    r->failed = failed;
    fill_latency(r, h);
    free(h);
    free(ids);
    free(seqs);
    free(data);
    free(sizes);
    free(out);
    free(probs);
    free(labels);
    free(st);
    eng_ctx_free(ctx);
}

/* ---- stream: through the scheduler ------------------------------------------------ */

static eng_sched *make_sched(void)
{
    eng_sched_params p = eng_sched_default_params();
    p.model = model;
    p.n_workers = opt.workers;
    p.threads_per_worker = opt.threads;
    p.cpus = opt.cpus;
    p.max_batch_size = opt.batch;
    p.max_wait_us = opt.max_wait_us;
    p.queue_capacity = opt.queue;
    p.idle_spin_us = opt.idle_spin_us;
    p.ctx = opt.ctx;
    eng_sched *s = NULL;
    if (eng_sched_create(&p, &s) != ENG_OK)
        die("%s", eng_last_error());
    static int warned;
    if (eng_sched_warning(s)[0] && !warned++)
        fprintf(stderr, "infer-bench: warning: %s\n", eng_sched_warning(s));
    return s;
}

static void finish_stream(run_result *r, eng_sched *s, const eng__hist *h, int64_t t0,
                          int64_t t1, int concurrency)
{
    if (!s) {   /* --url, --redis: what the clients saw; the server's own split is in its /metrics */
        snprintf(r->mode, sizeof r->mode, "%s", opt.redis ? "redis" : "http");
        r->concurrency = concurrency;
        r->batch = opt.batch;
        r->rps = (double)h->count / ((double)(t1 - t0) / 1e9);
        fill_latency(r, h);
        return;
    }
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    snprintf(r->mode, sizeof r->mode, "stream");
    r->concurrency = concurrency;
    r->batch = opt.batch;
    r->rps = (double)st.completed / ((double)(t1 - t0) / 1e9);
    r->mean_batch = st.mean_batch;
    r->rejected = st.rejected;
    r->timed_out = st.timed_out;
    r->failed = st.failed;
    r->queue_p99_us = st.queue_us.p99;
    r->compute_p50_us = st.compute_us.p50;
    r->compute_p99_us = st.compute_us.p99;
    fill_latency(r, h);
    /* A request waits at most for the batch running when it came (or
     * max_wait for company) and then runs in the next: 2 x (max_wait + one
     * batch), with the batch time taken at its p99, the same tail as the
     * latency it bounds. */
    r->bound_us = opt.bound_us > 0 ? opt.bound_us
                                   : fmax(50.0, 2.0 * ((double)opt.max_wait_us + r->compute_p99_us));
}

static eng_status submit(eng_sched *s, int i, const eng_sched_req *rq, eng_sched_ticket **tk)
{
    if (images)
        return eng_sched_submit_image(s, items[i], item_len[i], rq, tk);
    return eng_sched_submit(s, items[i], item_len[i], rq, tk);
}

/* Closed loop: each client submits one request and waits for it. */
typedef struct {
    eng_sched *s;
    atomic_int *stop;
    atomic_uint_fast64_t *done;
    int next;
    eng__hist h;
    http_conn conn;   /* --url */
    redis_client rc;  /* --redis */
    uint64_t rejected;
} client;

/* One request over HTTP, or through Redis; 1 when answered 200 (ok). */
static int http_one(client *c, int i)
{
    if (opt.redis) {
        int st = redis_client_call(&c->rc, items[i], item_len[i]);
        static atomic_int warned;
        if (st < 1 && !atomic_fetch_add(&warned, 1))
            fprintf(stderr, "infer-bench: %s through %s\n",
                    st < 0 ? "no reply" : "an error reply", opt.redis);
        return st == 1;
    }
    int st = http_post_json(&c->conn, bodies[i], body_len[i]);
    if (st == 429)
        c->rejected++;
    else if (st != 200) {
        static atomic_int warned;
        if (!atomic_fetch_add(&warned, 1))
            fprintf(stderr, "infer-bench: %s answered %d\n", opt.url, st);
    }
    return st == 200;
}

static void *client_main(void *arg)
{
    client *c = arg;
    eng_sched_req rq = eng_sched_default_req();
    rq.task = task;
    while (!atomic_load_explicit(c->stop, memory_order_relaxed)) {
        int i = c->next;
        c->next = (c->next + 1) % n_items;
        int64_t t = bench_now_ns();
        if (opt.url || opt.redis) {
            if (http_one(c, i)) {
                eng__hist_add(&c->h, (uint64_t)(bench_now_ns() - t));
                atomic_fetch_add_explicit(c->done, 1, memory_order_relaxed);
            }
            continue;
        }
        eng_sched_ticket *tk;
        eng_status st = submit(c->s, i, &rq, &tk);
        if (st == ENG_ERR_OVERLOADED) {
            sched_yield();
            continue;
        }
        if (st != ENG_OK)
            continue;
        eng_sched_result res;
        eng_sched_wait(c->s, tk, &res);
        eng_sched_release(c->s, tk);
        eng__hist_add(&c->h, (uint64_t)(bench_now_ns() - t));
        atomic_fetch_add_explicit(c->done, 1, memory_order_relaxed);
    }
    return NULL;
}

static void run_closed(int conc)
{
    eng_sched *s = opt.url || opt.redis ? NULL : make_sched();
    client *cs = calloc((size_t)conc, sizeof *cs);
    pthread_t *th = malloc((size_t)conc * sizeof *th);
    atomic_int stop = 0;
    atomic_uint_fast64_t done = 0;
    int64_t t0 = bench_now_ns(), end = t0 + (int64_t)(opt.duration * 1e9);
    for (int i = 0; i < conc; i++) {
        cs[i].s = s;
        cs[i].stop = &stop;
        cs[i].done = &done;
        cs[i].next = (int)((long)i * n_items / conc);
        if (opt.url)
            http_conn_init(&cs[i].conn, &target);
        if (opt.redis && redis_client_open(&cs[i].rc, opt.redis, opt.redis_stream, opt.redis_task, i))
            die("cannot reach %s", opt.redis);
        if (pthread_create(&th[i], NULL, client_main, &cs[i]) != 0)
            die("cannot start client threads (%s)", strerror(errno));
    }
    char what[32];
    snprintf(what, sizeof what, "%s c=%d", opt.url ? "http" : opt.redis ? "redis" : "stream", conc);
    while (bench_now_ns() < end) {
        struct timespec ts = {0, PROGRESS_NS};
        nanosleep(&ts, NULL);
        if (!opt.json)
            progress(what, t0, atomic_load(&done));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < conc; i++)
        pthread_join(th[i], NULL);
    int64_t t1 = bench_now_ns();
    if (s)
        eng_sched_shutdown(s);
    progress_end();
    eng__hist *h = calloc(1, sizeof *h);
    uint64_t rejected = 0;
    for (int i = 0; i < conc; i++) {
        eng__hist_merge(h, &cs[i].h);
        rejected += cs[i].rejected;
        if (opt.url) {
            http_conn_close(&cs[i].conn);
            free(cs[i].conn.buf);
        }
        redis_client_close(&cs[i].rc);
    }
    finish_stream(&runs[n_runs], s, h, t0, t1, conc);
    runs[n_runs++].rejected += rejected;
    free(h);
    free(cs);
    free(th);
    eng_sched_free(s);
}

/* Open loop: the callbacks record into one histogram per callback thread. */
static eng__hist cb_hist[MAX_CB_THREADS];
static atomic_int cb_threads;
static _Thread_local eng__hist *my_hist;
static _Thread_local int my_hist_run = -1;
static int hist_run;   /* bumped per open-loop run: each thread claims afresh */

static void on_done(const eng_sched_result *r)
{
    if (my_hist_run != hist_run) {
        int k = atomic_fetch_add(&cb_threads, 1);
        my_hist = &cb_hist[k < MAX_CB_THREADS ? k : MAX_CB_THREADS - 1];
        my_hist_run = hist_run;
    }
    int64_t arrival = (int64_t)(intptr_t)r->user;
    eng__hist_add(my_hist, (uint64_t)(bench_now_ns() - arrival));
}

/* Open loop over HTTP: url_conns threads, each with a kept-alive
 * connection, take the precomputed arrivals in turn; latency counts from the
 * scheduled arrival, so waiting for a free connection counts too. */
typedef struct {
    const int64_t *offs;
    size_t n;
    int64_t t0;
    atomic_size_t *next;
    client c;
} open_sender;

static void *open_sender_main(void *arg)
{
    open_sender *o = arg;
    for (;;) {
        size_t a = atomic_fetch_add(o->next, 1);
        if (a >= o->n)
            break;
        int64_t arrival = o->t0 + o->offs[a];
        int64_t now = bench_now_ns();
        if (arrival > now) {
            int64_t ns = arrival - now;
            struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
            nanosleep(&ts, NULL);
        }
        if (http_one(&o->c, (int)(a % (size_t)n_items)))
            eng__hist_add(&o->c.h, (uint64_t)(bench_now_ns() - arrival));
    }
    return NULL;
}

static void run_open_http(const int64_t *offs, size_t n_arr)
{
    int k = opt.url_conns;
    open_sender *os = calloc((size_t)k, sizeof *os);
    pthread_t *th = malloc((size_t)k * sizeof *th);
    atomic_size_t next = 0;
    int64_t t0 = bench_now_ns() + 1000000;
    for (int i = 0; i < k; i++) {
        os[i] = (open_sender){.offs = offs, .n = n_arr, .t0 = t0, .next = &next};
        http_conn_init(&os[i].c.conn, &target);
        if (pthread_create(&th[i], NULL, open_sender_main, &os[i]) != 0)
            die("cannot start sender threads (%s)", strerror(errno));
    }
    eng__hist *h = calloc(1, sizeof *h);
    uint64_t rejected = 0;
    for (int i = 0; i < k; i++) {
        pthread_join(th[i], NULL);
        eng__hist_merge(h, &os[i].c.h);
        rejected += os[i].c.rejected;
        http_conn_close(&os[i].c.conn);
        free(os[i].c.conn.buf);
    }
    int64_t t1 = bench_now_ns();
    run_result *r = &runs[n_runs++];
    r->open_loop = 1;
    finish_stream(r, NULL, h, t0, t1, 0);
    r->rejected = rejected;
    free(h);
    free(os);
    free(th);
}

static void run_open(void)
{
    memset(cb_hist, 0, sizeof cb_hist);
    atomic_store(&cb_threads, 0);
    hist_run++;
    eng_sched *s = opt.url ? NULL : make_sched();
    eng_sched_req rq = eng_sched_default_req();
    rq.task = task;
    rq.done = on_done;
    /* The arrival times, computed before the clock starts so that the one
     * submitting thread does nothing but submit: exponential gaps make a
     * Poisson process. Offsets from the start, in ns. */
    double expect = opt.rate * opt.duration;
    if (expect > MAX_ARRIVALS)
        die("--rate x --duration is %.0f requests; at most %d", expect, MAX_ARRIVALS);
    size_t cap = (size_t)(expect * 1.1) + 1024, n_arr = 0;
    int64_t *offs = malloc(cap * sizeof *offs);
    if (!offs)
        die("out of memory for %zu arrival times", cap);
    unsigned seed = 42;
    double dur_ns = opt.duration * 1e9;
    for (double next = 0;;) {
        double u = ((double)rand_r(&seed) + 1.0) / ((double)RAND_MAX + 2.0);
        next += -log(u) / opt.rate * 1e9;
        if (next >= dur_ns || n_arr == cap)
            break;
        offs[n_arr++] = (int64_t)next;
    }
    if (opt.url) {
        run_open_http(offs, n_arr);
        free(offs);
        return;
    }
    int64_t t0 = bench_now_ns(), last = t0;
    uint64_t sent = 0;
    int i = 0;
    char what[40];
    snprintf(what, sizeof what, "stream rate=%.0f", opt.rate);
    for (size_t a = 0; a < n_arr; a++) {
        int64_t arrival = t0 + offs[a];
        int64_t now = bench_now_ns();
        if (arrival - now > SPIN_NS) {
            int64_t ns = arrival - now - SPIN_NS / 2;
            struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
            nanosleep(&ts, NULL);
            now = bench_now_ns();
        }
        while (now < arrival)
            now = bench_now_ns();
        rq.user = (void *)(intptr_t)arrival;
        submit(s, i, &rq, NULL);
        i = i + 1 == n_items ? 0 : i + 1;
        if ((++sent & 4095) == 0 && !opt.json && now - last > PROGRESS_NS) {
            progress(what, t0, sent);
            last = now;
        }
    }
    eng_sched_shutdown(s);
    int64_t t1 = bench_now_ns();
    free(offs);
    progress_end();
    eng__hist *h = calloc(1, sizeof *h);
    int k = atomic_load(&cb_threads);
    for (int j = 0; j < k && j < MAX_CB_THREADS; j++)
        eng__hist_merge(h, &cb_hist[j]);
    run_result *r = &runs[n_runs++];
    r->open_loop = 1;
    finish_stream(r, s, h, t0, t1, 0);
    free(h);
    eng_sched_free(s);
}

/* ---- Reporting -------------------------------------------------------------------- */

static void cpu_name(char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            snprintf(out, n, "%s", colon + 2);
            out[strcspn(out, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
}

static double mode_rps(const char *mode)
{
    for (int i = 0; i < n_runs; i++)
        if (strcmp(runs[i].mode, mode) == 0)
            return runs[i].rps;
    return 0.0;
}

/* Decoding's share of the single mode's time per image; 0 when unknown. */
static double decode_share(void)
{
    double single = mode_rps("single");
    return single > 0 ? decode_ms / (1e3 / single) : 0.0;
}

static void print_table(const char *cpu, const char *threads)
{
    const eng__bgemm_kernels *bk = eng__bgemm_get();
    printf("machine: %s; ISA %s; GEMM %s; bf16 GEMM %s; %s\n", cpu, eng_isa_name(),
           model ? eng_model_gemm_name(model) : "none (null model)", bk ? bk->name : "none",
           threads);
    printf("model: %s; %d inputs from %s; device %s, precision %s\n", opt.model_path, n_items,
           opt.input, opt.device, opt.precision);
    if (images && decode_ms > 0) {
        printf("decode+preprocess: %.2f ms per image on one thread", decode_ms);
        if (decode_share() > 0)
            printf(", %.0f%% of single mode's time per image", 100.0 * decode_share());
        printf("\n");
    }
    printf("%-7s %6s %5s %12s %10s %10s %10s %10s %8s %9s %9s\n", "mode", "conc", "batch",
           "requests/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean_b", "rejected", "failed");
    double b = mode_rps("batch");
    for (int i = 0; i < n_runs; i++) {
        run_result *r = &runs[i];
        char conc[16];
        if (r->open_loop)
            snprintf(conc, sizeof conc, "open");
        else
            snprintf(conc, sizeof conc, "%d", r->concurrency);
        printf("%-7s %6s %5d %12.0f %10.3f %10.3f %10.3f %10.3f %8.2f %9llu %9llu", r->mode, conc,
               r->batch, r->rps, r->p50, r->p95, r->p99, r->max, r->mean_batch,
               (unsigned long long)r->rejected, (unsigned long long)r->failed);
        if (strcmp(r->mode, "stream") == 0 && b > 0)
            printf("  %.0f%% of batch", 100.0 * r->rps / b);
        if (strcmp(r->mode, "stream") == 0 && !r->open_loop)
            printf("  p99 %s 2 x (wait + batch p99 %.1f ms)",
                   r->p99 * 1e3 <= r->bound_us ? "within" : "OVER", r->compute_p99_us / 1e3);
        printf("\n");
        if (r->open_loop && strcmp(r->mode, "http"))
            printf("        open loop at %.0f req/s: p99 %.1f us against the bound %.1f us: %s; "
                   "scheduler queueing p99 %.1f us (idle spin %d us); %llu timed out\n",
                   opt.rate, r->p99 * 1e3, r->bound_us,
                   r->p99 * 1e3 <= r->bound_us ? "within" : "OVER", r->queue_p99_us,
                   opt.idle_spin_us, (unsigned long long)r->timed_out);
    }
}

static void print_json(const char *cpu, const char *threads)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(doc, "machine");
    cJSON_AddStringToObject(m, "cpu", cpu);
    cJSON_AddStringToObject(m, "isa", eng_isa_name());
    cJSON_AddStringToObject(m, "gemm", model ? eng_model_gemm_name(model) : "none");
    const eng__bgemm_kernels *bk = eng__bgemm_get();
    cJSON_AddStringToObject(m, "bf16_gemm", bk ? bk->name : "none");
    cJSON_AddStringToObject(m, "threads", threads);
    cJSON_AddNumberToObject(m, "online_cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
    cJSON_AddStringToObject(doc, "model", opt.model_path);
    cJSON_AddStringToObject(doc, "input", opt.input);
    cJSON_AddNumberToObject(doc, "inputs", n_items);
    cJSON_AddNumberToObject(doc, "max_wait_us", (double)opt.max_wait_us);
    cJSON_AddNumberToObject(doc, "idle_spin_us", opt.idle_spin_us);
    cJSON_AddStringToObject(doc, "device", opt.device);
    cJSON_AddStringToObject(doc, "precision", opt.precision);
    if (images) {
        cJSON_AddNumberToObject(doc, "decode_ms_per_image", decode_ms);
        cJSON_AddNumberToObject(doc, "decode_share_of_single", decode_share());
    }
    cJSON *list = cJSON_AddArrayToObject(doc, "runs");
    double b = mode_rps("batch");
    for (int i = 0; i < n_runs; i++) {
        run_result *r = &runs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "mode", r->mode);
        cJSON_AddNumberToObject(o, "concurrency", r->concurrency);
        cJSON_AddNumberToObject(o, "batch", r->batch);
        cJSON_AddNumberToObject(o, "requests_per_s", r->rps);
        cJSON *l = cJSON_AddObjectToObject(o, "latency_ms");
        cJSON_AddNumberToObject(l, "p50", r->p50);
        cJSON_AddNumberToObject(l, "p95", r->p95);
        cJSON_AddNumberToObject(l, "p99", r->p99);
        cJSON_AddNumberToObject(l, "max", r->max);
        cJSON_AddNumberToObject(o, "mean_batch", r->mean_batch);
        cJSON_AddNumberToObject(o, "rejected", (double)r->rejected);
        cJSON_AddNumberToObject(o, "failed", (double)r->failed);
        if (strcmp(r->mode, "stream") == 0 && b > 0)
            cJSON_AddNumberToObject(o, "fraction_of_batch", r->rps / b);
        if (strcmp(r->mode, "stream") == 0) {
            cJSON_AddNumberToObject(o, "queue_p99_us", r->queue_p99_us);
            cJSON_AddNumberToObject(o, "batch_compute_p50_us", r->compute_p50_us);
            cJSON_AddNumberToObject(o, "batch_compute_p99_us", r->compute_p99_us);
            cJSON_AddNumberToObject(o, "p99_bound_us", r->bound_us);
            cJSON_AddBoolToObject(o, "p99_within_bound", r->p99 * 1e3 <= r->bound_us);
        }
        if (r->open_loop) {
            cJSON_AddNumberToObject(o, "rate", opt.rate);
            cJSON_AddNumberToObject(o, "timed_out", (double)r->timed_out);
        }
        cJSON_AddItemToArray(list, o);
    }
    char *text = cJSON_Print(doc);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(doc);
}

/* Throughput and p99 latency against concurrency, via gnuplot. */
static void plot(const char *path)
{
    int n = 0;
    for (int i = 0; i < n_runs; i++)
        n += strcmp(runs[i].mode, "stream") && strcmp(runs[i].mode, "http") ? 0 : !runs[i].open_loop;
    if (n == 0)
        return;
    const char *ext = strrchr(path, '.');
    int png = ext && strcmp(ext, ".png") == 0;
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        fprintf(stderr, "infer-bench: cannot run gnuplot; no plot\n");
        return;
    }
    fprintf(g, "set terminal %s size 900,540\nset output '%s'\n",
            png ? "pngcairo" : "svg", path);
    fprintf(g, "set title 'infer-bench stream (%s, batch %d, max wait %lld us)'\n",
            opt.model_path, opt.batch, (long long)opt.max_wait_us);
    fprintf(g, "set logscale x\nset xlabel 'concurrent clients'\nset grid\n"
               "set ylabel 'requests/s'\nset y2label 'latency p99 (ms)'\n"
               "set ytics nomirror\nset y2tics\nset key top left\n"
               "plot '-' using 1:2 with linespoints title 'requests/s' axes x1y1, "
               "'-' using 1:2 with linespoints title 'p99 latency' axes x1y2\n");
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n_runs; i++)
            if ((!strcmp(runs[i].mode, "stream") || !strcmp(runs[i].mode, "http")) &&
                !runs[i].open_loop)
                fprintf(g, "%d %g\n", runs[i].concurrency, pass ? runs[i].p99 : runs[i].rps);
        fprintf(g, "e\n");
    }
    if (pclose(g) != 0)
        fprintf(stderr, "infer-bench: gnuplot failed; no plot\n");
}

/* ---- Options and main --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: infer-bench --model FILE|null [--input FILE] [--mode single|batch|stream|all]\n"
            "       [--batch N] [--concurrency N,N,...] [--rate R] [--duration S] [--json]\n"
            "       [--workers N] [--threads N] [--max-wait-us US] [--queue N] [--cpus LIST]\n"
            "       [--idle-spin-us US] [--bound-us US] [--plot FILE.svg|FILE.png]\n"
            "       [--device cpu|cuda] [--precision fp32|tf32|fp16|bf16]\n"
            "       [--url http://HOST:PORT/ROUTE [--url-conns N]]: the stream mode against\n"
            "       `engine serve` (each text posted as {\"inputs\": text}); --model is then\n"
            "       only the label of the run\n"
            "       [--redis redis://HOST:PORT [--redis-stream S] [--redis-task T]]: the same\n"
            "       through `engine worker`s (engine:requests, classify; closed loop only)\n");
    exit(2);
}

static int parse_int(const char *s, int lo)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > 1000000000)
        die("bad number \"%s\"", s);
    return (int)v;
}

static void parse_conc(const char *s)
{
    opt.n_conc = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (opt.n_conc < MAX_CONC)
            opt.conc[opt.n_conc++] = parse_int(tok, 1);
}

static void parse_args(int argc, char **argv)
{
    opt.input = "../shared/data/sst2/dev.tsv";
    opt.mode = "all";
    opt.batch = 32;
    opt.duration = 2.0;
    opt.queue = 4096;
    opt.idle_spin_us = eng_sched_default_params().idle_spin_us;
    opt.device = "cpu";
    opt.precision = "fp32";
    opt.url_conns = 256;
    opt.redis_stream = "engine:requests";
    opt.redis_task = "classify";
    parse_conc("1,10,25,50,100,200,500");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            opt.json = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--model") == 0)
            opt.model_path = v;
        else if (strcmp(a, "--input") == 0)
            opt.input = v;
        else if (strcmp(a, "--mode") == 0)
            opt.mode = v;
        else if (strcmp(a, "--batch") == 0)
            opt.batch = parse_int(v, 1);
        else if (strcmp(a, "--concurrency") == 0)
            parse_conc(v);
        else if (strcmp(a, "--rate") == 0)
            opt.rate = atof(v);
        else if (strcmp(a, "--duration") == 0)
            opt.duration = atof(v);
        else if (strcmp(a, "--workers") == 0)
            opt.workers = parse_int(v, 0);
        else if (strcmp(a, "--threads") == 0)
            opt.threads = parse_int(v, 0);
        else if (strcmp(a, "--max-wait-us") == 0)
            opt.max_wait_us = parse_int(v, 0);
        else if (strcmp(a, "--queue") == 0)
            opt.queue = parse_int(v, 1);
        else if (strcmp(a, "--idle-spin-us") == 0)
            opt.idle_spin_us = parse_int(v, 0);
        else if (strcmp(a, "--cpus") == 0)
            opt.cpus = v;
        else if (strcmp(a, "--bound-us") == 0)
            opt.bound_us = atof(v);
        else if (strcmp(a, "--plot") == 0)
            opt.plot = v;
        else if (strcmp(a, "--url") == 0)
            opt.url = v;
        else if (strcmp(a, "--redis") == 0)
            opt.redis = v;
        else if (strcmp(a, "--redis-stream") == 0)
            opt.redis_stream = v;
        else if (strcmp(a, "--redis-task") == 0)
            opt.redis_task = v;
        else if (strcmp(a, "--url-conns") == 0)
            opt.url_conns = parse_int(v, 1);
        else if (strcmp(a, "--device") == 0)
            opt.device = v;
        else if (strcmp(a, "--precision") == 0)
            opt.precision = v;
        else
            usage();
    }
    if (!opt.model_path || opt.duration <= 0 || opt.rate < 0 || opt.n_conc == 0)
        usage();
    if (strcmp(opt.mode, "single") && strcmp(opt.mode, "batch") && strcmp(opt.mode, "stream") &&
        strcmp(opt.mode, "all"))
        usage();
    opt.ctx = eng_ctx_default_params();
    if (strcmp(opt.device, "cuda") == 0)
        opt.ctx.device = ENG_DEVICE_CUDA;
    else if (strcmp(opt.device, "cpu") != 0)
        die("unknown --device %s (cpu or cuda)", opt.device);
    static const char *const precs[] = {"fp32", "tf32", "fp16", "bf16"};
    static const eng_precision prec_values[] = {ENG_PREC_FP32, ENG_PREC_TF32, ENG_PREC_FP16,
                                                ENG_PREC_BF16};
    int found = 0;
    for (int i = 0; i < 4; i++)
        if (strcmp(opt.precision, precs[i]) == 0) {
            opt.ctx.precision = prec_values[i];
            found = 1;
        }
    if (!found)
        die("unknown --precision %s (fp32, tf32, fp16 or bf16)", opt.precision);
}

/* --url: the JSON body of every item, built before the clock starts. */
static void make_bodies(void)
{
    if (http_parse_url(opt.url, &target))
        die("--url %s: want http://HOST:PORT/ROUTE", opt.url);
    bodies = malloc((size_t)n_items * sizeof *bodies);
    body_len = malloc((size_t)n_items * sizeof *body_len);
    for (int i = 0; i < n_items; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "inputs", items[i]);
        bodies[i] = cJSON_PrintUnformatted(o);
        body_len[i] = strlen(bodies[i]);
        cJSON_Delete(o);
    }
}

static void run_url(void)
{
    load_input(opt.input);
    if (opt.url)
        make_bodies();
    if (opt.rate > 0 && opt.redis)
        die("--rate (open loop) is not done through --redis");
    if (opt.rate > 0)
        run_open();
    else
        for (int i = 0; i < opt.n_conc; i++)
            run_closed(opt.conc[i]);
    char cpu[256], threads[320];
    cpu_name(cpu, sizeof cpu);
    if (opt.redis)
        snprintf(threads, sizeof threads, "Redis clients of %s on %s (%s)", opt.redis,
                 opt.redis_stream, opt.redis_task);
    else
        snprintf(threads, sizeof threads, "HTTP clients against %s", opt.url);
    if (opt.json)
        print_json(cpu, threads);
    else
        print_table(cpu, threads);
    if (opt.plot)
        plot(opt.plot);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (opt.url || opt.redis) {
        run_url();
        return 0;
    }
    if (strcmp(opt.model_path, "null") != 0) {
        eng_model_params mp = eng_model_default_params();
        mp.n_threads = opt.threads;
        if (eng_model_load(opt.model_path, &mp, &model) != ENG_OK)
            die("%s", eng_last_error());
    }
    eng__backend_init(&backend, model, 0, 0);
    task = backend.n_labels > 0 ? ENG_TASK_CLASSIFY : ENG_TASK_EMBED;
    images = backend.input == ENG_INPUT_IMAGE;
    if (images) {
        load_images(opt.input);
        time_decoding();
    } else {
        load_input(opt.input);
    }
    if (!model && (opt.ctx.device != ENG_DEVICE_CPU || opt.ctx.precision != ENG_PREC_FP32))
        die("--device and --precision need a model: the null model computes nothing");
    /* Fail early and clearly when the device is not there. */
    eng_ctx *probe = NULL;
    char err[256];
    if (eng__backend_ctx_init(&backend, &opt.ctx, 0, 0, 0, &probe, err, sizeof err) != ENG_OK)
        die("--device %s --precision %s: %s", opt.device, opt.precision, err);
    eng_ctx_free(probe);

    int all = strcmp(opt.mode, "all") == 0;
    if (all || strcmp(opt.mode, "single") == 0)
        run_direct("single", 1);
    if (all || strcmp(opt.mode, "batch") == 0)
        run_direct("batch", opt.batch);
    if (all || strcmp(opt.mode, "stream") == 0) {
        if (opt.rate > 0)
            run_open();
        else
            for (int i = 0; i < opt.n_conc; i++)
                run_closed(opt.conc[i]);
    }

    /* Describe the threads of the scheduler's default (or given) placement. */
    char cpu[256], threads[256];
    cpu_name(cpu, sizeof cpu);
    eng_sched *s = make_sched();
    eng_sched_worker_info wi;
    eng_sched_get_worker(s, 0, &wi);
    snprintf(threads, sizeof threads, "%d worker(s) x %d thread(s), worker 0 on CPUs %s%s",
             eng_sched_n_workers(s), wi.n_threads, wi.cpus, wi.cpu_bound ? " (bound)" : "");
    eng_sched_free(s);

    if (opt.json)
        print_json(cpu, threads);
    else
        print_table(cpu, threads);
    if (opt.plot)
        plot(opt.plot);
    eng_model_free(model);
    /* A run in which nothing succeeded measured nothing: that is an error. */
    int rc = 0;
    for (int i = 0; i < n_runs; i++)
        if (runs[i].rps == 0.0) {
            fprintf(stderr, "infer-bench: no request of the %s run succeeded (%llu failed)\n",
                    runs[i].mode, (unsigned long long)runs[i].failed);
            rc = 1;
        }
    return rc;
}
