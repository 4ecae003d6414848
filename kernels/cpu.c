/* cpu.c: CPU feature detection, once per process (cpu.h). CPUID says what the
 * CPU implements, XGETBV whether the OS saves the YMM/ZMM state on context
 * switches (without that, AVX instructions fault or corrupt registers even on
 * a CPU that has them). Built without ISA flags, so it runs anywhere. */
#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>

#include "cpu.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static unsigned features;

/* XCR0, the state components the OS has enabled; only valid once CPUID says
 * OSXSAVE. Inline asm rather than _xgetbv(), which would need -mxsave. */
static uint64_t xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    const unsigned need1 = bit_OSXSAVE | bit_AVX | bit_FMA | bit_F16C;
    if ((c & need1) != need1)
        return;
    const uint64_t xcr = xcr0();
    /* Bits 1 and 2: SSE and AVX (YMM upper halves) state. */
    if ((xcr & 0x6) != 0x6)
        return;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & bit_AVX2))
        return;
    features = ENG_CPU_AVX2;
    const unsigned vnni512 = c & bit_AVX512VNNI, max_subleaf = a;
    /* Bits 5, 6 and 7: opmask registers, ZMM0-15 upper halves, ZMM16-31. */
    const unsigned need512 = bit_AVX512F | bit_AVX512BW | bit_AVX512VL | bit_AVX512DQ;
    const int zmm = (b & need512) == need512 && (xcr & 0xe6) == 0xe6;
    if (zmm)
        features |= ENG_CPU_AVX512 | (vnni512 ? ENG_CPU_AVX512VNNI : 0);
    /* Leaf 7 subleaf 1 (it exists when subleaf 0 reports it in EAX): EAX bit
     * 4 AVX-VNNI, bit 5 AVX512-BF16. */
    if (max_subleaf >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        if (a & (1u << 4))
            features |= ENG_CPU_AVXVNNI;
        if (zmm && (a & (1u << 5)))
            features |= ENG_CPU_AVX512_BF16;
    }
}

unsigned eng__cpu_features(void)
{
    pthread_once(&once, detect);
    return features;
}
