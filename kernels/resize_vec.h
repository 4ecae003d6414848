/* resize_vec.h: Pillow's two 8-bit resampling passes (kernels.h's resize_h
 * and resize_v), the body shared by resize_avx2.c and resize_avx512.c. The
 * including file defines, for vectors of VLANES int32 lanes (vint):
 *   vi_set1(x), vi_add(a, b), vi_mullo(a, b)   low 32 bits of the product
 *   vi_load_u8(p)       VLANES bytes at p, zero-extended
 *   vi_store_u8(p, v)   clip8 of each lane (see resize_scalar.c) to p[0..VLANES)
 *   vi_rows(p, step)    16 bytes at p + r step in 128-bit lane r, r < RV_ROWS
 *                       (RV_ROWS = VLANES / 4)
 *   vi_bcast16(p)       the 16 bytes at p in every 128-bit lane
 *   vi_shuffle(v, c)    vpshufb: each 128-bit lane's bytes picked by c's
 *   vi_clip8(v)         clip8 of each lane, the 4 bytes of each 128-bit lane's
 *                       dwords at that lane's bytes 0..3
 *   vi_store3(d, step, nr, v)  bytes 0..2 of 128-bit lane r to d + r step,
 *                       r < nr (nr is 1 or RV_ROWS)
 * The products and sums are int32 lanes that wrap (vpmulld, vpaddd): the same
 * values modulo 2^32 as the scalar twin's in any order, so the pixels are
 * identical bit for bit whatever the taps. */
#ifndef ENG_RESIZE_VEC_H
#define ENG_RESIZE_VEC_H

#include <string.h>

#define RV_ROUND (1 << 21)   /* half of Pillow's 22 fraction bits */

/* vpshufb controls: pixel q of 4 (bytes 3q..3q+2 of a 16-byte lane) to the
 * lane's dwords 0..2, zero-extended; dword 3 zero (0x80 picks zero). */
#define RV_PIXEL(q)                                                                  \
    { 3 * (q), 0x80, 0x80, 0x80, 3 * (q) + 1, 0x80, 0x80, 0x80, 3 * (q) + 2, 0x80, 0x80, \
      0x80, 0x80, 0x80, 0x80, 0x80 }
static const uint8_t rv_pixel_ctl[4][16] = { RV_PIXEL(0), RV_PIXEL(1), RV_PIXEL(2), RV_PIXEL(3) };
#undef RV_PIXEL

/* acc plus the products of pixels t..t+3 of v (vi_rows' 16 bytes, from
 * pixel t on) and their taps; taps past n are 0 (their products add
 * nothing). */
static inline vint rv_taps4(vint acc, vint v, const int32_t *kj, int t, int n, const vint *ctl)
{
    const int32_t k1 = t + 1 < n ? kj[t + 1] : 0, k2 = t + 2 < n ? kj[t + 2] : 0;
    const int32_t k3 = t + 3 < n ? kj[t + 3] : 0;
    acc = vi_add(acc, vi_mullo(vi_shuffle(v, ctl[0]), vi_set1(kj[t])));
    acc = vi_add(acc, vi_mullo(vi_shuffle(v, ctl[1]), vi_set1(k1)));
    acc = vi_add(acc, vi_mullo(vi_shuffle(v, ctl[2]), vi_set1(k2)));
    return vi_add(acc, vi_mullo(vi_shuffle(v, ctl[3]), vi_set1(k3)));
}

/* The horizontal pass, RV_ROWS source rows at a time, one 128-bit lane per
 * row holding R, G, B sums (and an unused dword). Each output column loads
 * 16 bytes (4 pixels, 4 taps) per row per step; the steps that would read
 * past a row's end go through a zero-padded copy instead, so no byte outside
 * the w pixels of a row is read. The last group of rows overlaps the one
 * before it (rewriting the same pixels); fewer than RV_ROWS rows go one at a
 * time, every lane on the same row. */
