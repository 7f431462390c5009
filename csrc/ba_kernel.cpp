// The fused decoder-state Blahut-Arimoto IB iteration (see ba_kernel.hpp and
// ibsolver/backends/numpy_backend.py, the specification).
//
// One iteration, parallel over rows x (OpenMP, one contiguous block of rows per thread),
// with per-thread accumulators. Per row, over the clusters t (contiguous memory):
//   A  z[t] = c [log p(t) + beta sum_{y: p(y|x) > 0} p(y|x) log p(y|t)] and max_t z,
//      c = log2(e)/alpha (c = 1 for alpha = 0). log p(y|t) is kept transposed (and in
//      blocks of clusters), so the loop over t is contiguous; only the y with p(y|x) > 0
//      are visited, so 0 * -inf never happens.
//   B  e[t] = 2^(z[t] - max) (a vectorised exp2: base 2 makes the range reduction
//      exact), s = sum_t e, sum_t e (z - max) for sum_t q log q.
// and per group of kRows rows:
//   C  acc_t[t] += sum_x p(x) e_x[t]/s_x,  acc_ty[y][t] += sum_x p(x, y) e_x[t]/s_x.
// alpha = 0 replaces B and C by a one-hot at the first maximum. After a barrier each
// thread reduces the accumulators of a slice of clusters (threads in a fixed order),
// takes logs (vectorised: there are k m of them, as many as the exponentials of B where
// |Y| ~ |X|), the residual and its share of the entropies; after a second barrier every
// thread combines the per-thread partials, thread 0 writes history[it], and all stop
// together once the residual is <= tol.
//
// The row kernel is compiled three times, for AVX-512, AVX2+FMA and baseline x86-64
// (target attributes on thin wrappers around one always_inline template written with
// GCC vector extensions), and the best version the CPU supports is picked at run time:
// no -march flag is needed at build time.
#include "ba_kernel.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "fast_exp.hpp"

#ifdef _OPENMP
#include <omp.h>
#define IBS_PRAGMA(x) _Pragma(#x)
#define IBS_OMP(x) IBS_PRAGMA(omp x)
#else  // built without OpenMP: one thread
#define IBS_OMP(x)
#endif

namespace ibsolver {
namespace {

using std::int64_t;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kTiny = std::numeric_limits<double>::denorm_min();
constexpr double kLn2 = 0x1.62e42fefa39efp-1;
constexpr double kLog2e = 0x1.71547652b82fep+0;

/// Clusters per register block in pass A, a multiple of every vector width used: the
/// cluster axis is padded to a multiple of the block (padding: log p(t) = -inf, so q = 0
/// there). The wide block is faster per cluster; the narrow one is used where it pads
/// less (block_for): with few clusters (k ~ 10 on |Y| = 2 curves) padding is most of the
/// work.
constexpr int64_t kBlockWide = 16;
constexpr int64_t kBlockNarrow = 8;

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

int64_t block_for(int64_t k) {
    return round_up(k, kBlockNarrow) < round_up(k, kBlockWide) ? kBlockNarrow : kBlockWide;
}

/// Rows per group in the accumulation pass, and clusters per tile there.
constexpr int kRows = 4;
constexpr int64_t kTile = 512;

/// Below this much work (about n * (k + kRowCost) * (m + 16) flops) per thread, extra
/// threads cost more in barriers than they save; tiny problems therefore run on fewer
/// threads, even where more were asked for.
constexpr double kMinWorkPerThread = 2.0e5;

/// The same for the default thread count (n_threads <= 0): a thread's share of one
/// iteration must be about 0.1 ms of one core (some 20 units per ns). Every iteration ends
/// in two barriers, and a team member the scheduler preempts (the other cores busy) holds
/// each of them for a scheduler slice, milliseconds: below this share threads cannot win
/// on a busy machine, and win little on a quiet one. (The Python backends go further:
/// above it they measure whether threads pay; see ibsolver/backends/_threads.py, whose
/// MIN_WORK_PER_THREAD is this number.)
constexpr double kMinWorkPerThreadDefault = 2.0e6;

/// A row's fixed cost (its maxima, sums and log), in clusters: with few clusters it is
/// most of the row's time.
constexpr double kRowCost = 24.0;

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

// ------------------------------------------------------------------------------------
// the row kernel
// ------------------------------------------------------------------------------------

/// Where log p(y|t) is kept: transposed and blocked, (kp / B, m, B) for block size B. A
/// block of B clusters is contiguous for one y (so the loop over t is contiguous), and the
/// blocks of all y for the same clusters are next to each other (so that a pass over t
/// for many y streams through memory in order, which the prefetchers follow).
inline int64_t dec_index(int64_t block, int64_t m, int64_t y, int64_t t) {
    return (t / block) * (m * block) + y * block + t % block;
}

/// What every thread reads during the row loop.
///
/// The logits are kept scaled: z = scale * logit with scale = log2(e)/alpha (alpha > 0;
/// q = 2^(z - max z) is then the softmax of logit/alpha, and the exp2 range reduction
/// is exact) or scale = 1 (alpha = 0, where only the argmax matters).
struct Shared {
    const double* p_x;          // (n); unused in encoder mode
    Rows rows;                  // p(y|x), its non-zeros
    int64_t m, k, kp, block;
    const double* lpt_scaled;  // (kp) scale * log p(t); padding -inf
    const double* log_dec_t;   // log p(y|t), non-finite -> -inf, pad 0, in blocks (see
                               // KernelState): element (y, t) at dec_index(block, m, y, t)
    double coef;               // scale * beta
    bool use_beta;             // beta > 0 (beta = 0: logits are log p(t) alone)
    bool hard;                 // alpha = 0: one-hot at the first maximum
};

/// Per-thread scratch and accumulators.
struct alignas(64) Workspace {
    Buffer<double> acc_t;   // (kp)          sum_x p(x) q(t|x)
    Buffer<double> acc_ty;  // (m, kp)       sum_x p(x, y) q(t|x)
    Buffer<double> z;       // (kRows, kp)   logits, then 2^(logit - max), of a row group
    Buffer<double> zmax;    // (kRows)       their maxima
    Buffer<int64_t> na;     // (kRows)       number of active y (p(y|x) > 0) of each row
    Buffer<int64_t> ys;     // (kRows, m)    the active y of each row
    Buffer<double> coef;    // (kRows, m)    their p(y|x)
    Buffer<double> wts;     // (kRows, m)    their weights in the logits
    Buffer<const double*> rows_j;  // (kRows, m)  their rows of log p(y|t)
    Buffer<double> gw_t;    // (kRows)       p(x)/s(x) for the rows of the group
    Buffer<double> gw_ty;   // (m, kRows)    p(x, y)/s(x) for the rows of the group
    Buffer<int64_t> gys;    // (m)           the y active in some row of the group
    Buffer<int64_t> ystamp; // (m)           the last group that had y active
    int64_t groups = 0;     // groups processed so far (their ids)
    double neg_h = 0.0;     // sum_x p(x) sum_t q log q

