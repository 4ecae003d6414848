/* cnn_testutil.c: see cnn_testutil.h. */
#include <check.h>
#include <math.h>

#include "cnn_testutil.h"

double rel_l2(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* The reference's top-1 must match, and its top-5 order wherever the
 * neighbouring logits are more than TOP_GAP apart. */
void check_logits(const char *name, const float *got, const float *ref, int nc)
{
    double e = rel_l2(got, ref, (size_t)nc);
    ck_assert_msg(e <= REF_TOL, "%s: relative L2 error %g", name, e);
    int rt[6], gt[6];
    for (int r = 0; r < 6; r++) {
        rt[r] = gt[r] = -1;
        for (int k = 0; k < nc; k++) {
            int used_r = 0, used_g = 0;
            for (int q = 0; q < r; q++)
                used_r |= rt[q] == k, used_g |= gt[q] == k;
            if (!used_r && (rt[r] < 0 || ref[k] > ref[rt[r]]))
                rt[r] = k;
            if (!used_g && (gt[r] < 0 || got[k] > got[gt[r]]))
                gt[r] = k;
        }
    }
    ck_assert_msg(gt[0] == rt[0], "%s: top-1 %d, reference %d", name, gt[0], rt[0]);
    for (int r = 1; r < 5; r++)
        if (ref[rt[r - 1]] - ref[rt[r]] > TOP_GAP && ref[rt[r]] - ref[rt[r + 1]] > TOP_GAP)
            ck_assert_msg(gt[r] == rt[r], "%s: rank %d is %d, reference %d", name, r, gt[r],
                          rt[r]);
}
