/* team.c: see team.h. Members wait for a run, and for each other at
 * barriers, by spinning a little and then sleeping on a condition variable,
 * so an idle context costs no CPU. The spin is for the ResNet forward pass
 * (src/vision/cnn.c), whose 20-odd barriers per call come every few hundred
 * microseconds at batch 1: spinning first measured 2-3% faster there on 2
 * threads than sleeping at once (pthread_barrier_wait). */
#include <pthread.h>
#include <stdlib.h>

#include "cpu.h"
#include "team.h"

/* Pause instructions before sleeping: 4096 took 74 us on the Zen 5 VM, longer
 * than a typical wait at a barrier, short enough that a member with nothing
 * to do soon gives its core back. */
enum { SPIN = 4096 };

struct eng__team {
    int n;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* a run started, or a barrier phase ended */
    atomic_ulong generation; /* bumped for each run, under lock */
    int quit;                /* guarded by lock */
    eng__team_fn fn;
    void *arg;
    /* The barrier: members arrived in the current phase, and the phase,
     * bumped (under lock) by the last member to arrive. */
    atomic_int arrived;
    atomic_uint phase;
};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spins, then sleeps, until *v differs from seen; v changes only under
 * t->lock with a broadcast of t->wake (or quit is set), so no wake-up is
 * missed. */
static void wait_ulong(eng__team *t, atomic_ulong *v, unsigned long seen)
{
    for (int i = 0; i < SPIN; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != seen)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&t->lock);
    while (atomic_load_explicit(v, memory_order_acquire) == seen && !t->quit)
        pthread_cond_wait(&t->wake, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

static void barrier_wait(eng__team *t)
{
    const unsigned ph = atomic_load_explicit(&t->phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&t->arrived, 1, memory_order_acq_rel) == t->n - 1) {
        /* Reset before the new phase shows, so no member arrives early at
         * the next barrier and finds the old count. */
        atomic_store_explicit(&t->arrived, 0, memory_order_relaxed);
        pthread_mutex_lock(&t->lock);
        atomic_store_explicit(&t->phase, ph + 1, memory_order_release);
        pthread_cond_broadcast(&t->wake);
        pthread_mutex_unlock(&t->lock);
        return;
    }
    for (int i = 0; i < SPIN; i++) {
        if (atomic_load_explicit(&t->phase, memory_order_acquire) != ph)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&t->lock);
    while (atomic_load_explicit(&t->phase, memory_order_acquire) == ph)
        pthread_cond_wait(&t->wake, &t->lock);
    pthread_mutex_unlock(&t->lock);
}

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
    /* Before any job can reach a tile instruction (see kernels/cpu.h). */
    eng__amx_thread_init();
    for (;;) {
        wait_ulong(t, &t->generation, seen);
        pthread_mutex_lock(&t->lock);
        if (t->quit) {
            pthread_mutex_unlock(&t->lock);
            return NULL;
        }
        seen = atomic_load_explicit(&t->generation, memory_order_relaxed);
        eng__team_fn fn = t->fn;
        void *arg = t->arg;
        pthread_mutex_unlock(&t->lock);
        fn(arg, m.tid, t->n);
        barrier_wait(t);
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
    pthread_cond_init(&t->wake, NULL);
    atomic_init(&t->generation, 0);
    atomic_init(&t->arrived, 0);
    atomic_init(&t->phase, 0);
    for (int i = 1; i < n; i++) {
        member *m = malloc(sizeof *m);
        if (m) {
            m->team = t;
            m->tid = i;
        }
        if (!m || pthread_create(&t->threads[i], NULL, member_main, m) != 0) {
            free(m);
            /* Runs and barriers count on n members, so stop the ones
             * already started and fail. */
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
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    for (int i = 1; i < t->n; i++)
        pthread_join(t->threads[i], NULL);
    pthread_cond_destroy(&t->wake);
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
    atomic_fetch_add_explicit(&t->generation, 1, memory_order_release);
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    fn(arg, 0, t->n);
    barrier_wait(t);
}

void eng__team_barrier(eng__team *t)
{
    if (t->n > 1)
        barrier_wait(t);
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
