// The fused decoder-state Blahut-Arimoto IB iteration (see ba_kernel.hpp and
// ibsolver/backends/numpy_backend.py, the specification).
//
// One iteration, parallel over rows x (OpenMP, static contiguous blocks, one block per
// thread), three passes over the clusters t per row, all over contiguous memory:
//   A  z[t] = log p(t)/alpha + (beta/alpha) sum_{y: p(y|x) > 0} p(y|x) log p(y|t)  and max_t z
//      (log p(y|t) is kept transposed, (m, kp), so the loop over t is contiguous; only y
//      with p(y|x) > 0 are visited, so 0 * -inf never happens)
//   B  e[t] = exp(z[t] - max), s = sum_t e, sum_t e (z - max)   (vectorised exp)
//   C  acc_t[t] += p(x) e[t]/s,  acc_ty[y][t] += p(x) p(y|x) e[t]/s
// into per-thread accumulators. After a barrier each thread reduces the accumulators of a
// slice of clusters (in thread order), takes logs, the residual and its share of the
// entropies; one thread then writes history[it] and decides whether to stop.
//
// The hot row loop is compiled three times, for AVX-512, AVX2+FMA and baseline x86-64
// (target attributes on thin wrappers around one always_inline template), and the best
// version the CPU supports is picked at run time: no -march flag is needed at build time.
#include "ba_kernel.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "fast_exp.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ibsolver {
namespace {

using std::int64_t;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kTiny = std::numeric_limits<double>::denorm_min();
constexpr double kLn2 = 0x1.62e42fefa39efp-1;
constexpr double kLog2e = 0x1.71547652b82fep+0;

/// Clusters per register block; a multiple of every vector width used. The cluster axis
/// is padded to a multiple of it (padding: log p(t) = -inf, so q = 0 there).
constexpr int64_t kBlock = 16;

/// Rows per group in the accumulation pass, and clusters per tile there.
constexpr int kRows = 4;
constexpr int64_t kTile = 512;

/// Below this much work (about n * k * (m + 16) flops) per thread, extra threads cost
/// more in barriers than they save; tiny problems therefore run on fewer threads.
constexpr double kMinWorkPerThread = 2.0e5;

// ------------------------------------------------------------------------------------
// memory
// ------------------------------------------------------------------------------------
struct FreeDeleter {
    void operator()(void* p) const noexcept { std::free(p); }
};

template <class T>
using Buffer = std::unique_ptr<T[], FreeDeleter>;

/// Zero-initialised, 64-byte aligned array of `count` T (throws std::bad_alloc).
template <class T>
Buffer<T> make_buffer(int64_t count) {
    std::size_t bytes = static_cast<std::size_t>(std::max<int64_t>(count, 1)) * sizeof(T);
    bytes = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, bytes);
    return Buffer<T>(static_cast<T*>(p));
}

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// ------------------------------------------------------------------------------------
// the row kernel
// ------------------------------------------------------------------------------------

/// What every thread reads during the row loop.
///
/// The logits are kept scaled: z = scale * logit with scale = log2(e)/alpha (alpha > 0;
/// q = 2^(z - max z) is then the softmax of logit/alpha, and the exp2 range reduction
/// is exact) or scale = 1 (alpha = 0, where only the argmax matters).
struct Shared {
    const double* p_x;          // (n); unused in encoder mode
    const double* p_y_given_x;  // (n, m)
    int64_t m, k, kp;
    const double* lpt_scaled;  // (kp) scale * log p(t); padding -inf
    const double* log_dec_t;   // (m, kp) log p(y|t) transposed, non-finite -> -inf; pad 0
    double coef;               // scale * beta
    bool use_beta;             // beta > 0 (beta = 0: logits are log p(t) alone)
    bool hard;                 // alpha = 0: one-hot at the first maximum
};

