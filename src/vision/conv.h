/* conv.h: the layers of a convolutional network on padded NHWC float
 * activations, each run SPMD by the members of a team on their share.
 *
 * Every activation is a feature map (eng__fmap): n images of h x w pixels of
 * c channels (channels contiguous), stored with a border of `pad` zero pixels
 * on every side. The border is what lets a convolution run as an implicit
 * GEMM with no im2col copy: for one kernel row ky, the window of an output
 * pixel spans kw*c contiguous floats of one padded input row, so the GEMM
 * tile (kernels/sgemm.h's `tile`, one row pointer per output pixel) reads it
 * in place, padding included. */
#ifndef ENG_CONV_H
#define ENG_CONV_H

#include <stddef.h>

#include "sgemm.h"
#include "team.h"

typedef struct {
    float *d;                /* n x (h + 2 pad) x (w + 2 pad) x c floats */
    int n, h, w, c, pad;
} eng__fmap;

/* Floats of a feature map of that shape. */
size_t eng__fmap_floats(int n, int h, int w, int c, int pad);

/* Pixel (y, x) of image img, -pad <= y < h + pad (the same for x). */
static inline float *eng__fmap_at(const eng__fmap *f, int img, int y, int x)
{
    size_t pw = (size_t)f->w + 2 * (size_t)f->pad, ph = (size_t)f->h + 2 * (size_t)f->pad;
    return f->d + (((size_t)img * ph + (size_t)(y + f->pad)) * pw + (size_t)(x + f->pad)) * f->c;
}

/* Member tid of nt zeroes its share of f's border. */
void eng__fmap_zero_border(const eng__fmap *f, int tid, int nt);

typedef struct {
    int kh, kw, stride, pad;
    int cin, cout;
    const float *w;   /* [kh][kw][cin][cout]: a (kh*kw*cin) x cout row-major matrix */
    const float *b;   /* [cout], BatchNorm already folded in */
    const float *packed;   /* w packed by eng__sgemm_pack (sgemm.h), 64-byte aligned */
    /* NULL, or w transformed for eng__conv_winograd_forward with output
     * tiles of wino_m x wino_m (then packed may be NULL: the layer runs that
     * way only). */
    const float *wino;
    int wino_m;
} eng__conv;

/* Output edge of a convolution or pooling window over an input edge. */
int eng__conv_out(int in, int k, int stride, int pad);

/* Member tid of nt computes its part of out = act(conv(in) + b + res):
 * in [n][h][w][cin] with in->pad >= c->pad; out [n][oh][ow][cout] (any pad,
 * shape set by the caller); res NULL or out's shape (any pad); relu 0 or 1.
 * The members take the work from the counter work, zeroed before the run
 * (team.h), one counter per call; together they also zero out's border.
 * Their parts never overlap, so the members need no barrier among
 * themselves, only before the next layer reads out. A member may return
 * before the others finish; any member count works, even members run one
 * after another. out must not alias in or res. */
void eng__conv_forward(const eng__sgemm_kernels *sk, const eng__conv *c, const eng__fmap *in,
                       const eng__fmap *out, const eng__fmap *res, int relu,
                       eng__team_counter *work, int tid, int nt);

/* ---- Winograd F(m x m, 3 x 3), m = 2 or 4: src/vision/conv_winograd.c ---- */

/* The output tile edge m that suits c (3x3, stride 1, pad 1) on a map of
 * output edge out_edge, or 0 when the direct convolution does better. */
int eng__conv_winograd_suits(const eng__conv *c, int out_edge);

/* Bytes of c's weights transformed for tiles of m, and the transform itself
 * (from c->w into wino, 64-byte aligned); after it, set c->wino = wino and
 * c->wino_m = m. */
size_t eng__conv_winograd_bytes(const eng__conv *c, int m);
void eng__conv_winograd_pack(const eng__conv *c, int m, float *wino);

/* Floats of one member's scratch for eng__conv_winograd_forward, a multiple
 * of 16 (so every member's part stays 64-byte aligned). */
size_t eng__conv_winograd_scratch(const eng__conv *c);

/* eng__conv_forward's contract, for a c with c->wino, computed by Winograd's
 * F(m x m, 3 x 3), m = c->wino_m: (m + 2)^2 instead of 9 m^2 multiplications
 * per tile and channel pair (2.25 times fewer for m = 2, 4 times for m = 4),
 * results within fp32 rounding of the direct convolution's (not
 * bit-identical to them). Member tid uses scratch + tid *
 * eng__conv_winograd_scratch(c) floats; members whose part does not fit in
 * scratch_floats take no work (at least member 0's must fit). k supplies the
 * transforms. */
void eng__conv_winograd_forward(const eng__sgemm_kernels *sk, const eng__kernels *k,
                                const eng__conv *c, const eng__fmap *in, const eng__fmap *out,
                                const eng__fmap *res, int relu, float *scratch,
                                size_t scratch_floats, eng__team_counter *work, int tid, int nt);

/* Floats of one member's scratch for eng__conv_maxpool_forward: a band of
 * conv output rows, small enough to stay in L2. */
size_t eng__conv_maxpool_scratch(const eng__conv *c, const eng__fmap *in);

/* Member tid of nt computes its part of out = maxpool(act(conv(in) + b)),
 * the ResNet stem: 3x3, stride 2, pad 1 max pooling (padding never wins) of
 * the conv's output, which is never stored whole: each member computes bands
 * of its rows into its own part of scratch (tid * eng__conv_maxpool_scratch
 * floats on), where they are pooled while still in the caches, saving the
 * write and the re-read of the largest feature map of the network. Members
 * whose part does not fit in scratch_floats take no work (at least member 0's
 * must fit). in, relu and work as for eng__conv_forward; out's shape is set
 * by the caller (any pad, c->cout channels); each output is bit-identical to
 * pooling eng__conv_forward's. */
void eng__conv_maxpool_forward(const eng__sgemm_kernels *sk, const eng__conv *c,
                               const eng__fmap *in, const eng__fmap *out, float *scratch,
                               size_t scratch_floats, int relu, eng__team_counter *work, int tid,
                               int nt);

/* out[img][ch] = mean over in's h x w pixels; member tid of nt takes its share
 * of the channels. */
void eng__global_avgpool(const eng__fmap *in, float *out, int tid, int nt);

#endif
