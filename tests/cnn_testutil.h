/* cnn_testutil.h: checks shared by the image-model tests (test_cnn.c,
 * test_resnet50.c): logits against a reference's. */
#ifndef ENG_CNN_TESTUTIL_H
#define ENG_CNN_TESTUTIL_H

#include <stddef.h>

/* Tolerances against a PyTorch reference: the relative L2 error of one
 * image's logits, and the gap between neighbouring reference logits beyond
 * which their top-5 order must match. fp32 in another summation order
 * (Winograd for the 3x3 convolutions): ResNet-18 measures 6.4e-7 on the
 * sample images; 2e-5 leaves 30x for ResNet-50's three times the depth and
 * other ISAs. */
#define REF_TOL 2e-5
#define TOP_GAP 0.01f

/* ||a - ref|| / ||ref|| in double precision. */
double rel_l2(const float *a, const float *ref, size_t n);

/* Asserts (Check) that got is within REF_TOL of ref, that their top-1 agree,
 * and their top-5 order wherever the reference's neighbours are TOP_GAP apart;
 * name says which image failed. */
void check_logits(const char *name, const float *got, const float *ref, int nc);

#endif
