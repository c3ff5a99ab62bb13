// norm.cu: the squared L2 norm of a gradient tensor, added into out[0] (fp32).
//
// out[0] += Σ_i grads[i]²   — the trainer calls it once per parameter tensor on a zeroed out[0],
// then takes the square root for gradient clipping.
// Idea: each thread sums squares in fp32 over a grid-stride loop (16 bytes per load when
// aligned), block_sum combines a block, and one atomicAdd per block adds it to out[0]. The
// order of those atomic adds varies, so the last bits of the norm may differ between runs.
// Launch: grid = min(ceil(n / PACK / 256), 2 * SMs) (few blocks: few atomics), block = 256.
// measured: not yet (no GPU lent so far).
#include "pack.cuh"

template <int W> __device__ float sum_squares(const floatX* g, size_t begin, size_t end) {
    float sum = 0.0f;
    for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W) {
        const Vec<W> x = load_vec<W>(g + i);
#pragma unroll
        for (int k = 0; k < W; k++) sum += to_float(x.v[k]) * to_float(x.v[k]);
    }
    return sum;
}

extern "C" __global__ void grad_norm_squared(float* out, const floatX* grads, size_t n) {
    const size_t packed = packed_end(n, aligned16(grads));
    const float sum = block_sum(sum_squares<PACK>(grads, 0, packed) + sum_squares<1>(grads, packed, n));
    if (threadIdx.x == 0) atomicAdd(out, sum);
}
