// Stand-in for <mma.h> (nvcuda::wmma) in the CPU emulator.
//
// On a GPU a fragment is spread over the 32 lanes of a warp in an unspecified layout. Here
// every lane holds the WHOLE tile (x[] is the tile in row-major order, num_elements = rows *
// cols), and load/store/mma are warp collectives: the last lane to arrive computes once and
// copies the result to every lane. So:
// - element-wise code that treats every element alike (scaling, fill, conversion: loops over
//   num_elements) works as on the GPU;
// - code that relies on which element a lane holds (lane-dependent access to x[]) cannot be
//   emulated; the emulator reports fragments that differ between lanes at the next mma/store.
// Checked like on the GPU: the whole warp takes part, pointer and ldm are the same in every
// lane, the pointer is 32-byte aligned, ldm is a multiple of 16 bytes.
#pragma once
#include "../emu.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}

// The element type stored for a fragment type argument (tf32 values live in floats).
template <typename T> struct storage { using type = T; };
template <> struct storage<precision::tf32> { using type = float; };

template <typename Use, int M, int N, int K> struct dims;
template <int M, int N, int K> struct dims<matrix_a, M, N, K> { static constexpr int rows = M, cols = K; };
template <int M, int N, int K> struct dims<matrix_b, M, N, K> { static constexpr int rows = K, cols = N; };
template <int M, int N, int K> struct dims<accumulator, M, N, K> { static constexpr int rows = M, cols = N; };

template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment {
    static_assert((M == 16 && N == 16 && K == 16) || (M == 32 && N == 8 && K == 16) ||
                      (M == 8 && N == 32 && K == 16) || (M == 16 && N == 16 && K == 8),
                  "wmma shape not supported by the emulator");
    using element_type = typename storage<T>::type;
    static constexpr int rows = dims<Use, M, N, K>::rows, cols = dims<Use, M, N, K>::cols;
    enum { num_elements = rows * cols };
    element_type x[num_elements];  // the whole tile, row-major (see the top of this file)
};

template <typename Use, int M, int N, int K, typename T, typename L, typename V>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, const V& v) {
    for (int i = 0; i < f.num_elements; i++) f.x[i] = (typename storage<T>::type)v;
}

namespace detail {
using emu::fail;
using emu::format;

// One lane's arguments to a collective wmma call.
struct Rec {
    void* frag;
    const void* src[3];  // mma: a, b, c
    const void* ptr;
    unsigned ldm;
    int col_major;
};

inline Rec& rec(emu::Warp& w, int lane) { return *(Rec*)w.data[lane]; }

// The whole warp must take part, with the same pointer, ldm and layout in every lane.
inline void check_uniform(emu::Warp& w, const char* op, size_t elem_bytes) {
    if (w.arrived != 0xffffffffu)
        fail(format("%s at %s:%d needs all 32 lanes of the warp, got lanes %s", op, w.site.file,
                    w.site.line, emu::lanes(w.arrived).c_str()));
    const Rec& r0 = rec(w, 0);
    for (int l = 1; l < 32; l++) {
        const Rec& r = rec(w, l);
        if (r.ptr != r0.ptr || r.ldm != r0.ldm || r.col_major != r0.col_major)
            fail(format("%s at %s:%d: lane %d passes (%p, ldm %u) but lane 0 (%p, ldm %u); the "
                        "arguments must be the same in the whole warp",
                        op, w.site.file, w.site.line, l, r.ptr, r.ldm, r0.ptr, r0.ldm));
    }
    if (elem_bytes && ((size_t)r0.ptr % 32 != 0))
        fail(format("%s at %s:%d: pointer %p is not 32-byte aligned", op, w.site.file, w.site.line,
                    r0.ptr));
    if (elem_bytes && (r0.ldm * elem_bytes) % 16 != 0)
        fail(format("%s at %s:%d: ldm %u is not a multiple of 16 bytes (%zu-byte elements)", op,
                    w.site.file, w.site.line, r0.ldm, elem_bytes));
}

// Every lane must hold the same fragment (the emulator's invariant, see the top of the file).
template <typename F> inline void check_same(emu::Warp& w, const char* op, int which) {
    const F* f0 = (const F*)rec(w, 0).src[which];
    for (int l = 1; l < 32; l++)
        if (std::memcmp(rec(w, l).src[which], f0, sizeof(F)) != 0)
            fail(format("%s at %s:%d: lane %d holds a different fragment than lane 0 (the "
                        "emulator keeps the whole tile in every lane, so lane-dependent changes "
                        "to x[] cannot be emulated)",
                        op, w.site.file, w.site.line, l));
}

template <typename F> inline void copy_to_lanes(emu::Warp& w, const F& f) {
    for (int l = 0; l < 32; l++) *(F*)rec(w, l).frag = f;
}

template <typename F, typename P> void load_done(emu::Warp& w) {
    check_uniform(w, "wmma::load_matrix_sync", sizeof(P));
    const Rec& r = rec(w, 0);
    const P* p = (const P*)r.ptr;
    F f;
    for (int i = 0; i < F::rows; i++)
        for (int j = 0; j < F::cols; j++)
            f.x[i * F::cols + j] = r.col_major ? p[(size_t)j * r.ldm + i] : p[(size_t)i * r.ldm + j];
    copy_to_lanes(w, f);
}

template <typename F, typename P> void store_done(emu::Warp& w) {
    check_uniform(w, "wmma::store_matrix_sync", sizeof(P));
    check_same<F>(w, "wmma::store_matrix_sync", 0);
    const Rec& r = rec(w, 0);
    const F& f = *(const F*)r.src[0];
    P* p = (P*)r.ptr;
    for (int i = 0; i < F::rows; i++)
        for (int j = 0; j < F::cols; j++)
            (r.col_major ? p[(size_t)j * r.ldm + i] : p[(size_t)i * r.ldm + j]) =
                (P)f.x[i * F::cols + j];
}

// tf32 inputs: the tensor cores use only the top 10 bits of the mantissa.
inline float input(float v, bool tf32) { return tf32 ? __uint_as_float(__float_as_uint(v) & 0xffffe000u) : v; }
template <typename T> inline float input(T v, bool) { return (float)v; }

template <typename D, typename A, typename B, typename C, bool TF32> void mma_done(emu::Warp& w) {
    check_uniform(w, "wmma::mma_sync", 0);
    check_same<A>(w, "wmma::mma_sync", 0);
    check_same<B>(w, "wmma::mma_sync", 1);
    check_same<C>(w, "wmma::mma_sync", 2);
    const Rec& r = rec(w, 0);
    const A& a = *(const A*)r.src[0];
    const B& b = *(const B*)r.src[1];
    const C& c = *(const C*)r.src[2];
    D d;
    for (int i = 0; i < D::rows; i++)
        for (int j = 0; j < D::cols; j++) {
            float acc = (float)c.x[i * D::cols + j];
            for (int k = 0; k < A::cols; k++)
                acc += input(a.x[i * A::cols + k], TF32) * input(b.x[k * B::cols + j], TF32);
            d.x[i * D::cols + j] = (typename D::element_type)acc;
        }
    copy_to_lanes(w, d);
}
}  // namespace detail

