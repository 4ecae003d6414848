/* sgemm.c: the fp32 GEMM's weight packing, its dispatch (which tile a CPU and
 * ENG_ISA get) and its cache-blocking driver, shared by every ISA's tile.
 * Layouts: sgemm.h. Built without ISA flags, so it runs anywhere. */
#include <string.h>

#include "cpu.h"
#include "sgemm.h"

/* Blocking. K is split into equal blocks of at most KC steps (FEW_KC up to
 * FEW_ROWS rows), and the rows into row blocks; within a row block the K
 * blocks go in order, and within a K block the column tiles, each walking
 * down the row block's rows before the next: walk() below. A column tile's
 * weights for one K block (np panels x KC x 64 bytes = 192 KiB for 4
 * panels) stay in L2 while its row tiles go by, and those row tiles share
 * prefetching the next column tile's block into L2 (ENG_ST_PREFETCH), so
 * L3 or memory streams it while they multiply rather than while the first
 * of the next ones waits. KC 768 takes ViT-B's and BERT-base's K = 768 in
 * one block and 3072 in four; on the Xeon (2 MiB L2) it measured 82-91% of
 * the FMA peak at their shapes against 73-89% for KC 512
 * (sgemm-bench --clip). Smaller blocks that fit L1 (KC 128: 32 KiB)
 * measured 3-8% slower on Zen 5: the extra round trips of the partial sums
 * through C cost more than L1 saved, since the 6 x 64 tile needs only 4
 * weight loads per 24 FMAs.
 *
 * A row block's partial sums (rows x N floats, kept between K blocks) and
 * its activations for one K block (rows x KC) stay in half the L2 the CPU
 * reports (eng__cpu's l2_bytes; the other half holds the weights' block and
 * what is being prefetched), so each weight comes from L3 or memory once
 * per row block.
 *
 * Up to FEW_ROWS rows (a batch of one: BERT's 16 tokens, ViT-B/32's 50) all
 * the rows make one block, whatever the L2: the weights come from memory
 * and are read once, in K blocks of up to FEW_KC steps: a block's weights
 * (256 KiB at 4 panels), the next one's being prefetched and all the rows'
 * activations (768 KiB at K = 3072) fit this machine's 2 MiB L2. */
enum { KC = 768, FEW_ROWS = 64, FEW_KC = 1024 };
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

/* Rows [r0, r1) of Y, K blocks of at most kmax steps: every row tile of a
 * column tile runs before the next column tile, and the column tiles go in
 * order within each K block (the partial sums, (r1 - r0) x N floats, wait in
 * L2 between K blocks), so each weight is read from L3 or memory once per
 * walk. The of row tiles of a column tile share prefetching the next column
 * tile's block (ENG_ST_PREFETCH). */
static void walk(const eng__sgemm_kernels *sk, const float *X, int r0, int r1, int K, size_t ldx,
                 const float *packed, int N, float *Y, size_t ldy, const float *bias,
                 const float *res, eng__act act, int kmax)
{
    const int nkb = (K + kmax - 1) / kmax, kc = (K + nkb - 1) / nkb;
    const int n16 = (N + 15) / 16, of = (r1 - r0 + sk->mr - 1) / sk->mr;
    for (int kb = 0; kb < K; kb += kc) {
        const int kn = min_int(kc, K - kb);
        const int flags = (kb > 0 ? ENG_ST_ACCUM : 0) | (kb + kn == K ? ENG_ST_FINAL : 0);
        for (int pb = 0; pb < n16; pb += sk->np) {
            /* One row tile streams its weights itself; the last column tile
             * has no next one. */
            const int pf = of > 1 && pb + sk->np < n16;
            for (int r = r0, i = 0; r < r1; r += sk->mr, i++)
                tile_at(sk, X, K, ldx, packed, N, Y, ldy, bias, res, act, r,
                        min_int(sk->mr, r1 - r), pb, min_int(sk->np, n16 - pb), kb, kn,
                        flags | (pf ? eng__sgemm_pf_flags(i, of) : 0));
        }
    }
}

void eng__sgemm_packed(const eng__sgemm_kernels *sk, const float *X, int M, int K, size_t ldx,
                       const float *packed, int N, float *Y, size_t ldy, const float *bias,
                       const float *res, eng__act act)
{
    if (M <= FEW_ROWS) {
        walk(sk, X, 0, M, K, ldx, packed, N, Y, ldy, bias, res, act, FEW_KC);
        return;
    }
    const int nkb = (K + KC - 1) / KC, kc = (K + nkb - 1) / nkb;
    /* With one K block the partial sums never wait in C. */
    const size_t row_bytes = (size_t)(kc + (nkb > 1 ? N : 0)) * sizeof(float);
    int mc = (int)(eng__cpu_get()->l2_bytes / 2 / row_bytes) / sk->mr * sk->mr;
    mc = mc < sk->mr ? sk->mr : min_int(mc, ENG_ST_PF_MAX * sk->mr);
    /* Equal blocks, whole tiles: a short last block would give its column
     * tiles' weights too few rows to pay for reading them. */
    const int nmb = (M + mc - 1) / mc;
    mc = ((M + nmb - 1) / nmb + sk->mr - 1) / sk->mr * sk->mr;
    for (int mb = 0; mb < M; mb += mc)
        walk(sk, X, mb, min_int(mb + mc, M), K, ldx, packed, N, Y, ldy, bias, res, act, KC);
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
