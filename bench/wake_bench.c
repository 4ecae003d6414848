/* wake_bench.c: build/wake-bench, the machine's floor under the scheduler's
 * light-load queueing time (issue 3): how long a thread takes to see a
 * request posted to it, once asleep on a condition variable (what an idle
 * worker does after its idle spin) and once polling (what it does during the
 * spin), with the posts at random gaps of 0.5-1.5 ms (about 1,000 per
 * second, bench/serve.sh's light load). No engine code runs: whatever the
 * scheduler adds comes on top of these.
 *
 *   build/wake-bench [--posts N]     (default 3000; prints p50/p99/max in us)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"

#define GAP_MIN_NS 500000
#define GAP_SPREAD_NS 1000000

/* One run: the waiter records, for each post, now minus the post's time. */
typedef struct {
    int polling;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int64_t posted;   /* time of the last post; 0 before the first */
    atomic_int stop;
    double *lat_us;
    int n;
} run;

static void *waiter(void *arg)
{
    run *r = arg;
    int64_t seen = 0;
    pthread_mutex_lock(&r->mu);
    while (!atomic_load(&r->stop)) {
        int64_t p = atomic_load(&r->posted);
        if (p != seen) {
            r->lat_us[r->n++] = (double)(bench_now_ns() - p) / 1e3;
            seen = p;
        } else if (r->polling) {
            pthread_mutex_unlock(&r->mu);
            while (atomic_load(&r->posted) == seen && !atomic_load(&r->stop))
                __builtin_ia32_pause();
            pthread_mutex_lock(&r->mu);
        } else {
            pthread_cond_wait(&r->cv, &r->mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void measure(int polling, int posts)
{
    run r = { .polling = polling, .lat_us = malloc(sizeof(double) * (size_t)posts) };
    if (!r.lat_us) {
        fprintf(stderr, "wake-bench: out of memory\n");
        exit(1);
    }
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    pthread_t th;
    pthread_create(&th, NULL, waiter, &r);
    unsigned seed = 7;
    for (int i = 0; i < posts; i++) {
        long gap = GAP_MIN_NS + (long)(rand_r(&seed) % GAP_SPREAD_NS);
        struct timespec ts = { 0, gap };
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&r.mu);
        atomic_store(&r.posted, bench_now_ns());
        pthread_cond_signal(&r.cv);
        pthread_mutex_unlock(&r.mu);
    }
    pthread_mutex_lock(&r.mu);
    atomic_store(&r.stop, 1);
    pthread_cond_signal(&r.cv);
    pthread_mutex_unlock(&r.mu);
    pthread_join(th, NULL);
    qsort(r.lat_us, (size_t)r.n, sizeof(double), bench_cmp_double);
    if (r.n > 0)
        printf("%-8s %d posts: p50 %.1f us, p99 %.1f us, max %.1f us\n",
               polling ? "polling" : "sleeping", r.n, r.lat_us[r.n / 2],
               r.lat_us[(size_t)r.n * 99 / 100], r.lat_us[r.n - 1]);
    free(r.lat_us);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
}

int main(int argc, char **argv)
{
    int posts = 3000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--posts") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            posts = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: wake-bench [--posts N]\n");
            return 2;
        }
    }
    measure(0, posts);
    measure(1, posts);
    return 0;
}
