/* dispatch.c: picks the kernel table once per process: the best ISA the CPU
 * and its OS can run (cpu.h), which ENG_ISA=scalar|avx2|avx512 may lower,
 * never raise. This file is built without ISA flags, so it runs anywhere. */
#include <pthread.h>
#include <stdlib.h>
#include <strings.h>

#include "cpu.h"
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

eng__isa eng__isa_parse_override(const char *env, eng__isa best)
{
    if (!env)
        return best;
    for (int isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AVX512; isa++)
        if (strcasecmp(env, eng__isa_str((eng__isa)isa)) == 0)
            return isa < (int)best ? (eng__isa)isa : best;
    return best;
}

static void init(void)
{
    const unsigned f = eng__cpu_features();
    hw_best = f & ENG_CPU_AVX512 ? ENG_ISA_AVX512 : f & ENG_CPU_AVX2 ? ENG_ISA_AVX2 : ENG_ISA_SCALAR;
    if (f & ENG_CPU_AVX512_BF16)
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
