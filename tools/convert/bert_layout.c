/* bert_layout.c: maps a BERT or DistilBERT checkpoint's tensors to the
 * engine's (docs/FORMAT.md): linear weights transposed to [in, out] and
 * stored in the fp32 GEMM's panel layout (kernels/sgemm.h), q/k/v fused into
 * one [H, 3H] matrix, BERT's token type 0 embedding folded into the
 * position embeddings, everything F32 except, on request, the encoder's
 * linear weights, which are quantized to int8 (src/text/linear_int8.h); and the
 * folder-to-file conversion that strings config, checkpoint, layout and
 * writer together. */
#include "error.h"
#include "bert_layout.h"
#include "model_limits.h"
#include "quantize.h"
#include "bgemm.h"
#include "sgemm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The checkpoint being laid out; the first error sticks, so a run of lookups
 * can be checked once. */
typedef struct {
    const src_tensors *s;
    const char *pfx;     /* "bert.", "distilbert." or "roberta." when the checkpoint uses it */
    const char *weights; /* the encoder's linear weights: "fp32", "bf16" or "int8" */
    eng__writer *w;
    int n_added;
    eng_status st;
    char *err;
    size_t errlen;
} lay;

static const src_tensor *lookup(const lay *L, const char *name)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s", L->pfx, name);
    const src_tensor *t = src_find(L->s, buf);
    if (!t)
        t = src_find(L->s, name);
    /* Checkpoints ported from TensorFlow name LayerNorm parameters gamma/beta;
     * transformers renames them on load, and so do we. */
    static const char *const legacy[2][2] = {{"LayerNorm.weight", "LayerNorm.gamma"},
                                             {"LayerNorm.bias", "LayerNorm.beta"}};
    size_t n = strlen(name);
    for (int k = 0; k < 2 && !t; k++) {
        size_t m = strlen(legacy[k][0]);
        if (n >= m && strcmp(name + n - m, legacy[k][0]) == 0) {
            snprintf(buf, sizeof buf, "%.*s%s", (int)(n - m), name, legacy[k][1]);
            return lookup(L, buf);
        }
    }
    return t;
}

/* The named tensor as a new F32 array, after checking it is floating point
 * and of shape [d0] (d1 == 0) or [d0, d1]; NULL with L->st set otherwise. */
static float *get(lay *L, const char *name, int64_t d0, int64_t d1)
{
    if (L->st != ENG_OK)
        return NULL;
    const src_tensor *t = lookup(L, name);
    if (!t) {
        L->st = eng__errf(ENG_ERR_FORMAT, L->err, L->errlen, "missing tensor %s%s", L->pfx, name);
        return NULL;
    }
    int nd = d1 ? 2 : 1;
    if (t->ndim != nd || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        char got[128] = "";
        size_t k = 0;
        for (int d = 0; d < t->ndim && k < sizeof got - 24; d++)
            k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", d ? "," : "",
                                  (long long)t->shape[d]);
        char want[64];
        if (d1)
            snprintf(want, sizeof want, "%lld,%lld", (long long)d0, (long long)d1);
        else
            snprintf(want, sizeof want, "%lld", (long long)d0);
        L->st = eng__errf(ENG_ERR_FORMAT, L->err, L->errlen,
                     "tensor %s has shape [%s], expected [%s] from config.json", t->name, got, want);
        return NULL;
    }
    float *f;
    L->st = src_to_f32(t, &f, L->err, L->errlen);
    return f;
}

static void add(lay *L, const char *name, float *data, uint64_t d0, uint64_t d1)
{
    if (L->st == ENG_OK && data) {
        uint64_t shape[2] = {d0, d1};
        L->st = eng__writer_add(L->w, name, ENG_DT_F32, d1 ? 2 : 1, shape, data);
        if (L->st != ENG_OK)
            eng__errf(L->st, L->err, L->errlen, "cannot add tensor %s (out of memory?)", name);
        L->n_added++;
    }
    free(data);
}

/* Adds linear weight "<eng_name>.w" from t ([in, out], freed) as `weights`. */
static void add_weight(lay *L, const char *eng_name, float *t, int64_t in, int64_t out,
                       const char *weights)
{
    if (L->st == ENG_OK && t)
        L->st = cv_add_linear_weight(L->w, eng_name, t, (int)in, (int)out, weights, &L->n_added,
                                     L->err, L->errlen);
    free(t);
}

