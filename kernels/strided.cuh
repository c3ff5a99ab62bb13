// strided.cuh: up to three strided operands of one shape, passed to a kernel as ONE by-value
// argument.
//
// What: a tensor view is (offset, shape, strides); an element-wise kernel over a shape of nd
// axes walks every linear index i in row-major order and needs, for each operand k, the offset
// Σ_d idx_d · stride[k][d] where idx is i unravelled over the shape. Operand 0 is the output,
// 1 the first input, 2 the second (unused operands have stride 0 everywhere). A stride of 0 on an
// axis broadcasts that operand along it. The pointers handed to the kernel already point at
// each view's first element, so no offsets travel here.
// Idea: the whole layout is a 264-byte struct passed by value (kernel parameters live in
// constant memory, read at the same address by every thread: a broadcast, no global loads).
// The host (src/tensor/cuda/strided.rs, `Strided::new`) drops size-1 axes and merges axes that
// are contiguous in every operand, so most calls arrive with nd <= 2 and the unravelling costs
// one or two divisions per element.
// The host-side twin is `#[repr(C)] struct Strided` in src/tensor/cuda/strided.rs: same field
// order, same sizes (the emulator checks sizeof on every launch). The CPU counterpart of the
// index arithmetic is `View` / `row_offset` in src/tensor/cpu/elementwise.rs.
#pragma once
#include "pack.cuh"  // thread_index(), grid_threads()

constexpr int STRIDED_MAX_DIMS = 8;

struct Strided {
    int nd;                                      // axes in use, 0..8 (0: one element)
    long long shape[STRIDED_MAX_DIMS];           // sizes of axes 0..nd-1 (row-major order)
    long long stride[3][STRIDED_MAX_DIMS];       // strides in elements: [operand][axis]
};
static_assert(sizeof(Strided) == 264, "Strided must match the Rust struct (264 bytes)");

// Offsets (in elements) of linear index i in operands 0..K-1.
template <int K>
__device__ __forceinline__ void strided_offsets(const Strided& s, size_t i, size_t (&off)[K]) {
#pragma unroll
    for (int k = 0; k < K; k++) off[k] = 0;
#pragma unroll
    for (int d = STRIDED_MAX_DIMS - 1; d >= 0; d--) {
        if (d >= s.nd) continue;
        const size_t n = (size_t)s.shape[d], c = i % n;
        i /= n;
#pragma unroll
        for (int k = 0; k < K; k++) off[k] += c * (size_t)s.stride[k][d];
    }
}
