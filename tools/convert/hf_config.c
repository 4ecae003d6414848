/* hf_config.c: reads a Hugging Face model folder's JSON and vocabulary files
 * into a cv_config (config.json, vocab.txt or tokenizer.json,
 * tokenizer_config.json, sentence-transformers modules.json and pooling), and
 * writes the .eng metadata JSON from it. Precedence follows transformers:
 * tokenizer_config.json overrides tokenizer.json's normalizer, as
 * BertTokenizerFast rebuilds the normalizer from its init arguments. */
#include "error.h"
#include "hf_config.h"
#include "model_limits.h"
#include "tokjson.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole file, NUL-terminated; NULL with errno set on failure. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        n = ftell(fp);
    if (n >= 0 && fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, fp) == (size_t)n) {
            buf[n] = '\0';
            if (len)
                *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
            errno = EIO;
        }
    }
    fclose(fp);
    return buf;
}

/* Parses dir/name; *out is NULL (and ENG_OK) when the file is absent and
 * optional. */
static eng_status load_json(const char *dir, const char *name, int optional, cJSON **out,
                            char *err, size_t errlen)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *out = NULL;
    if (!exists(path))
        return optional ? ENG_OK
                        : eng__errf(ENG_ERR_IO, err, errlen, "%s not found", path);
    char *text = slurp(path, NULL);
    if (!text)
        return eng__errf(ENG_ERR_IO, err, errlen, "cannot read %s: %s", path, strerror(errno));
    *out = cJSON_Parse(text);
    free(text);
    if (!*out)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "%s is not valid JSON", path);
    return ENG_OK;
}

/* A positive integer key, or def when absent. */
static eng_status get_int(const cJSON *o, const char *key, int def, int max, int *out, char *err,
                          size_t errlen)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x) {
        *out = def;
        return ENG_OK;
    }
    if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > max ||
        x->valuedouble != (double)(int)x->valuedouble)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "config.json: %s must be an integer in 1..%d", key,
                    max);
    *out = (int)x->valuedouble;
    return ENG_OK;
}

static const char *get_str(const cJSON *o, const char *key, const char *def)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : def;
}

/* A boolean key; null or absent leaves *out alone (HF's "None: follow the
 * default"). */
static void get_bool(const cJSON *o, const char *key, int *out)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(x))
        *out = cJSON_IsTrue(x);
}

void cv_config_init(cv_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->arch, sizeof c->arch, "bert");
    snprintf(c->prefix, sizeof c->prefix, "bert");
    snprintf(c->head_dense, sizeof c->head_dense, "pooler.dense");
    snprintf(c->head_out, sizeof c->head_out, "classifier");
    snprintf(c->act, sizeof c->act, "gelu");
    snprintf(c->head, sizeof c->head, "none");
    snprintf(c->pooling, sizeof c->pooling, "mean");
    snprintf(c->weights, sizeof c->weights, "fp32");
    c->ln_eps = 1e-12;
    c->type_vocab_size = 2;
    c->lowercase = 1;
    c->strip_accents = -1;   /* follows lowercase unless set */
    c->chinese_chars = 1;
    c->max_chars_per_word = 100;
    snprintf(c->unk, sizeof c->unk, "[UNK]");
    snprintf(c->cls, sizeof c->cls, "[CLS]");
    snprintf(c->sep, sizeof c->sep, "[SEP]");
    snprintf(c->pad, sizeof c->pad, "[PAD]");
}

static void free_strings(char **s, int n)
{
    for (int i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

void cv_config_free(cv_config *c)
{
    free(c->tok_json);
    c->tok_json = NULL;
    free_strings(c->labels, c->n_labels);
    free_strings(c->vocab, c->n_vocab);
    c->labels = c->vocab = NULL;
    c->n_labels = c->n_vocab = 0;
}

eng_status cv_config_set_labels(cv_config *c, int n, const char *const *names)
{
    char **l = calloc((size_t)(n > 0 ? n : 1), sizeof *l);
    if (!l)
        return ENG_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "LABEL_%d", i);
        l[i] = strdup(names ? names[i] : buf);
        if (!l[i]) {
            free_strings(l, i);
            return ENG_ERR_NOMEM;
        }
    }
    free_strings(c->labels, c->n_labels);
    c->labels = l;
    c->n_labels = n;
    return ENG_OK;
}

