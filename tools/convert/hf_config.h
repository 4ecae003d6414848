/* hf_config.h: what the converter knows about a model before it reads the
 * weights: the architecture and shape from config.json, the tokenizer
 * (vocab.txt or tokenizer.json, tokenizer_config.json) and sentence-transformers
 * pooling; and the metadata JSON of the .eng file made from it. */
#ifndef CV_HF_CONFIG_H
#define CV_HF_CONFIG_H

#include <stddef.h>

#include "engine.h"

#define CV_TOKEN_MAX 64

typedef struct {
    char arch[16];          /* config.json's model_type: "bert", "distilbert", "roberta",
                               "xlm-roberta" or "camembert" */
    char prefix[16];        /* the checkpoint's base model prefix ("bert", "roberta", ...) */
    char head_dense[32], head_out[32]; /* the classification head's Linear layers */
    int hidden, layers, heads, intermediate, vocab_size;
    int max_positions;      /* the engine's: the longest sequence, position_offset excluded */
    int position_offset;    /* position i is row position_offset + i of the checkpoint's
                               position embeddings: 0, or RoBERTa's padding_idx + 1 */
    int type_vocab_size;    /* BERT's token_type_embeddings rows */
    char act[16];           /* engine name: "gelu", "gelu_tanh" or "relu" */
    double ln_eps;
    int classifier;         /* the architecture has a classification head */
    char head[16];          /* "none", "bert_pooler" or "distilbert"; set by the layout */
    char **labels;          /* config id2label in id order; the layout settles them */
    int n_labels;
    char pooling[8];        /* "mean" or "cls" */
    char weights[8];        /* "fp32" or "int8": how the encoder's linear layers
                               are stored (cv_weights_check) */
    int normalize;
    int no_tokenizer;       /* the folder has no tokenizer convert reads (a RoBERTa-family
                               folder without tokenizer.json): the file carries none, the
                               model takes token ids */
    int lowercase, strip_accents, chinese_chars, max_chars_per_word;
    char unk[CV_TOKEN_MAX], cls[CV_TOKEN_MAX], sep[CV_TOKEN_MAX], pad[CV_TOKEN_MAX];
    char **vocab;           /* tokens in id order */
    int n_vocab;
    /* tokenizer.json run by the interpreter (src/text/tokjson.h), embedded
     * verbatim as "tok.json" when the WordPiece fast path cannot represent
     * it (tok_json non-NULL; vocab is then unused). */
    char *tok_json;
    size_t tok_json_len;
    int tok_json_vocab;     /* its largest id + 1 */
    char tok_pipeline[1024];   /* the tokenizer.json pipeline, for convert's report */
    char source[512];       /* the HF folder or the synthetic model's name */
    char weights_dir[1024]; /* where config.json and the weights are */
} cv_config;

/* Defaults for everything but the shape: HF BertTokenizer settings, mean
 * pooling, no normalisation, no labels. */
void cv_config_init(cv_config *c);

/* Reads an HF model folder (see docs/FORMAT.md for what is taken from where).
 * Refuses unsupported architectures and options by name. */
eng_status cv_config_read(const char *dir, cv_config *c, char *err, size_t errlen);

/* Reads a vocab.txt (one token a line, id = line number) into c->vocab. */
eng_status cv_vocab_read_txt(const char *path, cv_config *c, char *err, size_t errlen);

/* ENG_ERR_FORMAT unless c->unk, cls, sep and pad are all in c->vocab. */
eng_status cv_check_specials(const cv_config *c, char *err, size_t errlen);

/* Replaces c->labels with n copies of names (or LABEL_0.. when names is NULL). */
eng_status cv_config_set_labels(cv_config *c, int n, const char *const *names);

/* ENG_ERR_UNSUPPORTED, naming the first size above src/core/model_limits.h,
 * the limits the engine loads models within; checked before a file is
 * written so convert never writes a model engine refuses. */
eng_status cv_config_check_limits(const cv_config *c, char *err, size_t errlen);

/* The .eng metadata JSON (malloc'd, NULL when out of memory). */
char *cv_config_meta_json(const cv_config *c);

void cv_config_free(cv_config *c);

#endif