/// Per-thread scratch and accumulators.
struct alignas(64) Workspace {
    Buffer<double> acc_t;   // (kp)          sum_x p(x) q(t|x)
    Buffer<double> acc_ty;  // (m, kp)       sum_x p(x, y) q(t|x)
    Buffer<double> z;       // (kRows, kp)   logits, then 2^(logit - max), of a row group
    Buffer<double> coef;    // (m)           p(y|x) of the active y
    Buffer<double> wts;     // (m)           their weights in the logits
    Buffer<double> gw_t;    // (kRows)       p(x)/s(x) for the rows of the group
    Buffer<double> gw_ty;   // (m, kRows)    p(x, y)/s(x) for the rows of the group
    Buffer<int64_t> ys;     // (m)           the active y of a row: p(y|x) > 0
    Buffer<int64_t> gys;    // (m)           the y active in some row of the group
    Buffer<int64_t> ystamp; // (m)           first row of the last group that had y active
    double neg_h = 0.0;     // sum_x p(x) sum_t q log q

    void allocate(int64_t m, int64_t kp, bool accumulators) {
        if (accumulators) {
            acc_t = make_buffer<double>(kp);
            acc_ty = make_buffer<double>(m * kp);
        }
        z = make_buffer<double>(kRows * kp);
        coef = make_buffer<double>(m);
        wts = make_buffer<double>(m);
        gw_t = make_buffer<double>(kRows);
        gw_ty = make_buffer<double>(m * kRows);
        ys = make_buffer<int64_t>(m);
        gys = make_buffer<int64_t>(m);
        ystamp = make_buffer<int64_t>(m);
        std::fill(ystamp.get(), ystamp.get() + m, int64_t{-1});
    }
};

/// acc[t] += sum_r w[r] e[r * kp + t] for t in [t0, t1), rows in order r = 0, 1, ...
/// (the same rounding as adding the rows one after the other).
template <class W>
IBS_INLINE void accumulate_group(double* acc, const double* w, const double* e, int64_t kp,
                                 int64_t t0, int64_t t1) {
    using vd = typename W::vd;
    static_assert(kRows == 4, "accumulate_group is written for groups of 4 rows");
    const double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    for (int64_t t = t0; t < t1; t += W::lanes) {
        vd a = simd::load<W>(acc + t);
        a += w0 * simd::load<W>(e + t);
        a += w1 * simd::load<W>(e + kp + t);
        a += w2 * simd::load<W>(e + 2 * kp + t);
        a += w3 * simd::load<W>(e + 3 * kp + t);
        simd::store<W>(acc + t, a);
    }
}

