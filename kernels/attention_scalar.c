/* attention_scalar.c: fused single-head attention, the portable fallback and
 * the reference the vector versions are tested against.
 *
 * Shapes: q, k, v [S][ld] (first d floats of each row), out [S][ldo] (first d
 * floats of each row written). One query row at a time: its S scores in
 * double, a plain two-pass softmax (max, then exp and sum), and P V
 * accumulated in double, so the result is within a float rounding of the
 * exact value. scratch holds the scores [S] and the accumulator [d] as
 * doubles; S + d doubles fit in ENG_ATTENTION_SCRATCH(S, d) floats, and its
 * 64-byte alignment makes the double view aligned. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels_isa.h"

/* One query row's output once its S scores s (largest m) are known:
 * oi[0..d) = sum_j exp(s[j] - m) v[j] / sum_j exp(s[j] - m), with acc [d] as
 * the accumulator. */
static void softmax_pv(const double *s, double m, const float *v, int ld, int S, int d,
                       double *acc, float *oi)
{
    double sum = 0.0;
    for (int c = 0; c < d; c++)
        acc[c] = 0.0;
    for (int j = 0; j < S; j++) {
        const float *vj = v + (size_t)j * ld;
        const double p = exp(s[j] - m);
        sum += p;
        for (int c = 0; c < d; c++)
            acc[c] += p * vj[c];
    }
    for (int c = 0; c < d; c++)
        oi[c] = (float)(acc[c] / sum);
}

/* x rounded to the nearest bfloat16 (ties to even), as a float: the top 16
 * bits of its binary32 form. For finite x, which is all the kernel sees. */
static float bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

static float identity(float x) { return x; }

/* The whole computation, with q and k passed through round() before they are
 * multiplied. */
static void attention_ref(const float *q, const float *k, const float *v, int ld, int S, int d,
                          float scale, float *out, int ldo, float *scratch, float (*round)(float))
{
    double *s = (double *)(void *)scratch, *acc = s + S;
    for (int i = 0; i < S; i++) {
        const float *qi = q + (size_t)i * ld;
        double m = -INFINITY;
        for (int j = 0; j < S; j++) {
            const float *kj = k + (size_t)j * ld;
            double dot = 0.0;
            for (int c = 0; c < d; c++)
                dot += (double)round(qi[c]) * round(kj[c]);
            s[j] = (double)scale * dot;
            m = fmax(m, s[j]);
        }
        softmax_pv(s, m, v, ld, S, d, acc, out + (size_t)i * ldo);
    }
}

void eng__attention_scalar(const float *q, const float *k, const float *v, int ld, int S, int d,
                           float scale, float *out, int ldo, float *scratch)
{
    attention_ref(q, k, v, ld, S, d, scale, out, ldo, scratch, identity);
}

/* The bf16 reference (kernels.h, attention_bf16): the computation above with
 * q and k rounded to bf16 before they are multiplied. The vector version
 * also zeroes bf16 subnormals (below 1.2e-38), which changes nothing these
 * inputs can show. */
void eng__attention_bf16_scalar(const float *q, const float *k, const float *v, int ld, int S,
                                int d, float scale, float *out, int ldo, float *scratch)
{
    attention_ref(q, k, v, ld, S, d, scale, out, ldo, scratch, bf16_round);
}
