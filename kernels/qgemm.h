/* qgemm.h: the int8 GEMM kernels behind src/text/linear_int8.c, their own small
 * dispatch table, and the blocking driver shared by every ISA.
 *
 * Arithmetic: C[m][n] = sum_k A[m][k] * W[k][n], A unsigned 8-bit (activations
 * quantized with zero point 128), W signed 8-bit in [-127, 127], exact int32.
 * Every path computes the same integers, bit for bit:
 *   scalar      the reference (plain loops).
 *   avx2        VPMOVSXBW + VPMADDWD: the weights are widened to 16 bits, so
 *               the pair sums (at most 2*255*127 = 64770) are formed in 32
 *               bits and cannot saturate. VPMADDUBSW would saturate them at
 *               32767 with full-range weights; widening keeps one weight
 *               format (8-bit, scale = max|w|/127) for every path.
 *   avxvnni     VEX VPDPBUSD on ymm (no saturation: products summed in 32 bits).
 *   avx512vnni  EVEX VPDPBUSD on zmm.
 *   amx         TDPBUSD on AMX tiles (16 x 64 bytes), the same sums.
 *
 * Packed weight layout (one layout for every path, so model files are
 * portable and nothing is repacked at load): K4 = ceil(K/4), N16 = ceil(N/16);
 * panel p holds output columns [16p, 16p+16), and for each k4 in [0, K4) 64
 * bytes: 16 columns x 4 consecutive k,
 *     Bp[((p*K4 + k4)*16 + j)*4 + t] = W[4*k4 + t][16*p + j],
 * zero where 4*k4+t >= K or 16*p+j >= N. One VPDPBUSD zmm step therefore reads
 * 64 contiguous bytes. Size: N16 * K4 * 64 bytes.
 *
 * Activations: row m of A is lda >= 4*K4 bytes; bytes [K, 4*K4) are padding
 * (the driver's callers set them to 128; the zero weight rows make them
 * irrelevant to the result). */
#ifndef ENG_QGEMM_H
#define ENG_QGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

typedef enum {
    ENG_QISA_SCALAR = 0,
    ENG_QISA_AVX2 = 1,
    ENG_QISA_AVXVNNI = 2,
    ENG_QISA_AVX512VNNI = 3,
    ENG_QISA_AMX = 4,
    ENG_QISA_COUNT
} eng__qisa;

/* The vector tiles' K block, in k4 steps (see qgemm.c; AVX512-VNNI sets its own). */
enum { ENG_QGEMM_KC4 = 128 };

/* Tile flags: ACCUM adds to the int32 partial sums already in C (a later K
 * block); FINAL marks the last K block, where the epilogue runs. PREFETCH
 * (a hint, for few rows, as ENG_ST_PREFETCH in sgemm.h): while it
 * multiplies, the tile prefetches into L2 its part of the next column tile's
 * weights (the same k4 steps of the np panels after its own), the `of` row
 * tiles of one column tile sharing them, tile `part` taking k4 steps
 * [part * ceil(k4n/of), (part+1) * ceil(k4n/of)), one step every of-th k4
 * step of its own: eng__qgemm_pf_flags. */
enum { ENG_QT_ACCUM = 1, ENG_QT_FINAL = 2, ENG_QT_PREFETCH = 4 };
enum { ENG_QT_PF_OF_SHIFT = 8, ENG_QT_PF_PART_SHIFT = 16, ENG_QT_PF_MAX = 255 };
static inline int eng__qgemm_pf_flags(int part, int of)
{
    return ENG_QT_PREFETCH | of << ENG_QT_PF_OF_SHIFT | part << ENG_QT_PF_PART_SHIFT;
}

/* Dequantization epilogue, pointers offset to the tile's first row (sx) and
 * first column (the rest):
 *   Y[m][n] = (float)(acc[m][n] - 128 * wsum[n]) * sw[n] * sx[m] (+ bias[n]),
 * the multiplications in that order, no FMA, so every path rounds alike. */
typedef struct {
    const float *sx;       /* per-row activation scales */
    const float *sw;       /* per-column weight scales */
    const int32_t *wsum;   /* per-column sums of the int8 weights */
    const float *bias;     /* may be NULL */
} eng__qepi;

