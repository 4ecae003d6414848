/* linear_int8.h: the int8 form of a linear layer (src/text/linear_int8.c); the
 * converter's tools/convert/quantize.h writes its weights.
 *
 * Scheme. Weights: symmetric, per output channel, scale[n] = max_k |W[k][n]| / 127,
 * q = round(W / scale) in [-127, 127]. Activations: quantized on the fly per
 * row (per token, so a sentence's result never depends on what it is batched
 * with) to u8 with zero point 128: s = max|x_row| / 127, x_q = round(x/s) + 128.
 * The GEMM sums u8 x s8 products exactly in int32 (VPDPBUSD on VNNI CPUs) and
 * the epilogue removes the zero point with the column sums:
 *   Y[m][n] = (acc[m][n] - 128 * wsum[n]) * scale[n] * s[m] + b[n] (+ act or res).
 *
 * Stored tensors (written by tools/convert, bound by eng__linear_bind):
 *   "<name>.w"        I8, 1-D, eng__quantized_weight_bytes(K, N) bytes, the
 *                     packed panel layout documented in kernels/qgemm.h
 *   "<name>.w.scale"  F32 [N]
 *   "<name>.w.sum"    I32 [N], sum over k of the int8 weights of column n
 *
 * One layout for every instruction set. The AVX2 path (no VNNI) widens the
 * weights to 16 bits instead of using 7-bit weights, so the same file gives
 * the same integers everywhere, the file is portable, and nothing is
 * repacked at load (so there is no prepare step: the mapped tensors are used
 * in place). */
#ifndef ENG_LINEAR_INT8_H
#define ENG_LINEAR_INT8_H

#include <stddef.h>
#include <stdint.h>

#include "linear.h"

/* Largest K: K * 255 * 127 must fit the int32 accumulators. */
#define ENG_QGEMM_MAX_K 65536

/* Bytes of the packed weights for K x N; 0 when K or N is out of range
 * (K in [1, ENG_QGEMM_MAX_K], N >= 1). */
size_t eng__quantized_weight_bytes(int K, int N);

/* Y = X W + b for l->dtype == ENG_DT_I8, then act unless it is ENG_ACT_NONE,
 * else + res (res may be NULL): the same contract as eng__linear_run. l->wsum must be
 * set. scratch holds eng__linear_int8_scratch_bytes(M, l->K) bytes, aligned
 * as malloc aligns. Runs on the calling thread only: the forward pass's team
 * (src/core/team.h) splits the rows among its members, each with its own scratch,
 * and since activations are quantized per row, a row's result is the same
 * whatever the split or the batch. Only the columns of 16-column panels
 * [p0, p1) are computed (see eng__linear_run_cols). */
void eng__linear_int8_run(const eng__linear *l, const float *X, int M, float *Y, const float *res,
                          eng__act act, void *scratch, const eng__kernels *kern, int p0, int p1);
size_t eng__linear_int8_scratch_bytes(int M, int K);

#endif
