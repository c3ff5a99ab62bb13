// matmul_v4_tensorcore.cu: C[m,n] = (accumulate ? C : 0) + op(A)·op(B) (+ bias[n]) on tensor cores.
//
// Same contract as v1 (layouts ta/tb, fp32 sums, bias may be null), bf16 storage only: the
// kernel exists when the file is compiled with -DPRETRAIN_BF16; the fp32 module is empty.
//
// Idea of this version: a tensor core multiplies small matrix tiles in one instruction. Through
// CUDA's wmma API a warp computes a 16x16x16 product (bf16 inputs, fp32 sums) per mma_sync, 4096
// multiply-adds, where v3's threads did one FMA each per instruction.
// - A block of 8 warps computes a 128x128 tile of C; warp w owns the 64x32 piece at rows
//   64*(w/4), columns 32*(w%4): 4x2 accumulator fragments, 64 floats per thread. Per 16-wide
//   step of k it loads 4 fragments of op(A) and 2 of op(B) from shared memory and does 8 mma_sync.
// - k is walked in steps of BK = 32. The tiles are copied to shared memory *as the operands are
//   stored* (16-byte chunks along the contiguous axis), and the layout is handled by the
//   fragment type instead of by transposing: op(A) stored [m,k] is a row_major matrix_a, A
//   stored [k,m] is the same numbers seen col_major; likewise for B. So every layout copies at
//   full width and the kernel is compiled once per (ta, tb) pair from one template.
// - Each shared row is padded by 8 bf16 (16 bytes): rows of 80 or 272 bytes put the 8 rows a
//   fragment load touches at once in 8 different 16-byte bank groups (no bank conflicts), and
//   keep every fragment pointer 32-byte aligned as wmma requires.
// - A 3-stage pipeline with cp.async: while the tensor cores work on one k-tile, the next two
//   are on their way from global to shared memory, copied without passing through registers
//   (so no registers are spent on staging and no thread waits for the loads). One barrier per
//   k-tile: after it, every thread is done with the tile before, whose stage is refilled.
//   cp.async takes a source size, and zero-fills the rest of the 16-byte chunk, which handles the
//   right and bottom edges. When a row length is not a multiple of 8 elements or a pointer is
//   not 16-byte aligned, the chunk is copied element by element with plain loads instead.
//   The inline PTX lives in three small helpers with emulator fallbacks under PRETRAIN_EMU.
// - Epilogue through shared memory: a fragment's element-to-thread mapping is opaque, so each
//   warp stores one 16x16 fp32 fragment at a time into its own 1 KB of (now free) shared memory,
//   then each lane takes 8 consecutive values of one row, adds bias and the old C, rounds to bf16
//   once, and writes 16 bytes (or element by element at the edges).
// Next step (not here): on sm_90a, TMA loads with wgmma (warp-group MMA, asynchronous, fed from
// shared memory directly), which is how cuBLAS reaches Hopper's peak; wmma compiles to the
// older mma.sync, which cannot.
//
// Launch: block = 256 threads (8 warps), at most 128 registers each so that 2 blocks fit an SM;
// grid = (ceil(m/128), ceil(n/128)); dynamic shared memory SMEM_BYTES = 61440 (above the default
// 48 KB limit: the host raises the kernel's limit first).
#include "common.cuh"

#ifdef PRETRAIN_BF16
#include <mma.h>
using namespace nvcuda;

#define BM 128
#define BN 128
#define BK 32
#define SKEW 8  // bf16 of padding per shared row
#define THREADS 256

// Elements of one stage's A and B regions: room for either layout of each operand.
// A: [BM][BK+SKEW] (stored [m,k]) or [BK][BM+SKEW] (stored [k,m]); B likewise.
#define A_STAGE (BM * (BK + SKEW) > BK * (BM + SKEW) ? BM * (BK + SKEW) : BK * (BM + SKEW))
#define B_STAGE (BN * (BK + SKEW) > BK * (BN + SKEW) ? BN * (BK + SKEW) : BK * (BN + SKEW))
#define STAGES 3
#define SMEM_BYTES (STAGES * (A_STAGE + B_STAGE) * 2)  // 61440; src/tensor/cuda/matmul.rs launches with it

