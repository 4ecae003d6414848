/* bgemm.h: the bf16 GEMM of --precision bf16 (ENG_PREC_BF16 on the CPU),
 * Y = act(X W + bias (+ res)) with X and W rounded to bfloat16 (8
 * significant bits, to nearest even) and the products summed in fp32.
 *
 *   scalar      the reference: the same rounding, fp32 sums in k order.
 *   avx512fma   the fp32 FMA (AVX-512F) on the bf16 weights widened in
 *               registers, 12 rows x 32 columns, fp32 sums in k order (the
 *               reference's, bit for bit); for CPUs whose VDPBF16PS does
 *               fewer multiply-adds than their FMAs (bgemm.c measures).
 *   avx512bf16  VDPBF16PS (AVX512-BF16: Intel Cooper Lake and later, AMD
 *               Zen 4/5), 6 rows x 64 columns, two products per lane.
 *   amx         TDPBF16PS (AMX-BF16: Intel Sapphire Rapids and later),
 *               2 x 2 tiles of 16 x 16 fp32 sums, 32 rows x 32 columns.
 *
 * Where neither AMX-BF16 nor AVX512-BF16 exists, eng__bgemm_get() is NULL
 * and a bf16 context is refused with ENG_ERR_UNSUPPORTED: the scalar twin is
 * a test reference, far slower than the fp32 GEMM.
 *
 * Packed weights (every ISA, and BF16 model files): Kp = K rounded up to 32
 * (one AMX tile's depth), N16 = ceil(N/16) panels of 16 columns; panel p
 * holds Kp/2 rows of 16 column pairs (the VNNI pair order both instructions
 * read):
 *     packed[(p*Kp/2 + i)*32 + 2j + e] = bf16(W[2i + e][16p + j]),
 * zero past K and N. One 64-byte line per pair of k steps per panel; as 16
 * 32-bit lanes, a line holds W[2i][16p + j] in the bottom half of lane j
 * (the fp32 it stands for, once shifted up) and W[2i + 1][16p + j] in the
 * top half (the fp32 once the bottom half is cleared).
 *
 * Activations are rounded once per GEMM into scratch, in the unit's layout:
 *   - bf16 units: row-major [Mp][Kp] bf16 with Mp = M rounded up to 16 (an
 *     AMX tile's rows), zero past K and M; the AMX tiles load them straight
 *     from there.
 *   - avx512fma: the fp32 each bf16 stands for (a broadcast operand of the
 *     FMA as it is), in strips of ENG_BGEMM_FMA_MR rows and chunks of 16 k
 *     steps, each row's chunk one 64-byte line:
 *         A[((s*Kp/16 + c)*MR + r)*16 + i] = bf16(X[s*MR + r][16c + i]),
 *     zero past K (rows past M are never read). Twice the bytes of bf16, so
 *     the rows go a block at a time (eng__bgemm_fma_rows, about
 *     ENG_BGEMM_FMA_BLOCK_BYTES), each rounded just before its products:
 *     the block stays in L2 instead of a round trip through memory.
 * Rows are independent: a row's result never depends on the other rows or
 * on M. */
#ifndef ENG_BGEMM_H
#define ENG_BGEMM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

typedef uint16_t eng__bf16;

/* fp32 -> bf16, round to nearest even (denormals kept, NaN stays a quiet
 * NaN): what every ISA's operands go through, so they agree on the inputs. */
