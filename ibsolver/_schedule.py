"""Which step the one-beta engine (:func:`ibsolver.solve.solve_from_state`) takes next, and
when it stops.

The engine iterates in chunks of BA map evaluations. A chunk is one of four kinds of step:
plain BA (the backend's ``run_iterations``), SQUAREM extrapolation, Newton steps on the
fixed point (:mod:`ibsolver.newton`), or a polish (Newton steps that finish what SQUAREM
brought close). Every step returns an :class:`~ibsolver.backends.Iterated`; the engine
prunes the state after it and hands the outcome to :meth:`Schedule.after`, which says
whether to go on, stop, or try a shortcut (:func:`ibsolver.solve._shortcut`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import newton
from .backends import Iterated
from .measures import LN2

#: map evaluations between checks for empty or coincident clusters
CHUNK = 200
#: where Newton can run (see newton.applicable) it starts after FIRST_CHUNK plain
#: iterations (they settle a warm start's clusters) and is retried after REFUSED_CHUNK
FIRST_CHUNK = 3
REFUSED_CHUNK = 20
#: the chunk that confirms an objective stop after SQUAREM, and the Newton map evaluations
#: that may finish it instead (a polish; see Schedule.after)
VERIFY_CHUNK = 40
POLISH_CHUNK = 12
#: SQUAREM's estimated distance (bits) from the limit below which a polish is tried
POLISH_GAP_BITS = 1e-6
#: iterations before the objective criterion (lagrangian_tol) is consulted where Newton can
#: run: it and the shortcuts get their chance first, since they leave a cleaner state (no
#: dying cluster). Where Newton cannot run there is nothing to wait for: one CHUNK (on a
#: 512 x 4 curve, whose solves at large beta have hundreds of clusters, the median solve
#: there went from 400 to 200 iterations)
OBJECTIVE_MIN_ITER = 5 * CHUNK
#: a solve given a ``ceiling`` is abandoned once its Lagrangian's limit, estimated as the
#: last value less this many times the estimated gap (see _lagrangian_gap), lies above it
ABANDON_GAP_FACTOR = 10.0

#: the kinds of step
PLAIN, SQUAREM, NEWTON, POLISH = "plain", "squarem", "newton", "polish"
#: what :meth:`Schedule.after` says
GO_ON, STOP, SHORTCUT = "go on", "stop", "shortcut"


class Step(NamedTuple):
    """The next chunk: its kind and the most map evaluations it may take."""

    kind: str
    length: int


class Outcome(NamedTuple):
    """What a step returned: its map evaluations' result, and whether Newton met a saddle
    (and pushed off it; Newton steps are ``guarded`` from then on)."""

    iterated: Iterated
    saddle: bool = False


class Schedule:
    """The chunks of one solve: which kind, how long, and when to stop.

    Parameters
    ----------
    shape : (n_x, n_y), the table's shape.
    alpha, accelerate, tol, max_iter, lagrangian_tol : as in ``solve_from_state``.
    squarem_min_work : n_x * n_y * k below which SQUAREM's per-step overhead outweighs it
        (0 where the backend's SQUAREM is compiled).
    shortcut_tried : set of cluster counts at which a shortcut was tried; shared with the
        shortcut's own trial solves, so each count is tried once in all (nested trials
        once tried counts k, k - 1, ... again at every level: 6937 solves for 22 points
        of a capped 1024 x 4 curve).
    newton : whether Newton may run at all (it reads p(y|x) dense: not on a sparse table
        too large to be made dense).
    ceiling : a Lagrangian (the kernel's units, as its history) the caller already has at
        this beta, where only a lower solution is of use (a restart, a cross-seed): the
        solve stops, unconverged, once plain or SQUAREM steps show its limit above it
        (see :meth:`after`).

    Attributes
    ----------
    n_iter : map evaluations so far.
    residual : the last step's residual (inf while a pruned state has not been iterated).
    converged : whether the solve stopped by ``tol`` or by ``lagrangian_tol``.
    abandoned : whether it stopped because its limit lies above ``ceiling``.
    guarded : whether Newton met a saddle: from then on no Newton step from where
        det(I - J) <= 0 (see :func:`ibsolver.newton.newton_iterations`).
    """

    def __init__(self, shape, *, alpha: float, accelerate: bool, tol: float, max_iter: int,
                 lagrangian_tol: float = 0.0, squarem_min_work: int = 0,
                 shortcut_tried: set | None = None, newton: bool = True,
                 ceiling: float = np.inf):
        self.n_x, self.n_y = shape
        self.newton = newton
        self.alpha, self.accelerate = alpha, accelerate
        self.tol, self.max_iter, self.lagrangian_tol = tol, max_iter, lagrangian_tol
        self.squarem_min_work = squarem_min_work
        self.shortcut_tried = set() if shortcut_tried is None else shortcut_tried
        self.ceiling = ceiling
        self.n_iter = 0
        self.residual = np.inf
        self.guarded = False
        self.abandoned = False
        self._objective_stop = False
        self._newton_ok = False  # whether Newton could run at the current step's start
        self._refused = False  # the last chunk was Newton's, ended short of the fixed point
        self._refusals = 0  # Newton chunks in a row that did
        self._polish = self._verify = False  # what the next chunk does after SQUAREM
        self._polish_below = POLISH_GAP_BITS * LN2  # nats, like the kernel's history

    @property
    def converged(self) -> bool:
        return bool(self.residual <= self.tol or self._objective_stop)

    def next_step(self, n_clusters: int) -> Step | None:
        """The chunk to run from a state of ``n_clusters`` clusters; None once max_iter
        map evaluations are spent.

        Where Newton can run: FIRST_CHUNK plain iterations first (they settle a warm
        start), then Newton; after a refusal, a chunk of REFUSED_CHUNK doubling with each
        refusal in a row (where Newton keeps failing, e.g. a zero p(y|t) makes theta
        infinite, this falls back to full CHUNKs, which the objective stop needs: it reads
        one chunk's history), then Newton again. Elsewhere SQUAREM from the start, where it
        pays (e.g. the reverse branch's first solve, from hundreds of clusters), else plain
        BA. A polish or a verify chunk follows SQUAREM (see :meth:`after`); a polish is
        Newton's, however dear.
        """
        left = self.max_iter - self.n_iter
        if left <= 0:
            return None
        self._newton_ok = self.accelerate and self.newton and newton.applicable(self.n_x, n_clusters,
                                                                self.n_y, self.alpha)
        squarem = (SQUAREM if self.accelerate
                   and self.n_x * self.n_y * n_clusters >= self.squarem_min_work else PLAIN)
        # (a polish or verify chunk follows a SQUAREM chunk: never the first, never one
        # after a refusal)
        if self._polish:
            step = Step(POLISH, POLISH_CHUNK)
        elif self._newton_ok and self.n_iter == 0:
            step = Step(PLAIN, FIRST_CHUNK)
        elif self._newton_ok and self._refused:
            step = Step(squarem, min(REFUSED_CHUNK * 2 ** (self._refusals - 1), CHUNK))
        elif self._newton_ok:
            step = Step(NEWTON, VERIFY_CHUNK if self._verify else CHUNK)
        elif self._verify:
            step = Step(PLAIN, VERIFY_CHUNK)
        else:
            step = Step(squarem, CHUNK)
        return step._replace(length=min(step.length, left))

    def after(self, step: Step, outcome: Outcome, *, n_clusters: int, changed: bool) -> str:
        """Take in what ``step`` returned (``n_clusters`` and ``changed``: the state after
        pruning) and say what comes next: STOP, SHORTCUT (once per cluster count, after the
        chunk that follows a refused Newton chunk, where the state did not change) or GO_ON.

        The objective stop (``lagrangian_tol``, see :func:`_lagrangian_gap`) extrapolates
        BA's geometric decrease; SQUAREM's history decreases irregularly and can look
        converged early (on random 37 x 8 to 55 x 6 tables it stopped 2e-9 to 2e-8 bit
        short of the optimum). So once SQUAREM is within POLISH_GAP_BITS, a polish finishes
        the solve where Newton can run at POLISH_MAX_COST (each polish lowers the next
        one's threshold a hundredfold), and otherwise a VERIFY_CHUNK (Newton's where it can
        run, else plain) confirms an objective stop.
        """
        out = outcome.iterated
        after_refusal = self._refused
        self.n_iter += out.n_iter
        self.residual = out.residual
        self.guarded = self.guarded or outcome.saddle
        self._refused = step.kind == NEWTON and out.residual > self.tol
        if step.kind == NEWTON:
            self._refusals = self._refusals + 1 if self._refused else 0
        if out.residual <= self.tol and not changed:
            return STOP
        # (after pruning, the history is not the state's)
        measured = (self.lagrangian_tol > 0 or np.isfinite(self.ceiling)) and not changed
        estimated = _lagrangian_gap(out.history) if measured else np.inf
        if self._above_ceiling(step, out.history, estimated):
            self.abandoned = True
            return STOP
        gap = estimated if self.lagrangian_tol > 0 else np.inf
        objective_met = (self.n_iter >= (OBJECTIVE_MIN_ITER if self._newton_ok else CHUNK)
                         and gap <= self.lagrangian_tol * LN2)
        self._polish = (step.kind == SQUAREM and gap <= self._polish_below and self.newton
                        and newton.applicable(self.n_x, n_clusters, self.n_y, self.alpha,
                                              max_cost=newton.POLISH_MAX_COST))
        if step.kind == POLISH:
            self._polish_below *= 0.01
        self._verify = objective_met and step.kind == SQUAREM and not self._polish
        if objective_met and not (self._polish or self._verify):
            self._objective_stop = True
            return STOP
        if changed:
            self.residual = np.inf  # the pruned state has not been iterated yet
            return GO_ON
        # where Newton failed, try the fixed point BA crawls towards (only there: with
        # Newton out of reach, as for most states once SQUAREM was compiled, 585 trials on
        # a gaussian-24 curve took a third of its map evaluations for 8 accepted)
        if (after_refusal and self.alpha == 1.0 and self.n_iter < self.max_iter
                and n_clusters not in self.shortcut_tried):
            self.shortcut_tried.add(n_clusters)
            return SHORTCUT
        return GO_ON

    def _above_ceiling(self, step: Step, history: np.ndarray, gap: float) -> bool:
        """Whether the Lagrangian's limit lies above the ceiling beyond doubt: the gap is
        estimated (BA's decrease is geometric there) and ABANDON_GAP_FACTOR of it still
        leaves the limit higher. Only after plain or SQUAREM steps (Newton's history says
        nothing of the rate), and not before a CHUNK (a random start's first iterations
        are not yet geometric)."""
        if not (np.isfinite(self.ceiling) and np.isfinite(gap) and history.size
                and step.kind in (PLAIN, SQUAREM) and self.n_iter >= CHUNK):
            return False
        margin = 1e-12 * (1.0 + abs(self.ceiling))
        return bool(history[-1] - ABANDON_GAP_FACTOR * gap > self.ceiling + margin)


def _lagrangian_gap(history: np.ndarray) -> float:
    """Estimated distance (same units as ``history``) of the Lagrangian from its limit.

    BA lowers the Lagrangian monotonically and, away from a critical point, geometrically:
    if it fell by D1 over the first half of the chunk and D2 over the second, the rest of
    the series is about D2 r / (1 - r) with r = D2 / D1. Where convergence is not (yet)
    geometric (r >= 1, a critical point) the gap is unknown: inf."""
    if history.size < 21:
        return np.inf
    half = (history.size - 1) // 2
    h = history[-(2 * half + 1):]  # two halves of equal length
    d1 = h[0] - h[half]
    d2 = h[half] - h[-1]
    noise = 1e-14 * (1.0 + abs(h[-1]))
    if d2 <= noise:
        return max(d2, 0.0)
    r = d2 / d1 if d1 > 0 else np.inf
    return d2 * r / (1.0 - r) if r < 1.0 else np.inf
