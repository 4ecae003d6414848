/* load_bench.c: build/load-bench, what loading a model costs (issue 10: the
 * checksum of format version 2 is verified at every load, over every byte):
 * the median wall time of eng_model_load + eng_model_free over N runs, the
 * file in the page cache (one untimed load first), one thread. Public API
 * only, so the same file builds against an older library for an A/B.
 *
 *   build/load-bench MODEL.eng [N]     (default 21; prints min/median/max ms)
 */
#include <stdio.h>
#include <stdlib.h>

#include "benchutil.h"
#include "engine.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: load-bench MODEL.eng [N]\n");
        return 2;
    }
    int n = argc == 3 ? atoi(argv[2]) : 21;
    if (n < 1) {
        fprintf(stderr, "load-bench: N must be a positive integer\n");
        return 2;
    }
    double *ms = malloc((size_t)n * sizeof *ms);
    if (!ms)
        return 1;
    for (int i = -1; i < n; i++) {
        eng_model *m;
        double t0 = 1e3 * bench_now_s();
        if (eng_model_load(argv[1], NULL, &m) != ENG_OK) {
            fprintf(stderr, "load-bench: %s\n", eng_last_error());
            return 1;
        }
        eng_model_free(m);
        if (i >= 0)
            ms[i] = 1e3 * bench_now_s() - t0;
    }
    qsort(ms, (size_t)n, sizeof *ms, bench_cmp_double);
    printf("%s: load+free over %d runs: min %.2f ms, median %.2f ms, max %.2f ms\n", argv[1], n,
           ms[0], ms[n / 2], ms[n - 1]);
    free(ms);
    return 0;
}
