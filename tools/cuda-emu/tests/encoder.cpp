// Emulator test of kernels/encoder.cu: forward against wte[token] + wpe[t] (with one token
// out of range: NaN row), and backward twice into random dwte/dwpe with few distinct tokens, so
// several positions add into the same dwte row; the scratch must be all zero afterwards.
// emu-kernels: kernels/encoder.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/encoder.cu"

int main() {
    // (B, T, C, V): one column, odd widths, a multiple of 8 (16-byte path), many repeats.
    const int sizes[][4] = {{1, 1, 1, 1}, {2, 3, 7, 5}, {3, 5, 33, 4}, {2, 4, 16, 3}, {4, 9, 8, 2}};
    std::mt19937 pick(7);
    for (auto [B, T, C, V] : sizes) {
        const std::string tag = " B=" + std::to_string(B) + " T=" + std::to_string(T) +
                                " C=" + std::to_string(C) + " V=" + std::to_string(V);
        emu::Array<int> tokens(B * T, "tokens");
        for (auto& t : tokens) t = (int)(pick() % V);
        emu::Array<floatX> wte(V * C, "wte"), wpe(T * C, "wpe"), out(B * T * C, "out");
        check::fill(wte);
        check::fill(wpe);
        out.poison();
        std::vector<double> ref(B * T * C);
        for (int bt = 0; bt < B * T; bt++)
            for (int c = 0; c < C; c++)
                ref[bt * C + c] = check::to_double(wte[tokens[bt] * C + c]) +
                                  check::to_double(wpe[(bt % T) * C + c]);
        const std::string f = "encoder_forward" + tag;
        if (check::no_error(f, [&] {
                emu::launch(encoder_forward, 2, 32, 0, out.data(), tokens.data(), wte.data(),
                            wpe.data(), B, T, C, V);
            }))
            check::close(f, out, ref);

        emu::Array<floatX> dwte(V * C, "dwte"), dwpe(T * C, "dwpe"), dout(B * T * C, "dout");
        emu::Array<float> scratch(V * C, "scratch");
        for (auto& s : scratch) s = 0.0f;
        check::fill(dwte);
        check::fill(dwpe);
        std::vector<double> rte = check::doubles(dwte), rpe = check::doubles(dwpe);
        bool ok = true;
        for (int round = 0; round < 2 && ok; round++) {
            check::fill(dout);
            for (int bt = 0; bt < B * T; bt++)
                for (int c = 0; c < C; c++) {
                    rte[tokens[bt] * C + c] += check::to_double(dout[bt * C + c]);
                    rpe[(bt % T) * C + c] += check::to_double(dout[bt * C + c]);
                }
            ok = check::no_error("encoder_backward" + tag, [&] {
                emu::launch(encoder_backward_scatter, 2, 32, 0, dwpe.data(), scratch.data(),
                            dout.data(), tokens.data(), B, T, C, V);
                emu::launch(encoder_backward_gather, 3, 32, 0, dwte.data(), scratch.data(),
                            tokens.data(), B, T, C, V);
            });
        }
        if (ok) {
            check::close("encoder_backward dwte" + tag, dwte, rte, 2 * check::tolerance);
            check::close("encoder_backward dwpe" + tag, dwpe, rpe, 2 * check::tolerance);
            check::close("encoder_backward scratch zero" + tag, scratch,
                         std::vector<double>(V * C, 0.0), 0.0);
        }
    }

    // A token outside 0..V: NaN row forward, skipped backward.
    {
        const int B = 1, T = 3, C = 5, V = 2;
        emu::Array<int> tokens(std::vector<int>{1, 2, -1}, "tokens");
        emu::Array<floatX> wte(V * C, "wte"), wpe(T * C, "wpe"), out(T * C, "out");
        for (auto& v : wte) v = floatX(1.0f);
        for (auto& v : wpe) v = floatX(0.5f);
        check::no_error("encoder_forward bad token", [&] {
            emu::launch(encoder_forward, 1, 32, 0, out.data(), tokens.data(), wte.data(),
                        wpe.data(), B, T, C, V);
        });
        bool ok = true;
        for (int i = 0; i < T * C; i++) {
            const double v = check::to_double(out[i]);
            ok &= i < C ? v == 1.5 : std::isnan(v);
        }
        check::report(ok, "encoder_forward bad token", ok ? "NaN rows" : "wrong rows");
        emu::Array<floatX> dwte(V * C, "dwte"), dwpe(T * C, "dwpe"), dout(T * C, "dout");
        emu::Array<float> scratch(V * C, "scratch");
        for (auto& s : scratch) s = 0.0f;
        for (auto& v : dwte) v = floatX(0.0f);
        for (auto& v : dwpe) v = floatX(0.0f);
        for (auto& v : dout) v = floatX(1.0f);
        check::no_error("encoder_backward bad token", [&] {
            emu::launch(encoder_backward_scatter, 1, 32, 0, dwpe.data(), scratch.data(),
                        dout.data(), tokens.data(), B, T, C, V);
            emu::launch(encoder_backward_gather, 1, 32, 0, dwte.data(), scratch.data(),
                        tokens.data(), B, T, C, V);
        });
        std::vector<double> rte(V * C, 0.0);
        for (int c = 0; c < C; c++) rte[C + c] = 1.0;
        check::close("encoder_backward bad token dwte", dwte, rte, 0.0);
        check::close("encoder_backward bad token dwpe", dwpe, std::vector<double>(T * C, 1.0), 0.0);
    }
    return check::finish();
}
