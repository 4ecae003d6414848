/* test_torch_zip.c: src_load_torch_zip() on the real checkpoints in
 * $ENGINE_SHARED/models against tests/golden/torch_zip_checks.txt (made by
 * PyTorch, see make_torch_zip_golden.py), and on small archives built here
 * byte by byte: views into shared storages, both pickle protocols, deflate,
 * ZIP64, wrapped state dicts, and hostile files that must be refused with a
 * clear message and without a crash. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "pickle.h"
#include "source.h"
#include "testutil.h"

/* The golden sums are float64 sums over the same values, so they differ only
 * by summation order; sample values are printed with 9 significant digits. */
#define SUM_REL_TOL 1e-9
#define VALUE_REL_TOL 1e-7

#define GOLDEN "tests/golden/torch_zip_checks.txt"

/* ---- byte buffers ------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put8(buf *b, unsigned v) { uint8_t c = (uint8_t)v; put(b, &c, 1); }
static void put16(buf *b, unsigned v) { put8(b, v & 0xff); put8(b, v >> 8); }
static void put32(buf *b, uint32_t v) { put16(b, v & 0xffff); put16(b, v >> 16); }
static void put64(buf *b, uint64_t v) { put32(b, (uint32_t)v); put32(b, (uint32_t)(v >> 32)); }

/* ---- a zip writer ------------------------------------------------------- */

typedef struct {
    const char *name;
    const void *data;
    size_t len;
} zentry;

enum { Z_DEFLATE = 1, Z_ZIP64 = 2 };

static void deflate_raw(const void *src, size_t n, buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    uLong bound = deflateBound(&z, (uLong)n);
    uint8_t *dst = malloc(bound);
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)n;
    z.next_out = dst;
    z.avail_out = (uInt)bound;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    put(out, dst, z.total_out);
    deflateEnd(&z);
    free(dst);
}

/* An archive of the given entries; with Z_ZIP64 every size and offset is
 * saturated in the 32-bit fields and given in ZIP64 records instead. */
static buf zip_build(const zentry *e, int n, int flags)
{
    buf z = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        buf data = {0};
        if (flags & Z_DEFLATE)
            deflate_raw(e[i].data, e[i].len, &data);
        else
            put(&data, e[i].data, e[i].len);
        uint32_t crc = (uint32_t)crc32(0, e[i].data, (uInt)e[i].len);
        uint64_t off = z.n;
        int method = flags & Z_DEFLATE ? 8 : 0, z64 = flags & Z_ZIP64;
        uint32_t sat = 0xFFFFFFFFu;
        put32(&z, 0x04034b50);
        put16(&z, 20);
        put16(&z, 0);
        put16(&z, (unsigned)method);
        put32(&z, 0);
        put32(&z, crc);
        put32(&z, z64 ? sat : (uint32_t)data.n);
        put32(&z, z64 ? sat : (uint32_t)e[i].len);
        put16(&z, (unsigned)strlen(e[i].name));
        put16(&z, 0);
        put(&z, e[i].name, strlen(e[i].name));
        put(&z, data.p, data.n);

        put32(&cd, 0x02014b50);
        put16(&cd, 45);
        put16(&cd, 45);
        put16(&cd, 0);
        put16(&cd, (unsigned)method);
        put32(&cd, 0);
        put32(&cd, crc);
        put32(&cd, z64 ? sat : (uint32_t)data.n);
        put32(&cd, z64 ? sat : (uint32_t)e[i].len);
        put16(&cd, (unsigned)strlen(e[i].name));
        put16(&cd, z64 ? 28 : 0);
        put16(&cd, 0);
        put16(&cd, 0);
        put16(&cd, 0);
        put32(&cd, 0);
        put32(&cd, z64 ? sat : (uint32_t)off);
        put(&cd, e[i].name, strlen(e[i].name));
        if (z64) {
            put16(&cd, 1);
            put16(&cd, 24);
            put64(&cd, e[i].len);
            put64(&cd, data.n);
            put64(&cd, off);
        }
        free(data.p);
    }
    uint64_t cd_off = z.n;
    put(&z, cd.p, cd.n);
    if (flags & Z_ZIP64) {
        uint64_t eocd64 = z.n;
        put32(&z, 0x06064b50);
        put64(&z, 44);
        put16(&z, 45);
        put16(&z, 45);
        put32(&z, 0);
        put32(&z, 0);
        put64(&z, (uint64_t)n);
        put64(&z, (uint64_t)n);
        put64(&z, cd.n);
        put64(&z, cd_off);
        put32(&z, 0x07064b50);
        put32(&z, 0);
        put64(&z, eocd64);
        put32(&z, 1);
    }
    put32(&z, 0x06054b50);
    put16(&z, 0);
    put16(&z, 0);
    put16(&z, flags & Z_ZIP64 ? 0xFFFF : (unsigned)n);
    put16(&z, flags & Z_ZIP64 ? 0xFFFF : (unsigned)n);
    put32(&z, flags & Z_ZIP64 ? 0xFFFFFFFFu : (uint32_t)cd.n);
    put32(&z, flags & Z_ZIP64 ? 0xFFFFFFFFu : (uint32_t)cd_off);
    put16(&z, 0);
    free(cd.p);
    return z;
}

