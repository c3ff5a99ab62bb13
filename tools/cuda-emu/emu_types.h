// emu_types.h: CUDA's built-in types for the CPU emulator.
//
// dim3/uint3, the vector types (float2, float4, int4, ...) with CUDA's alignments, and the
// 16-bit floats __nv_bfloat16 (bit-exact round-to-nearest-even like the GPU's cvt.rn.bf16.f32)
// and __half.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

// ---- dim3 / uint3 ------------------------------------------------------------------------
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// ---- vector types ------------------------------------------------------------------------
// Alignment as in CUDA's vector_types.h: a 2- or 4-vector is aligned to its full size (up to
// 16 bytes), a 3-vector only to its element. Misaligned 16-byte loads fault on a GPU; build a
// test with EMU_UBSAN=1 to have them reported on the CPU too.
#define EMU_VEC1(T, N) \
    struct alignas(sizeof(T)) N { T x; }; \
    inline N make_##N(T x) { return N{x}; }
#define EMU_VEC2(T, N) \
    struct alignas(2 * sizeof(T)) N { T x, y; }; \
    inline N make_##N(T x, T y) { return N{x, y}; }
#define EMU_VEC3(T, N) \
    struct N { T x, y, z; }; \
    inline N make_##N(T x, T y, T z) { return N{x, y, z}; }
#define EMU_VEC4(T, N, A) \
    struct alignas(A) N { T x, y, z, w; }; \
    inline N make_##N(T x, T y, T z, T w) { return N{x, y, z, w}; }
#define EMU_VECS(T, P, A4) EMU_VEC1(T, P##1) EMU_VEC2(T, P##2) EMU_VEC3(T, P##3) EMU_VEC4(T, P##4, A4)

EMU_VECS(signed char, char, 4)
EMU_VECS(unsigned char, uchar, 4)
EMU_VECS(short, short, 8)
EMU_VECS(unsigned short, ushort, 8)
EMU_VECS(int, int, 16)
EMU_VEC1(unsigned, uint1) EMU_VEC2(unsigned, uint2) EMU_VEC4(unsigned, uint4, 16)
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
EMU_VECS(float, float, 16)
EMU_VECS(long long, longlong, 32)
EMU_VECS(unsigned long long, ulonglong, 32)
EMU_VECS(double, double, 32)
#undef EMU_VEC1
#undef EMU_VEC2
#undef EMU_VEC3
#undef EMU_VEC4
#undef EMU_VECS

// ---- bit casts ---------------------------------------------------------------------------
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { return (int)__float_as_uint(f); }
inline float __int_as_float(int i) { return __uint_as_float((unsigned)i); }

namespace emu {
// float -> bfloat16 bits, round to nearest even; NaN becomes the canonical 0x7fff, like the
// GPU (and CUDA's own host code in cuda_bf16.hpp).
inline unsigned short f32_to_bf16_bits(float f) {
    const unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    const unsigned rest = u << 16;  // the 16 bits that are dropped
    unsigned short r = (unsigned short)(u >> 16);
    if (rest > 0x80000000u || (rest == 0x80000000u && (r & 1))) r++;
    return r;
}
inline float bf16_bits_to_f32(unsigned short b) { return __uint_as_float((unsigned)b << 16); }

// float -> IEEE half bits, round to nearest even, with subnormals; NaN -> 0x7fff.
inline unsigned short f32_to_f16_bits(float f) {
    const unsigned u = __float_as_uint(f);
    const unsigned sign = (u >> 16) & 0x8000u;
    const unsigned a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7fff;
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);  // rounds to infinity
    if (a < 0x38800000u) {  // result is subnormal (or zero): scale by 2^24 and round
        const float scaled = __uint_as_float(a) * 16777216.0f;  // exact
        return (unsigned short)(sign | (unsigned)std::nearbyint(scaled));
    }
    const unsigned mant = a & 0x7fffffu;
    unsigned h = ((a >> 23) - 112) << 10 | (mant >> 13);
    const unsigned rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;
    return (unsigned short)(sign | h);
}
inline float f16_bits_to_f32(unsigned short h) {
    const unsigned sign = (unsigned)(h & 0x8000u) << 16;
    const unsigned e = (h >> 10) & 0x1f, m = h & 0x3ffu;
    if (e == 0) return __uint_as_float(sign) + (sign ? -1.0f : 1.0f) * (float)m / 16777216.0f;
    if (e == 31) return __uint_as_float(sign | 0x7f800000u | (m << 13));
    return __uint_as_float(sign | ((e + 112) << 23) | (m << 13));
}
}  // namespace emu

