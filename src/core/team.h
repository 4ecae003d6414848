/* team.h: a context's own threads. The forward pass runs SPMD on a team: every
 * member runs the same function on its share of rows, meeting at barriers only
 * where attention needs rows another member computed. BLAS itself is run with
 * one thread per call, so nothing oversubscribes the cores, and the team's
 * threads inherit the CPU binding of the thread that created the context. */
#ifndef ENG_TEAM_H
#define ENG_TEAM_H

#include <stdatomic.h>

#include "engine.h"

typedef struct eng__team eng__team;

/* fn(arg, tid, n) runs on all n members; tid 0 is the calling thread. */
typedef void (*eng__team_fn)(void *arg, int tid, int n);

/* A team of n members: n - 1 threads are started. */
eng_status eng__team_create(eng__team **out, int n);
void eng__team_free(eng__team *team);   /* NULL is fine */
int eng__team_size(const eng__team *team);

/* Runs fn on every member and returns when all have finished. */
void eng__team_run(eng__team *team, eng__team_fn fn, void *arg);

/* Called by every member inside fn: returns when all have arrived. */
void eng__team_barrier(eng__team *team);

/* The share [*lo, *hi) of n items that member tid of nt gets. */
void eng__team_share(int n, int tid, int nt, int *lo, int *hi);

/* A work counter, for handing items out as members come for them rather than
 * in fixed shares: on a shared machine one member may run slower than another,
 * and with fixed shares the rest then wait for it at the next barrier. It must
 * be zeroed (eng__team_counter_zero) before the run whose members take from
 * it, and serves one set of items. One cache line each, so counters in an
 * array never share one. */
typedef struct {
    _Alignas(64) atomic_long next;
} eng__team_counter;

void eng__team_counter_zero(eng__team_counter *c);
/* The first of the next n items, [first, first + n); first may be past the
 * end of the items, which means none are left. */
long eng__team_take(eng__team_counter *c, long n);

#endif
