/* test_format.c: the .eng file reader and writer (src/core/format.c): a round trip,
 * and hostile files (truncated, garbled, every header and directory field out
 * of range) that the reader must refuse, or load safely, and never crash on. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "writer.h"

static char dir[64];
static char good_path[128];
static unsigned char *good;   /* the bytes of a valid file */
static size_t good_len;

static const char meta[] = "{\"format\":\"eng\",\"note\":\"test\"}";
static float t_a[3 * 5];
static unsigned char t_v[7] = {'a', '\n', 'b', 'c', '\n', 'd', 'e'};
static int32_t t_i[2 * 2 * 2];

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_format.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (int i = 0; i < 15; i++)
        t_a[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 8; i++)
        t_i[i] = i * 1000 - 3;
    eng__writer *w = eng__writer_new();
    uint64_t sa[2] = {3, 5}, sv[1] = {7}, si[3] = {2, 2, 2};
    ck_assert_int_eq(eng__writer_add(w, "a", ENG_DT_F32, 2, sa, t_a), ENG_OK);
    ck_assert_int_eq(eng__writer_add(w, "tok.vocab", ENG_DT_U8, 1, sv, t_v), ENG_OK);
    ck_assert_int_eq(eng__writer_add(w, "L0.ints", ENG_DT_I32, 3, si, t_i), ENG_OK);
    snprintf(good_path, sizeof good_path, "%s/good.eng", dir);
    char err[256];
    ck_assert_int_eq(eng__writer_save(w, meta, good_path, err, sizeof err), ENG_OK);
    eng__writer_free(w);
    good = read_all(good_path, &good_len);
}

