// layernorm.cu: LayerNorm over the last axis (C) of N rows, forward and backward.
//
// layernorm_forward:         m = mean(x), r = 1/√(var(x) + eps) (biased variance),
//                            out = (x − m)·r·weight + bias; saves m and r per row (fp32).
// layernorm_backward_dinp:   with g = dout, x̂ = (x − m)·r, ĝ = g·weight:
//                            dinp += r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))
// layernorm_backward_params: dweight += Σ_rows g·x̂,  dbias += Σ_rows g
// Same formulas and order of operations as src/tensor/cpu/layernorm.rs (mean first, then the
// mean of squared deviations: two passes, no E[x²] − m² cancellation); eps is an argument, as
// there (GPT-2 uses 1e-5).
// Idea: forward and dinp give one warp to one row: the lanes stride along the row (16 bytes
// per lane and step when C % PACK == 0 and the pointers are aligned, else one element), the
// row sums come from warp_sum, and the row is read again for each pass (from L1/L2, not HBM).
// The parameter gradients are column sums over all rows, done in a second kernel with the
// deterministic multi-block column sum of colsum.cuh (no float atomics).
// Launch: forward and dinp: block 256 (8 rows), grid ceil(N / 8); params: block 1024,
// grid (ceil(C / 32), row chunks chosen by the launcher).
#include "colsum.cuh"
#include "pack.cuh"

template <int W>
__device__ void layernorm_forward_row(floatX* out, float* mean, float* rstd, const floatX* x,
                                      const floatX* weight, const floatX* bias, int C, float eps,
                                      int lane) {
    const float inv_c = 1.0f / C;
    float sum = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        const Vec<W> v = load_vec<W>(x + c);
#pragma unroll
        for (int k = 0; k < W; k++) sum += to_float(v.v[k]);
    }
    const float m = warp_sum(sum) * inv_c;
    float sq = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        const Vec<W> v = load_vec<W>(x + c);
#pragma unroll
        for (int k = 0; k < W; k++) {
            const float d = to_float(v.v[k]) - m;
            sq += d * d;
        }
    }
    const float r = 1.0f / sqrtf(warp_sum(sq) * inv_c + eps);
    for (int c = lane * W; c < C; c += 32 * W) {
        const Vec<W> v = load_vec<W>(x + c), w = load_vec<W>(weight + c), b = load_vec<W>(bias + c);
        Vec<W> o;
#pragma unroll
        for (int k = 0; k < W; k++)
            o.v[k] = from_float<floatX>((to_float(v.v[k]) - m) * r * to_float(w.v[k]) +
                                        to_float(b.v[k]));
        store_vec<W>(out + c, o);
    }
    if (lane == 0) {
        *mean = m;
        *rstd = r;
    }
}

extern "C" __global__ void layernorm_forward(floatX* out, float* mean, float* rstd,
                                             const floatX* inp, const floatX* weight,
                                             const floatX* bias, int N, int C, float eps) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;  // the whole warp leaves together, so warp_sum stays full
    const size_t off = (size_t)row * C;
    const bool vec = C % PACK == 0 && aligned16(out) && aligned16(inp) && aligned16(weight) &&
                     aligned16(bias);
    if (vec)
        layernorm_forward_row<PACK>(out + off, mean + row, rstd + row, inp + off, weight, bias, C,
                                    eps, lane);
    else
        layernorm_forward_row<1>(out + off, mean + row, rstd + row, inp + off, weight, bias, C,
                                 eps, lane);
}

template <int W>
__device__ void layernorm_backward_row(floatX* dinp, const floatX* dout, const floatX* x,
                                       const floatX* weight, float m, float r, int C, int lane) {
    const float inv_c = 1.0f / C;
    float sum_g = 0.0f, sum_gx = 0.0f;
    for (int c = lane * W; c < C; c += 32 * W) {
        const Vec<W> g = load_vec<W>(dout + c), v = load_vec<W>(x + c), w = load_vec<W>(weight + c);
#pragma unroll
        for (int k = 0; k < W; k++) {
            const float gw = to_float(g.v[k]) * to_float(w.v[k]);
            sum_g += gw;
            sum_gx += gw * (to_float(v.v[k]) - m) * r;
        }
    }
    const float mean_g = warp_sum(sum_g) * inv_c, mean_gx = warp_sum(sum_gx) * inv_c;
    for (int c = lane * W; c < C; c += 32 * W) {
        const Vec<W> g = load_vec<W>(dout + c), v = load_vec<W>(x + c), w = load_vec<W>(weight + c);
        Vec<W> d = load_vec<W>(dinp + c);
#pragma unroll
        for (int k = 0; k < W; k++) {
            const float xhat = (to_float(v.v[k]) - m) * r;
            const float gw = to_float(g.v[k]) * to_float(w.v[k]);
            d.v[k] = from_float<floatX>(to_float(d.v[k]) + r * (gw - mean_g - xhat * mean_gx));
        }
        store_vec<W>(dinp + c, d);
    }
}

extern "C" __global__ void layernorm_backward_dinp(floatX* dinp, const floatX* dout,
                                                   const floatX* inp, const floatX* weight,
                                                   const float* mean, const float* rstd, int N,
                                                   int C) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const size_t off = (size_t)row * C;
    const bool vec = C % PACK == 0 && aligned16(dinp) && aligned16(dout) && aligned16(inp) &&
                     aligned16(weight);
    if (vec)
        layernorm_backward_row<PACK>(dinp + off, dout + off, inp + off, weight, mean[row],
                                     rstd[row], C, lane);
    else
        layernorm_backward_row<1>(dinp + off, dout + off, inp + off, weight, mean[row], rstd[row],
                                  C, lane);
}

// blockDim.x must be a multiple of 32, at most 1024. Grid: (ceil(C / 32), row chunks).
extern "C" __global__ void layernorm_backward_params(floatX* dweight, floatX* dbias,
                                                     const floatX* dout, const floatX* inp,
                                                     const float* mean, const float* rstd,
                                                     int N, int C) {
    const int c = blockIdx.x * 32 + threadIdx.x % 32, warps = blockDim.x / 32;
    int begin, end;
    chunk_rows(N, &begin, &end);
    float sum[2] = {0.0f, 0.0f};  // Σ g·x̂ (dweight), Σ g (dbias)
    if (c < C) {
        for (int r = begin + threadIdx.x / 32; r < end; r += warps) {
            const size_t i = (size_t)r * C + c;
            const float g = to_float(dout[i]);
            sum[0] += g * (to_float(inp[i]) - mean[r]) * rstd[r];
            sum[1] += g;
        }
    }
    if (column_totals(sum, C)) {
        dweight[c] = from_float<floatX>(to_float(dweight[c]) + sum[0]);
        dbias[c] = from_float<floatX>(to_float(dbias[c]) + sum[1]);
    }
}
