/* qgemm_amx.c: the int8 GEMM tile on Intel's AMX (TDPBUSD on 16 x 64-byte
 * tiles), with the AVX-512 quantizer and an AVX-512 epilogue. Layouts: see
 * qgemm.h.
 *
 * The packed weights need no repacking: a B tile is 16 rows of 64 bytes,
 * row i holding 4 consecutive k for 16 columns, which is exactly 16
 * consecutive k4 steps of one 16-column panel (1 KiB, contiguous). An A tile
 * is 16 activation rows of 64 bytes (64 k), read with the row stride lda.
 * TDPBUSD multiplies unsigned A bytes by signed B bytes and sums groups of
 * four into int32 exactly, like VPDPBUSD, so every accumulation equals the
 * scalar reference and the VNNI path bit for bit, and the epilogue below does
 * the VNNI path's float operations in its order.
 *
 * Register tile: 32 rows x 2 panels = 4 C tiles (tmm0-3), 2 A tiles (tmm4-5)
 * and 2 B tiles (tmm6-7), all 8 tiles; each 16-k4 step loads 4 KiB and runs 4
 * TDPBUSD (16 x 16 x 64 multiply-adds each). Rows past mr, columns past
 * ncols and k4 steps past k4n are never read from the caller's memory: a
 * partial A or B tile is copied into a zero-padded buffer first, and C goes
 * through a buffer too, so only [0, mr) x [0, ncols) is read or written. */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "qgemm.h"

/* KC4: the K block, in k4 steps (4096 k: BERT's K in one block). The
 * accumulators live in the tiles for a whole block, so a block boundary
 * costs a round trip of C through memory; measured (bench/qgemm_bench.c),
 * 1024 ran 0-20% faster than 256 at the BERT shapes. L2_B_BYTES: the
 * weights of one column block, kept in L2 (2 MiB per core on Sapphire
 * Rapids) while the row strips go by (qgemm.c run_strips); 256 KiB to
 * 1.5 MiB measured alike. */
enum {
    L2_B_BYTES = 1 << 20,
    MR = 32,
    NP = 2,
    KC4 = 1024,
    TK4 = 16, /* k4 steps per tile */
    TB = 64   /* bytes per row */
};

/* Loads A tile t (rows [16h, 16h+16) of the register tile, k4 steps
 * [k4, k4+steps)) directly when all 16 rows and 16 steps are there, else
 * through buf. */
#define LOAD_A(t, h)                                                                       \
    do {                                                                                   \
        const uint8_t *src_ = a + (size_t)(16 * (h)) * lda + (size_t)k4 * 4;               \
        const int rows_ = mr - 16 * (h) < 16 ? mr - 16 * (h) : 16;                         \
        if (rows_ == 16 && steps == TK4) {                                                 \
            _tile_loadd(t, src_, (long)lda);                                               \
        } else {                                                                           \
            for (int i_ = 0; i_ < rows_; i_++)                                             \
                memcpy(abuf[h][i_], src_ + (size_t)i_ * lda, (size_t)steps * 4);           \
            _tile_loadd(t, abuf[h], TB);                                                   \
        }                                                                                  \
    } while (0)

/* Loads B tile t (panel j, the same k4 steps), through buf for a K tail. */
#define LOAD_B(t, j)                                                                       \
    do {                                                                                   \
        const int8_t *src_ = b + (size_t)(j) * ldb + (size_t)k4 * TB;                      \
        if (steps == TK4) {                                                                \
            _tile_loadd(t, src_, TB);                                                      \
        } else {                                                                           \
            memcpy(bbuf[j], src_, (size_t)steps * TB);                                     \
            _tile_loadd(t, bbuf[j], TB);                                                   \
        }                                                                                  \
    } while (0)

/* The tile for MH row halves (1 or 2) and P panels (1 or 2); see qgemm.h.
 * Inlined into one function per (MH, P), so the unused tiles cost nothing. */