// matrix_a / matrix_b: the layout is part of the fragment type.
template <typename Use, int M, int N, int K, typename T, typename L>
inline void load_matrix_sync_at(fragment<Use, M, N, K, T, L>& f, const typename storage<T>::type* p,
                                unsigned ldm, const char* file, int line) {
    using F = fragment<Use, M, N, K, T, L>;
    detail::Rec r{&f, {}, p, ldm, std::is_same<L, col_major>::value};
    emu::warp_collective("wmma::load_matrix_sync", detail::load_done<F, typename storage<T>::type>,
                         0xffffffffu, &r, file, line);
}
// accumulator: the layout is an argument.
template <int M, int N, int K, typename T>
inline void load_matrix_sync_at(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm,
                                layout_t layout, const char* file, int line) {
    using F = fragment<accumulator, M, N, K, T>;
    detail::Rec r{&f, {}, p, ldm, layout == mem_col_major};
    emu::warp_collective("wmma::load_matrix_sync", detail::load_done<F, T>, 0xffffffffu, &r, file,
                         line);
}
template <int M, int N, int K, typename T>
inline void store_matrix_sync_at(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm,
                                 layout_t layout, const char* file, int line) {
    using F = fragment<accumulator, M, N, K, T>;
    detail::Rec r{nullptr, {&f}, p, ldm, layout == mem_col_major};
    emu::warp_collective("wmma::store_matrix_sync", detail::store_done<F, T>, 0xffffffffu, &r,
                         file, line);
}
template <int M, int N, int K, typename TA, typename LA, typename TB, typename LB, typename TC>
inline void mma_sync_at(fragment<accumulator, M, N, K, TC>& d,
                        const fragment<matrix_a, M, N, K, TA, LA>& a,
                        const fragment<matrix_b, M, N, K, TB, LB>& b,
                        const fragment<accumulator, M, N, K, TC>& c, const char* file, int line) {
    static_assert(std::is_same<TA, TB>::value, "wmma: matrix_a and matrix_b types differ");
    using D = fragment<accumulator, M, N, K, TC>;
    detail::Rec r{&d, {&a, &b, &c}, nullptr, 0, 0};
    emu::warp_collective("wmma::mma_sync",
                         detail::mma_done<D, fragment<matrix_a, M, N, K, TA, LA>,
                                          fragment<matrix_b, M, N, K, TB, LB>, D,
                                          std::is_same<TA, precision::tf32>::value>,
                         0xffffffffu, &r, file, line);
}

}  // namespace wmma
}  // namespace nvcuda

// The source line of each call goes into error messages.
#define load_matrix_sync(...) load_matrix_sync_at(__VA_ARGS__, __FILE__, __LINE__)
#define store_matrix_sync(...) store_matrix_sync_at(__VA_ARGS__, __FILE__, __LINE__)
#define mma_sync(...) mma_sync_at(__VA_ARGS__, __FILE__, __LINE__)

inline float __float_to_tf32(float x) {  // round to nearest, ties away, keep 10 mantissa bits
    unsigned u = __float_as_uint(x);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    return __uint_as_float(u);
}
