/* cuda_dispatch.h: the CPU side's hooks into the CUDA backend, for
 * eng_ctx_init (src/core/ctx.c) and the text kind (src/text/text.c, run.c). Always compiled; in a
 * build without CUDA they refuse with ENG_ERR_NO_DEVICE. */
#ifndef ENG_CUDA_DISPATCH_H
#define ENG_CUDA_DISPATCH_H

#include <stddef.h>

#include "engine.h"

typedef struct eng__text_ctx eng__text_ctx;   /* src/text/text.h */

/* Checks params->device, device_index and precision before anything is
 * allocated: unknown values are ENG_ERR_INVALID_ARG, a CPU context with a
 * precision other than fp32 and a model whose kind runs on the CPU only
 * are ENG_ERR_UNSUPPORTED. Reports through eng__fail. */
eng_status eng__device_check(const eng_model *m, const eng_ctx_params *params);

/* Makes c (a complete CPU text context) a CUDA context: sets c->gpu. On
 * failure c is unchanged and eng_last_error() says why. */
eng_status eng__cuda_ctx_init(eng__text_ctx *c, const eng_ctx_params *params);
void eng__cuda_ctx_free(eng__text_ctx *c);   /* frees c->gpu; fine on a CPU context */

/* Runs the cn sequences of c->chunk_seqs on the GPU, writing row j's results
 * at row c->seq_index[j] of out (logits or embedding), probs and labels (each
 * may be NULL). When the GPU fails, every item of the chunk fails with the
 * returned status (outputs zeroed, label -1, item_status set when given) and
 * the reason goes to err (may be NULL). */
eng_status eng__cuda_encode_and_head(eng__text_ctx *c, int cn, int want_logits, float *out, float *probs,
                                     int *labels, eng_status *item_status, char *err,
                                     size_t errlen);

#endif
