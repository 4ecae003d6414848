/* scheduler.c: the dynamic batching scheduler of engine.h (eng_sched_*): the
 * request pool and priority queues, the workers that form and run batches,
 * the timer thread that expires queued requests at their deadline, and the
 * statistics. Placement lives in sched_topo.c, the model calls in
 * sched_backend.c.
 *
 * Concurrency design: a submit takes no lock. It reserves a place (one
 * atomic counter is both the queue bound and the shutdown gate), pops a slot
 * from a lock-free free list, fills it and pushes it onto a lock-free inbox.
 * One mutex guards everything else (the priority queues, the deadline heap,
 * the statistics) and is held only for O(1)-ish bookkeeping: a worker locks
 * it once per batch to retire the previous batch, move the inbox into the
 * queues and take the next batch. With one lock per request instead, a
 * single open-loop submitter and one worker spent a third of their time in
 * the mutex and in futex sleeps and wake-ups. A request with a deadline is
 * queued under the lock instead, so that the timer thread sees its deadline
 * at once. All requests live in a pool allocated at creation, so the request
 * path never allocates. A submit wakes a sleeping worker only when one sleeps
 * with nothing to do, or when a batch's worth has queued for one waiting to
 * fill a batch. Callbacks run outside the lock, in a batch, on the thread
 * that completed them. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "sched_backend.h"
#include "sched_hist.h"
#include "sched_topo.h"

#define NO_DEADLINE INT64_MAX
#define TIMER_CHUNK 64   /* requests the timer expires per lock hold */
/* An idle worker polls for eng_sched_params.idle_spin_us before it sleeps.
 * The default polls through a busy queue's gaps only (a futex sleep and
 * wake-up costs a few microseconds on both sides), not through a light
 * load's (1 ms at 1000 requests/s): on a shared 2-core machine (load average
 * 4-5) a worker polling up to 5 mean gaps was preempted for milliseconds at
 * a time. A long poll gives the CPU up every YIELD_NS so that it costs less
 * to whatever else wants the core. */
#define DEFAULT_IDLE_SPIN_US 20
#define YIELD_NS 50000

enum { SLOT_FREE, SLOT_QUEUED, SLOT_OWNED, SLOT_DONE };

/* One request. A slot is owned by the queue (QUEUED), by the worker or timer
 * that took it (OWNED: only that thread touches it, unlocked), or, for a
 * ticket, by the waiter once DONE. */
typedef struct {
    int32_t *ids;             /* max_positions entries in the pool's id slab */
    int n_ids;                /* 1 for an image */
    const void *data;         /* an image's encoded bytes, the caller's */
    size_t size;
    eng_task task;
    int prio;
    int state;
    int prev, next;           /* queue links */
    int inbox_next;           /* inbox link: the next slot's index + 1, 0 at the end */
    atomic_int free_next;     /* free-list link, the same way; atomic because a
                                 pop with a stale view reads it (see slot_alloc) */
    int heap_pos;             /* index in the deadline heap, -1 when absent */
    int64_t t_submit, deadline;
    eng_sched_done_fn done;   /* NULL: a ticket */
    void *user;
    eng_sched_result res;     /* a ticket's result, pointing into out */
    float *out;               /* a ticket's outputs: out_width + n_labels floats */
    pthread_cond_t cv;        /* a ticket's waiter */
} slot;

typedef struct {
    eng_sched *s;
    int index;
    pthread_t thread;
    eng__placement *pl;
    eng_sched_worker_info info;
    /* Node-local, allocated by the bound worker thread itself. */
    eng_ctx *ctx;
    int *batch;               /* slot indices of the batch */
    int *pick;                /* batch positions of one task's items */
    eng_seq *seqs;
    const void **data;        /* image models: the batch's encoded images */
    size_t *size;
    float *logits, *probs;    /* classify outputs */
    float *embed;             /* embed outputs, apart so one batch can mix tasks */
    int *labels;
    eng_status *item;
    eng_status *status;       /* per batch position */
    int *row;                 /* per batch position: its output row */
    eng_status init_status;
    char init_err[200];
} worker;

typedef struct {
    int head, tail;
} fifo;

struct eng_sched {
    eng_sched_params p;
    eng__backend be;
    int out_width;            /* max(n_labels, hidden) */
    int64_t max_wait_ns;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* idle workers */
    pthread_cond_t timer_cv;  /* the timer thread */
    pthread_cond_t ready_cv;  /* creation waits for the workers' start-up */

    slot *slots;
    int n_slots;
    int32_t *id_slab;
    float *out_slab;
    /* Lock-free submission. free_top: the free list's top slot index + 1 (0:
     * empty) in the low half, a tag bumped by every change in the high half.
     * inbox: submitted slots not yet queued, newest first (index + 1). pending:
     * requests accepted (or being accepted) and not yet taken by a worker or
     * the timer, the queue bound; pending_tokens their tokens. closed: stopping,
     * readable without the lock. */
    _Atomic uint64_t free_top;
    atomic_int inbox;
    atomic_int pending;
    atomic_long pending_tokens;
    atomic_int closed;
    /* Workers asleep on work_cv with nothing queued (woken by any submit), and
     * waiting for a batch to fill (woken when one has); waking: a wake-up is
     * on its way, so that further submits need not send another. */
    atomic_int idle_sleepers, fill_sleepers, waking;

    /* Under mu. */
    fifo q[ENG_SCHED_PRIORITIES];
    int queued;
    long queued_tokens;
    int *heap;                /* slot indices, earliest deadline first */
    int heap_n;
    int stopping;
    int joined;
    int started;              /* workers that finished start-up */

    worker *workers;
    int n_workers;
    pthread_t timer;
    int timer_running;
    hwloc_topology_t topo;
    eng__placement *plan;
    char warning[256];

