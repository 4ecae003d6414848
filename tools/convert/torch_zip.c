/* torch_zip.c: src_load_torch_zip(), the reader for PyTorch checkpoints in the
 * zip format torch.save writes since 1.6: "<prefix>/data.pkl" (the pickled
 * state dict), "<prefix>/data/<key>" (one entry per storage) and
 * "<prefix>/version". It ties zip.c and pickle.c together and copies every
 * tensor out of its storage, honouring offset and strides, as a contiguous
 * tensor. Checkpoints that wrap the state dict as {'state_dict': ...} or
 * {'model': ...} are unwrapped. */
#include "source.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pickle.h"
#include "zip.h"

#define WHY_LEN 384

/* A storage entry, read once however many tensors view it. */
typedef struct {
    const char *key;
    const uint8_t *data;
    size_t len;
    uint8_t *owned;
} storage_bytes;

/* The tensors copied out of a checkpoint may take at most twice its file's
 * size plus 64 MiB: an honest state dict copies each stored byte about once
 * (tied weights, two views of one storage, make it a little more), while
 * many tensors viewing one large deflated storage could otherwise turn a
 * small file into any number of gigabytes. */
#define OUT_BUDGET_FLOOR (64ull << 20)
#define OUT_BUDGET_PER_BYTE 2ull

typedef struct {
    zip_archive za;
    char prefix[256];
    storage_bytes *st;
    size_t nst, capst;
    uint64_t out_bytes, out_budget;   /* copied so far, and the most allowed */
} loader;

/* Finds "<prefix>/data.pkl", where prefix is any single directory name. */
static eng_status find_pickle(loader *L, const zip_entry **pkl, char *why)
{
    for (size_t i = 0; i < L->za.n; i++) {
        const char *name = L->za.entries[i].name;
        const char *slash = strchr(name, '/');
        size_t plen = slash ? (size_t)(slash - name) : 0;
        if (slash && plen > 0 && plen < sizeof L->prefix && strcmp(slash, "/data.pkl") == 0) {
            memcpy(L->prefix, name, plen);
            L->prefix[plen] = '\0';
            *pkl = &L->za.entries[i];
            return ENG_OK;
        }
    }
    snprintf(why, WHY_LEN, "no <dir>/data.pkl in the archive; not a torch.save checkpoint");
    return ENG_ERR_FORMAT;
}

/* Tensor data is little-endian; a "byteorder" entry saying otherwise is
 * refused rather than byte-swapped. */
static eng_status check_byteorder(loader *L, char *why)
{
    char name[300];
    snprintf(name, sizeof name, "%s/byteorder", L->prefix);
    const zip_entry *e = zip_find(&L->za, name);
    if (!e)
        return ENG_OK;
    const uint8_t *data;
    uint8_t *owned;
    eng_status s = zip_read(&L->za, e, &data, &owned, why, WHY_LEN);
    if (s != ENG_OK)
        return s;
    int little = e->usize == 6 && memcmp(data, "little", 6) == 0;
    free(owned);
    if (!little) {
        snprintf(why, WHY_LEN, "tensors are not stored little-endian; not supported");
        return ENG_ERR_UNSUPPORTED;
    }
    return ENG_OK;
}

static eng_status storage_of(loader *L, const char *key, const storage_bytes **out, char *why)
{
    for (size_t i = 0; i < L->nst; i++) {
        if (strcmp(L->st[i].key, key) == 0) {
            *out = &L->st[i];
            return ENG_OK;
        }
    }
    char name[300];
    int n = snprintf(name, sizeof name, "%s/data/%s", L->prefix, key);
    const zip_entry *e = n > 0 && (size_t)n < sizeof name ? zip_find(&L->za, name) : NULL;
    if (!e) {
        snprintf(why, WHY_LEN, "storage '%.40s' has no entry %s/data/%.40s in the archive", key, L->prefix, key);
        return ENG_ERR_FORMAT;
    }
    if (L->nst == L->capst) {
        size_t cap = L->capst ? 2 * L->capst : 64;
        storage_bytes *st = realloc(L->st, cap * sizeof *st);
        if (!st) {
            snprintf(why, WHY_LEN, "out of memory");
            return ENG_ERR_NOMEM;
        }
        L->st = st;
        L->capst = cap;
    }
    storage_bytes *sb = &L->st[L->nst];
    eng_status s = zip_read(&L->za, e, &sb->data, &sb->owned, why, WHY_LEN);
    if (s != ENG_OK)
        return s;
    sb->key = key;
    sb->len = (size_t)e->usize;
    L->nst++;
    *out = sb;
    return ENG_OK;
}

/* Copies tensor t (a view into its storage) into a new contiguous buffer,
 * after checking that every element it addresses lies inside the storage. */