/// Processes rows [first, last): accumulates into w (q_out == nullptr) or writes the
/// encoder rows to q_out (n, k). Returns false if some x has no admissible cluster.
///
/// Rows go in groups of kRows: passes A and B per row, pass C once per group, so that
/// the accumulators are loaded and stored once per group instead of once per row.
template <class W>
IBS_INLINE bool process_rows(const Shared& s, Workspace& w, int64_t first, int64_t last,
                             double* q_out) {
    using vd = typename W::vd;
    constexpr int64_t L = W::lanes;
    constexpr int U = static_cast<int>(kBlock / L);  // vectors per register block
    static_assert(kBlock % L == 0, "kBlock must be a multiple of the vector width");

    const int64_t m = s.m, k = s.k, kp = s.kp;
    double* const coef = w.coef.get();
    double* const wts = w.wts.get();
    int64_t* const ys = w.ys.get();
    double* const gw_t = w.gw_t.get();
    double* const gw_ty = w.gw_ty.get();
    int64_t* const gys = w.gys.get();
    int64_t* const ystamp = w.ystamp.get();
    const vd zero = {};
    const bool accumulate = q_out == nullptr;

    for (int64_t x0 = first; x0 < last; x0 += kRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kRows, last - x0));
        if (accumulate && !s.hard) {
            std::fill(gw_t, gw_t + kRows, 0.0);
            std::fill(gw_ty, gw_ty + m * kRows, 0.0);
        }
        int64_t ngy = 0;  // number of y active in the group

        for (int r = 0; r < rows; ++r) {
            const int64_t x = x0 + r;
            double* const z = w.z.get() + r * kp;
            const double* row = s.p_y_given_x + x * m;
            int64_t na = 0;
            for (int64_t y = 0; y < m; ++y) {
                if (row[y] > 0.0) {
                    ys[na] = y;
                    coef[na] = row[y];
                    ++na;
                }
            }

            // Pass A: z[t] = lpt_scaled[t] + sum_j (coef * p(y_j|x)) log p(y_j|t), max.
            vd vmax[U];
            for (int u = 0; u < U; ++u) vmax[u] = simd::splat<W>(-kInf);
            if (s.use_beta) {
                for (int64_t j = 0; j < na; ++j) {
                    // > 0 even if the product underflows, so that -inf * weight stays -inf
                    wts[j] = std::max(s.coef * coef[j], kTiny);
                }
                for (int64_t t = 0; t < kp; t += kBlock) {
                    vd a[U];
                    for (int u = 0; u < U; ++u) a[u] = simd::load<W>(s.lpt_scaled + t + u * L);
                    for (int64_t j = 0; j < na; ++j) {
                        const double c = wts[j];
                        const double* lr = s.log_dec_t + ys[j] * kp + t;
                        for (int u = 0; u < U; ++u) a[u] += c * simd::load<W>(lr + u * L);
                    }
                    for (int u = 0; u < U; ++u) {
                        simd::store<W>(z + t + u * L, a[u]);
                        vmax[u] = a[u] > vmax[u] ? a[u] : vmax[u];
                    }
                }
            } else {
                for (int64_t t = 0; t < kp; t += kBlock) {
                    for (int u = 0; u < U; ++u) {
                        const vd a = simd::load<W>(s.lpt_scaled + t + u * L);
                        simd::store<W>(z + t + u * L, a);
                        vmax[u] = a > vmax[u] ? a : vmax[u];
                    }
                }
            }
            for (int u = 1; u < U; ++u) vmax[0] = vmax[u] > vmax[0] ? vmax[u] : vmax[0];
            const double zmax = simd::hmax<W>(vmax[0]);
            if (!(zmax > -kInf)) return false;  // every cluster is impossible for this x

            if (s.hard) {  // deterministic IB: one-hot at the first maximum
                int64_t best = 0;
                while (best < k && !(z[best] == zmax)) ++best;
                if (!accumulate) {
                    double* qr = q_out + x * k;
                    std::fill(qr, qr + k, 0.0);
                    qr[best] = 1.0;
                } else {
                    const double px = s.p_x[x];
                    w.acc_t[best] += px;
                    for (int64_t j = 0; j < na; ++j) w.acc_ty[ys[j] * kp + best] += px * coef[j];
                }
                continue;
            }

            // Pass B: e = 2^(z - max) (in place), s = sum e, sum e (z - max). z - max is
            // clamped at -1080 for the second sum, so that e = 0 (z = -inf) contributes 0:
            // q log q = 0 where q = 0. Two accumulators each, to shorten the dependency chains.
            const vd floor = simd::splat<W>(-1080.0);
            vd vs0 = zero, vs1 = zero, vh0 = zero, vh1 = zero;
            for (int64_t t = 0; t < kp; t += 2 * L) {
                vd d0 = simd::load<W>(z + t) - zmax;
                vd d1 = simd::load<W>(z + t + L) - zmax;
                d0 = d0 > floor ? d0 : floor;
                d1 = d1 > floor ? d1 : floor;
                const vd e0 = simd::exp2_nonpositive<W>(d0);
                const vd e1 = simd::exp2_nonpositive<W>(d1);
                vs0 += e0;
                vs1 += e1;
                vh0 += e0 * d0;
                vh1 += e1 * d1;
                simd::store<W>(z + t, e0);
                simd::store<W>(z + t + L, e1);
            }
            const double sum_e = simd::hsum<W>(vs0 + vs1);

            if (!accumulate) {
                double* qr = q_out + x * k;
                for (int64_t t = 0; t < k; ++t) qr[t] = z[t] / sum_e;
                continue;
            }

            const double inv_s = 1.0 / sum_e;
            const double px = s.p_x[x];
            // sum_t q ln q = sum_t (e/s)(ln2 (z - max) - ln s) = ln2 sum_t e (z - max)/s - ln s
            w.neg_h += px * (kLn2 * simd::hsum<W>(vh0 + vh1) * inv_s - std::log(sum_e));

            // weights of this row in pass C
            gw_t[r] = px * inv_s;
            for (int64_t j = 0; j < na; ++j) {
                const int64_t y = ys[j];
                if (ystamp[y] != x0) {  // first row of the group with this y
                    ystamp[y] = x0;
                    gys[ngy++] = y;
                }
                gw_ty[y * kRows + r] = (px * coef[j]) * inv_s;
            }
        }
        if (!accumulate || s.hard) continue;

        // Pass C, once for the group: acc_t[t] += sum_r p(x_r) q(t|x_r) and
        // acc_ty[y][t] += sum_r p(x_r, y) q(t|x_r), tile by tile so that the group's rows
        // of e stay in cache across the accumulators. Rows missing from a short last
        // group have weight 0 (their rows of e hold finite values from earlier groups).
        const double* e = w.z.get();
        for (int64_t t0 = 0; t0 < kp; t0 += kTile) {
            const int64_t t1 = std::min(kp, t0 + kTile);
            accumulate_group<W>(w.acc_t.get(), gw_t, e, kp, t0, t1);
            for (int64_t j = 0; j < ngy; ++j) {
                const int64_t y = gys[j];
                accumulate_group<W>(w.acc_ty.get() + y * kp, gw_ty + y * kRows, e, kp, t0, t1);
            }
        }
    }
    return true;
}

