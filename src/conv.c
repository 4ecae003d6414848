/* conv.c: NHWC convolution as an implicit GEMM on padded feature maps, max
 * and average pooling, each split among the members of a team; see conv.h.
 *
 * The GEMM is M = output pixels, K = kh*kw*cin (in the stored weight order
 * ky, kx, ci), N = cout. A register tile covers up to sk->mr pixels of one
 * output row and sk->np 16-column panels; its K loop runs one kernel row ky
 * at a time (kw*cin contiguous floats per pixel, read in place), so the
 * partial sums stay in the tile's output between K blocks and the fused
 * epilogue (bias, residual, ReLU) runs on the last one. */
#include <float.h>
#include <string.h>

#include "conv.h"
#include "team.h"

/* A K block reads at most KC steps of np weight panels (np x KC x 64 bytes,
 * up to 512 KiB for 4 panels), which stay in L2 while the block's row tiles
 * go by. KC is large enough that no ResNet kernel row (at most 3 x 512
 * steps) is split: on Zen 5, splitting rows into L1-sized blocks of 128
 * measured up to 10% slower on the 512-channel layers (more round trips of
 * the partial sums), as kernels/sgemm.c found for the linear layers. Row
 * tiles are grouped in chunks whose input footprint is about CHUNK_BYTES, so
 * a chunk's input stays in L2 while the panel groups go by. */
enum { KC = 2048, CHUNK_BYTES = 512 * 1024 };

static int min_int(int a, int b) { return a < b ? a : b; }

