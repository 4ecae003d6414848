/* team.c: see team.h. Members sleep on a condition variable between runs and
 * meet at a pthread barrier, so an idle context costs no CPU. */
#include <pthread.h>
#include <stdlib.h>

#include "team.h"

struct eng__team {
    int n;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t start;
    pthread_barrier_t barrier;
    unsigned long generation; /* bumped for each run; guarded by lock */
    int quit;                 /* guarded by lock */
    eng__team_fn fn;
    void *arg;
};

typedef struct {
    eng__team *team;
    int tid;
} member;

static void *member_main(void *p)
{
    member m = *(member *)p;
    free(p);
    eng__team *t = m.team;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&t->lock);
        while (t->generation == seen && !t->quit)
            pthread_cond_wait(&t->start, &t->lock);
        if (t->quit) {
            pthread_mutex_unlock(&t->lock);
            return NULL;
        }
        seen = t->generation;
        eng__team_fn fn = t->fn;
        void *arg = t->arg;
        pthread_mutex_unlock(&t->lock);
        fn(arg, m.tid, t->n);
        pthread_barrier_wait(&t->barrier);
    }
}

eng_status eng__team_create(eng__team **out, int n)
{
    *out = NULL;
    if (n < 1)
        return ENG_ERR_INVALID_ARG;
    eng__team *t = calloc(1, sizeof *t);
    if (!t)
        return ENG_ERR_NOMEM;
    t->n = n;
    t->threads = calloc((size_t)n, sizeof *t->threads);
    if (!t->threads) {
        free(t);
        return ENG_ERR_NOMEM;
    }
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->start, NULL);
    pthread_barrier_init(&t->barrier, NULL, (unsigned)n);
    for (int i = 1; i < n; i++) {
        member *m = malloc(sizeof *m);
        if (m) {
            m->team = t;
            m->tid = i;
        }
        if (!m || pthread_create(&t->threads[i], NULL, member_main, m) != 0) {
            free(m);
            /* Shrinking the team is not possible once the barrier counts n
             * members, so stop the ones already started and fail. */
            t->n = i;
            eng__team_free(t);
            return ENG_ERR_NOMEM;
        }
    }
    *out = t;
    return ENG_OK;
}

void eng__team_free(eng__team *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->quit = 1;
    pthread_cond_broadcast(&t->start);
    pthread_mutex_unlock(&t->lock);
    for (int i = 1; i < t->n; i++)
        pthread_join(t->threads[i], NULL);
    pthread_barrier_destroy(&t->barrier);
    pthread_cond_destroy(&t->start);
    pthread_mutex_destroy(&t->lock);
    free(t->threads);
    free(t);
}

int eng__team_size(const eng__team *t)
{
    return t->n;
}

void eng__team_run(eng__team *t, eng__team_fn fn, void *arg)
{
    if (t->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&t->lock);
    t->fn = fn;
    t->arg = arg;
    t->generation++;
    pthread_cond_broadcast(&t->start);
    pthread_mutex_unlock(&t->lock);
    fn(arg, 0, t->n);
    pthread_barrier_wait(&t->barrier);
}

void eng__team_barrier(eng__team *t)
{
    if (t->n > 1)
        pthread_barrier_wait(&t->barrier);
}

void eng__team_share(int n, int tid, int nt, int *lo, int *hi)
{
    long q = n / nt, r = n % nt;
    *lo = (int)(tid * q + (tid < r ? tid : r));
    *hi = *lo + (int)q + (tid < r ? 1 : 0);
}

void eng__team_counter_zero(eng__team_counter *c)
{
    atomic_store_explicit(&c->next, 0, memory_order_relaxed);
}

/* Relaxed: the items' data are published by the barriers around the run and
 * the counter only orders who gets which item. */
long eng__team_take(eng__team_counter *c, long n)
{
    return atomic_fetch_add_explicit(&c->next, n, memory_order_relaxed);
}
