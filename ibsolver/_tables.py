"""Tables p(x, y) or p(y|x) as dense arrays or scipy CSR matrices (``Problem.joint``,
``Problem.rows``): the few entrywise operations the solver needs, in either form. Products
with dense arrays (``table @ v``, ``v @ table``) need nothing here: both forms have them."""
from __future__ import annotations

import numpy as np
import scipy.sparse


def dense(p) -> np.ndarray:
    """``p`` as a dense array (a sparse matrix is expanded)."""
    return p.toarray() if scipy.sparse.issparse(p) else p


def pattern(p):
    """1.0 where ``p`` > 0, else 0, in ``p``'s own form."""
    if scipy.sparse.issparse(p):
        out = p.copy()
        out.data = (out.data > 0).astype(np.float64)
        return out
    return (p > 0).astype(np.float64)


def squared(p):
    """``p`` squared entrywise, in its own form."""
    return p.power(2) if scipy.sparse.issparse(p) else p ** 2


def row_groups(p) -> np.ndarray:
    """A group label per row, equal for equal rows, labels 0, 1, ... (as np.unique's
    return_inverse numbers them for a dense table: rows in sorted order)."""
    if not scipy.sparse.issparse(p):
        return np.unique(p, axis=0, return_inverse=True)[1].ravel()
    p = scipy.sparse.csr_matrix(p)
    p.sum_duplicates()
    p.eliminate_zeros()
    keys = [(p.indices[a:b].tobytes(), p.data[a:b].tobytes())
            for a, b in zip(p.indptr[:-1], p.indptr[1:])]
    labels: dict = {}
    return np.array([labels.setdefault(key, len(labels)) for key in keys], dtype=np.int64)


def group_sums(table, group: np.ndarray):
    """(groups, m): the sum of the rows of ``table`` in each group (labels 0, 1, ...), in
    ``table``'s own form."""
    n = group.size
    onehot = scipy.sparse.csr_matrix((np.ones(n), (group, np.arange(n))),
                                     shape=(int(group.max()) + 1, n))
    return onehot @ table


def nearest_rows(p, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest (Euclidean) of ``centres`` (k, m, dense) for every row of ``p``,
    from |r - c|^2 = |r|^2 - 2 r.c + |c|^2: one product with the table, no n x k x m array."""
    dist = -2.0 * (p @ centres.T) + np.sum(centres ** 2, axis=1)[None, :]
    return np.argmin(dist, axis=1)


def row_distances(p, row: int) -> np.ndarray:
    """Euclidean distance of every row of ``p`` from its row ``row``."""
    r = dense(p[row]).ravel()
    sq = np.asarray(squared(p).sum(axis=1)).ravel()
    return np.sqrt(np.maximum(sq - 2.0 * (p @ r) + r @ r, 0.0))


def rows_divided(p, totals: np.ndarray):
    """Each row of ``p`` divided by its entry of ``totals``, in ``p``'s own form (CSR for a
    sparse ``p``)."""
    if scipy.sparse.issparse(p):
        out = scipy.sparse.csr_matrix(scipy.sparse.diags(1.0 / totals) @ p)
        out.sort_indices()  # (the kernel reads each row's columns in order)
        return out
    return p / totals[:, None]
