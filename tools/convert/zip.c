/* zip.c: the zip reader behind torch_zip.c (see zip.h). It trusts nothing in
 * the archive: each record is bounds-checked before it is read, entry sizes
 * are checked against the buffer, and entry data is CRC-checked. */
#include "zip.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u
#define EOCD_SIZE 22
#define EOCD64_LOC_SIZE 20
#define EOCD64_SIZE 56
#define CENTRAL_SIZE 46
#define LOCAL_SIZE 30
#define MAX_COMMENT 65535
/* Deflate cannot expand data by more than about 1032:1; a header claiming more
 * is lying, and believing it would mean a huge allocation. */
#define MAX_DEFLATE_RATIO 1032u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static eng_status fail(char *err, size_t errlen, eng_status s, const char *msg, uint64_t v)
{
    snprintf(err, errlen, "zip: %s (%llu)", msg, (unsigned long long)v);
    return s;
}

/* True when [off, off+len) lies inside a buffer of the given size. */
static int in_bounds(uint64_t off, uint64_t len, size_t size)
{
    return off <= size && len <= size - off;
}

/* Finds the end-of-central-directory record, searching back over a possible
 * archive comment. */
static eng_status find_eocd(const uint8_t *buf, size_t size, size_t *at, char *err, size_t errlen)
{
    if (size < EOCD_SIZE)
        return fail(err, errlen, ENG_ERR_FORMAT, "file too short to be a zip archive, bytes", size);
    size_t lo = size - EOCD_SIZE > MAX_COMMENT ? size - EOCD_SIZE - MAX_COMMENT : 0;
    for (size_t p = size - EOCD_SIZE + 1; p-- > lo;) {
        if (rd32(buf + p) == SIG_EOCD && p + EOCD_SIZE + rd16(buf + p + 20) <= size) {
            *at = p;
            return ENG_OK;
        }
    }
    return fail(err, errlen, ENG_ERR_FORMAT, "no end-of-central-directory record; not a zip archive or truncated, bytes", size);
}

/* Replaces the 32-bit fields that are saturated (0xFFFFFFFF) with their values
 * from the ZIP64 extra field, which lists them in this fixed order. */
static eng_status apply_zip64_extra(const uint8_t *x, size_t xlen, zip_entry *e, char *err, size_t errlen)
{
    size_t p = 0;
    while (p + 4 <= xlen) {
        uint16_t id = rd16(x + p), len = rd16(x + p + 2);
        if (len > xlen - p - 4)
            return fail(err, errlen, ENG_ERR_FORMAT, "extra field runs past its entry, length", len);
        if (id == 1) {
            const uint8_t *f = x + p + 4;
            size_t have = len, used = 0;
            uint64_t *fields[3] = {&e->usize, &e->csize, &e->header_offset};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xFFFFFFFFu)
                    continue;
                if (used + 8 > have)
                    return fail(err, errlen, ENG_ERR_FORMAT, "ZIP64 extra field too short, length", len);
                *fields[i] = rd64(f + used);
                used += 8;
            }
            return ENG_OK;
        }
        p += 4 + (size_t)len;
    }
    if (e->usize == 0xFFFFFFFFu || e->csize == 0xFFFFFFFFu || e->header_offset == 0xFFFFFFFFu)
        return fail(err, errlen, ENG_ERR_FORMAT, "saturated size or offset without a ZIP64 extra field, entry bytes", xlen);
    return ENG_OK;
}

