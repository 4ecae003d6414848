/* winograd_avx512.c: the transforms of Winograd's F(2x2, 3x3) convolution on
 * 16 channels per register (AVX-512F); the contract in kernels.h, the
 * arithmetic and its order in winograd_scalar.c (bit for bit the same).
 *
 * Shapes: input d[16][c] to v[16][vs]; output m[16][ms] to y[4][c]. The
 * channels go 16 at a time, the tail under a mask (masked loads never touch
 * memory past c). */
#include <stddef.h>

#include "kernels_isa.h"
#include "vmath_avx512.h"

void eng__wino_input_avx512(const float *const d[16], int c, float *v, size_t vs)
{
    for (int ch = 0; ch < c; ch += 16) {
        const __mmask16 k = c - ch >= 16 ? (__mmask16)0xffff : tail_mask16(c - ch);
        __m512 t[16];
        for (int j = 0; j < 4; j++) {
            const __m512 d0 = _mm512_maskz_loadu_ps(k, d[j] + ch);
            const __m512 d1 = _mm512_maskz_loadu_ps(k, d[4 + j] + ch);
            const __m512 d2 = _mm512_maskz_loadu_ps(k, d[8 + j] + ch);
            const __m512 d3 = _mm512_maskz_loadu_ps(k, d[12 + j] + ch);
            t[j] = _mm512_sub_ps(d0, d2);
            t[4 + j] = _mm512_add_ps(d1, d2);
            t[8 + j] = _mm512_sub_ps(d2, d1);
            t[12 + j] = _mm512_sub_ps(d1, d3);
        }
        for (int i = 0; i < 4; i++) {
            const __m512 *r = t + 4 * i;
            float *o = v + (size_t)(4 * i) * vs + ch;
            _mm512_mask_storeu_ps(o, k, _mm512_sub_ps(r[0], r[2]));
            _mm512_mask_storeu_ps(o + vs, k, _mm512_add_ps(r[1], r[2]));
            _mm512_mask_storeu_ps(o + 2 * vs, k, _mm512_sub_ps(r[2], r[1]));
            _mm512_mask_storeu_ps(o + 3 * vs, k, _mm512_sub_ps(r[1], r[3]));
        }
    }
}

void eng__wino_output_avx512(const float *m, size_t ms, int c, const float *bias,
                             const float *const *res, float *const y[4], int relu)
{
    for (int ch = 0; ch < c; ch += 16) {
        const __mmask16 k = c - ch >= 16 ? (__mmask16)0xffff : tail_mask16(c - ch);
        __m512 s[8];
        for (int j = 0; j < 4; j++) {
            const __m512 m0 = _mm512_maskz_loadu_ps(k, m + (size_t)j * ms + ch);
            const __m512 m1 = _mm512_maskz_loadu_ps(k, m + (size_t)(4 + j) * ms + ch);
            const __m512 m2 = _mm512_maskz_loadu_ps(k, m + (size_t)(8 + j) * ms + ch);
            const __m512 m3 = _mm512_maskz_loadu_ps(k, m + (size_t)(12 + j) * ms + ch);
            s[j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
            s[4 + j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        }
        const __m512 b = _mm512_maskz_loadu_ps(k, bias + ch);
        for (int p = 0; p < 4; p++) {
            if (!y[p])
                continue;
            const __m512 *r = s + 4 * (p / 2);
            __m512 o = p % 2 == 0 ? _mm512_add_ps(_mm512_add_ps(r[0], r[1]), r[2])
                                  : _mm512_sub_ps(_mm512_sub_ps(r[1], r[2]), r[3]);
            o = _mm512_add_ps(o, b);
            if (res)
                o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(k, res[p] + ch));
            _mm512_mask_storeu_ps(y[p] + ch, k, relu ? relu16(o) : o);
        }
    }
}
