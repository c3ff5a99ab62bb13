// Emulator test of kernels/copy.cu: strided_copy and strided_add on contiguous, transposed,
// permuted, broadcast (expand), sliced (cat into a window of a larger buffer), scalar (nd = 0),
// 8-axis and empty layouts, with grids too small to cover n in one pass. Copies must be exact;
// elements of `out` outside the layout must stay untouched (poisoned).
// emu-kernels: kernels/copy.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/copy.cu"
#include "strided_cases.h"

using strided::Dims;

struct Case {
    const char* name;
    Dims shape, out_stride, in_stride;
    size_t out_offset;  // elements before the window in out (cat)
};

// Out's elements in the layout, in index order (for check::close), and whether every other
// element of out is still poisoned.
static void compare(const std::string& name, const Case& c, const emu::Array<floatX>& out,
                    const std::vector<double>& ref, double tol) {
    std::vector<floatX> got;
    std::vector<bool> covered(out.size(), false);
    strided::walk(c.shape, {c.out_stride}, [&](size_t, const size_t* off) {
        got.push_back(out[c.out_offset + off[0]]);
        covered[c.out_offset + off[0]] = true;
    });
    check::close(name, emu::Array<floatX>(got), ref, tol);
    size_t touched = 0;
    for (size_t i = 0; i < out.size(); i++)
        if (!covered[i] && !std::isnan(check::to_double(out[i]))) touched++;
    check::report(touched == 0, name + " outside the layout",
                  std::to_string(touched) + " elements written outside");
}

int main() {
    const std::vector<Case> cases = {
        {"contiguous", {257}, {1}, {1}, 0},
        {"transpose", {5, 7}, {7, 1}, {1, 5}, 0},
        {"permuted", {3, 4, 5}, {20, 5, 1}, {4, 1, 12}, 0},
        {"expand outer", {4, 6, 3}, {18, 3, 1}, {0, 3, 1}, 0},
        {"expand middle", {2, 5, 3}, {15, 3, 1}, {3, 0, 1}, 0},
        {"cat window", {3, 6, 4}, {40, 4, 1}, {24, 4, 1}, 12},
        {"scalar", {}, {}, {}, 0},
        {"8 axes", {2, 1, 3, 1, 2, 2, 1, 3}, {72, 72, 24, 24, 12, 6, 3, 1},
         {1, 1, 2, 2, 6, 12, 1, 24}, 5},
        {"empty", {3, 0, 2}, {0, 2, 1}, {0, 2, 1}, 0},
    };
    for (const Case& c : cases) {
        const size_t n = strided::numel(c.shape);
        const size_t in_len = std::max<size_t>(1, strided::span(c.shape, c.in_stride));
        const size_t out_len = c.out_offset + std::max<size_t>(1, strided::span(c.shape, c.out_stride));
        const Strided s = strided::make(c.shape, {c.out_stride, c.in_stride});
        emu::Array<floatX> in(in_len, "in"), out(out_len, "out");
        check::fill(in, -3.0, 3.0);
        const std::string tag = std::string(" ") + c.name + " n=" + std::to_string(n);

        out.poison();
        std::vector<double> ref;
        strided::walk(c.shape, {c.out_stride, c.in_stride},
                      [&](size_t, const size_t* off) { ref.push_back(check::to_double(in[off[1]])); });
        const std::string cp = "strided_copy" + tag;
        if (check::no_error(cp, [&] {
                emu::launch(strided_copy, 2, 32, 0, out.data() + c.out_offset, in.data(), s, n);
            }))
            compare(cp, c, out, ref, 0.0);

        // strided_add onto the copy: out = 2·in, one rounding in bf16 (exact: doubling).
        for (double& r : ref) r *= 2;
        const std::string ad = "strided_add" + tag;
        if (check::no_error(ad, [&] {
                emu::launch(strided_add, 3, 32, 0, out.data() + c.out_offset, in.data(), s, n);
            }))
            compare(ad, c, out, ref, 0.0);

        // strided_add of a second, different input.
        emu::Array<floatX> in2(in_len, "in2");
        check::fill(in2, -1.0, 1.0);
        size_t q = 0;
        strided::walk(c.shape, {c.out_stride, c.in_stride}, [&](size_t, const size_t* off) {
            ref[q++] = check::to_double(out[c.out_offset + off[0]]) + check::to_double(in2[off[1]]);
        });
        const std::string ad2 = "strided_add second input" + tag;
        if (check::no_error(ad2, [&] {
                emu::launch(strided_add, 1, 64, 0, out.data() + c.out_offset, in2.data(), s, n);
            }))
            compare(ad2, c, out, ref, check::tolerance);
    }
    return check::finish();
}