static eng_status materialize(loader *L, const pk_value *t, const char *name, src_tensor *out, char *why)
{
    const pk_value *stv = t->u.tensor.storage;
    src_dtype dt = stv->u.storage.dtype;
    size_t es = pk_dtype_size(dt);
    const storage_bytes *sb;
    eng_status s = storage_of(L, stv->u.storage.key, &sb, why);
    if (s != ENG_OK)
        return s;
    int64_t snumel = stv->u.storage.numel;
    if ((uint64_t)snumel > sb->len / es) {
        snprintf(why, WHY_LEN, "storage '%s' holds %zu bytes, too few for its %lld elements",
                 stv->u.storage.key, sb->len, (long long)snumel);
        return ENG_ERR_FORMAT;
    }
    int nd = t->u.tensor.ndim;
    const int64_t *shape = t->u.tensor.shape, *stride = t->u.tensor.stride;
    int64_t numel = 1, last = t->u.tensor.offset, reach;
    for (int d = 0; d < nd; d++) {
        if (__builtin_mul_overflow(numel, shape[d], &numel) ||
            (shape[d] && (__builtin_mul_overflow(shape[d] - 1, stride[d], &reach) ||
                          __builtin_add_overflow(last, reach, &last)))) {
            snprintf(why, WHY_LEN, "tensor %s: shape or strides overflow", name);
            return ENG_ERR_FORMAT;
        }
    }
    if (numel > 0 && last >= snumel) {
        snprintf(why, WHY_LEN, "tensor %s: offset and strides reach element %lld, beyond its storage of %lld",
                 name, (long long)last, (long long)snumel);
        return ENG_ERR_FORMAT;
    }
    /* State dicts never hold broadcast views; refusing them bounds the output
     * by the storage sizes, so a tiny hostile file cannot ask for terabytes. */
    if (numel > snumel) {
        snprintf(why, WHY_LEN, "tensor %s has %lld elements, more than its storage's %lld", name,
                 (long long)numel, (long long)snumel);
        return ENG_ERR_FORMAT;
    }
    size_t nbytes = (size_t)numel * es;
    if (nbytes > L->out_budget - L->out_bytes) {
        snprintf(why, WHY_LEN, "tensor %s: its tensors take more than %llu bytes, more than a "
                 "checkpoint of this size holds", name, (unsigned long long)L->out_budget);
        return ENG_ERR_FORMAT;
    }
    L->out_bytes += nbytes;
    uint8_t *dst = malloc(nbytes ? nbytes : 1);
    out->name = strdup(name);
    if (!dst || !out->name) {
        free(dst);
        free(out->name);
        out->name = NULL;
        snprintf(why, WHY_LEN, "out of memory for tensor %s", name);
        return ENG_ERR_NOMEM;
    }
    out->dtype = dt;
    out->ndim = nd;
    memcpy(out->shape, shape, (size_t)nd * sizeof *shape);
    out->data = dst;
    out->nbytes = nbytes;
    if (numel == 0)
        return ENG_OK;

    const uint8_t *src = sb->data;
    int64_t want = 1;
    int contiguous = 1;
    for (int d = nd - 1; d >= 0; d--) {
        contiguous &= shape[d] == 1 || stride[d] == want;
        want *= shape[d];
    }
    if (contiguous) {
        memcpy(dst, src + (size_t)t->u.tensor.offset * es, nbytes);
        return ENG_OK;
    }
    /* Row by row over the last dimension; idx counts through the others. */
    int64_t idx[PK_MAX_DIMS] = {0}, inner = shape[nd - 1], istride = stride[nd - 1];
    for (;;) {
        int64_t base = t->u.tensor.offset;
        for (int d = 0; d < nd - 1; d++)
            base += idx[d] * stride[d];
        if (istride == 1) {
            memcpy(dst, src + (size_t)base * es, (size_t)inner * es);
        } else {
            for (int64_t j = 0; j < inner; j++)
                memcpy(dst + (size_t)j * es, src + (size_t)(base + j * istride) * es, es);
        }
        dst += (size_t)inner * es;
        int d = nd - 2;
        while (d >= 0 && ++idx[d] == shape[d])
            idx[d--] = 0;
        if (d < 0)
            return ENG_OK;
    }
}

static int has_tensor(const pk_value *d)
{
    for (size_t i = 0; i < d->u.dict.n; i++)
        if (d->u.dict.v[i]->kind == PK_TENSOR)
            return 1;
    return 0;
}

/* The state dict itself, or the one inside {'state_dict': ...} or
 * {'model': ...} when the top level holds no tensors. */
static const pk_value *state_dict_of(const pk_value *root)
{
    if (has_tensor(root))
        return root;
    static const char *const wrappers[] = {"state_dict", "model"};
    for (size_t w = 0; w < 2; w++)
        for (size_t i = 0; i < root->u.dict.n; i++) {
            const pk_value *k = root->u.dict.k[i];
            if (k->kind == PK_STR && strcmp(k->u.str.s, wrappers[w]) == 0 && root->u.dict.v[i]->kind == PK_DICT)
                return root->u.dict.v[i];
        }
    return root;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const src_tensor *)a)->name, ((const src_tensor *)b)->name);
}

