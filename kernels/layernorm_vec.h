/* layernorm_vec.h: row layer normalisation, the body shared by
 * layernorm_avx2.c and layernorm_avx512.c, in vmath_*.h's vocabulary (include
 * one of them first).
 *
 * Shapes: x[rows][n], y[rows][n] (y may equal x: each element is read before
 * it is written), g[n], b[n]. Same method as layernorm_scalar.c (two fp32
 * passes, eps inside the square root); only the order of the sums differs:
 * two accumulators over 2 x VLANES floats a step. */
#ifndef ENG_LAYERNORM_VEC_H
#define ENG_LAYERNORM_VEC_H

#include <math.h>
#include <stddef.h>

static inline void layernorm_vec(float *y, const float *x, const float *g, const float *b,
                                 int rows, int n, float eps)
{
    const int rem = n % VLANES, body = n - rem;
    const vmask tail = vtail(rem);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        vfloat s0 = vzero(), s1 = vzero();
        int i = 0;
        for (; i + 2 * VLANES <= body; i += 2 * VLANES) {
            s0 = vadd(s0, vload(xr + i));
            s1 = vadd(s1, vload(xr + i + VLANES));
        }
        if (i < body)
            s0 = vadd(s0, vload(xr + i));
        if (rem)
            s1 = vadd(s1, vload_m(xr + body, tail));
        const float mean = vhsum(vadd(s0, s1)) / (float)n;
        const vfloat vmean = vset1(mean);

        vfloat q0 = vzero(), q1 = vzero();
        for (i = 0; i + 2 * VLANES <= body; i += 2 * VLANES) {
            vfloat d0 = vsub(vload(xr + i), vmean);
            vfloat d1 = vsub(vload(xr + i + VLANES), vmean);
            q0 = vfmadd(d0, d0, q0);
            q1 = vfmadd(d1, d1, q1);
        }
        if (i < body) {
            vfloat d = vsub(vload(xr + i), vmean);
            q0 = vfmadd(d, d, q0);
        }
        if (rem) {
            /* Masked-off tail lanes load as 0, so their d = -mean is cleared. */
            vfloat d = vsel(tail, vsub(vload_m(xr + body, tail), vmean), vzero());
            q1 = vfmadd(d, d, q1);
        }
        const float var = vhsum(vadd(q0, q1)) / (float)n;
        const vfloat rstd = vset1(1.0f / sqrtf(var + eps));

        for (i = 0; i < body; i += VLANES) {
            vfloat d = vmul(vsub(vload(xr + i), vmean), rstd);
            vstore(yr + i, vfmadd(d, vload(g + i), vload(b + i)));
        }
        if (rem) {
            vfloat d = vmul(vsub(vload_m(xr + body, tail), vmean), rstd);
            vstore_m(yr + body, tail, vfmadd(d, vload_m(g + body, tail), vload_m(b + body, tail)));
        }
    }
}

#endif