/* ---- config.json --------------------------------------------------------- */

static const struct {
    const char *hf, *engine;
} activations[] = {
    {"gelu", "gelu"}, {"gelu_new", "gelu_tanh"}, {"gelu_pytorch_tanh", "gelu_tanh"}, {"relu", "relu"},
};

static eng_status set_act(cv_config *c, const char *hf, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof activations / sizeof activations[0]; i++)
        if (strcmp(hf, activations[i].hf) == 0) {
            snprintf(c->act, sizeof c->act, "%s", activations[i].engine);
            return ENG_OK;
        }
    return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen,
                "unsupported activation '%s' (gelu, gelu_new, gelu_pytorch_tanh, relu)", hf);
}

/* id2label {"0": "NEGATIVE", ...} in id order; ids must be exactly 0..n-1. */
static eng_status read_labels(cv_config *c, const cJSON *cfg, char *err, size_t errlen)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cfg, "id2label");
    if (!cJSON_IsObject(m))
        return ENG_OK;
    int n = cJSON_GetArraySize(m);
    if (n > ENG__MAX_LABELS)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "config.json: id2label has more than %d labels",
                    ENG__MAX_LABELS);
    const char **names = calloc((size_t)(n > 0 ? n : 1), sizeof *names);
    if (!names)
        return ENG_ERR_NOMEM;
    const cJSON *e;
    eng_status s = ENG_OK;
    cJSON_ArrayForEach(e, m)
    {
        char *end;
        long id = strtol(e->string, &end, 10);
        if (*e->string == '\0' || *end != '\0' || id < 0 || id >= n || names[id] ||
            !cJSON_IsString(e) || strchr(e->valuestring, '\n')) {
            s = eng__errf(ENG_ERR_FORMAT, err, errlen,
                     "config.json: id2label must map ids 0..%d to names, once each", n - 1);
            break;
        }
        names[id] = e->valuestring;
    }
    if (s == ENG_OK && cv_config_set_labels(c, n, names) != ENG_OK)
        s = ENG_ERR_NOMEM;
    free(names);
    return s;
}

/* The model types the converter reads. RoBERTa, XLM-RoBERTa and CamemBERT
 * are BERT's encoder under the "roberta." prefix, with positions counted from
 * padding_idx + 1, one token type, and a head of classifier.dense (tanh) and
 * classifier.out_proj on the first token: BERT's pooler + classifier under
 * other names (transformers' RobertaClassificationHead). */
static const struct {
    const char *model_type, *classifier, *encoder; /* the architectures[0] accepted */
    const char *prefix, *head_dense, *head_out;
    int roberta; /* positions from padding_idx + 1; tokenizer.json or none */
} families[] = {
    {"bert", "BertForSequenceClassification", "BertModel", "bert", "pooler.dense", "classifier", 0},
    {"distilbert", "DistilBertForSequenceClassification", "DistilBertModel", "distilbert",
     "pre_classifier", "classifier", 0},
    {"roberta", "RobertaForSequenceClassification", "RobertaModel", "roberta", "classifier.dense",
     "classifier.out_proj", 1},
    {"xlm-roberta", "XLMRobertaForSequenceClassification", "XLMRobertaModel", "roberta",
     "classifier.dense", "classifier.out_proj", 1},
    {"camembert", "CamembertForSequenceClassification", "CamembertModel", "roberta",
     "classifier.dense", "classifier.out_proj", 1},
};
enum { N_FAMILIES = sizeof families / sizeof families[0] };

