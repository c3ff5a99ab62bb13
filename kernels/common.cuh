// common.cuh: what every kernel file shares.
//
// - floatX: the storage type of activations, weights and gradients. The host compiles each file
//   twice: plain (floatX = float, the fp32 mode that must match the CPU) and with
//   -DPRETRAIN_BF16 (floatX = __nv_bfloat16, mixed precision). Arithmetic is always in float:
//   load with to_float(), store with from_float().
// - warp_sum / warp_max: a reduction across the 32 threads of a warp with shuffles, no shared
//   memory. block_sum: the same across a whole block (one shared slot per warp).
// - ceil_div, and the index type: sizes fit in int, but products of two sizes may not, so
//   offsets are computed in size_t.
#pragma once
#include <cuda_bf16.h>

#ifdef PRETRAIN_BF16
typedef __nv_bfloat16 floatX;
#else
typedef float floatX;
#endif

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

__host__ __device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Sum of `v` over every thread of the block, returned to all of them. blockDim.x must be a
// multiple of 32 (at most 1024). Starts and ends with a barrier, so it can be called in a loop.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float partial[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < warps ? partial[lane] : 0.0f;
    return warp_sum(v);
}