using RowFn = bool (*)(const Shared&, Workspace&, int64_t, int64_t, double*);

bool rows_baseline(const Shared& s, Workspace& w, int64_t first, int64_t last, double* q) {
    return process_rows<simd::W2>(s, w, first, last, q);
}

#if defined(__x86_64__) || defined(__i386__)
#define IBS_X86 1
__attribute__((target("avx2,fma"))) bool rows_avx2(const Shared& s, Workspace& w,
                                                    int64_t first, int64_t last, double* q) {
    return process_rows<simd::W4>(s, w, first, last, q);
}

__attribute__((target("avx512f,avx512dq,avx2,fma"))) bool rows_avx512(
    const Shared& s, Workspace& w, int64_t first, int64_t last, double* q) {
    return process_rows<simd::W8>(s, w, first, last, q);
}
#endif

struct Target {
    const char* name;
    RowFn fn;
    bool (*supported)();
};

#ifdef IBS_X86
bool cpu_has_avx512() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}
bool cpu_has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif
bool always() { return true; }

/// Best first.
const Target kTargets[] = {
#ifdef IBS_X86
    {"avx512", rows_avx512, cpu_has_avx512},
    {"avx2+fma", rows_avx2, cpu_has_avx2},
    {"sse2", rows_baseline, always},
#else
    {"generic", rows_baseline, always},
#endif
};

const Target* best_target() {
    for (const Target& t : kTargets)
        if (t.supported()) return &t;
    return &kTargets[sizeof(kTargets) / sizeof(kTargets[0]) - 1];
}

std::atomic<const Target*>& current_target() {
    static std::atomic<const Target*> current{best_target()};
    return current;
}

// ------------------------------------------------------------------------------------
// shared state and threads
// ------------------------------------------------------------------------------------

/// The transposed, padded, alpha-scaled decoder state the row kernel reads.
struct KernelState {
    int64_t m, k, kp;
    double alpha;
    Buffer<double> lpt_scaled;  // (kp)
    Buffer<double> log_dec_t;   // (m, kp)

    KernelState(int64_t m_, int64_t k_, double alpha_)
        : m(m_), k(k_), kp(round_up(k_, kBlock)), alpha(alpha_),
          lpt_scaled(make_buffer<double>(kp)), log_dec_t(make_buffer<double>(m_ * kp)) {
        std::fill(lpt_scaled.get() + k, lpt_scaled.get() + kp, -kInf);
    }

    /// log2(e)/alpha for alpha > 0 (see Shared), 1 for alpha = 0.
    double scale() const { return alpha > 0.0 ? kLog2e / alpha : 1.0; }

