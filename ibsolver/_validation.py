"""Input checks done once, at the public boundary.

Every message names the argument, what it must be and what was received. Nothing
that fails here reaches a backend.
"""
from __future__ import annotations

import logging
import numbers
from typing import Literal, overload

import numpy as np
import scipy.sparse

logger = logging.getLogger(__name__)

#: tolerance on sum(p) == 1 for probability vectors
SUM_TOL = 1e-9
#: relative tolerance on sum(p_xy) == 1: a table written in float32 (or as text with 6-7
#: significant digits) sums to 1 only within this; such a table is renormalised exactly,
#: anything further off is an error unless normalize=True
JOINT_SUM_TOL = 1e-6


def _format_sum(total: float) -> str:
    """The total with enough digits to show how far it is from 1 (never '1' for a total != 1)."""
    if total == 1.0 or not np.isfinite(total) or total == 0.0:
        return f"{total:.6g}"
    digits = max(6, int(np.ceil(-np.log10(abs(total - 1.0)))) + 2)
    return f"{total:.{min(digits, 17)}g}"


#: the most entries (n_x * n_y) of a scipy.sparse table that is made dense (512 MB), where a
#: function needs the dense form (the IB solvers keep a sparse table sparse)
MAX_DENSE_ENTRIES = 2 ** 26


def densified(table, *, name: str) -> np.ndarray:
    """A scipy.sparse ``table`` as a dense array, or a ValueError naming its size where
    that would exceed MAX_DENSE_ENTRIES."""
    n_x, n_y = table.shape
    if n_x * n_y > MAX_DENSE_ENTRIES:
        raise ValueError(
            f"{name} is a sparse table of shape {table.shape} with {table.nnz} non-zeros; "
            f"its dense form ({n_x * n_y * 8 / 2**30:.1f} GiB) exceeds the {MAX_DENSE_ENTRIES} "
            "entries this function makes dense (ibsolver.solve and ib_curve keep a sparse "
            "table sparse)")
    logger.info("%s: sparse table of shape %s (%d non-zeros) made dense", name, table.shape,
                table.nnz)
    return table.toarray()


@overload
def check_joint(p_xy, *, name: str = ..., normalize: bool = ..., drop_empty: bool = ...,
                normalize_hint: str = ..., keep_sparse: Literal[False] = ...) -> np.ndarray: ...


@overload
def check_joint(p_xy, *, name: str = ..., normalize: bool = ..., drop_empty: bool = ...,
                normalize_hint: str = ..., keep_sparse: Literal[True]
                ) -> np.ndarray | scipy.sparse.csr_matrix: ...


def check_joint(p_xy, *, name: str = "p_xy", normalize: bool = False, drop_empty: bool = False,
                normalize_hint: str = "pass normalize=True to rescale",
                keep_sparse: bool = False) -> np.ndarray | scipy.sparse.csr_matrix:
    """Return p_xy as a C-contiguous float64 2-D array that sums to 1.

    Integer and non-contiguous arrays are converted. Negative, NaN or infinite entries
    raise. A total within ``JOINT_SUM_TOL`` (relative) of 1 is renormalised exactly (logged
    at debug level); a total further off raises unless ``normalize``. All-zero rows or
    columns (x or y of probability 0) raise, unless ``drop_empty``: then they are dropped
    (logged at info level), which changes the table's shape. ``normalize_hint`` is the fix
    the error message names (the CLI names its ``--normalize``). A scipy.sparse table is
    made dense (see :func:`densified`), unless ``keep_sparse``: then it is returned as a
    float64 CSR matrix without explicit zeros, checked the same way.
    """
    return _checked_joint(p_xy, name=name, normalize=normalize, drop_empty=drop_empty,
                          normalize_hint=normalize_hint, keep_sparse=keep_sparse)[0]


