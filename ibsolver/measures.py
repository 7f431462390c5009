"""Information measures of discrete distributions, in bits.

Conventions: 0 log 0 = 0; a KL divergence with q(i) = 0 < p(i) is +inf.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike
from scipy.sparse.linalg import svds

from ._tables import dense
from ._validation import check_joint, column_sums, row_sums

LN2 = np.log(2.0)


def _xlogy(x, y):
    """x * log(y) with 0 * log(0) = 0 (natural log)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(y), 0.0)  # 0 * log(0) = nan there, replaced


def entropy(p: ArrayLike, axis: int | None = None) -> float | np.ndarray:
    """Shannon entropy H(p) in bits of a probability vector (or of every slice along ``axis``).

    ``p`` need not be normalised along an axis when ``axis`` is given; it is used as is.
    """
    p = np.asarray(p, dtype=np.float64)
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError("p must be finite and non-negative")
    return -_xlogy(p, p).sum(axis=axis) / LN2 + 0.0  # no -0.0


def kl_divergence(p: ArrayLike, q: ArrayLike) -> float:
    """Kullback-Leibler divergence D(p || q) in bits; +inf where q = 0 < p."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape (got {p.shape} and {q.shape})")
    if np.any((q == 0) & (p > 0)):
        return float("inf")
    return float((_xlogy(p, p) - _xlogy(p, q)).sum() / LN2)


def mutual_information(p_xy: ArrayLike, *, normalize: bool = False) -> float:
    """I(X;Y) in bits of a joint table p(x, y) (dense, or scipy.sparse: its non-zeros)."""
    p_xy = check_joint(p_xy, normalize=normalize, keep_sparse=True)
    if scipy.sparse.issparse(p_xy):
        coo = scipy.sparse.coo_matrix(p_xy)
        p_x, p_y = row_sums(p_xy), column_sums(p_xy)
        val = (_xlogy(coo.data, coo.data) - _xlogy(coo.data, p_x[coo.row] * p_y[coo.col])).sum()
        return float(max(val / LN2, 0.0))
    p_x = p_xy.sum(axis=1, keepdims=True)
    p_y = p_xy.sum(axis=0, keepdims=True)
    val = (_xlogy(p_xy, p_xy) - _xlogy(p_xy, p_x * p_y)).sum() / LN2
    return float(max(val, 0.0))


def conditional_entropy(p_xy: ArrayLike, *, normalize: bool = False) -> float:
    """H(Y|X) in bits of a joint table p(x, y) (dense, or scipy.sparse: its non-zeros)."""
    p_xy = check_joint(p_xy, normalize=normalize, keep_sparse=True)
    if scipy.sparse.issparse(p_xy):
        coo = scipy.sparse.coo_matrix(p_xy)
        p_x = row_sums(p_xy)
        val = -(_xlogy(coo.data, coo.data) - _xlogy(coo.data, p_x[coo.row])).sum()
        return float(max(val / LN2, 0.0))
    p_x = p_xy.sum(axis=1, keepdims=True)
    return float(max(-(_xlogy(p_xy, p_xy) - _xlogy(p_xy, p_x)).sum() / LN2, 0.0))


def maximal_correlation(p_xy: ArrayLike, *, normalize: bool = False) -> float:
    """Hirschfeld-Gebelein-Renyi maximal correlation of X and Y.

    The second singular value s2 of B[x, y] = p(x, y) / sqrt(p(x) p(y)); the largest is 1.
    The trivial IB solution loses local stability at beta = 1 / s2**2.
    Returns 0 when X or Y takes a single value.
    """
    return _maximal_correlation(check_joint(p_xy, normalize=normalize))


#: tables with more rows and columns than this get their two largest singular values by
#: Lanczos iterations (scipy's svds, products with the table) rather than a full SVD
#: (min(n, m)^2 max(n, m) flops: 7 s for a 20000 x 2000 table)
DENSE_SVD_MAX = 512


def _arpack_start(size: int) -> np.ndarray:
    """The start vector of every ARPACK call (eigsh, eigs, svds): seeded, since ARPACK's
    own random start changes from call to call, and with it the last bits of the answer
    (enough to make two runs of one curve diverge)."""
    return np.random.default_rng(0).normal(size=size)


def _maximal_correlation(p_xy) -> float:
    """maximal_correlation of a checked table, dense or scipy sparse."""
    if min(p_xy.shape) < 2:
        return 0.0
    return float(min(second_singular(p_xy, vector=False)[0], 1.0))


def second_singular(p_xy: np.ndarray | scipy.sparse.spmatrix, *, vector: bool = True
                    ) -> tuple[float, np.ndarray | None]:
    """(s2, its right singular vector or None) of B[x, y] = p(x, y) / sqrt(p(x) p(y)) for
    a checked table with at least two rows and columns, dense or scipy sparse: by a full
    SVD up to DENSE_SVD_MAX rows or columns where the table is dense, else by Lanczos (a
    sparse table is never made dense, except with two rows or columns)."""
    scale_x = 1.0 / np.sqrt(row_sums(p_xy))
    scale_y = 1.0 / np.sqrt(column_sums(p_xy))
    if min(p_xy.shape) == 2 or (min(p_xy.shape) <= DENSE_SVD_MAX
                                and not scipy.sparse.issparse(p_xy)):
        b = dense(p_xy)
        if not vector:
            return float(np.linalg.svd(scale_x[:, None] * b * scale_y[None, :],
                                       compute_uv=False)[1]), None
        _, s, vt = np.linalg.svd(scale_x[:, None] * b * scale_y[None, :], full_matrices=False)
        return float(s[1]), vt[1]
    b = scipy.sparse.diags(scale_x) @ scipy.sparse.csr_matrix(p_xy) @ scipy.sparse.diags(scale_y)
    if not vector:
        s = svds(b, k=2, v0=_arpack_start(min(p_xy.shape)), tol=0,
                 return_singular_vectors=False)
        return float(np.sort(s)[0]), None
    _, s, vt = svds(b, k=2, v0=_arpack_start(min(p_xy.shape)), tol=0)
    second = int(np.argmin(s))
    return float(s[second]), vt[second]


def joint_from_counts(counts: ArrayLike) -> np.ndarray:
    """p(x, y) from a table of co-occurrence counts (rows x, columns y).

    Rows or columns with no counts are an error (drop those symbols first).
    """
    return check_joint(counts, name="counts", normalize=True)


def joint_from_samples(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical p(x, y) from paired samples.

    Returns ``(p_xy, x_values, y_values)``: the table and the sorted distinct values that
    index its rows and columns. Samples may be any hashable-sortable labels; a 2-D ``x``
    is treated as one symbol per row (e.g. binary patterns).
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of samples (got {x.shape[0]} and {y.shape[0]})")
    if x.shape[0] == 0:
        raise ValueError("x and y must contain at least one sample (got 0)")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (got shape {y.shape})")
    if x.ndim == 1:
        x_values, xi = np.unique(x, return_inverse=True)
    elif x.ndim == 2:
        x_values, xi = np.unique(x, axis=0, return_inverse=True)
    else:
        raise ValueError(f"x must be 1-D or 2-D (got shape {x.shape})")
    y_values, yi = np.unique(y, return_inverse=True)
    counts = np.zeros((len(x_values), len(y_values)))
    np.add.at(counts, (xi.ravel(), yi.ravel()), 1.0)
    return counts / counts.sum(), x_values, y_values


def encoder_information(p_xy: ArrayLike, encoder: ArrayLike) -> dict:
    """I(X;T), I(T;Y), H(T) and H(T|X), in bits, of an encoder p(t|x) applied to p(x, y).

    Works for any (n_x, n_t) row-stochastic ``encoder``, optimal or not (a binned network
    layer is one). ``p_xy`` and ``encoder`` are validated.
    """
    from ._validation import check_encoder

    p_xy = check_joint(p_xy)
    q = check_encoder(encoder, n_x=p_xy.shape[0])
    return _encoder_information(p_xy, q)


def _encoder_information(p_xy, q: np.ndarray) -> dict:
    """encoder_information without the checks; ``p_xy`` may be a scipy sparse matrix."""
    p_x = np.asarray(p_xy.sum(axis=1)).ravel()
    p_y = np.asarray(p_xy.sum(axis=0)).ravel()
    p_t = p_x @ q
    p_ty = q.T @ p_xy
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = q / p_t[None, :]
        joint_ratio = p_ty / np.outer(p_t, p_y)
    i_xt = float((p_x[:, None] * _xlogy(q, ratio)).sum() / LN2)
    i_ty = float(_xlogy(p_ty, joint_ratio).sum() / LN2)
    h_t = float(entropy(p_t)) + 0.0  # no -0.0 for a single cluster
    h_t_given_x = float((p_x[:, None] * -_xlogy(q, q)).sum() / LN2)
    return {"i_xt": max(i_xt, 0.0), "i_ty": max(i_ty, 0.0), "h_t": h_t,
            "h_t_given_x": max(h_t_given_x, 0.0)}
