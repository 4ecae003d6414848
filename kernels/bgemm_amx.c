/* bgemm_amx.c: the bf16 GEMM on AMX-BF16 tiles (TDPBF16PS). Layouts in
 * bgemm.h; the tile permission and configuration come from kernels/cpu.h.
 *
 * Eight tiles of 16 rows x 64 bytes: four fp32 sum tiles C (2 x 2: 32 rows x
 * 32 columns), two of activations A (16 rows x 32 k steps, loaded straight
 * from the rounded row-major activations) and two of weights B (16 pairs of
 * k steps x 16 columns, one panel's lines as packed). Each A and B tile
 * feeds two products. Blocking as the int8 AMX GEMM's (kernels/qgemm.c
 * run_strips): the columns go in blocks whose weights (B_BLOCK_BYTES) stay
 * in L2, and each strip of 32 rows (32 x Kp x 2 bytes, 48 KiB at K = 768)
 * runs across all of a block's panels before the next, so the weights are
 * read from memory once per call and the activations once per block. The
 * sum tiles go through a 32 x 32 block on the stack to the shared
 * epilogue. */
#include "bgemm_avx512.h"
#include "cpu.h"

enum { B_BLOCK_BYTES = 1 << 20 };

static int min_int(int a, int b) { return a < b ? a : b; }

/* The sums of rows r..r+16*mt, panels pb..pb+np over all of K; mt and np
 * are 1 or 2 and known at compile time where inlined. */
static inline __attribute__((always_inline)) void
block(const eng__bf16 *A, int Kp, const eng__bf16 *B, const int mt, const int np,
      float c[32][32])
{
    const size_t lda = (size_t)Kp * sizeof(eng__bf16), ldb = (size_t)Kp * 16;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int k = 0; k < Kp; k += 32) {
        _tile_loadd(4, A + k, lda);
        if (mt > 1)
            _tile_loadd(5, A + 16 * (size_t)Kp + k, lda);
        _tile_loadd(6, B + (size_t)k * 16, 64);
        if (np > 1)
            _tile_loadd(7, B + ldb + (size_t)k * 16, 64);
        _tile_dpbf16ps(0, 4, 6);
        if (np > 1)
            _tile_dpbf16ps(1, 4, 7);
        if (mt > 1)
            _tile_dpbf16ps(2, 5, 6);
        if (mt > 1 && np > 1)
            _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c[0], 128);
    if (np > 1)
        _tile_stored(1, c[0] + 16, 128);
    if (mt > 1)
        _tile_stored(2, c[16], 128);
    if (mt > 1 && np > 1)
        _tile_stored(3, c[16] + 16, 128);
}

static void block_1_1(const eng__bf16 *A, int Kp, const eng__bf16 *B, float c[32][32]) { block(A, Kp, B, 1, 1, c); }
static void block_1_2(const eng__bf16 *A, int Kp, const eng__bf16 *B, float c[32][32]) { block(A, Kp, B, 1, 2, c); }
static void block_2_1(const eng__bf16 *A, int Kp, const eng__bf16 *B, float c[32][32]) { block(A, Kp, B, 2, 1, c); }
static void block_2_2(const eng__bf16 *A, int Kp, const eng__bf16 *B, float c[32][32]) { block(A, Kp, B, 2, 2, c); }

static void gemm(const void *Av, int M, int Kp, const eng__bf16 *B, int N, float *Y, size_t ldy,
                 const float *bias, const float *res, eng__act act)
{
    const eng__bf16 *A = Av;
    eng__amx_thread_init(); /* every tile 16 rows x 64 bytes */
    const int n16 = (N + 15) / 16;
    int ncp = (int)(B_BLOCK_BYTES / ((size_t)Kp * 16 * sizeof(eng__bf16))) & ~1;
    if (ncp < 2)
        ncp = 2;
    float c[32][32] __attribute__((aligned(64)));
    for (int nb = 0; nb < n16; nb += ncp) {
        const int ne = min_int(nb + ncp, n16);
        for (int r = 0; r < M; r += 32) {
            const int rows = min_int(32, M - r);
            const eng__bf16 *a = A + (size_t)r * Kp;
            for (int pb = nb; pb < ne; pb += 2) {
                const int np = min_int(2, ne - pb), cols = min_int(16 * np, N - 16 * pb);
                const eng__bf16 *b = B + (size_t)pb * Kp * 16;
                if (rows > 16)
                    (np > 1 ? block_2_2 : block_2_1)(a, Kp, b, c);
                else
                    (np > 1 ? block_1_2 : block_1_1)(a, Kp, b, c);
                bgemm_store(c[0], 32, rows, cols, Y + (size_t)r * ldy + 16 * pb, ldy,
                            bias + 16 * pb, res ? res + (size_t)r * ldy + 16 * pb : NULL, act);
            }
        }
    }
}

/* The 2 x 2 blocking's four products on tiles loaded once. */
static double peak(long n)
{
    static const eng__bf16 zeros[16 * 32] __attribute__((aligned(64)));
    eng__amx_thread_init();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, zeros, 64);
    _tile_loadd(5, zeros, 64);
    _tile_loadd(6, zeros, 64);
    _tile_loadd(7, zeros, 64);
    for (long r = 0; r < n; r++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    return (double)n * 4 * 16 * 16 * 32;
}

const eng__bgemm_kernels eng__bgemm_amx = {ENG_BGEMM_AMX, "amx", bgemm_round_rows, NULL, gemm,
                                           peak};
