// strided_cases.h: layouts for the emulator tests of the strided kernels (copy.cu,
// elementwise.cu): a Strided built by hand, and a reference walk over every index that keeps a
// multi-index counter (not the kernels' division-based unravelling).
#pragma once
#include <functional>
#include <vector>
#include "kernels/strided.cuh"

namespace strided {

using Dims = std::vector<long long>;

// Row-major strides of `shape`.
inline Dims contiguous(const Dims& shape) {
    Dims s(shape.size());
    long long k = 1;
    for (int d = (int)shape.size() - 1; d >= 0; d--) s[d] = k, k *= shape[d];
    return s;
}

// A Strided of up to three operands (missing ones: stride 0), as the host would pass it.
inline Strided make(const Dims& shape, const std::vector<Dims>& strides) {
    Strided s{};
    s.nd = (int)shape.size();
    for (int d = 0; d < s.nd; d++) {
        s.shape[d] = shape[d];
        for (size_t k = 0; k < strides.size(); k++) s.stride[k][d] = strides[k][d];
    }
    return s;
}

inline size_t numel(const Dims& shape) {
    size_t n = 1;
    for (long long d : shape) n *= (size_t)d;
    return n;
}

// Elements an operand with these strides spans: 1 + Σ (shape_d − 1)·stride_d (0 if empty).
inline size_t span(const Dims& shape, const Dims& stride) {
    if (numel(shape) == 0) return 0;
    size_t s = 1;
    for (size_t d = 0; d < shape.size(); d++) s += (size_t)(shape[d] - 1) * (size_t)stride[d];
    return s;
}

// Calls f(linear index, offsets of the three operands) for every index in row-major order.
inline void walk(const Dims& shape, const std::vector<Dims>& strides,
                 const std::function<void(size_t, const size_t*)>& f) {
    const size_t n = numel(shape), nd = shape.size();
    std::vector<long long> idx(nd, 0);
    for (size_t i = 0; i < n; i++) {
        size_t off[3] = {0, 0, 0};
        for (size_t k = 0; k < strides.size(); k++)
            for (size_t d = 0; d < nd; d++) off[k] += (size_t)(idx[d] * strides[k][d]);
        f(i, off);
        for (int d = (int)nd - 1; d >= 0; d--) {  // odometer
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
}

}  // namespace strided