static eng_status collect(loader *L, const pk_value *root, src_tensors *out, char *why)
{
    if (root->kind != PK_DICT) {
        snprintf(why, WHY_LEN, "data.pkl does not hold a dict (a state dict)");
        return ENG_ERR_FORMAT;
    }
    const pk_value *sd = state_dict_of(root);
    if (sd->u.dict.n == 0 || !has_tensor(sd)) {
        snprintf(why, WHY_LEN, "the state dict holds no tensors");
        return ENG_ERR_FORMAT;
    }
    out->t = calloc(sd->u.dict.n, sizeof *out->t);
    if (!out->t) {
        snprintf(why, WHY_LEN, "out of memory");
        return ENG_ERR_NOMEM;
    }
    for (size_t i = 0; i < sd->u.dict.n; i++) {
        const pk_value *k = sd->u.dict.k[i], *v = sd->u.dict.v[i];
        if (k->kind != PK_STR || strlen(k->u.str.s) != k->u.str.len) {
            snprintf(why, WHY_LEN, "state dict entry %zu has a key that is not a string", i);
            return ENG_ERR_FORMAT;
        }
        if (v->kind != PK_TENSOR) {
            snprintf(why, WHY_LEN, "state dict entry '%.200s' is not a tensor", k->u.str.s);
            return ENG_ERR_UNSUPPORTED;
        }
        eng_status s = materialize(L, v, k->u.str.s, &out->t[out->n], why);
        if (s != ENG_OK)
            return s;
        out->n++;
    }
    /* A checkpoint naming one tensor twice is ambiguous. Duplicates are found
     * in a sorted copy, so that the output keeps the file's order. */
    src_tensor *sorted = malloc((size_t)out->n * sizeof *sorted);
    if (!sorted) {
        snprintf(why, WHY_LEN, "out of memory");
        return ENG_ERR_NOMEM;
    }
    memcpy(sorted, out->t, (size_t)out->n * sizeof *sorted);
    qsort(sorted, (size_t)out->n, sizeof *sorted, by_name);
    for (int i = 1; i < out->n; i++) {
        if (strcmp(sorted[i - 1].name, sorted[i].name) == 0) {
            snprintf(why, WHY_LEN, "tensor '%.200s' appears twice", sorted[i].name);
            free(sorted);
            return ENG_ERR_FORMAT;
        }
    }
    free(sorted);
    return ENG_OK;
}

eng_status src_load_torch_zip(const char *path, src_tensors *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char why[WHY_LEN] = "";
    eng_status s = ENG_OK;
    loader L;
    memset(&L, 0, sizeof L);
    pk_heap heap = {0};
    uint8_t *pkl_owned = NULL;
    void *map = MAP_FAILED;
    size_t size = 0;

    int fd = open(path, O_RDONLY);
    struct stat sbuf;
    if (fd < 0 || fstat(fd, &sbuf) != 0) {
        snprintf(why, WHY_LEN, "cannot open: %m");
        s = ENG_ERR_IO;
        goto done;
    }
    size = (size_t)sbuf.st_size;
    if (size > 0 && (map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
        snprintf(why, WHY_LEN, "cannot map: %m");
        s = ENG_ERR_IO;
        goto done;
    }
    const uint8_t *buf = map == MAP_FAILED ? (const uint8_t *)"" : map;
    L.out_budget = OUT_BUDGET_FLOOR + OUT_BUDGET_PER_BYTE * (uint64_t)size;
    if (size >= 2 && buf[0] == 0x80 && buf[1] <= 5) {
        snprintf(why, WHY_LEN, "legacy torch.save format (before PyTorch 1.6) is not supported; re-save it");
        s = ENG_ERR_UNSUPPORTED;
        goto done;
    }
    if ((s = zip_open(&L.za, buf, size, why, WHY_LEN)) != ENG_OK)
        goto done;
    const zip_entry *pkl;
    if ((s = find_pickle(&L, &pkl, why)) != ENG_OK || (s = check_byteorder(&L, why)) != ENG_OK)
        goto done;
    const uint8_t *pdata;
    if ((s = zip_read(&L.za, pkl, &pdata, &pkl_owned, why, WHY_LEN)) != ENG_OK)
        goto done;
    const pk_value *root;
    if ((s = pk_load(pdata, (size_t)pkl->usize, pk_budget(size), &heap, &root, why,
                     WHY_LEN)) != ENG_OK)
        goto done;
    s = collect(&L, root, out, why);
done:
    if (s != ENG_OK) {
        snprintf(err, errlen, "%s: %s", path, why);
        src_free(out);
        memset(out, 0, sizeof *out);
    }
    pk_heap_free(&heap);
    free(pkl_owned);
    for (size_t i = 0; i < L.nst; i++)
        free(L.st[i].owned);
    free(L.st);
    zip_close(&L.za);
    if (map != MAP_FAILED)
        munmap(map, size);
    if (fd >= 0)
        close(fd);
    return s;
}
