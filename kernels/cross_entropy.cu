// cross_entropy.cu: cross-entropy from logits, forward (loss and log-sum-exp per row) and
// backward (the gradient of the logits), as two kernels of the tensor engine.
//
// cross_entropy_forward:  for each row r of logits [rows, cols] with target t = targets[r]:
//                         lse[r] = log Σ_j exp(x_j) (every row),
//                         losses[r] = lse[r] − x_t;  t < 0: ignored, loss 0;  t >= cols: NaN.
// cross_entropy_backward: dlogits[r, j] = s · exp(x_j − lse[r]) − (j == t ? s : 0),
//                         s = (*dloss) · scale, and a zero row where t < 0 (NaN where
//                         t >= cols). dloss points to ONE fp32 value on the device, the
//                         upstream gradient of the (mean) loss, which the host has not seen;
//                         scale is the host's 1 / (number of counted rows). dlogits may be
//                         logits itself (each element is read and written by one thread).
// The mean loss is then sum_to_scalar(losses, scale = 1 / count) (reduce.cu).
// CPU counterpart: src/tensor/cpu/cross_entropy.rs (same formulas and the same order of the
// backward's operations; the CPU says "ignored" with an ignore index and asserts t < cols).
// Two kernels rather than one fused pass that overwrites the logits: the logits stay for the
// backward pass, as the tensor engine's tape needs.
// Idea: forward: one block per row; each thread keeps an online (max, Σ exp(x − max)) over its
// columns, merged across the warp with shuffles and across warps through shared memory, in a
// fixed order (deterministic). Backward: one block per row, threads along the columns.
// Launch: grid = min(rows, 32 * SMs) (grid-stride over rows), block 256 (a multiple of 32).
#include "common.cuh"

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif

// (m, s) pairs: s = Σ exp(x − m) over the values seen. ce_merge combines two of them.
__device__ __forceinline__ void ce_merge(float& m, float& s, float m2, float s2) {
    const float mn = fmaxf(m, m2);
    const float a = m == -INFINITY ? 0.0f : s * expf(m - mn);
    const float b = m2 == -INFINITY ? 0.0f : s2 * expf(m2 - mn);
    m = mn;
    s = a + b;
}

__device__ __forceinline__ void ce_add(float& m, float& s, float x) {
    if (x > m) {
        s = s * expf(m - x) + 1.0f;  // exp(-inf) = 0 on the first value
        m = x;
    } else {
        s += expf(x - m);
    }
}

__device__ __forceinline__ void ce_warp_merge(float& m, float& s) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, off);
        const float s2 = __shfl_xor_sync(0xffffffffu, s, off);
        ce_merge(m, s, m2, s2);
    }
}

extern "C" __global__ void cross_entropy_forward(float* losses, float* lse, const floatX* logits,
                                                 const int* targets, size_t rows, int cols) {
    __shared__ float wm[32], ws[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const floatX* x = logits + r * cols;
        float m = -INFINITY, s = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) ce_add(m, s, to_float(x[j]));
        ce_warp_merge(m, s);
        __syncthreads();  // the previous row's readers of wm/ws are done
        if (lane == 0) wm[warp] = m, ws[warp] = s;
        __syncthreads();
        m = lane < warps ? wm[lane] : -INFINITY;
        s = lane < warps ? ws[lane] : 0.0f;
        ce_warp_merge(m, s);
        if (threadIdx.x == 0) {
            const float l = m + logf(s);
            const int t = targets[r];
            lse[r] = l;
            losses[r] = t < 0 ? 0.0f : t >= cols ? NAN : l - to_float(x[t]);
        }
    }
}

extern "C" __global__ void cross_entropy_backward(floatX* dlogits, const floatX* logits,
                                                  const float* lse, const int* targets,
                                                  const float* dloss, float scale, size_t rows,
                                                  int cols) {
    const float s = *dloss * scale;
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int t = targets[r];
        const float l = lse[r];
        const floatX* x = logits + r * cols;
        floatX* d = dlogits + r * cols;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            float v;
            if (t < 0) v = 0.0f;
            else if (t >= cols) v = NAN;
            else v = s * expf(to_float(x[j]) - l) - (j == t ? s : 0.0f);
            d[j] = from_float<floatX>(v);
        }
    }
}
