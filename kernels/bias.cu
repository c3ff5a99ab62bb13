// bias.cu: the gradient of a bias added to every row: dbias[c] += Σ_rows dout[r, c].
//
// Idea: a column sum (colsum.cuh). Block (x, y) owns columns 32x .. 32x + 31, one per lane, so
// each warp reads 32 consecutive values of a row (coalesced), and rows of chunk y, its warps
// taking every `warps`-th row. Sums are fp32; the partial sums of the chunks are added in a
// fixed order, so the result is deterministic. dbias is read, added to in fp32, rounded once.
// Launch: block 1024 (32 warps), grid (ceil(OC / 32), chunks) with chunks chosen by the
// launcher to give about two blocks per SM.
// measured: not yet (no GPU lent so far).
#include "colsum.cuh"

// blockDim.x must be a multiple of 32, at most 1024.
extern "C" __global__ void bias_backward(floatX* dbias, const floatX* dout, int N, int OC) {
    const int c = blockIdx.x * 32 + threadIdx.x % 32, warps = blockDim.x / 32;
    int begin, end;
    chunk_rows(N, &begin, &end);
    float sum[1] = {0.0f};
    if (c < OC)
        for (int r = begin + threadIdx.x / 32; r < end; r += warps)
            sum[0] += to_float(dout[(size_t)r * OC + c]);
    if (column_totals(sum, OC)) dbias[c] = from_float<floatX>(to_float(dbias[c]) + sum[0]);
}
