/* quantize.c: the int8 weight quantizer and packer of the converter; the
 * scheme is src/text/linear_int8.h's, the packed layout kernels/qgemm.h's. */
#include <math.h>
#include <string.h>

#include "error.h"
#include "quantize.h"

eng_status eng__quantize_weights(const float *w, int K, int N, int8_t *wq, float *scale,
                                 int32_t *wsum)
{
    size_t bytes = eng__quantized_weight_bytes(K, N);
    if (!w || !wq || !scale || bytes == 0)
        return eng__fail(ENG_ERR_INVALID_ARG, "quantize: bad %d x %d weight matrix", K, N);
    for (int n = 0; n < N; n++)
        scale[n] = 0.0f;
    /* Row by row, so the K x N matrix is read in order. */
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++) {
            float v = w[(size_t)k * N + n];
            if (!isfinite(v))
                return eng__fail(ENG_ERR_INVALID_ARG, "quantize: weight [%d,%d] is not finite",
                                 k, n);
            scale[n] = fmaxf(scale[n], fabsf(v));
        }
    for (int n = 0; n < N; n++)
        scale[n] /= 127.0f;
    memset(wq, 0, bytes);
    if (wsum)
        memset(wsum, 0, (size_t)N * sizeof *wsum);
    /* Groups of 4 k per row of a panel, K rounded up (kernels/qgemm.h). */
    const size_t k4 = (size_t)(K + 3) / 4;
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++) {
            /* In double, so the rounding error stays within scale/2 exactly;
             * an all-zero column has scale 0 and quantizes to 0. */
            long q = scale[n] > 0.0f ? lrint((double)w[(size_t)k * N + n] / scale[n]) : 0;
            q = q < -127 ? -127 : q > 127 ? 127 : q;
            wq[(((size_t)(n / 16) * k4 + (size_t)k / 4) * 16 + (size_t)n % 16) * 4 + k % 4] =
                (int8_t)q;
            if (wsum)
                wsum[n] += (int32_t)q;
        }
    return ENG_OK;
}
