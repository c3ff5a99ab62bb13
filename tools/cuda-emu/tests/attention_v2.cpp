// emu-kernels: kernels/attention.cu kernels/attention_v2.cu
// emu-precisions: bf16
//
// The v2 attention kernels (wmma, bf16), forward and backward, against a plain f64 reference
// and against v1 (attention.cu), on odd T: `tools/cuda-emu/run.sh attention_v2`.
#include "emu.h"

#include "kernels/attention.cu"
#include "kernels/attention_v2.cu"

#include <algorithm>
#include <random>
#include <vector>

static int failures = 0;

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
    printf("attention v2 B=%d T=%d NH=%d hs=%d\n", B, T, NH, hs);
    const int C = NH * hs;
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal;
    emu::Array<floatX> qkv(B * T * 3 * C, "qkv"), dout(B * T * C, "dout");
    emu::Array<floatX> out1(B * T * C, "out1"), out2(B * T * C, "out2");
    emu::Array<floatX> dqkv1(B * T * 3 * C, "dqkv1"), dqkv2(B * T * 3 * C, "dqkv2");
    emu::Array<float> lse1(B * NH * T, "lse1"), lse2(B * NH * T, "lse2");
    emu::Array<float> D1(B * NH * T, "D1"), D2(B * NH * T, "D2");
    for (auto& x : qkv) x = from_float<floatX>(normal(gen));
    for (auto& x : dout) x = from_float<floatX>(normal(gen));
    out2.poison();
    lse2.poison();
    dqkv2.poison();
    // f64 reference.
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
                double m = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    double x = 0;
                    for (int d = 0; d < hs; d++) x += X[at(b, i, 0, h, d)] * X[at(b, j, 1, h, d)];
                    P[(size_t)i * T + j] = x * scale;
                    m = std::max(m, x * scale);
                }
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
    // v1, as src/tensor/cuda/attention.rs launches it.
    const int ks = hs % 2 == 0 ? hs + 1 : hs;
    const int grid1 = B * NH * ceil_div(T, ATT_BQ);
    emu::launch(attention_forward, grid1, 128, 4 * (ATT_BQ * hs + ATT_BK * ks + ATT_BK * hs),
                out1.data(), lse1.data(), qkv.data(), B, T, NH, hs);
    emu::launch(attention_backward_preprocess, ceil_div(B * NH * T, 8), 256, 0, D1.data(),
                dout.data(), out1.data(), B, T, NH, hs);
    emu::launch(attention_backward_dkdv, grid1, 128,
                4 * (2 * ATT_BQ * hs + 2 * ATT_BK * ks + 2 * ATT_BK), dqkv1.data(), dout.data(),
                qkv.data(), lse1.data(), D1.data(), B, T, NH, hs);
    emu::launch(attention_backward_dq, grid1, 128, 4 * (2 * ATT_BQ * hs + 2 * ATT_BK * ks),
                dqkv1.data(), dout.data(), qkv.data(), lse1.data(), D1.data(), B, T, NH, hs);
    // v2.
    const int grid2 = B * NH * ceil_div(T, V2_BQ);
    emu::launch(attention_forward_v2, grid2, 128,
                2 * 3 * 64 * hs + 4 * 64 * 64 + 2 * 64 * 64 + 4 * 64 * hs, out2.data(),
                lse2.data(), qkv.data(), B, T, NH, hs);
    emu::launch(attention_backward_preprocess, ceil_div(B * NH * T, 8), 256, 0, D2.data(),
                dout.data(), out2.data(), B, T, NH, hs);
    emu::launch(attention_backward_dkdv_v2, grid2, 128, 512 * hs + 49664, dqkv2.data(),
                dout.data(), qkv.data(), lse2.data(), D2.data(), B, T, NH, hs);
    emu::launch(attention_backward_dq_v2, grid2, 128, 512 * hs + 40960, dqkv2.data(),
                dout.data(), qkv.data(), lse2.data(), D2.data(), B, T, NH, hs);
    check("out", f64(out2), oref, 1e-2);
    check("lse", f64(lse2), lref, 1e-2);
    check("out-v1", f64(out2), f64(out1), 1e-2);
    check("dqkv", f64(dqkv2), gref, 2e-2);
    check("dqkv-v1", f64(dqkv2), f64(dqkv1), 2e-2);
}

int main() {
    attention_case(1, 1, 1, 16, 1);
    attention_case(2, 7, 3, 16, 2);
    attention_case(1, 65, 2, 64, 3);
    attention_case(2, 130, 1, 64, 4);
    attention_case(1, 77, 2, 128, 5);
    attention_case(1, 50, 1, 48, 6);
    printf(failures ? "FAILED: %d checks\n" : "all passed\n", failures);
    return failures ? 1 : 0;
}
