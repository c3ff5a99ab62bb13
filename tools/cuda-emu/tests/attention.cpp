// emu-kernels: kernels/attention.cu
// emu-precisions: fp32 bf16
//
// The attention kernels on the CPU emulator, against plain f64 references, on small odd sizes:
// `tools/cuda-emu/run.sh attention`. Launch shapes are the ones src/tensor/cuda/attention.rs
// uses.
#include "emu.h"

#include "kernels/attention.cu"

#include <algorithm>
#include <random>
#include <vector>

#ifdef PRETRAIN_BF16
static const double TOL_FWD = 1e-2, TOL_BWD = 2e-2;
#else
static const double TOL_FWD = 1e-5, TOL_BWD = 1e-5;
#endif

static int failures = 0;

// |got - want| <= tol * max|want| for every element; prints the worst relative error.
static void check(const char* what, const std::vector<double>& got,
                  const std::vector<double>& want, double tol) {
    double scale = 1e-30, worst = 0;
    size_t at = 0;
    for (double w : want) scale = std::max(scale, std::fabs(w));
    for (size_t i = 0; i < want.size(); i++) {
        double e = std::fabs(got[i] - want[i]);
        if (std::isnan(e)) e = INFINITY;
        if (e > worst) worst = e, at = i;
    }
    const bool ok = worst <= tol * scale;
    printf("  %-8s worst error %.2e of max|ref| (tol %.0e)%s", what, worst / scale, tol,
           ok ? "\n" : "");
    if (!ok) {
        printf("  FAIL at %zu: got %g want %g\n", at, got[at], want[at]);
        failures++;
    }
}

template <typename T> static std::vector<double> f64(const T& a) {
    std::vector<double> v;
    for (size_t i = 0; i < a.size(); i++) v.push_back((double)to_float(a[i]));
    return v;
}

static void attention_case(int B, int T, int NH, int hs, unsigned seed) {
    printf("attention B=%d T=%d NH=%d hs=%d\n", B, T, NH, hs);
    const int C = NH * hs;
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal;
    emu::Array<floatX> qkv(B * T * 3 * C, "qkv"), out(B * T * C, "out"), dout(B * T * C, "dout"),
        dqkv(B * T * 3 * C, "dqkv");
    emu::Array<float> lse(B * NH * T, "lse"), D(B * NH * T, "D");
    for (auto& x : qkv) x = from_float<floatX>(normal(gen));
    for (auto& x : dout) x = from_float<floatX>(normal(gen));
    out.poison();
    lse.poison();
    dqkv.poison();

    // Reference, f64, on the (rounded) inputs.
    std::vector<double> X = f64(qkv), dY = f64(dout);
    std::vector<double> oref(B * T * C), lref(B * NH * T), gref(B * T * 3 * C, 0.0);
    const double scale = 1.0 / std::sqrt((double)hs);
    auto at = [&](int b, int t, int part, int h, int d) {
        return ((size_t)b * T + t) * 3 * C + (size_t)part * C + h * hs + d;
    };
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            std::vector<double> P((size_t)T * T, 0.0);
            for (int i = 0; i < T; i++) {
                double m = -INFINITY;
                for (int j = 0; j <= i; j++) {
                    double s = 0;
                    for (int d = 0; d < hs; d++) s += X[at(b, i, 0, h, d)] * X[at(b, j, 1, h, d)];
                    P[(size_t)i * T + j] = s * scale;
                    m = std::max(m, s * scale);
                }
                double sum = 0;
                for (int j = 0; j <= i; j++) sum += std::exp(P[(size_t)i * T + j] - m);
                lref[((size_t)b * NH + h) * T + i] = m + std::log(sum);
                for (int j = 0; j <= i; j++)
                    P[(size_t)i * T + j] = std::exp(P[(size_t)i * T + j] - m) / sum;
                for (int d = 0; d < hs; d++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++) o += P[(size_t)i * T + j] * X[at(b, j, 2, h, d)];
                    oref[((size_t)b * T + i) * C + h * hs + d] = o;
                }
            }
            for (int i = 0; i < T; i++) {
                const size_t yo = ((size_t)b * T + i) * C + h * hs;
                double Di = 0;
                for (int d = 0; d < hs; d++) Di += dY[yo + d] * oref[yo + d];
                for (int j = 0; j <= i; j++) {
                    const double p = P[(size_t)i * T + j];
                    double dp = 0;
                    for (int d = 0; d < hs; d++) dp += dY[yo + d] * X[at(b, j, 2, h, d)];
                    const double ds = p * (dp - Di) * scale;
                    for (int d = 0; d < hs; d++) {
                        gref[at(b, j, 2, h, d)] += p * dY[yo + d];
                        gref[at(b, i, 0, h, d)] += ds * X[at(b, j, 1, h, d)];
                        gref[at(b, j, 1, h, d)] += ds * X[at(b, i, 0, h, d)];
                    }
                }
            }
        }

    // The kernels, launched as src/tensor/cuda/attention.rs does.
    const int ks = hs % 2 == 0 ? hs + 1 : hs;
    const int grid = B * NH * ceil_div(T, ATT_BQ);
    emu::launch(attention_forward, grid, 128, 4 * (ATT_BQ * hs + ATT_BK * ks + ATT_BK * hs),
                out.data(), lse.data(), qkv.data(), B, T, NH, hs);
    emu::launch(attention_backward_preprocess, ceil_div(B * NH * T, 8), 256, 0, D.data(),
                dout.data(), out.data(), B, T, NH, hs);
    emu::launch(attention_backward_dkdv, grid, 128, 4 * (2 * ATT_BQ * hs + 2 * ATT_BK * ks + 2 * ATT_BK),
                dqkv.data(), dout.data(), qkv.data(), lse.data(), D.data(), B, T, NH, hs);
    emu::launch(attention_backward_dq, grid, 128, 4 * (2 * ATT_BQ * hs + 2 * ATT_BK * ks),
                dqkv.data(), dout.data(), qkv.data(), lse.data(), D.data(), B, T, NH, hs);
    check("out", f64(out), oref, TOL_FWD);
    check("lse", f64(lse), lref, TOL_FWD);
    check("dqkv", f64(dqkv), gref, TOL_BWD);
}

int main() {
    attention_case(1, 1, 1, 8, 1);
    attention_case(2, 7, 3, 16, 2);
    attention_case(2, 33, 2, 7, 3);
    attention_case(1, 65, 2, 64, 4);
    attention_case(1, 47, 1, 128, 5);
    attention_case(1, 40, 3, 33, 6);
    attention_case(1, 100, 1, 40, 7);
    printf(failures ? "FAILED: %d checks\n" : "all passed\n", failures);
    return failures ? 1 : 0;
}
