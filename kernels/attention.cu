// attention.cu: fused causal self-attention, forward and backward (flash-attention style).
//
// What: for every batch b and head h, with q, k, v the head's rows of the packed qkv
//   (GPT-2's c_attn output [B, T, 3C]: q | k | v along the last axis, head h in columns
//   h*hs .. (h+1)*hs of each third, C = NH*hs):
//     S = q·kᵀ / sqrt(hs), masked to j <= i (causal);  P = softmax(S) per row;  out = P·v
//   out is [B, T, C] (heads side by side), lse[(b*NH + h)*T + i] = log Σ_j exp(S_ij).
//   Backward (dout given, D_i = Σ_d dout_id·out_id):
//     dv = Pᵀ·dout,  dP = dout·vᵀ,  dS = P ⊙ (dP − D),  dq = dS·k/sqrt(hs),  dk = dSᵀ·q/sqrt(hs)
//   The CPU twin is src/tensor/cpu/attention.rs.
//
// Idea of this version (v1: scalar fp32 FMAs, correctness first): never store the T×T matrix.
//   Forward: a block owns BQ = 16 query rows (4 warps × 4 rows) of one (b, h) and walks the
//   key/value tiles of 32 keys up to the causal limit, staged in shared memory. In a tile each
//   lane scores one key against the warp's 4 rows; an "online softmax" keeps per row the running
//   max m and sum l, and rescales the output accumulator by exp(m_old − m_new) when m grows.
//   Each lane accumulates P·v for head dimensions lane, lane+32, ... (hs ≤ 128). At the end
//   out = acc / l and lse = m + log l: the only thing backward needs besides q, k, v, out.
//   Backward (FlashAttention-2 split, deterministic, no atomics): attention_backward_preprocess
//   computes D; attention_backward_dkdv gives a block 16 keys and walks the query tiles at or
//   after them, recomputing P = exp(S − lse) to accumulate dk and dv; attention_backward_dq gives
//   a block 16 queries and walks the key tiles up to them for dq. P is recomputed twice (once per
//   kernel) instead of adding dq with atomics: more FLOPs, but a repeatable result.
//   Scratch: D, one float per (b, h, row).
//
// Launch (all: 128 threads; tiles heaviest-first so the long causal rows start early):
//   attention_forward:             grid B*NH*ceil(T/16), smem 4*(16*hs + 32*ks + 32*hs)
//   attention_backward_preprocess: grid ceil(B*NH*T/8), block 256 (one warp per row)
//   attention_backward_dkdv:       grid B*NH*ceil(T/16), smem 4*(2*16*hs + 2*32*ks + 64)
//   attention_backward_dq:         grid B*NH*ceil(T/16), smem 4*(2*16*hs + 2*32*ks)
//   with ks = hs + 1 for even hs, hs for odd (an odd row stride: lanes reading "their" row of a
//   tile hit 32 different banks). Above 48 KiB the host raises the function's smem limit.
#include "common.cuh"

// NVRTC has no <math.h> macros.
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

#define ATT_WARPS 4                        // warps per block
#define ATT_ROWS 4                         // rows each warp owns
#define ATT_BQ (ATT_WARPS * ATT_ROWS)      // rows a block owns (16)
#define ATT_BK 32                          // rows of a staged tile: one per lane
#define ATT_MAXC 4                         // head dimensions per lane: hs <= 32 * 4 = 128

// Row stride of a tile that each lane reads along its own row: odd, so conflict-free.
__device__ __forceinline__ int odd_stride(int hs) { return (hs % 2 == 0) ? hs + 1 : hs; }

// Where a block's work is: batch-head bh = b*NH + h and tile index, heaviest tile first when
// `reverse` (causal rows near the end of the sequence see the most keys).
struct AttTile {
    int b, h, bh, tile;
};
__device__ __forceinline__ AttTile att_tile(int T, int NH, bool reverse) {
    const int ntiles = ceil_div(T, ATT_BQ);
    const int bh = blockIdx.x / ntiles;
    const int k = blockIdx.x % ntiles;
    AttTile a;
    a.bh = bh;
    a.b = bh / NH;
    a.h = bh % NH;
    a.tile = reverse ? ntiles - 1 - k : k;
    return a;
}

