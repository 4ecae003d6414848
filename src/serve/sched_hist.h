/* sched_hist.h: a fixed-size log-linear histogram of non-negative integers
 * (nanoseconds), for the scheduler's latency percentiles and infer-bench.
 * Values below 32 are exact; above, each power of two is split into 16
 * buckets, so a quantile is within 1/16 (6.25%) of the true value. Adding is
 * O(1) with no allocation, which keeps it usable on the request path. */
#ifndef ENG_SCHED_HIST_H
#define ENG_SCHED_HIST_H

#include <stdint.h>

#define ENG__HIST_BUCKETS 976   /* 32 exact + 59 octaves x 16 */

typedef struct {
    uint64_t count;
    uint64_t max;
    uint64_t bucket[ENG__HIST_BUCKETS];
} eng__hist;

void eng__hist_add(eng__hist *h, uint64_t v);
void eng__hist_merge(eng__hist *into, const eng__hist *from);
/* The smallest bucket upper edge with at least q of the values at or below it,
 * capped at the exact maximum; 0 for an empty histogram. q in [0, 1]. */
uint64_t eng__hist_quantile(const eng__hist *h, double q);

#endif
