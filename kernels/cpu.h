/* cpu.h: what this CPU and its OS let the engine run, found once per process
 * (kernels/cpu.c is the only file that reads CPUID or XCR0). Three layers:
 *   - the CPUID feature bits;
 *   - the OS side: XCR0 says which register states the OS saves on a context
 *     switch (without it AVX/AVX-512/AMX instructions fault or corrupt
 *     registers), and for AMX Linux also wants a per-process request,
 *     arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), made here once;
 *   - the ISA level the kernel tables use: the best of scalar < avx2 < avx512
 *     < amx that both allow, lowered (never raised) by ENG_ISA.
 * ENG_AMX_DENY=1 skips the permission request and treats it as refused, so
 * the fallback can be tested on an AMX machine. */
#ifndef ENG_CPU_H
#define ENG_CPU_H

#include "kernels.h"

typedef struct {
    /* CPUID bits. */
    unsigned avx2 : 1, fma : 1, f16c : 1, avx512 : 1 /* F, BW, VL and DQ */, avx512_vnni : 1,
        avx_vnni : 1, avx512_bf16 : 1, amx_tile : 1, amx_int8 : 1, amx_bf16 : 1;
    /* XCR0: the OS saves YMM, ZMM (with the opmasks), and the tile state. */
    unsigned os_ymm : 1, os_zmm : 1, os_tile : 1;
    /* Linux granted this process the tile data state (ARCH_REQ_XCOMP_PERM). */
    unsigned amx_permitted : 1;
    /* The best level the hardware and OS allow, and the one ENG_ISA leaves:
     * ENG_ISA_AMX needs AVX-512, AMX-TILE, AMX-INT8, the XCR0 tile bits and
     * the permission. */
    eng__isa best, level;
    /* One core's L2 in bytes (CPUID 0x80000006, on Intel and AMD alike), for
     * the GEMMs' cache blocking; 512 KiB where CPUID does not say. */
    size_t l2_bytes;
} eng__cpu;

/* Detection, run once (thread-safe); the result never changes afterwards. */
const eng__cpu *eng__cpu_get(void);

/* Loads the tile configuration every AMX kernel uses (all 8 tiles 16 rows x
 * 64 bytes: int8 A/B/C, bf16 A/B and fp32 C all fit that shape) into the
 * calling thread, once per thread; a no-op below ENG_ISA_AMX. Every thread
 * must call it before its first tile instruction: the team's members do at
 * start, and each AMX kernel entry point does (a thread-local flag test), so
 * threads the engine did not create are covered too. */
void eng__amx_thread_init(void);

/* The same detection as bits, for the choosers that test sets of features
 * (qgemm.c's eng__qgemm_choose, and its tests). Each bit implies the OS
 * saves the registers its instructions use (and, for ENG_CPU_AMX, that Linux
 * granted the tile state). */
enum {
    ENG_CPU_AVX2 = 1,          /* AVX2, FMA, F16C; YMM state */
    ENG_CPU_AVX512 = 2,        /* AVX-512 F, BW, VL, DQ; ZMM and opmask state */
    ENG_CPU_AVX512_BF16 = 4,   /* with ENG_CPU_AVX512 */
    ENG_CPU_AVX512VNNI = 8,    /* with ENG_CPU_AVX512 */
    ENG_CPU_AVXVNNI = 16,      /* VEX-encoded VNNI on ymm; with ENG_CPU_AVX2 */
    ENG_CPU_AMX = 32,          /* AMX-TILE and AMX-INT8, permitted; with ENG_CPU_AVX512 */
};

/* This machine's ENG_CPU_* bits (from eng__cpu_get()'s best level, not
 * lowered by ENG_ISA). */
unsigned eng__cpu_features(void);

#endif
