// check.h: small helpers for emulator tests: random inputs, a double-precision reference
// comparison with a stated tolerance, one printed line per case, and the exit status.
#pragma once
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>
#include "emu.h"

namespace check {

inline int failures = 0, passes = 0;
// Line-buffered stdout, so results and the emulator's messages (stderr) stay in order.
inline const int line_buffered = setvbuf(stdout, nullptr, _IOLBF, 0);
inline std::mt19937_64 rng(12345);

// The precision this binary was built for, and its usual tolerance (relative to max |ref|).
#ifdef PRETRAIN_BF16
inline const char* precision = "bf16";
inline const double tolerance = 1e-2;
#else
inline const char* precision = "fp32";
inline const double tolerance = 1e-5;
#endif

inline double to_double(float v) { return v; }
inline double to_double(double v) { return v; }
inline double to_double(__nv_bfloat16 v) { return (float)v; }
inline double to_double(int v) { return v; }
inline double to_double(unsigned v) { return v; }

// Uniform random values in [lo, hi), stored as T (so the reference sees the rounded values).
template <typename T> void fill(emu::Array<T>& a, double lo = -1.0, double hi = 1.0) {
    std::uniform_real_distribution<double> u(lo, hi);
    for (auto& x : a) x = T((float)u(rng));
}
template <typename T> std::vector<double> doubles(const emu::Array<T>& a) {
    std::vector<double> v;
    for (const auto& x : a) v.push_back(to_double(x));
    return v;
}

inline void report(bool ok, const std::string& name, const std::string& detail) {
    std::printf("%s %-52s %s\n", ok ? "ok  " : "FAIL", name.c_str(), detail.c_str());
    (ok ? passes : failures)++;
}

// |got - ref| <= tol * max(max |ref|, 1e-30) for every element; NaN (e.g. an element the kernel
// never wrote, still poisoned) fails.
template <typename T>
bool close(const std::string& name, const emu::Array<T>& got, const std::vector<double>& ref,
           double tol = tolerance) {
    if (got.size() != ref.size()) {
        report(false, name, "size differs");
        return false;
    }
    double scale = 1e-30;
    for (double r : ref) scale = std::max(scale, std::fabs(r));
    double worst = 0;
    size_t bad = ref.size();
    for (size_t i = 0; i < ref.size(); i++) {
        const double g = to_double(got[i]), e = std::fabs(g - ref[i]) / scale;
        if (!(e <= tol)) {  // NaN fails too
            if (bad == ref.size()) bad = i;
            worst = std::isnan(e) ? e : std::max(worst, e);
        } else if (!std::isnan(worst)) {
            worst = std::max(worst, e);
        }
    }
    char detail[256];
    if (bad == ref.size())
        std::snprintf(detail, sizeof detail, "max err %.2e (tol %.0e of max|ref| %.3g)", worst, tol,
                      scale);
    else
        std::snprintf(detail, sizeof detail,
                      "first bad [%zu]: got %.9g want %.9g; max err %.2e (tol %.0e)%s", bad,
                      to_double(got[bad]), ref[bad], worst, tol,
                      std::isnan(to_double(got[bad])) ? " -- NaN: never written?" : "");
    report(bad == ref.size(), name, detail);
    return bad == ref.size();
}

// Runs f(); a kernel bug the emulator detects (emu::Error) is a failure of this case.
template <typename F> bool no_error(const std::string& name, F f) {
    try {
        f();
        return true;
    } catch (const emu::Error& e) {
        report(false, name, e.what());
        return false;
    }
}

// Runs f() and expects the emulator to report an error whose message contains `needle`.
template <typename F> void expect_error(const std::string& name, const std::string& needle, F f) {
    try {
        f();
        report(false, name, "no error reported");
    } catch (const emu::Error& e) {
        const std::string msg = e.what();
        const std::string first_line = msg.substr(0, std::min<size_t>(msg.find('\n'), 160));
        report(msg.find(needle) != std::string::npos, name, "reported: " + first_line);
    }
}

inline int finish() {
    std::printf("%s: %d passed, %d failed\n", precision, passes, failures);
    return failures ? 1 : 0;
}

}  // namespace check