/* PyTorch Linear weight [out, in] -> engine [in, out], columns from col0 of a
 * row-major [in, ld] destination. */
static void put_transposed(float *dst, int64_t ld, int64_t col0, const float *w, int64_t out,
                           int64_t in)
{
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++)
            dst[i * ld + col0 + o] = w[o * in + i];
}

/* A Linear layer hf_name.{weight,bias} [out, in] as eng_name.{w,b}, the
 * weight stored as `weights`. */
static void linear(lay *L, const char *hf_name, const char *eng_name, int64_t in, int64_t out,
                   const char *weights)
{
    char n[256];
    snprintf(n, sizeof n, "%s.weight", hf_name);
    float *w = get(L, n, out, in);
    snprintf(n, sizeof n, "%s.bias", hf_name);
    float *b = get(L, n, out, 0);
    float *t = w ? malloc((size_t)(in * out) * sizeof *t) : NULL;
    if (w && !t && L->st == ENG_OK)
        L->st = eng__errf(ENG_ERR_NOMEM, L->err, L->errlen, "out of memory");
    if (t)
        put_transposed(t, out, 0, w, out, in);
    free(w);
    add_weight(L, eng_name, t, in, out, weights);
    snprintf(n, sizeof n, "%s.b", eng_name);
    add(L, n, b, (uint64_t)out, 0);
}

static void layer_norm(lay *L, const char *hf_name, const char *eng_name, int64_t h)
{
    char n[256];
    snprintf(n, sizeof n, "%s.weight", hf_name);
    float *g = get(L, n, h, 0);
    snprintf(n, sizeof n, "%s.bias", hf_name);
    float *b = get(L, n, h, 0);
    snprintf(n, sizeof n, "%s.g", eng_name);
    add(L, n, g, (uint64_t)h, 0);
    snprintf(n, sizeof n, "%s.b", eng_name);
    add(L, n, b, (uint64_t)h, 0);
}

/* q, k, v Linear layers [H, H] fused to "L{i}.qkv.w" [H, 3H] (columns q|k|v)
 * and "L{i}.qkv.b" [3H]. */
static void qkv(lay *L, const char *const names[3], int layer, int64_t h)
{
    float *w = malloc((size_t)(h * 3 * h) * sizeof *w), *b = malloc((size_t)(3 * h) * sizeof *b);
    if ((!w || !b) && L->st == ENG_OK)
        L->st = eng__errf(ENG_ERR_NOMEM, L->err, L->errlen, "out of memory");
    for (int k = 0; k < 3 && L->st == ENG_OK; k++) {
        char n[256];
        snprintf(n, sizeof n, "%s.weight", names[k]);
        float *src = get(L, n, h, h);
        snprintf(n, sizeof n, "%s.bias", names[k]);
        float *bias = get(L, n, h, 0);
        if (src && bias) {
            put_transposed(w, 3 * h, k * h, src, h, h);
            memcpy(b + k * h, bias, (size_t)h * sizeof *b);
        }
        free(src);
        free(bias);
    }
    char n[64];
    snprintf(n, sizeof n, "L%d.qkv", layer);
    add_weight(L, n, w, h, 3 * h, L->weights);
    snprintf(n, sizeof n, "L%d.qkv.b", layer);
    add(L, n, b, (uint64_t)(3 * h), 0);
}

static void embeddings(lay *L, const cv_config *c, int bert)
{
    int64_t h = c->hidden, p = c->max_positions, off = c->position_offset;
    add(L, "emb.word", get(L, "embeddings.word_embeddings.weight", c->vocab_size, h),
        (uint64_t)c->vocab_size, (uint64_t)h);
    float *pos = get(L, "embeddings.position_embeddings.weight", off + p, h);
    /* RoBERTa's rows before padding_idx + 1 are never used by a sequence
     * without padding: the engine's row i is the checkpoint's row off + i. */
    if (pos && off)
        memmove(pos, pos + off * h, (size_t)(p * h) * sizeof *pos);
    if (bert) {
        /* The engine always uses token type 0, so its embedding row is added
         * into every position row here, once. */
        float *tt = get(L, "embeddings.token_type_embeddings.weight", c->type_vocab_size, h);
        if (pos && tt)
            for (int64_t i = 0; i < p; i++)
                for (int64_t j = 0; j < h; j++)
                    pos[i * h + j] += tt[j];
        free(tt);
    }
    add(L, "emb.pos", pos, (uint64_t)p, (uint64_t)h);
    layer_norm(L, "embeddings.LayerNorm", "emb.ln", h);
}

