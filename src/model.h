/* model.h: the loaded model (immutable, shared by threads) and the per-worker
 * context (scratch sized once). Internal. */
#ifndef ENG_MODEL_H
#define ENG_MODEL_H

#include "cnn.h"
#include "engine.h"
#include "format.h"
#include "kernels.h"
#include "linear.h"
#include "team.h"
#include "tokenizer.h"

typedef enum { ENG_HEAD_NONE, ENG_HEAD_BERT_POOLER, ENG_HEAD_DISTILBERT } eng__head;
typedef enum { ENG_POOL_MEAN, ENG_POOL_CLS } eng__pooling;

typedef struct {
    const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
    eng__linear qkv, attn_out, ffn_in, ffn_out;
} eng__layer;

struct eng_model {
    eng__file file;
    char arch[16];
    char weights[8];         /* "fp32" or "int8", from the metadata */
    char gemm_name[160];     /* eng_model_gemm_name() */
    int hidden, layers, heads, intermediate, max_positions, vocab_size;
    eng__act act;
    float ln_eps;
    eng__head head;
    eng__pooling pooling;
    int normalize;
    int n_threads;

    const float *word_emb;   /* [vocab, hidden] */
    const float *pos_emb;    /* [max_positions, hidden], token type 0 folded in */
    const float *emb_ln_g, *emb_ln_b;
    eng__layer *layer;       /* [layers] */
    eng__linear head_dense, head_out;

    int n_labels;
    char **labels;
    eng__tokenizer *tok;

    eng__cnn *cnn;           /* image models: everything above but file unused */
};

struct eng_ctx {
    const eng_model *model;
    const eng__kernels *kern;
    const eng__bgemm_kernels *bgemm; /* bf16 precision: the GEMM unit; fp32: NULL */
    int max_tokens;          /* token capacity of one internal forward pass */
    char error[512];

    /* Scratch, sized once in eng_ctx_init: T = max_tokens. */
    float *h;                /* [T, hidden] */
    float *tmp;              /* [T, hidden] */
    float *attn;             /* [T, hidden] */
    float *qkv;              /* [T, 3 hidden] */
    float *ffn;              /* [T, intermediate] */
    float *scores;           /* [threads][max_positions, max_positions] */
    float *pooled;           /* [T, hidden]: one row per sequence */
    float *pooled2;          /* [T, hidden] */
    void *lin_scratch;       /* [threads][lin_scratch_bytes] */
    size_t lin_scratch_bytes;
    int32_t *tok_id;         /* [T]: token id of each packed row */
    int *tok_pos;            /* [T]: its position in its sequence */
    eng__team *team;         /* the threads this context computes with */
    int *seq_off;            /* [T]: first token of each packed sequence */
    int *seq_len;            /* [T] */
    int *seq_index;          /* [T]: caller index of each packed sequence */
    eng_seq *chunk_seqs;     /* [T]: the sequences of one packed chunk */
    int32_t *text_ids;       /* [T + max_positions]: token ids of texts */
    eng_seq *text_seqs;      /* [T] */
    eng_status *text_status; /* [T]: tokenization status of each text */

    /* Image models: the CNN's scratch (its passes run on the team), the
     * decoded images of one pass and their logits. */
    eng__cnn_ctx *cnn_ctx;
    int max_images;
    float *images;           /* [max_images][3][crop][crop] */
    float *image_logits;     /* [max_images][n_labels] */
    int *image_index;        /* [max_images]: caller index of each decoded image */
    eng_status *image_status;   /* [max_images] */
    char (*image_error)[192];   /* [max_images]: why an image failed */

    /* A CUDA context's GPU state (src/cuda/, eng__gpu_ctx); NULL on the CPU.
     * Set by eng__cuda_ctx_init (src/cuda_dispatch.h). */
    void *gpu;
};

/* Makes the weights a context of precision bf16 or fp32 runs from, where the
 * file stores the other (eng__linear_prepare): once per model and precision,
 * at its first such context, from any thread; later contexts share them. */
eng_status eng__model_prepare(const eng_model *m, int bf16, char *err, size_t errlen);

/* The image-model part of eng_ctx_init / eng_ctx_free (api_image.c). */
eng_status eng__ctx_init_images(eng_ctx *c, const eng_ctx_params *p);
void eng__ctx_free_images(eng_ctx *c);

/* Runs the encoder over n packed sequences (sum of lengths <= max_tokens) on
 * the context's team; leaves the last hidden state in ctx->h. */
void eng__encode(eng_ctx *ctx, const eng_seq *seqs, int n);

#endif
