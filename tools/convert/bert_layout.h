/* bert_layout.h: Hugging Face BERT/DistilBERT tensors laid out as the engine's
 * tensors (docs/FORMAT.md), and the whole HF-folder-to-.eng conversion. */
#ifndef CV_BERT_LAYOUT_H
#define CV_BERT_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "writer.h"
#include "hf_config.h"
#include "source.h"

typedef struct {
    int n_tensors;
    uint64_t bytes;   /* size of the written file */
} cv_report;

/* Checks every tensor the config implies against s (name, dtype, shape),
 * decides the head and labels (c->head, c->labels) and adds the engine
 * tensors to w. */
eng_status cv_layout_bert(cv_config *c, const src_tensors *s, eng__writer *w, int *n_added,
                          char *err, size_t errlen);

/* ENG_OK when weights is "fp32", "bf16" or "int8" (the forms cv_config.weights
 * takes), else ENG_ERR_INVALID_ARG naming it. */
eng_status cv_weights_check(const char *weights, char *err, size_t errlen);

/* Adds the weight of linear layer `name` from wt (K x N row-major fp32, the
 * engine's [in, out] layout) in the form `weights` names: "fp32" as
 * "<name>.w" F32 [ceil(N/16), K, 16] (packed by eng__sgemm_pack,
 * kernels/sgemm.h); "bf16" as "<name>.w" BF16 [ceil(N/16), Kp/2, 32]
 * (eng__bgemm_pack, kernels/bgemm.h); "int8" as "<name>.w" I8 (packed), "<name>.w.scale" F32
 * [N] and "<name>.w.sum" I32 [N] (src/text/linear_int8.h). *n_added grows by the
 * tensors added. */
eng_status cv_add_linear_weight(eng__writer *w, const char *name, const float *wt, int K, int N,
                                const char *weights, int *n_added, char *err, size_t errlen);

/* The "tok.vocab" tensor: c->vocab joined by '\n'. */
eng_status cv_add_vocab(const cv_config *c, eng__writer *w, char *err, size_t errlen);

/* The tensors of dir/model.safetensors, else dir/pytorch_model.bin. */
eng_status cv_load_weights(const char *dir, src_tensors *s, char *err, size_t errlen);
/* Writes w with c's metadata to out (atomically) and fills r->bytes. */
eng_status cv_save(const cv_config *c, eng__writer *w, const char *out, cv_report *r, char *err,
                   size_t errlen);

/* Converts an HF folder to out with the encoder's linear layers stored as
 * `weights` ("fp32" or "int8"; NULL is "fp32"; embeddings, LayerNorms, biases
 * and the head stay fp32). On success c describes the model (free it with
 * cv_config_free); on failure nothing is left at out and c is empty. */
eng_status cv_convert_hf_as(const char *dir, const char *weights, const char *out, cv_config *c,
                            cv_report *r, char *err, size_t errlen);

/* cv_convert_hf_as with fp32 weights. */
eng_status cv_convert_hf(const char *dir, const char *out, cv_config *c, cv_report *r, char *err,
                         size_t errlen);

#endif
