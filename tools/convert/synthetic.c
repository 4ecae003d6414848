/* synthetic.c: `convert --synthetic NAME`: a model of a standard shape with
 * weights drawn like Hugging Face's initialisation (normal, std 0.02; biases 0;
 * LayerNorm g = 1, b = 0) from a seeded generator, so the same seed gives the
 * same file on every machine, and a generated WordPiece vocabulary when no
 * vocab.txt is given. Tensors are written directly in the engine layout,
 * the encoder's linear weights as fp32 or int8 (cv_add_linear_weight). */
#include "error.h"
#include "synthetic.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name, *arch;
    int layers, hidden, heads, ffn, positions, vocab;
} shape;

static const shape shapes[] = {
    {"bert-base", "bert", 12, 768, 12, 3072, 512, 30522},
    {"minilm-l6", "bert", 6, 384, 12, 1536, 512, 30522},
    {"distilbert-base", "distilbert", 6, 768, 12, 3072, 512, 30522},
    {"tiny", "bert", 2, 32, 2, 64, 64, 1024},
    {"tiny-distilbert", "distilbert", 2, 32, 2, 64, 64, 1024},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

const char *const cv_synth_names[] = {"bert-base", "minilm-l6", "distilbert-base", "tiny",
                                      "tiny-distilbert", NULL};

/* ---- Vocabulary --------------------------------------------------------- */

static const char consonants[] = "bcdfghjklmnprstvwz";   /* 18 */
static const char vowels[] = "aeiou";                    /* 5 */
#define N_SYLL 90

/* Pseudo-word number k: consonant-vowel syllables, shortest first, so
 * distinct k give distinct words (1 syllable for k < 90, 2 below 90 + 90^2...). */
static void pseudo_word(char *buf, long k)
{
    int n = 1;
    long span = N_SYLL;
    while (k >= span) {
        k -= span;
        span *= N_SYLL;
        n++;
    }
    for (int i = 0; i < n; i++) {
        long s = k % N_SYLL;
        k /= N_SYLL;
        *buf++ = consonants[s / 5];
        *buf++ = vowels[s % 5];
    }
    *buf = '\0';
}

/* [PAD] [UNK] [CLS] [SEP] [MASK], the characters a-z 0-9 and ASCII
 * punctuation, their ## forms, then pseudo-words (two syllables and up) and,
 * one in four, ## suffixes, up to size tokens. */
static eng_status generate_vocab(cv_config *c, int size)
{
    static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    char chars[128];
    int nc = 0;
    for (int ch = 'a'; ch <= 'z'; ch++)
        chars[nc++] = (char)ch;
    for (int ch = '0'; ch <= '9'; ch++)
        chars[nc++] = (char)ch;
    for (int ch = 33; ch < 127; ch++)
        if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && !(ch >= '0' && ch <= '9'))
            chars[nc++] = (char)ch;
    c->vocab = calloc((size_t)size, sizeof *c->vocab);
    if (!c->vocab)
        return ENG_ERR_NOMEM;
    long words = 0, suffixes = 0;
    for (int i = 0; i < size; i++) {
        char buf[64];
        if (i < 5)
            snprintf(buf, sizeof buf, "%s", specials[i]);
        else if (i < 5 + nc)
            snprintf(buf, sizeof buf, "%c", chars[i - 5]);
        else if (i < 5 + 2 * nc)
            snprintf(buf, sizeof buf, "##%c", chars[i - 5 - nc]);
        else if (i % 4 == 3) {
            buf[0] = buf[1] = '#';
            pseudo_word(buf + 2, suffixes++);
        } else
            pseudo_word(buf, N_SYLL + words++);
        if (!(c->vocab[i] = strdup(buf)))
            return ENG_ERR_NOMEM;
        c->n_vocab = i + 1;
    }
    return ENG_OK;
}

/* ---- Weights -------------------------------------------------------------- */

