// Portable SIMD helpers and a vectorised double-precision exp2 and log for the BA kernel.
//
// The vector types are GCC/clang vector extensions: the same source becomes SSE2, AVX2 or
// AVX-512 code depending on the __attribute__((target(...))) of the function it is
// compiled into, so there are no intrinsics and no -march flags. Everything here is
// always_inline so that it takes the target of the function it is inlined into (see
// ba_kernel.cpp for the dispatch); W4 is meant for AVX2 functions, W8 for AVX-512 ones,
// W2 for everything else.
#pragma once

#if !defined(__GNUC__)
#error "ibsolver's C++ kernel needs GCC or clang (vector extensions)"
#endif

#include <cstdint>

#define IBS_INLINE inline __attribute__((always_inline))

namespace ibsolver {
namespace simd {

typedef double d2 __attribute__((vector_size(16)));
typedef long long i2 __attribute__((vector_size(16)));
typedef double d4 __attribute__((vector_size(32)));
typedef long long i4 __attribute__((vector_size(32)));
typedef double d8 __attribute__((vector_size(64)));
typedef long long i8 __attribute__((vector_size(64)));

/// Two doubles per vector: xmm registers, native SSE2 (the x86-64 baseline).
struct W2 {
    using vd = d2;
    using vi = i2;
    static constexpr int lanes = 2;
};

/// Four doubles per vector: ymm registers under AVX2.
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

/// a > b ? a : b, lane-wise (max(NaN, b) = b): one maxpd when b is not a constant.
template <class W>
IBS_INLINE typename W::vd vmax(typename W::vd a, typename W::vd b) {
    return a > b ? a : b;
}

/// v, hidden from constant folding: GCC turns a > c ? a : c into maxpd only when c is not
/// a known constant (otherwise it emits compare + blend, one more instruction).
template <class W>
IBS_INLINE typename W::vd opaque(typename W::vd v) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__("" : "+v"(v));
#endif
    return v;
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

/// Adding it to x rounds x to an integer held in the low bits (|x| < 2^51).
constexpr double kShifter = 0x1.8p52;

/// 2^(n + f) for |f| <= 1/2 (a little more is fine), n held in the low bits of
/// kd = n + kShifter, -1080 <= n <= 900: the polynomial and scale of exp2_clamped.
template <class W>
IBS_INLINE typename W::vd exp2_reduced(typename W::vd kd, typename W::vd f) {
    using vd = typename W::vd;
    using vi = typename W::vi;
    const double s = 0x1p-64;  // folded into the coefficients, undone by the scale

    vd p = splat<W>(s * 0x1.e9ec22c2bcbfap-32);
    p = p * f + s * 0x1.e6228e477a299p-28;
    p = p * f + s * 0x1.b524ebcf8f36cp-24;
    p = p * f + s * 0x1.62bfc2c6789b1p-20;
    p = p * f + s * 0x1.ffcbfc6da7932p-17;
    p = p * f + s * 0x1.430913112d248p-13;
    p = p * f + s * 0x1.5d87fe78a3f9ap-10;
    p = p * f + s * 0x1.3b2ab6fb9f1a1p-7;
    p = p * f + s * 0x1.c6b08d704a0c6p-5;
    p = p * f + s * 0x1.ebfbdff82c5aep-3;
    p = p * f + s * 0x1.62e42fefa39efp-1;
    p = p * f + s;

    // The low bits of kd hold n; shifted into the exponent field they give 2^n, and
    // adding the bits of 2^64 (exponent 1023 + 64) gives 2^(n + 64), n >= -1080.
    const vi scale = ((vi)kd << 52) + 0x43f0000000000000LL;
    return p * (vd)scale;
}

/// 2^x, element-wise, for -1080 <= x <= 900 (see exp2_nonpositive for any x <= 0).
///
/// The kernel keeps its logits in base 2 (scaled by log2(e) once, up front), so the
/// range reduction is exact: x = n + f with n = round(x), |f| <= 1/2, f = x - n computed
/// without rounding error. 2^f comes from a degree-11 polynomial (near-minimax Chebyshev
/// fit on [-1/2, 1/2], relative error 2e-17 with the coefficients rounded to double;
/// Horner, with FMA where the target has it) and 2^n is built from exponent bits. The
/// coefficients carry a factor 2^-64 and the scale is 2^(n+64), so results in the
/// subnormal range are rounded once, correctly.
/// Accuracy: at most 0.9 ulp (1.2 ulp without FMA), checked against long double exp2
/// over [-1080, 0], subnormal results included (tests/test_backend_cpp.py).
/// 2^x = 0 exactly for x < -1075; 2^0 = 1. No branches, no table look-ups, no division.
/// (A 16-entry table with a degree-6 polynomial was tried for AVX-512: no faster on Zen 4
/// and less accurate.)
template <class W>
IBS_INLINE typename W::vd exp2_clamped(typename W::vd x) {
    const typename W::vd kd = x + kShifter;
    return exp2_reduced<W>(kd, x - (kd - kShifter));  // f exact, |f| <= 1/2
}

/// The lower bound exp2_clamped needs: 2^-1080 rounds to 0, like 2^x for any x below.
constexpr double kExp2Floor = -1080.0;

/// max(x, floor) with floor = splat(kExp2Floor) (pass opaque(...) of it, made once
/// outside the loop): maps -inf (and NaN) to the floor.
template <class W>
IBS_INLINE typename W::vd clamp_exp2_arg(typename W::vd x, typename W::vd floor) {
    return vmax<W>(x, floor);
}

/// Below this, 2^x is subnormal (or 0).
constexpr double kExp2NormalFloor = -1022.0;

/// 2^x where that is a normal number (x >= -1022), else 0: x is ``raw`` and
/// d = clamp_exp2_arg(raw, floor) with floor = splat(kExp2NormalFloor). A subnormal or
/// underflowing result costs a microcode assist (some 60 cycles per vector on the AMD
/// EPYC this was measured on), which the padding lanes of every row (2^-inf) would pay;
/// the values lost are below 2^-1022 times the row's largest, as with flush-to-zero.
template <class W>
IBS_INLINE typename W::vd exp2_normal_or_zero(typename W::vd raw, typename W::vd d,
                                              typename W::vd floor) {
    const typename W::vd zero = {};
    return raw >= floor ? exp2_clamped<W>(d) : zero;
}

/// 2^x for x <= 900, including x = -inf (-> 0) and x < -1075 (-> 0 exactly).
/// NaN gives 0 (the kernel never produces NaN logits from a valid state).
template <class W>
IBS_INLINE typename W::vd exp2_nonpositive(typename W::vd x) {
    return exp2_clamped<W>(clamp_exp2_arg<W>(x, opaque<W>(splat<W>(kExp2Floor))));
}

/// log(x), element-wise, for x >= 0 (0 -> -inf, subnormals included; NaN -> NaN, +inf
/// -> +inf). The decoder update takes k x m logs per iteration, as many as the row kernel
/// takes exponentials where |Y| ~ |X|; libm's scalar log made it the larger part of an
/// iteration there.
///
/// fdlibm's __ieee754_log, without branches: x = 2^e (1 + f) with 1 + f in
/// [sqrt(2)/2, sqrt(2)), f exact (Sterbenz); log(1 + f) = 2 atanh(s), s = f / (2 + f),
/// = f - f^2/2 + s (f^2/2 + R(s^2)) with fdlibm's degree-14 R (error below 2^-58.45),
/// and e ln 2 split in two so that e ln2_hi is exact. Accuracy: below 1 ulp, checked
/// against long double log (tests/test_backend_cpp.py).
template <class W>
IBS_INLINE typename W::vd log_nonnegative(typename W::vd x) {
    using vd = typename W::vd;
    using vi = typename W::vi;
    const vd zero = {};
    const vi subnormal = x < 0x1p-1022;  // (and 0: scaled, still 0, fixed below)
    const vd xs = subnormal ? x * 0x1p54 : x;
    const vi bits = (vi)xs;
    // the biased exponent as a double, exactly: its bits put in the mantissa of 2^52
    const vd biased = (vd)(((bits >> 52) & 0x7ff) | 0x4330000000000000LL) - 0x1p52;
    vd mant = (vd)((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);  // [1, 2)
    const vi high = mant > 0x1.6a09e667f3bcdp0;  // above sqrt(2): halve, next exponent
    mant = high ? mant * 0.5 : mant;
    const vd e = biased - 1023.0 + (high ? splat<W>(1.0) : zero)
                 - (subnormal ? splat<W>(54.0) : zero);
    const vd f = mant - 1.0;
    const vd s = f / (2.0 + f);
    const vd z = s * s;
    const vd w = z * z;
    const vd t1 = w * (0x1.999999997fa04p-2 + w * (0x1.c71c51d8e78afp-3
                                                    + w * 0x1.39a09d078c69fp-3));
    const vd t2 = z * (0x1.5555555555593p-1 + w * (0x1.2492494229359p-2
                                                    + w * (0x1.7466496cb03dep-3
                                                           + w * 0x1.2f112df3e5244p-3)));
    const vd hfsq = 0.5 * f * f;
    const vd r = e * 0x1.62e42feep-1
                 - ((hfsq - (s * (hfsq + t1 + t2) + e * 0x1.a39ef35793c76p-33)) - f);
    const vd inf = splat<W>(__builtin_inf());
    vd out = x == zero ? -inf : r;
    out = x == inf ? inf : out;
    return x != x ? x : out;
}

/// e^x for x <= 600, including x = -inf (-> 0; NaN also gives 0). For the state's
/// p(t, y) = e^(log p(t) + log p(y|t)) and SQUAREM's log-sum-exp, which libm's scalar exp
/// made a sixth of a small problem's curve. Cody-Waite reduction: x = n ln 2 + r with
/// n = round(x / ln 2) and r = (x - n ln2_hi) - n ln2_lo (n ln2_hi exact: ln2_hi has 21
/// trailing zero bits), then 2^(r / ln 2) from exp2's polynomial; r / ln 2 is rounded
/// once, some 0.4 ulp more than exp2's error. Accuracy: below 1.5 ulp, checked against
/// long double exp (tests/test_backend_cpp.py).
template <class W>
IBS_INLINE typename W::vd exp_clamped(typename W::vd x) {
    using vd = typename W::vd;
    const double log2e = 0x1.71547652b82fep0;
    x = vmax<W>(x, opaque<W>(splat<W>(-746.0)));  // e^-746 < 2^-1076: rounds to 0
    const vd kd = x * log2e + kShifter;
    const vd n = kd - kShifter;
    const vd r = (x - n * 0x1.62e42feep-1) - n * 0x1.a39ef35793c76p-33;
    return exp2_reduced<W>(kd, r * log2e);
}

}  // namespace simd
}  // namespace ibsolver
