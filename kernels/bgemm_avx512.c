/* bgemm_avx512.c: the bf16 GEMM on the fp32 FMA (AVX-512F), the unit named
 * avx512fma: each packed weight line (bgemm.h) widened in registers to the
 * fp32 of its two k steps, the even one by shifting each lane's bottom half
 * up, the odd one by clearing the bottom half; the activations rounded to
 * bf16 as every unit rounds them, kept as the fp32 they stand for, and
 * broadcast from memory (a load, no FMA port). Products of two bf16 are
 * exact in fp32, so each sum is the scalar reference's, in the same k order:
 * the same bits. For CPUs where VDPBF16PS does fewer multiply-adds per cycle
 * than the FMAs (bgemm.c measures which).
 *
 * Shapes: A in strips of MR = 12 rows, [Kp/16][12][16] fp32 each (bgemm.h);
 * B packed, np <= NP = 2 panels per register tile; Y [M][N] row stride ldy.
 * A register tile is 12 rows x 2 panels (32 columns): 24 zmm sums; each pair
 * of k steps loads 2 weight lines and widens them in 4 instructions, for 48
 * FMAs on 24 broadcast activations. The widening runs on the FMAs' ports,
 * so the tile is as tall as the registers allow (24 sums, 4 widened
 * weights): 48 of every 52 instructions on those ports are FMAs. eng__bgemm hands it a block of rows at a time, just rounded
 * (eng__bgemm_fma_rows: about 512 KiB of strips), which stays in L2 while
 * the column tiles go by; a column tile's weights (2 panels x Kp x 32 bytes,
 * 192 KiB at K = 3072) are read from L2 once per strip. Rows past M in the
 * last strip run on a tile of as many rows as remain. */
#include "bgemm_avx512.h"

enum { MR = ENG_BGEMM_FMA_MR, NP = 2 };

/* The strips of bgemm.h: row r's chunk c of 16 k steps at
 * A + ((r/MR * Kp/16 + c) * MR + r%MR) * 16, zero past K. */
static void round_strips(const float *X, int M, int K, size_t ldx, void *Av)
{
    const int kp = eng__bgemm_kp(K);
    float *A = Av;
    for (int r = 0; r < M; r++) {
        float *a = A + ((size_t)(r / MR) * kp * MR + (size_t)(r % MR) * 16);
        for (int i = 0; i < kp; i += 16, a += MR * 16)
            _mm512_store_si512(a, bgemm_round16(X + (size_t)r * ldx, i, K));
    }
}

/* One register tile: rows [0, mr) of a strip (a at its first chunk),
 * panels [0, np) of b, over all of Kp; mr and np known at compile time. */
