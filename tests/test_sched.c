/* test_sched.c: the batching scheduler's behaviour with the null model
 * (src/scheduler.c): results through callbacks and tickets, overload, a
 * deadline expiring while the only worker is busy, priority order, max_wait
 * coalescing, the token budget, a failing item failing alone, shutdown, the
 * statistics' invariant, and an image refused by a text model. Timing bounds are generous (ThreadSanitizer and
 * a loaded 2-core machine); each still fails if the mechanism is missing. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "testutil.h"

/* A request blocked behind a busy worker must time out within this much of
 * its deadline, while the blocking batch still runs for much longer. */
#define TIMEOUT_SLACK_MS 150
#define BLOCK_MS 1500
#define SEQUENTIAL_N 4000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The null model's answer for k words of len bytes each (see engine.h). */
static float null_n(int k)
{
    return (float)(k + 2);
}

static float null_sum(int k, int len)
{
    return (float)((101 + 102 + (long)k * (1000 + len)) % 4096);
}

static char *words(int k, int len)
{
    char *t = malloc((size_t)k * (size_t)(len + 1) + 1);
    char *p = t;
    for (int i = 0; i < k; i++) {
        memset(p, 'a' + i % 26, (size_t)len);
        p += len;
        *p++ = ' ';
    }
    *p = '\0';
    return t;
}

