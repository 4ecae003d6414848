/* kernels.cu: the CUDA kernels of the forward pass and their launchers:
 * embedding gather + layer norm, layer norm, bias + activation, bias +
 * residual, fp32 -> fp16/bf16 conversion, the padded-attention gather and
 * scatter, masked softmax, pooling and argmax. Each mirrors its CPU
 * counterpart in kernels/<family>_scalar.c (same formulas, same handling of -inf and
 * NaN); sums are fp32 tree reductions instead of the CPU's double sums.
 *
 * Row kernels run one block of THREADS threads per row, each thread taking
 * the columns tid, tid + THREADS, ...; a thread only ever writes the elements
 * it read itself, after the block reductions, so y may alias x. Element-wise
 * kernels run a grid-stride loop. */
#include <float.h>
#include <math.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gpu.h"

#define THREADS 256        /* a multiple of 32: the reductions use full warps */
#define MAX_BLOCKS 65535u  /* grid-stride kernels: enough blocks to fill any GPU */

/* Same constants as kernels/vmath_coef.h. */
#define SQRT1_2 0.70710678118654752f
#define GELU_K0 1.5957691216057308f  /* 2 sqrt(2/pi) */
#define GELU_K1 0.07135481627260025f /* 2 sqrt(2/pi) 0.044715 */

static unsigned blocks_for(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    return b < MAX_BLOCKS ? (unsigned)b : MAX_BLOCKS;
}

/* __forceinline__: an outlined specialisation leaves a host stub with default
 * visibility, which libengine.so would export (tests/test_exports.sh). */
template <typename T> __device__ T to_op(float v);
template <> __device__ __forceinline__ float to_op<float>(float v) { return v; }
template <> __device__ __forceinline__ __half to_op<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 to_op<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

/* The sum (max) of v over the block, returned to every thread in the same
 * order, so all threads agree bit for bit. The first barrier keeps a previous
 * call's readers from seeing part[] overwritten. */
__device__ float block_sum(float v)
{
    __shared__ float part[32];
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = v;
    __syncthreads();
    float s = 0.0f;
    for (unsigned i = 0; i < blockDim.x >> 5; i++)
        s += part[i];
    return s;
}

__device__ float block_max(float v)
{
    __shared__ float part[32];
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = v;
    __syncthreads();
    float m = -INFINITY;
    for (unsigned i = 0; i < blockDim.x >> 5; i++)
        m = fmaxf(m, part[i]);
    return m;
}

/* y[0..n) = (x - mean) / sqrt(var + eps) * g + b by the whole block; the
 * variance is the mean of (x - mean)^2, as in layernorm_scalar.c. */
__device__ void ln_row(float *y, const float *x, const float *g, const float *b, int n, float eps)
{
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        s += x[i];
    const float mean = block_sum(s) / (float)n;
    float q = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float d = x[i] - mean;
        q += d * d;
    }
    const float rstd = 1.0f / sqrtf(block_sum(q) / (float)n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        y[i] = (x[i] - mean) * rstd * g[i] + b[i];
}

/* Block t: h[t][0..H) = LayerNorm(word[ids[t]] + pos_emb[pos[t]]). */
__global__ void embed_ln_kernel(const int *ids, const int *pos, const float *word,
                                const float *pos_emb, const float *g, const float *b, int H,
                                float eps, float *h)
{
    const size_t t = blockIdx.x;
    const float *w = word + (size_t)ids[t] * H, *p = pos_emb + (size_t)pos[t] * H;
    float *row = h + t * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x)
        row[i] = w[i] + p[i];
    ln_row(row, row, g, b, H, eps);
}

/* Block r: y[r][0..n) = LayerNorm(x[r][0..n)). */
__global__ void layernorm_kernel(float *y, const float *x, const float *g, const float *b, int n,
                                 float eps)
{
    const size_t r = blockIdx.x;
    ln_row(y + r * n, x + r * n, g, b, n, eps);
}

