"""numba backend: the fused Blahut-Arimoto IB iteration, compiled and threaded.

Same signatures and semantics as :mod:`ibsolver.backends.numpy_backend` (the
specification); results agree with it to round-off. The whole iteration loop, including
the ``tol`` stop, runs inside compiled code. Rows x are split into one contiguous block
per thread; every block keeps its own accumulators for p(t), p(t, y) and
sum_x p(x) sum_t q log q, and the blocks are reduced in a fixed order afterwards, so the
result depends on ``n_threads`` only through round-off (and not at all on scheduling).

Per x the kernel loops only over the y with p(y|x) > 0, so ``0 * -inf`` never happens;
a cluster with p(y|t) = 0 for such a y gets logit -inf (it cannot explain x).
``fastmath`` stays off: the kernel relies on IEEE -inf arithmetic.

Importing this module raises ImportError when numba is missing; that is how the backend
registry knows the backend is unavailable.
"""
from __future__ import annotations

import operator
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

NAME = "numba"

_NO_CLUSTER = "an x has no admissible cluster (all logits are -inf)"
_OK = 0
_BAD_ROW = 1  # status: some x has all logits -inf


# --------------------------------------------------------------------------------------
# compiled kernels
# --------------------------------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _transposed_log_decoder(log_p_y_given_t, out):
    """out[y, t] = log p(y|t), with every non-finite entry (p(y|t) = 0) as -inf."""
    k, m = log_p_y_given_t.shape
    for t in range(k):
        for y in range(m):
            v = log_p_y_given_t[t, y]
            out[y, t] = v if np.isfinite(v) else -np.inf


@njit(cache=True, fastmath=False)
def _row_logits(x, p_y_given_x, log_p_t, log_dec_T, beta, z):
    """z[t] = log p(t) + beta * sum_{y: p(y|x) > 0} p(y|x) log p(y|t)   (beta > 0),
    z[t] = log p(t)  (beta = 0). -inf where p(y|t) = 0 for some y with p(y|x) > 0."""
    k = log_p_t.size
    m = p_y_given_x.shape[1]
    if beta == 0.0:
        for t in range(k):
            z[t] = log_p_t[t]
        return
    for t in range(k):
        z[t] = 0.0
    for y in range(m):
        c = p_y_given_x[x, y]
        if c > 0.0:
            row = log_dec_T[y]
            for t in range(k):
                z[t] += c * row[t]  # -inf stays -inf: c > 0 and no +inf anywhere
    for t in range(k):
        z[t] = log_p_t[t] + beta * z[t]


@njit(cache=True, fastmath=False)
def _first_argmax(z):
    """Index of the first maximum of z, or -1 when every entry is -inf (or NaN)."""
    best = -np.inf
    idx = -1
    for t in range(z.size):
        if z[t] > best:
            best = z[t]
            idx = t
    return idx


@njit(cache=True, fastmath=False)
def _row_softmax(z, alpha, q):
    """q = softmax(z / alpha) (alpha > 0), in place of nothing: z is overwritten with
    z / alpha - max. Returns (sum_t q log q in nats, ok); ok is False when all z are -inf."""
    k = z.size
    zmax = -np.inf
    for t in range(k):
        v = z[t] / alpha
        z[t] = v
        if v > zmax:
            zmax = v
    if not zmax > -np.inf:
        return 0.0, False
    s = 0.0
    for t in range(k):
        d = z[t] - zmax
        z[t] = d
        e = np.exp(d)
        q[t] = e
        s += e
    log_s = np.log(s)
    neg_h = 0.0
    for t in range(k):
        qt = q[t] / s
        q[t] = qt
        if qt > 0.0:
            neg_h += qt * (z[t] - log_s)
    return neg_h, True


