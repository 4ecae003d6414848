/* test_sched_stress.c: many producers against the scheduler (null model), with
 * random priorities, deadlines, tasks, tickets, failing items and a small
 * queue, and a shutdown in the middle. Every accepted request must complete
 * exactly once with the right result or the right status; every refused one
 * never. Meant to run under ThreadSanitizer (make tsan). ENG_SCHED_STRESS_N
 * sets the number of requests (default 100000). */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "testutil.h"

#define PRODUCERS 64
#define DEFAULT_N 100000
#define SHUTDOWN_AT 0.75  /* fraction of the submits after which to shut down */
#define OVERLOAD_BACKOFF_NS 200000

typedef struct {
    int32_t ids[8];
    int n_ids;
    int bad;                    /* holds an id out of the vocabulary */
    eng_task task;
    int has_deadline;
    eng_status submit_status;
    atomic_int completions;
    atomic_int wrong;           /* a wrong status or output was delivered */
} request;

static request *reqs;
static int n_reqs;
static eng_sched *sched;
static atomic_int submits_done;

static int expected_ok(const request *q, const eng_sched_result *r)
{
    long sum = 0;
    for (int i = 0; i < q->n_ids; i++)
        sum += q->ids[i];
    if (r->n_tokens != q->n_ids || r->task != q->task)
        return 0;
    if (r->out[0] != (float)q->n_ids || r->out[1] != (float)(sum % 4096))
        return 0;
    return q->task == ENG_TASK_CLASSIFY ? r->n_out == 2 && r->probs != NULL
                                        : r->n_out == 4 && r->out[3] == 102.0f;
}

static void check_result(request *q, const eng_sched_result *r)
{
    int ok;
    if (r->status == ENG_ERR_TIMEOUT)
        ok = q->has_deadline && r->batch_size == 0 && r->worker == -1;
    else if (q->bad)
        ok = r->status == ENG_ERR_INVALID_ARG;
    else
        ok = r->status == ENG_OK && expected_ok(q, r);
    if (!ok)
        atomic_fetch_add(&q->wrong, 1);
    atomic_fetch_add(&q->completions, 1);
}

static void on_done(const eng_sched_result *r)
{
    check_result(r->user, r);
}

typedef struct {
    int first, count;
    unsigned seed;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (int i = p->first; i < p->first + p->count; i++) {
        request *q = &reqs[i];
        unsigned r = (unsigned)rand_r(&p->seed);
        eng_sched_req rq = eng_sched_default_req();
        rq.priority = (int)(r % ENG_SCHED_PRIORITIES);
        rq.task = q->task;
        /* A quarter carry a deadline of 0..2 ms: some expire in the queue. */
        rq.timeout_us = (r >> 4) % 4 == 0 ? 1 + (int64_t)((r >> 8) % 2000) : 0;
        rq.user = q;
        q->has_deadline = rq.timeout_us > 0;
        int ticket = (r >> 20) % 16 == 0;
        rq.done = ticket ? NULL : on_done;
        eng_sched_ticket *t = NULL;
        q->submit_status = eng_sched_submit_ids(sched, q->ids, q->n_ids, &rq, &t);
        if (ticket && q->submit_status == ENG_OK) {
            eng_sched_result res;
            eng_sched_wait(sched, t, &res);
            check_result(q, &res);
            eng_sched_release(sched, t);
        }
        if (q->submit_status == ENG_ERR_OVERLOADED) {
            /* Back off, as a client should, so that most requests get in. */
            struct timespec ts = {0, OVERLOAD_BACKOFF_NS};
            nanosleep(&ts, NULL);
        }
        atomic_fetch_add(&submits_done, 1);
    }
    return NULL;
}