// ---- cp.async: a 16-byte global -> shared copy that does not wait (sm_80+) ----
// Copies `bytes` (0..16) from src and zero-fills the rest of the 16 bytes at dst.
// Under PRETRAIN_EMU (the CPU emulator, tools/cuda-emu) the three helpers call the emulator's
// deferred copies, which land only at the wait: a missing wait shows up there as wrong results.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int bytes) {
#ifdef PRETRAIN_EMU
    emu::cp_async(dst, src, 16, bytes);
#else
    unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src),
                 "r"(bytes));
#endif
}

// Closes the group of copies issued so far by this thread.
__device__ __forceinline__ void cp_async_commit() {
#ifdef PRETRAIN_EMU
    emu::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most N groups of this thread's copies are still in flight.
template <int N> __device__ __forceinline__ void cp_async_wait() {
#ifdef PRETRAIN_EMU
    emu::cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<size_t>(p) & 15) == 0;
}

// Copies the ROWS x COLS tile at (r0, c0) of the row-major [rows, cols] matrix g into shared
// memory s (row stride LDS), zero outside the matrix. `vec`: cols % 8 == 0 and g 16-byte aligned,
// so every 8-element chunk is 16-byte aligned and goes by cp.async.
template <int ROWS, int COLS, int LDS>
__device__ __forceinline__ void copy_tile(floatX* s, const floatX* g, int rows, int cols, int r0,
                                          int c0, bool vec) {
    constexpr int PER_ROW = COLS / 8;
    constexpr int CHUNKS = ROWS * PER_ROW;
    static_assert(CHUNKS % THREADS == 0, "every thread copies the same number of chunks");
#pragma unroll
    for (int it = 0; it < CHUNKS / THREADS; it++) {
        const int ch = it * THREADS + threadIdx.x;
        const int r = ch / PER_ROW, cc = (ch % PER_ROW) * 8;
        const int gr = r0 + r, gc = c0 + cc;
        int left = gr < rows ? cols - gc : 0;  // elements of this chunk inside the matrix
        left = left < 0 ? 0 : (left > 8 ? 8 : left);
        floatX* dst = s + r * LDS + cc;
        const floatX* src = g + (size_t)gr * cols + gc;
        if (vec) {
            cp_async16(dst, left > 0 ? src : g, left * 2);
        } else {
            for (int q = 0; q < 8; q++) dst[q] = q < left ? src[q] : from_float<floatX>(0.0f);
        }
    }
}

// Picks one of two types at compile time (std::conditional, without the standard library).
template <bool C, typename T, typename F> struct Pick {
    typedef T type;
};
template <typename T, typename F> struct Pick<false, T, F> {
    typedef F type;
};

// Eight bf16 written with one 16-byte store.
struct alignas(16) Eight {
    floatX v[8];
};

