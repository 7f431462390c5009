"""numba backend: the fused Blahut-Arimoto IB iteration, compiled and threaded.

Same signatures and semantics as :mod:`ibsolver.backends.numpy_backend` (the
specification); results agree with it to round-off. The whole iteration loop, including
the ``tol`` stop, runs inside compiled code. Rows x are split into one contiguous block
per thread (prange); every block keeps its own accumulators for p(t), p(t, y) and
sum_x p(x) sum_t q log q, and the blocks are reduced in a fixed order afterwards, so the
result depends on ``n_threads`` only through round-off (and not at all on scheduling).
Problems too small to amortise waking the thread pool run in one block, serially, and
``n_threads=None`` measures whether threads pay (:mod:`ibsolver.backends._threads`).

Per x the kernel loops only over the y with p(y|x) > 0, so ``0 * -inf`` never happens;
a cluster with p(y|t) = 0 for such a y gets logit -inf (it cannot explain x).
``fastmath`` stays off: the kernel relies on IEEE -inf arithmetic. Speed comes from
loops LLVM can vectorise as written: explicit FMAs, a polynomial exp (1 ulp), several
rows per pass over the accumulators, interleaved partial sums for the reductions.

Importing this module raises ImportError when numba is missing; that is how the backend
registry knows the backend is unavailable.
"""
from __future__ import annotations

import operator
from contextlib import contextmanager

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic
from numpy.typing import ArrayLike

from . import Iterated
from ._threads import ThreadPolicy

NAME = "numba"

#: p(y|x) is a dense array (see the C++ backend's READS_CSR)
READS_CSR = False

_NO_CLUSTER = "an x has no admissible cluster (all logits are -inf)"
_OK = 0
_BAD_ROW = 1  # status: some x has all logits -inf


# --------------------------------------------------------------------------------------
# compiled kernels
# --------------------------------------------------------------------------------------
# --- two LLVM primitives numba does not expose -----------------------------------------
@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c with one rounding (llvm.fma). Exact IEEE semantics, not a fast-math
    licence: inf and -inf behave as in a * b + c."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _bits_as_double(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


# --- per-row pieces -------------------------------------------------------------------
@njit(cache=True, fastmath=False)
def _decoder_tables(log_p_y_given_t, fin_T, pen_T, bad_y):
    """Transposed decoder tables for the logits, built once per iteration:
    fin_T[y, t] = log p(y|t), 0 where p(y|t) = 0 (row m: zeros, a pad row);
    pen_T[y, t] = -inf where p(y|t) = 0 (any non-finite entry, as in numpy), else 0;
    bad_y[:n_bad] = the y with some p(y|t) = 0. Returns n_bad."""
    k, m = log_p_y_given_t.shape
    n_bad = 0
    for y in range(m):
        bad = False
        for t in range(k):
            v = log_p_y_given_t[t, y]
            if np.isfinite(v):
                fin_T[y, t] = v
                pen_T[y, t] = 0.0
            else:
                fin_T[y, t] = 0.0
                pen_T[y, t] = -np.inf
                bad = True
        if bad:
            bad_y[n_bad] = y
            n_bad += 1
    fin_T[m, :] = 0.0
    return n_bad