static void teardown(void)
{
    free(good);
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Opens bytes written to a scratch file; on success reads every tensor byte
 * (so ASan sees any out-of-range pointer) and closes it. */
static eng_status try_bytes(const void *b, size_t n, char *err, size_t errlen)
{
    char p[128];
    snprintf(p, sizeof p, "%s/try.eng", dir);
    write_all(p, b, n);
    eng__file f;
    eng_status s = eng__file_open(&f, p, err, errlen);
    if (s == ENG_OK) {
        unsigned sum = 0;
        for (uint32_t i = 0; i < f.n_tensors; i++) {
            const unsigned char *d = eng__file_data(&f, &f.dir[i]);
            for (uint64_t k = 0; k < f.dir[i].nbytes; k++)
                sum += d[k];
        }
        for (size_t k = 0; k < f.meta_size; k++)
            sum += (unsigned char)f.meta[k];
        (void)sum;
        eng__file_close(&f);
    } else {
        ck_assert_msg(strlen(err) > 0, "a refusal must say why");
    }
    return s;
}

START_TEST(round_trip)
{
    eng__file f;
    char err[256] = "";
    ck_assert_int_eq(eng__file_open(&f, good_path, err, sizeof err), ENG_OK);
    ck_assert_uint_eq(f.n_tensors, 3);
    ck_assert_uint_eq(f.meta_size, strlen(meta));
    ck_assert(memcmp(f.meta, meta, f.meta_size) == 0);
    const eng__file_tensor *a = eng__file_find(&f, "a"), *v = eng__file_find(&f, "tok.vocab"),
                           *ti = eng__file_find(&f, "L0.ints");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(ti);
    ck_assert_ptr_null(eng__file_find(&f, "missing"));
    ck_assert_uint_eq(a->dtype, ENG_DT_F32);
    ck_assert_uint_eq(a->ndim, 2);
    ck_assert_uint_eq(a->shape[0], 3);
    ck_assert_uint_eq(a->shape[1], 5);
    ck_assert_uint_eq(a->shape[2], 0);
    ck_assert_uint_eq(ti->ndim, 3);
    ck_assert_uint_eq(ti->nbytes, sizeof t_i);
    ck_assert(memcmp(eng__file_data(&f, a), t_a, sizeof t_a) == 0);
    ck_assert(memcmp(eng__file_data(&f, v), t_v, sizeof t_v) == 0);
    ck_assert(memcmp(eng__file_data(&f, ti), t_i, sizeof t_i) == 0);
    for (uint32_t i = 0; i < f.n_tensors; i++)
        ck_assert_uint_eq((uintptr_t)eng__file_data(&f, &f.dir[i]) % ENG_FILE_ALIGN, 0);
    eng__file_close(&f);
    ck_assert_uint_eq(eng__dtype_size(ENG_DT_BF16), 2);
    ck_assert_uint_eq(eng__dtype_size(ENG_DT_COUNT), 0);
    ck_assert_str_eq(eng__dtype_name(ENG_DT_I8), "I8");
}
END_TEST

START_TEST(truncated_every_sixteenth)
{
    char err[256];
    for (int k = 0; k < 16; k++) {
        size_t n = good_len * (size_t)k / 16;
        ck_assert_msg(try_bytes(good, n, err, sizeof err) == ENG_ERR_FORMAT,
                      "truncated to %zu of %zu bytes was accepted", n, good_len);
    }
    ck_assert_int_eq(try_bytes(good, good_len - 1, err, sizeof err), ENG_ERR_FORMAT);
    ck_assert_int_eq(try_bytes(good, good_len, err, sizeof err), ENG_OK);
}
END_TEST

START_TEST(zero_size_and_missing)
{
    char err[256], p[128];
    ck_assert_int_eq(try_bytes(good, 0, err, sizeof err), ENG_ERR_FORMAT);
    snprintf(p, sizeof p, "%s/nonexistent.eng", dir);
    eng__file f;
    ck_assert_int_eq(eng__file_open(&f, p, err, sizeof err), ENG_ERR_IO);
    ck_assert_int_eq(eng__file_open(&f, dir, err, sizeof err), ENG_ERR_IO);
}
END_TEST

START_TEST(garbled_bytes)
{
    /* Random bytes anywhere: refused or loaded, never a crash or an
     * out-of-range read (run under ASan). Seeded, so failures reproduce. */
    unsigned char *b = malloc(good_len);
    uint64_t x = 12345;
    int refused = 0;
    char err[256];
    for (int iter = 0; iter < 400; iter++) {
        memcpy(b, good, good_len);
        int flips = 1 + iter % 8;
        for (int k = 0; k < flips; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            /* Half the hits land in the header and directory, where they matter. */
            size_t span = iter % 2 ? good_len : 72 + 3 * sizeof(eng__file_tensor) + 64;
            b[(x >> 33) % (span < good_len ? span : good_len)] = (unsigned char)(x >> 24);
        }
        refused += try_bytes(b, good_len, err, sizeof err) != ENG_OK;
    }
    free(b);
    ck_assert_msg(refused > 100, "only %d of 400 garbled files refused", refused);
}
END_TEST

/* The good file with its header or directory changed by a mutator. */
typedef void (*mutator)(eng__file_header *h, eng__file_tensor *dir);

static eng_status mutated(mutator m, char *err, size_t errlen)
{
    unsigned char *b = malloc(good_len);
    memcpy(b, good, good_len);
    eng__file_header h;
    memcpy(&h, b, sizeof h);
    uint64_t dir_offset = h.dir_offset;
    eng__file_tensor d[3];
    memcpy(d, b + dir_offset, sizeof d);
    m(&h, d);
    memcpy(b, &h, sizeof h);
    memcpy(b + dir_offset, d, sizeof d);
    eng_status s = try_bytes(b, good_len, err, errlen);
    free(b);
    return s;
}

static void bad_version(eng__file_header *h, eng__file_tensor *d) { h->version = ENG_FILE_VERSION + 1; }
static void old_version(eng__file_header *h, eng__file_tensor *d) { h->version = ENG_FILE_VERSION - 1; }
static void bad_magic(eng__file_header *h, eng__file_tensor *d) { h->magic[0] = 'X'; }
static void huge_count(eng__file_header *h, eng__file_tensor *d) { h->n_tensors = 0xffffffffu; }
static void zero_count(eng__file_header *h, eng__file_tensor *d) { h->n_tensors = 0; }
static void meta_oob(eng__file_header *h, eng__file_tensor *d) { h->meta_size = UINT64_MAX - 8; }
static void dir_oob(eng__file_header *h, eng__file_tensor *d) { h->data_offset = UINT64_MAX & ~63ull; }
static void reserved(eng__file_header *h, eng__file_tensor *d) { h->reserved[3] = 1; }
static void size_lie(eng__file_header *h, eng__file_tensor *d) { h->file_size += 64; }
static void offset_oob(eng__file_header *h, eng__file_tensor *d) { d[2].offset = h->file_size; }
static void offset_wrap(eng__file_header *h, eng__file_tensor *d) { d[2].offset = UINT64_MAX & ~63ull; }
static void unaligned(eng__file_header *h, eng__file_tensor *d) { d[1].offset += 4; }
static void overlap(eng__file_header *h, eng__file_tensor *d) { d[1].offset = d[0].offset; }
static void unterminated(eng__file_header *h, eng__file_tensor *d) { memset(d[0].name, 'A', ENG_FILE_NAME_MAX); }
static void empty_name(eng__file_header *h, eng__file_tensor *d) { d[0].name[0] = '\0'; }
static void duplicate(eng__file_header *h, eng__file_tensor *d) { memcpy(d[1].name, d[0].name, ENG_FILE_NAME_MAX); }
static void bad_dtype(eng__file_header *h, eng__file_tensor *d) { d[0].dtype = ENG_DT_COUNT; }
static void bad_ndim(eng__file_header *h, eng__file_tensor *d) { d[0].ndim = 5; }
static void nbytes_lie(eng__file_header *h, eng__file_tensor *d) { d[0].nbytes += 4; }
static void shape_zero(eng__file_header *h, eng__file_tensor *d) { d[0].shape[1] = 0; d[0].nbytes = 0; }
static void shape_overflow(eng__file_header *h, eng__file_tensor *d) { d[0].shape[0] = 1ull << 62; d[0].shape[1] = 8; }
static void stray_dim(eng__file_header *h, eng__file_tensor *d) { d[0].shape[3] = 1; }

START_TEST(hostile_fields)
{
    static const struct {
        const char *what;
        mutator m;
    } cases[] = {
        {"bad version", bad_version},     {"bad magic", bad_magic},
        {"huge n_tensors", huge_count},   {"no tensors", zero_count},
        {"metadata out of range", meta_oob}, {"data offset out of range", dir_oob},
        {"reserved bytes", reserved},     {"file_size lie", size_lie},
        {"tensor past the end", offset_oob}, {"offset wraps", offset_wrap},
        {"unaligned tensor", unaligned},  {"overlapping tensors", overlap},
        {"non-terminated name", unterminated}, {"empty name", empty_name},
        {"duplicate name", duplicate},    {"unknown dtype", bad_dtype},
        {"5 dimensions", bad_ndim},       {"nbytes lie", nbytes_lie},
        {"zero dimension", shape_zero},   {"shape overflow", shape_overflow},
        {"stray unused dimension", stray_dim},
    };
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        eng_status s = mutated(cases[i].m, err, sizeof err);
        ck_assert_msg(s == ENG_ERR_FORMAT, "%s: accepted (status %d)", cases[i].what, s);
    }
}
END_TEST

