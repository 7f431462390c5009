// Python bindings of the BA kernel: the private module ibsolver._core.
//
// The only file that knows about Python. It converts the inputs to C-contiguous float64
// (any dtype or stride is accepted), checks shapes, copies the state so the caller's
// arrays are never modified, releases the GIL around the kernel and turns kernel errors
// into Python exceptions (FloatingPointError, as the numpy reference backend raises).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ba_kernel.hpp"

namespace py = pybind11;

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

std::string shape_str(const Array& a) {
    std::ostringstream os;
    os << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) os << (i ? ", " : "") << a.shape(i);
    os << (a.ndim() == 1 ? ",)" : ")");
    return os.str();
}

void check_ndim(const Array& a, int ndim, const char* name) {
    if (a.ndim() != ndim) {
        throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) +
                              "-D (got shape " + shape_str(a) + ")");
    }
}

using Index = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

/// p(y|x) as the kernel reads it (ibsolver::Rows), from a dense 2-D array (its positive
/// entries) or a scipy.sparse CSR matrix (its stored entries, which must be positive,
/// finite, with sorted distinct columns). Owns what the view points to.
class RowsData {
public:
    explicit RowsData(const py::object& table) {
        if (py::hasattr(table, "indptr")) {
            from_csr(table);
        } else {
            const Array a = Array::ensure(table);
            if (!a) throw py::error_already_set();
            check_ndim(a, 2, "p_y_given_x");
            n_ = a.shape(0);
            m_ = a.shape(1);
            store_ = ibsolver::rows_of_dense(a.data(), n_, m_);
        }
    }

    ibsolver::Rows rows() const { return store_.view(n_, m_); }

private:
    void from_csr(const py::object& table) {
        const auto format = table.attr("format").cast<std::string>();
        if (format != "csr") {
            throw py::value_error("p_y_given_x must be a 2-D array or a scipy.sparse CSR "
                                  "matrix (got format " + format + ")");
        }
        const auto shape = table.attr("shape").cast<std::pair<std::int64_t, std::int64_t>>();
        n_ = shape.first;
        m_ = shape.second;
        const Index indptr = Index::ensure(table.attr("indptr"));
        const Index indices = Index::ensure(table.attr("indices"));
        const Array data = Array::ensure(table.attr("data"));
        if (!indptr || !indices || !data) throw py::error_already_set();
        const std::int64_t nnz = data.size();
        if (indptr.size() != n_ + 1 || indices.size() != nnz || indptr.data()[0] != 0 ||
            indptr.data()[n_] != nnz) {
            throw py::value_error("p_y_given_x: inconsistent CSR arrays (indptr, indices, data)");
        }
        auto& st = store_;
        st.starts.assign(indptr.data(), indptr.data() + n_ + 1);
        st.columns.assign(indices.data(), indices.data() + nnz);
        st.values.assign(data.data(), data.data() + nnz);
        for (std::int64_t x = 0; x < n_; ++x) {
            if (st.starts[x + 1] < st.starts[x]) {
                throw py::value_error("p_y_given_x: CSR indptr must not decrease");
            }
            for (std::int64_t j = st.starts[x]; j < st.starts[x + 1]; ++j) {
                const bool in_order = j == st.starts[x] || st.columns[j] > st.columns[j - 1];
                if (st.columns[j] < 0 || st.columns[j] >= m_ || !in_order) {
                    throw py::value_error("p_y_given_x: CSR column indices must be sorted, "
                                          "distinct and in [0, n_y) in every row");
                }
                if (!(st.values[j] > 0.0) || std::isinf(st.values[j])) {
                    throw py::value_error("p_y_given_x: stored CSR entries must be finite and "
                                          "> 0 (got " + std::to_string(st.values[j]) + ")");
                }
            }
        }
    }

    std::int64_t n_ = 0, m_ = 0;
    ibsolver::RowStore store_;
};

/// Shapes of (p(y|x), log_p_t, log_p_y_given_t); returns k.
std::int64_t check_state(const ibsolver::Rows& rows, const Array& log_p_t,
                         const Array& log_p_y_given_t) {
    check_ndim(log_p_t, 1, "log_p_t");
    check_ndim(log_p_y_given_t, 2, "log_p_y_given_t");
    const std::int64_t m = rows.m;
    const std::int64_t k = log_p_t.shape(0);
    if (k < 1) throw py::value_error("log_p_t must have at least one cluster (got shape (0,))");
    if (log_p_y_given_t.shape(0) != k || log_p_y_given_t.shape(1) != m) {
        throw py::value_error("log_p_y_given_t must have shape (k, n_y) = (" + std::to_string(k) +
                              ", " + std::to_string(m) + ") (got " +
                              shape_str(log_p_y_given_t) + ")");
    }
    return k;
}