@njit(cache=True, fastmath=False)
def _block_pass(lo, hi, p_x, p_y_given_x, log_p_t, log_dec_T, beta, alpha,
                acc_pt, acc_pty):
    """Accumulate rows lo..hi-1 into acc_pt (k,) and acc_pty (m, k), both zeroed here.
    Returns (sum_x p(x) sum_t q log q, status)."""
    k = log_p_t.size
    m = p_y_given_x.shape[1]
    acc_pt[:] = 0.0
    acc_pty[:, :] = 0.0
    z = np.empty(k)
    q = np.empty(k)
    acc_neg_h = 0.0
    for x in range(lo, hi):
        px = p_x[x]
        _row_logits(x, p_y_given_x, log_p_t, log_dec_T, beta, z)
        if alpha == 0.0:
            idx = _first_argmax(z)
            if idx < 0:
                return acc_neg_h, _BAD_ROW
            acc_pt[idx] += px  # p(x) * 1.0
            for y in range(m):
                c = p_y_given_x[x, y]
                if c > 0.0:
                    acc_pty[y, idx] += px * c
        else:
            neg_h, ok = _row_softmax(z, alpha, q)
            if not ok:
                return acc_neg_h, _BAD_ROW
            acc_neg_h += px * neg_h
            for t in range(k):
                acc_pt[t] += px * q[t]
            for y in range(m):
                c = p_y_given_x[x, y]
                if c > 0.0:
                    w = px * c  # p(x, y)
                    row = acc_pty[y]
                    for t in range(k):
                        row[t] += q[t] * w
    return acc_neg_h, _OK


@njit(parallel=True, cache=True, fastmath=False)
def _iterate(p_x, p_y_given_x, log_p_t_in, log_p_y_given_t_in, beta, alpha,
             max_iter, tol, n_blocks):
    n, m = p_y_given_x.shape
    k = log_p_t_in.size
    log_p_t = log_p_t_in.copy()
    log_p_y_given_t = log_p_y_given_t_in.copy()
    history = np.empty(max_iter)
    residual = np.inf
    n_iter = 0
    status = _OK

    n_blocks = max(1, min(n_blocks, n))
    bounds = np.empty(n_blocks + 1, dtype=np.int64)
    for b in range(n_blocks + 1):
        bounds[b] = (b * n) // n_blocks
    acc_pt = np.empty((n_blocks, k))
    acc_pty = np.empty((n_blocks, m, k))
    acc_neg_h = np.empty(n_blocks)
    block_status = np.empty(n_blocks, dtype=np.int64)
    log_dec_T = np.empty((m, k))
    p_t = np.empty(k)
    p_ty = np.empty((k, m))

    for it in range(max_iter):
        _transposed_log_decoder(log_p_y_given_t, log_dec_T)
        for b in prange(n_blocks):
            neg_h_b, status_b = _block_pass(bounds[b], bounds[b + 1], p_x, p_y_given_x,
                                            log_p_t, log_dec_T, beta, alpha,
                                            acc_pt[b], acc_pty[b])
            acc_neg_h[b] = neg_h_b
            block_status[b] = status_b
        # fixed-order reduction over blocks
        neg_h_total = 0.0
        for b in range(n_blocks):
            if block_status[b] != _OK:
                status = block_status[b]
            neg_h_total += acc_neg_h[b]
        if status != _OK:
            break
        for t in range(k):
            p_t[t] = 0.0
            for y in range(m):
                p_ty[t, y] = 0.0
        for b in range(n_blocks):
            for t in range(k):
                p_t[t] += acc_pt[b, t]
            for y in range(m):
                for t in range(k):
                    p_ty[t, y] += acc_pty[b, y, t]
        # residual against the old joint, then the new state and the objective
        residual = 0.0
        for t in range(k):
            for y in range(m):
                diff = abs(p_ty[t, y] - np.exp(log_p_t[t] + log_p_y_given_t[t, y]))
                if diff > residual:
                    residual = diff
        h_t = 0.0
        h_y_given_t = 0.0
        for t in range(k):
            if p_t[t] > 0.0:
                lpt = np.log(p_t[t])
                log_p_t[t] = lpt
                h_t -= p_t[t] * lpt
                for y in range(m):
                    if p_ty[t, y] > 0.0:
                        lpyt = np.log(p_ty[t, y]) - lpt
                        log_p_y_given_t[t, y] = lpyt
                        h_y_given_t -= p_ty[t, y] * lpyt
                    else:
                        log_p_y_given_t[t, y] = -np.inf
            else:
                log_p_t[t] = -np.inf
                for y in range(m):
                    log_p_y_given_t[t, y] = -np.inf
        h_t_given_x = -neg_h_total
        history[it] = h_t - alpha * h_t_given_x + beta * h_y_given_t
        n_iter = it + 1
        if residual <= tol:
            break
    return log_p_t, log_p_y_given_t, n_iter, residual, history[:n_iter].copy(), status


