"""SQUAREM extrapolation of the BA fixed-point map (Varadhan & Roland 2008).

Near a phase transition the BA map contracts at a rate close to 1 and plain iteration
needs thousands of steps. SQUAREM takes two map steps, extrapolates along the squared
polynomial in the log of the joint p(t, y), then one more map step from the extrapolated
point. A step is kept only if it lowers the Lagrangian below the plain two-step result,
so the iteration stays monotone and converges to a fixed point of the same map.

The extrapolation length is SqS3's own, |alpha| = |r| / |v| (at least 1), under a cap
that halves after a rejected step and doubles after an accepted one, without bound. Near
a transition the slowest mode contracts at a rate 1 - 1e-5 or closer, which needs steps
of thousands: a fixed cap of 64 left solves on a 24 x 24 Gaussian creeping for thousands
of map evaluations (its curve took 1.14M evaluations in all; 0.60M without the cap).
"""
from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from .backends import Iterated

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix


def _joint_log(log_p_t, log_p_y_given_t):
    return log_p_t[:, None] + log_p_y_given_t


def _state_from_joint_log(theta):
    """(log p(t), log p(y|t)) of the joint log p(t, y) = theta + const, in the log domain:
    an extrapolated entry far below the others stays finite. (Through exp it underflowed
    to p(t, y) = 0, which bars every x with p(y|x) > 0 from t for good; on a sparse counts
    table that left an x with no cluster at all.)"""
    with np.errstate(invalid="ignore"):
        log_p_ty = theta - np.logaddexp.reduce(theta, axis=None)
        log_p_t = np.logaddexp.reduce(log_p_ty, axis=1)
        return log_p_t, log_p_ty - log_p_t[:, None]


def squarem_iterations(kernel: ModuleType, p_x: np.ndarray, p_y_given_x: np.ndarray | csr_matrix,
                       log_p_t: np.ndarray, log_p_y_given_t: np.ndarray, beta: float, alpha: float,
                       max_iter: int, tol: float, n_threads: int | None = None) -> Iterated:
    """Same contract as ``kernel.run_iterations`` (an :class:`~ibsolver.backends.Iterated`);
    ``max_iter`` counts map evaluations."""
    history = []
    n_eval = 0
    residual = np.inf
    step_max = 4.0

    def step(lp, lpy):
        nonlocal n_eval
        out = kernel.run_iterations(p_x, p_y_given_x, lp, lpy, beta, alpha, 1, 0.0, n_threads)
        n_eval += 1
        return out.log_p_t, out.log_p_y_given_t, out.residual, out.history[0]

    while n_eval < max_iter:
        lp1, lpy1, res1, l1 = step(log_p_t, log_p_y_given_t)
        history.append(l1)
        residual = res1
        if res1 <= tol or n_eval >= max_iter:
            log_p_t, log_p_y_given_t = lp1, lpy1
            break
        lp2, lpy2, res2, l2 = step(lp1, lpy1)
        history.append(l2)
        residual = res2
        if res2 <= tol or n_eval >= max_iter or lp2.size != log_p_t.size:
            log_p_t, log_p_y_given_t = lp2, lpy2
            if res2 <= tol:
                break
            continue
        th0 = _joint_log(log_p_t, log_p_y_given_t)
        th1 = _joint_log(lp1, lpy1)
        th2 = _joint_log(lp2, lpy2)
        finite = np.isfinite(th0) & np.isfinite(th1) & np.isfinite(th2)
        with np.errstate(invalid="ignore"):  # -inf - -inf where p(t, y) = 0: masked out
            r = np.where(finite, th1 - th0, 0.0)
            v = np.where(finite, th2 - th1, 0.0) - r
        nv = np.linalg.norm(v)
        accepted = False
        if nv > 0:
            a = -min(max(np.linalg.norm(r) / nv, 1.0), step_max)
            th = np.where(finite, th0 - 2 * a * r + a * a * v, th2)
            lpx, lpyx = _state_from_joint_log(th)
            if np.all(np.isfinite(lpx) | (lpx == -np.inf)) and n_eval < max_iter:
                lp3, lpy3, res3, l3 = step(lpx, lpyx)
                if np.isfinite(l3) and l3 <= l2 and lp3.size == lp2.size:
                    history.append(l3)
                    log_p_t, log_p_y_given_t, residual = lp3, lpy3, res3
                    accepted = True
                    step_max *= 2.0
        if not accepted:
            log_p_t, log_p_y_given_t = lp2, lpy2
            step_max = max(step_max / 2.0, 1.0)
    return Iterated(log_p_t, log_p_y_given_t, n_eval, residual, np.asarray(history))
