// SQUAREM extrapolation of the BA map, compiled: the same algorithm, step for step, as
// ibsolver/accelerate.py (the specification; see its docstring). In Python each map
// evaluation costs a call and a dozen numpy operations, which outweigh the map itself on
// small problems; here the loop runs with the GIL released.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ba_kernel.hpp"

namespace ibsolver {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// log sum_i e^v[i]; work holds size doubles (the vectorised exp needs somewhere to write)
double log_sum_exp(const double* v, std::int64_t size, double* work) {
    double top = -kInf;
    for (std::int64_t i = 0; i < size; ++i) top = std::max(top, v[i]);
    if (top == -kInf) return -kInf;
    for (std::int64_t i = 0; i < size; ++i) work[i] = v[i] - top;
    vector_exp(work, work, size);
    double s = 0.0;
    for (std::int64_t i = 0; i < size; ++i) s += work[i];
    return top + std::log(s);
}

// (log p(t), log p(y|t)) of the joint log theta + const, in the log domain.
void state_from_joint_log(const std::vector<double>& theta, std::int64_t k, std::int64_t m,
                          std::vector<double>& log_p_t, std::vector<double>& log_p_y_given_t,
                          std::vector<double>& work) {
    const double total = log_sum_exp(theta.data(), k * m, work.data());
    std::vector<double> row(static_cast<std::size_t>(m));
    for (std::int64_t t = 0; t < k; ++t) {
        for (std::int64_t y = 0; y < m; ++y) row[y] = theta[t * m + y] - total;
        log_p_t[t] = log_sum_exp(row.data(), m, work.data());
        for (std::int64_t y = 0; y < m; ++y) log_p_y_given_t[t * m + y] = row[y] - log_p_t[t];
    }
}

}  // namespace

IterationResult run_squarem(const double* p_x, const Rows& rows, double* log_p_t,
                            double* log_p_y_given_t, std::int64_t k, double beta, double alpha,
                            std::int64_t max_iter, double tol, int n_threads, double* history) {
    const std::int64_t m = rows.m;
    BaMap map(p_x, rows, k, beta, alpha, n_threads);
    IterationResult result;
    result.residual = kInf;
    const std::size_t km = static_cast<std::size_t>(k * m);
    std::vector<double> lp1(log_p_t, log_p_t + k), lpy1(log_p_y_given_t, log_p_y_given_t + km);
    std::vector<double> lp2(k), lpy2(km), lp3(k), lpy3(km), lpx(k), lpyx(km), th(km), th0(km),
        th2(km), r(km), v(km), work(km);
    std::vector<char> finite(km);
    std::int64_t n_eval = 0, n_hist = 0;
    double step_max = 4.0;
    double l = 0.0;

    // one map evaluation from (lp, lpy) into (out_t, out_ty); false on an error status
    auto step = [&](const double* lp, const double* lpy, std::vector<double>& out_t,
                    std::vector<double>& out_ty, double& residual, double& value) {
        std::copy(lp, lp + k, out_t.begin());
        std::copy(lpy, lpy + km, out_ty.begin());
        const IterationResult one = map.run(out_t.data(), out_ty.data(), 1, 0.0, &value);
        ++n_eval;
        result.status = one.status;
        residual = one.residual;
        return one.status == Status::ok;
    };
    auto keep = [&](const std::vector<double>& t_, const std::vector<double>& ty) {
        std::copy(t_.begin(), t_.end(), log_p_t);
        std::copy(ty.begin(), ty.end(), log_p_y_given_t);
    };

    while (n_eval < max_iter) {
        double res1, res2, res3;
        if (!step(log_p_t, log_p_y_given_t, lp1, lpy1, res1, l)) return result;
        history[n_hist++] = l;
        result.residual = res1;
        if (res1 <= tol || n_eval >= max_iter) {
            keep(lp1, lpy1);
            break;
        }
        double l2;
        if (!step(lp1.data(), lpy1.data(), lp2, lpy2, res2, l2)) return result;
        history[n_hist++] = l2;
        result.residual = res2;
        if (res2 <= tol || n_eval >= max_iter) {
            keep(lp2, lpy2);
            if (res2 <= tol) break;
            continue;
        }
        // r, v in the joint log coordinates theta = log p(t) + log p(y|t), where all three
        // points are finite (elsewhere p(t, y) = 0 stays, and the extrapolation keeps th2)
        double nr = 0.0, nv = 0.0;
        for (std::int64_t t = 0; t < k; ++t) {
            for (std::int64_t y = 0; y < m; ++y) {
                const std::size_t i = static_cast<std::size_t>(t * m + y);
                th0[i] = log_p_t[t] + log_p_y_given_t[i];
                const double th1 = lp1[t] + lpy1[i];
                th2[i] = lp2[t] + lpy2[i];
                finite[i] = std::isfinite(th0[i]) && std::isfinite(th1) && std::isfinite(th2[i]);
                r[i] = finite[i] ? th1 - th0[i] : 0.0;
                v[i] = (finite[i] ? th2[i] - th1 : 0.0) - r[i];
                nr += r[i] * r[i];
                nv += v[i] * v[i];
            }
        }
        nr = std::sqrt(nr);
        nv = std::sqrt(nv);
        bool accepted = false;
        if (nv > 0.0) {
            const double a = -std::min(std::max(nr / nv, 1.0), step_max);
            for (std::size_t i = 0; i < km; ++i)
                th[i] = finite[i] ? th0[i] - 2.0 * a * r[i] + a * a * v[i] : th2[i];
            state_from_joint_log(th, k, m, lpx, lpyx, work);  // the extrapolated point
            bool ok = true;
            for (std::int64_t t = 0; t < k; ++t)
                ok = ok && (std::isfinite(lpx[t]) || lpx[t] == -kInf);
            if (ok && n_eval < max_iter) {
                double l3;
                if (!step(lpx.data(), lpyx.data(), lp3, lpy3, res3, l3)) return result;
                if (std::isfinite(l3) && l3 <= l2) {
                    history[n_hist++] = l3;
                    keep(lp3, lpy3);
                    result.residual = res3;
                    accepted = true;
                    step_max *= 2.0;  // (no upper bound: see accelerate.py)
                }
            }
        }
        if (!accepted) {
            keep(lp2, lpy2);
            step_max = std::max(step_max / 2.0, 1.0);
        }
    }
    result.n_iter = n_eval;
    result.n_history = n_hist;
    return result;
}

}  // namespace ibsolver
