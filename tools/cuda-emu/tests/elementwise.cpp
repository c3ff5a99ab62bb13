// Emulator test of kernels/elementwise.cu: every unary op forward and backward on odd sizes,
// through the 16-byte path (aligned) and the one-element path (offset by one); the binary ops
// with broadcasting and transposed operands; masked_fill with a broadcast mask; causal_fill
// with t < s and t = s, in place and not. Grids are too small to cover n in one pass.
// emu-kernels: kernels/elementwise.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/elementwise.cu"
#include "strided_cases.h"

using strided::Dims;

struct Op {
    const char* name;
    int code;
    float p;
    double lo, hi;  // input range (log, sqrt and the fractional power need x > 0)
};

static double f_ref(int op, double x, double p) {
    switch (op) {
        case UNARY_NEG: return -x;
        case UNARY_EXP: return std::exp(x);
        case UNARY_LOG: return std::log(x);
        case UNARY_SQRT: return std::sqrt(x);
        case UNARY_TANH: return std::tanh(x);
        case UNARY_RELU: return x > 0 ? x : 0;
        case UNARY_POWF: return std::pow(x, p);
        case UNARY_ADD_SCALAR: return x + p;
        case UNARY_MUL_SCALAR: return x * p;
    }
    return NAN;
}

static double grad_ref(int op, double x, double y, double g, double p) {
    switch (op) {
        case UNARY_NEG: return -g;
        case UNARY_EXP: return g * y;
        case UNARY_LOG: return g / x;
        case UNARY_SQRT: return g * 0.5 / y;
        case UNARY_TANH: return g * (1 - y * y);
        case UNARY_RELU: return x > 0 ? g : 0;
        case UNARY_POWF: return g * p * std::pow(x, p - 1);
        case UNARY_ADD_SCALAR: return g;
        case UNARY_MUL_SCALAR: return g * p;
    }
    return NAN;
}

static emu::Array<floatX> tail(const emu::Array<floatX>& a, int off) {
    return emu::Array<floatX>(std::vector<floatX>(a.data() + off, a.data() + a.size()));
}

static void unary_cases() {
    const Op ops[] = {
        {"neg", UNARY_NEG, 0, -3, 3},          {"exp", UNARY_EXP, 0, -3, 3},
        {"log", UNARY_LOG, 0, 0.1, 3},         {"sqrt", UNARY_SQRT, 0, 0.1, 3},
        {"tanh", UNARY_TANH, 0, -3, 3},        {"relu", UNARY_RELU, 0, -3, 3},
        {"powf 2.5", UNARY_POWF, 2.5f, 0.1, 3}, {"powf 2", UNARY_POWF, 2.0f, -3, 3},
        {"add_scalar", UNARY_ADD_SCALAR, -1.25f, -3, 3},
        {"mul_scalar", UNARY_MUL_SCALAR, 0.75f, -3, 3},
    };
    for (int n : {1, 7, 8, 33, 130}) {
        for (int off : {0, 1}) {
            for (const Op& op : ops) {
                const std::string tag = std::string(" ") + op.name + " n=" + std::to_string(n) +
                                        " off=" + std::to_string(off);
                emu::Array<floatX> x(n + off, "x"), y(n + off, "y"), g(n + off, "g"),
                    dx(n + off, "dx");
                check::fill(x, op.lo, op.hi);
                check::fill(g, -1.0, 1.0);
                const floatX *xp = x.data() + off, *gp = g.data() + off;
                y.poison();
                std::vector<double> ref(n);
                for (int i = 0; i < n; i++) ref[i] = f_ref(op.code, check::to_double(xp[i]), op.p);
                const std::string f = "unary_forward" + tag;
                if (check::no_error(f, [&] {
                        emu::launch(unary_forward, 2, 32, 0, y.data() + off, xp, (size_t)n,
                                    op.code, op.p);
                    }))
                    check::close(f, tail(y, off), ref);

                // Backward from the kernel's own (rounded) y.
                dx.poison();
                for (int i = 0; i < n; i++)
                    ref[i] = grad_ref(op.code, check::to_double(xp[i]),
                                      check::to_double(y[off + i]), check::to_double(gp[i]), op.p);
                const std::string b = "unary_backward" + tag;
                if (check::no_error(b, [&] {
                        emu::launch(unary_backward, 2, 32, 0, dx.data() + off, xp,
                                    (const floatX*)y.data() + off, gp, (size_t)n, op.code, op.p);
                    }))
                    check::close(b, tail(dx, off), ref);
            }
        }
    }
}

