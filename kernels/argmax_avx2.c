/* argmax_avx2.c: index of the largest float, 8 lanes (AVX2).
 *
 * Shape: x[n], n >= 1; contract as argmax_scalar.c. Each lane keeps its best
 * value and the index it came from, replacing them only on a strictly greater
 * value (so a lane keeps its first index on ties, and NaN, greater than
 * nothing, never gets in). The lanes are then merged: the largest value, and
 * among equal ones the smallest index. The tail is loaded masked and its
 * missing lanes set to -inf, which never wins. */
#include <math.h>

#include "kernels_isa.h"
#include "vmath_avx2.h"

int eng__argmax_avx2(const float *x, int n)
{
    const int rem = n % 8, body = n - rem;
    __m256 best = _mm256_set1_ps(-INFINITY);
    __m256i bidx = _mm256_set1_epi32(-1);
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i step = _mm256_set1_epi32(8);
    for (int i = 0; i < body; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 gt = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
        best = _mm256_blendv_ps(best, v, gt);
        bidx = _mm256_blendv_epi8(bidx, idx, _mm256_castps_si256(gt));
        idx = _mm256_add_epi32(idx, step);
    }
    if (rem) {
        __m256i tail = tail_mask8(rem);
        __m256 v = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(x + body, tail),
                                    _mm256_castsi256_ps(tail));
        __m256 gt = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
        best = _mm256_blendv_ps(best, v, gt);
        bidx = _mm256_blendv_epi8(bidx, idx, _mm256_castps_si256(gt));
    }
    float bv[8];
    int bi[8];
    _mm256_storeu_ps(bv, best);
    _mm256_storeu_si256((__m256i *)(void *)bi, bidx);
    int win = -1;
    float wv = -INFINITY;
    for (int l = 0; l < 8; l++) {
        if (bi[l] < 0)
            continue;
        if (win < 0 || bv[l] > wv || (bv[l] == wv && bi[l] < win)) {
            wv = bv[l];
            win = bi[l];
        }
    }
    return win >= 0 ? win : eng__argmax_scalar(x, n);
}
