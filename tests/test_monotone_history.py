"""The Lagrangian never rises along any accelerated path: SQUAREM, Newton (with its damped
steps), the shortcuts past dying and merging clusters, the correctness steps of solve and
every point of a curve. Each is a safeguard the acceleration claims; the tests check that
the path ran, so none passes vacuously.

Tolerance: a rise of 1e-12 (1 + |L|) between recorded iterations is round-off (the largest
seen on these cases is 3e-13 relative, in Newton steps accepted to round-off).
"""
import sys

import numpy as np
import pytest
from conftest import birth_problem, dsbs

import ibsolver
from ibsolver import _schedule, newton
from ibsolver.accelerate import squarem_iterations
from ibsolver.backends import get_backend

solve_module = sys.modules["ibsolver.solve"]
Problem, State, solve_from_state = (solve_module.Problem, solve_module.State,
                                    solve_module.solve_from_state)

ROUND_OFF = 1e-12


def assert_never_rises(history):
    history = np.asarray(history)
    assert history.size >= 2
    rise = np.diff(history) / (1.0 + np.abs(history[1:]))
    assert rise.max() <= ROUND_OFF, f"rises by {rise.max():.3g} at iteration {rise.argmax()}"


def _random_problem(seed, n_max=30, m_max=6):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(3, n_max)), int(rng.integers(2, m_max))
    return rng, rng.dirichlet(np.ones(n * m)).reshape(n, m)


def _counting(monkeypatch, module, name, accepted=lambda out: True):
    """Wrap ``module.name`` so that its calls (those ``accepted`` says count) are counted."""
    calls = []
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        if accepted(out):
            calls.append(out)
        return out

    monkeypatch.setattr(module, name, wrapper)
    return calls


# seeds and betas (times 1/s2^2) where SQUAREM's extrapolation would go uphill if allowed
@pytest.mark.parametrize("seed, factor", [(34, 8.0), (13, 2.0), (9, 2.0), (37, 2.0), (16, 2.0)])
def test_squarem_never_goes_uphill(seed, factor):
    rng, p = _random_problem(seed)
    problem = Problem.from_joint(p)
    n = p.shape[0]
    state = State.from_encoder(problem, rng.dirichlet(np.ones(min(n, 5)), size=n))
    beta = factor * ibsolver.first_instability(p)
    *_, history = squarem_iterations(
        get_backend("numpy"), problem.p_x, problem.p_y_given_x, state.log_p_t,
        state.log_p_y_given_t, beta, 1.0, 400, 1e-12)
    assert_never_rises(history)


def test_squarem_inside_a_solve_never_goes_uphill(monkeypatch):
    """Where Newton cannot run (k |Y| = 640 > 600) an accelerated solve extrapolates."""
    calls = _counting(monkeypatch, solve_module, "squarem_iterations")
    p = np.random.default_rng(0).dirichlet(np.ones(64 * 8)).reshape(64, 8)
    res = ibsolver.solve(p, 12.0, n_clusters=80, random_state=0, accelerate=True,
                         backend="numpy", max_iter=2000)
    assert calls
    assert_never_rises(res.lagrangian_history)


def test_newton_and_shortcuts_never_go_uphill(monkeypatch):
    """Random problems around their first instability, from random soft encoders: Newton
    steps (damped where needed) and, where BA crawls towards a dying or merging cluster,
    the shortcuts (accepted on several of these 24 solves)."""
    newton_calls = _counting(monkeypatch, newton, "newton_iterations")
    shortcuts = _counting(monkeypatch, solve_module, "_shortcut", lambda out: out is not None)
    for seed in range(6):
        rng, p = _random_problem(seed, n_max=25, m_max=5)
        problem = Problem.from_joint(p)
        beta_c = ibsolver.first_instability(p)
        n = p.shape[0]
        for factor in (0.9, 1.05, 2.0, 8.0):
            start = State.from_encoder(problem, rng.dirichlet(np.ones(min(n, 6)), size=n))
            res = solve_from_state(problem, start, factor * beta_c, alpha=1.0,
                                   kernel=get_backend("numpy"), tol=1e-11, max_iter=20_000,
                                   n_threads=None, merge_tol=1e-7, accelerate=True,
                                   warn=False)
            assert_never_rises(res.lagrangian_history)
    assert newton_calls and len(shortcuts) >= 3


@pytest.mark.parametrize("accelerate", [False, True])
def test_correctness_steps_never_go_uphill(accelerate, monkeypatch):
    """A saddle split (DSBS past its split, from the trivial encoder) and an invader added
    (theory.md's 8x3 example between 1/s* and 1/s2^2): the history runs on through each."""
    splits = _counting(monkeypatch, solve_module, "split_cluster")
    res = ibsolver.solve(dsbs(0.1), 3.0, init=np.ones((2, 1)), backend="numpy",
                         accelerate=accelerate)
    assert splits and res.n_clusters == 2
    assert_never_rises(res.lagrangian_history)
    invaders = _counting(monkeypatch, solve_module, "invasion_rate", lambda out: out[0] > 1.001)
    res = ibsolver.solve(birth_problem(), 3.06, init=np.ones((8, 1)), backend="numpy",
                         accelerate=accelerate)
    assert invaders and res.n_clusters >= 2
    assert_never_rises(res.lagrangian_history)


def test_every_curve_point_never_went_uphill():
    curve = ibsolver.ib_curve(birth_problem(), n_betas=20, locate_transitions=False)
    assert curve.complete
    for branch in curve.branches.values():
        for res in branch.results:
            if res.lagrangian_history.size >= 2:
                assert_never_rises(res.lagrangian_history)


def test_an_objective_stop_after_squarem_is_finished_by_newton(monkeypatch):
    """Where SQUAREM's Lagrangian looks converged, Newton steps finish the solve (a state
    too large for Newton's every step, small enough for a few): on gaussian-24 at beta 3
    from a random 10-cluster start the accelerated solve takes them, and ends no higher
    than plain BA after 100,000 iterations, to its lagrangian_tol (1e-8 bit)."""
    chunks = []
    newton_iterations = newton.newton_iterations

    def recording(*args, **kwargs):
        chunks.append(args[7])  # max_iter: the chunk's length
        return newton_iterations(*args, **kwargs)

    monkeypatch.setattr(newton, "newton_iterations", recording)
    p = ibsolver.discretize_gaussian(0.8, 24, 24)
    problem = Problem.from_joint(p)
    q = solve_module.random_encoder(24, 10, np.random.default_rng(0))
    opts = dict(alpha=1.0, kernel=get_backend("auto"), n_threads=1, merge_tol=1e-7,
                warn=False)
    fast = solve_from_state(problem, State.from_encoder(problem, q), 3.0, tol=1e-10,
                            max_iter=50_000, accelerate=True, lagrangian_tol=1e-8, **opts)
    assert _schedule.POLISH_CHUNK in chunks
    assert not newton.applicable(24, fast.n_clusters, 24, 1.0)  # (only as a polish)
    plain = solve_from_state(problem, State.from_encoder(problem, q), 3.0, tol=1e-14,
                             max_iter=100_000, accelerate=False, **opts)
    assert fast.converged
    assert fast.lagrangian <= plain.lagrangian + 1e-8
    assert_never_rises(fast.lagrangian_history)
