// Self-test of the emulator: reductions from kernels/common.cuh, shuffles, shared memory,
// barriers (including the bugs it must report), atomics, votes, bf16 rounding, wmma, and the
// out-of-bounds checks.
// emu-kernels: kernels/common.cuh
// emu-precisions: fp32
#include <sys/wait.h>
#include <mma.h>
#include "check.h"
#include "kernels/common.cuh"

// ---- kernels under test -----------------------------------------------------------------------
extern "C" __global__ void k_block_sum(float* out, const float* in) {
    const float v = in[blockIdx.x * blockDim.x + threadIdx.x];
    const float s = block_sum(v);
    const float s2 = block_sum(2.0f * v);  // called twice: the barriers make the slots reusable
    if (threadIdx.x == blockDim.x - 1) out[2 * blockIdx.x] = s, out[2 * blockIdx.x + 1] = s2;
}

extern "C" __global__ void k_warp_max(float* out, const float* in) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    out[i] = warp_max(in[i]);
}

// Every lane writes 5 shuffle results: idx, up (width 8), down, xor (width 16), idx (width 4).
extern "C" __global__ void k_shuffles(int* out, const int* in, int src, int d, int m) {
    const int i = threadIdx.x, v = in[i];
    out[5 * i + 0] = __shfl_sync(0xffffffffu, v, src);
    out[5 * i + 1] = __shfl_up_sync(0xffffffffu, v, d, 8);
    out[5 * i + 2] = __shfl_down_sync(0xffffffffu, v, d);
    out[5 * i + 3] = __shfl_xor_sync(0xffffffffu, v, m, 16);
    out[5 * i + 4] = __shfl_sync(0xffffffffu, v, src, 4);
}

