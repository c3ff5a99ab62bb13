// classifier.cu: softmax + cross-entropy + its gradient, fused, in place over the logits.
//
// What: for each row r of logits [N, VP] (V real classes, VP - V padding columns) with
//   target t = targets[r]:
//     lse = log Σ_{j<V} exp(x_j),  losses[r] = lse − x_t,
//     x_j ← (exp(x_j − lse) − [j == t]) · dloss  for j < V,  x_j ← 0 for V <= j < VP.
//   t < 0 means "ignored": losses[r] = 0 and the whole row of gradients is 0. A target >= V is a
//   bug upstream: its loss is NaN (so it shows) and its gradients 0. dloss is the host's
//   1/(number of counted targets), so Σ losses · dloss is the mean loss. The CPU twin is
//   src/tensor/cpu/cross_entropy.rs (which says "ignored" with a target equal to an ignore index).
//
// Idea: the probabilities are never stored. Pass 1 reads the row once, each thread keeping an
//   online (max, sum of exp) over its columns; the pairs merge across the warp with shuffles and
//   across warps through shared memory. Pass 2 reads the row again (from L2: a row is at most
//   a few hundred KiB) and overwrites it with the gradient. When the row starts on a 16-byte
//   boundary and VP is a multiple of 16 bytes, both passes move 16 bytes per load/store.
//
// Launch: grid N (one block per row), block 512 (any multiple of 32 up to 1024).
// Measured: not yet (no GPU lent so far).
#include "common.cuh"

// NVRTC has no <math.h> macros.
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif

#define PACK (16 / (int)sizeof(floatX))  // elements in 16 bytes: 4 fp32 or 8 bf16

struct __align__(16) Pack {
    floatX x[PACK];
};

// (m, s) pairs: s = Σ exp(x − m) over the values seen. merge combines two of them.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
    const float mn = fmaxf(m, m2);
    const float a = m == -INFINITY ? 0.0f : s * expf(m - mn);
    const float b = m2 == -INFINITY ? 0.0f : s2 * expf(m2 - mn);
    m = mn;
    s = a + b;
}

__device__ __forceinline__ void add_value(float& m, float& s, float x) {
    if (x > m) {
        s = s * expf(m - x) + 1.0f;  // exp(-inf) = 0 on the first value
        m = x;
    } else {
        s += expf(x - m);
    }
}

// The gradient of column j holding logit x.
__device__ __forceinline__ float grad(float x, int j, int V, int target, float lse, float dloss) {
    if (j >= V) return 0.0f;
    return (expf(x - lse) - (j == target ? 1.0f : 0.0f)) * dloss;
}

extern "C" __global__ void classifier_forward_backward(floatX* logits, float* losses,
                                                       const int* targets, int N, int V, int VP,
                                                       float dloss) {
    __shared__ float wm[32], ws[32];
    const int r = blockIdx.x;
    if (r >= N) return;
    floatX* row = logits + (size_t)r * VP;
    const int target = targets[r];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, warps = blockDim.x / 32;
    if (target < 0 || target >= V) {
        // Ignored (or out of range): no loss, no gradient.
        const bool vec = VP % PACK == 0 && (size_t)row % 16 == 0;
        if (vec) {
            Pack zero;
#pragma unroll
            for (int k = 0; k < PACK; k++) zero.x[k] = from_float<floatX>(0.0f);
            for (int p = tid; p < VP / PACK; p += blockDim.x) ((Pack*)row)[p] = zero;
        } else {
            for (int j = tid; j < VP; j += blockDim.x) row[j] = from_float<floatX>(0.0f);
        }
        if (tid == 0) losses[r] = target < 0 ? 0.0f : NAN;
        return;
    }
    const float xt = to_float(row[target]);  // read before any thread overwrites the row
    const bool vec = VP % PACK == 0 && (size_t)row % 16 == 0;

    // Pass 1: online max and sum of exp over columns < V.
    float m = -INFINITY, s = 0.0f;
    if (vec) {
        for (int p = tid; p * PACK < V; p += blockDim.x) {
            const Pack v = ((const Pack*)row)[p];
#pragma unroll
            for (int k = 0; k < PACK; k++)
                if (p * PACK + k < V) add_value(m, s, to_float(v.x[k]));
        }
    } else {
        for (int j = tid; j < V; j += blockDim.x) add_value(m, s, to_float(row[j]));
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, off);
        const float s2 = __shfl_xor_sync(0xffffffffu, s, off);
        merge(m, s, m2, s2);
    }
    if (lane == 0) {
        wm[warp] = m;
        ws[warp] = s;
    }
    __syncthreads();  // also orders every read of row[target] before pass 2's writes
    m = lane < warps ? wm[lane] : -INFINITY;
    s = lane < warps ? ws[lane] : 0.0f;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, off);
        const float s2 = __shfl_xor_sync(0xffffffffu, s, off);
        merge(m, s, m2, s2);
    }
    const float lse = m + logf(s);
    if (tid == 0) losses[r] = lse - xt;

    // Pass 2: the gradient, in place; zeros in the padding.
    if (vec) {
        for (int p = tid; p < VP / PACK; p += blockDim.x) {
            Pack v = ((Pack*)row)[p];
#pragma unroll
            for (int k = 0; k < PACK; k++) {
                const int j = p * PACK + k;
                v.x[k] = from_float<floatX>(grad(to_float(v.x[k]), j, V, target, lse, dloss));
            }
            ((Pack*)row)[p] = v;
        }
    } else {
        for (int j = tid; j < VP; j += blockDim.x) {
            row[j] = from_float<floatX>(grad(to_float(row[j]), j, V, target, lse, dloss));
        }
    }
}
