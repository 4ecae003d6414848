/* model.c: loading a model file: the file is opened and checked (format.c),
 * its metadata names the kind (kind.h) that builds the model from it; and the
 * model's read-only accessors, answered by that kind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "model.h"

eng_model_params eng_model_default_params(void)
{
    eng_model_params p = {.n_threads = 0, .gemm = ENG_GEMM_AUTO};
    return p;
}

/* The kind the metadata names. */
static eng_status find_kind(const cJSON *meta, const eng__kind **out, char *err, size_t errlen)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(meta, "kind");
    if (!cJSON_IsString(k))
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "metadata has no \"kind\"");
    if (!(*out = eng__kind_find(k->valuestring))) {
        char names[128];
        eng__kind_names(names, sizeof names);
        return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen,
                         "unsupported model kind \"%s\" (this build runs %s)", k->valuestring,
                         names);
    }
    return ENG_OK;
}

eng_status eng_model_load(const char *path, const eng_model_params *params, eng_model **out)
{
    char err[400] = "";
    eng_status s;
    if (!out)
        return eng__fail(ENG_ERR_INVALID_ARG, "eng_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return eng__fail(ENG_ERR_INVALID_ARG, "eng_model_load: path is NULL");
    eng_model_params p = params ? *params : eng_model_default_params();

    eng_model *m = calloc(1, sizeof *m);
    if (!m)
        return eng__fail(ENG_ERR_NOMEM, "out of memory loading %s", path);
    if ((s = eng__file_open(&m->file, path, err, sizeof err))) {
        free(m);
        return eng__fail(s, "%s: %s", path, err);
    }
    cJSON *meta = cJSON_ParseWithLength(m->file.meta, m->file.meta_size);
    if (!cJSON_IsObject(meta))
        s = eng__errf(ENG_ERR_FORMAT, err, sizeof err, "metadata is not a JSON object");
    else if (!(s = find_kind(meta, &m->kind, err, sizeof err)) &&
             !(s = m->kind->load(&m->impl, &m->file, meta, &p, err, sizeof err)))
        m->kind->describe(m->impl, &m->info, &m->gemm_name);
    if (!s && !m->info.embed_size)
        m->info.embed_size = m->info.hidden;
    cJSON_Delete(meta);
    if (s) {
        if (s == ENG_ERR_NOMEM && !*err)
            snprintf(err, sizeof err, "out of memory");
        eng_model_free(m);
        return eng__fail(s, "%s: %s", path, err);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    m->n_threads = p.n_threads > 0 ? p.n_threads : (cores > 0 ? (int)cores : 1);
    *out = m;
    return ENG_OK;
}

void eng_model_free(eng_model *m)
{
    if (!m)
        return;
    if (m->kind)
        m->kind->free_model(m->impl);
    eng__file_close(&m->file);
    free(m);
}

void eng_model_get_info(const eng_model *m, eng_model_info *info)
{
    if (m)
        *info = m->info;
    else
        memset(info, 0, sizeof *info);
}

const char *eng_model_gemm_name(const eng_model *m)
{
    return m ? m->gemm_name : "none";
}

const char *eng_model_label(const eng_model *m, int i)
{
    return m ? m->kind->label(m->impl, i) : NULL;
}

const char *eng_model_token(const eng_model *m, int32_t id, size_t *len, int *special)
{
    size_t l = 0;
    int sp = 0;
    const char *t = m && m->kind->token ? m->kind->token(m->impl, id, &l, &sp) : NULL;
    if (len)
        *len = t ? l : 0;
    if (special)
        *special = t ? sp : 0;
    return t;
}

eng_status eng_tokenize(const eng_model *m, const char *text, size_t len, int32_t *ids, int cap,
                        int *n_ids, int *truncated)
{
    return eng_tokenize_spans(m, text, len, ids, NULL, cap, n_ids, truncated);
}

eng_status eng_tokenize_spans(const eng_model *m, const char *text, size_t len, int32_t *ids,
                              eng_token_span *spans, int cap, int *n_ids, int *truncated)
{
    int trunc = 0;
    if (n_ids)
        *n_ids = 0;
    if (truncated)
        *truncated = 0;
    if (!m || !text || !ids || !n_ids || cap < 2)
        return eng__fail(ENG_ERR_INVALID_ARG, "eng_tokenize: NULL argument or cap < 2");
    if (!m->kind->tokenize)
        return eng__fail(ENG_ERR_UNSUPPORTED, "%s (a %s model) has no tokenizer", m->info.arch,
                         m->kind->name);
    eng_status s = m->kind->tokenize(m->impl, text, len, ids, spans, cap, n_ids, &trunc);
    if (s)
        return eng__fail(s, "%s",
                         s == ENG_ERR_UTF8          ? "text is not valid UTF-8"
                         : s == ENG_ERR_UNSUPPORTED ? "this model has no tokenizer; pass token ids"
                                                    : eng_status_str(s));
    if (truncated)
        *truncated = trunc;
    return ENG_OK;
}
