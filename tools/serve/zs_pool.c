/* zs_pool.c: zero-shot scoring off the threads that read requests (engine
 * serve's epoll threads, engine worker's reader). A label set the model has
 * not seen costs its prompts' text embeddings (tenths of a second for
 * CLIP-B/32's 80 prompts); run there, it held up every request behind it.
 *
 * SRV_ZS_THREADS threads, each with its own context (made at its first job),
 * take jobs in arrival order, except that a job whose label set another
 * thread is scoring waits for it: the library's label-set cache computes a
 * set on every thread that misses it at once, so two entries of the same new
 * set would embed it twice; one after the other, the second one hits. While
 * one thread embeds a new set, the other scores the cached sets' requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* Two: one for a new label set, one for the requests of cached ones behind
 * it; each holds a context's scratch, and the text tower's passes already use
 * the context's threads. */
#define SRV_ZS_THREADS 2

struct srv_zs_pool {
    const eng_model *model;
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* a job queued or finished, or stopping */
    srv_zs_job *head, *tail;
    uint64_t running[SRV_ZS_THREADS];   /* the label sets being scored */
    int busy[SRV_ZS_THREADS];
    int stop;
    int n_started;
    pthread_t threads[SRV_ZS_THREADS];
    struct zs_thread_arg {
        srv_zs_pool *p;
        int slot;
    } args[SRV_ZS_THREADS];
};

/* FNV-1a over what names a set in the library's cache (template, labels,
 * ids); a collision only makes two sets wait for each other. */
static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t label_set_key(const eng_label_set *ls)
{
    uint64_t h = 0xcbf29ce484222325ull;
    if (ls->templ)
        h = fnv(h, ls->templ, strlen(ls->templ) + 1);
    for (int l = 0; l < ls->n_labels; l++) {
        h = fnv(h, ls->labels[l], strlen(ls->labels[l]) + 1);
        if (ls->ids)
            h = fnv(fnv(h, &ls->ids[l].n_ids, sizeof ls->ids[l].n_ids), ls->ids[l].ids,
                    (size_t)ls->ids[l].n_ids * sizeof *ls->ids[l].ids);
    }
    return h;
}

/* The first queued job whose set no other thread is scoring, unlinked; NULL
 * when there is none. Under p->mu. */
static srv_zs_job *take(srv_zs_pool *p)
{
    for (srv_zs_job **at = &p->head, *prev = NULL; *at; prev = *at, at = &(*at)->next) {
        srv_zs_job *j = *at;
        int taken = 0;
        for (int t = 0; t < SRV_ZS_THREADS; t++)
            taken |= p->busy[t] && p->running[t] == j->key;
        if (taken)
            continue;
        *at = j->next;
        if (p->tail == j)
            p->tail = prev;
        return j;
    }
    return NULL;
}

static void *zs_thread(void *arg)
{
    srv_zs_pool *p = ((struct zs_thread_arg *)arg)->p;
    const int slot = ((struct zs_thread_arg *)arg)->slot;
    eng_ctx *ctx = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        srv_zs_job *j = take(p);
        if (!j) {
            if (p->stop && !p->head)
                break;
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        p->busy[slot] = 1;
        p->running[slot] = j->key;
        pthread_mutex_unlock(&p->mu);
        j->t_start = srv_now_ns();
        eng_status st;
        char why[256] = "";
        if (!ctx && eng_ctx_init(p->model, NULL, &ctx) != ENG_OK) {
            st = ENG_ERR_NOMEM;   /* as engine serve has answered it */
            snprintf(why, sizeof why, "%s", eng_last_error());
        } else if ((st = eng_zero_shot_scores(ctx, j->ls, j->features, j->n, j->probs, j->top))) {
            snprintf(why, sizeof why, "%s", eng_ctx_last_error(ctx));
        }
        j->done(j, st, why);   /* j may be gone after this */
        pthread_mutex_lock(&p->mu);
        p->busy[slot] = 0;
        pthread_cond_broadcast(&p->cv);   /* the jobs of its set may go now */
    }
    pthread_mutex_unlock(&p->mu);
    eng_ctx_free(ctx);
    return NULL;
}

srv_zs_pool *srv_zs_pool_create(const eng_model *model)
{
    srv_zs_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->model = model;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int t = 0; t < SRV_ZS_THREADS; t++) {
        p->args[t] = (struct zs_thread_arg){p, t};
        if (pthread_create(&p->threads[t], NULL, zs_thread, &p->args[t]))
            break;
        p->n_started++;
    }
    if (p->n_started == 0) {
        srv_zs_pool_free(p);
        return NULL;
    }
    return p;
}

void srv_zs_pool_submit(srv_zs_pool *p, srv_zs_job *j)
{
    j->key = label_set_key(j->ls);
    j->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void srv_zs_pool_free(srv_zs_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->n_started; t++)
        pthread_join(p->threads[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
