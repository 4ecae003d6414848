/* dispatch.c: picks the kernel table once per process. CPUID says what the
 * CPU implements, XGETBV whether the OS saves the YMM/ZMM state on context
 * switches (without that, AVX instructions fault or corrupt registers even on
 * a CPU that has them), and ENG_ISA=scalar|avx2|avx512 may lower the choice,
 * never raise it. This file is built without ISA flags, so it runs anywhere. */
#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

#include "kernels_isa.h"

/* attention_bf16 is the fp32 kernel in the vector tables until init() finds
 * AVX512-BF16 (see kernels.h). */
#define ENG_KERNELS_TABLE(ISA, isa, attention_bf16)                                      \
    [ISA] = {ISA, eng__softmax_##isa, eng__argmax_##isa, eng__layernorm_##isa,           \
             eng__bias_act_##isa, eng__bias_residual_##isa, eng__attention_##isa,        \
             attention_bf16, {eng__wino2_input_##isa, eng__wino4_input_##isa},            \
             {eng__wino2_output_##isa, eng__wino4_output_##isa}}

/* Filled in once by init(); read-only afterwards. */
static eng__kernels tables[] = {
    ENG_KERNELS_TABLE(ENG_ISA_SCALAR, scalar, eng__attention_bf16_scalar),
    ENG_KERNELS_TABLE(ENG_ISA_AVX2, avx2, eng__attention_avx2),
    ENG_KERNELS_TABLE(ENG_ISA_AVX512, avx512, eng__attention_avx512),
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static eng__isa hw_best; /* the best this CPU and OS can run */
static eng__isa chosen;  /* hw_best, lowered by ENG_ISA */

/* XCR0, the state components the OS has enabled; only valid once CPUID says
 * OSXSAVE. Inline asm rather than _xgetbv(), which would need -mxsave. */
static uint64_t xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static eng__isa detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return ENG_ISA_SCALAR;
    const unsigned need1 = bit_OSXSAVE | bit_AVX | bit_FMA | bit_F16C;
    if ((c & need1) != need1)
        return ENG_ISA_SCALAR;
    const uint64_t xcr = xcr0();
    /* Bits 1 and 2: SSE and AVX (YMM upper halves) state. */
    if ((xcr & 0x6) != 0x6)
        return ENG_ISA_SCALAR;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & bit_AVX2))
        return ENG_ISA_SCALAR;
    /* Bits 5, 6 and 7: opmask registers, ZMM0-15 upper halves, ZMM16-31. */
    const unsigned need512 = bit_AVX512F | bit_AVX512BW | bit_AVX512VL | bit_AVX512DQ;
    if ((b & need512) == need512 && (xcr & 0xe6) == 0xe6)
        return ENG_ISA_AVX512;
    return ENG_ISA_AVX2;
}

eng__isa eng__isa_parse_override(const char *env, eng__isa best)
{
    if (!env)
        return best;
    for (int isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AVX512; isa++)
        if (strcasecmp(env, eng__isa_str((eng__isa)isa)) == 0)
            return isa < (int)best ? (eng__isa)isa : best;
    return best;
}

/* AVX512-BF16 (CPUID leaf 7, subleaf 1, EAX bit 5); its registers are the
 * AVX-512 state detect() checked already. */
static int has_avx512_bf16(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && a >= 1 &&
           __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}

static void init(void)
{
    hw_best = detect();
    if (hw_best == ENG_ISA_AVX512 && has_avx512_bf16())
        tables[ENG_ISA_AVX512].attention_bf16 = eng__attention_bf16_avx512;
    chosen = eng__isa_parse_override(getenv("ENG_ISA"), hw_best);
}

const eng__kernels *eng__kernels_get(void)
{
    pthread_once(&once, init);
    return &tables[chosen];
}

const eng__kernels *eng__kernels_for(eng__isa isa)
{
    pthread_once(&once, init);
    if ((int)isa < ENG_ISA_SCALAR || isa > hw_best)
        return NULL;
    return &tables[isa];
}

const char *eng__isa_str(eng__isa isa)
{
    switch (isa) {
    case ENG_ISA_SCALAR: return "scalar";
    case ENG_ISA_AVX2: return "avx2";
    case ENG_ISA_AVX512: return "avx512";
    }
    return "unknown";
}