    /* Statistics, under mu. */
    atomic_uint_fast64_t n_submitted, n_rejected;   /* refusals take no lock */
    uint64_t n_completed, n_timed_out, n_failed, n_batches;
    uint64_t batch_hist[ENG_SCHED_MAX_BATCH + 1];
    eng__hist queue_hist, compute_hist;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec to_timespec(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    return ts;
}

/* ---- Deadline heap (under mu) --------------------------------------------- */

static int heap_less(const eng_sched *s, int a, int b)
{
    return s->slots[s->heap[a]].deadline < s->slots[s->heap[b]].deadline;
}

static void heap_swap(eng_sched *s, int a, int b)
{
    int t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->slots[s->heap[a]].heap_pos = a;
    s->slots[s->heap[b]].heap_pos = b;
}

static void heap_up(eng_sched *s, int i)
{
    while (i > 0 && heap_less(s, i, (i - 1) / 2)) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(eng_sched *s, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->heap_n && heap_less(s, l, m))
            m = l;
        if (r < s->heap_n && heap_less(s, r, m))
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_push(eng_sched *s, int idx)
{
    s->heap[s->heap_n] = idx;
    s->slots[idx].heap_pos = s->heap_n++;
    heap_up(s, s->heap_n - 1);
}

static void heap_remove(eng_sched *s, int idx)
{
    int i = s->slots[idx].heap_pos;
    if (i < 0)
        return;
    s->slots[idx].heap_pos = -1;
    if (--s->heap_n == i)
        return;
    s->heap[i] = s->heap[s->heap_n];
    s->slots[s->heap[i]].heap_pos = i;
    heap_up(s, i);
    heap_down(s, s->slots[s->heap[i]].heap_pos);
}

/* ---- Queues (under mu) ------------------------------------------------------ */

static void queue_push(eng_sched *s, int idx)
{
    slot *sl = &s->slots[idx];
    fifo *f = &s->q[sl->prio];
    sl->next = -1;
    sl->prev = f->tail;
    if (f->tail >= 0)
        s->slots[f->tail].next = idx;
    else
        f->head = idx;
    f->tail = idx;
    sl->state = SLOT_QUEUED;
    s->queued++;
    s->queued_tokens += sl->n_ids;
}

/* Takes a queued request out of its queue and the heap; the caller owns it. */
static void queue_unlink(eng_sched *s, int idx)
{
    slot *sl = &s->slots[idx];
    fifo *f = &s->q[sl->prio];
    if (sl->prev >= 0)
        s->slots[sl->prev].next = sl->next;
    else
        f->head = sl->next;
    if (sl->next >= 0)
        s->slots[sl->next].prev = sl->prev;
    else
        f->tail = sl->prev;
    heap_remove(s, idx);
    sl->state = SLOT_OWNED;
    s->queued--;
    s->queued_tokens -= sl->n_ids;
    atomic_fetch_sub(&s->pending, 1);
    atomic_fetch_sub_explicit(&s->pending_tokens, sl->n_ids, memory_order_relaxed);
}

static int64_t oldest_submit(const eng_sched *s)
{
    int64_t t = INT64_MAX;
    for (int p = 0; p < ENG_SCHED_PRIORITIES; p++)
        if (s->q[p].head >= 0 && s->slots[s->q[p].head].t_submit < t)
            t = s->slots[s->q[p].head].t_submit;
    return t;
}

/* ---- Lock-free pool and inbox ------------------------------------------------ */

/* The free list is a stack (Treiber's). Every change bumps the tag in the top
 * word, so that a pop whose view went stale (its slot was popped and pushed
 * back meanwhile: the ABA problem) fails its compare-and-swap. */
static uint64_t free_word(uint64_t old_top, int idx_plus_1)
{
    return (((old_top >> 32) + 1) << 32) | (uint32_t)idx_plus_1;
}

static void slot_free(eng_sched *s, int idx)
{
    slot *sl = &s->slots[idx];
    sl->state = SLOT_FREE;
    uint64_t top = atomic_load_explicit(&s->free_top, memory_order_relaxed);
    do
        atomic_store_explicit(&sl->free_next, (int)(uint32_t)top, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->free_top, &top, free_word(top, idx + 1),
                                                  memory_order_release, memory_order_relaxed));
}

/* A free slot's index, or -1 when none is left. */
static int slot_alloc(eng_sched *s)
{
    uint64_t top = atomic_load_explicit(&s->free_top, memory_order_acquire);
    for (;;) {
        int idx = (int)(uint32_t)top - 1;
        if (idx < 0)
            return -1;
        int next = atomic_load_explicit(&s->slots[idx].free_next, memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&s->free_top, &top, free_word(top, next),
                                                  memory_order_acquire, memory_order_acquire))
            return idx;
    }
}

/* Pushes a filled slot onto the inbox. Sequentially consistent, like the
 * sleepers' counts: a worker counts itself asleep and then looks at the inbox,
 * a submit pushes and then looks at the count, so one of them sees the other
 * (no lost wake-up). */
static void inbox_push(eng_sched *s, int idx)
{
    int top = atomic_load_explicit(&s->inbox, memory_order_relaxed);
    do
        s->slots[idx].inbox_next = top;
    while (!atomic_compare_exchange_weak_explicit(&s->inbox, &top, idx + 1, memory_order_seq_cst,
                                                  memory_order_relaxed));
}

static int inbox_empty(eng_sched *s)
{
    return atomic_load(&s->inbox) == 0;
}

/* Moves the inbox into the priority queues, oldest first (under mu). */
static void drain_inbox(eng_sched *s)
{
    if (inbox_empty(s))
        return;
    int top = atomic_exchange(&s->inbox, 0), fifo_head = 0;
    while (top) {
        slot *sl = &s->slots[top - 1];
        int next = sl->inbox_next;
        sl->inbox_next = fifo_head;
        fifo_head = top;
        top = next;
    }
    for (int t = fifo_head; t;) {
        int idx = t - 1;
        t = s->slots[idx].inbox_next;
        queue_push(s, idx);
    }
}

