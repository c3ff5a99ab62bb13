// Emulator test of kernels/adamw.cu: three steps with and without weight decay and with a
// clipping factor, against the formula of src/train/optim.rs in double; params must be exactly
// the master weights rounded to floatX.
// emu-kernels: kernels/adamw.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/adamw.cu"

int main() {
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, gs = 0.5f;
    for (int n : {1, 7, 100}) {
        for (float wd : {0.0f, 0.1f}) {
            const std::string tag = "adamw n=" + std::to_string(n) + " wd=" + std::to_string(wd);
            emu::Array<floatX> params(n, "params"), grads(n, "grads");
            emu::Array<float> master(n, "master"), m(n, "m"), v(n, "v");
            check::fill(master, -1.0, 1.0);
            for (int i = 0; i < n; i++) {
                params[i] = floatX(master[i]);
                m[i] = v[i] = 0.0f;
            }
            std::vector<double> rp = check::doubles(master), rm(n, 0.0), rv(n, 0.0);
            bool ok = true;
            for (int step = 1; step <= 3 && ok; step++) {
                check::fill(grads);
                const float bc1 = 1.0f - std::pow(b1, (float)step);
                const float bc2 = 1.0f - std::pow(b2, (float)step);
                for (int i = 0; i < n; i++) {
                    const double g = check::to_double(grads[i]) * gs;
                    rp[i] -= (double)lr * wd * rp[i];
                    rm[i] = b1 * rm[i] + (1.0 - b1) * g;
                    rv[i] = b2 * rv[i] + (1.0 - b2) * g * g;
                    rp[i] -= lr * (rm[i] / bc1) / (std::sqrt(rv[i] / bc2) + eps);
                }
                ok = check::no_error(tag, [&] {
                    emu::launch(adamw_update, 1, 32, 0, params.data(), master.data(), grads.data(),
                                m.data(), v.data(), (size_t)n, lr, b1, b2, bc1, bc2, eps, wd, gs);
                });
            }
            if (!ok) continue;
            check::close(tag + " master", master, rp, 1e-5);
            check::close(tag + " m", m, rm, 1e-5);
            check::close(tag + " v", v, rv, 1e-5);
            std::vector<double> rounded(n);
            for (int i = 0; i < n; i++) rounded[i] = check::to_double(floatX(master[i]));
            check::close(tag + " params", params, rounded, 0.0);
        }
    }
    return check::finish();
}
