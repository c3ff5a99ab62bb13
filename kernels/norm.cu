// norm.cu: the squared L2 norm of a gradient tensor, added into out[0] (fp32).
//
// out[0] += Σ_i grads[i]²   — the trainer sums this over its gradient tensors on a zeroed out[0],
// then takes the square root for gradient clipping.
// Idea: each thread sums squares in fp32 over a grid-stride loop (16 bytes per load when
// aligned) and block_sum combines a block. Each block stores its sum in `norm_partials`; the
// block that finishes last (a ticket from an atomic counter, as in colsum.cuh) sums the
// partials, each thread a fixed subset and then block_sum, and adds the total to out[0]. No
// float atomics, so for a given grid the result is the same every run (deterministic).
// Launch: grid = min(ceil(n / PACK / 256), 4 * SMs, NORM_MAX_BLOCKS), block = 256 (a multiple
// of 32, for block_sum).
#include "pack.cuh"

constexpr int NORM_MAX_BLOCKS = 1024;
__device__ float norm_partials[NORM_MAX_BLOCKS];
__device__ unsigned int norm_arrivals;

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
    const float sum =
        block_sum(sum_squares<PACK>(grads, 0, packed) + sum_squares<1>(grads, packed, n));
    __shared__ bool last;
    if (threadIdx.x == 0) {
        __stcg(&norm_partials[blockIdx.x], sum);
        __threadfence();  // the partial is visible to every block before the ticket is taken
        last = atomicAdd(&norm_arrivals, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    float total = 0.0f;
    for (int b = threadIdx.x; b < (int)gridDim.x; b += blockDim.x)
        total += __ldcg(&norm_partials[b]);
    total = block_sum(total);
    if (threadIdx.x == 0) {
        *out += total;
        norm_arrivals = 0;  // ready for the next launch
    }
}