@njit(cache=True, fastmath=False)
def _pair_pass(z0, z1, z2, z3, r, s, c0, c1, c2, c3, d0, d1, d2, d3, first, last,
               log_p_t, beta, inv_scale):
    """For four rows j: a_j[t] = z_j[t] (0 when ``first``) + c_j r[t] + d_j s[t]; stores
    a_j, or (log p(t) + beta a_j) * inv_scale when ``last``. r, s are finite, so a zero
    coefficient adds exactly 0."""
    k = r.size
    if first and last:
        for t in range(k):
            rt = r[t]
            st = s[t]
            lp = log_p_t[t]
            z0[t] = (lp + beta * _fma(d0, st, c0 * rt)) * inv_scale
            z1[t] = (lp + beta * _fma(d1, st, c1 * rt)) * inv_scale
            z2[t] = (lp + beta * _fma(d2, st, c2 * rt)) * inv_scale
            z3[t] = (lp + beta * _fma(d3, st, c3 * rt)) * inv_scale
    elif first:
        for t in range(k):
            rt = r[t]
            st = s[t]
            z0[t] = _fma(d0, st, c0 * rt)
            z1[t] = _fma(d1, st, c1 * rt)
            z2[t] = _fma(d2, st, c2 * rt)
            z3[t] = _fma(d3, st, c3 * rt)
    elif last:
        for t in range(k):
            rt = r[t]
            st = s[t]
            lp = log_p_t[t]
            z0[t] = (lp + beta * _fma(d0, st, _fma(c0, rt, z0[t]))) * inv_scale
            z1[t] = (lp + beta * _fma(d1, st, _fma(c1, rt, z1[t]))) * inv_scale
            z2[t] = (lp + beta * _fma(d2, st, _fma(c2, rt, z2[t]))) * inv_scale
            z3[t] = (lp + beta * _fma(d3, st, _fma(c3, rt, z3[t]))) * inv_scale
    else:
        for t in range(k):
            rt = r[t]
            st = s[t]
            z0[t] = _fma(d0, st, _fma(c0, rt, z0[t]))
            z1[t] = _fma(d1, st, _fma(c1, rt, z1[t]))
            z2[t] = _fma(d2, st, _fma(c2, rt, z2[t]))
            z3[t] = _fma(d3, st, _fma(c3, rt, z3[t]))


@njit(cache=True, fastmath=False)
def _group_logits(x, g, p_y_given_x, log_p_t, fin_T, pen_T, bad_y, n_bad, beta, inv_scale,
                  Z, ys, C):
    """Z[j, t] for the g <= 4 rows x + j (rows j >= g of Z are scratch):

        (log p(t) + beta * sum_{y: p(y|x) > 0} p(y|x) log p(y|t)) * inv_scale   (beta > 0)
        log p(t) * inv_scale                                                     (beta = 0)

    and -inf where p(y|t) = 0 for some y with p(y|x) > 0. inv_scale is 1 / alpha (1 for
    hard assignments). The sum runs over y in increasing order, two y per pass over the
    four rows; a y where the row's p(y|x) is 0 adds exactly 0, so each row's logits do
    not depend on which rows share its group. ys: int64 (m + 2,), C: (4, m + 2) scratch."""
    k = log_p_t.size
    m = p_y_given_x.shape[1]
    if beta == 0.0:
        for j in range(g):
            for t in range(k):
                Z[j, t] = log_p_t[t] * inv_scale
        return
    count = 0
    for y in range(m):
        used = False
        for j in range(g):
            if p_y_given_x[x + j, y] > 0.0:
                used = True
        if used:
            ys[count] = y
            for j in range(4):
                C[j, count] = p_y_given_x[x + j, y] if j < g else 0.0
            count += 1
    if count % 2 == 1 or count == 0:  # pad with the zero row m
        ys[count] = m
        C[:, count] = 0.0
        count += 1
        if count == 1:
            ys[count] = m
            C[:, count] = 0.0
            count += 1
    z0 = Z[0]
    z1 = Z[1]
    z2 = Z[2]
    z3 = Z[3]
    for i in range(0, count, 2):
        _pair_pass(z0, z1, z2, z3, fin_T[ys[i]], fin_T[ys[i + 1]],
                   C[0, i], C[1, i], C[2, i], C[3, i],
                   C[0, i + 1], C[1, i + 1], C[2, i + 1], C[3, i + 1],
                   i == 0, i + 2 == count, log_p_t, beta, inv_scale)
    # clusters that cannot explain x: p(y|t) = 0 for a y with p(y|x) > 0
    for b in range(n_bad):
        y = bad_y[b]
        pen = pen_T[y]
        for j in range(g):
            if p_y_given_x[x + j, y] > 0.0:
                zj = Z[j]
                for t in range(k):
                    zj[t] += pen[t]  # -inf + anything finite or -inf is -inf


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
def _max8(z):
    """max(z) with eight interleaved partial maxima; -inf when every entry is -inf."""
    k = z.size
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = -np.inf
    t = 0
    while t + 8 <= k:
        m0 = z[t] if z[t] > m0 else m0
        m1 = z[t + 1] if z[t + 1] > m1 else m1
        m2 = z[t + 2] if z[t + 2] > m2 else m2
        m3 = z[t + 3] if z[t + 3] > m3 else m3
        m4 = z[t + 4] if z[t + 4] > m4 else m4
        m5 = z[t + 5] if z[t + 5] > m5 else m5
        m6 = z[t + 6] if z[t + 6] > m6 else m6
        m7 = z[t + 7] if z[t + 7] > m7 else m7
        t += 8
    while t < k:
        m0 = z[t] if z[t] > m0 else m0
        t += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@njit(cache=True, fastmath=False)
