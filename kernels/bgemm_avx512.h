/* bgemm_avx512.h: what the AVX-512 bf16 GEMM units (bgemm_avx512.c,
 * bgemm_avx512bf16.c, bgemm_amx.c) share: the rounding of activations, bit
 * for bit eng__bf16_round's, and the epilogue of a block of sums on 16
 * lanes. */
#ifndef ENG_BGEMM_AVX512_H
#define ENG_BGEMM_AVX512_H

#include <immintrin.h>

#include "bgemm.h"
#include "vmath_avx512.h"

/* eng__bf16_round of x[i, i+16) (lanes at or past K read as 0) as the fp32
 * each bf16 stands for: the bf16 in the top half of each lane, zeros below. */
static inline __m512i bgemm_round16(const float *x, int i, int K)
{
    const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff);
    const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i top = _mm512_set1_epi32((int)0xffff0000u);
    const __m512i quiet = _mm512_set1_epi32(0x400000);
    const __mmask16 m = K - i >= 16 ? (__mmask16)0xffff : K > i ? tail_mask16(K - i) : 0;
    const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
    const __m512i r = _mm512_and_si512(_mm512_add_epi32(u, _mm512_add_epi32(half, lsb)), top);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
    return _mm512_mask_or_epi32(r, nan, _mm512_and_si512(u, top), quiet);
}

/* The bf16 units' activations (bgemm.h): A [Mp][Kp] bf16 = the rounded X
 * [M][K] (row stride ldx), zero past K and M. */
static inline void bgemm_round_rows(const float *X, int M, int K, size_t ldx, void *Av)
{
    const int kp = eng__bgemm_kp(K), mp = (M + 15) & ~15;
    eng__bf16 *A = Av;
    for (int r = 0; r < M; r++)
        for (int i = 0; i < kp; i += 16) {
            const __m512i v = _mm512_srli_epi32(bgemm_round16(X + (size_t)r * ldx, i, K), 16);
            _mm256_storeu_si256((__m256i *)(void *)(A + (size_t)r * kp + i), _mm512_cvtepi32_epi16(v));
        }
    /* The tile rows past M are computed and dropped; zeros keep them finite. */
    memset(A + (size_t)M * kp, 0, (size_t)(mp - M) * kp * sizeof *A);
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