/* ---- Completion --------------------------------------------------------------- */

/* Hands a result to its request's owner; the caller owns the slot (unlocked).
 * A ticket's result is copied into the slot; retire() publishes it. */
static void deliver(eng_sched *s, slot *sl, eng_sched_result *res)
{
    res->task = sl->task;
    res->user = sl->user;
    res->n_tokens = sl->n_ids;
    if (sl->done) {
        sl->done(res);
        return;
    }
    sl->res = *res;
    sl->res.out = NULL;
    sl->res.probs = NULL;
    if (res->out) {
        memcpy(sl->out, res->out, (size_t)res->n_out * sizeof(float));
        sl->res.out = sl->out;
    }
    if (res->probs) {
        memcpy(sl->out + s->out_width, res->probs, (size_t)s->be.n_labels * sizeof(float));
        sl->res.probs = sl->out + s->out_width;
    }
}

/* Counts a delivered request and frees its slot, or wakes its ticket's waiter
 * (under mu). */
static void retire(eng_sched *s, int idx, eng_status st)
{
    if (st == ENG_OK)
        s->n_completed++;
    else if (st == ENG_ERR_TIMEOUT)
        s->n_timed_out++;
    else
        s->n_failed++;
    slot *sl = &s->slots[idx];
    if (sl->done) {
        slot_free(s, idx);
    } else {
        sl->state = SLOT_DONE;
        pthread_cond_signal(&sl->cv);
    }
}

static void timeout_result(eng_sched_result *res, int64_t queue_ns)
{
    memset(res, 0, sizeof *res);
    res->status = ENG_ERR_TIMEOUT;
    res->label = -1;
    res->worker = -1;
    res->queue_ns = queue_ns;
}

/* ---- Workers ------------------------------------------------------------------ */

/* Polls briefly, unlocked, for a request (pending: the queue was empty when
 * this began) or the shutdown; returns 1 if one came (with mu held again
 * either way), 0 when the worker may sleep. */
static int spin_for_work(eng_sched *s)
{
    pthread_mutex_unlock(&s->mu);
    int64_t now = now_ns(), end = now + s->p.idle_spin_us * 1000, yield_at = now + YIELD_NS;
    int found = 0;
    while (!found && now < end) {
        for (int i = 0; i < 64 && !found; i++) {
            found = atomic_load_explicit(&s->pending, memory_order_relaxed) > 0 ||
                    atomic_load_explicit(&s->closed, memory_order_relaxed);
            __builtin_ia32_pause();
        }
        now = now_ns();
        if (now >= yield_at) {
            sched_yield();
            yield_at = now + YIELD_NS;
        }
    }
    pthread_mutex_lock(&s->mu);
    return found;
}

/* Sleeps on work_cv (under mu) until due (0: no limit), counted in *sleepers
 * so that submits know to wake it. Returns at once if, since the caller saw
 * queued_seen requests queued (mu may have been let go while spinning), the
 * inbox filled, a request with a deadline was queued, or the shutdown began
 * and wake_on_stop is set. */
static void sleep_for_work(eng_sched *s, atomic_int *sleepers, int64_t due, int wake_on_stop,
                           int queued_seen)
{
    atomic_fetch_add(sleepers, 1);
    /* A wake-up announced before this worker counted itself may have gone to
     * nobody: let the next submit send its own. */
    atomic_store(&s->waking, 0);
    if (inbox_empty(s) && s->queued == queued_seen && !(wake_on_stop && s->stopping)) {
        if (due) {
            struct timespec ts = to_timespec(due);
            pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
        } else {
            pthread_cond_wait(&s->work_cv, &s->mu);
        }
    }
    atomic_fetch_sub(sleepers, 1);
    atomic_store(&s->waking, 0);
}

/* Waits (under mu) until a batch is worth taking; returns 0 when the worker
 * should exit: shutting down and nothing left queued. */
static int wait_for_batch(eng_sched *s)
{
    for (;;) {
        drain_inbox(s);
        if (s->queued == 0) {
            if (s->stopping) {
                /* Submits that got in before the shutdown may still be on
                 * their way to the inbox; they wake this worker when there
                 * (or when they back out, see unreserve). */
                if (atomic_load(&s->pending) == 0)
                    return 0;
                sleep_for_work(s, &s->idle_sleepers, 0, 0, 0);
                continue;
            }
            if (!spin_for_work(s))
                sleep_for_work(s, &s->idle_sleepers, 0, 1, 0);
            continue;
        }
        if (s->stopping || s->max_wait_ns == 0 || s->queued >= s->p.max_batch_size ||
            s->queued_tokens >= s->p.max_batch_tokens)
            return 1;
        int64_t due = oldest_submit(s) + s->max_wait_ns;
        if (now_ns() >= due)
            return 1;
        sleep_for_work(s, &s->fill_sleepers, due, 1, s->queued);
    }
}

/* Takes the next batch (under mu): priority order, FIFO within a level,
 * stopping at the first request that would break the token budget. */
static int take_batch(eng_sched *s, int *batch)
{
    int n = 0;
    long tokens = 0;
    for (int p = 0; p < ENG_SCHED_PRIORITIES; p++) {
        while (s->q[p].head >= 0 && n < s->p.max_batch_size) {
            int idx = s->q[p].head;
            if (tokens + s->slots[idx].n_ids > s->p.max_batch_tokens)
                return n;
            tokens += s->slots[idx].n_ids;
            queue_unlink(s, idx);
            batch[n++] = idx;
        }
    }
    return n;
}

