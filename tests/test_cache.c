/* test_cache.c: the result cache (eng_cache_*): a hit returns exactly what
 * was stored, keys differ by every part, LRU eviction by entries and by
 * bytes, and concurrent use (run under TSan by make tsan). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "testutil.h"

static eng_cache *make(size_t entries, size_t bytes)
{
    eng_cache_params p = eng_cache_default_params();
    p.max_entries = entries;
    if (bytes)
        p.max_bytes = bytes;
    eng_cache *c = NULL;
    ck_assert_int_eq(eng_cache_create(&p, &c), ENG_OK);
    return c;
}

static void put(eng_cache *c, const char *model, eng_task task, uint32_t opt, const char *in,
                float x)
{
    float v[3] = {x, x + 1, x + 2};
    eng_cache_key k = {model, task, opt, in, strlen(in)};
    eng_cache_value val = {v, 3, 7, 11};
    ck_assert_int_eq(eng_cache_put(c, &k, &val), ENG_OK);
}

static int get(eng_cache *c, const char *model, eng_task task, uint32_t opt, const char *in,
               float *x)
{
    float v[3];
    eng_cache_key k = {model, task, opt, in, strlen(in)};
    eng_cache_value val;
    if (!eng_cache_get(c, &k, v, 3, &val))
        return 0;
    ck_assert_int_eq(val.n_vals, 3);
    ck_assert_int_eq(val.label, 7);
    ck_assert_int_eq(val.n_tokens, 11);
    ck_assert(v[1] == v[0] + 1 && v[2] == v[0] + 2);
    *x = v[0];
    return 1;
}

START_TEST(hit_equals_stored)
{
    eng_cache *c = make(16, 0);
    float x = 0;
    ck_assert(!get(c, "m", ENG_TASK_EMBED, 0, "hello", &x));
    put(c, "m", ENG_TASK_EMBED, 0, "hello", 0.1f);
    ck_assert(get(c, "m", ENG_TASK_EMBED, 0, "hello", &x));
    ck_assert(x == 0.1f);   /* bit-exact: the stored floats come back */
    /* Every part of the key matters. */
    ck_assert(!get(c, "m2", ENG_TASK_EMBED, 0, "hello", &x));
    ck_assert(!get(c, "m", ENG_TASK_CLASSIFY, 0, "hello", &x));
    ck_assert(!get(c, "m", ENG_TASK_EMBED, 1, "hello", &x));
    ck_assert(!get(c, "m", ENG_TASK_EMBED, 0, "hellO", &x));
    ck_assert(!get(c, "m", ENG_TASK_EMBED, 0, "hell", &x));
    /* A put replaces. */
    put(c, "m", ENG_TASK_EMBED, 0, "hello", 5.f);
    ck_assert(get(c, "m", ENG_TASK_EMBED, 0, "hello", &x) && x == 5.f);
    eng_cache_stats st;
    eng_cache_get_stats(c, &st);
    ck_assert_uint_eq(st.entries, 1);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.misses, 6);
    eng_cache_free(c);
}
END_TEST

START_TEST(lru_by_entries_and_bytes)
{
    eng_cache *c = make(3, 0);
    put(c, "m", ENG_TASK_EMBED, 0, "a", 1);
    put(c, "m", ENG_TASK_EMBED, 0, "b", 2);
    put(c, "m", ENG_TASK_EMBED, 0, "c", 3);
    float x;
    ck_assert(get(c, "m", ENG_TASK_EMBED, 0, "a", &x));   /* a is now the most recent */
    put(c, "m", ENG_TASK_EMBED, 0, "d", 4);               /* evicts b */
    ck_assert(!get(c, "m", ENG_TASK_EMBED, 0, "b", &x));
    ck_assert(get(c, "m", ENG_TASK_EMBED, 0, "a", &x) && x == 1);
    ck_assert(get(c, "m", ENG_TASK_EMBED, 0, "c", &x) && x == 3);
    ck_assert(get(c, "m", ENG_TASK_EMBED, 0, "d", &x) && x == 4);
    eng_cache_free(c);

    /* A byte bound that holds about two entries of this size. */
    c = make(100, 0);
    put(c, "m", ENG_TASK_EMBED, 0, "x", 1);
    eng_cache_stats st;
    eng_cache_get_stats(c, &st);
    size_t one = st.bytes;
    eng_cache_free(c);
    c = make(100, 2 * one + one / 2);
    put(c, "m", ENG_TASK_EMBED, 0, "x", 1);
    put(c, "m", ENG_TASK_EMBED, 0, "y", 2);
    put(c, "m", ENG_TASK_EMBED, 0, "z", 3);
    eng_cache_get_stats(c, &st);
    ck_assert_uint_eq(st.entries, 2);
    ck_assert_uint_le(st.bytes, 2 * one + one / 2);
    ck_assert(!get(c, "m", ENG_TASK_EMBED, 0, "x", &x));
    /* An entry larger than the whole bound is refused. */
    char big[4096];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    float v = 0;
    eng_cache_key k = {"m", ENG_TASK_EMBED, 0, big, strlen(big)};
    eng_cache_value val = {&v, 1, 0, 0};
    ck_assert_int_eq(eng_cache_put(c, &k, &val), ENG_ERR_TOO_LONG);
    eng_cache_free(c);
}
END_TEST

START_TEST(off_and_null)
{
    eng_cache *c = make(0, 0);   /* off */
    put(c, "m", ENG_TASK_EMBED, 0, "a", 1);
    float x;
    ck_assert(!get(c, "m", ENG_TASK_EMBED, 0, "a", &x));
    eng_cache_free(c);
    eng_cache_key k = {"m", ENG_TASK_EMBED, 0, "a", 1};
    eng_cache_value val;
    ck_assert(!eng_cache_get(NULL, &k, &x, 1, &val));
    eng_cache_free(NULL);
}
END_TEST

static eng_cache *shared_cache;

static void *hammer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 5000; i++) {
        char in[16];
        snprintf(in, sizeof in, "t%d", (i * 7 + id) % 64);
        float x;
        if (get(shared_cache, "m", ENG_TASK_EMBED, 0, in, &x))
            ck_assert(x == (float)((i * 7 + id) % 64));
        else
            put(shared_cache, "m", ENG_TASK_EMBED, 0, in, (float)((i * 7 + id) % 64));
    }
    return NULL;
}

START_TEST(concurrent)
{
    shared_cache = make(32, 0);   /* smaller than the key set: evictions race with gets */
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    eng_cache_stats st;
    eng_cache_get_stats(shared_cache, &st);
    ck_assert_uint_eq(st.hits + st.misses, 4 * 5000);
    ck_assert_uint_le(st.entries, 32);
    ck_assert_uint_gt(st.evictions, 0);
    eng_cache_free(shared_cache);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");
    tcase_add_test(tc, hit_equals_stored);
    tcase_add_test(tc, lru_by_entries_and_bytes);
    tcase_add_test(tc, off_and_null);
    tcase_add_test(tc, concurrent);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