    void allocate(int64_t m, int64_t kp, bool accumulators) {
        if (accumulators) {
            acc_t = make_buffer<double>(kp);
            acc_ty = make_buffer<double>(m * kp);
        }
        z = make_buffer<double>(kRows * kp);
        zmax = make_buffer<double>(kRows);
        na = make_buffer<int64_t>(kRows);
        ys = make_buffer<int64_t>(kRows * m);
        coef = make_buffer<double>(kRows * m);
        wts = make_buffer<double>(kRows * m);
        rows_j = make_buffer<const double*>(kRows * m);
        gw_t = make_buffer<double>(kRows);
        gw_ty = make_buffer<double>(m * kRows);
        gys = make_buffer<int64_t>(m);
        ystamp = make_buffer<int64_t>(m);  // zero: no group yet
    }
};

/// acc[t] += sum_r w[r] e[r * kp + t] for t in [t0, t1), rows in order r = 0, 1, ...
/// (the same rounding as adding the rows one after the other).
template <class W>
IBS_INLINE void accumulate_group(double* acc, const double* w, const double* e, int64_t kp,
                                 int64_t t0, int64_t t1) {
    using vd = typename W::vd;
    static_assert(kRows == 4, "accumulate_group is written for groups of 4 rows");
    constexpr int64_t L = W::lanes;
    const double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    int64_t t = t0;
    for (; t + 2 * L <= t1; t += 2 * L) {  // two independent chains per step
        vd a = simd::load<W>(acc + t);
        vd b = simd::load<W>(acc + t + L);
        a += w0 * simd::load<W>(e + t);
        b += w0 * simd::load<W>(e + t + L);
        a += w1 * simd::load<W>(e + kp + t);
        b += w1 * simd::load<W>(e + kp + t + L);
        a += w2 * simd::load<W>(e + 2 * kp + t);
        b += w2 * simd::load<W>(e + 2 * kp + t + L);
        a += w3 * simd::load<W>(e + 3 * kp + t);
        b += w3 * simd::load<W>(e + 3 * kp + t + L);
        simd::store<W>(acc + t, a);
        simd::store<W>(acc + t + L, b);
    }
    if (t < t1) {  // t1 - t0 is a multiple of L
        vd a = simd::load<W>(acc + t);
        a += w0 * simd::load<W>(e + t);
        a += w1 * simd::load<W>(e + kp + t);
        a += w2 * simd::load<W>(e + 2 * kp + t);
        a += w3 * simd::load<W>(e + 3 * kp + t);
        simd::store<W>(acc + t, a);
    }
}

/// accumulate_group for two accumulators at once (wa, wb: their weights), sharing the
/// loads of e: fewer loads per FMA when there are many y.
template <class W>
IBS_INLINE void accumulate_group2(double* acc_a, const double* wa, double* acc_b,
                                  const double* wb, const double* e, int64_t kp, int64_t t0,
                                  int64_t t1) {
    using vd = typename W::vd;
    static_assert(kRows == 4, "accumulate_group2 is written for groups of 4 rows");
    const double a0 = wa[0], a1 = wa[1], a2 = wa[2], a3 = wa[3];
    const double b0 = wb[0], b1 = wb[1], b2 = wb[2], b3 = wb[3];
    for (int64_t t = t0; t < t1; t += W::lanes) {
        const vd e0 = simd::load<W>(e + t);
        const vd e1 = simd::load<W>(e + kp + t);
        const vd e2 = simd::load<W>(e + 2 * kp + t);
        const vd e3 = simd::load<W>(e + 3 * kp + t);
        vd a = simd::load<W>(acc_a + t);
        vd b = simd::load<W>(acc_b + t);
        a += a0 * e0;
        b += b0 * e0;
        a += a1 * e1;
        b += b1 * e1;
        a += a2 * e2;
        b += b2 * e2;
        a += a3 * e3;
        b += b3 * e3;
        simd::store<W>(acc_a + t, a);
        simd::store<W>(acc_b + t, b);
    }
}

/// z[t] = base[t] + sum_{j < NJ} c[j] log p(y_j|t) for t < kp, added in this order, and
/// vmax[u] = max(vmax[u], z) (U vectors, lane-wise). rows[j] points to the first block of
/// y_j in the blocked layout (blocks `stride` apart). For rows with few active y: their
/// weights and pointers stay in registers.
template <class W, int64_t B, int NJ>
IBS_INLINE void logit_chunk(const double* base, const double* const* rows, const double* c,
                            double* z, int64_t kp, int64_t stride, typename W::vd* vmax) {
    using vd = typename W::vd;
    constexpr int64_t L = W::lanes;
    constexpr int U = static_cast<int>(B / L);
    const double* r[NJ > 0 ? NJ : 1];
    double cj[NJ > 0 ? NJ : 1];
    for (int j = 0; j < NJ; ++j) {
        r[j] = rows[j];
        cj[j] = c[j];
    }
    for (int64_t t = 0, off = 0; t < kp; t += B, off += stride) {
        vd a[U];
        for (int u = 0; u < U; ++u) a[u] = simd::load<W>(base + t + u * L);
        for (int j = 0; j < NJ; ++j)
            for (int u = 0; u < U; ++u) a[u] += cj[j] * simd::load<W>(r[j] + off + u * L);
        for (int u = 0; u < U; ++u) {
            simd::store<W>(z + t + u * L, a[u]);
            vmax[u] = simd::vmax<W>(a[u], vmax[u]);
        }
    }
}

/// Pass A for one row with na <= 4 active y: z = lpt_scaled + sum_j wts[j] log p(y_j|t),
/// returns max_t z.
template <class W, int64_t B>
IBS_INLINE double logits_row(const Shared& s, int64_t na, const double* const* rows,
                             const double* wts, double* z) {
    using vd = typename W::vd;
    constexpr int U = static_cast<int>(B / W::lanes);
    vd vmax[U];
    for (int u = 0; u < U; ++u) vmax[u] = simd::splat<W>(-kInf);
    const int64_t kp = s.kp, st = s.m * B;
    const double* lpt = s.lpt_scaled;
    switch (na) {
        case 0: logit_chunk<W, B, 0>(lpt, rows, wts, z, kp, st, vmax); break;
        case 1: logit_chunk<W, B, 1>(lpt, rows, wts, z, kp, st, vmax); break;
        case 2: logit_chunk<W, B, 2>(lpt, rows, wts, z, kp, st, vmax); break;
        case 3: logit_chunk<W, B, 3>(lpt, rows, wts, z, kp, st, vmax); break;
        default: logit_chunk<W, B, 4>(lpt, rows, wts, z, kp, st, vmax); break;
    }
    for (int u = 1; u < U; ++u) vmax[0] = simd::vmax<W>(vmax[u], vmax[0]);
    return simd::hmax<W>(vmax[0]);
}

/// Pass A for a group of rows with any number of active y: clusters outermost, so that
/// each block of log p(y|t) (all y, contiguous) is read from memory once per group (then
/// from L1) instead of once per row. The sum over y goes into P partial sums per vector
/// (y = j mod P), so that the dependency chains are short; they are added to log p(t) at
/// the end. Writes z (rows, kp) and the row maxima.
template <class W, int64_t B>
IBS_INLINE void logits_group(const Shared& s, int rows, const int64_t* na,
                             const double* const* rows_j, const double* wts, double* z,
                             double* zmax) {
    using vd = typename W::vd;
    constexpr int64_t L = W::lanes;
    constexpr int U = static_cast<int>(B / L);
    constexpr int P = U >= 8 ? 1 : 8 / U;  // 8 independent chains per block
    const int64_t m = s.m, kp = s.kp;
    const vd zero = {};
    vd vmax[kRows][U];
    for (int r = 0; r < kRows; ++r)
        for (int u = 0; u < U; ++u) vmax[r][u] = simd::splat<W>(-kInf);
    for (int64_t t = 0, off = 0; t < kp; t += B, off += m * B) {
        for (int r = 0; r < rows; ++r) {
            vd a[P][U];
            for (int p = 0; p < P; ++p)
                for (int u = 0; u < U; ++u) a[p][u] = zero;
            const double* const* rj = rows_j + r * m;
            const double* c = wts + r * m;
            int64_t j = 0;
            for (; j + P <= na[r]; j += P) {
                for (int p = 0; p < P; ++p) {
                    const double* lr = rj[j + p] + off;
                    for (int u = 0; u < U; ++u) a[p][u] += c[j + p] * simd::load<W>(lr + u * L);
                }
            }
            for (int p = 0; j < na[r]; ++j, ++p) {
                const double* lr = rj[j] + off;
                for (int u = 0; u < U; ++u) a[p][u] += c[j] * simd::load<W>(lr + u * L);
            }
            double* zr = z + r * kp + t;
            for (int u = 0; u < U; ++u) {
                vd sum = a[0][u];
                for (int p = 1; p < P; ++p) sum += a[p][u];
                const vd zu = simd::load<W>(s.lpt_scaled + t + u * L) + sum;
                simd::store<W>(zr + u * L, zu);
                vmax[r][u] = simd::vmax<W>(zu, vmax[r][u]);
            }
        }
    }
    for (int r = 0; r < rows; ++r) {
        for (int u = 1; u < U; ++u) vmax[r][0] = simd::vmax<W>(vmax[r][u], vmax[r][0]);
        zmax[r] = simd::hmax<W>(vmax[r][0]);
    }
}

/// Processes rows [first, last): accumulates into w (q_out == nullptr) or writes the
/// encoder rows to q_out (n, k). Returns false if some x has no admissible cluster.
///
/// Rows go in groups of kRows: pass A per row (per group when rows have more than four
/// active y), pass B per row, pass C once per group, so that the accumulators are
/// loaded and stored once per group instead of once per row.
template <class W, int64_t B>
IBS_INLINE bool process_rows(const Shared& s, Workspace& w, int64_t first, int64_t last,
                             double* q_out) {
    using vd = typename W::vd;
    constexpr int64_t L = W::lanes;
    static_assert(B % L == 0, "block too small for W");

    const int64_t m = s.m, k = s.k, kp = s.kp;
    int64_t* const na = w.na.get();
    int64_t* const ys = w.ys.get();
    double* const coef = w.coef.get();
    double* const wts = w.wts.get();
    const double** const rows_j = w.rows_j.get();
    double* const zmax = w.zmax.get();
    double* const gw_t = w.gw_t.get();
    double* const gw_ty = w.gw_ty.get();
    int64_t* const gys = w.gys.get();
    int64_t* const ystamp = w.ystamp.get();
    const vd zero = {};
    const bool accumulate = q_out == nullptr;

    for (int64_t x0 = first; x0 < last; x0 += kRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kRows, last - x0));