void check_params(double beta, double alpha) {
    if (!(beta >= 0.0) || std::isinf(beta)) {
        throw py::value_error("beta must be finite and >= 0 (got " + std::to_string(beta) + ")");
    }
    if (!(alpha >= 0.0) || std::isinf(alpha)) {
        throw py::value_error("alpha must be finite and >= 0 (got " + std::to_string(alpha) + ")");
    }
}

int thread_count(std::optional<int> n_threads) { return n_threads ? *n_threads : 0; }

[[noreturn]] void raise_status(ibsolver::Status status) {
    PyErr_SetString(PyExc_FloatingPointError, ibsolver::status_message(status));
    throw py::error_already_set();
}

Array copy_of(const Array& a) {
    Array out(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
    if (a.size() > 0) std::memcpy(out.mutable_data(), a.data(), a.size() * sizeof(double));
    return out;
}

py::tuple iterate(bool squarem, Array p_x, const py::object& p_y_given_x, Array log_p_t,
                  Array log_p_y_given_t, double beta, double alpha, std::int64_t max_iter,
                  double tol, std::optional<int> n_threads) {
    const RowsData table(p_y_given_x);
    const ibsolver::Rows rows = table.rows();
    const std::int64_t n = rows.n;
    const std::int64_t k = check_state(rows, log_p_t, log_p_y_given_t);
    check_ndim(p_x, 1, "p_x");
    if (p_x.shape(0) != n) {
        throw py::value_error("p_x must have n_x = " + std::to_string(n) + " entries (got " +
                              std::to_string(p_x.shape(0)) + ")");
    }
    check_params(beta, alpha);
    if (max_iter < 0) {
        throw py::value_error("max_iter must be >= 0 (got " + std::to_string(max_iter) + ")");
    }
    if (std::isnan(tol)) throw py::value_error("tol must not be NaN");

    Array out_t = copy_of(log_p_t);
    Array out_ty = copy_of(log_p_y_given_t);
    std::vector<double> history(static_cast<std::size_t>(max_iter));
    const int nth = thread_count(n_threads);
    ibsolver::IterationResult res;
    {
        py::gil_scoped_release release;
        res = (squarem ? ibsolver::run_squarem : ibsolver::run_iterations)(
            p_x.data(), rows, out_t.mutable_data(), out_ty.mutable_data(), k, beta,
            alpha, max_iter, tol, nth, history.data());
    }
    if (res.status != ibsolver::Status::ok) raise_status(res.status);
    Array hist(static_cast<py::ssize_t>(res.n_history));
    if (res.n_history > 0)
        std::memcpy(hist.mutable_data(), history.data(), res.n_history * sizeof(double));
    return py::make_tuple(out_t, out_ty, res.n_iter, res.residual, hist);
}

py::tuple run_iterations(Array p_x, const py::object& p_y_given_x, Array log_p_t, Array log_p_y_given_t,
                         double beta, double alpha, std::int64_t max_iter, double tol,
                         std::optional<int> n_threads) {
    return iterate(false, p_x, p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha, max_iter,
                   tol, n_threads);
}

py::tuple run_squarem(Array p_x, const py::object& p_y_given_x, Array log_p_t, Array log_p_y_given_t,
                      double beta, double alpha, std::int64_t max_iter, double tol,
                      std::optional<int> n_threads) {
    return iterate(true, p_x, p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha, max_iter,
                   tol, n_threads);
}

Array encoder(const py::object& p_y_given_x, Array log_p_t, Array log_p_y_given_t,
              double beta, double alpha, std::optional<int> n_threads) {
    const RowsData table(p_y_given_x);
    const ibsolver::Rows rows = table.rows();
    const std::int64_t n = rows.n;
    const std::int64_t k = check_state(rows, log_p_t, log_p_y_given_t);
    check_params(beta, alpha);
    Array q({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(k)});
    const int nth = thread_count(n_threads);
    ibsolver::Status status;
    {
        py::gil_scoped_release release;
        status = ibsolver::encoder(rows, log_p_t.data(), log_p_y_given_t.data(), k,
                                   beta, alpha, nth, q.mutable_data());
    }
    if (status != ibsolver::Status::ok) raise_status(status);
    return q;
}

py::tuple ba_jacobian(Array p_x, Array p_y_given_x, Array theta, double beta, double alpha) {
    check_ndim(p_y_given_x, 2, "p_y_given_x");
    check_ndim(theta, 2, "theta");
    check_ndim(p_x, 1, "p_x");
    const std::int64_t n = p_y_given_x.shape(0), m = p_y_given_x.shape(1), k = theta.shape(0);
    if (p_x.shape(0) != n || theta.shape(1) != m || k < 1) {
        throw py::value_error("ba_jacobian: shapes p_x " + shape_str(p_x) + ", p_y_given_x " +
                              shape_str(p_y_given_x) + ", theta " + shape_str(theta) +
                              " do not match");
    }
    check_params(beta, alpha);
    if (!(alpha > 0.0)) throw py::value_error("ba_jacobian needs alpha > 0");
    Array g({static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(m)});
    Array jac({static_cast<py::ssize_t>(k * m), static_cast<py::ssize_t>(k * m)});
    ibsolver::Status status;
    {
        py::gil_scoped_release release;
        status = ibsolver::ba_jacobian(p_x.data(), p_y_given_x.data(), n, m, theta.data(), k,
                                       beta, alpha, g.mutable_data(), jac.mutable_data());
    }
    if (status != ibsolver::Status::ok) raise_status(status);
    return py::make_tuple(g, jac);
}

}  // namespace

