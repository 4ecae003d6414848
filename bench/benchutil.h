/* benchutil.h: what the benchmark programs share: clocks, sorting timings,
 * reading a whole input file. Linked into every build/<name>-bench. */
#ifndef ENG_BENCHUTIL_H
#define ENG_BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic wall time, in seconds and in nanoseconds. */
double bench_now_s(void);
int64_t bench_now_ns(void);
/* This thread's CPU time in seconds: single-thread figures timed with it
 * leave out the time slices lost to other processes on a shared machine. */
double bench_cpu_s(void);
/* The fp32 FMA peak's work: rounds of 24 independent AVX-512 FMA chains on
 * registers (as many as the fp32 GEMM tile's accumulators); returns the
 * multiply-adds done. AVX-512F only: callers check the CPU first. */
double bench_fma_peak(long rounds);
/* qsort's comparison for doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);
/* A whole file, NUL-terminated (not counted in *len); NULL when it cannot be
 * read. Free with free(). */
char *bench_read_file(const char *path, size_t *len);

#endif
