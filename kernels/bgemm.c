/* bgemm.c: the bf16 GEMM's packing, its driver (the activations rounded by
 * the unit, then its GEMM, all rows at once or a block at a time) and the
 * dispatch, with the choice between the AVX-512 forms (layouts in bgemm.h).
 * Built without ISA flags, so it runs anywhere. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

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
    const int kp = eng__bgemm_kp(K), block = eng__bgemm_fma_rows(kp);
    const size_t bf16 = (((size_t)M + 15) & ~(size_t)15) * kp * sizeof(eng__bf16);
    const size_t strips = (size_t)(M < block ? M : block) + ENG_BGEMM_FMA_MR - 1;
    const size_t fp32 = strips / ENG_BGEMM_FMA_MR * ENG_BGEMM_FMA_MR * kp * sizeof(float);
    return ((bf16 > fp32 ? bf16 : fp32) + 63) & ~(size_t)63;
}

void eng__bgemm(const eng__bgemm_kernels *bk, const float *X, int M, int K, size_t ldx,
                const eng__bf16 *packed, int N, float *Y, size_t ldy, const float *bias,
                const float *res, eng__act act, void *scratch)
{
    const int kp = eng__bgemm_kp(K), block = bk->block_rows ? bk->block_rows(kp) : M;
    for (int r = 0; r < M; r += block) {
        const int m = M - r < block ? M - r : block;
        bk->round(X + (size_t)r * ldx, m, K, ldx, scratch);
        bk->gemm(scratch, m, kp, packed, N, Y + (size_t)r * ldy, ldy, bias,
                 res ? res + (size_t)r * ldy : NULL, act);
    }
}

/* Whether the CPU (and OS: the AMX level includes Linux's tile permission)
 * can run isa's unit at ISA level at most level. */
static int runs(eng__bgemm_isa isa, eng__isa level)
{
    const eng__cpu *cpu = eng__cpu_get();
    switch (isa) {
    case ENG_BGEMM_SCALAR: return 1;
    case ENG_BGEMM_AVX512FMA: return level >= ENG_ISA_AVX512;
    case ENG_BGEMM_AVX512BF16: return level >= ENG_ISA_AVX512 && cpu->avx512_bf16;
    case ENG_BGEMM_AMX: return level >= ENG_ISA_AMX && cpu->amx_bf16;
    }
    return 0;
}

static const eng__bgemm_kernels *const tables[] = {
    [ENG_BGEMM_SCALAR] = &eng__bgemm_scalar,
    [ENG_BGEMM_AVX512FMA] = &eng__bgemm_avx512fma,
    [ENG_BGEMM_AVX512BF16] = &eng__bgemm_avx512bf16,
    [ENG_BGEMM_AMX] = &eng__bgemm_amx,
};

const eng__bgemm_kernels *eng__bgemm_for(eng__bgemm_isa isa)
{
    return (unsigned)isa <= ENG_BGEMM_AMX && runs(isa, eng__cpu_get()->best) ? tables[isa]
                                                                             : NULL;
}

/* Multiply-adds per second of one run of bk's peak loop, in thread CPU
 * time (time spent descheduled does not count). */
static double peak_rate(const eng__bgemm_kernels *bk)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    const double macs = bk->peak(5000);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    const double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return s > 0 ? macs / s : 0.0;
}

static const eng__bgemm_kernels *chosen;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Without AMX, VDPBF16PS or the fp32 FMA on widened weights: which does
 * more multiply-adds differs by core, not by vendor, so it is measured.
 * This session's Xeon (AVX512-BF16, AMX hidden by the hypervisor) issues
 * VDPBF16PS at half the multiply-adds of its two FMA ports; on AMD Zen 4/5
 * VDPBF16PS (two products per lane) is expected to do more than the FMAs
 * (not measured here); Xeons with one 512-bit FMA port would differ again.
 * Each unit's peak loop (operands in registers, the FMA form's with its
 * widening) runs about 0.1 ms, three times alternated, once per process.
 * Here the gap is 2x (sgemm-bench --bf16: about 157 against 81 GFLOP/s),
 * far beyond the timing's noise, so the choice does not flip between runs
 * (ENG_BGEMM forces one, for tests and A/B); and the two forms read the
 * same packed weights and round the activations the same way, so whichever
 * runs gives results within test_bgemm's tolerance of the other. */
static void choose(void)
{
    const eng__isa level = eng__cpu_get()->level;
    const char *env = getenv("ENG_BGEMM");
    for (int isa = ENG_BGEMM_AVX512FMA; env && isa <= ENG_BGEMM_AMX; isa++)
        if (!strcmp(env, tables[isa]->name) && runs(isa, level)) {
            chosen = tables[isa];
            return;
        }
    if (runs(ENG_BGEMM_AMX, level))
        chosen = tables[ENG_BGEMM_AMX];
    else if (runs(ENG_BGEMM_AVX512BF16, level)) {
        /* Alternated, the best of three each: an interrupt, or the first
         * AVX-512 microseconds at a lower clock, cost one run, not the choice. */
        double fma = 0.0, dp = 0.0;
        for (int i = 0; i < 3; i++) {
            const double f = peak_rate(tables[ENG_BGEMM_AVX512FMA]);
            const double d = peak_rate(tables[ENG_BGEMM_AVX512BF16]);
            fma = f > fma ? f : fma;
            dp = d > dp ? d : dp;
        }
        chosen = tables[fma > dp ? ENG_BGEMM_AVX512FMA : ENG_BGEMM_AVX512BF16];
    } else if (runs(ENG_BGEMM_AVX512FMA, level)) {
        /* AVX-512 without a bf16 instruction (Skylake-SP to Ice Lake):
         * the FMA form still halves the weight bytes batch 1 streams. */
        chosen = tables[ENG_BGEMM_AVX512FMA];
    }
}

const eng__bgemm_kernels *eng__bgemm_get(void)
{
    pthread_once(&once, choose);
    return chosen;
}
