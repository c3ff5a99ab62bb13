// colsum.cuh: deterministic column sums of an [N, C] matrix spread over many blocks.
//
// Bias and LayerNorm gradients are sums over all N rows for each of C columns. One block per
// 32 columns is too few blocks when C is small (24 for C = 768 on 132 SMs), so the launch is a
// grid of (C / 32 column tiles) × (row chunks): block (x, y) sums rows of chunk y for columns
// 32x .. 32x + 31, one column per lane, its warps taking every `warps`-th row. Then
// `column_totals` below:
//   1. adds the block's per-warp sums in warp order (shared memory) and stores the result for
//      chunk y in `colsum_partials` (global memory, compiled into the module);
//   2. makes that store visible to the whole GPU (__threadfence), then takes a ticket from the
//      tile's counter (atomicAdd); the block that draws the last ticket knows every other chunk
//      of its tile has stored its partial;
//   3. that last block adds the partials in chunk order 0, 1, 2, ... and returns true in the
//      lanes of its first warp, so the caller can write the totals.
// No float atomics: the result does not depend on which block finishes when (deterministic).
// The last block sets the counter back to 0 for the next launch, so launches of one module must
// not overlap (they do not: one stream). The launcher keeps chunks × C ≤ COLSUM_CAPACITY.
#pragma once
#include "common.cuh"

constexpr int COLSUM_CAPACITY = 1 << 20;  // partial sums per kind (4 MiB)
constexpr int COLSUM_KINDS = 2;           // sums per column at most (LayerNorm: weight and bias)
__device__ float colsum_partials[COLSUM_KINDS][COLSUM_CAPACITY];
__device__ unsigned int colsum_arrivals[COLSUM_CAPACITY / 32];

// The rows of chunk blockIdx.y: [*begin, *end).
__device__ __forceinline__ void chunk_rows(int N, int* begin, int* end) {
    const int per = ceil_div(N, gridDim.y);
    *begin = min(N, blockIdx.y * per);
    *end = min(N, *begin + per);
}

// Called by every thread of the block; `v[k]` is the thread's own sum of kind k for column
// blockIdx.x * 32 + lane over its rows (0 for columns ≥ C). Returns true, with v[k] replaced by
// the column's total over all N rows, in the lanes of warp 0 of the last block of the tile whose
// column is < C; false everywhere else.
template <int K> __device__ bool column_totals(float (&v)[K], int C) {
    static_assert(K <= COLSUM_KINDS, "raise COLSUM_KINDS");
    __shared__ float part[K][32][32];
    __shared__ bool last;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    const int c = blockIdx.x * 32 + lane;
#pragma unroll
    for (int k = 0; k < K; k++) part[k][warp][lane] = v[k];
    __syncthreads();
    if (warp == 0 && c < C) {
#pragma unroll
        for (int k = 0; k < K; k++) {
            float s = 0.0f;
            for (int w = 0; w < warps; w++) s += part[k][w][lane];
            __stcg(&colsum_partials[k][(size_t)blockIdx.y * C + c], s);
        }
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&colsum_arrivals[blockIdx.x], 1u) == gridDim.y - 1;
    __syncthreads();
    if (!last) return false;
    __threadfence();  // the other chunks' partials are read only after the ticket said "last"
    if (threadIdx.x == 0) colsum_arrivals[blockIdx.x] = 0;
    if (warp != 0 || c >= C) return false;
#pragma unroll
    for (int k = 0; k < K; k++) {
        float s = 0.0f;
        for (int y = 0; y < (int)gridDim.y; y++)
            s += __ldcg(&colsum_partials[k][(size_t)y * C + c]);
        v[k] = s;
    }
    return true;
}