/* ---- a pickle writer ---------------------------------------------------- */

typedef struct {
    buf b;
    int proto;
} pickler;

static void p_op(pickler *p, unsigned op) { put8(&p->b, op); }

static void p_str(pickler *p, const char *s)
{
    size_t n = strlen(s);
    if (p->proto >= 4 && n < 256) {
        p_op(p, 0x8c);
        put8(&p->b, (unsigned)n);
    } else {
        p_op(p, 'X');
        put32(&p->b, (uint32_t)n);
    }
    put(&p->b, s, n);
}

static void p_int(pickler *p, int64_t v)
{
    if (v >= 0 && v < 256) {
        p_op(p, 'K');
        put8(&p->b, (unsigned)v);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        p_op(p, 'J');
        put32(&p->b, (uint32_t)v);
    } else {
        p_op(p, 0x8a);
        put8(&p->b, 8);
        put64(&p->b, (uint64_t)v);
    }
}

static void p_global(pickler *p, const char *module, const char *name)
{
    if (p->proto >= 4) {
        p_str(p, module);
        p_str(p, name);
        p_op(p, 0x93);
    } else {
        p_op(p, 'c');
        put(&p->b, module, strlen(module));
        p_op(p, '\n');
        put(&p->b, name, strlen(name));
        p_op(p, '\n');
    }
}

static void p_start(pickler *p, int proto)
{
    memset(p, 0, sizeof *p);
    p->proto = proto;
    p_op(p, 0x80);
    p_op(p, (unsigned)proto);
    if (proto >= 4) {
        p_op(p, 0x95); /* FRAME: the reader ignores its length */
        put64(&p->b, 0);
    }
}

static void p_ordered_dict(pickler *p)
{
    p_global(p, "collections", "OrderedDict");
    p_op(p, ')');
    p_op(p, 'R');
}

typedef struct {
    const char *name;
    const char *storage_module, *storage_class; /* a storage class, or a dtype */
    const char *key;
    int64_t storage_numel, offset;
    int ndim;
    int64_t shape[4], stride[4];
    int as_parameter;
} tspec;

/* One _rebuild_tensor_v2(...) call, maybe inside _rebuild_parameter(...). The
 * rebuild function is memoized on first use, as torch.save does. */
static void p_tensor(pickler *p, const tspec *t, int *memoized)
{
    if (t->as_parameter)
        p_global(p, "torch._utils", "_rebuild_parameter");
    if (t->as_parameter)
        p_op(p, '(');
    if (*memoized) {
        p_op(p, 'h');
        p_op(p, 0);
    } else {
        p_global(p, "torch._utils", "_rebuild_tensor_v2");
        if (p->proto >= 4) {
            p_op(p, 0x94);
        } else {
            p_op(p, 'q');
            p_op(p, 0);
        }
        *memoized = 1;
    }
    p_op(p, '(');
    p_op(p, '(');
    p_str(p, "storage");
    p_global(p, t->storage_module, t->storage_class);
    p_str(p, t->key);
    p_str(p, "cpu");
    p_int(p, t->storage_numel);
    p_op(p, 't');
    p_op(p, 'Q');
    p_int(p, t->offset);
    p_op(p, '(');
    for (int d = 0; d < t->ndim; d++)
        p_int(p, t->shape[d]);
    p_op(p, 't');
    p_op(p, '(');
    for (int d = 0; d < t->ndim; d++)
        p_int(p, t->stride[d]);
    p_op(p, 't');
    p_op(p, 0x89);
    p_ordered_dict(p);
    p_op(p, 't');
    p_op(p, 'R');
    if (t->as_parameter) {
        p_op(p, 0x89);
        p_ordered_dict(p);
        p_op(p, 't');
        p_op(p, 'R');
    }
}

/* An OrderedDict state dict with a _metadata attribute set through BUILD. */
static void p_state_dict(pickler *p, const tspec *t, int n)
{
    int memoized = 0;
    p_ordered_dict(p);
    p_op(p, '(');
    for (int i = 0; i < n; i++) {
        p_str(p, t[i].name);
        p_tensor(p, &t[i], &memoized);
    }
    p_op(p, 'u');
    p_op(p, '}');
    p_str(p, "_metadata");
    p_ordered_dict(p);
    p_op(p, 's');
    p_op(p, 'b');
}