/* Runs the batch's items of one task through the model (unlocked). */
static void run_task(eng_sched *s, worker *w, int n, eng_task task, int64_t t_start)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        slot *sl = &s->slots[w->batch[i]];
        if (sl->task != task || w->status[i] == ENG_ERR_TIMEOUT)
            continue;
        if (sl->deadline <= t_start) {
            w->status[i] = ENG_ERR_TIMEOUT;
            continue;
        }
        w->seqs[m].ids = sl->ids;
        w->seqs[m].n_ids = sl->n_ids;
        w->data[m] = sl->data;
        w->size[m] = sl->size;
        w->row[i] = m;
        w->pick[m++] = i;
    }
    if (m == 0)
        return;
    float *out = task == ENG_TASK_EMBED ? w->embed : w->logits;
    if (s->be.input == ENG_INPUT_IMAGE)
        eng__backend_run_images(&s->be, w->ctx, task, w->data, w->size, m, out, w->probs,
                                w->labels, w->item);
    else
        eng__backend_run(&s->be, w->ctx, task, w->seqs, m, out, w->probs, w->labels, w->item);
    for (int k = 0; k < m; k++)
        w->status[w->pick[k]] = w->item[k];
}

static void deliver_batch(eng_sched *s, worker *w, int n, eng_task task, int64_t t_start,
                          int64_t compute_ns, int batch_tokens)
{
    int width = task == ENG_TASK_EMBED ? s->be.hidden : s->be.n_labels;
    for (int i = 0; i < n; i++) {
        slot *sl = &s->slots[w->batch[i]];
        if (sl->task != task)
            continue;
        eng_sched_result res;
        if (w->status[i] == ENG_ERR_TIMEOUT) {
            timeout_result(&res, t_start - sl->t_submit);
        } else {
            int r = w->row[i];
            res.status = w->status[i];
            res.out = (task == ENG_TASK_EMBED ? w->embed : w->logits) + (size_t)r * width;
            res.n_out = width;
            res.probs = task == ENG_TASK_CLASSIFY ? w->probs + (size_t)r * s->be.n_labels : NULL;
            res.label = task == ENG_TASK_CLASSIFY ? w->labels[r] : -1;
            res.batch_size = n;
            res.batch_tokens = batch_tokens;
            res.worker = w->index;
            res.queue_ns = t_start - sl->t_submit;
            res.compute_ns = compute_ns;
        }
        deliver(s, sl, &res);
    }
}

static void *worker_main(void *arg);

static eng_status worker_alloc(eng_sched *s, worker *w)
{
    int b = s->p.max_batch_size;
    w->batch = malloc((size_t)b * sizeof *w->batch);
    w->pick = malloc((size_t)b * sizeof *w->pick);
    w->row = malloc((size_t)b * sizeof *w->row);
    w->seqs = malloc((size_t)b * sizeof *w->seqs);
    w->data = malloc((size_t)b * sizeof *w->data);
    w->size = malloc((size_t)b * sizeof *w->size);
    size_t labels = (size_t)(s->be.n_labels > 0 ? s->be.n_labels : 1);
    size_t hidden = (size_t)(s->be.hidden > 0 ? s->be.hidden : 1);
    w->logits = malloc((size_t)b * labels * sizeof *w->logits);
    w->probs = malloc((size_t)b * labels * sizeof *w->probs);
    w->embed = malloc((size_t)b * hidden * sizeof *w->embed);
    w->labels = malloc((size_t)b * sizeof *w->labels);
    w->item = malloc((size_t)b * sizeof *w->item);
    w->status = malloc((size_t)b * sizeof *w->status);
    if (!w->batch || !w->pick || !w->row || !w->seqs || !w->data || !w->size || !w->logits || !w->probs ||
        !w->embed || !w->labels || !w->item || !w->status) {
        snprintf(w->init_err, sizeof w->init_err, "out of memory for worker %d's buffers",
                 w->index);
        return ENG_ERR_NOMEM;
    }
    /* The context's team threads are started by this (bound) worker thread,
     * so they inherit its CPU set. */
    int images = s->be.input == ENG_INPUT_IMAGE ? b : 0;
    return eng__backend_ctx_init(&s->be, &s->p.ctx, s->p.max_batch_tokens, images,
                                 w->pl->n_threads, &w->ctx, w->init_err, sizeof w->init_err);
}

static void worker_release(worker *w)
{
    eng_ctx_free(w->ctx);
    free(w->batch);
    free(w->pick);
    free(w->row);
    free(w->seqs);
    free(w->data);
    free(w->size);
    free(w->logits);
    free(w->probs);
    free(w->embed);
    free(w->labels);
    free(w->item);
    free(w->status);
}