// ---- __nv_bfloat16 ---------------------------------------------------------------------------
struct __nv_bfloat16_raw {
    unsigned short x;
};
struct alignas(2) __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;  // uninitialised, like on the GPU (so it can live in __shared__)
    constexpr __nv_bfloat16(__nv_bfloat16_raw r) : __x(r.x) {}
    __nv_bfloat16(float f) : __x(emu::f32_to_bf16_bits(f)) {}
    __nv_bfloat16(double f) : __x(emu::f32_to_bf16_bits((float)f)) {}
    __nv_bfloat16(int i) : __x(emu::f32_to_bf16_bits((float)i)) {}
    operator float() const { return emu::bf16_bits_to_f32(__x); }
    operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rz(float f) {
    const unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16_raw{0x7fff};
    return __nv_bfloat16_raw{(unsigned short)(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 b) { return emu::bf16_bits_to_f32(b.__x); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16_raw{u}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    return __nv_bfloat162{__nv_bfloat16(a), __nv_bfloat16(b)};
}
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __floats2bfloat162_rn(f.x, f.y); }
inline float2 __bfloat1622float2(__nv_bfloat162 b) { return float2{(float)b.x, (float)b.y}; }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return {a, b}; }
inline __nv_bfloat162 make_bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return {a, b}; }
inline float __low2float(__nv_bfloat162 b) { return (float)b.x; }
inline float __high2float(__nv_bfloat162 b) { return (float)b.y; }
// Arithmetic: computed in float and rounded once. For +, - and * of two bf16 values the float
// result is exact or correctly rounded, so this equals the GPU's single bf16 rounding.
#define EMU_BF16_OP(OP)                                                            \
    inline __nv_bfloat16 operator OP(__nv_bfloat16 a, __nv_bfloat16 b) {           \
        return __nv_bfloat16((float)a OP(float) b);                                \
    }                                                                              \
    inline __nv_bfloat16& operator OP##=(__nv_bfloat16 & a, __nv_bfloat16 b) {     \
        return a = a OP b;                                                         \
    }
EMU_BF16_OP(+)
EMU_BF16_OP(-)
EMU_BF16_OP(*)
EMU_BF16_OP(/)
#undef EMU_BF16_OP
inline __nv_bfloat16 operator-(__nv_bfloat16 a) { return __nv_bfloat16_raw{(unsigned short)(a.__x ^ 0x8000u)}; }
inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return a + b; }
inline __nv_bfloat16 __hsub(__nv_bfloat16 a, __nv_bfloat16 b) { return a - b; }
inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return a * b; }
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
    return __nv_bfloat16((float)((double)(float)a * (float)b + (float)c));
}
inline __nv_bfloat16 __hmax(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)a < (float)b ? b : a; }
inline __nv_bfloat16 __hmin(__nv_bfloat16 a, __nv_bfloat16 b) { return (float)b < (float)a ? b : a; }
inline __nv_bfloat162 __hadd2(__nv_bfloat162 a, __nv_bfloat162 b) { return {a.x + b.x, a.y + b.y}; }
inline __nv_bfloat162 __hmul2(__nv_bfloat162 a, __nv_bfloat162 b) { return {a.x * b.x, a.y * b.y}; }

// ---- __half ------------------------------------------------------------------------------
struct __half_raw {
    unsigned short x;
};
struct alignas(2) __half {
    unsigned short __x;
    __half() = default;
    constexpr __half(__half_raw r) : __x(r.x) {}
    __half(float f) : __x(emu::f32_to_f16_bits(f)) {}
    __half(double f) : __x(emu::f32_to_f16_bits((float)f)) {}
    operator float() const { return emu::f16_bits_to_f32(__x); }
    operator __half_raw() const { return __half_raw{__x}; }
};
struct alignas(4) __half2 {
    __half x, y;
};
typedef __half half;
typedef __half2 half2;
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return emu::f16_bits_to_f32(h.__x); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
inline float2 __half22float2(__half2 h) { return float2{(float)h.x, (float)h.y}; }
