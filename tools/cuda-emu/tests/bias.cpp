// Emulator test of kernels/bias.cu: column sums of dout added into random dbias, for one row,
// odd row counts (some warps get one row more than others) and column counts that leave the
// last block partly empty, split into 1, 2, 3 and more row chunks than rows (empty chunks).
// Launch shape as in src/tensor/cuda/ops.rs: 1024 threads, grid (column tiles of 32, row chunks).
// emu-kernels: kernels/bias.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/bias.cu"

static void bias_case(int n, int oc, int chunks) {
    const std::string tag = "bias_backward n=" + std::to_string(n) + " oc=" + std::to_string(oc) +
                            " chunks=" + std::to_string(chunks);
    emu::Array<floatX> g(n * oc, "dout"), db(oc, "dbias");
    check::fill(g);
    check::fill(db);
    std::vector<double> ref = check::doubles(db);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < oc; c++) ref[c] += check::to_double(g[r * oc + c]);
    if (check::no_error(tag, [&] {
            emu::launch(bias_backward, dim3((oc + 31) / 32, chunks), 1024, 0, db.data(), g.data(),
                        n, oc);
        }))
        check::close(tag, db, ref);
}

int main() {
    for (int n : {1, 3, 33, 70})
        for (int oc : {1, 7, 32, 33, 65})
            for (int chunks : {1, 2, 3, 5}) bias_case(n, oc, chunks);
    return check::finish();
}