        // The active y of each row, their weights in the logits and rows of log p(y|t).
        int64_t max_na = 0;
        for (int r = 0; r < rows; ++r) {
            const int64_t j0 = s.rows.starts[x0 + r], cnt = s.rows.starts[x0 + r + 1] - j0;
            for (int64_t j = 0; j < cnt; ++j) {
                const int64_t y = s.rows.columns[j0 + j];
                const double v = s.rows.values[j0 + j];
                ys[r * m + j] = y;
                coef[r * m + j] = v;
                // > 0 even if the product underflows: -inf * weight stays -inf
                wts[r * m + j] = std::max(s.coef * v, kTiny);
                rows_j[r * m + j] = s.log_dec_t + y * B;  // + block * m * B
            }
            na[r] = cnt;
            max_na = std::max(max_na, cnt);
        }

        // Pass A: z[t] = lpt_scaled[t] + sum_j wts[j] log p(y_j|t), and max_t z
        // (beta = 0: the logits are log p(t) alone). Few y per row: row by row, with the
        // weights in registers; more: the whole group at once, cluster block by block.
        if (s.use_beta && max_na > 4) {
            logits_group<W, B>(s, rows, na, rows_j, wts, w.z.get(), zmax);
        } else {
            for (int r = 0; r < rows; ++r)
                zmax[r] = logits_row<W, B>(s, s.use_beta ? na[r] : 0, rows_j + r * m,
                                        wts + r * m, w.z.get() + r * kp);
        }
        for (int r = 0; r < rows; ++r)
            if (!(zmax[r] > -kInf)) return false;  // every cluster is impossible for x

