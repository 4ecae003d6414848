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

#include "kernels_isa.h"

void eng__attention_scalar(const float *q, const float *k, const float *v, int ld, int S, int d,
                           float scale, float *out, int ldo, float *scratch)
{
    double *s = (double *)(void *)scratch, *acc = s + S;
    for (int i = 0; i < S; i++) {
        const float *qi = q + (size_t)i * ld;
        double m = -INFINITY;
        for (int j = 0; j < S; j++) {
            const float *kj = k + (size_t)j * ld;
            double dot = 0.0;
            for (int c = 0; c < d; c++)
                dot += (double)qi[c] * kj[c];
            s[j] = (double)scale * dot;
            m = fmax(m, s[j]);
        }
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
        float *oi = out + (size_t)i * ldo;
        for (int c = 0; c < d; c++)
            oi[c] = (float)(acc[c] / sum);
    }
}
