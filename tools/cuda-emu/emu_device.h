// emu_device.h: CUDA's device functions for the CPU emulator: warp shuffles and votes,
// atomics, fast-math intrinsics, cache-hinted loads.
#pragma once
#include <algorithm>
#include <climits>
#include <set>
#include <type_traits>
#include <utility>
#include "emu_sched.h"

namespace emu {

// ---- shuffles --------------------------------------------------------------------------------
// Each lane deposits its value and the lane it reads from; the last lane to arrive fills in
// everyone's result. Reading a lane that is not taking part (exited, not in the mask, or past
// the end of a partial warp) is undefined on a GPU: the emulator returns all-one bits (NaN for
// float) and prints a note once per source line.
struct ShflRec {
    uint64_t v;
    int src;
    uint64_t out;
};

inline void shfl_done(Warp& w) {
    for (int l = 0; l < 32; l++) {
        if (!(w.arrived >> l & 1)) continue;
        auto* r = (ShflRec*)w.data[l];
        if (w.arrived >> r->src & 1) {
            r->out = ((ShflRec*)w.data[r->src])->v;
        } else {
            r->out = ~0ull;
            static std::set<std::pair<const char*, int>> told;
            if (told.insert({w.site.file, w.site.line}).second)
                std::fprintf(stderr,
                             "emu: note: %s: %s at %s:%d: lane %d reads lane %d, which is not "
                             "taking part (undefined on a GPU; the emulator gives all-one bits)\n",
                             where().c_str(), w.op, w.site.file, w.site.line, l, r->src);
        }
    }
}

enum ShflMode { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR };

// The source lane, following PTX's shfl.sync: segments of `width` lanes; a source outside the
// lane's segment (or past its end) means the lane keeps its own value.
inline int shfl_source(int lane, ShflMode mode, int b, int width) {
    const int segmask = (32 - width) & 31;  // PTX's c[12:8]
    const int minLane = lane & segmask;
    const int maxLane = minLane | (31 & ~segmask);
    int j = lane;
    bool ok = true;
    switch (mode) {
    case SHFL_UP: j = lane - b; ok = j >= minLane; break;
    case SHFL_DOWN: j = lane + b; ok = j <= maxLane; break;
    case SHFL_XOR: j = lane ^ b; ok = j <= maxLane; break;
    case SHFL_IDX: j = minLane | (b & 31 & ~segmask); ok = j <= maxLane; break;
    }
    return ok ? j : lane;
}

// A source line, so that the macros below can pass __FILE__/__LINE__ to calls with optional
// arguments.
struct At {
    const char* file;
    int line;

    template <typename T> T shfl(const char* op, ShflMode mode, unsigned mask, T v, int b, int width) {
        static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                      "shuffle of a type wider than 8 bytes");
        if (width < 1 || width > 32 || (width & (width - 1)))
            fail(format("%s at %s:%d: width %d is not a power of two in 1..32", op, file, line, width));
        ShflRec r{};
        std::memcpy(&r.v, &v, sizeof(T));
        r.src = shfl_source(rt.cur->lane, mode, b, width);
        warp_collective(op, shfl_done, mask, &r, file, line);
        T out;
        std::memcpy(&out, &r.out, sizeof(T));
        return out;
    }
    template <typename T> T idx(unsigned mask, T v, int src, int width = 32) {
        return shfl("__shfl_sync", SHFL_IDX, mask, v, src, width);
    }
    template <typename T> T up(unsigned mask, T v, unsigned d, int width = 32) {
        return shfl("__shfl_up_sync", SHFL_UP, mask, v, (int)d, width);
    }
    template <typename T> T down(unsigned mask, T v, unsigned d, int width = 32) {
        return shfl("__shfl_down_sync", SHFL_DOWN, mask, v, (int)d, width);
    }
    template <typename T> T bfly(unsigned mask, T v, int m, int width = 32) {
        return shfl("__shfl_xor_sync", SHFL_XOR, mask, v, m, width);
    }

