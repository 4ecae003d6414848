/* text_gpu.h: what the text kind needs from a GPU: the CUDA path of its
 * contexts. Declared here, by the kind that uses it, and implemented by
 * src/cuda/cuda_dispatch.c, so src/cuda depends on src/text and never the
 * other way round. Always linked; without the CUDA backend (cuda_backend.h)
 * eng__cuda_ctx_init refuses with ENG_ERR_NO_DEVICE and says why. */
#ifndef ENG_TEXT_GPU_H
#define ENG_TEXT_GPU_H

#include <stddef.h>

#include "engine.h"
#include "text.h"

/* Makes c (a complete CPU text context) a CUDA context: sets c->gpu. On
 * failure c->gpu stays NULL and eng_last_error() says why. */
eng_status eng__cuda_ctx_init(eng__text_ctx *c, const eng_ctx_params *params);
void eng__cuda_ctx_free(eng__text_ctx *c);   /* frees c->gpu; fine on a CPU context */

/* Runs the cn sequences of c->chunk_seqs on the GPU, writing row j's results
 * at row c->seq_index[j] of out (logits or embedding), probs and labels (each
 * may be NULL). When the GPU fails, every item of the chunk fails with the
 * returned status (outputs zeroed, label -1, item_status set when given) and
 * the reason goes to err (may be NULL). */
eng_status eng__cuda_encode_and_head(eng__text_ctx *c, int cn, int want_logits, float *out,
                                     float *probs, int *labels, eng_status *item_status,
                                     char *err, size_t errlen);

#endif
