/* writer.c: the atomic ".eng" writer tools/convert saves models with
 * (writer.h); the layout is src/core/format.h's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "writer.h"

struct eng__writer {
    eng__file_tensor *dir;
    void **data;
    uint32_t n, cap;
    eng_status failed;       /* the first add that failed, reported by save */
    char failed_name[ENG_FILE_NAME_MAX];
};

eng__writer *eng__writer_new(void)
{
    return calloc(1, sizeof(eng__writer));
}

void eng__writer_free(eng__writer *w)
{
    if (!w)
        return;
    for (uint32_t i = 0; i < w->n; i++)
        free(w->data[i]);
    free(w->data);
    free(w->dir);
    free(w);
}

static eng_status add_failed(eng__writer *w, eng_status s, const char *name)
{
    if (w->failed == ENG_OK) {
        w->failed = s;
        snprintf(w->failed_name, sizeof w->failed_name, "%s", name ? name : "(null)");
    }
    return s;
}

eng_status eng__writer_add(eng__writer *w, const char *name, eng__dtype dt, int ndim,
                           const uint64_t *shape, const void *data)
{
    if (!w || !name || !shape || !data || strlen(name) == 0 || strlen(name) >= ENG_FILE_NAME_MAX ||
        ndim < 1 || ndim > (int)ENG_FILE_MAX_DIMS)
        return w ? add_failed(w, ENG_ERR_INVALID_ARG, name) : ENG_ERR_INVALID_ARG;
    eng__file_tensor t;
    memset(&t, 0, sizeof t);
    memcpy(t.name, name, strlen(name));
    t.dtype = (uint32_t)dt;
    t.ndim = (uint32_t)ndim;
    for (int d = 0; d < ndim; d++)
        t.shape[d] = shape[d];
    t.nbytes = eng__tensor_bytes(dt, t.ndim, t.shape);
    if (t.nbytes == 0 || t.nbytes > SIZE_MAX)
        return add_failed(w, ENG_ERR_INVALID_ARG, name);
    if (w->n == w->cap) {
        uint32_t cap = w->cap ? w->cap * 2 : 64;
        eng__file_tensor *dir = realloc(w->dir, cap * sizeof *dir);
        if (dir)
            w->dir = dir;
        void **pd = dir ? realloc(w->data, cap * sizeof *pd) : NULL;
        if (!pd)
            return add_failed(w, ENG_ERR_NOMEM, name);
        w->data = pd;
        w->cap = cap;
    }
    void *copy = malloc((size_t)t.nbytes);
    if (!copy)
        return add_failed(w, ENG_ERR_NOMEM, name);
    memcpy(copy, data, (size_t)t.nbytes);
    w->dir[w->n] = t;
    w->data[w->n] = copy;
    w->n++;
    return ENG_OK;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* Writes all of buf at offset, retrying short writes. */
static int write_at(int fd, const void *buf, size_t n, uint64_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

eng_status eng__writer_save(eng__writer *w, const char *meta_json, const char *path,
                            char *err, size_t errlen)
{
    if (!w || !meta_json || !path || meta_json[0] == '\0')
        return eng__errf(ENG_ERR_INVALID_ARG, err, errlen, "writer_save: missing argument");
    if (w->failed != ENG_OK)
        return eng__errf(w->failed, err, errlen, "tensor '%s' could not be added", w->failed_name);
    if (w->n == 0)
        return eng__errf(ENG_ERR_INVALID_ARG, err, errlen, "no tensors to write");
    for (uint32_t i = 0; i < w->n; i++)
        for (uint32_t j = i + 1; j < w->n; j++)
            if (strcmp(w->dir[i].name, w->dir[j].name) == 0)
                return eng__errf(ENG_ERR_INVALID_ARG, err, errlen, "tensor '%s' added twice",
                            w->dir[i].name);

    /* Offsets: header, metadata, directory (8-aligned), then each tensor at
     * the next multiple of ENG_FILE_ALIGN. */
    eng__file_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, ENG_FILE_MAGIC, sizeof h.magic);
    h.version = ENG_FILE_VERSION;
    h.n_tensors = w->n;
    h.meta_offset = sizeof h;
    h.meta_size = strlen(meta_json);
    h.dir_offset = align_up(h.meta_offset + h.meta_size, 8);
    h.data_offset = align_up(h.dir_offset + (uint64_t)w->n * sizeof(eng__file_tensor), ENG_FILE_ALIGN);
    uint64_t off = h.data_offset;
    for (uint32_t i = 0; i < w->n; i++) {
        w->dir[i].offset = off;
        off = align_up(off + w->dir[i].nbytes, ENG_FILE_ALIGN);
    }
    h.file_size = w->dir[w->n - 1].offset + w->dir[w->n - 1].nbytes;

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        eng_status s = eng__errf(ENG_ERR_IO, err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    /* The padding between sections is the zeros of a sparse file extended to
     * its final size first. */
    int bad = fchmod(fd, 0644) != 0 || ftruncate(fd, (off_t)h.file_size) != 0 ||
              write_at(fd, &h, sizeof h, 0) != 0 ||
              write_at(fd, meta_json, (size_t)h.meta_size, h.meta_offset) != 0 ||
              write_at(fd, w->dir, w->n * sizeof(eng__file_tensor), h.dir_offset) != 0;
    for (uint32_t i = 0; i < w->n && !bad; i++)
        bad = write_at(fd, w->data[i], (size_t)w->dir[i].nbytes, w->dir[i].offset) != 0;
    int werrno = errno;
    if (!bad && fsync(fd) != 0) {
        bad = 1;
        werrno = errno;
    }
    if (close(fd) != 0 && !bad) {
        bad = 1;
        werrno = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        werrno = errno;
    }
    eng_status s = ENG_OK;
    if (bad) {
        unlink(tmp);
        s = eng__errf(ENG_ERR_IO, err, errlen, "cannot write %s: %s", path, strerror(werrno));
    }
    free(tmp);
    return s;
}
