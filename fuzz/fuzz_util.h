/* fuzz_util.h: what the file-reading harnesses share. The parsers under test
 * take a path (they mmap or read the file themselves), so each input is
 * written to one temporary file per process first. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes data to <dir>/<name> in a per-process temporary folder and returns
 * the file's path (static storage); aborts on I/O failure, which is the
 * harness's fault, not the parser's. */
static inline const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size)
{
    static char dir[64], path[128];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/eng-fuzz-XXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) abort();
    return path;
}

/* The folder fuzz_write_file writes into. */
static inline const char *fuzz_dir(void)
{
    static char d[64];
    const char *p = fuzz_write_file(".probe", (const uint8_t *)"", 0);
    snprintf(d, sizeof d, "%.*s", (int)(strrchr(p, '/') - p), p);
    return d;
}

#endif
