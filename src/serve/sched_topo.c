/* sched_topo.c: topology discovery, worker placement and thread binding for
 * the scheduler (see sched_topo.h). */
#include "sched_topo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

eng_status eng__topo_load(const char *synthetic, hwloc_topology_t *out, char *err,
                          size_t errlen)
{
    hwloc_topology_t t;
    if (hwloc_topology_init(&t) != 0) {
        snprintf(err, errlen, "hwloc_topology_init failed");
        return ENG_ERR_NOMEM;
    }
    if (synthetic && hwloc_topology_set_synthetic(t, synthetic) != 0) {
        snprintf(err, errlen, "invalid hwloc synthetic topology \"%s\"", synthetic);
        hwloc_topology_destroy(t);
        return ENG_ERR_INVALID_ARG;
    }
    if (hwloc_topology_load(t) != 0) {
        snprintf(err, errlen, "hwloc_topology_load failed: %s", strerror(errno));
        hwloc_topology_destroy(t);
        return ENG_ERR_INTERNAL;
    }
    *out = t;
    return ENG_OK;
}

/* The usable PUs: allowed by the topology, by the process binding (only
 * meaningful on the real machine) and by the user's list. */
static eng_status usable_cpus(hwloc_topology_t topo, const char *cpus, hwloc_bitmap_t set,
                              char *err, size_t errlen)
{
    hwloc_bitmap_copy(set, hwloc_topology_get_allowed_cpuset(topo));
    if (hwloc_topology_is_thissystem(topo)) {
        hwloc_bitmap_t bound = hwloc_bitmap_alloc();
        if (bound && hwloc_get_cpubind(topo, bound, HWLOC_CPUBIND_PROCESS) == 0 &&
            !hwloc_bitmap_iszero(bound))
            hwloc_bitmap_and(set, set, bound);
        hwloc_bitmap_free(bound);
    }
    if (cpus) {
        hwloc_bitmap_t user = hwloc_bitmap_alloc();
        if (!user)
            return ENG_ERR_NOMEM;
        if (hwloc_bitmap_list_sscanf(user, cpus) != 0) {
            hwloc_bitmap_free(user);
            snprintf(err, errlen, "invalid CPU list \"%s\" (expected e.g. 0-7,16)", cpus);
            return ENG_ERR_INVALID_ARG;
        }
        hwloc_bitmap_and(set, set, user);
        hwloc_bitmap_free(user);
    }
    if (hwloc_bitmap_iszero(set)) {
        snprintf(err, errlen, "no usable CPUs%s%s", cpus ? " in " : "", cpus ? cpus : "");
        return ENG_ERR_INVALID_ARG;
    }
    return ENG_OK;
}

typedef struct {
    hwloc_obj_t obj;   /* a core (or a PU when the topology has no cores) */
    int group;         /* index of its NUMA node in the node list */
    int taken;
} core_slot;

static int group_of(hwloc_topology_t topo, hwloc_obj_t core)
{
    int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    for (int g = 0; g < n; g++) {
        hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)g);
        if (hwloc_bitmap_intersects(node->cpuset, core->cpuset))
            return g;
    }
    return 0;
}

static int group_node(hwloc_topology_t topo, int g)
{
    hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)g);
    return node ? (int)node->os_index : -1;
}

/* Gives worker pl the first n free cores of group g, in logical order. */
static int take_from_group(core_slot *cores, int n_cores, int g, int n, hwloc_bitmap_t usable,
                           eng__placement *pl)
{
    int got = 0;
    for (int i = 0; i < n_cores && got < n; i++) {
        if (cores[i].group != g || cores[i].taken)
            continue;
        cores[i].taken = 1;
        hwloc_bitmap_t pus = hwloc_bitmap_dup(cores[i].obj->cpuset);
        if (!pus)
            return -1;
        hwloc_bitmap_and(pus, pus, usable);
        hwloc_bitmap_or(pl->cpuset, pl->cpuset, pus);
        hwloc_bitmap_free(pus);
        got++;
    }
    return got;
}

static eng_status plan_workers(hwloc_topology_t topo, core_slot *cores, int n_cores,
                               int n_groups, int n_workers, int tpw, hwloc_bitmap_t usable,
                               eng__placement *pl, char *err, size_t errlen)
{
    int *free_in = calloc((size_t)n_groups, sizeof *free_in);
    if (!free_in)
        return ENG_ERR_NOMEM;
    for (int i = 0; i < n_cores; i++)
        free_in[cores[i].group]++;
    eng_status st = ENG_OK;
    for (int w = 0; w < n_workers && st == ENG_OK; w++) {
        pl[w].n_threads = tpw;
        pl[w].cpuset = hwloc_bitmap_alloc();
        if (!pl[w].cpuset) {
            st = ENG_ERR_NOMEM;
            break;
        }
        /* The freest node that holds the whole worker; ties go to the lower
         * index, so workers spread over nodes round-robin. */
        int best = -1, freest = 0;
        for (int g = 0; g < n_groups; g++) {
            if (free_in[g] >= tpw && (best < 0 || free_in[g] > free_in[best]))
                best = g;
            if (free_in[g] > free_in[freest])
                freest = g;
        }
        int first = best >= 0 ? best : freest;
        pl[w].numa_node = group_node(topo, first);
        int need = tpw;
        for (int k = 0; k < n_groups && need > 0; k++) {
            int g = (first + k) % n_groups;
            int got = take_from_group(cores, n_cores, g, need, usable, &pl[w]);
            if (got < 0) {
                st = ENG_ERR_NOMEM;
                break;
            }
            free_in[g] -= got;
            need -= got;
        }
        if (st == ENG_OK && need > 0) {
            snprintf(err, errlen, "internal: worker %d short of %d cores", w, need);
            st = ENG_ERR_INTERNAL;
        }
    }
    free(free_in);
    return st;
}

