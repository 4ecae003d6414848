/* conv.c: NHWC convolution as an implicit GEMM on padded feature maps, max
 * and average pooling, each split among the members of a team; see conv.h.
 *
 * The GEMM is M = output pixels, K = kh*kw*cin (in the stored weight order
 * ky, kx, ci), N = cout. A register tile covers up to sk->mr consecutive
 * output pixels (one row pointer each, so a tile may cross rows and images)
 * and sk->np 16-column panels. One tile call runs a K block of whole kernel
 * rows (each kw*cin contiguous floats per pixel, read in place, the rows one
 * padded input row apart: the tile's segments), so the partial sums stay in
 * registers across the rows; they go through the tile's output only between
 * K blocks, and the fused epilogue (bias, residual, ReLU) runs on the last
 * one. */
#include <float.h>
#include <string.h>

#include "conv.h"
#include "team.h"

/* A K block reads at most KC steps of np weight panels (np x KC x 64 bytes,
 * up to 512 KiB for 4 panels), which stay in L2 while the block's row tiles
 * go by. KC is large enough that no ResNet kernel row (at most 3 x 512
 * steps) is split, and that a 3 x 3 conv of up to 227 channels runs all its
 * kernel rows in one block: on Zen 5, splitting rows into L1-sized blocks of
 * 128 measured up to 10% slower on the 512-channel layers (more round trips
 * of the partial sums), as kernels/sgemm.c found for the linear layers. Row
 * tiles are grouped in chunks whose input footprint is about CHUNK_BYTES, so
 * a chunk's input stays in L2 while the panel groups go by.
 * UNITS_PER_MEMBER: see plan. */
enum { KC = 2048, CHUNK_BYTES = 512 * 1024, UNITS_PER_MEMBER = 8 };

static int min_int(int a, int b) { return a < b ? a : b; }

