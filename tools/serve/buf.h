/* buf.h: the growable byte buffer that engine serve's responses and the Redis
 * worker's and client's bodies are written into (buf.c). On allocation failure
 * it stays as it was and failed is set (the caller checks once at the end). */
#ifndef SERVE_BUF_H
#define SERVE_BUF_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len, cap;
    int failed;   /* an allocation failed: the content is incomplete */
} buf;

int buf_reserve(buf *b, size_t extra);
void buf_add(buf *b, const void *s, size_t n);
void buf_str(buf *b, const char *s);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_json_str(buf *b, const char *s, size_t n);
void buf_float(buf *b, float v);
void buf_floats(buf *b, const float *v, int n);
void buf_free(buf *b);

#endif