    void syncwarp(unsigned mask = 0xffffffffu) {
        warp_collective("__syncwarp", [](Warp&) {}, mask, nullptr, file, line);
    }

    // __ballot_sync / __any_sync / __all_sync: every arrived lane gets the ballot.
    struct VoteRec {
        int pred;
        unsigned out;
    };
    static void vote_done(Warp& w) {
        unsigned ballot = 0;
        for (int l = 0; l < 32; l++)
            if ((w.arrived >> l & 1) && ((VoteRec*)w.data[l])->pred) ballot |= 1u << l;
        for (int l = 0; l < 32; l++)
            if (w.arrived >> l & 1) ((VoteRec*)w.data[l])->out = ballot;
    }
    unsigned ballot(const char* op, unsigned mask, int pred) {
        VoteRec r{pred, 0};
        warp_collective(op, vote_done, mask, &r, file, line);
        return r.out;
    }

    // __reduce_add_sync / _min / _max (sm_80): integer reductions over the warp.
    struct RedRec {
        long long v;
        long long out;
    };
    template <int Op> static void reduce_done(Warp& w) {
        long long acc = Op == 0 ? 0 : ((RedRec*)w.data[__builtin_ctz(w.arrived)])->v;
        for (int l = 0; l < 32; l++)
            if (w.arrived >> l & 1) {
                const long long v = ((RedRec*)w.data[l])->v;
                acc = Op == 0 ? acc + v : Op == 1 ? std::min(acc, v) : std::max(acc, v);
            }
        for (int l = 0; l < 32; l++)
            if (w.arrived >> l & 1) ((RedRec*)w.data[l])->out = acc;
    }
    template <int Op, typename T> T reduce(const char* op, unsigned mask, T v) {
        RedRec r{(long long)v, 0};
        warp_collective(op, reduce_done<Op>, mask, &r, file, line);
        return (T)r.out;
    }
};

inline unsigned activemask() {
    const Warp& w = rt.warps[rt.cur->warp];
    return w.exists & ~w.done;
}

// ---- cp.async (sm_80): asynchronous global -> shared copies ----------------------------------
// A kernel's PRETRAIN_EMU fallback for its cp.async helpers can call these instead of copying at
// once: the source is read when the copy is issued, but the destination is written only when a
// cp_async_wait completes the copy's group (or the thread ends). A kernel that reads the
// destination before waiting (a __syncthreads alone does not wait) then reads stale data.
inline void finish_copies(Thread& t, int keep_groups) {
    // Completes the copies of every committed group except the newest `keep_groups`
    // (keep_groups < 0: every copy, committed or not).
    size_t kept = 0;
    for (size_t i = 0; i < t.copies.size(); i++) {
        Thread::Copy& c = t.copies[i];
        const bool done = keep_groups < 0 || (c.group != 0 && c.group <= t.groups - keep_groups);
        if (done)
            std::memcpy(c.dst, c.bytes, c.size);
        else
            t.copies[kept++] = c;
    }
    t.copies.resize(kept);
}

// cp.async.cg/ca.shared.global [dst], [src], size, src_size: copies src_size bytes (0..size)
// and fills the rest of the `size` (4, 8 or 16) bytes with zeros.
inline void cp_async(void* dst, const void* src, int size, int src_size) {
    Internal internal;
    if ((size != 4 && size != 8 && size != 16) || src_size < 0 || src_size > size)
        fail(format("cp.async of %d bytes (source %d bytes): size must be 4, 8 or 16", size, src_size));
    if ((size_t)dst % size || (size_t)src % size)
        fail(format("cp.async of %d bytes needs %d-byte aligned addresses (dst %p, src %p)", size,
                    size, dst, src));
    Thread::Copy c{dst, {}, size, 0};
    std::memcpy(c.bytes, src, src_size);
    rt.cur->copies.push_back(c);
}
// cp.async.commit_group: the copies issued since the last commit form a group.
inline void cp_async_commit() {
    Thread& t = *rt.cur;
    t.groups++;
    for (Thread::Copy& c : t.copies)
        if (c.group == 0) c.group = t.groups;
}
// cp.async.wait_group n: waits until at most the newest n committed groups are in flight.
inline void cp_async_wait(int n) {
    Internal internal;
    finish_copies(*rt.cur, n);
}
// cp.async.wait_all: commit, then wait for everything.
inline void cp_async_wait_all() {
    cp_async_commit();
    finish_copies(*rt.cur, 0);
}

