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
def _row_logits(x, p_y_given_x, log_p_t, log_dec_T, beta, z, nz):
    """z[t] = log p(t) + beta * sum_{y: p(y|x) > 0} p(y|x) log p(y|t)   (beta > 0),
    z[t] = log p(t)  (beta = 0). -inf where p(y|t) = 0 for some y with p(y|x) > 0.
    nz: int64 scratch of size m (the y with p(y|x) > 0)."""
    k = log_p_t.size
    m = p_y_given_x.shape[1]
    if beta == 0.0:
        for t in range(k):
            z[t] = log_p_t[t]
        return
    count = 0
    for y in range(m):
        if p_y_given_x[x, y] > 0.0:
            nz[count] = y
            count += 1
    for t in range(k):
        z[t] = 0.0
    # sum over y in order, four y per pass over z (fewer loads and stores of z);
    # -inf stays -inf: every coefficient is > 0 and no +inf occurs
    j = 0
    while j + 4 <= count:
        y0 = nz[j]
        y1 = nz[j + 1]
        y2 = nz[j + 2]
        y3 = nz[j + 3]
        c0 = p_y_given_x[x, y0]
        c1 = p_y_given_x[x, y1]
        c2 = p_y_given_x[x, y2]
        c3 = p_y_given_x[x, y3]
        r0 = log_dec_T[y0]
        r1 = log_dec_T[y1]
        r2 = log_dec_T[y2]
        r3 = log_dec_T[y3]
        for t in range(k):
            z[t] = (((z[t] + c0 * r0[t]) + c1 * r1[t]) + c2 * r2[t]) + c3 * r3[t]
        j += 4
    while j < count:
        c0 = p_y_given_x[x, nz[j]]
        r0 = log_dec_T[nz[j]]
        for t in range(k):
            z[t] += c0 * r0[t]
        j += 1
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


# exp(d) for d <= 0 (d = -inf allowed) in a form LLVM vectorises without fastmath:
# d = k ln2 + r, |r| <= ln2 / 2, exp(r) by its degree-13 Taylor polynomial (truncation
# < 1e-17 relative), times 2^k built from exponent bits in two halves so that results
# down to the denormals (and 0 below exp(-745.13)) are right. Max error 1 ulp.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2**52: (v + _ROUND) - _ROUND rounds v to an integer
_EXP_FLOOR = -746.0  # exp(-746) rounds to 0; also keeps the exponent halves normal
_C2 = 1.0 / 2.0
_C3 = 1.0 / 6.0
_C4 = 1.0 / 24.0
_C5 = 1.0 / 120.0
_C6 = 1.0 / 720.0
_C7 = 1.0 / 5040.0
_C8 = 1.0 / 40320.0
_C9 = 1.0 / 362880.0
_C10 = 1.0 / 3628800.0
_C11 = 1.0 / 39916800.0
_C12 = 1.0 / 479001600.0
_C13 = 1.0 / 6227020800.0


@njit(cache=True, fastmath=False)
def _exp_nonpositive(d, out, bits1, bits2):
    """out[t] = exp(d[t]) for d[t] <= 0. bits1, bits2: int64 scratch of the same size."""
    k = d.size
    for t in range(k):
        v = d[t]
        v = v if v > _EXP_FLOOR else _EXP_FLOOR
        kf = (v * _LOG2E + _ROUND) - _ROUND
        r = (v - kf * _LN2_HI) - kf * _LN2_LO
        p = _C13
        p = p * r + _C12
        p = p * r + _C11
        p = p * r + _C10
        p = p * r + _C9
        p = p * r + _C8
        p = p * r + _C7
        p = p * r + _C6
        p = p * r + _C5
        p = p * r + _C4
        p = p * r + _C3
        p = p * r + _C2
        p = p * r + 1.0
        p = p * r + 1.0
        out[t] = p
        ki = np.int64(kf)
        k1 = ki >> 1
        bits1[t] = (k1 + 1023) << 52
        bits2[t] = (ki - k1 + 1023) << 52
    scale1 = bits1.view(np.float64)
    scale2 = bits2.view(np.float64)
    for t in range(k):
        out[t] = (out[t] * scale1[t]) * scale2[t]


