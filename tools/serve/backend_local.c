/* backend_local.c: the local backend of `engine serve`: the models loaded
 * in this process, each with its scheduler; an item is tokenized on the HTTP
 * thread and submitted with a completion callback (serve.h). */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* The cores this process may run on, shared out between the models in
 * contiguous slices (a model per slice; more models than cores share). */
static void cpu_slice(int i, int n_models, char *out, size_t cap)
{
    cpu_set_t set;
    int cpus[CPU_SETSIZE], n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set))
                cpus[n++] = c;
    out[0] = '\0';
    if (n == 0 || n_models <= 1)
        return;
    int per = n / n_models;
    if (per == 0) {   /* more models than cores: each gets one, round robin */
        snprintf(out, cap, "%d", cpus[i % n]);
        return;
    }
    size_t o = 0;
    for (int k = i * per; k < (i + 1) * per && o < cap; k++)
        o += (size_t)snprintf(out + o, cap - o, "%s%d", o ? "," : "", cpus[k]);
}

/* A 1x1 PNG: the warm-up input of image models. */
static const unsigned char png_1x1[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
    0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90,
    0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8,
    0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00,
    0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

static int load_model(srv *s, srv_model *m, int index)
{
    if (m->path) {
        if (eng_model_load(m->path, NULL, &m->model) != ENG_OK) {
            fprintf(stderr, "engine serve: %s: %s\n", m->path, eng_last_error());
            return -1;
        }
        eng_model_get_info(m->model, &m->info);
    } else {
        /* The null model (see include/engine.h): 2 logits, 4-float embeddings. */
        m->info = (eng_model_info){.arch = "null", .input = ENG_INPUT_TEXT, .weights = "none",
                                   .n_labels = 2, .hidden = 4, .embed_size = 4,
                                   .max_positions = ENG__SCHED_NULL_POSITIONS};
    }
    if (m->model && !strcmp(m->info.arch, "clip") &&
        !(m->zs_pool = srv_zs_pool_create(m->model, s->o.zs_threads))) {
        fprintf(stderr, "engine serve: %s: cannot start the zero-shot threads\n", m->name);
        return -1;
    }
    m->width_classify = 2 * m->info.n_labels;
    m->width_embed = m->info.embed_size;
    eng_sched_params p = eng_sched_default_params();
    p.model = m->model;
    p.n_workers = s->o.workers;
    p.threads_per_worker = s->o.threads;
    char slice[512];
    cpu_slice(index, s->n_models, slice, sizeof slice);
    p.cpus = s->o.cpus ? s->o.cpus : slice[0] ? slice : NULL;
    if (s->o.max_batch)
        p.max_batch_size = s->o.max_batch;
    p.max_batch_tokens = s->o.max_batch_tokens;
    p.max_wait_us = s->o.max_wait_us;
    if (s->o.queue_capacity)
        p.queue_capacity = s->o.queue_capacity;
    if (s->o.idle_spin_us >= 0)
        p.idle_spin_us = s->o.idle_spin_us;
    p.null_batch_us = s->o.null_batch_us;
    p.null_token_ns = s->o.null_token_ns;
    if (eng_sched_create(&p, &m->sched) != ENG_OK) {
        fprintf(stderr, "engine serve: %s: scheduler: %s\n", m->name, eng_last_error());
        return -1;
    }
    /* One warm-up batch, so that the first client does not pay for page
     * faults and thread start-up; ready waits for it. */
    eng_sched_req q = eng_sched_default_req();
    q.task = m->info.n_labels ? ENG_TASK_CLASSIFY : ENG_TASK_EMBED;
    eng_sched_ticket *t = NULL;
    eng_status st = m->info.input == ENG_INPUT_IMAGE
                        ? eng_sched_submit_image(m->sched, png_1x1, sizeof png_1x1, &q, &t)
                        : eng_sched_submit(m->sched, "warm up", 7, &q, &t);
    if (st == ENG_OK) {
        eng_sched_result res;
        st = eng_sched_wait(m->sched, t, &res);
        eng_sched_release(m->sched, t);
    }
    if (st != ENG_OK) {
        fprintf(stderr, "engine serve: %s: warm-up failed: %s\n", m->name, eng_status_str(st));
        return -1;
    }
    int threads = 0;
    eng_sched_worker_info wi;
    if (eng_sched_get_worker(m->sched, 0, &wi) == ENG_OK)
        threads = wi.n_threads;
    fprintf(stderr, "engine serve: model %s: %s, %s weights, ISA %s, %d workers x %d threads%s%s\n",
            m->name, m->info.arch, m->info.weights, eng_isa_name(), eng_sched_n_workers(m->sched),
            threads, *eng_sched_warning(m->sched) ? "; " : "", eng_sched_warning(m->sched));
    return 0;
}

static int local_open(srv *s)
{
    for (int i = 0; i < s->n_models; i++) {
        srv_model *m = &s->models[i];
        if (load_model(s, m, i))
            return -1;
        m->labels = calloc((size_t)(m->info.n_labels > 0 ? m->info.n_labels : 1), sizeof *m->labels);
        if (!m->labels) {
            fprintf(stderr, "engine serve: out of memory\n");
            return -1;
        }
        for (int k = 0; m->model && k < m->info.n_labels; k++)
            m->labels[k] = eng_model_label(m->model, k);
    }
    return 0;
}

static void on_done(const eng_sched_result *res)
{
    srv_item *it = res->user;
    it->st = res->status;
    it->label = res->label;
    it->n_tokens = res->n_tokens;
    it->queue_ns = res->queue_ns;
    it->compute_ns = res->compute_ns;
    if (res->status == ENG_OK) {
        memcpy(it->vals, res->out, (size_t)res->n_out * sizeof(float));
        if (res->probs)
            memcpy(it->vals + res->n_out, res->probs, (size_t)res->n_out * sizeof(float));
    }
    srv_item_done(it, res->batch_size, res->batch_tokens);
}

static void local_submit(srv_req *r)
{
    srv_model *m = r->m;
    eng_sched_req q = eng_sched_default_req();
    q.task = r->task;
    q.priority = r->priority;
    q.timeout_us = r->timeout_us;
    q.done = on_done;
    int32_t ids[ENG_SCHED_MAX_POSITIONS];
    for (int i = 0; i < r->n && !r->err_code; i++) {
        srv_item *it = &r->items[i];
        if (it->cached)
            continue;
        q.user = it;
        srv_item_hold(r);
        eng_status st;
        if (it->image) {
            st = eng_sched_submit_image(m->sched, it->data, it->len, &q, NULL);
        } else if (!m->model) {
            st = eng_sched_submit(m->sched, it->data, it->len, &q, NULL);
        } else {
            int64_t t0 = srv_now_ns();
            int n_ids = 0, trunc = 0;
            st = eng_tokenize(m->model, it->data, it->len, ids, m->info.max_positions, &n_ids,
                              &trunc);
            r->tok_ns += srv_now_ns() - t0;
            if (st == ENG_OK && trunc && !r->truncate)
                st = ENG_ERR_TOO_LONG;   /* srv_fail_status says why */
            else if (st == ENG_OK)
                st = eng_sched_submit_ids(m->sched, ids, n_ids, &q, NULL);
        }
        if (st != ENG_OK) {
            srv_item_unhold(r);
            srv_fail_status(r, i, st);
        }
    }
}

static void local_zero_shot_done(srv_zs_job *j, eng_status st, const char *why)
{
    srv_req *r = j->user;
    r->zs_st = st;
    snprintf(r->zs_why, sizeof r->zs_why, "%s", why);
    srv_item_done(&r->zs_item, 0, 0);
}

/* On the model's zero-shot threads (zs_pool.c), not on this epoll thread: a
 * label set the model has not seen is embedded there, and the connections
 * this thread serves go on meanwhile. */
static int local_zero_shot(srv_req *r)
{
    r->zs_item.r = r;
    if (srv_suspend(r)) {   /* (failing, it answers r on resuming) */
        srv_item_hold(r);
        r->zs_job = (srv_zs_job){.ls = &r->zs, .features = r->vals, .n = r->n,
                                 .probs = r->zs_probs, .top = r->zs_top,
                                 .done = local_zero_shot_done, .user = r};
        srv_zs_pool_submit(r->m->zs_pool, &r->zs_job);
        srv_release(r);
    }
    return 0;
}

static uint64_t local_queue_depth(srv_model *m)
{
    eng_sched_stats st;
    eng_sched_get_stats(m->sched, &st);
    return st.queued;
}

static void local_close(srv *s)
{
    for (int i = 0; s->models && i < s->n_models; i++) {
        eng_sched_free(s->models[i].sched);   /* waits for whatever it still runs */
        srv_zs_pool_free(s->models[i].zs_pool);   /* as does this */
        eng_model_free(s->models[i].model);
        free(s->models[i].labels);
    }
}

const srv_backend srv_backend_local = {
    .name = "local",
    .open = local_open,
    .submit = local_submit,
    .tokenize = tei_tokenize,
    .zero_shot = local_zero_shot,
    .queue_depth = local_queue_depth,
    .close = local_close,
};