inline long long clock_counter() {
    static long long t = 0;
    return t += 4;
}
}  // namespace emu

#define __shfl_sync(...) ::emu::At{__FILE__, __LINE__}.idx(__VA_ARGS__)
#define __shfl_up_sync(...) ::emu::At{__FILE__, __LINE__}.up(__VA_ARGS__)
#define __shfl_down_sync(...) ::emu::At{__FILE__, __LINE__}.down(__VA_ARGS__)
#define __shfl_xor_sync(...) ::emu::At{__FILE__, __LINE__}.bfly(__VA_ARGS__)
#define __syncwarp(...) ::emu::At{__FILE__, __LINE__}.syncwarp(__VA_ARGS__)
#define __ballot_sync(mask, pred) ::emu::At{__FILE__, __LINE__}.ballot("__ballot_sync", mask, pred)
#define __any_sync(mask, pred) \
    (::emu::At{__FILE__, __LINE__}.ballot("__any_sync", mask, pred) != 0u)
#define __all_sync(mask, pred) \
    (::emu::At{__FILE__, __LINE__}.ballot("__all_sync", mask, !(pred)) == 0u)
#define __reduce_add_sync(mask, v) ::emu::At{__FILE__, __LINE__}.reduce<0>("__reduce_add_sync", mask, v)
#define __reduce_min_sync(mask, v) ::emu::At{__FILE__, __LINE__}.reduce<1>("__reduce_min_sync", mask, v)
#define __reduce_max_sync(mask, v) ::emu::At{__FILE__, __LINE__}.reduce<2>("__reduce_max_sync", mask, v)
#define __activemask() ::emu::activemask()
#define __syncthreads() ::emu::syncthreads(__FILE__, __LINE__)
#define __syncthreads_count(p) ::emu::syncthreads(__FILE__, __LINE__, "__syncthreads_count", (p) != 0)
#define __syncthreads_and(p) ::emu::syncthreads(__FILE__, __LINE__, "__syncthreads_and", (p) != 0)
#define __syncthreads_or(p) ::emu::syncthreads(__FILE__, __LINE__, "__syncthreads_or", (p) != 0)

// ---- atomics: one thread runs at a time, so a plain read-modify-write is atomic ---------------
// (For EMU_TSAN=1 an atomic orders the threads that use the same address, like the GPU's
// fence + atomic patterns, and is not itself reported as a race.)
#define EMU_ATOMIC(NAME, T, EXPR)        \
    inline T NAME(T* p, T v) {           \
        emu::Internal internal;          \
        emu::hb_acquire(p);              \
        T old = *p;                      \
        *p = EXPR;                       \
        emu::hb_release(p);              \
        return old;                      \
    }
#define EMU_ATOMIC_INTS(NAME, EXPR)                  \
    EMU_ATOMIC(NAME, int, EXPR)                      \
    EMU_ATOMIC(NAME, unsigned, EXPR)                 \
    EMU_ATOMIC(NAME, unsigned long long, EXPR)