static void encoder_layer(lay *L, const cv_config *c, int bert, int i)
{
    int64_t h = c->hidden, f = c->intermediate;
    char hf[8][128], eng[4][32];
    if (bert) {
        const char *parts[8] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                "attention.output.dense", "attention.output.LayerNorm",
                                "intermediate.dense", "output.dense", "output.LayerNorm"};
        for (int k = 0; k < 8; k++)
            snprintf(hf[k], sizeof hf[k], "encoder.layer.%d.%s", i, parts[k]);
    } else {
        const char *parts[8] = {"attention.q_lin", "attention.k_lin", "attention.v_lin",
                                "attention.out_lin", "sa_layer_norm", "ffn.lin1", "ffn.lin2",
                                "output_layer_norm"};
        for (int k = 0; k < 8; k++)
            snprintf(hf[k], sizeof hf[k], "transformer.layer.%d.%s", i, parts[k]);
    }
    const char *q[3] = {hf[0], hf[1], hf[2]};
    qkv(L, q, i, h);
    const char *en[4] = {"attn_out", "ln1", "ffn_in", "ffn_out"};
    for (int k = 0; k < 4; k++)
        snprintf(eng[k], sizeof eng[k], "L%d.%s", i, en[k]);
    linear(L, hf[3], eng[0], h, h, L->weights);
    layer_norm(L, hf[4], eng[1], h);
    linear(L, hf[5], eng[2], h, f, L->weights);
    linear(L, hf[6], eng[3], f, h, L->weights);
    snprintf(eng[1], sizeof eng[1], "L%d.ln2", i);
    layer_norm(L, hf[7], eng[1], h);
}

/* The classification head, when the architecture (or, without one, the
 * checkpoint) has one: BERT's pooler + classifier, DistilBERT's
 * pre_classifier + classifier, RoBERTa's classifier.dense +
 * classifier.out_proj (c->head_dense, c->head_out). */
static void head(lay *L, cv_config *c, int bert)
{
    char out_w[64];
    snprintf(out_w, sizeof out_w, "%s.weight", c->head_out);
    const src_tensor *cl = lookup(L, out_w);
    int want = c->classifier < 0 ? cl != NULL : c->classifier;
    snprintf(c->head, sizeof c->head, "%s", !want ? "none" : bert ? "bert_pooler" : "distilbert");
    if (!want) {
        if (cv_config_set_labels(c, 0, NULL) != ENG_OK)
            L->st = eng__errf(ENG_ERR_NOMEM, L->err, L->errlen, "out of memory");
        return;
    }
    if (!cl) {
        L->st = eng__errf(ENG_ERR_FORMAT, L->err, L->errlen, "missing tensor %s", out_w);
        return;
    }
    int64_t n = cl->ndim == 2 ? cl->shape[0] : 0;
    if (n < 1 || n > ENG__MAX_LABELS) {
        L->st = eng__errf(ENG_ERR_FORMAT, L->err, L->errlen, "%s has a malformed shape", out_w);
        return;
    }
    if (c->n_labels != 0 && c->n_labels != n) {
        L->st = eng__errf(ENG_ERR_FORMAT, L->err, L->errlen,
                     "config.json's id2label names %d labels but the classifier has %lld",
                     c->n_labels, (long long)n);
        return;
    }
    if (c->n_labels == 0 && cv_config_set_labels(c, (int)n, NULL) != ENG_OK) {
        L->st = eng__errf(ENG_ERR_NOMEM, L->err, L->errlen, "out of memory");
        return;
    }
    /* The head stays fp32: it is a small share of the work and its output
     * is the result, so it gets no extra rounding. */
    linear(L, c->head_dense, "head.dense", c->hidden, c->hidden, "fp32");
    linear(L, c->head_out, "head.out", c->hidden, n, "fp32");
}