def _sum8(a):
    k = a.size
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    t = 0
    while t + 8 <= k:
        s0 += a[t]
        s1 += a[t + 1]
        s2 += a[t + 2]
        s3 += a[t + 3]
        s4 += a[t + 4]
        s5 += a[t + 5]
        s6 += a[t + 6]
        s7 += a[t + 7]
        t += 8
    while t < k:
        s0 += a[t]
        t += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


# exp(d) for d <= 0 (d = -inf allowed) in a form LLVM vectorises without fastmath:
# d = k ln2 + r, |r| <= ln2 / 2, exp(r) by its degree-13 Taylor polynomial (truncation
# < 1e-17 relative) in FMA Horner form, times 2^k built from exponent bits in two halves
# so that results down to the denormals (and 0 below exp(-745.13)) come out right.
# Max error 1 ulp (checked against libm over [-746, 0]).
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
def _shifted_exp(z, zmax, q):
    """z[t] <- max(z[t] - zmax, -746) and q[t] = exp(z[t] - zmax) (0 below exp(-745.13)).
    The clamp changes z only where q = 0, so sum_t q (z - c) needs no 0 * -inf guard."""
    for t in range(z.size):
        v = z[t] - zmax
        v = v if v > _EXP_FLOOR else _EXP_FLOOR
        z[t] = v
        kf = _fma(v, _LOG2E, _ROUND) - _ROUND
        r = _fma(kf, -_LN2_LO, _fma(kf, -_LN2_HI, v))
        p = _fma(_C13, r, _C12)
        p = _fma(p, r, _C11)
        p = _fma(p, r, _C10)
        p = _fma(p, r, _C9)
        p = _fma(p, r, _C8)
        p = _fma(p, r, _C7)
        p = _fma(p, r, _C6)
        p = _fma(p, r, _C5)
        p = _fma(p, r, _C4)
        p = _fma(p, r, _C3)
        p = _fma(p, r, _C2)
        p = _fma(p, r, 1.0)
        p = _fma(p, r, 1.0)
        ki = np.int64(kf)
        k1 = ki >> 1
        q[t] = (p * _bits_as_double((k1 + 1023) << 52)) * _bits_as_double((ki - k1 + 1023) << 52)


