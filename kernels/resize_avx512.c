/* resize_avx512.c: Pillow's 8-bit resampling passes, 16 int32 lanes
 * (AVX-512F and BW): four source rows per vector in the horizontal pass; the
 * body is resize_vec.h's. */
#include <immintrin.h>
#include <string.h>

#include "kernels_isa.h"

typedef __m512i vint;
#define VLANES 16
#define RV_ROWS 4

static inline vint vi_set1(int32_t x) { return _mm512_set1_epi32(x); }
static inline vint vi_add(vint a, vint b) { return _mm512_add_epi32(a, b); }
static inline vint vi_mullo(vint a, vint b) { return _mm512_mullo_epi32(a, b); }
static inline vint vi_shuffle(vint v, vint c) { return _mm512_shuffle_epi8(v, c); }

static inline __m128i load16(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

static inline vint vi_load_u8(const uint8_t *p)
{
    return _mm512_cvtepu8_epi32(load16(p));
}

static inline vint vi_bcast16(const uint8_t *p)
{
    return _mm512_broadcast_i32x4(load16(p));
}

static inline vint vi_rows(const uint8_t *p, size_t step)
{
    __m512i v = _mm512_castsi128_si512(load16(p));
    v = _mm512_inserti32x4(v, load16(p + step), 1);
    v = _mm512_inserti32x4(v, load16(p + 2 * step), 2);
    return _mm512_inserti32x4(v, load16(p + 3 * step), 3);
}

/* v >> 22 saturated to int16 then to uint8 is clip8: >= 2^30 gives >= 256. */
static inline vint vi_clip8(vint v)
{
    __m512i w = _mm512_packs_epi32(_mm512_srai_epi32(v, 22), _mm512_srai_epi32(v, 22));
    return _mm512_packus_epi16(w, w);
}

/* Negative sums to 0 first: vpmovusdb saturates as unsigned. */
static inline void vi_store_u8(uint8_t *p, vint v)
{
    v = _mm512_max_epi32(_mm512_srai_epi32(v, 22), _mm512_setzero_si512());
    _mm_storeu_si128((__m128i *)(void *)p, _mm512_cvtusepi32_epi8(v));
}

static inline void store3(uint8_t *d, __m128i lane)
{
    uint32_t u = (uint32_t)_mm_cvtsi128_si32(lane);
    memcpy(d, &u, 3);
}

static inline void vi_store3(uint8_t *d, size_t step, int nr, vint v)
{
    store3(d, _mm512_castsi512_si128(v));
    if (nr > 1) {
        store3(d + step, _mm512_extracti32x4_epi32(v, 1));
        store3(d + 2 * step, _mm512_extracti32x4_epi32(v, 2));
        store3(d + 3 * step, _mm512_extracti32x4_epi32(v, 3));
    }
}

#include "resize_vec.h"

void eng__resize_h_avx512(const uint8_t *src, size_t sstride, int rows, int w,
                          const int *bounds, const int32_t *k, int ksize, uint8_t *dst,
                          size_t dstride, int out)
{
    resize_h_vec(src, sstride, rows, w, bounds, k, ksize, dst, dstride, out);
}

void eng__resize_v_avx512(const uint8_t *src, size_t sstride, int n, const int32_t *k,
                          uint8_t *dst, int len)
{
    resize_v_vec(src, sstride, n, k, dst, len);
}