__device__ float activate(float v, int act)
{
    switch (act) {
    case ENG_GPU_ACT_GELU:
        return v < -FLT_MAX ? -0.0f : 0.5f * v * erfcf(-v * SQRT1_2);
    case ENG_GPU_ACT_GELU_TANH:
        return v < -FLT_MAX ? -0.0f : v / (1.0f + expf(-(v * (GELU_K0 + GELU_K1 * v * v))));
    case ENG_GPU_ACT_RELU:
        return v < 0.0f ? 0.0f : v;
    case ENG_GPU_ACT_TANH:
        return tanhf(v);
    default:
        return v;
    }
}

/* x[rows][n]: x[r][i] = act(x[r][i] + bias[i]). */
__global__ void bias_act_kernel(float *x, const float *bias, size_t total, int n, int act)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x)
        x[k] = activate(x[k] + bias[k % n], act);
}

/* y[rows][n]: y[r][i] = (y[r][i] + bias[i]) + res[r][i] (res may be NULL). */
__global__ void bias_residual_kernel(float *y, const float *bias, const float *res, size_t total,
                                     int n)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x) {
        float v = y[k] + bias[k % n];
        y[k] = res ? v + res[k] : v;
    }
}

/* y[k] = x[k] rounded to nearest even in the operand type T. */
template <typename T> __global__ void convert_kernel(const float *x, T *y, size_t total)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x)
        y[k] = to_op<T>(x[k]);
}

/* Padded attention operands. qkv is [tokens, 3H] (Q, K, V column blocks,
 * head a at columns a*d of each); sequence s of the group starts at token
 * off[s] and has len[s] tokens. out is three [g, A, S, d] arrays back to back
 * (Q, K, V), rows i >= len[s] zero. */
template <typename T>
__global__ void gather_qkv_kernel(const float *qkv, const int *off, const int *len, int S, int A,
                                  int d, size_t total, T *out)
{
    const size_t H = (size_t)A * d;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x) {
        const size_t c = k % d, r = k / d, i = r % S, a = (r / S) % A, s = r / S / A;
        const bool real = i < (size_t)len[s];
        const float *src = qkv + ((size_t)off[s] + i) * 3 * H + a * d + c;
        for (int part = 0; part < 3; part++)
            out[part * total + k] = to_op<T>(real ? src[part * H] : 0.0f);
    }
}

/* y[0..n_total) = softmax(x[0..n_valid)) followed by zeros, by the whole
 * block; as softmax_scalar.c: the max is subtracted first, a row whose max is
 * -inf becomes zeros, NaN propagates. */
template <typename T>
__device__ void softmax_row(const float *x, T *y, int n_valid, int n_total)
{
    float m = -INFINITY;
    for (int j = threadIdx.x; j < n_valid; j += blockDim.x)
        m = fmaxf(m, x[j]);
    m = block_max(m);
    if (m == -INFINITY) { /* the same m in every thread: the block leaves together */
        for (int j = threadIdx.x; j < n_total; j += blockDim.x)
            y[j] = to_op<T>(0.0f);
        return;
    }
    float s = 0.0f;
    for (int j = threadIdx.x; j < n_valid; j += blockDim.x)
        s += expf(x[j] - m);
    const float inv = 1.0f / block_sum(s);
    for (int j = threadIdx.x; j < n_total; j += blockDim.x)
        y[j] = to_op<T>(j < n_valid ? expf(x[j] - m) * inv : 0.0f);
}

/* scores [g, A, S, S] (already scaled) -> probs, same shape, in the operand
 * type: row i of (sequence s, head a) is the softmax over its first len[s]
 * keys; rows i >= len[s] are zero. Block = one row. probs may be scores. */
template <typename T>
__global__ void masked_softmax_kernel(const float *scores, T *probs, const int *len, int A, int S)
{
    const size_t r = blockIdx.x;
    const int i = (int)(r % S), s = (int)(r / S / A), n = len[s];
    if (i >= n) { /* uniform across the block */
        for (int j = threadIdx.x; j < S; j += blockDim.x)
            probs[r * S + j] = to_op<T>(0.0f);
        return;
    }
    softmax_row(scores + r * S, probs + r * S, n, S);
}

/* pv [g, A, S, d] -> attn [tokens, H]: row off[s] + i, columns a*d .. a*d+d,
 * for i < len[s]; padded rows are dropped. */
