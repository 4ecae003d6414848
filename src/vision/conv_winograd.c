/* conv_winograd.c: 3x3, stride 1 convolutions by Winograd's F(m x m, 3 x 3),
 * m = 2 or 4 (see conv.h): the weight transform, done once at load, and the
 * layer, run SPMD by the members of a team.
 *
 * The output is cut into tiles of m x m pixels, each computed from the a x a
 * input patch around it (a = m + 2, P = a^2 positions): the patch is
 * transformed (V = B^T d B, P values per channel), the P transformed
 * positions x are P independent GEMMs M[x] = V[x] U[x] (tiles x cin times
 * cin x cout, U = G g G^T the transformed weights), and the output transform
 * (A^T M A) gives the m x m pixels, with the bias, residual and ReLU fused
 * in. P products per tile and channel pair instead of 9 m^2. The transforms
 * are kernels (kernels.h); the GEMMs run on the sgemm tile, U[x] packed in
 * its panels.
 *
 * The tiles go in blocks of tb, whose V (P x tb x cin floats) stays in L2
 * while it is multiplied; a unit of work is one block times one group of GW
 * output channels: its GEMMs write M (P x tb x GW floats, also in L2) and
 * its output transform reads it back. A member keeps the V it computed last,
 * so consecutive units of one block transform the input once. */
#include <string.h>

#include "conv.h"

enum {
    GW = 64,                    /* output channels per unit: 4 panels of 16 */
    V_BYTES = 384 * 1024,       /* the most one block's V may take */
    TB_STEP = 6,                /* tb is a multiple of the AVX2/AVX-512 tile's rows */
    TB_MAX = 16 * TB_STEP,
    UNITS_PER_MEMBER = 4,       /* blocks are made smaller until there are this many */
    MAX_P = 36,                 /* positions of the largest patch, 6 x 6 */
};

static int min_int(int a, int b) { return a < b ? a : b; }

int eng__conv_winograd_suits(const eng__conv *c, int out_edge)
{
    if (c->kh != 3 || c->kw != 3 || c->stride != 1 || c->pad != 1)
        return 0;
    /* Tiles of 4 from 14 x 14 on: there they compute 16 x 16 pixels for
     * 14 x 14, still 3 times fewer products than direct; on ResNet-18 at 2
     * threads, tiles of 4 rather than 2 on the 14 x 14 stage measured 3-6%
     * faster at batch 8 and 32 and the same at batch 1, although U is then 4
     * times the size of the weights (1.8 times for tiles of 2). On a 7 x 7
     * map even tiles of 2 compute 64 pixels for 49, and the layer streams
     * its larger U more than it computes at small batches: direct there
     * (Winograd measured 8% slower at batch 1, 3-4% faster at 8 and 32). */
    return out_edge >= 14 ? 4 : out_edge >= 8 ? 2 : 0;
}

size_t eng__conv_winograd_bytes(const eng__conv *c, int m)
{
    return (size_t)(m + 2) * (m + 2) * eng__sgemm_packed_bytes(c->cin, c->cout);
}

/* U = G g G^T for one 3 x 3 kernel g (row-major), P values, in double and
 * rounded once. G's rows: for m = 2, [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2;
 * 0 0 1]; for m = 4, [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6;
 * 1/24 -1/12 1/6; 0 0 1]. */
static void weight_transform(int m, const double g[9], double *u)
{
    static const double G2[4][3] = { { 1, 0, 0 }, { 0.5, 0.5, 0.5 }, { 0.5, -0.5, 0.5 },
                                     { 0, 0, 1 } };
    static const double G4[6][3] = { { 0.25, 0, 0 },
                                     { -1.0 / 6, -1.0 / 6, -1.0 / 6 },
                                     { -1.0 / 6, 1.0 / 6, -1.0 / 6 },
                                     { 1.0 / 24, 1.0 / 12, 1.0 / 6 },
                                     { 1.0 / 24, -1.0 / 12, 1.0 / 6 },
                                     { 0, 0, 1 } };
    const int a = m + 2;
    const double(*G)[3] = m == 2 ? G2 : G4;
    double t[6][3];
    for (int i = 0; i < a; i++)
        for (int j = 0; j < 3; j++)
            t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
    for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++)
            u[a * i + j] = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
}

/* wino holds U[x] (cin x cout) for x < P, each in eng__sgemm_pack's layout
 * (sgemm.h: panel p of 16 columns as cin rows of 16, zero past cout),
 * written in place. */
