/* qgemm.c: the int8 GEMM's dispatch (which tile a CPU and ENG_ISA get) and
 * its cache-blocking driver, shared by every ISA's tile. Layouts: qgemm.h. */
#include <pthread.h>

#include "cpu.h"
#include "qgemm.h"

/* Blocking. A K block of at most the table's kc4 steps (K is split into
 * equal blocks, rounded up to whole AMX tiles of 16 steps) keeps one register
 * tile's weights in L1 while the tile walks down MC rows of activations: for
 * the vector tiles kc4 = 128 (512 k), 3 panels x 128 x 64 bytes = 24 KiB,
 * and 192 for AVX512-VNNI (qgemm_avx512vnni.c says why); for AMX see
 * qgemm_amx.c. For each MC-row block the columns go NCP panels at a time, and
 * all K blocks run before the next column block, so the int32 partial sums
 * (MC x 16*NCP x 4 bytes = 120 KiB) and the block's activation rows (MC x K
 * bytes, 384 KiB at K = 3072) stay in L2 between K blocks. */
enum { MC = 128, NCP = 16 };
/* Calls of at most this many rows prefetch (see eng__qgemm_run). */
enum { FEW_ROWS = 64 };
_Static_assert((int)FEW_ROWS <= (int)ENG_QT_PF_MAX, "a few-row walk's tiles fit the prefetch flags");

static int min_int(int a, int b) { return a < b ? a : b; }

/* The tile of rows [r, r+rn) and panels [pb, pb+pn), K block [kb, kb+kn). */
static void tile_at(const eng__qgemm_kernels *qk, const eng__qgemm_args *g, size_t ldb, int r,
                    int rn, int pb, int pn, int kb, int kn, int flags)
{
    const int ncols = min_int(16 * pn, g->n - 16 * pb);
    /* Only read with sx set: raw runs may leave the rest NULL. */
    const eng__qepi epi = g->sx ? (eng__qepi){
        .sx = g->sx + r, .sw = g->sw + 16 * pb, .wsum = g->wsum + 16 * pb,
        .bias = g->bias ? g->bias + 16 * pb : NULL,
    } : (eng__qepi){0};
    qk->tile(g->a + (size_t)r * g->lda + (size_t)kb * 4, g->lda,
             g->b + (size_t)pb * ldb + (size_t)kb * 64, ldb, kn, rn, pn, ncols,
             (int32_t *)g->c + (size_t)r * g->ldc + 16 * pb, g->ldc, flags,
             g->sx ? &epi : NULL);
}

/* Rows of strip i when m rows go in `of` strips of at most qk->mr. For the
 * vector tiles as even as they can be (50 rows are 8 + 6 x 7, not 6 x 8 +
 * 2), since a tile of few rows reloads its weights for little work (a 2-row
 * tile does 6 VPDPBUSD per 5 loads, an 8-row one 24 per 11). AMX keeps full
 * strips: its tile copies the rows of a partial one through a buffer. */
static int strip_rows(const eng__qgemm_kernels *qk, int m, int of, int i)
{
    if (qk->isa == ENG_QISA_AMX)
        return min_int(qk->mr, m - i * qk->mr);
    return m / of + (i < m % of);
}

/* The AMX order. A register tile's products are fast enough that an operand
 * coming from L3 or beyond stalls them, so: the columns go in blocks whose
 * weights fit in L2 (l2_b_bytes), and within a block each strip of mr rows
 * (mr x 4*kc bytes: 24 KiB at K = 768, in L1) runs across all the block's
 * panels before the next strip, so per step one operand comes from L1 and
 * the other from L2; the weights are read from memory once per call and
 * the activations once per column block. */
static void run_strips(const eng__qgemm_kernels *qk, const eng__qgemm_args *g, int m0, int m1,
                       int p0, int p1, int k4, int kc, size_t ldb)
{
    int ncp = (int)((size_t)qk->l2_b_bytes / ldb) / qk->np * qk->np;
    if (ncp < qk->np)
        ncp = qk->np;
    for (int nb = p0; nb < p1; nb += ncp) {
        const int ne = min_int(nb + ncp, p1);
        for (int kb = 0; kb < k4; kb += kc) {
            const int kn = min_int(kc, k4 - kb);
            const int flags = (kb > 0 ? ENG_QT_ACCUM : 0) | (kb + kn == k4 ? ENG_QT_FINAL : 0);
            for (int r = m0; r < m1; r += qk->mr)
                for (int pb = nb; pb < ne; pb += qk->np)
                    tile_at(qk, g, ldb, r, min_int(qk->mr, m1 - r), pb, min_int(qk->np, ne - pb),
                            kb, kn, flags);
        }
    }
}

