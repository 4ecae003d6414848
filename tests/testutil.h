/* testutil.h: helpers shared by the test programs: where the shared models and
 * the build live, reading JSON-lines reference files, and running a suite. */
#ifndef ENG_TESTUTIL_H
#define ENG_TESTUTIL_H

#include <check.h>
#include <stdint.h>

#include "engine.h"

/* The exit code that tells tests/run-tests.sh a program skipped. */
#define TEST_SKIP 77

/* $ENGINE_SHARED (default ../shared) joined with rel; NULL when that path does
 * not exist. The result is a static buffer, valid until the next call. */
const char *test_shared_path(const char *rel);
/* $ENGINE_BUILD (default build) joined with rel, in a static buffer. */
const char *test_build_path(const char *rel);

/* Reads a whole file; NULL when it cannot. *len may be NULL. Free with free(). */
char *test_read_file(const char *path, size_t *len);

/* Splits a file's text into lines in place (the '\n' become NULs); returns a
 * malloc'd array of line pointers and their count. */
char **test_split_lines(char *text, int *n);

/* Reads one float array field ("logits", "embedding") of every line of a JSON
 * lines file into a malloc'd n x width matrix; width from the first line. */
float *test_read_jsonl_floats(const char *path, const char *field, int *n, int *width);

/* A tiny model's golden file, tests/golden/tiny/NAME/expected.jsonl (made by
 * tests/golden/make_tiny_models.py and friends): per line the token ids and
 * the reference "logits" or "embedding". test_read_golden reads its first
 * TEST_GOLDEN_ROWS lines, asserting (Check) that the file reads and that every
 * line has both arrays within the bounds. */
enum { TEST_GOLDEN_ROWS = 16, TEST_GOLDEN_IDS = 160, TEST_GOLDEN_OUT = 64 };
typedef struct {
    int n, width, is_logits;
    eng_seq seq[TEST_GOLDEN_ROWS]; /* seq[r].ids points into ids[r] */
    int32_t ids[TEST_GOLDEN_ROWS][TEST_GOLDEN_IDS];
    float expect[TEST_GOLDEN_ROWS][TEST_GOLDEN_OUT];
} test_golden;
void test_read_golden(const char *name, test_golden *g);

/* The SST-2 dev set of $ENGINE_SHARED/data/sst2/dev.tsv: texts (trailing
 * space kept) and gold labels, in file order. Returns the count (872), or 0
 * when the file cannot be read. The arrays live until the program ends. */
int test_read_sst2_dev(char ***texts, int **labels);

/* Classifies texts[0..n) with model in batches of 32 on a fresh context,
 * asserting (Check) that every batch succeeds. Returns malloc'd logits
 * (n x n_labels) and, through *labels, malloc'd argmax labels. */
float *test_classify_all(const eng_model *model, char **texts, int n, int **labels);

/* The malloc family counted: testutil.c's malloc, calloc, realloc and
 * aligned_alloc take the place of libc's in every caller of a test program
 * (the library is linked statically, and glibc allows its malloc to be
 * replaced) and forward to glibc's own, so a test can tell whether a warm
 * call allocates. TEST_COUNT_ALLOCS is 0 in sanitizer builds, whose
 * runtimes own malloc: there test_allocs counts nothing. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_COUNT_ALLOCS 0
#else
#define TEST_COUNT_ALLOCS 1
#endif
/* The calls to the malloc family so far, from every thread. */
long test_allocs(void);

/* The cosine of a and b (n floats), summed in double. */
double test_cosine(const float *a, const float *b, int n);

/* A deterministic xorshift generator shared by the tests, so a failure
 * reproduces: the next 32 random bits, and a float uniform in [lo, hi). */
uint32_t test_rand_u32(void);
float test_uniform(float lo, float hi);

/* Notes, from main and before the suite runs, that part of the program's
 * coverage cannot run here (no $ENGINE_SHARED, no CPU feature...): prints
 * "skip: <why>" and makes test_run_suite answer TEST_SKIP instead of 0, so
 * tests/run-tests.sh reports the missing coverage as a skip, never as a pass.
 * (Check runs each test in a child process, so the decision belongs to main.) */
void test_note_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* test_note_skip for each vector ISA whose kernels this CPU (or its OS, or
 * ENG_ISA) cannot run: the tests loop over every ISA and pass over those, so
 * the program says their coverage is missing. */
void test_note_missing_isas(void);

/* Runs the suite; returns the process exit status: 1 when a test failed, else
 * TEST_SKIP when test_note_skip was called, else 0. */
int test_run_suite(Suite *s);

#endif
