/* winograd_scalar.c: the transforms of Winograd's F(2x2, 3x3) and F(4x4, 3x3)
 * convolutions, the portable fallback and the reference for the vector
 * versions (contract in kernels.h, the layer in src/vision/conv_winograd.c).
 *
 * Shapes (a = m + 2): input d[a*a][c] (patch element (i, j) at d[a i + j]) to
 * v[a*a][vs]; output m[a*a][ms] to y[m*m][c]. Each 2-D transform is the 1-D
 * one below applied down the columns, then along the rows, in the order
 * written here in every ISA (no fused multiply-add), so all agree bit for
 * bit. The matrices (Lavin and Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016):
 *   m = 2: B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1];
 *   m = 4: B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
 *                 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
 *          A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]. */
#include <stddef.h>

#include "kernels_isa.h"

/* The 1-D transforms: t[k * ts] from d[k * ds]. */
static void in2_1d(const float *d, int ds, float *t, int ts)
{
    const float d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds];
    t[0] = d0 - d2;
    t[ts] = d1 + d2;
    t[2 * ts] = d2 - d1;
    t[3 * ts] = d1 - d3;
}

static void in4_1d(const float *d, int ds, float *t, int ts)
{
    const float d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds],
                d5 = d[5 * ds];
    const float e = d4 - d2, f = d3 - d1;
    t[0] = (4.0f * d0 - 5.0f * d2) + d4;
    t[ts] = (d3 + d4) - 4.0f * (d1 + d2);
    t[2 * ts] = (d4 - d3) + 4.0f * (d1 - d2);
    t[3 * ts] = e + 2.0f * f;
    t[4 * ts] = e - 2.0f * f;
    t[5 * ts] = (4.0f * d1 - 5.0f * d3) + d5;
}

static void out2_1d(const float *m, int ms, float *y, int ys)
{
    const float m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms];
    y[0] = (m0 + m1) + m2;
    y[ys] = (m1 - m2) - m3;
}

static void out4_1d(const float *m, int ms, float *y, int ys)
{
    const float m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms], m4 = m[4 * ms],
                m5 = m[5 * ms];
    const float a = m1 + m2, b = m1 - m2, c = m3 + m4, e = m3 - m4;
    y[0] = (m0 + a) + c;
    y[ys] = b + 2.0f * e;
    y[2 * ys] = a + 4.0f * c;
    y[3 * ys] = (b + 8.0f * e) + m5;
}

typedef void (*line_fn)(const float *, int, float *, int);

/* v = B^T d B for patches of edge a, one channel at a time. */
static void input(line_fn line, int a, const float *const *d, int c, float *v, size_t vs)
{
    for (int ch = 0; ch < c; ch++) {
        float p[36], t[36], u[36];
        for (int x = 0; x < a * a; x++)
            p[x] = d[x][ch];
        for (int j = 0; j < a; j++)
            line(p + j, a, t + j, a);
        for (int i = 0; i < a; i++)
            line(t + a * i, 1, u + a * i, 1);
        for (int x = 0; x < a * a; x++)
            v[(size_t)x * vs + ch] = u[x];
    }
}

static float relu(float x)
{
    return x < 0.0f ? 0.0f : x;
}

/* y = A^T m A (edge a to edge a - 2) and the epilogue, one channel at a time. */
static void output(line_fn line, int a, const float *m, size_t ms, int c, const float *bias,
                   const float *const *res, float *const *y, int relu_on)
{
    const int o = a - 2;
    for (int ch = 0; ch < c; ch++) {
        float p[36], t[24], u[16];
        for (int x = 0; x < a * a; x++)
            p[x] = m[(size_t)x * ms + ch];
        for (int j = 0; j < a; j++)
            line(p + j, a, t + j, a);
        for (int i = 0; i < o; i++)
            line(t + a * i, 1, u + o * i, 1);
        for (int k = 0; k < o * o; k++) {
            if (!y[k])
                continue;
            float r = u[k] + bias[ch];
            if (res)
                r = r + res[k][ch];
            y[k][ch] = relu_on ? relu(r) : r;
        }
    }
}

void eng__wino2_input_scalar(const float *const *d, int c, float *v, size_t vs)
{
    input(in2_1d, 4, d, c, v, vs);
}

void eng__wino4_input_scalar(const float *const *d, int c, float *v, size_t vs)
{
    input(in4_1d, 6, d, c, v, vs);
}

void eng__wino2_output_scalar(const float *m, size_t ms, int c, const float *bias,
                              const float *const *res, float *const *y, int relu_on)
{
    output(out2_1d, 4, m, ms, c, bias, res, y, relu_on);
}

void eng__wino4_output_scalar(const float *m, size_t ms, int c, const float *bias,
                              const float *const *res, float *const *y, int relu_on)
{
    output(out4_1d, 6, m, ms, c, bias, res, y, relu_on);
}