static eng_status read_model_config(cv_config *c, const cJSON *cfg, char *err, size_t errlen)
{
    const char *mt = get_str(cfg, "model_type", NULL);
    if (!mt)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "config.json has no model_type");
    size_t fam = 0;
    while (fam < N_FAMILIES && strcmp(mt, families[fam].model_type) != 0)
        fam++;
    if (fam == N_FAMILIES)
        return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen,
                         "unsupported model_type '%s' (bert, distilbert, roberta, xlm-roberta and "
                         "camembert are)",
                         mt);
    snprintf(c->arch, sizeof c->arch, "%s", mt);
    snprintf(c->prefix, sizeof c->prefix, "%s", families[fam].prefix);
    snprintf(c->head_dense, sizeof c->head_dense, "%s", families[fam].head_dense);
    snprintf(c->head_out, sizeof c->head_out, "%s", families[fam].head_out);
    const int distil = strcmp(mt, "distilbert") == 0, roberta = families[fam].roberta;

    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures"), *a;
    if (cJSON_IsArray(archs) && cJSON_GetArraySize(archs) > 0) {
        a = cJSON_GetArrayItem(archs, 0);
        const char *name = cJSON_IsString(a) ? a->valuestring : "?";
        if (strcmp(name, families[fam].classifier) != 0 && strcmp(name, families[fam].encoder) != 0)
            return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen,
                        "unsupported architecture '%s' for model_type %s", name, mt);
        c->classifier = strcmp(name, families[fam].classifier) == 0;
    } else {
        c->classifier = -1;   /* unknown: decided by the checkpoint's tensors */
    }

    eng_status s;
    const int big = 1 << 24;   /* type_vocab_size: rows of a tensor the checkpoint holds */
    if (distil) {
        if ((s = get_int(cfg, "dim", 768, ENG__MAX_HIDDEN, &c->hidden, err, errlen)) ||
            (s = get_int(cfg, "n_layers", 6, ENG__MAX_LAYERS, &c->layers, err, errlen)) ||
            (s = get_int(cfg, "n_heads", 12, ENG__MAX_HEADS, &c->heads, err, errlen)) ||
            (s = get_int(cfg, "hidden_dim", 3072, ENG__MAX_INTERMEDIATE, &c->intermediate, err,
                         errlen)))
            return s;
        c->ln_eps = 1e-12;   /* hard-coded in transformers' DistilBERT */
        if ((s = set_act(c, get_str(cfg, "activation", "gelu"), err, errlen)))
            return s;
    } else {
        if ((s = get_int(cfg, "hidden_size", 768, ENG__MAX_HIDDEN, &c->hidden, err, errlen)) ||
            (s = get_int(cfg, "num_hidden_layers", 12, ENG__MAX_LAYERS, &c->layers, err, errlen)) ||
            (s = get_int(cfg, "num_attention_heads", 12, ENG__MAX_HEADS, &c->heads, err, errlen)) ||
            (s = get_int(cfg, "intermediate_size", 3072, ENG__MAX_INTERMEDIATE, &c->intermediate,
                         err, errlen)) ||
            (s = get_int(cfg, "type_vocab_size", 2, big, &c->type_vocab_size, err, errlen)))
            return s;
        const cJSON *eps = cJSON_GetObjectItemCaseSensitive(cfg, "layer_norm_eps");
        if (eps && (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1)))
            return eng__errf(ENG_ERR_FORMAT, err, errlen, "config.json: layer_norm_eps must be in (0, 1)");
        c->ln_eps = eps ? eps->valuedouble : 1e-12;
        const char *pos = get_str(cfg, "position_embedding_type", "absolute");
        if (strcmp(pos, "absolute") != 0)
            return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen,
                        "unsupported position_embedding_type '%s' (only absolute)", pos);
        int dec = 0, cross = 0;
        get_bool(cfg, "is_decoder", &dec);
        get_bool(cfg, "add_cross_attention", &cross);
        if (dec || cross)
            return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen,
                        "unsupported option %s (only encoders)", dec ? "is_decoder" : "add_cross_attention");
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_act");
        if (act && !cJSON_IsString(act))
            return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen, "config.json: hidden_act is not a name");
        if ((s = set_act(c, act ? act->valuestring : "gelu", err, errlen)))
            return s;
    }
    if ((s = get_int(cfg, "max_position_embeddings", 512, ENG__MAX_POSITIONS, &c->max_positions, err,
                     errlen)) ||
        (s = get_int(cfg, "vocab_size", 30522, ENG__MAX_VOCAB, &c->vocab_size, err, errlen)))
        return s;
    if (roberta) {
        /* transformers' create_position_ids_from_input_ids: token i of a
         * sequence (no padding inside it) is at position padding_idx + 1 + i,
         * so max_position_embeddings - padding_idx - 1 tokens fit (514 - 2 =
         * 512 for roberta-base). */
        const cJSON *pad = cJSON_GetObjectItemCaseSensitive(cfg, "pad_token_id");
        if (pad && (!cJSON_IsNumber(pad) || pad->valuedouble < 0 ||
                    pad->valuedouble != (double)(int)pad->valuedouble))
            return eng__errf(ENG_ERR_FORMAT, err, errlen,
                             "config.json: pad_token_id must be an integer >= 0");
        const int padding_idx = pad ? (int)pad->valuedouble : 1; /* RobertaConfig's default */
        if (padding_idx >= c->vocab_size)
            return eng__errf(ENG_ERR_FORMAT, err, errlen,
                             "config.json: pad_token_id %d is not below vocab_size %d", padding_idx,
                             c->vocab_size);
        c->position_offset = padding_idx + 1;
        c->max_positions -= c->position_offset;
        /* Its tokenizers (byte-level BPE, SentencePiece Unigram) are
         * tokenizer.json's, run by the interpreter; a folder without one
         * (vocab.json + merges.txt, sentencepiece.bpe.model) converts
         * without a tokenizer: the model then takes token ids. */
        char tj[2048];
        snprintf(tj, sizeof tj, "%s/tokenizer.json", c->weights_dir);
        c->no_tokenizer = !exists(tj);
    }
    if (c->hidden % c->heads != 0)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "hidden size %d is not a multiple of %d heads",
                    c->hidden, c->heads);
    if (c->max_positions < 2)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "max_position_embeddings %d leaves no room for text",
                    c->max_positions + c->position_offset);
    return read_labels(c, cfg, err, errlen);
}

