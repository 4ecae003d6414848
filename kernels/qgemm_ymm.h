/* qgemm_ymm.h: the 256-bit pieces the avx2 and avxvnni int8 tiles share
 * (column masks, int32 loads and the dequantization epilogue for 8 output
 * columns). Included only by kernels/qgemm_avx2.c and qgemm_avxvnni.c, which
 * are compiled with AVX2. */
#ifndef ENG_QGEMM_YMM_H
#define ENG_QGEMM_YMM_H

#include <immintrin.h>

#include "qgemm.h"

/* Lanes [0, v) set, for v columns left (any int). */
static inline __m256i ymm_colmask(int v)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(v), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Int32 partial sums of 8 columns at p (masked lanes read as 0). */
static inline __m256i ymm_load_c(const void *p, __m256i m)
{
    return _mm256_maskload_epi32((const int *)p, m);
}

/* Writes 8 columns of row r starting at column col of the tile: the
 * epilogue's floats when FINAL with an epilogue, else the int32 sums. */
static inline void ymm_store_c(__m256i acc, void *c, size_t ldc, int r, int col, __m256i m,
                               int flags, const eng__qepi *epi)
{
    if ((flags & ENG_QT_FINAL) && epi) {
        __m256i corr = _mm256_slli_epi32(_mm256_maskload_epi32(epi->wsum + col, m), 7);
        __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, corr));
        v = _mm256_mul_ps(_mm256_mul_ps(v, _mm256_maskload_ps(epi->sw + col, m)),
                          _mm256_set1_ps(epi->sx[r]));
        if (epi->bias)
            v = _mm256_add_ps(v, _mm256_maskload_ps(epi->bias + col, m));
        _mm256_maskstore_ps((float *)c + r * ldc + col, m, v);
    } else {
        _mm256_maskstore_epi32((int *)c + r * ldc + col, m, acc);
    }
}

#endif