/* Completion log shared by the callbacks of one test. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cv = PTHREAD_COND_INITIALIZER;
enum { LOG_MAX = 256 };
static struct {
    int n;
    intptr_t tag[LOG_MAX];
    eng_status status[LOG_MAX];
    int batch[LOG_MAX];
    float out0[LOG_MAX], out1[LOG_MAX];
    double at_ms[LOG_MAX];
} done_log;

static void log_reset(void)
{
    pthread_mutex_lock(&log_mu);
    memset(&done_log, 0, sizeof done_log);
    pthread_mutex_unlock(&log_mu);
}

static void on_done(const eng_sched_result *r)
{
    pthread_mutex_lock(&log_mu);
    int i = done_log.n++;
    if (i < LOG_MAX) {
        done_log.tag[i] = (intptr_t)r->user;
        done_log.status[i] = r->status;
        done_log.batch[i] = r->batch_size;
        done_log.out0[i] = r->out ? r->out[0] : -1.0f;
        done_log.out1[i] = r->out ? r->out[1] : -1.0f;
        done_log.at_ms[i] = now_ms();
    }
    pthread_cond_broadcast(&log_cv);
    pthread_mutex_unlock(&log_mu);
}

static int log_wait(int n, double timeout_ms)
{
    double end = now_ms() + timeout_ms;
    pthread_mutex_lock(&log_mu);
    while (done_log.n < n && now_ms() < end) {
        pthread_mutex_unlock(&log_mu);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&log_mu);
    }
    int got = done_log.n;
    pthread_mutex_unlock(&log_mu);
    return got;
}

static eng_sched *make(int max_batch, int64_t max_wait_us, int queue, int batch_us,
                       int token_ns)
{
    eng_sched_params p = eng_sched_default_params();
    p.n_workers = 1;
    p.threads_per_worker = 1;
    p.max_batch_size = max_batch;
    p.max_wait_us = max_wait_us;
    p.queue_capacity = queue;
    p.null_batch_us = batch_us;
    p.null_token_ns = token_ns;
    eng_sched *s = NULL;
    eng_status st = eng_sched_create(&p, &s);
    ck_assert_msg(st == ENG_OK, "create: %s", eng_last_error());
    return s;
}

static eng_sched_req req_cb(int prio, int64_t timeout_us, intptr_t tag)
{
    eng_sched_req r = eng_sched_default_req();
    r.priority = prio;
    r.timeout_us = timeout_us;
    r.done = on_done;
    r.user = (void *)tag;
    return r;
}

/* Spins until the worker has taken everything queued (it is then running). */
static void wait_queue_empty(eng_sched *s)
{
    eng_sched_stats st;
    for (int i = 0; i < 5000; i++) {
        eng_sched_get_stats(s, &st);
        if (st.queued == 0)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("the worker never took the queued request");
}

static void check_invariant(eng_sched *s)
{
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    ck_assert_uint_eq(st.submitted, st.completed + st.rejected + st.timed_out + st.failed);
}

START_TEST(results_callback_and_ticket)
{
    log_reset();
    eng_sched *s = make(8, 0, 64, 0, 0);
    char *t = words(5, 3);
    eng_sched_req r = req_cb(0, 0, 7);
    ck_assert_int_eq(eng_sched_submit(s, t, strlen(t), &r, NULL), ENG_OK);
    ck_assert_int_eq(log_wait(1, 5000), 1);
    ck_assert_int_eq(done_log.status[0], ENG_OK);
    ck_assert_int_eq(done_log.tag[0], 7);
    ck_assert_float_eq(done_log.out0[0], null_n(5));
    ck_assert_float_eq(done_log.out1[0], null_sum(5, 3));

    /* A ticket, embedding task. */
    eng_sched_ticket *tk = NULL;
    eng_sched_req e = eng_sched_default_req();
    e.task = ENG_TASK_EMBED;
    ck_assert_int_eq(eng_sched_submit(s, t, strlen(t), &e, &tk), ENG_OK);
    ck_assert_ptr_nonnull(tk);
    eng_sched_result res;
    ck_assert_int_eq(eng_sched_wait(s, tk, &res), ENG_OK);
    ck_assert_int_eq(res.n_out, 4);
    ck_assert_int_eq(res.n_tokens, 7);
    ck_assert_float_eq(res.out[0], null_n(5));
    ck_assert_float_eq(res.out[1], null_sum(5, 3));
    ck_assert_float_eq(res.out[2], 101.0f);
    ck_assert_float_eq(res.out[3], 102.0f);
    ck_assert_ptr_null(res.probs);
    eng_sched_release(s, tk);

    /* A classify ticket carries probabilities and the label. */
    ck_assert_int_eq(eng_sched_submit(s, t, strlen(t), NULL, &tk), ENG_OK);
    ck_assert_int_eq(eng_sched_wait(s, tk, &res), ENG_OK);
    ck_assert_ptr_nonnull(res.probs);
    ck_assert_float_eq_tol(res.probs[0] + res.probs[1], 1.0f, 1e-6f);
    ck_assert_int_eq(res.label, res.out[1] > res.out[0] ? 1 : 0);
    eng_sched_release(s, tk);

    /* No callback and no ticket pointer is refused. */
    ck_assert_int_eq(eng_sched_submit(s, t, strlen(t), &e, NULL), ENG_ERR_INVALID_ARG);
    free(t);
    eng_sched_free(s);
}
END_TEST

START_TEST(overload_rejects_at_once)
{
    log_reset();
    eng_sched *s = make(1, 0, 4, 300 * 1000, 0);   /* every batch takes 300 ms */
    eng_sched_req r = req_cb(0, 0, 0);
    ck_assert_int_eq(eng_sched_submit(s, "x", 1, &r, NULL), ENG_OK);
    wait_queue_empty(s);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(eng_sched_submit(s, "x", 1, &r, NULL), ENG_OK);
    double t0 = now_ms();
    ck_assert_int_eq(eng_sched_submit(s, "x", 1, &r, NULL), ENG_ERR_OVERLOADED);
    ck_assert_msg(now_ms() - t0 < 50.0, "an overloaded submit must not wait");
    eng_sched_shutdown(s);
    /* Shutdown finishes every accepted request, then refuses new ones. */
    ck_assert_int_eq(log_wait(5, 1), 5);
    ck_assert_int_eq(eng_sched_submit(s, "x", 1, &r, NULL), ENG_ERR_SHUTDOWN);
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    ck_assert_uint_eq(st.completed, 5);
    ck_assert_uint_eq(st.rejected, 2);
    check_invariant(s);
    eng_sched_free(s);
}
END_TEST

START_TEST(deadline_fires_while_worker_busy)
{
    log_reset();
    eng_sched *s = make(1, 0, 16, BLOCK_MS * 1000, 0);
    eng_sched_req blocker = req_cb(0, 0, 1);
    double t0 = now_ms();
    ck_assert_int_eq(eng_sched_submit(s, "x", 1, &blocker, NULL), ENG_OK);
    wait_queue_empty(s);
    eng_sched_req late = req_cb(0, 20 * 1000, 2);   /* 20 ms deadline */
    double t1 = now_ms();
    ck_assert_int_eq(eng_sched_submit(s, "y", 1, &late, NULL), ENG_OK);
    ck_assert_int_eq(log_wait(1, BLOCK_MS), 1);
    ck_assert_int_eq(done_log.tag[0], 2);
    ck_assert_int_eq(done_log.status[0], ENG_ERR_TIMEOUT);
    ck_assert_int_eq(done_log.batch[0], 0);
    double fired = done_log.at_ms[0] - t1;
    ck_assert_msg(fired >= 19.0 && fired < 20.0 + TIMEOUT_SLACK_MS,
                  "timed out after %.1f ms, want ~20", fired);
    ck_assert_int_eq(log_wait(2, 5000), 2);
    ck_assert_int_eq(done_log.status[1], ENG_OK);
    ck_assert_msg(done_log.at_ms[1] - t0 >= BLOCK_MS - 1, "the blocker ran too short");
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    ck_assert_uint_eq(st.timed_out, 1);
    check_invariant(s);
    eng_sched_free(s);
}
END_TEST

START_TEST(priorities_then_fifo)
{
    log_reset();
    /* 1 ms per token: the 100-token blocker holds the worker for 100 ms
     * while the others queue; each of them takes 2 ms. */
    eng_sched *s = make(1, 0, 64, 0, 1000 * 1000);
    char *big = words(98, 1);
    eng_sched_req r = req_cb(0, 0, -1);
    ck_assert_int_eq(eng_sched_submit(s, big, strlen(big), &r, NULL), ENG_OK);
    wait_queue_empty(s);
    enum { N = 16 };
    for (int i = 0; i < N; i++) {
        r = req_cb(3 - i % 4, 0, i);
        ck_assert_int_eq(eng_sched_submit(s, "", 0, &r, NULL), ENG_OK);
    }
    ck_assert_int_eq(log_wait(N + 1, 10000), N + 1);
    /* Expected: priority 0 (i = 3, 7, 11, 15), then 1 (2, 6, ...), ... */
    int k = 1;
    for (int prio = 0; prio < 4; prio++)
        for (int i = 3 - prio; i < N; i += 4, k++)
            ck_assert_msg(done_log.tag[k] == i, "position %d: got %d, want %d", k,
                          (int)done_log.tag[k], i);
    free(big);
    eng_sched_free(s);
}
END_TEST

/* Requests without a deadline go through the lock-free inbox, those with one
 * straight into the queue under the lock: mixed, they still run in the order
 * they were submitted. */
START_TEST(fifo_across_deadline_and_plain)
{
    log_reset();
    eng_sched *s = make(1, 0, 64, 0, 1000 * 1000);
    char *big = words(48, 1);   /* holds the worker for 50 ms */
    eng_sched_req r = req_cb(0, 0, -1);
    ck_assert_int_eq(eng_sched_submit(s, big, strlen(big), &r, NULL), ENG_OK);
    wait_queue_empty(s);
    enum { N = 12 };
    for (int i = 0; i < N; i++) {
        r = req_cb(0, i % 3 == 0 ? 60 * 1000 * 1000 : 0, i);
        ck_assert_int_eq(eng_sched_submit(s, "", 0, &r, NULL), ENG_OK);
    }
    ck_assert_int_eq(log_wait(N + 1, 10000), N + 1);
    for (int i = 0; i < N; i++)
        ck_assert_msg(done_log.tag[i + 1] == i, "position %d: got %d", i + 1,
                      (int)done_log.tag[i + 1]);
    free(big);
    eng_sched_free(s);
}
END_TEST

START_TEST(max_wait_coalesces)
{
    log_reset();
    eng_sched *s = make(8, 400 * 1000, 64, 0, 0);   /* wait up to 400 ms */
    double t0 = now_ms();
    for (int i = 0; i < 5; i++) {
        eng_sched_req r = req_cb(0, 0, i);
        ck_assert_int_eq(eng_sched_submit(s, "a b", 3, &r, NULL), ENG_OK);
    }
    ck_assert_int_eq(log_wait(5, 5000), 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(done_log.batch[i], 5);
    ck_assert_msg(done_log.at_ms[0] - t0 >= 390.0, "the batch left before max_wait");
    /* A full batch leaves at once. */
    log_reset();
    t0 = now_ms();
    for (int i = 0; i < 8; i++) {
        eng_sched_req r = req_cb(0, 0, i);
        ck_assert_int_eq(eng_sched_submit(s, "a b", 3, &r, NULL), ENG_OK);
    }
    ck_assert_int_eq(log_wait(8, 5000), 8);
    ck_assert_int_eq(done_log.batch[0], 8);
    ck_assert_msg(done_log.at_ms[7] - t0 < 300.0, "a full batch waited for max_wait");
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    ck_assert_uint_eq(st.batches, 2);
    ck_assert_uint_eq(st.batch_hist[5], 1);
    ck_assert_uint_eq(st.batch_hist[8], 1);
    ck_assert(st.mean_batch > 6.4 && st.mean_batch < 6.6);
    eng_sched_free(s);
}
END_TEST

START_TEST(token_budget_respected)
{
    log_reset();
    eng_sched_params p = eng_sched_default_params();
    p.n_workers = 1;
    p.threads_per_worker = 1;
    p.max_batch_tokens = 100;   /* below the null model's 128 positions */
    eng_sched *s = NULL;
    ck_assert_int_eq(eng_sched_create(&p, &s), ENG_ERR_INVALID_ARG);
    ck_assert_ptr_null(s);

    p.max_batch_tokens = 128;
    p.max_wait_us = 200 * 1000;
    ck_assert_int_eq(eng_sched_create(&p, &s), ENG_OK);
    char *t = words(38, 2);   /* 40 tokens: 3 fit in 128 */
    for (int i = 0; i < 10; i++) {
        eng_sched_req r = req_cb(0, 0, i);
        ck_assert_int_eq(eng_sched_submit(s, t, strlen(t), &r, NULL), ENG_OK);
    }
    ck_assert_int_eq(log_wait(10, 5000), 10);
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    for (int k = 4; k <= ENG_SCHED_MAX_BATCH; k++)
        ck_assert_uint_eq(st.batch_hist[k], 0);
    ck_assert_uint_eq(st.batch_hist[3], 3);   /* 3 + 3 + 3 + 1, FIFO */
    free(t);
    eng_sched_free(s);
}
END_TEST

START_TEST(failing_item_fails_alone)
{
    log_reset();
    eng_sched *s = make(8, 300 * 1000, 64, 0, 0);
    const int32_t good[4] = {101, 1003, 1004, 102};
    const int32_t bad[4] = {101, -5, 1004, 102};
    for (int i = 0; i < 4; i++) {
        eng_sched_req r = req_cb(0, 0, i);
        ck_assert_int_eq(eng_sched_submit_ids(s, i == 2 ? bad : good, 4, &r, NULL), ENG_OK);
    }
    ck_assert_int_eq(log_wait(4, 5000), 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(done_log.batch[i], 4);
        ck_assert_int_eq(done_log.status[i], done_log.tag[i] == 2 ? ENG_ERR_INVALID_ARG : ENG_OK);
        if (done_log.tag[i] != 2)
            ck_assert_float_eq(done_log.out1[i], (float)((101 + 1003 + 1004 + 102) % 4096));
    }
    /* Refused at submit: too long, empty, bad priority, bad UTF-8 is the
     * real tokenizer's business (the null one splits bytes). */
    int32_t longer[ENG__SCHED_NULL_POSITIONS + 1] = {0};
    eng_sched_req r = req_cb(0, 0, 9);
    ck_assert_int_eq(eng_sched_submit_ids(s, longer, ENG__SCHED_NULL_POSITIONS + 1, &r, NULL),
                     ENG_ERR_TOO_LONG);
    ck_assert_int_eq(eng_sched_submit_ids(s, good, 0, &r, NULL), ENG_ERR_INVALID_ARG);
    r.priority = ENG_SCHED_PRIORITIES;
    ck_assert_int_eq(eng_sched_submit_ids(s, good, 4, &r, NULL), ENG_ERR_INVALID_ARG);
    eng_sched_shutdown(s);
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.completed, 3);
    ck_assert_uint_eq(st.rejected, 3);
    check_invariant(s);
    eng_sched_free(s);
}
END_TEST

/* One client, one request at a time, with pauses around the workers' idle
 * polling period: a wake-up lost between polling and sleeping hangs here. */
/* Run twice: with the default idle spin, and with none, so that every request
 * finds the worker asleep; odd requests carry a (far) deadline, so they take
 * the locked path instead of the inbox. */
START_TEST(sequential_requests_never_stall)
{
    eng_sched_params p = eng_sched_default_params();
    p.n_workers = 1;
    p.threads_per_worker = 1;
    p.max_batch_size = 8;
    p.idle_spin_us = _i ? 0 : p.idle_spin_us;
    eng_sched *s = NULL;
    ck_assert_int_eq(eng_sched_create(&p, &s), ENG_OK);
    for (int i = 0; i < SEQUENTIAL_N; i++) {
        eng_sched_ticket *t;
        eng_sched_result res;
        eng_sched_req r = eng_sched_default_req();
        r.timeout_us = i % 2 ? 60 * 1000 * 1000 : 0;
        ck_assert_int_eq(eng_sched_submit(s, "a b", 3, &r, &t), ENG_OK);
        ck_assert_int_eq(eng_sched_wait(s, t, &res), ENG_OK);
        eng_sched_release(s, t);
        struct timespec ts = {0, (i % 40) * 1000};   /* 0..39 us */
        nanosleep(&ts, NULL);
    }
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    ck_assert_uint_eq(st.completed, SEQUENTIAL_N);
    eng_sched_free(s);
}
END_TEST

START_TEST(bad_params_refused)
{
    eng_sched_params p = eng_sched_default_params();
    eng_sched *s = NULL;
    p.max_batch_size = 0;
    ck_assert_int_eq(eng_sched_create(&p, &s), ENG_ERR_INVALID_ARG);
    p = eng_sched_default_params();
    p.n_workers = 4096;
    p.threads_per_worker = 1;
    ck_assert_int_eq(eng_sched_create(&p, &s), ENG_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eng_last_error(), "usable cores"));
    p = eng_sched_default_params();
    p.cpus = "not-a-list";
    ck_assert_int_eq(eng_sched_create(&p, &s), ENG_ERR_INVALID_ARG);
    p = eng_sched_default_params();
    p.idle_spin_us = -1;
    ck_assert_int_eq(eng_sched_create(&p, &s), ENG_ERR_INVALID_ARG);
    ck_assert_ptr_null(s);
}
END_TEST