PYBIND11_MODULE(_core, mod) {
    mod.doc() =
        "ibsolver's compiled kernel: the fused Blahut-Arimoto IB iteration (private; use "
        "ibsolver.backends.cpp_backend).";

    mod.def("run_iterations", &run_iterations, py::arg("p_x"), py::arg("p_y_given_x"),
            py::arg("log_p_t"), py::arg("log_p_y_given_t"), py::arg("beta"), py::arg("alpha"),
            py::arg("max_iter"), py::arg("tol"), py::arg("n_threads") = py::none(),
            "Iterate from the given state; returns (log_p_t, log_p_y_given_t, n_iter, residual, "
            "history). See ibsolver.backends.numpy_backend.run_iterations.");
    mod.def("run_squarem", &run_squarem, py::arg("p_x"), py::arg("p_y_given_x"),
            py::arg("log_p_t"), py::arg("log_p_y_given_t"), py::arg("beta"), py::arg("alpha"),
            py::arg("max_iter"), py::arg("tol"), py::arg("n_threads") = py::none(),
            "run_iterations accelerated by SQUAREM (n_iter counts map evaluations, history "
            "holds the points kept). See ibsolver.accelerate.squarem_iterations.");
    mod.def("encoder", &encoder, py::arg("p_y_given_x"), py::arg("log_p_t"),
            py::arg("log_p_y_given_t"), py::arg("beta"), py::arg("alpha"),
            py::arg("n_threads") = py::none(),
            "The encoder q(t|x), shape (n, k), that one iteration builds from the state.");
    mod.def("ba_jacobian", &ba_jacobian, py::arg("p_x"), py::arg("p_y_given_x"),
            py::arg("theta"), py::arg("beta"), py::arg("alpha"),
            "(log R, J): the BA map in joint log coordinates and its Jacobian (see "
            "ibsolver.newton.jacobian).");
    mod.def("has_openmp", &ibsolver::has_openmp, "Whether the kernel was built with OpenMP.");
    mod.def("max_threads", &ibsolver::max_threads,
            "Threads used when n_threads is None (respects OMP_NUM_THREADS).");
    mod.def("simd_target", [] { return std::string(ibsolver::simd_target()); },
            "Instruction set the hot loops run with: the best this CPU supports, chosen at "
            "run time, unless the environment variable IBSOLVER_SIMD names another one.");
    mod.def("simd_targets", &ibsolver::simd_targets,
            "Instruction sets this CPU supports for the hot loops, best first.");
    // the kernel's vectorised elementwise functions, for tests of their accuracy
    const auto elementwise = [](void (*f)(const double*, double*, std::int64_t)) {
        return [f](Array x) {
            Array y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
            f(x.data(), y.mutable_data(), x.size());
            return y;
        };
    };
    mod.def("_exp2", elementwise(&ibsolver::exp2), py::arg("x"),
            "2^x with the kernel's vectorised exp2 (x <= 900); for tests only.");
    mod.def("_log", elementwise(&ibsolver::vector_log), py::arg("x"),
            "log(x) with the kernel's vectorised log (x >= 0); for tests only.");
    mod.def("_exp", elementwise(&ibsolver::vector_exp), py::arg("x"),
            "e^x with the kernel's vectorised exp (x <= 600); for tests only.");
    mod.def(
        "_set_simd_target",
        [](const std::string& name) {
            if (!ibsolver::set_simd_target(name)) {
                throw py::value_error("unknown or unsupported SIMD target " + name);
            }
        },
        py::arg("name"),
        "Force an instruction set for the hot loops ('best' restores); for tests only.");
}