@njit(cache=True, fastmath=False)
def _sum4(a):
    """Sum with four interleaved partial sums (keeps the FP add pipeline full)."""
    k = a.size
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    t = 0
    while t + 4 <= k:
        s0 += a[t]
        s1 += a[t + 1]
        s2 += a[t + 2]
        s3 += a[t + 3]
        t += 4
    while t < k:
        s0 += a[t]
        t += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, fastmath=False)
def _scaled_max(z, alpha):
    """z <- z / alpha in place; returns max(z) (-inf when every entry is -inf)."""
    k = z.size
    m0 = -np.inf
    m1 = -np.inf
    m2 = -np.inf
    m3 = -np.inf
    if alpha != 1.0:
        for t in range(k):
            z[t] = z[t] / alpha
    t = 0
    while t + 4 <= k:
        m0 = z[t] if z[t] > m0 else m0
        m1 = z[t + 1] if z[t + 1] > m1 else m1
        m2 = z[t + 2] if z[t + 2] > m2 else m2
        m3 = z[t + 3] if z[t + 3] > m3 else m3
        t += 4
    while t < k:
        m0 = z[t] if z[t] > m0 else m0
        t += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return m2 if m2 > m0 else m0


@njit(cache=True, fastmath=False)
def _row_softmax(z, alpha, q, bits1, bits2):
    """q = softmax(z / alpha) for alpha > 0; z is overwritten with z / alpha - max.
    Returns (sum_t q log q in nats, with 0 log 0 = 0; ok), ok False when all z are -inf."""
    k = z.size
    zmax = _scaled_max(z, alpha)
    if not zmax > -np.inf:
        return 0.0, False
    for t in range(k):
        z[t] = z[t] - zmax
    _exp_nonpositive(z, q, bits1, bits2)
    s = _sum4(q)
    log_s = np.log(s)
    h0 = 0.0
    h1 = 0.0
    h2 = 0.0
    h3 = 0.0
    for t in range(k):
        q[t] = q[t] / s
    t = 0
    while t + 4 <= k:
        h0 += q[t] * (z[t] - log_s) if q[t] > 0.0 else 0.0
        h1 += q[t + 1] * (z[t + 1] - log_s) if q[t + 1] > 0.0 else 0.0
        h2 += q[t + 2] * (z[t + 2] - log_s) if q[t + 2] > 0.0 else 0.0
        h3 += q[t + 3] * (z[t + 3] - log_s) if q[t + 3] > 0.0 else 0.0
        t += 4
    while t < k:
        h0 += q[t] * (z[t] - log_s) if q[t] > 0.0 else 0.0
        t += 1
    return (h0 + h1) + (h2 + h3), True


@njit(cache=True, fastmath=False)
def _accumulate(x, g, p_x, p_y_given_x, Q, acc_pt, acc_pty):
    """acc_pt[t] += p(x') q(t|x'), acc_pty[y, t] += p(x', y) q(t|x') for x' = x..x+g-1
    (encoder rows Q[0..g-1]), in order of x'. Four rows per pass over the accumulators."""
    k = acc_pt.size
    m = p_y_given_x.shape[1]
    if g == 4:
        p0 = p_x[x]
        p1 = p_x[x + 1]
        p2 = p_x[x + 2]
        p3 = p_x[x + 3]
        q0 = Q[0]
        q1 = Q[1]
        q2 = Q[2]
        q3 = Q[3]
        for t in range(k):
            acc_pt[t] = (((acc_pt[t] + p0 * q0[t]) + p1 * q1[t]) + p2 * q2[t]) + p3 * q3[t]
        for y in range(m):
            # p(x, y) = p(x) p(y|x); q is finite, so a zero weight adds exactly 0
            w0 = p0 * p_y_given_x[x, y]
            w1 = p1 * p_y_given_x[x + 1, y]
            w2 = p2 * p_y_given_x[x + 2, y]
            w3 = p3 * p_y_given_x[x + 3, y]
            if w0 > 0.0 or w1 > 0.0 or w2 > 0.0 or w3 > 0.0:
                row = acc_pty[y]
                for t in range(k):
                    row[t] = (((row[t] + q0[t] * w0) + q1[t] * w1) + q2[t] * w2) + q3[t] * w3
        return
    for j in range(g):
        px = p_x[x + j]
        q = Q[j]
        for t in range(k):
            acc_pt[t] += px * q[t]
        for y in range(m):
            w = px * p_y_given_x[x + j, y]
            if w > 0.0:
                row = acc_pty[y]
                for t in range(k):
                    row[t] += q[t] * w


