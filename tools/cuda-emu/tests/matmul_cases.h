// matmul_cases.h: the cases every matmul emulator test runs (matmul_v1.cpp ... matmul_v4.cpp).
// Every layout (ta, tb) x accumulate x bias, on odd sizes that leave partial tiles on each edge
// and on sizes that are multiples of 8 (the vector paths), plus views shifted by one element
// (misaligned: the vector paths must fall back). Reference in double from the stored inputs;
// C poisoned (NaN) before non-accumulating runs. Tolerance: check::tolerance (fp32 1e-5, bf16
// 1e-2) relative to max |ref|, times max(1, sqrt(k)/4) for fp32.
#pragma once
#include <algorithm>
#include <cmath>
#include "check.h"

struct Shape {
    int m, k, n;
};

inline const std::vector<Shape> matmul_shapes = {
    {1, 1, 1}, {7, 33, 1}, {1, 7, 33}, {33, 7, 127}, {127, 129, 33},
    {129, 41, 7}, {130, 40, 136}, {136, 72, 200}, {64, 48, 96},
};

typedef void (*MatmulKernel)(floatX*, const floatX*, const floatX*, const floatX*, int, int, int,
                             int, int, int);

// Runs `kernel` (blocks of `threads` computing rows x cols of C) on every case.
// `smem`: the dynamic shared memory the host launches with.
inline void matmul_cases(const char* name, MatmulKernel kernel, int rows, int cols, int threads,
                         const std::vector<Shape>& shapes = matmul_shapes, size_t smem = 0) {
    for (const Shape& s : shapes) {
        const int m = s.m, k = s.k, n = s.n;
        for (int shift : {0, 1}) {
            for (int layout = 0; layout < 4; layout++) {
                const int ta = layout / 2, tb = layout % 2;
                // Buffers one element longer, so the views can start at element `shift`.
                emu::Array<floatX> a(m * k + 1, "a"), b(k * n + 1, "b"), bias(n + 1, "bias"),
                    c(m * n + 1, "c");
                check::fill(a);
                check::fill(b);
                check::fill(bias);
                std::vector<double> prod(m * n);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double sum = 0;
                        for (int p = 0; p < k; p++) {
                            double x = check::to_double(ta ? a[shift + p * m + i] : a[shift + i * k + p]);
                            double y = check::to_double(tb ? b[shift + j * k + p] : b[shift + p * n + j]);
                            sum += x * y;
                        }
                        prod[i * n + j] = sum;
                    }
                for (int acc = 0; acc < 2; acc++) {
                    for (int with_bias = 0; with_bias < 2; with_bias++) {
                        if (shift && (acc != 1 || with_bias != 1)) continue;  // one misaligned run
                        std::vector<double> c0(m * n + 1);
                        if (acc) {
                            check::fill(c);
                            for (int i = 0; i < m * n + 1; i++) c0[i] = check::to_double(c[i]);
                        } else {
                            c.poison();
                        }
                        std::vector<double> ref(m * n);
                        for (int i = 0; i < m * n; i++)
                            ref[i] = prod[i] + (with_bias ? check::to_double(bias[shift + i % n]) : 0) +
                                     (acc ? c0[shift + i] : 0);
                        char label[160];
                        std::snprintf(label, sizeof label, "%s %dx%dx%d ta=%d tb=%d acc=%d bias=%d%s",
                                      name, m, k, n, ta, tb, acc, with_bias, shift ? " shifted" : "");
                        dim3 grid((m + rows - 1) / rows, (n + cols - 1) / cols);
                        if (!check::no_error(label, [&] {
                                emu::launch(kernel, grid, threads, smem, c.data() + shift,
                                            a.data() + shift, b.data() + shift,
                                            with_bias ? bias.data() + shift : nullptr, m, k, n, ta,
                                            tb, acc);
                            }))
                            continue;
                        double scale = 1e-30, worst = 0;
                        int bad = -1;
                        for (double r : ref) scale = std::max(scale, std::fabs(r));
                        double tol = check::tolerance;
#ifndef PRETRAIN_BF16
                        tol *= std::max(1.0, std::sqrt((double)k) / 4);
#endif
                        for (int i = 0; i < m * n; i++) {
                            double e = std::fabs(check::to_double(c[shift + i]) - ref[i]) / scale;
                            if (!(e <= tol)) {
                                if (bad < 0) bad = i;
                                worst = std::isnan(e) ? e : std::max(worst, e);
                            } else if (!std::isnan(worst)) {
                                worst = std::max(worst, e);
                            }
                        }
                        bool untouched = !shift || check::to_double(c[0]) == c0[0];
                        char detail[200];
                        if (bad < 0)
                            std::snprintf(detail, sizeof detail, "max err %.2e (tol %.0e)%s", worst, tol,
                                          untouched ? "" : " but wrote c[-1]");
                        else
                            std::snprintf(detail, sizeof detail, "first bad C[%d,%d]: got %.7g want %.7g",
                                          bad / n, bad % n, check::to_double(c[shift + bad]), ref[bad]);
                        check::report(bad < 0 && untouched, label, detail);
                    }
                }
            }
        }
    }
}