struct Layout {
    const char* name;
    Dims shape, a_stride, b_stride;
};

static void strided_cases() {
    const Layout layouts[] = {
        {"same", {37}, {1}, {1}},
        {"row bias", {4, 5, 3}, {15, 3, 1}, {0, 0, 1}},
        {"column", {4, 5, 3}, {15, 3, 1}, {0, 1, 0}},
        {"both broadcast", {6, 7}, {1, 0}, {0, 1}},
        {"transposed a", {5, 7}, {1, 5}, {7, 1}},
        {"scalar b", {3, 4}, {4, 1}, {0, 0}},
    };
    const char* names[] = {"add", "sub", "mul", "div"};
    for (const Layout& l : layouts) {
        const size_t n = strided::numel(l.shape);
        const Dims oc = strided::contiguous(l.shape);
        const Strided s = strided::make(l.shape, {oc, l.a_stride, l.b_stride});
        emu::Array<floatX> a(strided::span(l.shape, l.a_stride), "a"),
            b(strided::span(l.shape, l.b_stride), "b"), out(n, "out");
        check::fill(a, -2.0, 2.0);
        check::fill(b, 0.5, 2.0);  // away from 0 for div
        for (int op = 0; op < 4; op++) {
            const std::string tag = std::string("binary ") + names[op] + " " + l.name;
            std::vector<double> ref(n);
            strided::walk(l.shape, {oc, l.a_stride, l.b_stride}, [&](size_t i, const size_t* off) {
                const double x = check::to_double(a[off[1]]), y = check::to_double(b[off[2]]);
                ref[i] = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
            });
            out.poison();
            if (check::no_error(tag, [&] { emu::launch(binary, 2, 32, 0, out.data(), a.data(),
                                                       b.data(), s, n, op); }))
                check::close(tag, out, ref);
        }

        // masked_fill with the b layout as the mask (0 or 1).
        emu::Array<floatX> mask(strided::span(l.shape, l.b_stride), "mask");
        for (size_t i = 0; i < mask.size(); i++) mask[i] = floatX((float)(check::rng() % 2));
        std::vector<double> ref(n);
        strided::walk(l.shape, {oc, l.a_stride, l.b_stride}, [&](size_t i, const size_t* off) {
            ref[i] = check::to_double(mask[off[2]]) != 0 ? -4096.0 : check::to_double(a[off[1]]);
        });
        out.poison();
        const std::string tag = std::string("masked_fill ") + l.name;
        if (check::no_error(tag, [&] { emu::launch(masked_fill, 3, 32, 0, out.data(), a.data(),
                                                   mask.data(), s, n, -4096.0f); }))
            check::close(tag, out, ref, 0.0);
    }
}

static void causal_cases() {
    const int shapes[][3] = {{2, 3, 5}, {1, 4, 4}, {3, 1, 1}, {2, 7, 9}, {1, 1, 6}};
    for (auto [batch, t, s] : shapes) {
        const size_t n = (size_t)batch * t * s;
        for (bool in_place : {false, true}) {
            const std::string tag = "causal_fill b=" + std::to_string(batch) + " t=" +
                                    std::to_string(t) + " s=" + std::to_string(s) +
                                    (in_place ? " in place" : "");
            emu::Array<floatX> x(n, "x"), out(n, "out");
            check::fill(x);
            std::vector<double> ref(n);
            for (size_t i = 0; i < n; i++) {
                const long long q = (long long)(i / s % t), key = (long long)(i % s);
                ref[i] = key > q + s - t ? -3.5 : check::to_double(x[i]);
            }
            floatX* o = in_place ? x.data() : out.data();
            out.poison();
            if (check::no_error(tag, [&] {
                    emu::launch(causal_fill, 2, 32, 0, o, (const floatX*)x.data(), t, s, n, -3.5f);
                }))
                check::close(tag, in_place ? x : out, ref, 0.0);
        }
    }
}

int main() {
    unary_cases();
    strided_cases();
    causal_cases();
    return check::finish();
}