void eng__qgemm_run(const eng__qgemm_kernels *qk, const eng__qgemm_args *g, int m0, int m1,
                    int p0, int p1)
{
    const int k4 = (g->k + 3) / 4;
    const int nkb = (k4 + qk->kc4 - 1) / qk->kc4;
    const int kc = ((k4 + nkb - 1) / nkb + 15) / 16 * 16;
    const int ncp = NCP / qk->np * qk->np;   /* whole register tiles */
    const size_t ldb = (size_t)k4 * 64;      /* bytes per 16-column panel */
    /* Calls of at most MC rows (the forward pass's row blocks of 64, see
     * src/text/forward.c) keep the order below on every path: a register
     * tile's weights are read once and reused from L1 by the few strips,
     * and no more than a column block's worth of weights passes through L2,
     * which keeps the activations the next step reads (run_strips' 1 MiB
     * blocks evicted them: int8 BERT-base at 32 x 128 ran ~10% slower). */
    if (qk->l2_b_bytes && m1 - m0 > MC) {
        run_strips(qk, g, m0, m1, p0, p1, k4, kc, ldb);
        return;
    }
    for (int mb = m0; mb < m1; mb += MC) {
        const int me = min_int(mb + MC, m1);
        /* A call of at most linear_int8.c's row block reads each weight
         * for few rows, and a layer's weights (0.6 to 2.4 MiB at CLIP's and
         * BERT-base's shapes) come from L3 for every block: the row tiles
         * of a column tile prefetch the next one's weights (ENG_QT_PREFETCH)
         * while they multiply. One row tile streams its own. Full 64-row
         * blocks gain too: 2 to 5 points of the VPDPBUSD peak at CLIP's
         * shapes (qgemm-bench --clip). */
        const int of = (me - mb + qk->mr - 1) / qk->mr;
        const int few = me - mb <= FEW_ROWS && of > 1;
        for (int nb = p0; nb < p1; nb += ncp) {
            const int ne = min_int(nb + ncp, p1);
            for (int kb = 0; kb < k4; kb += kc) {
                const int kn = min_int(kc, k4 - kb);
                const int flags = (kb > 0 ? ENG_QT_ACCUM : 0) | (kb + kn == k4 ? ENG_QT_FINAL : 0);
                for (int pb = nb; pb < ne; pb += qk->np) {
                    const int pf = few && pb + qk->np < ne;
                    for (int r = mb, i = 0; r < me; i++) {
                        const int rn = strip_rows(qk, me - mb, of, i);
                        tile_at(qk, g, ldb, r, rn, pb, min_int(qk->np, ne - pb), kb, kn,
                                flags | (pf ? eng__qgemm_pf_flags(i, of) : 0));
                        r += rn;
                    }
                }
            }
        }
    }
}

eng__qisa eng__qgemm_choose(eng__isa ceiling, unsigned features)
{
    if (ceiling >= ENG_ISA_AMX && (features & ENG_CPU_AMX))
        return ENG_QISA_AMX;
    if (ceiling >= ENG_ISA_AVX512 && (features & ENG_CPU_AVX512VNNI))
        return ENG_QISA_AVX512VNNI;
    /* AVX-VNNI is VEX-encoded on ymm: an AVX2-level ISA, so ENG_ISA=avx2
     * allows it. */
    if (ceiling >= ENG_ISA_AVX2 && (features & ENG_CPU_AVXVNNI))
        return ENG_QISA_AVXVNNI;
    if (ceiling >= ENG_ISA_AVX2 && (features & ENG_CPU_AVX2))
        return ENG_QISA_AVX2;
    return ENG_QISA_SCALAR;
}

static const eng__qgemm_kernels *const tables[ENG_QISA_COUNT] = {
    &eng__qgemm_scalar, &eng__qgemm_avx2, &eng__qgemm_avxvnni, &eng__qgemm_avx512vnni,
    &eng__qgemm_amx,
};

const eng__qgemm_kernels *eng__qgemm_for(eng__qisa isa)
{
    if ((unsigned)isa >= ENG_QISA_COUNT)
        return NULL;
    /* cpu.c knows whether the OS saves the registers; the best level it
     * reports bounds what the CPUID bits alone would allow. */
    const eng__isa ceiling = eng__cpu_get()->best;
    unsigned f = eng__cpu_features();
    /* A path is runnable when the best choice under the ceiling, restricted
     * to that path's own feature, is that path. */
    static const unsigned need[ENG_QISA_COUNT] = {0, ENG_CPU_AVX2, ENG_CPU_AVXVNNI,
                                                  ENG_CPU_AVX512VNNI, ENG_CPU_AMX};
    if (isa != ENG_QISA_SCALAR && eng__qgemm_choose(ceiling, f & need[isa]) != isa)
        return NULL;
    return tables[isa];
}

static const eng__qgemm_kernels *chosen;
static void choose_once(void)
{
    chosen = tables[eng__qgemm_choose(eng__kernels_get()->isa, eng__cpu_features())];
}

const eng__qgemm_kernels *eng__qgemm_get(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose_once);
    return chosen;
}

const char *eng__qisa_str(eng__qisa isa)
{
    return (unsigned)isa < ENG_QISA_COUNT ? tables[isa]->name : "unknown";
}
