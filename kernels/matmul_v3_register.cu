// matmul_v3_register.cu: C[m,n] = (accumulate ? C : 0) + op(A)·op(B) (+ bias[n]), register tiles.
//
// Same contract as v1 (layouts ta/tb, floatX storage, fp32 sums, bias may be null).
//
// Idea of this version: in v2 every multiply-add needs two shared-memory reads, and shared
// memory, not arithmetic, is the limit. Here each thread computes an 8x8 micro-tile of C held in
// 64 registers: per step of k it reads 8 values of op(A) and 8 of op(B) from shared memory and
// does 64 multiply-adds with them, 4 FMAs per shared read instead of 0.5.
// - A block of 256 threads computes a 128x128 tile of C, walking k in steps of BK = 8.
// - Shared tiles are stored k-major, as[p][r] and bs[p][s], so the 8 values a thread needs at
//   step p are two float4 reads from each. A thread's 8 rows are r = 4*ty + {0..3} and
//   64 + 4*ty + {0..3} (columns likewise with tx): adjacent threads read adjacent float4s, so a
//   quarter-warp reads 128 consecutive bytes, free of bank conflicts.
// - Copies to shared memory read the operand as stored, 4 consecutive elements per thread (one
//   16-byte load for fp32, 8 bytes for bf16) when aligned and in range, otherwise element by
//   element with zeros past the edges. Rows of a tile are padded to 132 floats so the transposed
//   writes (operand stored the other way) spread over the banks.
// - The next tiles are loaded into registers while the current ones are multiplied, so global
//   memory latency overlaps the arithmetic with one shared buffer.
//
// Launch: block = 256 threads (tx = t % 16 across columns, ty = t / 16 across rows);
// grid = (ceil(m/128), ceil(n/128)).
#include "common.cuh"

#define BM 128
#define BN 128
#define BK 8
#define PAD 4  // keeps rows 16-byte aligned: 132 floats = 528 bytes

// Four consecutive floatX moved with one instruction (16 bytes fp32, 8 bytes bf16).
struct alignas(4 * sizeof(floatX)) Four {
    floatX v[4];
};

__device__ __forceinline__ bool aligned4(const floatX* p) {
    return (reinterpret_cast<size_t>(p) % sizeof(Four)) == 0;
}

// v[0..4] = p[0..4], where only the first `valid` (0..4) elements exist; the rest read as zero.
__device__ __forceinline__ void load4(const floatX* p, int valid, float v[4]) {
    if (valid == 4 && aligned4(p)) {
        Four f = *reinterpret_cast<const Four*>(p);
#pragma unroll
        for (int q = 0; q < 4; q++) v[q] = to_float(f.v[q]);
    } else {
#pragma unroll
        for (int q = 0; q < 4; q++) v[q] = q < valid ? to_float(p[q]) : 0.0f;
    }
}

// p[0..valid] = v[0..valid] (+ what p held, when accumulating).
__device__ __forceinline__ void store4(floatX* p, int valid, const float v[4], int accumulate) {
    if (valid == 4 && aligned4(p)) {
        Four f;
        Four old;
        if (accumulate) old = *reinterpret_cast<const Four*>(p);
#pragma unroll
        for (int q = 0; q < 4; q++)
            f.v[q] = from_float<floatX>(accumulate ? v[q] + to_float(old.v[q]) : v[q]);
        *reinterpret_cast<Four*>(p) = f;
    } else {
        for (int q = 0; q < valid; q++)
            p[q] = from_float<floatX>(accumulate ? v[q] + to_float(p[q]) : v[q]);
    }
}

__device__ __forceinline__ int clamp4(int left) { return left < 0 ? 0 : (left > 4 ? 4 : left); }

// One thread's share of the next op(A) and op(B) tiles (4 values each) and where they go.
struct Staged {
    float a[4], b[4];
};