@njit(cache=True, fastmath=False)
def _block_pass(lo, hi, p_x, p_y_given_x, log_p_t, log_dec_T, beta, alpha,
                acc_pt, acc_pty):
    """Accumulate rows lo..hi-1 into acc_pt (k,) and acc_pty (m, k), both zeroed here.
    Returns (sum_x p(x) sum_t q log q, status)."""
    k = log_p_t.size
    m = p_y_given_x.shape[1]
    acc_pt[:] = 0.0
    acc_pty[:, :] = 0.0
    nz = np.empty(m, dtype=np.int64)
    acc_neg_h = 0.0
    if alpha == 0.0:  # hard assignment: one-hot at the first argmax
        z = np.empty(k)
        for x in range(lo, hi):
            px = p_x[x]
            _row_logits(x, p_y_given_x, log_p_t, log_dec_T, beta, z, nz)
            idx = _first_argmax(z)
            if idx < 0:
                return acc_neg_h, _BAD_ROW
            acc_pt[idx] += px  # p(x) * 1.0
            for y in range(m):
                c = p_y_given_x[x, y]
                if c > 0.0:
                    acc_pty[y, idx] += px * c
        return acc_neg_h, _OK
    Z = np.empty((4, k))
    Q = np.empty((4, k))
    bits1 = np.empty(k, dtype=np.int64)
    bits2 = np.empty(k, dtype=np.int64)
    x = lo
    while x < hi:
        g = min(4, hi - x)
        for j in range(g):
            _row_logits(x + j, p_y_given_x, log_p_t, log_dec_T, beta, Z[j], nz)
            neg_h, ok = _row_softmax(Z[j], alpha, Q[j], bits1, bits2)
            if not ok:
                return acc_neg_h, _BAD_ROW
            acc_neg_h += p_x[x + j] * neg_h
        _accumulate(x, g, p_x, p_y_given_x, Q, acc_pt, acc_pty)
        x += g
    return acc_neg_h, _OK


@njit(cache=True, fastmath=False)
def _block_bounds(n, n_blocks):
    bounds = np.empty(n_blocks + 1, dtype=np.int64)
    for b in range(n_blocks + 1):
        bounds[b] = (b * n) // n_blocks
    return bounds


@njit(cache=True, fastmath=False)
def _reduce_and_update(acc_pt, acc_pty, acc_neg_h, block_status, log_p_t, log_p_y_given_t,
                       p_t, p_ty, beta, alpha):
    """Reduce the per-block accumulators in block order into p(t) and p(t, y); compute the
    residual against the old state, overwrite the state (log_p_t, log_p_y_given_t) with the
    new one and return (residual, H(T) - alpha H(T|X) + beta H(Y|T) in nats, status)."""
    n_blocks, m, k = acc_pty.shape
    neg_h_total = 0.0
    for b in range(n_blocks):
        if block_status[b] != _OK:
            return np.inf, 0.0, block_status[b]
        neg_h_total += acc_neg_h[b]
    p_t[:] = 0.0
    p_ty[:, :] = 0.0
    for b in range(n_blocks):
        for t in range(k):
            p_t[t] += acc_pt[b, t]
        for y in range(m):
            for t in range(k):
                p_ty[t, y] += acc_pty[b, y, t]
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
        else:  # an emptied cluster: p(t) = 0, decoder undefined
            log_p_t[t] = -np.inf
            for y in range(m):
                log_p_y_given_t[t, y] = -np.inf
    h_t_given_x = -neg_h_total
    return residual, h_t - alpha * h_t_given_x + beta * h_y_given_t, _OK


