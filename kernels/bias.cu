// bias.cu: the gradient of a bias added to every row: dbias[c] += Σ_rows dout[r, c].
//
// Idea: a column sum. A block owns 32 neighbouring columns (one per lane, so each warp reads 32
// consecutive values of a row: coalesced), its warps take every `warps`-th row, each lane sums
// in fp32, and the per-warp sums of a column are added in warp order through shared memory.
// No atomics: the result is deterministic. dbias is read, added to in fp32, rounded once.
// Launch: block 1024 (32 warps), grid ceil(OC / 32). Few blocks when OC is small (24 for
// OC = 768); splitting the rows over more blocks would need a scratch buffer.
// measured: not yet (no GPU lent so far).
#include "common.cuh"

// blockDim.x must be a multiple of 32, at most 1024.
extern "C" __global__ void bias_backward(floatX* dbias, const floatX* dout, int N, int OC) {
    __shared__ float part[32][32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    const int c = blockIdx.x * 32 + lane;
    float sum = 0.0f;
    if (c < OC)
        for (int r = warp; r < N; r += warps) sum += to_float(dout[(size_t)r * OC + c]);
    part[warp][lane] = sum;
    __syncthreads();
    if (warp == 0 && c < OC) {
        float total = 0.0f;
        for (int k = 0; k < warps; k++) total += part[k][lane];
        dbias[c] = from_float<floatX>(to_float(dbias[c]) + total);
    }
}