EMU_ATOMIC_INTS(atomicAdd, old + v)
EMU_ATOMIC(atomicAdd, float, old + v)
EMU_ATOMIC(atomicAdd, double, old + v)
EMU_ATOMIC(atomicAdd, __nv_bfloat16, old + v)
EMU_ATOMIC(atomicAdd, __half, __half((float)old + (float)v))
EMU_ATOMIC(atomicSub, int, old - v)
EMU_ATOMIC(atomicSub, unsigned, old - v)
EMU_ATOMIC_INTS(atomicExch, v)
EMU_ATOMIC(atomicExch, float, v)
EMU_ATOMIC_INTS(atomicMax, old < v ? v : old)
EMU_ATOMIC(atomicMax, long long, old < v ? v : old)
EMU_ATOMIC_INTS(atomicMin, v < old ? v : old)
EMU_ATOMIC(atomicMin, long long, v < old ? v : old)
EMU_ATOMIC_INTS(atomicAnd, old & v)
EMU_ATOMIC_INTS(atomicOr, old | v)
EMU_ATOMIC_INTS(atomicXor, old ^ v)
EMU_ATOMIC(atomicInc, unsigned, old >= v ? 0u : old + 1)
EMU_ATOMIC(atomicDec, unsigned, (old == 0 || old > v) ? v : old - 1)
#undef EMU_ATOMIC
#undef EMU_ATOMIC_INTS
inline __nv_bfloat162 atomicAdd(__nv_bfloat162* p, __nv_bfloat162 v) {
    emu::Internal internal;
    emu::hb_acquire(p);
    __nv_bfloat162 old = *p;
    *p = __nv_bfloat162{old.x + v.x, old.y + v.y};
    emu::hb_release(p);
    return old;
}
template <typename T> inline T atomicCAS(T* p, T compare, T v) {
    static_assert(std::is_integral<T>::value, "atomicCAS on integers");
    emu::Internal internal;
    emu::hb_acquire(p);
    T old = *p;
    if (old == compare) *p = v;
    emu::hb_release(p);
    return old;
}

// ---- memory fences, loads with cache hints, timing --------------------------------------------
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}
inline void __nanosleep(unsigned) {}
inline long long clock64() { return emu::clock_counter(); }
#define __trap() ::emu::fail("__trap() called")
template <typename T> inline T __ldg(const T* p) { return *p; }
template <typename T> inline T __ldcg(const T* p) { return *p; }
template <typename T> inline T __ldca(const T* p) { return *p; }
template <typename T> inline T __ldcs(const T* p) { return *p; }
template <typename T> inline T __ldlu(const T* p) { return *p; }
template <typename T> inline T __ldcv(const T* p) { return *p; }
template <typename T> inline void __stcg(T* p, T v) { *p = v; }
template <typename T> inline void __stcs(T* p, T v) { *p = v; }
template <typename T> inline void __stwb(T* p, T v) { *p = v; }
template <typename T> inline void __stwt(T* p, T v) { *p = v; }

// ---- math ------------------------------------------------------------------------------------
// The fast intrinsics (__expf, ...) are less accurate on a GPU (about 2 ulp + range limits);
// here they are the accurate libm functions, so tolerances must allow for that difference.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / std::cbrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline void __sincosf(float x, float* s, float* c) { *s = std::sin(x); *c = std::cos(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : (x == x ? x : 0.0f)); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __frsqrt_rn(float a) { return 1.0f / std::sqrt(a); }
inline int __float2int_rn(float x) { return (int)std::nearbyint(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)std::floor(x); }
inline int __float2int_ru(float x) { return (int)std::ceil(x); }
inline unsigned __float2uint_rn(float x) { return (unsigned)std::nearbyint(x); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }
inline float __double2float_rn(double x) { return (float)x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= (x >> i & 1u) << (31 - i);
    return r;
}
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umul24(unsigned a, unsigned b) { return a * b; }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
// CUDA's max/min accept any mix of arithmetic types (usual arithmetic conversions).
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
    using C = std::common_type_t<A, B>;
    return (C)a < (C)b ? (C)b : (C)a;
}
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
    using C = std::common_type_t<A, B>;
    return (C)b < (C)a ? (C)b : (C)a;
}
