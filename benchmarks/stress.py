"""Stress test: every point of ib_curve against plain Blahut-Arimoto from many random starts.

For N seeded random problems (n_x in 2..80, n_y in 2..8, p(x, y) ~ Dirichlet(1); every third
problem with a random third of its entries set to zero, every row and column kept non-zero)
the curve is traced with ``ib_curve(p, locate_transitions=False)`` (the curve-only mode: the
same points, without the extra solves that locate transitions), and at each of its betas (or
at most ``--points-per-curve`` of them, evenly spaced along the curve's betas) the point's
Lagrangian I(X;T) - beta I(T;Y) (bits) is compared with a reference: the lowest Lagrangian
that plain BA reaches (``solve_from_state(..., accelerate=False)``: no Newton, no SQUAREM, no
split/invasion/shortcut steps) from ``--starts`` random encoders (Dirichlet(1) rows, k = n
clusters) plus the identity encoder (one cluster per x), on the compressed problem (x with
equal p(y|x) merged; it has the same curve and the same Lagrangians).

A point fails where curve.lagrangian > reference + threshold (1e-9 bit). Every reference that
beats the curve by more than the threshold is first iterated on from where it stopped (plain
BA, up to CONFIRM_MAX_ITER more iterations) until it converges, so that a failure is never
reported against a reference still on its way; even unconverged, a reference is the exact
Lagrangian of an encoder, hence an achievable value, and continuing can only lower it.

    python benchmarks/stress.py [--n 200] [--seed 0] [--starts 8] [--points-per-curve P]
                                [--only I[,J...]] [--out stress.json]

Problem i of seed s is ``make_problem(s, i)``: it reproduces alone (``--only i``).
tests/test_stress.py runs a small version of the same check with these functions.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

import ibsolver
from ibsolver.backends import get_backend
from ibsolver.curve import n_effective
from ibsolver.solve import Problem, State, random_encoder, solve_from_state

#: a curve point worse than the reference by more than this (bits) is a failure
THRESHOLD = 1e-9
#: the reference: plain BA to this residual, within this many iterations per start ...
REF_TOL = 1e-12
REF_MAX_ITER = 20_000
#: ... and, where a reference beats the curve, this many more to converge before reporting
CONFIRM_MAX_ITER = 1_000_000


def make_problem(seed: int, index: int, *, max_x: int = 80, max_y: int = 8) -> np.ndarray:
    """Problem ``index`` of the stream of ``seed``: n_x in 2..max_x, n_y in 2..max_y,
    Dirichlet(1) entries; for index % 3 == 0 a random third (rounded down) of the entries
    set to zero, skipping any whose zeroing would empty its row or column, renormalised."""
    rng = np.random.default_rng([seed, index])
    n, m = int(rng.integers(2, max_x + 1)), int(rng.integers(2, max_y + 1))
    p_xy = rng.dirichlet(np.ones(n * m)).reshape(n, m)
    if index % 3 == 0:
        rows, cols = np.full(n, m), np.full(m, n)  # non-zeros left per row and column
        target = (n * m) // 3
        for flat in rng.permutation(n * m):
            if target == 0:
                break
            i, j = divmod(int(flat), m)
            if rows[i] > 1 and cols[j] > 1:
                p_xy[i, j] = 0.0
                rows[i] -= 1
                cols[j] -= 1
                target -= 1
        p_xy /= p_xy.sum()
    return p_xy


@dataclass
class Run:
    """One plain-BA reference run: its result and the state it stopped at (to go on from)."""

    result: object  # IBResult
    state: State
    start: str


@dataclass
class PointCheck:
    beta: float
    curve_lagrangian: float
    reference_lagrangian: float
    curve_clusters: int
    reference_clusters: int
    curve_converged: bool
    reference_converged: bool
    reference_start: str
    reference_iter: int
    confirmed: bool = False  # the reference was iterated on after beating the curve

    @property
    def excess(self) -> float:
        return self.curve_lagrangian - self.reference_lagrangian


def _plain(problem: Problem, state: State, beta: float, max_iter: int, kernel):
    return solve_from_state(problem, state, beta, alpha=1.0, kernel=kernel, tol=REF_TOL,
                            max_iter=max_iter, n_threads=1, merge_tol=1e-7,
                            accelerate=False, warn=False)


def reference_runs(problem: Problem, beta: float, rng: np.random.Generator, *, kernel,
                   starts: int = 8) -> list:
    """Plain BA at ``beta`` from the identity encoder and ``starts`` random encoders with
    k = n_x clusters (Dirichlet(1) rows). ``problem`` should be the compressed one."""
    n = problem.p_x.size
    encoders = [("identity", np.eye(n))]
    encoders += [(f"random{r}", random_encoder(n, n, rng)) for r in range(starts)]
    runs = []
    for name, q in encoders:
        state = State.from_encoder(problem, q)
        runs.append(Run(_plain(problem, state, beta, REF_MAX_ITER, kernel), state, name))
    return runs


def confirm(problem: Problem, beta: float, run: Run, *, kernel) -> Run:
    """``run`` iterated on (plain BA) from where it stopped until it converges."""
    if run.result.converged:
        return run
    more = _plain(problem, run.state, beta, CONFIRM_MAX_ITER, kernel)
    return Run(replace(more, n_iter=run.result.n_iter + more.n_iter), run.state, run.start)


def sample_indices(n_points: int, at_most: int | None) -> np.ndarray:
    """At most ``at_most`` indices spread evenly over range(n_points) (all if None)."""
    if at_most is None or at_most >= n_points:
        return np.arange(n_points)
    return np.unique(np.round(np.linspace(0, n_points - 1, at_most)).astype(int))


def check_curve(problem: Problem, curve, rng: np.random.Generator, *, starts: int = 8,
                points: int | None = None, threshold: float = THRESHOLD) -> list:
    """A PointCheck per sampled curve point (beta, lagrangian) against the plain-BA
    reference; references that beat the curve by more than ``threshold`` are run to
    convergence first."""
    kernel = get_backend("cpp")
    checks = []
    for i in sample_indices(curve.beta.size, points):
        beta, lag = float(curve.beta[i]), float(curve.lagrangian[i])
        runs = reference_runs(problem, beta, rng, kernel=kernel, starts=starts)
        confirmed = False
        if min(r.result.lagrangian for r in runs) < lag - threshold:
            runs = [confirm(problem, beta, r, kernel=kernel)
                    if r.result.lagrangian < lag - threshold else r for r in runs]
            confirmed = True
        best = min(runs, key=lambda r: r.result.lagrangian)
        checks.append(PointCheck(
            beta=beta, curve_lagrangian=lag, reference_lagrangian=best.result.lagrangian,
            curve_clusters=int(curve.n_clusters[i]), reference_clusters=n_effective(best.result),
            curve_converged=bool(curve.converged[i]),
            reference_converged=bool(best.result.converged), reference_start=best.start,
            reference_iter=int(best.result.n_iter), confirmed=confirmed))
    return checks


@dataclass
class ProblemReport:
    seed: int
    index: int
    shape: tuple
    compressed_shape: tuple
    zeros: int
    n_points: int = 0
    checks: list = field(default_factory=list)
    curve_seconds: float = 0.0
    reference_seconds: float = 0.0
    error: str | None = None

    def failures(self, threshold: float = THRESHOLD) -> list:
        return [c for c in self.checks if c.excess > threshold]

    def to_dict(self, threshold: float = THRESHOLD) -> dict:
        return {"seed": self.seed, "index": self.index, "shape": list(self.shape),
                "compressed_shape": list(self.compressed_shape), "zeros": self.zeros,
                "curve_points": self.n_points, "checked_points": len(self.checks),
                "curve_seconds": self.curve_seconds, "reference_seconds": self.reference_seconds,
                "max_excess": max((c.excess for c in self.checks), default=None),
                "failures": [dict(vars(c), excess=c.excess) for c in self.failures(threshold)],
                "error": self.error}


def stress_problem(seed: int, index: int, *, starts: int = 8, points: int | None = None,
                   threshold: float = THRESHOLD, max_x: int = 80, max_y: int = 8) -> ProblemReport:
    """Trace problem ``index`` of ``seed`` and check its points. An exception (from the curve
    or the reference) is caught and recorded in ``error`` with its traceback."""
    p_xy = make_problem(seed, index, max_x=max_x, max_y=max_y)
    problem = Problem.from_joint(p_xy).compressed()[0]
    report = ProblemReport(seed, index, p_xy.shape, problem.p_xy.shape, int(np.sum(p_xy == 0)))
    try:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ibsolver.ConvergenceWarning)
            curve = ibsolver.ib_curve(p_xy, locate_transitions=False, n_threads=1)
        report.curve_seconds = time.perf_counter() - t0
        report.n_points = int(curve.beta.size)
        t0 = time.perf_counter()
        report.checks = check_curve(problem, curve, np.random.default_rng([seed, index, 1]),
                                    starts=starts, points=points, threshold=threshold)
        report.reference_seconds = time.perf_counter() - t0
    except Exception:  # noqa: BLE001 - a crash is a finding: record it and go on
        report.error = traceback.format_exc()
    return report


def _failure_rows(reports, threshold):
    rows = []
    for r in reports:
        for c in r.failures(threshold):
            rows.append(f"{r.seed:>4} {r.index:>4} {r.shape[0]:>3}x{r.shape[1]:<2} "
                        f"{r.zeros:>4} {c.beta:>12.7g} {c.curve_lagrangian:>18.12f} "
                        f"{c.reference_lagrangian:>18.12f} {c.excess:>10.3e} "
                        f"{c.curve_clusters:>4} {c.reference_clusters:>4} "
                        f"{str(c.curve_converged):>5} {str(c.reference_converged):>5} "
                        f"{c.reference_start:>9} {c.reference_iter:>8}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of problems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--starts", type=int, default=8,
                        help="random starts of the reference (plus the identity encoder)")
    parser.add_argument("--points-per-curve", type=int, default=None,
                        help="check at most this many betas per curve, evenly (default all)")
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--only", default=None, help="comma-separated problem indices")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds: start no new problem after this long")
    parser.add_argument("--out", default=None, help="write the reports as JSON here")
    args = parser.parse_args(argv)

    indices = ([int(i) for i in args.only.split(",")] if args.only else range(args.n))
    reports = []
    t_start = time.perf_counter()
    n_fail = 0
    for index in indices:
        if args.time_limit is not None and time.perf_counter() - t_start > args.time_limit:
            print(f"time limit reached: {len(reports)} problems done", flush=True)
            break
        r = stress_problem(args.seed, index, starts=args.starts, points=args.points_per_curve,
                           threshold=args.threshold)
        reports.append(r)
        fails = r.failures(args.threshold)
        n_fail += len(fails)
        worst = max((c.excess for c in r.checks), default=float("nan"))
        status = "CRASH" if r.error else f"{len(fails)} failing"
        print(f"[{len(reports):>3}] problem {index:>3} {r.shape[0]:>2}x{r.shape[1]} "
              f"(compressed {r.compressed_shape[0]}x{r.compressed_shape[1]}, {r.zeros} zeros): "
              f"{r.n_points} points, {len(r.checks)} checked, curve {r.curve_seconds:.1f} s, "
              f"reference {r.reference_seconds:.1f} s, worst excess {worst:.2e}: {status}; "
              f"failures so far {n_fail}", flush=True)
        if r.error:
            print(r.error, flush=True)
    total = time.perf_counter() - t_start

    checks = [c for r in reports for c in r.checks]
    crashes = [r for r in reports if r.error]
    worst = max(checks, key=lambda c: c.excess, default=None)
    print(f"\n{len(reports)} problems, {len(checks)} points checked, "
          f"{n_fail} failures (excess > {args.threshold:g} bit) on "
          f"{sum(1 for r in reports if r.failures(args.threshold))} problems, "
          f"{len(crashes)} crashes, {total:.0f} s")
    if worst is not None:
        owner = next(r for r in reports if worst in r.checks)
        print(f"worst excess {worst.excess:.3e} bit (problem {owner.index}, "
              f"{owner.shape[0]}x{owner.shape[1]}, beta {worst.beta:.7g}); "
              f"unconverged curve points checked: {sum(not c.curve_converged for c in checks)}")
    rows = _failure_rows(reports, args.threshold)
    if rows:
        print("\nseed prob shape zero         beta        curve L (bit)        ref L (bit)"
              "     excess  k_c  k_r c_cnv r_cnv     start   r_iter")
        print("\n".join(rows))
    for r in crashes:
        print(f"\nCRASH seed {r.seed} problem {r.index} ({r.shape[0]}x{r.shape[1]}):\n{r.error}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"seed": args.seed, "starts": args.starts,
                       "points_per_curve": args.points_per_curve, "threshold": args.threshold,
                       "seconds": total, "problems": [r.to_dict(args.threshold)
                                                      for r in reports]}, fh, indent=1)
    return 1 if (n_fail or crashes) else 0


if __name__ == "__main__":
    sys.exit(main())
