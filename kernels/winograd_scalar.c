/* winograd_scalar.c: the transforms of Winograd's F(2x2, 3x3) convolution,
 * the portable fallback and the reference for the vector versions (contract
 * in kernels.h, the layer in src/conv_winograd.c).
 *
 * Shapes: input d[16][c] (patch element (i, j) at d[4i + j]) to v[16][vs];
 * output m[16][ms] to y[4][c]. With
 *     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1],
 * v = B^T d B and Y = A^T m A, each done as the row pass then the column
 * pass, in the order written here in every ISA, so all agree bit for bit.
 * Only additions: the transforms lose nothing beyond fp32 rounding. */
#include <stddef.h>

#include "kernels_isa.h"

void eng__wino_input_scalar(const float *const d[16], int c, float *v, size_t vs)
{
    for (int ch = 0; ch < c; ch++) {
        float t[16];
        for (int j = 0; j < 4; j++) {
            const float d0 = d[j][ch], d1 = d[4 + j][ch], d2 = d[8 + j][ch], d3 = d[12 + j][ch];
            t[j] = d0 - d2;
            t[4 + j] = d1 + d2;
            t[8 + j] = d2 - d1;
            t[12 + j] = d1 - d3;
        }
        for (int i = 0; i < 4; i++) {
            const float *r = t + 4 * i;
            v[(size_t)(4 * i) * vs + ch] = r[0] - r[2];
            v[(size_t)(4 * i + 1) * vs + ch] = r[1] + r[2];
            v[(size_t)(4 * i + 2) * vs + ch] = r[2] - r[1];
            v[(size_t)(4 * i + 3) * vs + ch] = r[1] - r[3];
        }
    }
}

static float relu(float x)
{
    return x < 0.0f ? 0.0f : x;
}

void eng__wino_output_scalar(const float *m, size_t ms, int c, const float *bias,
                             const float *const *res, float *const y[4], int relu_on)
{
    for (int ch = 0; ch < c; ch++) {
        float s[8];
        for (int j = 0; j < 4; j++) {
            const float m0 = m[(size_t)j * ms + ch], m1 = m[(size_t)(4 + j) * ms + ch];
            const float m2 = m[(size_t)(8 + j) * ms + ch], m3 = m[(size_t)(12 + j) * ms + ch];
            s[j] = m0 + m1 + m2;
            s[4 + j] = m1 - m2 - m3;
        }
        for (int k = 0; k < 4; k++) {
            if (!y[k])
                continue;
            const float *r = s + 4 * (k / 2);
            float o = (k % 2 == 0 ? r[0] + r[1] + r[2] : r[1] - r[2] - r[3]) + bias[ch];
            if (res)
                o = o + res[k][ch];
            y[k][ch] = relu_on ? relu(o) : o;
        }
    }
}
