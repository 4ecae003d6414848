/* conv.h: the layers of a convolutional network on NHWC float activations
 * (batch, height, width, channels; channels contiguous). Convolutions run as
 * one GEMM through eng__sgemm: 1x1 stride-1 convolutions use the activations
 * as the A matrix in place, every other shape is lowered with im2col in
 * chunks of output rows, so the scratch stays bounded whatever the batch. */
#ifndef ENG_CONV_H
#define ENG_CONV_H

#include <stddef.h>

typedef struct {
    int kh, kw, stride, pad;
    int cin, cout;
    const float *w;   /* [kh][kw][cin][cout]: a (kh*kw*cin) x cout row-major matrix */
    const float *b;   /* [cout], BatchNorm already folded in */
} eng__conv;

/* Output edge of a convolution or pooling window over an input edge. */
int eng__conv_out(int in, int k, int stride, int pad);

/* Floats of im2col scratch that let one chunk hold at least min_rows output
 * pixels of c, and never more than n x oh x ow of them. */
size_t eng__conv_col_floats(const eng__conv *c, int n, int h, int w, int min_rows);

/* out[n][oh][ow][cout] = act(conv(in) + b + res), in[n][h][w][cin]; res has
 * out's shape or is NULL; relu 0 or 1. col (col_floats floats, at least one
 * row of kh*kw*cin) is scratch; out must not alias in, col or res. */
void eng__conv_forward(const eng__conv *c, const float *in, int n, int h, int w, float *out,
                       const float *res, int relu, float *col, size_t col_floats);

/* 3x3, stride 2, pad 1 max pooling (padding never wins), the ResNet stem's:
 * in[n][h][w][c] -> out[n][oh][ow][c]. */
void eng__maxpool3x3s2(const float *in, int n, int h, int w, int c, float *out);

/* out[n][c] = mean over h x w of in[n][h][w][c]. */
void eng__global_avgpool(const float *in, int n, int hw, int c, float *out);

#endif
