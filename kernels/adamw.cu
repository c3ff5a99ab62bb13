// adamw.cu: one AdamW step over one parameter tensor (src/train/optim.rs, on the GPU).
//
// For each element, with g = grads[i]·grad_scale (grad_scale is the clipping factor):
//   p = master[i]·(1 − lr·wd)                    decoupled weight decay (wd = 0: no decay)
//   m = β1·m + (1−β1)·g,   v = β2·v + (1−β2)·g²
//   p = p − lr·(m / bc1) / (√(v / bc2) + eps)    bc1 = 1 − β1^step, bc2 = 1 − β2^step (host)
//   master[i] = p (fp32),  params[i] = floatX(p)  (the copy the forward pass reads)
// Idea: one thread per element in a grid-stride loop; everything but params is fp32. In fp32
// mode params and master may be the same buffer (each thread reads before it writes).
// Launch: grid = min(ceil(n / 256), 32 * SMs), block = 256.
#include "common.cuh"

extern "C" __global__ void adamw_update(floatX* params, float* master, const floatX* grads,
                                        float* m, float* v, size_t n, float lr, float beta1,
                                        float beta2, float bc1, float bc2, float eps,
                                        float weight_decay, float grad_scale) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += stride) {
        const float g = to_float(grads[i]) * grad_scale;
        float p = master[i] * (1.0f - lr * weight_decay);
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        p -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
        master[i] = p;
        params[i] = from_float<floatX>(p);
    }
}
