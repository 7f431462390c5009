"""The whole IB curve by forward and reverse deterministic annealing.

Two branches are traced over one grid of beta (docs/theory.rst section 2):

* reverse: from the finest encoder (one cluster per distinct p(y|x)) at large beta down to
  beta = 1, warm starting each beta from the last; clusters merge as they coincide and die
  as their mass vanishes. This branch follows cluster *births* down to where they occur.
* forward: from the trivial one-cluster solution up, splitting a cluster exactly where
  ``beta * lambda_2(C(t)) = 1`` along the eigen-direction (a *split*).

At every beta the lower Lagrangian wins; the reported curve is the upper concave envelope
of the winners (plus the exact end point of the minimal sufficient statistic), so it is
concave and non-decreasing by construction. Both branches stay available.

The generalised IB (alpha != 1, docs/theory.rst section 3; alpha = 0 the deterministic IB) is
traced the same way, both branches and cross-seeding, except where the alpha = 1 theory is
used: the forward branch leaves a solution by the finite moves of
:func:`ibsolver.solve._reach_optimum` instead of the eigen-analysis, and transitions are
cluster-count changes known to their bracket (see :func:`ib_curve`).
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike
from scipy.optimize import brentq

from . import _validation as v
from ._blas import single_threaded_blas
from ._tables import dense, group_sums, nearest_rows, row_distances, row_groups
from .backends import get_backend
from .bifurcation import (ClusterStability, cluster_stability,
                          hypercontractivity, invasion_rate, invasion_starts, split_cluster,
                          tilt_ratio_ascent, unstable_clusters)
from .deterministic import squared_grid, squared_ib_curve
from .envelope import upper_concave_envelope
from .exceptions import ConvergenceWarning, OptimalityWarning
from .measures import conditional_entropy, entropy, mutual_information
from .results import Branch, IBCurve, IBResult, Transition
from .solve import (MAX_DEFAULT_CLUSTERS, Problem, State, _coincident_groups, _grow_invaders,
                    _lower, _moves, encoder_and_lagrangian, in_user_rows, random_encoder,
                    solve_from_state, unbarred, user_rows)

logger = logging.getLogger(__name__)

#: relative precision to which split points are located
SPLIT_RTOL = 1e-7
#: relative beta gap to which refinement resolves a change of the winning branch
BIRTH_RTOL = 5e-4
#: relative precision of a birth's root (the issue asks 1e-3; each step is a solve)
BIRTH_ROOT_RTOL = 1e-7
#: a solution with I(X;T) at most this (bits) is the trivial one, even if it carries
#: near-copies of its cluster (counted as one, see n_effective and n_distinct)
TRIVIAL_BITS = 1e-9
#: points with I(X;T) above this (bits) certify s* >= I(T;Y) / I(X;T): below it the
#: ratio of two round-off-limited differences of entropies is not accurate to 1e-7
CERTIFICATE_BITS = 1e-6
#: the onset and 1/s* are to agree to this (relative); ONSET_POINTS: see _s_star
ONSET_RTOL = 1e-6
ONSET_POINTS = 8
#: clusters lighter than this are not counted when looking for transitions (a cluster being
#: born or dying has vanishing mass; its decay below the onset is slow)
BIRTH_MASS = 1e-6
#: relative beta gap below which refinement stops where the cluster count changes
COUNT_RTOL = 1e-2
#: a born cluster's decoder is at least this far (max-norm) from every existing decoder
BIRTH_DISTANCE = 1e-3
#: clusters whose decoders p(y|t) lie within this (max-norm, chained) of each other are one
#: cluster in the counts reported (see n_distinct). Below BIRTH_DISTANCE, so that a born
#: cluster always counts; above the near-copies BA leaves on flat directions (on the
#: discretised Gaussian demo most lie 1e-7 to 1e-5 apart, some up to 6e-5, and merging them
#: changes the Lagrangian by less than 1e-13 bit; distinct clusters lie 1e-2 and more apart,
#: and pairs 1e-3 to 2e-2 apart, merges BA was creeping through when the solve stopped on
#: its Lagrangian tolerance, count as two)
DISTINCT_DECODER = 1e-4
#: rows whose p(y|x) share a cell of this width / sqrt(beta) start the reverse branch as
#: one cluster (see _Tracer.finest_state)
FINEST_CELL = 0.1
#: a solve continues the secant of the last two solutions of its branch where their
#: decoders differ by no more than this (max-norm; see _Tracer.predicted)
PREDICT_DECODER = 0.05
#: the default cluster cap keeps an n x k encoder within this many doubles (64 MB): a solve
#: holds several such arrays at once
MAX_ENCODER_ENTRIES = 2 ** 23
#: alpha != 1: random starts (solve's: Dirichlet rows, one cluster per row up to the cap)
#: tried at each forward step besides the finite moves (see _Tracer.improve)
RANDOM_STARTS = 2
#: alpha = 1: each beta of the first grid is also solved from RESTARTS random encoders and
#: the identity encoder on problems with at most RESTART_MAX_ROWS rows (compressed; see
#: _restarts)
RESTARTS = 1
RESTART_MAX_ROWS = 100
#: two branches whose I(X;T) differ by more than this are distinct solutions
JUMP_BITS = 1e-3
#: a birth and a split closer than this (relative) are one transition (see _demote_twins)
TWIN_RTOL = 1e-3
#: a split's values after it are those of its branch this far (relative) above its beta
LIMIT_RTOL = 1e-5
#: Newton steps that locate a jump between branches (see _locate_jump)
JUMP_STEPS = 8
#: entries of a sparse table made dense at a time for its digest (512 kB)
DIGEST_BLOCK = 2 ** 16


def _heavy_decoder(result: IBResult, t: int) -> np.ndarray:
    """p(y|t) of the t-th cluster heavier than BIRTH_MASS."""
    return result.p_y_given_t[result.p_t > BIRTH_MASS][t]


def _decoder_distance(result: IBResult, decoder: np.ndarray) -> float:
    """Max-norm distance from ``decoder`` to the nearest decoder p(y|t) of ``result``."""
    return float(np.min(np.max(np.abs(result.p_y_given_t - decoder), axis=1)))


def n_effective(result: IBResult) -> int:
    """Number of clusters heavier than BIRTH_MASS; 1 for a trivial solution (I(X;T) at
    most TRIVIAL_BITS), however many near-copies of one cluster it carries. What the
    tracing decides by (refinement, where the reverse branch is searched for births and
    merges, whether a split took, ties between branches); the counts reported are
    :func:`n_distinct`'s. (Searching the reverse branch where the distinct count changes
    instead also finds copies crossing DISTINCT_DECODER as they separate: on the
    discretised Gaussian demo that listed 30 transitions, 10 of them decreasing, against
    19 and 4.)"""
    if result.i_xt <= TRIVIAL_BITS:
        return 1
    return int(np.sum(result.p_t > BIRTH_MASS))


def n_distinct(result: IBResult, tol: float = DISTINCT_DECODER) -> int:
    """Number of distinct decoders of ``result``: clusters whose p(y|t) lie within ``tol``
    of each other (max-norm, chained: a within tol of b, b of c) are one, with their masses
    summed, and a group counts where that sum exceeds BIRTH_MASS; 1 for a trivial solution
    (as :func:`n_effective`). The count reported in ``IBCurve.n_clusters`` and in the
    transitions: BA leaves near-copies of a cluster (decoders equal to 1e-7 .. 1e-4, a
    flat direction of the Lagrangian) in numbers that change from one solve to the next,
    and :func:`n_effective` counts each copy."""
    if result.i_xt <= TRIVIAL_BITS:
        return 1
    label = _coincident_groups(np.asarray(result.p_y_given_t, dtype=np.float64), tol)
    return int(np.sum(np.bincount(label, weights=result.p_t) > BIRTH_MASS))


class _Tracer:
    """Holds the problem and solver settings while the branches are traced."""

    def __init__(self, problem, *, kernel, tol, max_iter, n_threads, merge_tol, accelerate,
                 lagrangian_tol, max_clusters, alpha=1.0):
        self.problem = problem
        self.max_clusters = max_clusters
        self.alpha = alpha
        self.rng = np.random.default_rng(0)  # random starts of improve (alpha != 1)
        self.opts = dict(alpha=alpha, kernel=kernel, tol=tol, max_iter=max_iter,
                         n_threads=n_threads, merge_tol=merge_tol, accelerate=accelerate,
                         warn=False, lagrangian_tol=lagrangian_tol)
        self.n_solves = 0

    def solve(self, state: State, beta: float, grow: bool = True,
              ceiling: float | None = None) -> IBResult:
        """Solve from ``state`` at ``beta``. Where the solve lost clusters or ends with one
        of vanishing mass, a cluster that would grow (invasion rate > 1) is added
        (``grow``; see _grow_invaders). The invasion rate is alpha = 1 theory: for alpha < 1
        a cluster of vanishing mass never grows, and nothing is added. A solve that is of
        use only if it ends below a Lagrangian already found there (bits) gets it as its
        ``ceiling``: it is abandoned, unconverged, once it is sure to end above."""
        self.n_solves += 1
        res = solve_from_state(self.problem, unbarred(self.problem, state), beta,
                               ceiling=ceiling, **self.opts)
        lost = res.n_clusters < state.n_clusters or np.min(res.p_t) < BIRTH_MASS
        if (grow and self.alpha == 1.0 and self.opts["accelerate"] and lost
                and res.n_clusters < self.max_clusters):
            opts = {k: v for k, v in self.opts.items() if k != "max_iter"}
            res = _grow_invaders(self.problem, res, beta, max_iter=self.opts["max_iter"],
                                 max_clusters=self.max_clusters, **opts)
        # the n x k encoder is rebuilt from the decoder state where needed (self.encoder):
        # kept for every point it would cost points x rows x clusters of memory
        return replace(res, encoder=None)

    def encoder(self, result: IBResult) -> np.ndarray:
        """p(t|x) of ``result``, one BA step from its decoder state (equal at convergence)."""
        state = self.state(result)
        kernel = self.opts["kernel"]
        return kernel.encoder(self.problem.kernel_rows(kernel), state.log_p_t,
                              state.log_p_y_given_t, result.beta, self.alpha,
                              self.opts["n_threads"])

    def state(self, result: IBResult) -> State:
        """The decoder state of ``result`` (its encoder is one BA step from that state, so
        the two give the same next iterate; no n x k encoder is built)."""
        return State.from_joint(result.p_t, result.p_t[:, None] * result.p_y_given_t)

    def predicted(self, before: IBResult | None, last: IBResult, beta: float) -> State:
        """Where to start a solve at ``beta`` continuing ``last``: the secant through
        ``before`` and ``last`` in log p(t, y), where both have the same clusters (same
        count, decoders within PREDICT_DECODER of each other), else ``last`` itself. On a
        smooth stretch the solution moves little between grid betas and nearly linearly."""
        end = self.state(last)
        if before is None or before.n_clusters != last.n_clusters or before.beta == last.beta:
            return end
        start = self.state(before)
        if start.n_clusters != end.n_clusters or np.max(np.abs(
                np.exp(start.log_p_y_given_t) - np.exp(end.log_p_y_given_t))) > PREDICT_DECODER:
            return end
        theta0 = start.log_p_t[:, None] + start.log_p_y_given_t
        theta1 = end.log_p_t[:, None] + end.log_p_y_given_t
        if not (np.all(np.isfinite(theta0)) and np.all(np.isfinite(theta1))):
            return end  # a p(y|t) = 0: no secant through -inf
        theta = theta1 + (theta1 - theta0) * (beta - last.beta) / (last.beta - before.beta)
        log_p_t = np.logaddexp.reduce(theta, axis=1)
        log_p_t -= np.logaddexp.reduce(log_p_t)
        return State(log_p_t, theta - np.logaddexp.reduce(theta, axis=1)[:, None])

    def finest_state(self, beta: float) -> State:
        """Where the reverse branch starts at ``beta``: one cluster per row of the
        (compressed) problem (the beta -> infinity optimum), except that rows whose p(y|x)
        share a cell of width FINEST_CELL / sqrt(beta) in every y start as one cluster. Such
        a group is far too narrow to split at beta (beta lambda_2 of order FINEST_CELL^2),
        and BA would merge it only slowly: clusters coincide to merge_tol after hundreds of
        iterations at k = n_x (0.5 s of a 1024 x 2 curve)."""
        width = FINEST_CELL / np.sqrt(max(beta, 1.0))
        cells = self.problem.rows / width
        if scipy.sparse.issparse(cells):
            cells.data = np.floor(cells.data)
        else:
            cells = np.floor(cells)
        group = row_groups(cells)
        if group.max() + 1 > self.max_clusters:
            group = _nearest_seed_groups(self.problem, self.max_clusters)
        p_ty = dense(group_sums(self.problem.joint, group))  # the one-hot encoder's p(t, y)
        return State.from_joint(p_ty.sum(axis=1), p_ty)

    def top_solve(self, beta: float) -> IBResult:
        """The reverse branch's first solve: from the grouped finest state, and where rows
        were grouped (and every row fits under the cap) also from one cluster per row,
        keeping the lower. A group too narrow to split can still be a worse local optimum
        than its rows apart (a 74 x 4 table at beta = 2284: 2.9e-3 bit in the Lagrangian)."""
        grouped = self.finest_state(beta)
        res = self.solve(grouped, beta)
        n_rows = self.problem.p_x.size
        if grouped.n_clusters < n_rows <= self.max_clusters:
            rows = self.solve(self.identity_state(), beta)
            if _lower(rows.lagrangian, res.lagrangian):
                res = rows
        return res

    def cap_end(self, fwd: dict, rev: dict) -> float:
        """The lowest beta whose optimal point uses every cluster ``max_clusters`` allows
        (inf where none does, or the cap is all the rows): the curve ends before it (see
        ib_curve), so refinement, restarts and cross-seeding above it would be thrown away
        (on a capped 4096 x 4 curve, a quarter of its time)."""
        if self.max_clusters >= self.problem.p_x.size:
            return np.inf
        best = _best_points(fwd, rev)
        return min((b for b, (r, _) in best.items() if r.n_clusters >= self.max_clusters),
                   default=np.inf)

    def identity_state(self) -> State:
        """One cluster per row of the (compressed) problem: the encoder T = X."""
        return State.from_joint(self.problem.p_x, dense(self.problem.p_xy))

    def trivial_state(self) -> State:
        return State.from_joint(np.ones(1), self.problem.p_y[None, :])

    # -- forward branch ---------------------------------------------------------------
    def forward_step(self, prev: IBResult, beta: float, locate: bool, transitions: list,
                     before: IBResult | None = None):
        """Solve at ``beta`` from ``prev`` (at a lower beta), splitting unstable clusters.

        The branch is first continued to ``beta`` without splitting, and only clusters
        unstable there (beta lambda_2 >= 1 at the continued solution) are split: lambda_2
        at ``prev`` overstates it, since clusters sharpen as beta grows, and children of a
        stable cluster merge back only slowly.

        For alpha != 1 see :meth:`improve` instead (``locate`` and ``transitions`` unused)."""
        cont = self.solve(self.predicted(before, prev, beta), beta)
        if self.alpha != 1.0:
            return self.improve(cont, beta)
        encoder = self.encoder(cont)
        stab = unstable_clusters(self.problem.p_x, self.problem.rows, encoder, beta)
        # never more clusters than the cap (by default the distinct rows, all the beta -> inf
        # optimum needs): the most unstable clusters split first
        room = max(self.max_clusters - cont.n_clusters, 0)
        crossing = sorted(stab, key=lambda t: -stab[t].eigenvalue)[:room]
        if not crossing:
            return cont
        same = cont.n_clusters == prev.n_clusters  # then cluster t of cont continues t of prev
        prev_encoder = self.encoder(prev) if same else None  # (built once, not per cluster)
        seeds = []
        for t in sorted(crossing, reverse=True):  # split right to left keeps indices valid
            s_prev = cluster_stability(self.problem.p_x, self.problem.rows,
                                       prev_encoder[:, t]) if same else None
            stable_before = s_prev is not None and prev.beta * s_prev.eigenvalue < 1.0
            if locate and stable_before:
                crossed = beta * stab[t].eigenvalue - 1.0
                b_star, at, s = self._locate_split(prev, s_prev, beta, t, crossed)
            elif locate:  # the crossing is known only to the bracket's end
                b_star, at, s = beta, cont, stab[t]
            else:
                b_star, at, s = 0.5 * (prev.beta + beta), cont, stab[t]
            seeds.append((t, b_star, at, s, bool(locate and stable_before)))
            encoder = split_cluster(encoder, t, s.direction)
        after = self.solve(State.from_encoder(self.problem, encoder), beta)
        if n_effective(after) <= n_effective(cont):
            # the children merged again: no transition on this branch
            return after if after.lagrangian < cont.lagrangian else cont
        for t, b_star, at, s, located in seeds:
            transitions.append(Transition(
                beta=b_star, kind="split", branch="forward",
                n_clusters_before=n_distinct(at), n_clusters_after=n_distinct(after),
                i_xt_before=at.i_xt, i_xt_after=after.i_xt, i_ty_before=at.i_ty,
                i_ty_after=after.i_ty, beta_bracket=(prev.beta, beta),
                # dL/dbeta = -I(T;Y) (envelope theorem): carry L from at.beta to b_star
                lagrangian=at.lagrangian - at.i_ty * (b_star - at.beta),
                eigenvalue=s.eigenvalue, direction=s.direction, located=located))
        return after

    def improve(self, result: IBResult, beta: float) -> IBResult:
        """The forward branch's step for alpha != 1: from the continued solution ``result``,
        the finite moves with which :func:`ibsolver.solve.solve` leaves the local optima BA
        stops at for alpha < 1 (see :func:`ibsolver.solve._reach_optimum`), keeping the
        lowest Lagrangian.

        The eigen-analysis of splits is alpha = 1 theory: for alpha < 1 two copies of a
        cluster run apart (one takes all the mass) instead of splitting, and a cluster of
        vanishing mass never grows, so the trivial solution is a fixed point of BA at every
        beta and annealing alone never leaves it. A split becomes a finite move instead: one
        row of the (compressed) problem, i.e. one class of x with equal p(y|x), moved into a
        cluster of its own; a merge of two clusters is its reverse. Both are tried from the
        continued solution, and from the best of them again while one ends lower. Before
        them the starts of ``solve`` are tried too: the finest (one cluster per class, or
        the reverse branch's start where that exceeds the cap) and RANDOM_STARTS random
        encoders (a fixed seed: the curve is reproducible). So each forward point is at
        least as low as ``solve`` warm-started from the continued solution. The moves are a
        local search: for alpha = 0 the problem is a search over partitions, with local
        optima the moves do not leave (on a random 10 x 4 table the best partition at some
        betas took four classes moved at once); the random starts, and the pool of every
        solution found along the curve (see _pool_seed), are what find those. Moves that would
        exceed ``max_clusters`` are skipped, and no moves are tried where there are more
        than MAX_MOVES of them (as in ``solve``)."""
        problem = self.problem
        n_rows = problem.p_x.size
        finest = (self.identity_state() if n_rows <= self.max_clusters
                  else self.finest_state(beta))
        starts = [finest] + [
            State.from_encoder(problem, random_encoder(n_rows, min(n_rows, self.max_clusters),
                                                       self.rng))
            for _ in range(RANDOM_STARTS)]
        for start in starts:
            cand = self.solve(start, beta)
            if _lower(cand.lagrangian, result.lagrangian):
                result = cand
        classes = np.arange(n_rows)  # the compressed problem's rows are the classes
        while True:
            best = result
            for q in _moves(self.encoder(result), classes):
                if q.shape[1] > self.max_clusters:
                    continue
                cand = self.solve(State.from_encoder(problem, q), beta)
                if _lower(cand.lagrangian, best.lagrangian):
                    best = cand
            if best is result:
                return result
            result = best

    def _stability(self, result: IBResult, t: int):
        return cluster_stability(self.problem.p_x, self.problem.rows,
                                 self.encoder(result)[:, t])

    def _locate_split(self, prev: IBResult, s: ClusterStability, beta: float, t: int,
                      crossed: float):
        """Solve f(b) = b * lambda_2(C(t; solution(b))) - 1 = 0 on (prev.beta, beta], where
        f(beta) = ``crossed`` >= 0 and ``s`` is cluster t's stability at ``prev``, by regula
        falsi with the Illinois modification (f is smooth along the branch: superlinear,
        where bisection takes some 20 solves)."""
        if prev.n_clusters == 1:  # the trivial solution does not move with beta: exact
            return 1.0 / s.eigenvalue, prev, s
        lo, hi, at_lo, s_lo = prev.beta, beta, prev, s
        f_lo, f_hi = lo * s.eigenvalue - 1.0, crossed
        kept = 0  # which end stayed put last time (-1 lo, +1 hi): Illinois halves its f
        while (hi - lo) > SPLIT_RTOL * lo:
            secant = np.isfinite(f_hi) and f_hi > f_lo
            mid = lo + (hi - lo) * (-f_lo / (f_hi - f_lo)) if secant else 0.5 * (lo + hi)
            # keep the trial point strictly inside, so the bracket always shrinks
            margin = 0.25 * SPLIT_RTOL * lo
            mid = min(max(mid, lo + margin), hi - margin)
            res = self.solve(self.state(at_lo), mid)
            # (a solve can also lose a light cluster and keep its count of heavy ones:
            # then cluster t is another one, or none)
            if n_effective(res) != n_effective(prev) or res.n_clusters != prev.n_clusters:
                hi, f_hi, kept = mid, np.inf, 0  # the branch changed on its own: stay below
                continue
            s_mid = self._stability(res, t)
            f_mid = mid * s_mid.eigenvalue - 1.0
            if f_mid >= 0.0:
                hi, f_hi = mid, f_mid
                if kept == -1:
                    f_lo *= 0.5
                kept = -1
            else:
                lo, f_lo, at_lo, s_lo = mid, f_mid, res, s_mid
                if kept == 1:
                    f_hi *= 0.5
                kept = 1
        return 0.5 * (lo + hi), at_lo, s_lo

    # -- reverse branch ---------------------------------------------------------------
    def locate_birth(self, r_lo: IBResult, r_hi: IBResult, t: int):
        """Where the light cluster t of ``r_hi`` is born above the solution ``r_lo``: the
        root of G(beta) = 1, G the invasion rate of a zero-mass cluster (see
        :func:`ibsolver.bifurcation.invasion_rate`) on ``r_lo``'s branch continued to beta.

        Returns ``(beta, base)`` with base the branch solution there, or None if G does
        not cross 1 on the bracket (then the caller keeps the bracket)."""
        decoder = _heavy_decoder(r_hi, t)
        # the base branch without its clusters of vanishing mass: BA cannot regrow them
        heavy = self.encoder(r_lo)[:, r_lo.p_t > BIRTH_MASS]
        if not np.all(heavy.sum(axis=1) > 0):
            return None  # an x only light clusters hold: no base branch without them
        base_state = State.from_encoder(self.problem, heavy / heavy.sum(axis=1, keepdims=True))
        cache = {}
        start = {"d": decoder}  # where the next ascent of G starts
        pb = self.problem

        def growth(beta, search=False):
            # warm start: r_lo's branch continued up from the highest beta below solved so far
            below = max((b for b in cache if b < beta), default=None)
            # (grow=False: the born cluster must not be added back to its own base)
            base = self.solve(base_state if below is None else self.state(cache[below][0]),
                              beta, grow=False)
            starts = [start["d"]]
            if search:
                starts += invasion_starts(pb.p_x, pb.rows, base.p_t, base.p_y_given_t,
                                          beta, min_distance=BIRTH_DISTANCE)
            best = (-np.inf, None)
            for d0 in starts:
                g, d = invasion_rate(pb.p_x, pb.rows, base.p_t, base.p_y_given_t,
                                     beta, d0)
                # a copy of an existing cluster has G = 1 up to round-off: not a birth
                if _decoder_distance(base, d) > BIRTH_DISTANCE and g > best[0]:
                    best = (g, d)
            far = best[1] is not None
            cache[beta] = (base, far, best[1])
            # where every ascent falls back onto an existing decoder the far maximum of G
            # does not exist yet: nothing can be born there (G = 1 there is no root)
            return best[0] - 1.0 if far else -1.0

        lo, hi = r_lo.beta, r_hi.beta
        # both ends of the bracket ascend from the born cluster's decoder and from rows
        # p(.|x) (the decoder at hi has moved since the birth, and an ascent from it can
        # fall back onto an existing decoder); the root finder then follows the far
        # maximum from one trial beta to the next
        if not (growth(hi, True) > 1e-9 and cache[hi][1] and growth(lo, True) <= 0):
            return None

        def followed(beta):
            out = growth(beta)
            if cache[beta][1]:
                start["d"] = cache[beta][2]
            return out

        # the root of the maximum followed from the top; then, if a search just below it
        # finds another maximum already above 1, an earlier birth: the first is wanted
        top, b_star = hi, None
        while True:
            start["d"] = cache[top][2]
            try:
                b_star = brentq(followed, lo, top, xtol=1e-12, rtol=BIRTH_ROOT_RTOL)
            except ValueError:  # that maximum is above 1 at lo too: keep the last root
                break
            probe = b_star * (1.0 - 10.0 * BIRTH_ROOT_RTOL)
            if probe <= lo or growth(probe, True) <= 0:
                break
            top = probe
        if b_star is None:
            return None
        if b_star not in cache:
            followed(b_star)
        base, far, _ = cache[b_star]
        return (b_star, base) if far else None


def _pool_seed(tracer, fwd: dict, rev: dict) -> bool:
    """alpha != 1: every solution found at any beta, on either branch, is a candidate at
    every other beta (one per partition of the rows). Each beta's best candidate, judged by
    the Lagrangian after one BA step from its decoder state (cheap: no solve; BA only goes
    downhill), is solved from where it beats both branches there, and kept on the forward
    branch (if traced) where it ends lower. For alpha = 0 a partition's Lagrangian
    H(T) - beta I(T;Y) is linear in beta, and the BA step scores it at least that well, so
    a partition found anywhere competes everywhere. Returns whether anything improved."""
    pool, seen = [], set()
    for r in list(fwd.values()) + list(rev.values()):
        # one candidate per partition of the rows (each row to its most likely cluster,
        # clusters numbered in order of first row): for alpha = 0 the solution itself, for
        # alpha > 0 one representative of a stretch of branch (solutions at neighbouring
        # betas differ little; judging each would cost points^2 BA steps)
        hard = np.argmax(tracer.encoder(r), axis=1)
        _, first, label = np.unique(hard, return_index=True, return_inverse=True)
        key = tuple(np.argsort(np.argsort(first))[label.ravel()])
        if key not in seen:
            seen.add(key)
            pool.append(tracer.state(r))
    pb, opts = tracer.problem, tracer.opts
    improved = False
    keep = fwd if fwd else rev  # where a better candidate goes (one branch may be absent)
    for b in sorted(keep):
        own = min(r.lagrangian for r in (fwd.get(b), rev.get(b)) if r is not None)
        best, best_state = own, None
        for state in pool:
            value = encoder_and_lagrangian(pb, state, b, alpha=tracer.alpha,
                                           kernel=opts["kernel"], n_threads=opts["n_threads"])[2]
            if _lower(value, best):
                best, best_state = value, state
        if best_state is not None:
            cand = tracer.solve(best_state, b)
            if _lower(cand.lagrangian, keep[b].lagrangian):
                keep[b] = cand
                improved = improved or _lower(cand.lagrangian, own)
    return improved


def _nearest_seed_groups(problem: Problem, k: int) -> np.ndarray:
    """Each row's nearest (Euclidean, in p(y|x)) of k seed rows spread by farthest-point
    sampling (Gonzalez's 2-approximation of the k-centre problem): the start of a reverse
    branch capped at k clusters, which keeps the rows' spread as well as k points can."""
    rows = problem.rows
    seeds = [int(np.argmax(problem.p_x))]
    dist = row_distances(rows, seeds[0])
    for _ in range(k - 1):
        seeds.append(int(np.argmax(dist)))
        dist = np.minimum(dist, row_distances(rows, seeds[-1]))
    return nearest_rows(rows, dense(rows[seeds]))


def _default_grid(problem: Problem, n_betas: int) -> np.ndarray:
    beta_c = problem.first_instability
    # X and Y independent (s2 = 0, beta_c = inf): the curve is the point (0, 0), trivial
    # at every beta; a grid of the same span as for beta_c = 1 shows it
    top = 1e3 * max(beta_c, 1.0) if np.isfinite(beta_c) else 1e3
    # not on beta_c itself: BA converges only algebraically at a critical point
    return np.geomspace(1.0, top, n_betas)


@single_threaded_blas
def ib_curve(p_xy: ArrayLike | scipy.sparse.spmatrix, *, alpha: float = 1.0,
             betas: ArrayLike | None = None, method: str = "both", n_betas: int = 60,
             curve_tol: float = 1e-5, max_points: int = 300, tol: float = 1e-11,
             lagrangian_tol: float | None = None, max_iter: int = 50_000,
             accelerate: bool = True, backend: str = "auto", locate_transitions: bool = True,
             n_threads: int | None = None, merge_tol: float = 1e-7,
             max_clusters: int | None = None, return_encoders: bool = False,
             normalize: bool = False, progress: bool = False, interruptible: bool = False,
             resume: IBCurve | None = None) -> IBCurve:
    """Trace the whole IB curve of p(x, y) and its phase transitions.

    Parameters
    ----------
    p_xy : (n_x, n_y) array_like, the joint distribution.
    alpha : float >= 0, default 1
        Generalised IB parameter (docs/theory.rst section 3): the curve of the optima of
        H(T) - alpha H(T|X) - beta I(T;Y); 1 is the IB, 0 the deterministic IB (hard
        encoders). See "The generalised IB" below.
    betas : array_like, optional
        The betas to solve at. Default: ``n_betas`` log-spaced from 1 to 1000/s2^2, refined
        adaptively until linear interpolation between neighbours is within ``curve_tol``
        bits of the curve, and wherever the cluster count or the winning branch changes,
        up to ``max_points`` betas (the pieces farthest from their chords first).
        Explicit betas are used as given (no refinement); transitions are still located.
    method : {"both", "reverse", "forward"}
        Which annealing branches to trace ("both" keeps the lower Lagrangian at each beta).
    tol, max_iter, accelerate, backend, n_threads, merge_tol : as in :func:`ibsolver.solve`
        (``accelerate`` defaults to True here: Newton or SQUAREM near transitions).
    lagrangian_tol : float, optional
        A solve also counts as converged once its Lagrangian is estimated to be within this
        many bits of its limit, even if the state still creeps (flat directions near a
        transition move the state but not the objective). A point whose Lagrangian is within
        eps of the optimum lies within eps / beta bits below the curve. Default
        ``1e-3 * curve_tol``; 0 requires the residual ``tol``.
    locate_transitions : bool
        False skips the extra solves that locate transitions (bisection of splits, root of
        the invasion rate for births, the other branch solved at each transition to tell
        whether it is optimal): transitions are then reported at the midpoint of their
        bracket of grid betas (``beta_bracket``), each marked optimal if its branch is the
        optimal one at the bracket's upper end. The curve itself is the same.
    max_clusters : int, optional
        The most clusters an encoder may use. Default: the distinct rows p(y|x) (all the
        beta -> infinity optimum needs), at most 1024 and at most 2**23 / rows (an n x k
        encoder of 64 MB). Where the cap binds (an optimal point uses all of them) the
        capped problem's curve lies below the true one: the curve then ends at the last
        point below the cap (``curve.capped``), and ``accuracy`` covers the rest up to
        (H(X), I(X;Y)). Memory and time grow with rows x clusters.
    return_encoders : keep p(t|x) of every optimal point in ``curve.encoders``.
    progress : show a tqdm progress bar.
    interruptible : on Ctrl-C, stop and return the curve traced so far
        (``complete=False``; see :attr:`IBCurve.untraced`) instead of raising.
    resume : IBCurve, optional
        An interrupted curve (``complete=False``, perhaps read back by
        :meth:`IBCurve.load`) of the same table traced with the same options: its points
        seed the branches and tracing goes on where it stopped, so the result is the curve
        an uninterrupted run gives (the same points where it stopped while tracing a branch;
        during refinement or cross-seeding, the same curve to its ``accuracy``). Raises
        ValueError if the table or an option differs; a complete curve is returned as it is.

    Notes
    -----
    For a deterministic rule (H(Y|X) = 0) the Lagrangian only reaches the corners of the
    curve min(I(X;T), H(Y)); the interior points come from the squared IB instead
    (:func:`ibsolver.deterministic.squared_ib_curve`), at ``betas`` of the squared
    Lagrangian (default ``n_betas`` over (0, 2 H(Y)]), with ``max_iter``, ``progress``,
    ``interruptible``, ``resume`` and ``return_encoders`` as above; the transition is the
    Lagrangian's exact jump at beta = 1 (``onset_beta``), and the points record
    backend "numpy" (a BA backend asked for by name warns that it did not run).
    ``curve_tol``, ``max_points``, ``method`` and ``locate_transitions`` do not apply
    there: the grid is not refined, and the one transition is known exactly.
    (alpha = 1 only: for alpha != 1 the generalised Lagrangian is traced as it is.)

    *The generalised IB (alpha != 1).*
    Both branches are traced and cross-seeded as for alpha = 1, and the lower Lagrangian
    H(T) - alpha H(T|X) - beta I(T;Y) wins at each beta. The reverse branch is the same
    (annealing down from the finest encoder; clusters merge as they coincide and die as
    their mass vanishes). The forward branch starts from the trivial solution, but the
    eigen-analysis that splits it is derived for alpha = 1 (for alpha < 1 a cluster of
    vanishing mass never grows and copies of a cluster run apart rather than split, so the
    trivial solution is a fixed point at every beta): at each beta it is continued, then
    left by the finite moves of :func:`ibsolver.solve.solve`'s alpha < 1 correctness steps
    (a class of x moved into a cluster of its own, two clusters merged, and the finest
    start), and by RANDOM_STARTS random starts as in ``solve`` (fixed seed), keeping the
    lowest (see ``_Tracer.improve``). Each forward point is thus at least as low as
    ``solve`` warm-started from the continued solution. The moves are only a local search
    (at alpha = 0 a search over partitions with many local optima), so every solution found
    anywhere on the curve is also tried at every other beta (``_pool_seed``, alongside the
    cross-seeding). This is a search, not a certificate: the tests check the points against
    ``solve`` from several seeds and against the encoder T = X.

    Refinement resolves the generalised curve: the optima lie on a concave curve of slope
    1/beta in the plane (H(T) - alpha H(T|X), I(T;Y)) (the envelope theorem, as for
    alpha = 1 with I(X;T) replaced), and neighbours are refined until a piece between them
    is within ``curve_tol`` there; ``accuracy`` is stated in that plane too. The reported
    points, ``bound`` and the envelope are in the (I(X;T), I(T;Y)) plane as usual: there a
    generalised IB solution lies on or below the IB curve (any encoder does), and so does
    the envelope (time-sharing between two encoders achieves every point of a chord).

    Transitions: the split/birth analysis (eigenvalues, invasion rate) is alpha = 1
    theory, so for alpha != 1 ``transitions`` are only the changes of the optimal
    solution's cluster count between neighbouring betas, kind "count", each known to its
    bracket (refined to a relative width COUNT_RTOL where ``locate_transitions``), at its
    midpoint; ``all_transitions`` is the same list. ``first_instability`` and
    ``onset_beta_s_star`` are the IB's (1/s2^2 and 1/s*) and are NaN; ``onset_beta`` is
    the first count change out of one cluster. The default grid is that of alpha = 1
    (beta <= 1 is trivial for every alpha >= 0: H(T) - alpha H(T|X) >= I(X;T) >= I(T;Y)
    for alpha <= 1).
    """
    table, kept_rows, _ = v.check_joint_kept(p_xy, normalize=normalize)
    problem, group = Problem.from_joint(table).compressed()  # exact, see Problem.compressed
    group = user_rows(group, kept_rows)
    v.check_choice(method, name="method", choices={"both", "reverse", "forward"})
    alpha = v.check_real(alpha, name="alpha", low=0.0)
    ib = alpha == 1.0  # the IB itself: its transition theory applies
    n_rows = problem.p_x.size
    max_clusters = (min(n_rows, MAX_DEFAULT_CLUSTERS, max(2, MAX_ENCODER_ENTRIES // n_rows))
                    if max_clusters is None
                    else min(v.check_int(max_clusters, name="max_clusters", low=1), n_rows))
    n_betas = v.check_int(n_betas, name="n_betas", low=2)
    max_points = v.check_int(max_points, name="max_points", low=2)
    curve_tol = v.check_real(curve_tol, name="curve_tol", low=0.0, low_inclusive=False)
    tol = v.check_real(tol, name="tol", low=0.0)
    max_iter = v.check_int(max_iter, name="max_iter", low=1)
    lagrangian_tol = (1e-3 * curve_tol if lagrangian_tol is None
                      else v.check_real(lagrangian_tol, name="lagrangian_tol", low=0.0))
    kernel = get_backend(v.check_choice(backend, name="backend",
                                        choices={"auto", "cpp", "numba", "numpy"}))
    digest = _table_digest(problem.p_xy)
    if ib and conditional_entropy(problem.p_xy) < 1e-12 and problem.p_y.size > 1:
        return _deterministic_curve(problem, group, betas=betas, n_betas=n_betas,
                                    max_iter=max_iter, backend=backend, progress=progress,
                                    interruptible=interruptible, digest=digest,
                                    return_encoders=return_encoders, resume=resume)
    if betas is None:
        grid, refine = _default_grid(problem, n_betas), True
    else:
        grid = np.unique(np.asarray(betas, dtype=np.float64))
        if grid.size == 0 or np.any(~np.isfinite(grid)) or np.any(grid < 0):
            raise ValueError(f"betas must be finite and non-negative (got {np.asarray(betas)})")
        refine = False
    # what shapes the curve: a resumed run must match it
    settings = {"alpha": alpha, "method": method, "grid": grid, "refine": refine,
                "curve_tol": curve_tol, "max_points": max_points, "tol": tol,
                "lagrangian_tol": lagrangian_tol, "max_iter": max_iter,
                "accelerate": bool(accelerate), "locate_transitions": bool(locate_transitions),
                "merge_tol": float(merge_tol), "max_clusters": int(max_clusters)}
    if resume is not None:
        _check_resume(resume, settings, digest)
        if resume.complete:
            return resume

    tracer = _Tracer(problem, kernel=kernel, tol=tol, max_iter=max_iter, n_threads=n_threads,
                     merge_tol=merge_tol, accelerate=bool(accelerate),
                     lagrangian_tol=lagrangian_tol, max_clusters=max_clusters, alpha=alpha)
    # (resumed: the points traced before the interruption, and the forward branch's splits)
    fwd, rev, fwd_transitions = _seeds(resume)
    passed: dict = {}  # the forward branch as its pass left it, before cross-seeding
    # the total is the most grid solves there can be (refinement stops at max_points), so
    # the percentage never goes back; a curve done earlier jumps to 100% at the end
    bar = _progress(progress, total=(max(max_points, grid.size) if refine else grid.size)
                    * (2 if method == "both" else 1))
    complete = True
    try:
        if method in ("both", "reverse"):
            before, last = None, None
            for b in grid[::-1]:
                if b in rev:  # traced before an interruption (resume)
                    res = rev[b]
                else:
                    res = tracer.top_solve(b) if last is None else \
                        tracer.solve(tracer.predicted(before, last, b), b)
                    rev[b] = res
                before, last = last, res
                bar.update()
        if method in ("both", "forward"):
            if grid[0] not in fwd:
                prev = tracer.solve(tracer.trivial_state(), grid[0])
                fwd[grid[0]] = prev if ib else tracer.improve(prev, grid[0])
            prev, before = fwd[grid[0]], None
            bar.update()
            for b in grid[1:]:
                if b in fwd:  # traced before an interruption (resume)
                    before, prev = prev, fwd[b]
                else:
                    before, prev = prev, tracer.forward_step(prev, b, locate_transitions,
                                                             fwd_transitions, before)
                    fwd[b] = prev
                bar.update()
            passed = dict(fwd)
        # the branches learn from each other before refinement: where they then agree on
        # both sides of a new beta, one solve serves both (see _refine)
        rounds = 3 if method == "both" or not ib else 0
        restarted_at: dict = {"identity": set(), "random": set()}
        for round_ in range(rounds):
            pooled = not ib and _pool_seed(tracer, fwd, rev)
            # (only where restarts are affordable: the count changes are not even looked for
            # on larger tables)
            restarted = ib and n_rows <= RESTART_MAX_ROWS and _restarts(
                tracer, fwd, rev, _restart_betas(fwd, rev, grid, restarted_at))
            improved = _cross_seed(tracer, fwd, rev) or pooled or restarted
            if round_ > 0 and not improved:
                break
            if refine:
                _refine(tracer, fwd, rev, method, curve_tol, max_points, bar, locate_transitions)
        else:
            if rounds and refine:  # the last refinement's points learn from the others too
                _cross_seed(tracer, fwd, rev)
        if refine and rounds == 0:
            _refine(tracer, fwd, rev, method, curve_tol, max_points, bar, locate_transitions)
    except KeyboardInterrupt:
        if not interruptible or not (fwd or rev):
            raise
        complete = False
        warnings.warn("ib_curve interrupted: returning the part traced so far", RuntimeWarning)
    finally:
        if complete:
            bar.total = bar.n
            bar.refresh()
        bar.close()

    best = _best_points(fwd, rev)
    curve_betas = np.array(sorted(best))
    # an interrupted run reports what it has without further solves (a second signal
    # would lose it all); a split whose step was cut short has no point to belong to
    located = complete and locate_transitions
    fwd_transitions = [t for t in fwd_transitions if t.beta_bracket[1] in fwd]
    if not complete:
        # a split the forward pass located is continuous there (a cluster splitting into
        # two equal children), so its values just after are those just before; what it
        # holds as "after" is its bracket's end, whose limits _with_limits would solve for
        fwd_transitions = [replace(t, i_xt_after=t.i_xt_before, i_ty_after=t.i_ty_before)
                           if t.located else t for t in fwd_transitions]
    if ib:
        transitions = fwd_transitions + _reverse_transitions(tracer, rev, located)
        if located:
            transitions = _mark_optimal(tracer, transitions, fwd, rev, best)
            transitions = [_with_limits(tracer, t, passed if t.branch == "forward" else rev)
                           for t in transitions]
            transitions += [_locate_jump(tracer, t, fwd, rev) for t in _jumps(fwd, rev, best)]
        else:
            transitions = [replace(t, optimal=best[t.beta_bracket[1]][1] == t.branch)
                           for t in transitions]
            transitions += _jumps(fwd, rev, best)
        transitions = _chain(transitions, best)
    else:
        transitions = _count_changes(best)
    transitions.sort(key=lambda t: t.beta)
    results = [best[b][0] for b in curve_betas]
    # where an optimal point uses every cluster allowed, the cap binds: the points from there
    # on solve the capped problem, whose curve lies below; the curve ends before them
    bound_by_cap = [r.n_clusters >= max_clusters for r in results] if max_clusters < n_rows \
        else [False] * len(results)
    capped = any(bound_by_cap)
    end = bound_by_cap.index(True) if capped else len(results)
    if end > 0:  # (an interrupted run may hold capped points only: then nothing is known)
        curve_betas, results = curve_betas[:end], results[:end]
    onset, onset_bracket = _onset(transitions, best)
    # (interrupted: no second ascent towards the onset; 12 to 16 s after the signal on a
    # 20 x 20 Gaussian, where a scheduler's SIGKILL may follow its SIGTERM within seconds)
    located_onset = onset_bracket is None and np.isfinite(onset)  # (see _onset)
    s_star = _s_star(problem, fwd, rev, onset if complete and located_onset else np.nan) \
        if ib else np.nan
    if ib and complete and located_onset and abs(onset * s_star - 1.0) > ONSET_RTOL:
        warnings.warn(f"ib_curve: the onset beta_0 = {onset:.9g} and 1/s* = {1 / s_star:.9g} "
                      f"differ by {abs(onset * s_star - 1.0):.2g} (relative): one of them is "
                      f"not exact", OptimalityWarning, stacklevel=3)
    h_sufficient = float(entropy(problem.p_x))  # H(S), S the minimal sufficient statistic
    i_xy = mutual_information(problem.p_xy)
    env_x, env_y = upper_concave_envelope(
        np.concatenate([[0.0, h_sufficient], [r.i_xt for r in results]]),
        np.concatenate([[0.0, i_xy], [r.i_ty for r in results]]))
    chord = [_chord_gap(r0, r1, alpha) for r0, r1 in zip(results[:-1], results[1:])]
    accuracy = max(chord, default=0.0) + lagrangian_tol / max(curve_betas[0], 1.0)
    # past the last point the envelope is the chord to (H(X), I(X;Y)); where the cap cut
    # the curve short that is a real gap, and nothing is known if it left no point
    accuracy = max(accuracy, _truncation_gap(results[-1], h_sufficient, i_xy, alpha)
                   if end > 0 else np.inf)
    # (refinement also stops at relative beta gaps of BIRTH_RTOL, where a first-order
    # transition leaves a chord it cannot shorten: no knob to name there)
    if refine and complete and (capped or len(best) >= max_points) \
            and accuracy > 1.01 * curve_tol + lagrangian_tol:
        knob = (f"max_clusters={max_clusters} bound" if capped
                else f"refinement stopped at max_points={max_points}")
        warnings.warn(f"ib_curve: the curve is known to {accuracy:.3g} bit, not curve_tol="
                      f"{curve_tol:.3g}: {knob}; raise it", ConvergenceWarning, stacklevel=3)
    logger.info("ib_curve: %d betas, %d solves, %d transitions", curve_betas.size,
                tracer.n_solves, len(transitions))
    return IBCurve(
        beta=curve_betas,
        i_xt=np.array([r.i_xt for r in results]), i_ty=np.array([r.i_ty for r in results]),
        h_t=np.array([r.h_t for r in results]),
        lagrangian=np.array([r.lagrangian for r in results]),
        n_clusters=np.array([n_distinct(r) for r in results]),
        n_iter=np.array([r.n_iter for r in results]),
        converged=np.array([r.converged for r in results]),
        branch=np.array([best[b][1] for b in curve_betas]),
        envelope_i_xt=env_x, envelope_i_ty=env_y,
        transitions=tuple(t for t in transitions if t.optimal),
        all_transitions=tuple(transitions),
        branches={name: Branch(name, tuple(d[b] for b in sorted(d)))
                  for name, d in (("forward", fwd), ("reverse", rev)) if d},
        i_xy=i_xy, h_y=problem.h_y,
        first_instability=problem.first_instability if ib else np.nan,
        onset_beta=onset, onset_beta_s_star=(np.nan if not ib
                                             else 1.0 / s_star if s_star > 0 else np.inf),
        encoders=(tuple(in_user_rows(tracer.encoder(r), r.p_t, group) for r in results)
                  if return_encoders else None),
        complete=complete, accuracy=float(accuracy), capped=capped, max_clusters=max_clusters,
        alpha=alpha, onset_bracket=onset_bracket, settings=settings, table_digest=digest)


def _deterministic_curve(problem, group, *, betas, n_betas, max_iter, backend, progress,
                         interruptible, digest, return_encoders, resume) -> IBCurve:
    """ib_curve's options carried to the squared IB of a deterministic rule (see
    :func:`ibsolver.deterministic.squared_ib_curve`): the grid (its betas are the squared
    Lagrangian's), max_iter, progress, interruption, resumption, encoders in the user's
    rows. The options of annealing and refinement have nothing to act on; a BA backend
    asked for by name is not what runs, and that is said."""
    if backend not in ("auto", "numpy"):
        warnings.warn(f"ib_curve: Y is a function of X, so the curve comes from the squared IB "
                      f"(numpy and scipy's L-BFGS-B), not the {backend!r} backend; the points "
                      "record backend='numpy'", UserWarning, stacklevel=3)
    grid = squared_grid(problem.h_y, betas, n_betas)
    if grid.size == 0 or np.any(~np.isfinite(grid)) or np.any(grid < 0):
        raise ValueError(f"betas must be finite and non-negative (got {np.asarray(betas)})")
    settings = {"alpha": 1.0, "method": "squared", "grid": grid, "max_iter": max_iter}
    if resume is not None:
        _check_resume(resume, settings, digest)
        if resume.complete:
            return resume
    seeds = ({r.beta: r for r in resume.branches["squared"].results}
             if resume is not None else None)
    return squared_ib_curve(problem.p_xy, betas=grid, max_iter=max_iter, progress=progress,
                            interruptible=interruptible,
                            group=group, return_encoders=return_encoders, seeds=seeds,
                            settings=settings, table_digest=digest)


def _table_digest(p_xy: np.ndarray | scipy.sparse.csr_matrix) -> str:
    """SHA-256 of the (reduced) table's shape and of its rows' float64 bytes, the rows taken
    in the order of their own SHA-256: what a resumed run must match. Row order does not
    change the IB, and the reduced table's rows come in another order for a CSR table
    (see _tables.row_groups); a CSR table is made dense a block of rows at a time."""
    block = max(1, DIGEST_BLOCK // max(p_xy.shape[1], 1))
    rows = []
    for start in range(0, p_xy.shape[0], block):
        chunk = np.ascontiguousarray(dense(p_xy[start:start + block]), dtype=np.float64)
        rows += [hashlib.sha256(row.tobytes()).digest() for row in chunk]
    digest = hashlib.sha256(repr(p_xy.shape).encode())
    for row in sorted(rows):
        digest.update(row)
    return digest.hexdigest()


def reduced_table_digest(p_xy: ArrayLike | scipy.sparse.spmatrix) -> str:
    """The ``table_digest`` that ``ib_curve(p_xy)`` records (see :meth:`IBCurve.traced_for`)."""
    table, _, _ = v.check_joint_kept(p_xy)
    return _table_digest(Problem.from_joint(table).compressed()[0].p_xy)


def _check_resume(resume, settings: dict, digest: str) -> None:
    """A ValueError naming what differs between ``resume`` and this call, if anything."""
    if not isinstance(resume, IBCurve):
        raise TypeError(f"resume must be an IBCurve (got {type(resume).__name__})")
    if resume.table_digest != digest:
        raise ValueError("resume: that curve was traced for another table (its SHA-256 "
                         f"{resume.table_digest[:12] or 'unknown'}..., this table's "
                         f"{digest[:12]}...)")
    for key, value in settings.items():
        saved = resume.settings.get(key)
        same = (np.array_equal(np.asarray(saved, dtype=np.float64), value) if key == "grid"
                else saved == value)
        if not same:
            if key == "grid":
                saved, value = _grid_text(saved), _grid_text(value)
            raise ValueError(f"resume: that curve was traced with {key}={saved}, this call "
                             f"asks for {key}={value}; call with the same options to resume it")


def _grid_text(grid) -> str:
    grid = np.asarray(grid, dtype=np.float64)
    if grid.size == 0:
        return "[]"
    return f"[{grid.size} betas from {grid[0]:.6g} to {grid[-1]:.6g}]"


def _seeds(resume) -> tuple:
    """(forward points, reverse points, forward splits) to start from: empty, or those of
    the interrupted curve ``resume`` (its splits as the forward branch recorded them)."""
    if resume is None:
        return {}, {}, []
    points = {name: {r.beta: r for r in br.results} for name, br in resume.branches.items()}
    splits = [replace(t, optimal=True) for t in resume.all_transitions
              if t.branch == "forward" and t.kind == "split"]
    return points.get("forward", {}), points.get("reverse", {}), splits


def _progress(enabled, total):
    """A tqdm bar over the grid solves, or one that shows nothing."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="IB curve", unit="solve", disable=not enabled)


def _best_points(fwd: dict, rev: dict) -> dict:
    """beta -> (result, branch name): the lower Lagrangian. Lagrangians within 1e-10 bit are
    the same solution reached twice; then fewer clusters, then the reverse branch, win."""
    best = {}
    for b in set(fwd) | set(rev):
        cands = [(d[b], name) for name, d in (("reverse", rev), ("forward", fwd)) if b in d]
        low = min(r.lagrangian for r, _ in cands)
        cands = [c for c in cands if c[0].lagrangian <= low + 1e-10]
        best[b] = min(cands, key=lambda c: n_effective(c[0]))
    return best


def _cost(result: IBResult, alpha: float) -> float:
    """The Lagrangian's cost term H(T) - alpha H(T|X) (bits): I(X;T) for alpha = 1, in
    general (1 - alpha) H(T) + alpha I(X;T). Against I(T;Y) the optima at beta lie on a
    concave curve of slope 1/beta (dL/dbeta = -I(T;Y)), which refinement resolves."""
    if alpha == 1.0:
        return result.i_xt
    return (1.0 - alpha) * result.h_t + alpha * result.i_xt


def _truncation_gap(last: IBResult, h_x: float, i_xy: float, alpha: float = 1.0) -> float:
    """How far the true curve may lie above the envelope beyond the last point (bits): it
    lies below the tangent there (slope 1/beta) and below I(X;Y), and the envelope follows
    the chord to (H(X), I(X;Y)); the largest gap is at the tangent's corner. For alpha != 1
    the same in the plane of the cost H(T) - alpha H(T|X) (see _cost), which is H(X) at
    the end point T = X."""
    x = _cost(last, alpha)
    if h_x <= x or i_xy <= last.i_ty:
        return 0.0
    corner = x + (i_xy - last.i_ty) * last.beta
    return float((i_xy - last.i_ty) * max(0.0, 1.0 - (corner - x) / (h_x - x)))


def _chord_gap(r_lo: IBResult, r_hi: IBResult, alpha: float) -> float:
    """How far the curve can lie above the chord joining two optima (bits), at betas
    beta_lo < beta_hi. It is concave and lies below both points' tangents (slopes 1/beta_lo
    and 1/beta_hi), so at most as far as the tangents' crossing: the height of that
    triangle over the chord, dx (s_lo - m)(m - s_hi) / (s_lo - s_hi) for a chord of slope m.
    (At most dx (s_lo - s_hi) / 4, reached where m is halfway; a straight piece, such as
    the time-sharing segment of a first-order transition, has m at one end: no gap.)"""
    dx = _cost(r_hi, alpha) - _cost(r_lo, alpha)
    if dx <= 0.0 or r_lo.beta <= 0.0:  # (the same point, up to round-off)
        return 0.0
    s_lo, s_hi = 1.0 / float(r_lo.beta), 1.0 / float(r_hi.beta)
    m = (r_hi.i_ty - r_lo.i_ty) / dx
    if np.isinf(s_lo):  # (a subnormal beta_lo: the triangle's limit, not inf / inf)
        return float(dx * max(m - s_hi, 0.0))
    return float(dx * max(s_lo - m, 0.0) * max(m - s_hi, 0.0) / (s_lo - s_hi))


def _refine(tracer, fwd, rev, method, curve_tol, max_points, bar, locate):
    """Insert betas between neighbours whose optimal points differ too much: by more than
    ``curve_tol`` from a concave piece between them, by a jump between branches, and (where
    transitions are to be ``locate``d) by their cluster counts."""
    while True:
        best = _best_points(fwd, rev)
        bs = sorted(best)
        if len(bs) >= max_points:
            logger.info("refinement stopped at max_points=%d", max_points)
            return
        end = tracer.cap_end(fwd, rev)
        todo = []  # (priority, beta): the largest chord gaps first, then brackets to narrow
        for lo, hi in zip(bs[:-1], bs[1:]):
            if lo >= end:
                break
            (r0, br0), (r1, br1) = best[lo], best[hi]
            gap = (hi - lo) / lo
            # a concave piece between them lies at most this far above its chord: resolve
            # the curve to curve_tol bits
            deficit = _chord_gap(r0, r1, tracer.alpha)
            if deficit > curve_tol and gap > BIRTH_RTOL:
                todo.append((deficit, np.sqrt(lo * hi)))
            elif ((locate and n_effective(r0) != n_effective(r1) and gap > COUNT_RTOL)
                  or (br0 != br1 and abs(r1.i_xt - r0.i_xt) > JUMP_BITS and gap > BIRTH_RTOL)):
                todo.append((0.0, np.sqrt(lo * hi)))
        if not todo:
            return
        todo.sort(key=lambda item: -item[0])  # (stable: brackets in order of beta)
        todo = [beta for _, beta in todo[: max_points - len(bs)]]
        for mid in todo:
            above = min((b for b in rev if b > mid), default=None)
            below = max((b for b in fwd if b < mid), default=None)
            step = {"reverse": lambda: tracer.solve(tracer.state(rev[above]), mid),
                    "forward": lambda: tracer.forward_step(fwd[below], mid, False, [])}
            done = {}  # branch name -> its solve at mid
            leading = (_leading_branch(fwd, rev, below, above,
                                       tracer.opts["lagrangian_tol"], locate)
                       if method == "both" else None)
            if leading is not None:
                # one branch is as low as the other on both sides: its one solve stands for
                # both, unless it ends above what a neighbour's solution reaches at mid
                res = done[leading] = step[leading]()
                ends = [min(fwd[b], rev[b], key=lambda r: r.lagrangian) for b in (below, above)]
                if res.lagrangian <= _tangent_bound(*ends, beta=mid) + 1e-10:
                    done["forward" if leading == "reverse" else "reverse"] = res
            for name, branch in (("reverse", rev), ("forward", fwd)):
                if method in ("both", name):
                    branch[mid] = done[name] if name in done else step[name]()
                    bar.update()


def _tangent_bound(*results: IBResult, beta: float) -> float:
    """The lowest Lagrangian the encoders of ``results`` reach at ``beta``: each one's
    Lagrangian is linear in beta with slope -I(T;Y), so the optimum there is at most this."""
    return min(r.lagrangian - r.i_ty * (beta - r.beta) for r in results)


def _leading_branch(fwd: dict, rev: dict, below, above, lagrangian_tol: float,
                    locate: bool):
    """The branch ("reverse" first, or "forward") whose points at ``below`` and ``above``
    are as low as the other's (to what two solves stopped by ``lagrangian_tol`` can leave
    apart), else None. Where transitions are to be ``locate``d, None also where either
    branch's cluster count changes between the two: each branch's own step is what finds
    and locates a transition."""
    if below is None or above is None or not all(b in d for b in (below, above)
                                                  for d in (fwd, rev)):
        return None
    if locate and any(n_effective(d[below]) != n_effective(d[above]) for d in (fwd, rev)):
        return None
    slack = 2 * lagrangian_tol + 1e-10
    for name, own, other in (("reverse", rev, fwd), ("forward", fwd, rev)):
        if all(own[b].lagrangian <= other[b].lagrangian + slack for b in (below, above)):
            return name
    return None


def _restart_betas(fwd: dict, rev: dict, grid: np.ndarray, done: dict) -> tuple[list, list]:
    """Where the next restarts go (see _restarts): (betas to restart from the identity
    encoder, betas to restart from random encoders). Both start with the first grid; then
    the identity start goes to every beta of the curve not restarted yet (refinement
    inserts them), the random ones to the betas on both sides of each change of the optimal
    count of distinct decoders (near-copies come and go without a transition: see
    n_distinct). Each beta once per kind (``done`` records them, by kind). Local analysis
    (splits, invaders) cannot see a first-order birth: on a 22 x 6 stress problem an
    11-cluster point at beta 8.77 was stable to both while a 12-cluster solution lay 1.8e-5
    bit lower, and the curve was 2.6e-4 bit high at 8.85, next to where the count changed."""
    if not done["identity"]:
        identity, random = list(grid), list(grid)
    else:
        best = _best_points(fwd, rev)
        identity = sorted(best)
        random = [b for lo, hi in zip(identity[:-1], identity[1:])
                  if n_distinct(best[lo][0]) != n_distinct(best[hi][0]) for b in (lo, hi)]

    def not_done(kind, betas):
        betas = [b for b in dict.fromkeys(betas) if b not in done[kind]]
        done[kind].update(betas)
        return betas

    return not_done("identity", identity), not_done("random", random)


def _restarts(tracer, fwd: dict, rev: dict, betas: tuple[list, list]) -> bool:
    """Solve the ``betas`` of _restart_betas again (ib_curve calls this on problems of at
    most RESTART_MAX_ROWS rows): the first from the identity encoder (one cluster per row,
    where the cap allows), the second from RESTARTS random encoders (one cluster per row,
    Dirichlet(1) rows, as :func:`ibsolver.solve` starts), and put a lower result in place
    of the worse branch's point there; cross-seeding then carries it to the neighbours. Each restart has the point
    there as its ceiling: it stops once it is sure to end above it. Annealing both ways
    passes by optima that neither branch reaches (a 5 x 4 table at beta = 5.15: 6.6e-3 bit
    lower than both). On 40 random problems of benchmarks/stress.py (seed 0, 8 points
    each) the random restart halved the points worse than plain BA from 9 random starts
    (8 -> 4), at 1.1 to 2 times the curve's time on problems of 12 to 64 rows; two restarts
    at every beta, refined ones too, cost 5 to 9 times. The identity start at the same
    betas took the 200 problems' failing points from 17 to 2 (the plain BA that beat the
    curve at 15 of them had started from the identity), at 1.1 to 2 times the curve's CPU
    time (with the ceilings); at every beta, refined ones too, it leaves none of 1600.
    Returns whether anything improved."""
    problem = tracer.problem
    n_rows = problem.p_x.size
    improved = False
    end = tracer.cap_end(fwd, rev)  # (the curve ends before it)
    identity, random = (set(b) for b in betas)
    for b in sorted(b for b in identity | random if b <= end):
        own = [d for d in (fwd, rev) if b in d]
        worst = max(own, key=lambda d: d[b].lagrangian)
        best = min(d[b].lagrangian for d in own)
        starts = [State.from_encoder(problem, random_encoder(
            n_rows, min(n_rows, tracer.max_clusters), tracer.rng))
            for _ in range(RESTARTS if b in random else 0)]
        if b in identity and n_rows <= tracer.max_clusters:
            starts.append(tracer.identity_state())
        for start in starts:
            cand = tracer.solve(start, b, ceiling=best)
            if _lower(cand.lagrangian, best):
                worst[b], best, improved = cand, cand.lagrangian, True
    return improved


def _cross_seed(tracer, fwd: dict, rev: dict) -> bool:
    """Let each branch learn from the other: sweep down (reverse) and up (forward) the grid,
    warm starting every beta from the better solution at its neighbour, and keep a result
    that lowers the Lagrangian. Annealing alone can fall off a branch at a saddle-node and
    miss a better one the other direction found. Returns whether anything improved."""
    improved = False
    # across a change of the cluster count the skip below can miss a lower branch, but on
    # larger tables the count changes at almost every beta: re-solving there took a
    # 512 x 4 curve from 538 to 1344 solves (29.5 -> 101.8 s), so only small tables get it
    across_counts = tracer.problem.p_x.size <= RESTART_MAX_ROWS
    end = tracer.cap_end(fwd, rev)  # (the curve ends before it)
    for d, order, step in ((rev, sorted(rev, reverse=True), "down"), (fwd, sorted(fwd), "up")):
        prev_changed = False
        for prev_b, b in zip(order[:-1], order[1:]):
            if b > end:
                continue
            seeds = [r for r in (rev.get(prev_b), fwd.get(prev_b)) if r is not None]
            seed = min(seeds, key=lambda r: r.lagrangian)
            own = d[prev_b].lagrangian
            if (not prev_changed and seed.lagrangian >= own - 1e-10 * (1 + abs(own))
                    and d[b].lagrangian <= _tangent_bound(seed, beta=b) + 1e-10
                    and not (across_counts and n_effective(seed) != n_effective(d[b]))):
                # d[b] was continued from a point as good as any seed here (or from
                # elsewhere: refinement inserts betas), and the seed's own encoder does no
                # better at b. Not across a change of the cluster count: the seed's branch
                # can end below d[b] although its encoder, unsolved, does not (a 35 x 7
                # stress problem: 22 clusters 3.2e-5 bit below the 21 refinement had)
                continue
            cand = tracer.solve(tracer.state(seed), b, ceiling=d[b].lagrangian)
            prev_changed = cand.lagrangian < d[b].lagrangian - 1e-10 * (1 + abs(d[b].lagrangian))
            if prev_changed:
                d[b] = cand
                improved = True
        logger.debug("cross-seeding sweep %s done", step)
    return improved


def _reverse_transitions(tracer, rev: dict, locate: bool) -> list:
    """Cluster births and merges seen going down the reverse branch.

    Where the count of clusters drops, the lightest cluster is tried as a birth (root of
    the invasion rate G = 1); failing that the drop is a merge, which going up is a split
    located by the eigen-analysis. A drop neither explains is logged and kept as a birth
    known only to its bracket. Without ``locate``, every drop is kept at its bracket
    midpoint, a split if the lightest new cluster's decoder lies within BIRTH_DISTANCE of
    one below, else a birth.
    """
    out = []
    bs = sorted(rev)
    for lo, hi in zip(bs[:-1], bs[1:]):
        r_lo, r_hi = rev[lo], rev[hi]
        if n_effective(r_lo) >= n_effective(r_hi):
            continue
        t = int(np.argmin(r_hi.p_t[r_hi.p_t > BIRTH_MASS]))
        kind = "birth"
        if locate:
            located = tracer.locate_birth(r_lo, r_hi, t)
            if located is not None and not lo < located[0] < hi:
                located = None  # a root on the bracket's end locates nothing (at beta = 0)
            if located is None:
                splits = _merge_as_split(tracer, r_lo, r_hi)
                if splits:
                    out.extend(splits)
                    continue
                logger.warning("cluster count changes on (%g, %g) with neither a birth nor a "
                               "split found; reported as a birth at the bracket midpoint", lo, hi)
        else:
            located = None
            if _decoder_distance(r_lo, _heavy_decoder(r_hi, t)) <= BIRTH_DISTANCE:
                kind = "split"
        b_star, base = located if located else (0.5 * (lo + hi), r_lo)
        out.append(Transition(
            beta=b_star, kind=kind, branch="reverse",
            n_clusters_before=n_distinct(r_lo), n_clusters_after=n_distinct(r_hi),
            i_xt_before=base.i_xt, i_xt_after=r_hi.i_xt, i_ty_before=base.i_ty,
            i_ty_after=r_hi.i_ty, beta_bracket=(lo, hi),
            # dL/dbeta = -I(T;Y): at b_star (the midpoint, where the birth was not located)
            lagrangian=base.lagrangian - base.i_ty * (b_star - base.beta),
            located=located is not None))
    return out


def _merge_as_split(tracer, r_lo: IBResult, r_hi: IBResult) -> list:
    """A merge going down the reverse branch is a split going up: locate it by the
    eigen-analysis from the merged solution ``r_lo``."""
    found: list = []
    tracer.forward_step(r_lo, r_hi.beta, True, found)
    return [replace(t, branch="reverse") for t in found]


def _mark_optimal(tracer, transitions, fwd, rev, best) -> list:
    """Flag transitions whose branch is optimal (to 1e-8 relative) at the transition beta,
    against the other branch solved there; of one split seen from both branches keep the
    optimal copy (the forward one if both are). A transition known only to its bracket has
    no beta to compare at (at the midpoint either side may already be optimal): it is
    optimal where its branch is at the bracket's upper end (``best``)."""
    def other_lagrangian(name, beta):
        d = fwd if name == "forward" else rev
        side = [b for b in d if b <= beta] if name == "forward" else [b for b in d if b >= beta]
        if not side:
            return np.inf
        start = d[max(side)] if name == "forward" else d[min(side)]
        return tracer.solve(tracer.state(start), beta).lagrangian

    flagged = []
    for t in transitions:
        optimal = True
        if not t.located:
            optimal = best[t.beta_bracket[1]][1] == t.branch
        elif fwd and rev and t.kind != "jump":
            other = "reverse" if t.branch == "forward" else "forward"
            # at a critical point the other branch converges only algebraically: compare
            # to a tolerance well above its residual error, far below a branch's real lead
            slack = 1e-8 * (1.0 + abs(t.lagrangian))
            optimal = t.lagrangian <= other_lagrangian(other, t.beta) + slack
        flagged.append(Transition(**{**t.__dict__, "optimal": bool(optimal)}))
    out = []
    for t in sorted(flagged, key=lambda t: (not t.optimal, t.branch != "forward", t.beta)):
        if not any(abs(t.beta - u.beta) <= 1e-5 * t.beta and t.kind == u.kind for u in out):
            out.append(t)
    return _demote_twins(sorted(out, key=lambda t: t.beta))


def _demote_twins(transitions: list) -> list:
    """A birth on one branch and a split on the other, between the same cluster counts and
    within TWIN_RTOL of each other, are one transition: a first-order split, where the new
    solution appears (the birth) slightly before the old one loses stability (the split).
    Both pass the optimality test, whose slack exceeds the branches' tiny difference there;
    only the earlier one is where the optimum changes, so the later one is not optimal."""
    out = list(transitions)
    for i, t in enumerate(out):
        for u in out[:i]:
            if (u.optimal and t.optimal and {t.kind, u.kind} == {"birth", "split"}
                    and t.branch != u.branch and t.beta - u.beta <= TWIN_RTOL * u.beta
                    and (t.n_clusters_before, t.n_clusters_after)
                    == (u.n_clusters_before, u.n_clusters_after)):
                out[i] = replace(t, optimal=False)
                break
    return out


def _with_limits(tracer, t: Transition, branch: dict) -> Transition:
    """A located transition with its values just above its beta as limits, not the end of
    its bracket. A birth is continuous (the new cluster's mass grows from zero): the values
    are those just below, one more cluster. A split's branch (``branch``: its points as its
    own pass or reverse sweep left them, not replaced by cross-seeding) is solved at beta
    (1 + LIMIT_RTOL), continued down from its first point above: where that lies within
    JUMP_BITS of the values below, the split is continuous and shows no jump (the children
    start equal); otherwise it is first-order and shows the values it jumps to."""
    if not t.located or t.kind not in ("birth", "split"):
        return t
    if t.kind == "birth":
        return replace(t, n_clusters_after=t.n_clusters_before + 1, i_xt_after=t.i_xt_before,
                       i_ty_after=t.i_ty_before)
    above = min(b for b in branch if b > t.beta)
    res = tracer.solve(tracer.state(branch[above]), t.beta * (1.0 + LIMIT_RTOL), grow=False)
    if abs(res.i_xt - t.i_xt_before) <= JUMP_BITS:
        # (the children start equal: just above the split they may still lie within
        # DISTINCT_DECODER of each other, yet the limit from above has one more cluster)
        return replace(t, n_clusters_after=max(n_distinct(res), t.n_clusters_before + 1),
                       i_xt_after=t.i_xt_before, i_ty_after=t.i_ty_before)
    return replace(t, n_clusters_after=n_distinct(res), i_xt_after=res.i_xt,
                   i_ty_after=res.i_ty)


def _locate_jump(tracer, t: Transition, fwd: dict, rev: dict) -> Transition:
    """A jump located where the two branches' Lagrangians cross, with both branches' values
    there. Each branch is continued to a trial beta from its side of the bracket (the one
    optimal below from below, the other from above), and the trial moves by a Newton step on
    the difference of the Lagrangians, whose slope is the difference of I(T;Y) (dL/dbeta =
    -I(T;Y)), until it moves by less than SPLIT_RTOL. Left as it was (known to its bracket)
    where the two meet as one solution or the crossing leaves the bracket."""
    lo, hi = t.beta_bracket
    name_lo, name_hi = t.branch.split("->")
    low = fwd if name_lo == "forward" else rev
    high = fwd if name_hi == "forward" else rev
    beta = t.beta
    for _ in range(JUMP_STEPS):
        a = tracer.solve(tracer.state(low[lo]), beta)
        b = tracer.solve(tracer.state(high[hi]), beta)
        slope = b.i_ty - a.i_ty  # d(L_a - L_b)/dbeta
        if abs(a.i_xt - b.i_xt) <= JUMP_BITS or slope <= 0:
            return t
        step = -(a.lagrangian - b.lagrangian) / slope  # Newton on L_a - L_b
        beta, moved = beta + step, abs(step)
        if not lo < beta < hi:
            return t
        if moved <= SPLIT_RTOL * beta:
            return replace(t, beta=beta, located=True, n_clusters_before=n_distinct(a),
                           n_clusters_after=n_distinct(b), i_xt_before=a.i_xt,
                           i_xt_after=b.i_xt, i_ty_before=a.i_ty, i_ty_after=b.i_ty,
                           lagrangian=a.lagrangian - a.i_ty * step)
    return t


def _jumps(fwd: dict, rev: dict, best: dict) -> list:
    """Places where the two branches, distinct solutions at both ends of an interval,
    exchange optimality: I(X;T) of the optimum is discontinuous there."""
    out = []
    bs = sorted(b for b in best if b in fwd and b in rev)
    for lo, hi in zip(bs[:-1], bs[1:]):
        (r0, br0), (r1, br1) = best[lo], best[hi]
        distinct = all(abs(fwd[b].i_xt - rev[b].i_xt) > JUMP_BITS for b in (lo, hi))
        if br0 != br1 and distinct:
            out.append(Transition(
                beta=0.5 * (lo + hi), kind="jump", branch=f"{br0}->{br1}",
                n_clusters_before=n_distinct(r0), n_clusters_after=n_distinct(r1),
                i_xt_before=r0.i_xt, i_xt_after=r1.i_xt, i_ty_before=r0.i_ty,
                i_ty_after=r1.i_ty, beta_bracket=(lo, hi), located=False))
    return out


def _chain(transitions: list, best: dict) -> list:
    """The optimal transitions made to chain along the optimal path: each starts with the
    cluster count the one before it left (from the count at the lowest beta), and the last
    leaves the count at the highest. Where the optimal path's count changes with no
    transition found for it (two events in one bracket of betas, only one of them
    located), a transition of kind "count" is added, known to the bracket of optimal points
    where the count changes; an optimal transition whose change is already counted (a copy
    of one before it in the same bracket), or a split, birth or count change that changes
    no count of distinct decoders (it added a near-copy: see n_distinct), is listed as not
    optimal."""
    bs = sorted(best)
    counts = {b: n_distinct(best[b][0]) for b in bs}
    out = [t for t in transitions if not t.optimal]
    n, at = counts[bs[0]], None  # the count so far, and the transition that left it
    for t in sorted((t for t in transitions if t.optimal), key=lambda t: t.beta):
        if ((t.n_clusters_before != n and t.n_clusters_after == n)
                or (t.kind != "jump" and t.n_clusters_after == t.n_clusters_before)):
            out.append(replace(t, optimal=False))
            continue
        if t.n_clusters_before != n:
            out.append(_count_change(best, counts, at, n, t.n_clusters_before, t))
        out.append(t)
        n, at = t.n_clusters_after, t
    # (a transition at the last beta, known only to its bracket's end, has no point
    # above it to show another change)
    if n != counts[bs[-1]] and (at is None or at.beta < bs[-1]):
        out.append(_count_change(best, counts, at, n, counts[bs[-1]], None))
    return out


def _count_change(best, counts, prev, n_before, n_after, nxt) -> Transition:
    """A change of the optimal path's count from ``n_before`` to ``n_after`` between the
    transitions ``prev`` and ``nxt`` (None: the ends of the curve): known to lie between
    the last optimal point (or ``prev``) with ``n_before`` clusters and the next point (or
    ``nxt``)."""
    start = -np.inf if prev is None else prev.beta
    until = np.inf if nxt is None else nxt.beta
    inside = [b for b in sorted(best) if start < b < until]
    lows = [b for b in inside if counts[b] == n_before]
    if lows or prev is None:
        lo = lows[-1] if lows else inside[0]
        i_xt, i_ty, lag = best[lo][0].i_xt, best[lo][0].i_ty, best[lo][0].lagrangian
    else:
        lo, i_xt, i_ty, lag = prev.beta, prev.i_xt_after, prev.i_ty_after, prev.lagrangian
    above = [b for b in inside if b > lo]
    if above or nxt is None:
        hi = above[0]
        branch, i_xt_hi, i_ty_hi = best[hi][1], best[hi][0].i_xt, best[hi][0].i_ty
    else:
        hi, branch, i_xt_hi, i_ty_hi = nxt.beta, nxt.branch, nxt.i_xt_before, nxt.i_ty_before
    mid = 0.5 * (lo + hi)
    return Transition(
        beta=mid, kind="count", branch=branch, n_clusters_before=n_before,
        n_clusters_after=n_after, i_xt_before=i_xt, i_xt_after=i_xt_hi, i_ty_before=i_ty,
        i_ty_after=i_ty_hi, beta_bracket=(lo, hi), lagrangian=lag - i_ty * (mid - lo),
        located=False)


def _count_changes(best: dict) -> list:
    """The generalised IB's transitions (alpha != 1): where the optimal solution's cluster
    count differs between neighbouring betas, kind "count", at the bracket's midpoint."""
    out = []
    bs = sorted(best)
    for lo, hi in zip(bs[:-1], bs[1:]):
        (r0, _), (r1, br1) = best[lo], best[hi]
        if n_distinct(r0) != n_distinct(r1):
            out.append(Transition(
                beta=0.5 * (lo + hi), kind="count", branch=br1,
                n_clusters_before=n_distinct(r0), n_clusters_after=n_distinct(r1),
                i_xt_before=r0.i_xt, i_xt_after=r1.i_xt, i_ty_before=r0.i_ty,
                i_ty_after=r1.i_ty, beta_bracket=(lo, hi), located=False))
    return out


def _onset(transitions, best) -> tuple:
    """(first beta with a non-trivial optimum, the bracket of betas known to hold it where it
    was not located, else None): the first optimal transition out of 1 cluster, else the
    first non-trivial point after a trivial one (known to that bracket). NaN where no
    trivial point precedes the first non-trivial one (the lower betas were not traced, or
    the optimum is non-trivial at the lowest beta solved); inf where all are trivial."""
    for t in sorted(transitions, key=lambda t: t.beta):
        if t.optimal and t.n_clusters_before == 1 and t.kind in ("split", "birth", "jump",
                                                                  "count"):
            return float(t.beta), (None if t.located else tuple(t.beta_bracket))
    bs = sorted(best)
    trivial = [best[b][0].i_xt <= TRIVIAL_BITS for b in bs]
    if all(trivial):
        return float("inf"), None
    first = trivial.index(False)
    if first == 0:
        return float("nan"), None
    lo, hi = float(bs[first - 1]), float(bs[first])
    return 0.5 * (lo + hi), (lo, hi)


def _s_star(problem: Problem, fwd: dict, rev: dict, onset: float) -> float:
    """s* = sup_T I(T;Y) / I(X;T) (see :func:`hypercontractivity`), certified by the curve.

    Every point traced is a lower bound (I(T;Y) <= s* I(X;T) for every T), and so is every
    tilt: a located ``onset`` below 1/s* means the generic ascents stopped short or in the
    wrong basin (1.6e-5 relative on a random 16 x 16 table), and the ascent is repeated
    from the tilts of the clusters at the first ONSET_POINTS betas past the onset, to the
    end. A bracketed onset (NaN here) cannot contradict: the first non-trivial point, at
    the bracket's top, has I(T;Y) / I(X;T) >= 1 / beta (a concave curve's chord from the
    origin is steeper than its tangent), so 1/s* is already at most the top. (Run against
    the bracket's midpoint, the repeated ascent took 5.7 of 28.5 s of a curve-only
    gaussian-24 curve.)"""
    s = hypercontractivity(problem.p_xy)[0]
    found = sorted((r for d in (fwd, rev) for r in d.values() if r.i_xt > CERTIFICATE_BITS),
                   key=lambda r: r.beta)
    s = max([s] + [r.i_ty / r.i_xt for r in found])
    if found and onset < (1.0 - ONSET_RTOL) / s:
        with np.errstate(divide="ignore"):
            tilts = np.vstack([r.beta * np.log(r.p_y_given_t / problem.p_y)
                               for r in found[:ONSET_POINTS]])
        s = max(s, tilt_ratio_ascent(problem.p_xy, tilts))
    return s


def phase_transitions(p_xy: ArrayLike | scipy.sparse.spmatrix, **kwargs: Any) -> tuple:
    """The phase transitions on the optimal IB path (see :func:`ib_curve`)."""
    return ib_curve(p_xy, **kwargs).transitions


__all__ = ["ib_curve", "phase_transitions"]