typedef struct {
    uint64_t state;
    eng__writer *w;
    const char *weights;   /* the encoder's linear weights: "fp32", "bf16" or "int8" */
    int n_added;
    eng_status st;         /* the first failure, explained in err */
    char *err;
    size_t errlen;
} gen;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): 53 random bits, never 0 so log() is finite. */
static double uniform(gen *g)
{
    return ((double)(splitmix64(&g->state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

enum fill { NORMAL, ZEROS, ONES };

/* n floats filled as asked (NORMAL: std 0.02, Box-Muller), malloc'd; NULL
 * with g->st set when out of memory or after an earlier failure. The draws
 * are the same whatever the tensor becomes, so an int8 file quantizes the
 * weights of the fp32 file of the same seed. */
static float *draw(gen *g, size_t n, enum fill f)
{
    float *x = g->st == ENG_OK ? malloc(n * sizeof *x) : NULL;
    if (!x) {
        if (g->st == ENG_OK)
            g->st = eng__errf(ENG_ERR_NOMEM, g->err, g->errlen, "out of memory generating weights");
        return NULL;
    }
    for (size_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(uniform(g))), th = 6.283185307179586 * uniform(g);
        x[i] = f == NORMAL ? (float)(0.02 * r * cos(th)) : f == ONES ? 1.0f : 0.0f;
        if (i + 1 < n)
            x[i + 1] = f == NORMAL ? (float)(0.02 * r * sin(th)) : x[i];
    }
    return x;
}

/* Adds F32 tensor name [d0] or [d0, d1] filled as asked. */
static void tensor(gen *g, const char *name, uint64_t d0, uint64_t d1, enum fill f)
{
    float *x = draw(g, (size_t)(d0 * (d1 ? d1 : 1)), f);
    if (!x)
        return;
    uint64_t shp[2] = {d0, d1};
    g->st = eng__writer_add(g->w, name, ENG_DT_F32, d1 ? 2 : 1, shp, x);
    if (g->st != ENG_OK)
        eng__errf(g->st, g->err, g->errlen, "cannot add tensor %s (out of memory?)", name);
    g->n_added++;
    free(x);
}

/* A linear layer name.{w,b}, the weight stored as `weights`. */
static void linear(gen *g, const char *name, uint64_t in, uint64_t out, const char *weights)
{
    float *x = draw(g, (size_t)(in * out), NORMAL);
    if (x)
        g->st = cv_add_linear_weight(g->w, name, x, (int)in, (int)out, weights, &g->n_added,
                                     g->err, g->errlen);
    free(x);
    char n[64];
    snprintf(n, sizeof n, "%s.b", name);
    tensor(g, n, out, 0, ZEROS);
}

static void layer_norm(gen *g, const char *name, uint64_t h)
{
    char n[64];
    snprintf(n, sizeof n, "%s.g", name);
    tensor(g, n, h, 0, ONES);
    snprintf(n, sizeof n, "%s.b", name);
    tensor(g, n, h, 0, ZEROS);
}

static void weights(gen *g, const cv_config *c)
{
    uint64_t h = (uint64_t)c->hidden, f = (uint64_t)c->intermediate;
    tensor(g, "emb.word", (uint64_t)c->vocab_size, h, NORMAL);
    tensor(g, "emb.pos", (uint64_t)c->max_positions, h, NORMAL);
    layer_norm(g, "emb.ln", h);
    for (int i = 0; i < c->layers; i++) {
        char n[64];
        const char *lin[4] = {"qkv", "attn_out", "ffn_in", "ffn_out"};
        const uint64_t in[4] = {h, h, h, f}, out[4] = {3 * h, h, f, h};
        for (int k = 0; k < 4; k++) {
            snprintf(n, sizeof n, "L%d.%s", i, lin[k]);
            linear(g, n, in[k], out[k], g->weights);
            if (k == 1 || k == 3) {
                snprintf(n, sizeof n, "L%d.ln%d", i, k == 1 ? 1 : 2);
                layer_norm(g, n, h);
            }
        }
    }
    if (c->n_labels > 0) {   /* the head stays fp32, as in bert_layout.c */
        linear(g, "head.dense", h, h, "fp32");
        linear(g, "head.out", h, (uint64_t)c->n_labels, "fp32");
    }
}

eng_status cv_synthetic_as(const char *name, const cv_synth_opts *o, const char *weight_dtype,
                           const char *out, cv_config *c, cv_report *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    cv_config_init(c);
    weight_dtype = weight_dtype ? weight_dtype : "fp32";
    eng_status s = cv_weights_check(weight_dtype, err, errlen);
    if (s != ENG_OK)
        return s;
    snprintf(c->weights, sizeof c->weights, "%s", weight_dtype);
    const shape *sh = NULL;
    for (size_t i = 0; i < N_SHAPES; i++)
        if (strcmp(name, shapes[i].name) == 0)
            sh = &shapes[i];
    if (!sh)
        return eng__errf(ENG_ERR_INVALID_ARG, err, errlen,
                    "unknown synthetic model '%s' (bert-base, minilm-l6, distilbert-base, tiny, "
                    "tiny-distilbert)", name);
    snprintf(c->arch, sizeof c->arch, "%s", sh->arch);
    snprintf(c->source, sizeof c->source, "synthetic:%s seed %llu", name,
             (unsigned long long)o->seed);
    c->layers = sh->layers;
    c->hidden = sh->hidden;
    c->heads = sh->heads;
    c->intermediate = sh->ffn;
    c->max_positions = sh->positions;
    c->strip_accents = 1;
    snprintf(c->head, sizeof c->head, "%s",
             o->no_head ? "none" : strcmp(sh->arch, "bert") == 0 ? "bert_pooler" : "distilbert");

    if (o->vocab_path) {
        s = cv_vocab_read_txt(o->vocab_path, c, err, errlen);
        if (s == ENG_OK)
            s = cv_check_specials(c, err, errlen);
    }
    else if (generate_vocab(c, sh->vocab) != ENG_OK)
        s = eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    c->vocab_size = c->n_vocab;
    if (s == ENG_OK && !o->no_head && cv_config_set_labels(c, 2, NULL) != ENG_OK)
        s = eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");

    gen g = {o->seed, eng__writer_new(), c->weights, 0, ENG_OK, err, errlen};
    if (s == ENG_OK && !g.w)
        s = eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    if (s == ENG_OK)
        s = cv_add_vocab(c, g.w, err, errlen);
    if (s == ENG_OK) {
        weights(&g, c);
        s = g.st;
    }
    if (s == ENG_OK) {
        r->n_tensors = g.n_added + 1;
        s = cv_save(c, g.w, out, r, err, errlen);
    }
    eng__writer_free(g.w);
    if (s != ENG_OK)
        cv_config_free(c);
    return s;
}

eng_status cv_synthetic(const char *name, const cv_synth_opts *o, const char *out, cv_config *c,
                        cv_report *r, char *err, size_t errlen)
{
    return cv_synthetic_as(name, o, NULL, out, c, r, err, errlen);
}
