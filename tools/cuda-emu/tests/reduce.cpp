// Emulator test of kernels/reduce.cu: sums and maxima over the middle axis of [outer, n, inner]
// (the general kernels on every shape, the row kernels where inner == 1, the column sums where
// outer == 1, with several row chunks), the max's gradient with ties (it must go to the first
// maximum), and sum_to_scalar; all against double references, on odd sizes, with grids too
// small to cover the work in one pass.
// emu-kernels: kernels/reduce.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/reduce.cu"

int main() {
    const size_t shapes[][3] = {{1, 1, 1}, {3, 7, 1},  {2, 33, 1}, {1, 300, 1}, {5, 1, 4},
                                {2, 9, 7}, {1, 65, 33}, {3, 5, 40}, {1, 70, 5}};
    for (auto [outer, n, inner] : shapes) {
        const std::string tag = " outer=" + std::to_string(outer) + " n=" + std::to_string(n) +
                                " inner=" + std::to_string(inner);
        for (bool ties : {false, true}) {
            emu::Array<floatX> x(outer * n * inner, "x"), out(outer * inner, "out");
            check::fill(x, -2.0, 2.0);
            if (ties)  // few distinct values: many lanes have several maxima
                for (size_t i = 0; i < x.size(); i++)
                    x[i] = floatX((float)std::round(check::to_double(x[i])));
            std::vector<double> sum(outer * inner, 0.0), mx(outer * inner, -INFINITY);
            for (size_t o = 0; o < outer; o++)
                for (size_t j = 0; j < n; j++)
                    for (size_t i = 0; i < inner; i++) {
                        const double v = check::to_double(x[(o * n + j) * inner + i]);
                        sum[o * inner + i] += v;
                        mx[o * inner + i] = std::max(mx[o * inner + i], v);
                    }
            const std::string t = tag + (ties ? " ties" : "");
            auto run = [&](const std::string& name, const std::vector<double>& ref, double tol,
                           auto&& launch) {
                out.poison();
                if (check::no_error(name + t, launch)) check::close(name + t, out, ref, tol);
            };
            run("sum_axis", sum, check::tolerance,
                [&] { emu::launch(sum_axis, 2, 32, 0, out.data(), x.data(), outer, n, inner); });
            run("max_axis", mx, 0.0,
                [&] { emu::launch(max_axis, 1, 64, 0, out.data(), x.data(), outer, n, inner); });
            if (inner == 1) {
                run("sum_rows_warp", sum, check::tolerance, [&] {
                    emu::launch(sum_rows_warp, 1, 64, 0, out.data(), x.data(), outer, n);
                });
                run("sum_rows_block", sum, check::tolerance, [&] {
                    emu::launch(sum_rows_block, 2, 96, 0, out.data(), x.data(), outer, n);
                });
                run("max_rows", mx, 0.0, [&] {
                    emu::launch(max_rows, 1, 64, 0, out.data(), x.data(), outer, n);
                });
            }
            if (outer == 1)
                for (unsigned chunks : {1u, 3u}) {
                    run("sum_columns chunks=" + std::to_string(chunks), sum, check::tolerance, [&] {
                        emu::launch(sum_columns, dim3((inner + 31) / 32, chunks), 1024, 0,
                                    out.data(), x.data(), (int)n, (int)inner);
                    });
                }

            // The gradient of the max, from the kernel's own max.
            emu::launch(max_axis, 1, 64, 0, out.data(), x.data(), outer, n, inner);
            emu::Array<floatX> g(outer * inner, "g"), dx(outer * n * inner, "dx");
            check::fill(g);
            dx.poison();
            std::vector<double> ref(outer * n * inner, 0.0);
            for (size_t o = 0; o < outer; o++)
                for (size_t i = 0; i < inner; i++)
                    for (size_t j = 0; j < n; j++) {
                        const size_t k = (o * n + j) * inner + i;
                        if (check::to_double(x[k]) == mx[o * inner + i]) {
                            ref[k] = check::to_double(g[o * inner + i]);
                            break;
                        }
                    }
            const std::string b = "max_axis_backward" + t;
            if (check::no_error(b, [&] {
                    emu::launch(max_axis_backward, 2, 32, 0, dx.data(), x.data(),
                                (const floatX*)out.data(), g.data(), outer, n, inner);
                }))
                check::close(b, dx, ref, 0.0);
        }
    }

    for (size_t n : {1, 37, 1025, 5000}) {
        emu::Array<float> in(n, "in"), out(1, "out");
        check::fill(in, -1.0, 3.0);
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += in[i];
        const float scale = 1.0f / (float)n;
        out.poison();
        const std::string name = "sum_to_scalar n=" + std::to_string(n);
        if (check::no_error(name, [&] {
                emu::launch(sum_to_scalar, 1, 1024, 0, out.data(), in.data(), n, scale);
            }))
            check::close(name, out, {sum * scale}, 1e-6);
    }
    return check::finish();
}
