// Emulator test of kernels/embedding.cu: the forward gather (ids outside the vocabulary give
// NaN rows) and the deterministic backward from host-built buckets (a counting sort of the
// positions by id, as `EmbeddingBuckets::new` in src/tensor/cuda/embedding.rs), with repeated
// ids, ids that never occur, a single column, dims past one block, and fewer blocks than ids.
// emu-kernels: kernels/embedding.cu
// emu-precisions: fp32 bf16
#include "check.h"
#include "kernels/embedding.cu"

int main() {
    const int shapes[][3] = {{1, 1, 1}, {7, 3, 5}, {20, 33, 4}, {9, 300, 11}, {40, 8, 3}};
    for (auto [rows, dim, vocab] : shapes) {
        const std::string tag = " rows=" + std::to_string(rows) + " dim=" + std::to_string(dim) +
                                " vocab=" + std::to_string(vocab);
        emu::Array<floatX> table(vocab * dim, "table"), out(rows * dim, "out");
        emu::Array<int> ids(rows, "ids");
        check::fill(table);
        // Ids from the lower part of the vocabulary (the last id never occurs), one bad id.
        for (int r = 0; r < rows; r++) ids[r] = (int)(check::rng() % std::max(1, vocab - 1));
        if (rows > 2) ids[1] = vocab, ids[2] = -1;
        std::vector<double> ref(rows * dim);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < dim; c++)
                ref[r * dim + c] = ids[r] < 0 || ids[r] >= vocab
                                       ? NAN
                                       : check::to_double(table[ids[r] * dim + c]);
        out.poison();
        const std::string f = "embedding_forward" + tag;
        if (check::no_error(f, [&] {
                emu::launch(embedding_forward, 2, 64, 0, out.data(), table.data(), ids.data(),
                            (size_t)rows, dim, vocab);
            })) {
            // NaN where the id is bad (check::close fails on NaN: compare those apart).
            std::vector<floatX> good;
            std::vector<double> want;
            bool nan_ok = true;
            for (int i = 0; i < rows * dim; i++) {
                if (std::isnan(ref[i])) {
                    nan_ok = nan_ok && std::isnan(check::to_double(out[i]));
                } else {
                    good.push_back(out[i]);
                    want.push_back(ref[i]);
                }
            }
            check::close(f, emu::Array<floatX>(good), want, 0.0);
            check::report(nan_ok, f + " bad ids", nan_ok ? "NaN rows" : "a bad id gave numbers");
        }

        // Backward: counting sort of the positions by id (bad ids skipped).
        std::vector<int> count(vocab, 0), uniq, offsets{0}, positions;
        for (int r = 0; r < rows; r++)
            if (ids[r] >= 0 && ids[r] < vocab) count[ids[r]]++;
        for (int v = 0; v < vocab; v++)
            if (count[v]) uniq.push_back(v), offsets.push_back(offsets.back() + count[v]);
        positions.resize(offsets.back());
        std::vector<int> next(vocab, 0);
        for (size_t u = 0; u < uniq.size(); u++) next[uniq[u]] = offsets[u];
        for (int r = 0; r < rows; r++)
            if (ids[r] >= 0 && ids[r] < vocab) positions[next[ids[r]]++] = r;
        emu::Array<int> du(std::max<size_t>(uniq.size(), 1), "uniq"), doff(offsets, "offsets"),
            dpos(std::max<size_t>(positions.size(), 1), "positions");
        std::copy(uniq.begin(), uniq.end(), du.data());
        std::copy(positions.begin(), positions.end(), dpos.data());

        emu::Array<floatX> g(rows * dim, "g"), dtable(vocab * dim, "dtable");
        check::fill(g);
        // The kernel adds each id's rows into the table as it is (here: random values, as when a
        // tied embedding already holds the LM head's gradient); other rows stay untouched.
        check::fill(dtable);
        std::vector<double> dref(vocab * dim);
        for (size_t i = 0; i < dtable.size(); i++) dref[i] = check::to_double(dtable[i]);
        std::vector<double> sums(vocab * dim, 0.0);
        for (int r = 0; r < rows; r++)
            if (ids[r] >= 0 && ids[r] < vocab)
                for (int c = 0; c < dim; c++) sums[ids[r] * dim + c] += check::to_double(g[r * dim + c]);
        for (size_t i = 0; i < dref.size(); i++) dref[i] += sums[i];
        const std::string b = "embedding_backward" + tag;
        const int threads = std::min(256, (dim + 31) / 32 * 32);
        if (check::no_error(b, [&] {
                emu::launch(embedding_backward, std::max<int>(1, (int)uniq.size() / 2), threads,
                            0, dtable.data(), g.data(), du.data(), doff.data(), dpos.data(),
                            (int)uniq.size(), dim);
            }))
            check::close(b, dtable, dref);
    }
    return check::finish();
}