        if (s.hard) {  // deterministic IB: one-hot at the first maximum
            for (int r = 0; r < rows; ++r) {
                const int64_t x = x0 + r;
                const double* z = w.z.get() + r * kp;
                int64_t best = 0;
                while (best < k && !(z[best] == zmax[r])) ++best;
                if (!accumulate) {
                    double* qr = q_out + x * k;
                    std::fill(qr, qr + k, 0.0);
                    qr[best] = 1.0;
                } else {
                    const double px = s.p_x[x];
                    w.acc_t[best] += px;
                    for (int64_t j = 0; j < na[r]; ++j)
                        w.acc_ty[ys[r * m + j] * kp + best] += px * coef[r * m + j];
                }
            }
            continue;
        }

        // (gw_ty is all zero here: allocated so, and pass C clears what the group used;
        // zeroing all m of it per group cost more than the rest on sparse tables of
        // thousands of columns)
        if (accumulate) std::fill(gw_t, gw_t + kRows, 0.0);
        int64_t ngy = 0;  // number of y active in the group
        const int64_t group = ++w.groups;

        // Pass B: e = 2^(z - max) (in place), s = sum e, sum e (z - max). Where
        // z - max < -1022, e is set to 0 (see simd::exp2_normal_or_zero), and z - max is
        // clamped there for the second sum, so that e = 0 (z = -inf) contributes 0:
        // q log q = 0 where q = 0. Four exp2 polynomials at a time, each stage for all
        // four before the next, which hides their latency: four vectors of one row, or,
        // for rows of fewer than four vectors, one vector of each of the group's rows
        // (all kRows; rows past the end of a short last group are set to 0 first, so
        // their e is 1 there: pass C weighs them by 0, and 0 * e must not be NaN, as
        // 2^(stale e - stale max) could be).
        const vd floor = simd::opaque<W>(simd::splat<W>(simd::kExp2NormalFloor));
        double sum_e[kRows], sum_ed[kRows];
        if (kp < 4 * L) {
            for (int r = rows; r < kRows; ++r) {
                zmax[r] = 0.0;
                std::fill(w.z.get() + r * kp, w.z.get() + (r + 1) * kp, 0.0);
            }
            vd vs[kRows] = {}, vh[kRows] = {};
            for (int64_t t = 0; t < kp; t += L) {
                vd raw[kRows], d[kRows], e[kRows];
                for (int r = 0; r < kRows; ++r) {
                    raw[r] = simd::load<W>(w.z.get() + r * kp + t) - zmax[r];
                    d[r] = simd::clamp_exp2_arg<W>(raw[r], floor);
                }
                for (int r = 0; r < kRows; ++r)
                    e[r] = simd::exp2_normal_or_zero<W>(raw[r], d[r], floor);
                for (int r = 0; r < kRows; ++r) {
                    vs[r] += e[r];
                    vh[r] += e[r] * d[r];
                    simd::store<W>(w.z.get() + r * kp + t, e[r]);
                }
            }
            for (int r = 0; r < kRows; ++r) {
                sum_e[r] = simd::hsum<W>(vs[r]);
                sum_ed[r] = simd::hsum<W>(vh[r]);
            }
        } else {
            for (int r = 0; r < rows; ++r) {
                double* const z = w.z.get() + r * kp;
                vd vs[4] = {zero, zero, zero, zero}, vh[4] = {zero, zero, zero, zero};
                int64_t t = 0;
                for (; t + 4 * L <= kp; t += 4 * L) {
                    vd raw[4], d[4], e[4];
                    for (int u = 0; u < 4; ++u) {
                        raw[u] = simd::load<W>(z + t + u * L) - zmax[r];
                        d[u] = simd::clamp_exp2_arg<W>(raw[u], floor);
                    }
                    for (int u = 0; u < 4; ++u)
                        e[u] = simd::exp2_normal_or_zero<W>(raw[u], d[u], floor);
                    for (int u = 0; u < 4; ++u) {
                        vs[u] += e[u];
                        vh[u] += e[u] * d[u];
                        simd::store<W>(z + t + u * L, e[u]);
                    }
                }
                for (int u = 0; t < kp; t += L, ++u) {  // fewer than 4 vectors left
                    const vd raw = simd::load<W>(z + t) - zmax[r];
                    const vd d = simd::clamp_exp2_arg<W>(raw, floor);
                    const vd e = simd::exp2_normal_or_zero<W>(raw, d, floor);
                    vs[u] += e;
                    vh[u] += e * d;
                    simd::store<W>(z + t, e);
                }
                sum_e[r] = simd::hsum<W>((vs[0] + vs[1]) + (vs[2] + vs[3]));
                sum_ed[r] = simd::hsum<W>((vh[0] + vh[1]) + (vh[2] + vh[3]));
            }
        }