# The two drivers differ only in prange vs range over the blocks: a parallel region costs
# a wake-up of the thread pool per iteration, which small problems cannot amortise.
@njit(parallel=True, cache=True, fastmath=False)
def _iterate_parallel(p_x, p_y_given_x, log_p_t_in, log_p_y_given_t_in, beta, alpha,
                      max_iter, tol, n_blocks):
    n, m = p_y_given_x.shape
    k = log_p_t_in.size
    log_p_t = log_p_t_in.copy()
    log_p_y_given_t = log_p_y_given_t_in.copy()
    history = np.empty(max_iter)
    residual = np.inf
    n_iter = 0
    status = _OK
    bounds = _block_bounds(n, n_blocks)
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
        residual, objective, status = _reduce_and_update(
            acc_pt, acc_pty, acc_neg_h, block_status, log_p_t, log_p_y_given_t, p_t, p_ty,
            beta, alpha)
        if status != _OK:
            break
        history[it] = objective
        n_iter = it + 1
        if residual <= tol:
            break
    return log_p_t, log_p_y_given_t, n_iter, residual, history[:n_iter].copy(), status


@njit(cache=True, fastmath=False)
def _iterate_serial(p_x, p_y_given_x, log_p_t_in, log_p_y_given_t_in, beta, alpha,
                    max_iter, tol):
    n, m = p_y_given_x.shape
    k = log_p_t_in.size
    log_p_t = log_p_t_in.copy()
    log_p_y_given_t = log_p_y_given_t_in.copy()
    history = np.empty(max_iter)
    residual = np.inf
    n_iter = 0
    status = _OK
    acc_pt = np.empty((1, k))
    acc_pty = np.empty((1, m, k))
    acc_neg_h = np.empty(1)
    block_status = np.empty(1, dtype=np.int64)
    log_dec_T = np.empty((m, k))
    p_t = np.empty(k)
    p_ty = np.empty((k, m))
    for it in range(max_iter):
        _transposed_log_decoder(log_p_y_given_t, log_dec_T)
        acc_neg_h[0], block_status[0] = _block_pass(0, n, p_x, p_y_given_x, log_p_t,
                                                    log_dec_T, beta, alpha, acc_pt[0],
                                                    acc_pty[0])
        residual, objective, status = _reduce_and_update(
            acc_pt, acc_pty, acc_neg_h, block_status, log_p_t, log_p_y_given_t, p_t, p_ty,
            beta, alpha)
        if status != _OK:
            break
        history[it] = objective
        n_iter = it + 1
        if residual <= tol:
            break
    return log_p_t, log_p_y_given_t, n_iter, residual, history[:n_iter].copy(), status


@njit(cache=True, fastmath=False)
def _encoder_rows(lo, hi, p_y_given_x, log_p_t, log_dec_T, beta, alpha, q_out):
    """Rows lo..hi-1 of the encoder into q_out (zeroed by the caller); returns status."""
    k = log_p_t.size
    m = p_y_given_x.shape[1]
    z = np.empty(k)
    q = np.empty(k)
    bits1 = np.empty(k, dtype=np.int64)
    bits2 = np.empty(k, dtype=np.int64)
    nz = np.empty(m, dtype=np.int64)
    for x in range(lo, hi):
        _row_logits(x, p_y_given_x, log_p_t, log_dec_T, beta, z, nz)
        if alpha == 0.0:
            idx = _first_argmax(z)
            if idx < 0:
                return _BAD_ROW
            q_out[x, idx] = 1.0
        else:
            _, ok = _row_softmax(z, alpha, q, bits1, bits2)
            if not ok:
                return _BAD_ROW
            for t in range(k):
                q_out[x, t] = q[t]
    return _OK


@njit(parallel=True, cache=True, fastmath=False)
def _encoder_parallel(p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha, n_blocks):
    n, m = p_y_given_x.shape
    k = log_p_t.size
    q_out = np.zeros((n, k))
    log_dec_T = np.empty((m, k))
    _transposed_log_decoder(log_p_y_given_t, log_dec_T)
    bounds = _block_bounds(n, n_blocks)
    block_status = np.empty(n_blocks, dtype=np.int64)
    for b in prange(n_blocks):
        block_status[b] = _encoder_rows(bounds[b], bounds[b + 1], p_y_given_x, log_p_t,
                                        log_dec_T, beta, alpha, q_out)
    status = _OK
    for b in range(n_blocks):
        if block_status[b] != _OK:
            status = block_status[b]
    return q_out, status


