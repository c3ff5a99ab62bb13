// encoder.cu: the GPT-2 input embedding, token row plus position row, forward and backward.
//
// encoder_forward:           out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:]
//                            (a token outside 0..V writes NaN, so a bad id shows in the loss)
// encoder_backward_scatter:  dwpe[t,c] += Σ_b dout[b,t,c]        (one thread per (t,c), in order
//                            of b: deterministic)
//                            scratch[tok,c] += dout[b,t,c]       (fp32 atomicAdd)
// encoder_backward_gather:   dwte[tok,c] += scratch[tok,c], and scratch[tok,c] = 0 again
// Idea: many positions share a token, so their gradients meet in the same row of dwte. They are
// summed with fp32 atomics into `scratch` ([V, C] fp32, all zero between calls), not into dwte:
// atomics on bf16 would round at every add. The gather visits every (position, c) again; for a
// token seen at several positions, atomicExch hands the whole sum to exactly one of them and
// leaves 0 for the others, which then skip, so each entry of dwte is rounded once, and scratch
// is zero again without a separate pass over all V·C entries. The order of the atomic adds
// varies from run to run, so dwte is not bitwise reproducible (fp32 rounding level only).
// Launch: grid-stride loops, block 256. Forward: one thread per 16 bytes of out (Vec<PACK>)
// when C % PACK == 0 and the tables are aligned; scatter: T·C threads; gather: B·T·C threads.
// measured: not yet (no GPU lent so far).
#include "pack.cuh"

template <int W>
__device__ void encoder_forward_range(floatX* out, const int* tokens, const floatX* wte,
                                      const floatX* wpe, int T, int C, int V, size_t begin,
                                      size_t end) {
    for (size_t i = begin + thread_index() * W; i < end; i += grid_threads() * W) {
        const size_t bt = i / C;
        const int c = (int)(i % C), t = (int)(bt % T), tok = tokens[bt];
        Vec<W> o;
        if (tok < 0 || tok >= V) {
#pragma unroll
            for (int k = 0; k < W; k++) o.v[k] = from_float<floatX>(nanf(""));
        } else {
            const Vec<W> e = load_vec<W>(wte + (size_t)tok * C + c);
            const Vec<W> p = load_vec<W>(wpe + (size_t)t * C + c);
#pragma unroll
            for (int k = 0; k < W; k++)
                o.v[k] = from_float<floatX>(to_float(e.v[k]) + to_float(p.v[k]));
        }
        store_vec<W>(out + i, o);
    }
}

extern "C" __global__ void encoder_forward(floatX* out, const int* tokens, const floatX* wte,
                                           const floatX* wpe, int B, int T, int C, int V) {
    const size_t n = (size_t)B * T * C;
    // With C % PACK == 0 a pack never crosses the end of a row.
    const bool aligned = C % PACK == 0 && aligned16(out) && aligned16(wte) && aligned16(wpe);
    const size_t packed = packed_end(n, aligned);
    encoder_forward_range<PACK>(out, tokens, wte, wpe, T, C, V, 0, packed);
    encoder_forward_range<1>(out, tokens, wte, wpe, T, C, V, packed, n);
}

extern "C" __global__ void encoder_backward_scatter(floatX* dwpe, float* scratch,
                                                    const floatX* dout, const int* tokens, int B,
                                                    int T, int C, int V) {
    for (size_t i = thread_index(); i < (size_t)T * C; i += grid_threads()) {
        const int t = (int)(i / C), c = (int)(i % C);
        float sum = 0.0f;
        for (int b = 0; b < B; b++) {
            const size_t bt = (size_t)b * T + t;
            const float g = to_float(dout[bt * C + c]);
            sum += g;
            const int tok = tokens[bt];
            if (tok >= 0 && tok < V) atomicAdd(&scratch[(size_t)tok * C + c], g);
        }
        dwpe[i] = from_float<floatX>(to_float(dwpe[i]) + sum);
    }
}

extern "C" __global__ void encoder_backward_gather(floatX* dwte, float* scratch,
                                                   const int* tokens, int B, int T, int C, int V) {
    for (size_t i = thread_index(); i < (size_t)B * T * C; i += grid_threads()) {
        const int tok = tokens[i / C], c = (int)(i % C);
        if (tok < 0 || tok >= V) continue;
        const size_t j = (size_t)tok * C + c;
        const float g = atomicExch(&scratch[j], 0.0f);
        if (g != 0.0f) dwte[j] = from_float<floatX>(to_float(dwte[j]) + g);
    }
}