// out[c, r] = in[r, c] through a 32x33 shared tile; block 32x8, grid over 32x32 tiles.
template <bool Barrier> __device__ void transpose(float* out, const float* in, int rows, int cols) {
    __shared__ float tile[32][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    for (int k = threadIdx.y; k < 32; k += 8) {
        const int r = blockIdx.y * 32 + k;
        if (r < rows && c < cols) tile[k][threadIdx.x] = in[(size_t)r * cols + c];
    }
    if (Barrier) __syncthreads();
    const int r = blockIdx.y * 32 + threadIdx.x;
    for (int k = threadIdx.y; k < 32; k += 8) {
        const int c2 = blockIdx.x * 32 + k;
        if (r < rows && c2 < cols) out[(size_t)c2 * rows + r] = tile[threadIdx.x][k];
    }
}
extern "C" __global__ void k_transpose(float* out, const float* in, int rows, int cols) {
    transpose<true>(out, in, rows, cols);
}
extern "C" __global__ void k_transpose_no_barrier(float* out, const float* in, int rows, int cols) {
    transpose<false>(out, in, rows, cols);
}

// Reverses each block's slice through dynamic shared memory (blockDim.x floats).
extern "C" __global__ void k_reverse_dynamic(float* out, const float* in) {
    extern __shared__ __align__(16) unsigned char smem[];
    float* s = reinterpret_cast<float*>(smem);
    const int base = blockIdx.x * blockDim.x;
    s[threadIdx.x] = in[base + threadIdx.x];
    __syncthreads();
    out[base + threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

extern "C" __global__ void k_divergent_barrier(float* out) {
    if (threadIdx.x < 16) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1.0f;
}
extern "C" __global__ void k_early_return(float* out, int n) {
    if ((int)threadIdx.x >= n) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}
extern "C" __global__ void k_shuffle_deadlock(float* out) {
    float v = 1.0f;
    if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    __syncthreads();
    out[threadIdx.x] = v;
}
extern "C" __global__ void k_write_past_end(float* out, int n) { out[n + threadIdx.x] = 1.0f; }
extern "C" __global__ void k_read_far(float* out, const float* in, int i) { out[0] = in[i]; }
extern "C" __global__ void k_smem_overrun(int words) {
    extern __shared__ __align__(16) unsigned char smem[];
    reinterpret_cast<float*>(smem)[words + threadIdx.x] = 0.0f;
}
extern "C" __global__ void k_read_unwritten_shared(float* out) {
    __shared__ float s[64];
    if (threadIdx.x < 32) s[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];  // s[32..63] never written
}

extern "C" __global__ void k_atomics(int* hist, float* sum, unsigned* maxv, const int* in, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicAdd(&hist[in[i] % 10], 1);
    atomicAdd(sum, (float)in[i]);
    atomicMax(maxv, (unsigned)in[i]);
}

extern "C" __global__ void k_votes(unsigned* out, int* count, const int* in) {
    const int p = in[threadIdx.x] > 0;
    const unsigned b = __ballot_sync(0xffffffffu, p);
    const int all = __all_sync(0xffffffffu, p), any = __any_sync(0xffffffffu, p);
    const int c = __syncthreads_count(p);
    if (threadIdx.x % 32 == 0) out[3 * (threadIdx.x / 32)] = b, out[3 * (threadIdx.x / 32) + 1] = all,
                               out[3 * (threadIdx.x / 32) + 2] = any;
    if (threadIdx.x == 0) *count = c;
}

// Each thread copies 16 bytes into shared memory with cp.async; out = the block's slice reversed.
template <bool Wait> __device__ void copy_async(float* out, const float* in) {
    extern __shared__ __align__(16) unsigned char smem[];
    float* s = reinterpret_cast<float*>(smem);
    const int base = blockIdx.x * blockDim.x * 4;
    emu::cp_async(s + 4 * threadIdx.x, in + base + 4 * threadIdx.x, 16, 16);
    emu::cp_async_commit();
    if (Wait) emu::cp_async_wait(0);
    __syncthreads();
    for (int q = 0; q < 4; q++) out[base + 4 * threadIdx.x + q] = s[4 * (blockDim.x - 1 - threadIdx.x) + q];
}
extern "C" __global__ void k_cp_async(float* out, const float* in) { copy_async<true>(out, in); }
extern "C" __global__ void k_cp_async_no_wait(float* out, const float* in) { copy_async<false>(out, in); }

// C = A·B (+ C) with one warp per 16x16 tile of C; A row-major [m,k], B col-major ([n,k]).
using namespace nvcuda;
extern "C" __global__ void k_wmma(float* c, const __nv_bfloat16* a, const __nv_bfloat16* b, int m,
                                  int n, int k, int accumulate, int store_col_major) {
    const int warp = threadIdx.x / 32, tiles_n = n / 16;
    const int tm = (blockIdx.x * (blockDim.x / 32) + warp) / tiles_n;
    const int tn = (blockIdx.x * (blockDim.x / 32) + warp) % tiles_n;
    if (tm * 16 >= m) return;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
    const auto layout = store_col_major ? wmma::mem_col_major : wmma::mem_row_major;
    float* ctile = store_col_major ? c + (size_t)tn * 16 * m + tm * 16 : c + (size_t)tm * 16 * n + tn * 16;
    const unsigned ldc = store_col_major ? m : n;
    if (accumulate)
        wmma::load_matrix_sync(fc, ctile, ldc, layout);
    else
        wmma::fill_fragment(fc, 0.0f);
    for (int p = 0; p < k; p += 16) {
        wmma::load_matrix_sync(fa, a + (size_t)tm * 16 * k + p, k);
        wmma::load_matrix_sync(fb, b + (size_t)tn * 16 * k + p, k);
        wmma::mma_sync(fc, fa, fb, fc);
    }
    for (int i = 0; i < fc.num_elements; i++) fc.x[i] *= 0.5f;  // element-wise, layout-free
    wmma::store_matrix_sync(ctile, fc, ldc, layout);
}
// One warp, one M x N tile: C = A·B with A col-major [k][m] and B row-major [k][n].
template <int M, int N> __device__ void wmma_shape(float* c, const __nv_bfloat16* a, const __nv_bfloat16* b) {
    wmma::fragment<wmma::matrix_a, M, N, 16, __nv_bfloat16, wmma::col_major> fa;
    wmma::fragment<wmma::matrix_b, M, N, 16, __nv_bfloat16, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, M, N, 16, float> fc;
    wmma::fill_fragment(fc, 1.0f);
    wmma::load_matrix_sync(fa, a, M);
    wmma::load_matrix_sync(fb, b, N);
    wmma::mma_sync(fc, fa, fb, fc);
    wmma::store_matrix_sync(c, fc, N, wmma::mem_row_major);
}
extern "C" __global__ void k_wmma_32x8(float* c, const __nv_bfloat16* a, const __nv_bfloat16* b) { wmma_shape<32, 8>(c, a, b); }
extern "C" __global__ void k_wmma_8x32(float* c, const __nv_bfloat16* a, const __nv_bfloat16* b) { wmma_shape<8, 32>(c, a, b); }

extern "C" __global__ void k_wmma_lane_dependent(float* c) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
    wmma::fill_fragment(fc, 0.0f);
    fc.x[0] = threadIdx.x;  // which element a lane holds is hardware-specific
    wmma::store_matrix_sync(c, fc, 16, wmma::mem_row_major);
}

// ---- the tests ------------------------------------------------------------------------------
static void test_block_sum() {
    for (int block : {32, 96, 1024}) {
        const int grid = 3;
        emu::Array<float> in(grid * block, "in"), out(2 * grid, "out");
        check::fill(in);
        out.poison();
        std::vector<double> ref(2 * grid, 0.0);
        for (int b = 0; b < grid; b++)
            for (int t = 0; t < block; t++) ref[2 * b] += in[b * block + t], ref[2 * b + 1] += 2.0 * in[b * block + t];
        const std::string name = "block_sum block=" + std::to_string(block);
        if (check::no_error(name, [&] { emu::launch(k_block_sum, grid, block, 0, out.data(), in.data()); }))
            check::close(name, out, ref, 1e-6);
    }
    emu::Array<float> in(128, "in"), out(128, "out");
    check::fill(in);
    std::vector<double> ref(128);
    for (int i = 0; i < 128; i++) {
        ref[i] = -1e30;
        for (int j = i / 32 * 32; j < i / 32 * 32 + 32; j++) ref[i] = std::max(ref[i], (double)in[j]);
    }
    if (check::no_error("warp_max", [&] { emu::launch(k_warp_max, 2, 64, 0, out.data(), in.data()); }))
        check::close("warp_max", out, ref, 0.0);
}

// The reference follows the CUDA programming guide's description of each shuffle.
static void test_shuffles() {
    const int n = 64;
    emu::Array<int> in(n, "in"), out(5 * n, "out");
    for (int i = 0; i < n; i++) in[i] = 1000 + 7 * i;
    for (int src : {0, 5, 31, 37})
        for (int d : {1, 3})
            for (int m : {1, 6, 16}) {
                out.poison();
                std::vector<double> ref(5 * n);
                for (int i = 0; i < n; i++) {
                    const int lane = i % 32, w = i - lane;
                    auto v = [&](int l) { return (double)in[w + l]; };
                    ref[5 * i + 0] = v(src % 32);
                    const int seg8 = lane / 8 * 8;
                    ref[5 * i + 1] = lane - d >= seg8 ? v(lane - d) : v(lane);
                    ref[5 * i + 2] = lane + d < 32 ? v(lane + d) : v(lane);
                    const int seg16 = lane / 16 * 16, x = lane ^ m;
                    ref[5 * i + 3] = x < seg16 + 16 ? v(x) : v(lane);  // later groups: own value
                    ref[5 * i + 4] = v(lane / 4 * 4 + src % 4);
                }
                const std::string name = "shuffles src=" + std::to_string(src) + " d=" +
                                         std::to_string(d) + " m=" + std::to_string(m);
                if (check::no_error(name, [&] { emu::launch(k_shuffles, 1, n, 0, out.data(), in.data(), src, d, m); }))
                    check::close(name, out, ref, 0.0);
            }
}

static void test_transpose() {
    for (auto [rows, cols] : {std::pair{37, 45}, std::pair{64, 32}, std::pair{1, 70}}) {
        emu::Array<float> in((size_t)rows * cols, "in"), out((size_t)rows * cols, "out");
        check::fill(in);
        std::vector<double> ref((size_t)rows * cols);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) ref[(size_t)c * rows + r] = in[(size_t)r * cols + c];
        const dim3 grid((cols + 31) / 32, (rows + 31) / 32), block(32, 8);
        const std::string name = "transpose " + std::to_string(rows) + "x" + std::to_string(cols);
        out.poison();
        if (check::no_error(name, [&] { emu::launch(k_transpose, grid, block, 0, out.data(), in.data(), rows, cols); }))
            check::close(name, out, ref, 0.0);
#ifndef __SANITIZE_THREAD__  // under EMU_TSAN=1 this deliberate race is reported (checked by hand)
        // Without the barrier some threads read tile slots nobody wrote yet (NaN) or stale ones.
        out.poison();
        emu::launch(k_transpose_no_barrier, grid, block, 0, out.data(), in.data(), rows, cols);
        bool wrong = false;
        for (size_t i = 0; i < ref.size(); i++) wrong |= !(out[i] == ref[i]);
        check::report(wrong, name + ": missing barrier gives wrong results", wrong ? "" : "not detected");
#endif
    }
    emu::Array<float> in(3 * 96, "in"), out(3 * 96, "out");
    check::fill(in);
    std::vector<double> ref(in.size());
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < 96; t++) ref[b * 96 + t] = in[b * 96 + 95 - t];
    out.poison();
    if (check::no_error("dynamic shared memory", [&] { emu::launch(k_reverse_dynamic, 3, 96, 96 * sizeof(float), out.data(), in.data()); }))
        check::close("dynamic shared memory", out, ref, 0.0);
}