def _checked_joint(p_xy, *, name, normalize, drop_empty, normalize_hint, keep_sparse=False):
    """check_joint's work: ``(table, kept_rows, kept_cols)``, masks over the given rows and
    columns (all True unless ``drop_empty`` dropped some)."""
    if hasattr(p_xy, "detach"):  # a torch tensor: leave torch out of ibsolver
        p_xy = p_xy.detach().cpu().numpy()
    if scipy.sparse.issparse(p_xy) and keep_sparse:
        arr = _checked_sparse(p_xy, name=name)
    else:
        arr = _checked_dense(densified(p_xy, name=name) if scipy.sparse.issparse(p_xy)
                             else p_xy, name=name)
    kept_rows, kept_cols = np.ones(arr.shape[0], dtype=bool), np.ones(arr.shape[1], dtype=bool)
    if drop_empty:
        arr, rows, cols = drop_empty_margins(arr, name=name)
        if arr.shape[0] * arr.shape[1] == 0:
            raise ValueError(f"{name} must have some non-zero entry (got all zeros)")
        kept_rows[:], kept_cols[:] = False, False
        kept_rows[rows], kept_cols[cols] = True, True
    zero_rows = np.flatnonzero(row_sums(arr) == 0)
    if zero_rows.size:
        raise ValueError(
            f"{name} has all-zero rows (x with p(x) = 0) at indices {zero_rows[:10].tolist()}; "
            "drop them before solving"
        )
    zero_cols = np.flatnonzero(column_sums(arr) == 0)
    if zero_cols.size:
        raise ValueError(
            f"{name} has all-zero columns (y with p(y) = 0) at indices {zero_cols[:10].tolist()}; "
            "drop them before solving"
        )
    total = float(arr.sum())
    if not np.isfinite(total):
        raise ValueError(f"{name} must have a finite sum (got {total}); rescale it first")
    if abs(total - 1.0) > JOINT_SUM_TOL and not normalize:
        raise ValueError(f"{name} must sum to 1 (got {_format_sum(total)}); {normalize_hint}")
    if total != 1.0:
        if not normalize:
            logger.debug("%s sums to %r (within %g of 1): renormalised", name, total,
                         JOINT_SUM_TOL)
        arr = arr / total
    return arr, kept_rows, kept_cols


def _check_dtype(dtype, *, name: str) -> None:
    if dtype.kind == "O" or not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array (got dtype {dtype})")
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{name} must be real (got dtype {dtype})")


def _check_entries(values: np.ndarray, index, *, name: str) -> None:
    """Finite and non-negative ``values``; ``index(i)`` is the table index of values[i]."""
    for bad, what in ((~np.isfinite(values), "finite"), (values < 0, "non-negative")):
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must be {what} (got {values[i]} at index "
                             f"{tuple(int(j) for j in index(i))})")


def _checked_dense(p_xy, *, name: str) -> np.ndarray:
    """A numeric 2-D table as C-contiguous float64, its entries finite and non-negative."""
    arr = np.asarray(p_xy)
    _check_dtype(arr.dtype, name=name)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D table p(x, y) of shape (n_x, n_y) (got shape {arr.shape})"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column (got shape {arr.shape})")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    _check_entries(arr.ravel(), lambda i: np.unravel_index(i, arr.shape), name=name)
    return arr


def _checked_sparse(p_xy, *, name: str) -> scipy.sparse.csr_matrix:
    """A scipy.sparse table as a float64 CSR matrix (a copy: duplicates summed, explicit
    zeros removed), its entries finite and non-negative."""
    _check_dtype(p_xy.dtype, name=name)
    if len(p_xy.shape) != 2:
        raise ValueError(f"{name} must be a 2-D table p(x, y) of shape (n_x, n_y) (got shape "
                         f"{p_xy.shape})")
    if p_xy.shape[0] < 1 or p_xy.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column (got shape "
                         f"{p_xy.shape})")
    csr = scipy.sparse.csr_matrix(p_xy, dtype=np.float64, copy=True)
    csr.sum_duplicates()
    _check_entries(csr.data, lambda i: (np.searchsorted(csr.indptr, i, side="right") - 1,
                                        csr.indices[i]), name=name)
    csr.eliminate_zeros()
    return csr


def row_sums(table) -> np.ndarray:
    """The row sums of a dense or scipy.sparse table, as a 1-D array."""
    return np.asarray(table.sum(axis=1)).ravel()


