/* sched_hist.c: the log-linear latency histogram of sched_hist.h. */
#include "sched_hist.h"

#include <math.h>

static int bucket_of(uint64_t v)
{
    if (v < 32)
        return (int)v;
    int e = 63 - __builtin_clzll(v);   /* e >= 5 */
    int sub = (int)((v >> (e - 4)) & 15);
    return 32 + (e - 5) * 16 + sub;
}

static uint64_t bucket_upper(int i)
{
    if (i < 32)
        return (uint64_t)i;
    int e = (i - 32) / 16 + 5, sub = (i - 32) % 16;
    uint64_t lower = (uint64_t)(16 + sub) << (e - 4);
    return lower + ((uint64_t)1 << (e - 4)) - 1;
}

void eng__hist_add(eng__hist *h, uint64_t v)
{
    h->bucket[bucket_of(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

void eng__hist_merge(eng__hist *into, const eng__hist *from)
{
    for (int i = 0; i < ENG__HIST_BUCKETS; i++)
        into->bucket[i] += from->bucket[i];
    into->count += from->count;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t eng__hist_quantile(const eng__hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < ENG__HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t up = bucket_upper(i);
            return up < h->max ? up : h->max;
        }
    }
    return h->max;
}