@njit(cache=True, fastmath=False)
def _row_softmax(z, q):
    """q = softmax(z) (z = logit / alpha, alpha > 0); z is used as scratch. Returns
    (sum_t q log q in nats, 0 log 0 = 0; ok), ok False when every z is -inf."""
    k = z.size
    zmax = _max8(z)
    if not zmax > -np.inf:
        return 0.0, False
    _shifted_exp(z, zmax, q)  # z <- max(z - zmax, -746)
    s = _sum8(q)
    log_s = np.log(s)
    inv_s = 1.0 / s  # a multiply per entry instead of a divide (1 ulp from e / s)
    # log q = (z - zmax) - log s where q > 0; where q = 0, z is finite and the term is 0
    for t in range(k):
        qt = q[t] * inv_s
        q[t] = qt
        z[t] = qt * (z[t] - log_s)
    return _sum8(z), True


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
            a = _fma(p0, q0[t], acc_pt[t])
            acc_pt[t] = _fma(p3, q3[t], _fma(p2, q2[t], _fma(p1, q1[t], a)))
        # p(x, y) = p(x) p(y|x); q is finite, so a zero weight adds exactly 0. Two y per
        # pass share the loads of q; a y with no weight in any of the four rows is skipped.
        y = 0
        while y < m:
            w0 = p0 * p_y_given_x[x, y]
            w1 = p1 * p_y_given_x[x + 1, y]
            w2 = p2 * p_y_given_x[x + 2, y]
            w3 = p3 * p_y_given_x[x + 3, y]
            if not (w0 > 0.0 or w1 > 0.0 or w2 > 0.0 or w3 > 0.0):
                y += 1
                continue
            yb = y + 1  # the next y with some weight, if any
            while yb < m and not (p_y_given_x[x, yb] > 0.0 or p_y_given_x[x + 1, yb] > 0.0
                                  or p_y_given_x[x + 2, yb] > 0.0
                                  or p_y_given_x[x + 3, yb] > 0.0):
                yb += 1
            row = acc_pty[y]
            if yb == m:
                for t in range(k):
                    a = _fma(q0[t], w0, row[t])
                    row[t] = _fma(q3[t], w3, _fma(q2[t], w2, _fma(q1[t], w1, a)))
                break
            v0 = p0 * p_y_given_x[x, yb]
            v1 = p1 * p_y_given_x[x + 1, yb]
            v2 = p2 * p_y_given_x[x + 2, yb]
            v3 = p3 * p_y_given_x[x + 3, yb]
            rowb = acc_pty[yb]
            for t in range(k):
                a = _fma(q0[t], w0, row[t])
                row[t] = _fma(q3[t], w3, _fma(q2[t], w2, _fma(q1[t], w1, a)))
                b = _fma(q0[t], v0, rowb[t])
                rowb[t] = _fma(q3[t], v3, _fma(q2[t], v2, _fma(q1[t], v1, b)))
            y = yb + 1
        return
    for j in range(g):
        px = p_x[x + j]
        q = Q[j]
        for t in range(k):
            acc_pt[t] = _fma(px, q[t], acc_pt[t])
        for y in range(m):
            w = px * p_y_given_x[x + j, y]
            if w > 0.0:
                row = acc_pty[y]
                for t in range(k):
                    row[t] = _fma(q[t], w, row[t])


@njit(cache=True, fastmath=False)
def _block_pass(lo, hi, p_x, p_y_given_x, log_p_t, fin_T, pen_T, bad_y, n_bad, beta, alpha,
                acc_pt, acc_pty, q_out):
    """One iteration's work on rows lo..hi-1: accumulate into acc_pt (k,) and acc_pty
    (m, k), both zeroed here, and return (sum_x p(x) sum_t q log q, status). With a
    non-empty q_out (n, k), zeroed by the caller, write the encoder rows there instead
    and accumulate nothing."""
    k = log_p_t.size
    m = p_y_given_x.shape[1]
    encode_only = q_out.shape[0] > 0
    acc_pt[:] = 0.0
    acc_pty[:, :] = 0.0
    Z = np.empty((4, k))
    Q = np.empty((4, k))
    ys = np.empty(m + 2, dtype=np.int64)
    C = np.empty((4, m + 2))
    hard = alpha == 0.0
    inv_alpha = 1.0 if hard else 1.0 / alpha
    divide = not np.isfinite(inv_alpha)  # alpha below ~1e-308: divide instead
    acc_neg_h = 0.0
    x = lo
    while x < hi:
        g = min(4, hi - x)
        _group_logits(x, g, p_y_given_x, log_p_t, fin_T, pen_T, bad_y, n_bad, beta,
                      1.0 if divide else inv_alpha, Z, ys, C)
        for j in range(g):
            px = p_x[x + j]
            if hard:  # one-hot at the first argmax
                idx = _first_argmax(Z[j])
                if idx < 0:
                    return acc_neg_h, _BAD_ROW
                if encode_only:
                    q_out[x + j, idx] = 1.0
                    continue
                acc_pt[idx] += px  # p(x) * 1.0
                for y in range(m):
                    c = p_y_given_x[x + j, y]
                    if c > 0.0:
                        acc_pty[y, idx] += px * c
            else:
                if divide:
                    Z[j][:] = Z[j] / alpha
                neg_h, ok = _row_softmax(Z[j], q_out[x + j] if encode_only else Q[j])
                if not ok:
                    return acc_neg_h, _BAD_ROW
                acc_neg_h += px * neg_h
        if not (hard or encode_only):
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


