/* bias_residual_vec.h: bias + residual add, the body shared by bias_residual_avx2.c and
 * bias_residual_avx512.c, in vmath_*.h's vocabulary (include one of them first).
 *
 * Shapes: y[rows][n], bias[n], res[rows][n] or NULL;
 * y[r][i] = (y[r][i] + bias[i]) + res[r][i], the scalar's order, so the
 * result is bit for bit the scalar's. The tail is masked. */
#ifndef ENG_BIAS_RESIDUAL_VEC_H
#define ENG_BIAS_RESIDUAL_VEC_H

#include <stddef.h>

static inline void bias_residual_vec(float *y, const float *bias, const float *res, int rows,
                                     int n)
{
    const int rem = n % VLANES, body = n - rem;
    const vmask tail = vtail(rem);
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * n;
        const float *rr = res ? res + (size_t)r * n : NULL;
        for (int i = 0; i < body; i += VLANES) {
            vfloat v = vadd(vload(yr + i), vload(bias + i));
            if (rr)
                v = vadd(v, vload(rr + i));
            vstore(yr + i, v);
        }
        if (rem) {
            vfloat v = vadd(vload_m(yr + body, tail), vload_m(bias + body, tail));
            if (rr)
                v = vadd(v, vload_m(rr + body, tail));
            vstore_m(yr + body, tail, v);
        }
    }
}

#endif