static void test_cp_async() {
    emu::Array<float> in(2 * 64 * 4, "in"), out(2 * 64 * 4, "out");
    check::fill(in);
    std::vector<double> ref(in.size());
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 64; t++)
            for (int q = 0; q < 4; q++) ref[b * 256 + 4 * t + q] = in[b * 256 + 4 * (63 - t) + q];
    out.poison();
    if (check::no_error("cp.async + wait", [&] { emu::launch(k_cp_async, 2, 64, 1024, out.data(), in.data()); }))
        check::close("cp.async + wait", out, ref, 0.0);
    out.poison();
    emu::launch(k_cp_async_no_wait, 2, 64, 1024, out.data(), in.data());
    int stale = 0;
    for (float v : out) stale += std::isnan(v);
    check::report(stale > 0, "cp.async without a wait reads stale shared memory",
                  std::to_string(stale) + " of " + std::to_string(out.size()) + " values");
}

static void test_reported_bugs() {
    emu::Array<float> out(256, "out");
    check::expect_error("divergent __syncthreads is reported", "different barriers",
                        [&] { emu::launch(k_divergent_barrier, 1, 64, 0, out.data()); });
    check::expect_error("early return before __syncthreads is reported", "returned while",
                        [&] { emu::launch(k_early_return, 1, 64, 0, out.data(), 40); });
    check::no_error("uniform early return is fine", [&] { emu::launch(k_early_return, 1, 64, 0, out.data(), 64); });
    check::expect_error("shuffle by half a warp, then a barrier: deadlock", "deadlock",
                        [&] { emu::launch(k_shuffle_deadlock, 1, 64, 0, out.data()); });
    emu::Array<float> odd(250, "odd");  // 1000 bytes: 24 bytes of slack before the guard page
    check::expect_error("write just past a buffer is reported", "offset 1000 of buffer 'odd'",
                        [&] { emu::launch(k_write_past_end, 1, 3, 0, odd.data(), 250); });
    check::expect_error("write past the requested dynamic shared memory", "beyond the 64 bytes",
                        [&] { emu::launch(k_smem_overrun, 1, 32, 64, 8); });
    check::expect_error("block of 2000 threads is refused", "invalid block",
                        [&] { emu::launch(k_write_past_end, 1, 2000, 0, out.data(), 0); });
    emu::Array<float> c(256, "c");
    check::expect_error("lane-dependent fragment element is reported", "different fragment",
                        [&] { emu::launch(k_wmma_lane_dependent, 1, 32, 0, c.data()); });
    out.poison();
    emu::launch(k_read_unwritten_shared, 1, 64, 0, out.data());
    check::report(out[10] == 1.0f && std::isnan(out[40]), "unwritten shared memory reads as NaN", "");

#ifndef __SANITIZE_THREAD__  // TSan takes over SIGSEGV
    // A read far past a buffer hits the guard page: the fault handler names it and exits(3).
    // emu::Array puts 100 floats (400 bytes, rounded up to 512) right before a 4 KiB guard page,
    // so element 128 is the guard page's first byte and element 128 + 512 is 2 KiB inside it.
    // The index is aimed at our own guard page, never at whatever else happens to be mapped.
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        std::freopen("/dev/null", "w", stderr);
        emu::Array<float> in(100, "in");
        emu::launch(k_read_far, 1, 1, 0, out.data(), in.data(), 128 + 512);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    check::report(WIFEXITED(status) && WEXITSTATUS(status) == 3, "read far past a buffer faults", "");
#endif
}