@njit(parallel=True, cache=True, fastmath=False)
def _run(p_x, p_y_given_x, log_p_t_in, log_p_y_given_t_in, beta, alpha, max_iter, tol,
         n_blocks, q_out):
    """Iterate from the given state (copied) up to max_iter times or until the residual is
    <= tol; or, with a non-empty q_out, only write the encoder the state gives into it.
    Returns (log_p_t, log_p_y_given_t, n_iter, residual, history, status).

    One driver for every case keeps the JIT compile (and the on-disk cache) to a single
    specialisation. n_blocks == 1 runs serially: a parallel region wakes the thread pool,
    which small problems cannot amortise."""
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
    fin_T = np.empty((m + 1, k))
    pen_T = np.empty((m, k))
    bad_y = np.empty(m, dtype=np.int64)
    p_t = np.empty(k)
    p_ty = np.empty((k, m))
    encode_only = q_out.shape[0] > 0
    for it in range(1 if encode_only else max_iter):
        n_bad = _decoder_tables(log_p_y_given_t, fin_T, pen_T, bad_y)
        if n_blocks == 1:
            acc_neg_h[0], block_status[0] = _block_pass(  # bounds: int64, not Literal[0]
                bounds[0], bounds[1], p_x, p_y_given_x, log_p_t, fin_T, pen_T, bad_y, n_bad, beta, alpha,
                acc_pt[0], acc_pty[0], q_out)
        else:
            for b in prange(n_blocks):
                neg_h_b, status_b = _block_pass(
                    bounds[b], bounds[b + 1], p_x, p_y_given_x, log_p_t, fin_T, pen_T, bad_y,
                    n_bad, beta, alpha, acc_pt[b], acc_pty[b], q_out)
                acc_neg_h[b] = neg_h_b
                block_status[b] = status_b
        if encode_only:
            for b in range(n_blocks):
                if block_status[b] != _OK:
                    status = block_status[b]
            break
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


# --------------------------------------------------------------------------------------
# Python entry points
# --------------------------------------------------------------------------------------
#: rows are split into blocks of at least this much work, n_rows * k * (m + 16) (the same
#: rule as the C++ backend); smaller problems run serially, without the thread pool
MIN_BLOCK_WORK = 200_000


#: how n_threads=None picks between one thread and numba's default count
POLICY = ThreadPolicy(lambda: int(numba.config.NUMBA_NUM_THREADS))


def _requested_blocks(n_threads) -> int:
    """One row block per requested thread (None: numba's default thread count)."""
    if n_threads is None:
        return int(numba.config.NUMBA_NUM_THREADS)
    message = f"n_threads must be a positive integer or None (got {n_threads!r})"
    try:
        n = operator.index(n_threads)
    except TypeError:
        raise TypeError(message) from None
    if n < 1:
        raise ValueError(message)
    return n