/* Start-up: bind, then allocate, so the scratch memory is node-local. */
static void worker_start(eng_sched *s, worker *w)
{
    char why[200] = "";
    if (s->p.bind && !s->p.topology)
        eng__topo_bind_thread(s->topo, w->pl, &w->info.cpu_bound, &w->info.mem_bound, why,
                              sizeof why);
    eng_status st = worker_alloc(s, w);
    pthread_mutex_lock(&s->mu);
    w->init_status = st;
    if (why[0] && !s->warning[0])
        snprintf(s->warning, sizeof s->warning, "worker %d: %s", w->index, why);
    s->started++;
    pthread_cond_broadcast(&s->ready_cv);
    pthread_mutex_unlock(&s->mu);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    eng_sched *s = w->s;
    worker_start(s, w);
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* Retire the previous batch. */
        for (int i = 0; i < n; i++)
            retire(s, w->batch[i], w->status[i]);
        if (!wait_for_batch(s))
            break;
        n = take_batch(s, w->batch);
        /* Another idle worker can take what this one left. */
        if (s->queued > 0 && atomic_load(&s->idle_sleepers) + atomic_load(&s->fill_sleepers) > 0)
            pthread_cond_signal(&s->work_cv);
        int64_t t_start = now_ns();
        int batch_tokens = 0;
        for (int i = 0; i < n; i++) {
            eng__hist_add(&s->queue_hist, (uint64_t)(t_start - s->slots[w->batch[i]].t_submit));
            batch_tokens += s->slots[w->batch[i]].n_ids;
        }
        pthread_mutex_unlock(&s->mu);

        for (int i = 0; i < n; i++)
            w->status[i] = ENG_OK;
        run_task(s, w, n, ENG_TASK_CLASSIFY, t_start);
        run_task(s, w, n, ENG_TASK_EMBED, t_start);
        int64_t compute_ns = now_ns() - t_start;
        deliver_batch(s, w, n, ENG_TASK_CLASSIFY, t_start, compute_ns, batch_tokens);
        deliver_batch(s, w, n, ENG_TASK_EMBED, t_start, compute_ns, batch_tokens);

        pthread_mutex_lock(&s->mu);
        s->n_batches++;
        s->batch_hist[n]++;
        eng__hist_add(&s->compute_hist, (uint64_t)compute_ns);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- Timer thread ---------------------------------------------------------- */

/* Expires queued requests at their deadline, even while every worker is busy.
 * It exits once shutting down with nothing queued. */
static void *timer_main(void *arg)
{
    eng_sched *s = arg;
    int expired[TIMER_CHUNK];
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->stopping && s->queued == 0)
            break;
        if (s->heap_n == 0) {
            pthread_cond_wait(&s->timer_cv, &s->mu);
            continue;
        }
        int64_t now = now_ns();
        int64_t due = s->slots[s->heap[0]].deadline;
        if (now < due) {
            struct timespec ts = to_timespec(due);
            pthread_cond_timedwait(&s->timer_cv, &s->mu, &ts);
            continue;
        }
        int n = 0;
        while (n < TIMER_CHUNK && s->heap_n > 0 && s->slots[s->heap[0]].deadline <= now) {
            int idx = s->heap[0];
            queue_unlink(s, idx);
            expired[n++] = idx;
        }
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < n; i++) {
            eng_sched_result res;
            timeout_result(&res, now - s->slots[expired[i]].t_submit);
            deliver(s, &s->slots[expired[i]], &res);
        }
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < n; i++)
            retire(s, expired[i], ENG_ERR_TIMEOUT);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- Submission ---------------------------------------------------------------- */

#define REJECT_PREFIX "eng_sched_submit: "

static eng_status reject(eng_sched *s, eng_status st, const char *why)
{
    atomic_fetch_add_explicit(&s->n_submitted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->n_rejected, 1, memory_order_relaxed);
    /* An overloaded open-loop client is refused millions of times a second:
     * formatting the same message again would cost more than the refusal. */
    const char *last = eng_last_error();
    size_t k = sizeof REJECT_PREFIX - 1;
    if (strncmp(last, REJECT_PREFIX, k) == 0 && strcmp(last + k, why) == 0)
        return st;
    return eng_last_error_set(st, REJECT_PREFIX "%s", why);
}

/* Refuses early when the queue is visibly full or closed, before the text is
 * tokenized. The reservation in enqueue() stays the authority. */
static eng_status early_refusal(eng_sched *s)
{
    if (atomic_load_explicit(&s->closed, memory_order_relaxed))
        return reject(s, ENG_ERR_SHUTDOWN, "the scheduler is shutting down");
    if (atomic_load_explicit(&s->pending, memory_order_relaxed) >= s->p.queue_capacity)
        return reject(s, ENG_ERR_OVERLOADED, "the queue is full");
    return ENG_OK;
}

/* Gives back a reservation that enqueue() could not use. A worker draining
 * for shutdown may be asleep waiting for it: wake them all to look again. */
static void unreserve(eng_sched *s)
{
    atomic_fetch_sub(&s->pending, 1);
    if (atomic_load(&s->closed)) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->work_cv);
        pthread_mutex_unlock(&s->mu);
    }
}

/* Wakes a worker (under mu, or not) if one sleeps with nothing to do, or one
 * waits for a batch to fill and this request (queued_before were pending
 * before it, with tokens_before tokens) completed one; one wake-up at a time. */
static void wake_worker(eng_sched *s, int queued_before, long tokens_before, int n_ids,
                        int have_mu)
{
    int idle = atomic_load(&s->idle_sleepers), fill = atomic_load(&s->fill_sleepers);
    if (idle == 0 && fill == 0)
        return;
    if (idle == 0 && queued_before + 1 < s->p.max_batch_size &&
        tokens_before + n_ids < s->p.max_batch_tokens)
        return;
    if (atomic_exchange(&s->waking, 1))
        return;
    if (!have_mu)
        pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->work_cv);
    if (!have_mu)
        pthread_mutex_unlock(&s->mu);
}