static void test_atomics_votes() {
    const int n = 1001;
    emu::Array<int> in(n, "in"), hist(10, "hist");
    emu::Array<float> sum(1, "sum");
    emu::Array<unsigned> maxv(1, "max");
    for (int i = 0; i < n; i++) in[i] = (int)(check::rng() % 1000);
    std::vector<double> h(10, 0.0), s(1, 0.0), mx(1, 0.0);
    for (int i = 0; i < n; i++) h[in[i] % 10]++, s[0] += in[i], mx[0] = std::max(mx[0], (double)in[i]);
    if (check::no_error("atomics", [&] { emu::launch(k_atomics, 4, 256, 0, hist.data(), sum.data(), maxv.data(), in.data(), n); })) {
        check::close("atomicAdd int (histogram)", hist, h, 0.0);
        check::close("atomicAdd float (sum of integers, exact)", sum, s, 0.0);
        check::close("atomicMax unsigned", maxv, mx, 0.0);
    }
    emu::Array<int> pin(96, "pin"), count(1, "count");
    emu::Array<unsigned> votes(9, "votes");
    for (int i = 0; i < 96; i++) pin[i] = i < 32 ? 1 : (i < 64 ? 0 : (i % 3 == 0));
    std::vector<double> ref(9, 0.0);
    ref[0] = 0xffffffffu, ref[1] = 1, ref[2] = 1, ref[3] = 0, ref[4] = 0, ref[5] = 0;
    double b = 0, c = 64 + 0;
    for (int l = 0; l < 32; l++) if ((64 + l) % 3 == 0) b += std::ldexp(1.0, l);
    ref[6] = b, ref[7] = 0, ref[8] = 1;
    c = 32;
    for (int l = 64; l < 96; l++) c += l % 3 == 0;
    if (check::no_error("votes", [&] { emu::launch(k_votes, 1, 96, 0, votes.data(), count.data(), pin.data()); })) {
        check::close("__ballot_sync / __all_sync / __any_sync", votes, ref, 0.0);
        check::close("__syncthreads_count", count, {c}, 0.0);
    }
}

