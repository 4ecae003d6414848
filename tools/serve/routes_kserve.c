/* routes_kserve.c: the KServe v2 / Triton inference protocol for every
 * model: model metadata and POST /v2/models/{name}/infer with BYTES inputs
 * (texts, or base64-encoded JPEG/PNG images). Outputs: "logits" (FP32
 * [n, labels]) and "label" (BYTES [n]) for classifiers, "embedding" (FP32
 * [n, hidden]) when asked for or when the model has no classifier. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serve.h"

void kserve_model_meta(srv_model *m, buf *out)
{
    int image = m->info.input == ENG_INPUT_IMAGE;
    buf_str(out, "{\"name\":");
    buf_json_str(out, m->name, strlen(m->name));
    buf_printf(out, ",\"versions\":[\"1\"],\"platform\":\"engine\",\"inputs\":[{\"name\":\"%s\","
                    "\"datatype\":\"BYTES\",\"shape\":[-1]}],\"outputs\":[",
               image ? "image" : "text");
    if (m->info.n_labels > 0)
        buf_printf(out, "{\"name\":\"logits\",\"datatype\":\"FP32\",\"shape\":[-1,%d]},"
                        "{\"name\":\"label\",\"datatype\":\"BYTES\",\"shape\":[-1]}%s",
                   m->info.n_labels, image ? "" : ",");
    if (!image)
        buf_printf(out, "{\"name\":\"embedding\",\"datatype\":\"FP32\",\"shape\":[-1,%d]}",
                   m->info.hidden);
    buf_str(out, "]}");
}

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Standard or URL-safe base64, padding optional; NULL when malformed. */
char *b64_decode(const char *s, size_t n, size_t *out_len)
{
    while (n && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return NULL;
    char *out = malloc(n / 4 * 3 + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    *out_len = o;
    return out;
}

int kserve_parse(srv_req *r)
{
    srv_model *m = r->m;
    cJSON *root = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    if (!root) {
        srv_fail(r, 400, "validation", "Failed to parse the request body as JSON");
        return 0;
    }
    r->json = root;
    cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (cJSON_IsString(id))
        snprintf(r->kserve_id, sizeof r->kserve_id, "%s", id->valuestring);
    cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    if (cJSON_IsObject(params)) {
        cJSON *p = cJSON_GetObjectItemCaseSensitive(params, "priority");
        if (p && !(cJSON_IsNumber(p) && p->valuedouble >= 0 &&
                   p->valuedouble < ENG_SCHED_PRIORITIES && p->valuedouble == (int)p->valuedouble)) {
            srv_fail(r, 422, "validation", "`parameters.priority` must be an integer 0..%d",
                     ENG_SCHED_PRIORITIES - 1);
            return 0;
        }
        if (p)
            r->priority = (int)p->valuedouble;
        cJSON *t = cJSON_GetObjectItemCaseSensitive(params, "timeout");   /* microseconds */
        if (cJSON_IsNumber(t) && t->valuedouble > 0)   /* 2^63 and over: none, as the scheduler */
            r->timeout_us = t->valuedouble < 0x1p63 ? (int64_t)t->valuedouble : INT64_MAX;
    }
    cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) != 1) {
        srv_fail(r, 422, "validation", "`inputs` must be a list of one BYTES tensor");
        return 0;
    }
    cJSON *in = cJSON_GetArrayItem(inputs, 0);
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "BYTES") || !cJSON_IsArray(data)) {
        srv_fail(r, 422, "validation", "the input must have datatype BYTES and a data list");
        return 0;
    }
    int n = cJSON_GetArraySize(data);
    if (n == 0) {
        srv_fail(r, 422, "empty", "Input validation error: `data` cannot be empty");
        return 0;
    }
    if (n > r->s->o.max_client_batch) {
        srv_fail(r, 422, "validation", "batch size %d > maximum allowed batch size %d", n,
                 r->s->o.max_client_batch);
        return 0;
    }
    int image = m->info.input == ENG_INPUT_IMAGE;
    r->items = calloc((size_t)n, sizeof *r->items);
    r->owned = image ? calloc((size_t)n, sizeof *r->owned) : NULL;
    if (!r->items || (image && !r->owned)) {
        srv_fail(r, 500, "backend", "out of memory");
        return 0;
    }
    r->n = n;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_GetArrayItem(data, i);
        if (!cJSON_IsString(e)) {
            srv_fail(r, 422, "validation", "`data`[%d] must be a string", i);
            return 0;
        }
        srv_item *it = &r->items[i];
        if (image) {
            size_t len = 0;
            char *bytes = b64_decode(e->valuestring, strlen(e->valuestring), &len);
            if (!bytes || len == 0) {
                free(bytes);
                srv_fail(r, 422, "validation", "Input %d: not a base64-encoded image", i);
                return 0;
            }
            r->owned[r->n_owned++] = bytes;
            it->data = bytes;
            it->len = len;
            it->image = 1;
        } else {
            it->data = e->valuestring;
            it->len = strlen(e->valuestring);
        }
    }
    /* The task follows the outputs asked for. */
    int want_embed = m->info.n_labels == 0;
    cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs"), *o;
    cJSON_ArrayForEach(o, outs) {
        cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (cJSON_IsString(name) && !strcmp(name->valuestring, "embedding"))
            want_embed = 1;
    }
    if (want_embed && image) {
        srv_fail(r, 422, "validation", "image models answer logits and label only");
        return 0;
    }
    r->task = want_embed ? ENG_TASK_EMBED : ENG_TASK_CLASSIFY;
    r->width = want_embed ? m->width_embed : m->width_classify;
    return 0;
}

void kserve_format(srv_req *r, buf *out)
{
    srv_model *m = r->m;
    buf_str(out, "{\"model_name\":");
    buf_json_str(out, m->name, strlen(m->name));
    buf_str(out, ",\"model_version\":\"1\"");
    if (r->kserve_id[0]) {
        buf_str(out, ",\"id\":");
        buf_json_str(out, r->kserve_id, strlen(r->kserve_id));
    }
    int w = r->task == ENG_TASK_EMBED ? m->info.hidden : m->info.n_labels;
    buf_printf(out, ",\"outputs\":[{\"name\":\"%s\",\"datatype\":\"FP32\",\"shape\":[%d,%d],\"data\":[",
               r->task == ENG_TASK_EMBED ? "embedding" : "logits", r->n, w);
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < w; k++) {
            if (i || k)
                buf_add(out, ",", 1);
            buf_float(out, r->items[i].vals[k]);
        }
    buf_str(out, "]}");
    if (r->task == ENG_TASK_CLASSIFY) {
        buf_printf(out, ",{\"name\":\"label\",\"datatype\":\"BYTES\",\"shape\":[%d],\"data\":[", r->n);
        for (int i = 0; i < r->n; i++) {
            char tmp[32];
            const char *l = srv_label(m, r->items[i].label, tmp, sizeof tmp);
            if (i)
                buf_add(out, ",", 1);
            buf_json_str(out, l, strlen(l));
        }
        buf_str(out, "]}");
    }
    buf_str(out, "]}");
}
