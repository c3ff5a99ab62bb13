// Emulator test of kernels/gelu.cu and kernels/fill.cu: each kernel on odd sizes, through the
// 16-byte path (aligned pointers) and the one-element path (offset by one), with grids too small
// to cover n in one pass (so the grid-stride loops run).
// emu-kernels: kernels/gelu.cu kernels/fill.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/gelu.cu"
#include "kernels/fill.cu"

static double gelu_ref(double x) {
    const double s = 0.7978845608028654, c = 0.044715;
    return 0.5 * x * (1.0 + std::tanh(s * (x + c * x * x * x)));
}
static double gelu_grad_ref(double x) {
    const double s = 0.7978845608028654, c = 0.044715;
    const double t = std::tanh(s * (x + c * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * s * (1.0 + 3.0 * c * x * x);
}

int main() {
    for (int n : {1, 3, 8, 17, 65, 300}) {
        for (int off : {0, 1}) {
            const std::string tag = " n=" + std::to_string(n) + " off=" + std::to_string(off);
            emu::Array<floatX> x(n + off, "x"), g(n + off, "g"), out(n + off, "out");
            check::fill(x, -4.0, 4.0);
            check::fill(g, -1.0, 1.0);
            const floatX *xp = x.data() + off, *gp = g.data() + off;
            floatX* op = out.data() + off;
            // The n elements after the offset, as an Array for check::close.
            auto result = [&](const emu::Array<floatX>& a) {
                return emu::Array<floatX>(std::vector<floatX>(a.data() + off, a.data() + off + n));
            };
            const int grid = 2, block = 32;  // 64 threads: several rounds of the loops

            std::vector<double> ref(n);
            out.poison();
            for (int i = 0; i < n; i++) ref[i] = gelu_ref(check::to_double(xp[i]));
            if (check::no_error("gelu_forward" + tag, [&] {
                    emu::launch(gelu_forward, grid, block, 0, op, xp, (size_t)n);
                }))
                check::close("gelu_forward" + tag, result(out), ref);

            out.poison();
            for (int i = 0; i < n; i++)
                ref[i] = check::to_double(gp[i]) * gelu_grad_ref(check::to_double(xp[i]));
            if (check::no_error("gelu_backward" + tag, [&] {
                    emu::launch(gelu_backward, grid, block, 0, op, xp, gp, (size_t)n);
                }))
                check::close("gelu_backward" + tag, result(out), ref);

            out.poison();
            for (int i = 0; i < n; i++) ref[i] = 2.5;
            if (check::no_error("fill" + tag, [&] {
                    emu::launch(fill, grid, block, 0, op, 2.5f, (size_t)n);
                }))
                check::close("fill" + tag, result(out), ref, 0.0);
            // The element before the range must be untouched (it is out[0] when off = 1).
            if (off == 1 && !std::isnan(check::to_double(out[0])))
                check::report(false, "fill" + tag, "wrote before its range");
        }
    }
    return check::finish();
}
