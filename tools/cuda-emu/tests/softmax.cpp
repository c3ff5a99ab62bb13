// Emulator test of kernels/softmax.cu: softmax and log-softmax forward and backward, and the
// causal softmax forward and backward, against double references on odd row lengths (shorter
// and longer than the block), with fewer blocks than rows (the grid-stride loop over rows), and
// in place (out = in, dx = g).
// emu-kernels: kernels/softmax.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/softmax.cu"

static void row_cases() {
    const size_t shapes[][2] = {{1, 1}, {3, 7}, {2, 33}, {5, 100}, {1, 300}};
    for (auto [rows, cols] : shapes) {
        for (int take_log : {0, 1}) {
            for (bool in_place : {false, true}) {
                const std::string tag = std::string(take_log ? " log" : "") + " rows=" +
                                        std::to_string(rows) + " cols=" + std::to_string(cols) +
                                        (in_place ? " in place" : "");
                const size_t n = rows * cols;
                emu::Array<floatX> x(n, "x"), y(n, "y"), g(n, "g"), dx(n, "dx");
                check::fill(x, -4.0, 4.0);
                check::fill(g);
                std::vector<double> ref(n);
                for (size_t r = 0; r < rows; r++) {
                    double m = -INFINITY, s = 0;
                    for (size_t j = 0; j < cols; j++) m = std::max(m, check::to_double(x[r * cols + j]));
                    for (size_t j = 0; j < cols; j++) s += std::exp(check::to_double(x[r * cols + j]) - m);
                    for (size_t j = 0; j < cols; j++) {
                        const double v = check::to_double(x[r * cols + j]);
                        ref[r * cols + j] = take_log ? v - m - std::log(s) : std::exp(v - m) / s;
                    }
                }
                floatX* out = in_place ? x.data() : y.data();
                y.poison();
                const std::string f = "softmax_forward" + tag;
                if (!check::no_error(f, [&] {
                        emu::launch(softmax_forward, 2, 64, 0, out, (const floatX*)x.data(), rows,
                                    (int)cols, take_log);
                    }))
                    continue;
                check::close(f, in_place ? x : y, ref);

                // Backward from the kernel's own (rounded) output.
                const emu::Array<floatX>& yy = in_place ? x : y;
                for (size_t r = 0; r < rows; r++) {
                    double s = 0;
                    for (size_t j = 0; j < cols; j++) {
                        const size_t k = r * cols + j;
                        s += take_log ? check::to_double(g[k])
                                      : check::to_double(g[k]) * check::to_double(yy[k]);
                    }
                    for (size_t j = 0; j < cols; j++) {
                        const size_t k = r * cols + j;
                        const double p = check::to_double(yy[k]), q = check::to_double(g[k]);
                        ref[k] = take_log ? q - std::exp(p) * s : p * (q - s);
                    }
                }
                floatX* d = in_place ? g.data() : dx.data();
                dx.poison();
                const std::string b = "softmax_backward" + tag;
                if (check::no_error(b, [&] {
                        emu::launch(softmax_backward, 3, 32, 0, d, yy.data(),
                                    (const floatX*)g.data(), rows, (int)cols, take_log);
                    }))
                    check::close(b, in_place ? g : dx, ref);
            }
        }
    }
}

static void causal_cases() {
    const int shapes[][3] = {{2, 3, 5}, {1, 4, 4}, {3, 1, 1}, {2, 7, 9}, {1, 2, 70}};
    const float scale = 0.35f;
    for (auto [batch, t, s] : shapes) {
        for (bool in_place : {false, true}) {
            const std::string tag = " b=" + std::to_string(batch) + " t=" + std::to_string(t) +
                                    " s=" + std::to_string(s) + (in_place ? " in place" : "");
            const size_t rows = (size_t)batch * t, n = rows * s;
            emu::Array<floatX> x(n, "x"), y(n, "y"), g(n, "g"), dx(n, "dx");
            check::fill(x, -6.0, 6.0);
            check::fill(g);
            std::vector<double> ref(n, 0.0);
            for (size_t r = 0; r < rows; r++) {
                const size_t valid = r % t + (s - t) + 1;
                double m = -INFINITY, sum = 0;
                for (size_t j = 0; j < valid; j++) m = std::max(m, check::to_double(x[r * s + j]));
                for (size_t j = 0; j < valid; j++)
                    sum += std::exp(scale * (check::to_double(x[r * s + j]) - m));
                for (size_t j = 0; j < valid; j++)
                    ref[r * s + j] = std::exp(scale * (check::to_double(x[r * s + j]) - m)) / sum;
            }
            floatX* out = in_place ? x.data() : y.data();
            y.poison();
            const std::string f = "causal_softmax_forward" + tag;
            if (!check::no_error(f, [&] {
                    emu::launch(causal_softmax_forward, 2, 32, 0, out, (const floatX*)x.data(),
                                rows, t, s, scale);
                }))
                continue;
            check::close(f, in_place ? x : y, ref);

            const emu::Array<floatX>& yy = in_place ? x : y;
            std::fill(ref.begin(), ref.end(), 0.0);
            for (size_t r = 0; r < rows; r++) {
                const size_t valid = r % t + (s - t) + 1;
                double dot = 0;
                for (size_t j = 0; j < valid; j++)
                    dot += check::to_double(yy[r * s + j]) * check::to_double(g[r * s + j]);
                for (size_t j = 0; j < valid; j++)
                    ref[r * s + j] = scale * check::to_double(yy[r * s + j]) *
                                     (check::to_double(g[r * s + j]) - dot);
            }
            floatX* d = in_place ? g.data() : dx.data();
            dx.poison();
            const std::string b = "causal_softmax_backward" + tag;
            if (check::no_error(b, [&] {
                    emu::launch(causal_softmax_backward, 3, 64, 0, d, yy.data(),
                                (const floatX*)g.data(), rows, t, s, scale);
                }))
                check::close(b, in_place ? g : dx, ref);
        }
    }
}

int main() {
    row_cases();
    causal_cases();
    return check::finish();
}
