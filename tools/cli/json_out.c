/* json_out.c: JSON strings and numbers for the command line's output. Input
 * texts, file names and model labels are outside bytes, so a string is checked
 * as UTF-8 while it is written and every byte that does not start a valid
 * sequence (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF)
 * becomes U+FFFD: the output is valid JSON whatever the bytes. */
#include <math.h>

#include "cli.h"

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when it is not one. */
static int utf8_valid_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    int n;
    unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (int k = 2; k < n; k++)
        if ((p[k] & 0xC0) != 0x80)
            return 0;
    return n;
}

void eng__json_string(FILE *f, const char *s)
{
    putc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = utf8_valid_len(p);
        if (n == 0) {
            fputs("\\ufffd", f);
            p++;
        } else if (n > 1) {
            fwrite(p, 1, (size_t)n, f);
            p += n;
        } else {
            if (*p == '"' || *p == '\\')
                fprintf(f, "\\%c", *p);
            else if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                putc(*p, f);
            p++;
        }
    }
    putc('"', f);
}

void eng__json_floats(FILE *f, const float *v, int n)
{
    putc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, i ? ",%.8g" : "%.8g", (double)v[i]);
    putc(']', f);
}

int eng__all_finite(const float *v, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}
