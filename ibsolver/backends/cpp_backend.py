"""C++ backend: the fused Blahut-Arimoto IB iteration in the compiled module ibsolver._core.

Same signatures and semantics as :mod:`ibsolver.backends.numpy_backend` (the
specification); results agree with it to round-off. The whole iteration loop, including
the ``tol`` stop, runs in C++ with the GIL released: rows x are split into one contiguous
block per OpenMP thread, each with its own accumulators, reduced in a fixed order, so the
result depends on ``n_threads`` only through round-off (tiny problems use fewer threads
than asked for: the barriers would cost more than they save). The hot loops use AVX-512 or
AVX2+FMA when the CPU has them, chosen at run time (``ibsolver.show_config()`` says which;
the environment variable ``IBSOLVER_SIMD=avx2+fma`` or ``sse2`` forces a lower one).

Inputs of any float dtype or memory layout are accepted (converted to contiguous float64);
the state arrays passed in are never modified. An x for which every cluster is impossible
raises FloatingPointError, like the reference.

Importing this module raises ImportError when the extension was not built; that is how
the backend registry knows the backend is unavailable.
"""
from __future__ import annotations

from .. import _core  # ImportError when the extension is missing

NAME = "cpp"


def run_iterations(p_x, p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha,
                   max_iter, tol, n_threads=None):
    """Iterate from the given state. Returns (log_p_t, log_p_y_given_t, n_iter, residual, history).

    See :func:`ibsolver.backends.numpy_backend.run_iterations`; ``history`` is in nats.
    ``n_threads`` None (or <= 0) means all cores, respecting OMP_NUM_THREADS.
    """
    return _core.run_iterations(p_x, p_y_given_x, log_p_t, log_p_y_given_t, float(beta),
                                float(alpha), int(max_iter), float(tol),
                                None if n_threads is None else int(n_threads))


def encoder(p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha, n_threads=None):
    """The encoder q(t|x), shape (n, k), that one iteration builds from the given state."""
    return _core.encoder(p_y_given_x, log_p_t, log_p_y_given_t, float(beta), float(alpha),
                         None if n_threads is None else int(n_threads))


def jacobian(p_x, p_y_given_x, theta, beta, alpha):
    """(G(theta), J): the BA map in joint log coordinates and its Jacobian; see
    :func:`ibsolver.newton.jacobian`, the numpy specification (alpha > 0, theta finite)."""
    return _core.ba_jacobian(p_x, p_y_given_x, theta, float(beta), float(alpha))