int eng__conv_out(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

size_t eng__fmap_floats(int n, int h, int w, int c, int pad)
{
    return (size_t)n * ((size_t)h + 2 * (size_t)pad) * ((size_t)w + 2 * (size_t)pad) * (size_t)c;
}

/* Zeroes member tid's share of f's border: whole pad rows at the top and
 * bottom, pad pixels at both ends of every other row. */
static void zero_border(const eng__fmap *f, int tid, int nt)
{
    if (f->pad == 0)
        return;
    const int ph = f->h + 2 * f->pad;
    const size_t pw = (size_t)f->w + 2 * (size_t)f->pad, px = (size_t)f->c * sizeof(float);
    int lo, hi;
    eng__team_share(f->n * ph, tid, nt, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        const int img = r / ph, y = r % ph - f->pad;
        if (y < 0 || y >= f->h) {
            memset(eng__fmap_at(f, img, y, -f->pad), 0, pw * px);
        } else {
            memset(eng__fmap_at(f, img, y, -f->pad), 0, (size_t)f->pad * px);
            memset(eng__fmap_at(f, img, y, f->w), 0, (size_t)f->pad * px);
        }
    }
}

/* The shape of one convolution's work: T row tiles (tpr per output row, of
 * nearly equal widths so no tile is left with one or two pixels), G panel
 * groups, R row tiles per chunk, and the K blocks of one kernel row. */
typedef struct {
    int oh, ow, tpr, T, G, R;
    int kb, nkb;   /* K block length and count within one kernel row */
} plan;

static plan make_plan(const eng__sgemm_kernels *sk, const eng__conv *c, const eng__fmap *out)
{
    plan p;
    p.oh = out->h;
    p.ow = out->w;
    p.tpr = (p.ow + sk->mr - 1) / sk->mr;
    p.T = out->n * p.oh * p.tpr;
    p.G = ((c->cout + 15) / 16 + sk->np - 1) / sk->np;
    /* A tile reads kh input rows of about mr*stride pixels. */
    size_t tile_bytes = (size_t)sk->mr * c->stride * c->kh * c->cin * sizeof(float);
    size_t r = CHUNK_BYTES / tile_bytes;
    p.R = r < 1 ? 1 : r > (size_t)p.T ? p.T : (int)r;
    const int krow = c->kw * c->cin;
    p.nkb = (krow + KC - 1) / KC;
    p.kb = (krow + p.nkb - 1) / p.nkb;
    return p;
}

/* Row tiles [t0, t1) of panel group g, all K blocks. */
static void run_tiles(const eng__sgemm_kernels *sk, const eng__conv *c, const plan *p,
                      const eng__fmap *in, const eng__fmap *out, const eng__fmap *res, int relu,
                      int g, int t0, int t1)
{
    const int K = c->kh * c->kw * c->cin, krow = c->kw * c->cin, n16 = (c->cout + 15) / 16;
    const int col0 = 16 * sk->np * g, np = min_int(sk->np, n16 - sk->np * g);
    const int ncols = min_int(16 * np, c->cout - col0);
    const size_t ldb = (size_t)K * 16, lda = (size_t)c->stride * c->cin;
    const float *panels = c->packed + (size_t)sk->np * g * ldb;
    for (int ky = 0; ky < c->kh; ky++)
        for (int k0 = 0; k0 < krow; k0 += p->kb) {
            const int kc = min_int(p->kb, krow - k0);
            const int flags = (ky > 0 || k0 > 0 ? ENG_ST_ACCUM : 0) |
                              (ky == c->kh - 1 && k0 + kc == krow ? ENG_ST_FINAL : 0);
            const float *b = panels + ((size_t)ky * krow + k0) * 16;
            for (int t = t0; t < t1; t++) {
                const int row = t / p->tpr, j = t % p->tpr;
                const int img = row / p->oh, oy = row % p->oh;
                const int x0 = j * p->ow / p->tpr, x1 = (j + 1) * p->ow / p->tpr;
                const float *a = eng__fmap_at(in, img, oy * c->stride - c->pad + ky,
                                              x0 * c->stride - c->pad) + k0;
                const eng__sepi epi = {
                    .bias = c->b + col0,
                    .res = res ? eng__fmap_at(res, img, oy, x0) + col0 : NULL,
                    .ldr = (size_t)c->cout,
                    .act = relu ? ENG_ACT_RELU : -1,
                };
                sk->tile(a, lda, b, ldb, kc, x1 - x0, np, ncols,
                         eng__fmap_at(out, img, oy, x0) + col0, (size_t)c->cout, flags, &epi);
            }
        }
}

/* The work is a list of (chunk, panel group, row tile) units in that order,
 * and each member takes a contiguous range of it: with many rows the members
 * split the rows and share no weights' traffic; with few (late layers at a
 * small batch) one chunk holds every row and the members split the panels. */
void eng__conv_forward(const eng__sgemm_kernels *sk, const eng__conv *c, const eng__fmap *in,
                       const eng__fmap *out, const eng__fmap *res, int relu, int tid, int nt)
{
    zero_border(out, tid, nt);
    const plan p = make_plan(sk, c, out);
    const long per_chunk = (long)p.R * p.G;
    int lo, hi;
    eng__team_share(p.T * p.G, tid, nt, &lo, &hi);
    for (int u = lo; u < hi;) {
        const int chunk = (int)(u / per_chunk), base = (int)(chunk * per_chunk);
        const int first = chunk * p.R, len = min_int(p.R, p.T - first);
        const int g = (u - base) / len, t0 = (u - base) % len;
        const int t1 = min_int(len, t0 + (hi - u));
        run_tiles(sk, c, &p, in, out, res, relu, g, first + t0, first + t1);
        u += t1 - t0;
    }
}

/* dst[i] = max(dst[i], s[i]) for i < c. The channels go in blocks of
 * POOL_BLOCK, loops of constant length without aliasing that -O2's cost model
 * vectorizes; it declines a loop of c steps, which needs a scalar remainder.
 * Scalar, the stem's pooling (112 x 112 x 64) took 0.78 ms on one Zen 5 core,
 * about 3% of ResNet-18's time; vectorized, 0.32 ms. */
enum { POOL_BLOCK = 16 };

static void max_into(float *restrict dst, const float *restrict s, int c)
{
    int i = 0;
    for (; i + POOL_BLOCK <= c; i += POOL_BLOCK)
        for (int j = 0; j < POOL_BLOCK; j++)
            dst[i + j] = s[i + j] > dst[i + j] ? s[i + j] : dst[i + j];
    for (; i < c; i++)
        dst[i] = s[i] > dst[i] ? s[i] : dst[i];
}

/* Windows are clipped to the image rather than read from the border, so any
 * input values work, negative included. */
void eng__maxpool3x3s2(const eng__fmap *in, const eng__fmap *out, int tid, int nt)
{
    zero_border(out, tid, nt);
    const int c = in->c;
    int lo, hi;
    eng__team_share(out->n * out->h, tid, nt, &lo, &hi);
    for (int r = lo; r < hi; r++) {
        const int img = r / out->h, oy = r % out->h;
        const int y0 = oy * 2 - 1 < 0 ? 0 : oy * 2 - 1, y1 = min_int(oy * 2 + 1, in->h - 1);
        for (int ox = 0; ox < out->w; ox++) {
            const int x0 = ox * 2 - 1 < 0 ? 0 : ox * 2 - 1, x1 = min_int(ox * 2 + 1, in->w - 1);
            float *dst = eng__fmap_at(out, img, oy, ox);
            for (int i = 0; i < c; i++)
                dst[i] = -FLT_MAX;
            for (int y = y0; y <= y1; y++)
                for (int x = x0; x <= x1; x++)
                    max_into(dst, eng__fmap_at(in, img, y, x), c);
        }
    }
}

void eng__global_avgpool(const eng__fmap *in, float *out, int tid, int nt)
{
    const int c = in->c;
    int lo, hi;
    eng__team_share(c, tid, nt, &lo, &hi);
    for (int img = 0; img < in->n; img++) {
        float *dst = out + (size_t)img * c;
        for (int i = lo; i < hi; i++)
            dst[i] = 0.0f;
        for (int y = 0; y < in->h; y++)
            for (int x = 0; x < in->w; x++) {
                const float *s = eng__fmap_at(in, img, y, x);
                for (int i = lo; i < hi; i++)
                    dst[i] += s[i];
            }
        for (int i = lo; i < hi; i++)
            dst[i] /= (float)(in->h * in->w);
    }
}
