/* bgemm_scalar.c: the bf16 GEMM's reference (bgemm.h): bf16 operands,
 * exact products (8 x 8 significant bits fit a float), fp32 sums in k order.
 * The test reference of the vector kernels, and nothing else. */
#include "bgemm.h"

static void gemm(const eng__bf16 *A, int M, int Kp, const eng__bf16 *B, int N, float *Y,
                 size_t ldy, const float *bias, const float *res, int act, const eng__kernels *k)
{
    float acc[16];
    for (int p = 0; p < (N + 15) / 16; p++) {
        const eng__bf16 *b = B + (size_t)p * Kp * 16;
        const int cols = N - 16 * p < 16 ? N - 16 * p : 16;
        for (int r = 0; r < M; r++) {
            const eng__bf16 *a = A + (size_t)r * Kp;
            for (int j = 0; j < 16; j++) {
                float s = 0.0f;
                for (int i = 0; i < Kp; i++)
                    s += eng__bf16_float(a[i]) * eng__bf16_float(b[(size_t)(i / 2) * 32 + 2 * j + (i & 1)]);
                acc[j] = s;
            }
            eng__bgemm_store(acc, 16, 1, cols, Y + (size_t)r * ldy + 16 * p, ldy, bias + 16 * p,
                             res ? res + (size_t)r * ldy + 16 * p : NULL, act, k);
        }
    }
}

const eng__bgemm_kernels eng__bgemm_scalar = {ENG_BGEMM_SCALAR, "scalar", gemm, NULL};
