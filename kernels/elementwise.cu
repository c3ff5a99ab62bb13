// elementwise.cu: the generic element-wise ops of the tensor engine.
//
// unary_forward:   out[i] = f(x[i])   for op (an int code, UNARY_* below) with one parameter p:
//                  neg −x, exp eˣ, log ln x, sqrt √x, tanh, relu max(x, 0) (x > 0 ? x : 0),
//                  powf xᵖ, add_scalar x + p, mul_scalar x·p.        (GELU: gelu.cu)
// unary_backward:  dx[i] = dL/dx from x, y = f(x) and g = dL/dy:
//                  neg −g, exp g·y, log g/x, sqrt (g·½)/y, tanh g·(1 − y²), relu x > 0 ? g : 0,
//                  powf (g·p)·x^(p−1), add_scalar g, mul_scalar g·p.
// binary:          out[off0] = a[off1] op b[off2], op = add/sub/mul/div (BINARY_* below), with
//                  the layouts of out, a, b in one Strided (stride 0 on broadcast axes).
// masked_fill:     out[off0] = mask[off2] != 0 ? value : x[off1]       (mask broadcasts)
// causal_fill:     over the last two axes [t, s] of a contiguous tensor: element (.., i, j) is
//                  `value` when j > i + s − t (a key after the query), else in[..]. May run in
//                  place (out == in).
// All arithmetic in fp32, one rounding on store; same formulas and operation order as the CPU:
// `unary`, `unary_backward`, `binary`, `masked_fill`, `causal_fill` in src/tensor/backend.rs
// and src/tensor/cpu/elementwise.rs (powf's p − 1 is taken in fp32 here, in f64 there).
// Idea: one thread per element in grid-stride loops; the contiguous kernels move 16 bytes per
// thread and step when their pointers are aligned (Vec<PACK>, see pack.cuh); the op code is the
// same for every thread, so the switch costs no divergence. The strided kernels unravel the
// index with strided.cuh (axes merged on the host, usually nd <= 2).
// Launch: block 256; grid = min(ceil(n / PACK / 256), 32 * SMs) (contiguous) or
// min(ceil(n / 256), 32 * SMs) (strided, causal_fill).
#include "strided.cuh"

// Op codes: `UnaryOp::code` and `BinaryOp::code` in src/tensor/cuda/elementwise.rs.
constexpr int UNARY_NEG = 0, UNARY_EXP = 1, UNARY_LOG = 2, UNARY_SQRT = 3, UNARY_TANH = 4,
              UNARY_RELU = 5, UNARY_POWF = 6, UNARY_ADD_SCALAR = 7, UNARY_MUL_SCALAR = 8;
constexpr int BINARY_ADD = 0, BINARY_SUB = 1, BINARY_MUL = 2, BINARY_DIV = 3;

#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif

__device__ __forceinline__ float apply_unary(int op, float x, float p) {
    switch (op) {
        case UNARY_NEG: return -x;
        case UNARY_EXP: return expf(x);
        case UNARY_LOG: return logf(x);
        case UNARY_SQRT: return sqrtf(x);
        case UNARY_TANH: return tanhf(x);
        case UNARY_RELU: return x > 0.0f ? x : 0.0f;
        case UNARY_POWF: return powf(x, p);
        case UNARY_ADD_SCALAR: return x + p;
        case UNARY_MUL_SCALAR: return x * p;
        default: return NAN;  // an unknown code shows as NaN
    }
}

__device__ __forceinline__ float unary_grad(int op, float x, float y, float g, float p) {
    switch (op) {
        case UNARY_NEG: return -g;
        case UNARY_EXP: return g * y;
        case UNARY_LOG: return g / x;
        case UNARY_SQRT: return g * 0.5f / y;
        case UNARY_TANH: return g * (1.0f - y * y);
        case UNARY_RELU: return x > 0.0f ? g : 0.0f;
        case UNARY_POWF: return g * p * powf(x, p - 1.0f);
        case UNARY_ADD_SCALAR: return g;
        case UNARY_MUL_SCALAR: return g * p;
        default: return NAN;
    }
}

__device__ __forceinline__ float apply_binary(int op, float a, float b) {
    switch (op) {
        case BINARY_ADD: return a + b;
        case BINARY_SUB: return a - b;
        case BINARY_MUL: return a * b;
        case BINARY_DIV: return a / b;
        default: return NAN;
    }
}

template <int W>
__device__ void unary_range(floatX* out, const floatX* in, int op, float p, size_t begin,
                            size_t end) {
    for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W) {
        const Vec<W> x = load_vec<W>(in + i);
        Vec<W> y;
#pragma unroll
        for (int k = 0; k < W; k++) y.v[k] = from_float<floatX>(apply_unary(op, to_float(x.v[k]), p));
        store_vec<W>(out + i, y);
    }
}

// out may be in itself.
extern "C" __global__ void unary_forward(floatX* out, const floatX* in, size_t n, int op,
                                         float p) {
    const size_t packed = packed_end(n, aligned16(out) && aligned16(in));
    unary_range<PACK>(out, in, op, p, 0, packed);
    unary_range<1>(out, in, op, p, packed, n);
}

template <int W>
__device__ void unary_backward_range(floatX* dx, const floatX* x, const floatX* y,
                                     const floatX* g, int op, float p, size_t begin, size_t end) {
    for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W) {
        const Vec<W> xv = load_vec<W>(x + i), yv = load_vec<W>(y + i), gv = load_vec<W>(g + i);
        Vec<W> d;
#pragma unroll
        for (int k = 0; k < W; k++)
            d.v[k] = from_float<floatX>(
                unary_grad(op, to_float(xv.v[k]), to_float(yv.v[k]), to_float(gv.v[k]), p));
        store_vec<W>(dx + i, d);
    }
}

// dx may be g (or x, or y) itself.
extern "C" __global__ void unary_backward(floatX* dx, const floatX* x, const floatX* y,
                                          const floatX* g, size_t n, int op, float p) {
    const size_t packed =
        packed_end(n, aligned16(dx) && aligned16(x) && aligned16(y) && aligned16(g));
    unary_backward_range<PACK>(dx, x, y, g, op, p, 0, packed);
    unary_backward_range<1>(dx, x, y, g, op, p, packed, n);
}

extern "C" __global__ void binary(floatX* out, const floatX* a, const floatX* b, const Strided s,
                                  size_t n, int op) {
    for (size_t i = thread_index(); i < n; i += grid_threads()) {
        size_t off[3];
        strided_offsets(s, i, off);
        out[off[0]] = from_float<floatX>(apply_binary(op, to_float(a[off[1]]), to_float(b[off[2]])));
    }
}

extern "C" __global__ void masked_fill(floatX* out, const floatX* x, const floatX* mask,
                                       const Strided s, size_t n, float value) {
    const floatX v = from_float<floatX>(value);
    for (size_t i = thread_index(); i < n; i += grid_threads()) {
        size_t off[3];
        strided_offsets(s, i, off);
        out[off[0]] = to_float(mask[off[2]]) != 0.0f ? v : x[off[1]];
    }
}

// n = every element of the contiguous [.., t, s] tensor; s >= t >= 1 (checked by the host).
extern "C" __global__ void causal_fill(floatX* out, const floatX* in, int t, int s, size_t n,
                                       float value) {
    const floatX v = from_float<floatX>(value);
    for (size_t i = thread_index(); i < n; i += grid_threads()) {
        const size_t row = i / s;
        const long long q = (long long)(row % t), key = (long long)(i % s);
        out[i] = key > q + s - t ? v : in[i];
    }
}
