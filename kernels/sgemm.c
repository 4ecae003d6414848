/* sgemm.c: the fp32 GEMM's weight packing, its dispatch (which tile a CPU and
 * ENG_ISA get) and its cache-blocking driver, shared by every ISA's tile.
 * Layouts: sgemm.h. Built without ISA flags, so it runs anywhere. */
#include <string.h>

#include "sgemm.h"

/* Blocking. K is split into equal blocks of at most KC steps; a register
 * tile's weights for one block (np panels x KC x 64 bytes = 128 KiB for 4
 * panels) stay in L2 while the tile walks down the rows of a row block.
 * Smaller blocks that fit L1 (KC 128: 32 KiB) measured 3-8% slower on Zen 5
 * (bench/sgemm_bench.c): the extra round trips of the partial sums through C
 * cost more than L1 saved, since the 6 x 64 tile needs only 4 weight loads
 * per 24 FMAs. The row block (MC rows of X, MC x K floats, about L2_BYTES)
 * stays in L2 while the column tiles go by, each running all its K blocks
 * before the next, so its partial sums (MC x 64 floats) stay there too. */
enum { KC = 512, L2_BYTES = 512 * 1024 };

static int min_int(int a, int b) { return a < b ? a : b; }

size_t eng__sgemm_packed_bytes(int K, int N)
{
    if (K < 1 || N < 1)
        return 0;
    return (size_t)((N + 15) / 16) * (size_t)K * 16 * sizeof(float);
}

void eng__sgemm_pack(const float *W, int K, int N, float *packed)
{
    const int n16 = (N + 15) / 16;
    for (int p = 0; p < n16; p++) {
        const int cols = min_int(16, N - 16 * p);
        for (int k = 0; k < K; k++) {
            float *dst = packed + ((size_t)p * K + k) * 16;
            memcpy(dst, W + (size_t)k * N + 16 * p, (size_t)cols * sizeof(float));
            memset(dst + cols, 0, (size_t)(16 - cols) * sizeof(float));
        }
    }
}

void eng__sgemm_unpack(const float *packed, int K, int N, float *W)
{
    const int n16 = (N + 15) / 16;
    for (int p = 0; p < n16; p++) {
        const int cols = min_int(16, N - 16 * p);
        for (int k = 0; k < K; k++)
            memcpy(W + (size_t)k * N + 16 * p, packed + ((size_t)p * K + k) * 16,
                   (size_t)cols * sizeof(float));
    }
}

void eng__sgemm_packed(const eng__sgemm_kernels *sk, const float *X, int M, int K, size_t ldx,
                       const float *packed, int N, float *Y, size_t ldy, const float *bias,
                       const float *res, eng__act act)
{
    const int nkb = (K + KC - 1) / KC;
    const int kc = (K + nkb - 1) / nkb;
    const int n16 = (N + 15) / 16;
    const size_t ldb = (size_t)K * 16;
    int mc = (int)(L2_BYTES / ((size_t)K * sizeof(float))) / sk->mr * sk->mr;
    if (mc < sk->mr)
        mc = sk->mr;
    for (int mb = 0; mb < M; mb += mc) {
        const int me = min_int(mb + mc, M);
        for (int pb = 0; pb < n16; pb += sk->np) {
            const int pn = min_int(sk->np, n16 - pb);
            const int ncols = min_int(16 * pn, N - 16 * pb);
            for (int kb = 0; kb < K; kb += kc) {
                const int kn = min_int(kc, K - kb);
                const int flags = (kb > 0 ? ENG_ST_ACCUM : 0) | (kb + kn == K ? ENG_ST_FINAL : 0);
                const float *b = packed + (size_t)pb * ldb + (size_t)kb * 16;
                for (int r = mb; r < me; r += sk->mr) {
                    const int mr = min_int(sk->mr, me - r);
                    const float *a[ENG_SGEMM_MAX_MR], *rs[ENG_SGEMM_MAX_MR];
                    float *c[ENG_SGEMM_MAX_MR];
                    for (int i = 0; i < mr; i++) {
                        a[i] = X + (size_t)(r + i) * ldx + kb;
                        c[i] = Y + (size_t)(r + i) * ldy + 16 * pb;
                        rs[i] = res ? res + (size_t)(r + i) * ldy + 16 * pb : NULL;
                    }
                    const eng__sepi epi = { bias + 16 * pb, res ? rs : NULL, act };
                    sk->tile(a, 0, 1, b, ldb, kn, mr, pn, ncols, c, flags, &epi);
                }
            }
        }
    }
}

const eng__sgemm_kernels *eng__sgemm_for(eng__isa isa)
{
    /* dispatch.c knows what the CPU and its OS can run. */
    if (!eng__kernels_for(isa))
        return NULL;
    switch (isa) {
    case ENG_ISA_SCALAR: return &eng__sgemm_scalar;
    case ENG_ISA_AVX2: return &eng__sgemm_avx2;
    /* The fp32 GEMM has no AMX form (AMX multiplies int8 and bf16). */
    case ENG_ISA_AVX512:
    case ENG_ISA_AMX: return &eng__sgemm_avx512;
    }
    return NULL;
}

const eng__sgemm_kernels *eng__sgemm_get(void)
{
    return eng__sgemm_for(eng__kernels_get()->isa);
}