__global__ void scatter_heads_kernel(const float *pv, const int *off, const int *len, int S, int A,
                                     int d, size_t total, float *attn)
{
    const size_t H = (size_t)A * d;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x) {
        const size_t c = k % d, r = k / d, i = r % S, a = (r / S) % A, s = r / S / A;
        if (i < (size_t)len[s])
            attn[((size_t)off[s] + i) * H + a * d + c] = pv[k];
    }
}

/* out[n, H]: out[j] = h[off[j]] (the [CLS] row of each sequence). */
__global__ void gather_rows_kernel(const float *h, const int *off, size_t total, int H, float *out)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x)
        out[k] = h[(size_t)off[k / H] * H + k % H];
}

/* Block j: out[j][0..H) = the mean of the len[j] rows of sequence j in h
 * [tokens, H] (only its first row when cls), then L2-normalised when
 * normalize, as embed_chunk in src/api.c (the mean's sum in double there too). */
__global__ void pool_kernel(const float *h, const int *off, const int *len, int H, int cls,
                            int normalize, float *out)
{
    const size_t j = blockIdx.x;
    const int S = cls ? 1 : len[j];
    const float *rows = h + (size_t)off[j] * H;
    float *dst = out + j * H;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        double sum = 0.0;
        for (int t = 0; t < S; t++)
            sum += rows[(size_t)t * H + i];
        dst[i] = (float)(sum / S);
        ss += dst[i] * dst[i];
    }
    if (!normalize)
        return; /* uniform across the block */
    ss = block_sum(ss);
    const float inv = ss > 0.0f ? 1.0f / sqrtf(ss) : 0.0f;
    for (int i = threadIdx.x; i < H; i += blockDim.x)
        dst[i] *= inv;
}

/* Block r: y[r][0..n) = softmax(x[r][0..n)); y may be x. */
__global__ void softmax_rows_kernel(const float *x, float *y, int n)
{
    const size_t r = blockIdx.x;
    softmax_row(x + r * n, y + r * n, n, n);
}

/* out[r] = index of the largest of x[r][0..n), as argmax_scalar.c: the first
 * on ties, NaN never wins, else the first non-NaN, else 0. Thread = row. */
__global__ void argmax_rows_kernel(const float *x, int rows, int n, int *out)
{
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) {
        const float *v = x + (size_t)r * n;
        int best = -1;
        float bv = -INFINITY;
        for (int i = 0; i < n; i++)
            if (v[i] > bv) {
                bv = v[i];
                best = i;
            }
        for (int i = 0; best < 0 && i < n; i++)
            if (!isnan(v[i]))
                best = i;
        out[r] = best < 0 ? 0 : best;
    }
}

/* ---- Launchers ------------------------------------------------------------ */

cudaError_t eng__gpu_embed_ln(cudaStream_t st, const int *ids, const int *pos, int T,
                              const float *word, const float *pos_emb, const float *g,
                              const float *b, int H, float eps, float *h)
{
    if (T > 0)
        embed_ln_kernel<<<T, THREADS, 0, st>>>(ids, pos, word, pos_emb, g, b, H, eps, h);
    return cudaGetLastError();
}

cudaError_t eng__gpu_layernorm(cudaStream_t st, float *y, const float *x, const float *g,
                               const float *b, int rows, int n, float eps)
{
    if (rows > 0)
        layernorm_kernel<<<rows, THREADS, 0, st>>>(y, x, g, b, n, eps);
    return cudaGetLastError();
}

cudaError_t eng__gpu_bias_act(cudaStream_t st, float *x, const float *bias, int rows, int n,
                              int act)
{
    const size_t total = (size_t)rows * n;
    if (total)
        bias_act_kernel<<<blocks_for(total), THREADS, 0, st>>>(x, bias, total, n, act);
    return cudaGetLastError();
}

cudaError_t eng__gpu_bias_residual(cudaStream_t st, float *y, const float *bias, const float *res,
                                   int rows, int n)
{
    const size_t total = (size_t)rows * n;
    if (total)
        bias_residual_kernel<<<blocks_for(total), THREADS, 0, st>>>(y, bias, res, total, n);
    return cudaGetLastError();
}

