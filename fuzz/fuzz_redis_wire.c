/* The Redis wire protocol's entry parsing (tools/serve/redis_wire.c): the
 * input is a width byte, then an entry's field/value strings, each a length
 * byte and that many bytes (values are binary: a raw result), read as a
 * request entry (what a worker reads) and as a reply entry (what a gateway
 * and `engine submit` read), and the reply's raw result decoded for a width
 * taken from the first byte; a zero_shot request's label set and features
 * (of that many floats an image) are read too, and must encode back to the
 * same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int width = data[0] % 64;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    eng_redis_str kv[64];
    size_t n = 0;
    while (p < end && n < 64) {
        size_t len = (unsigned char)*p++;
        if (len > (size_t)(end - p))
            len = (size_t)(end - p);
        /* An empty string stands for an absent value (a non-string element). */
        kv[n++] = (eng_redis_str){len ? p : NULL, len};
        p += len;
    }
    eng_redis_request q;
    char why[160];
    eng_status st = eng__redis_parse_request(kv, n, &q, why, sizeof why);
    if (st == ENG_OK &&
        (q.kind < ENG_REDIS_CLASSIFY || q.kind > ENG_REDIS_ZERO_SHOT || !q.id.p || !q.input.p))
        abort();   /* ENG_OK promises a known task and the required fields */
    eng_redis_zero_shot z;
    if (st == ENG_OK && q.kind == ENG_REDIS_ZERO_SHOT &&
        eng__redis_zero_shot_get(&q, width ? width : 1, &z, why, sizeof why) == ENG_OK) {
        buf b[3] = {{0}};
        eng__redis_zero_shot_put(&b[0], &b[1], &b[2], &z.ls, z.features,
                                 (size_t)z.n * (size_t)(width ? width : 1));
        const eng_redis_str f[3] = {q.labels, q.label_ids, q.input};
        for (int i = 0; i < 3; i++) {
            if (b[i].failed || (i == 1 && !z.ls.ids)) {
                buf_free(&b[i]);
                continue;
            }
            if (b[i].len != f[i].n || (b[i].len && memcmp(b[i].data, f[i].p, b[i].len)))
                abort();
            buf_free(&b[i]);
        }
        if (z.n < 1 || z.ls.n_labels < 1 || (q.templ.p != NULL) != (z.ls.templ != NULL) ||
            (z.ls.templ && (strlen(z.ls.templ) != q.templ.n ||
                            memcmp(z.ls.templ, q.templ.p, q.templ.n))))
            abort();
        free(z.mem);
    }
    eng_redis_reply r;
    if (eng__redis_parse_reply(kv, n, &r)) {
        char reason[64];
        eng__redis_reply_error(&r, reason, sizeof reason);
        float vals[64];
        eng_redis_raw h;
        if (eng__redis_raw_get(r.raw.p, r.raw.n, &h, vals, width) &&
            h.n_out + h.n_probs != width)
            abort();
        /* What decodes encodes back to the same bytes. */
        if (eng__redis_raw_get(r.raw.p, r.raw.n, &h, vals, width)) {
            buf b = {0};
            eng__redis_raw_put(&b, &h, vals, vals + h.n_out);
            if (!b.failed && (b.len != r.raw.n || memcmp(b.data, r.raw.p, b.len)))
                abort();
            buf_free(&b);
        }
    }
    return 0;
}
