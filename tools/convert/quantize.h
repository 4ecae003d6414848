/* quantize.h: the converter's int8 weight quantizer (scheme in
 * src/text/linear_int8.h). */
#ifndef ENG_QUANTIZE_H
#define ENG_QUANTIZE_H

#include "linear_int8.h"

/* Quantizes w (K x N row-major, the fp32 layout) into wq (packed,
 * eng__quantized_weight_bytes(K, N) bytes), scale (N) and wsum (N, or NULL).
 * ENG_ERR_INVALID_ARG for a bad shape or a non-finite weight. */
eng_status eng__quantize_weights(const float *w, int K, int N, int8_t *wq, float *scale,
                                 int32_t *wsum);

#endif
