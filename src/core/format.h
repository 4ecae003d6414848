/* format.h: the on-disk model format (".eng"), version 3, shared by the
 * converter (tools/convert/writer.h) and the engine (the reader here). docs/FORMAT.md documents it.
 *
 * Layout, all integers little-endian, all offsets from the start of the file:
 *   eng__file_header                      at 0
 *   metadata: UTF-8 JSON (config, tokenizer settings, labels), meta_size bytes
 *   tensor directory: n_tensors x eng__file_tensor
 *   tensor data, each tensor at a multiple of ENG_FILE_ALIGN, so the file is
 *   memory-mapped and tensors are used in place.
 */
#ifndef ENG_FORMAT_H
#define ENG_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define ENG_FILE_MAGIC "ENGMODL1"   /* 8 bytes, no NUL */
/* 2: the metadata names the model's kind ("kind", src/core/kind.h).
 * 3: the header carries a checksum of the whole file. */
#define ENG_FILE_VERSION 3u
#define ENG_FILE_ALIGN 64u
#define ENG_FILE_NAME_MAX 96        /* tensor name bytes, NUL included */
#define ENG_FILE_MAX_DIMS 4

typedef enum {
    ENG_DT_F32 = 0,
    ENG_DT_F16 = 1,
    ENG_DT_BF16 = 2,
    ENG_DT_I8 = 3,
    ENG_DT_U8 = 4,      /* raw bytes, e.g. the vocabulary blob */
    ENG_DT_I32 = 5,
    ENG_DT_COUNT
} eng__dtype;

size_t eng__dtype_size(eng__dtype dt);        /* 0 for an unknown dtype */
const char *eng__dtype_name(eng__dtype dt);

/* The byte count shape and dtype imply, or 0 when a dimension is malformed or
 * the product overflows (a tensor of 0 bytes is not allowed either). Dims past
 * ndim must be 0. */
uint64_t eng__tensor_bytes(eng__dtype dt, uint32_t ndim, const uint64_t *shape);

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t n_tensors;
    uint64_t meta_offset;
    uint64_t meta_size;
    uint64_t dir_offset;
    uint64_t data_offset;
    uint64_t file_size;     /* catches truncation before anything is read */
    uint64_t checksum;      /* eng__file_checksum: catches any corrupted byte */
    uint8_t reserved[8];    /* zero */
} eng__file_header;

typedef struct {
    char name[ENG_FILE_NAME_MAX];   /* NUL-terminated, unique */
    uint32_t dtype;                 /* eng__dtype */
    uint32_t ndim;                  /* 1..ENG_FILE_MAX_DIMS */
    uint64_t shape[ENG_FILE_MAX_DIMS];   /* unused dims are 0 */
    uint64_t offset;                /* multiple of ENG_FILE_ALIGN */
    uint64_t nbytes;                /* product(shape) x dtype size */
} eng__file_tensor;

/* A validated, memory-mapped model file. */
typedef struct {
    void *map;
    size_t size;
    const char *meta;               /* not NUL-terminated */
    size_t meta_size;
    const eng__file_tensor *dir;
    uint32_t n_tensors;
} eng__file;

/* Maps path read-only and checks everything a hostile or corrupted file
 * could get wrong: magic, version (an older one is told to re-convert),
 * sizes, the checksum of every byte, every offset and length in range,
 * alignment, names terminated and unique, nbytes consistent with shape and
 * dtype. On failure returns ENG_ERR_IO / ENG_ERR_FORMAT with a one-line
 * reason in err, which does not repeat the path (the caller names it). */
eng_status eng__file_open(eng__file *f, const char *path, char *err, size_t errlen);
void eng__file_close(eng__file *f);
const eng__file_tensor *eng__file_find(const eng__file *f, const char *name);
const void *eng__file_data(const eng__file *f, const eng__file_tensor *t);

/* The checksum stored in the header of a file of size bytes at base (whose
 * checksum field is ignored): XXH64 of the header with that field zeroed,
 * then, seeded with it, XXH64 of everything after the header. */
uint64_t eng__file_checksum(const void *base, uint64_t size);

#endif
