"""Solve the (generalised) Information Bottleneck at one beta."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from types import ModuleType

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from . import _validation as v
from ._blas import single_threaded_blas
from . import newton
from ._schedule import CHUNK, NEWTON, POLISH, SHORTCUT, SQUAREM, STOP, Outcome, Schedule
from ._tables import dense, group_sums, pattern, row_groups, rows_divided
from .accelerate import squarem_iterations
from .backends import Iterated, get_backend
from .bifurcation import _first_instability, invasion_rate, invasion_starts, split_cluster, unstable_clusters
from .exceptions import ConvergenceWarning
from .measures import LN2, _encoder_information, entropy
from .results import IBResult

logger = logging.getLogger(__name__)

DEFAULT_TOL = 1e-10
DEFAULT_MAX_ITER = 10_000
#: default cap on the number of clusters when n_clusters is None
MAX_DEFAULT_CLUSTERS = 1024
#: clusters lighter than this are dropped (they carry no information worth the cost)
DROP_MASS = 1e-14
#: columns on which pairs of decoders are screened before they are compared in full
SCREEN_COLUMNS = 8
#: n_x * n_y * n_clusters below which SQUAREM's per-step Python overhead outweighs it (a
#: backend with compiled SQUAREM has none)
ACCELERATE_MIN_WORK = 20_000
#: a lightest cluster whose log-mass falls faster than this per iteration may be dying
DYING_LOG_RATE = 5e-6
#: a converged cluster with beta lambda_2 above 1 + this is split (see _split_unstable)
SPLIT_MARGIN = 1e-9
#: a converged solution on which a new cluster's invasion rate exceeds 1 + this is not a
#: local minimum: that cluster is added (see _grow_invaders). Not less: a cluster growing
#: by a factor 1 + eps per iteration takes ~1/eps iterations to settle, for a gain ~eps
INVADE_MARGIN = 1e-3
#: mass given to an invading cluster, and how far (max-norm) its decoder must lie from the
#: solution's to be one
INVADER_MASS = 1e-3
INVADER_DISTANCE = 1e-3
#: rows of p(y|x) (the most invasive at the start) from which the invasion rate is ascended
INVADER_STARTS = 2
#: tables with at least SPARSE_MIN_ENTRIES entries of which at most SPARSE_DENSITY are
#: non-zero are also kept as CSR (Problem.joint, Problem.rows): at 0.5% density a product
#: with the encoder is some 70x faster that way (20000 x 2000, 64 clusters)
SPARSE_DENSITY = 0.25
SPARSE_MIN_ENTRIES = 100_000
#: a start's decoders are mixed with this much of p(y) where they have zeros (see unbarred)
UNBAR_MIX = 1e-6
#: iterations a shortcut trial may take (it starts next to its fixed point)
SHORTCUT_MAX_ITER = 5 * CHUNK
#: for alpha < 1, the most finite moves (merges, classes moved out) tried from a solution
#: (see _reach_optimum); more are not tried
MAX_MOVES = 256


def _worth_sparse(size: int, nnz: int) -> bool:
    """Whether a table of ``size`` entries, ``nnz`` of them non-zero, is kept as CSR."""
    return size >= SPARSE_MIN_ENTRIES and nnz <= SPARSE_DENSITY * size


@dataclass(frozen=True)
class Problem:
    """A validated joint distribution with the derived quantities every solver needs.

    ``p_xy`` and ``p_y_given_x`` are dense arrays, or CSR matrices where the table came
    sparse and is sparse enough (see :meth:`from_joint`); p(x) and p(y) are always dense.
    ``joint`` and ``rows`` are p(x, y) and p(y|x) in the form products with them are
    fastest in: CSR where at most SPARSE_DENSITY of the entries are non-zero (a product
    with k columns then costs nnz * k, not n_x * n_y * k), else dense.
    """

    p_xy: np.ndarray | scipy.sparse.csr_matrix
    p_x: np.ndarray
    p_y_given_x: np.ndarray | scipy.sparse.csr_matrix
    p_y: np.ndarray

    @cached_property
    def sparse(self) -> bool:
        return scipy.sparse.issparse(self.p_xy) or _worth_sparse(self.p_xy.size,
                                                                 np.count_nonzero(self.p_xy))

    @cached_property
    def joint(self) -> np.ndarray | scipy.sparse.csr_matrix:
        return scipy.sparse.csr_matrix(self.p_xy) if self.sparse else self.p_xy

    @cached_property
    def rows(self) -> np.ndarray | scipy.sparse.csr_matrix:
        return scipy.sparse.csr_matrix(self.p_y_given_x) if self.sparse else self.p_y_given_x

    @cached_property
    def dense_rows(self) -> np.ndarray:
        """p(y|x) dense, for what reads no CSR (Newton; a backend without a CSR kernel)."""
        return dense(self.p_y_given_x)

    @property
    def dense_rows_allowed(self) -> bool:
        """Whether :attr:`dense_rows` may be made: a table that came sparse only up to
        MAX_DENSE_ENTRIES entries (Newton runs only then)."""
        return not scipy.sparse.issparse(self.p_y_given_x) or \
            self.p_xy.shape[0] * self.p_xy.shape[1] <= v.MAX_DENSE_ENTRIES

    @cached_property
    def first_instability(self) -> float:
        """1 / s2^2, where the one-cluster solution loses local stability."""
        return _first_instability(self.joint)

    def kernel_rows(self, kernel: ModuleType) -> np.ndarray | scipy.sparse.csr_matrix:
        """p(y|x) as ``kernel`` takes it: ``rows`` where the backend reads CSR, else dense
        (a ValueError naming the backend where a sparse table is too large for that)."""
        if kernel.READS_CSR:
            return self.rows
        if not self.dense_rows_allowed:
            raise ValueError(
                f"backend={kernel.NAME!r} reads p(y|x) dense, and this sparse table of shape "
                f"{self.p_xy.shape} would exceed {v.MAX_DENSE_ENTRIES} entries dense; "
                "backend='cpp' works on its non-zeros")
        return self.dense_rows

    @classmethod
    def from_joint(cls, p_xy: ArrayLike, *, normalize: bool = False) -> "Problem":
        """The problem of a table p(x, y), checked. A scipy.sparse table stays sparse where
        :func:`_worth_sparse` (else it is made dense): memory then grows with its
        non-zeros, not with n_x * n_y."""
        p_xy = v.check_joint(p_xy, normalize=normalize, keep_sparse=True)
        if scipy.sparse.issparse(p_xy):
            csr = scipy.sparse.csr_matrix(p_xy)
            if not _worth_sparse(csr.shape[0] * csr.shape[1], csr.nnz):
                p_xy = v.densified(csr, name="p_xy")
        return cls._of(p_xy, v.column_sums(p_xy))

    @classmethod
    def _of(cls, p_xy, p_y: np.ndarray) -> "Problem":
        if scipy.sparse.issparse(p_xy):
            p_xy = scipy.sparse.csr_matrix(p_xy)
            p_xy.sort_indices()  # (the kernel reads each row's columns in order)
        p_x = v.row_sums(p_xy)
        return cls(p_xy, p_x, rows_divided(p_xy, p_x), p_y)

    @property
    def h_y(self) -> float:
        return float(entropy(self.p_y))

    def sufficient_classes(self) -> np.ndarray:
        """Class index per x: x with equal p(y|x) (to 1e-12) share a class."""
        rows = self.rows
        if scipy.sparse.issparse(rows):
            rows = rows.copy()
            rows.data = np.round(rows.data, 12)
            return row_groups(rows)
        return row_groups(np.round(rows, 12))

    def n_distinct_rows(self) -> int:
        """Number of distinct conditionals p(y|x): the clusters the beta -> inf optimum needs."""
        return int(self.sufficient_classes().max()) + 1

    def compressed(self) -> tuple["Problem", np.ndarray]:
        """The problem on the minimal sufficient statistic S of X for Y, and s(x).

        The IB curve of (S, Y) is that of (X, Y): a T built from X can be replaced by one
        built from S with the same I(T;Y) and no more I(X;T), and after one BA step the
        encoder depends on x only through p(y|x). An encoder of S maps back by q(t|s(x)).
        """
        group = self.sufficient_classes()
        p_sy = group_sums(self.joint, group)
        if not scipy.sparse.issparse(self.p_xy):
            p_sy = dense(p_sy)
        return Problem._of(p_sy, self.p_y), group


def user_rows(group: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """For each of the user's rows, its row of the solved problem: ``group`` (one entry
    per kept row) at the positions ``kept`` marks (a boolean mask over the user's rows),
    -1 at rows dropped because p(x) = 0."""
    rows = np.full(kept.size, -1, dtype=np.int64)
    rows[kept] = group
    return rows


def in_user_rows(encoder: np.ndarray, p_t: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``encoder`` (one row per row of the solved problem) in the user's rows (``rows``
    from :func:`user_rows`). An x of probability 0 takes no part in the IB; its row is
    p(t), what the encoder assigns an x it knows nothing about."""
    return np.vstack([encoder, p_t[None, :]])[rows]


@dataclass
class State:
    """Decoder state (natural logs): log p(t), shape (k,), and log p(y|t), shape (k, m)."""

    log_p_t: np.ndarray
    log_p_y_given_t: np.ndarray

    @classmethod
    def from_encoder(cls, problem: Problem, q: np.ndarray) -> "State":
        p_t = problem.p_x @ q
        keep = p_t > 0
        p_ty = q[:, keep].T @ problem.joint
        return cls.from_joint(p_t[keep], np.asarray(p_ty))

    @classmethod
    def from_joint(cls, p_t: np.ndarray, p_ty: np.ndarray) -> "State":
        with np.errstate(divide="ignore"):
            log_p_t = np.log(p_t)
            log_p_y_given_t = np.log(p_ty) - log_p_t[:, None]
        return cls(log_p_t, log_p_y_given_t)

    @property
    def n_clusters(self) -> int:
        return self.log_p_t.size

    def prune(self, merge_tol: float) -> bool:
        """Drop clusters lighter than DROP_MASS and merge clusters whose decoders agree
        within ``merge_tol``. Returns whether anything changed."""
        p_t = np.exp(self.log_p_t)
        p_y_given_t = np.exp(self.log_p_y_given_t)
        keep = p_t > DROP_MASS
        if not keep.any():  # cannot happen for a valid state; keep the heaviest
            keep[np.argmax(p_t)] = True
        p_t, p_y_given_t = p_t[keep], p_y_given_t[keep]
        group = _coincident_groups(p_y_given_t, merge_tol)
        n_groups = int(group.max()) + 1 if group.size else 0
        changed = (not keep.all()) or n_groups < p_t.size
        if n_groups < p_t.size:
            merged_t = np.zeros(n_groups)
            merged_ty = np.zeros((n_groups, p_y_given_t.shape[1]))
            np.add.at(merged_t, group, p_t)
            np.add.at(merged_ty, group, p_t[:, None] * p_y_given_t)
            new = State.from_joint(merged_t, merged_ty)
            self.log_p_t, self.log_p_y_given_t = new.log_p_t, new.log_p_y_given_t
        elif changed:
            self.log_p_t = self.log_p_t[keep]
            self.log_p_y_given_t = self.log_p_y_given_t[keep]
        return changed


def _coincident_groups(points: np.ndarray, tol: float) -> np.ndarray:
    """Group label per row, rows within ``tol`` (max-norm, transitively) sharing a group.

    Groups are numbered in order of their first member, so cluster order is kept.
    """
    k, m = points.shape
    parent = np.arange(k)
    if k <= 1:
        return parent
    # the usual case, every row its own group, is settled on the column that spreads the
    # rows most: rows within tol in max-norm are within tol there too (a sort is O(k log k);
    # the pair search below took 0.1 to 0.6 ms even where it found nothing, at every prune)
    column = np.sort(points[:, np.argmax(points.max(axis=0) - points.min(axis=0))])
    if (column[1:] - column[:-1]).min() > tol:
        return parent
    # a k x k table is cheaper than a tree for few rows, or many columns (where a tree
    # degrades to comparing everything)
    if k <= 64 or (m > SCREEN_COLUMNS and k * k * SCREEN_COLUMNS <= 2 ** 22):
        pairs = _close_pairs(points, tol)
    else:
        pairs = cKDTree(points).query_pairs(r=tol, p=np.inf, output_type="ndarray")
    if len(pairs) == 0:  # the usual case: every row its own group
        return parent

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    parent = np.array([find(i) for i in range(k)])
    _, group = np.unique(parent, return_inverse=True)  # roots are the first members
    return group.ravel()


def _close_pairs(points: np.ndarray, tol: float) -> np.ndarray:
    """Pairs (i < j) of rows within ``tol`` in max-norm. Two such rows are within tol in
    every column: the pairs are screened on the SCREEN_COLUMNS columns that spread the rows
    most, and only those left are compared in full (k x k x m differences took 40 ms a
    prune at k = 64, m = 1000)."""
    screen = points
    if points.shape[1] > SCREEN_COLUMNS:
        screen = points[:, np.argsort(np.ptp(points, axis=0))[-SCREEN_COLUMNS:]]
    close = np.max(np.abs(screen[:, None, :] - screen[None, :, :]), axis=2) <= tol
    pairs = np.argwhere(np.triu(close, 1))
    if screen is not points and len(pairs):
        diff = np.max(np.abs(points[pairs[:, 0]] - points[pairs[:, 1]]), axis=1)
        pairs = pairs[diff <= tol]
    return pairs


def unbarred(problem: Problem, state: State) -> State:
    """A copy of ``state`` whose decoders are mixed with UNBAR_MIX of p(y) where one has a
    zero.

    p(y|t) = 0 bars every x with p(y|x) > 0 from t for good: q(t|x) is then exactly 0, so
    BA keeps the zero, and the cluster can neither take in nor merge with rows outside its
    support. Starts inherit such bars from one-hot encoders (the reverse branch's finest
    state) and from q(t|x) underflowing at large beta. On the sparse-512x16 suite table the
    reverse branch kept 148 clusters at beta = 1.47 (2 once unbarred), and on a 23 x 3
    stress problem the curve sat 8.2e-6 bit above a 6-cluster optimum BA reaches from any
    unbarred start. A bar that is a local optimum stays one: BA takes the mixture out again.
    """
    log_dec = state.log_p_y_given_t
    if np.all(np.isfinite(log_dec)):
        return State(state.log_p_t.copy(), log_dec.copy())
    dec = (1.0 - UNBAR_MIX) * np.exp(log_dec) + UNBAR_MIX * problem.p_y[None, :]
    return State(state.log_p_t.copy(), np.log(dec))


def random_encoder(n_x: int, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """A random soft encoder: Dirichlet(1) rows."""
    return rng.dirichlet(np.ones(n_clusters), size=n_x)


@single_threaded_blas
def solve(p_xy: ArrayLike | scipy.sparse.spmatrix, beta: float, *, n_clusters: int | None = None,
          alpha: float = 1.0, init: ArrayLike | None = None, backend: str = "auto",
          tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER,
          n_threads: int | None = None,
          random_state: int | np.random.Generator | None = None, normalize: bool = False,
          merge_tol: float = 1e-7, accelerate: bool = False) -> IBResult:
    """Solve the Information Bottleneck at one trade-off parameter beta.

    Minimises ``H(T) - alpha H(T|X) - beta I(T;Y)`` over encoders p(t|x). With ``alpha=1``
    this is the IB Lagrangian ``I(X;T) - beta I(T;Y)``; ``alpha=0`` is the deterministic
    IB (hard assignments). All information in the result is in bits; beta is the true
    multiplier (it does not depend on the unit).

    The fused Blahut-Arimoto iteration reaches a local optimum monotonically; the checks
    of :func:`_reach_optimum` then leave the local optima it is known to stop at (always,
    whatever ``accelerate`` says): for ``alpha=1`` clusters unstable to splitting are split
    and clusters that would grow are added, each followed by solving on; for ``alpha<1``
    the solution is compared with the one reached from the finest encoder (one cluster per
    distinct p(y|x)), then with those reached after merging two clusters or moving one
    class of x into a cluster of its own; the lowest Lagrangian is kept.

    Parameters
    ----------
    p_xy : (n_x, n_y) array_like
        Joint distribution of X and Y. Integer or non-contiguous arrays are converted.
    beta : float >= 0
        Trade-off parameter (1e8 and 0 are fine).
    n_clusters : int >= 1, optional
        Number of clusters to start from when ``init`` is None. Default: the number of
        distinct rows p(y|x) (enough for every beta), capped at 1024.
    alpha : float >= 0
        Generalised IB parameter: 1 is the IB, 0 the deterministic IB.
    init : (n_x, k) array_like, optional
        Encoder to warm start from (rows are renormalised). Overrides ``n_clusters``.
    backend : {"auto", "cpp", "numba", "numpy"}
        "auto" takes the fastest available; the result records which ran.
    tol : float
        Stop when max |change of p(t, y)| between iterations is <= tol.
    max_iter : int
        Iteration budget of each solve (the start, each start compared for ``alpha<1``);
        if exhausted, ``converged=False`` and a ConvergenceWarning.
    n_threads : int, optional
        Threads for the C++ and numba backends (None: all cores, or OMP_NUM_THREADS).
    random_state : None, int or numpy.random.Generator
        Seeds the random initial encoder (ignored with ``init``).
    normalize : bool
        Rescale ``p_xy`` to sum to 1 instead of raising.
    merge_tol : float
        Clusters whose decoders p(y|t) agree within this (max-norm) are merged.
    accelerate : bool
        Speed only: after a first chunk of plain iterations, take safeguarded Newton steps
        on the fixed point when the decoder state is small (k * n_y <= 600, see
        :mod:`ibsolver.newton`), SQUAREM extrapolation otherwise. Both only go downhill
        and stop at a fixed point of the same map; they pay off near phase transitions,
        where plain BA needs thousands of iterations.

    Notes
    -----
    The result's ``n_iter`` and ``lagrangian_history`` are those of the path that led to
    the returned point (for ``alpha<1`` from the start or move it was reached from; starts
    and moves that ended higher are not counted).
    """
    table, kept_rows, kept_cols = v.check_joint_kept(p_xy, normalize=normalize)
    problem = Problem.from_joint(table)
    beta = v.check_real(beta, name="beta", low=0.0)
    alpha = v.check_real(alpha, name="alpha", low=0.0)
    tol = v.check_real(tol, name="tol", low=0.0)
    merge_tol = v.check_real(merge_tol, name="merge_tol", low=0.0, low_inclusive=False)
    max_iter = v.check_int(max_iter, name="max_iter", low=1)
    n_threads = v.check_int(n_threads, name="n_threads", low=1, allow_none=True)
    n_clusters = v.check_int(n_clusters, name="n_clusters", low=1, allow_none=True)
    kernel = get_backend(v.check_choice(backend, name="backend",
                                        choices={"auto", "cpp", "numba", "numpy"}))
    n_x = problem.p_x.size
    if init is not None:
        q0 = v.check_encoder(init, n_x=kept_rows.size, name="init")[kept_rows]
    else:
        if n_clusters is None:
            n_clusters = min(problem.n_distinct_rows(), MAX_DEFAULT_CLUSTERS)
        q0 = random_encoder(n_x, n_clusters, v.check_random_state(random_state))
    opts = dict(alpha=alpha, kernel=kernel, tol=tol, n_threads=n_threads, merge_tol=merge_tol,
                accelerate=bool(accelerate), warn=False)
    result = solve_from_state(problem, unbarred(problem, State.from_encoder(problem, q0)),
                              beta, max_iter=max_iter, **opts)
    result = _reach_optimum(problem, result, beta, max_iter=max_iter, **opts)
    if not result.converged:
        _warn_not_converged(beta, max_iter, result.residual, tol, stacklevel=3)
    return _in_user_shape(result, kept_rows, kept_cols)


def _in_user_shape(result: IBResult, kept_rows: np.ndarray, kept_cols: np.ndarray):
    """``result`` with the user's rows and columns: x and y of probability 0 were dropped
    before solving (they take no part in the IB); an x's encoder row is p(t) (see
    in_user_rows), a y's column of p(y|t) is 0."""
    if kept_rows.all() and kept_cols.all():
        return result
    rows = user_rows(np.arange(int(kept_rows.sum())), kept_rows)
    p_y_given_t = np.zeros((result.p_t.size, kept_cols.size))
    p_y_given_t[:, kept_cols] = result.p_y_given_t
    return replace(result, encoder=in_user_rows(result.encoder, result.p_t, rows),
                   p_y_given_t=p_y_given_t)


def _reach_optimum(problem: Problem, result: IBResult, beta: float, *, max_iter,
                   **opts) -> IBResult:
    """The correctness steps after an iteration ended at ``result``: move on from the
    local optima BA (plain or accelerated) is known to stop at, keeping the lowest point.

    alpha = 1: split clusters unstable to splitting (beta lambda_2 > 1: a saddle) and add
    clusters that would grow (invasion rate > 1), solving on after each, until neither
    applies (docs/theory.rst section 2).

    alpha < 1: both analyses are specific to alpha = 1. A cluster of mass eps is mapped to
    mass of order eps^(1/alpha), so a vanishing cluster never grows, and two copies of a
    cluster run apart (one takes all the mass) instead of splitting. The moves that leave
    a local optimum are finite ones instead: solve also from the finest encoder (one
    cluster per distinct p(y|x), the beta -> inf optimum, where a random start freezes at
    large beta), then, from the lower of the two, from every merge of two clusters and
    every move of one class of x (equal p(y|x)) into a cluster of its own, while one of
    them ends lower. Starts needing more than MAX_DEFAULT_CLUSTERS clusters and move sets
    larger than MAX_MOVES are skipped."""
    if opts["alpha"] == 1.0:
        while True:
            before = result.lagrangian
            result = _split_unstable(problem, result, beta, max_iter=max_iter, **opts)
            result = _grow_invaders(problem, result, beta, max_iter=max_iter, **opts)
            if not _lower(result.lagrangian, before):
                return result
    classes = problem.sufficient_classes()
    n_classes = int(classes.max()) + 1
    if n_classes <= MAX_DEFAULT_CLUSTERS:
        finest = State.from_encoder(problem, np.eye(n_classes)[classes])
        finest = solve_from_state(problem, finest, beta, max_iter=max_iter, **opts)
        if _lower(finest.lagrangian, result.lagrangian):
            result = finest
    while True:
        best = result
        for q in _moves(result.encoder, classes):
            res = solve_from_state(problem, State.from_encoder(problem, q), beta,
                                   max_iter=max_iter, **opts)
            if _lower(res.lagrangian, best.lagrangian):
                best = res
        if best is result:
            return result
        result = best


def _moves(encoder: np.ndarray, classes: np.ndarray) -> list:
    """Encoders one finite move away from ``encoder`` (n, k): every pair of clusters
    merged, and every class of x moved into a new cluster of its own. Empty where there
    would be more than MAX_MOVES."""
    n, k = encoder.shape
    n_classes = int(classes.max()) + 1
    if k * (k - 1) // 2 + n_classes > MAX_MOVES:
        return []
    out = []
    for t in range(k):
        for s in range(t + 1, k):
            q = np.delete(encoder, s, axis=1)
            q[:, t] += encoder[:, s]
            out.append(q)
    for c in range(n_classes):
        q = np.column_stack([encoder, np.zeros(n)])
        q[classes == c] = np.eye(k + 1)[k]
        out.append(q)
    return out


def _lower(value: float, than: float) -> bool:
    """Whether a Lagrangian ``value`` is lower than ``than`` beyond round-off."""
    return value < than - 1e-12 * (1.0 + abs(than))


def _warn_not_converged(beta, max_iter, residual, tol, stacklevel):
    warnings.warn(
        f"BA did not converge at beta={beta:.6g} within max_iter={max_iter} iterations "
        f"(residual {residual:.3g} > tol={tol:.3g}); increase max_iter or loosen tol. "
        "Slow convergence is expected near a phase transition.",
        ConvergenceWarning, stacklevel=stacklevel + 1)


def _continued(first: IBResult, then: IBResult) -> IBResult:
    """``then`` (a solve started from ``first``'s point, changed), with the iterations and
    Lagrangian history of both."""
    return replace(then, n_iter=first.n_iter + then.n_iter,
                   lagrangian_history=np.concatenate([first.lagrangian_history,
                                                      then.lagrangian_history]))


def _split_unstable(problem: Problem, result: IBResult, beta: float, *, max_iter, **opts):
    """Split clusters with beta lambda_2 > 1 and solve on, until none is left: such a
    cluster makes the fixed point a saddle (splitting it lowers the Lagrangian), which the
    accelerated iteration can converge to, e.g. two copies of a cluster that should split."""
    while result.converged and result.n_iter < max_iter:
        encoder = result.encoder
        stab = unstable_clusters(problem.p_x, problem.rows, encoder, beta,
                                 margin=SPLIT_MARGIN)
        if not stab:
            break
        for t in sorted(stab, reverse=True):  # right to left keeps indices valid
            encoder = split_cluster(encoder, t, stab[t].direction)
        split = solve_from_state(problem, State.from_encoder(problem, encoder), beta,
                                 max_iter=max_iter - result.n_iter, **opts)
        if not _lower(split.lagrangian, result.lagrangian):
            break  # the children merged back: beta lambda_2 was 1 to round-off
        result = _continued(result, split)
    return result


def _grow_invaders(problem: Problem, result: IBResult, beta: float, *, max_iter,
                   max_clusters: int | None = None, **opts):
    """Add a cluster where one of vanishing mass would grow (invasion rate G > 1, see
    :func:`ibsolver.bifurcation.invasion_rate`) and solve on, until none would. Accelerated
    steps can end on a fixed point where clusters coincide or have died, which plain BA
    passes by: a new cluster leaves it downhill (on a random 76 x 3 problem at beta = 10.3
    Newton ended on 2 clusters, 6.9e-4 bit above BA's 3, with G = 1.105 there). No cluster
    is added to ``max_clusters`` or more (a curve's cap)."""
    while (result.converged and result.n_iter < max_iter
           and (max_clusters is None or result.n_clusters < max_clusters)):
        best_g, best_d = 1.0 + INVADE_MARGIN, None
        for d0 in invasion_starts(problem.p_x, problem.rows, result.p_t,
                                  result.p_y_given_t, beta, count=INVADER_STARTS, max_rows=64,
                                  min_distance=INVADER_DISTANCE):
            g, d = invasion_rate(problem.p_x, problem.rows, result.p_t,
                                 result.p_y_given_t, beta, d0)
            far = np.min(np.max(np.abs(result.p_y_given_t - d), axis=1)) > INVADER_DISTANCE
            if far and g > best_g:
                best_g, best_d = g, d
        if best_d is None:
            break
        p_t = np.append(result.p_t * (1.0 - INVADER_MASS), INVADER_MASS)
        p_ty = np.vstack([(1.0 - INVADER_MASS) * result.p_t[:, None] * result.p_y_given_t,
                          INVADER_MASS * best_d])
        state = State.from_joint(p_t, p_ty)
        left = max_iter - result.n_iter
        grown = solve_from_state(problem, state, beta, max_iter=min(left, SHORTCUT_MAX_ITER),
                                 **opts)
        if not grown.converged and grown.n_iter < left:
            # still moving (BA only goes downhill): judge the point it ends at, not a
            # point on the way; ``state`` is where the capped solve stopped
            grown = _continued(grown, solve_from_state(problem, state, beta,
                                                       max_iter=left - grown.n_iter, **opts))
        if not _lower(grown.lagrangian, result.lagrangian):
            break  # the invader died again: keep the point
        logger.debug("invader with G = %.6g added at beta = %g: L %.12g -> %.12g", best_g,
                     beta, result.lagrangian, grown.lagrangian)
        result = _continued(result, grown)
    return result


def solve_from_state(problem: Problem, state: State, beta: float, *, alpha: float,
                     kernel: ModuleType, tol: float, max_iter: int, n_threads: int | None,
                     merge_tol: float,
                     accelerate: bool = False, warn: bool = True,
                     lagrangian_tol: float = 0.0, shortcut_tried: set | None = None,
                     ceiling: float | None = None) -> IBResult:
    """Iterate a validated problem from ``state`` (modified in place) to a fixed point.

    A :class:`ibsolver._schedule.Schedule` says which step runs when and when the
    iteration stops; this runs the steps, prunes the state after each and tries the
    shortcuts the schedule calls for. With ``lagrangian_tol`` > 0 the iteration also
    stops, converged, once the Lagrangian is estimated to lie within that many bits of its
    limit. ``shortcut_tried`` holds the cluster counts at which :func:`_shortcut` was tried
    (shared with its trial solves: see the schedule). Given a ``ceiling`` (a Lagrangian,
    bits, that the caller already has at ``beta``), the solve is abandoned, unconverged,
    once its limit is estimated to lie above it (see the schedule)."""
    compiled_squarem = hasattr(kernel, "squarem_iterations")  # no per-step overhead
    schedule = Schedule(problem.p_y_given_x.shape, alpha=alpha, accelerate=accelerate,
                        tol=tol, max_iter=max_iter, lagrangian_tol=lagrangian_tol,
                        squarem_min_work=0 if compiled_squarem else ACCELERATE_MIN_WORK,
                        shortcut_tried=shortcut_tried, newton=problem.dense_rows_allowed,
                        ceiling=np.inf if ceiling is None else (ceiling + beta * problem.h_y) * LN2)
    histories = []
    state.prune(merge_tol)
    while (step := schedule.next_step(state.n_clusters)) is not None:
        before = state.log_p_t  # the dying test compares against it, per iteration
        outcome = _take(step, problem, state, beta, alpha=alpha, kernel=kernel, tol=tol,
                        n_threads=n_threads, guarded=schedule.guarded)
        out = outcome.iterated
        state.log_p_t, state.log_p_y_given_t = out.log_p_t, out.log_p_y_given_t
        histories.append(out.history)
        changed = state.prune(merge_tol)
        verdict = schedule.after(step, outcome, n_clusters=state.n_clusters,
                                 changed=changed)
        if verdict == STOP:
            break
        if verdict == SHORTCUT:
            reduced = _shortcut(problem, state, before, out.n_iter, beta,
                                lagrangian_nats=out.history[-1], kernel=kernel,
                                tol=tol, lagrangian_tol=lagrangian_tol,
                                max_iter=min(max_iter - schedule.n_iter, SHORTCUT_MAX_ITER),
                                n_threads=n_threads, merge_tol=merge_tol,
                                shortcut_tried=schedule.shortcut_tried)
            if reduced is not None:
                all_history = np.concatenate([_lagrangian_bits(np.concatenate(histories),
                                                               problem, beta),
                                              reduced.lagrangian_history])
                return replace(reduced, n_iter=schedule.n_iter + reduced.n_iter,
                               lagrangian_history=all_history)
    q, info, lagrangian = encoder_and_lagrangian(problem, state, beta, alpha=alpha,
                                                 kernel=kernel, n_threads=n_threads)
    history_bits = _lagrangian_bits(np.concatenate(histories), problem, beta)
    if not schedule.converged and warn and not schedule.abandoned:
        _warn_not_converged(beta, max_iter, schedule.residual, tol, stacklevel=3)
    p_t = problem.p_x @ q
    return IBResult(
        encoder=q, p_t=p_t, p_y_given_t=(q.T @ problem.joint) / p_t[:, None],
        i_xt=info["i_xt"], i_ty=info["i_ty"], h_t=info["h_t"], lagrangian=float(lagrangian),
        beta=beta, alpha=alpha, n_iter=schedule.n_iter, converged=schedule.converged,
        residual=float(schedule.residual), backend=kernel.NAME,
        lagrangian_history=history_bits)


def _take(step, problem: Problem, state: State, beta: float, *, alpha: float, kernel,
          tol: float, n_threads, guarded: bool) -> Outcome:
    """Run ``step`` (a :class:`ibsolver._schedule.Step`) from ``state``: Newton on the dense
    table (its Jacobian takes it), SQUAREM compiled where the backend has it."""
    args = (problem.p_x, problem.kernel_rows(kernel), state.log_p_t, state.log_p_y_given_t,
            beta, alpha, step.length, tol, n_threads)
    if step.kind in (NEWTON, POLISH):  # (Iterated's five values, then the saddle flag)
        *iterated, saddle = newton.newton_iterations(
            kernel, problem.p_x, problem.dense_rows, *args[2:], guarded=guarded)
        return Outcome(Iterated(*iterated), saddle)
    if step.kind == SQUAREM:
        compiled = getattr(kernel, "squarem_iterations", None)
        return Outcome(compiled(*args) if compiled is not None
                       else squarem_iterations(kernel, *args))
    return Outcome(kernel.run_iterations(*args))


def encoder_and_lagrangian(problem: Problem, state: State, beta: float, *, alpha: float,
                           kernel: ModuleType, n_threads: int | None
                           ) -> tuple[np.ndarray, dict, float]:
    """The encoder one BA step builds from ``state`` (clusters of zero mass dropped), its
    information terms (bits, see _encoder_information) and its Lagrangian H(T) - alpha
    H(T|X) - beta I(T;Y) (bits)."""
    q = kernel.encoder(problem.kernel_rows(kernel), state.log_p_t, state.log_p_y_given_t,
                       beta, alpha, n_threads)
    q = q[:, problem.p_x @ q > 0]
    info = _encoder_information(problem.joint, q)
    return q, info, info["h_t"] - alpha * info["h_t_given_x"] - beta * info["i_ty"]


def _lagrangian_bits(kernel_value, problem: Problem, beta: float):
    """The Lagrangian in bits from the kernel's objective (nats, without the constant
    -beta H(Y) that turns beta H(Y|T) into -beta I(T;Y))."""
    return (kernel_value - beta * problem.h_y * LN2) / LN2


def _shortcut(problem: Problem, state: State, before: np.ndarray, steps: int, beta: float, *,
              lagrangian_nats: float, **opts):
    """The fixed point BA is crawling towards when Newton cannot reach it, or None.

    Two slow modes defeat Newton: a cluster dying (its mass shrinks by a factor G -> 1 per
    iteration; in log coordinates the fixed point is at -inf) and two clusters merging
    (their decoders approach each other; once they coincide, moving mass between the two
    copies changes nothing, so I - J is singular). Solve from the state with the closest
    pair merged, then (if the lightest cluster shrank over the last chunk) with that
    cluster dropped, and keep the first solution that is converged, no worse than where the
    iteration stands, and stable: no cluster can split (beta lambda_2 < 1) and, for a drop,
    the dropped decoder's invasion rate is below 1."""
    current = _lagrangian_bits(lagrangian_nats, problem, beta)
    for trial, stable in _shortcut_candidates(problem, state, before, steps, beta):
        res = solve_from_state(problem, trial, beta, alpha=1.0, accelerate=True, warn=False,
                               **opts)
        accepted = (res.converged and res.lagrangian <= current + 1e-12 * (1.0 + abs(current))
                    and stable(res))
        logger.debug("shortcut k=%d -> %d: converged %s, dL %.3g, accepted %s",
                     state.n_clusters, res.n_clusters, res.converged,
                     res.lagrangian - current, accepted)
        if accepted:
            return res
    return None


def _shortcut_candidates(problem: Problem, state: State, before: np.ndarray, steps: int,
                         beta: float):
    """(trial state, stability test of its solution) pairs for :func:`_shortcut`;
    ``before`` is log p(t) ``steps`` iterations ago."""
    k = state.n_clusters
    if before.size != k or k < 2:
        return
    p_y_given_t = np.exp(state.log_p_y_given_t)
    dist = np.max(np.abs(p_y_given_t[:, None, :] - p_y_given_t[None, :, :]), axis=2)
    dist[np.diag_indices(k)] = np.inf
    i, j = np.unravel_index(np.argmin(dist), dist.shape)
    p_t = np.exp(state.log_p_t)

    def no_split(res):
        return not unstable_clusters(problem.p_x, problem.rows, res.encoder, beta)

    if p_t[i] + p_t[j] > 0:
        into = i if i < j else i - 1  # i's index once j is deleted
        merged_t = np.delete(p_t, j)
        merged_t[into] = p_t[i] + p_t[j]
        merged_ty = np.delete(p_t[:, None] * p_y_given_t, j, axis=0)
        merged_ty[into] = p_t[i] * p_y_given_t[i] + p_t[j] * p_y_given_t[j]
        yield State.from_joint(merged_t, merged_ty), no_split

    t = int(np.argmin(state.log_p_t))
    # a rate, not a drop: the chunk before a shortcut may be a single refused Newton step
    keep = np.arange(k) != t
    # only where every x keeps a cluster it can join (p(y|t) > 0 wherever p(y|x) > 0): with
    # zeros in p(x, y) the dying cluster may be the only one some x can join
    admissible = pattern(problem.rows) @ (p_y_given_t[keep] == 0).T.astype(float) == 0
    if state.log_p_t[t] < before[t] - DYING_LOG_RATE * max(steps, 1) \
            and admissible.any(axis=1).all():
        dying = p_y_given_t[t]

        def no_regrowth(res):
            growth, _ = invasion_rate(problem.p_x, problem.rows, res.p_t,
                                      res.p_y_given_t, beta, dying)
            return growth < 1.0 and no_split(res)
        yield State(state.log_p_t[keep] - np.logaddexp.reduce(state.log_p_t[keep]),
                    state.log_p_y_given_t[keep].copy()), no_regrowth