template <bool TA, bool TB>
__device__ __forceinline__ void gemm_tc(floatX* c, const floatX* a, const floatX* b,
                                        const floatX* bias, int m, int k, int n, int accumulate,
                                        unsigned char* smem) {
    typedef typename Pick<TA, wmma::col_major, wmma::row_major>::type LayoutA;
    typedef typename Pick<TB, wmma::col_major, wmma::row_major>::type LayoutB;
    constexpr int LDA = TA ? BM + SKEW : BK + SKEW;  // shared row stride of A's tile
    constexpr int LDB = TB ? BK + SKEW : BN + SKEW;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;  // this warp's piece of the tile
    const int row0 = blockIdx.x * BM, col0 = blockIdx.y * BN;
    floatX* sa = reinterpret_cast<floatX*>(smem);  // stage s: sa + s * A_STAGE
    floatX* sb = sa + STAGES * A_STAGE;            // stage s: sb + s * B_STAGE
    const bool vec_a = (TA ? m : k) % 8 == 0 && aligned16(a);
    const bool vec_b = (TB ? k : n) % 8 == 0 && aligned16(b);

    // Issues the copies of the k-tile starting at k0 into `stage`, as one cp.async group.
    auto load_stage = [&](int stage, int k0) {
        floatX* as = sa + stage * A_STAGE;
        floatX* bs = sb + stage * B_STAGE;
        if (!TA)
            copy_tile<BM, BK, LDA>(as, a, m, k, row0, k0, vec_a);  // A stored [m,k]
        else
            copy_tile<BK, BM, LDA>(as, a, k, m, k0, row0, vec_a);  // A stored [k,m]
        if (!TB)
            copy_tile<BK, BN, LDB>(bs, b, k, n, k0, col0, vec_b);  // B stored [k,n]
        else
            copy_tile<BN, BK, LDB>(bs, b, n, k, col0, k0, vec_b);  // B stored [n,k]
        cp_async_commit();
    };

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    // k-tile t lives in stage t % STAGES. Start the first STAGES-1 tiles. Every step commits
    // exactly one group (empty past the last tile), so "tile t has landed" is always "at most
    // STAGES-2 groups still in flight".
    const int tiles = ceil_div(k, BK);
#pragma unroll
    for (int t = 0; t < STAGES - 1; t++) {
        if (t < tiles)
            load_stage(t, t * BK);
        else
            cp_async_commit();
    }
    for (int t = 0; t < tiles; t++) {
        cp_async_wait<STAGES - 2>();  // this thread's copies of tile t are done
        __syncthreads();  // ... and everyone's; and everyone is done computing tile t-1
        // Refill the stage of tile t-1 with tile t+STAGES-1.
        const int next = t + STAGES - 1;
        if (next < tiles)
            load_stage(next % STAGES, next * BK);
        else
            cp_async_commit();
        const floatX* as = sa + (t % STAGES) * A_STAGE;
        const floatX* bs = sb + (t % STAGES) * B_STAGE;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA> fa[4];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB> fb[2];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = wm + 16 * i;  // op(A)[r, kk] is as[r][kk], or as[kk][r] when TA
                wmma::load_matrix_sync(fa[i], as + (TA ? kk * LDA + r : r * LDA + kk), LDA);
            }
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const int s = wn + 16 * j;  // op(B)[kk, s] is bs[kk][s], or bs[s][kk] when TB
                wmma::load_matrix_sync(fb[j], bs + (TB ? s * LDB + kk : kk * LDB + s), LDB);
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
    }
    cp_async_wait<0>();  // only empty groups are left, but be exact
    __syncthreads();     // every warp is done with the pipeline's shared memory

    // Epilogue. The pipeline's shared memory is free now; each warp uses 16x16 floats of it.
    float* scratch = reinterpret_cast<float*>(smem) + warp * 256;
    const int r = lane / 2, cc = (lane % 2) * 8;  // this lane's row and 8 columns of a fragment
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 2; j++) {
            wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();
            const int gr = row0 + wm + 16 * i + r, gc = col0 + wn + 16 * j + cc;
            if (gr < m) {
                int left = n - gc;
                left = left < 0 ? 0 : (left > 8 ? 8 : left);
                float v[8];
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    v[q] = scratch[r * 16 + cc + q];
                    if (bias && q < left) v[q] += to_float(bias[gc + q]);
                }
                floatX* dst = c + (size_t)gr * n + gc;
                if (left == 8 && aligned16(dst)) {
                    Eight out;
                    Eight old;
                    if (accumulate) old = *reinterpret_cast<const Eight*>(dst);
#pragma unroll
                    for (int q = 0; q < 8; q++)
                        out.v[q] = from_float<floatX>(accumulate ? v[q] + to_float(old.v[q]) : v[q]);
                    *reinterpret_cast<Eight*>(dst) = out;
                } else {
#pragma unroll
                    for (int q = 0; q < 8; q++)  // unrolled: v[] stays in registers
                        if (q < left)
                            dst[q] = from_float<floatX>(accumulate ? v[q] + to_float(dst[q]) : v[q]);
                }
            }
            __syncwarp();  // the warp has read the scratch before the next fragment lands there
        }
    }
}

extern "C" __global__ void __launch_bounds__(THREADS, 2)
    matmul_v4(floatX* c, const floatX* a, const floatX* b, const floatX* bias, int m, int k, int n,
              int ta, int tb, int accumulate) {
    // The kernel has no static shared memory, so this starts at the (aligned) base of the block's
    // shared memory; wmma needs 32-byte aligned fragment pointers.
    extern __shared__ __align__(16) unsigned char smem[];
    if (!ta && !tb)
        gemm_tc<false, false>(c, a, b, bias, m, k, n, accumulate, smem);
    else if (!ta && tb)
        gemm_tc<false, true>(c, a, b, bias, m, k, n, accumulate, smem);
    else if (ta && !tb)
        gemm_tc<true, false>(c, a, b, bias, m, k, n, accumulate, smem);
    else
        gemm_tc<true, true>(c, a, b, bias, m, k, n, accumulate, smem);
}
#endif  // PRETRAIN_BF16
