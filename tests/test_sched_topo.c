/* test_sched_topo.c: the scheduler's worker placement (src/serve/sched_topo.c) on
 * synthetic hwloc topologies, since the test machine has one NUMA node: the
 * default one worker per node, several workers per node, workers spanning
 * nodes, user CPU lists, SMT cores, refusals of oversubscription; then the
 * same through eng_sched_create, and binding on this machine. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "sched_topo.h"
#include "testutil.h"

/* 2 packages x 2 NUMA nodes x 8 cores: node k holds CPUs 8k..8k+7. */
#define TOPO_4N "pack:2 numa:2 core:8 pu:1"

typedef struct {
    int n;
    char cpus[64][64];
    int node[64];
    int threads[64];
} plan_view;

static eng_status plan(const char *synthetic, const char *cpus, int workers, int tpw,
                       plan_view *v)
{
    hwloc_topology_t t;
    char err[256];
    ck_assert_int_eq(eng__topo_load(synthetic, &t, err, sizeof err), ENG_OK);
    eng__placement *pl = NULL;
    int n = 0;
    eng_status st = eng__topo_plan(t, cpus, workers, tpw, &pl, &n, err, sizeof err);
    memset(v, 0, sizeof *v);
    v->n = n;
    for (int i = 0; i < n && i < 64; i++) {
        hwloc_bitmap_list_snprintf(v->cpus[i], sizeof v->cpus[i], pl[i].cpuset);
        v->node[i] = pl[i].numa_node;
        v->threads[i] = pl[i].n_threads;
    }
    if (st == ENG_OK)
        ck_assert_ptr_nonnull(pl);
    else
        ck_assert_ptr_null(pl);
    eng__placement_free(pl, n);
    hwloc_topology_destroy(t);
    return st;
}

START_TEST(default_one_worker_per_node)
{
    plan_view v;
    ck_assert_int_eq(plan(TOPO_4N, NULL, 0, 0, &v), ENG_OK);
    ck_assert_int_eq(v.n, 4);
    const char *want[4] = {"0-7", "8-15", "16-23", "24-31"};
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(v.cpus[i], want[i]);
        ck_assert_int_eq(v.node[i], i);
        ck_assert_int_eq(v.threads[i], 8);
    }
}
END_TEST

START_TEST(two_workers_per_node_round_robin)
{
    plan_view v;
    ck_assert_int_eq(plan(TOPO_4N, NULL, 8, 4, &v), ENG_OK);
    ck_assert_int_eq(v.n, 8);
    const char *want[8] = {"0-3", "8-11", "16-19", "24-27", "4-7", "12-15", "20-23", "28-31"};
    for (int i = 0; i < 8; i++) {
        ck_assert_str_eq(v.cpus[i], want[i]);
        ck_assert_int_eq(v.node[i], i % 4);
    }
    /* Three 8-core workers take three whole nodes. */
    ck_assert_int_eq(plan(TOPO_4N, NULL, 3, 8, &v), ENG_OK);
    ck_assert_str_eq(v.cpus[0], "0-7");
    ck_assert_str_eq(v.cpus[1], "8-15");
    ck_assert_str_eq(v.cpus[2], "16-23");
}
END_TEST

START_TEST(wide_workers_span_neighbour_nodes)
{
    plan_view v;
    ck_assert_int_eq(plan(TOPO_4N, NULL, 2, 16, &v), ENG_OK);
    ck_assert_str_eq(v.cpus[0], "0-15");    /* nodes 0 and 1: package 0 */
    ck_assert_str_eq(v.cpus[1], "16-31");
    ck_assert_int_eq(v.node[0], 0);
    ck_assert_int_eq(v.node[1], 2);
    ck_assert_int_eq(plan(TOPO_4N, NULL, 1, 32, &v), ENG_OK);
    ck_assert_str_eq(v.cpus[0], "0-31");
}
END_TEST

START_TEST(thread_count_picks_workers)
{
    plan_view v;
    ck_assert_int_eq(plan(TOPO_4N, NULL, 0, 1, &v), ENG_OK);
    ck_assert_int_eq(v.n, 32);
    ck_assert_int_eq(plan(TOPO_4N, NULL, 0, 4, &v), ENG_OK);
    ck_assert_int_eq(v.n, 8);
    ck_assert_int_eq(plan(TOPO_4N, NULL, 16, 0, &v), ENG_OK);
    ck_assert_int_eq(v.threads[0], 2);
}
END_TEST

