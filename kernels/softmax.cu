// softmax.cu: softmax and log-softmax over the last axis, and the causal attention softmax,
// forward and backward, over `rows` contiguous rows of `cols` values.
//
// softmax_forward   (take_log = 0): y = exp(x − m) · (1 / Σ exp(x − m)),   m = max(x)
//                   (take_log = 1): y = x − lse,  lse = m + ln Σ exp(x − m)
// softmax_backward  (take_log = 0): dx = y ⊙ (g − Σ g⊙y)      (from the forward's output y)
//                   (take_log = 1): dx = g − exp(y) · Σ g
// causal_softmax_forward:  y = softmax(scale·x) over the keys a query may see, 0 after them.
//                   Rows are [.., t, s] flattened: row r is query i = r mod t and sees keys
//                   j <= i + s − t (with s > t the queries are the last t positions, as with a
//                   KV cache). The host requires s >= t, so every row sees at least key 0 and
//                   no row is fully masked. As on the CPU, m = max(x[..valid]) · scale and
//                   y_j = exp(x_j·scale − m) / Σ (scale > 0 assumed, as there).
// causal_softmax_backward: dx = scale · y ⊙ (g − Σ_{j<valid} g⊙y) on the visible keys, 0 after.
// Same formulas and operation order as src/tensor/cpu/softmax.rs (softmax, log_softmax,
// softmax_backward, log_softmax_backward, causal_softmax, causal_softmax_backward); fp32 sums.
// Idea: one block per row (grid-stride over rows); each thread strides along the row, block
// reductions (shuffle trees, then one shared slot per warp) give the max and the sums, and the
// row is read again for each pass (from L1/L2). Fixed reduction order: deterministic. Every pass
// reads the whole row before a barrier and the last pass writes each element from the thread
// that read it, so out may be in (and dx may be g) itself.
// Launch: grid = min(rows, 32 * SMs), block = a multiple of 32 (the launcher: about 4 values
// per thread, 32 .. 512 threads).
#include "common.cuh"

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

// Max of `v` over the block, returned to every thread (as block_sum in common.cuh).
__device__ __forceinline__ float block_max(float v) {
    __shared__ float partial[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < warps ? partial[lane] : -INFINITY;
    return warp_max(v);
}

extern "C" __global__ void softmax_forward(floatX* out, const floatX* in, size_t rows, int cols,
                                           int take_log) {
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const floatX* x = in + r * cols;
        floatX* y = out + r * cols;
        float m = -INFINITY;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, to_float(x[j]));
        m = block_max(m);
        float sum = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(to_float(x[j]) - m);
        sum = block_sum(sum);
        if (take_log) {
            const float lse = m + logf(sum);
            for (int j = threadIdx.x; j < cols; j += blockDim.x)
                y[j] = from_float<floatX>(to_float(x[j]) - lse);
        } else {
            const float inv = 1.0f / sum;
            for (int j = threadIdx.x; j < cols; j += blockDim.x)
                y[j] = from_float<floatX>(expf(to_float(x[j]) - m) * inv);
        }
    }
}

extern "C" __global__ void softmax_backward(floatX* dx, const floatX* y, const floatX* g,
                                            size_t rows, int cols, int take_log) {
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const floatX *yr = y + r * cols, *gr = g + r * cols;
        float sum = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x)
            sum += take_log ? to_float(gr[j]) : to_float(yr[j]) * to_float(gr[j]);
        sum = block_sum(sum);
        floatX* d = dx + r * cols;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const float p = to_float(yr[j]), q = to_float(gr[j]);
            d[j] = from_float<floatX>(take_log ? q - expf(p) * sum : p * (q - sum));
        }
    }
}

extern "C" __global__ void causal_softmax_forward(floatX* out, const floatX* in, size_t rows,
                                                  int t, int s, float scale) {
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int valid = (int)(r % t) + (s - t) + 1;
        const floatX* x = in + r * s;
        floatX* y = out + r * s;
        float m = -INFINITY;
        for (int j = threadIdx.x; j < valid; j += blockDim.x) m = fmaxf(m, to_float(x[j]));
        m = block_max(m) * scale;
        float sum = 0.0f;
        for (int j = threadIdx.x; j < valid; j += blockDim.x)
            sum += expf(to_float(x[j]) * scale - m);
        sum = block_sum(sum);
        const float inv = 1.0f / sum;
        for (int j = threadIdx.x; j < s; j += blockDim.x)
            y[j] = from_float<floatX>(j < valid ? expf(to_float(x[j]) * scale - m) * inv : 0.0f);
    }
}

extern "C" __global__ void causal_softmax_backward(floatX* dx, const floatX* y, const floatX* g,
                                                   size_t rows, int t, int s, float scale) {
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int valid = (int)(r % t) + (s - t) + 1;
        const floatX *yr = y + r * s, *gr = g + r * s;
        float dot = 0.0f;
        for (int j = threadIdx.x; j < valid; j += blockDim.x)
            dot += to_float(yr[j]) * to_float(gr[j]);
        dot = block_sum(dot);
        floatX* d = dx + r * s;
        for (int j = threadIdx.x; j < s; j += blockDim.x) {
            const float v = j < valid ? scale * to_float(yr[j]) * (to_float(gr[j]) - dot) : 0.0f;
            d[j] = from_float<floatX>(v);
        }
    }
}
