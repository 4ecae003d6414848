/* metrics.c: the /metrics page in Prometheus' text exposition format. Every
 * family has # HELP and # TYPE and every model's series exist from the first
 * scrape (zeros before the first request). Counters and histogram buckets are
 * atomics bumped on the request path; the page is built only when scraped. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "serve.h"

/* Seconds, as microseconds observed: 50 us .. 10 s. */
static const double time_bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                     0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1,
                                     2.5,     5,      10};
static const double size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
static const double token_bounds[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
                                      32768};

#define NB(a) (int)(sizeof a / sizeof a[0])

static void hist_init(hist *h, const double *bounds, int n, double scale)
{
    h->bounds = bounds;
    h->n_bounds = n;
    h->scale = scale;
}

void metrics_init(srv_metrics *m)
{
    memset(m, 0, sizeof *m);
    hist_init(&m->queue_s, time_bounds, NB(time_bounds), 1e6);
    hist_init(&m->infer_s, time_bounds, NB(time_bounds), 1e6);
    hist_init(&m->total_s, time_bounds, NB(time_bounds), 1e6);
    hist_init(&m->batch_size, size_bounds, NB(size_bounds), 1);
    hist_init(&m->batch_tokens, token_bounds, NB(token_bounds), 1);
}

void hist_observe(hist *h, uint64_t v)
{
    double x = (double)v / h->scale;
    int b = 0;
    while (b < h->n_bounds && x > h->bounds[b])
        b++;
    atomic_fetch_add_explicit(&h->count[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void metrics_family(buf *o, const char *name, const char *type, const char *help)
{
    buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void hist_render(buf *o, const char *name, const char *model, hist *h)
{
    uint64_t cum = 0;
    for (int b = 0; b <= h->n_bounds; b++) {
        cum += atomic_load_explicit(&h->count[b], memory_order_relaxed);
        if (b < h->n_bounds)
            buf_printf(o, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", name, model, h->bounds[b],
                       (unsigned long long)cum);
        else
            buf_printf(o, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", name, model,
                       (unsigned long long)cum);
    }
    buf_printf(o, "%s_sum{model=\"%s\"} %.9g\n", name, model,
               (double)atomic_load_explicit(&h->sum, memory_order_relaxed) / h->scale);
    buf_printf(o, "%s_count{model=\"%s\"} %llu\n", name, model, (unsigned long long)cum);
}

static void requests_render(buf *o, const char *model, srv_metrics *m)
{
    for (int r = 0; r < R_COUNT; r++)
        for (int c = 0; c < SRV_N_CODES; c++) {
            uint64_t v = atomic_load_explicit(&m->requests[r][c], memory_order_relaxed);
            /* Every route's 200 is shown from the start; other codes once seen. */
            if (v || srv_codes[c] == 200)
                buf_printf(o, "engine_http_requests_total{model=\"%s\",route=\"%s\",code=\"%d\"} %llu\n",
                           model, srv_route_path[r], srv_codes[c], (unsigned long long)v);
        }
}

/* The families of each model: what `engine serve` and `engine worker` share. */
void metrics_render_models(buf *o, srv_model *models, int n, uint64_t (*depth)(srv_model *))
{
    static const struct { const char *name, *help; size_t off; } hists[] = {
        {"engine_request_queue_duration_seconds", "Time an input waited in the scheduler's queue",
         offsetof(srv_metrics, queue_s)},
        {"engine_request_inference_duration_seconds", "Forward pass of the batch an input ran in",
         offsetof(srv_metrics, infer_s)},
        {"engine_request_duration_seconds",
         "A request, read to answer queued (HTTP: from its first byte; a worker: its entry)",
         offsetof(srv_metrics, total_s)},
        {"engine_batch_size", "Requests in the batch each input ran in",
         offsetof(srv_metrics, batch_size)},
        {"engine_batch_tokens", "Tokens in the batch each input ran in (an image counts 1)",
         offsetof(srv_metrics, batch_tokens)},
    };
    for (size_t k = 0; k < sizeof hists / sizeof hists[0]; k++) {
        metrics_family(o, hists[k].name, "histogram", hists[k].help);
        for (int i = 0; i < n; i++)
            hist_render(o, hists[k].name, models[i].name,
                        (hist *)(void *)((char *)&models[i].metrics + hists[k].off));
    }

    metrics_family(o, "engine_inputs_total", "counter", "Inputs (texts, images) received, by model");
    for (int i = 0; i < n; i++)
        buf_printf(o, "engine_inputs_total{model=\"%s\"} %llu\n", models[i].name,
                   (unsigned long long)atomic_load(&models[i].metrics.items));
    metrics_family(o, "engine_cache_hits_total", "counter", "Inputs answered from the result cache");
    for (int i = 0; i < n; i++)
        buf_printf(o, "engine_cache_hits_total{model=\"%s\"} %llu\n", models[i].name,
                   (unsigned long long)atomic_load(&models[i].metrics.cache_hits));
    metrics_family(o, "engine_cache_misses_total", "counter",
           "Inputs looked up in the result cache and not found");
    for (int i = 0; i < n; i++)
        buf_printf(o, "engine_cache_misses_total{model=\"%s\"} %llu\n", models[i].name,
                   (unsigned long long)atomic_load(&models[i].metrics.cache_misses));

    /* CLIP models: the library's zero-shot label-set cache (eng_zero_shot_get_stats;
     * zeros for every other model, which the families leave out). */
    metrics_family(o, "engine_zero_shot_label_sets_total", "counter",
                   "Zero-shot label-set lookups in the model's cache, by result");
    for (int i = 0; i < n; i++) {
        if (!models[i].model || strcmp(models[i].info.arch, "clip"))
            continue;
        eng_zero_shot_stats zs;
        eng_zero_shot_get_stats(models[i].model, &zs);
        buf_printf(o, "engine_zero_shot_label_sets_total{model=\"%s\",result=\"hit\"} %llu\n",
                   models[i].name, (unsigned long long)zs.hits);
        buf_printf(o, "engine_zero_shot_label_sets_total{model=\"%s\",result=\"miss\"} %llu\n",
                   models[i].name, (unsigned long long)zs.misses);
    }

    metrics_family(o, "engine_queue_depth", "gauge", "Inputs queued in the model's scheduler now");
    for (int i = 0; i < n; i++) {
        uint64_t q = depth ? depth(&models[i]) : 0;
        buf_printf(o, "engine_queue_depth{model=\"%s\"} %llu\n", models[i].name,
                   (unsigned long long)q);
    }
}

void metrics_render(srv *s, buf *o)
{
    metrics_family(o, "engine_http_requests_total", "counter",
           "HTTP requests answered, by model, route and status code");
    requests_render(o, "", &s->global);
    for (int i = 0; i < s->n_models; i++)
        requests_render(o, s->models[i].name, &s->models[i].metrics);

    int ready = atomic_load(&s->ready);
    metrics_render_models(o, s->models, s->n_models, ready ? s->be->queue_depth : NULL);
    metrics_family(o, "engine_requests_in_flight", "gauge", "HTTP requests read and not yet answered");
    buf_printf(o, "engine_requests_in_flight %lld\n", (long long)atomic_load(&s->inflight));
    metrics_family(o, "engine_connections", "gauge", "Open HTTP connections");
    buf_printf(o, "engine_connections %lld\n", (long long)atomic_load(&s->connections));
    metrics_family(o, "engine_ready", "gauge", "1 when every model is loaded and warm and not draining");
    buf_printf(o, "engine_ready %d\n", ready && !atomic_load(&s->draining));
    if (s->be->metrics)
        s->be->metrics(s, o);
}