extern "C" __global__ void attention_forward(floatX* out, float* lse, const floatX* qkv, int B,
                                             int T, int NH, int hs) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int ks = odd_stride(hs);
    float* qs = (float*)smem;        // [BQ][hs]  this block's queries, already scaled
    float* kt = qs + ATT_BQ * hs;    // [BK][ks]  a tile of keys
    float* vt = kt + ATT_BK * ks;    // [BK][hs]  the matching values
    const AttTile a = att_tile(T, NH, true);
    const int C = NH * hs, C3 = 3 * C;
    const int q0 = a.tile * ATT_BQ;
    const floatX* base = qkv + (size_t)a.b * T * C3 + (size_t)a.h * hs;
    const float scale = 1.0f / sqrtf((float)hs);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

    for (int e = threadIdx.x; e < ATT_BQ * hs; e += blockDim.x) {
        const int r = e / hs, d = e % hs, i = q0 + r;
        qs[e] = i < T ? to_float(base[(size_t)i * C3 + d]) * scale : 0.0f;
    }
    float m[ATT_ROWS], l[ATT_ROWS], acc[ATT_ROWS][ATT_MAXC];
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) acc[r][c] = 0.0f;
    }
    const float* myq = qs + warp * ATT_ROWS * hs;
    const int kend = min(q0 + ATT_BQ, T);  // the block's last row sees keys 0 .. kend-1
    for (int k0 = 0; k0 < kend; k0 += ATT_BK) {
        __syncthreads();  // the previous tile is used up (and qs is written)
        for (int e = threadIdx.x; e < ATT_BK * hs; e += blockDim.x) {
            const int j = e / hs, d = e % hs;
            const bool ok = k0 + j < T;
            const floatX* row = base + (size_t)(k0 + j) * C3;
            kt[j * ks + d] = ok ? to_float(row[C + d]) : 0.0f;
            vt[j * hs + d] = ok ? to_float(row[2 * C + d]) : 0.0f;
        }
        __syncthreads();
        // Scores of this lane's key against the warp's rows.
        const int j = k0 + lane;
        float s[ATT_ROWS];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) s[r] = 0.0f;
        const float* kr = kt + lane * ks;
        for (int d = 0; d < hs; d++) {
            const float kd = kr[d];
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) s[r] = fmaf(myq[r * hs + d], kd, s[r]);
        }
        // Online softmax: new running max, rescale what was summed so far, add this tile.
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            const int i = q0 + warp * ATT_ROWS + r;
            const float sr = (j <= i && j < T) ? s[r] : -INFINITY;
            const float mnew = fmaxf(m[r], warp_max(sr));
            const float p = sr == -INFINITY ? 0.0f : expf(sr - mnew);
            const float alpha = m[r] == -INFINITY ? 0.0f : expf(m[r] - mnew);
            l[r] = l[r] * alpha + warp_sum(p);
            m[r] = mnew;
            s[r] = p;
#pragma unroll
            for (int c = 0; c < ATT_MAXC; c++) acc[r][c] *= alpha;
        }
        // acc += P·v: key jj's weight comes from lane jj, v from shared memory.
        const int nk = min(ATT_BK, kend - k0);
        for (int jj = 0; jj < nk; jj++) {
            float vv[ATT_MAXC];
#pragma unroll
            for (int c = 0; c < ATT_MAXC; c++) {
                const int d = lane + 32 * c;
                vv[c] = d < hs ? vt[jj * hs + d] : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) {
                const float p = __shfl_sync(0xffffffffu, s[r], jj);
#pragma unroll
                for (int c = 0; c < ATT_MAXC; c++) acc[r][c] = fmaf(p, vv[c], acc[r][c]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        const int i = q0 + warp * ATT_ROWS + r;
        if (i >= T) continue;
        const float inv = 1.0f / l[r];
        floatX* orow = out + ((size_t)a.b * T + i) * C + (size_t)a.h * hs;
#pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) {
            const int d = lane + 32 * c;
            if (d < hs) orow[d] = from_float<floatX>(acc[r][c] * inv);
        }
        if (lane == 0) lse[(size_t)a.bh * T + i] = m[r] + logf(l[r]);
    }
}

// D[(b*NH + h)*T + i] = Σ_d dout·out over head h's columns of row (b, i). One warp per row.
extern "C" __global__ void attention_backward_preprocess(float* D, const floatX* dout,
                                                         const floatX* out, int B, int T, int NH,
                                                         int hs) {
    const int lane = threadIdx.x % 32;
    const size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    if (row >= (size_t)B * NH * T) return;  // whole warps leave together
    const int i = (int)(row % T);
    const size_t bh = row / T;
    const int b = (int)(bh / NH), h = (int)(bh % NH);
    const size_t off = ((size_t)b * T + i) * NH * hs + (size_t)h * hs;
    float sum = 0.0f;
    for (int d = lane; d < hs; d += 32) sum += to_float(dout[off + d]) * to_float(out[off + d]);
    sum = warp_sum(sum);
    if (lane == 0) D[row] = sum;
}