/* The null model takes texts: an image is refused at once, never called back. */
START_TEST(image_to_text_model_refused)
{
    eng_sched_params p = eng_sched_default_params();
    eng_sched *s = NULL;
    ck_assert_int_eq(eng_sched_create(&p, &s), ENG_OK);
    eng_sched_req rq = eng_sched_default_req();
    rq.done = on_done;
    log_reset();
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ck_assert_int_eq(eng_sched_submit_image(s, png_magic, sizeof png_magic, &rq, NULL),
                     ENG_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(eng_last_error(), "not images"));
    eng_sched_shutdown(s);
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    ck_assert_uint_eq(st.rejected, 1);
    ck_assert_int_eq(done_log.n, 0);
    eng_sched_free(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("sched");
    TCase *tc = tcase_create("null model");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, results_callback_and_ticket);
    tcase_add_test(tc, overload_rejects_at_once);
    tcase_add_test(tc, deadline_fires_while_worker_busy);
    tcase_add_test(tc, priorities_then_fifo);
    tcase_add_test(tc, fifo_across_deadline_and_plain);
    tcase_add_test(tc, max_wait_coalesces);
    tcase_add_test(tc, token_budget_respected);
    tcase_add_test(tc, failing_item_fails_alone);
    tcase_add_loop_test(tc, sequential_requests_never_stall, 0, 2);
    tcase_add_test(tc, bad_params_refused);
    tcase_add_test(tc, image_to_text_model_refused);
    suite_add_tcase(su, tc);
    return test_run_suite(su);
}