def column_sums(table) -> np.ndarray:
    """The column sums of a dense or scipy.sparse table, as a 1-D array."""
    return np.asarray(table.sum(axis=0)).ravel()


def check_joint_kept(p_xy, *, name: str = "p_xy", normalize: bool = False,
                     normalize_hint: str = "pass normalize=True to rescale"):
    """:func:`check_joint` with all-zero rows and columns dropped (logged at info level):
    ``(table, kept_rows, kept_cols)``, the last two boolean masks over the given rows and
    columns, so results can be put back in the user's shape. A table left with one row or
    one column is fine (its IB is trivial: I(X;Y) = 0). A scipy.sparse table stays sparse
    (CSR)."""
    return _checked_joint(p_xy, name=name, normalize=normalize, drop_empty=True,
                          normalize_hint=normalize_hint, keep_sparse=True)


def drop_empty_margins(arr, *, name: str = "p_xy"):
    """(table without its all-zero rows and columns, kept row indices, kept column indices);
    the table dense or CSR.

    x or y of probability 0 take no part in the IB; each drop is logged at info level.
    """
    rows = np.flatnonzero(row_sums(arr) > 0)
    cols = np.flatnonzero(column_sums(arr) > 0)
    for what, kept, n in (("rows", rows, arr.shape[0]), ("columns", cols, arr.shape[1])):
        if kept.size < n:
            dropped = np.setdiff1d(np.arange(n), kept)
            more = "" if dropped.size <= 10 else f" (and {dropped.size - 10} more)"
            logger.info("%s: dropped %d all-zero %s (probability 0) at indices %s%s", name,
                        dropped.size, what, dropped[:10].tolist(), more)
    if rows.size < arr.shape[0] or cols.size < arr.shape[1]:
        arr = (arr[rows][:, cols] if scipy.sparse.issparse(arr)
               else np.ascontiguousarray(arr[np.ix_(rows, cols)]))
    return arr, rows, cols


def check_distribution(p, *, name: str = "p") -> np.ndarray:
    """A 1-D probability vector (non-negative, finite, sums to 1)."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D probability vector (got shape {arr.shape})")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and non-negative (got {arr[~np.isfinite(arr) | (arr < 0)][:3]})")
    total = arr.sum()
    if abs(total - 1.0) > SUM_TOL:
        raise ValueError(f"{name} must sum to 1 (got {total:.6g})")
    return arr


def check_real(value, *, name: str, low: float | None = None, high: float | None = None,
               low_inclusive: bool = True) -> float:
    """A finite real scalar within [low, high] (or (low, high] if not low_inclusive)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number (got {value!r} of type {type(value).__name__})")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite (got {v})")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low} (got {v})")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high} (got {v})")
    return v


def check_int(value, *, name: str, low: int | None = None, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer (got {value!r} of type {type(value).__name__})")
    v = int(value)
    if low is not None and v < low:
        raise ValueError(f"{name} must be >= {low} (got {v})")
    return v


def check_encoder(encoder, *, n_x: int, name: str = "encoder") -> np.ndarray:
    """An (n_x, n_t) row-stochastic matrix p(t|x); rows are renormalised within 1e-6."""
    arr = np.asarray(encoder)
    if arr.ndim != 2 or arr.shape[0] != n_x or arr.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n_x={n_x}, n_t) (got shape {arr.shape})")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    rows = arr.sum(axis=1)
    worst = int(np.argmax(np.abs(rows - 1.0)))
    if abs(rows[worst] - 1.0) > 1e-6:
        raise ValueError(
            f"{name} rows must sum to 1 (row {worst} sums to {rows[worst]:.6g})"
        )
    return arr / rows[:, None]


def check_random_state(random_state) -> np.random.Generator:
    """None, an int seed or a Generator -> a Generator (never the global RNG)."""
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(random_state, bool):
            raise TypeError(f"random_state must be None, an int or a numpy Generator (got {random_state!r})")
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise TypeError(
        f"random_state must be None, an int or a numpy Generator (got {type(random_state).__name__})"
    )


def check_choice(value, *, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)} (got {value!r})")
    return value