/* ---- fixtures ----------------------------------------------------------- */

static float g_floats[24];
static int64_t g_longs[3] = {7, -8, 1LL << 40};

/* Views into one 24-float storage (as DistilBERT's q/k/v are), a parameter
 * holding int64s, a scalar and an empty tensor. */
static const tspec g_specs[] = {
    {"a", "torch", "FloatStorage", "0", 24, 0, 2, {2, 3}, {3, 1}, 0},
    {"b.t", "torch", "FloatStorage", "0", 24, 6, 2, {3, 2}, {1, 3}, 0},
    {"c.scalar", "torch", "FloatStorage", "0", 24, 23, 0, {0}, {0}, 0},
    {"d.long", "torch", "LongStorage", "1", 3, 0, 1, {3}, {1}, 1},
    {"e.empty", "torch", "FloatStorage", "0", 24, 0, 2, {0, 4}, {4, 1}, 0},
    {"f.col", "torch", "FloatStorage", "0", 24, 1, 3, {2, 2, 2}, {12, 4, 2}, 0},
};
#define N_SPECS ((int)(sizeof g_specs / sizeof g_specs[0]))

static void init_floats(void)
{
    for (int i = 0; i < 24; i++)
        g_floats[i] = (float)i + 0.5f;
}

/* A checkpoint archive around a pickle, with the fixture storages. */
static buf archive(const char *prefix, const buf *pkl, int flags)
{
    char n_pkl[128], n_ver[128], n0[128], n1[128];
    snprintf(n_pkl, sizeof n_pkl, "%s/data.pkl", prefix);
    snprintf(n_ver, sizeof n_ver, "%s/version", prefix);
    snprintf(n0, sizeof n0, "%s/data/0", prefix);
    snprintf(n1, sizeof n1, "%s/data/1", prefix);
    zentry e[] = {
        {n_pkl, pkl->p, pkl->n},
        {n0, g_floats, sizeof g_floats},
        {n1, g_longs, sizeof g_longs},
        {n_ver, "3\n", 2},
    };
    return zip_build(e, 4, flags);
}

static buf fixture_pickle(int proto, const tspec *specs, int n)
{
    pickler p;
    p_start(&p, proto);
    p_state_dict(&p, specs, n);
    p_op(&p, '.');
    return p.b;
}

static eng_status load_bytes(const void *bytes, size_t n, src_tensors *out, char *err, size_t errlen)
{
    char path[] = "/tmp/test_torch_zip_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, bytes, n), (ssize_t)n);
    close(fd);
    err[0] = '\0';
    eng_status s = src_load_torch_zip(path, out, err, errlen);
    unlink(path);
    return s;
}

/* Loading must fail with status s and a message containing want. */
static void expect_error(const buf *z, eng_status s, const char *want)
{
    src_tensors out;
    char err[512];
    eng_status got = load_bytes(z->p, z->n, &out, err, sizeof err);
    ck_assert_msg(got == s, "expected status %d, got %d (%s)", s, got, err);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' does not mention '%s'", err, want);
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_int_eq(out.n, 0);
    ck_assert_ptr_null(out.t);
}

static void expect_pickle_error(const buf *pkl, eng_status s, const char *want)
{
    buf z = archive("archive", pkl, 0);
    expect_error(&z, s, want);
    free(z.p);
}

/* ---- the fixture views -------------------------------------------------- */

static void check_fixture(const src_tensors *s)
{
    ck_assert_int_eq(s->n, N_SPECS);
    for (int i = 0; i < N_SPECS; i++)
        ck_assert_str_eq(s->t[i].name, g_specs[i].name);

    const src_tensor *a = src_find(s, "a");
    ck_assert_int_eq(a->dtype, SRC_F32);
    ck_assert_int_eq(a->ndim, 2);
    ck_assert_int_eq(a->shape[0], 2);
    ck_assert_int_eq(a->shape[1], 3);
    ck_assert_uint_eq(a->nbytes, 6 * sizeof(float));
    ck_assert_mem_eq(a->data, g_floats, 6 * sizeof(float));

    /* b is the transpose of the 2x3 block at offset 6. */
    const float bt[6] = {6.5f, 9.5f, 7.5f, 10.5f, 8.5f, 11.5f};
    const src_tensor *b = src_find(s, "b.t");
    ck_assert_int_eq(b->shape[0], 3);
    ck_assert_mem_eq(b->data, bt, sizeof bt);

    const src_tensor *c = src_find(s, "c.scalar");
    ck_assert_int_eq(c->ndim, 0);
    ck_assert_int_eq(src_numel(c), 1);
    ck_assert_float_eq(((const float *)c->data)[0], 23.5f);

    const src_tensor *d = src_find(s, "d.long");
    ck_assert_int_eq(d->dtype, SRC_I64);
    ck_assert_mem_eq(d->data, g_longs, sizeof g_longs);

    const src_tensor *e = src_find(s, "e.empty");
    ck_assert_int_eq(e->nbytes, 0);
    ck_assert_int_eq(src_numel(e), 0);

    /* f[i][j][k] = storage[1 + 12i + 4j + 2k]. */
    const float fv[8] = {1.5f, 3.5f, 5.5f, 7.5f, 13.5f, 15.5f, 17.5f, 19.5f};
    ck_assert_mem_eq(src_find(s, "f.col")->data, fv, sizeof fv);
}

