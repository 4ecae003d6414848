/* softmax_scalar.c: row softmax with a scale, the portable fallback and the
 * reference the vector versions are tested against.
 *
 * Shapes: x[rows][ld], each row's first n floats replaced in place by
 * softmax(scale * row); floats n..ld-1 are not touched. The maximum is
 * subtracted before exp so no term overflows. A row whose largest scaled value
 * is -inf (a fully masked row) becomes all zeros rather than 0/0 = NaN. A row
 * holding +inf or NaN has no meaningful softmax: its outputs are NaN (zeros
 * when nothing in it is a number), and other rows are unaffected. */
#include <math.h>
#include <string.h>

#include "kernels_isa.h"

void eng__softmax_scalar(float *x, int rows, int n, int ld, float scale)
{
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * ld;
        float m = -INFINITY;
        for (int i = 0; i < n; i++)
            m = fmaxf(m, scale * row[i]);
        if (m == -INFINITY) {
            memset(row, 0, (size_t)n * sizeof *row);
            continue;
        }
        /* One fp32 accumulator over thousands of terms drifts by ~1e-5; the
         * vector versions spread the sum over 8 or 16 lanes, so here it is
         * kept in double to stay the accurate reference. */
        double sum = 0.0;
        for (int i = 0; i < n; i++) {
            row[i] = expf(scale * row[i] - m);
            sum += row[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < n; i++)
            row[i] *= inv;
    }
}