eng_status cv_config_check_limits(const cv_config *c, char *err, size_t errlen)
{
    static const struct { const char *what; int max; } lim[] = {
        {"hidden size", ENG__MAX_HIDDEN}, {"layer count", ENG__MAX_LAYERS},
        {"head count", ENG__MAX_HEADS}, {"intermediate size", ENG__MAX_INTERMEDIATE},
        {"position count", ENG__MAX_POSITIONS}, {"vocabulary size", ENG__MAX_VOCAB},
        {"label count", ENG__MAX_LABELS},
    };
    const int have[] = {c->hidden, c->layers, c->heads, c->intermediate, c->max_positions,
                        c->vocab_size, c->n_labels};
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
        if (have[i] > lim[i].max)
            return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen,
                        "%s %d is above this engine's limit of %d", lim[i].what, have[i],
                        lim[i].max);
    return ENG_OK;
}

/* ---- Vocabulary and tokenizer settings --------------------------------- */

static eng_status push_token(char ***v, int *n, int *cap, const char *tok, size_t len)
{
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 1024;
        char **nv = realloc(*v, (size_t)nc * sizeof *nv);
        if (!nv)
            return ENG_ERR_NOMEM;
        *v = nv;
        *cap = nc;
    }
    char *t = malloc(len + 1);
    if (!t)
        return ENG_ERR_NOMEM;
    memcpy(t, tok, len);
    t[len] = '\0';
    (*v)[(*n)++] = t;
    return ENG_OK;
}