START_TEST(never_oversubscribe)
{
    plan_view v;
    ck_assert_int_eq(plan(TOPO_4N, NULL, 33, 1, &v), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(plan(TOPO_4N, NULL, 4, 9, &v), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(plan(TOPO_4N, NULL, 64, 0, &v), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(plan(TOPO_4N, "0-3", 1, 5, &v), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(plan(TOPO_4N, NULL, -1, 0, &v), ENG_ERR_INVALID_ARG);
}
END_TEST

START_TEST(user_cpu_list)
{
    plan_view v;
    ck_assert_int_eq(plan(TOPO_4N, "0-7,16-23", 0, 0, &v), ENG_OK);
    ck_assert_int_eq(v.n, 2);
    ck_assert_str_eq(v.cpus[0], "0-7");
    ck_assert_str_eq(v.cpus[1], "16-23");
    ck_assert_int_eq(v.node[1], 2);
    /* A list that cuts through nodes: 2 workers of 3 from 4+2 cores. */
    ck_assert_int_eq(plan(TOPO_4N, "4-9", 2, 3, &v), ENG_OK);
    ck_assert_str_eq(v.cpus[0], "4-6");
    ck_assert_int_eq(v.node[0], 0);
    ck_assert_str_eq(v.cpus[1], "7-9");   /* node 1 (freest), then node 0 */
    ck_assert_int_eq(v.node[1], 1);
    ck_assert_int_eq(plan(TOPO_4N, "100-200", 0, 0, &v), ENG_ERR_INVALID_ARG);
    ck_assert_int_eq(plan(TOPO_4N, "zero", 0, 0, &v), ENG_ERR_INVALID_ARG);
}
END_TEST

START_TEST(smt_cores_are_one_thread)
{
    plan_view v;
    ck_assert_int_eq(plan("numa:2 core:4 pu:2", NULL, 0, 0, &v), ENG_OK);
    ck_assert_int_eq(v.n, 2);
    ck_assert_int_eq(v.threads[0], 4);
    ck_assert_str_eq(v.cpus[0], "0-7");   /* both hyperthreads of 4 cores */
    ck_assert_int_eq(plan("numa:2 core:4 pu:2", NULL, 2, 5, &v), ENG_ERR_INVALID_ARG);
}
END_TEST

START_TEST(scheduler_on_synthetic_topology)
{
    eng_sched_params p = eng_sched_default_params();
    p.topology = TOPO_4N;
    p.threads_per_worker = 4;
    eng_sched *s = NULL;
    ck_assert_int_eq(eng_sched_create(&p, &s), ENG_OK);
    ck_assert_int_eq(eng_sched_n_workers(s), 8);
    eng_sched_worker_info wi;
    ck_assert_int_eq(eng_sched_get_worker(s, 5, &wi), ENG_OK);
    ck_assert_str_eq(wi.cpus, "12-15");
    ck_assert_int_eq(wi.numa_node, 1);
    ck_assert_int_eq(wi.n_threads, 4);
    ck_assert_int_eq(wi.cpu_bound, 0);
    ck_assert_int_eq(eng_sched_get_worker(s, 8, &wi), ENG_ERR_INVALID_ARG);
    /* It runs requests all the same. */
    eng_sched_ticket *t;
    eng_sched_result r;
    ck_assert_int_eq(eng_sched_submit(s, "a b c", 5, NULL, &t), ENG_OK);
    ck_assert_int_eq(eng_sched_wait(s, t, &r), ENG_OK);
    ck_assert_float_eq(r.out[0], 5.0f);
    eng_sched_release(s, t);
    eng_sched_free(s);
}
END_TEST

START_TEST(binds_on_this_machine_or_says_why)
{
    eng_sched_params p = eng_sched_default_params();
    eng_sched *s = NULL;
    ck_assert_int_eq(eng_sched_create(&p, &s), ENG_OK);
    ck_assert_int_ge(eng_sched_n_workers(s), 1);
    eng_sched_worker_info wi;
    ck_assert_int_eq(eng_sched_get_worker(s, 0, &wi), ENG_OK);
    ck_assert_int_ge(wi.n_threads, 1);
    /* Either binding took effect or a warning explains why not. */
    ck_assert(wi.cpu_bound || eng_sched_warning(s)[0] != '\0');
    eng_sched_free(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("sched_topo");
    TCase *tc = tcase_create("placement");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, default_one_worker_per_node);
    tcase_add_test(tc, two_workers_per_node_round_robin);
    tcase_add_test(tc, wide_workers_span_neighbour_nodes);
    tcase_add_test(tc, thread_count_picks_workers);
    tcase_add_test(tc, never_oversubscribe);
    tcase_add_test(tc, user_cpu_list);
    tcase_add_test(tc, smt_cores_are_one_thread);
    tcase_add_test(tc, scheduler_on_synthetic_topology);
    tcase_add_test(tc, binds_on_this_machine_or_says_why);
    suite_add_tcase(su, tc);
    return test_run_suite(su);
}