typedef struct {
    eng__qisa isa;
    const char *name;
    int mr;   /* rows of one register tile */
    int np;   /* 16-column panels of one register tile */
    int kc4;  /* k4 steps per K block (see qgemm.c) */
    /* 0: the vector tiles' blocking (qgemm.c). Else the bytes of weights
     * (whole panels) one column block keeps in L2 while every strip of mr
     * rows goes by, each strip running across the block's panels (AMX). */
    int l2_b_bytes;
    /* For each of rows rows of x (k floats each, row stride k): s = max|x|/127
     * (0 for an all-zero row), a[r][i] = clamp(rint(x * (127/max)) + 128, 0, 255)
     * for i < k; sx[r] = s. Rounds to nearest even, like the vector
     * conversions, so every path writes the same bytes. a's padding is not
     * touched. */
    void (*quantize)(const float *x, int rows, int k, uint8_t *a, size_t lda, float *sx);
    /* One register tile: rows [0, mr), panels [0, np), over k4 steps [0, k4n).
     *   a: row r at a + r*lda, 4*k4n bytes used.
     *   b: panel j at b + j*ldb bytes, 64 bytes per k4 step.
     *   c: row r at c + r*ldc elements (int32 or float, both 4 bytes); only
     *      columns [0, ncols) are read or written (ncols <= 16*np).
     * Without ACCUM the sums start at 0, with it from c (int32). With FINAL
     * and epi != NULL, c receives the epilogue's floats; otherwise the int32
     * sums. mr <= this->mr, np <= this->np. */
    void (*tile)(const uint8_t *a, size_t lda, const int8_t *b, size_t ldb, int k4n, int mr,
                 int np, int ncols, void *c, size_t ldc, int flags, const eng__qepi *epi);
} eng__qgemm_kernels;

/* A whole int8 GEMM: M x K activations times the packed K x N weights. */
typedef struct {
    const uint8_t *a;
    size_t lda;
    const int8_t *b;      /* packed as above */
    int k, n;
    const float *sx, *sw; /* sx == NULL: raw int32 output, no epilogue (sw, wsum
                           * and bias unused, may be NULL) */
    const int32_t *wsum;
    const float *bias;    /* may be NULL */
    void *c;              /* M x ldc float (or int32) */
    size_t ldc;
} eng__qgemm_args;

/* Computes rows [m0, m1) and panels [p0, p1) (columns [16*p0, min(16*p1, n)))
 * of g, blocked for the caches; single-threaded. */
void eng__qgemm_run(const eng__qgemm_kernels *qk, const eng__qgemm_args *g, int m0, int m1,
                    int p0, int p1);

/* The path a ceiling and a feature set (ENG_CPU_* bits, cpu.h) give: amx needs the AMX ceiling,
 * avx512vnni the AVX512 one; avxvnni (VEX, ymm only) and avx2 need the AVX2 ceiling. Pure, so
 * tests cover every combination. */
eng__qisa eng__qgemm_choose(eng__isa ceiling, unsigned features);
/* The best table for this CPU under eng__kernels_get()->isa (ENG_ISA). */
const eng__qgemm_kernels *eng__qgemm_get(void);
/* One path's table, or NULL when this CPU (or its OS) cannot run it. */
const eng__qgemm_kernels *eng__qgemm_for(eng__qisa isa);
const char *eng__qisa_str(eng__qisa isa);

/* Per-ISA tables, defined in kernels/qgemm_<isa>.c. */
extern const eng__qgemm_kernels eng__qgemm_scalar;
extern const eng__qgemm_kernels eng__qgemm_avx2;
extern const eng__qgemm_kernels eng__qgemm_avxvnni;
extern const eng__qgemm_kernels eng__qgemm_avx512vnni;
extern const eng__qgemm_kernels eng__qgemm_amx;
/* The 256-bit quantizer, shared by the avx2 and avxvnni tables, and the
 * 512-bit one, shared by the avx512vnni and amx tables. */
void eng__qgemm_quantize_avx2(const float *x, int rows, int k, uint8_t *a, size_t lda, float *sx);
void eng__qgemm_quantize_avx512(const float *x, int rows, int k, uint8_t *a, size_t lda,
                                float *sx);

#endif
