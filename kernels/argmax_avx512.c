/* argmax_avx512.c: index of the largest float, 16 lanes (AVX-512F).
 *
 * Shape: x[n], n >= 1; contract as argmax_scalar.c. Each lane keeps its best
 * value and the index it came from, replacing them only on a strictly greater
 * value (so a lane keeps its first index on ties, and NaN, greater than
 * nothing, never gets in). The lanes are then merged: the largest value, and
 * among equal ones the smallest index. The tail's missing lanes load as -inf,
 * which never wins. */
#include <math.h>

#include "kernels_isa.h"
#include "vmath_avx512.h"

int eng__argmax_avx512(const float *x, int n)
{
    const int rem = n % 16, body = n - rem;
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 best = ninf;
    __m512i bidx = _mm512_set1_epi32(-1);
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    for (int i = 0; i < body; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
        best = _mm512_mask_mov_ps(best, gt, v);
        bidx = _mm512_mask_mov_epi32(bidx, gt, idx);
        idx = _mm512_add_epi32(idx, step);
    }
    if (rem) {
        __m512 v = _mm512_mask_loadu_ps(ninf, tail_mask16(rem), x + body);
        __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
        best = _mm512_mask_mov_ps(best, gt, v);
        bidx = _mm512_mask_mov_epi32(bidx, gt, idx);
    }
    /* Lanes that hold the overall maximum (and ever took a value); the
     * smallest index among them wins. */
    __mmask16 has = _mm512_cmp_epi32_mask(bidx, _mm512_setzero_si512(), _MM_CMPINT_NLT);
    if (!has)
        return eng__argmax_scalar(x, n);
    float m = _mm512_mask_reduce_max_ps(has, best);
    __mmask16 top = _mm512_mask_cmp_ps_mask(has, best, _mm512_set1_ps(m), _CMP_EQ_OQ);
    return _mm512_mask_reduce_min_epi32(top, bidx);
}