static void load_fixture(int proto, const char *prefix, int flags)
{
    init_floats();
    buf pkl = fixture_pickle(proto, g_specs, N_SPECS);
    buf z = archive(prefix, &pkl, flags);
    src_tensors s;
    char err[512];
    eng_status st = load_bytes(z.p, z.n, &s, err, sizeof err);
    ck_assert_msg(st == ENG_OK, "%s", err);
    check_fixture(&s);
    src_free(&s);
    free(pkl.p);
    free(z.p);
}

START_TEST(views_protocol2_stored) { load_fixture(2, "archive", 0); }
END_TEST

START_TEST(views_protocol4_deflated) { load_fixture(4, "my model.v2", Z_DEFLATE); }
END_TEST

START_TEST(views_zip64) { load_fixture(2, "m", Z_ZIP64 | Z_DEFLATE); }
END_TEST

/* {'epoch': 3, 'state_dict': OrderedDict(...)} is unwrapped. */
START_TEST(wrapped_state_dict)
{
    init_floats();
    pickler p;
    p_start(&p, 2);
    p_op(&p, '}');
    p_op(&p, '(');
    p_str(&p, "epoch");
    p_int(&p, 3);
    p_str(&p, "state_dict");
    p_state_dict(&p, g_specs, N_SPECS);
    p_op(&p, 'u');
    p_op(&p, '.');
    buf z = archive("ckpt", &p.b, 0);
    src_tensors s;
    char err[512];
    ck_assert_msg(load_bytes(z.p, z.n, &s, err, sizeof err) == ENG_OK, "%s", err);
    check_fixture(&s);
    src_free(&s);
    free(p.b.p);
    free(z.p);
}
END_TEST

/* A dtype global in the persistent id types the storage; an UntypedStorage
 * counts bytes. */
START_TEST(dtype_and_untyped_storages)
{
    init_floats();
    const tspec specs[] = {
        {"by_dtype", "torch", "float32", "0", 24, 2, 1, {3}, {1}, 0},
        {"raw", "torch", "UntypedStorage", "1", 24, 8, 1, {8}, {1}, 0},
    };
    buf pkl = fixture_pickle(4, specs, 2);
    buf z = archive("archive", &pkl, 0);
    src_tensors s;
    char err[512];
    ck_assert_msg(load_bytes(z.p, z.n, &s, err, sizeof err) == ENG_OK, "%s", err);
    ck_assert_int_eq(s.t[0].dtype, SRC_F32);
    ck_assert_mem_eq(s.t[0].data, g_floats + 2, 3 * sizeof(float));
    ck_assert_int_eq(s.t[1].dtype, SRC_U8);
    ck_assert_mem_eq(s.t[1].data, &g_longs[1], 8);
    src_free(&s);
    free(pkl.p);
    free(z.p);
}
END_TEST

/* ---- hostile files ------------------------------------------------------ */

START_TEST(forbidden_globals)
{
    pickler p;
    p_start(&p, 2);
    p_global(&p, "os", "system");
    p_str(&p, "echo pwned");
    p_op(&p, 0x85);
    p_op(&p, 'R');
    p_op(&p, '.');
    expect_pickle_error(&p.b, ENG_ERR_UNSUPPORTED, "forbidden global os.system");
    free(p.b.p);

    p_start(&p, 4);
    p_global(&p, "builtins", "eval");
    p_op(&p, '.');
    expect_pickle_error(&p.b, ENG_ERR_UNSUPPORTED, "forbidden global builtins.eval");
    free(p.b.p);

    /* A near miss of a whitelisted name is still refused. */
    p_start(&p, 2);
    p_global(&p, "torch._utils", "_rebuild_tensor");
    p_op(&p, '.');
    expect_pickle_error(&p.b, ENG_ERR_UNSUPPORTED, "torch._utils._rebuild_tensor");
    free(p.b.p);
}
END_TEST

