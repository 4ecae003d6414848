/* dispatch.c: the kernel tables, one per ISA level; kernels/cpu.c finds
 * the level this CPU, its OS and ENG_ISA allow. This file is built without
 * ISA flags, so it runs anywhere. */
#include <pthread.h>

#include "cpu.h"
#include "kernels_isa.h"

/* attention_bf16 is the fp32 kernel in the vector tables until init() finds
 * AVX512-BF16 (see kernels.h). */
#define ENG_KERNELS_TABLE(ISA, isa, attention_bf16)                                      \
    [ISA] = {ISA, eng__softmax_##isa, eng__argmax_##isa, eng__layernorm_##isa,           \
             eng__bias_act_##isa, eng__bias_residual_##isa, eng__attention_##isa,        \
             attention_bf16, {eng__wino2_input_##isa, eng__wino4_input_##isa},            \
             {eng__wino2_output_##isa, eng__wino4_output_##isa}, eng__resize_h_##isa,      \
             eng__resize_v_##isa}

/* Filled in once by init(); read-only afterwards. */
static eng__kernels tables[] = {
    ENG_KERNELS_TABLE(ENG_ISA_SCALAR, scalar, eng__attention_bf16_scalar),
    ENG_KERNELS_TABLE(ENG_ISA_AVX2, avx2, eng__attention_avx2),
    ENG_KERNELS_TABLE(ENG_ISA_AVX512, avx512, eng__attention_avx512),
    /* AMX is a matrix engine: the GEMMs use it (their own tables), every
     * other kernel is the AVX-512 one. */
    ENG_KERNELS_TABLE(ENG_ISA_AMX, avx512, eng__attention_avx512),
};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    const eng__cpu *cpu = eng__cpu_get();
    if (cpu->best >= ENG_ISA_AVX512 && cpu->avx512_bf16)
        for (int isa = ENG_ISA_AVX512; isa <= ENG_ISA_AMX; isa++)
            tables[isa].attention_bf16 = eng__attention_bf16_avx512;
}

const eng__kernels *eng__kernels_get(void)
{
    pthread_once(&once, init);
    return &tables[eng__cpu_get()->level];
}

const eng__kernels *eng__kernels_for(eng__isa isa)
{
    pthread_once(&once, init);
    if ((int)isa < ENG_ISA_SCALAR || isa > eng__cpu_get()->best)
        return NULL;
    return &tables[isa];
}

const char *eng__isa_str(eng__isa isa)
{
    switch (isa) {
    case ENG_ISA_SCALAR: return "scalar";
    case ENG_ISA_AVX2: return "avx2";
    case ENG_ISA_AVX512: return "avx512";
    case ENG_ISA_AMX: return "amx";
    }
    return "unknown";
}
