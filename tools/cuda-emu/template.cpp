// TEMPLATE for an emulator test: copy to tools/cuda-emu/tests/<name>.cpp and edit.
// It tests kernels/cast.cu's cast_to_float: replace the kernel, the inputs and the reference.
//
// The two lines below are read by run.sh: the kernel files the test needs (the test is
// skipped when one is missing) and the precisions to build (bf16 = -DPRETRAIN_BF16).
// emu-kernels: kernels/cast.cu
// emu-precisions: fp32 bf16
#include "check.h"           // emu.h + helpers: check::fill, check::close, check::finish
#include "kernels/cast.cu"   // the kernel file, unchanged, from the repository root

int main() {
    // Small and odd sizes: they find edge bugs; big sizes only make the test slow.
    for (int n : {1, 31, 257}) {
        // emu::Array is "device memory": guarded against out-of-bounds access.
        emu::Array<floatX> in(n, "in");
        emu::Array<float> out(n, "out");
        check::fill(in, -2.0, 2.0);  // random values, already rounded to floatX
        out.poison();                // NaN everywhere: an element the kernel skips shows up

        // The reference in double, from the (rounded) inputs.
        std::vector<double> ref(n);
        for (int i = 0; i < n; i++) ref[i] = check::to_double(in[i]);

        // launch(kernel, grid, block, dynamic shared bytes, args...) like kernel<<<...>>>(args).
        const std::string name = "cast_to_float n=" + std::to_string(n);
        if (check::no_error(name, [&] {
                emu::launch(cast_to_float, (n + 127) / 128, 128, 0, out.data(), in.data(), (size_t)n);
            }))
            // Tolerance relative to max|ref|; check::tolerance is 1e-5 (fp32) or 1e-2 (bf16).
            check::close(name, out, ref, 0.0);
    }
    return check::finish();  // prints the summary; exit status 1 on any failure
}
