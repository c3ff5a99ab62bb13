// cast.cu: copies between the fp32 master copy and the floatX working copy.
//
// cast_to_floatx:  out[i] = (floatX) in[i]   (fp32 master weights -> bf16 weights for compute)
// cast_to_float:   out[i] = (float) in[i]    (bf16 results read back to the host as fp32)
// Idea: one thread per element, a grid-stride loop so any launch shape covers any n.
// Launch: grid = min(ceil(n / 256), 4 * SMs), block = 256. Memory-bound: at best 6 bytes per
// element (bf16) through HBM.
#include "common.cuh"

extern "C" __global__ void cast_to_floatx(floatX* out, const float* in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = from_float<floatX>(in[i]);
}

extern "C" __global__ void cast_to_float(float* out, const floatX* in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = to_float(in[i]);
}
