// emu-kernels: kernels/attention.cu kernels/attention_v2.cu
// emu-precisions: bf16
//
// attention_forward_v2 (wmma, bf16) against attention_forward (v1, checked against f64 in
// attention.cpp) and against a plain f64 reference, on odd T: `tools/cuda-emu/run.sh attention_v2`.
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

static void forward_case(int B, int T, int NH, int hs, unsigned seed) {
    printf("attention v2 B=%d T=%d NH=%d hs=%d\n", B, T, NH, hs);
    const int C = NH * hs;
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal;
    emu::Array<floatX> qkv(B * T * 3 * C, "qkv"), out1(B * T * C, "out1"), out2(B * T * C, "out2");
    emu::Array<float> lse1(B * NH * T, "lse1"), lse2(B * NH * T, "lse2");
    for (auto& x : qkv) x = from_float<floatX>(normal(gen));
    out2.poison();
    lse2.poison();
    // f64 reference.
    std::vector<double> X = f64(qkv), oref(B * T * C), lref(B * NH * T);
    auto at = [&](int b, int t, int part, int h, int d) {
        return ((size_t)b * T + t) * 3 * C + (size_t)part * C + h * hs + d;
    };
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                std::vector<double> s(i + 1);
                double m = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    double x = 0;
                    for (int d = 0; d < hs; d++) x += X[at(b, i, 0, h, d)] * X[at(b, j, 1, h, d)];
                    s[j] = x / std::sqrt((double)hs);
                    m = std::max(m, s[j]);
                }
                for (int j = 0; j <= i; j++) sum += std::exp(s[j] - m);
                lref[((size_t)b * NH + h) * T + i] = m + std::log(sum);
                for (int d = 0; d < hs; d++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++) o += std::exp(s[j] - m) / sum * X[at(b, j, 2, h, d)];
                    oref[((size_t)b * T + i) * C + h * hs + d] = o;
                }
            }
    const int ks = hs % 2 == 0 ? hs + 1 : hs;
    emu::launch(attention_forward, B * NH * ceil_div(T, ATT_BQ), 128,
                4 * (ATT_BQ * hs + ATT_BK * ks + ATT_BK * hs), out1.data(), lse1.data(),
                qkv.data(), B, T, NH, hs);
    emu::launch(attention_forward_v2, B * NH * ceil_div(T, V2_BQ), 128,
                2 * 3 * 64 * hs + 4 * 64 * 64 + 2 * 64 * 64 + 4 * 64 * hs, out2.data(),
                lse2.data(), qkv.data(), B, T, NH, hs);
    check("out", f64(out2), oref, 1e-2);
    check("lse", f64(lse2), lref, 1e-2);
    check("out-v1", f64(out2), f64(out1), 1e-2);
}

int main() {
    forward_case(1, 1, 1, 16, 1);
    forward_case(2, 7, 3, 16, 2);
    forward_case(1, 65, 2, 64, 3);
    forward_case(2, 130, 1, 64, 4);
    forward_case(1, 77, 2, 128, 5);
    forward_case(1, 50, 1, 48, 6);
    printf(failures ? "FAILED: %d checks\n" : "all passed\n", failures);
    return failures ? 1 : 0;
}
