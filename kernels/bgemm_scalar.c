/* bgemm_scalar.c: the bf16 GEMM's reference (bgemm.h): bf16 operands,
 * exact products (8 x 8 significant bits fit a float), fp32 sums in k order,
 * the epilogue of the scalar kernel table. The test reference of the vector
 * units, and nothing else. */
#include "bgemm.h"

/* Row-major [Mp][Kp] bf16 (bgemm.h), zero past K and M. */
static void round_rows(const float *X, int M, int K, size_t ldx, void *Av)
{
    const int kp = eng__bgemm_kp(K), mp = (M + 15) & ~15;
    eng__bf16 *A = Av;
    for (int r = 0; r < mp; r++)
        for (int i = 0; i < kp; i++)
            A[(size_t)r * kp + i] = r < M && i < K ? eng__bf16_round(X[(size_t)r * ldx + i]) : 0;
}

static void gemm(const void *Av, int M, int Kp, const eng__bf16 *B, int N, float *Y, size_t ldy,
                 const float *bias, const float *res, eng__act act)
{
    const eng__bf16 *A = Av;
    const eng__kernels *k = eng__kernels_for(ENG_ISA_SCALAR);
    for (int p = 0; p < (N + 15) / 16; p++) {
        const eng__bf16 *b = B + (size_t)p * Kp * 16;
        const int cols = N - 16 * p < 16 ? N - 16 * p : 16;
        for (int r = 0; r < M; r++) {
            const eng__bf16 *a = A + (size_t)r * Kp;
            float *y = Y + (size_t)r * ldy + 16 * p;
            for (int j = 0; j < cols; j++) {
                float s = 0.0f;
                for (int i = 0; i < Kp; i++)
                    s += eng__bf16_float(a[i]) *
                         eng__bf16_float(b[(size_t)(i / 2) * 32 + 2 * j + (i & 1)]);
                y[j] = s;
            }
            if (act != ENG_ACT_NONE)
                k->bias_act(y, bias + 16 * p, 1, cols, act);
            else
                k->bias_residual(y, bias + 16 * p, res ? res + (size_t)r * ldy + 16 * p : NULL,
                                 1, cols);
        }
    }
}

const eng__bgemm_kernels eng__bgemm_scalar = {ENG_BGEMM_SCALAR, "scalar", round_rows, NULL, gemm,
                                              NULL};