int eng__conv_out(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

size_t eng__fmap_floats(int n, int h, int w, int c, int pad)
{
    return (size_t)n * ((size_t)h + 2 * (size_t)pad) * ((size_t)w + 2 * (size_t)pad) * (size_t)c;
}

/* Whole pad rows at the top and bottom, pad pixels at both ends of every
 * other row. */
void eng__fmap_zero_border(const eng__fmap *f, int tid, int nt)
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

/* The shape of one convolution's work. The output pixels, in (image, row,
 * column) order, go in row tiles of sk->mr (the last maybe fewer), crossing
 * rows and images, so a 7 x 7 map costs 9 tiles rather than 14 of 3 or 4
 * pixels; G panel groups; R row tiles per chunk; the K blocks of one kernel
 * row. A unit of work is one of S equal slices of one chunk's tiles in one
 * panel group: S is 1 unless the layer has too few chunks and groups to go
 * round the members several times, and 1 too when the layer is one chunk
 * (stage 4 at batch 1): its time goes into streaming the weights, which every
 * slice of a group reads again (S = 2 there measured 3% slower on the whole
 * network at batch 1 on 2 threads). A K block is rpb whole kernel rows
 * when a row fits in KC steps (the rows shared out evenly among the fewest
 * blocks of at most KC), else one of the nkb pieces of kb steps of a row. */
typedef struct {
    int oh, ow, G, R, S;
    long P, T, chunks;
    int rpb;       /* kernel rows per K block */
    int kb, nkb;   /* K block length and count within one kernel row */
} plan;

static plan make_plan(const eng__sgemm_kernels *sk, const eng__conv *c, const eng__fmap *out,
                      int nt)
{
    plan p;
    p.oh = out->h;
    p.ow = out->w;
    p.P = (long)out->n * p.oh * p.ow;
    p.T = (p.P + sk->mr - 1) / sk->mr;
    p.G = ((c->cout + 15) / 16 + sk->np - 1) / sk->np;
    /* A tile reads kh input rows of about mr*stride pixels. */
    size_t tile_bytes = (size_t)sk->mr * c->stride * c->kh * c->cin * sizeof(float);
    size_t r = CHUNK_BYTES / tile_bytes;
    p.R = r < 1 ? 1 : r > (size_t)p.T ? (int)p.T : (int)r;
    p.chunks = (p.T + p.R - 1) / p.R;
    const long want = (long)nt * UNITS_PER_MEMBER, have = p.chunks * p.G;
    p.S = have >= want || p.chunks == 1 ? 1 : (int)((want + have - 1) / have);
    if (p.S > p.R)
        p.S = p.R;
    const int krow = c->kw * c->cin;
    p.nkb = (krow + KC - 1) / KC;
    p.kb = (krow + p.nkb - 1) / p.nkb;
    const int blocks = p.nkb > 1 ? c->kh : (c->kh * krow + KC - 1) / KC;
    p.rpb = (c->kh + blocks - 1) / blocks;
    return p;
}

/* An output pixel, walked in (image, row, column) order. */
typedef struct {
    int img, oy, ox;
} pixel;

static pixel pixel_at(const plan *p, long i)
{
    const long per_img = (long)p->oh * p->ow;
    const int rem = (int)(i % per_img);
    return (pixel){ (int)(i / per_img), rem / p->ow, rem % p->ow };
}

static void pixel_next(const plan *p, pixel *q)
{
    if (++q->ox == p->ow) {
        q->ox = 0;
        if (++q->oy == p->oh) {
            q->oy = 0;
            q->img++;
        }
    }
}

/* The row pointers of the tile of m pixels from q on (q advanced past them):
 * in a[] each pixel's window in kernel row ky from column k0, in o[] and rs[]
 * its output and residual from column col0. Pixel (img, oy, ox) lands on
 * out's pixel (img - org->img, oy - org->oy, ox): out may hold a band of the
 * rows only. */
static void tile_rows(const eng__conv *c, const plan *p, const eng__fmap *in, const eng__fmap *out,
                      const pixel *org, const eng__fmap *res, pixel *q, int m, int ky, int k0,
                      int col0, const float **a, float **o, const float **rs)
{
    for (int r = 0; r < m; r++, pixel_next(p, q)) {
        a[r] = eng__fmap_at(in, q->img, q->oy * c->stride - c->pad + ky,
                            q->ox * c->stride - c->pad) + k0;
        o[r] = eng__fmap_at(out, q->img - org->img, q->oy - org->oy, q->ox) + col0;
        rs[r] = res ? eng__fmap_at(res, q->img, q->oy, q->ox) + col0 : NULL;
    }
}

/* Pixels [i0, i1) of panel group g in tiles of sk->mr from i0, all K
 * blocks: kernel rows [ky, ky + rows), steps [k0, k0 + kc) of each. Outputs
 * go to out from origin org (tile_rows). */
static void run_tiles(const eng__sgemm_kernels *sk, const eng__conv *c, const plan *p,
                      const eng__fmap *in, const eng__fmap *out, pixel org, const eng__fmap *res,
                      int relu, int g, long i0, long i1)
{
    const int K = c->kh * c->kw * c->cin, krow = c->kw * c->cin, n16 = (c->cout + 15) / 16;
    const int col0 = 16 * sk->np * g, np = min_int(sk->np, n16 - sk->np * g);
    const int ncols = min_int(16 * np, c->cout - col0);
    const size_t ldb = (size_t)K * 16;
    const float *panels = c->packed + (size_t)sk->np * g * ldb;
    const float *a[ENG_SGEMM_MAX_MR], *rs[ENG_SGEMM_MAX_MR];
    float *o[ENG_SGEMM_MAX_MR];
    const eng__sepi epi = { c->b + col0, res ? rs : NULL, relu ? ENG_ACT_RELU : -1 };
    /* Kernel row ky + 1 of a pixel lies one padded input row after row ky. */
    const ptrdiff_t aseg = (ptrdiff_t)(in->w + 2 * in->pad) * in->c;
    for (int ky = 0; ky < c->kh; ky += p->rpb) {
        const int rows = min_int(p->rpb, c->kh - ky);
        for (int k0 = 0; k0 < krow; k0 += p->kb) {
            const int kc = min_int(p->kb, krow - k0);
            const int flags = (ky > 0 || k0 > 0 ? ENG_ST_ACCUM : 0) |
                              (ky + rows == c->kh && k0 + kc == krow ? ENG_ST_FINAL : 0);
            const float *b = panels + ((size_t)ky * krow + k0) * 16;
            pixel q = pixel_at(p, i0);
            for (long i = i0; i < i1; i += sk->mr) {
                const int m = (int)(i1 - i < sk->mr ? i1 - i : sk->mr);
                tile_rows(c, p, in, out, &org, res, &q, m, ky, k0, col0, a, o, rs);
                sk->tile(a, aseg, rows, b, ldb, kc, m, np, ncols, o, flags, &epi);
            }
        }
    }
}

/* The members take units from work one at a time, in (chunk, panel group,
 * slice) order, so a member that runs slow (a shared core) takes fewer
 * instead of holding the others at the next barrier. Consecutive units share
 * a chunk, whose input stays in the caches while the panel groups go by; with
 * few rows (late layers at a small batch) there is one chunk and a unit is a
 * panel group or an S-th of one, so few members read each group's weights. */
void eng__conv_forward(const eng__sgemm_kernels *sk, const eng__conv *c, const eng__fmap *in,
                       const eng__fmap *out, const eng__fmap *res, int relu,
                       eng__team_counter *work, int tid, int nt)
{
    eng__fmap_zero_border(out, tid, nt);
    const plan p = make_plan(sk, c, out, nt);
    const long units = p.chunks * p.G * p.S;
    for (long u; (u = eng__team_take(work, 1)) < units;) {
        const long chunk = u / ((long)p.G * p.S);
        const int g = (int)(u / p.S % p.G), s = (int)(u % p.S);
        const long first = chunk * p.R, len = p.T - first < p.R ? p.T - first : p.R;
        const long t0 = first + s * len / p.S, t1 = first + (s + 1) * len / p.S;
        run_tiles(sk, c, &p, in, out, (pixel){ 0, 0, 0 }, res, relu, g, t0 * sk->mr,
                  t1 * sk->mr < p.P ? t1 * sk->mr : p.P);
    }
}

/* dst[i] = max(dst[i], s[i]) for i < c. The channels go in blocks of
 * POOL_BLOCK, loops of constant length without aliasing that -O2's cost model
 * vectorizes; it declines a loop of c steps, which needs a scalar remainder.
 * Scalar, the stem's pooling (112 x 112 x 64) took 0.78 ms on one Zen 5 core,
 * about 3% of ResNet-18's time; vectorized, 0.32 ms. */
enum { POOL_BLOCK = 16 };

/* The fused conv and pooling's bands and units (eng__conv_maxpool_forward). */
enum { POOL_BAND = 2, POOL_UNITS_PER_MEMBER = 8 };

static void max_into(float *restrict dst, const float *restrict s, int c)
{
    int i = 0;
    for (; i + POOL_BLOCK <= c; i += POOL_BLOCK)
        for (int j = 0; j < POOL_BLOCK; j++)
            dst[i + j] = s[i + j] > dst[i + j] ? s[i + j] : dst[i + j];
    for (; i < c; i++)
        dst[i] = s[i] > dst[i] ? s[i] : dst[i];
}

/* One row of 3x3, stride 2, pad 1 max pooling: dst's ow pixels (c channels,
 * c floats apart) from the input rows y0..y1 (the window's rows inside the
 * image), row y at rows + y * row_floats, each w pixels of c channels. Windows are clipped
 * to the image rather than read from a border, so any input values work,
 * negative included (padding never wins). */
static void pool_row(const float *rows, size_t row_floats, int y0, int y1, int w, int c, int ow,
                     float *dst)
{
    for (int ox = 0; ox < ow; ox++, dst += c) {
        const int x0 = ox * 2 - 1 < 0 ? 0 : ox * 2 - 1, x1 = min_int(ox * 2 + 1, w - 1);
        for (int i = 0; i < c; i++)
            dst[i] = -FLT_MAX;
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
                max_into(dst, rows + (size_t)y * row_floats + (size_t)x * c, c);
    }
}

size_t eng__conv_maxpool_scratch(const eng__conv *c, const eng__fmap *in)
{
    const int cw = eng__conv_out(in->w, c->kw, c->stride, c->pad);
    return (size_t)(2 * POOL_BAND + 1) * (size_t)cw * (size_t)c->cout;
}

/* The work: units of seg pooled rows of one image, each walked in bands of
 * POOL_BAND pooled rows. A band needs conv rows 2 p0 - 1 .. 2 p1 - 1; the
 * first of them is the previous band's last, carried over in the scratch,
 * so only a unit's first band computes a conv row twice (its neighbour's).
 * Units of whole images when the batch goes round the members
 * POOL_UNITS_PER_MEMBER times, else smaller, trading that recomputed row for
 * balance: at batch 1 on 2 threads, 8 units per member (14 per image, one
 * conv row in 8 computed twice) measured 3% faster on the whole network than
 * 4, the stem being a large share of it there. */
void eng__conv_maxpool_forward(const eng__sgemm_kernels *sk, const eng__conv *c,
                               const eng__fmap *in, const eng__fmap *out, float *scratch,
                               size_t scratch_floats, int relu, eng__team_counter *work, int tid,
                               int nt)
{
    eng__fmap_zero_border(out, tid, nt);
    const int ch = eng__conv_out(in->h, c->kh, c->stride, c->pad);
    const int cw = eng__conv_out(in->w, c->kw, c->stride, c->pad);
    const size_t need = eng__conv_maxpool_scratch(c, in), row_floats = (size_t)cw * c->cout;
    /* Members beyond what the scratch holds take no work; the rest do it. */
    if ((size_t)(tid + 1) * need > scratch_floats)
        return;
    float *band = scratch + (size_t)tid * need;
    const eng__fmap conv_out = { NULL, in->n, ch, cw, c->cout, 0 };
    const plan p = make_plan(sk, c, &conv_out, nt);
    const int want = (nt * POOL_UNITS_PER_MEMBER + in->n - 1) / in->n;
    const int per_img = min_int(want, (out->h + POOL_BAND - 1) / POOL_BAND);
    const int seg = (out->h + per_img - 1) / per_img;
    const int segs = (out->h + seg - 1) / seg;
    const long units = (long)in->n * segs;
    for (long u; (u = eng__team_take(work, 1)) < units;) {
        const int img = (int)(u / segs), s0 = (int)(u % segs) * seg;
        const int s1 = min_int(s0 + seg, out->h);
        for (int p0 = s0; p0 < s1; p0 += POOL_BAND) {
            const int p1 = min_int(p0 + POOL_BAND, s1);
            /* Slot j of the band holds conv row base + j; row base (-1 at
             * the top: none) comes from the last band or is computed. */
            const int base = 2 * p0 - 1, last = min_int(2 * p1 - 1, ch - 1);
            int from = base < 0 ? 0 : base;
            if (p0 > s0) {
                memcpy(band, band + (size_t)(2 * POOL_BAND) * row_floats,
                       row_floats * sizeof(float));
                from = base + 1;
            }
            const eng__fmap bf = { band, 1, 2 * POOL_BAND + 1, cw, c->cout, 0 };
            const long i0 = ((long)img * ch + from) * cw, i1 = ((long)img * ch + last + 1) * cw;
            for (int g = 0; g < p.G; g++)
                run_tiles(sk, c, &p, in, &bf, (pixel){ img, base, 0 }, NULL, relu, g, i0, i1);
            for (int py = p0; py < p1; py++) {
                const int y0 = py * 2 - 1 < 0 ? 0 : py * 2 - 1, y1 = min_int(py * 2 + 1, ch - 1);
                pool_row(band, row_floats, y0 - base, y1 - base, cw, c->cout, out->w,
                         eng__fmap_at(out, img, py, 0));
            }
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
