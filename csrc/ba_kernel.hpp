// The fused decoder-state Blahut-Arimoto iteration for the (generalised) Information
// Bottleneck, in plain C++17: raw pointers and sizes, no Python.
//
// The specification is ibsolver/backends/numpy_backend.py; this kernel reproduces it to
// round-off. Natural logs throughout; -inf stands for a zero probability.
//
// Layouts (row-major, C-contiguous, float64):
//   p_x            (n)      p(x)
//   rows                    p(y|x), its non-zeros by rows (see Rows)
//   log_p_t        (k)      log p(t)
//   log_p_y_given_t(k, m)   log p(y|t)
//   q              (n, k)   encoder q(t|x)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ibsolver {

enum class Status : int {
    ok = 0,
    no_admissible_cluster = 1,  // some x has every logit equal to -inf
};

/// Human-readable message for a non-ok status.
const char* status_message(Status status);

/// p(y|x) by rows, non-zeros only (compressed sparse rows): row x holds p(y|x) = values[j]
/// > 0 for y = columns[j], j in [starts[x], starts[x + 1]), columns increasing in a row.
/// The kernel visits only these entries, so its cost per iteration is about
/// nnz(p) * k + n * k, not n * m * k.
struct Rows {
    const std::int64_t* starts = nullptr;   // (n + 1), starts[0] = 0
    const std::int64_t* columns = nullptr;  // (nnz)
    const double* values = nullptr;         // (nnz)
    std::int64_t n = 0, m = 0;
};

/// Owned arrays behind a Rows view.
struct RowStore {
    std::vector<std::int64_t> starts{0}, columns;
    std::vector<double> values;

    Rows view(std::int64_t n, std::int64_t m) const {
        return Rows{starts.data(), columns.data(), values.data(), n, m};
    }
};

/// The positive entries of a dense (n, m) row-major table, by rows.
RowStore rows_of_dense(const double* p, std::int64_t n, std::int64_t m);

struct IterationResult {
    std::int64_t n_iter = 0;  // iterations done (<= max_iter)
    std::int64_t n_history = 0;  // entries written to history (<= n_iter)
    double residual = 0.0;    // max_{t,y} |p_new(t,y) - p_old(t,y)| of the last iteration
    Status status = Status::ok;
};

/// Iterates the state (log_p_t, log_p_y_given_t), updated in place, at most max_iter
/// times, stopping once the residual is <= tol. history[i] receives, for the encoder of
/// iteration i, H(T) - alpha H(T|X) + beta H(Y|T) in nats; it needs room for max_iter
/// entries. n_threads <= 0 means all available (omp_get_max_threads()).
/// On a non-ok status the state and history are unspecified.
/// Throws std::bad_alloc if the workspace cannot be allocated.
IterationResult run_iterations(const double* p_x, const Rows& rows, double* log_p_t,
                               double* log_p_y_given_t, std::int64_t k, double beta,
                               double alpha, std::int64_t max_iter, double tol, int n_threads,
                               double* history);

/// run_iterations with its workspace kept between calls (for SQUAREM, whose every map
/// evaluation is one iteration): the inputs must outlive it.
class BaMap {
public:
    BaMap(const double* p_x, const Rows& rows, std::int64_t k, double beta, double alpha,
          int n_threads);
    ~BaMap();
    BaMap(const BaMap&) = delete;
    BaMap& operator=(const BaMap&) = delete;
    IterationResult run(double* log_p_t, double* log_p_y_given_t, std::int64_t max_iter,
                        double tol, double* history);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// As run_iterations, accelerated by SQUAREM (ibsolver/accelerate.py is the
/// specification): n_iter counts map evaluations; history receives the Lagrangian of the
/// points kept (n_history of them), and needs room for max_iter entries.
IterationResult run_squarem(const double* p_x, const Rows& rows, double* log_p_t,
                            double* log_p_y_given_t, std::int64_t k, double beta, double alpha,
                            std::int64_t max_iter, double tol, int n_threads, double* history);

/// Writes to q (n, k) the encoder q(t|x) that one iteration builds from the state.
Status encoder(const Rows& rows, const double* log_p_t, const double* log_p_y_given_t,
               std::int64_t k, double beta, double alpha, int n_threads, double* q);

/// The BA map in joint log coordinates and its Jacobian, for Newton's method (see
/// ibsolver/newton.py, whose numpy `jacobian` is the specification). theta (k, m) =
/// log p(t, y), all entries finite. Writes g (k, m) = log R[t, y], the map's value, and
/// jac (k m, k m), rows and columns ordered (t, y). alpha > 0. One thread.
Status ba_jacobian(const double* p_x, const double* p_y_given_x, std::int64_t n, std::int64_t m,
                 const double* theta, std::int64_t k, double beta, double alpha, double* g,
                 double* jac);

/// Whether the kernel was compiled with OpenMP.
bool has_openmp();

/// Threads a run with n_threads <= 0 would use (omp_get_max_threads(); 1 without OpenMP).
int max_threads();

/// The instruction set the hot loops run with: the best this CPU supports ("avx512",
/// "avx2+fma" or "sse2"), unless the environment variable IBSOLVER_SIMD names another
/// supported one when the library is first used.
const char* simd_target();

/// The instruction sets this CPU can run the hot loops with, best first.
std::vector<std::string> simd_targets();

/// y[i] = 2^x[i] (x <= 900) with the vectorised exp2 of the hot loop (for tests).
void exp2(const double* x, double* y, std::int64_t n);

/// y[i] = log(x[i]) (x >= 0) with the vectorised log of the decoder update; x, y may alias.
void vector_log(const double* x, double* y, std::int64_t n);

/// y[i] = e^x[i] (x <= 600; -inf -> 0) with the vectorised exp; x, y may alias.
void vector_exp(const double* x, double* y, std::int64_t n);

/// Forces one of simd_targets() ("" or "best": the best); false if unknown or unsupported.
/// For tests and benchmarks; not thread-safe with respect to running kernels.
bool set_simd_target(const std::string& name);

}  // namespace ibsolver
