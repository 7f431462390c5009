"""Eigen-analysis of IB solutions: where clusters split, and where the optimum leaves zero.

Theory (theory.md section 2): cluster t of a solution is unstable to splitting when
``beta * lambda_2(C(t)) = 1`` with ``C_yy'(t) = sum_x p(y|x) p(x|t) p(y'|x) / p(y|t)``; the
eigenvector of the n x n twin ``C_xx'`` gives the split direction in x-space. The trivial
solution loses local stability at ``1 / s2**2`` (s2 the maximal correlation), but the
optimum can leave it earlier, at ``beta_0 = 1 / s*`` with s* the hypercontractivity
coefficient; no linear analysis sees that "birth".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from . import _validation as v
from .measures import maximal_correlation


@dataclass(frozen=True)
class ClusterStability:
    """Second eigenvalue of C(t) for one cluster and its split direction v(x) (unit max-norm)."""

    eigenvalue: float
    direction: np.ndarray


def cluster_stability(p_x, p_y_given_x, q_col) -> ClusterStability:
    """lambda_2(C(t)) and the split direction for the cluster with encoder column q(t|.)."""
    w = p_x * q_col
    p_x_given_t = w / w.sum()
    p_y_given_t = p_x_given_t @ p_y_given_x
    support = p_y_given_t > 0
    a = p_y_given_x[:, support]
    d = np.sqrt(p_y_given_t[support])
    if a.shape[1] < 2:
        return ClusterStability(0.0, np.zeros_like(p_x))
    m = a.T @ (p_x_given_t[:, None] * a)  # symmetric, C_yy = D^-1 M
    s = m / d[:, None] / d[None, :]
    evals, evecs = np.linalg.eigh(s)
    u = evecs[:, -2] / d  # right eigenvector of C_yy
    direction = a @ u  # eigenvector of C_xx = A D^-1 A^T P for the same eigenvalue
    scale = np.max(np.abs(direction[q_col > 0])) if np.any(q_col > 0) else 0.0
    if scale > 0:
        direction = direction / scale
    return ClusterStability(float(evals[-2]), direction)


def split_cluster(encoder: np.ndarray, t: int, direction: np.ndarray, eps: float = 0.2) -> np.ndarray:
    """Replace cluster t by two children q(t|x)(1 +/- eps v(x)) / 2 (|v| <= 1)."""
    col = encoder[:, t]
    plus = col * (1.0 + eps * direction) / 2.0
    minus = col * (1.0 - eps * direction) / 2.0
    return np.column_stack([encoder[:, :t], plus, minus, encoder[:, t + 1:]])


def first_instability(p_xy, *, normalize: bool = False) -> float:
    """beta where the trivial (one-cluster) solution loses local stability: 1 / s2**2.

    s2 is the maximal correlation of X and Y; inf when X and Y are independent.
    """
    s2 = maximal_correlation(p_xy, normalize=normalize)
    return float("inf") if s2 <= 0 else 1.0 / s2**2


def _ratio_and_grad(z, p_x, log_p_x, p_y_given_x, p_y):
    z = z - z.max()
    r = np.exp(z)
    r /= r.sum()
    r_y = r @ p_y_given_x
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ry = np.where(r_y > 0, np.log(r_y / p_y), 0.0)
        log_rx = np.where(r > 0, np.log(r) - log_p_x, 0.0)
    num = float(r_y @ log_ry)
    den = float(r @ log_rx)
    if den <= 1e-9:  # r ~ p_x: both terms O(|r-p|^2), ratio drowned in round-off (limit s2^2)
        return 0.0, np.zeros_like(z)
    g_num = p_y_given_x @ (log_ry + 1.0)
    g_den = log_rx + 1.0
    g = (g_num * den - num * g_den) / den**2
    grad_z = r * (g - r @ g)  # through the softmax
    return num / den, grad_z


def hypercontractivity(p_xy, *, n_starts: int = 8, random_state=0, normalize: bool = False):
    """The hypercontractivity coefficient s* = sup_r D(r_Y || p_Y) / D(r || p_X).

    s* is the slope of the IB curve at the origin, so the optimum first leaves the trivial
    solution at beta_0 = 1 / s*. It is a non-convex maximisation over distributions r on
    X; we take the best of local maximisations from point masses (the 8 least likely x),
    the s2 eigen-direction, and random starts. The value is a certified lower bound on s*
    (it is attained by the returned r); s* >= s2**2 always.

    Returns ``(s_star, r)``.
    """
    p_xy = v.check_joint(p_xy, normalize=normalize)
    rng = v.check_random_state(random_state)
    p_x = p_xy.sum(axis=1)
    p_y = p_xy.sum(axis=0)
    p_y_given_x = p_xy / p_x[:, None]
    log_p_x = np.log(p_x)
    n = p_x.size
    if n < 2 or p_y.size < 2:
        return 0.0, p_x.copy()
    starts = []
    # the eigen-direction: r = p(x)(1 + eps f(x)), the local (s2^2) limit
    b = p_xy / np.sqrt(np.outer(p_x, p_y))
    uu, _, _ = np.linalg.svd(b, full_matrices=False)
    f = uu[:, 1] / np.sqrt(p_x)
    for sign in (1.0, -1.0):
        r = p_x * np.clip(1.0 + sign * 0.5 * f / np.max(np.abs(f)), 1e-12, None)
        starts.append(np.log(r))
    for x in np.argsort(p_x)[: min(n, 8)]:  # point masses (least likely x first)
        z = log_p_x.copy()
        z[x] += 6.0
        starts.append(z)
    for _ in range(n_starts):
        starts.append(log_p_x + rng.normal(scale=2.0, size=n))
    best, best_r = 0.0, p_x.copy()
    for z0 in starts:
        res = minimize(lambda z: tuple(-a for a in _ratio_and_grad(z, p_x, log_p_x, p_y_given_x, p_y)),
                       z0, jac=True, method="L-BFGS-B", options={"maxiter": 300})
        val, _ = _ratio_and_grad(res.x, p_x, log_p_x, p_y_given_x, p_y)
        if val > best:
            z = res.x - res.x.max()
            best, best_r = val, np.exp(z) / np.exp(z).sum()
    s2 = maximal_correlation(p_xy)
    return max(best, s2**2), best_r


def invasion_rate(p_x, p_y_given_x, base_p_t, base_p_y_given_t, beta, decoder):
    """Largest growth factor per BA iteration of a cluster of vanishing mass added to a solution.

    A cluster of mass eps -> 0 with decoder d is mapped by one BA iteration to mass
    ``eps * G(d)``, ``G(d) = sum_x p(x) exp(beta sum_y p(y|x) log d(y)) / Z(x)`` with Z the
    base solution's partition function; the zero-mass manifold is invariant and the decoder
    map's fixed points are the stationary points of G. So a cluster is *born*
    (transcritically) where the local maximum of G crosses 1. The base solution is stable
    there, so this locates births without the critical slowing down of the full iteration.

    Returns ``(G, d)`` at the local maximum of G reached from ``decoder`` (a distribution
    on Y; zeros stay zero).
    """
    with np.errstate(divide="ignore"):
        log_pyt = np.log(base_p_y_given_t)
        log_pt = np.log(base_p_t)
    finite = np.where(np.isfinite(log_pyt), log_pyt, 0.0)
    logits = log_pt + beta * (p_y_given_x @ finite.T)
    blocked = ((p_y_given_x > 0).astype(float) @ (~np.isfinite(log_pyt)).T.astype(float)) > 0
    logits[blocked] = -np.inf
    top = logits.max(axis=1)
    log_z = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    d0 = np.asarray(decoder, dtype=np.float64)
    support = d0 > 0
    # x that need a y outside the decoder's support cannot join the new cluster
    allowed = ~np.any((p_y_given_x > 0) & ~support[None, :], axis=1)
    a = p_y_given_x[np.ix_(allowed, support)]
    base = np.log(p_x[allowed]) - log_z[allowed]

    def neg_log_g(z):
        z = z - z.max()
        log_d = z - np.log(np.exp(z).sum())
        e = base + beta * (a @ log_d)
        m = e.max()
        w = np.exp(e - m)
        g = w.sum()
        grad_log_d = beta * (w @ a) / g  # d log G / d log d
        d = np.exp(log_d)
        grad_z = grad_log_d - d * grad_log_d.sum()
        return -(m + np.log(g)), -grad_z

    if a.shape[0] == 0:
        return 0.0, d0
    res = minimize(neg_log_g, np.log(d0[support]), jac=True, method="L-BFGS-B",
                   options={"maxiter": 1000, "gtol": 1e-12, "ftol": 1e-15})
    z = res.x - res.x.max()
    d = np.zeros_like(d0)
    d[support] = np.exp(z) / np.exp(z).sum()
    return float(np.exp(-res.fun)), d
