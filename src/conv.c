/* conv.c: NHWC convolution (GEMM via im2col), max and average pooling; see
 * conv.h. The GEMM is M = output pixels, K = kh*kw*cin, N = cout, so the
 * weights are the B matrix as stored and the result lands in NHWC order. */
#include <float.h>
#include <string.h>

#include "blas.h"
#include "conv.h"

/* im2col chunks hold about this many floats (8 MiB): large enough that the
 * GEMM stays efficient, small enough to stay near the caches. */
#define COL_TARGET_FLOATS (2u << 20)

int eng__conv_out(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

static int is_pointwise(const eng__conv *c)
{
    return c->kh == 1 && c->kw == 1 && c->stride == 1 && c->pad == 0;
}

size_t eng__conv_col_floats(const eng__conv *c, int n, int h, int w, int min_rows)
{
    if (is_pointwise(c))
        return 0;
    size_t K = (size_t)c->kh * c->kw * c->cin;
    size_t rows = (size_t)n * eng__conv_out(h, c->kh, c->stride, c->pad) *
                  eng__conv_out(w, c->kw, c->stride, c->pad);
    size_t want = COL_TARGET_FLOATS / K;
    if (want < (size_t)min_rows)
        want = (size_t)min_rows;
    return K * (want < rows ? want : rows);
}

/* col[r][(ky*kw + kx)*cin + ci] for output pixels [m0, m0 + rows) of the
 * batch, zeros where the window hangs over the padding. */
static void im2col(const eng__conv *c, const float *in, int h, int w, int oh, int ow, size_t m0,
                   int rows, float *col)
{
    size_t K = (size_t)c->kh * c->kw * c->cin, seg = (size_t)c->cin * sizeof(float);
    for (int r = 0; r < rows; r++) {
        size_t m = m0 + (size_t)r;
        size_t img = m / ((size_t)oh * ow);
        int oy = (int)(m / ow % oh), ox = (int)(m % ow);
        const float *base = in + img * h * w * c->cin;
        float *dst = col + (size_t)r * K;
        for (int ky = 0; ky < c->kh; ky++) {
            int iy = oy * c->stride - c->pad + ky;
            for (int kx = 0; kx < c->kw; kx++, dst += c->cin) {
                int ix = ox * c->stride - c->pad + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                    memset(dst, 0, seg);
                else
                    memcpy(dst, base + ((size_t)iy * w + ix) * c->cin, seg);
            }
        }
    }
}

/* y[r][co] = act(y[r][co] + b[co] + res[r][co]) over rows of cout. */
static void epilogue(float *y, const float *b, const float *res, int rows, int cout, int relu)
{
    for (int r = 0; r < rows; r++, y += cout) {
        if (res) {
            for (int i = 0; i < cout; i++)
                y[i] += b[i] + res[i];
            res += cout;
        } else {
            for (int i = 0; i < cout; i++)
                y[i] += b[i];
        }
        if (relu)
            for (int i = 0; i < cout; i++)
                y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    }
}

void eng__conv_forward(const eng__conv *c, const float *in, int n, int h, int w, float *out,
                       const float *res, int relu, float *col, size_t col_floats)
{
    int oh = eng__conv_out(h, c->kh, c->stride, c->pad);
    int ow = eng__conv_out(w, c->kw, c->stride, c->pad);
    size_t M = (size_t)n * oh * ow;
    int K = c->kh * c->kw * c->cin;
    if (is_pointwise(c)) {
        eng__sgemm(0, 0, (int)M, c->cout, K, 1.0f, in, K, c->w, c->cout, 0.0f, out, c->cout);
        epilogue(out, c->b, res, (int)M, c->cout, relu);
        return;
    }
    size_t chunk = col_floats / (size_t)K;
    for (size_t m0 = 0; m0 < M; m0 += chunk) {
        int rows = (int)(M - m0 < chunk ? M - m0 : chunk);
        float *y = out + m0 * c->cout;
        im2col(c, in, h, w, oh, ow, m0, rows, col);
        eng__sgemm(0, 0, rows, c->cout, K, 1.0f, col, K, c->w, c->cout, 0.0f, y, c->cout);
        epilogue(y, c->b, res ? res + m0 * c->cout : NULL, rows, c->cout, relu);
    }
}

void eng__maxpool3x3s2(const float *in, int n, int h, int w, int c, float *out)
{
    int oh = eng__conv_out(h, 3, 2, 1), ow = eng__conv_out(w, 3, 2, 1);
    for (int img = 0; img < n; img++) {
        const float *src = in + (size_t)img * h * w * c;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float *dst = out + (((size_t)img * oh + oy) * ow + ox) * c;
                for (int i = 0; i < c; i++)
                    dst[i] = -FLT_MAX;
                for (int iy = oy * 2 - 1; iy <= oy * 2 + 1; iy++) {
                    if (iy < 0 || iy >= h)
                        continue;
                    for (int ix = ox * 2 - 1; ix <= ox * 2 + 1; ix++) {
                        if (ix < 0 || ix >= w)
                            continue;
                        const float *s = src + ((size_t)iy * w + ix) * c;
                        for (int i = 0; i < c; i++)
                            dst[i] = s[i] > dst[i] ? s[i] : dst[i];
                    }
                }
            }
    }
}

void eng__global_avgpool(const float *in, int n, int hw, int c, float *out)
{
    for (int img = 0; img < n; img++) {
        float *dst = out + (size_t)img * c;
        memset(dst, 0, sizeof(float) * (size_t)c);
        for (int p = 0; p < hw; p++) {
            const float *s = in + ((size_t)img * hw + p) * c;
            for (int i = 0; i < c; i++)
                dst[i] += s[i];
        }
        for (int i = 0; i < c; i++)
            dst[i] /= (float)hw;
    }
}