// dk, dv for 16 keys per block: walks the query tiles (32 queries, one per lane) at or after them.
extern "C" __global__ void attention_backward_dkdv(floatX* dqkv, const floatX* dout,
                                                   const floatX* qkv, const float* lse,
                                                   const float* D, int B, int T, int NH, int hs) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int qstride = odd_stride(hs);
    float* kown = (float*)smem;              // [BQ][hs]  this block's keys
    float* vown = kown + ATT_BQ * hs;        // [BQ][hs]  and values
    float* qt = vown + ATT_BQ * hs;          // [BK][qstride]  a tile of queries, scaled
    float* dot = qt + ATT_BK * qstride;      // [BK][qstride]  their dout rows
    float* lset = dot + ATT_BK * qstride;    // [BK]  their lse
    float* dt = lset + ATT_BK;               // [BK]  their D
    const AttTile a = att_tile(T, NH, false);  // tile 0 (keys 0..15) sees every query: first
    const int C = NH * hs, C3 = 3 * C;
    const int k0 = a.tile * ATT_BQ;
    const floatX* base = qkv + (size_t)a.b * T * C3 + (size_t)a.h * hs;
    const floatX* dbase = dout + (size_t)a.b * T * C + (size_t)a.h * hs;
    const float* lrow = lse + (size_t)a.bh * T;
    const float* drow = D + (size_t)a.bh * T;
    const float scale = 1.0f / sqrtf((float)hs);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

    for (int e = threadIdx.x; e < ATT_BQ * hs; e += blockDim.x) {
        const int r = e / hs, d = e % hs, j = k0 + r;
        const floatX* row = base + (size_t)j * C3;
        kown[e] = j < T ? to_float(row[C + d]) : 0.0f;
        vown[e] = j < T ? to_float(row[2 * C + d]) : 0.0f;
    }
    float dk[ATT_ROWS][ATT_MAXC], dv[ATT_ROWS][ATT_MAXC];
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++)
#pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) dk[r][c] = dv[r][c] = 0.0f;
    const float* myk = kown + warp * ATT_ROWS * hs;
    const float* myv = vown + warp * ATT_ROWS * hs;
    for (int i0 = (k0 / ATT_BK) * ATT_BK; i0 < T; i0 += ATT_BK) {
        __syncthreads();
        for (int e = threadIdx.x; e < ATT_BK * hs; e += blockDim.x) {
            const int ii = e / hs, d = e % hs, i = i0 + ii;
            const bool ok = i < T;
            qt[ii * qstride + d] = ok ? to_float(base[(size_t)i * C3 + d]) * scale : 0.0f;
            dot[ii * qstride + d] = ok ? to_float(dbase[(size_t)i * C + d]) : 0.0f;
        }
        if (threadIdx.x < ATT_BK) {
            const int i = i0 + threadIdx.x;
            lset[threadIdx.x] = i < T ? lrow[i] : 0.0f;
            dt[threadIdx.x] = i < T ? drow[i] : 0.0f;
        }
        __syncthreads();
        // This lane's query i against the warp's keys: s = q·k (q scaled), dp = dout·v.
        const int i = i0 + lane;
        float s[ATT_ROWS], dp[ATT_ROWS];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) s[r] = dp[r] = 0.0f;
        const float* qr = qt + lane * qstride;
        const float* dor = dot + lane * qstride;
        for (int d = 0; d < hs; d++) {
            const float qd = qr[d], dod = dor[d];
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) {
                s[r] = fmaf(qd, myk[r * hs + d], s[r]);
                dp[r] = fmaf(dod, myv[r * hs + d], dp[r]);
            }
        }
        const float li = lset[lane], di = dt[lane];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            const int j = k0 + warp * ATT_ROWS + r;
            const float p = (i < T && j <= i) ? expf(s[r] - li) : 0.0f;
            s[r] = p;                   // P_ij
            dp[r] = p * (dp[r] - di);   // dS_ij
        }
        // dv += P_ij·dout_i, dk += dS_ij·q_i (q already carries the 1/sqrt(hs)).
        const int nq = min(ATT_BK, T - i0);
        for (int ii = 0; ii < nq; ii++) {
            float qv[ATT_MAXC], dov[ATT_MAXC];
#pragma unroll
            for (int c = 0; c < ATT_MAXC; c++) {
                const int d = lane + 32 * c;
                qv[c] = d < hs ? qt[ii * qstride + d] : 0.0f;
                dov[c] = d < hs ? dot[ii * qstride + d] : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) {
                const float p = __shfl_sync(0xffffffffu, s[r], ii);
                const float ds = __shfl_sync(0xffffffffu, dp[r], ii);
#pragma unroll
                for (int c = 0; c < ATT_MAXC; c++) {
                    dv[r][c] = fmaf(p, dov[c], dv[r][c]);
                    dk[r][c] = fmaf(ds, qv[c], dk[r][c]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        const int j = k0 + warp * ATT_ROWS + r;
        if (j >= T) continue;
        floatX* row = dqkv + ((size_t)a.b * T + j) * C3 + (size_t)a.h * hs;
#pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) {
            const int d = lane + 32 * c;
            if (d < hs) {
                row[C + d] = from_float<floatX>(dk[r][c]);
                row[2 * C + d] = from_float<floatX>(dv[r][c]);
            }
        }
    }
}

// dq for 16 queries per block: walks the key tiles (32 keys, one per lane) up to them.
extern "C" __global__ void attention_backward_dq(floatX* dqkv, const floatX* dout,
                                                 const floatX* qkv, const float* lse,
                                                 const float* D, int B, int T, int NH, int hs) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int ks = odd_stride(hs);
    float* qown = (float*)smem;          // [BQ][hs]  this block's queries, scaled
    float* doown = qown + ATT_BQ * hs;   // [BQ][hs]  their dout rows
    float* kt = doown + ATT_BQ * hs;     // [BK][ks]  a tile of keys
    float* vt = kt + ATT_BK * ks;        // [BK][ks]  and values
    const AttTile a = att_tile(T, NH, true);
    const int C = NH * hs, C3 = 3 * C;
    const int q0 = a.tile * ATT_BQ;
    const floatX* base = qkv + (size_t)a.b * T * C3 + (size_t)a.h * hs;
    const floatX* dbase = dout + (size_t)a.b * T * C + (size_t)a.h * hs;
    const float scale = 1.0f / sqrtf((float)hs);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

    for (int e = threadIdx.x; e < ATT_BQ * hs; e += blockDim.x) {
        const int r = e / hs, d = e % hs, i = q0 + r;
        qown[e] = i < T ? to_float(base[(size_t)i * C3 + d]) * scale : 0.0f;
        doown[e] = i < T ? to_float(dbase[(size_t)i * C + d]) : 0.0f;
    }
    float li[ATT_ROWS], di[ATT_ROWS], dq[ATT_ROWS][ATT_MAXC];
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        const int i = q0 + warp * ATT_ROWS + r;
        li[r] = i < T ? lse[(size_t)a.bh * T + i] : 0.0f;
        di[r] = i < T ? D[(size_t)a.bh * T + i] : 0.0f;
#pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) dq[r][c] = 0.0f;
    }
    const float* myq = qown + warp * ATT_ROWS * hs;
    const float* mydo = doown + warp * ATT_ROWS * hs;
    const int kend = min(q0 + ATT_BQ, T);
    for (int k0 = 0; k0 < kend; k0 += ATT_BK) {
        __syncthreads();
        for (int e = threadIdx.x; e < ATT_BK * hs; e += blockDim.x) {
            const int j = e / hs, d = e % hs;
            const bool ok = k0 + j < T;
            const floatX* row = base + (size_t)(k0 + j) * C3;
            kt[j * ks + d] = ok ? to_float(row[C + d]) : 0.0f;
            vt[j * ks + d] = ok ? to_float(row[2 * C + d]) : 0.0f;
        }
        __syncthreads();
        const int j = k0 + lane;
        float s[ATT_ROWS], dp[ATT_ROWS];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) s[r] = dp[r] = 0.0f;
        const float* kr = kt + lane * ks;
        const float* vr = vt + lane * ks;
        for (int d = 0; d < hs; d++) {
            const float kd = kr[d], vd = vr[d];
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) {
                s[r] = fmaf(myq[r * hs + d], kd, s[r]);
                dp[r] = fmaf(mydo[r * hs + d], vd, dp[r]);
            }
        }
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            const int i = q0 + warp * ATT_ROWS + r;
            const float p = (i < T && j <= i) ? expf(s[r] - li[r]) : 0.0f;
            s[r] = p * (dp[r] - di[r]);  // dS_ij
        }
        // dq += dS_ij·k_j (times 1/sqrt(hs) at the end).
        const int nk = min(ATT_BK, kend - k0);
        for (int jj = 0; jj < nk; jj++) {
            float kv[ATT_MAXC];
#pragma unroll
            for (int c = 0; c < ATT_MAXC; c++) {
                const int d = lane + 32 * c;
                kv[c] = d < hs ? kt[jj * ks + d] : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < ATT_ROWS; r++) {
                const float ds = __shfl_sync(0xffffffffu, s[r], jj);
#pragma unroll
                for (int c = 0; c < ATT_MAXC; c++) dq[r][c] = fmaf(ds, kv[c], dq[r][c]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        const int i = q0 + warp * ATT_ROWS + r;
        if (i >= T) continue;
        floatX* row = dqkv + ((size_t)a.b * T + i) * C3 + (size_t)a.h * hs;
#pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) {
            const int d = lane + 32 * c;
            if (d < hs) row[d] = from_float<floatX>(dq[r][c] * scale);
        }
    }
}