static inline __attribute__((always_inline)) void
tile_n(const float *a, int Kp, const eng__bf16 *b, const int mr, const int np,
       float out[MR][16 * NP])
{
    const __m512i top = _mm512_set1_epi32((int)0xffff0000u);
    __m512 acc[MR][NP];
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (int j = 0; j < np; j++)
            acc[r][j] = _mm512_setzero_ps();
    const size_t ldb = (size_t)Kp * 16;
    for (int c = 0; c < Kp / 16; c++, a += MR * 16, b += 16 * 16) {
#pragma GCC unroll 2
        for (int i = 0; i < 8; i++) {
            __m512 even[NP], odd[NP];
#pragma GCC unroll 2
            for (int j = 0; j < np; j++) {
                const __m512i w = _mm512_loadu_si512(b + j * ldb + (size_t)i * 32);
                even[j] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
                odd[j] = _mm512_castsi512_ps(_mm512_and_si512(w, top));
            }
#pragma GCC unroll 12
            for (int r = 0; r < mr; r++) {
                const __m512 ae = _mm512_set1_ps(a[r * 16 + 2 * i]);
                const __m512 ao = _mm512_set1_ps(a[r * 16 + 2 * i + 1]);
#pragma GCC unroll 2
                for (int j = 0; j < np; j++)
                    acc[r][j] =
                        _mm512_fmadd_ps(ao, odd[j], _mm512_fmadd_ps(ae, even[j], acc[r][j]));
            }
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (int j = 0; j < np; j++)
            _mm512_store_ps(out[r] + 16 * j, acc[r][j]);
}

#define TILE(R, P)                                                                         \
    static void tile_##R##_##P(const float *a, int Kp, const eng__bf16 *b,                 \
                               float out[MR][16 * NP])                                     \
    {                                                                                      \
        tile_n(a, Kp, b, R, P, out);                                                       \
    }
#define TILE_ROW(R) TILE(R, 1) TILE(R, 2)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)
TILE_ROW(7) TILE_ROW(8) TILE_ROW(9) TILE_ROW(10) TILE_ROW(11) TILE_ROW(12)
#define TILE_PTRS(R) { tile_##R##_1, tile_##R##_2 }

typedef void (*tile_fn)(const float *, int, const eng__bf16 *, float[MR][16 * NP]);
static const tile_fn tiles[MR][NP] = {
    TILE_PTRS(1), TILE_PTRS(2), TILE_PTRS(3), TILE_PTRS(4),  TILE_PTRS(5),  TILE_PTRS(6),
    TILE_PTRS(7), TILE_PTRS(8), TILE_PTRS(9), TILE_PTRS(10), TILE_PTRS(11), TILE_PTRS(12),
};

static int min_int(int a, int b) { return a < b ? a : b; }

/* One block of rows (eng__bgemm_fma_rows), in L2 while the column tiles
 * go by. */
static void gemm(const void *Av, int M, int Kp, const eng__bf16 *B, int N, float *Y, size_t ldy,
                 const float *bias, const float *res, eng__act act)
{
    const float *A = Av;
    const int n16 = (N + 15) / 16;
    float out[MR][16 * NP] __attribute__((aligned(64)));
    for (int pb = 0; pb < n16; pb += NP) {
        const int np = min_int(NP, n16 - pb), cols = min_int(16 * np, N - 16 * pb);
        const eng__bf16 *b = B + (size_t)pb * Kp * 16;
        for (int r = 0; r < M; r += MR) {
            const int mr = min_int(MR, M - r);
            tiles[mr - 1][np - 1](A + (size_t)r * Kp, Kp, b, out);
            bgemm_store(out[0], 16 * NP, mr, cols, Y + (size_t)r * ldy + 16 * pb, ldy,
                        bias + 16 * pb, res ? res + (size_t)r * ldy + 16 * pb : NULL, act);
        }
    }
}

/* The full tile's arithmetic: per round, 2 weight lines widened (the
 * asm keeps them opaque, so the widening is redone) and 48 FMAs on 24
 * independent sums, as many as hide the FMA's latency. */
static double peak(long n)
{
    const __m512i top = _mm512_set1_epi32((int)0xffff0000u);
    __m512i w0 = _mm512_set1_epi32(0x3f803f80), w1 = w0;
    const __m512 a = _mm512_set1_ps(0.5f);
    __m512 acc[MR][NP];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NP; j++)
            acc[r][j] = _mm512_set1_ps((float)r);
    for (long i = 0; i < n; i++) {
        __asm__ volatile("" : "+v"(w0), "+v"(w1));
        const __m512 even[NP] = {_mm512_castsi512_ps(_mm512_slli_epi32(w0, 16)),
                                 _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16))};
        const __m512 odd[NP] = {_mm512_castsi512_ps(_mm512_and_si512(w0, top)),
                                _mm512_castsi512_ps(_mm512_and_si512(w1, top))};
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
            for (int j = 0; j < NP; j++)
                acc[r][j] = _mm512_fmadd_ps(a, odd[j], _mm512_fmadd_ps(a, even[j], acc[r][j]));
    }
    float sink = 0.0f;
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NP; j++)
            sink += _mm512_reduce_add_ps(acc[r][j]);
    __asm__ volatile("" : : "x"(sink));
    return (double)n * MR * NP * 2 * 16;
}

const eng__bgemm_kernels eng__bgemm_avx512fma = {ENG_BGEMM_AVX512FMA, "avx512fma", round_strips,
                                                 eng__bgemm_fma_rows, gemm, peak};