eng_status cv_vocab_read_txt(const char *path, cv_config *c, char *err, size_t errlen)
{
    size_t len;
    char *text = slurp(path, &len);
    if (!text)
        return eng__errf(ENG_ERR_IO, err, errlen, "cannot read %s: %s", path, strerror(errno));
    char **v = NULL;
    int n = 0, cap = 0;
    eng_status s = ENG_OK;
    /* Like HF's load_vocab: one token a line, only the '\n' stripped, and a
     * final newline does not make an empty last token. */
    for (size_t i = 0; i < len && s == ENG_OK;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        if (memchr(text + i, '\0', end - i))
            s = eng__errf(ENG_ERR_FORMAT, err, errlen, "%s: NUL byte in line %d", path, n + 1);
        else if (push_token(&v, &n, &cap, text + i, end - i) != ENG_OK)
            s = eng__errf(ENG_ERR_NOMEM, err, errlen, "out of memory reading %s", path);
        i = end + 1;
    }
    free(text);
    if (s == ENG_OK && n == 0)
        s = eng__errf(ENG_ERR_FORMAT, err, errlen, "%s is empty", path);
    if (s != ENG_OK) {
        free_strings(v, n);
        return s;
    }
    free_strings(c->vocab, c->n_vocab);
    c->vocab = v;
    c->n_vocab = n;
    return ENG_OK;
}

eng_status cv_check_specials(const cv_config *c, char *err, size_t errlen)
{
    const char *specials[4] = {c->unk, c->cls, c->sep, c->pad};
    for (int k = 0; k < 4; k++) {
        int found = 0;
        for (int i = 0; i < c->n_vocab && !found; i++)
            found = strcmp(c->vocab[i], specials[k]) == 0;
        if (!found)
            return eng__errf(ENG_ERR_FORMAT, err, errlen, "special token %s is not in the vocabulary",
                        specials[k]);
    }
    return ENG_OK;
}

/* tokenizer.json's WordPiece model.vocab (token -> id, ids dense from 0). */
static eng_status vocab_from_tokenizer_json(const cJSON *tj, cv_config *c, char *err, size_t errlen)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    const char *type = get_str(model, "type", "?");
    if (strcmp(type, "WordPiece") != 0)
        return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen,
                    "tokenizer.json: unsupported tokenizer model '%s' (WordPiece only)", type);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *e;
    int n = cJSON_GetArraySize(vocab);
    if (!cJSON_IsObject(vocab) || n == 0 || n > 1 << 24)
        return eng__errf(ENG_ERR_FORMAT, err, errlen, "tokenizer.json: model.vocab is missing or empty");
    char **v = calloc((size_t)n, sizeof *v);
    if (!v)
        return ENG_ERR_NOMEM;
    eng_status s = ENG_OK;
    cJSON_ArrayForEach(e, vocab)
    {
        double id = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (id < 0 || id >= n || id != (double)(int)id || v[(int)id] || strchr(e->string, '\n')) {
            s = eng__errf(ENG_ERR_FORMAT, err, errlen,
                     "tokenizer.json: vocab ids must be 0..%d, once each", n - 1);
            break;
        }
        if (!(v[(int)id] = strdup(e->string))) {
            s = ENG_ERR_NOMEM;
            break;
        }
    }
    if (s != ENG_OK) {
        free_strings(v, n);
        return s;
    }
    free_strings(c->vocab, c->n_vocab);
    c->vocab = v;
    c->n_vocab = n;
    return ENG_OK;
}

static void tokenizer_json_settings(const cJSON *tj, cv_config *c)
{
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(tj, "normalizer");
    if (cJSON_IsObject(norm) && strcmp(get_str(norm, "type", ""), "BertNormalizer") == 0) {
        get_bool(norm, "lowercase", &c->lowercase);
        get_bool(norm, "strip_accents", &c->strip_accents);
        get_bool(norm, "handle_chinese_chars", &c->chinese_chars);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    int m = 0;
    if (get_int(model, "max_input_chars_per_word", 100, 1 << 20, &m, NULL, 0) == ENG_OK)
        c->max_chars_per_word = m;
    snprintf(c->unk, sizeof c->unk, "%s", get_str(model, "unk_token", c->unk));
}

/* A special token setting: a string, or an AddedToken object {"content": ...}. */
static void special(const cJSON *tc, const char *key, char *dst)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(tc, key);
    if (cJSON_IsObject(x))
        x = cJSON_GetObjectItemCaseSensitive(x, "content");
    if (cJSON_IsString(x))
        snprintf(dst, CV_TOKEN_MAX, "%s", x->valuestring);
}