/* Queues token ids (ids, n_ids) or an image (data, size; ids NULL). */
static eng_status enqueue(eng_sched *s, const int32_t *ids, int n_ids, const void *data,
                          size_t size, const eng_sched_req *req, eng_sched_ticket **ticket)
{
    int64_t t = now_ns();
    /* A timeout past the clock's range (from about 106 days on) is no
     * deadline, not an overflow into the past. */
    int64_t deadline = req->timeout_us > 0 && req->timeout_us < (NO_DEADLINE - t) / 1000
                           ? t + req->timeout_us * 1000
                           : NO_DEADLINE;
    /* The reservation comes before the look at closed, and the shutdown sets
     * closed before its workers look at pending: so either this submit sees
     * closed, or the draining workers see it pending and wait for it. */
    int queued_before = atomic_fetch_add(&s->pending, 1);
    eng_status st = ENG_OK;
    int idx = -1;
    if (atomic_load(&s->closed))
        st = ENG_ERR_SHUTDOWN;
    else if (queued_before >= s->p.queue_capacity || (idx = slot_alloc(s)) < 0)
        st = ENG_ERR_OVERLOADED;
    if (st != ENG_OK) {
        unreserve(s);
        return reject(s, st, st == ENG_ERR_SHUTDOWN ? "the scheduler is shutting down"
                                                    : "the queue is full");
    }
    atomic_fetch_add_explicit(&s->n_submitted, 1, memory_order_relaxed);
    long tokens_before =
        atomic_fetch_add_explicit(&s->pending_tokens, n_ids, memory_order_relaxed);
    slot *sl = &s->slots[idx];
    if (ids)
        memcpy(sl->ids, ids, (size_t)n_ids * sizeof *ids);
    sl->n_ids = n_ids;
    sl->data = data;
    sl->size = size;
    sl->task = req->task;
    sl->prio = req->priority;
    sl->t_submit = t;
    sl->deadline = deadline;
    sl->done = req->done;
    sl->user = req->user;
    sl->heap_pos = -1;
    /* Read before the slot is published: a callback request's slot may be
     * reused as soon as it is. */
    eng_sched_ticket *tk = req->done ? NULL : (eng_sched_ticket *)sl;
    if (deadline == NO_DEADLINE) {
        inbox_push(s, idx);
        wake_worker(s, queued_before, tokens_before, n_ids, 0);
    } else {
        pthread_mutex_lock(&s->mu);
        drain_inbox(s);   /* the older requests first */
        queue_push(s, idx);
        heap_push(s, idx);
        if (s->heap[0] == idx)
            pthread_cond_signal(&s->timer_cv);
        wake_worker(s, queued_before, tokens_before, n_ids, 1);
        pthread_mutex_unlock(&s->mu);
    }
    if (ticket)
        *ticket = tk;
    return ENG_OK;
}

static eng_status check_req(eng_sched *s, const eng_sched_req **req, eng_sched_req *defaults,
                            eng_sched_ticket **ticket)
{
    if (!*req) {
        *defaults = eng_sched_default_req();
        *req = defaults;
    }
    const eng_sched_req *r = *req;
    if (r->priority < 0 || r->priority >= ENG_SCHED_PRIORITIES)
        return reject(s, ENG_ERR_INVALID_ARG, "priority out of range");
    if (r->task != ENG_TASK_CLASSIFY && r->task != ENG_TASK_EMBED)
        return reject(s, ENG_ERR_INVALID_ARG, "unknown task");
    if (r->task == ENG_TASK_CLASSIFY && s->be.n_labels <= 0)
        return reject(s, ENG_ERR_UNSUPPORTED, "the model has no classifier head");
    if (r->task == ENG_TASK_EMBED && s->be.hidden <= 0)
        return reject(s, ENG_ERR_UNSUPPORTED, "the model does not embed (a CNN only classifies)");
    if (!r->done && !ticket)
        return reject(s, ENG_ERR_INVALID_ARG, "no callback and no ticket pointer");
    return ENG_OK;
}

eng_status eng_sched_submit(eng_sched *s, const char *text, size_t len,
                            const eng_sched_req *req, eng_sched_ticket **ticket)
{
    if (!s)
        return eng_last_error_set(ENG_ERR_INVALID_ARG, "eng_sched_submit: NULL scheduler");
    eng_sched_req defaults;
    eng_status st = check_req(s, &req, &defaults, ticket);
    if (st != ENG_OK)
        return st;
    if (s->be.input != ENG_INPUT_TEXT)
        return reject(s, ENG_ERR_UNSUPPORTED, "an image model takes images, not texts");
    if (!text)
        return reject(s, ENG_ERR_INVALID_ARG, "NULL text");
    st = early_refusal(s);
    if (st != ENG_OK)
        return st;
    int32_t ids[ENG_SCHED_MAX_POSITIONS];
    int n_ids = 0;
    st = eng__backend_tokenize(&s->be, text, len, ids, &n_ids);
    if (st != ENG_OK)
        return reject(s, st, st == ENG_ERR_UTF8 ? "invalid UTF-8 in the text"
                                                : "the text could not be tokenized");
    return enqueue(s, ids, n_ids, NULL, 0, req, ticket);
}

eng_status eng_sched_submit_ids(eng_sched *s, const int32_t *ids, int n_ids,
                                const eng_sched_req *req, eng_sched_ticket **ticket)
{
    if (!s)
        return eng_last_error_set(ENG_ERR_INVALID_ARG, "eng_sched_submit_ids: NULL scheduler");
    eng_sched_req defaults;
    eng_status st = check_req(s, &req, &defaults, ticket);
    if (st != ENG_OK)
        return st;
    if (s->be.input != ENG_INPUT_TEXT)
        return reject(s, ENG_ERR_UNSUPPORTED, "an image model takes images, not token ids");
    if (!ids || n_ids < 1)
        return reject(s, ENG_ERR_INVALID_ARG, "no token ids");
    if (n_ids > s->be.max_positions)
        return reject(s, ENG_ERR_TOO_LONG, "more ids than the model's position limit");
    st = early_refusal(s);
    if (st != ENG_OK)
        return st;
    return enqueue(s, ids, n_ids, NULL, 0, req, ticket);
}

eng_status eng_sched_submit_image(eng_sched *s, const void *data, size_t size,
                                  const eng_sched_req *req, eng_sched_ticket **ticket)
{
    if (!s)
        return eng_last_error_set(ENG_ERR_INVALID_ARG, "eng_sched_submit_image: NULL scheduler");
    eng_sched_req defaults;
    eng_status st = check_req(s, &req, &defaults, ticket);
    if (st != ENG_OK)
        return st;
    if (s->be.input != ENG_INPUT_IMAGE)
        return reject(s, ENG_ERR_UNSUPPORTED, "a text model takes texts, not images");
    if (!data)
        return reject(s, ENG_ERR_INVALID_ARG, "NULL image data");
    st = early_refusal(s);
    if (st != ENG_OK)
        return st;
    /* The bytes stay the caller's until completion: no copy, no allocation. */
    return enqueue(s, NULL, 1, data, size, req, ticket);
}