eng_status zip_open(zip_archive *za, const uint8_t *buf, size_t size, char *err, size_t errlen)
{
    memset(za, 0, sizeof *za);
    size_t eocd;
    eng_status s = find_eocd(buf, size, &eocd, err, errlen);
    if (s != ENG_OK)
        return s;
    const uint8_t *q = buf + eocd;
    uint64_t count = rd16(q + 10), cd_size = rd32(q + 12), cd_off = rd32(q + 16);
    if (rd16(q + 4) != 0 || rd16(q + 6) != 0)
        return fail(err, errlen, ENG_ERR_UNSUPPORTED, "multi-disk archives are not supported, disk", rd16(q + 4));
    if (count == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        if (eocd < EOCD64_LOC_SIZE || rd32(buf + eocd - EOCD64_LOC_SIZE) != SIG_EOCD64_LOC)
            return fail(err, errlen, ENG_ERR_FORMAT, "saturated end record without a ZIP64 locator at", eocd);
        uint64_t off64 = rd64(buf + eocd - EOCD64_LOC_SIZE + 8);
        if (!in_bounds(off64, EOCD64_SIZE, size) || rd32(buf + off64) != SIG_EOCD64)
            return fail(err, errlen, ENG_ERR_FORMAT, "bad ZIP64 end-of-central-directory offset", off64);
        const uint8_t *r = buf + off64;
        count = rd64(r + 32);
        cd_size = rd64(r + 40);
        cd_off = rd64(r + 48);
    }
    if (!in_bounds(cd_off, cd_size, size))
        return fail(err, errlen, ENG_ERR_FORMAT, "central directory lies outside the file, offset", cd_off);
    if (count > cd_size / CENTRAL_SIZE)
        return fail(err, errlen, ENG_ERR_FORMAT, "entry count does not fit the central directory", count);
    za->entries = calloc(count ? count : 1, sizeof *za->entries);
    if (!za->entries)
        return fail(err, errlen, ENG_ERR_NOMEM, "out of memory for entries", count);
    za->base = buf;
    za->size = size;
    const uint8_t *cd = buf + cd_off;
    size_t p = 0;
    for (uint64_t i = 0; i < count; i++) {
        if (p + CENTRAL_SIZE > cd_size || rd32(cd + p) != SIG_CENTRAL) {
            s = fail(err, errlen, ENG_ERR_FORMAT, "corrupt central directory at entry", i);
            goto bad;
        }
        const uint8_t *c = cd + p;
        size_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        if (CENTRAL_SIZE + nlen + xlen + clen > cd_size - p) {
            s = fail(err, errlen, ENG_ERR_FORMAT, "central directory entry runs past its end, entry", i);
            goto bad;
        }
        zip_entry *e = &za->entries[i];
        if (rd16(c + 8) & 1) {
            s = fail(err, errlen, ENG_ERR_UNSUPPORTED, "encrypted entries are not supported, entry", i);
            goto bad;
        }
        e->method = rd16(c + 10);
        e->crc = rd32(c + 16);
        e->csize = rd32(c + 20);
        e->usize = rd32(c + 24);
        e->header_offset = rd32(c + 42);
        e->name = malloc(nlen + 1);
        if (!e->name) {
            s = fail(err, errlen, ENG_ERR_NOMEM, "out of memory for entry names", i);
            goto bad;
        }
        memcpy(e->name, c + CENTRAL_SIZE, nlen);
        e->name[nlen] = '\0';
        za->n = (size_t)i + 1;
        s = apply_zip64_extra(c + CENTRAL_SIZE + nlen, xlen, e, err, errlen);
        if (s != ENG_OK)
            goto bad;
        p += CENTRAL_SIZE + nlen + xlen + clen;
    }
    return ENG_OK;
bad:
    zip_close(za);
    return s;
}

const zip_entry *zip_find(const zip_archive *za, const char *name)
{
    for (size_t i = 0; i < za->n; i++)
        if (strcmp(za->entries[i].name, name) == 0)
            return &za->entries[i];
    return NULL;
}

