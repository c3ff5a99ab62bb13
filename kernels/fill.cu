// fill.cu: every element of a buffer set to one value (`Tensor::full`, `zeros`, `ones`).
//
// fill:  dst[i] = value   (value given in fp32, rounded once to floatX)
// CPU counterpart: `full` in src/tensor/backend/cpu.rs (a Vec filled with the value).
// Idea: one thread per 16 bytes (Vec<PACK>, see pack.cuh) in a grid-stride loop: each thread
// builds its pack of PACK copies once and stores it with one instruction per step; an unaligned
// buffer takes the same loop one element at a time.
// Launch: grid = min(ceil(n / PACK / 256), 32 * SMs), block = 256.
#include "pack.cuh"

template <int W> __device__ void fill_range(floatX* dst, float value, size_t begin, size_t end) {
    Vec<W> d;
#pragma unroll
    for (int k = 0; k < W; k++) d.v[k] = from_float<floatX>(value);
    for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W)
        store_vec<W>(dst + i, d);
}

extern "C" __global__ void fill(floatX* dst, float value, size_t n) {
    const size_t packed = packed_end(n, aligned16(dst));
    fill_range<PACK>(dst, value, 0, packed);
    fill_range<1>(dst, value, packed, n);
}
