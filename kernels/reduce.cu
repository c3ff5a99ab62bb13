// reduce.cu: sums and maxima over one axis, the gradient of the max, and a sum to one scalar.
//
// A contiguous tensor reduced over axis d is viewed as [outer, n, inner] (n = size of axis d):
// sum_axis:           out[o, i] = Σ_j x[o, j, i]           (fp32 sum in order j = 0, 1, ...)
// sum_rows_warp/_block (inner == 1): out[o] = Σ_j x[o, j]   (fp32, fixed tree order)
// sum_columns         (outer == 1):  out[i] = Σ_j x[j, i]   (fp32, deterministic multi-block)
// max_axis:           out[o, i] = max_j x[o, j, i];  max_rows (inner == 1) the same per row
// max_axis_backward:  dx[o, j, i] = g[o, i] at the FIRST j with x[o, j, i] == y[o, i], else 0
// sum_to_scalar:      out[0] = scale · Σ_k in[k]   (fp32 in and out: the mean loss from the
//                     per-row losses, or a total from per-tensor partial sums such as ‖g‖²)
// CPU counterparts: src/tensor/cpu/reduce.rs (sum_axis, max_axis, max_axis_backward; NaN-free
// inputs assumed for the max, as there).
// Idea: no float atomics anywhere, so every result is the same bits run to run.
// - sum_axis / max_axis / max_axis_backward: one thread per output lane (o, i) walks j in order;
//   neighbouring threads read neighbouring i, so the loads coalesce when inner >= 32.
// - inner == 1 (a reduction along rows): one warp per row (lanes stride the row, then a
//   shuffle tree), or one block per row for few long rows (then block_sum).
// - outer == 1 with many rows (a bias gradient): the column sums of colsum.cuh, row chunks
//   summed by many blocks and combined in chunk order by the last block.
// - sum_to_scalar: one block; each thread sums a fixed stride of the input, then block_sum.
//   Meant for modest n (rows of a batch, tensors of a model); grad_norm_squared (norm.cu) is the
//   many-block sum of squares over a whole gradient.
// Launch: sum_axis, max_axis, max_axis_backward: block 256, grid over outer·inner;
// *_warp, max_rows: block 256 (8 rows), grid over rows / 8; sum_rows_block: block 256, grid over
// rows; sum_columns: block 1024, grid (ceil(inner / 32), row chunks); sum_to_scalar: 1 × 1024.
#include "colsum.cuh"
#include "pack.cuh"

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

extern "C" __global__ void sum_axis(floatX* out, const floatX* in, size_t outer, size_t n,
                                    size_t inner) {
    for (size_t lane = thread_index(); lane < outer * inner; lane += grid_threads()) {
        const size_t o = lane / inner, i = lane % inner;
        const floatX* x = in + o * n * inner + i;
        float sum = 0.0f;
        for (size_t j = 0; j < n; j++) sum += to_float(x[j * inner]);
        out[lane] = from_float<floatX>(sum);
    }
}

// One warp per row; blockDim.x a multiple of 32.
extern "C" __global__ void sum_rows_warp(floatX* out, const floatX* in, size_t rows, size_t n) {
    const size_t warps = grid_threads() / 32;
    const int lane = threadIdx.x % 32;
    for (size_t r = thread_index() / 32; r < rows; r += warps) {  // the same for the whole warp
        const floatX* x = in + r * n;
        float sum = 0.0f;
        for (size_t j = lane; j < n; j += 32) sum += to_float(x[j]);
        sum = warp_sum(sum);
        if (lane == 0) out[r] = from_float<floatX>(sum);
    }
}

// One block per row; blockDim.x a multiple of 32.
extern "C" __global__ void sum_rows_block(floatX* out, const floatX* in, size_t rows, size_t n) {
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {  // the same for the whole block
        const floatX* x = in + r * n;
        float sum = 0.0f;
        for (size_t j = threadIdx.x; j < n; j += blockDim.x) sum += to_float(x[j]);
        sum = block_sum(sum);
        if (threadIdx.x == 0) out[r] = from_float<floatX>(sum);
    }
}

// Column sums of an [N, C] matrix (out overwritten). Grid (ceil(C / 32), row chunks), block 1024.
extern "C" __global__ void sum_columns(floatX* out, const floatX* in, int N, int C) {
    const int c = blockIdx.x * 32 + threadIdx.x % 32, warps = blockDim.x / 32;
    int begin, end;
    chunk_rows(N, &begin, &end);
    float sum[1] = {0.0f};
    if (c < C)
        for (int r = begin + threadIdx.x / 32; r < end; r += warps)
            sum[0] += to_float(in[(size_t)r * C + c]);
    if (column_totals(sum, C)) out[c] = from_float<floatX>(sum[0]);
}

extern "C" __global__ void max_axis(floatX* out, const floatX* in, size_t outer, size_t n,
                                    size_t inner) {
    for (size_t lane = thread_index(); lane < outer * inner; lane += grid_threads()) {
        const size_t o = lane / inner, i = lane % inner;
        const floatX* x = in + o * n * inner + i;
        float m = to_float(x[0]);
        for (size_t j = 1; j < n; j++) {
            const float v = to_float(x[j * inner]);
            if (v > m) m = v;
        }
        out[lane] = from_float<floatX>(m);
    }
}

// One warp per row (inner == 1); blockDim.x a multiple of 32.
extern "C" __global__ void max_rows(floatX* out, const floatX* in, size_t rows, size_t n) {
    const size_t warps = grid_threads() / 32;
    const int lane = threadIdx.x % 32;
    for (size_t r = thread_index() / 32; r < rows; r += warps) {
        const floatX* x = in + r * n;
        float m = -INFINITY;
        for (size_t j = lane; j < n; j += 32) m = fmaxf(m, to_float(x[j]));
        m = warp_max(m);
        if (lane == 0) out[r] = from_float<floatX>(m);
    }
}

// dx overwritten, every element of it.
extern "C" __global__ void max_axis_backward(floatX* dx, const floatX* x, const floatX* y,
                                             const floatX* g, size_t outer, size_t n,
                                             size_t inner) {
    const floatX zero = from_float<floatX>(0.0f);
    for (size_t lane = thread_index(); lane < outer * inner; lane += grid_threads()) {
        const size_t o = lane / inner, i = lane % inner, base = o * n * inner + i;
        const float m = to_float(y[lane]);
        bool found = false;
        for (size_t j = 0; j < n; j++) {
            const bool first = !found && to_float(x[base + j * inner]) == m;
            dx[base + j * inner] = first ? g[lane] : zero;
            found = found || first;
        }
    }
}

// One block (any multiple of 32 threads up to 1024); out[0] overwritten.
extern "C" __global__ void sum_to_scalar(float* out, const float* in, size_t n, float scale) {
    float sum = 0.0f;
    for (size_t k = threadIdx.x; k < n; k += blockDim.x) sum += in[k];
    sum = block_sum(sum);
    if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = sum * scale;
}
