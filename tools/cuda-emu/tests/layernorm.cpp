// Emulator test of kernels/layernorm.cu: forward (out, mean, rstd; two values of eps) and backward (dinp, dweight,
// dbias accumulated into random values) against a double-precision reference, on a single
// column, odd widths (one-element path), multiples of 8 (16-byte path), a width past 32 lanes
// per step, and rows that do not fill the last block. Launch shapes as in src/tensor/cuda/ops.rs.
// emu-kernels: kernels/layernorm.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/layernorm.cu"

static emu::Array<floatX> slice(const emu::Array<floatX>& a, int off, int n) {
    return emu::Array<floatX>(std::vector<floatX>(a.data() + off, a.data() + off + n));
}

int main() {
    const int sizes[][2] = {{1, 1}, {3, 7}, {9, 33}, {2, 32}, {3, 48}, {2, 65}, {17, 8}, {1, 300}};
    for (auto [n, c] : sizes) {
        for (int off : {0, 1}) {
            // eps is an argument: GPT-2's 1e-5, and a large one that changes every output.
            const float eps = (n * c) % 2 ? 1e-5f : 0.25f;
            const std::string tag = " n=" + std::to_string(n) + " c=" + std::to_string(c) +
                                    " off=" + std::to_string(off) + " eps=" + std::to_string(eps);
            emu::Array<floatX> x(n * c + off, "x"), w(c + off, "w"), b(c + off, "b"),
                out(n * c + off, "out");
            emu::Array<float> mean(n, "mean"), rstd(n, "rstd");
            check::fill(x, -2.0, 3.0);
            check::fill(w, 0.5, 1.5);
            check::fill(b, -0.5, 0.5);
            out.poison();
            mean.poison();
            rstd.poison();
            const floatX *xp = x.data() + off, *wp = w.data() + off, *bp = b.data() + off;

            std::vector<double> ref(n * c), rm(n), rr(n);
            for (int r = 0; r < n; r++) {
                double s = 0, q = 0;
                for (int j = 0; j < c; j++) s += check::to_double(xp[r * c + j]);
                rm[r] = s / c;
                for (int j = 0; j < c; j++) {
                    const double d = check::to_double(xp[r * c + j]) - rm[r];
                    q += d * d;
                }
                rr[r] = 1.0 / std::sqrt(q / c + (double)eps);
                for (int j = 0; j < c; j++)
                    ref[r * c + j] = (check::to_double(xp[r * c + j]) - rm[r]) * rr[r] *
                                         check::to_double(wp[j]) +
                                     check::to_double(bp[j]);
            }
            const std::string f = "layernorm_forward" + tag;
            if (check::no_error(f, [&] {
                    emu::launch(layernorm_forward, (n + 7) / 8, 256, 0, out.data() + off,
                                mean.data(), rstd.data(), xp, wp, bp, n, c, eps);
                })) {
                check::close(f + " out", slice(out, off, n * c), ref);
                check::close(f + " mean", mean, rm, 1e-5);
                check::close(f + " rstd", rstd, rr, 1e-5);
            }

            // Backward from the kernel's own mean and rstd, into random gradients.
            emu::Array<floatX> g(n * c + off, "dout"), dx(n * c + off, "dinp"), dw(c + off, "dw"),
                db(c + off, "db");
            check::fill(g);
            check::fill(dx);
            check::fill(dw);
            check::fill(db);
            const floatX* gp = g.data() + off;
            std::vector<double> rdx(n * c), rdw(c), rdb(c);
            for (int j = 0; j < c; j++) {
                rdw[j] = check::to_double(dw[off + j]);
                rdb[j] = check::to_double(db[off + j]);
            }
            for (int r = 0; r < n; r++) {
                double mg = 0, mgx = 0;
                for (int j = 0; j < c; j++) {
                    const double xh = (check::to_double(xp[r * c + j]) - rm[r]) * rr[r];
                    const double gw = check::to_double(gp[r * c + j]) * check::to_double(wp[j]);
                    mg += gw / c;
                    mgx += gw * xh / c;
                    rdw[j] += check::to_double(gp[r * c + j]) * xh;
                    rdb[j] += check::to_double(gp[r * c + j]);
                }
                for (int j = 0; j < c; j++) {
                    const double xh = (check::to_double(xp[r * c + j]) - rm[r]) * rr[r];
                    const double gw = check::to_double(gp[r * c + j]) * check::to_double(wp[j]);
                    rdx[r * c + j] =
                        check::to_double(dx[off + r * c + j]) + rr[r] * (gw - mg - xh * mgx);
                }
            }
            const std::string bw = "layernorm_backward" + tag;
            if (check::no_error(bw, [&] {
                    emu::launch(layernorm_backward_dinp, (n + 7) / 8, 256, 0, dx.data() + off, gp,
                                xp, wp, mean.data(), rstd.data(), n, c);
                    // Row chunks: 1, 2 or more than rows (some empty).
                    emu::launch(layernorm_backward_params, dim3((c + 31) / 32, 1 + (n + c) % 3 * 2),
                                1024, 0,
                                dw.data() + off, db.data() + off, gp, xp, mean.data(),
                                rstd.data(), n, c);
                })) {
                check::close(bw + " dinp", slice(dx, off, n * c), rdx);
                check::close(bw + " dweight", slice(dw, off, c), rdw);
                check::close(bw + " dbias", slice(db, off, c), rdb);
            }
        }
    }
    return check::finish();
}
