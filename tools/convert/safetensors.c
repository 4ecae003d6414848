/* safetensors.c: reads a .safetensors checkpoint (8-byte little-endian header
 * length, a JSON header naming each tensor's dtype, shape and byte range, then
 * the data) into src_tensors, checking every range against the file; and the
 * helpers over src_tensors that both checkpoint readers share (source.h). */
#include "error.h"
#include "source.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    src_dtype dt;
    size_t size;
} st_dtypes[] = {
    {"F32", SRC_F32, 4}, {"F16", SRC_F16, 2}, {"BF16", SRC_BF16, 2}, {"I64", SRC_I64, 8},
    {"I32", SRC_I32, 4}, {"I8", SRC_I8, 1},   {"U8", SRC_U8, 1},     {"BOOL", SRC_BOOL, 1},
    {"F64", SRC_F64, 8},
};

/* Reads the whole file; safetensors checkpoints of the models we convert fit
 * in memory, and each tensor is copied out of this buffer anyway. */
static eng_status read_file(const char *path, unsigned char **buf, size_t *len, char *err,
                            size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return eng__errf(ENG_ERR_IO, err, errlen, "cannot open %s: %s", path, strerror(errno));
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        n = ftell(fp);
    if (n < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return eng__errf(ENG_ERR_IO, err, errlen, "cannot read %s", path);
    }
    *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!*buf) {
        fclose(fp);
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory reading %s", path);
    }
    size_t got = fread(*buf, 1, (size_t)n, fp);
    fclose(fp);
    if (got != (size_t)n) {
        free(*buf);
        *buf = NULL;
        return eng__errf(ENG_ERR_IO, err, errlen, "short read on %s", path);
    }
    *len = (size_t)n;
    return ENG_OK;
}

/* A tensor's bytes in the body, [lo, hi), and its name, for the checks that
 * look at all tensors at once. */
typedef struct {
    uint64_t lo, hi;
    const char *name;
} st_range;

static int range_by_name(const void *a, const void *b)
{
    return strcmp(((const st_range *)a)->name, ((const st_range *)b)->name);
}

static int range_by_offset(const void *a, const void *b)
{
    const st_range *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Names unique and byte ranges disjoint, as the .bin reader requires of its
 * storages: two tensors sharing bytes or a name are a malformed file. Sorted,
 * so a header of a million entries costs a sort, not a quadratic scan. */
static eng_status check_ranges(st_range *r, int n, char *err, size_t errlen)
{
    qsort(r, (size_t)n, sizeof *r, range_by_name);
    for (int i = 1; i < n; i++)
        if (strcmp(r[i - 1].name, r[i].name) == 0)
            return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor %s appears twice", r[i].name);
    qsort(r, (size_t)n, sizeof *r, range_by_offset);
    for (int i = 1; i < n; i++)
        if (r[i].lo < r[i - 1].hi)
            return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensors %s and %s overlap", r[i - 1].name,
                        r[i].name);
    return ENG_OK;
}

/* One header entry into t (name already set), data copied out of body. */
static eng_status parse_entry(const cJSON *e, src_tensor *t, const unsigned char *body,
                              uint64_t body_len, st_range *range, char *err, size_t errlen)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor %s: malformed header entry", t->name);
    size_t esize = 0;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(dt->valuestring, st_dtypes[i].name) == 0) {
            t->dtype = st_dtypes[i].dt;
            esize = st_dtypes[i].size;
        }
    if (esize == 0)
        return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen, "tensor %s: unsupported dtype %s", t->name,
                    dt->valuestring);
    int nd = cJSON_GetArraySize(shape);
    if (nd > 8)
        return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen, "tensor %s: %d dimensions", t->name, nd);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int d = 0; d < nd; d++) {
        const cJSON *x = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 9.0e15 ||
            x->valuedouble != (double)(int64_t)x->valuedouble)
            return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor %s: malformed shape", t->name);
        t->shape[d] = (int64_t)x->valuedouble;
        if (t->shape[d] != 0 && numel > UINT64_MAX / 16 / (uint64_t)t->shape[d])
            return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor %s: shape overflows", t->name);
        numel *= (uint64_t)t->shape[d];
    }
    const cJSON *ja = cJSON_GetArrayItem(offs, 0), *jb = cJSON_GetArrayItem(offs, 1);
    if (!cJSON_IsNumber(ja) || !cJSON_IsNumber(jb) || ja->valuedouble != floor(ja->valuedouble) ||
        jb->valuedouble != floor(jb->valuedouble))
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor %s: data offsets are not integers",
                    t->name);
    if (ja->valuedouble < 0 || jb->valuedouble < ja->valuedouble ||
        jb->valuedouble > (double)body_len)
        return eng__errf(ENG_ERR_FORMAT, err, errlen,
                    "tensor %s: data offsets out of range (file truncated?)", t->name);
    uint64_t lo = (uint64_t)ja->valuedouble, hi = (uint64_t)jb->valuedouble;
    *range = (st_range){lo, hi, t->name};
    if (hi - lo != numel * esize)
        return eng__errf(ENG_ERR_FORMAT, err, errlen,
                    "tensor %s: %llu bytes for a shape that needs %llu", t->name,
                    (unsigned long long)(hi - lo), (unsigned long long)(numel * esize));
    t->nbytes = (size_t)(hi - lo);
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->data)
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory for tensor %s", t->name);
    memcpy(t->data, body + lo, t->nbytes);
    return ENG_OK;
}

