/* zs_pool.c: zero-shot scoring off the threads that read requests (engine
 * serve's epoll threads, engine worker's reader). A label set the model has
 * not seen costs its prompts' text embeddings (tenths of a second for
 * CLIP-B/32's 80 prompts); run there, it held up every request behind it.
 *
 * n threads (--zero-shot-threads), each with its own context (made at its
 * first job), take jobs in arrival order, except that a job whose label set
 * another thread is scoring waits for it: the library's label-set cache
 * computes a set on every thread that misses it at once, so two entries of the
 * same new set would embed it twice; one after the other, the second one hits.
 * While n - 1 threads embed new sets, the last one scores the cached sets'
 * requests; an n-th new set arriving meanwhile takes it too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

struct zs_thread {
    srv_zs_pool *p;
    pthread_t thread;
    int busy;                    /* under p->mu, as running */
    uint64_t running;            /* the label set being scored */
};

struct srv_zs_pool {
    const eng_model *model;
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* a job queued or finished, or stopping */
    srv_zs_job *head, *tail;
    int stop;
    int n_started;
    struct zs_thread *threads;   /* n_started of them run */
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
        for (int t = 0; t < p->n_started; t++)
            taken |= p->threads[t].busy && p->threads[t].running == j->key;
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
    struct zs_thread *me = arg;
    srv_zs_pool *p = me->p;
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
        me->busy = 1;
        me->running = j->key;
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
        me->busy = 0;
        pthread_cond_broadcast(&p->cv);   /* the jobs of its set may go now */
    }
    pthread_mutex_unlock(&p->mu);
    eng_ctx_free(ctx);
    return NULL;
}

srv_zs_pool *srv_zs_pool_create(const eng_model *model, int n_threads)
{
    srv_zs_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->model = model;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    /* n_started is read by take() on the threads already running: under mu. */
    pthread_mutex_lock(&p->mu);
    for (int t = 0; p->threads && t < n_threads; t++) {
        p->threads[t].p = p;
        if (pthread_create(&p->threads[t].thread, NULL, zs_thread, &p->threads[t]))
            break;
        p->n_started++;
    }
    pthread_mutex_unlock(&p->mu);
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
        pthread_join(p->threads[t].thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