/* Whether the WordPiece fast path (src/text/tokenizer.c) gives the same ids
 * as tokenizer.json: BertNormalizer, BertPreTokenizer, WordPiece, a
 * [CLS] $A [SEP] post-processor, and no added tokens besides the specials
 * the fast path matches (unk, cls, sep, pad and [MASK]). */
static int wordpiece_fast_path(const cJSON *tj)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(tj, "model");
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(tj, "post_processor");
    if (strcmp(get_str(cJSON_GetObjectItemCaseSensitive(tj, "normalizer"), "type", ""), "BertNormalizer") ||
        strcmp(get_str(cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer"), "type", ""), "BertPreTokenizer") ||
        strcmp(get_str(m, "type", "WordPiece"), "WordPiece"))
        return 0;
    const char *pt = get_str(pp, "type", "");
    const char *cls = "[CLS]", *sep = "[SEP]";
    if (strcmp(pt, "BertProcessing") == 0) {
        const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "cls"), 0);
        const cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "sep"), 0);
        if (!cJSON_IsString(a) || !cJSON_IsString(b))
            return 0;
        cls = a->valuestring, sep = b->valuestring;
    } else if (strcmp(pt, "TemplateProcessing") == 0) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 0), "SpecialToken");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 1), "Sequence");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 2), "SpecialToken");
        if (cJSON_GetArraySize(single) != 3 || !a || !q || !b || strcmp(get_str(q, "id", ""), "A"))
            return 0;
        cls = get_str(a, "id", ""), sep = get_str(b, "id", "");
    } else {
        return 0;
    }
    const char *unk = get_str(m, "unk_token", "[UNK]");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tj, "added_tokens"))
    {
        const char *t = get_str(e, "content", "");
        if (strcmp(t, unk) && strcmp(t, cls) && strcmp(t, sep) && strcmp(t, "[PAD]") && strcmp(t, "[MASK]"))
            return 0;
    }
    return 1;
}

/* Parses tokenizer.json with the interpreter: unsupported components are
 * refused by name here, at conversion, and the pipeline is kept for the
 * report. Takes the text when the fast path cannot represent it. */
static eng_status interpret_tokenizer_json(const char *dir, const cJSON *tj, cv_config *c, char *err,
                                           size_t errlen)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    size_t len;
    char *text = slurp(path, &len);
    if (!text)
        return eng__errf(ENG_ERR_IO, err, errlen, "cannot read %s: %s", path, strerror(errno));
    eng__tokjson *t;
    char terr[512];
    eng_status s = eng__tokjson_init(&t, text, len, terr, sizeof terr);
    if (s != ENG_OK) {
        free(text);
        return eng__errf(s, err, errlen, "%s: %s", path, terr);
    }
    eng__tokjson_describe(t, c->tok_pipeline, sizeof c->tok_pipeline);
    c->tok_json_vocab = eng__tokjson_vocab_size(t);
    eng__tokjson_free(t);
    if (wordpiece_fast_path(tj)) {
        free(text);
        return ENG_OK;
    }
    free(c->tok_json);
    c->tok_json = text;
    c->tok_json_len = len;
    return ENG_OK;
}

