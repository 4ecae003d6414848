/* text.h: the text kind (BERT, DistilBERT encoders and their heads): its
 * model, bound in place to the mapped file, and its context's scratch. The
 * kind's operations are eng__kind_text (text.c); the encoder and the heads are
 * forward.c, the batch runner run.c. Internal. */
#ifndef ENG_TEXT_H
#define ENG_TEXT_H

#include "engine.h"
#include "format.h"
#include "bgemm.h"
#include "kernels.h"
#include "kind.h"
#include "linear.h"
#include "team.h"
#include "tokenizer.h"

typedef enum { ENG_HEAD_NONE, ENG_HEAD_BERT_POOLER, ENG_HEAD_DISTILBERT } eng__head;
typedef enum { ENG_POOL_MEAN, ENG_POOL_CLS } eng__pooling;

typedef struct {
    const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
    eng__linear qkv, attn_out, ffn_in, ffn_out;
} eng__layer;

typedef struct {
    const eng__file *file;   /* the eng_model's, mapped while this lives */
    char arch[16];
    char weights[8];         /* "fp32", "bf16" or "int8", from the metadata */
    char gemm_name[160];     /* eng_model_gemm_name() */
    int hidden, layers, heads, intermediate, max_positions, vocab_size;
    eng__act act;
    float ln_eps;
    eng__head head;
    eng__pooling pooling;
    int normalize;

    const float *word_emb;   /* [vocab, hidden] */
    const float *pos_emb;    /* [max_positions, hidden], token type 0 folded in */
    const float *emb_ln_g, *emb_ln_b;
    eng__layer *layer;       /* [layers] */
    eng__linear head_dense, head_out;

    int n_labels;
    char **labels;
    eng__tokenizer *tok;
} eng__text_model;

typedef struct eng__text_ctx {
    const eng__text_model *model;
    const eng__kernels *kern;   /* the eng_ctx's */
    const eng__bgemm_kernels *bgemm; /* bf16 precision: the GEMM unit; fp32: NULL */
    eng__team *team;            /* the eng_ctx's */
    char *error;                /* the eng_ctx's, ENG__ERROR_LEN bytes */
    int max_tokens;             /* token capacity of one internal forward pass */

    /* Scratch, sized once in ctx_create: T = max_tokens. */
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
    int *seq_off;            /* [T]: first token of each packed sequence */
    int *seq_len;            /* [T] */
    int *seq_index;          /* [T]: caller index of each packed sequence */
    eng_seq *chunk_seqs;     /* [T]: the sequences of one packed chunk */
    int32_t *text_ids;       /* [T + max_positions]: token ids of texts */
    eng_seq *text_seqs;      /* [T] */
    eng_status *text_status; /* [T]: tokenization status of each text */

    /* A CUDA context's GPU state (src/cuda/, eng__gpu_ctx); NULL on the CPU.
     * Set by eng__cuda_ctx_init (text_gpu.h). */
    void *gpu;
} eng__text_ctx;

/* Each team member's share of ctx->scores, in floats. */
size_t eng__attention_scratch_floats(const eng__text_model *m);

/* Runs the encoder over n packed sequences (sum of lengths <= max_tokens) on
 * the context's team; leaves the last hidden state in ctx->h. */
void eng__encode(eng__text_ctx *ctx, const eng_seq *seqs, int n);

/* The heads, over the cn sequences eng__encode just ran (row j's results go
 * to row ctx->seq_index[j]): the classifier (logits, probs and labels may be
 * NULL but logits) and the pooling (mean or [CLS], L2-normalised when the
 * model says so). */
void eng__classify_head(eng__text_ctx *ctx, int cn, float *logits, float *probs, int *labels);
void eng__embed_head(eng__text_ctx *ctx, int cn, float *out);

/* The kind's run operation (run.c). */
eng_status eng__text_run(eng_ctx *c, const eng__batch *b);

#endif