        for (int r = 0; r < rows; ++r) {
            const int64_t x = x0 + r;
            const double* const z = w.z.get() + r * kp;

            if (!accumulate) {
                double* qr = q_out + x * k;
                for (int64_t t = 0; t < k; ++t) qr[t] = z[t] / sum_e[r];
                continue;
            }

            const double inv_s = 1.0 / sum_e[r];
            const double px = s.p_x[x];
            // sum_t q ln q = sum_t (e/s)(ln2 (z - max) - ln s) = ln2 sum_t e (z - max)/s - ln s
            w.neg_h += px * (kLn2 * sum_ed[r] * inv_s - std::log(sum_e[r]));

            // weights of this row in pass C
            gw_t[r] = px * inv_s;
            for (int64_t j = 0; j < na[r]; ++j) {
                const int64_t y = ys[r * m + j];
                if (ystamp[y] != group) {  // first row of the group with this y
                    ystamp[y] = group;
                    gys[ngy++] = y;
                }
                gw_ty[y * kRows + r] = (px * coef[r * m + j]) * inv_s;
            }
        }
        if (!accumulate) continue;

        // Pass C, once for the group: acc_t[t] += sum_r p(x_r) q(t|x_r) and
        // acc_ty[y][t] += sum_r p(x_r, y) q(t|x_r), tile by tile so that the group's rows
        // of e stay in cache across the accumulators. Rows missing from a short last
        // group have weight 0 (their rows of e hold finite values from earlier groups, or
        // the zeros the buffer was allocated with).
        const double* e = w.z.get();
        for (int64_t t0 = 0; t0 < kp; t0 += kTile) {
            const int64_t t1 = std::min(kp, t0 + kTile);
            double* const acc_ty = w.acc_ty.get();
            int64_t j = 0;
            if (ngy % 2 == 0) {
                accumulate_group<W>(w.acc_t.get(), gw_t, e, kp, t0, t1);
            } else {  // acc_t pairs with the first y
                const int64_t y = gys[j++];
                accumulate_group2<W>(w.acc_t.get(), gw_t, acc_ty + y * kp, gw_ty + y * kRows,
                                     e, kp, t0, t1);
            }
            for (; j < ngy; j += 2) {
                const int64_t ya = gys[j], yb = gys[j + 1];
                accumulate_group2<W>(acc_ty + ya * kp, gw_ty + ya * kRows, acc_ty + yb * kp,
                                     gw_ty + yb * kRows, e, kp, t0, t1);
            }
        }
        for (int64_t j = 0; j < ngy; ++j) std::fill_n(gw_ty + gys[j] * kRows, kRows, 0.0);
    }
    return true;
}

/// y[i] = f(x[i]) for a vector function f of W; x, y may alias.
template <class W, typename W::vd (*f)(typename W::vd)>
IBS_INLINE void map_array(const double* x, double* y, int64_t n) {
    constexpr int64_t L = W::lanes;
    int64_t i = 0;
    for (; i + L <= n; i += L) simd::store<W>(y + i, f(simd::load<W>(x + i)));
    if (i < n) {  // tail through a padded copy
        double buf[L] = {};
        std::copy(x + i, x + n, buf);
        simd::store<W>(buf, f(simd::load<W>(buf)));
        std::copy(buf, buf + (n - i), y + i);
    }
}

