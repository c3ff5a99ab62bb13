// residual.cu: elementwise arithmetic on whole buffers.
//
// residual_forward:  out[i] = a[i] + b[i]        (the residual stream: x + f(x))
// add_into:          dst[i] += src[i]            (gradients flowing into a residual)
// scale:             dst[i] *= s
// fill:              dst[i] = value
// Idea: one thread per 16 bytes (Vec<PACK>, see pack.cuh) in a grid-stride loop. Sums are taken
// in fp32 and rounded once on store, so `+=` into bf16 loses no more than one rounding.
// Launch: grid = min(ceil(n / PACK / 256), 32 * SMs), block = 256.
// measured: not yet (no GPU lent so far).
#include "pack.cuh"

template <int W>
__device__ void residual_range(floatX* out, const floatX* a, const floatX* b, size_t begin,
                               size_t end) {
    for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W) {
        const Vec<W> x = load_vec<W>(a + i), y = load_vec<W>(b + i);
        Vec<W> z;
#pragma unroll
        for (int k = 0; k < W; k++)
            z.v[k] = from_float<floatX>(to_float(x.v[k]) + to_float(y.v[k]));
        store_vec<W>(out + i, z);
    }
}

// out may be a or b itself.
extern "C" __global__ void residual_forward(floatX* out, const floatX* a, const floatX* b,
                                            size_t n) {
    const size_t packed = packed_end(n, aligned16(out) && aligned16(a) && aligned16(b));
    residual_range<PACK>(out, a, b, 0, packed);
    residual_range<1>(out, a, b, packed, n);
}

extern "C" __global__ void add_into(floatX* dst, const floatX* src, size_t n) {
    const size_t packed = packed_end(n, aligned16(dst) && aligned16(src));
    residual_range<PACK>(dst, dst, src, 0, packed);
    residual_range<1>(dst, dst, src, packed, n);
}

template <int W> __device__ void scale_range(floatX* dst, float s, size_t begin, size_t end) {
    for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W) {
        Vec<W> d = load_vec<W>(dst + i);
#pragma unroll
        for (int k = 0; k < W; k++) d.v[k] = from_float<floatX>(to_float(d.v[k]) * s);
        store_vec<W>(dst + i, d);
    }
}

extern "C" __global__ void scale(floatX* dst, float s, size_t n) {
    const size_t packed = packed_end(n, aligned16(dst));
    scale_range<PACK>(dst, s, 0, packed);
    scale_range<1>(dst, s, packed, n);
}

template <int W> __device__ void fill_range(floatX* dst, float value, size_t begin, size_t end) {
    Vec<W> d;
#pragma unroll
    for (int k = 0; k < W; k++) d.v[k] = from_float<floatX>(value);
    for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W)
        store_vec<W>(dst + i, d);
}

extern "C" __global__ void fill(floatX* dst, float value, size_t n) {
    const size_t packed = packed_end(n, aligned16(dst));
    fill_range<PACK>(dst, value, 0, packed);
    fill_range<1>(dst, value, packed, n);
}
