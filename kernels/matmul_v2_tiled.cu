// matmul_v2_tiled.cu: C[m,n] = (accumulate ? C : 0) + op(A)·op(B) (+ bias[n]), shared-memory tiles.
//
// Same contract as v1 (layouts ta/tb, floatX storage, fp32 sums, bias may be null).
//
// Idea of this version: a block of 32x32 threads computes a 32x32 tile of C. It walks k in steps
// of 32: the whole block copies a 32x32 tile of op(A) and one of op(B) into shared memory, waits
// (__syncthreads), and each thread adds 32 products from shared memory. Every element brought
// from global memory is now used 32 times instead of once, so DRAM traffic drops 32x.
// Coalescing for every layout: the copy is always done so that adjacent threads read adjacent
// addresses of the matrix *as stored*; when the operand is stored transposed, the thread writes
// its element transposed into shared memory instead. The tiles have 33 columns (one of padding)
// so that both the straight and the transposed writes, and the column reads of the product loop,
// hit 32 different banks.
// Out-of-range elements (edges of odd-sized matrices) are stored as zeros, so the product loop
// needs no checks; only the final store does.
//
// Launch: block = 1024 threads (32 x 32, thread t -> row t/32, column t%32 of the tile);
// grid = (ceil(m/32), ceil(n/32)).
#include "common.cuh"

#define TILE 32

extern "C" __global__ void __launch_bounds__(TILE * TILE)
    matmul_v2(floatX* c, const floatX* a, const floatX* b, const floatX* bias, int m, int k,
              int n, int ta, int tb, int accumulate) {
    __shared__ float as[TILE][TILE + 1];  // as[r][p] = op(A)[row0 + r, k0 + p]
    __shared__ float bs[TILE][TILE + 1];  // bs[p][s] = op(B)[k0 + p, col0 + s]
    const int ty = threadIdx.x / TILE, tx = threadIdx.x % TILE;
    const int row0 = blockIdx.x * TILE, col0 = blockIdx.y * TILE;
    float sum = 0.0f;
    for (int k0 = 0; k0 < k; k0 += TILE) {
        // op(A) tile. Stored [m,k]: tx walks k (contiguous). Stored [k,m]: tx walks m.
        if (!ta) {
            int r = row0 + ty, p = k0 + tx;
            as[ty][tx] = (r < m && p < k) ? to_float(a[(size_t)r * k + p]) : 0.0f;
        } else {
            int p = k0 + ty, r = row0 + tx;
            as[tx][ty] = (r < m && p < k) ? to_float(a[(size_t)p * m + r]) : 0.0f;
        }
        // op(B) tile. Stored [k,n]: tx walks n. Stored [n,k]: tx walks k.
        if (!tb) {
            int p = k0 + ty, s = col0 + tx;
            bs[ty][tx] = (p < k && s < n) ? to_float(b[(size_t)p * n + s]) : 0.0f;
        } else {
            int s = col0 + ty, p = k0 + tx;
            bs[tx][ty] = (p < k && s < n) ? to_float(b[(size_t)s * k + p]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int p = 0; p < TILE; p++) sum += as[ty][p] * bs[p][tx];
        __syncthreads();  // everyone is done with the tiles before they are overwritten
    }
    const int i = row0 + ty, j = col0 + tx;
    if (i >= m || j >= n) return;
    if (bias) sum += to_float(bias[j]);
    size_t at = (size_t)i * n + j;
    if (accumulate) sum += to_float(c[at]);
    c[at] = from_float<floatX>(sum);
}