eng_status eng__topo_plan(hwloc_topology_t topo, const char *cpus, int n_workers,
                          int threads_per_worker, eng__placement **out, int *n_out,
                          char *err, size_t errlen)
{
    *out = NULL;
    *n_out = 0;
    if (n_workers < 0 || threads_per_worker < 0) {
        snprintf(err, errlen, "negative worker or thread count");
        return ENG_ERR_INVALID_ARG;
    }
    hwloc_bitmap_t usable = hwloc_bitmap_alloc();
    if (!usable)
        return ENG_ERR_NOMEM;
    eng_status st = usable_cpus(topo, cpus, usable, err, errlen);
    hwloc_obj_type_t unit =
        hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
    int n_all = hwloc_get_nbobjs_by_type(topo, unit);
    int n_groups = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    if (n_groups < 1)
        n_groups = 1;
    core_slot *cores = st == ENG_OK ? calloc((size_t)n_all + 1, sizeof *cores) : NULL;
    if (st == ENG_OK && !cores)
        st = ENG_ERR_NOMEM;
    int n_cores = 0, groups_used = 0;
    int *seen = st == ENG_OK ? calloc((size_t)n_groups, sizeof *seen) : NULL;
    if (st == ENG_OK && !seen)
        st = ENG_ERR_NOMEM;
    for (int i = 0; st == ENG_OK && i < n_all; i++) {
        hwloc_obj_t c = hwloc_get_obj_by_type(topo, unit, (unsigned)i);
        if (!hwloc_bitmap_intersects(c->cpuset, usable))
            continue;
        cores[n_cores].obj = c;
        cores[n_cores].group = group_of(topo, c);
        if (!seen[cores[n_cores].group]++)
            groups_used++;
        n_cores++;
    }
    if (st == ENG_OK) {
        if (n_workers == 0)
            n_workers = threads_per_worker ? n_cores / threads_per_worker : groups_used;
        if (n_workers == 0)
            n_workers = 1;
        if (threads_per_worker == 0)
            threads_per_worker = n_cores / n_workers;
        if (threads_per_worker == 0 || (long)n_workers * threads_per_worker > n_cores) {
            snprintf(err, errlen,
                     "%d workers x %d threads exceed the %d usable cores",
                     n_workers, threads_per_worker ? threads_per_worker : 1, n_cores);
            st = ENG_ERR_INVALID_ARG;
        }
    }
    eng__placement *pl = NULL;
    if (st == ENG_OK) {
        pl = calloc((size_t)n_workers, sizeof *pl);
        if (!pl)
            st = ENG_ERR_NOMEM;
    }
    if (st == ENG_OK)
        st = plan_workers(topo, cores, n_cores, n_groups, n_workers, threads_per_worker,
                          usable, pl, err, errlen);
    if (st == ENG_OK) {
        *out = pl;
        *n_out = n_workers;
    } else if (pl) {
        eng__placement_free(pl, n_workers);
    }
    free(seen);
    free(cores);
    hwloc_bitmap_free(usable);
    return st;
}

void eng__placement_free(eng__placement *pl, int n)
{
    if (!pl)
        return;
    for (int i = 0; i < n; i++)
        hwloc_bitmap_free(pl[i].cpuset);
    free(pl);
}

void eng__topo_bind_thread(hwloc_topology_t topo, const eng__placement *pl, int *cpu_bound,
                           int *mem_bound, char *why, size_t whylen)
{
    why[0] = '\0';
    *cpu_bound = hwloc_set_cpubind(topo, pl->cpuset, HWLOC_CPUBIND_THREAD) == 0;
    if (!*cpu_bound) {
        char list[128];
        hwloc_bitmap_list_snprintf(list, sizeof list, pl->cpuset);
        snprintf(why, whylen, "could not bind a worker to CPUs %s (%s); it runs unbound", list,
                 strerror(errno));
    }
    *mem_bound = 0;
    hwloc_obj_t node = NULL;
    int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    for (int g = 0; g < n && !node; g++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)g);
        if ((int)o->os_index == pl->numa_node)
            node = o;
    }
    if (!node)
        return;
    *mem_bound = hwloc_set_membind(topo, node->nodeset, HWLOC_MEMBIND_BIND,
                                   HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) == 0;
    if (!*mem_bound && why[0] == '\0')
        snprintf(why, whylen, "could not bind a worker's memory to NUMA node %d (%s)",
                 pl->numa_node, strerror(errno));
}