START_TEST(stress_exactly_once)
{
    const char *env = getenv("ENG_SCHED_STRESS_N");
    n_reqs = env ? atoi(env) : DEFAULT_N;
    if (n_reqs < PRODUCERS)
        n_reqs = PRODUCERS;
    reqs = calloc((size_t)n_reqs, sizeof *reqs);
    ck_assert_ptr_nonnull(reqs);
    unsigned seed = 12345;
    for (int i = 0; i < n_reqs; i++) {
        request *q = &reqs[i];
        q->n_ids = 2 + rand_r(&seed) % 6;
        q->ids[0] = 101;
        for (int k = 1; k < q->n_ids - 1; k++)
            q->ids[k] = 1000 + rand_r(&seed) % 500;
        q->ids[q->n_ids - 1] = 102;
        q->bad = rand_r(&seed) % 50 == 0 && q->n_ids > 2;
        if (q->bad)
            q->ids[1] = ENG__SCHED_NULL_VOCAB + 7;
        q->task = rand_r(&seed) % 4 == 0 ? ENG_TASK_EMBED : ENG_TASK_CLASSIFY;
        atomic_init(&q->completions, 0);
        atomic_init(&q->wrong, 0);
    }

    eng_sched_params p = eng_sched_default_params();
    p.n_workers = 2;
    p.threads_per_worker = 1;
    p.max_batch_size = 16;
    p.max_wait_us = 100;
    p.queue_capacity = 512;      /* small enough to overload sometimes */
    p.null_token_ns = 300;       /* ~25 us per full batch: the queue builds up */
    ck_assert_int_eq(eng_sched_create(&p, &sched), ENG_OK);

    pthread_t th[PRODUCERS];
    producer pr[PRODUCERS];
    int per = n_reqs / PRODUCERS;
    for (int i = 0; i < PRODUCERS; i++) {
        pr[i].first = i * per;
        pr[i].count = i == PRODUCERS - 1 ? n_reqs - i * per : per;
        pr[i].seed = 777u + (unsigned)i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, produce, &pr[i]), 0);
    }
    while (atomic_load(&submits_done) < (int)(SHUTDOWN_AT * n_reqs)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    eng_sched_shutdown(sched);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);

    int accepted = 0, shut = 0, overloaded = 0, twice = 0, lost = 0, ghost = 0, wrong = 0;
    for (int i = 0; i < n_reqs; i++) {
        request *q = &reqs[i];
        int c = atomic_load(&q->completions);
        wrong += atomic_load(&q->wrong) != 0;
        if (q->submit_status == ENG_OK) {
            accepted++;
            lost += c == 0;
            twice += c > 1;
        } else {
            ghost += c != 0;
            shut += q->submit_status == ENG_ERR_SHUTDOWN;
            overloaded += q->submit_status == ENG_ERR_OVERLOADED;
        }
    }
    eng_sched_stats st;
    eng_sched_get_stats(sched, &st);
    printf("stress: %d requests, %d accepted, %d overloaded, %d after shutdown; "
           "%llu ok, %llu timed out, %llu failed, mean batch %.1f\n",
           n_reqs, accepted, overloaded, shut, (unsigned long long)st.completed,
           (unsigned long long)st.timed_out, (unsigned long long)st.failed, st.mean_batch);
    ck_assert_int_eq(lost, 0);
    ck_assert_int_eq(twice, 0);
    ck_assert_int_eq(ghost, 0);
    ck_assert_int_eq(wrong, 0);
    ck_assert_int_gt(shut, 0);   /* the shutdown really was in the middle */
    ck_assert_int_eq(accepted + shut + overloaded, n_reqs);
    ck_assert_uint_eq(st.submitted, (uint64_t)n_reqs);
    ck_assert_uint_eq(st.submitted, st.completed + st.rejected + st.timed_out + st.failed);
    ck_assert_uint_eq(st.completed + st.timed_out + st.failed, (uint64_t)accepted);
    ck_assert_uint_eq(st.queued, 0);
    eng_sched_free(sched);
    free(reqs);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("sched_stress");
    TCase *tc = tcase_create("stress");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stress_exactly_once);
    suite_add_tcase(su, tc);
    return test_run_suite(su);
}
