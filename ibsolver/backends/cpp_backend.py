"""C++ backend: the fused Blahut-Arimoto IB iteration in the compiled module ibsolver._core.

Same signatures and semantics as :mod:`ibsolver.backends.numpy_backend` (the
specification); results agree with it to round-off. The whole iteration loop, including
the ``tol`` stop, runs in C++ with the GIL released: rows x are split into one contiguous
block per OpenMP thread, each with its own accumulators, reduced in a fixed order, so the
result depends on ``n_threads`` only through round-off (tiny problems use fewer threads
than asked for: the barriers would cost more than they save). ``n_threads=None`` runs
small problems on one thread and measures which is faster, one thread or all, on large
ones (:mod:`ibsolver.backends._threads`: on a busy machine a preempted team member holds
every barrier for a scheduler slice). The hot loops use AVX-512 or
AVX2+FMA when the CPU has them, chosen at run time (``ibsolver.show_config()`` says which;
the environment variable ``IBSOLVER_SIMD=avx2+fma`` or ``sse2`` forces a lower one).

Inputs of any float dtype or memory layout are accepted (converted to contiguous float64);
the state arrays passed in are never modified. An x for which every cluster is impossible
raises FloatingPointError, like the reference.

Importing this module raises ImportError when the extension was not built; that is how
the backend registry knows the backend is unavailable.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .. import _core  # ImportError when the extension is missing
from . import Iterated
from ._threads import ThreadPolicy

if TYPE_CHECKING:
    from .._core import Rows  # p(y|x): dense or scipy CSR

NAME = "cpp"

#: run_iterations and encoder take p(y|x) as a scipy CSR matrix too (the kernel reads
#: its non-zeros only)
READS_CSR = True

#: how n_threads=None picks between one thread and all (see ibsolver.backends._threads);
#: "all" is OpenMP's default team size, which respects OMP_NUM_THREADS
POLICY = ThreadPolicy(_core.max_threads)


def _sizes(p_y_given_x: Rows, log_p_t: ArrayLike) -> tuple[int, int, int] | None:
    """(n, k, m), or None where the shapes are not what the kernel takes (it then raises)."""
    sy, st = np.shape(p_y_given_x), np.shape(log_p_t)
    if len(sy) != 2 or len(st) != 1:
        return None
    return sy[0], st[0], sy[1]


def run_iterations(p_x: ArrayLike, p_y_given_x: Rows, log_p_t: ArrayLike,
                   log_p_y_given_t: ArrayLike, beta: float, alpha: float, max_iter: int,
                   tol: float, n_threads: int | None = None) -> Iterated:
    """Iterate from the given state; an :class:`ibsolver.backends.Iterated`.

    See :func:`ibsolver.backends.numpy_backend.run_iterations`; ``history`` is in nats.
    ``n_threads`` None: one thread or all cores (respecting OMP_NUM_THREADS), whichever
    the calls measure faster on problems large enough to consider threads (see
    :mod:`ibsolver.backends._threads`); an int is used as given.
    """
    return _iterate(_core.run_iterations, p_x, p_y_given_x, log_p_t, log_p_y_given_t, beta,
                    alpha, max_iter, tol, n_threads)


def squarem_iterations(p_x: ArrayLike, p_y_given_x: Rows, log_p_t: ArrayLike,
                       log_p_y_given_t: ArrayLike, beta: float, alpha: float, max_iter: int,
                       tol: float, n_threads: int | None = None) -> Iterated:
    """:func:`ibsolver.accelerate.squarem_iterations` compiled (the same steps; ``n_iter``
    counts map evaluations, ``history`` holds the points kept)."""
    return _iterate(_core.run_squarem, p_x, p_y_given_x, log_p_t, log_p_y_given_t, beta,
                    alpha, max_iter, tol, n_threads)


def _iterate(loop, p_x, p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha, max_iter, tol,
             n_threads):
    def call(threads):
        out = loop(p_x, p_y_given_x, log_p_t, log_p_y_given_t, float(beta), float(alpha),
                   int(max_iter), float(tol), threads)
        return out, out[2]

    sizes = _sizes(p_y_given_x, log_p_t)
    if n_threads is not None or sizes is None:
        return Iterated(*call(None if n_threads is None else int(n_threads))[0])
    return Iterated(*POLICY.timed(*sizes, call))


def encoder(p_y_given_x: Rows, log_p_t: ArrayLike, log_p_y_given_t: ArrayLike,
            beta: float, alpha: float, n_threads: int | None = None) -> np.ndarray:
    """The encoder q(t|x), shape (n, k), that one iteration builds from the given state."""
    def call(threads):
        return _core.encoder(p_y_given_x, log_p_t, log_p_y_given_t, float(beta), float(alpha),
                             threads), 1

    sizes = _sizes(p_y_given_x, log_p_t)
    if n_threads is not None or sizes is None:
        return call(None if n_threads is None else int(n_threads))[0]
    return POLICY.timed(*sizes, call)


def jacobian(p_x: ArrayLike, p_y_given_x: ArrayLike, theta: ArrayLike, beta: float,
             alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(G(theta), J): the BA map in joint log coordinates and its Jacobian; see
    :func:`ibsolver.newton.jacobian`, the numpy specification (alpha > 0, theta finite)."""
    return _core.ba_jacobian(p_x, p_y_given_x, theta, float(beta), float(alpha))
