/* softmax_avx512.c: row softmax with a scale, 16 lanes (AVX-512F).
 *
 * Shapes: x[rows][ld], the first n floats of each row replaced in place by
 * softmax(scale * row); floats n..ld-1 are never read or written (the tail uses
 * masked loads and stores). Three passes: max, exp and sum, multiply by
 * 1/sum. Behaviour on fully masked (-inf) rows as softmax_scalar.c. */
#include <math.h>
#include <string.h>

#include "kernels_isa.h"
#include "vmath_avx512.h"

void eng__softmax_avx512(float *x, int rows, int n, int ld, float scale)
{
    const __m512 vs = _mm512_set1_ps(scale);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const int rem = n % 16, body = n - rem;
    const __mmask16 tail = tail_mask16(rem);
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * ld;
        __m512 vm = ninf;
        for (int i = 0; i < body; i += 16)
            vm = _mm512_max_ps(vm, _mm512_mul_ps(vs, _mm512_loadu_ps(row + i)));
        if (rem)
            vm = _mm512_mask_max_ps(vm, tail, vm, _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(tail, row + body)));
        float m = _mm512_reduce_max_ps(vm);
        if (m == -INFINITY) {
            memset(row, 0, (size_t)n * sizeof *row);
            continue;
        }
        const __m512 nm = _mm512_set1_ps(-m);
        __m512 vsum = _mm512_setzero_ps();
        for (int i = 0; i < body; i += 16) {
            __m512 e = exp16(_mm512_fmadd_ps(vs, _mm512_loadu_ps(row + i), nm));
            _mm512_storeu_ps(row + i, e);
            vsum = _mm512_add_ps(vsum, e);
        }
        if (rem) {
            __m512 e = exp16(_mm512_fmadd_ps(vs, _mm512_maskz_loadu_ps(tail, row + body), nm));
            _mm512_mask_storeu_ps(row + body, tail, e);
            vsum = _mm512_mask_add_ps(vsum, tail, vsum, e);
        }
        const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
        for (int i = 0; i < body; i += 16)
            _mm512_storeu_ps(row + i, _mm512_mul_ps(inv, _mm512_loadu_ps(row + i)));
        if (rem)
            _mm512_mask_storeu_ps(row + body, tail,
                                  _mm512_mul_ps(inv, _mm512_maskz_loadu_ps(tail, row + body)));
    }
}