    void set_lpt(int64_t t, double lpt) { lpt_scaled[t] = scale() * lpt; }

    void set_log_dec(int64_t t, int64_t y, double v) {
        // non-finite log p(y|t) means p(y|t) = 0, as in the numpy reference
        log_dec_t[y * kp + t] = std::isfinite(v) ? v : -kInf;
    }

    void load(const double* log_p_t, const double* log_p_y_given_t) {
        for (int64_t t = 0; t < k; ++t) {
            set_lpt(t, log_p_t[t]);
            for (int64_t y = 0; y < m; ++y) set_log_dec(t, y, log_p_y_given_t[t * m + y]);
        }
    }

    Shared shared(const double* p_x, const double* p_y_given_x, double beta) const {
        Shared s;
        s.p_x = p_x;
        s.p_y_given_x = p_y_given_x;
        s.m = m;
        s.k = k;
        s.kp = kp;
        s.lpt_scaled = lpt_scaled.get();
        s.log_dec_t = log_dec_t.get();
        s.coef = scale() * beta;
        s.use_beta = beta > 0.0;
        s.hard = !(alpha > 0.0);
        return s;
    }
};

int resolve_threads(int n_threads, int64_t n, int64_t kp, int64_t m) {
#ifdef _OPENMP
    int64_t nth = n_threads > 0 ? n_threads : omp_get_max_threads();
    const double work = static_cast<double>(n) * static_cast<double>(kp) * (m + 16.0);
    const int64_t cap = static_cast<int64_t>(work / kMinWorkPerThread);
    nth = std::min({nth, std::max<int64_t>(cap, 1), std::max<int64_t>(n, 1)});
    return static_cast<int>(std::max<int64_t>(nth, 1));
#else
    (void)n_threads, (void)n, (void)kp, (void)m;
    return 1;
#endif
}

int thread_num() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int team_size() {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/// Per-thread results of the cluster pass, padded against false sharing.
struct alignas(64) Partial {
    double residual = 0.0;
    double h_t = 0.0;
    double h_y_given_t = 0.0;
    double neg_h = 0.0;
};

}  // namespace

// ------------------------------------------------------------------------------------
// public API
// ------------------------------------------------------------------------------------
const char* status_message(Status status) {
    switch (status) {
        case Status::ok:
            return "ok";
        case Status::no_admissible_cluster:
            return "an x has no admissible cluster (all logits are -inf)";
    }
    return "unknown error";
}