static inline __attribute__((always_inline)) void
tile_hp(const int MH, const int P, const uint8_t *a, size_t lda, const int8_t *b, size_t ldb,
        int k4n, int mr, int ncols, void *c, size_t ldc, int flags, const eng__qepi *epi)
{
    /* C's round trip and the partial operands. Zeroed when used: the k
     * steps past k4n then meet zero rows of B (so the A bytes there, stale
     * from an earlier step, add nothing), and the A rows past mr only feed C
     * rows that are dropped. */
    int32_t cbuf[2][2][16][16] __attribute__((aligned(64)));
    uint8_t abuf[2][16][TB] __attribute__((aligned(64)));
    int8_t bbuf[2][TK4][TB] __attribute__((aligned(64)));
    const int tail = k4n % TK4 != 0, partial_rows = mr < 16 * MH;
    if (tail || partial_rows)
        memset(abuf, 0, sizeof abuf);
    if (tail)
        memset(bbuf, 0, sizeof bbuf);

    __mmask16 cm[NP];
    for (int j = 0; j < P; j++) {
        const int v = ncols - 16 * j;
        cm[j] = v >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << v) - 1);
    }
    if (flags & ENG_QT_ACCUM) {
        for (int h = 0; h < MH; h++)
            for (int i = 0; i < 16; i++) {
                const int r = 16 * h + i;
                for (int j = 0; j < P; j++)
                    _mm512_store_si512(cbuf[h][j][i],
                                       r < mr ? _mm512_maskz_loadu_epi32(
                                                    cm[j], (const int32_t *)c + r * ldc + 16 * j)
                                              : _mm512_setzero_si512());
            }
        _tile_loadd(0, cbuf[0][0], 64);
        if (P == 2)
            _tile_loadd(1, cbuf[0][1], 64);
        if (MH == 2) {
            _tile_loadd(2, cbuf[1][0], 64);
            if (P == 2)
                _tile_loadd(3, cbuf[1][1], 64);
        }
    } else {
        _tile_zero(0);
        if (P == 2)
            _tile_zero(1);
        if (MH == 2) {
            _tile_zero(2);
            if (P == 2)
                _tile_zero(3);
        }
    }

    /* Whole tiles straight from the operands while every row is there;
     * then (or for a partial row tile throughout) through the buffers. */
    int k4 = 0;
    if (!partial_rows)
        for (; k4 + TK4 <= k4n; k4 += TK4) {
            _tile_loadd(4, a + (size_t)k4 * 4, (long)lda);
            _tile_loadd(6, b + (size_t)k4 * TB, TB);
            _tile_dpbusd(0, 4, 6);
            if (P == 2) {
                _tile_loadd(7, b + ldb + (size_t)k4 * TB, TB);
                _tile_dpbusd(1, 4, 7);
            }
            if (MH == 2) {
                _tile_loadd(5, a + 16 * lda + (size_t)k4 * 4, (long)lda);
                _tile_dpbusd(2, 5, 6);
                if (P == 2)
                    _tile_dpbusd(3, 5, 7);
            }
        }
    for (; k4 < k4n; k4 += TK4) {
        const int steps = k4n - k4 < TK4 ? k4n - k4 : TK4;
        LOAD_A(4, 0);
        LOAD_B(6, 0);
        _tile_dpbusd(0, 4, 6);
        if (P == 2) {
            LOAD_B(7, 1);
            _tile_dpbusd(1, 4, 7);
        }
        if (MH == 2) {
            LOAD_A(5, 1);
            _tile_dpbusd(2, 5, 6);
            if (P == 2)
                _tile_dpbusd(3, 5, 7);
        }
    }

    _tile_stored(0, cbuf[0][0], 64);
    if (P == 2)
        _tile_stored(1, cbuf[0][1], 64);
    if (MH == 2) {
        _tile_stored(2, cbuf[1][0], 64);
        if (P == 2)
            _tile_stored(3, cbuf[1][1], 64);
    }
    const int final_epi = (flags & ENG_QT_FINAL) && epi;
    for (int j = 0; j < P; j++) {
        __m512i corr = _mm512_setzero_si512();
        __m512 sw = _mm512_setzero_ps(), bias = _mm512_setzero_ps();
        if (final_epi) {
            corr = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(cm[j], epi->wsum + 16 * j), 7);
            sw = _mm512_maskz_loadu_ps(cm[j], epi->sw + 16 * j);
            if (epi->bias)
                bias = _mm512_maskz_loadu_ps(cm[j], epi->bias + 16 * j);
        }
        for (int r = 0; r < mr; r++) {
            const __m512i acc = _mm512_load_si512(cbuf[r / 16][j][r % 16]);
            if (final_epi) {
                /* The VNNI path's operations in its order (qgemm_avx512vnni.c). */
                __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, corr));
                v = _mm512_mul_ps(_mm512_mul_ps(v, sw), _mm512_set1_ps(epi->sx[r]));
                if (epi->bias)
                    v = _mm512_add_ps(v, bias);
                _mm512_mask_storeu_ps((float *)c + r * ldc + 16 * j, cm[j], v);
            } else {
                _mm512_mask_storeu_epi32((int32_t *)c + r * ldc + 16 * j, cm[j], acc);
            }
        }
    }
}

#define TILE_FN(MH, P)                                                                        \
    static void tile_##MH##_##P(const uint8_t *a, size_t lda, const int8_t *b, size_t ldb,    \
                                int k4n, int mr, int ncols, void *c, size_t ldc, int flags,   \
                                const eng__qepi *epi)                                         \
    {                                                                                         \
        tile_hp(MH, P, a, lda, b, ldb, k4n, mr, ncols, c, ldc, flags, epi);                   \
    }
TILE_FN(1, 1) TILE_FN(1, 2) TILE_FN(2, 1) TILE_FN(2, 2)

static void tile_amx(const uint8_t *a, size_t lda, const int8_t *b, size_t ldb, int k4n, int mr,
                     int np, int ncols, void *c, size_t ldc, int flags, const eng__qepi *epi)
{
    /* A thread the engine did not start (an application's own) gets its
     * tile configuration here, on its first call. */
    eng__amx_thread_init();
    if (mr > 16)
        (np == 2 ? tile_2_2 : tile_2_1)(a, lda, b, ldb, k4n, mr, ncols, c, ldc, flags, epi);
    else
        (np == 2 ? tile_1_2 : tile_1_1)(a, lda, b, ldb, k4n, mr, ncols, c, ldc, flags, epi);
}

const eng__qgemm_kernels eng__qgemm_amx = {
    .isa = ENG_QISA_AMX, .name = "amx", .mr = MR, .np = NP, .kc4 = KC4, .l2_b_bytes = L2_B_BYTES,
    .quantize = eng__qgemm_quantize_avx512, .tile = tile_amx,
};
