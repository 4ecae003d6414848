/* zip.h: a read-only view of a zip archive held in memory, enough for the
 * archives torch.save writes: stored or deflated entries, ZIP64 sizes and
 * offsets, one disk, no encryption. Every offset and length is checked
 * against the buffer, so a hostile archive yields an error, never a crash. */
#ifndef ENG_ZIP_H
#define ENG_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

typedef struct {
    char *name;            /* NUL-terminated copy of the entry's name */
    uint64_t header_offset; /* of the local file header */
    uint64_t csize, usize;
    uint32_t crc;
    uint16_t method;       /* 0 stored, 8 deflated */
} zip_entry;

typedef struct {
    const uint8_t *base;   /* the whole archive; not owned */
    size_t size;
    zip_entry *entries;
    size_t n;
} zip_archive;

/* Reads the central directory of the archive in buf[0..size). On failure
 * returns ENG_ERR_FORMAT or ENG_ERR_UNSUPPORTED (or NOMEM) with a reason. */
eng_status zip_open(zip_archive *za, const uint8_t *buf, size_t size, char *err, size_t errlen);

/* The entry with exactly this name, or NULL. */
const zip_entry *zip_find(const zip_archive *za, const char *name);

/* The uncompressed bytes of an entry, CRC-checked. A stored entry points into
 * the archive (*owned = NULL); a deflated one is inflated into a malloc'd
 * buffer that is returned in *owned too and is the caller's to free. */
eng_status zip_read(const zip_archive *za, const zip_entry *e, const uint8_t **data,
                    uint8_t **owned, char *err, size_t errlen);

void zip_close(zip_archive *za);

#endif
