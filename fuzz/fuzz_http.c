/* engine serve's request handling without a socket (tools/serve/request.c):
 * an input is an HTTP request as text, "METHOD URL[?model=NAME]" then
 * "Name: value" header lines, an empty line and the body. It goes through
 * the same calls as http_server.c: headers, route and early checks, body
 * parse (TEI, OpenAI, KServe v2 JSON, raw images), and, for a request that
 * parses, its texts' UTF-8 check (against utf8proc's decoder) and the answer
 * formatted from made-up finite results as if every item had run. Every
 * answer and error body must parse back as JSON, and every status must be
 * one /metrics counts.
 *
 * Models: the tiny BERT of the eng_load seeds (FUZZ_HTTP_MODEL overrides the
 * path, relative to the repository root where `make fuzz` runs), so /tokenize
 * runs the real tokenizer; the null text model; an image model with no
 * weights (its items are never decoded here: decoding is fuzz_image's); and
 * a CLIP one as a gateway has it (metadata only), whose zero-shot answers are
 * formatted from made-up scores, or a made-up failure of the label set. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#include "../tools/serve/serve.h"   /* the server's own header, not an include path */

static srv s;
static srv_model models[4];

static void die(const char *what, const char *detail, size_t len)
{
    fprintf(stderr, "fuzz_http: %s: %.*s\n", what, (int)len, detail ? detail : "");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *path = getenv("FUZZ_HTTP_MODEL");
    if (!path)
        path = "fuzz/corpus/eng_load/bert-tiny.eng";
    srv_model *m = &models[0];
    if (eng_model_load(path, NULL, &m->model) != ENG_OK)
        die("cannot load the model (run from the repository root or set FUZZ_HTTP_MODEL)", path,
            strlen(path));
    eng_model_get_info(m->model, &m->info);
    snprintf(m->name, sizeof m->name, "tiny");
    m = &models[1];
    snprintf(m->name, sizeof m->name, "null");
    m->info = (eng_model_info){.arch = "null", .input = ENG_INPUT_TEXT, .weights = "none",
                               .n_labels = 2, .hidden = 4,
                               .max_positions = ENG__SCHED_NULL_POSITIONS};
    m = &models[2];
    snprintf(m->name, sizeof m->name, "img");
    m->info = (eng_model_info){.arch = "resnet", .input = ENG_INPUT_IMAGE, .weights = "none",
                               .n_labels = 7, .max_positions = 0};
    m = &models[3];
    snprintf(m->name, sizeof m->name, "clip");
    m->info = (eng_model_info){.arch = "clip", .input = ENG_INPUT_IMAGE, .weights = "none",
                               .hidden = 8, .max_positions = 0};
    /* The image model's names need escaping; NULL is LABEL_i. */
    static const char *img_labels[7] = {"tench", "a \"quoted\"\n\\ label", NULL, "\xff\xfe",
                                        "\x01ctl", "", "\xe4\xb8\xad"};
    static const char *tiny_labels[64];
    if (models[0].info.n_labels > 64)
        die("the model has more labels than the harness holds", path, strlen(path));
    for (int k = 0; k < models[0].info.n_labels && k < 64; k++)
        tiny_labels[k] = eng_model_label(models[0].model, k);
    static const char *null_labels[2], *clip_labels[1];
    models[0].labels = tiny_labels;
    models[1].labels = null_labels;
    models[2].labels = img_labels;
    models[3].labels = clip_labels;
    for (int i = 0; i < 4; i++) {   /* as backend_local.c's load_model and local_open */
        models[i].width_classify = 2 * models[i].info.n_labels;
        models[i].width_embed = models[i].info.hidden;
    }
    s.models = models;
    s.n_models = 4;
    s.o = (srv_opts){.host = "127.0.0.1", .payload_limit = 1 << 20, .max_client_batch = 8,
                     .max_connections = 64, .http_threads = 1, .request_timeout_ms = 0};
    atomic_store(&s.ready, 1);
    return 0;
}

/* The answer must be JSON: what a client parses. */
static void check_json(const buf *b, const char *what)
{
    if (b->failed)
        return;   /* out of memory: the server answers 500 instead */
    cJSON *j = cJSON_ParseWithLength(b->data ? b->data : "", b->len);
    if (!j)
        die(what, b->data, b->len);
    cJSON_Delete(j);
}

static void check_error(srv_req *r)
{
    if (srv_code_index(r->err_code) < 0 || !r->err_type)
        die("an error status /metrics does not count", r->err_msg, strlen(r->err_msg));
    buf b = {0};
    srv_error_body(&b, r->err_type, r->err_msg);
    check_json(&b, "error body is not JSON");
    buf_free(&b);
}

/* Results as the scheduler would give them: finite values from the item's
 * bytes, a label in range for a classifier. */
