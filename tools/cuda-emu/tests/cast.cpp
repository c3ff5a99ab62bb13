// Emulator test of kernels/cast.cu: cast_to_floatx and cast_to_float on odd sizes and odd
// launch shapes (the grid-stride loop must cover any n). Exact: conversions round once.
// emu-kernels: kernels/cast.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/cast.cu"

int main() {
    for (size_t n : {1, 7, 33, 1000, 4099}) {
        for (int block : {32, 256}) {
            const int grid = std::min<int>((n + block - 1) / block, 3);  // fewer blocks than needed
            emu::Array<float> in(n, "in");
            check::fill(in, -100.0, 100.0);
            in[0] = 1.00390625f;  // exactly halfway between two bf16 values: rounds to even
            emu::Array<floatX> x(n, "x");
            x.poison();
            const std::string shape = " n=" + std::to_string(n) + " block=" + std::to_string(block);
            std::vector<double> ref;
            for (float v : in) ref.push_back(check::to_double(floatX(v)));  // one rounding
            if (check::no_error("cast_to_floatx" + shape,
                                [&] { emu::launch(cast_to_floatx, grid, block, 0, x.data(), in.data(), n); }))
                check::close("cast_to_floatx" + shape, x, ref, 0.0);

            emu::Array<float> back(n, "back");
            back.poison();
            if (check::no_error("cast_to_float" + shape,
                                [&] { emu::launch(cast_to_float, grid, block, 0, back.data(), x.data(), n); }))
                check::close("cast_to_float" + shape, back, check::doubles(x), 0.0);
        }
    }
    return check::finish();
}