/* Inflates a raw deflate stream into exactly usize bytes. */
static eng_status inflate_entry(const uint8_t *src, uint64_t csize, uint8_t *dst, uint64_t usize,
                                const char *name, char *err, size_t errlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
        snprintf(err, errlen, "zip: cannot start inflating %s", name);
        return ENG_ERR_NOMEM;
    }
    /* zlib counts in uInt, so long entries are fed and drained in pieces. */
    uint64_t in_left = csize, out_left = usize;
    int rc = Z_OK;
    z.next_in = (Bytef *)(uintptr_t)src;
    z.next_out = dst;
    while (rc == Z_OK) {
        if (z.avail_in == 0 && in_left) {
            z.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
            in_left -= z.avail_in;
        }
        if (z.avail_out == 0 && out_left) {
            z.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
            out_left -= z.avail_out;
        }
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc == Z_BUF_ERROR && (z.avail_in || in_left) && (z.avail_out || out_left))
            rc = Z_OK;
    }
    int ok = rc == Z_STREAM_END && z.avail_out == 0 && out_left == 0;
    inflateEnd(&z);
    if (!ok) {
        snprintf(err, errlen, "zip: deflated data of %s is corrupt or not %llu bytes long", name,
                 (unsigned long long)usize);
        return ENG_ERR_FORMAT;
    }
    return ENG_OK;
}

/* zlib's crc32 takes a uInt length, so long buffers go in pieces. */
static uint32_t crc_of(const uint8_t *p, uint64_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt k = n > UINT_MAX ? UINT_MAX : (uInt)n;
        crc = crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)crc;
}

eng_status zip_read(const zip_archive *za, const zip_entry *e, const uint8_t **data,
                    uint8_t **owned, char *err, size_t errlen)
{
    *data = NULL;
    *owned = NULL;
    if (!in_bounds(e->header_offset, LOCAL_SIZE, za->size) || rd32(za->base + e->header_offset) != SIG_LOCAL) {
        snprintf(err, errlen, "zip: bad local header offset %llu for %s", (unsigned long long)e->header_offset, e->name);
        return ENG_ERR_FORMAT;
    }
    const uint8_t *h = za->base + e->header_offset;
    uint64_t start = e->header_offset + LOCAL_SIZE + rd16(h + 26) + rd16(h + 28);
    if (!in_bounds(start, e->csize, za->size)) {
        snprintf(err, errlen, "zip: data of %s (%llu bytes) runs past the end of the file; truncated?",
                 e->name, (unsigned long long)e->csize);
        return ENG_ERR_FORMAT;
    }
    const uint8_t *src = za->base + start;
    if (e->method == 0) {
        if (e->csize != e->usize) {
            snprintf(err, errlen, "zip: stored entry %s has different sizes", e->name);
            return ENG_ERR_FORMAT;
        }
        *data = src;
    } else if (e->method == 8) {
        if (e->usize / MAX_DEFLATE_RATIO > e->csize || e->usize > SIZE_MAX - 1) {
            snprintf(err, errlen, "zip: entry %s claims an impossible size %llu", e->name, (unsigned long long)e->usize);
            return ENG_ERR_FORMAT;
        }
        uint8_t *buf = malloc(e->usize ? (size_t)e->usize : 1);
        if (!buf) {
            snprintf(err, errlen, "zip: out of memory inflating %s", e->name);
            return ENG_ERR_NOMEM;
        }
        eng_status s = inflate_entry(src, e->csize, buf, e->usize, e->name, err, errlen);
        if (s != ENG_OK) {
            free(buf);
            return s;
        }
        *data = buf;
        *owned = buf;
    } else {
        snprintf(err, errlen, "zip: entry %s uses compression method %u; only stored and deflate are supported",
                 e->name, e->method);
        return ENG_ERR_UNSUPPORTED;
    }
    if (crc_of(*data, e->usize) != e->crc) {
        snprintf(err, errlen, "zip: CRC mismatch in %s; the file is corrupt", e->name);
        free(*owned);
        *owned = NULL;
        *data = NULL;
        return ENG_ERR_FORMAT;
    }
    return ENG_OK;
}

void zip_close(zip_archive *za)
{
    for (size_t i = 0; i < za->n; i++)
        free(za->entries[i].name);
    free(za->entries);
    memset(za, 0, sizeof *za);
}
