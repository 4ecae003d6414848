/* resize_scalar.c: Pillow's two 8-bit resampling passes in plain C, the
 * fallback and the test reference for resize_vec.h. Shapes and arithmetic
 * are kernels.h's: sums in uint32_t, which wrap as Pillow's int32 sums do in
 * practice, without the undefined behaviour of signed overflow. */
#include "kernels_isa.h"

#define RESIZE_ROUND (1u << 21)   /* half of Pillow's 22 fraction bits */

static uint8_t clip8(uint32_t acc)
{
    int32_t v = (int32_t)acc;
    if (v >= (1 << 30))
        return 255;
    if (v <= 0)
        return 0;
    return (uint8_t)(v >> 22);
}

void eng__resize_h_scalar(const uint8_t *src, size_t sstride, int rows, int w, const int *bounds,
                          const int32_t *k, int ksize, uint8_t *dst, size_t dstride, int out)
{
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = src + (size_t)r * sstride;
        uint8_t *d = dst + (size_t)r * dstride;
        for (int j = 0; j < out; j++) {
            const int32_t *kj = k + (size_t)j * ksize;
            const uint8_t *s = row + (size_t)bounds[2 * j] * 3;
            uint32_t s0 = RESIZE_ROUND, s1 = s0, s2 = s0;
            for (int t = 0; t < bounds[2 * j + 1]; t++) {
                s0 += s[3 * t] * (uint32_t)kj[t];
                s1 += s[3 * t + 1] * (uint32_t)kj[t];
                s2 += s[3 * t + 2] * (uint32_t)kj[t];
            }
            d[3 * j] = clip8(s0);
            d[3 * j + 1] = clip8(s1);
            d[3 * j + 2] = clip8(s2);
        }
    }
}

void eng__resize_v_scalar(const uint8_t *src, size_t sstride, int n, const int32_t *k,
                          uint8_t *dst, int len)
{
    for (int i = 0; i < len; i++) {
        uint32_t acc = RESIZE_ROUND;
        for (int t = 0; t < n; t++)
            acc += src[(size_t)t * sstride + i] * (uint32_t)k[t];
        dst[i] = clip8(acc);
    }
}
