// embedding.cu: rows of a [vocab, dim] table gathered by id, and the deterministic scatter-add
// of their gradients.
//
// embedding_forward:   out[r, :] = table[ids[r], :]   (an id outside 0..vocab writes a row of
//                      NaN, so a bad id shows in the loss)
// embedding_backward:  dtable[id, :] += Σ_{r : ids[r] = id} g[r, :]   (fp32 sums, rounded once)
//                      for the ids that occur; other rows are untouched (the host zeroes
//                      dtable first for a fresh gradient, or adds into one it already has).
// CPU counterpart: src/tensor/cpu/embedding.rs (embedding, embedding_backward).
// Idea: the backward must not add rows with float atomics (their order, and so the rounding,
// would change run to run). The host groups the positions by id with a counting sort
// (`EmbeddingBuckets` in src/tensor/cuda/embedding.rs): `uniq` lists the distinct ids, and the
// positions of uniq[u] are positions[offsets[u] .. offsets[u + 1]], in increasing order. Then
// one block owns one distinct id: its threads take the columns, and each thread adds its
// column of the gradient rows in that fixed order. Every element of dtable has one writer.
// Launch: forward: block 256, grid-stride over rows·dim (grid = min(ceil(rows·dim / 256),
// 32 * SMs)); backward: grid = min(distinct ids, 32 * SMs) (grid-stride over them), block =
// dim rounded up to a multiple of 32, at most 256 (grid-stride over the columns).
#include "common.cuh"

#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif

extern "C" __global__ void embedding_forward(floatX* out, const floatX* table, const int* ids,
                                             size_t rows, int dim, int vocab) {
    const floatX nan = from_float<floatX>(NAN);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows * dim;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / dim;
        const int c = (int)(i % dim), id = ids[r];
        out[i] = id < 0 || id >= vocab ? nan : table[(size_t)id * dim + c];
    }
}

extern "C" __global__ void embedding_backward(floatX* dtable, const floatX* g, const int* uniq,
                                              const int* offsets, const int* positions,
                                              int distinct, int dim) {
    for (int u = blockIdx.x; u < distinct; u += gridDim.x) {
        const int begin = offsets[u], end = offsets[u + 1];
        floatX* row = dtable + (size_t)uniq[u] * dim;
        for (int c = threadIdx.x; c < dim; c += blockDim.x) {
            float sum = 0.0f;
            for (int k = begin; k < end; k++) sum += to_float(g[(size_t)positions[k] * dim + c]);
            row[c] = from_float<floatX>(to_float(row[c]) + sum);
        }
    }
}