static inline eng__bf16 eng__bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (eng__bf16)((u >> 16) | 0x40);
    return (eng__bf16)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static inline float eng__bf16_float(eng__bf16 h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

typedef enum {
    ENG_BGEMM_SCALAR = 0,
    ENG_BGEMM_AVX512FMA = 1,
    ENG_BGEMM_AVX512BF16 = 2,
    ENG_BGEMM_AMX = 3
} eng__bgemm_isa;

/* Rows of one strip of the avx512fma unit's activations (its register
 * tile's), and the bytes of the block of rows it rounds and multiplies at a
 * time (an L2's share). */
enum { ENG_BGEMM_FMA_MR = 12, ENG_BGEMM_FMA_BLOCK_BYTES = 512 * 1024 };

/* The avx512fma unit's rows per block at depth Kp (a multiple of MR; one
 * strip at Kp 0, which eng__bgemm_scratch_bytes may be asked about). */
static inline int eng__bgemm_fma_rows(int Kp)
{
    const size_t strip_bytes = (size_t)ENG_BGEMM_FMA_MR * (Kp > 0 ? (size_t)Kp : 1) * 4;
    const int strips = (int)(ENG_BGEMM_FMA_BLOCK_BYTES / strip_bytes);
    return (strips > 1 ? strips : 1) * ENG_BGEMM_FMA_MR;
}

typedef struct {
    eng__bgemm_isa isa;
    const char *name;
    /* A = the rounded X [M][K] (row stride ldx) in the unit's layout (above). */
    void (*round)(const float *X, int M, int K, size_t ldx, void *A);
    /* The rows eng__bgemm rounds and multiplies at a time at depth Kp;
     * NULL: all of them at once. */
    int (*block_rows)(int Kp);
    /* Y[M,N] (row stride ldy) = act(A B + bias (+ res)): A as round() left
     * it, B packed, res row r at res + r*ldy or NULL, act == ENG_ACT_NONE for
     * none. */
    void (*gemm)(const void *A, int M, int Kp, const eng__bf16 *B, int N, float *Y, size_t ldy,
                 const float *bias, const float *res, eng__act act);
    /* The unit's peak, for sgemm-bench --bf16 and eng__bgemm_get()'s choice:
     * runs n rounds of the register tile's arithmetic on operands held in
     * registers (no loads) and returns the multiply-adds done; NULL for the
     * scalar reference. */
    double (*peak)(long n);
} eng__bgemm_kernels;

/* K rounded up to the packed depth. */
static inline int eng__bgemm_kp(int K) { return (K + 31) & ~31; }

/* Bytes of the packed form of a K x N matrix; 0 when K < 1 or N < 1. */
size_t eng__bgemm_packed_bytes(int K, int N);
/* Rounds and repacks W, given in the fp32 panel layout of kernels/sgemm.h
 * (the model file's), into packed (eng__bgemm_packed_bytes(K, N) bytes). */
void eng__bgemm_pack(const float *sgemm_packed, int K, int N, eng__bf16 *packed);
/* The inverse, for an fp32 run of bf16 weights: packed back into the sgemm
 * panel layout, every value exactly as rounded. */
void eng__bgemm_unpack(const eng__bf16 *packed, int K, int N, float *sgemm_packed);

/* Scratch bytes of eng__bgemm for M rows of K inputs on any unit (the
 * larger of the two layouts; 64-byte multiple). */
size_t eng__bgemm_scratch_bytes(int M, int K);

/* Y[M,N] = act(bf16(X) W + bias (+ res)): X [M,K] with row stride ldx, Y and
 * res with row stride ldy; res NULL or act == ENG_ACT_NONE as in eng__sgemm_packed.
 * scratch: eng__bgemm_scratch_bytes(M, K) bytes, 64-byte aligned. */
void eng__bgemm(const eng__bgemm_kernels *bk, const float *X, int M, int K, size_t ldx,
                const eng__bf16 *packed, int N, float *Y, size_t ldy, const float *bias,
                const float *res, eng__act act, void *scratch);

/* The unit --precision bf16 runs on, chosen once: AMX where ENG_ISA is
 * amx; else, with AVX512-BF16, the faster of avx512bf16 and avx512fma by
 * their peaks measured at the first call (bgemm.c says why); NULL without
 * AMX-BF16 and AVX512-BF16, or below ENG_ISA avx512. ENG_BGEMM=<name>
 * (avx512fma|avx512bf16|amx) forces a unit this CPU runs under ENG_ISA, for
 * tests and A/B; other values are ignored. */
const eng__bgemm_kernels *eng__bgemm_get(void);
/* One ISA's table, or NULL when this CPU (or its OS) cannot run it. */
const eng__bgemm_kernels *eng__bgemm_for(eng__bgemm_isa isa);

extern const eng__bgemm_kernels eng__bgemm_scalar;
extern const eng__bgemm_kernels eng__bgemm_avx512fma;
extern const eng__bgemm_kernels eng__bgemm_avx512bf16;
extern const eng__bgemm_kernels eng__bgemm_amx;

#endif