def _n_blocks(n_threads, n: int, k: int, m: int) -> int:
    """Blocks actually used: one per requested thread, but no more than the rows and no
    block below MIN_BLOCK_WORK. Depends only on the arguments, never on scheduling."""
    work = n * k * (m + 16)
    return max(1, min(_requested_blocks(n_threads), n, work // MIN_BLOCK_WORK))


_NO_ENCODER = np.zeros((0, 0))


def _call(n_blocks, p_x, p_y_given_x, log_p_t, log_p_y_given_t, beta, alpha, max_iter, tol,
          q_out):
    """_run on n_blocks row blocks; numba's pool runs min(n_blocks, available) threads
    for the call and is restored afterwards."""
    args = (p_x, p_y_given_x, log_p_t, log_p_y_given_t, float(beta), float(alpha), max_iter,
            float(tol), n_blocks, q_out)
    try:
        if n_blocks == 1:
            return _run(*args)
        with _threads(n_blocks):
            return _run(*args)
    except SystemError as exc:
        # a signal handler that raised while the compiled loop ran (Ctrl-C, or the CLI's
        # SIGTERM) reaches us as numba's SystemError "returned a result with an exception
        # set", the KeyboardInterrupt some causes down: give the caller the interrupt it
        # handles (a partial curve saved)
        cause = exc.__cause__ or exc.__context__
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise KeyboardInterrupt from None
        raise


@contextmanager
def _threads(n_blocks: int):
    """Run numba's parallel regions on min(n_blocks, available) threads, then restore."""
    previous = numba.get_num_threads()
    numba.set_num_threads(min(n_blocks, int(numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _as_f64(a: ArrayLike, ndim: int, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array (got shape {arr.shape})")
    return arr


def _state(p_y_given_x: ArrayLike, log_p_t: ArrayLike,
           log_p_y_given_t: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p_y_given_x = _as_f64(p_y_given_x, 2, "p_y_given_x")
    log_p_t = _as_f64(log_p_t, 1, "log_p_t")
    log_p_y_given_t = _as_f64(log_p_y_given_t, 2, "log_p_y_given_t")
    if log_p_y_given_t.shape != (log_p_t.size, p_y_given_x.shape[1]):
        raise ValueError(
            f"log_p_y_given_t must have shape (k, n_y) = ({log_p_t.size}, {p_y_given_x.shape[1]}) "
            f"(got {log_p_y_given_t.shape})"
        )
    return p_y_given_x, log_p_t, log_p_y_given_t


def run_iterations(p_x: ArrayLike, p_y_given_x: ArrayLike, log_p_t: ArrayLike,
                   log_p_y_given_t: ArrayLike, beta: float, alpha: float, max_iter: int,
                   tol: float, n_threads: int | None = None) -> Iterated:
    """Iterate from the given state; an :class:`ibsolver.backends.Iterated`.

    See :func:`ibsolver.backends.numpy_backend.run_iterations`; ``history`` is in nats.
    ``n_threads`` None: one thread or numba's default thread count (``NUMBA_NUM_THREADS``),
    whichever the calls measure faster on problems large enough to consider threads (see
    :mod:`ibsolver.backends._threads`); an int is used as given.
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

    def call(threads):
        out = _call(_n_blocks(threads, n, k, m), p_x, p_y_given_x, log_p_t, log_p_y_given_t,
                    beta, alpha, max_iter, tol, _NO_ENCODER)
        return out, out[2]

    if n_threads is None:
        out = POLICY.timed(n, k, m, call)
    else:
        out = call(n_threads)[0]
    out_t, out_ty, n_iter, residual, history, status = out
    if status != _OK:
        raise FloatingPointError(_NO_CLUSTER)
    return Iterated(out_t, out_ty, int(n_iter), float(residual), history)


def encoder(p_y_given_x: ArrayLike, log_p_t: ArrayLike, log_p_y_given_t: ArrayLike,
            beta: float, alpha: float, n_threads: int | None = None) -> np.ndarray:
    """The encoder q(t|x), shape (n, k), that one iteration builds from the given state."""
    p_y_given_x, log_p_t, log_p_y_given_t = _state(p_y_given_x, log_p_t, log_p_y_given_t)
    (n, m), k = p_y_given_x.shape, log_p_t.size
    q = np.zeros((n, k))
    # p(x) only weighs the (skipped) accumulation; any positive vector does

    def call(threads):
        return _call(_n_blocks(threads, n, k, m), np.ones(n), p_y_given_x, log_p_t,
                     log_p_y_given_t, beta, alpha, 1, 0.0, q)[-1], 1

    status = POLICY.timed(n, k, m, call) if n_threads is None else call(n_threads)[0]
    if status != _OK:
        raise FloatingPointError(_NO_CLUSTER)
    return q