// Loads this thread's 4 elements of the op(A) tile at (row0, k0) and of the op(B) tile at
// (k0, col0). Each layout has its own thread mapping so that a warp reads contiguous memory.
__device__ __forceinline__ void load_tiles(Staged& s, const floatX* a, const floatX* b, int m,
                                           int k, int n, int ta, int tb, int row0, int col0,
                                           int k0) {
    const int t = threadIdx.x;
    if (!ta) {  // A stored [m,k]: thread t takes row t/2, elements k0 + 4*(t%2) .. +4
        int r = row0 + t / 2, p = k0 + (t % 2) * 4;
        int valid = r < m ? clamp4(k - p) : 0;
        load4(a + (size_t)(r < m ? r : 0) * k + p, valid, s.a);
    } else {  // A stored [k,m]: thread t takes k-row t/32, elements row0 + 4*(t%32) .. +4
        int p = k0 + t / 32, r = row0 + (t % 32) * 4;
        int valid = p < k ? clamp4(m - r) : 0;
        load4(a + (size_t)(p < k ? p : 0) * m + r, valid, s.a);
    }
    if (!tb) {  // B stored [k,n]: k-row t/32, elements col0 + 4*(t%32) .. +4
        int p = k0 + t / 32, c = col0 + (t % 32) * 4;
        int valid = p < k ? clamp4(n - c) : 0;
        load4(b + (size_t)(p < k ? p : 0) * n + c, valid, s.b);
    } else {  // B stored [n,k]: row t/2 of B (a column of op(B)), elements k0 + 4*(t%2) .. +4
        int c = col0 + t / 2, p = k0 + (t % 2) * 4;
        int valid = c < n ? clamp4(k - p) : 0;
        load4(b + (size_t)(c < n ? c : 0) * k + p, valid, s.b);
    }
}

// Writes the staged values into the k-major shared tiles, mirroring load_tiles' mapping.
__device__ __forceinline__ void store_tiles(const Staged& s, float (*as)[BM + PAD],
                                            float (*bs)[BN + PAD], int ta, int tb) {
    const int t = threadIdx.x;
    if (!ta) {
        int r = t / 2, p = (t % 2) * 4;
#pragma unroll
        for (int q = 0; q < 4; q++) as[p + q][r] = s.a[q];
    } else {
        int p = t / 32, r = (t % 32) * 4;
        *reinterpret_cast<float4*>(&as[p][r]) = make_float4(s.a[0], s.a[1], s.a[2], s.a[3]);
    }
    if (!tb) {
        int p = t / 32, c = (t % 32) * 4;
        *reinterpret_cast<float4*>(&bs[p][c]) = make_float4(s.b[0], s.b[1], s.b[2], s.b[3]);
    } else {
        int c = t / 2, p = (t % 2) * 4;
#pragma unroll
        for (int q = 0; q < 4; q++) bs[p + q][c] = s.b[q];
    }
}

extern "C" __global__ void __launch_bounds__(256)
    matmul_v3(floatX* c, const floatX* a, const floatX* b, const floatX* bias, int m, int k,
              int n, int ta, int tb, int accumulate) {
    __shared__ __align__(16) float as[BK][BM + PAD];  // as[p][r] = op(A)[row0 + r, k0 + p]
    __shared__ __align__(16) float bs[BK][BN + PAD];  // bs[p][s] = op(B)[k0 + p, col0 + s]
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int row0 = blockIdx.x * BM, col0 = blockIdx.y * BN;

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;

    Staged next;
    if (k > 0) load_tiles(next, a, b, m, k, n, ta, tb, row0, col0, 0);
    for (int k0 = 0; k0 < k; k0 += BK) {
        store_tiles(next, as, bs, ta, tb);
        __syncthreads();
        // Start fetching the following tiles; they arrive while we multiply these.
        if (k0 + BK < k) load_tiles(next, a, b, m, k, n, ta, tb, row0, col0, k0 + BK);
#pragma unroll
        for (int p = 0; p < BK; p++) {
            float x[8], y[8];
            float4 x0 = *reinterpret_cast<const float4*>(&as[p][4 * ty]);
            float4 x1 = *reinterpret_cast<const float4*>(&as[p][64 + 4 * ty]);
            float4 y0 = *reinterpret_cast<const float4*>(&bs[p][4 * tx]);
            float4 y1 = *reinterpret_cast<const float4*>(&bs[p][64 + 4 * tx]);
            x[0] = x0.x, x[1] = x0.y, x[2] = x0.z, x[3] = x0.w;
            x[4] = x1.x, x[5] = x1.y, x[6] = x1.z, x[7] = x1.w;
            y[0] = y0.x, y[1] = y0.y, y[2] = y0.z, y[3] = y0.w;
            y[4] = y1.x, y[5] = y1.y, y[6] = y1.z, y[7] = y1.w;
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 8; j++) acc[i][j] += x[i] * y[j];
        }
        __syncthreads();  // everyone is done with the tiles before they are overwritten
    }

    // Epilogue: add the bias, write (or add into) C, 4 columns at a time where possible.
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int r = row0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + i - 4);
        if (r >= m) continue;
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int col = col0 + half * 64 + 4 * tx;
            const int valid = clamp4(n - col);
            if (valid == 0) continue;
            float v[4];
#pragma unroll
            for (int q = 0; q < 4; q++) {
                v[q] = acc[i][half * 4 + q];
                if (bias && q < valid) v[q] += to_float(bias[col + q]);
            }
            store4(c + (size_t)r * n + col, valid, v, accumulate);
        }
    }
}
