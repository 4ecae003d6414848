/* cpu.c: CPU and OS feature detection, once per process (see cpu.h). Built
 * without ISA flags, so it runs anywhere; the two tile instructions it needs
 * are written as inline assembly for that reason. */
#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cpu.h"

/* Linux's arch_prctl codes and the tile data state component (asm/prctl.h,
 * not installed everywhere). */
enum { ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };

static pthread_once_t once = PTHREAD_ONCE_INIT;
static eng__cpu cpu;

/* XCR0, the state components the OS has enabled; only valid once CPUID says
 * OSXSAVE. Inline asm rather than _xgetbv(), which would need -mxsave. */
static uint64_t xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Asks Linux for the tile data state; 1 when this process holds it. A
 * refusal (an old kernel, a seccomp policy, ENG_AMX_DENY) is not an error:
 * the engine runs without AMX. */
static int request_amx(void)
{
    const char *deny = getenv("ENG_AMX_DENY");
    if (deny && !strcmp(deny, "1"))
        return 0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return 0;
    unsigned long perm = 0;
    return syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &perm) == 0 &&
           (perm & (1ul << XFEATURE_XTILEDATA));
}

static void detect(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        cpu.fma = !!(c & bit_FMA);
        cpu.f16c = !!(c & bit_F16C);
        if ((c & (bit_OSXSAVE | bit_AVX)) == (bit_OSXSAVE | bit_AVX)) {
            const uint64_t xcr = xcr0();
            /* Bits 1 and 2: SSE and AVX (YMM upper halves) state; 5, 6 and
             * 7: opmasks, ZMM0-15 upper halves, ZMM16-31; 17 and 18: tile
             * configuration and tile data. */
            cpu.os_ymm = (xcr & 0x6) == 0x6;
            cpu.os_zmm = cpu.os_ymm && (xcr & 0xe0) == 0xe0;
            cpu.os_tile = cpu.os_zmm && (xcr & 0x60000) == 0x60000;
        }
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        const unsigned max_sub = a;
        const unsigned need512 = bit_AVX512F | bit_AVX512BW | bit_AVX512VL | bit_AVX512DQ;
        cpu.avx2 = !!(b & bit_AVX2);
        cpu.avx512 = (b & need512) == need512;
        cpu.avx512_vnni = !!(c & (1u << 11));
        cpu.amx_bf16 = !!(d & (1u << 22));
        cpu.amx_tile = !!(d & (1u << 24));
        cpu.amx_int8 = !!(d & (1u << 25));
        /* Subleaf 1 exists when subleaf 0 reports it in EAX: AVX-VNNI (EAX
         * bit 4) and AVX512-BF16 (bit 5). */
        if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) {
            cpu.avx_vnni = !!(a & (1u << 4));
            cpu.avx512_bf16 = !!(a & (1u << 5));
        }
    }
    /* ECX bits 31-16 of the extended leaf: the L2 per core in KiB. */
    cpu.l2_bytes = 512 * 1024;
    if (__get_cpuid(0x80000006, &a, &b, &c, &d) && c >> 16)
        cpu.l2_bytes = (size_t)(c >> 16) * 1024;
    cpu.best = ENG_ISA_SCALAR;
    if (cpu.os_ymm && cpu.avx2 && cpu.fma && cpu.f16c) {
        cpu.best = ENG_ISA_AVX2;
        if (cpu.os_zmm && cpu.avx512) {
            cpu.best = ENG_ISA_AVX512;
            /* The permission is asked for only where it can be used. */
            if (cpu.os_tile && cpu.amx_tile && cpu.amx_int8) {
                cpu.amx_permitted = (unsigned)request_amx();
                if (cpu.amx_permitted)
                    cpu.best = ENG_ISA_AMX;
            }
        }
    }
    cpu.level = eng__isa_parse_override(getenv("ENG_ISA"), cpu.best);
}

const eng__cpu *eng__cpu_get(void)
{
    pthread_once(&once, detect);
    return &cpu;
}

unsigned eng__cpu_features(void)
{
    const eng__cpu *c = eng__cpu_get();
    unsigned f = 0;
    if (c->best >= ENG_ISA_AVX2)
        f |= ENG_CPU_AVX2 | (c->avx_vnni ? ENG_CPU_AVXVNNI : 0);
    if (c->best >= ENG_ISA_AVX512)
        f |= ENG_CPU_AVX512 | (c->avx512_vnni ? ENG_CPU_AVX512VNNI : 0) |
             (c->avx512_bf16 ? ENG_CPU_AVX512_BF16 : 0);
    if (c->best >= ENG_ISA_AMX)
        f |= ENG_CPU_AMX;
    return f;
}

eng__isa eng__isa_parse_override(const char *env, eng__isa best)
{
    if (!env)
        return best;
    for (int isa = ENG_ISA_SCALAR; isa <= ENG_ISA_AMX; isa++)
        if (strcasecmp(env, eng__isa_str((eng__isa)isa)) == 0)
            return isa < (int)best ? (eng__isa)isa : best;
    return best;
}

/* The LDTILECFG operand: palette 1, every tile 16 rows of 64 bytes. */
typedef struct {
    uint8_t palette, start_row, reserved0[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((aligned(64))) tile_config;

void eng__amx_thread_init(void)
{
    static __thread int loaded;
    if (loaded || eng__cpu_get()->level < ENG_ISA_AMX)
        return;
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
    loaded = 1;
}
