// Emulator test of kernels/matmul_v1_naive.cu: matmul_v1 on every case of matmul_cases.h, and
// bias_broadcast (the cuBLAS path's bias) on odd shapes with a grid too small to cover them.
// emu-kernels: kernels/matmul_v1_naive.cu
// emu-precisions: fp32 bf16
#include "kernels/matmul_v1_naive.cu"
#include "matmul_cases.h"

int main() {
    matmul_cases("v1", matmul_v1, 8, 32, 256);
    for (Shape s : {Shape{1, 0, 1}, Shape{7, 0, 33}, Shape{129, 0, 257}}) {
        for (int acc = 0; acc < 2; acc++) {
            emu::Array<floatX> c(s.m * s.n, "c"), bias(s.n, "bias");
            check::fill(c);
            check::fill(bias);
            std::vector<double> ref(s.m * s.n);
            for (int i = 0; i < s.m * s.n; i++)
                ref[i] = check::to_double(bias[i % s.n]) + (acc ? check::to_double(c[i]) : 0);
            if (!acc) c.poison();
            std::string label = "bias_broadcast " + std::to_string(s.m) + "x" + std::to_string(s.n) +
                                " acc=" + std::to_string(acc);
            if (check::no_error(label, [&] { emu::launch(bias_broadcast, 3, 256, 0, c.data(), bias.data(), s.m, s.n, acc); }))
                check::close(label, c, ref);
        }
    }
    return check::finish();
}
