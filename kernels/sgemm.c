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
 * before the next, so its partial sums (MC x 64 floats) stay there too.
 *
 * Up to FEW_ROWS rows (a batch of one: BERT's 16 tokens, ViT-B/32's 50) the
 * weights come from memory, and the order is few_rows' below, with K blocks
 * of up to FEW_KC steps: a block's weights (256 KiB at 4 panels), the next
 * one's being prefetched and all the rows' activations (768 KiB at
 * K = 3072) fit this machine's 2 MiB L2. */
enum { KC = 512, L2_BYTES = 512 * 1024, FEW_ROWS = 64, FEW_KC = 1024 };
_Static_assert((int)FEW_ROWS <= (int)ENG_ST_PF_MAX, "a few-row walk's tiles fit the prefetch flags");

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

/* The tile of rows [r, r + mr) of Y, panels [pb, pb + pn), K block
 * [kb, kb + kn). */
static void tile_at(const eng__sgemm_kernels *sk, const float *X, int K, size_t ldx,
                    const float *packed, int N, float *Y, size_t ldy, const float *bias,
                    const float *res, eng__act act, int r, int mr, int pb, int pn, int kb, int kn,
                    int flags)
{
    const int ncols = min_int(16 * pn, N - 16 * pb);
    const float *a[ENG_SGEMM_MAX_MR], *rs[ENG_SGEMM_MAX_MR];
    float *c[ENG_SGEMM_MAX_MR];
    for (int i = 0; i < mr; i++) {
        a[i] = X + (size_t)(r + i) * ldx + kb;
        c[i] = Y + (size_t)(r + i) * ldy + 16 * pb;
        rs[i] = res ? res + (size_t)(r + i) * ldy + 16 * pb : NULL;
    }
    const eng__sepi epi = { bias + 16 * pb, res ? rs : NULL, act };
    sk->tile(a, 0, 1, packed + (size_t)pb * K * 16 + (size_t)kb * 16, (size_t)K * 16, kn, mr, pn,
             ncols, c, flags, &epi);
}

/* Few rows: every row tile of a column tile runs before the next column
 * tile, and the column tiles go in order within each K block (the partial
 * sums, M x N floats, wait in L2 between K blocks), so each weight is read
 * from memory once. The of row tiles of a column tile share prefetching the
 * next column tile's block (ENG_ST_PREFETCH), so memory streams it while
 * they multiply rather than while the first of the next ones waits. */
static void few_rows(const eng__sgemm_kernels *sk, const float *X, int M, int K, size_t ldx,
                     const float *packed, int N, float *Y, size_t ldy, const float *bias,
                     const float *res, eng__act act)
{
    const int nkb = (K + FEW_KC - 1) / FEW_KC, kc = (K + nkb - 1) / nkb;
    const int n16 = (N + 15) / 16, of = (M + sk->mr - 1) / sk->mr;
    for (int kb = 0; kb < K; kb += kc) {
        const int kn = min_int(kc, K - kb);
        const int flags = (kb > 0 ? ENG_ST_ACCUM : 0) | (kb + kn == K ? ENG_ST_FINAL : 0);
        for (int pb = 0; pb < n16; pb += sk->np) {
            /* One row tile streams its weights itself; the last column tile
             * has no next one. */
            const int pf = of > 1 && pb + sk->np < n16;
            for (int r = 0, i = 0; r < M; r += sk->mr, i++)
                tile_at(sk, X, K, ldx, packed, N, Y, ldy, bias, res, act, r,
                        min_int(sk->mr, M - r), pb, min_int(sk->np, n16 - pb), kb, kn,
                        flags | (pf ? eng__sgemm_pf_flags(i, of) : 0));
        }
    }
}

void eng__sgemm_packed(const eng__sgemm_kernels *sk, const float *X, int M, int K, size_t ldx,
                       const float *packed, int N, float *Y, size_t ldy, const float *bias,
                       const float *res, eng__act act)
{
    if (M <= FEW_ROWS) {
        few_rows(sk, X, M, K, ldx, packed, N, Y, ldy, bias, res, act);
        return;
    }
    const int nkb = (K + KC - 1) / KC;
    const int kc = (K + nkb - 1) / nkb;
    const int n16 = (N + 15) / 16;
    int mc = (int)(L2_BYTES / ((size_t)K * sizeof(float))) / sk->mr * sk->mr;
    if (mc < sk->mr)
        mc = sk->mr;
    for (int mb = 0; mb < M; mb += mc) {
        const int me = min_int(mb + mc, M);
        for (int pb = 0; pb < n16; pb += sk->np)
            for (int kb = 0; kb < K; kb += kc) {
                const int kn = min_int(kc, K - kb);
                const int flags = (kb > 0 ? ENG_ST_ACCUM : 0) | (kb + kn == K ? ENG_ST_FINAL : 0);
                for (int r = mb; r < me; r += sk->mr)
                    tile_at(sk, X, K, ldx, packed, N, Y, ldy, bias, res, act, r,
                            min_int(sk->mr, me - r), pb, min_int(sk->np, n16 - pb), kb, kn,
                            flags);
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
