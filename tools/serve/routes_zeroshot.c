/* routes_zeroshot.c: POST /v2/models/{name}/zero-shot, CLIP zero-shot image
 * classification.
 *
 * Request: {"inputs": ["<base64 JPEG/PNG>", ...], "labels": ["cat", ...],
 * "template": "a photo of a {}" (optional), "label_ids": [[49406, ...], ...]
 * (optional: each label's prompt already tokenized, one list per label)}.
 * The images are embedded through the scheduler like any other item (and
 * cached by the result cache); then the backend scores them against the label
 * set with eng_zero_shot_scores, whose label-set cache the library keeps: a
 * label set seen before costs a dot product per label, a new one its prompts'
 * text embeddings. The local backend does it on the model's zero-shot
 * threads (zs_pool.c), the connection suspended meanwhile; a gateway sends
 * the features and the label set to a worker as one more entry
 * (backend_redis.c), which scores them the same way.
 * Answer: a list, per image {"label","score","top5":[{"index","label",
 * "score"}...],"probs":[...]}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serve.h"

int zs_parse(srv_req *r)
{
    srv_model *m = r->m;
    if (strcmp(m->info.arch, "clip")) {
        srv_fail(r, 422, "validation", "%s is not a CLIP model: zero-shot needs one", m->name);
        return 0;
    }
    cJSON *root = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    if (!root) {
        srv_fail(r, 400, "validation", "Failed to parse the request body as JSON");
        return 0;
    }
    r->json = root;
    cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "labels");
    cJSON *templ = cJSON_GetObjectItemCaseSensitive(root, "template");
    cJSON *ids = cJSON_GetObjectItemCaseSensitive(root, "label_ids");
    int n = cJSON_GetArraySize(inputs), L = cJSON_GetArraySize(labels);
    if (!cJSON_IsArray(inputs) || n == 0 || !cJSON_IsArray(labels) || L == 0 ||
        (templ && !cJSON_IsString(templ)) ||
        (ids && (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != L))) {
        srv_fail(r, 422, "validation",
                 "`inputs` (base64 images) and `labels` must be non-empty lists, `template` a "
                 "string, `label_ids` one list of ids per label");
        return 0;
    }
    if (n > r->s->o.max_client_batch) {
        srv_fail(r, 422, "validation", "batch size %d > maximum allowed batch size %d", n,
                 r->s->o.max_client_batch);
        return 0;
    }
    const char **names = calloc((size_t)L, sizeof *names);
    r->zs.labels = names;
    r->zs.n_labels = L;
    r->zs.templ = templ ? templ->valuestring : NULL;
    r->items = calloc((size_t)n, sizeof *r->items);
    r->owned = calloc((size_t)n, sizeof *r->owned);
    r->zs_probs = malloc((size_t)n * (L + 1) * sizeof *r->zs_probs);
    r->zs_top = malloc((size_t)n * sizeof *r->zs_top);
    if (!names || !r->items || !r->owned || !r->zs_probs || !r->zs_top) {
        srv_fail(r, 500, "backend", "out of memory");
        return 0;
    }
    /* Walked, not indexed: cJSON_GetArrayItem follows the list from its head,
     * which made a set of 40,000 labels take seconds on the epoll thread. */
    int l = 0;
    cJSON *lab;
    cJSON_ArrayForEach(lab, labels)
    {
        if (!cJSON_IsString(lab)) {
            srv_fail(r, 422, "validation", "`labels`[%d] must be a string", l);
            return 0;
        }
        names[l++] = lab->valuestring;
    }
    if (ids) {
        int total = 0;
        cJSON *row, *v;
        cJSON_ArrayForEach(row, ids) total += cJSON_GetArraySize(row);
        eng_seq *seqs = calloc((size_t)L, sizeof *seqs);
        r->zs.ids = seqs;
        r->zs_id_buf = malloc((size_t)(total ? total : 1) * sizeof *r->zs_id_buf);
        if (!seqs || !r->zs_id_buf) {
            srv_fail(r, 500, "backend", "out of memory");
            return 0;
        }
        int at = 0;
        l = 0;
        cJSON_ArrayForEach(row, ids)
        {
            seqs[l] = (eng_seq){r->zs_id_buf + at, cJSON_GetArraySize(row)};
            cJSON_ArrayForEach(v, row)
            {
                if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INT32_MAX) {
                    srv_fail(r, 422, "validation", "`label_ids`[%d] holds a non-id", l);
                    return 0;
                }
                r->zs_id_buf[at++] = (int32_t)v->valuedouble;
            }
            l++;
        }
    }
    r->n = n;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_GetArrayItem(inputs, i);
        size_t len = 0;
        char *bytes =
            cJSON_IsString(e) ? b64_decode(e->valuestring, strlen(e->valuestring), &len) : NULL;
        if (!bytes || len == 0) {
            free(bytes);
            srv_fail(r, 422, "validation", "Input %d: not a base64-encoded image", i);
            return 0;
        }
        r->owned[r->n_owned++] = bytes;
        r->items[i].data = bytes;
        r->items[i].len = len;
        r->items[i].image = 1;
    }
    r->task = ENG_TASK_EMBED;
    r->width = m->width_embed;
    return 0;
}

void zs_format(srv_req *r, buf *out)
{
    const int L = r->zs.n_labels;
    switch (r->zs_st) {
    case ENG_OK:
        break;
    case ENG_ERR_NOMEM:
    case ENG_ERR_INTERNAL:
        srv_fail(r, 500, "backend", "%s", r->zs_why);
        return;
    case ENG_ERR_NO_DEVICE:   /* a gateway's: no worker answered in time */
        srv_fail(r, 503, "unhealthy", "%s", r->zs_why);
        return;
    default:
        srv_fail(r, 422, "validation", "%s", r->zs_why);
        return;
    }
    buf_add(out, "[", 1);
    for (int i = 0; i < r->n; i++) {
        const float *p = r->zs_probs + (size_t)i * L;
        const int top = r->zs_top[i];
        int best[5], k = L < 5 ? L : 5;
        for (int j = 0; j < k; j++) {
            best[j] = -1;
            for (int c = 0; c < L; c++) {
                int taken = 0;
                for (int q = 0; q < j; q++)
                    taken |= best[q] == c;
                if (!taken && (best[j] < 0 || p[c] > p[best[j]]))
                    best[j] = c;
            }
        }
        buf_str(out, i ? ",{\"label\":" : "{\"label\":");
        buf_json_str(out, r->zs.labels[top], strlen(r->zs.labels[top]));
        buf_str(out, ",\"score\":");
        buf_float(out, p[top]);
        buf_str(out, ",\"top5\":[");
        for (int j = 0; j < k; j++) {
            buf_printf(out, "%s{\"index\":%d,\"label\":", j ? "," : "", best[j]);
            buf_json_str(out, r->zs.labels[best[j]], strlen(r->zs.labels[best[j]]));
            buf_str(out, ",\"score\":");
            buf_float(out, p[best[j]]);
            buf_add(out, "}", 1);
        }
        buf_str(out, "],\"probs\":");
        buf_floats(out, p, L);
        buf_add(out, "}", 1);
    }
    buf_add(out, "]", 1);
}
