// gelu.cu: GELU, tanh form (GPT-2's), forward and backward, elementwise.
//
// gelu_forward:   out[i] = ½x(1 + tanh(√(2/π)(x + 0.044715x³))),  x = inp[i]
// gelu_backward:  dinp[i] = dout[i] · gelu'(x)   (overwrites dinp; dinp may be dout itself)
//                 gelu'(x) = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)
// Same constants and formula as src/tensor/cpu/gelu.rs.
// Idea: one thread per 16 bytes (Vec<PACK>, see pack.cuh) in a grid-stride loop; arithmetic in
// fp32, one rounding on store. Memory-bound: 2 (forward) or 3 (backward) tensors through HBM.
// Launch: grid = min(ceil(n / PACK / 256), 32 * SMs), block = 256.
#include "pack.cuh"

constexpr float GELU_S = 0.7978845608028654f;  // √(2/π)
constexpr float GELU_C = 0.044715f;

__device__ __forceinline__ float gelu(float x) {
    const float t = tanhf(GELU_S * (x + GELU_C * x * x * x));
    return 0.5f * x * (1.0f + t);
}

__device__ __forceinline__ float gelu_grad(float x) {
    const float t = tanhf(GELU_S * (x + GELU_C * x * x * x));
    return 0.5f * (1.0f + t) +
           0.5f * x * (1.0f - t * t) * GELU_S * (1.0f + 3.0f * GELU_C * x * x);
}

template <int W>
__device__ void gelu_forward_range(floatX* out, const floatX* inp, size_t begin, size_t end) {
    for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W) {
        const Vec<W> x = load_vec<W>(inp + i);
        Vec<W> y;
#pragma unroll
        for (int k = 0; k < W; k++) y.v[k] = from_float<floatX>(gelu(to_float(x.v[k])));
        store_vec<W>(out + i, y);
    }
}

extern "C" __global__ void gelu_forward(floatX* out, const floatX* inp, size_t n) {
    const size_t packed = packed_end(n, aligned16(out) && aligned16(inp));
    gelu_forward_range<PACK>(out, inp, 0, packed);
    gelu_forward_range<1>(out, inp, packed, n);
}

template <int W>
__device__ void gelu_backward_range(floatX* dinp, const floatX* inp, const floatX* dout,
                                    size_t begin, size_t end) {
    for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W) {
        const Vec<W> x = load_vec<W>(inp + i), g = load_vec<W>(dout + i);
        Vec<W> d;
#pragma unroll
        for (int k = 0; k < W; k++)
            d.v[k] = from_float<floatX>(to_float(g.v[k]) * gelu_grad(to_float(x.v[k])));
        store_vec<W>(dinp + i, d);
    }
}

extern "C" __global__ void gelu_backward(floatX* dinp, const floatX* inp, const floatX* dout,
                                         size_t n) {
    const size_t packed = packed_end(n, aligned16(dinp) && aligned16(inp) && aligned16(dout));
    gelu_backward_range<PACK>(dinp, inp, dout, 0, packed);
    gelu_backward_range<1>(dinp, inp, dout, packed, n);
}
