/* redis_wire.h: the wire protocol's entries as bytes (docs/REDIS.md), apart
 * from hiredis so that it can be fuzzed on bytes (fuzz/fuzz_redis_wire.c):
 * finding an entry's fields, reading a request entry, reading a reply entry,
 * and the raw result a gateway asks for (exact floats, so that its HTTP
 * answers equal a local server's byte for byte). */
#ifndef ENG_REDIS_WIRE_H
#define ENG_REDIS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "engine.h"

/* A field's value as bytes; p == NULL when the field is absent. */
typedef struct {
    const char *p;
    size_t n;
} eng_redis_str;

/* The value of field name in an entry's n key/value strings (kv[0] a key,
 * kv[1] its value, ...), or an absent one. */
eng_redis_str eng__redis_find(const eng_redis_str *kv, size_t n, const char *name);

enum { ENG_REDIS_CLASSIFY, ENG_REDIS_EMBED, ENG_REDIS_TOKENIZE, ENG_REDIS_ZERO_SHOT };

typedef struct {
    eng_redis_str id, task, input, reply_to, model;
    eng_redis_str labels, templ, label_ids;   /* zero_shot's label set (eng__redis_zero_shot_get) */
    int kind;             /* ENG_REDIS_CLASSIFY|EMBED|TOKENIZE|ZERO_SHOT */
    int priority;         /* 0 when absent */
    int64_t deadline_ms;  /* 0 when absent */
    int truncate;         /* "truncate 0": refuse a text over the position limit */
    int raw;              /* "raw 1": add the raw result to the reply (a gateway) */
    int tei;              /* tokenize, "format tei": the body is TEI's /tokenize list */
    int skip_special;     /* tokenize, "special 0": without [CLS] and [SEP] */
} eng_redis_request;

/* Reads a request entry's fields. ENG_OK, or the status to answer with and
 * why (a missing field, a bad priority, deadline_ms, truncate, format,
 * special or task; zero_shot without labels);
 * reply_to is read first, so a caller can tell whether it can answer. */
eng_status eng__redis_parse_request(const eng_redis_str *kv, size_t n, eng_redis_request *q,
                                    char *why, size_t why_size);

/* A zero_shot entry (a gateway's /zero-shot, after its images were embedded):
 * `input` is n images' features, n x dim float32 little-endian; `labels` each
 * label's bytes followed by a NUL; `template` the prompt template (absent:
 * the library's default); `label_ids` (absent: tokenize the prompts) per
 * label an int32 count and that many int32 ids, little-endian. The answer's
 * raw result has n_out = n x n_labels probabilities and n_probs = n: each
 * image's best label, as float32 (exact: a label index is far below 2^24). */
typedef struct {
    eng_label_set ls;
    const float *features;   /* n x dim */
    int n;
    void *mem;               /* ls and features point into it: free(mem) */
} eng_redis_zero_shot;

/* Reads q's zero_shot fields for features of dim floats; ENG_OK, or
 * ENG_ERR_INVALID_ARG (and ENG_ERR_NOMEM) with why. */
eng_status eng__redis_zero_shot_get(const eng_redis_request *q, int dim, eng_redis_zero_shot *z,
                                    char *why, size_t why_size);
/* The fields of a zero_shot entry: labels, label_ids (left empty when ls has
 * no ids) and input from n_floats features. */
void eng__redis_zero_shot_put(buf *labels, buf *label_ids, buf *input, const eng_label_set *ls,
                              const float *features, size_t n_floats);

typedef struct {
    eng_redis_str id, status, body, raw;
    eng_status st;   /* status's value (ENG_ERR_INTERNAL for a name not known) */
    int dead_letter; /* status dead_letter: the workers gave up on the entry */
} eng_redis_reply;

/* Reads a reply entry; 0 when it has no id or no status. */
int eng__redis_parse_reply(const eng_redis_str *kv, size_t n, eng_redis_reply *r);
/* The reason in an error reply's body ({"error": "why"}) into out (empty
 * when the body has none). */
void eng__redis_reply_error(const eng_redis_reply *r, char *out, size_t out_size);

/* The wire name of a status: "ok", "timeout", "too_long", ... (ENG_ERR_X -> x),
 * and back (ENG_ERR_INTERNAL for a name not known). */
const char *eng__redis_status_name(eng_status s);
eng_status eng__redis_status_of(const char *name, size_t len);

/* The raw result: a scheduler result's numbers, little-endian: "ENG1", six
 * int32 (label, n_tokens, batch_size, batch_tokens, n_out, n_probs), two
 * int64 (queue_ns, compute_ns), then n_out + n_probs float32. */
typedef struct {
    int32_t label, n_tokens, batch_size, batch_tokens, n_out, n_probs;
    int64_t queue_ns, compute_ns;
} eng_redis_raw;

void eng__redis_raw_put(buf *b, const eng_redis_raw *h, const float *out, const float *probs);
/* Reads a raw result whose floats fill exactly width (n_out + n_probs ==
 * width) into vals; 0 when malformed. */
int eng__redis_raw_get(const char *p, size_t n, eng_redis_raw *h, float *vals, int width);

#endif
