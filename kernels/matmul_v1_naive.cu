// matmul_v1_naive.cu: C[m,n] = (accumulate ? C : 0) + op(A)·op(B) (+ bias[n]), the textbook way.
//
// op(A) is [m,k]: A stored [m,k], or [k,m] when ta. op(B) is [k,n]: B stored [k,n], or [n,k]
// when tb. Every matrix is row-major and contiguous; bias may be null. Storage is floatX, the
// sum is always fp32 (one rounding, at the store).
//
// Idea of this version: one thread per output element, a plain dot product over k read straight
// from global memory. Each input element is read from DRAM/L2 once per output that uses it (m or
// n times over), so this is bound by memory traffic, far below the arithmetic peak.
// Adjacent threads of a warp take adjacent columns j: their C stores and (when !tb) their B loads
// are coalesced; the A element they share is one broadcast load.
//
// Launch: block = 256 threads seen as 8 rows x 32 columns of C; grid = (ceil(m/8), ceil(n/32)).
//
// Also here: bias_broadcast, which the cuBLAS path uses to put the bias into C before calling
// cuBLAS with beta = 1 (cuBLAS has no bias of its own in plain GEMM).
#include "common.cuh"

extern "C" __global__ void matmul_v1(floatX* c, const floatX* a, const floatX* b,
                                     const floatX* bias, int m, int k, int n, int ta, int tb,
                                     int accumulate) {
    const int i = blockIdx.x * 8 + threadIdx.x / 32;   // row of C
    const int j = blockIdx.y * 32 + threadIdx.x % 32;  // column of C
    if (i >= m || j >= n) return;
    float sum = 0.0f;
    for (int p = 0; p < k; p++) {
        // op(A)[i,p] and op(B)[p,j], whichever way each is stored.
        float x = to_float(ta ? a[(size_t)p * m + i] : a[(size_t)i * k + p]);
        float y = to_float(tb ? b[(size_t)j * k + p] : b[(size_t)p * n + j]);
        sum += x * y;
    }
    if (bias) sum += to_float(bias[j]);
    size_t at = (size_t)i * n + j;
    // Read C only when accumulating: a non-accumulating call must not depend on what C held.
    if (accumulate) sum += to_float(c[at]);
    c[at] = from_float<floatX>(sum);
}

// c[i,j] = (accumulate ? c[i,j] : 0) + bias[j] for an [m,n] matrix. Grid-stride over m*n.
// Launch: block = 256, grid = enough blocks to cover m*n (capped; the loop does the rest).
extern "C" __global__ void bias_broadcast(floatX* c, const floatX* bias, int m, int n,
                                          int accumulate) {
    const size_t total = (size_t)m * n;
    for (size_t at = blockIdx.x * (size_t)blockDim.x + threadIdx.x; at < total;
         at += (size_t)gridDim.x * blockDim.x) {
        float v = to_float(bias[at % n]);
        if (accumulate) v += to_float(c[at]);
        c[at] = from_float<floatX>(v);
    }
}
