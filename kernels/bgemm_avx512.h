/* bgemm_avx512.h: what the two AVX-512 bf16 GEMM units (bgemm_avx512bf16.c,
 * bgemm_amx.c) share: the rounding of a row of activations, bit for bit
 * eng__bf16_round's, and the epilogue of a block of sums on 16 lanes. */
#ifndef ENG_BGEMM_AVX512_H
#define ENG_BGEMM_AVX512_H

#include <immintrin.h>

#include "bgemm.h"
#include "vmath_avx512.h"

/* a[0, Kp) = bf16(x[0, K)), zero past K: eng__bf16_round on 16 lanes. */
static inline void bgemm_round_row(const float *x, int K, int Kp, eng__bf16 *a)
{
    const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff);
    const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i quiet = _mm512_set1_epi32(0x40);
    for (int i = 0; i < Kp; i += 16) {
        const __mmask16 m = K - i >= 16 ? (__mmask16)0xffff : K > i ? tail_mask16(K - i) : 0;
        const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
        const __m512i hi = _mm512_srli_epi32(u, 16);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(half, _mm512_and_si512(hi, one)));
        r = _mm512_srli_epi32(r, 16);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        r = _mm512_mask_or_epi32(r, nan, hi, quiet);
        const __mmask16 w = Kp - i >= 16 ? (__mmask16)0xffff : tail_mask16(Kp - i);
        _mm256_mask_storeu_epi16(a + i, w, _mm512_cvtepi32_epi16(r));
    }
}

/* Y[r][0, cols) = act(acc[r] + bias (+ res[r])) for rows of sums acc[r] =
 * acc + r*ldacc; res row r at res + r*ldy, or NULL; act == ENG_ACT_NONE: none. */
static inline void bgemm_store(const float *acc, int ldacc, int rows, int cols, float *Y,
                               size_t ldy, const float *bias, const float *res, eng__act act)
{
    for (int j = 0; j < cols; j += 16) {
        const __mmask16 m = cols - j >= 16 ? (__mmask16)0xffff : tail_mask16(cols - j);
        const __m512 b = _mm512_maskz_loadu_ps(m, bias + j);
        for (int r = 0; r < rows; r++) {
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(acc + (size_t)r * ldacc + j), b);
            if (res)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + (size_t)r * ldy + j));
            if (act != ENG_ACT_NONE)
                v = vact(v, act);
            _mm512_mask_storeu_ps(Y + (size_t)r * ldy + j, m, v);
        }
    }
}

#endif
