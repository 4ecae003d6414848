/* text.c: the text kind (text.h): loading a text model (metadata parsing,
 * binding every tensor as a view into the memory-mapped file after checking
 * its shape, the tokenizer, label names), its accessors, and its context's
 * scratch, sized once. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "blas.h"
#include "error.h"
#include "model.h"
#include "model_limits.h"
#include "sgemm.h"
#include "text.h"
#include "text_gpu.h"

/* A positive integer metadata field, bounded to keep later size arithmetic
 * far from overflow whatever the file says. */
static int meta_int(const cJSON *meta, const char *key, int lo, int hi, int *out, char *err,
                    size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        snprintf(err, errlen, "metadata field \"%s\" missing or out of range [%d, %d]", key, lo,
                 hi);
        return 0;
    }
    *out = (int)v->valuedouble;
    return 1;
}

static const char *meta_str(const cJSON *obj, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static int meta_bool(const cJSON *obj, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* Looks a tensor up and checks dtype F32 and shape [d0] or [d0, d1]. */
static const float *bind_f32(const eng__file *f, const char *name, int d0, int d1, char *err,
                             size_t errlen)
{
    const eng__file_tensor *t = eng__file_find(f, name);
    int ndim = d1 ? 2 : 1;
    if (!t) {
        snprintf(err, errlen, "missing tensor %s", name);
        return NULL;
    }
    if (t->dtype != ENG_DT_F32 || t->ndim != (uint32_t)ndim || t->shape[0] != (uint64_t)d0 ||
        (d1 && t->shape[1] != (uint64_t)d1)) {
        if (d1)
            snprintf(err, errlen, "tensor %s should be F32 [%d,%d]", name, d0, d1);
        else
            snprintf(err, errlen, "tensor %s should be F32 [%d]", name, d0);
        return NULL;
    }
    return eng__file_data(f, t);
}

static eng_status parse_config(eng__text_model *m, const cJSON *meta, char *err, size_t errlen)
{
    /* One encoder for all: what differs between them (RoBERTa's position
     * offset, the heads' names) is settled at conversion (docs/FORMAT.md). */
    static const char *const archs[] = {"bert", "distilbert", "roberta", "xlm-roberta",
                                        "camembert"};
    const char *arch = meta_str(meta, "arch", "");
    size_t k = 0;
    while (k < sizeof archs / sizeof archs[0] && strcmp(arch, archs[k]) != 0)
        k++;
    if (k == sizeof archs / sizeof archs[0]) {
        snprintf(err, errlen,
                 "unsupported architecture \"%s\" (this build runs bert, distilbert, roberta, "
                 "xlm-roberta, camembert)",
                 arch);
        return ENG_ERR_UNSUPPORTED;
    }
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    const char *weights = meta_str(meta, "weights", "fp32");
    if (strcmp(weights, "fp32") != 0 && strcmp(weights, "int8") != 0 &&
        strcmp(weights, "bf16") != 0) {
        snprintf(err, errlen, "unsupported weight type \"%s\"", weights);
        return ENG_ERR_UNSUPPORTED;
    }
    snprintf(m->weights, sizeof m->weights, "%s", weights);
    if (!meta_int(meta, "hidden", 1, ENG__MAX_HIDDEN, &m->hidden, err, errlen) ||
        !meta_int(meta, "layers", 1, ENG__MAX_LAYERS, &m->layers, err, errlen) ||
        !meta_int(meta, "heads", 1, ENG__MAX_HEADS, &m->heads, err, errlen) ||
        !meta_int(meta, "intermediate", 1, ENG__MAX_INTERMEDIATE, &m->intermediate, err, errlen) ||
        !meta_int(meta, "max_positions", 2, ENG__MAX_POSITIONS, &m->max_positions, err, errlen) ||
        !meta_int(meta, "vocab_size", 1, ENG__MAX_VOCAB, &m->vocab_size, err, errlen))
        return ENG_ERR_FORMAT;
    if (m->hidden % m->heads != 0) {
        snprintf(err, errlen, "hidden size %d is not a multiple of the head count %d", m->hidden,
                 m->heads);
        return ENG_ERR_FORMAT;
    }
    const char *act = meta_str(meta, "act", "gelu");
    if (!strcmp(act, "gelu"))
        m->act = ENG_ACT_GELU;
    else if (!strcmp(act, "gelu_tanh"))
        m->act = ENG_ACT_GELU_TANH;
    else if (!strcmp(act, "relu"))
        m->act = ENG_ACT_RELU;
    else {
        snprintf(err, errlen, "unsupported activation \"%s\"", act);
        return ENG_ERR_UNSUPPORTED;
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(meta, "ln_eps");
    m->ln_eps = cJSON_IsNumber(eps) ? (float)eps->valuedouble : 1e-12f;
    if (!(m->ln_eps >= 0.0f && m->ln_eps < 1.0f)) {
        snprintf(err, errlen, "layer-norm epsilon out of range");
        return ENG_ERR_FORMAT;
    }
    const char *head = meta_str(meta, "head", "none");
    if (!strcmp(head, "none"))
        m->head = ENG_HEAD_NONE;
    else if (!strcmp(head, "bert_pooler"))
        m->head = ENG_HEAD_BERT_POOLER;
    else if (!strcmp(head, "distilbert"))
        m->head = ENG_HEAD_DISTILBERT;
    else {
        snprintf(err, errlen, "unsupported head \"%s\"", head);
        return ENG_ERR_UNSUPPORTED;
    }
    const char *pool = meta_str(meta, "pooling", "mean");
    if (!strcmp(pool, "mean"))
        m->pooling = ENG_POOL_MEAN;
    else if (!strcmp(pool, "cls"))
        m->pooling = ENG_POOL_CLS;
    else {
        snprintf(err, errlen, "unsupported pooling \"%s\"", pool);
        return ENG_ERR_UNSUPPORTED;
    }
    m->normalize = meta_bool(meta, "normalize", 0);
    return ENG_OK;
}

static eng_status parse_labels(eng__text_model *m, const cJSON *meta, char *err, size_t errlen)
{
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
    int n = cJSON_IsArray(labels) ? cJSON_GetArraySize(labels) : 0;
    if (m->head == ENG_HEAD_NONE)
        return ENG_OK;
    if (n < 1 || n > ENG__MAX_LABELS) {
        snprintf(err, errlen, "a classifier model needs a non-empty \"labels\" list");
        return ENG_ERR_FORMAT;
    }
    m->labels = calloc((size_t)n, sizeof *m->labels);
    if (!m->labels)
        return ENG_ERR_NOMEM;
    m->n_labels = n;
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, labels)
    {
        if (!cJSON_IsString(item)) {
            snprintf(err, errlen, "label %d is not a string", i);
            return ENG_ERR_FORMAT;
        }
        if (!(m->labels[i++] = strdup(item->valuestring)))
            return ENG_ERR_NOMEM;
    }
    return ENG_OK;
}

static eng_status bind_tensors(eng__text_model *m, char *err, size_t errlen)
{
    const eng__file *f = m->file;
    const int H = m->hidden, F = m->intermediate;
    eng_status s;
    if (!(m->word_emb = bind_f32(f, "emb.word", m->vocab_size, H, err, errlen)) ||
        !(m->pos_emb = bind_f32(f, "emb.pos", m->max_positions, H, err, errlen)) ||
        !(m->emb_ln_g = bind_f32(f, "emb.ln.g", H, 0, err, errlen)) ||
        !(m->emb_ln_b = bind_f32(f, "emb.ln.b", H, 0, err, errlen)))
        return ENG_ERR_FORMAT;
    m->layer = calloc((size_t)m->layers, sizeof *m->layer);
    if (!m->layer)
        return ENG_ERR_NOMEM;
    for (int i = 0; i < m->layers; i++) {
        eng__layer *L = &m->layer[i];
        char p[64];
#define NAME(suffix) (snprintf(p, sizeof p, "L%d.%s", i, suffix), p)
        if ((s = eng__linear_bind(&L->qkv, f, NAME("qkv"), H, 3 * H, err, errlen)) ||
            (s = eng__linear_bind(&L->attn_out, f, NAME("attn_out"), H, H, err, errlen)) ||
            (s = eng__linear_bind(&L->ffn_in, f, NAME("ffn_in"), H, F, err, errlen)) ||
            (s = eng__linear_bind(&L->ffn_out, f, NAME("ffn_out"), F, H, err, errlen)))
            return s;
        if (!(L->ln1_g = bind_f32(f, NAME("ln1.g"), H, 0, err, errlen)) ||
            !(L->ln1_b = bind_f32(f, NAME("ln1.b"), H, 0, err, errlen)) ||
            !(L->ln2_g = bind_f32(f, NAME("ln2.g"), H, 0, err, errlen)) ||
            !(L->ln2_b = bind_f32(f, NAME("ln2.b"), H, 0, err, errlen)))
            return ENG_ERR_FORMAT;
#undef NAME
    }
    if (m->head != ENG_HEAD_NONE) {
        if ((s = eng__linear_bind(&m->head_dense, f, "head.dense", H, H, err, errlen)) ||
            (s = eng__linear_bind(&m->head_out, f, "head.out", H, m->n_labels, err, errlen)))
            return s;
    }
    return ENG_OK;
}

/* The tokenizer: "tok.vocab" and the WordPiece settings of the metadata,
 * or, when the metadata's tokenizer type is "tokenizer.json", the embedded
 * "tok.json" run by the interpreter (docs/FORMAT.md). */
static eng_status init_tokenizer(eng__text_model *m, const cJSON *meta, char *err, size_t errlen)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(meta, "tokenizer");
    /* "none": a model converted without a tokenizer (a RoBERTa-family
     * folder without tokenizer.json) runs token ids; m->tok stays NULL and
     * text input is refused. */
    if (strcmp(meta_str(t, "type", ""), "none") == 0)
        return ENG_OK;
    int json = strcmp(meta_str(t, "type", "wordpiece"), "tokenizer.json") == 0;
    const char *vname = json ? "tok.json" : "tok.vocab";
    const eng__file_tensor *v = eng__file_find(m->file, vname);
    if (!v || v->dtype != ENG_DT_U8 || v->ndim != 1) {
        snprintf(err, errlen, "missing tensor %s (U8)", vname);
        return ENG_ERR_FORMAT;
    }
    if (json) {
        eng_status s = eng__tokenizer_init_json(&m->tok, eng__file_data(m->file, v), (size_t)v->nbytes, 0,
                                                err, errlen);
        if (s)
            return s;
        if (eng__tokenizer_vocab_size(m->tok) > m->vocab_size) {
            snprintf(err, errlen, "tokenizer.json has ids up to %d but the embedding table only %d rows",
                     eng__tokenizer_vocab_size(m->tok) - 1, m->vocab_size);
            return ENG_ERR_FORMAT;
        }
        return ENG_OK;
    }
    int lowercase = meta_bool(t, "lowercase", 1);
    eng__tok_config cfg = {
        .lowercase = lowercase,
        .strip_accents = meta_bool(t, "strip_accents", lowercase),
        .chinese_chars = meta_bool(t, "chinese_chars", 1),
        .max_chars_per_word = 100,
        .unk = meta_str(t, "unk", "[UNK]"),
        .cls = meta_str(t, "cls", "[CLS]"),
        .sep = meta_str(t, "sep", "[SEP]"),
        .pad = meta_str(t, "pad", "[PAD]"),
    };
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(t, "max_chars_per_word");
    if (cJSON_IsNumber(mc) && mc->valuedouble >= 1 && mc->valuedouble <= 1e6)
        cfg.max_chars_per_word = (int)mc->valuedouble;
    eng_status s = eng__tokenizer_init(&m->tok, eng__file_data(m->file, v), (size_t)v->nbytes,
                                       &cfg, err, errlen);
    if (s)
        return s;
    if (eng__tokenizer_vocab_size(m->tok) > m->vocab_size) {
        snprintf(err, errlen, "vocabulary has %d tokens but the embedding table only %d",
                 eng__tokenizer_vocab_size(m->tok), m->vocab_size);
        return ENG_ERR_FORMAT;
    }
    return ENG_OK;
}

/* The fp32 GEMM (see eng_gemm in engine.h): the built-in one, or OpenBLAS
 * with every fp32 layer unpacked for it. */
static eng_status choose_gemm(eng__text_model *m, eng_gemm gemm, char *err, size_t errlen)
{
    const char *env = getenv("ENG_GEMM");
    if (gemm == ENG_GEMM_AUTO && env && !strcmp(env, "openblas"))
        gemm = ENG_GEMM_OPENBLAS;
    if (gemm != ENG_GEMM_OPENBLAS) {
        snprintf(m->gemm_name, sizeof m->gemm_name, "builtin %s (%dx%d tiles)",
                 eng__isa_str(eng__sgemm_get()->isa), eng__sgemm_get()->mr,
                 16 * eng__sgemm_get()->np);
        return ENG_OK;
    }
    eng_status s = eng__blas_init(err, errlen);
    for (int i = 0; !s && i < m->layers; i++) {
        eng__layer *L = &m->layer[i];
        if ((s = eng__linear_use_blas(&L->qkv, err, errlen)) ||
            (s = eng__linear_use_blas(&L->attn_out, err, errlen)) ||
            (s = eng__linear_use_blas(&L->ffn_in, err, errlen)))
            break;
        s = eng__linear_use_blas(&L->ffn_out, err, errlen);
    }
    if (!s)
        snprintf(m->gemm_name, sizeof m->gemm_name, "%s", eng__blas_name());
    return s;
}


static void text_free(void *impl)
{
    eng__text_model *m = impl;
    if (!m)
        return;
    eng__tokenizer_free(m->tok);
    for (int i = 0; m->labels && i < m->n_labels; i++)
        free(m->labels[i]);
    free(m->labels);
    for (int i = 0; m->layer && i < m->layers; i++) {
        eng__linear_release(&m->layer[i].qkv);
        eng__linear_release(&m->layer[i].attn_out);
        eng__linear_release(&m->layer[i].ffn_in);
        eng__linear_release(&m->layer[i].ffn_out);
    }
    eng__linear_release(&m->head_dense);
    eng__linear_release(&m->head_out);
    free(m->layer);
    free(m);
}

static eng_status text_load(void **impl, const eng__file *f, const cJSON *meta,
                            const eng_model_params *p, char *err, size_t errlen)
{
    eng__text_model *m = calloc(1, sizeof *m);
    *impl = m;
    if (!m)
        return ENG_ERR_NOMEM;
    m->file = f;
    eng_status s;
    if ((s = parse_config(m, meta, err, errlen)) || (s = parse_labels(m, meta, err, errlen)) ||
        (s = bind_tensors(m, err, errlen)) || (s = init_tokenizer(m, meta, err, errlen)))
        return s;
    return choose_gemm(m, p->gemm, err, errlen);
}

static void text_describe(const void *impl, eng_model_info *info, const char **gemm_name)
{
    const eng__text_model *m = impl;
    info->arch = m->arch;
    info->input = ENG_INPUT_TEXT;
    info->weights = m->weights;
    info->n_labels = m->n_labels;
    info->hidden = m->hidden;
    info->layers = m->layers;
    info->heads = m->heads;
    info->intermediate = m->intermediate;
    info->max_positions = m->max_positions;
    info->vocab_size = m->vocab_size;
    info->embed_normalize = m->normalize;
    *gemm_name = m->gemm_name;
}

static const char *text_label(const void *impl, int i)
{
    const eng__text_model *m = impl;
    return i >= 0 && i < m->n_labels ? m->labels[i] : NULL;
}

static const char *text_token(const void *impl, int32_t id, size_t *len, int *special)
{
    const eng__text_model *m = impl;
    return m->tok ? eng__tokenizer_token(m->tok, id, len, special) : NULL;
}

static eng_status text_tokenize(const void *impl, const char *text, size_t len, int32_t *ids,
                                eng_token_span *spans, int cap, int *n_ids, int *truncated)
{
    const eng__text_model *m = impl;
    if (!m->tok)
        return ENG_ERR_UNSUPPORTED;   /* eng_tokenize_spans says why */
    int max_len = cap < m->max_positions ? cap : m->max_positions;
    return eng__tokenize_spans(m->tok, text, len, max_len, ids, spans, cap, n_ids, truncated);
}

static void *alloc_floats(size_t n)
{
    /* 64-byte aligned so AVX-512 rows start on a cache line. */
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

static void text_ctx_free(eng_ctx *ctx)
{
    eng__text_ctx *c = ctx->impl;
    if (!c)
        return;
    eng__cuda_ctx_free(c);
    free(c->h);
    free(c->tmp);
    free(c->attn);
    free(c->qkv);
    free(c->ffn);
    free(c->scores);
    free(c->pooled);
    free(c->pooled2);
    free(c->lin_scratch);
    free(c->tok_id);
    free(c->tok_pos);
    free(c->seq_off);
    free(c->seq_len);
    free(c->seq_index);
    free(c->chunk_seqs);
    free(c->text_ids);
    free(c->text_seqs);
    free(c->text_status);
    free(c);
    ctx->impl = NULL;
}

/* Makes the weights a context of precision bf16 or fp32 runs from, where the
 * file stores the other (eng__linear_prepare): once per model and precision,
 * at its first such context, from any thread; later contexts share them. */
static eng_status text_prepare(const eng__text_model *cm, int bf16, char *err, size_t errlen)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    /* The weights made here are the model's only members written after load:
     * under mu, and read by a context only after its ctx_create returned
     * from here; never changed once made. */
    eng__text_model *m = (eng__text_model *)cm;
    eng_status s = ENG_OK;
    pthread_mutex_lock(&mu);
    for (int i = 0; !s && i <= m->layers; i++) {
        eng__linear *ls[4];
        if (i < m->layers) {
            eng__layer *L = &m->layer[i];
            ls[0] = &L->qkv, ls[1] = &L->attn_out, ls[2] = &L->ffn_in, ls[3] = &L->ffn_out;
        } else { /* the head: unbound layers have no weights to convert */
            ls[0] = ls[1] = &m->head_dense;
            ls[2] = ls[3] = &m->head_out;
        }
        for (int j = 0; j < 4 && !s; j++)
            if (ls[j]->packed || ls[j]->wb)
                s = eng__linear_prepare(ls[j], bf16, err, errlen);
    }
    pthread_mutex_unlock(&mu);
    return s;
}

static eng_status text_ctx_create(eng_ctx *ctx, const eng_ctx_params *p)
{
    const eng__text_model *m = ctx->model->impl;
    const int nt = eng__team_size(ctx->team);
    long T = p->max_batch_tokens > 0 ? p->max_batch_tokens
                                     : (m->max_positions > 4096 ? m->max_positions : 4096);
    if (T < m->max_positions)
        return eng__errf(ENG_ERR_INVALID_ARG, ctx->error, sizeof ctx->error,
                         "max_batch_tokens %ld is below the model's position limit %d", T,
                         m->max_positions);
    if (T > (1L << 24))
        return eng__errf(ENG_ERR_INVALID_ARG, ctx->error, sizeof ctx->error,
                         "max_batch_tokens %ld is too large", T);
    if (T * m->hidden < m->n_labels)
        return eng__errf(ENG_ERR_INVALID_ARG, ctx->error, sizeof ctx->error,
                         "max_batch_tokens %ld is too small for %d labels", T, m->n_labels);

    /* bf16 on the CPU (ctx.c found a unit). The weights of the other
     * precision than the file's are made once per model, here at its first
     * context that needs them. */
    const int bf16 = p->device == ENG_DEVICE_CPU && p->precision == ENG_PREC_BF16;
    eng_status ps = text_prepare(m, bf16, ctx->error, sizeof ctx->error);
    if (ps)
        return ps;
    eng__text_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return ENG_ERR_NOMEM;
    ctx->impl = c;
    const size_t t = (size_t)T, H = (size_t)m->hidden, P = (size_t)m->max_positions;
    c->model = m;
    c->kern = ctx->kern;
    c->bgemm = bf16 ? eng__bgemm_get() : NULL;
    c->team = ctx->team;
    c->error = ctx->error;
    c->max_tokens = (int)T;
    c->h = alloc_floats(t * H);
    c->tmp = alloc_floats(t * H);
    c->attn = alloc_floats(t * H);
    c->qkv = alloc_floats(t * 3 * H);
    c->ffn = alloc_floats(t * (size_t)m->intermediate);
    c->scores = alloc_floats((size_t)nt * eng__attention_scratch_floats(m));
    c->pooled = alloc_floats(t * H);
    c->pooled2 = alloc_floats(t * H);
    /* Each member gets its own linear-layer scratch, sized for all T rows
     * since one member may run them all. */
    size_t lin_bytes = 0;
    for (int i = 0; i <= m->layers; i++) {
        const eng__layer *L = &m->layer[i < m->layers ? i : 0];
        const eng__linear *ls[4] = {&L->qkv, &L->attn_out, &L->ffn_in, &L->ffn_out};
        if (i == m->layers) { /* the head, when there is one */
            ls[0] = ls[1] = &m->head_dense;
            ls[2] = ls[3] = &m->head_out;
        }
        for (int j = 0; j < 4; j++) {
            size_t b = eng__linear_scratch_bytes(ls[j], (int)T, bf16);
            lin_bytes = b > lin_bytes ? b : lin_bytes;
        }
    }
    c->lin_scratch_bytes = (lin_bytes + 63) & ~(size_t)63;
    size_t lin = c->lin_scratch_bytes * (size_t)nt;
    c->lin_scratch = lin ? aligned_alloc(64, lin) : NULL;
    c->tok_id = malloc(t * sizeof *c->tok_id);
    c->tok_pos = malloc(t * sizeof *c->tok_pos);
    c->seq_off = malloc(t * sizeof *c->seq_off);
    c->seq_len = malloc(t * sizeof *c->seq_len);
    c->seq_index = malloc(t * sizeof *c->seq_index);
    c->chunk_seqs = malloc(t * sizeof *c->chunk_seqs);
    c->text_ids = malloc((t + P) * sizeof *c->text_ids);
    c->text_seqs = malloc(t * sizeof *c->text_seqs);
    c->text_status = malloc(t * sizeof *c->text_status);
    if (!c->h || !c->tmp || !c->attn || !c->qkv || !c->ffn || !c->scores || !c->pooled ||
        !c->pooled2 || (lin && !c->lin_scratch) || !c->seq_off || !c->seq_len || !c->seq_index ||
        !c->chunk_seqs || !c->text_ids || !c->text_seqs || !c->text_status || !c->tok_id ||
        !c->tok_pos)
        return eng__errf(ENG_ERR_NOMEM, ctx->error, sizeof ctx->error,
                         "out of memory for a context of %ld tokens", T);
    if (p->device == ENG_DEVICE_CUDA)
        return eng__cuda_ctx_init(c, p);
    return ENG_OK;
}

const eng__kind eng__kind_text = {
    .name = "text",
    .cuda = 1,
    .cpu_bf16 = 1,
    .load = text_load,
    .free_model = text_free,
    .describe = text_describe,
    .label = text_label,
    .tokenize = text_tokenize,
    .token = text_token,
    .ctx_create = text_ctx_create,
    .ctx_free = text_ctx_free,
    .run = eng__text_run,
};