/// y[i] = 2^x[i] with the kernel's vectorised exp2 (for tests of its accuracy).
template <class W>
IBS_INLINE void exp2_array(const double* x, double* y, int64_t n) {
    map_array<W, simd::exp2_nonpositive<W>>(x, y, n);
}

template <class W>
IBS_INLINE void log_array(const double* x, double* y, int64_t n) {
    map_array<W, simd::log_nonnegative<W>>(x, y, n);
}

template <class W>
IBS_INLINE void exp_array(const double* x, double* y, int64_t n) {
    map_array<W, simd::exp_clamped<W>>(x, y, n);
}

using RowFn = bool (*)(const Shared&, Workspace&, int64_t, int64_t, double*);
using ArrayFn = void (*)(const double*, double*, int64_t);  // y = f(x), elementwise

/// process_rows for the block size of the state (s.block).
template <class W>
IBS_INLINE bool rows_any_block(const Shared& s, Workspace& w, int64_t first, int64_t last,
                               double* q) {
    return s.block == kBlockNarrow ? process_rows<W, kBlockNarrow>(s, w, first, last, q)
                                   : process_rows<W, kBlockWide>(s, w, first, last, q);
}

bool rows_baseline(const Shared& s, Workspace& w, int64_t first, int64_t last, double* q) {
    return rows_any_block<simd::W2>(s, w, first, last, q);
}
void exp2_baseline(const double* x, double* y, int64_t n) { exp2_array<simd::W2>(x, y, n); }
void log_baseline(const double* x, double* y, int64_t n) { log_array<simd::W2>(x, y, n); }
void exp_baseline(const double* x, double* y, int64_t n) { exp_array<simd::W2>(x, y, n); }

#if defined(__x86_64__) || defined(__i386__)
#define IBS_X86 1
#define IBS_AVX2 __attribute__((target("avx2,fma")))
#define IBS_AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

IBS_AVX2 bool rows_avx2(const Shared& s, Workspace& w, int64_t first, int64_t last, double* q) {
    return rows_any_block<simd::W4>(s, w, first, last, q);
}
IBS_AVX2 void exp2_avx2(const double* x, double* y, int64_t n) { exp2_array<simd::W4>(x, y, n); }
IBS_AVX2 void log_avx2(const double* x, double* y, int64_t n) { log_array<simd::W4>(x, y, n); }
IBS_AVX2 void exp_avx2(const double* x, double* y, int64_t n) { exp_array<simd::W4>(x, y, n); }

IBS_AVX512 bool rows_avx512(const Shared& s, Workspace& w, int64_t first, int64_t last,
                            double* q) {
    return rows_any_block<simd::W8>(s, w, first, last, q);
}
IBS_AVX512 void exp2_avx512(const double* x, double* y, int64_t n) {
    exp2_array<simd::W8>(x, y, n);
}
IBS_AVX512 void log_avx512(const double* x, double* y, int64_t n) {
    log_array<simd::W8>(x, y, n);
}
IBS_AVX512 void exp_avx512(const double* x, double* y, int64_t n) {
    exp_array<simd::W8>(x, y, n);
}
#endif

struct Target {
    const char* name;
    RowFn rows;
    ArrayFn exp2;
    ArrayFn log;
    ArrayFn exp;
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
    {"avx512", rows_avx512, exp2_avx512, log_avx512, exp_avx512, cpu_has_avx512},
    {"avx2+fma", rows_avx2, exp2_avx2, log_avx2, exp_avx2, cpu_has_avx2},
    {"sse2", rows_baseline, exp2_baseline, log_baseline, exp_baseline, always},
#else
    {"generic", rows_baseline, exp2_baseline, log_baseline, exp_baseline, always},
#endif
};

const Target* best_target() {
    for (const Target& t : kTargets)
        if (t.supported()) return &t;
    return &kTargets[sizeof(kTargets) / sizeof(kTargets[0]) - 1];
}

/// The target named by the environment variable IBSOLVER_SIMD if this CPU supports it
/// (e.g. IBSOLVER_SIMD=avx2+fma where AVX-512 lowers the clock too much), else the best.
const Target* initial_target() {
    if (const char* name = std::getenv("IBSOLVER_SIMD")) {
        for (const Target& t : kTargets)
            if (std::strcmp(name, t.name) == 0 && t.supported()) return &t;
    }
    return best_target();
}

std::atomic<const Target*>& current_target() {
    static std::atomic<const Target*> current{initial_target()};
    return current;
}

// ------------------------------------------------------------------------------------
// shared state and threads
// ------------------------------------------------------------------------------------

/// The transposed, padded, alpha-scaled decoder state the row kernel reads.
struct KernelState {
    int64_t m, k, block, kp;
    double alpha;
    Buffer<double> lpt_scaled;  // (kp)
    Buffer<double> log_dec_t;   // (kp / block, m, block), see dec_index

    KernelState(int64_t m_, int64_t k_, double alpha_)
        : m(m_), k(k_), block(block_for(k_)), kp(round_up(k_, block)), alpha(alpha_),
          lpt_scaled(make_buffer<double>(kp)), log_dec_t(make_buffer<double>(m_ * kp)) {
        std::fill(lpt_scaled.get() + k, lpt_scaled.get() + kp, -kInf);
    }

    /// log2(e)/alpha for alpha > 0 (see Shared), 1 for alpha = 0.
    double scale() const { return alpha > 0.0 ? kLog2e / alpha : 1.0; }

    void set_lpt(int64_t t, double lpt) { lpt_scaled[t] = scale() * lpt; }

