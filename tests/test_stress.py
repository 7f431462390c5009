"""Stress test (CI size): no point of ib_curve lies above plain BA from many random starts.

The generator and the reference live in benchmarks/stress.py (the full run: 200 problems up
to 80 x 8); this runs the same check on 20 smaller problems, 3 betas per curve. benchmarks/
is not a package, so the script is loaded by its path under a private module name (no
sys.path change, no clash with another module called ``stress``).
"""
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import ibsolver
from ibsolver.backends import get_backend
from ibsolver.solve import Problem


def _load_stress():
    name = "_ibsolver_benchmarks_stress"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "stress.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


stress = _load_stress()

N_PROBLEMS = 20
MAX_X, MAX_Y = 24, 8
POINTS = 3
STARTS = 4


#: problems whose curves missed the optimum at a beta, checked there by
#: test_points_once_missed_are_optimal (the sampled check's three betas depend on the
#: curve's length, so whether they hit it is chance)
ONCE_MISSED = {
    # 22 x 6: a 13-cluster branch over beta 8.74 .. 8.9 that neither annealing direction
    # nor cross-seeding reaches (a first-order birth: the 11-cluster points there are
    # stable to splits and invaders). The curve was up to 2.6e-4 bit above it at beta
    # 8.8524; 9.9e-6 with restarts beside count changes; on it since restarts also start
    # from the identity encoder (curve._restarts)
    10: 8.8524,
}


def test_no_curve_point_is_worse_than_plain_ba_from_random_starts():
    """20 random problems (n_x 2..24, n_y 2..8, every third with a third of p(x, y) zero):
    at 3 betas spread over each curve, the curve's Lagrangian is within 1e-9 bit of the
    lowest that plain BA reaches from the identity encoder and 4 random ones. Problem 12,
    23 x 3, failed by 8.2e-6 bit at beta 5.666 until starts were unbarred (see
    ibsolver.solve.unbarred)."""
    reports = [stress.stress_problem(7, i, starts=STARTS, points=POINTS, max_x=MAX_X,
                                     max_y=MAX_Y) for i in range(N_PROBLEMS)]
    crashes = [(r.index, r.shape, r.error) for r in reports if r.error]
    assert not crashes, crashes
    assert sum(r.zeros > 0 for r in reports) == (N_PROBLEMS + 2) // 3
    failures = [(r.index, r.shape, c) for r in reports for c in r.failures()]
    assert not failures, "\n".join(
        f"problem {i} {shape}: beta {c.beta:.7g}, curve {c.curve_lagrangian:.12f}, "
        f"reference {c.reference_lagrangian:.12f} ({c.reference_start}), excess "
        f"{c.excess:.3e} bit" for i, shape, c in failures)
    assert sum(len(r.checks) for r in reports) >= 2 * len(reports)


@pytest.mark.parametrize("index", sorted(ONCE_MISSED))
def test_points_once_missed_are_optimal(index):
    """The curve's point nearest the beta where it missed the optimum is within 1e-9 bit of
    plain BA's best from the identity encoder and 4 random starts."""
    p_xy = stress.make_problem(7, index, max_x=MAX_X, max_y=MAX_Y)
    curve = ibsolver.ib_curve(p_xy, locate_transitions=False, n_threads=1)
    i = int(np.argmin(np.abs(curve.beta - ONCE_MISSED[index])))
    problem = Problem.from_joint(p_xy).compressed()[0]
    runs = stress.reference_runs(problem, float(curve.beta[i]), np.random.default_rng(0),
                                 kernel=get_backend("cpp"), starts=STARTS)
    best = min(r.result.lagrangian for r in runs)
    assert curve.lagrangian[i] <= best + stress.THRESHOLD


def test_the_check_flags_points_made_worse():
    """The check can fail: a curve with its first and last Lagrangians raised by 1e-8 bit is
    flagged there, and only there. (At the first beta, 1, the trivial solution is optimal; at
    the last, one cluster per x: plain BA reaches both from any start.)"""
    p_xy = stress.make_problem(7, 1, max_x=MAX_X, max_y=MAX_Y)
    curve = ibsolver.ib_curve(p_xy, locate_transitions=False, n_threads=1)
    raised = np.zeros(curve.beta.size)
    raised[[0, -1]] = 1e-8
    worse = replace(curve, lagrangian=curve.lagrangian + raised)
    problem = Problem.from_joint(p_xy).compressed()[0]
    checks = stress.check_curve(problem, worse, np.random.default_rng(0), starts=2, points=5)
    assert len(checks) == 5
    flagged = [c.beta for c in checks if c.excess > stress.THRESHOLD]
    assert flagged == [curve.beta[0], curve.beta[-1]]


@pytest.mark.parametrize("index", range(6))
def test_generator_shapes_and_zeros(index):
    p_xy = stress.make_problem(0, index)
    n, m = p_xy.shape
    assert 2 <= n <= 80 and 2 <= m <= 8
    assert p_xy.sum() == pytest.approx(1.0, abs=1e-12) and np.all(p_xy >= 0)
    assert np.all(p_xy.sum(axis=0) > 0) and np.all(p_xy.sum(axis=1) > 0)
    zeros = int(np.sum(p_xy == 0))
    assert (zeros > 0) == (index % 3 == 0) and zeros <= n * m // 3
    np.testing.assert_array_equal(p_xy, stress.make_problem(0, index))  # reproducible


def test_reverse_branch_top_keeps_rows_apart_where_that_is_lower():
    """Regression (full run, problem 12): at the top beta the grouped start (rows within
    0.1/sqrt(beta) of each other as one cluster) ended 2.9e-3 bit above plain BA from one
    cluster per row; the top solve now tries both and keeps the lower."""
    from ibsolver.backends import get_backend
    from ibsolver.solve import State, solve_from_state
    p_xy = stress.make_problem(0, 12)
    beta = 2284.2056143238224
    curve = ibsolver.ib_curve(p_xy, betas=[beta], n_threads=1)
    problem = Problem.from_joint(p_xy).compressed()[0]
    rows = solve_from_state(problem, State.from_joint(problem.p_x, problem.p_xy), beta,
                            alpha=1.0, kernel=get_backend("auto"), tol=1e-12, max_iter=10**5,
                            n_threads=1, merge_tol=1e-7)
    assert curve.lagrangian[0] <= rows.lagrangian + 1e-9
