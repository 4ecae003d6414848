/* cache.c: the result cache behind eng_cache_* (include/engine.h says what it
 * promises). A client of the public header only: it knows nothing of models
 * or schedulers, just keys and float values.
 *
 * One mutex guards a chained hash table and a doubly linked LRU list; an entry
 * is one allocation holding the node, the key's model name and input bytes,
 * and the value's floats. Gets are a hash, a compare and a copy, short enough
 * that a single lock does not limit a server that answers in microseconds. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

typedef struct entry {
    struct entry *next_hash;         /* chain of its bucket */
    struct entry *prev, *next;       /* LRU list: head is the most recent */
    uint64_t hash;
    size_t bytes;                    /* the allocation, counted against max_bytes */
    eng_task task;
    uint32_t options;
    size_t model_len, input_len;
    int n_vals, label, n_tokens;
    /* then: float vals[n_vals], char model[model_len], char input[input_len] */
} entry;

struct eng_cache {
    pthread_mutex_t mu;
    eng_cache_params p;
    entry **buckets;
    size_t mask;
    entry *head, *tail;
    eng_cache_stats st;
};

static float *entry_vals(entry *e) { return (float *)(e + 1); }
static char *entry_model(entry *e) { return (char *)(entry_vals(e) + e->n_vals); }
static char *entry_input(entry *e) { return entry_model(e) + e->model_len; }

eng_cache_params eng_cache_default_params(void)
{
    return (eng_cache_params){.max_entries = 0, .max_bytes = (size_t)64 << 20};
}

/* FNV-1a over the whole key: model name, task, options, input bytes. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t key_hash(const eng_cache_key *k, size_t model_len)
{
    uint64_t h = 1469598103934665603ull;
    h = fnv(h, k->model, model_len);
    uint32_t tag[2] = {(uint32_t)k->task, k->options};
    h = fnv(h, tag, sizeof tag);
    return fnv(h, k->input, k->input_len);
}

static int key_valid(const eng_cache_key *k)
{
    return k && k->model && (k->input || k->input_len == 0);
}

eng_status eng_cache_create(const eng_cache_params *params, eng_cache **out)
{
    if (!out)
        return ENG_ERR_INVALID_ARG;
    *out = NULL;
    eng_cache_params p = params ? *params : eng_cache_default_params();
    eng_cache *c = calloc(1, sizeof *c);
    if (!c)
        return ENG_ERR_NOMEM;
    c->p = p;
    /* About one entry per bucket when full; at most 2^24 buckets (128 MiB of
     * pointers) however many entries are allowed. */
    size_t nb = 16;
    while (nb < p.max_entries && nb < ((size_t)1 << 24))
        nb *= 2;
    c->buckets = calloc(nb, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return ENG_ERR_NOMEM;
    }
    c->mask = nb - 1;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return ENG_OK;
}

void eng_cache_free(eng_cache *c)
{
    if (!c)
        return;
    for (entry *e = c->head, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void lru_unlink(eng_cache *c, entry *e)
{
    if (e->prev) e->prev->next = e->next; else c->head = e->next;
    if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(eng_cache *c, entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e; else c->tail = e;
    c->head = e;
}

/* The slot pointing at the entry that matches the key, or at the chain's end. */
static entry **find(eng_cache *c, const eng_cache_key *k, size_t model_len, uint64_t h)
{
    entry **pp = &c->buckets[h & c->mask];
    for (; *pp; pp = &(*pp)->next_hash) {
        entry *e = *pp;
        if (e->hash == h && e->task == k->task && e->options == k->options &&
            e->model_len == model_len && e->input_len == k->input_len &&
            !memcmp(entry_model(e), k->model, model_len) &&
            !memcmp(entry_input(e), k->input, k->input_len))
            return pp;
    }
    return pp;
}

static void remove_entry(eng_cache *c, entry *e)
{
    entry **pp = &c->buckets[e->hash & c->mask];
    while (*pp != e)
        pp = &(*pp)->next_hash;
    *pp = e->next_hash;
    lru_unlink(c, e);
    c->st.entries--;
    c->st.bytes -= e->bytes;
    free(e);
}

int eng_cache_get(eng_cache *c, const eng_cache_key *k, float *vals, int cap,
                  eng_cache_value *value)
{
    if (!c || !key_valid(k) || !value || c->p.max_entries == 0)
        return 0;
    size_t model_len = strlen(k->model);
    uint64_t h = key_hash(k, model_len);
    pthread_mutex_lock(&c->mu);
    entry *e = *find(c, k, model_len, h);
    int hit = e && e->n_vals <= cap && (vals || e->n_vals == 0);
    if (hit) {
        memcpy(vals, entry_vals(e), (size_t)e->n_vals * sizeof(float));
        value->vals = vals;
        value->n_vals = e->n_vals;
        value->label = e->label;
        value->n_tokens = e->n_tokens;
        lru_unlink(c, e);
        lru_push_front(c, e);
        c->st.hits++;
    } else {
        c->st.misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

eng_status eng_cache_put(eng_cache *c, const eng_cache_key *k, const eng_cache_value *v)
{
    if (!c || c->p.max_entries == 0)
        return ENG_OK;
    if (!key_valid(k) || !v || v->n_vals < 0 || (v->n_vals && !v->vals))
        return ENG_ERR_INVALID_ARG;
    size_t model_len = strlen(k->model);
    size_t bytes = sizeof(entry) + (size_t)v->n_vals * sizeof(float) + model_len + k->input_len;
    if (bytes > c->p.max_bytes)
        return ENG_ERR_TOO_LONG;
    entry *e = malloc(bytes);
    if (!e)
        return ENG_ERR_NOMEM;
    *e = (entry){.hash = key_hash(k, model_len), .bytes = bytes, .task = k->task,
                 .options = k->options, .model_len = model_len, .input_len = k->input_len,
                 .n_vals = v->n_vals, .label = v->label, .n_tokens = v->n_tokens};
    memcpy(entry_vals(e), v->vals, (size_t)v->n_vals * sizeof(float));
    memcpy(entry_model(e), k->model, model_len);
    memcpy(entry_input(e), k->input, k->input_len);

    pthread_mutex_lock(&c->mu);
    entry *old = *find(c, k, model_len, e->hash);
    if (old)
        remove_entry(c, old);
    while (c->tail && (c->st.entries + 1 > c->p.max_entries || c->st.bytes + bytes > c->p.max_bytes)) {
        remove_entry(c, c->tail);
        c->st.evictions++;
    }
    entry **slot = &c->buckets[e->hash & c->mask];
    e->next_hash = *slot;
    *slot = e;
    lru_push_front(c, e);
    c->st.entries++;
    c->st.bytes += bytes;
    c->st.insertions++;
    pthread_mutex_unlock(&c->mu);
    return ENG_OK;
}

void eng_cache_get_stats(eng_cache *c, eng_cache_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}
