// Portable SIMD helpers and a vectorised double-precision exp for the BA kernel.
//
// The vector types are GCC/clang vector extensions: the same source becomes AVX2 (or
// AVX-512) code inside a function compiled with __attribute__((target(...))) and pairs of
// SSE2 instructions elsewhere, so there are no intrinsics and no -march flags.
// Everything here is always_inline so that it takes the target of the function it is
// inlined into (see ba_kernel.cpp for the dispatch).
#pragma once

#if !defined(__GNUC__)
#error "ibsolver's C++ kernel needs GCC or clang (vector extensions)"
#endif

#include <cstdint>

#define IBS_INLINE inline __attribute__((always_inline))

namespace ibsolver {
namespace simd {

typedef double d4 __attribute__((vector_size(32)));
typedef long long i4 __attribute__((vector_size(32)));
typedef double d8 __attribute__((vector_size(64)));
typedef long long i8 __attribute__((vector_size(64)));

/// Four doubles per vector: ymm registers under AVX2, xmm pairs under SSE2.
struct W4 {
    using vd = d4;
    using vi = i4;
    static constexpr int lanes = 4;
};

/// Eight doubles per vector: zmm registers under AVX-512.
struct W8 {
    using vd = d8;
    using vi = i8;
    static constexpr int lanes = 8;
};

template <class W>
IBS_INLINE typename W::vd load(const double* p) {
    typename W::vd v;
    __builtin_memcpy(&v, p, sizeof(v));  // unaligned load
    return v;
}

template <class W>
IBS_INLINE void store(double* p, typename W::vd v) {
    __builtin_memcpy(p, &v, sizeof(v));
}

template <class W>
IBS_INLINE typename W::vd splat(double x) {
    typename W::vd v = {};
    return v + x;
}

template <class W>
IBS_INLINE double hsum(typename W::vd v) {
    double s = 0.0;
    for (int i = 0; i < W::lanes; ++i) s += v[i];
    return s;
}

template <class W>
IBS_INLINE double hmax(typename W::vd v) {
    double m = v[0];
    for (int i = 1; i < W::lanes; ++i) m = v[i] > m ? v[i] : m;
    return m;
}

/// exp(x), element-wise, for x <= 600 (the kernel only calls it with x <= 0).
///
/// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then a degree-11 polynomial
/// (near-minimax, Chebyshev fit on [-0.3467, 0.3467], truncation error 3e-18) and a
/// scale by 2^n built from exponent bits. The scale is applied as 2^(n+64) * 2^-64 so
/// that results in the subnormal range are rounded once, correctly. Accuracy: below
/// 1 ulp for normal results (checked against long double exp). exp(-inf) = 0 and
/// exp(x) = 0 exactly for x < -746 (the true value is below half the smallest
/// subnormal); NaN propagates. No branches, no table look-ups.
template <class W>
IBS_INLINE typename W::vd exp_nonpositive(typename W::vd x) {
    using vd = typename W::vd;
    using vi = typename W::vi;
    const double log2e = 0x1.71547652b82fep+0;
    const double ln2_hi = 0x1.62e42fee00000p-1;  // trailing zeros: n * ln2_hi is exact
    const double ln2_lo = 0x1.a39ef35793c76p-33;
    const double shifter = 0x1.8p52;  // adding it rounds to an integer held in the low bits
    const long long shifter_bits = 0x4338000000000000LL;

    vd kd = x * log2e + shifter;
    vd nd = kd - shifter;  // n = round(x / ln2), as a double
    vd r = x - nd * ln2_hi;
    r = r - nd * ln2_lo;

    vd p = splat<W>(0x1.af634ca3cb41fp-26);
    p = p * r + 0x1.28b42c37558acp-22;
    p = p * r + 0x1.71ddf55adb046p-19;
    p = p * r + 0x1.a0199182a8573p-16;
    p = p * r + 0x1.a01a01b14d19ep-13;
    p = p * r + 0x1.6c16c1880b86fp-10;
    p = p * r + 0x1.111111110f20ep-7;
    p = p * r + 0x1.555555554f083p-5;
    p = p * r + 0x1.555555555555ap-3;
    p = p * r + 0x1.0000000000011p-1;
    p = p * r + 1.0;
    p = p * r + 1.0;

    // 2^(n + 64): the biased exponent n + 1023 + 64 lies in [10, 2046] for -746 <= x <= 600
    vi e = (vi)kd - (shifter_bits - 1023 - 64);
    vd scale = (vd)(e << 52);
    vd res = (p * scale) * 0x1p-64;
    const vd zero = {};
    return x < -746.0 ? zero : res;  // also exp(-inf) = 0; NaN compares false and propagates
}

}  // namespace simd
}  // namespace ibsolver
