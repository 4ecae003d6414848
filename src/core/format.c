/* format.c: the ".eng" model file (format.h, docs/FORMAT.md): the validating,
 * memory-mapping reader the engine loads models with (tools/convert/writer.c
 * writes them). The file is read in place, so its integers are the host's:
 * the format is little-endian and this file refuses to build elsewhere rather
 * than misread models. */
#include "checksum.h"
#include "error.h"
#include "format.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .eng format is little-endian and is mapped in place; this host is not"
#endif

_Static_assert(sizeof(eng__file_header) == 72, "header layout is part of the format");
_Static_assert(offsetof(eng__file_header, checksum) == 56, "header layout is part of the format");
_Static_assert(sizeof(eng__file_tensor) == 152, "directory entry layout is part of the format");

static const size_t dtype_sizes[ENG_DT_COUNT] = {4, 2, 2, 1, 1, 4};
static const char *const dtype_names[ENG_DT_COUNT] = {"F32", "F16", "BF16", "I8", "U8", "I32"};

size_t eng__dtype_size(eng__dtype dt)
{
    return (unsigned)dt < ENG_DT_COUNT ? dtype_sizes[dt] : 0;
}

const char *eng__dtype_name(eng__dtype dt)
{
    return (unsigned)dt < ENG_DT_COUNT ? dtype_names[dt] : "unknown";
}

/* a + b <= limit without wrapping. */
static int fits(uint64_t a, uint64_t b, uint64_t limit)
{
    return a <= limit && b <= limit - a;
}

uint64_t eng__tensor_bytes(eng__dtype dt, uint32_t ndim, const uint64_t *shape)
{
    uint64_t n = eng__dtype_size(dt);
    if (n == 0 || ndim < 1 || ndim > ENG_FILE_MAX_DIMS)
        return 0;
    for (uint32_t d = 0; d < ENG_FILE_MAX_DIMS; d++) {
        if (d >= ndim) {
            if (shape[d] != 0)
                return 0;
            continue;
        }
        if (shape[d] == 0 || shape[d] > UINT64_MAX / n)
            return 0;
        n *= shape[d];
    }
    return n;
}

uint64_t eng__file_checksum(const void *base, uint64_t size)
{
    eng__file_header h;
    memcpy(&h, base, sizeof h);
    h.checksum = 0;
    uint64_t seed = eng__xxh64(&h, sizeof h, 0);
    return eng__xxh64((const unsigned char *)base + sizeof h, (size_t)(size - sizeof h), seed);
}

/* ---- Reader ------------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    const eng__file_tensor *x = *(const eng__file_tensor *const *)a;
    const eng__file_tensor *y = *(const eng__file_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int by_offset(const void *a, const void *b)
{
    const eng__file_tensor *x = *(const eng__file_tensor *const *)a;
    const eng__file_tensor *y = *(const eng__file_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Names unique and tensors disjoint, by sorting, so a hostile directory of
 * millions of entries costs a sort rather than a quadratic scan. */
static eng_status check_sets(const eng__file_tensor *dir, uint32_t n, char *err, size_t errlen)
{
    if (n < 2)
        return ENG_OK;
    const eng__file_tensor **p = malloc((size_t)n * sizeof *p);
    if (!p)
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory checking %u tensors", n);
    for (uint32_t i = 0; i < n; i++)
        p[i] = &dir[i];
    eng_status s = ENG_OK;
    qsort(p, n, sizeof *p, by_name);
    for (uint32_t i = 1; i < n && s == ENG_OK; i++)
        if (strcmp(p[i - 1]->name, p[i]->name) == 0)
            s = eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor name '%s' appears twice", p[i]->name);
    qsort(p, n, sizeof *p, by_offset);
    for (uint32_t i = 1; i < n && s == ENG_OK; i++)
        if (p[i - 1]->offset + p[i - 1]->nbytes > p[i]->offset)
            s = eng__errf(ENG_ERR_FORMAT, err, errlen, "tensors '%s' and '%s' overlap", p[i - 1]->name,
                     p[i]->name);
    free(p);
    return s;
}

static eng_status check_tensor(const eng__file_tensor *t, uint32_t i, uint64_t data_offset,
                               uint64_t size, char *err, size_t errlen)
{
    if (memchr(t->name, '\0', sizeof t->name) == NULL)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor %u: name is not NUL-terminated", i);
    if (t->name[0] == '\0')
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor %u: empty name", i);
    if (t->dtype >= ENG_DT_COUNT)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor '%s': unknown dtype %u", t->name, t->dtype);
    if (t->ndim < 1 || t->ndim > ENG_FILE_MAX_DIMS)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor '%s': %u dimensions", t->name, t->ndim);
    uint64_t want = eng__tensor_bytes((eng__dtype)t->dtype, t->ndim, t->shape);
    if (want == 0)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor '%s': malformed shape", t->name);
    if (t->nbytes != want)
        return eng__errf(ENG_ERR_FORMAT, err, errlen,
                    "tensor '%s': %llu bytes, but its shape and dtype need %llu", t->name,
                    (unsigned long long)t->nbytes, (unsigned long long)want);
    if (t->offset % ENG_FILE_ALIGN != 0)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor '%s': offset %llu is not %u-byte aligned",
                    t->name, (unsigned long long)t->offset, ENG_FILE_ALIGN);
    if (t->offset < data_offset || !fits(t->offset, t->nbytes, size))
        return eng__errf(ENG_ERR_FORMAT, err, errlen,
                    "tensor '%s': bytes %llu..%llu lie outside the data section", t->name,
                    (unsigned long long)t->offset, (unsigned long long)(t->offset + t->nbytes));
    return ENG_OK;
}