eng_status cv_layout_bert(cv_config *c, const src_tensors *s, eng__writer *w, int *n_added,
                          char *err, size_t errlen)
{
    /* BERT's layer names (RoBERTa's too), or DistilBERT's. */
    const int bert = strcmp(c->arch, "distilbert") != 0;
    char pfx[24], probe[64];
    snprintf(pfx, sizeof pfx, "%s.", c->prefix);
    lay L = {s, "", c->weights, w, 0, ENG_OK, err, errlen};
    snprintf(probe, sizeof probe, "%sembeddings.word_embeddings.weight", pfx);
    if (src_find(s, probe))
        L.pfx = pfx;
    embeddings(&L, c, bert);
    for (int i = 0; i < c->layers && L.st == ENG_OK; i++)
        encoder_layer(&L, c, bert, i);
    if (L.st == ENG_OK)
        head(&L, c, bert);
    *n_added = L.n_added;
    return L.st;
}

eng_status cv_weights_check(const char *weights, char *err, size_t errlen)
{
    if (weights && (strcmp(weights, "fp32") == 0 || strcmp(weights, "int8") == 0 ||
                    strcmp(weights, "bf16") == 0))
        return ENG_OK;
    return eng__errf(ENG_ERR_INVALID_ARG, err, errlen,
                     "unsupported weight dtype '%s' (fp32, bf16 or int8)", weights ? weights : "");
}

eng_status cv_add_linear_weight(eng__writer *w, const char *name, const float *wt, int K, int N,
                                const char *weights, int *n_added, char *err, size_t errlen)
{
    char n[3][ENG_FILE_NAME_MAX];
    snprintf(n[0], sizeof n[0], "%s.w", name);
    snprintf(n[1], sizeof n[1], "%s.w.scale", name);
    snprintf(n[2], sizeof n[2], "%s.w.sum", name);
    if (strcmp(weights, "int8") != 0) {
        /* Stored as the engine's GEMM reads it, so the engine maps it and
         * never makes a packed copy: fp32 for kernels/sgemm.h, bf16 (rounded
         * to nearest even, half the bytes) for kernels/bgemm.h. */
        const int bf16 = strcmp(weights, "bf16") == 0;
        const uint64_t n16 = (uint64_t)(N + 15) / 16;
        const uint64_t shape[3] = {n16, bf16 ? (uint64_t)eng__bgemm_kp(K) / 2 : (uint64_t)K,
                                   bf16 ? 32 : 16};
        float *packed = malloc(eng__sgemm_packed_bytes(K, N));
        eng__bf16 *wb = bf16 ? malloc(eng__bgemm_packed_bytes(K, N)) : NULL;
        if (!packed || (bf16 && !wb)) {
            free(packed);
            free(wb);
            return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory packing %s", n[0]);
        }
        eng__sgemm_pack(wt, K, N, packed);
        if (bf16)
            eng__bgemm_pack(packed, K, N, wb);
        eng_status s = bf16 ? eng__writer_add(w, n[0], ENG_DT_BF16, 3, shape, wb)
                            : eng__writer_add(w, n[0], ENG_DT_F32, 3, shape, packed);
        free(packed);
        free(wb);
        if (s != ENG_OK)
            return eng__errf(s, err, errlen, "cannot add tensor %s (out of memory?)", n[0]);
        ++*n_added;
        return ENG_OK;
    }
    size_t bytes = eng__quantized_weight_bytes(K, N);
    if (bytes == 0)
        return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen,
                         "%s: a %d x %d matrix cannot be stored as int8", n[0], K, N);
    int8_t *q = malloc(bytes);
    float *scale = malloc((size_t)N * sizeof *scale);
    int32_t *sum = malloc((size_t)N * sizeof *sum);
    eng_status s = q && scale && sum ? ENG_OK : ENG_ERR_NOMEM;
    if (s == ENG_OK && eng__quantize_weights(wt, K, N, q, scale, sum) != ENG_OK)
        s = eng__errf(ENG_ERR_FORMAT, err, errlen, "%s: %s", n[0], eng_last_error());
    else if (s != ENG_OK)
        eng__errf(s, err, errlen, "out of memory");
    const uint64_t shapes[3] = {bytes, (uint64_t)N, (uint64_t)N};
    const eng__dtype dts[3] = {ENG_DT_I8, ENG_DT_F32, ENG_DT_I32};
    const void *data[3] = {q, scale, sum};
    for (int k = 0; k < 3 && s == ENG_OK; k++) {
        s = eng__writer_add(w, n[k], dts[k], 1, &shapes[k], data[k]);
        if (s != ENG_OK)
            eng__errf(s, err, errlen, "cannot add tensor %s (out of memory?)", n[k]);
        else
            ++*n_added;
    }
    free(q);
    free(scale);
    free(sum);
    return s;
}

