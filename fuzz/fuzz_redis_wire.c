/* The Redis wire protocol's entry parsing (tools/serve/redis_wire.c): the
 * input is a width byte, then an entry's field/value strings, each a length
 * byte and that many bytes (values are binary: a raw result), read as a
 * request entry (what a worker reads) and as a reply entry (what a gateway
 * and `engine submit` read), and the reply's raw result decoded for a width
 * taken from the first byte. */
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
    if (eng__redis_parse_request(kv, n, &q, why, sizeof why) == ENG_OK &&
        (q.kind < ENG_REDIS_CLASSIFY || q.kind > ENG_REDIS_TOKENIZE || !q.id.p || !q.input.p))
        abort();   /* ENG_OK promises a known task and the required fields */
    eng_redis_reply r;
    if (eng__redis_parse_reply(kv, n, &r)) {
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
