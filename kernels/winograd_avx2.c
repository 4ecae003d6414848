/* winograd_avx2.c: the transforms of Winograd's F(2x2, 3x3) convolution on
 * 8 channels per register (AVX2); the contract in kernels.h, the arithmetic
 * and its order in winograd_scalar.c (bit for bit the same).
 *
 * Shapes: input d[16][c] to v[16][vs]; output m[16][ms] to y[4][c]. The
 * channels go 8 at a time, the tail under a mask (masked loads never touch
 * memory past c). */
#include <stddef.h>

#include "kernels_isa.h"
#include "vmath_avx2.h"

void eng__wino_input_avx2(const float *const d[16], int c, float *v, size_t vs)
{
    const __m256i all = _mm256_set1_epi32(-1);
    for (int ch = 0; ch < c; ch += 8) {
        const __m256i k = c - ch >= 8 ? all : tail_mask8(c - ch);
        __m256 t[16];
        for (int j = 0; j < 4; j++) {
            const __m256 d0 = _mm256_maskload_ps(d[j] + ch, k);
            const __m256 d1 = _mm256_maskload_ps(d[4 + j] + ch, k);
            const __m256 d2 = _mm256_maskload_ps(d[8 + j] + ch, k);
            const __m256 d3 = _mm256_maskload_ps(d[12 + j] + ch, k);
            t[j] = _mm256_sub_ps(d0, d2);
            t[4 + j] = _mm256_add_ps(d1, d2);
            t[8 + j] = _mm256_sub_ps(d2, d1);
            t[12 + j] = _mm256_sub_ps(d1, d3);
        }
        for (int i = 0; i < 4; i++) {
            const __m256 *r = t + 4 * i;
            float *o = v + (size_t)(4 * i) * vs + ch;
            _mm256_maskstore_ps(o, k, _mm256_sub_ps(r[0], r[2]));
            _mm256_maskstore_ps(o + vs, k, _mm256_add_ps(r[1], r[2]));
            _mm256_maskstore_ps(o + 2 * vs, k, _mm256_sub_ps(r[2], r[1]));
            _mm256_maskstore_ps(o + 3 * vs, k, _mm256_sub_ps(r[1], r[3]));
        }
    }
}

void eng__wino_output_avx2(const float *m, size_t ms, int c, const float *bias,
                           const float *const *res, float *const y[4], int relu)
{
    const __m256i all = _mm256_set1_epi32(-1);
    for (int ch = 0; ch < c; ch += 8) {
        const __m256i k = c - ch >= 8 ? all : tail_mask8(c - ch);
        __m256 s[8];
        for (int j = 0; j < 4; j++) {
            const __m256 m0 = _mm256_maskload_ps(m + (size_t)j * ms + ch, k);
            const __m256 m1 = _mm256_maskload_ps(m + (size_t)(4 + j) * ms + ch, k);
            const __m256 m2 = _mm256_maskload_ps(m + (size_t)(8 + j) * ms + ch, k);
            const __m256 m3 = _mm256_maskload_ps(m + (size_t)(12 + j) * ms + ch, k);
            s[j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
            s[4 + j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
        }
        const __m256 b = _mm256_maskload_ps(bias + ch, k);
        for (int p = 0; p < 4; p++) {
            if (!y[p])
                continue;
            const __m256 *r = s + 4 * (p / 2);
            __m256 o = p % 2 == 0 ? _mm256_add_ps(_mm256_add_ps(r[0], r[1]), r[2])
                                  : _mm256_sub_ps(_mm256_sub_ps(r[1], r[2]), r[3]);
            o = _mm256_add_ps(o, b);
            if (res)
                o = _mm256_add_ps(o, _mm256_maskload_ps(res[p] + ch, k));
            _mm256_maskstore_ps(y[p] + ch, k, relu ? relu8(o) : o);
        }
    }
}