eng_status cv_add_vocab(const cv_config *c, eng__writer *w, char *err, size_t errlen)
{
    if (c->tok_json) {
        /* tokenizer.json verbatim (the interpreter reads it at load). */
        if (c->tok_json_vocab > c->vocab_size)
            return eng__errf(ENG_ERR_FORMAT, err, errlen,
                             "tokenizer.json has ids up to %d but the embedding table only %d rows",
                             c->tok_json_vocab - 1, c->vocab_size);
        uint64_t shape[1] = {c->tok_json_len};
        eng_status s = eng__writer_add(w, "tok.json", ENG_DT_U8, 1, shape, c->tok_json);
        return s == ENG_OK ? s : eng__errf(s, err, errlen, "cannot store tokenizer.json");
    }
    size_t n = 0;
    for (int i = 0; i < c->n_vocab; i++)
        n += strlen(c->vocab[i]) + (i > 0);
    char *blob = malloc(n ? n : 1), *p = blob;
    if (!blob)
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    for (int i = 0; i < c->n_vocab; i++) {
        if (i > 0)
            *p++ = '\n';
        size_t k = strlen(c->vocab[i]);
        memcpy(p, c->vocab[i], k);
        p += k;
    }
    uint64_t shape[1] = {n};
    eng_status s = n ? eng__writer_add(w, "tok.vocab", ENG_DT_U8, 1, shape, blob)
                     : ENG_ERR_FORMAT;
    free(blob);
    return s == ENG_OK ? s : eng__errf(s, err, errlen, "cannot store the vocabulary");
}

eng_status cv_save(const cv_config *c, eng__writer *w, const char *out, cv_report *r, char *err,
                   size_t errlen)
{
    eng_status s = cv_config_check_limits(c, err, errlen);
    if (s != ENG_OK)
        return s;
    char *meta = cv_config_meta_json(c);
    if (!meta)
        return eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    s = eng__writer_save(w, meta, out, err, errlen);
    free(meta);
    struct stat st;
    r->bytes = s == ENG_OK && stat(out, &st) == 0 ? (uint64_t)st.st_size : 0;
    return s;
}

eng_status cv_load_weights(const char *dir, src_tensors *s, char *err, size_t errlen)
{
    char path[2048];
    struct stat st;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stat(path, &st) == 0)
        return src_load_safetensors(path, s, err, errlen);
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    if (stat(path, &st) == 0)
        return src_load_torch_zip(path, s, err, errlen);
    memset(s, 0, sizeof *s);
    return eng__errf(ENG_ERR_IO, err, errlen, "%s has neither model.safetensors nor pytorch_model.bin",
                dir);
}

eng_status cv_convert_hf_as(const char *dir, const char *weights, const char *out, cv_config *c,
                            cv_report *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    cv_config_init(c);
    weights = weights ? weights : "fp32";
    eng_status s = cv_weights_check(weights, err, errlen);
    if (s == ENG_OK)
        s = cv_config_read(dir, c, err, errlen);
    if (s != ENG_OK)
        return s;
    snprintf(c->weights, sizeof c->weights, "%s", weights);
    src_tensors src;
    s = cv_load_weights(c->weights_dir, &src, err, errlen);
    eng__writer *w = s == ENG_OK ? eng__writer_new() : NULL;
    if (s == ENG_OK && !w)
        s = eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory");
    if (s == ENG_OK && !c->no_tokenizer)
        s = cv_add_vocab(c, w, err, errlen);
    if (s == ENG_OK)
        s = cv_layout_bert(c, &src, w, &r->n_tensors, err, errlen);
    src_free(&src);
    if (s == ENG_OK) {
        r->n_tensors += !c->no_tokenizer;   /* tok.vocab */
        s = cv_save(c, w, out, r, err, errlen);
    }
    eng__writer_free(w);
    if (s != ENG_OK)
        cv_config_free(c);
    return s;
}

eng_status cv_convert_hf(const char *dir, const char *out, cv_config *c, cv_report *r, char *err,
                         size_t errlen)
{
    return cv_convert_hf_as(dir, NULL, out, c, r, err, errlen);
}
