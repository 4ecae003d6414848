/* zeroshot.c: CLIP zero-shot image classification (engine.h,
 * eng_zero_shot_*) and its class-embedding cache.
 *
 * The class embeddings of a label set (one prompt per label: the template
 * with "{}" replaced by the label, or the prompts' token ids when the caller
 * gives them) are computed once on the calling context, L2-normalised, and
 * kept in the model (eng__vit_model), so every context of the model (the
 * server's workers, the Redis worker's) shares them. An entry is keyed by the
 * exact bytes of the template, the labels and the ids: a different template
 * or label set is a different entry. At most ZS_MAX_ENTRIES, least recently
 * used first out. The lock is held only to look up and to insert: a miss
 * computes outside it, and when two threads miss on the same key at once the
 * second insert finds the first and drops its own copy (the same numbers). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "vit.h"

extern const eng__kind eng__kind_vit;

enum { ZS_MAX_ENTRIES = 64 };

#define DEFAULT_TEMPLATE "a photo of a {}"

struct eng__zs_entry {
    eng__zs_entry *next;
    char *key;
    size_t key_len;
    int n_labels, dim;
    float *emb; /* [n_labels][dim], unit rows */
};

static void entry_free(eng__zs_entry *e)
{
    if (e) {
        free(e->key);
        free(e->emb);
        free(e);
    }
}

void eng__zs_free(eng__vit_model *m)
{
    while (m->zs_head) {
        eng__zs_entry *e = m->zs_head;
        m->zs_head = e->next;
        entry_free(e);
    }
}

/* The key: the precision the embeddings were computed at ('b' bf16, 'f'
 * fp32: contexts of both share the model), the template, NUL, each label and
 * NUL, then (ids given) each sequence's length and ids. key_len is its
 * length, write_key writes it. */
static size_t key_len(const eng_label_set *ls, const char *templ)
{
    size_t n = 1 + strlen(templ) + 1;
    for (int i = 0; i < ls->n_labels; i++) {
        n += strlen(ls->labels[i]) + 1;
        if (ls->ids)
            n += sizeof(int) + (size_t)ls->ids[i].n_ids * sizeof(int32_t);
    }
    return n;
}

static void write_key(const eng_label_set *ls, const char *templ, int bf16, char *p)
{
    *p++ = bf16 ? 'b' : 'f';
    p = memcpy(p, templ, strlen(templ) + 1), p += strlen(templ) + 1;
    for (int i = 0; i < ls->n_labels; i++) {
        size_t l = strlen(ls->labels[i]) + 1;
        memcpy(p, ls->labels[i], l);
        p += l;
        if (ls->ids) {
            memcpy(p, &ls->ids[i].n_ids, sizeof(int));
            p += sizeof(int);
            memcpy(p, ls->ids[i].ids, (size_t)ls->ids[i].n_ids * sizeof(int32_t));
            p += (size_t)ls->ids[i].n_ids * sizeof(int32_t);
        }
    }
}

/* The entry of key, moved to the front, or NULL. Under m->mu. */
static eng__zs_entry *lookup(eng__vit_model *m, const char *key, size_t len)
{
    for (eng__zs_entry **pp = &m->zs_head; *pp; pp = &(*pp)->next) {
        eng__zs_entry *e = *pp;
        if (e->key_len == len && !memcmp(e->key, key, len)) {
            *pp = e->next;
            e->next = m->zs_head;
            m->zs_head = e;
            return e;
        }
    }
    return NULL;
}

static void normalize(float *v, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    const float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    for (int i = 0; i < n; i++)
        v[i] *= inv;
}

/* The prompt of label: templ with its first "{}" replaced (templ as is
 * without one). malloc'd, or NULL. */
static char *prompt(const char *templ, const char *label)
{
    const char *at = strstr(templ, "{}");
    size_t tl = strlen(templ), ll = strlen(label);
    char *s = malloc(tl + ll + 1);
    if (!s)
        return NULL;
    if (!at) {
        memcpy(s, templ, tl + 1);
        return s;
    }
    size_t pre = (size_t)(at - templ);
    memcpy(s, templ, pre);
    memcpy(s + pre, label, ll);
    memcpy(s + pre + ll, at + 2, tl - pre - 1);
    return s;
}

