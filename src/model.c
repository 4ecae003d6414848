/* model.c: loading a model file: metadata parsing, binding every tensor (as a
 * view into the memory-mapped file) after checking its shape, the tokenizer,
 * label names; and the model's read-only accessors. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "blas.h"
#include "error.h"
#include "model.h"
#include "sgemm.h"

eng_model_params eng_model_default_params(void)
{
    eng_model_params p = {.n_threads = 0, .gemm = ENG_GEMM_AUTO};
    return p;
}

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

static eng_status parse_config(eng_model *m, const cJSON *meta, char *err, size_t errlen)
{
    const char *arch = meta_str(meta, "arch", "");
    if (strcmp(arch, "bert") != 0 && strcmp(arch, "distilbert") != 0) {
        snprintf(err, errlen, "unsupported architecture \"%s\" (this build runs bert, distilbert)",
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
    if (!meta_int(meta, "hidden", 1, 16384, &m->hidden, err, errlen) ||
        !meta_int(meta, "layers", 1, 256, &m->layers, err, errlen) ||
        !meta_int(meta, "heads", 1, 1024, &m->heads, err, errlen) ||
        !meta_int(meta, "intermediate", 1, 65536, &m->intermediate, err, errlen) ||
        !meta_int(meta, "max_positions", 2, 65536, &m->max_positions, err, errlen) ||
        !meta_int(meta, "vocab_size", 1, 1 << 22, &m->vocab_size, err, errlen))
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

static eng_status parse_labels(eng_model *m, const cJSON *meta, char *err, size_t errlen)
{
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
    int n = cJSON_IsArray(labels) ? cJSON_GetArraySize(labels) : 0;
    if (m->head == ENG_HEAD_NONE)
        return ENG_OK;
    if (n < 1 || n > 1 << 20) {
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

static eng_status bind_tensors(eng_model *m, char *err, size_t errlen)
{
    const eng__file *f = &m->file;
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

static eng_status init_tokenizer(eng_model *m, const cJSON *meta, char *err, size_t errlen)
{
    const eng__file_tensor *v = eng__file_find(&m->file, "tok.vocab");
    if (!v || v->dtype != ENG_DT_U8 || v->ndim != 1) {
        snprintf(err, errlen, "missing tensor tok.vocab (U8)");
        return ENG_ERR_FORMAT;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(meta, "tokenizer");
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
    eng_status s = eng__tokenizer_init(&m->tok, eng__file_data(&m->file, v), (size_t)v->nbytes,
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
static eng_status choose_gemm(eng_model *m, eng_gemm gemm, char *err, size_t errlen)
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
    if (!cJSON_IsObject(meta)) {
        s = ENG_ERR_FORMAT;
        snprintf(err, sizeof err, "metadata is not a JSON object");
    } else if (!strncmp(meta_str(meta, "arch", ""), "resnet", 6)) {
        if (!(s = eng__cnn_init(&m->cnn, &m->file, err, sizeof err))) {
            snprintf(m->arch, sizeof m->arch, "%s", eng__cnn_arch(m->cnn));
            snprintf(m->weights, sizeof m->weights, "fp32");
            m->n_labels = eng__cnn_num_classes(m->cnn);
        }
    } else if (!(s = parse_config(m, meta, err, sizeof err)) &&
               !(s = parse_labels(m, meta, err, sizeof err)) &&
               !(s = bind_tensors(m, err, sizeof err)) &&
               !(s = init_tokenizer(m, meta, err, sizeof err))) {
        s = choose_gemm(m, p.gemm, err, sizeof err);
    }
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

eng_status eng__model_prepare(const eng_model *cm, int bf16, char *err, size_t errlen)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    /* The weights made here are the model's only members written after load:
     * under mu, and read by a context only after its eng_ctx_init returned
     * from here; never changed once made. */
    eng_model *m = (eng_model *)cm;
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

void eng_model_free(eng_model *m)
{
    if (!m)
        return;
    eng__cnn_free(m->cnn);
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
    eng__file_close(&m->file);
    free(m);
}

void eng_model_get_info(const eng_model *m, eng_model_info *info)
{
    memset(info, 0, sizeof *info);
    if (!m)
        return;
    info->arch = m->arch;
    info->weights = m->weights;
    info->n_labels = m->n_labels;
    if (m->cnn) {
        info->input = ENG_INPUT_IMAGE;
        info->image_size = eng__cnn_image_spec(m->cnn)->crop;
        return;
    }
    info->input = ENG_INPUT_TEXT;
    info->hidden = m->hidden;
    info->layers = m->layers;
    info->heads = m->heads;
    info->intermediate = m->intermediate;
    info->max_positions = m->max_positions;
    info->vocab_size = m->vocab_size;
    info->embed_normalize = m->normalize;
}

const char *eng_model_gemm_name(const eng_model *m)
{
    if (!m)
        return "none";
    return m->cnn ? "builtin (convolution tiles)" : m->gemm_name;
}

const char *eng_model_label(const eng_model *m, int i)
{
    if (!m || i < 0 || i >= m->n_labels)
        return NULL;
    return m->cnn ? eng__cnn_label(m->cnn, i) : m->labels[i];
}

eng_status eng_tokenize(const eng_model *m, const char *text, size_t len, int32_t *ids, int cap,
                        int *n_ids, int *truncated)
{
    int trunc = 0;
    if (n_ids)
        *n_ids = 0;
    if (truncated)
        *truncated = 0;
    if (!m || !text || !ids || !n_ids || cap < 2)
        return eng__fail(ENG_ERR_INVALID_ARG, "eng_tokenize: NULL argument or cap < 2");
    if (m->cnn)
        return eng__fail(ENG_ERR_UNSUPPORTED, "%s is an image model: it has no tokenizer", m->arch);
    int max_len = cap < m->max_positions ? cap : m->max_positions;
    eng_status s = eng__tokenize(m->tok, text, len, max_len, ids, cap, n_ids, &trunc);
    if (s)
        return eng__fail(s, "%s",
                         s == ENG_ERR_UTF8 ? "text is not valid UTF-8" : eng_status_str(s));
    if (truncated)
        *truncated = trunc;
    return ENG_OK;
}
