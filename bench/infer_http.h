/* infer_http.h: the small keep-alive HTTP/1.1 client infer-bench --url
 * drives `engine serve` with (plain sockets, one connection per client). */
#ifndef INFER_HTTP_H
#define INFER_HTTP_H

#include <stddef.h>

typedef struct {
    char host[256];
    int port;
    char path[512];
} http_target;

typedef struct {
    const http_target *t;
    int fd;               /* -1 when not connected */
    char *buf;            /* response bytes */
    size_t cap;
} http_conn;

/* "http://HOST:PORT/PATH"; 0 or -1. */
int http_parse_url(const char *url, http_target *t);
void http_conn_init(http_conn *c, const http_target *t);
/* POSTs a JSON body and reads the whole answer; reconnects when the server
 * closed the connection. Returns the status code, or -1 on a network error. */
int http_post_json(http_conn *c, const char *body, size_t len);
void http_conn_close(http_conn *c);

#endif
