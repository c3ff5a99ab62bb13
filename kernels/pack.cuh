// pack.cuh: moving W consecutive floatX values with one load or store instruction.
//
// A warp whose 32 threads each load one float moves 128 bytes per load instruction (coalesced:
// every byte of the fetched sectors is used). With Vec<PACK> each thread moves 16 bytes at once
// (4 floats or 8 bf16), so one instruction moves 512 bytes: a quarter (fp32) or an eighth (bf16)
// of the instructions for the same data, and more bytes in flight per thread. A 16-byte load
// needs a 16-byte aligned address: kernels check `aligned16` on their pointers (and that row
// lengths are multiples of PACK) and otherwise take the same code with Vec<1>, one element at a
// time.
#pragma once
#include "common.cuh"

// Elements of floatX in 16 bytes: 4 (fp32) or 8 (bf16).
constexpr int PACK = 16 / sizeof(floatX);

template <int W> struct alignas(W * sizeof(floatX)) Vec {
    floatX v[W];
};

template <int W> __device__ __forceinline__ Vec<W> load_vec(const floatX* p) {
    return *reinterpret_cast<const Vec<W>*>(p);
}

template <int W> __device__ __forceinline__ void store_vec(floatX* p, const Vec<W>& x) {
    *reinterpret_cast<Vec<W>*>(p) = x;
}

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<size_t>(p) & 15) == 0;
}

// Element-wise kernels run over [0, n) in two ranges: [0, packed_end) in steps of PACK, then
// the rest one by one (all of it when the pointers are not 16-byte aligned). Each range is a
// grid-stride loop, so any grid covers any n:
//   for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W)
__device__ __forceinline__ size_t thread_index() {
    return blockIdx.x * (size_t)blockDim.x + threadIdx.x;
}
__device__ __forceinline__ size_t grid_threads() { return (size_t)gridDim.x * blockDim.x; }
__device__ __forceinline__ size_t packed_end(size_t n, bool aligned) {
    return aligned ? n / PACK * PACK : 0;
}
