"""Deterministic rules and the squared IB Lagrangian (Kolchinsky, Tracey, Van Kuyk 2019).

When Y = f(X) the IB curve is F(r) = min(r, H(Y)): a straight line, so every beta > 1 of
the plain Lagrangian I(X;T) - beta I(T;Y) lands on the corner (H(Y), H(Y)) and beta < 1 on
(0, 0). On the line every encoder with I(X;T|Y) = 0 is a BA fixed point at beta = 1, so BA
cannot move along it either. The squared Lagrangian ``I(X;T)^2 - beta I(T;Y)`` is strictly
convex in I(X;T) along the curve and picks the point r = beta / 2; we minimise it directly
over encoder logits with its exact gradient (L-BFGS).
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize

from . import _validation as v
from .exceptions import ConvergenceWarning
from .measures import LN2, _encoder_information, conditional_entropy, entropy
from .results import Branch, IBCurve, IBResult, Transition
from .solve import Problem, in_user_rows

logger = logging.getLogger(__name__)


def is_deterministic(p_xy: ArrayLike, *, atol: float = 1e-12) -> bool:
    """Whether Y is a function of X (H(Y|X) = 0 within ``atol`` bits)."""
    return conditional_entropy(p_xy) <= atol


def _objective(z, p_x, p_xy, p_y_given_x, shape, beta):
    """Squared IB Lagrangian (bits^2 - beta bits) and its gradient w.r.t. the logits z."""
    z = z.reshape(shape)
    z = z - z.max(axis=1, keepdims=True)
    log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    q = np.exp(log_q)
    p_t = p_x @ q
    p_ty = q.T @ p_xy
    tiny = 1e-300
    log_p_t = np.log(np.maximum(p_t, tiny))
    log_p_y_given_t = np.log(np.maximum(p_ty, tiny)) - log_p_t[:, None]
    i_x = float(np.sum(p_x[:, None] * q * (log_q - log_p_t)))  # nats
    h_y_given_t = -float(np.sum(p_ty * log_p_y_given_t))
    p_y = p_xy.sum(axis=0)
    h_y = -float(np.sum(p_y[p_y > 0] * np.log(p_y[p_y > 0])))
    i_y = h_y - h_y_given_t
    value = (i_x / LN2) ** 2 - beta * i_y / LN2
    grad_ix = p_x[:, None] * (log_q - log_p_t)
    grad_iy = p_x[:, None] * (p_y_given_x @ log_p_y_given_t.T)
    g = 2 * i_x / LN2**2 * grad_ix - beta / LN2 * grad_iy
    grad_z = q * (g - (q * g).sum(axis=1, keepdims=True))
    return value, grad_z.ravel()


def solve_squared_ib(p_xy: ArrayLike, beta: float, *, n_clusters: int | None = None,
                     init: ArrayLike | None = None, max_iter: int = 10_000, tol: float = 1e-15,
                     random_state: int | np.random.Generator | None = None,
                     normalize: bool = False) -> IBResult:
    """Minimise the squared IB Lagrangian I(X;T)^2 - beta I(T;Y) (bits) at one beta.

    Works for any p(x, y); for deterministic rules it reaches the interior of the curve
    min(I(X;T), H(Y)) that the plain Lagrangian cannot (the optimum is I(X;T) = beta/2).
    ``n_clusters`` defaults to |Y| + 1. The result's ``lagrangian`` is the squared one and
    ``alpha`` is NaN (not a generalised-IB solution); ``backend`` is "numpy" (numpy computes
    the objective and its gradient, scipy's L-BFGS-B minimises it).
    """
    # (dense: the squared IB's objective and gradient work on the dense table)
    problem = Problem.from_joint(v.check_joint(p_xy, normalize=normalize))
    beta = v.check_real(beta, name="beta", low=0.0)
    n_x, n_y = problem.p_xy.shape
    if init is not None:
        q0 = v.check_encoder(init, n_x=n_x, name="init")
        z0 = np.log(np.maximum(q0, 1e-12))
    else:
        k = v.check_int(n_clusters, name="n_clusters", low=1, allow_none=True) or n_y + 1
        z0 = v.check_random_state(random_state).normal(scale=1.0, size=(n_x, k))
    shape = z0.shape
    res = minimize(_objective, z0.ravel(), jac=True, method="L-BFGS-B",
                   args=(problem.p_x, problem.p_xy, problem.p_y_given_x, shape, beta),
                   options={"maxiter": v.check_int(max_iter, name="max_iter", low=1),
                            "ftol": tol, "gtol": 1e-13, "maxcor": 30})
    z = res.x.reshape(shape)
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    q = q[:, problem.p_x @ q > 1e-14]
    q /= q.sum(axis=1, keepdims=True)
    info = _encoder_information(problem.p_xy, q)
    converged = bool(res.success)
    if not converged:
        warnings.warn(f"squared IB at beta={beta:.6g} stopped before converging ({res.message}); "
                      "increase max_iter", ConvergenceWarning, stacklevel=2)
    p_t = problem.p_x @ q
    return IBResult(
        encoder=q, p_t=p_t, p_y_given_t=(q.T @ problem.p_xy) / p_t[:, None],
        i_xt=info["i_xt"], i_ty=info["i_ty"], h_t=info["h_t"],
        lagrangian=info["i_xt"] ** 2 - beta * info["i_ty"], beta=beta, alpha=float("nan"),
        n_iter=int(res.nit), converged=converged, residual=float(np.max(np.abs(res.jac))),
        backend="numpy", lagrangian_history=np.array([res.fun]))


def squared_grid(h_y: float, betas: ArrayLike | None = None, n_betas: int = 25) -> np.ndarray:
    """The betas of the squared Lagrangian a deterministic rule's curve is traced at:
    ``betas`` (sorted, duplicates dropped), or ``n_betas`` evenly spaced over (0, 2 H(Y)], so
    that the optimal I(X;T) = beta / 2 covers the line."""
    if betas is None:
        return np.linspace(0.0, 2.0 * h_y, n_betas + 1)[1:]
    return np.unique(np.asarray(betas, dtype=np.float64))


def squared_ib_curve(p_xy: ArrayLike, *, betas: ArrayLike | None = None, n_betas: int = 25,
                     random_state: int | np.random.Generator | None = 0, max_iter: int = 10_000,
                     progress: bool = False, interruptible: bool = False,
                     group: ArrayLike | None = None, return_encoders: bool = False,
                     seeds: Mapping[float, IBResult] | None = None,
                     settings: Mapping[str, Any] | None = None,
                     table_digest: str = "") -> IBCurve:
    """The IB curve of a deterministic rule from squared-IB solutions.

    ``p_xy`` is the table reduced to its minimal sufficient statistic (one row per value
    of Y; :func:`ibsolver.ib_curve` passes it so, with ``group`` mapping the user's rows to
    it). The points are the squared-IB optima at the betas of :func:`squared_grid` (note:
    betas of the squared Lagrangian I(X;T)^2 - beta I(T;Y), not of the IB's); their
    envelope is exactly min(I(X;T), H(Y)). ``max_iter`` bounds each L-BFGS run,
    ``progress`` shows a bar, ``interruptible`` returns the points solved so far on
    Ctrl-C (``complete=False``), ``return_encoders`` also returns each point's encoder in
    ``curve.encoders``, and ``seeds`` (beta -> IBResult) are points already solved (a
    resumed curve's). Every encoder returned, there and in ``curve.branches``, has the
    user's rows of x (``group[x]`` is x's row of ``p_xy``, -1 for an x of probability 0;
    default: they are the same).
    The results record ``backend="numpy"``:
    numpy computes the objective and its gradient and scipy's L-BFGS-B minimises it, for
    any backend asked.

    The Lagrangian itself is exact here: below beta = 1 the optimum is trivial, above it T
    = f(X) (I(X;T) = I(T;Y) = H(Y)), and at beta = 1 every point of the line is optimal.
    So ``first_instability`` (1/s2^2, s2 = 1 for Y = f(X)) is computed as for any table,
    ``onset_beta_s_star`` = 1/s* = 1, and ``onset_beta`` = 1 with one transition there, a
    jump from one cluster to |Y| (kind "jump", located exactly).
    """
    from .bifurcation import hypercontractivity

    problem = Problem.from_joint(v.check_joint(p_xy))  # (dense, as in solve_squared_ib)
    h_y = problem.h_y
    betas = squared_grid(h_y, betas, n_betas)
    rng = v.check_random_state(random_state)
    rows = np.arange(problem.p_x.size) if group is None else np.asarray(group)
    # one user's row of each reduced row (-1: an x of probability 0, not one of them)
    values, first = np.unique(rows, return_index=True)
    first = first[values >= 0]
    # (every point solved or seeded here carries its encoder)
    done = {b: replace(r, encoder=cast(np.ndarray, r.encoder)[first]) for b, r in (seeds or {}).items()}
    bar = _progress_bar(progress, betas.size)
    complete = True
    prev = None
    try:
        with warnings.catch_warnings():
            # L-BFGS stops "abnormally" when the line search hits round-off at the optimum;
            # the points are checked against the exact curve below instead
            warnings.simplefilter("ignore", ConvergenceWarning)
            for b in betas:
                if b not in done:
                    cands = [solve_squared_ib(problem.p_xy, b, random_state=rng,
                                              max_iter=max_iter)]
                    if prev is not None:
                        cands.append(solve_squared_ib(problem.p_xy, b, init=prev.encoder,
                                                      max_iter=max_iter))
                    done[b] = min(cands, key=lambda r: r.lagrangian)
                prev = done[b]
                bar.update()
    except KeyboardInterrupt:
        if not interruptible or not done:
            raise
        complete = False
        warnings.warn("ib_curve interrupted: returning the part traced so far", RuntimeWarning)
    finally:
        bar.close()
    solved = np.array(sorted(done))
    results = [replace(done[b], encoder=in_user_rows(cast(np.ndarray, done[b].encoder), done[b].p_t, rows))
               for b in solved]
    i_xt = np.array([r.i_xt for r in results])
    i_ty = np.array([r.i_ty for r in results])
    off = float(np.max(np.abs(i_ty - np.minimum(i_xt, h_y))))
    if off > 1e-6:
        warnings.warn(f"squared IB points are up to {off:.2e} bit off the exact curve "
                      "min(I(X;T), H(Y))", ConvergenceWarning, stacklevel=2)
    stopped = sum(r.n_iter >= max_iter for r in results)
    if stopped:
        warnings.warn(f"squared IB: {stopped} of {len(results)} points stopped at "
                      f"max_iter={max_iter}; raise max_iter", ConvergenceWarning, stacklevel=2)
    logger.info("deterministic rule: squared IB over %d betas, max |I_y - min(I_x, H(Y))| = %.2e",
                solved.size, off)
    h_sufficient = float(entropy(problem.p_x))  # T = f(X) is the minimal sufficient statistic
    s_star = hypercontractivity(problem.p_xy)[0]
    onset = Transition(beta=1.0, kind="jump", branch="squared", n_clusters_before=1,
                       n_clusters_after=problem.p_x.size, i_xt_before=0.0,
                       i_xt_after=h_sufficient, i_ty_before=0.0, i_ty_after=h_y,
                       beta_bracket=(1.0, 1.0), lagrangian=0.0)
    return IBCurve(
        beta=solved, i_xt=i_xt, i_ty=i_ty, h_t=np.array([r.h_t for r in results]),
        lagrangian=np.array([r.lagrangian for r in results]),
        n_clusters=np.array([r.n_clusters for r in results], dtype=np.int64),
        n_iter=np.array([r.n_iter for r in results], dtype=np.int64),
        converged=np.array([r.converged for r in results], dtype=bool),
        branch=np.full(solved.size, "squared"),
        envelope_i_xt=np.array([0.0, h_sufficient]), envelope_i_ty=np.array([0.0, h_y]),
        transitions=(onset,), all_transitions=(onset,),
        branches={"squared": Branch("squared", tuple(results))},
        i_xy=h_y, h_y=h_y, first_instability=problem.first_instability,
        onset_beta=1.0, onset_beta_s_star=1.0 / s_star, deterministic=True,
        encoders=tuple(r.encoder for r in results) if return_encoders else None,
        complete=complete, settings=dict(settings or {}, grid=betas),
        table_digest=table_digest)


def _progress_bar(enabled: bool, total: int):
    """A tqdm bar over the squared-IB solves, or one that shows nothing."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="IB curve (squared IB)", unit="solve", disable=not enabled)