static eng_status parse(const unsigned char *buf, size_t len, src_tensors *out, char *err,
                        size_t errlen)
{
    if (len < 8)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "file too small for a header");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > len - 8 || hlen < 2)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "header length %llu does not fit the file",
                    (unsigned long long)hlen);
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "header is not a JSON object");
    }
    const unsigned char *body = buf + 8 + hlen;
    uint64_t body_len = len - 8 - hlen;
    int n = cJSON_GetArraySize(root);
    out->t = calloc((size_t)(n > 0 ? n : 1), sizeof *out->t);
    st_range *ranges = calloc((size_t)(n > 0 ? n : 1), sizeof *ranges);
    eng_status s = out->t && ranges ? ENG_OK : eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (s != ENG_OK)
            break;
        if (strcmp(e->string, "__metadata__") == 0)
            continue;
        src_tensor *t = &out->t[out->n++];
        t->name = strdup(e->string);
        s = t->name ? parse_entry(e, t, body, body_len, &ranges[out->n - 1], err, errlen)
                    : eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    }
    if (s == ENG_OK)
        s = check_ranges(ranges, out->n, err, errlen);
    free(ranges);
    cJSON_Delete(root);
    return s;
}

eng_status src_load_safetensors(const char *path, src_tensors *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    unsigned char *buf = NULL;
    size_t len = 0;
    eng_status s = read_file(path, &buf, &len, err, errlen);
    if (s != ENG_OK)
        return s;
    char why[256];
    s = parse(buf, len, out, why, sizeof why);
    free(buf);
    if (s != ENG_OK) {
        src_free(out);
        return eng__errf(s, err, errlen, "%s: %s", path, why);
    }
    return ENG_OK;
}

const src_tensor *src_find(const src_tensors *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0)
            return &s->t[i];
    return NULL;
}

int64_t src_numel(const src_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

/* IEEE half to float, exact (every half is a float), subnormals included. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13;
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | man << 13;
    } else if (man == 0) {
        bits = sign;
    } else {
        /* Subnormal: shift the mantissa up until its leading 1 is implicit. */
        exp = 113;
        while (!(man & 0x400)) {
            man <<= 1;
            exp--;
        }
        bits = sign | exp << 23 | (man & 0x3ff) << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

eng_status src_to_f32(const src_tensor *t, float **out, char *err, size_t errlen)
{
    *out = NULL;
    if (t->dtype != SRC_F32 && t->dtype != SRC_F16 && t->dtype != SRC_BF16 && t->dtype != SRC_F64)
        return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen, "tensor %s is not floating point",
                         t->name);
    size_t n = (size_t)src_numel(t);
    float *f = malloc(n ? n * sizeof *f : 1);
    if (!f)
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory for tensor %s", t->name);
    const unsigned char *p = t->data;
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == SRC_F32) {
            memcpy(&f[i], p + 4 * i, 4);
        } else if (t->dtype == SRC_F64) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            f[i] = (float)d;
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if (t->dtype == SRC_F16) {
                f[i] = half_to_float(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&f[i], &bits, 4);
            }
        }
        if (!isfinite(f[i])) {
            const char *what = isnan(f[i]) ? "NaN" : "infinite";
            free(f);
            return eng__errf(ENG_ERR_FORMAT, err, errlen,
                             "tensor %s: element %zu is %s (weights must be finite)", t->name, i,
                             what);
        }
    }
    *out = f;
    return ENG_OK;
}

void src_free(src_tensors *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->t[i].name);
        free(s->t[i].data);
    }
    free(s->t);
    s->t = NULL;
    s->n = 0;
}