eng_status eng_sched_wait(eng_sched *s, eng_sched_ticket *ticket, eng_sched_result *res)
{
    if (!s || !ticket || !res)
        return eng_last_error_set(ENG_ERR_INVALID_ARG, "eng_sched_wait: NULL argument");
    slot *sl = (slot *)ticket;
    pthread_mutex_lock(&s->mu);
    while (sl->state != SLOT_DONE)
        pthread_cond_wait(&sl->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    *res = sl->res;
    return res->status;
}

void eng_sched_release(eng_sched *s, eng_sched_ticket *ticket)
{
    if (!s || !ticket)
        return;
    slot_free(s, (int)((slot *)ticket - s->slots));
}

/* ---- Lifecycle ---------------------------------------------------------------- */

eng_sched_params eng_sched_default_params(void)
{
    eng_sched_params p;
    memset(&p, 0, sizeof p);
    p.bind = 1;
    p.max_batch_size = 32;
    p.queue_capacity = 4096;
    p.idle_spin_us = DEFAULT_IDLE_SPIN_US;
    p.ctx = eng_ctx_default_params();
    return p;
}

eng_sched_req eng_sched_default_req(void)
{
    eng_sched_req r;
    memset(&r, 0, sizeof r);
    r.task = ENG_TASK_CLASSIFY;
    return r;
}

static eng_status check_params(eng_sched_params *p, const eng__backend *be, char *err,
                               size_t errlen)
{
    if (p->max_batch_size < 1 || p->max_batch_size > ENG_SCHED_MAX_BATCH) {
        snprintf(err, errlen, "max_batch_size %d is outside 1..%d", p->max_batch_size,
                 ENG_SCHED_MAX_BATCH);
        return ENG_ERR_INVALID_ARG;
    }
    if (p->queue_capacity < 1 || p->max_wait_us < 0 || p->max_batch_tokens < 0 ||
        p->null_batch_us < 0 || p->null_token_ns < 0 || p->idle_spin_us < 0) {
        snprintf(err, errlen, "queue_capacity must be positive; waits, delays and budgets "
                              "must not be negative");
        return ENG_ERR_INVALID_ARG;
    }
    if (be->input == ENG_INPUT_IMAGE) {
        /* An image counts as one token: the batch size alone bounds a batch. */
        p->max_batch_tokens = p->max_batch_size;
        return ENG_OK;
    }
    if (be->max_positions < 2 || be->max_positions > ENG_SCHED_MAX_POSITIONS) {
        snprintf(err, errlen, "the model's position limit %d is outside 2..%d",
                 be->max_positions, ENG_SCHED_MAX_POSITIONS);
        return ENG_ERR_UNSUPPORTED;
    }
    if (p->max_batch_tokens == 0)
        p->max_batch_tokens = 16 * be->max_positions;
    if (p->max_batch_tokens < be->max_positions) {
        snprintf(err, errlen, "max_batch_tokens %d is below the model's position limit %d",
                 p->max_batch_tokens, be->max_positions);
        return ENG_ERR_INVALID_ARG;
    }
    return ENG_OK;
}

static eng_status alloc_pool(eng_sched *s)
{
    s->n_slots = s->p.queue_capacity + s->n_workers * s->p.max_batch_size;
    size_t n = (size_t)s->n_slots;
    s->slots = calloc(n, sizeof *s->slots);
    /* Image requests keep no ids; a one-id row keeps the layout uniform. */
    size_t row = (size_t)(s->be.max_positions > 0 ? s->be.max_positions : 1);
    s->id_slab = malloc(n * row * sizeof *s->id_slab);
    s->out_slab = malloc(n * (size_t)(s->out_width + s->be.n_labels) * sizeof *s->out_slab);
    s->heap = malloc(n * sizeof *s->heap);
    if (!s->slots || !s->id_slab || !s->out_slab || !s->heap)
        return ENG_ERR_NOMEM;
    for (int i = s->n_slots - 1; i >= 0; i--) {
        slot *sl = &s->slots[i];
        sl->ids = s->id_slab + (size_t)i * row;
        sl->out = s->out_slab + (size_t)i * (size_t)(s->out_width + s->be.n_labels);
        sl->heap_pos = -1;
        pthread_cond_init(&sl->cv, NULL);
        slot_free(s, i);
    }
    for (int p = 0; p < ENG_SCHED_PRIORITIES; p++)
        s->q[p].head = s->q[p].tail = -1;
    return ENG_OK;
}

static void sched_destroy(eng_sched *s)
{
    if (s->slots)
        for (int i = 0; i < s->n_slots; i++)
            pthread_cond_destroy(&s->slots[i].cv);
    free(s->slots);
    free(s->id_slab);
    free(s->out_slab);
    free(s->heap);
    if (s->workers)
        for (int i = 0; i < s->n_workers; i++)
            worker_release(&s->workers[i]);
    free(s->workers);
    eng__placement_free(s->plan, s->n_workers);
    if (s->topo)
        hwloc_topology_destroy(s->topo);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->timer_cv);
    pthread_cond_destroy(&s->ready_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int init_sync(eng_sched *s)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    /* Submitters and workers take the lock millions of times a second for a
     * few hundred nanoseconds: spinning briefly beats sleeping in the kernel. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&s->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_cond_init(&s->work_cv, &ca);
    pthread_cond_init(&s->timer_cv, &ca);
    pthread_cond_init(&s->ready_cv, NULL);
    pthread_condattr_destroy(&ca);
    return 0;
}

/* Starts the workers and waits for their start-up; returns the first failure. */
static eng_status start_workers(eng_sched *s, int *n_started, char *err, size_t errlen)
{
    eng_status st = ENG_OK;
    int n = 0;
    for (; n < s->n_workers; n++) {
        worker *w = &s->workers[n];
        w->s = s;
        w->index = n;
        w->pl = &s->plan[n];
        w->info.numa_node = w->pl->numa_node;
        w->info.n_threads = w->pl->n_threads;
        hwloc_bitmap_list_snprintf(w->info.cpus, sizeof w->info.cpus, w->pl->cpuset);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            snprintf(err, errlen, "could not start worker %d", n);
            st = ENG_ERR_INTERNAL;
            break;
        }
    }
    *n_started = n;
    pthread_mutex_lock(&s->mu);
    while (s->started < n)
        pthread_cond_wait(&s->ready_cv, &s->mu);
    for (int i = 0; i < n && st == ENG_OK; i++)
        if (s->workers[i].init_status != ENG_OK) {
            st = s->workers[i].init_status;
            snprintf(err, errlen, "%s", s->workers[i].init_err);
        }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void stop_and_join(eng_sched *s, int n_workers)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    atomic_store(&s->closed, 1);   /* before the workers look at pending: see enqueue() */
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n_workers; i++)
        pthread_join(s->workers[i].thread, NULL);
    if (s->timer_running) {
        /* The workers drained the queue; wake the timer to see that. */
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->timer_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->timer, NULL);
        s->timer_running = 0;
    }
}

