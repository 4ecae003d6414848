/* routes_tei.c: the text routes, wire-compatible with Hugging Face
 * text-embeddings-inference (/embed, /predict, /tokenize, /info) and OpenAI's
 * /v1/embeddings; and raw image posts (/predict with an image Content-Type,
 * /v2/models/{name}/classify), answered as the command line's image JSON. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serve.h"

const char *srv_label(srv_model *m, int i, char *tmp, size_t n)
{
    const char *l = i >= 0 && i < m->info.n_labels ? m->labels[i] : NULL;
    if (l)
        return l;
    snprintf(tmp, n, "LABEL_%d", i);   /* the null model's, and HF's default names */
    return tmp;
}

/* Reads a boolean member; 0 when fine (absent keeps *out), -1 after srv_fail. */
static int get_bool(srv_req *r, cJSON *root, const char *key, int *out)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v)) {
        srv_fail(r, 422, "validation", "`%s` must be a boolean", key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* inputs: a string or a non-empty array of strings, at most
 * --max-client-batch-size of them. */
static int take_inputs(srv_req *r, cJSON *v, const char *key)
{
    if (!v) {
        srv_fail(r, 422, "validation", "missing field `%s`", key);
        return -1;
    }
    int n;
    if (cJSON_IsString(v)) {
        n = 1;
        r->single = 1;
    } else if (cJSON_IsArray(v)) {
        n = cJSON_GetArraySize(v);
        if (n == 0) {
            srv_fail(r, 422, "empty", "Input validation error: `%s` cannot be empty", key);
            return -1;
        }
    } else {
        srv_fail(r, 422, "validation", "`%s` must be a string or a list of strings", key);
        return -1;
    }
    if (n > r->s->o.max_client_batch) {
        srv_fail(r, 422, "validation",
                 "batch size %d > maximum allowed batch size %d", n, r->s->o.max_client_batch);
        return -1;
    }
    r->items = calloc((size_t)n, sizeof *r->items);
    if (!r->items) {
        srv_fail(r, 500, "backend", "out of memory");
        return -1;
    }
    r->n = n;
    for (int i = 0; i < n; i++) {
        cJSON *e = r->single ? v : cJSON_GetArrayItem(v, i);
        if (!cJSON_IsString(e)) {
            srv_fail(r, 422, "validation", "`%s`[%d] must be a string", key, i);
            return -1;
        }
        r->items[i].data = e->valuestring;
        r->items[i].len = strlen(e->valuestring);
    }
    return 0;
}

static void set_width(srv_req *r)
{
    r->width = r->task == ENG_TASK_CLASSIFY ? r->m->width_classify : r->m->width_embed;
}

/* The raw image body of /predict (image Content-Type) and /classify. */
static int take_image(srv_req *r)
{
    if (r->m->info.input != ENG_INPUT_IMAGE) {
        srv_fail(r, 422, "validation", "model %s takes texts, not images", r->m->name);
        return -1;
    }
    if (r->body.len == 0) {
        srv_fail(r, 422, "empty", "Input validation error: the image is empty");
        return -1;
    }
    r->items = calloc(1, sizeof *r->items);
    if (!r->items) {
        srv_fail(r, 500, "backend", "out of memory");
        return -1;
    }
    r->n = 1;
    r->single = 1;
    r->items[0].data = r->body.data;
    r->items[0].len = r->body.len;
    r->items[0].image = 1;
    r->task = ENG_TASK_CLASSIFY;
    set_width(r);
    return 0;
}

int tei_parse(srv_req *r)
{
    if (r->route == R_CLASSIFY || (r->route == R_PREDICT && r->content_type &&
                                   !strncmp(r->content_type, "image/", 6)))
        return take_image(r);
    cJSON *root = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    if (!root) {
        srv_fail(r, 400, "validation", "Failed to parse the request body as JSON");
        return 0;
    }
    r->json = root;
    if (!cJSON_IsObject(root)) {
        srv_fail(r, 422, "validation", "the request body must be a JSON object");
        return 0;
    }
    srv_model *m = r->m;
    if (m->info.input == ENG_INPUT_IMAGE) {
        srv_fail(r, 422, "validation",
                 "model %s is an image model: post images to /v2/models/%s/classify or infer",
                 m->name, m->name);
        return 0;
    }
    r->normalize = 1;
    if (r->route == R_OPENAI) {
        cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
        if (fmt && !(cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "float"))) {
            srv_fail(r, 422, "validation", "`encoding_format` must be \"float\"");
            return 0;
        }
        cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
        if (model && cJSON_IsString(model)) {
            /* OpenAI clients name a model; one of ours is used, any other
             * name means the default one (TEI ignores the field). */
            srv_model *named = srv_find_model(r->s, model->valuestring, strlen(model->valuestring));
            if (named && named->info.input == ENG_INPUT_TEXT)
                r->m = m = named;
        }
        if (take_inputs(r, cJSON_GetObjectItemCaseSensitive(root, "input"), "input"))
            return 0;
    } else if (take_inputs(r, cJSON_GetObjectItemCaseSensitive(root, "inputs"), "inputs")) {
        return 0;
    }
    if (get_bool(r, root, "truncate", &r->truncate) || get_bool(r, root, "normalize", &r->normalize) ||
        get_bool(r, root, "raw_scores", &r->raw_scores))
        return 0;
    if (r->route == R_TOKENIZE) {
        int special = 1;
        if (get_bool(r, root, "add_special_tokens", &special))
            return 0;
        r->skip_special = !special;
        return 1;
    }
    if (r->route == R_PREDICT) {
        if (m->info.n_labels == 0) {
            srv_fail(r, 422, "validation", "model %s has no classifier head", m->name);
            return 0;
        }
        r->task = ENG_TASK_CLASSIFY;
    } else {
        r->task = ENG_TASK_EMBED;
    }
    set_width(r);
    return 0;
}

/* TEI's normalize: an L2-normalised copy unless the model normalises itself. */
static void embedding(srv_req *r, int i, buf *out)
{
    const float *v = r->items[i].vals;
    int w = r->width;
    if (!r->normalize || r->m->info.embed_normalize) {
        buf_floats(out, v, w);
        return;
    }
    double ss = 0;
    for (int k = 0; k < w; k++)
        ss += (double)v[k] * v[k];
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.f;
    buf_add(out, "[", 1);
    for (int k = 0; k < w; k++) {
        if (k)
            buf_add(out, ",", 1);
        buf_float(out, v[k] * inv);
    }
    buf_add(out, "]", 1);
}

/* [{"label","score"}...] over every label, by descending score. */
static void predictions(srv_req *r, int i, buf *out)
{
    int nl = r->m->info.n_labels;
    const float *v = r->items[i].vals + (r->raw_scores ? 0 : nl);
    int *order = malloc((size_t)(nl > 0 ? nl : 1) * sizeof *order);
    if (!order) {
        out->failed = 1;
        return;
    }
    for (int k = 0; k < nl; k++) {
        int j = k;
        while (j > 0 && v[order[j - 1]] < v[k]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = k;
    }
    buf_add(out, "[", 1);
    for (int k = 0; k < nl; k++) {
        char tmp[32];
        const char *l = srv_label(r->m, order[k], tmp, sizeof tmp);
        buf_str(out, k ? ",{\"label\":" : "{\"label\":");
        buf_json_str(out, l, strlen(l));
        buf_str(out, ",\"score\":");
        buf_float(out, v[order[k]]);
        buf_add(out, "}", 1);
    }
    buf_add(out, "]", 1);
    free(order);
}

void tei_format(srv_req *r, buf *out)
{
    if (r->route == R_OPENAI) {
        long tokens = 0;
        buf_str(out, "{\"object\":\"list\",\"data\":[");
        for (int i = 0; i < r->n; i++) {
            buf_str(out, i ? ",{\"object\":\"embedding\",\"embedding\":"
                           : "{\"object\":\"embedding\",\"embedding\":");
            embedding(r, i, out);
            buf_printf(out, ",\"index\":%d}", i);
            tokens += r->items[i].n_tokens;
        }
        buf_str(out, "],\"model\":");
        buf_json_str(out, r->m->name, strlen(r->m->name));
        buf_printf(out, ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld}}", tokens, tokens);
        return;
    }
    int list = r->route == R_EMBED || !r->single;   /* /embed always answers [[...]] */
    if (list)
        buf_add(out, "[", 1);
    for (int i = 0; i < r->n; i++) {
        if (i)
            buf_add(out, ",", 1);
        if (r->route == R_EMBED)
            embedding(r, i, out);
        else
            predictions(r, i, out);
    }
    if (list)
        buf_add(out, "]", 1);
}

/* TEI's /tokenize: per text, [{"id","text","special","start","stop"}...], as
 * TEI's into_tokens: a token from the text has its byte offsets into it and
 * the text's own bytes there as "text" (not the vocabulary entry: "Hello",
 * not "hello"); the [CLS] and [SEP] added around it (Hugging Face's special
 * tokens mask) have their vocabulary entry and null offsets. The Redis
 * worker writes the same list for a gateway (task tokenize, format tei). */
eng_status tei_text_tokens(const eng_model *model, int max_positions, const char *text,
                           size_t len, int truncate, int skip_special, buf *out)
{
    int32_t ids[ENG_SCHED_MAX_POSITIONS];
    eng_token_span spans[ENG_SCHED_MAX_POSITIONS];
    int n_ids = 0, trunc = 0;
    if (max_positions > ENG_SCHED_MAX_POSITIONS)
        max_positions = ENG_SCHED_MAX_POSITIONS;
    eng_status st = eng_tokenize_spans(model, text, len, ids, spans, max_positions, &n_ids, &trunc);
    if (st != ENG_OK)
        return st;
    if (trunc && !truncate)
        return ENG_ERR_TOO_LONG;
    buf_add(out, "[", 1);
    int first = 1;
    for (int k = 0; k < n_ids; k++) {
        int special = spans[k].start < 0;
        if (special && skip_special)
            continue;
        buf_printf(out, "%s{\"id\":%d,\"text\":", first ? "" : ",", ids[k]);
        if (special) {
            size_t tl;
            const char *t = eng_model_token(model, ids[k], &tl, NULL);
            buf_json_str(out, t ? t : "", t ? tl : 0);
            buf_str(out, ",\"special\":true,\"start\":null,\"stop\":null}");
        } else {
            buf_json_str(out, text + spans[k].start, (size_t)(spans[k].stop - spans[k].start));
            buf_printf(out, ",\"special\":false,\"start\":%d,\"stop\":%d}", (int)spans[k].start,
                       (int)spans[k].stop);
        }
        first = 0;
    }
    buf_add(out, "]", 1);
    return ENG_OK;
}

void tei_fail_tokenize(srv_req *r, int i, eng_status st)
{
    switch (st) {
    case ENG_ERR_TOO_LONG:
        srv_fail(r, 422, "validation",
                 "Input validation error: input %d is longer than the model's %d tokens", i,
                 r->m->info.max_positions);
        break;
    case ENG_ERR_TIMEOUT:      /* a gateway's: a deadline, no worker, a full table, */
    case ENG_ERR_NO_DEVICE:    /* a dead letter */
    case ENG_ERR_INTERNAL:
    case ENG_ERR_OVERLOADED:
    case ENG_ERR_SHUTDOWN:
        srv_fail_status(r, i, st);
        break;
    default:
        srv_fail(r, 422, "tokenizer", "Input %d: %s", i, eng_status_str(st));
    }
}

int tei_tokenize(srv_req *r, buf *out)
{
    srv_model *m = r->m;
    if (!m->model) {
        srv_fail(r, 422, "validation", "the null model has no vocabulary");
        return 1;
    }
    buf_add(out, "[", 1);
    for (int i = 0; i < r->n; i++) {
        if (i)
            buf_add(out, ",", 1);
        eng_status st = tei_text_tokens(m->model, m->info.max_positions, r->items[i].data,
                                        r->items[i].len, r->truncate, r->skip_special, out);
        if (st != ENG_OK) {
            tei_fail_tokenize(r, i, st);
            return 1;
        }
    }
    buf_add(out, "]", 1);
    return 1;
}

void tei_info(srv *s, buf *out)
{
    srv_model *m = &s->models[0];
    eng_sched_params dp = eng_sched_default_params();   /* what 0 options mean */
    buf_str(out, "{\"model_id\":");
    buf_json_str(out, m->name, strlen(m->name));
    buf_str(out, ",\"model_sha\":null,\"model_dtype\":");
    buf_json_str(out, m->info.weights, strlen(m->info.weights));
    if (m->info.n_labels > 0) {
        buf_str(out, ",\"model_type\":{\"classifier\":{\"id2label\":{");
        for (int i = 0; i < m->info.n_labels; i++) {
            char tmp[32], key[16];
            const char *l = srv_label(m, i, tmp, sizeof tmp);
            snprintf(key, sizeof key, "%d", i);
            buf_str(out, i ? "," : "");
            buf_json_str(out, key, strlen(key));
            buf_add(out, ":", 1);
            buf_json_str(out, l, strlen(l));
        }
        buf_str(out, "},\"label2id\":{");
        for (int i = 0; i < m->info.n_labels; i++) {
            char tmp[32];
            const char *l = srv_label(m, i, tmp, sizeof tmp);
            buf_str(out, i ? "," : "");
            buf_json_str(out, l, strlen(l));
            buf_printf(out, ":%d", i);
        }
        buf_str(out, "}}}");
    } else {
        buf_str(out, ",\"model_type\":{\"embedding\":{\"pooling\":\"mean\"}}");
    }
    buf_printf(out,
               ",\"max_concurrent_requests\":%d,\"max_input_length\":%d,\"max_batch_tokens\":%d,"
               "\"max_batch_requests\":%d,\"max_client_batch_size\":%d,\"tokenization_workers\":%d,"
               "\"version\":\"%s\",\"models\":[",
               s->o.queue_capacity ? s->o.queue_capacity : dp.queue_capacity, m->info.max_positions,
               s->o.max_batch_tokens ? s->o.max_batch_tokens : 16 * m->info.max_positions,
               s->o.max_batch ? s->o.max_batch : dp.max_batch_size, s->o.max_client_batch,
               s->o.http_threads, eng_version());
    for (int i = 0; i < s->n_models; i++) {
        srv_model *x = &s->models[i];
        buf_str(out, i ? ",{\"id\":" : "{\"id\":");
        buf_json_str(out, x->name, strlen(x->name));
        buf_printf(out, ",\"arch\":\"%s\",\"input\":\"%s\",\"dtype\":\"%s\",\"max_input_length\":%d,"
                        "\"labels\":%d,\"hidden\":%d}",
                   x->info.arch, x->info.input == ENG_INPUT_IMAGE ? "image" : "text",
                   x->info.weights, x->info.max_positions, x->info.n_labels, x->info.hidden);
    }
    buf_str(out, "]}");
}

/* The command line's image JSON: {"label","score","top5":[{"index","label",
 * "score"}...],"logits":[...]}; a list of them for several images. */
void image_format(srv_req *r, buf *out)
{
    int nl = r->m->info.n_labels;
    if (!r->single)
        buf_add(out, "[", 1);
    for (int i = 0; i < r->n; i++) {
        const float *logits = r->items[i].vals, *probs = logits + nl;
        int top[5] = {0}, k = nl < 5 ? nl : 5;
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int c = 0; c < nl; c++) {
                int taken = 0;
                for (int q = 0; q < j; q++)
                    taken |= top[q] == c;
                if (!taken && (best < 0 || logits[c] > logits[best]))
                    best = c;
            }
            top[j] = best;
        }
        char tmp[32];
        const char *l = srv_label(r->m, top[0], tmp, sizeof tmp);
        buf_str(out, i ? ",{\"label\":" : "{\"label\":");
        buf_json_str(out, l, strlen(l));
        buf_str(out, ",\"score\":");
        buf_float(out, probs[top[0]]);
        buf_str(out, ",\"top5\":[");
        for (int j = 0; j < k; j++) {
            l = srv_label(r->m, top[j], tmp, sizeof tmp);
            buf_printf(out, "%s{\"index\":%d,\"label\":", j ? "," : "", top[j]);
            buf_json_str(out, l, strlen(l));
            buf_str(out, ",\"score\":");
            buf_float(out, probs[top[j]]);
            buf_add(out, "}", 1);
        }
        buf_str(out, "],\"logits\":");
        buf_floats(out, logits, nl);
        buf_add(out, "}", 1);
    }
    if (!r->single)
        buf_add(out, "]", 1);
}
