// The Jacobian of the BA map in joint log coordinates, for Newton's method on the fixed
// point (ibsolver/newton.py has the formulas, and `jacobian`, the numpy specification
// this reproduces to round-off).
//
// The encoder q(t|x) comes from the kernel (ibsolver::encoder), transposed to (k, n). The
// pair sums D[y, z, t, s] = sum_x p(x) p(y|x) p(z|x) q(t|x) q(s|x) are dot products of
// length n, symmetric in (y, z) and in (t, s): m (m + 1) / 2 * k (k + 1) / 2 of them, in
// the vector width the kernel runs with. The other sums follow: C[y, t, s] = sum_z D[y, z,
// t, s] (p(z|x) sums to 1), E[y, z, t] = sum_x p(x) p(y|x) p(z|x) q(t|x), R = sum_z E.
#include <cmath>
#include <cstring>
#include <vector>

#include "ba_kernel.hpp"
#include "fast_exp.hpp"

namespace ibsolver {
namespace {

using std::int64_t;

/// sum_i a[i] b[i], four vector accumulators.
template <class W>
IBS_INLINE double dot(const double* a, const double* b, int64_t n) {
    using vd = typename W::vd;
    constexpr int64_t L = W::lanes;
    vd acc[4] = {};
    int64_t i = 0;
    for (; i + 4 * L <= n; i += 4 * L)
        for (int u = 0; u < 4; ++u)
            acc[u] += simd::load<W>(a + i + u * L) * simd::load<W>(b + i + u * L);
    double s = simd::hsum<W>((acc[0] + acc[1]) + (acc[2] + acc[3]));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

/// out[j] = sum_i a[i] b_j[i] for the four rows b_j = b + j * stride: a is loaded once
/// for four products.
template <class W>
IBS_INLINE void dot4(const double* a, const double* b, int64_t stride, int64_t n, double* out) {
    using vd = typename W::vd;
    constexpr int64_t L = W::lanes;
    vd acc[4] = {};
    int64_t i = 0;
    for (; i + L <= n; i += L) {
        const vd va = simd::load<W>(a + i);
        for (int j = 0; j < 4; ++j) acc[j] += va * simd::load<W>(b + j * stride + i);
    }
    for (int j = 0; j < 4; ++j) {
        out[j] = simd::hsum<W>(acc[j]);
        for (int64_t r = i; r < n; ++r) out[j] += a[r] * b[j * stride + r];
    }
}

/// d[(y m + z) k k + t k + s] = sum_x w_yz[x] qt[t n + x] qt[s n + x] and
/// e[(y m + z) k + t] = sum_x w_yz[x] qt[t n + x], w_yz = p(x) p(y|x) p(z|x), for all
/// y, z, t, s (computed for y <= z, t <= s and mirrored).
template <class W>
IBS_INLINE void pair_sums(const double* p_x, const double* p_y_given_x, int64_t n, int64_t m,
                          const double* qt, int64_t k, double* d, double* e) {
    std::vector<double> w(n), v(n);
    for (int64_t y = 0; y < m; ++y) {
        for (int64_t z = y; z < m; ++z) {
            for (int64_t x = 0; x < n; ++x)
                w[x] = p_x[x] * p_y_given_x[x * m + y] * p_y_given_x[x * m + z];
            double* dyz = d + (y * m + z) * k * k;
            double* eyz = e + (y * m + z) * k;
            for (int64_t t = 0; t < k; ++t) {
                const double* q = qt + t * n;
                for (int64_t x = 0; x < n; ++x) v[x] = w[x] * q[x];
                eyz[t] = dot<W>(w.data(), q, n);
                int64_t s = t;
                for (double out[4]; s + 4 <= k; s += 4) {
                    dot4<W>(v.data(), qt + s * n, n, n, out);
                    for (int j = 0; j < 4; ++j) dyz[t * k + s + j] = dyz[(s + j) * k + t] = out[j];
                }
                for (; s < k; ++s)
                    dyz[t * k + s] = dyz[s * k + t] = dot<W>(v.data(), qt + s * n, n);
            }
            if (z != y) {
                std::memcpy(d + (z * m + y) * k * k, dyz, sizeof(double) * k * k);
                std::memcpy(e + (z * m + y) * k, eyz, sizeof(double) * k);
            }
        }
    }
}

using PairFn = void (*)(const double*, const double*, int64_t, int64_t, const double*, int64_t,
                        double*, double*);

void pair_sums_baseline(const double* p_x, const double* pyx, int64_t n, int64_t m,
                        const double* qt, int64_t k, double* d, double* e) {
    pair_sums<simd::W2>(p_x, pyx, n, m, qt, k, d, e);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) void pair_sums_avx2(const double* p_x, const double* pyx,
                                                        int64_t n, int64_t m, const double* qt,
                                                        int64_t k, double* d, double* e) {
    pair_sums<simd::W4>(p_x, pyx, n, m, qt, k, d, e);
}

__attribute__((target("avx512f,avx512dq,avx2,fma"))) void pair_sums_avx512(
    const double* p_x, const double* pyx, int64_t n, int64_t m, const double* qt, int64_t k,
    double* d, double* e) {
    pair_sums<simd::W8>(p_x, pyx, n, m, qt, k, d, e);
}
#endif

/// The pair-sum loop for the instruction set the kernel runs with (simd_target()).
PairFn pair_sums_for_target() {
#if defined(__x86_64__) || defined(__i386__)
    const std::string target = simd_target();
    if (target == "avx512") return pair_sums_avx512;
    if (target == "avx2+fma") return pair_sums_avx2;
#endif
    return pair_sums_baseline;
}

}  // namespace

Status ba_jacobian(const double* p_x, const double* p_y_given_x, int64_t n, int64_t m,
                   const double* theta, int64_t k, double beta, double alpha, double* g,
                   double* jac) {
    const int64_t mm = m * m, km = k * m;
    // a_t = log sum_y exp theta[t, y] (log p(t)) and log p(z|t) = theta - a_t
    std::vector<double> log_p_t(k), log_dec(km), p_z_given_t(km);
    for (int64_t t = 0; t < k; ++t) {
        const double* th = theta + t * m;
        double top = th[0];
        for (int64_t y = 1; y < m; ++y) top = std::max(top, th[y]);
        double s = 0.0;
        for (int64_t y = 0; y < m; ++y) s += std::exp(th[y] - top);
        log_p_t[t] = top + std::log(s);
        for (int64_t z = 0; z < m; ++z) {
            log_dec[t * m + z] = th[z] - log_p_t[t];
            p_z_given_t[t * m + z] = std::exp(log_dec[t * m + z]);
        }
    }
    std::vector<double> q(n * k), qt(k * n);
    const RowStore store = rows_of_dense(p_y_given_x, n, m);
    const Status status = encoder(store.view(n, m), log_p_t.data(), log_dec.data(), k, beta,
                                  alpha, 1, q.data());
    if (status != Status::ok) return status;
    for (int64_t t = 0; t < k; ++t)  // written in order: the reads are the strided ones
        for (int64_t x = 0; x < n; ++x) qt[t * n + x] = q[x * k + t];

    std::vector<double> d(mm * k * k), e(mm * k);  // D[y, z, t, s], E[y, z, t]
    pair_sums_for_target()(p_x, p_y_given_x, n, m, qt.data(), k, d.data(), e.data());

    // J[(t, y), (s, z)] = (delta_ts own[t, y, z] - cross[t, y, s, z]) / (alpha R[t, y]),
    // cross = (1 - beta) p(z|s) C[y, t, s] + beta D[y, z, t, s],
    // own = (1 - beta) p(z|t) R[t, y] + beta E[y, z, t]
    for (int64_t t = 0; t < k; ++t) {
        for (int64_t y = 0; y < m; ++y) {
            double r = 0.0;
            for (int64_t z = 0; z < m; ++z) r += e[(y * m + z) * k + t];
            g[t * m + y] = std::log(r);
            const double scale = 1.0 / (alpha * r);
            double* row = jac + (t * m + y) * km;
            for (int64_t s = 0; s < k; ++s) {
                double c = 0.0;
                for (int64_t z = 0; z < m; ++z) c += d[((y * m + z) * k + t) * k + s];
                for (int64_t z = 0; z < m; ++z) {
                    double v = -((1.0 - beta) * p_z_given_t[s * m + z] * c +
                                 beta * d[((y * m + z) * k + t) * k + s]);
                    if (s == t)
                        v += (1.0 - beta) * p_z_given_t[t * m + z] * r +
                             beta * e[(y * m + z) * k + t];
                    row[s * m + z] = v * scale;
                }
            }
        }
    }
    return Status::ok;
}

}  // namespace ibsolver
