/* conv_winograd.c: 3x3, stride 1 convolutions by Winograd's F(2x2, 3x3) (see
 * conv.h): the weight transform, done once at load, and the layer, run SPMD
 * by the members of a team.
 *
 * The output is cut into tiles of 2 x 2 pixels, each computed from the 4 x 4
 * input patch around it: the patch is transformed (V = B^T d B, 16 values per
 * channel), the 16 transformed positions x are 16 independent GEMMs
 * M[x] = V[x] U[x] (tiles x cin times cin x cout, U = G g G^T the transformed
 * weights), and the output transform (A^T M A) gives the 2 x 2 pixels, with
 * the bias, residual and ReLU fused in. 16 products per tile and channel pair
 * instead of 36: 2.25 times fewer. The transforms are kernels (kernels.h);
 * the GEMMs run on the sgemm tile, U[x] packed in its panels.
 *
 * The tiles go in blocks of TB, whose V (16 x TB x cin floats) stays in L2
 * while it is multiplied; a unit of work is one block times one group of GW
 * output channels: its GEMMs write M (16 x TB x GW floats, also in L2) and
 * its output transform reads it back. A member keeps the V it computed last,
 * so consecutive units of one block transform the input once. */
#include <string.h>

#include "conv.h"

enum {
    GW = 64,                    /* output channels per unit: 4 panels of 16 */
    V_BYTES = 384 * 1024,       /* the most one block's V may take */
    TB_STEP = 6,                /* TB is a multiple of the AVX2/AVX-512 tile's rows */
    TB_MAX = 16 * TB_STEP,
    UNITS_PER_MEMBER = 4,       /* blocks are made smaller until there are this many */
    MIN_EDGE = 8,               /* below, a map of odd edge wastes too much on padding */
};

static int min_int(int a, int b) { return a < b ? a : b; }

int eng__conv_winograd_suits(const eng__conv *c, int out_edge)
{
    /* On a 7 x 7 map, 4 x 4 tiles compute 64 pixels for 49, and a layer that
     * small streams its weights (1.8 times larger transformed) more than it
     * computes at small batches. */
    return c->kh == 3 && c->kw == 3 && c->stride == 1 && c->pad == 1 && out_edge >= MIN_EDGE;
}

size_t eng__conv_winograd_bytes(const eng__conv *c)
{
    return 16 * eng__sgemm_packed_bytes(c->cin, c->cout);
}

/* U = G g G^T for one 3 x 3 kernel g (row-major), G = [1 0 0; 1/2 1/2 1/2;
 * 1/2 -1/2 1/2; 0 0 1], in double and rounded once. */