static void fake_results(srv_req *r)
{
    r->vals = calloc((size_t)r->n * (size_t)r->width + 1, sizeof(float));
    if (!r->vals)
        abort();
    int nl = r->m->info.n_labels;
    for (int i = 0; i < r->n; i++) {
        srv_item *it = &r->items[i];
        it->r = r;
        it->vals = r->vals + (size_t)i * r->width;
        for (int k = 0; k < r->width; k++) {
            unsigned char c = it->len ? (unsigned char)it->data[(size_t)k % it->len] : 0;
            it->vals[k] = ((float)c - 128.f) * (c & 1 ? 1e30f : 1e-30f) * (float)(k + 1);
        }
        it->st = ENG_OK;
        it->label = r->task == ENG_TASK_CLASSIFY && nl > 0 ? (int)(it->len % (size_t)nl) : -1;
        it->n_tokens = (int)(it->len % 512);
    }
    /* Zero-shot: each image's label scores from its bytes (finite, the best
     * one in range), or the label set's failure when the first image's
     * length is a multiple of 7. */
    const int L = r->zs.n_labels;
    if (r->route == R_ZERO_SHOT && r->items[0].len % 7 == 0) {
        r->zs_st = (eng_status)(1 + r->items[0].len % (ENG__STATUS_COUNT - 1));
        snprintf(r->zs_why, sizeof r->zs_why, "made up \"%s\"", eng_status_str(r->zs_st));
    } else if (r->route == R_ZERO_SHOT) {
        for (int i = 0; i < r->n; i++) {
            const srv_item *it = &r->items[i];
            for (int c = 0; c < L; c++)
                r->zs_probs[(size_t)i * L + c] = (float)(unsigned char)it->data[(size_t)c % it->len];
            r->zs_top[i] = (int)(it->len % (size_t)L);
        }
    }
}

/* utf8proc's decoder, the reference for the server's UTF-8 check. */
static int utf8proc_valid(const char *text, size_t n)
{
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + i,
                                              (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

/* One input line (up to '\n', without a '\r' before it), NUL-terminated in
 * place; NULL at the end of the head. */
static char *next_line(char **p, char *end)
{
    if (*p >= end)
        return NULL;
    char *line = *p, *nl = memchr(line, '\n', (size_t)(end - line));
    char *stop = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    if (stop > line && stop[-1] == '\r')
        stop--;
    *stop = 0;
    return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy with room for the terminators the head's lines get. */
    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = 0;
    char *p = in, *end = in + size;
    char *first = next_line(&p, end);
    char *sp = first ? strchr(first, ' ') : NULL;
    if (!sp) {
        free(in);
        return 0;
    }
    *sp = 0;
    const char *method = first;
    char *url = sp + 1;
    srv_headers h = {0};
    char *q = strchr(url, '?');   /* libmicrohttpd gives the path and the arguments apart */
    if (q) {
        *q = 0;
        if (!strncmp(q + 1, "model=", 6))
            h.model_arg = q + 7;
    }
    const struct { const char *name; const char **slot; } known[] = {
        {"x-request-id", &h.request_id},     {"x-request-timeout-ms", &h.timeout_ms},
        {"x-priority", &h.priority},         {"content-type", &h.content_type},
        {"authorization", &h.authorization}, {"content-length", &h.content_length},
    };
    char *line;
    while ((line = next_line(&p, end)) && *line) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = 0;
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
            if (!strcasecmp(line, known[i].name) && !*known[i].slot)   /* the first, as libmicrohttpd */
                *known[i].slot = v;
        }
    }
    /* A key is required when the request offers one: both sides of the check. */
    s.o.api_key = h.authorization ? "secret" : NULL;

    srv_req *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->s = &s;
    r->url = url;
    srv_req_headers(r, &h);
    buf b = {0};
    switch (srv_req_route(r, method, &h)) {
    case SRV_EARLY_FAILED:
        check_error(r);
        break;
    case SRV_EARLY_EMPTY:
    case SRV_EARLY_METRICS:   /* nothing of the request reaches /metrics' text */
        break;
    case SRV_EARLY_INFO:
        tei_info(&s, &b);
        check_json(&b, "/info is not JSON");
        break;
    case SRV_EARLY_MODEL:
        kserve_model_meta(r->m, &b);
        check_json(&b, "model metadata is not JSON");
        break;
    case SRV_EARLY_BODY:
        if (p < end)
            buf_add(&r->body, p, (size_t)(end - p));
        if (srv_req_parse(r) == 1) {
            tei_tokenize(r, &b);
            if (!r->err_code)
                check_json(&b, "/tokenize answer is not JSON");
        } else if (!r->err_code) {
            if (r->n < 1)
                die("parsed without items", r->url, strlen(r->url));
            for (int i = 0; i < r->n; i++) {   /* what submit_all checks first */
                const srv_item *it = &r->items[i];
                if (!it->image && srv_utf8_valid((const unsigned char *)it->data, it->len) !=
                                      utf8proc_valid(it->data, it->len))
                    die("the UTF-8 check disagrees with utf8proc", it->data, it->len);
            }
            fake_results(r);
            srv_req_format(r, &b);
            if (!r->err_code)   /* zero-shot's label set may fail here */
                check_json(&b, "answer is not JSON");
        }
        if (r->err_code)
            check_error(r);
        break;
    }
    buf_free(&b);
    srv_req_free(r);
    free(in);
    return 0;
}