START_TEST(unsupported_opcodes)
{
    pickler p;
    p_start(&p, 2);
    p_ordered_dict(&p);
    p_op(&p, 0x81); /* NEWOBJ */
    p_op(&p, '.');
    expect_pickle_error(&p.b, ENG_ERR_UNSUPPORTED, "NEWOBJ");
    free(p.b.p);

    p_start(&p, 2);
    p_op(&p, 'i'); /* INST, which would call any class */
    expect_pickle_error(&p.b, ENG_ERR_UNSUPPORTED, "INST");
    free(p.b.p);
}
END_TEST

START_TEST(views_beyond_storage)
{
    init_floats();
    const struct { tspec t; const char *want; } cases[] = {
        {{"long_stride", "torch", "FloatStorage", "0", 24, 0, 1, {5}, {6}, 0}, "beyond its storage"},
        {{"late_offset", "torch", "FloatStorage", "0", 24, 24, 1, {1}, {1}, 0}, "beyond its storage"},
        {{"corner", "torch", "FloatStorage", "0", 24, 1, 2, {2, 12}, {12, 1}, 0}, "beyond its storage"},
        {{"overflow", "torch", "FloatStorage", "0", 24, 0, 2, {2, 2}, {INT64_MAX, 1}, 0}, "overflow"},
        {{"huge", "torch", "FloatStorage", "0", 24, 0, 2, {1LL << 31, 1LL << 31}, {0, 0}, 0}, "more than its storage"},
        {{"short_entry", "torch", "FloatStorage", "0", 25, 0, 1, {1}, {1}, 0}, "too few"},
        {{"missing", "torch", "FloatStorage", "7", 1, 0, 1, {1}, {1}, 0}, "no entry"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf pkl = fixture_pickle(2, &cases[i].t, 1);
        expect_pickle_error(&pkl, ENG_ERR_FORMAT, cases[i].want);
        free(pkl.p);
    }
}
END_TEST

/* Every prefix of a valid archive is refused; none crashes. */
START_TEST(truncated_archives)
{
    init_floats();
    buf pkl = fixture_pickle(2, g_specs, N_SPECS);
    buf z = archive("archive", &pkl, Z_DEFLATE);
    src_tensors s;
    char err[512];
    for (size_t n = 0; n < z.n; n++) {
        eng_status st = load_bytes(z.p, n, &s, err, sizeof err);
        ck_assert_msg(st != ENG_OK, "a %zu-byte prefix loaded", n);
        ck_assert_msg(err[0] != '\0', "no message for a %zu-byte prefix", n);
        ck_assert_int_eq(s.n, 0);
    }
    free(pkl.p);
    free(z.p);
}
END_TEST

/* Every single-byte corruption either loads or fails cleanly. */
START_TEST(corrupted_bytes)
{
    init_floats();
    buf pkl = fixture_pickle(2, g_specs, N_SPECS);
    buf z = archive("archive", &pkl, 0);
    src_tensors s;
    char err[512];
    int refused = 0;
    for (size_t i = 0; i < z.n; i++) {
        z.p[i] ^= 0xA5;
        eng_status st = load_bytes(z.p, z.n, &s, err, sizeof err);
        z.p[i] ^= 0xA5;
        if (st == ENG_OK)
            src_free(&s);
        else
            ck_assert_msg(err[0] != '\0', "no message for corrupt byte %zu", i);
        refused += st != ENG_OK;
    }
    /* The CRCs alone catch any change to the pickle or the storages. */
    ck_assert_int_gt(refused, (int)(pkl.n + sizeof g_floats));
    free(z.p);

    /* The same inside the pickle, with the CRC made to match so that each
     * corruption reaches the unpickler. */
    refused = 0;
    for (size_t i = 2; i < pkl.n; i++) {
        pkl.p[i] ^= 0xA5;
        z = archive("archive", &pkl, 0);
        pkl.p[i] ^= 0xA5;
        eng_status st = load_bytes(z.p, z.n, &s, err, sizeof err);
        if (st == ENG_OK)
            src_free(&s);
        else
            ck_assert_msg(err[0] != '\0', "no message for corrupt pickle byte %zu", i);
        refused += st != ENG_OK;
        free(z.p);
    }
    ck_assert_int_gt(refused, (int)pkl.n / 2);
    free(pkl.p);
}
END_TEST

START_TEST(corrupt_central_directory)
{
    init_floats();
    buf pkl = fixture_pickle(2, g_specs, N_SPECS);
    buf z = archive("archive", &pkl, 0);
    size_t eocd = z.n - 22;
    uint32_t cd_off;
    memcpy(&cd_off, z.p + eocd + 16, 4);

    z.p[cd_off] ^= 0xFF; /* the first entry's signature */
    expect_error(&z, ENG_ERR_FORMAT, "corrupt central directory");
    z.p[cd_off] ^= 0xFF;

    uint32_t far = 0x7FFFFFF0u;
    memcpy(z.p + eocd + 16, &far, 4);
    expect_error(&z, ENG_ERR_FORMAT, "outside the file");
    memcpy(z.p + eocd + 16, &cd_off, 4);

    z.p[eocd + 10] = 0xFE; /* an entry count the directory cannot hold */
    expect_error(&z, ENG_ERR_FORMAT, "entry count");
    z.p[eocd + 10] = 4;

    z.p[cd_off + 28] = 0xFF; /* a name running past the directory's end */
    expect_error(&z, ENG_ERR_FORMAT, "runs past");
    free(pkl.p);
    free(z.p);
}
END_TEST

START_TEST(deep_nesting)
{
    enum { DEPTH = 200000 };
    pickler p;
    p_start(&p, 2);
    for (int i = 0; i < DEPTH; i++)
        p_op(&p, '(');
    expect_pickle_error(&p.b, ENG_ERR_FORMAT, "nested MARKs");
    free(p.b.p);

    /* Lists nested DEPTH deep: built and freed without recursion, then
     * refused because the top level is not a dict. */
    p_start(&p, 2);
    for (int i = 0; i < DEPTH; i++)
        p_op(&p, ']');
    for (int i = 1; i < DEPTH; i++)
        p_op(&p, 'a');
    p_op(&p, '.');
    expect_pickle_error(&p.b, ENG_ERR_FORMAT, "does not hold a dict");
    free(p.b.p);
}
END_TEST

/* Defect 1 of issue 10: a small deflated pickle of a list and millions of
 * `)a` (append an empty tuple) made the reader build gigabytes of objects
 * before refusing. Its objects are now counted against what a checkpoint of
 * the file's size can hold, so it is refused once that is spent. */
START_TEST(memory_amplification)
{
    enum { N = 4000000 };
    pickler p;
    p_start(&p, 2);
    p_op(&p, ']');
    for (int i = 0; i < N; i++) {
        p_op(&p, ')');
        p_op(&p, 'a');
    }
    p_op(&p, '.');
    buf z = archive("archive", &p.b, Z_DEFLATE);
    ck_assert_msg(z.n < 64 * 1024, "the archive should be small, is %zu bytes", z.n);
    expect_error(&z, ENG_ERR_FORMAT, "more than a checkpoint of this size holds");
    free(z.p);
    free(p.b.p);

    /* The same through one memoized value fetched millions of times: no new
     * values, only the stack and the list that hold them grow. With a few
     * fetches the same pickle is a valid list (refused later, as no dict). */
    static const int fetch_counts[] = {3, N};
    for (int k = 0; k < 2; k++) {
        const int fetches = fetch_counts[k];
        p_start(&p, 2);
        p_op(&p, ']');
        p_op(&p, 'q');   /* the list itself is memoized and appended to itself */
        p_op(&p, 0);
        p_op(&p, '(');
        for (int i = 0; i < fetches; i++) {
            p_op(&p, 'h');
            p_op(&p, 0);
        }
        p_op(&p, 'e');
        p_op(&p, '.');
        z = archive("archive", &p.b, Z_DEFLATE);
        expect_error(&z, ENG_ERR_FORMAT, fetches == N ? "more than a checkpoint of this size holds"
                                                       : "does not hold a dict");
        free(z.p);
        free(p.b.p);
    }

    /* The budget: a floor, a share of each file byte, a ceiling. */
    ck_assert_uint_eq(pk_budget(0), PK_BUDGET_BASE);
    ck_assert_uint_eq(pk_budget(1000), PK_BUDGET_BASE + 1000 * PK_BUDGET_PER_BYTE);
    ck_assert_uint_eq(pk_budget(UINT64_MAX), PK_BUDGET_MAX);
}
END_TEST

/* The same amplification through tensors: a 16 MiB storage of zeros
 * deflates to a few KB, and each of twelve state dict entries viewing all of
 * it would be copied out (192 MiB from a file of about 20 KB). The copies
 * are bounded by the file's size like the pickle's objects. */
START_TEST(tensor_amplification)
{
    enum { FLOATS = 4 << 20, VIEWS = 12 };
    float *zeros = calloc(FLOATS, sizeof *zeros);
    tspec t[VIEWS];
    char names[VIEWS][16];
    for (int i = 0; i < VIEWS; i++) {
        snprintf(names[i], sizeof names[i], "w%d", i);
        t[i] = (tspec){names[i], "torch", "FloatStorage", "0", FLOATS, 0, 1, {FLOATS}, {1}, 0};
    }
    buf pkl = fixture_pickle(2, t, VIEWS);
    zentry e[] = {
        {"archive/data.pkl", pkl.p, pkl.n},
        {"archive/data/0", zeros, FLOATS * sizeof *zeros},
        {"archive/version", "3\n", 2},
    };
    buf z = zip_build(e, 3, Z_DEFLATE);
    ck_assert_msg(z.n < 64 * 1024, "the archive should be small, is %zu bytes", z.n);
    expect_error(&z, ENG_ERR_FORMAT, "more than a checkpoint of this size holds");
    free(z.p);

    /* Three views fit the budget (48 MiB < 64 MiB): loaded. */
    buf pkl3 = fixture_pickle(2, t, 3);
    e[0] = (zentry){"archive/data.pkl", pkl3.p, pkl3.n};
    z = zip_build(e, 3, Z_DEFLATE);
    src_tensors out;
    char err[512];
    ck_assert_msg(load_bytes(z.p, z.n, &out, err, sizeof err) == ENG_OK, "%s", err);
    ck_assert_int_eq(out.n, 3);
    src_free(&out);
    free(z.p);
    free(pkl3.p);
    free(pkl.p);
    free(zeros);
}
END_TEST

START_TEST(malformed_pickles)
{
    static const struct { const char *bytes; size_t n; const char *want; } cases[] = {
        {"\x80\x02r\xff\xff\xff\xff.", 8, "memo index"},
        {"\x80\x02h\x05.", 5, "never stored"},
        {"\x80\x02t.", 4, "without a MARK"},
        {"\x80\x02R.", 4, "underflow"},
        {"\x80\x02X\xff\xff\xff\x7f", 7, "past the end"},
        {"\x80\x02}", 3, "without STOP"},
        {"\x80\x02(K\x01s.", 6, "underflow"},
        {"\x80\x02}K\x01K\x02K\x03u.", 10, "without a MARK"},
        {"\x80\x02]K\x01.", 6, "does not hold a dict"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf pkl = {0};
        put(&pkl, cases[i].bytes, cases[i].n);
        expect_pickle_error(&pkl, ENG_ERR_FORMAT, cases[i].want);
        free(pkl.p);
    }
    /* A state dict value that is not a tensor. */
    pickler p;
    p_start(&p, 2);
    p_ordered_dict(&p);
    p_str(&p, "x");
    p_int(&p, 1);
    p_op(&p, 's');
    p_op(&p, '.');
    expect_pickle_error(&p.b, ENG_ERR_FORMAT, "no tensors");
    free(p.b.p);
}
END_TEST

START_TEST(not_a_checkpoint)
{
    src_tensors s;
    char err[512];
    ck_assert_int_eq(src_load_torch_zip("/nonexistent/model.pth", &s, err, sizeof err), ENG_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
    const char legacy[] = "\x80\x02\x8a\x0a" "lalala";
    buf b = {0};
    put(&b, legacy, sizeof legacy - 1);
    expect_error(&b, ENG_ERR_UNSUPPORTED, "legacy");
    free(b.p);
    zentry e[] = {{"README", "hello", 5}};
    buf z = zip_build(e, 1, 0);
    expect_error(&z, ENG_ERR_FORMAT, "data.pkl");
    free(z.p);
}
END_TEST

/* ---- the real checkpoints ----------------------------------------------- */

static double value_at(const src_tensor *t, int64_t i)
{
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case SRC_F32: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case SRC_F64: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    case SRC_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
    case SRC_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case SRC_I8: return (int8_t)p[i];
    default: return p[i];
    }
}

static const char *dtype_name(src_dtype d)
{
    static const char *const names[] = {"f32", "f16", "bf16", "i64", "i32", "i8", "u8", "bool", "f64"};
    return names[d];
}

static void check_golden_tensor(const src_tensors *s, int index, char *line)
{
    char *save, *name = strtok_r(line, " ", &save), *dtype = strtok_r(NULL, " ", &save);
    char *shape = strtok_r(NULL, " ", &save);
    double sum = strtod(strtok_r(NULL, " ", &save), NULL), sumabs = strtod(strtok_r(NULL, " ", &save), NULL);
    ck_assert_int_lt(index, s->n);
    const src_tensor *t = &s->t[index];
    ck_assert_str_eq(t->name, name);
    ck_assert_str_eq(dtype_name(t->dtype), dtype);
    int nd = 0;
    if (strcmp(shape, "-") != 0)
        for (char *q = shape; q; q = strchr(q, ',') ? strchr(q, ',') + 1 : NULL) {
            ck_assert_int_lt(nd, t->ndim);
            ck_assert_int_eq(t->shape[nd++], strtoll(q, NULL, 10));
        }
    ck_assert_int_eq(nd, t->ndim);
    int64_t n = src_numel(t);
    ck_assert_uint_eq(t->nbytes, (size_t)n * (t->dtype == SRC_I64 || t->dtype == SRC_F64 ? 8 : 4));
    double got = 0, gotabs = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = value_at(t, i);
        got += v;
        gotabs += fabs(v);
    }
    ck_assert_msg(fabs(got - sum) <= SUM_REL_TOL * sumabs + 1e-12, "%s: sum %.17g, want %.17g", name, got, sum);
    ck_assert_msg(fabs(gotabs - sumabs) <= SUM_REL_TOL * sumabs + 1e-12, "%s: sumabs", name);
    for (char *tok; (tok = strtok_r(NULL, " ", &save));) {
        int64_t i = strtoll(tok, NULL, 10);
        double want = strtod(strchr(tok, ':') + 1, NULL);
        ck_assert_int_lt(i, n);
        ck_assert_msg(fabs(value_at(t, i) - want) <= VALUE_REL_TOL * fabs(want), "%s[%lld] = %.9g, want %.9g",
                      name, (long long)i, value_at(t, i), want);
    }
}

START_TEST(real_checkpoints_match_pytorch)
{
    size_t len;
    char *text = test_read_file(GOLDEN, &len);
    ck_assert_msg(text != NULL, "cannot read %s (run from the repository root)", GOLDEN);
    int nl;
    char **lines = test_split_lines(text, &nl);
    src_tensors s = {0};
    int have = 0, index = 0, files = 0;
    for (int i = 0; i < nl; i++) {
        if (lines[i][0] == '#' || lines[i][0] == '\0')
            continue;
        if (strncmp(lines[i], "file ", 5) == 0) {
            ck_assert_int_eq(index, s.n);
            src_free(&s);
            char rel[512];
            int count;
            ck_assert_int_eq(sscanf(lines[i] + 5, "%511s %d", rel, &count), 2);
            const char *path = test_shared_path(rel);
            have = path != NULL;
            index = 0;
            if (!have) {
                printf("skipping %s: not found under $ENGINE_SHARED\n", rel);
                continue;
            }
            char err[512];
            eng_status st = src_load_torch_zip(path, &s, err, sizeof err);
            ck_assert_msg(st == ENG_OK, "%s", err);
            ck_assert_int_eq(s.n, count);
            files++;
            continue;
        }
        if (have)
            check_golden_tensor(&s, index++, lines[i]);
    }
    if (have)
        ck_assert_int_eq(index, s.n);
    src_free(&s);
    free(lines);
    free(text);
    printf("checked %d real checkpoints against %s\n", files, GOLDEN);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("torch_zip");
    TCase *tc = tcase_create("synthetic");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, views_protocol2_stored);
    tcase_add_test(tc, views_protocol4_deflated);
    tcase_add_test(tc, views_zip64);
    tcase_add_test(tc, wrapped_state_dict);
    tcase_add_test(tc, dtype_and_untyped_storages);
    tcase_add_test(tc, forbidden_globals);
    tcase_add_test(tc, unsupported_opcodes);
    tcase_add_test(tc, views_beyond_storage);
    tcase_add_test(tc, truncated_archives);
    tcase_add_test(tc, corrupted_bytes);
    tcase_add_test(tc, corrupt_central_directory);
    tcase_add_test(tc, deep_nesting);
    tcase_add_test(tc, memory_amplification);
    tcase_add_test(tc, tensor_amplification);
    tcase_add_test(tc, malformed_pickles);
    tcase_add_test(tc, not_a_checkpoint);
    suite_add_tcase(su, tc);
    TCase *real = tcase_create("real");
    tcase_set_timeout(real, 120);
    tcase_add_test(real, real_checkpoints_match_pytorch);
    suite_add_tcase(su, real);
    /* Check runs each test in a child process, so the skip is decided here. */
    int missing = test_shared_path("models/sst2-distilbert-mini/pytorch_model.bin") == NULL ||
                  test_shared_path("models/resnet18-random/resnet18.pth") == NULL;
    int rc = test_run_suite(su);
    if (rc == 0 && missing) {
        printf("skip: the real checkpoints are not under $ENGINE_SHARED/models; only synthetic checks ran\n");
        return TEST_SKIP;
    }
    return rc;
}
