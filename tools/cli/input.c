/* input.c: option values and bounded line input for the command line. */
#include <errno.h>
#include <stdlib.h>

#include "cli.h"

int eng__cli_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

int eng__cli_read_line(FILE *f, char **buf, size_t *cap, size_t max, size_t *len, int *too_long)
{
    size_t n = 0, raw = 0; /* bytes kept, bytes read (the bound counts these) */
    int c, any = 0;
    *too_long = 0;
    while ((c = getc_unlocked(f)) != EOF) {
        any = 1;
        if (c == '\n')
            break;
        if (raw++ == max)
            *too_long = 1;
        if (c == '\0' || *too_long)
            continue;
        if (n + 1 >= *cap) {
            /* Doubling, capped at the bound, so a line costs at most max + 1. */
            size_t want = *cap ? *cap * 2 : 256;
            if (want > max + 1)
                want = max + 1;
            char *b = realloc(*buf, want);
            if (!b) {
                errno = ENOMEM;
                return -1;
            }
            *buf = b;
            *cap = want;
        }
        (*buf)[n++] = (char)c;
    }
    if (ferror(f))
        return -1;
    if (!any)
        return 0;
    if (!*buf && !(*buf = malloc(*cap = 1))) {
        errno = ENOMEM;
        return -1;
    }
    if (n > 0 && (*buf)[n - 1] == '\r')
        n--;
    (*buf)[n] = '\0';
    *len = n;
    return 1;
}
