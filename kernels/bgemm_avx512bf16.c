/* bgemm_avx512bf16.c: the bf16 GEMM on VDPBF16PS (AVX512-BF16), for CPUs
 * without AMX (AMD Zen 4/5, Intel Cooper Lake). Layouts in bgemm.h.
 *
 * A register tile is 6 rows x 4 panels (64 columns): 24 zmm sums; each pair
 * of k steps loads 4 weight lines and broadcasts 6 activation pairs, 10 loads
 * for 24 VDPBF16PS (768 multiply-adds). The row block (MC rows of A, about
 * 512 KiB) stays in L2 while the column tiles go by; a column tile's weights
 * (4 panels x Kp x 32 bytes, 384 KiB at K = 3072) are read from L2 once per
 * 6 rows. */
#include "bgemm_avx512.h"

enum { MR = 6, NP = 4, A_BLOCK_BYTES = 512 * 1024 };

static inline __attribute__((always_inline)) void
tile_n(const eng__bf16 *a, int Kp, const eng__bf16 *b, const int mr, const int np,
       float out[MR][16 * NP])
{
    __m512 acc[MR][NP];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int j = 0; j < np; j++)
            acc[r][j] = _mm512_setzero_ps();
    const size_t ldb = (size_t)Kp * 16;
#pragma GCC unroll 2
    for (int i = 0; i < Kp / 2; i++) {
        __m512bh bv[NP];
#pragma GCC unroll 4
        for (int j = 0; j < np; j++)
            bv[j] = (__m512bh)_mm512_loadu_si512(b + j * ldb + (size_t)i * 32);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            int32_t pair;
            memcpy(&pair, a + (size_t)r * Kp + 2 * i, sizeof pair);
            const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 4
            for (int j = 0; j < np; j++)
                acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av, bv[j]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int j = 0; j < np; j++)
            _mm512_storeu_ps(out[r] + 16 * j, acc[r][j]);
}

#define TILE(R, P)                                                                         \
    static void tile_##R##_##P(const eng__bf16 *a, int Kp, const eng__bf16 *b,             \
                               float out[MR][16 * NP])                                     \
    {                                                                                      \
        tile_n(a, Kp, b, R, P, out);                                                       \
    }
#define TILE_ROW(R) TILE(R, 1) TILE(R, 2) TILE(R, 3) TILE(R, 4)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)
#define TILE_PTRS(R) { tile_##R##_1, tile_##R##_2, tile_##R##_3, tile_##R##_4 }

typedef void (*tile_fn)(const eng__bf16 *, int, const eng__bf16 *, float[MR][16 * NP]);
static const tile_fn tiles[MR][NP] = {
    TILE_PTRS(1), TILE_PTRS(2), TILE_PTRS(3), TILE_PTRS(4), TILE_PTRS(5), TILE_PTRS(6),
};

static int min_int(int a, int b) { return a < b ? a : b; }

static void gemm(const void *Av, int M, int Kp, const eng__bf16 *B, int N, float *Y, size_t ldy,
                 const float *bias, const float *res, eng__act act)
{
    const eng__bf16 *A = Av;
    const int n16 = (N + 15) / 16;
    int mc = (int)(A_BLOCK_BYTES / ((size_t)Kp * sizeof(eng__bf16))) / MR * MR;
    if (mc < MR)
        mc = MR;
    float out[MR][16 * NP] __attribute__((aligned(64)));
    for (int mb = 0; mb < M; mb += mc) {
        const int me = min_int(mb + mc, M);
        for (int pb = 0; pb < n16; pb += NP) {
            const int np = min_int(NP, n16 - pb), cols = min_int(16 * np, N - 16 * pb);
            const eng__bf16 *b = B + (size_t)pb * Kp * 16;
            for (int r = mb; r < me; r += MR) {
                const int mr = min_int(MR, me - r);
                tiles[mr - 1][np - 1](A + (size_t)r * Kp, Kp, b, out);
                bgemm_store(out[0], 16 * NP, mr, cols, Y + (size_t)r * ldy + 16 * pb, ldy,
                            bias + 16 * pb, res ? res + (size_t)r * ldy + 16 * pb : NULL, act);
            }
        }
    }
}

/* 24 independent sums (the tile's), as many as hide VDPBF16PS's latency. */
static double peak(long n)
{
    __m512 acc[24];
    for (int i = 0; i < 24; i++)
        acc[i] = _mm512_set1_ps((float)i);
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = a;
    for (long r = 0; r < n; r++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]));
    }
    float sink = 0.0f;
    for (int i = 0; i < 24; i++)
        sink += _mm512_reduce_add_ps(acc[i]);
    __asm__ volatile("" : : "x"(sink));
    return (double)n * 24 * 32;
}

const eng__bgemm_kernels eng__bgemm_avx512bf16 = {ENG_BGEMM_AVX512BF16, "avx512bf16",
                                                  bgemm_round_rows, NULL, gemm, peak};