/* A new entry for key with the label set's embeddings computed on c. */
static eng_status compute(eng_ctx *c, const eng_label_set *ls, const char *templ, char *key,
                          size_t key_len, eng__zs_entry **out)
{
    const eng__vit_model *m = c->model->impl;
    const int n = ls->n_labels, D = m->embed_size;
    eng__zs_entry *e = calloc(1, sizeof *e);
    char **texts = ls->ids ? NULL : calloc((size_t)n, sizeof *texts);
    eng_status s = e && (ls->ids || texts) ? ENG_OK : ENG_ERR_NOMEM;
    if (e) {
        e->key = key;
        e->key_len = key_len;
        e->n_labels = n;
        e->dim = D;
    }
    if (!s && !(e->emb = malloc((size_t)n * D * sizeof *e->emb)))
        s = ENG_ERR_NOMEM;
    for (int i = 0; !s && texts && i < n; i++)
        if (!(texts[i] = prompt(templ, ls->labels[i])))
            s = ENG_ERR_NOMEM;
    if (!s)
        s = ls->ids ? eng_embed_ids(c, ls->ids, n, e->emb, NULL)
                    : eng_embed(c, (const char *const *)texts, n, e->emb, NULL);
    for (int i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    if (s == ENG_ERR_NOMEM)
        eng__errf(s, c->error, sizeof c->error, "out of memory embedding %d labels", n);
    else if (s) { /* the context's message says which label and why */
        char why[ENG__ERROR_LEN];
        snprintf(why, sizeof why, "%s", c->error);
        eng__errf(s, c->error, sizeof c->error, "the labels' text embeddings failed: %.400s", why);
    }
    for (int i = 0; !s && i < n; i++)
        normalize(e->emb + (size_t)i * D, D);
    if (s) {
        if (e)
            entry_free(e);
        else
            free(key);
        return s;
    }
    *out = e;
    return ENG_OK;
}

/* The label set's class embeddings (n_labels x dim floats) copied to buf:
 * from the cache, or computed and inserted; key (key_len bytes, in the
 * context's scratch) names the set. A copy, because another thread may
 * evict the entry as soon as the lock is released. */
static eng_status class_embeddings(eng_ctx *c, const eng_label_set *ls, const char *templ,
                                   const char *key, size_t key_len, float *buf)
{
    eng__vit_model *m = (eng__vit_model *)c->model->impl;
    const size_t bytes = (size_t)ls->n_labels * m->embed_size * sizeof(float);
    pthread_mutex_lock(&m->mu);
    eng__zs_entry *e = lookup(m, key, key_len);
    if (e) {
        memcpy(buf, e->emb, bytes);
        m->zs_hits++;
    } else {
        m->zs_misses++;
    }
    pthread_mutex_unlock(&m->mu);
    if (e)
        return ENG_OK;
    char *own = malloc(key_len); /* the new entry's */
    if (!own)
        return eng__errf(ENG_ERR_NOMEM, c->error, sizeof c->error, "out of memory");
    memcpy(own, key, key_len);
    eng_status s = compute(c, ls, templ, own, key_len, &e);
    if (s)
        return s;
    memcpy(buf, e->emb, bytes);
    pthread_mutex_lock(&m->mu);
    if (lookup(m, e->key, e->key_len)) {
        entry_free(e); /* another thread inserted the same key meanwhile */
    } else {
        e->next = m->zs_head;
        m->zs_head = e;
        if (++m->zs_entries > ZS_MAX_ENTRIES) {
            eng__zs_entry **pp = &m->zs_head;
            while ((*pp)->next)
                pp = &(*pp)->next;
            entry_free(*pp);
            *pp = NULL;
            m->zs_entries--;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return ENG_OK;
}

/* The CLIP model of c, with ls checked, or NULL with c->error set (*s says
 * why). */
static const eng__vit_model *check(eng_ctx *c, const eng_label_set *ls, eng_status *s)
{
    const eng__vit_model *m = c->model->kind == &eng__kind_vit ? c->model->impl : NULL;
    *s = ENG_OK;
    if (!m || !m->clip)
        *s = eng__errf(ENG_ERR_UNSUPPORTED, c->error, sizeof c->error,
                       "zero-shot classification needs a CLIP model");
    else if (!ls || ls->n_labels < 1 || !ls->labels)
        *s = eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error, "no labels");
    for (int i = 0; !*s && i < ls->n_labels; i++)
        if (!ls->labels[i])
            *s = eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error, "label %d is NULL", i);
        else if (ls->ids && (ls->ids[i].n_ids < 0 || (ls->ids[i].n_ids && !ls->ids[i].ids)))
            /* before the key copies them (the text tower checks the rest) */
            *s = eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error, "label %d: %s", i,
                           ls->ids[i].n_ids < 0 ? "a negative id count" : "its ids are NULL");
    return *s ? NULL : m;
}

/* probs[L] = softmax(logit_scale x cosine(img, each unit row of cls)); img
 * is normalised in place. */