static void weight_transform(const double g[9], double u[16])
{
    double t[12];
    for (int j = 0; j < 3; j++) {
        t[j] = g[j];
        t[3 + j] = 0.5 * (g[j] + g[3 + j] + g[6 + j]);
        t[6 + j] = 0.5 * (g[j] - g[3 + j] + g[6 + j]);
        t[9 + j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        const double *r = t + 3 * i;
        u[4 * i] = r[0];
        u[4 * i + 1] = 0.5 * (r[0] + r[1] + r[2]);
        u[4 * i + 2] = 0.5 * (r[0] - r[1] + r[2]);
        u[4 * i + 3] = r[2];
    }
}

/* wino holds U[x] (cin x cout) for x = 0..15, each in eng__sgemm_pack's
 * layout (sgemm.h: panel p of 16 columns as cin rows of 16, zero past cout),
 * written in place. */
void eng__conv_winograd_pack(const eng__conv *c, float *wino)
{
    const size_t per = eng__sgemm_packed_bytes(c->cin, c->cout) / sizeof(float);
    memset(wino, 0, 16 * per * sizeof(float));
    for (int ci = 0; ci < c->cin; ci++)
        for (int co = 0; co < c->cout; co++) {
            double g[9], u[16];
            for (int k = 0; k < 9; k++)
                g[k] = c->w[((size_t)k * c->cin + ci) * c->cout + co];
            weight_transform(g, u);
            const size_t at = ((size_t)(co / 16) * c->cin + ci) * 16 + co % 16;
            for (int x = 0; x < 16; x++)
                wino[(size_t)x * per + at] = (float)u[x];
        }
}

/* Tiles per block for cin input channels when nothing else limits them. */
static int block_tiles(int cin)
{
    int tb = (int)(V_BYTES / (16 * sizeof(float) * (size_t)cin)) / TB_STEP * TB_STEP;
    return tb < TB_STEP ? TB_STEP : tb > TB_MAX ? TB_MAX : tb;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t eng__conv_winograd_scratch(const eng__conv *c)
{
    const size_t tb = (size_t)block_tiles(c->cin);
    return 16 * tb * (size_t)c->cin + 16 * tb * GW + round16((size_t)c->cin);
}

/* The work of one layer: th x tw tiles per image, T in all, in blocks of tb;
 * G groups of GW output channels. */
typedef struct {
    int th, tw, tb, G;
    long T, blocks;
} plan;

static plan make_plan(const eng__conv *c, const eng__fmap *out, int nt)
{
    plan p;
    p.th = (out->h + 1) / 2;
    p.tw = (out->w + 1) / 2;
    p.T = (long)out->n * p.th * p.tw;
    p.G = (c->cout + GW - 1) / GW;
    p.tb = block_tiles(c->cin);
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
    *y = 2 * (r / p->tw);
    *x = 2 * (r % p->tw);
}

/* V for tiles [t0, t1): tile i's 16 positions at v + (x * tb + i) * cin.
 * Patch pixels outside in's padded map (the far edge of an odd map) read
 * zero. */
static void input_block(const eng__kernels *k, const plan *p, const eng__fmap *in, long t0,
                        long t1, float *v, const float *zero)
{
    for (long t = t0; t < t1; t++) {
        int img, y, x;
        tile_at(p, t, &img, &y, &x);
        const float *d[16];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                const int py = y - 1 + i, px = x - 1 + j;
                d[4 * i + j] = py < in->h + in->pad && px < in->w + in->pad
                                   ? eng__fmap_at(in, img, py, px)
                                   : zero;
            }
        k->wino_input(d, in->c, v + (size_t)(t - t0) * in->c, (size_t)p->tb * in->c);
    }
}

/* M[x] = V[x] U[x] for the block's n tiles and output channels [col0, col0 +
 * ncols): row i of M[x] at m + (x * tb + i) * GW. */
static void gemm_block(const eng__sgemm_kernels *sk, const eng__conv *c, const plan *p, int n,
                       const float *v, int col0, int ncols, float *m)
{
    const size_t ldb = (size_t)c->cin * 16, per = eng__sgemm_packed_bytes(c->cin, c->cout) / 4;
    /* The sums are raw (no FINAL flag): the epilogue belongs after the
     * output transform, so this one is never applied. */
    const eng__sepi none = { c->b, NULL, -1 };
    const float *a[ENG_SGEMM_MAX_MR];
    float *o[ENG_SGEMM_MAX_MR];
    for (int x = 0; x < 16; x++) {
        const float *u = c->wino + (size_t)x * per + (size_t)col0 * c->cin;
        for (int r0 = 0; r0 < n; r0 += sk->mr) {
            const int mr = min_int(sk->mr, n - r0);
            for (int i = 0; i < mr; i++) {
                a[i] = v + ((size_t)x * p->tb + r0 + i) * c->cin;
                o[i] = m + ((size_t)x * p->tb + r0 + i) * GW;
            }
            for (int j = 0; 16 * j < ncols; j += sk->np) {
                const int np = min_int(sk->np, (ncols - 16 * j + 15) / 16);
                float *oj[ENG_SGEMM_MAX_MR];
                for (int i = 0; i < mr; i++)
                    oj[i] = o[i] + 16 * j;
                sk->tile(a, 0, 1, u + (size_t)j * ldb, ldb, c->cin, mr, np,
                         min_int(16 * np, ncols - 16 * j), oj, 0, &none);
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
        float *dst[4];
        const float *rs[4];
        for (int q = 0; q < 4; q++) {
            const int py = y + q / 2, px = x + q % 2;
            const int in = py < out->h && px < out->w;
            dst[q] = in ? eng__fmap_at(out, img, py, px) + col0 : NULL;
            rs[q] = in && res ? eng__fmap_at(res, img, py, px) + col0 : NULL;
        }
        k->wino_output(m + (size_t)(t - t0) * GW, (size_t)p->tb * GW, ncols, c->b + col0,
                       res ? rs : NULL, dst, relu);
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
    const size_t tb = (size_t)block_tiles(c->cin);
    float *v = scratch + (size_t)tid * need, *m = v + 16 * tb * c->cin, *zero = m + 16 * tb * GW;
    memset(zero, 0, sizeof(float) * (size_t)c->cin);
    long have = -1;  /* the block whose V this member holds */
    for (long u; (u = eng__team_take(work, 1)) < p.blocks * p.G;) {
        const long b = u / p.G, t0 = b * p.tb, t1 = t0 + p.tb < p.T ? t0 + p.tb : p.T;
        const int col0 = (int)(u % p.G) * GW, ncols = min_int(GW, c->cout - col0);
        if (b != have)
            input_block(k, &p, in, t0, t1, v, zero);
        have = b;
        gemm_block(sk, c, &p, (int)(t1 - t0), v, col0, ncols, m);
        output_block(k, c, &p, out, res, relu, t0, t1, m, col0, ncols);
    }
}