@njit(parallel=True, cache=True, fastmath=False)
def _encoder(p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha, n_blocks):
    n, m = p_y_given_x.shape
    k = log_p_t.size
    q_out = np.zeros((n, k))
    log_dec_T = np.empty((m, k))
    _transposed_log_decoder(log_p_y_given_t, log_dec_T)
    n_blocks = max(1, min(n_blocks, n))
    bad = np.zeros(n_blocks, dtype=np.int64)
    for b in prange(n_blocks):
        lo = (b * n) // n_blocks
        hi = ((b + 1) * n) // n_blocks
        z = np.empty(k)
        q = np.empty(k)
        for x in range(lo, hi):
            _row_logits(x, p_y_given_x, log_p_t, log_dec_T, beta, z)
            if alpha == 0.0:
                idx = _first_argmax(z)
                if idx < 0:
                    bad[b] = 1
                    break
                q_out[x, idx] = 1.0
            else:
                _, ok = _row_softmax(z, alpha, q)
                if not ok:
                    bad[b] = 1
                    break
                for t in range(k):
                    q_out[x, t] = q[t]
    status = _OK
    for b in range(n_blocks):
        if bad[b] != 0:
            status = _BAD_ROW
    return q_out, status


# --------------------------------------------------------------------------------------
# Python entry points
# --------------------------------------------------------------------------------------
def _n_blocks(n_threads) -> int:
    """Row blocks: one per requested thread (None: numba's default thread count)."""
    if n_threads is None:
        return int(numba.config.NUMBA_NUM_THREADS)
    n = operator.index(n_threads)
    if n < 1:
        raise ValueError(f"n_threads must be a positive integer or None (got {n_threads!r})")
    return n


@contextmanager
def _threads(n_blocks: int):
    """Run numba's parallel regions on min(n_blocks, available) threads, then restore."""
    previous = numba.get_num_threads()
    numba.set_num_threads(min(n_blocks, int(numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _as_f64(a, ndim: int) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"expected a {ndim}-D array (got shape {arr.shape})")
    return arr


def _state(p_y_given_x, log_p_t, log_p_y_given_t):
    p_y_given_x = _as_f64(p_y_given_x, 2)
    log_p_t = _as_f64(log_p_t, 1)
    log_p_y_given_t = _as_f64(log_p_y_given_t, 2)
    if log_p_y_given_t.shape != (log_p_t.size, p_y_given_x.shape[1]):
        raise ValueError(
            f"log_p_y_given_t must have shape (k, n_y) = ({log_p_t.size}, {p_y_given_x.shape[1]}) "
            f"(got {log_p_y_given_t.shape})"
        )
    return p_y_given_x, log_p_t, log_p_y_given_t


def run_iterations(p_x, p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha,
                   max_iter, tol, n_threads=None):
    """Iterate from the given state. Returns (log_p_t, log_p_y_given_t, n_iter, residual, history).

    See :func:`ibsolver.backends.numpy_backend.run_iterations`; ``history`` is in nats.
    """
    p_y_given_x, log_p_t, log_p_y_given_t = _state(p_y_given_x, log_p_t, log_p_y_given_t)
    p_x = _as_f64(p_x, 1)
    if p_x.size != p_y_given_x.shape[0]:
        raise ValueError(f"p_x must have n_x = {p_y_given_x.shape[0]} entries (got {p_x.size})")
    max_iter = operator.index(max_iter)
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0 (got {max_iter})")
    n_blocks = _n_blocks(n_threads)
    with _threads(n_blocks):
        out_t, out_ty, n_iter, residual, history, status = _iterate(
            p_x, p_y_given_x, log_p_t, log_p_y_given_t, float(beta), float(alpha),
            max_iter, float(tol), n_blocks)
    if status != _OK:
        raise FloatingPointError(_NO_CLUSTER)
    return out_t, out_ty, int(n_iter), float(residual), history


def encoder(p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha, n_threads=None):
    """The encoder q(t|x), shape (n, k), that one iteration builds from the given state."""
    p_y_given_x, log_p_t, log_p_y_given_t = _state(p_y_given_x, log_p_t, log_p_y_given_t)
    n_blocks = _n_blocks(n_threads)
    with _threads(n_blocks):
        q, status = _encoder(p_y_given_x, log_p_t, log_p_y_given_t, float(beta), float(alpha),
                             n_blocks)
    if status != _OK:
        raise FloatingPointError(_NO_CLUSTER)
    return q
