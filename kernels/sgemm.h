/* sgemm.h: the fp32 GEMM of the linear layers, Y = act(X W + bias (+ res)),
 * with W packed once ahead of time (the linear layers' weights are stored
 * packed in the model file, docs/FORMAT.md) and the bias/residual/activation
 * fused into the store of each register tile (no zeroing of Y, no separate
 * pass).
 * Its own small dispatch table, like qgemm.h; the ISA ceiling comes from
 * eng__kernels_get() (CPUID, XGETBV and ENG_ISA, in dispatch.c).
 *
 *   scalar   the reference (plain loops, 4 x 16 tile).
 *   avx2     6 rows x 16 columns (12 ymm accumulators), FMA.
 *   avx512   6 rows x 64 columns (24 zmm accumulators), FMA.
 *
 * Packed weight layout (one layout for every ISA): N16 = ceil(N/16) panels;
 * panel p holds output columns [16p, 16p+16) as K rows of 16 floats,
 *     packed[(p*K + k)*16 + j] = W[k][16p + j],
 * zero where 16p + j >= N. A tile's step k therefore reads one 64-byte line
 * per panel. Size: eng__sgemm_packed_bytes(K, N).
 *
 * The activations X are read in place (no packing): each tile broadcasts its
 * rows' k-th elements. A tile takes one pointer per row, for its input, its
 * output and its residual, so its rows need not be evenly spaced: the linear
 * layers pass rows at a fixed stride, the convolutions (src/vision/conv.c) pass the
 * windows of any run of output pixels, rows and images crossed. */
#ifndef ENG_SGEMM_H
#define ENG_SGEMM_H

#include <stddef.h>

#include "kernels.h"

/* Tile flags: ACCUM adds to the partial sums already in C (a later K block);
 * FINAL marks the last K block, where the epilogue runs. PREFETCH (a hint;
 * one segment only): while it multiplies, the tile also prefetches into L2
 * its part of the weights the driver runs next, the same k steps of the np
 * panels after its own, so that memory (few rows) or L3 (a row block of
 * many) streams them behind the arithmetic instead of stalling the first
 * tile that reads them. The `of` tiles that
 * walk down the rows of one column tile share that block, tile `part` taking
 * k steps [part * ceil(kc/of), (part+1) * ceil(kc/of)), one step (np lines)
 * every of-th k step of its own: eng__sgemm_pf_flags. */
enum { ENG_ST_ACCUM = 1, ENG_ST_FINAL = 2, ENG_ST_PREFETCH = 4 };
enum { ENG_ST_PF_OF_SHIFT = 8, ENG_ST_PF_PART_SHIFT = 16, ENG_ST_PF_MAX = 255 };
static inline int eng__sgemm_pf_flags(int part, int of)
{
    return ENG_ST_PREFETCH | of << ENG_ST_PF_OF_SHIFT | part << ENG_ST_PF_PART_SHIFT;
}

/* The epilogue of one tile, pointers offset to the tile's first column:
 * C = act(acc + bias (+ res)). */
typedef struct {
    const float *bias;        /* never NULL */
    const float *const *res;  /* row r at res[r], or NULL */
    eng__act act;             /* ENG_ACT_NONE or the activation */
} eng__sepi;

/* The most rows of any ISA's tile, for callers' row pointer arrays. */
enum { ENG_SGEMM_MAX_MR = 6 };

typedef struct {
    eng__isa isa;
    int mr;  /* rows of one register tile */
    int np;  /* 16-column panels of one register tile */
    /* One register tile: rows [0, mr), panels [0, np), over nseg segments
     * of kc k steps each (nseg*kc steps in all, in order).
     *   a: segment s of row r at a[r] + s*aseg, kc floats used: a
     *      convolution's kernel rows lie one input row apart, so one call
     *      runs several and the partial sums stay in registers.
     *   b: panel j at b + j*ldb floats, 16 floats per k step, the segments'
     *      steps one after another (nseg*kc steps).
     *   c: row r at c[r]; only columns [0, ncols) are read or written
     *      (16*(np-1) < ncols <= 16*np).
     * Without ACCUM the sums start at 0, with it from c. With FINAL, c gets
     * the epilogue's result; otherwise the raw sums. mr <= this->mr,
     * np <= this->np. Each row's sums run over k in order, whatever mr and
     * the row's place in the tile, so a row's result never depends on which
     * tile computed it. */
    void (*tile)(const float *const *a, ptrdiff_t aseg, int nseg, const float *b, size_t ldb,
                 int kc, int mr, int np, int ncols, float *const *c, int flags,
                 const eng__sepi *epi);
} eng__sgemm_kernels;

/* Bytes of the packed form of a K x N matrix; 0 when K < 1 or N < 1. */
size_t eng__sgemm_packed_bytes(int K, int N);

/* Packs W (K x N row-major) into packed (eng__sgemm_packed_bytes(K, N) bytes;
 * 64-byte alignment makes every panel line one cache line). */
void eng__sgemm_pack(const float *W, int K, int N, float *packed);

/* The inverse of eng__sgemm_pack: W (K x N row-major) from packed, for
 * readers that need the plain matrix (tests, the CUDA upload). */
void eng__sgemm_unpack(const float *packed, int K, int N, float *W);

/* Y[M,N] (row stride ldy >= N) = act(X[M,K] (row stride ldx >= K) W + bias
 * (+ res, M x N with row stride ldy, or NULL)), act ENG_ACT_NONE for none. Single-threaded, blocked for the caches. Y must not overlap X or
 * res: with K split into blocks, Y holds partial sums between them. */
void eng__sgemm_packed(const eng__sgemm_kernels *sk, const float *X, int M, int K, size_t ldx,
                       const float *packed, int N, float *Y, size_t ldy, const float *bias,
                       const float *res, eng__act act);

/* The best table for this CPU under eng__kernels_get()->isa (ENG_ISA). */
const eng__sgemm_kernels *eng__sgemm_get(void);
/* One ISA's table, or NULL when this CPU (or its OS) cannot run it. */
const eng__sgemm_kernels *eng__sgemm_for(eng__isa isa);

/* Per-ISA tables, defined in kernels/sgemm_<isa>.c. */
extern const eng__sgemm_kernels eng__sgemm_scalar;
extern const eng__sgemm_kernels eng__sgemm_avx2;
extern const eng__sgemm_kernels eng__sgemm_avx512;

#endif
