// Emulator test of kernels/norm.cu: two tensors' sums of squares added into out[0] = 1.5, on
// aligned and misaligned pointers, with grids that do not cover n in one pass; the second launch
// checks that the first left the block counter at zero.
// emu-kernels: kernels/norm.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/norm.cu"

int main() {
    for (int n : {1, 7, 33, 1000}) {
        for (int off : {0, 1}) {
            const std::string tag =
                "grad_norm_squared n=" + std::to_string(n) + " off=" + std::to_string(off);
            emu::Array<floatX> a(n + off, "a"), b(n + 3 + off, "b");
            check::fill(a, -1.0, 1.0);
            check::fill(b, -2.0, 2.0);
            emu::Array<float> out(1, "out");
            out[0] = 1.5f;
            double ref = 1.5;
            for (int i = 0; i < n; i++) ref += std::pow(check::to_double(a[off + i]), 2);
            for (int i = 0; i < n + 3; i++) ref += std::pow(check::to_double(b[off + i]), 2);
            if (check::no_error(tag, [&] {
                    emu::launch(grad_norm_squared, 2, 64, 0, out.data(), a.data() + off, (size_t)n);
                    emu::launch(grad_norm_squared, 37, 32, 0, out.data(), b.data() + off,
                                (size_t)(n + 3));
                }))
                check::close(tag, out, std::vector<double>{ref}, 1e-5);
        }
    }
    return check::finish();
}