void eng__conv_winograd_pack(const eng__conv *c, int m, float *wino)
{
    const size_t per = eng__sgemm_packed_bytes(c->cin, c->cout) / sizeof(float);
    const int P = (m + 2) * (m + 2);
    memset(wino, 0, (size_t)P * per * sizeof(float));
    for (int ci = 0; ci < c->cin; ci++)
        for (int co = 0; co < c->cout; co++) {
            double g[9], u[MAX_P];
            for (int k = 0; k < 9; k++)
                g[k] = c->w[((size_t)k * c->cin + ci) * c->cout + co];
            weight_transform(m, g, u);
            const size_t at = ((size_t)(co / 16) * c->cin + ci) * 16 + co % 16;
            for (int x = 0; x < P; x++)
                wino[(size_t)x * per + at] = (float)u[x];
        }
}

/* Tiles per block for P positions of cin channels when nothing else limits
 * them. */
static int block_tiles(int P, int cin)
{
    int tb = (int)(V_BYTES / (sizeof(float) * (size_t)P * cin)) / TB_STEP * TB_STEP;
    return tb < TB_STEP ? TB_STEP : tb > TB_MAX ? TB_MAX : tb;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Floats of V for P positions: the block's M follows it, 64-byte aligned. */
static size_t v_floats(int P, const eng__conv *c)
{
    return round16((size_t)P * (size_t)block_tiles(P, c->cin) * (size_t)c->cin);
}

/* V, M (a multiple of 16 floats, GW being one) and a zero row of cin floats,
 * for P positions. */
static size_t scratch_for(int P, const eng__conv *c)
{
    return v_floats(P, c) + (size_t)P * (size_t)block_tiles(P, c->cin) * GW +
           round16((size_t)c->cin);
}

size_t eng__conv_winograd_scratch(const eng__conv *c)
{
    const size_t s2 = scratch_for(16, c), s4 = scratch_for(36, c);
    return s2 > s4 ? s2 : s4;
}

/* The work of one layer: tiles of m x m, th x tw per image, T in all, in
 * blocks of tb; G groups of GW output channels. */
typedef struct {
    int m, a, P, th, tw, tb, G;
    long T, blocks;
} plan;

static plan make_plan(const eng__conv *c, const eng__fmap *out, int nt)
{
    plan p;
    p.m = c->wino_m;
    p.a = p.m + 2;
    p.P = p.a * p.a;
    p.th = (out->h + p.m - 1) / p.m;
    p.tw = (out->w + p.m - 1) / p.m;
    p.T = (long)out->n * p.th * p.tw;
    p.G = (c->cout + GW - 1) / GW;
    p.tb = block_tiles(p.P, c->cin);
    /* Smaller blocks until the units go round the members often enough to
     * even out a member that runs slow; they read the weights more often. */
    for (;;) {
        p.blocks = (p.T + p.tb - 1) / p.tb;
        if (p.tb <= TB_STEP || p.blocks * p.G >= (long)nt * UNITS_PER_MEMBER)
            break;
        p.tb -= TB_STEP;
    }
    return p;
}

/* The tile's image and the position (row, column) of its top-left pixel. */
static void tile_at(const plan *p, long t, int *img, int *y, int *x)
{
    const long per = (long)p->th * p->tw;
    const int r = (int)(t % per);
    *img = (int)(t / per);
    *y = p->m * (r / p->tw);
    *x = p->m * (r % p->tw);
}

/* V for tiles [t0, t1): tile i's P positions at v + (x * tb + i) * cin.
 * Patch pixels outside in's padded map (past the far edge when the tiles
 * overhang it) read zero. */
static void input_block(const eng__kernels *k, const plan *p, const eng__fmap *in, long t0,
                        long t1, float *v, const float *zero)
{
    for (long t = t0; t < t1; t++) {
        int img, y, x;
        tile_at(p, t, &img, &y, &x);
        const float *d[MAX_P];
        for (int i = 0; i < p->a; i++)
            for (int j = 0; j < p->a; j++) {
                const int py = y - 1 + i, px = x - 1 + j;
                d[p->a * i + j] = py < in->h + in->pad && px < in->w + in->pad
                                      ? eng__fmap_at(in, img, py, px)
                                      : zero;
            }
        k->wino_input[p->m / 4](d, in->c, v + (size_t)(t - t0) * in->c, (size_t)p->tb * in->c);
    }
}

/* M[x] = V[x] U[x] for the block's n tiles and output channels [col0, col0 +
 * ncols): row i of M[x] at m + (x * tb + i) * GW. */
static void gemm_block(const eng__sgemm_kernels *sk, const eng__conv *c, const plan *p, int n,
                       const float *v, int col0, int ncols, float *m)
{
    const size_t ldb = (size_t)c->cin * 16;
    const size_t per = eng__sgemm_packed_bytes(c->cin, c->cout) / sizeof(float);
    /* The sums are raw (no FINAL flag): the epilogue belongs after the
     * output transform, so this one is never applied. */
    const eng__sepi none = { c->b, NULL, ENG_ACT_NONE };
    const float *a[ENG_SGEMM_MAX_MR];
    float *o[ENG_SGEMM_MAX_MR];
    for (int x = 0; x < p->P; x++) {
        const float *u = c->wino + (size_t)x * per + (size_t)col0 * c->cin;
        for (int r0 = 0; r0 < n; r0 += sk->mr) {
            const int mr = min_int(sk->mr, n - r0);
            for (int j = 0; 16 * j < ncols; j += sk->np) {
                const int np = min_int(sk->np, (ncols - 16 * j + 15) / 16);
                for (int i = 0; i < mr; i++) {
                    a[i] = v + ((size_t)x * p->tb + r0 + i) * c->cin;
                    o[i] = m + ((size_t)x * p->tb + r0 + i) * GW + 16 * j;
                }
                sk->tile(a, 0, 1, u + (size_t)j * ldb, ldb, c->cin, mr, np,
                         min_int(16 * np, ncols - 16 * j), o, 0, &none);
            }
        }
    }
}

/* The output transform of tiles [t0, t1) for channels [col0, col0 + ncols),
 * M as gemm_block left it. */
static void output_block(const eng__kernels *k, const eng__conv *c, const plan *p,
                         const eng__fmap *out, const eng__fmap *res, int relu, long t0, long t1,
                         const float *m, int col0, int ncols)
{
    for (long t = t0; t < t1; t++) {
        int img, y, x;
        tile_at(p, t, &img, &y, &x);
        float *dst[16];
        const float *rs[16];
        for (int q = 0; q < p->m * p->m; q++) {
            const int py = y + q / p->m, px = x + q % p->m;
            const int in = py < out->h && px < out->w;
            dst[q] = in ? eng__fmap_at(out, img, py, px) + col0 : NULL;
            rs[q] = in && res ? eng__fmap_at(res, img, py, px) + col0 : NULL;
        }
        k->wino_output[p->m / 4](m + (size_t)(t - t0) * GW, (size_t)p->tb * GW, ncols,
                                 c->b + col0, res ? rs : NULL, dst, relu);
    }
}

void eng__conv_winograd_forward(const eng__sgemm_kernels *sk, const eng__kernels *k,
                                const eng__conv *c, const eng__fmap *in, const eng__fmap *out,
                                const eng__fmap *res, int relu, float *scratch,
                                size_t scratch_floats, eng__team_counter *work, int tid, int nt)
{
    eng__fmap_zero_border(out, tid, nt);
    const size_t need = eng__conv_winograd_scratch(c);
    if ((size_t)(tid + 1) * need > scratch_floats)
        return;
    const plan p = make_plan(c, out, nt);
    float *v = scratch + (size_t)tid * need, *m = v + v_floats(p.P, c);
    float *zero = m + (size_t)p.P * (size_t)block_tiles(p.P, c->cin) * GW;
    memset(zero, 0, sizeof(float) * (size_t)c->cin);
    /* With blocks enough to go round, a member takes all the groups of a
     * block at once and transforms its input once; else the groups are
     * shared out too, and so is that work. */
    const long units = p.blocks * p.G;
    const int take = p.blocks >= (long)nt * UNITS_PER_MEMBER ? p.G : 1;
    long have = -1;  /* the block whose V this member holds */
    for (long u0; (u0 = eng__team_take(work, take)) < units;)
        for (long u = u0; u < u0 + take; u++) {
            const long b = u / p.G, t0 = b * p.tb, t1 = t0 + p.tb < p.T ? t0 + p.tb : p.T;
            const int col0 = (int)(u % p.G) * GW, ncols = min_int(GW, c->cout - col0);
            if (b != have)
                input_block(k, &p, in, t0, t1, v, zero);
            have = b;
            gemm_block(sk, c, &p, (int)(t1 - t0), v, col0, ncols, m);
            output_block(k, c, &p, out, res, relu, t0, t1, m, col0, ncols);
        }
}
