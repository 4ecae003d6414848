/* resize_avx2.c: Pillow's 8-bit resampling passes, 8 int32 lanes (AVX2): two
 * source rows per vector in the horizontal pass; the body is resize_vec.h's. */
#include <immintrin.h>
#include <string.h>

#include "kernels_isa.h"

typedef __m256i vint;
#define VLANES 8
#define RV_ROWS 2

static inline vint vi_set1(int32_t x) { return _mm256_set1_epi32(x); }
static inline vint vi_add(vint a, vint b) { return _mm256_add_epi32(a, b); }
static inline vint vi_mullo(vint a, vint b) { return _mm256_mullo_epi32(a, b); }
static inline vint vi_shuffle(vint v, vint c) { return _mm256_shuffle_epi8(v, c); }

static inline __m128i load16(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

static inline vint vi_load_u8(const uint8_t *p)
{
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
}

static inline vint vi_bcast16(const uint8_t *p)
{
    return _mm256_broadcastsi128_si256(load16(p));
}

static inline vint vi_rows(const uint8_t *p, size_t step)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(load16(p)), load16(p + step), 1);
}

/* v >> 22 saturated to int16 then to uint8 is clip8: >= 2^30 gives >= 256. */
static inline vint vi_clip8(vint v)
{
    __m256i w = _mm256_packs_epi32(_mm256_srai_epi32(v, 22), _mm256_srai_epi32(v, 22));
    return _mm256_packus_epi16(w, w);
}

static inline void vi_store_u8(uint8_t *p, vint v)
{
    v = _mm256_srai_epi32(v, 22);
    __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64((__m128i *)(void *)p, _mm_packus_epi16(w, w));
}

static inline void store3(uint8_t *d, __m128i lane)
{
    uint32_t u = (uint32_t)_mm_cvtsi128_si32(lane);
    memcpy(d, &u, 3);
}

static inline void vi_store3(uint8_t *d, size_t step, int nr, vint v)
{
    store3(d, _mm256_castsi256_si128(v));
    if (nr > 1)
        store3(d + step, _mm256_extracti128_si256(v, 1));
}

#include "resize_vec.h"

void eng__resize_h_avx2(const uint8_t *src, size_t sstride, int rows, int w, const int *bounds,
                        const int32_t *k, int ksize, uint8_t *dst, size_t dstride, int out)
{
    resize_h_vec(src, sstride, rows, w, bounds, k, ksize, dst, dstride, out);
}

void eng__resize_v_avx2(const uint8_t *src, size_t sstride, int n, const int32_t *k,
                        uint8_t *dst, int len)
{
    resize_v_vec(src, sstride, n, k, dst, len);
}
