/* bgemm.c: the bf16 GEMM's packing, its driver (the activations rounded by
 * the unit, then its GEMM) and the dispatch (layouts in bgemm.h). Built
 * without ISA flags, so it runs anywhere. */
#include "bgemm.h"
#include "cpu.h"

size_t eng__bgemm_packed_bytes(int K, int N)
{
    if (K < 1 || N < 1)
        return 0;
    return (size_t)((N + 15) / 16) * (size_t)eng__bgemm_kp(K) * 16 * sizeof(eng__bf16);
}

void eng__bgemm_pack(const float *sg, int K, int N, eng__bf16 *packed)
{
    const int n16 = (N + 15) / 16, kp = eng__bgemm_kp(K);
    for (int p = 0; p < n16; p++) {
        const float *src = sg + (size_t)p * K * 16; /* zero past N already */
        eng__bf16 *dst = packed + (size_t)p * kp * 16;
        for (int k = 0; k < kp; k++)
            for (int j = 0; j < 16; j++)
                dst[(size_t)(k / 2) * 32 + 2 * j + (k & 1)] =
                    k < K ? eng__bf16_round(src[(size_t)k * 16 + j]) : 0;
    }
}

void eng__bgemm_unpack(const eng__bf16 *packed, int K, int N, float *sg)
{
    const int n16 = (N + 15) / 16, kp = eng__bgemm_kp(K);
    for (int p = 0; p < n16; p++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < 16; j++)
                sg[((size_t)p * K + k) * 16 + j] =
                    eng__bf16_float(packed[(size_t)p * kp * 16 + (size_t)(k / 2) * 32 + 2 * j + (k & 1)]);
}

size_t eng__bgemm_scratch_bytes(int M, int K)
{
    const size_t mp = ((size_t)M + 15) & ~(size_t)15;
    return (mp * (size_t)eng__bgemm_kp(K) * sizeof(eng__bf16) + 63) & ~(size_t)63;
}

void eng__bgemm(const eng__bgemm_kernels *bk, const float *X, int M, int K, size_t ldx,
                const eng__bf16 *packed, int N, float *Y, size_t ldy, const float *bias,
                const float *res, eng__act act, void *scratch)
{
    const int kp = eng__bgemm_kp(K), mp = (M + 15) & ~15;
    eng__bf16 *A = scratch;
    for (int r = 0; r < M; r++)
        bk->round_row(X + (size_t)r * ldx, K, kp, A + (size_t)r * kp);
    /* The tile rows past M are computed and dropped; zeros keep them finite. */
    memset(A + (size_t)M * kp, 0, (size_t)(mp - M) * kp * sizeof *A);
    bk->gemm(A, M, kp, packed, N, Y, ldy, bias, res, act);
}

/* Whether the CPU (and OS: the AMX level includes Linux's tile permission)
 * can run isa's unit at ISA level at most level. */
static int runs(eng__bgemm_isa isa, eng__isa level)
{
    const eng__cpu *cpu = eng__cpu_get();
    switch (isa) {
    case ENG_BGEMM_SCALAR: return 1;
    case ENG_BGEMM_AVX512BF16: return level >= ENG_ISA_AVX512 && cpu->avx512_bf16;
    case ENG_BGEMM_AMX: return level >= ENG_ISA_AMX && cpu->amx_bf16;
    }
    return 0;
}

static const eng__bgemm_kernels *const tables[] = {
    [ENG_BGEMM_SCALAR] = &eng__bgemm_scalar,
    [ENG_BGEMM_AVX512BF16] = &eng__bgemm_avx512bf16,
    [ENG_BGEMM_AMX] = &eng__bgemm_amx,
};

const eng__bgemm_kernels *eng__bgemm_for(eng__bgemm_isa isa)
{
    return (unsigned)isa <= ENG_BGEMM_AMX && runs(isa, eng__cpu_get()->best) ? tables[isa]
                                                                             : NULL;
}

const eng__bgemm_kernels *eng__bgemm_get(void)
{
    const eng__isa level = eng__cpu_get()->level;
    return runs(ENG_BGEMM_AMX, level)          ? tables[ENG_BGEMM_AMX]
         : runs(ENG_BGEMM_AVX512BF16, level) ? tables[ENG_BGEMM_AVX512BF16]
                                             : NULL;
}