eng_status eng_sched_create(const eng_sched_params *params, eng_sched **out)
{
    if (!out)
        return eng_last_error_set(ENG_ERR_INVALID_ARG, "eng_sched_create: NULL out");
    *out = NULL;
    eng_sched *s = calloc(1, sizeof *s);
    if (!s || init_sync(s) != 0) {
        free(s);
        return eng_last_error_set(ENG_ERR_NOMEM, "eng_sched_create: out of memory");
    }
    s->p = params ? *params : eng_sched_default_params();
    char err[256] = "";
    eng__backend_init(&s->be, s->p.model, s->p.null_batch_us, s->p.null_token_ns);
    s->out_width = s->be.hidden > s->be.n_labels ? s->be.hidden : s->be.n_labels;
    s->max_wait_ns = s->p.max_wait_us * 1000;
    eng_status st = check_params(&s->p, &s->be, err, sizeof err);
    if (st == ENG_OK)
        st = eng__topo_load(s->p.topology, &s->topo, err, sizeof err);
    if (st == ENG_OK)
        st = eng__topo_plan(s->topo, s->p.cpus, s->p.n_workers, s->p.threads_per_worker,
                            &s->plan, &s->n_workers, err, sizeof err);
    if (st == ENG_OK) {
        s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
        st = s->workers ? alloc_pool(s) : ENG_ERR_NOMEM;
        if (st == ENG_ERR_NOMEM)
            snprintf(err, sizeof err, "out of memory for the request pool");
    }
    int started = 0;
    if (st == ENG_OK)
        st = start_workers(s, &started, err, sizeof err);
    if (st == ENG_OK) {
        if (pthread_create(&s->timer, NULL, timer_main, s) == 0) {
            s->timer_running = 1;
        } else {
            snprintf(err, sizeof err, "could not start the timer thread");
            st = ENG_ERR_INTERNAL;
        }
    }
    if (st != ENG_OK) {
        if (s->workers)
            stop_and_join(s, started);
        sched_destroy(s);
        return eng_last_error_set(st, "eng_sched_create: %s", err);
    }
    *out = s;
    return ENG_OK;
}

void eng_sched_shutdown(eng_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    int joined = s->joined;
    s->joined = 1;
    pthread_mutex_unlock(&s->mu);
    if (!joined)
        stop_and_join(s, s->n_workers);
}

void eng_sched_free(eng_sched *s)
{
    if (!s)
        return;
    eng_sched_shutdown(s);
    sched_destroy(s);
}

/* ---- Introspection -------------------------------------------------------------- */

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

void eng_sched_get_stats(eng_sched *s, eng_sched_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    out->submitted = atomic_load(&s->n_submitted);
    out->completed = s->n_completed;
    out->rejected = atomic_load(&s->n_rejected);
    out->timed_out = s->n_timed_out;
    out->failed = s->n_failed;
    out->queued = (uint64_t)atomic_load(&s->pending);
    out->batches = s->n_batches;
    uint64_t ran = 0;
    for (int k = 0; k <= ENG_SCHED_MAX_BATCH; k++) {
        out->batch_hist[k] = s->batch_hist[k];
        ran += (uint64_t)k * s->batch_hist[k];
    }
    out->mean_batch = s->n_batches ? (double)ran / (double)s->n_batches : 0.0;
    const eng__hist *q = &s->queue_hist, *c = &s->compute_hist;
    out->queue_us.p50 = us(eng__hist_quantile(q, 0.50));
    out->queue_us.p95 = us(eng__hist_quantile(q, 0.95));
    out->queue_us.p99 = us(eng__hist_quantile(q, 0.99));
    out->queue_us.max = us(q->max);
    out->compute_us.p50 = us(eng__hist_quantile(c, 0.50));
    out->compute_us.p95 = us(eng__hist_quantile(c, 0.95));
    out->compute_us.p99 = us(eng__hist_quantile(c, 0.99));
    out->compute_us.max = us(c->max);
    pthread_mutex_unlock(&s->mu);
}

int eng_sched_n_workers(const eng_sched *s)
{
    return s ? s->n_workers : 0;
}

eng_status eng_sched_get_worker(const eng_sched *s, int i, eng_sched_worker_info *out)
{
    if (!s || !out || i < 0 || i >= s->n_workers)
        return eng_last_error_set(ENG_ERR_INVALID_ARG, "eng_sched_get_worker: no worker %d", i);
    /* Written before creation returned (under mu), read-only since. */
    *out = s->workers[i].info;
    return ENG_OK;
}

const char *eng_sched_warning(const eng_sched *s)
{
    return s ? s->warning : "";
}
