/* infer_http.c: see infer_http.h. Answers are read by their Content-Length
 * (engine serve always sends one), so a connection serves request after
 * request, as wrk's do. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "infer_http.h"

int http_parse_url(const char *url, http_target *t)
{
    const char *p = url;
    if (strncmp(p, "http://", 7))
        return -1;
    p += 7;
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    const char *hend = colon && colon < slash ? colon : slash;
    snprintf(t->host, sizeof t->host, "%.*s", (int)(hend - p), p);
    t->port = colon && colon < slash ? atoi(colon + 1) : 80;
    snprintf(t->path, sizeof t->path, "%s", *slash ? slash : "/");
    return t->host[0] && t->port > 0 ? 0 : -1;
}

void http_conn_init(http_conn *c, const http_target *t)
{
    c->t = t;
    c->fd = -1;
    c->cap = 1 << 16;
    c->buf = malloc(c->cap);
}

static int open_conn(http_conn *c)
{
    char port[16];
    snprintf(port, sizeof port, "%d", c->t->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(c->t->host, port, &hints, &res))
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen)) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    return 0;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One exchange on an open connection: -1 when it broke. */
static int exchange(http_conn *c, const char *body, size_t len)
{
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     c->t->path, c->t->host, len);
    if (send_all(c->fd, head, (size_t)n) || send_all(c->fd, body, len))
        return -1;
    size_t got = 0, need = 0;
    int status = -1, close_after = 0;
    for (;;) {
        if (got + 1 >= c->cap) {
            c->cap *= 2;
            c->buf = realloc(c->buf, c->cap);
        }
        ssize_t r = recv(c->fd, c->buf + got, c->cap - got - 1, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        c->buf[got] = '\0';
        if (!need) {
            char *end = strstr(c->buf, "\r\n\r\n");
            if (!end)
                continue;
            if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1)
                return -1;
            size_t body_len = 0;
            for (char *l = strstr(c->buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
                if (!strncasecmp(l + 2, "Content-Length:", 15))
                    body_len = strtoull(l + 17, NULL, 10);
                if (!strncasecmp(l + 2, "Connection: close", 17))
                    close_after = 1;
            }
            need = (size_t)(end + 4 - c->buf) + body_len;
        }
        if (got >= need)
            break;
    }
    if (close_after)
        http_conn_close(c);
    return status;
}

int http_post_json(http_conn *c, const char *body, size_t len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->fd < 0 && open_conn(c))
            return -1;
        int st = exchange(c, body, len);
        if (st >= 0)
            return st;
        http_conn_close(c);   /* the server closed a kept-alive connection: once more */
    }
    return -1;
}

void http_conn_close(http_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}
