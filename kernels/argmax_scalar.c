/* argmax_scalar.c: index of the largest float, the portable fallback and the
 * reference for the vector versions.
 *
 * Shape: x[n], n >= 1. Ties go to the first index. NaN never wins over a
 * number (every comparison with NaN is false); when nothing beats -inf, the
 * answer is the first -inf, or 0 when every element is NaN. The vector versions
 * hand that rare case back to this function. */
#include <math.h>

#include "kernels_isa.h"

int eng__argmax_scalar(const float *x, int n)
{
    int best = -1;
    float bv = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (x[i] > bv) {
            bv = x[i];
            best = i;
        }
    }
    if (best >= 0)
        return best;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i]))
            return i;
    return 0;
}