@njit(cache=True, fastmath=False)
def _encoder_serial(p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha):
    n, m = p_y_given_x.shape
    q_out = np.zeros((n, log_p_t.size))
    log_dec_T = np.empty((m, log_p_t.size))
    _transposed_log_decoder(log_p_y_given_t, log_dec_T)
    status = _encoder_rows(0, n, p_y_given_x, log_p_t, log_dec_T, beta, alpha, q_out)
    return q_out, status


# --------------------------------------------------------------------------------------
# Python entry points
# --------------------------------------------------------------------------------------
#: rows are split into blocks of at least this much work, n_rows * k * (m + 16) (the same
#: rule as the C++ backend); smaller problems run serially, without the thread pool
MIN_BLOCK_WORK = 200_000


def _requested_blocks(n_threads) -> int:
    """One row block per requested thread (None: numba's default thread count)."""
    if n_threads is None:
        return int(numba.config.NUMBA_NUM_THREADS)
    try:
        n = operator.index(n_threads)
    except TypeError:
        raise TypeError(f"n_threads must be a positive integer or None (got {n_threads!r})") from None
    if n < 1:
        raise ValueError(f"n_threads must be a positive integer or None (got {n_threads!r})")
    return n


def _n_blocks(n_threads, n: int, k: int, m: int) -> int:
    """Blocks actually used: one per requested thread, but no more than the rows and no
    block below MIN_BLOCK_WORK. Depends only on the arguments, never on scheduling."""
    work = n * k * (m + 16)
    return max(1, min(_requested_blocks(n_threads), n, work // MIN_BLOCK_WORK))


@contextmanager
def _threads(n_blocks: int):
    """Run numba's parallel regions on min(n_blocks, available) threads, then restore."""
    previous = numba.get_num_threads()
    numba.set_num_threads(min(n_blocks, int(numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _as_f64(a, ndim: int, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array (got shape {arr.shape})")
    return arr


def _state(p_y_given_x, log_p_t, log_p_y_given_t):
    p_y_given_x = _as_f64(p_y_given_x, 2, "p_y_given_x")
    log_p_t = _as_f64(log_p_t, 1, "log_p_t")
    log_p_y_given_t = _as_f64(log_p_y_given_t, 2, "log_p_y_given_t")
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
    ``n_threads`` None uses numba's default thread count (``NUMBA_NUM_THREADS``).
    Raises FloatingPointError when an x has no admissible cluster.
    """
    p_y_given_x, log_p_t, log_p_y_given_t = _state(p_y_given_x, log_p_t, log_p_y_given_t)
    p_x = _as_f64(p_x, 1, "p_x")
    if p_x.size != p_y_given_x.shape[0]:
        raise ValueError(f"p_x must have n_x = {p_y_given_x.shape[0]} entries (got {p_x.size})")
    max_iter = operator.index(max_iter)
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0 (got {max_iter})")
    (n, m), k = p_y_given_x.shape, log_p_t.size
    n_blocks = _n_blocks(n_threads, n, k, m)
    args = (p_x, p_y_given_x, log_p_t, log_p_y_given_t, float(beta), float(alpha),
            max_iter, float(tol))
    if n_blocks == 1:
        out = _iterate_serial(*args)
    else:
        with _threads(n_blocks):
            out = _iterate_parallel(*args, n_blocks)
    out_t, out_ty, n_iter, residual, history, status = out
    if status != _OK:
        raise FloatingPointError(_NO_CLUSTER)
    return out_t, out_ty, int(n_iter), float(residual), history


def encoder(p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha, n_threads=None):
    """The encoder q(t|x), shape (n, k), that one iteration builds from the given state."""
    p_y_given_x, log_p_t, log_p_y_given_t = _state(p_y_given_x, log_p_t, log_p_y_given_t)
    (n, m), k = p_y_given_x.shape, log_p_t.size
    n_blocks = _n_blocks(n_threads, n, k, m)
    args = (p_y_given_x, log_p_t, log_p_y_given_t, float(beta), float(alpha))
    if n_blocks == 1:
        q, status = _encoder_serial(*args)
    else:
        with _threads(n_blocks):
            q, status = _encoder_parallel(*args, n_blocks)
    if status != _OK:
        raise FloatingPointError(_NO_CLUSTER)
    return q