    void set_log_dec(int64_t t, int64_t y, double v) {
        // non-finite log p(y|t) means p(y|t) = 0, as in the numpy reference
        log_dec_t[dec_index(block, m, y, t)] = std::isfinite(v) ? v : -kInf;
    }

    void load(const double* log_p_t, const double* log_p_y_given_t) {
        for (int64_t t = 0; t < k; ++t) {
            set_lpt(t, log_p_t[t]);
            for (int64_t y = 0; y < m; ++y) set_log_dec(t, y, log_p_y_given_t[t * m + y]);
        }
    }

    Shared shared(const double* p_x, const Rows& rows, double beta) const {
        Shared s;
        s.p_x = p_x;
        s.rows = rows;
        s.m = m;
        s.k = k;
        s.kp = kp;
        s.block = block;
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
    const double work = static_cast<double>(n) * (static_cast<double>(kp) + kRowCost) * (m + 16.0);
    const double min_work = n_threads > 0 ? kMinWorkPerThread : kMinWorkPerThreadDefault;
    const int64_t cap = static_cast<int64_t>(work / min_work);
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

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// A barrier for the threads of one parallel region that spins briefly, then sleeps.
///
/// libgomp's barrier spins for a long time by default (GOMP_SPINCOUNT). When the machine
/// is busy and a team member has been preempted, that spinning burns the time slice the
/// preempted thread needs, and one iteration can take a scheduler period (milliseconds)
/// instead of microseconds; measured here: 12 ms instead of 1.5 ms per iteration with a
/// busy second core. A short spin keeps the quiet-machine latency (the threads reach the
/// barrier within microseconds of each other) and the sleep keeps the busy-machine case
/// close to one thread's speed.
class Barrier {
public:
    void set_size(int n) { n_ = n; }

    void wait() {
        if (n_ <= 1) return;
        const unsigned gen = generation_.load(std::memory_order_acquire);
        if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {  // last one in
            arrived_.store(0, std::memory_order_relaxed);
            {
                std::lock_guard<std::mutex> lock(mutex_);
                generation_.fetch_add(1, std::memory_order_acq_rel);
            }
            cv_.notify_all();
            return;
        }
        for (int i = 0; i < kSpins; ++i) {
            if (generation_.load(std::memory_order_acquire) != gen) return;
            cpu_relax();
        }
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != gen; });
    }

private:
    static constexpr int kSpins = 2000;  // pause instructions: some 10-100 microseconds
    int n_ = 1;
    alignas(64) std::atomic<int> arrived_{0};
    alignas(64) std::atomic<unsigned> generation_{0};
    std::mutex mutex_;
    std::condition_variable cv_;
};

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

RowStore rows_of_dense(const double* p, int64_t n, int64_t m) {
    RowStore store;
    for (int64_t x = 0; x < n; ++x) {
        for (int64_t y = 0; y < m; ++y) {
            if (p[x * m + y] > 0.0) {
                store.columns.push_back(y);
                store.values.push_back(p[x * m + y]);
            }
        }
        store.starts.push_back(static_cast<int64_t>(store.columns.size()));
    }
    return store;
}

struct BaMap::Impl {
    int64_t n, m, k;
    double beta, alpha;
    KernelState state;
    Shared sh;
    RowFn rows;
    int nth;
    std::vector<Workspace> ws;
    std::vector<Partial> part;

    Impl(const double* p_x, const Rows& r, int64_t k_, double beta_, double alpha_,
         int n_threads)
        : n(r.n), m(r.m), k(k_), beta(beta_), alpha(alpha_), state(r.m, k_, alpha_),
          sh(state.shared(p_x, r, beta_)), rows(current_target().load()->rows),
          nth(resolve_threads(n_threads, r.n, state.kp, r.m)), ws(nth), part(nth) {
        for (auto& w : ws) w.allocate(m, state.kp, true);
    }

    IterationResult run(double* log_p_t, double* log_p_y_given_t, int64_t max_iter, double tol,
                        double* history);
};

BaMap::BaMap(const double* p_x, const Rows& rows, int64_t k, double beta, double alpha,
             int n_threads)
    : impl_(std::make_unique<Impl>(p_x, rows, k, beta, alpha, n_threads)) {}

BaMap::~BaMap() = default;

IterationResult BaMap::run(double* log_p_t, double* log_p_y_given_t, int64_t max_iter,
                           double tol, double* history) {
    return impl_->run(log_p_t, log_p_y_given_t, max_iter, tol, history);
}

IterationResult run_iterations(const double* p_x, const Rows& rows, double* log_p_t,
                               double* log_p_y_given_t, int64_t k, double beta, double alpha,
                               int64_t max_iter, double tol, int n_threads, double* history) {
    return BaMap(p_x, rows, k, beta, alpha, n_threads)
        .run(log_p_t, log_p_y_given_t, max_iter, tol, history);
}