static void score(const eng_ctx *c, const eng__vit_model *m, float *img, const float *cls, int L,
                  float *p, int *top)
{
    const int D = m->embed_size;
    normalize(img, D);
    for (int l = 0; l < L; l++) {
        const float *e = cls + (size_t)l * D;
        float dot = 0.0f;
        for (int k = 0; k < D; k++)
            dot += img[k] * e[k];
        p[l] = m->logit_scale * dot;
    }
    c->kern->softmax(p, 1, L, L, 1.0f);
    if (top)
        *top = c->kern->argmax(p, L);
}

/* At least bytes of c's zero-shot scratch: grown to the largest call yet
 * and kept (freed with the context), so a warm call allocates nothing.
 * NULL when out of memory. */
static void *scratch(eng_ctx *c, size_t bytes)
{
    eng__zs_scratch *z = eng__vit_ctx_zs(c);
    if (bytes > z->cap) {
        free(z->p); /* nothing in it is kept between calls */
        z->cap = (z->p = malloc(bytes)) ? bytes : 0;
    }
    return z->p;
}

/* Image features (of n images, or n given rows of features when feats is
 * not NULL), then the scores. */
static eng_status zero_shot(eng_ctx *c, const eng_label_set *ls, const char *const *paths,
                            const void *const *data, const size_t *size, const float *feats, int n,
                            float *probs, int *top, eng_status *item_status)
{
    if (!c)
        return ENG_ERR_INVALID_ARG;
    eng_status s;
    const eng__vit_model *m = check(c, ls, &s);
    if (!m)
        return s;
    if (n < 0 || (n > 0 && (!probs || !(paths || data || feats) || (data && !size))))
        return eng__errf(ENG_ERR_INVALID_ARG, c->error, sizeof c->error,
                         "eng_zero_shot: NULL argument");
    const int L = ls->n_labels, D = m->embed_size;
    const char *templ = ls->templ ? ls->templ : DEFAULT_TEMPLATE;
    /* The scratch: image features, then the class embeddings (n x D + L x D
     * floats), the items' statuses, the label set's key. */
    const size_t fbytes = ((size_t)n + L) * D * sizeof(float), sbytes = n * sizeof(eng_status),
                 klen = key_len(ls, templ);
    char *at = scratch(c, fbytes + sbytes + klen);
    if (!at)
        return eng__errf(ENG_ERR_NOMEM, c->error, sizeof c->error, "out of memory");
    float *buf = (float *)(void *)at, *cls = buf + (size_t)n * D;
    eng_status *st = (eng_status *)(void *)(at + fbytes);
    memset(st, 0, sbytes);
    write_key(ls, templ, eng__vit_ctx_bf16(c), at + fbytes + sbytes);
    s = class_embeddings(c, ls, templ, at + fbytes + sbytes, klen, cls);
    if (s)
        return s;
    if (feats)
        memcpy(buf, feats, (size_t)n * D * sizeof *buf);
    else if (n > 0)
        s = paths ? eng_embed_images(c, paths, n, buf, st)
                  : eng_embed_image_data(c, data, size, n, buf, st);
    for (int i = 0; i < n; i++) {
        float *p = probs + (size_t)i * L;
        if (item_status)
            item_status[i] = st[i];
        if (st[i]) {
            memset(p, 0, (size_t)L * sizeof *p);
            if (top)
                top[i] = -1;
            continue;
        }
        score(c, m, buf + (size_t)i * D, cls, L, p, top ? &top[i] : NULL);
    }
    return s;
}

eng_status eng_zero_shot_images(eng_ctx *c, const eng_label_set *ls, const char *const *paths,
                                int n, float *probs, int *top, eng_status *item_status)
{
    return zero_shot(c, ls, paths, NULL, NULL, NULL, n, probs, top, item_status);
}

eng_status eng_zero_shot_image_data(eng_ctx *c, const eng_label_set *ls, const void *const *data,
                                    const size_t *size, int n, float *probs, int *top,
                                    eng_status *item_status)
{
    return zero_shot(c, ls, NULL, data, size, NULL, n, probs, top, item_status);
}

eng_status eng_zero_shot_scores(eng_ctx *c, const eng_label_set *ls, const float *features, int n,
                                float *probs, int *top)
{
    return zero_shot(c, ls, NULL, NULL, NULL, features, n, probs, top, NULL);
}

void eng_zero_shot_get_stats(const eng_model *model, eng_zero_shot_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!model || model->kind != &eng__kind_vit)
        return;
    eng__vit_model *m = model->impl;
    pthread_mutex_lock(&m->mu);
    out->hits = m->zs_hits;
    out->misses = m->zs_misses;
    out->entries = (uint64_t)m->zs_entries;
    pthread_mutex_unlock(&m->mu);
}
