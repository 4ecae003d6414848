/* sched_topo.h: where the scheduler's workers run. Discovers the topology
 * with hwloc (or builds a synthetic one), plans one CPU set per worker from
 * whole cores grouped by NUMA node, and binds a worker thread and its memory
 * policy to its plan. Planning is separate from binding so that it can be
 * tested on synthetic topologies. */
#ifndef ENG_SCHED_TOPO_H
#define ENG_SCHED_TOPO_H

#include <hwloc.h>
#include <stddef.h>

#include "engine.h"

typedef struct {
    hwloc_bitmap_t cpuset;   /* the usable PUs of the worker's cores */
    int numa_node;           /* OS index of the node holding its first core, -1 if none */
    int n_threads;           /* cores it owns */
} eng__placement;

/* Loads this machine's topology, or the synthetic one when synthetic is set. */
eng_status eng__topo_load(const char *synthetic, hwloc_topology_t *out, char *err,
                          size_t errlen);

/* Plans n_workers x threads_per_worker on the usable cores: the topology's
 * allowed CPUs, intersected with the process's binding (real topologies) and
 * with cpus (an OS-index list such as "0-7,16") when given. Zeros pick the
 * defaults documented in engine.h. A worker takes whole cores from the NUMA
 * node with the most free cores that can hold all of its threads, or, when
 * none can, spans nodes starting from the freest. Fails with
 * ENG_ERR_INVALID_ARG when workers x threads exceeds the usable cores. On
 * success *out holds *n_out plans for eng__placement_free. */
eng_status eng__topo_plan(hwloc_topology_t topo, const char *cpus, int n_workers,
                          int threads_per_worker, eng__placement **out, int *n_out,
                          char *err, size_t errlen);
void eng__placement_free(eng__placement *pl, int n);

/* Binds the calling thread to pl's CPUs and its future allocations to pl's
 * node. Each flag says whether that part took effect; on a refusal, why is
 * written to why (empty otherwise). */
void eng__topo_bind_thread(hwloc_topology_t topo, const eng__placement *pl, int *cpu_bound,
                           int *mem_bound, char *why, size_t whylen);

#endif
