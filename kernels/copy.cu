// copy.cu: copies and adds between two strided views of one shape.
//
// strided_copy:  out[off0(i)] = in[off1(i)]            for every index i of the shape
// strided_add:   out[off0(i)] = out[off0(i)] + in[off1(i)]   (fp32 sum, rounded once)
// where off_k(i) is the offset of index i in operand k (see strided.cuh: operand 0 = out,
// operand 1 = in; stride 0 = broadcast). strided_copy makes a view contiguous (`contiguous()`),
// writes a tensor into a slice of a larger one (`cat`), and materialises an `expand`;
// strided_add accumulates a gradient into a strided window (the backward of `narrow`/slicing).
// The elements of `out` that the shape covers must be distinct (no stride 0 in operand 0):
// every element is written by exactly one thread, so the result is deterministic. `out` and
// `in` must not overlap (except as the very same elements, for strided_add's in == out).
// Idea: one thread per element in a grid-stride loop; the host merges axes that are contiguous
// in both operands first, so a contiguous copy is a 1-d loop with unit strides.
// Launch: grid = min(ceil(n / 256), 32 * SMs), block = 256.
// CPU counterparts: `map1` (copy) and `add_assign_strided` in src/tensor/cpu/elementwise.rs.
#include "strided.cuh"

extern "C" __global__ void strided_copy(floatX* out, const floatX* in, const Strided s,
                                        size_t n) {
    for (size_t i = thread_index(); i < n; i += grid_threads()) {
        size_t off[2];
        strided_offsets(s, i, off);
        out[off[0]] = in[off[1]];
    }
}

extern "C" __global__ void strided_add(floatX* out, const floatX* in, const Strided s, size_t n) {
    for (size_t i = thread_index(); i < n; i += grid_threads()) {
        size_t off[2];
        strided_offsets(s, i, off);
        out[off[0]] = from_float<floatX>(to_float(out[off[0]]) + to_float(in[off[1]]));
    }
}