/* Everything about the mapped bytes that a hostile file could get wrong. */
static eng_status check_file(const unsigned char *base, uint64_t size, char *err, size_t errlen)
{
    eng__file_header h;
    if (size < sizeof h)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "file too small for a header (%llu bytes)",
                    (unsigned long long)size);
    memcpy(&h, base, sizeof h);
    if (memcmp(h.magic, ENG_FILE_MAGIC, sizeof h.magic) != 0)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "not an engine model file (bad magic)");
    if (h.version < ENG_FILE_VERSION)
        return eng__errf(ENG_ERR_FORMAT, err, errlen,
                         "format version %u is from an older convert (this engine reads version "
                         "%u): re-convert the model with this build's convert",
                         h.version, ENG_FILE_VERSION);
    if (h.version != ENG_FILE_VERSION)
        return eng__errf(ENG_ERR_FORMAT, err, errlen,
                         "format version %u is newer than this engine (it reads version %u)",
                         h.version, ENG_FILE_VERSION);
    if (h.file_size != size)
        return eng__errf(ENG_ERR_FORMAT, err, errlen,
                    "file is %llu bytes but its header says %llu (truncated or appended to)",
                    (unsigned long long)size, (unsigned long long)h.file_size);
    /* Before any other field is believed: a flipped bit anywhere, in a
     * weight as much as in an offset, is refused here by name. */
    uint64_t sum = eng__file_checksum(base, size);
    if (h.checksum != sum)
        return eng__errf(ENG_ERR_FORMAT, err, errlen,
                    "checksum mismatch (file says %016llx, contents give %016llx): the file is "
                    "corrupted", (unsigned long long)h.checksum, (unsigned long long)sum);
    for (size_t i = 0; i < sizeof h.reserved; i++)
        if (h.reserved[i] != 0)
            return eng__errf(ENG_ERR_FORMAT, err, errlen, "reserved header bytes are not zero");
    if (h.meta_offset < sizeof h || !fits(h.meta_offset, h.meta_size, size) || h.meta_size == 0)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "metadata section out of range");
    if (h.dir_offset % 8 != 0 || h.dir_offset < h.meta_offset + h.meta_size ||
        h.dir_offset > size)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor directory offset out of range");
    if (h.n_tensors == 0 || h.n_tensors > (size - h.dir_offset) / sizeof(eng__file_tensor))
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tensor count %u does not fit the file",
                    h.n_tensors);
    uint64_t dir_end = h.dir_offset + (uint64_t)h.n_tensors * sizeof(eng__file_tensor);
    if (h.data_offset % ENG_FILE_ALIGN != 0 || h.data_offset < dir_end || h.data_offset > size)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "data section offset out of range");
    const eng__file_tensor *dir = (const eng__file_tensor *)(const void *)(base + h.dir_offset);
    for (uint32_t i = 0; i < h.n_tensors; i++) {
        eng_status s = check_tensor(&dir[i], i, h.data_offset, size, err, errlen);
        if (s != ENG_OK)
            return s;
    }
    return check_sets(dir, h.n_tensors, err, errlen);
}

eng_status eng__file_open(eng__file *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return eng__errf(ENG_ERR_IO, err, errlen, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return eng__errf(ENG_ERR_IO, err, errlen, "not a readable regular file");
    }
    if ((uint64_t)st.st_size < sizeof(eng__file_header)) {
        close(fd);
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "file too small for a header (%lld bytes)",
                    (long long)st.st_size);
    }
    /* Populated at once: the checksum reads every page anyway, and one
     * mapping call is cheaper than a page fault per 4 KiB. */
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED)
        return eng__errf(ENG_ERR_IO, err, errlen, "cannot map: %s", strerror(map_errno));
    eng_status s = check_file(map, (uint64_t)st.st_size, err, errlen);
    if (s != ENG_OK) {
        munmap(map, (size_t)st.st_size);
        return s;
    }
    const eng__file_header *h = map;
    f->map = map;
    f->size = (size_t)st.st_size;
    f->meta = (const char *)map + h->meta_offset;
    f->meta_size = (size_t)h->meta_size;
    f->dir = (const eng__file_tensor *)(const void *)((const char *)map + h->dir_offset);
    f->n_tensors = h->n_tensors;
    return ENG_OK;
}

void eng__file_close(eng__file *f)
{
    if (f && f->map)
        munmap(f->map, f->size);
    if (f)
        memset(f, 0, sizeof *f);
}

const eng__file_tensor *eng__file_find(const eng__file *f, const char *name)
{
    for (uint32_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->dir[i].name, name) == 0)
            return &f->dir[i];
    return NULL;
}

const void *eng__file_data(const eng__file *f, const eng__file_tensor *t)
{
    return (const char *)f->map + t->offset;
}