// bf16 rounding checked against an independent reference: the nearest bf16 value computed in
// double (ties to the even mantissa), on specials and on random bit patterns.
static void test_bf16() {
    auto value = [](unsigned bits) {  // a bf16 bit pattern as a number, exponent unbounded
        const int e = bits >> 7 & 0xff, m = bits & 0x7f;
        const double v = e == 0 ? std::ldexp(m / 128.0, -126) : std::ldexp(1 + m / 128.0, e - 127);
        return bits & 0x8000 ? -v : v;
    };
    auto reference = [&](float f) -> unsigned {
        const unsigned u = __float_as_uint(f);
        if (std::isnan(f)) return 0x7fff;
        if (std::isinf(f)) return u >> 16;
        const unsigned lo = u >> 16, hi = lo + 1;  // truncated, and one ulp further from zero
        const double elo = std::fabs((double)f - value(lo)), ehi = std::fabs(value(hi) - (double)f);
        if (elo != ehi) return elo < ehi ? lo : hi;  // 0x7f80 (infinity) when past the max
        return (lo & 1) ? hi : lo;
    };
    std::vector<float> cases = {0.0f, -0.0f, 1.0f, 1.00390625f, 1.01171875f, -1.00390625f, 3.4e38f,
                                3.3961e38f, -3.3961e38f, INFINITY, -INFINITY, NAN, 1e-40f, -1e-45f,
                                __uint_as_float(0x7f7fffffu), __uint_as_float(0x00008000u)};
    for (int i = 0; i < 200000; i++) cases.push_back(__uint_as_float((unsigned)check::rng()));
    int bad = 0;
    unsigned first = 0;
    for (float f : cases) {
        const unsigned got = __bfloat16_as_ushort(__float2bfloat16_rn(f));
        if (got != reference(f) && !bad++) first = __float_as_uint(f);
        if (__float2bfloat16(f).__x != got) bad++;
        if (!std::isnan(f) && __bfloat162float(__ushort_as_bfloat16(got)) != (float)__nv_bfloat16(f)) bad++;
    }
    check::report(bad == 0, "bf16 round-to-nearest-even, 200k values",
                  bad ? emu::format("%d mismatches, first input bits 0x%08x", bad, first) : "");
}

