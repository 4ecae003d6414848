/* testutil.c: see testutil.h. */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "kernels.h"
#include "testutil.h"

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

const char *test_shared_path(const char *rel)
{
    static char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", env_or("ENGINE_SHARED", "../shared"), rel);
    return stat(path, &st) == 0 ? path : NULL;
}

const char *test_build_path(const char *rel)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", env_or("ENGINE_BUILD", "build"), rel);
    return path;
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, 65536, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char **test_split_lines(char *text, int *n)
{
    int count = 0, cap = 1024;
    char **lines = malloc((size_t)cap * sizeof *lines);
    char *p = text;
    while (lines && *p) {
        char *nl = strchr(p, '\n');
        if (count == cap) {
            cap *= 2;
            char **nlines = realloc(lines, (size_t)cap * sizeof *lines);
            if (!nlines) {
                free(lines);
                return NULL;
            }
            lines = nlines;
        }
        lines[count++] = p;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    *n = count;
    return lines;
}

float *test_read_jsonl_floats(const char *path, const char *field, int *n, int *width)
{
    char *text = test_read_file(path, NULL);
    if (!text)
        return NULL;
    int nl = 0;
    char **lines = test_split_lines(text, &nl);
    float *out = NULL;
    *n = 0;
    *width = 0;
    for (int i = 0; lines && i < nl; i++) {
        cJSON *j = cJSON_Parse(lines[i]);
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, field);
        int w = cJSON_GetArraySize(arr);
        if (!cJSON_IsArray(arr) || w == 0 || (*width && w != *width)) {
            cJSON_Delete(j);
            free(out);
            out = NULL;
            break;
        }
        if (!out) {
            *width = w;
            out = malloc((size_t)nl * w * sizeof *out);
            if (!out) {
                cJSON_Delete(j);
                break;
            }
        }
        int k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, arr) out[(size_t)i * w + k++] = (float)v->valuedouble;
        cJSON_Delete(j);
        (*n)++;
    }
    free(lines);
    free(text);
    return out;
}

void test_read_golden(const char *name, test_golden *g)
{
    char path[512];
    snprintf(path, sizeof path, "tests/golden/tiny/%s/expected.jsonl", name);
    char *text = test_read_file(path, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    int nl = 0;
    char **lines = test_split_lines(text, &nl);
    memset(g, 0, sizeof *g);
    for (int i = 0; i < nl && g->n < TEST_GOLDEN_ROWS; i++) {
        cJSON *j = cJSON_Parse(lines[i]);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "ids");
        const cJSON *out = cJSON_GetObjectItemCaseSensitive(j, "logits");
        g->is_logits = out != NULL;
        if (!out)
            out = cJSON_GetObjectItemCaseSensitive(j, "embedding");
        ck_assert_msg(cJSON_IsArray(ids) && cJSON_IsArray(out), "%s line %d", path, i + 1);
        ck_assert_int_le(cJSON_GetArraySize(ids), TEST_GOLDEN_IDS);
        ck_assert_int_le(cJSON_GetArraySize(out), TEST_GOLDEN_OUT);
        int k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, ids) g->ids[g->n][k++] = v->valueint;
        g->seq[g->n] = (eng_seq){g->ids[g->n], k};
        g->width = 0;
        cJSON_ArrayForEach(v, out) g->expect[g->n][g->width++] = (float)v->valuedouble;
        g->n++;
        cJSON_Delete(j);
    }
    free(lines);
    free(text);
}

static atomic_long n_allocs;

long test_allocs(void)
{
    return atomic_load(&n_allocs);
}

#if TEST_COUNT_ALLOCS
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);

void *malloc(size_t n)
{
    atomic_fetch_add(&n_allocs, 1);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    atomic_fetch_add(&n_allocs, 1);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    atomic_fetch_add(&n_allocs, 1);
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    atomic_fetch_add(&n_allocs, 1);
    return __libc_memalign(align, n);
}
#endif

double test_cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

int test_read_sst2_dev(char ***texts, int **labels)
{
    const char *path = test_shared_path("data/sst2/dev.tsv");
    char *tsv = path ? test_read_file(path, NULL) : NULL;
    if (!tsv)
        return 0;
    int n = 0, count = 0;
    char **lines = test_split_lines(tsv, &n);
    *texts = malloc((size_t)n * sizeof **texts);
    *labels = malloc((size_t)n * sizeof **labels);
    for (int i = 1; lines && *texts && *labels && i < n; i++) { /* line 0 is the header */
        char *tab = strrchr(lines[i], '\t');
        if (!tab)
            continue;
        *tab = '\0';
        (*texts)[count] = lines[i];
        (*labels)[count++] = atoi(tab + 1);
    }
    free(lines);
    return count;
}

float *test_classify_all(const eng_model *model, char **texts, int n, int **labels)
{
    eng_model_info info;
    eng_model_get_info(model, &info);
    const size_t C = (size_t)info.n_labels;
    eng_ctx *ctx = NULL;
    ck_assert_int_eq(eng_ctx_init(model, NULL, &ctx), ENG_OK);
    float *logits = malloc((size_t)n * C * sizeof *logits);
    *labels = malloc((size_t)n * sizeof **labels);
    ck_assert(logits && *labels);
    for (int i = 0; i < n; i += 32) {
        int b = n - i < 32 ? n - i : 32;
        ck_assert_int_eq(eng_classify(ctx, (const char *const *)texts + i, b, logits + i * C, NULL,
                                      *labels + i, NULL),
                         ENG_OK);
    }
    eng_ctx_free(ctx);
    return logits;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

uint32_t test_rand_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

float test_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)(test_rand_u32() >> 8) / 16777216.0f;
}

static int skip_noted;

void test_note_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("skip: ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    skip_noted = 1;
}

void test_note_missing_isas(void)
{
    for (int isa = ENG_ISA_AVX2; isa <= ENG_ISA_AVX512; isa++)
        if (!eng__kernels_for((eng__isa)isa))
            test_note_skip("this CPU cannot run the %s kernels; their tests did not run",
                           eng__isa_str((eng__isa)isa));
}

int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : skip_noted ? TEST_SKIP : 0;
}