static inline void resize_h_vec(const uint8_t *src, size_t sstride, int rows, int w,
                                const int *bounds, const int32_t *k, int ksize, uint8_t *dst,
                                size_t dstride, int out)
{
    const size_t row_bytes = (size_t)w * 3;
    const vint ctl[4] = { vi_bcast16(rv_pixel_ctl[0]), vi_bcast16(rv_pixel_ctl[1]),
                          vi_bcast16(rv_pixel_ctl[2]), vi_bcast16(rv_pixel_ctl[3]) };
    const int nr = rows < RV_ROWS ? 1 : RV_ROWS;
    const size_t step = rows < RV_ROWS ? 0 : sstride;
    for (int r0 = 0; r0 < rows; r0 += nr) {
        const int first = r0 + nr > rows ? rows - nr : r0;
        const uint8_t *s = src + (size_t)first * sstride;
        uint8_t *d = dst + (size_t)first * dstride;
        for (int j = 0; j < out; j++) {
            const int32_t *kj = k + (size_t)j * ksize;
            const int n = bounds[2 * j + 1];
            const size_t x = (size_t)bounds[2 * j] * 3;
            vint acc = vi_set1(RV_ROUND);
            int t = 0;
            for (; t < n && x + 3 * (size_t)t + 16 <= row_bytes; t += 4)
                acc = rv_taps4(acc, vi_rows(s + x + 3 * (size_t)t, step), kj, t, n, ctl);
            for (; t < n; t += 4) {
                const size_t off = x + 3 * (size_t)t;
                uint8_t pad[RV_ROWS][16] = {{0}};
                for (int r = 0; r < RV_ROWS; r++)
                    memcpy(pad[r], s + r * step + off, row_bytes - off);
                acc = rv_taps4(acc, vi_rows(pad[0], 16), kj, t, n, ctl);
            }
            vi_store3(d + 3 * (size_t)j, dstride, nr, vi_clip8(acc));
        }
    }
}

/* acc[0..VLANES) of one output row at byte i: the n taps down the column. */
static inline vint resize_v_lanes(const uint8_t *src, size_t sstride, int n, const int32_t *k,
                                  size_t i)
{
    vint acc = vi_set1(RV_ROUND);
    for (int t = 0; t < n; t++)
        acc = vi_add(acc, vi_mullo(vi_load_u8(src + (size_t)t * sstride + i), vi_set1(k[t])));
    return acc;
}

/* The vertical pass for one output row, 4 vectors of VLANES bytes a step
 * (4 independent sums for the multiplier's latency), then single vectors;
 * the last partial vector is recomputed over the row's last VLANES bytes
 * (the same values rewritten), and a row shorter than VLANES goes through a
 * zero-padded copy. */
static inline void resize_v_vec(const uint8_t *src, size_t sstride, int n, const int32_t *k,
                                uint8_t *dst, int len)
{
    if ((size_t)len < VLANES) {
        uint8_t out[VLANES];
        vint acc = vi_set1(RV_ROUND);
        for (int t = 0; t < n; t++) {
            uint8_t pad[VLANES] = {0};
            memcpy(pad, src + (size_t)t * sstride, (size_t)len);
            acc = vi_add(acc, vi_mullo(vi_load_u8(pad), vi_set1(k[t])));
        }
        vi_store_u8(out, acc);
        memcpy(dst, out, (size_t)len);
        return;
    }
    size_t i = 0;
    for (; i + 4 * VLANES <= (size_t)len; i += 4 * VLANES) {
        vint a0 = vi_set1(RV_ROUND), a1 = a0, a2 = a0, a3 = a0;
        for (int t = 0; t < n; t++) {
            const uint8_t *s = src + (size_t)t * sstride + i;
            const vint kt = vi_set1(k[t]);
            a0 = vi_add(a0, vi_mullo(vi_load_u8(s), kt));
            a1 = vi_add(a1, vi_mullo(vi_load_u8(s + VLANES), kt));
            a2 = vi_add(a2, vi_mullo(vi_load_u8(s + 2 * VLANES), kt));
            a3 = vi_add(a3, vi_mullo(vi_load_u8(s + 3 * VLANES), kt));
        }
        vi_store_u8(dst + i, a0);
        vi_store_u8(dst + i + VLANES, a1);
        vi_store_u8(dst + i + 2 * VLANES, a2);
        vi_store_u8(dst + i + 3 * VLANES, a3);
    }
    for (; i + VLANES <= (size_t)len; i += VLANES)
        vi_store_u8(dst + i, resize_v_lanes(src, sstride, n, k, i));
    if (i < (size_t)len)
        vi_store_u8(dst + len - VLANES, resize_v_lanes(src, sstride, n, k, (size_t)len - VLANES));
}

#endif