static eng_status read_tokenizer(const char *dir, cv_config *c, char *err, size_t errlen)
{
    cJSON *tj, *tc;
    eng_status s = load_json(dir, "tokenizer.json", 1, &tj, err, errlen);
    if (s != ENG_OK)
        return s;
    if (tj && (s = interpret_tokenizer_json(dir, tj, c, err, errlen)) != ENG_OK) {
        cJSON_Delete(tj);
        return s;
    }
    if (c->tok_json) {
        /* Everything the engine needs is in the embedded file. */
        cJSON_Delete(tj);
        return ENG_OK;
    }
    char path[2048];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if (exists(path))
        s = cv_vocab_read_txt(path, c, err, errlen);
    else if (tj)
        s = vocab_from_tokenizer_json(tj, c, err, errlen);
    else
        s = eng__errf(ENG_ERR_IO, err, errlen, "%s has neither vocab.txt nor tokenizer.json", dir);
    if (s == ENG_OK && tj)
        tokenizer_json_settings(tj, c);
    cJSON_Delete(tj);
    if (s != ENG_OK)
        return s;

    if ((s = load_json(dir, "tokenizer_config.json", 1, &tc, err, errlen)) != ENG_OK)
        return s;
    if (tc) {
        get_bool(tc, "do_lower_case", &c->lowercase);
        get_bool(tc, "strip_accents", &c->strip_accents);
        get_bool(tc, "tokenize_chinese_chars", &c->chinese_chars);
        special(tc, "unk_token", c->unk);
        special(tc, "cls_token", c->cls);
        special(tc, "sep_token", c->sep);
        special(tc, "pad_token", c->pad);
        cJSON_Delete(tc);
    }
    if (c->strip_accents < 0)
        c->strip_accents = c->lowercase;   /* BertNormalizer: None follows lowercase */

    return cv_check_specials(c, err, errlen);
}

/* ---- sentence-transformers --------------------------------------------- */

static eng_status read_pooling(const char *dir, const char *sub, cv_config *c, char *err,
                               size_t errlen)
{
    char pdir[2048];
    snprintf(pdir, sizeof pdir, "%s/%s", dir, sub);
    cJSON *p;
    eng_status s = load_json(pdir, "config.json", 0, &p, err, errlen);
    if (s != ENG_OK)
        return s;
    int mean = 0, cls = 0, other = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, p)
    {
        if (strncmp(e->string, "pooling_mode_", 13) != 0 || !cJSON_IsTrue(e))
            continue;
        if (strcmp(e->string, "pooling_mode_mean_tokens") == 0)
            mean = 1;
        else if (strcmp(e->string, "pooling_mode_cls_token") == 0)
            cls = 1;
        else if (!other) {
            other = 1;
            s = eng__errf(ENG_ERR_UNSUPPORTED, err, errlen, "unsupported pooling mode %s", e->string);
        }
    }
    cJSON_Delete(p);
    if (s != ENG_OK)
        return s;
    if (mean + cls != 1)
        return eng__errf(ENG_ERR_UNSUPPORTED, err, errlen,
                    "%s/config.json: exactly one of mean or cls pooling is supported", sub);
    snprintf(c->pooling, sizeof c->pooling, "%s", cls ? "cls" : "mean");
    return ENG_OK;
}

static eng_status read_modules(const char *dir, cv_config *c, char *err, size_t errlen)
{
    cJSON *m;
    eng_status s = load_json(dir, "modules.json", 1, &m, err, errlen);
    if (s != ENG_OK || !m)
        return s;
    const cJSON *e;
    const char *prefix = "sentence_transformers.models.";
    cJSON_ArrayForEach(e, m)
    {
        const char *type = get_str(e, "type", "?"), *path = get_str(e, "path", "");
        const char *t = strncmp(type, prefix, strlen(prefix)) == 0 ? type + strlen(prefix) : type;
        if (strstr(path, ".."))
            s = eng__errf(ENG_ERR_FORMAT, err, errlen, "modules.json: module path '%s' leaves the folder",
                     path);
        else if (strcmp(t, "Transformer") == 0) {
            if (*path)
                snprintf(c->weights_dir, sizeof c->weights_dir, "%s/%s", dir, path);
        } else if (strcmp(t, "Pooling") == 0)
            s = read_pooling(dir, path, c, err, errlen);
        else if (strcmp(t, "Normalize") == 0)
            c->normalize = 1;
        else
            s = eng__errf(ENG_ERR_UNSUPPORTED, err, errlen, "unsupported sentence-transformers module %s",
                     type);
        if (s != ENG_OK)
            break;
    }
    cJSON_Delete(m);
    return s;
}