cudaError_t eng__gpu_convert(cudaStream_t st, const float *x, void *y, size_t n, cudaDataType_t t)
{
    if (!n)
        return cudaSuccess;
    switch (t) {
    case CUDA_R_16F:
        convert_kernel<<<blocks_for(n), THREADS, 0, st>>>(x, (__half *)y, n);
        break;
    case CUDA_R_16BF:
        convert_kernel<<<blocks_for(n), THREADS, 0, st>>>(x, (__nv_bfloat16 *)y, n);
        break;
    case CUDA_R_32F:
        convert_kernel<<<blocks_for(n), THREADS, 0, st>>>(x, (float *)y, n);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

cudaError_t eng__gpu_gather_qkv(cudaStream_t st, const float *qkv, const int *off, const int *len,
                                int g, int S, int A, int d, void *qkvp, cudaDataType_t t)
{
    const size_t total = (size_t)g * A * S * d;
    if (!total)
        return cudaSuccess;
    const unsigned nb = blocks_for(total);
    switch (t) {
    case CUDA_R_16F:
        gather_qkv_kernel<<<nb, THREADS, 0, st>>>(qkv, off, len, S, A, d, total, (__half *)qkvp);
        break;
    case CUDA_R_16BF:
        gather_qkv_kernel<<<nb, THREADS, 0, st>>>(qkv, off, len, S, A, d, total,
                                                  (__nv_bfloat16 *)qkvp);
        break;
    case CUDA_R_32F:
        gather_qkv_kernel<<<nb, THREADS, 0, st>>>(qkv, off, len, S, A, d, total, (float *)qkvp);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

cudaError_t eng__gpu_masked_softmax(cudaStream_t st, const float *scores, void *probs,
                                    const int *len, int g, int A, int S, cudaDataType_t t)
{
    const size_t rows = (size_t)g * A * S;
    if (!rows)
        return cudaSuccess;
    if (rows > 0x7fffffffu)
        return cudaErrorInvalidConfiguration;
    const unsigned nb = (unsigned)rows;
    switch (t) {
    case CUDA_R_16F:
        masked_softmax_kernel<<<nb, THREADS, 0, st>>>(scores, (__half *)probs, len, A, S);
        break;
    case CUDA_R_16BF:
        masked_softmax_kernel<<<nb, THREADS, 0, st>>>(scores, (__nv_bfloat16 *)probs,
                                                                  len, A, S);
        break;
    case CUDA_R_32F:
        masked_softmax_kernel<<<nb, THREADS, 0, st>>>(scores, (float *)probs, len, A, S);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

cudaError_t eng__gpu_scatter_heads(cudaStream_t st, const float *pv, const int *off,
                                   const int *len, int g, int S, int A, int d, float *attn)
{
    const size_t total = (size_t)g * A * S * d;
    if (total)
        scatter_heads_kernel<<<blocks_for(total), THREADS, 0, st>>>(pv, off, len, S, A, d, total,
                                                                    attn);
    return cudaGetLastError();
}

cudaError_t eng__gpu_gather_rows(cudaStream_t st, const float *h, const int *off, int n, int H,
                                 float *out)
{
    const size_t total = (size_t)n * H;
    if (total)
        gather_rows_kernel<<<blocks_for(total), THREADS, 0, st>>>(h, off, total, H, out);
    return cudaGetLastError();
}

cudaError_t eng__gpu_pool(cudaStream_t st, const float *h, const int *off, const int *len, int n,
                          int H, int cls, int normalize, float *out)
{
    if (n > 0)
        pool_kernel<<<n, THREADS, 0, st>>>(h, off, len, H, cls, normalize, out);
    return cudaGetLastError();
}

cudaError_t eng__gpu_softmax_rows(cudaStream_t st, const float *x, float *y, int rows, int n)
{
    if (rows > 0)
        softmax_rows_kernel<<<rows, THREADS, 0, st>>>(x, y, n);
    return cudaGetLastError();
}

cudaError_t eng__gpu_argmax_rows(cudaStream_t st, const float *x, int rows, int n, int *out)
{
    if (rows > 0)
        argmax_rows_kernel<<<blocks_for((size_t)rows), THREADS, 0, st>>>(x, rows, n, out);
    return cudaGetLastError();
}
