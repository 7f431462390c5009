"""Eigen-analysis of IB solutions: where clusters split, and where the optimum leaves zero.

Theory (docs/theory.rst section 2): cluster t of a solution is unstable to splitting when
``beta * lambda_2(C(t)) = 1`` with ``C_yy'(t) = sum_x p(y|x) p(x|t) p(y'|x) / p(y|t)``; the
eigenvector of the n x n twin ``C_xx'`` gives the split direction in x-space. The trivial
solution loses local stability at ``1 / s2**2`` (s2 the maximal correlation), but the
optimum can leave it earlier, at ``beta_0 = 1 / s*`` with s* the hypercontractivity
coefficient; no linear analysis sees that "birth".

The functions here take p(y|x) as a dense array or a scipy CSR matrix (``Problem.rows``):
with a sparse table their cost follows its non-zeros.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.sparse.linalg import LinearOperator, eigsh

from . import _validation as v
from ._tables import dense, pattern, rows_divided, squared
from .measures import _arpack_start, _maximal_correlation, second_singular


@dataclass(frozen=True)
class ClusterStability:
    """Second eigenvalue of C(t) for one cluster and its split direction v(x) (unit max-norm)."""

    eigenvalue: float
    direction: np.ndarray


#: a cluster's support in Y above which lambda_2 is found by Lanczos iterations (products
#: with the table's rows, cost ~ its non-zeros) instead of a dense eigendecomposition
#: (|Y|^3: 1.5 s at |Y| = 2000)
DENSE_EIGEN_MAX = 256


def cluster_stability(p_x: np.ndarray, p_y_given_x: np.ndarray | scipy.sparse.csr_matrix,
                      q_col: np.ndarray) -> ClusterStability:
    """lambda_2(C(t)) and the split direction for the cluster with encoder column q(t|.)."""
    w = p_x * q_col
    p_x_given_t = w / w.sum()
    p_y_given_t = p_x_given_t @ p_y_given_x
    support = np.flatnonzero(p_y_given_t > 0)
    if support.size < 2:
        return ClusterStability(0.0, np.zeros_like(p_x))
    a = p_y_given_x[:, support]
    d = np.sqrt(p_y_given_t[support])
    if support.size <= DENSE_EIGEN_MAX:
        a = dense(a)
        m = a.T @ (p_x_given_t[:, None] * a)  # symmetric, C_yy = D^-1 M
        evals, evecs = np.linalg.eigh(m / d[:, None] / d[None, :])
        value, vec = evals[-2], evecs[:, -2]
    else:
        value, vec = _second_eigenpair(a, p_x_given_t, d)
    direction = a @ (vec / d)  # eigenvector of C_xx = A D^-1 A^T P for the same eigenvalue
    scale = np.max(np.abs(direction[q_col > 0])) if np.any(q_col > 0) else 0.0
    if scale > 0:
        direction = direction / scale
    return ClusterStability(float(value), direction)


def _second_eigenpair(a, weights, d):
    """The second eigenpair of S = D^-1 A' W A D^-1 (D = diag d, W = diag weights) by
    Lanczos: S has the top eigenpair (1, d) (d = sqrt p(y|t), a unit vector), so the top
    eigenpair of S on the complement of d is the second one."""
    rows = np.flatnonzero(weights > 0)  # the other rows add nothing to S
    a_in, w_in = a[rows], weights[rows]
    a_in_t = a_in.T.tocsr() if scipy.sparse.issparse(a_in) else a_in.T  # (once, not per product)

    def apply(v):
        v = v - d * (d @ v)
        u = (a_in_t @ (w_in * (a_in @ (v / d)))) / d
        return u - d * (d @ u)

    size = d.size
    start = _arpack_start(size)
    values, vecs = eigsh(LinearOperator((size, size), matvec=apply, dtype=np.float64), k=1,
                         which="LA", v0=start - d * (d @ start), tol=1e-13)
    return values[0], vecs[:, 0]


def cluster_stabilities(p_x: np.ndarray, p_y_given_x: np.ndarray | scipy.sparse.csr_matrix,
                        encoder: np.ndarray) -> list:
    """cluster_stability of every column of ``encoder`` (n, k), batched for a dense table
    with |Y| <= DENSE_EIGEN_MAX: the clusters whose p(y|t) is positive for every y share
    one stacked eigendecomposition."""
    n, k = encoder.shape
    m = p_y_given_x.shape[1]
    w = p_x[:, None] * encoder
    mass = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_x_given_t = w / mass
    p_y_given_t = p_x_given_t.T @ p_y_given_x
    batched = 2 <= m <= DENSE_EIGEN_MAX and not scipy.sparse.issparse(p_y_given_x)
    full = np.flatnonzero((mass > 0) & np.all(p_y_given_t > 0, axis=1)) if batched else []
    out = [None] * k
    if len(full):
        d = np.sqrt(p_y_given_t[full])                                     # (f, m)
        mats = (p_x_given_t[:, full].T[:, None, :] * p_y_given_x.T[None]) @ p_y_given_x
        values, vecs = np.linalg.eigh(mats / d[:, :, None] / d[:, None, :])
        values = values[:, -2]
        directions = p_y_given_x @ (vecs[:, :, -2] / d).T                  # (n, f)
        for j, t in enumerate(full):
            direction = directions[:, j]
            scale = np.max(np.abs(direction[encoder[:, t] > 0]))
            out[t] = ClusterStability(float(values[j]),
                                      direction / scale if scale > 0 else direction)
    for t in range(k):
        if out[t] is None:
            out[t] = cluster_stability(p_x, p_y_given_x, encoder[:, t])
    return out


def unstable_clusters(p_x: np.ndarray, p_y_given_x: np.ndarray | scipy.sparse.csr_matrix, encoder: np.ndarray,
                      beta: float, margin: float = 0.0) -> dict:
    """{t: cluster_stability} of the clusters of ``encoder`` (n, k) with
    beta * lambda_2(C(t)) >= 1 + margin.

    Most clusters are far from splitting: C(t) is similar to a positive semi-definite
    matrix with top eigenvalue 1, so lambda_2 <= trace(C(t)) - 1 =
    sum_y sum_x p(x|t) p(y|x)^2 / p(y|t) - 1 (n k m flops), and only clusters whose bound
    reaches the threshold get the m x m eigendecomposition."""
    w = p_x[:, None] * encoder
    mass = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_x_given_t = w / mass
        p_y_given_t = p_x_given_t.T @ p_y_given_x
        second = p_x_given_t.T @ squared(p_y_given_x)                 # sum_x p(x|t) p(y|x)^2
        bound = np.sum(np.where(p_y_given_t > 0, second / p_y_given_t, 0.0), axis=1) - 1.0
    # (slack for round-off: with |Y| = 2 the bound is lambda_2 itself)
    candidates = np.flatnonzero((mass > 0) & (beta * bound >= (1.0 + margin) * (1.0 - 1e-9)))
    if candidates.size == 0:
        return {}
    stab = cluster_stabilities(p_x, p_y_given_x, encoder[:, candidates])
    return {int(t): s for t, s in zip(candidates, stab) if beta * s.eigenvalue >= 1.0 + margin}


def split_cluster(encoder: np.ndarray, t: int, direction: np.ndarray, eps: float = 0.2) -> np.ndarray:
    """Replace cluster t by two children q(t|x)(1 +/- eps v(x)) / 2 (|v| <= 1)."""
    col = encoder[:, t]
    plus = col * (1.0 + eps * direction) / 2.0
    minus = col * (1.0 - eps * direction) / 2.0
    return np.column_stack([encoder[:, :t], plus, minus, encoder[:, t + 1:]])


#: a tilt closer to p_X than this (divergence, nats) is not scored: the ratio of two
#: quantities of order |lam|^2 is round-off there (its limit is s2^2, scored separately)
TILT_MIN_DIVERGENCE = 1e-7
#: L-BFGS options of hypercontractivity's ascents of the ratio, and of tilt_ratio_ascent's
#: (to the end: the onset and 1/s* are compared to 1e-6 relative)
BROAD_ASCENT = {"maxiter": 500}
TIGHT_ASCENT = {"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9}
#: a -inf entry of a given direction (a decoder with p(y|t) = 0) becomes -MAX_TILT
MAX_TILT = 50.0


def first_instability(p_xy: ArrayLike, *, normalize: bool = False) -> float:
    """beta where the trivial (one-cluster) solution loses local stability: 1 / s2**2.

    s2 is the maximal correlation of X and Y; inf when X and Y are independent.
    """
    return _first_instability(v.check_joint(p_xy, normalize=normalize))


def _first_instability(p_xy) -> float:
    """first_instability of a checked table, dense or scipy sparse."""
    s2 = _maximal_correlation(p_xy)
    return float("inf") if s2 <= 0 else 1.0 / s2**2


def _tilted(lam, log_p_x, p_y_given_x):
    """r(x) proportional to p(x) exp(lam . p(.|x)), and log r."""
    z = log_p_x + p_y_given_x @ lam
    z = z - z.max()
    log_r = z - np.log(np.exp(z).sum())
    return np.exp(log_r), log_r


def _tilt_ratio_and_grad(lam, log_p_x, p_y_given_x, p_y):
    """D(r_Y || p_Y) / D(r || p_X) for the tilt r of p_X by lam, and its gradient in lam.

    With f(x) = p(.|x): r_Y = E_r f, d r_Y / d lam = Cov_r f, and D(r || p_X) =
    lam . E_r f - log Z has gradient Cov_r(f) lam."""
    r, log_r = _tilted(lam, log_p_x, p_y_given_x)
    r_y = r @ p_y_given_x
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.where(r_y > 0, np.log(r_y / p_y), 0.0)
    num = float(r_y @ log_ratio)
    pos = r > 0
    den = float(r[pos] @ (log_r[pos] - log_p_x[pos]))
    if den <= TILT_MIN_DIVERGENCE:  # r ~ p_X: both O(|lam|^2), the ratio is round-off
        return 0.0, np.zeros_like(lam)
    w = (log_ratio * den - num * lam) / den**2
    # Cov_r(f) w = sum_x r(x) (f(x) - r_Y) ((f(x) - r_Y) . w), as two products with p(y|x)
    # (no |Y| x |Y| matrix: for a wide table that cost n |Y|^2 per gradient)
    u = r * (p_y_given_x @ w - r_y @ w)
    return num / den, np.asarray(p_y_given_x.T @ u).ravel()


def hypercontractivity(p_xy: ArrayLike, *, n_starts: int = 8,
                       random_state: int | np.random.Generator | None = 0,
                       normalize: bool = False) -> tuple[float, np.ndarray]:
    """The hypercontractivity coefficient s* = sup_r D(r_Y || p_Y) / D(r || p_X).

    s* is the slope of the IB curve at the origin, so the optimum first leaves the trivial
    solution at beta_0 = 1 / s*. Among all r with the same r_Y = sum_x r(x) p(.|x) the
    denominator is smallest for the I-projection of p_X, an exponential tilt r(x) ~ p(x)
    exp(lam . p(.|x)) (Csiszar), so the sup runs over lam in R^|Y| and the tilts' limits as
    |lam| -> infinity, point masses. It is still not concave: we take the best of all
    point masses and of local maximisations (L-BFGS) from the s2 eigen-direction, the
    directions of the 8 best point masses, and ``n_starts`` random directions. The ratio is
    flat towards its maximum, and these ascents stop some 1e-5 short of it (relative); see
    :func:`tilt_ratio_ascent` for ascents to the end. The value is a lower bound on s*
    attained by the returned r; s* >= s2**2 always.

    Returns ``(s_star, r)``.
    """
    p_xy = v.check_joint(p_xy, normalize=normalize, keep_sparse=True)
    rng = v.check_random_state(random_state)
    p_x, p_y = v.row_sums(p_xy), v.column_sums(p_xy)
    p_y_given_x = rows_divided(p_xy, p_x)
    log_p_x = np.log(p_x)
    n, m = p_xy.shape
    if n < 2 or m < 2:
        return 0.0, p_x.copy()
    point = np.where(p_x < 1.0, _row_divergences(p_y_given_x, p_y) / -log_p_x, 0.0)  # at x
    best_x = int(np.argmax(point))
    best, best_r = float(point[best_x]), np.zeros(n)
    best_r[best_x] = 1.0  # the point mass (not a row of an n x n identity)
    # the eigen-direction: lam = h, the top non-trivial singular function of Y (the s2^2 limit)
    s2, vt1 = second_singular(p_xy)
    h = vt1 / np.sqrt(p_y)
    starts = [sign * c * h / np.max(np.abs(h)) for sign in (1.0, -1.0) for c in (0.5, 3.0)]
    for x in np.argsort(point)[::-1][: min(n, 8)]:  # towards the best point masses
        d = np.log(np.maximum(dense(p_y_given_x[x]).ravel(), 1e-300) / p_y)
        if np.max(np.abs(d)) > 0:  # (p(y|x) = p(y): the point mass at x has ratio 0)
            starts += [c * d / np.max(np.abs(d)) for c in (1.0, 5.0)]
    starts += [rng.normal(scale=3.0, size=m) for _ in range(n_starts)]
    val, r = _ascend(starts, BROAD_ASCENT, log_p_x, p_y_given_x, p_y)
    if val > best:
        best, best_r = val, r
    return max(best, min(s2, 1.0)**2), best_r


def _row_divergences(p_y_given_x, p_y: np.ndarray) -> np.ndarray:
    """D(p(.|x) || p_Y) in nats for every x; for a CSR p(y|x) from its non-zeros."""
    if scipy.sparse.issparse(p_y_given_x):
        coo = p_y_given_x.tocoo()
        return np.bincount(coo.row, coo.data * np.log(coo.data / p_y[coo.col]),
                           minlength=p_y_given_x.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(np.where(p_y_given_x > 0, p_y_given_x * np.log(p_y_given_x / p_y), 0.0),
                      axis=1)


def tilt_ratio_ascent(p_xy: ArrayLike, directions: ArrayLike) -> float:
    """The largest D(r_Y || p_Y) / D(r || p_X) reached by ascents of the tilt ratio (see
    :func:`hypercontractivity`) from the tilts ``directions`` (lam in R^|Y| each; -inf
    entries, from a decoder with p(y|t) = 0, become -MAX_TILT), each run to the end (tight
    tolerances, some ten times the cost of one of hypercontractivity's starts; for every
    start of that search they cost 30 s on a 24 x 24 table). A lower bound on s*; 0 where
    no ascent scores."""
    p_xy = v.check_joint(p_xy, keep_sparse=True)
    p_x = v.row_sums(p_xy)
    starts = [np.where(np.isfinite(d), d, -MAX_TILT) for d in np.atleast_2d(directions)]
    return _ascend(starts, TIGHT_ASCENT, np.log(p_x), rows_divided(p_xy, p_x),
                   v.column_sums(p_xy))[0]


def _ascend(starts, options, log_p_x, p_y_given_x, p_y):
    """(the best ratio, its tilt r) of L-BFGS ascents of the tilt ratio from ``starts``."""
    best, best_r = 0.0, None
    for lam0 in starts:
        res = minimize(lambda lam: tuple(-a for a in _tilt_ratio_and_grad(lam, log_p_x,
                                                                         p_y_given_x, p_y)),
                       lam0, jac=True, method="L-BFGS-B", options=options)
        val, _ = _tilt_ratio_and_grad(res.x, log_p_x, p_y_given_x, p_y)
        if val > best:
            best, best_r = val, _tilted(res.x, log_p_x, p_y_given_x)[0]
    return best, best_r


def _log_partition(p_y_given_x, base_p_t, base_p_y_given_t, beta):
    """log Z(x) = log sum_t p(t) exp(beta sum_y p(y|x) log p(y|t)) of a base solution."""
    with np.errstate(divide="ignore"):
        log_pyt = np.log(base_p_y_given_t)
        log_pt = np.log(base_p_t)
    finite = np.where(np.isfinite(log_pyt), log_pyt, 0.0)
    logits = log_pt + beta * (p_y_given_x @ finite.T)
    blocked = (pattern(p_y_given_x) @ (~np.isfinite(log_pyt)).T.astype(float)) > 0
    logits[blocked] = -np.inf
    top = logits.max(axis=1)
    return top + np.log(np.exp(logits - top[:, None]).sum(axis=1))


#: candidate decoders scored at a time by invasion_starts (rows x this many logits)
INVASION_BLOCK = 32


def invasion_starts(p_x: np.ndarray, p_y_given_x: np.ndarray | scipy.sparse.csr_matrix, base_p_t: np.ndarray,
                    base_p_y_given_t: np.ndarray, beta: float, *, count: int = 3,
                    min_distance: float = 1e-3, max_rows: int = 256) -> list[np.ndarray]:
    """Decoders to start the ascent of G from: the ``count`` rows p(.|x') with the largest
    G(p(.|x')) among those at least ``min_distance`` (max-norm) from every base decoder
    (at most ``max_rows`` rows evenly spaced in the given order are scored). A new
    cluster's decoder is an average of rows p(.|x), so where the local ascent from one
    start falls back onto an existing decoder, one of these finds the far maximum."""
    n = p_x.size
    rows = np.unique(np.linspace(0, n - 1, min(n, max_rows)).astype(int))
    cand = dense(p_y_given_x[rows])
    dist = np.full(rows.size, np.inf)
    for decoder in base_p_y_given_t:  # (not one rows x k x m array: 260 MB at m = 2000)
        dist = np.minimum(dist, np.max(np.abs(cand - decoder), axis=1))
    rows, cand = rows[dist > min_distance], cand[dist > min_distance]
    if rows.size == 0:
        return []
    log_z = _log_partition(p_y_given_x, base_p_t, base_p_y_given_t, beta)
    with np.errstate(divide="ignore"):
        log_cand = np.maximum(np.log(cand), -1e300)  # p(y|x) = 0 terms stay 0, not NaN
    log_g = np.empty(rows.size)
    for lo in range(0, rows.size, INVASION_BLOCK):  # (not all n x max_rows logits at once)
        block = slice(lo, lo + INVASION_BLOCK)
        logits = np.log(p_x)[:, None] - log_z[:, None] + beta * (p_y_given_x @ log_cand[block].T)
        top = logits.max(axis=0)
        log_g[block] = top + np.log(np.exp(logits - top).sum(axis=0))
    return [cand[i] for i in np.argsort(log_g)[::-1][:count]]


def invasion_rate(p_x: np.ndarray, p_y_given_x: np.ndarray | scipy.sparse.csr_matrix, base_p_t: np.ndarray,
                  base_p_y_given_t: np.ndarray, beta: float,
                  decoder: ArrayLike) -> tuple[float, np.ndarray]:
    """Largest growth factor per BA iteration of a cluster of vanishing mass added to a solution.

    A cluster of mass eps -> 0 with decoder d is mapped by one BA iteration to mass
    ``eps * G(d)``, ``G(d) = sum_x p(x) exp(beta sum_y p(y|x) log d(y)) / Z(x)`` with Z the
    base solution's partition function; the zero-mass manifold is invariant and the decoder
    map's fixed points are the stationary points of G. So a cluster is *born*
    (transcritically) where the local maximum of G crosses 1. The base solution is stable
    there, so this locates births without the critical slowing down of the full iteration.

    Returns ``(G, d)`` at the local maximum of G reached from ``decoder`` (a distribution
    on Y; zeros stay zero). The ascent (see :func:`_ascend_log_g`) takes Newton steps where
    log G is locally concave and the decoder map's own step elsewhere: that map is a
    minorise-maximise step of log G (Jensen over x), so G never decreases.
    """
    log_z = _log_partition(p_y_given_x, base_p_t, base_p_y_given_t, beta)
    d0 = np.asarray(decoder, dtype=np.float64)
    support = d0 > 0
    # x that need a y outside the decoder's support cannot join the new cluster
    allowed = (pattern(p_y_given_x) @ (~support).astype(float)) == 0
    if not allowed.any():
        return 0.0, d0
    log_g, log_d = _ascend_log_g(np.log(p_x[allowed]) - log_z[allowed],
                                 p_y_given_x[allowed][:, support], beta, np.log(d0[support]))
    d = np.zeros_like(d0)
    d[support] = np.exp(log_d)
    with np.errstate(over="ignore"):  # far from a fixed point G can exceed 1e308: inf
        return float(np.exp(log_g)), d


#: the ascent of log G stops once its steps shrink geometrically to an estimated remaining
#: gain below this (or gain nothing), or after INVASION_MAX_STEPS steps
INVASION_GAIN_TOL = 1e-12
INVASION_MAX_STEPS = 500
#: doublings of a minorise-maximise step tried while they climb further
MM_DOUBLINGS = 8
#: decoder supports above which the ascent takes minorise-maximise steps only (a Newton
#: step costs rows x support^2 + support^3)
NEWTON_MAX_SUPPORT = 256


def _ascend_log_g(base, a, beta, log_d):
    """Local maximum of log G(d) = logsumexp_x(base_x + beta a_x . log d) over the simplex
    from ``log_d``: ``(log G, log d)``.

    In z = log d (up to a constant), with pi the softmax of the terms over x and
    m = pi @ a, the gradient is beta (m - d) and the Hessian beta^2 J' Cov_pi(a) J - beta
    (diag d - d d') with J = I - 1 d'. A Newton step (the last z held fixed: the constant)
    is taken where that Hessian is negative definite and the step raises log G; otherwise
    the minorise-maximise step d <- m, doubled while that climbs further (where log G is
    flat the plain step crawls: 70 steps per call on a 1024 x 2 curve's births, 3.5 with
    the doublings)."""
    def evaluate(log_d):
        e = base + beta * (a @ log_d)
        top = e.max()
        w = np.exp(e - top)
        return top + np.log(w.sum()), w / w.sum()

    k = log_d.size
    log_g, pi = evaluate(log_d)
    last_gain = np.inf
    for _ in range(INVASION_MAX_STEPS):
        d = np.exp(log_d)
        m = pi @ a
        cand = None
        if 1 < k <= NEWTON_MAX_SUPPORT:
            a = dense(a)
            cov = (a * pi[:, None]).T @ a - np.outer(m, m)
            jac = np.eye(k) - d[None, :]
            hess = (beta ** 2 * jac.T @ cov @ jac - beta * (np.diag(d) - np.outer(d, d)))[:-1, :-1]
            step = _concave_newton_step(hess, -beta * (m - d)[:-1])
            if step is not None:
                z = log_d.copy()
                z[:-1] += step
                z -= np.logaddexp.reduce(z)
                cand = (z, *evaluate(z))
                if not cand[1] >= log_g:  # (NaN: not taken either)
                    cand = None
        if cand is None:
            z = np.log(np.maximum(m, 1e-300))  # (a y no x weighted here uses: d(y) -> 0)
            cand = (z, *evaluate(z))
            # where the step crawls, longer steps the same way, while they climb further
            for _ in range(MM_DOUBLINGS if np.all(np.isfinite(z - log_d)) else 0):
                longer = log_d + 2.0 * (cand[0] - log_d)
                longer -= np.logaddexp.reduce(longer)
                trial = (longer, *evaluate(longer))
                if not trial[1] > cand[1]:
                    break
                cand = trial
        gain = cand[1] - log_g
        ratio = gain / last_gain if 0 < last_gain < np.inf else 1.0
        last_gain = gain
        if gain >= 0:
            log_d, log_g, pi = cand
        if gain <= 1e-15 * (1.0 + abs(log_g)) or (
                ratio < 1.0 and gain * ratio / (1.0 - ratio) < INVASION_GAIN_TOL):
            break
    return log_g, log_d


def _concave_newton_step(hess, minus_grad):
    """The Newton step solving ``hess step = minus_grad`` where ``hess`` is finite and
    negative definite (a local maximum ahead), else None."""
    if not np.all(np.isfinite(hess)) or not np.all(np.isfinite(minus_grad)):
        return None
    try:
        if np.linalg.eigvalsh(hess).max() >= 0:
            return None
        step = np.linalg.solve(hess, minus_grad)
    except np.linalg.LinAlgError:  # singular to working precision
        return None
    return step if np.all(np.isfinite(step)) else None
