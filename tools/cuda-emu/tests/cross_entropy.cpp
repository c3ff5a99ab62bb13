// Emulator test of kernels/cross_entropy.cu: per-row losses and log-sum-exp, and the gradient
// (scaled by an upstream gradient read from device memory and a host factor), with ignored rows
// (target −1), a target past the classes (NaN), rows shorter and longer than the block, fewer
// blocks than rows, and the backward in place over the logits.
// emu-kernels: kernels/cross_entropy.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/cross_entropy.cu"

int main() {
    const int shapes[][2] = {{1, 1}, {4, 7}, {9, 33}, {3, 300}, {5, 1000}};
    for (auto [rows, cols] : shapes) {
        for (bool in_place : {false, true}) {
            const std::string tag = " rows=" + std::to_string(rows) + " cols=" +
                                    std::to_string(cols) + (in_place ? " in place" : "");
            const size_t n = (size_t)rows * cols;
            emu::Array<floatX> x(n, "logits"), dx(n, "dlogits");
            emu::Array<int> targets(rows, "targets");
            emu::Array<float> losses(rows, "losses"), lse(rows, "lse"), dloss(1, "dloss");
            check::fill(x, -5.0, 5.0);
            for (int r = 0; r < rows; r++) targets[r] = (int)(check::rng() % cols);
            if (rows > 3) targets[1] = -1, targets[3] = cols;  // ignored; out of range
            std::vector<double> rl(rows), rlse(rows);
            int count = 0;
            for (int r = 0; r < rows; r++) {
                double m = -INFINITY, s = 0;
                for (int j = 0; j < cols; j++) m = std::max(m, check::to_double(x[r * cols + j]));
                for (int j = 0; j < cols; j++) s += std::exp(check::to_double(x[r * cols + j]) - m);
                rlse[r] = m + std::log(s);
                const int t = targets[r];
                rl[r] = t < 0 ? 0.0 : t >= cols ? NAN : rlse[r] - check::to_double(x[r * cols + t]);
                count += t >= 0 && t < cols;
            }
            losses.poison();
            lse.poison();
            const std::string f = "cross_entropy_forward" + tag;
            if (!check::no_error(f, [&] {
                    emu::launch(cross_entropy_forward, 2, 64, 0, losses.data(), lse.data(),
                                x.data(), targets.data(), (size_t)rows, cols);
                }))
                continue;
            // lse and losses are fp32 in both precisions (from the same rounded logits).
            check::close(f + " lse", lse, rlse, 1e-6);
            std::vector<float> good;
            std::vector<double> want;
            bool nan_ok = true;
            for (int r = 0; r < rows; r++) {
                if (std::isnan(rl[r])) nan_ok = nan_ok && std::isnan(losses[r]);
                else good.push_back(losses[r]), want.push_back(rl[r]);
            }
            check::close(f + " losses", emu::Array<float>(good), want, 1e-6);
            check::report(nan_ok, f + " bad target", nan_ok ? "NaN loss" : "no NaN");

            // Backward from the kernel's own lse, upstream gradient 0.7 on the device.
            dloss[0] = 0.7f;
            const float scale = 1.0f / std::max(count, 1);
            const double sc = 0.7 * scale;
            std::vector<double> ref(n, 0.0);
            for (int r = 0; r < rows; r++) {
                const int t = targets[r];
                for (int j = 0; j < cols && t >= 0; j++) {
                    const double p = std::exp(check::to_double(x[r * cols + j]) - rlse[r]);
                    ref[r * cols + j] = t >= cols ? NAN : sc * (p - (j == t));
                }
            }
            floatX* d = in_place ? x.data() : dx.data();
            dx.poison();
            const std::string b = "cross_entropy_backward" + tag;
            if (!check::no_error(b, [&] {
                    emu::launch(cross_entropy_backward, 3, 32, 0, d, (const floatX*)x.data(),
                                lse.data(), targets.data(), dloss.data(), scale, (size_t)rows, cols);
                }))
                continue;
            const emu::Array<floatX>& got = in_place ? x : dx;
            std::vector<floatX> gv;
            std::vector<double> wv;
            bool nan_rows = true;
            for (size_t i = 0; i < n; i++) {
                if (std::isnan(ref[i])) nan_rows = nan_rows && std::isnan(check::to_double(got[i]));
                else gv.push_back(got[i]), wv.push_back(ref[i]);
            }
            check::close(b, emu::Array<floatX>(gv), wv);
            check::report(nan_rows, b + " bad target", nan_rows ? "NaN row" : "no NaN");
        }
    }
    return check::finish();
}
