/* vit.h: the vision-transformer kind (eng__kind_vit, vit.c): Hugging Face's
 * ViTForImageClassification / ViTModel ("arch": "vit") and CLIPModel
 * ("arch": "clip"), from a .eng file written by tools/convert/vit_layout.c. Internal.
 *
 * Metadata (docs/FORMAT.md, "ViT and CLIP"):
 *   "kind": "vit", "arch": "vit"|"clip",
 *   "image": {"resize", "crop", "mean"[3], "std"[3], "filter": "bilinear"|"bicubic",
 *             "square": 0|1, "crop_floor": 0|1, "rescale": factor},
 *   "vision": {"hidden", "layers", "heads", "intermediate", "act", "eps",
 *              "patch", "image_size", "pre_ln": 0|1},
 *   ViT: "head": "classifier"|"pooler"|"none", "num_classes", "labels"[];
 *   CLIP: "projection", "text": {"hidden", "layers", "heads", "intermediate",
 *         "act", "eps", "vocab", "positions", "eos_id"}.
 * Tensors (F32 unless a linear layer's weight is stored bf16/int8; linear
 * layers as src/text/linear.h binds them, [in, out]):
 *   v.patch (3 p p -> H, the unfolded patch in (channel, row, column) order),
 *   v.cls [H], v.pos [patches + 1, H], v.pre_ln.g/.b (CLIP), the tower "v"
 *   (tower.h), v.ln.g/.b (ViT's final layernorm, CLIP's post_layernorm);
 *   ViT: head (classifier, H -> classes) or pooler (H -> H, tanh);
 *   CLIP: v.proj (H -> D), t.emb [vocab, Ht], t.pos [positions, Ht], the
 *   tower "t", t.ln.g/.b, t.proj (Ht -> D), logit_scale [1] (before exp),
 *   tok.json (U8, optional: the folder's tokenizer.json, for texts). */
#ifndef ENG_VIT_H
#define ENG_VIT_H

#include "engine.h"

#include <pthread.h>

#include "image.h"
#include "linear.h"
#include "tokenizer.h"
#include "tower.h"

typedef enum { VIT_HEAD_NONE, VIT_HEAD_CLASSIFIER, VIT_HEAD_POOLER } eng__vit_head;

typedef struct eng__zs_entry eng__zs_entry;

typedef struct {
    const eng__file *file;
    int clip; /* arch "clip", else "vit" */
    eng__image_spec spec;
    int image_size, patch, grid; /* grid: patches per image */
    eng__tower vis;
    eng__linear patch_lin;
    const float *cls, *pos, *pre_g, *pre_b, *ln_g, *ln_b;
    eng__vit_head head;
    eng__linear head_lin; /* ViT: classifier or pooler */
    int n_labels;
    char **labels;
    int embed_size; /* eng_embed_* output width */
    /* CLIP */
    eng__linear vproj, tproj;
    eng__tower txt;
    const float *tok_emb, *tpos, *tln_g, *tln_b;
    int vocab, positions, eos_id;
    eng__tokenizer *tok; /* from "tok.json"; NULL without one (ids only) */
    float logit_scale; /* exp of the stored value */
    char gemm_name[96];
    /* The zero-shot class-embedding cache (zeroshot.c), shared by every
     * context of the model, under mu; mu also serialises the weights made at
     * a first context of the other precision (vit.c, vit_prepare). */
    pthread_mutex_t mu;
    eng__zs_entry *zs_head; /* most recently used first */
    int zs_entries;
    uint64_t zs_hits, zs_misses;
} eng__vit_model;

/* The image embeddings of n (<= the context's max_batch_images) images
 * already preprocessed (pixels: n x 3 x S x S), to out (n x embed_size): the
 * network alone, for bench/clip_bench.c. ENG_ERR_INVALID_ARG for another
 * kind or too many images. */
eng_status eng__vit_embed_pixels(eng_ctx *c, const float *pixels, int n, float *out);

/* A context's zero-shot scratch (zeroshot.c): one block, grown to the
 * largest call yet and freed with the context. */
typedef struct {
    void *p;
    size_t cap; /* bytes */
} eng__zs_scratch;

/* c's zero-shot scratch (c: a context of this kind). */
eng__zs_scratch *eng__vit_ctx_zs(eng_ctx *c);

/* Whether c (a context of this kind) computes at bf16 precision. */
int eng__vit_ctx_bf16(const eng_ctx *c);

/* Frees the zero-shot cache (model teardown). */
void eng__zs_free(eng__vit_model *m);

#endif