eng_status cv_config_read(const char *dir, cv_config *c, char *err, size_t errlen)
{
    cv_config_init(c);
    snprintf(c->source, sizeof c->source, "%s", dir);
    snprintf(c->weights_dir, sizeof c->weights_dir, "%s", dir);
    eng_status s = read_modules(dir, c, err, errlen);
    cJSON *cfg = NULL;
    if (s == ENG_OK)
        s = load_json(c->weights_dir, "config.json", 0, &cfg, err, errlen);
    if (s == ENG_OK)
        s = read_model_config(c, cfg, err, errlen);
    cJSON_Delete(cfg);
    /* sentence-transformers keeps the tokenizer beside the transformer. */
    if (s == ENG_OK && !c->no_tokenizer)
        s = read_tokenizer(c->weights_dir, c, err, errlen);
    if (s == ENG_OK && c->n_vocab > c->vocab_size)
        s = eng__errf(ENG_ERR_FORMAT, err, errlen,
                 "the vocabulary has %d tokens but config.json's vocab_size is %d", c->n_vocab,
                 c->vocab_size);
    if (s != ENG_OK)
        cv_config_free(c);
    return s;
}

/* ---- Metadata JSON -------------------------------------------------------- */

char *cv_config_meta_json(const cv_config *c)
{
    cJSON *o = cJSON_CreateObject(), *tok = cJSON_CreateObject();
    /* cJSON_CreateStringArray refuses an empty list. */
    cJSON *labels = c->n_labels ? cJSON_CreateStringArray((const char *const *)c->labels, c->n_labels)
                                : cJSON_CreateArray();
    if (!o || !tok || !labels) {
        cJSON_Delete(o);
        cJSON_Delete(tok);
        cJSON_Delete(labels);
        return NULL;
    }
    cJSON_AddStringToObject(o, "format", "eng");
    cJSON_AddStringToObject(o, "kind", "text");
    cJSON_AddStringToObject(o, "arch", c->arch);
    cJSON_AddNumberToObject(o, "hidden", c->hidden);
    cJSON_AddNumberToObject(o, "layers", c->layers);
    cJSON_AddNumberToObject(o, "heads", c->heads);
    cJSON_AddNumberToObject(o, "intermediate", c->intermediate);
    cJSON_AddNumberToObject(o, "max_positions", c->max_positions);
    if (c->position_offset)
        cJSON_AddNumberToObject(o, "position_offset", c->position_offset);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddStringToObject(o, "act", c->act);
    cJSON_AddNumberToObject(o, "ln_eps", c->ln_eps);
    cJSON_AddStringToObject(o, "head", c->head);
    cJSON_AddItemToObject(o, "labels", labels);
    cJSON_AddStringToObject(o, "pooling", c->pooling);
    cJSON_AddBoolToObject(o, "normalize", c->normalize);
    cJSON_AddStringToObject(o, "weights", c->weights);
    if (c->no_tokenizer) {
        cJSON_AddStringToObject(tok, "type", "none");
    } else if (c->tok_json) {
        cJSON_AddStringToObject(tok, "type", "tokenizer.json");
    } else {
        cJSON_AddBoolToObject(tok, "lowercase", c->lowercase);
        cJSON_AddBoolToObject(tok, "strip_accents", c->strip_accents > 0);
        cJSON_AddBoolToObject(tok, "chinese_chars", c->chinese_chars);
        cJSON_AddNumberToObject(tok, "max_chars_per_word", c->max_chars_per_word);
        cJSON_AddStringToObject(tok, "unk", c->unk);
        cJSON_AddStringToObject(tok, "cls", c->cls);
        cJSON_AddStringToObject(tok, "sep", c->sep);
        cJSON_AddStringToObject(tok, "pad", c->pad);
    }
    cJSON_AddItemToObject(o, "tokenizer", tok);
    cJSON_AddStringToObject(o, "source", c->source);
    cJSON_AddStringToObject(o, "converter", "engine-convert 1");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}
