/* softmax_avx2.c: row softmax with a scale, 8 lanes (AVX2 + FMA).
 *
 * Shapes: x[rows][ld], the first n floats of each row replaced in place by
 * softmax(scale * row); floats n..ld-1 are never read or written (the tail uses
 * masked loads and stores). Three passes: max, exp and sum, multiply by
 * 1/sum. Behaviour on fully masked (-inf) rows as softmax_scalar.c. */
#include <math.h>
#include <string.h>

#include "kernels_isa.h"
#include "vmath_avx2.h"

void eng__softmax_avx2(float *x, int rows, int n, int ld, float scale)
{
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const int rem = n % 8, body = n - rem;
    const __m256i tail = tail_mask8(rem);
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * ld;
        __m256 vm = ninf;
        for (int i = 0; i < body; i += 8)
            vm = _mm256_max_ps(vm, _mm256_mul_ps(vs, _mm256_loadu_ps(row + i)));
        if (rem) {
            __m256 v = _mm256_mul_ps(vs, _mm256_maskload_ps(row + body, tail));
            vm = _mm256_max_ps(vm, _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(tail)));
        }
        float m = hmax8(vm);
        if (m == -INFINITY) {
            memset(row, 0, (size_t)n * sizeof *row);
            continue;
        }
        const __m256 nm = _mm256_set1_ps(-m);
        __m256 vsum = _mm256_setzero_ps();
        for (int i = 0; i < body; i += 8) {
            __m256 e = exp8(_mm256_fmadd_ps(vs, _mm256_loadu_ps(row + i), nm));
            _mm256_storeu_ps(row + i, e);
            vsum = _mm256_add_ps(vsum, e);
        }
        if (rem) {
            __m256 e = exp8(_mm256_fmadd_ps(vs, _mm256_maskload_ps(row + body, tail), nm));
            e = _mm256_and_ps(e, _mm256_castsi256_ps(tail));
            _mm256_maskstore_ps(row + body, tail, e);
            vsum = _mm256_add_ps(vsum, e);
        }
        const __m256 inv = _mm256_set1_ps(1.0f / hsum8(vsum));
        for (int i = 0; i < body; i += 8)
            _mm256_storeu_ps(row + i, _mm256_mul_ps(inv, _mm256_loadu_ps(row + i)));
        if (rem)
            _mm256_maskstore_ps(row + body, tail,
                                _mm256_mul_ps(inv, _mm256_maskload_ps(row + body, tail)));
    }
}
