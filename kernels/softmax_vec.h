/* softmax_vec.h: row softmax with a scale, the body shared by softmax_avx2.c
 * and softmax_avx512.c, in vmath_*.h's vocabulary (include one of them
 * first).
 *
 * Shapes: x[rows][ld], the first n floats of each row replaced in place by
 * softmax(scale * row); floats n..ld-1 are never read or written (the tail uses
 * masked loads and stores). Three passes: max, exp and sum, multiply by
 * 1/sum. Behaviour on fully masked (-inf) rows as softmax_scalar.c. */
#ifndef ENG_SOFTMAX_VEC_H
#define ENG_SOFTMAX_VEC_H

#include <math.h>
#include <stddef.h>
#include <string.h>

static inline void softmax_vec(float *x, int rows, int n, int ld, float scale)
{
    const vfloat vs = vset1(scale), ninf = vset1(-INFINITY);
    const int rem = n % VLANES, body = n - rem;
    const vmask tail = vtail(rem);
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * ld;
        vfloat vm = ninf;
        for (int i = 0; i < body; i += VLANES)
            vm = vmax(vm, vmul(vs, vload(row + i)));
        if (rem)
            vm = vmax(vm, vsel(tail, vmul(vs, vload_m(row + body, tail)), ninf));
        const float m = vhmax(vm);
        if (m == -INFINITY) {
            memset(row, 0, (size_t)n * sizeof *row);
            continue;
        }
        const vfloat nm = vset1(-m);
        vfloat vsum = vzero();
        for (int i = 0; i < body; i += VLANES) {
            vfloat e = vexp(vfmadd(vs, vload(row + i), nm));
            vstore(row + i, e);
            vsum = vadd(vsum, e);
        }
        if (rem) {
            vfloat e = vsel(tail, vexp(vfmadd(vs, vload_m(row + body, tail), nm)), vzero());
            vstore_m(row + body, tail, e);
            vsum = vadd(vsum, e);
        }
        const vfloat inv = vset1(1.0f / vhsum(vsum));
        for (int i = 0; i < body; i += VLANES)
            vstore(row + i, vmul(inv, vload(row + i)));
        if (rem)
            vstore_m(row + body, tail, vmul(inv, vload_m(row + body, tail)));
    }
}

#endif