IterationResult BaMap::Impl::run(double* log_p_t, double* log_p_y_given_t, int64_t max_iter,
                                 double tol, double* history) {
    IterationResult result;
    result.residual = kInf;
    if (max_iter <= 0) return result;
    state.load(log_p_t, log_p_y_given_t);
    const int64_t kp = state.kp;

    int error = 0;
    int64_t n_iter = 0;
    double residual = kInf;
    Barrier barrier;
    // p(t, y) of the state, which the residual compares the next one with; after the first
    // iteration it is the last one's accumulated p(t, y), not exp(log p(t) + log p(y|t)):
    // the same up to round-off, without k m exponentials per iteration
    std::vector<double> p_ty(k * m);
    for (int64_t t = 0; t < k; ++t)
        for (int64_t y = 0; y < m; ++y) p_ty[t * m + y] = log_p_t[t] + log_p_y_given_t[t * m + y];
    const Target* target = current_target().load();
    target->exp(p_ty.data(), p_ty.data(), k * m);

IBS_OMP(parallel num_threads(nth))
    {
        const int tid = thread_num();
        const int team = team_size();  // may be less than nth (e.g. nested parallelism)
IBS_OMP(single)
        barrier.set_size(team);  // (implicit barrier after single)
        Workspace& w = ws[tid];
        const int64_t x0 = n * tid / team, x1 = n * (tid + 1) / team;
        const int64_t t0 = k * tid / team, t1 = k * (tid + 1) / team;
        // logs of p(t) and of p(t, y) from the same function: where the two are equal
        // (|Y| = 1, or p(y|t) = 1) log p(y|t) is exactly 0, whatever beta multiplies it
        std::vector<double> log_pty(m), pt_of(t1 - t0), lpt_of(t1 - t0);

        for (int64_t it = 0; it < max_iter; ++it) {
            std::fill(w.acc_t.get(), w.acc_t.get() + kp, 0.0);
            std::fill(w.acc_ty.get(), w.acc_ty.get() + m * kp, 0.0);
            w.neg_h = 0.0;
            if (!rows(sh, w, x0, x1, nullptr)) {
IBS_OMP(atomic write)
                error = 1;
            }
            barrier.wait();
            int err;
IBS_OMP(atomic read)
            err = error;
            if (err) break;  // every thread sees the same value here

            // Reduce the accumulators of clusters [t0, t1) and update the state.
            Partial p;
            p.neg_h = w.neg_h;
            for (int64_t t = t0; t < t1; ++t) {
                double pt = 0.0;
                for (int th = 0; th < team; ++th) pt += ws[th].acc_t[t];
                pt_of[t - t0] = pt;
            }
            target->log(pt_of.data(), lpt_of.data(), t1 - t0);  // -inf for an empty cluster
            for (int64_t t = t0; t < t1; ++t) {
                const double pt = pt_of[t - t0], lpt_new = lpt_of[t - t0];
                double* pty = p_ty.data() + t * m;
                for (int64_t y = 0; y < m; ++y) {
                    double v = 0.0;
                    for (int th = 0; th < team; ++th) v += ws[th].acc_ty[y * kp + t];
                    const double diff = std::fabs(v - pty[y]);
                    if (diff > p.residual || diff != diff) p.residual = diff;  // keeps NaN
                    pty[y] = v;
                }
                target->log(pty, log_pty.data(), m);
                double* dec = log_p_y_given_t + t * m;
                for (int64_t y = 0; y < m; ++y) {
                    const double v = pt > 0.0 ? log_pty[y] - lpt_new : -kInf;
                    dec[y] = v;
                    state.set_log_dec(t, y, v);
                    if (pty[y] > 0.0) p.h_y_given_t -= pty[y] * v;
                }
                if (pt > 0.0) p.h_t -= pt * lpt_new;
                log_p_t[t] = lpt_new;
                state.set_lpt(t, lpt_new);
            }
            part[tid] = p;
            barrier.wait();
            // Every thread combines the partials (in the same order, so to the same
            // values) and takes the same decision; thread 0 records it. Two barriers per
            // iteration: the partials are next written after the next one.
            double res = 0.0, h_t = 0.0, h_yt = 0.0, neg_h = 0.0;
            bool nan = false;
            for (int th = 0; th < team; ++th) {
                const double r = part[th].residual;
                if (r != r) {
                    nan = true;
                } else if (r > res) {
                    res = r;
                }
                h_t += part[th].h_t;
                h_yt += part[th].h_y_given_t;
                neg_h += part[th].neg_h;
            }
            if (nan) res = std::numeric_limits<double>::quiet_NaN();
            if (tid == 0) {
                const double h_t_given_x = -neg_h;
                history[it] = h_t - alpha * h_t_given_x + beta * h_yt;
                n_iter = it + 1;
                residual = res;
            }
            if (res <= tol) break;
        }
    }

    if (error) {
        result.status = Status::no_admissible_cluster;
        return result;
    }
    result.n_iter = n_iter;
    result.n_history = n_iter;
    result.residual = residual;
    return result;
}

Status encoder(const Rows& rows_in, const double* log_p_t, const double* log_p_y_given_t,
               int64_t k, double beta, double alpha, int n_threads, double* q) {
    const int64_t n = rows_in.n, m = rows_in.m;
    KernelState state(m, k, alpha);
    state.load(log_p_t, log_p_y_given_t);
    const Shared sh = state.shared(nullptr, rows_in, beta);
    const RowFn rows = current_target().load()->rows;

    const int nth = resolve_threads(n_threads, n, state.kp, m);
    std::vector<Workspace> ws(nth);
    for (auto& w : ws) w.allocate(m, state.kp, false);

    int error = 0;
IBS_OMP(parallel num_threads(nth))
    {
        const int tid = thread_num();
        const int team = team_size();
        const int64_t x0 = n * tid / team, x1 = n * (tid + 1) / team;
        if (!rows(sh, ws[tid], x0, x1, q)) {
IBS_OMP(atomic write)
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

void exp2(const double* x, double* y, int64_t n) { current_target().load()->exp2(x, y, n); }

void vector_log(const double* x, double* y, int64_t n) { current_target().load()->log(x, y, n); }

void vector_exp(const double* x, double* y, int64_t n) { current_target().load()->exp(x, y, n); }

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