static void test_wmma() {
    for (auto [m, n, k] : {std::tuple{16, 16, 16}, std::tuple{48, 32, 64}}) {
        for (int acc = 0; acc < 2; acc++)
            for (int colmajor = 0; colmajor < 2; colmajor++) {
                emu::Array<__nv_bfloat16> a((size_t)m * k, "a"), b((size_t)n * k, "b");
                emu::Array<float> c((size_t)m * n, "c");
                check::fill(a);
                check::fill(b);
                check::fill(c);
                std::vector<double> ref((size_t)m * n);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        const size_t at = colmajor ? (size_t)j * m + i : (size_t)i * n + j;
                        double s = acc ? c[at] : 0.0;
                        for (int p = 0; p < k; p++) s += (double)(float)a[(size_t)i * k + p] * (float)b[(size_t)j * k + p];
                        ref[at] = 0.5 * s;
                    }
                const int warps = (m / 16) * (n / 16);
                const std::string name = emu::format("wmma m=%d n=%d k=%d accumulate=%d col_major=%d", m, n, k, acc, colmajor);
                if (check::no_error(name, [&] { emu::launch(k_wmma, (warps + 1) / 2, 64, 0, c.data(), a.data(), b.data(), m, n, k, acc, colmajor); }))
                    check::close(name, c, ref, 1e-5);
            }
    }
    for (auto [m, n] : {std::pair{32, 8}, std::pair{8, 32}}) {
        emu::Array<__nv_bfloat16> a(16 * m, "a"), b(16 * n, "b");
        emu::Array<float> c(m * n, "c");
        check::fill(a);
        check::fill(b);
        c.poison();
        std::vector<double> ref(m * n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 1.0;
                for (int p = 0; p < 16; p++) s += (double)(float)a[p * m + i] * (float)b[p * n + j];
                ref[i * n + j] = s;
            }
        const std::string name = emu::format("wmma m%dn%dk16, A col-major, B row-major", m, n);
        if (check::no_error(name, [&] { emu::launch(m == 32 ? k_wmma_32x8 : k_wmma_8x32, 1, 32, 0, c.data(), a.data(), b.data()); }))
            check::close(name, c, ref, 1e-6);
    }
    emu::Array<__nv_bfloat16> a(16 * 20, "a"), b(16 * 20, "b");
    emu::Array<float> c(256, "c");
    check::expect_error("wmma ldm of 20 bf16 (40 bytes) is reported", "multiple of 16 bytes",
                        [&] { emu::launch(k_wmma, 1, 32, 0, c.data(), a.data(), b.data(), 16, 16, 20, 0, 0); });
}

int main() {
    test_block_sum();
    test_shuffles();
    test_transpose();
    test_cp_async();
    test_reported_bugs();
    test_atomics_votes();
    test_bf16();
    test_wmma();
    return check::finish();
}
