/* cpu.h: what this CPU and its OS can run, detected once (cpu.c): the only
 * place that reads CPUID and XGETBV. dispatch.c (the fp32 tables) and qgemm.c
 * (the int8 paths) choose their kernels from these bits. */
#ifndef ENG_CPU_H
#define ENG_CPU_H

/* Each bit implies the OS saves the registers its instructions use. */
enum {
    ENG_CPU_AVX2 = 1,          /* AVX2, FMA, F16C; YMM state */
    ENG_CPU_AVX512 = 2,        /* AVX-512 F, BW, VL, DQ; ZMM and opmask state */
    ENG_CPU_AVX512_BF16 = 4,   /* with ENG_CPU_AVX512 */
    ENG_CPU_AVX512VNNI = 8,    /* with ENG_CPU_AVX512 */
    ENG_CPU_AVXVNNI = 16,      /* VEX-encoded VNNI on ymm; with ENG_CPU_AVX2 */
};

/* This machine's ENG_CPU_* bits. */
unsigned eng__cpu_features(void);

#endif
