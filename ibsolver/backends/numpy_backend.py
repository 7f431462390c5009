"""Reference backend: the fused Blahut-Arimoto IB iteration in plain numpy.

This module is the specification the numba and C++ backends must reproduce.

State: ``log_p_t`` (k,) and ``log_p_y_given_t`` (k, m), natural logs, ``-inf`` for zeros.
One iteration, for every x (docs/theory.rst section 1, decoder-state form)::

    logit[x, t] = log p(t) + beta * sum_{y: p(y|x) > 0} p(y|x) log p(y|t)   (beta > 0)
    logit[x, t] = log p(t)                                                   (beta = 0)
    q(t|x)      = softmax_t(logit[x] / alpha)          alpha > 0
                = one-hot at the first argmax_t logit   alpha = 0 (deterministic IB)
    p(t)    <- sum_x p(x) q(t|x)
    p(t, y) <- sum_x p(x) p(y|x) q(t|x);   p(y|t) = p(t, y) / p(t)

Per iteration the kernel also returns, for the encoder q it just built,
``H(T) - alpha H(T|X) + beta H(Y|T)`` in nats (the generalised IB Lagrangian plus the
constant beta H(Y)), and the residual ``max_{t,y} |p_new(t, y) - p_old(t, y)|``.
Iteration stops after ``max_iter`` iterations or once the residual is <= ``tol``.
An x for which every cluster is impossible (all logits -inf) is an error.
"""
from __future__ import annotations

import numpy as np

from . import Iterated

NAME = "numpy"

#: p(y|x) is a dense array (see the C++ backend's READS_CSR)
READS_CSR = False


def _logits(p_y_given_x, log_p_t, log_p_y_given_t, beta):
    n = p_y_given_x.shape[0]
    if beta == 0.0:
        return np.broadcast_to(log_p_t, (n, log_p_t.size)).copy()
    impossible = ~np.isfinite(log_p_y_given_t)  # p(y|t) = 0
    finite_log = np.where(impossible, 0.0, log_p_y_given_t)
    logit = log_p_t + beta * (p_y_given_x @ finite_log.T)
    if impossible.any():
        # t cannot explain x when p(y|t) = 0 for some y with p(y|x) > 0
        blocked = ((p_y_given_x > 0).astype(np.float64) @ impossible.T.astype(np.float64)) > 0
        logit[blocked] = -np.inf
    return logit


def _assign(logit, alpha):
    """Encoder rows q(t|x) and sum_t q log q per x (nats)."""
    n, k = logit.shape
    if alpha == 0.0:
        q = np.zeros((n, k))
        q[np.arange(n), np.argmax(logit, axis=1)] = 1.0
        if np.any(np.isneginf(logit.max(axis=1))):
            raise FloatingPointError("an x has no admissible cluster (all logits are -inf)")
        return q, np.zeros(n)
    z = logit / alpha
    zmax = z.max(axis=1, keepdims=True)
    if np.any(np.isneginf(zmax)):
        raise FloatingPointError("an x has no admissible cluster (all logits are -inf)")
    e = np.exp(z - zmax)
    s = e.sum(axis=1, keepdims=True)
    q = e / s
    log_q = z - zmax - np.log(s)
    neg_h = np.where(q > 0, q * np.where(q > 0, log_q, 0.0), 0.0).sum(axis=1)
    return q, neg_h


def _log(a):
    with np.errstate(divide="ignore"):
        return np.log(a)


def run_iterations(p_x: np.ndarray, p_y_given_x: np.ndarray, log_p_t: np.ndarray,
                   log_p_y_given_t: np.ndarray, beta: float, alpha: float, max_iter: int,
                   tol: float, n_threads: int | None = None) -> Iterated:
    """Iterate from the given state; an :class:`ibsolver.backends.Iterated`."""
    p_xy = p_x[:, None] * p_y_given_x
    history = np.empty(max_iter)
    residual = np.inf
    n_iter = 0
    for it in range(max_iter):
        logit = _logits(p_y_given_x, log_p_t, log_p_y_given_t, beta)
        q, neg_h = _assign(logit, alpha)
        p_t = p_x @ q
        p_ty = q.T @ p_xy
        old_p_ty = np.exp(log_p_t[:, None] + log_p_y_given_t)
        residual = float(np.max(np.abs(p_ty - old_p_ty)))
        log_p_t = _log(p_t)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_p_y_given_t = np.where(p_t[:, None] > 0, _log(p_ty) - log_p_t[:, None], -np.inf)
        h_t = -np.sum(np.where(p_t > 0, p_t * np.where(p_t > 0, log_p_t, 0.0), 0.0))
        h_t_given_x = -float(p_x @ neg_h)
        h_y_given_t = -np.sum(np.where(p_ty > 0, p_ty * np.where(p_ty > 0, log_p_y_given_t, 0.0), 0.0))
        history[it] = h_t - alpha * h_t_given_x + beta * h_y_given_t
        n_iter = it + 1
        if residual <= tol:
            break
    return Iterated(log_p_t, log_p_y_given_t, n_iter, residual, history[:n_iter])


def encoder(p_y_given_x: np.ndarray, log_p_t: np.ndarray, log_p_y_given_t: np.ndarray,
            beta: float, alpha: float, n_threads: int | None = None) -> np.ndarray:
    """The encoder q(t|x), shape (n, k), that one iteration builds from the given state."""
    q, _ = _assign(_logits(p_y_given_x, log_p_t, log_p_y_given_t, beta), alpha)
    return q