IterationResult run_iterations(const double* p_x, const double* p_y_given_x, int64_t n,
                               int64_t m, double* log_p_t, double* log_p_y_given_t, int64_t k,
                               double beta, double alpha, int64_t max_iter, double tol,
                               int n_threads, double* history) {
    IterationResult result;
    result.residual = kInf;
    if (max_iter <= 0) return result;

    KernelState state(m, k, alpha);
    state.load(log_p_t, log_p_y_given_t);
    const int64_t kp = state.kp;
    const Shared sh = state.shared(p_x, p_y_given_x, beta);
    const RowFn rows = current_target().load()->fn;

    const int nth = resolve_threads(n_threads, n, kp, m);
    std::vector<Workspace> ws(nth);
    for (auto& w : ws) w.allocate(m, kp, true);
    std::vector<Partial> part(nth);

    int error = 0;
    bool stop = false;
    int64_t n_iter = 0;
    double residual = kInf;

#pragma omp parallel num_threads(nth)
    {
        const int tid = thread_num();
        const int team = team_size();
        Workspace& w = ws[tid];
        const int64_t x0 = n * tid / team, x1 = n * (tid + 1) / team;
        const int64_t t0 = k * tid / team, t1 = k * (tid + 1) / team;

        for (int64_t it = 0; it < max_iter; ++it) {
            std::fill(w.acc_t.get(), w.acc_t.get() + kp, 0.0);
            std::fill(w.acc_ty.get(), w.acc_ty.get() + m * kp, 0.0);
            w.neg_h = 0.0;
            if (!rows(sh, w, x0, x1, nullptr)) {
#pragma omp atomic write
                error = 1;
            }
#pragma omp barrier
            int err;
#pragma omp atomic read
            err = error;
            if (err) break;  // every thread sees the same value here

            // Reduce the accumulators of clusters [t0, t1) and update the state.
            Partial p;
            p.neg_h = w.neg_h;
            for (int64_t t = t0; t < t1; ++t) {
                double pt = 0.0;
                for (int th = 0; th < team; ++th) pt += ws[th].acc_t[t];
                const double lpt_old = log_p_t[t];
                const double lpt_new = std::log(pt);  // -inf for an empty cluster
                double* dec = log_p_y_given_t + t * m;
                for (int64_t y = 0; y < m; ++y) {
                    double pty = 0.0;
                    for (int th = 0; th < team; ++th) pty += ws[th].acc_ty[y * kp + t];
                    const double diff = std::fabs(pty - std::exp(lpt_old + dec[y]));
                    if (diff > p.residual || diff != diff) p.residual = diff;  // keeps NaN
                    const double v = pt > 0.0 ? std::log(pty) - lpt_new : -kInf;
                    dec[y] = v;
                    state.set_log_dec(t, y, v);
                    if (pty > 0.0) p.h_y_given_t -= pty * v;
                }
                if (pt > 0.0) p.h_t -= pt * lpt_new;
                log_p_t[t] = lpt_new;
                state.set_lpt(t, lpt_new);
            }
            part[tid] = p;
#pragma omp barrier
#pragma omp single
            {
                double res = 0.0, h_t = 0.0, h_yt = 0.0, neg_h = 0.0;
                bool nan = false;
                for (int th = 0; th < team; ++th) {
                    const double r = part[th].residual;
                    if (r != r) nan = true;
                    else if (r > res) res = r;
                    h_t += part[th].h_t;
                    h_yt += part[th].h_y_given_t;
                    neg_h += part[th].neg_h;
                }
                if (nan) res = std::numeric_limits<double>::quiet_NaN();
                const double h_t_given_x = -neg_h;
                history[it] = h_t - alpha * h_t_given_x + beta * h_yt;
                n_iter = it + 1;
                residual = res;
                stop = res <= tol;
            }  // implicit barrier
            if (stop) break;
        }
    }

    if (error) {
        result.status = Status::no_admissible_cluster;
        return result;
    }
    result.n_iter = n_iter;
    result.residual = residual;
    return result;
}

Status encoder(const double* p_y_given_x, int64_t n, int64_t m, const double* log_p_t,
               const double* log_p_y_given_t, int64_t k, double beta, double alpha,
               int n_threads, double* q) {
    KernelState state(m, k, alpha);
    state.load(log_p_t, log_p_y_given_t);
    const Shared sh = state.shared(nullptr, p_y_given_x, beta);
    const RowFn rows = current_target().load()->fn;

    const int nth = resolve_threads(n_threads, n, state.kp, m);
    std::vector<Workspace> ws(nth);
    for (auto& w : ws) w.allocate(m, state.kp, false);

    int error = 0;
#pragma omp parallel num_threads(nth)
    {
        const int tid = thread_num();
        const int team = team_size();
        const int64_t x0 = n * tid / team, x1 = n * (tid + 1) / team;
        if (!rows(sh, ws[tid], x0, x1, q)) {
#pragma omp atomic write
            error = 1;
        }
    }
    return error ? Status::no_admissible_cluster : Status::ok;
}

bool has_openmp() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

const char* simd_target() { return current_target().load()->name; }

std::vector<std::string> simd_targets() {
    std::vector<std::string> names;
    for (const Target& t : kTargets)
        if (t.supported()) names.emplace_back(t.name);
    return names;
}

bool set_simd_target(const std::string& name) {
    if (name.empty() || name == "best") {
        current_target().store(best_target());
        return true;
    }
    for (const Target& t : kTargets) {
        if (name == t.name && t.supported()) {
            current_target().store(&t);
            return true;
        }
    }
    return false;
}

}  // namespace ibsolver