/* A file of the previous format version is refused by name, with the remedy:
 * never guessed at from its tensors. */
START_TEST(old_version_says_reconvert)
{
    char err[256] = "";
    ck_assert_int_eq(mutated(old_version, err, sizeof err), ENG_ERR_FORMAT);
    ck_assert_msg(strstr(err, "re-convert") != NULL, "message: %s", err);
}
END_TEST

START_TEST(writer_refusals)
{
    char err[256], p[160];
    uint64_t s1[1] = {4};
    float x[4] = {0};
    char long_name[ENG_FILE_NAME_MAX + 1];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    eng__writer *w = eng__writer_new();
    ck_assert_int_eq(eng__writer_add(w, long_name, ENG_DT_F32, 1, s1, x), ENG_ERR_INVALID_ARG);
    snprintf(p, sizeof p, "%s/refused.eng", dir);
    ck_assert_int_ne(eng__writer_save(w, meta, p, err, sizeof err), ENG_OK);
    ck_assert_int_ne(access(p, F_OK), 0);
    eng__writer_free(w);

    w = eng__writer_new();
    ck_assert_int_eq(eng__writer_add(w, "x", ENG_DT_F32, 1, s1, x), ENG_OK);
    ck_assert_int_eq(eng__writer_add(w, "x", ENG_DT_F32, 1, s1, x), ENG_OK);
    ck_assert_int_eq(eng__writer_save(w, meta, p, err, sizeof err), ENG_ERR_INVALID_ARG);
    ck_assert_int_ne(access(p, F_OK), 0);
    eng__writer_free(w);

    /* A failed rename (the target is a directory) leaves no temporary behind. */
    w = eng__writer_new();
    ck_assert_int_eq(eng__writer_add(w, "x", ENG_DT_F32, 1, s1, x), ENG_OK);
    snprintf(p, sizeof p, "%s/adir", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    ck_assert_int_eq(eng__writer_save(w, meta, p, err, sizeof err), ENG_ERR_IO);
    eng__writer_free(w);
    rmdir(p);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        ck_assert_msg(strstr(e->d_name, ".tmp-") == NULL, "left behind %s", e->d_name);
    closedir(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("format");
    TCase *tc = tcase_create("format");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, truncated_every_sixteenth);
    tcase_add_test(tc, zero_size_and_missing);
    tcase_add_test(tc, garbled_bytes);
    tcase_add_test(tc, hostile_fields);
    tcase_add_test(tc, old_version_says_reconvert);
    tcase_add_test(tc, writer_refusals);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
