"""The one-beta engine's schedule (ibsolver._schedule.Schedule): which chunk runs next, how
long, and when the solve stops, in small scripted situations (outcomes made up, no solve)."""
import sys

import numpy as np
import pytest

import ibsolver
from ibsolver import newton
from ibsolver._schedule import (ABANDON_GAP_FACTOR, CHUNK, FIRST_CHUNK, GO_ON, NEWTON,
                                OBJECTIVE_MIN_ITER, PLAIN,
                                POLISH, POLISH_CHUNK, POLISH_GAP_BITS, REFUSED_CHUNK, SHORTCUT,
                                SQUAREM, STOP, VERIFY_CHUNK, Outcome, Schedule, Step,
                                _lagrangian_gap)
from ibsolver.backends import Iterated
from ibsolver.measures import LN2

solve_module = sys.modules["ibsolver.solve"]

TOL = 1e-10
# (shape, clusters): where Newton runs; where only a polish may (a step costs 104 BA
# iterations: more than newton.MAX_COST, less than POLISH_MAX_COST); where neither does
NEWTON_CASE = ((8, 3), 3)
POLISH_CASE = ((24, 24), 10)
SQUAREM_CASE = ((64, 8), 80)


def test_the_cases_are_what_they_say():
    (n_x, n_y), k = NEWTON_CASE
    assert newton.applicable(n_x, k, n_y, 1.0)
    (n_x, n_y), k = POLISH_CASE
    assert not newton.applicable(n_x, k, n_y, 1.0)
    assert newton.applicable(n_x, k, n_y, 1.0, max_cost=newton.POLISH_MAX_COST)
    (n_x, n_y), k = SQUAREM_CASE
    assert not newton.applicable(n_x, k, n_y, 1.0, max_cost=newton.POLISH_MAX_COST)


def schedule(case, **kwargs):
    opts = dict(alpha=1.0, accelerate=True, tol=TOL, max_iter=10_000)
    return Schedule(case[0], **{**opts, **kwargs})


def history(gap=None, n=41):
    """A chunk's Lagrangian history (nats) falling geometrically, whose estimated distance
    from its limit is ``gap`` (None: too short to estimate)."""
    if gap is None:
        return np.zeros(3)
    h = 0.9 ** np.arange(n)
    return h * (gap / _lagrangian_gap(h))


def outcome(step, residual=1e-3, gap=None, saddle=False):
    """The step ran its whole length and ended at ``residual``."""
    return Outcome(Iterated(None, None, step.length, residual, history(gap)), saddle)


def take(sched, k, residual=1e-3, gap=None, changed=False, saddle=False):
    """Ask for the next step, "run" it; (the step, the verdict)."""
    step = sched.next_step(k)
    verdict = sched.after(step, outcome(step, residual, gap, saddle), n_clusters=k,
                          changed=changed)
    return step, verdict


def test_history_helper_gives_the_gap():
    np.testing.assert_allclose(_lagrangian_gap(history(1e-9)), 1e-9, rtol=1e-6)
    assert _lagrangian_gap(history(None)) == np.inf


def test_newton_follows_a_short_plain_chunk():
    sched = schedule(NEWTON_CASE)
    k = NEWTON_CASE[1]
    assert take(sched, k) == (Step(PLAIN, FIRST_CHUNK), GO_ON)
    assert sched.next_step(k) == Step(NEWTON, CHUNK)


def test_without_acceleration_every_chunk_is_plain():
    sched = schedule(NEWTON_CASE, accelerate=False)
    for _ in range(3):
        assert take(sched, NEWTON_CASE[1]) == (Step(PLAIN, CHUNK), GO_ON)


@pytest.mark.parametrize("min_work, kind", [(0, SQUAREM), (10**9, PLAIN)])
def test_where_newton_cannot_run_squarem_runs_from_the_start_where_it_pays(min_work, kind):
    sched = schedule(SQUAREM_CASE, squarem_min_work=min_work)
    for _ in range(3):
        assert take(sched, SQUAREM_CASE[1]) == (Step(kind, CHUNK), GO_ON)


@pytest.mark.parametrize("min_work, kind", [(0, SQUAREM), (10**9, PLAIN)])
def test_refusals_in_a_row_double_the_chunk_between_newton_tries(min_work, kind):
    sched = schedule(NEWTON_CASE, squarem_min_work=min_work)
    k = NEWTON_CASE[1]
    take(sched, k)  # the first plain chunk
    lengths = []
    for _ in range(6):
        step, _ = take(sched, k)  # Newton, refused: it ends short of the fixed point
        assert step.kind == NEWTON
        step, _ = take(sched, k)
        assert step.kind == kind
        lengths.append(step.length)
    assert lengths == [REFUSED_CHUNK, 2 * REFUSED_CHUNK, 4 * REFUSED_CHUNK, 8 * REFUSED_CHUNK,
                       CHUNK, CHUNK]
    # a Newton chunk that gets to the fixed point (here the pruned state goes on) resets it
    assert take(sched, k, residual=TOL / 2, changed=True) == (Step(NEWTON, CHUNK), GO_ON)
    take(sched, k)
    assert sched.next_step(k) == Step(kind, REFUSED_CHUNK)


def test_after_a_refusal_a_shortcut_once_per_cluster_count():
    sched = schedule(NEWTON_CASE, squarem_min_work=10**9)
    k = NEWTON_CASE[1]
    take(sched, k)
    assert take(sched, k)[1] == GO_ON  # the refused Newton chunk itself
    assert take(sched, k) == (Step(PLAIN, REFUSED_CHUNK), SHORTCUT)
    assert sched.shortcut_tried == {k}
    take(sched, k)
    assert take(sched, k)[1] == GO_ON  # k was tried
    # at a new count: again only after the chunk that follows the refused one
    assert take(sched, k + 1) == (Step(NEWTON, CHUNK), GO_ON)
    assert take(sched, k + 1)[1] == SHORTCUT


def test_no_shortcut_where_the_state_changed_or_alpha_is_not_1():
    for sched, changed in [(schedule(NEWTON_CASE), True),
                           (schedule(NEWTON_CASE, alpha=0.5), False)]:
        k = NEWTON_CASE[1]
        take(sched, k)
        take(sched, k)
        assert take(sched, k, changed=changed)[1] == GO_ON
        assert not sched.shortcut_tried


def test_shortcut_tried_is_shared():
    tried = {NEWTON_CASE[1]}
    sched = schedule(NEWTON_CASE, shortcut_tried=tried)
    assert sched.shortcut_tried is tried
    for _ in range(3):
        assert take(sched, NEWTON_CASE[1])[1] == GO_ON


def test_residual_stop_unless_the_state_was_pruned():
    sched = schedule(SQUAREM_CASE)
    assert take(sched, 80, residual=TOL / 2, changed=True)[1] == GO_ON
    assert sched.residual == np.inf and not sched.converged  # not iterated since pruned
    assert take(sched, 79, residual=TOL / 2)[1] == STOP
    assert sched.converged and sched.residual == TOL / 2 and sched.n_iter == 2 * CHUNK


def test_the_last_chunk_fits_the_budget():
    sched = schedule(SQUAREM_CASE, max_iter=450)
    assert [take(sched, 80)[0].length for _ in range(3)] == [CHUNK, CHUNK, 50]
    assert sched.next_step(80) is None
    assert sched.n_iter == 450 and not sched.converged


def test_a_saddle_guards_newton_from_then_on():
    sched = schedule(NEWTON_CASE)
    k = NEWTON_CASE[1]
    take(sched, k)
    assert not sched.guarded
    take(sched, k, saddle=True)
    take(sched, k)
    assert sched.guarded


def test_objective_stop_after_one_chunk_where_newton_cannot_run():
    sched = schedule(SQUAREM_CASE, lagrangian_tol=1e-3, squarem_min_work=10**9)
    # not from a chunk after which the state was pruned: its history is not the state's
    assert take(sched, 80, gap=1e-6, changed=True)[1] == GO_ON
    assert take(sched, 79, gap=1e-6)[1] == STOP  # plain BA's history: no verify chunk
    assert sched.converged and sched.residual > TOL


def test_objective_waits_for_newton_where_it_can_run():
    """Newton and the shortcuts get OBJECTIVE_MIN_ITER iterations before the objective stop
    (here Newton is refused every time: plain chunks between)."""
    sched = schedule(NEWTON_CASE, lagrangian_tol=1e-3, squarem_min_work=10**9)
    verdicts = []
    while sched.n_iter < OBJECTIVE_MIN_ITER:
        verdicts.append(take(sched, NEWTON_CASE[1], gap=1e-6)[1])
    assert STOP not in verdicts[:-1] and verdicts[-1] == STOP


def test_objective_stop_after_squarem_is_verified():
    """Above POLISH_GAP_BITS (or where no polish can run) a verify chunk confirms it."""
    for case, gap_bits in [(POLISH_CASE, 10 * POLISH_GAP_BITS), (SQUAREM_CASE, 1e-9)]:
        sched = schedule(case, lagrangian_tol=1e-3)
        k = case[1]
        assert take(sched, k, gap=gap_bits * LN2) == (Step(SQUAREM, CHUNK), GO_ON)
        assert take(sched, k, gap=gap_bits * LN2) == (Step(PLAIN, VERIFY_CHUNK), STOP)
        assert sched.converged


def test_a_verify_chunk_that_finds_no_convergence_goes_on():
    sched = schedule(SQUAREM_CASE, lagrangian_tol=1e-3)
    take(sched, 80, gap=1e-6)
    assert take(sched, 80) == (Step(PLAIN, VERIFY_CHUNK), GO_ON)
    assert sched.next_step(80) == Step(SQUAREM, CHUNK)


def test_squarem_close_to_its_limit_is_polished_by_newton():
    sched = schedule(POLISH_CASE, lagrangian_tol=1e-8)
    k = POLISH_CASE[1]
    close = 0.5 * POLISH_GAP_BITS * LN2
    assert take(sched, k, gap=close) == (Step(SQUAREM, CHUNK), GO_ON)
    # the polish ends short of its goal: SQUAREM again, and the next polish needs a gap a
    # hundred times smaller
    assert take(sched, k) == (Step(POLISH, POLISH_CHUNK), GO_ON)
    assert take(sched, k, gap=close) == (Step(SQUAREM, CHUNK), GO_ON)
    assert take(sched, k, gap=close / 100) == (Step(SQUAREM, CHUNK), GO_ON)
    # this one finishes (its history: the objective stop, below lagrangian_tol)
    assert take(sched, k, gap=1e-9 * LN2) == (Step(POLISH, POLISH_CHUNK), STOP)
    assert sched.converged and sched.residual > TOL


def test_a_polish_is_not_a_refusal():
    sched = schedule(POLISH_CASE, lagrangian_tol=1e-8)
    k = POLISH_CASE[1]
    take(sched, k, gap=1e-9)
    assert take(sched, k)[0] == Step(POLISH, POLISH_CHUNK)
    assert take(sched, k) == (Step(SQUAREM, CHUNK), GO_ON)  # no shortcut, no refused chunk
    assert not sched.shortcut_tried


def test_a_solve_sure_to_end_above_its_ceiling_is_abandoned():
    """The limit is estimated as the last value less ABANDON_GAP_FACTOR estimated gaps: a
    ceiling below that abandons the solve (unconverged), one above it does not."""
    gap = 1e-6
    last = history(gap)[-1]
    for margin, verdict in [(2.0, STOP), (0.5, GO_ON)]:
        ceiling = last - margin * ABANDON_GAP_FACTOR * gap
        sched = schedule(SQUAREM_CASE, ceiling=ceiling)
        assert take(sched, SQUAREM_CASE[1], gap=gap) == (Step(SQUAREM, CHUNK), verdict)
        assert sched.abandoned == (verdict == STOP) and not sched.converged


def test_no_abandoning_without_a_geometric_rate_or_after_newton_or_early():
    low = -1.0  # far below every history here
    sched = schedule(SQUAREM_CASE, ceiling=low)
    assert take(sched, SQUAREM_CASE[1], gap=None)[1] == GO_ON  # no rate estimated
    assert take(sched, SQUAREM_CASE[1], gap=1e-6, changed=True)[1] == GO_ON  # pruned
    sched = schedule(NEWTON_CASE, ceiling=low)
    assert take(sched, NEWTON_CASE[1], gap=1e-6) == (Step(PLAIN, FIRST_CHUNK), GO_ON)  # early
    assert take(sched, NEWTON_CASE[1], gap=1e-6) == (Step(NEWTON, CHUNK), GO_ON)
    assert not sched.abandoned


def test_a_ceiling_abandons_a_solve_and_changes_nothing_else():
    """solve_from_state with a ceiling below its optimum stops early, unconverged and without
    a warning; with one above, it returns what it returns without one. (Plain BA from two
    clusters just past the first instability of a 30 x 4 table: 3800 iterations unhindered,
    the slow tail a ceiling cuts short.)"""
    import warnings
    from ibsolver.backends import get_backend
    from ibsolver.solve import Problem, State, random_encoder, solve_from_state
    p = np.random.default_rng(1).dirichlet(np.ones(30 * 4)).reshape(30, 4)
    problem = Problem.from_joint(p)
    opts = dict(alpha=1.0, kernel=get_backend("auto"), tol=1e-11, max_iter=50_000,
                n_threads=1, merge_tol=1e-7, accelerate=False, lagrangian_tol=1e-8)

    def run(ceiling):
        q = random_encoder(30, 2, np.random.default_rng(0))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return solve_from_state(problem, State.from_encoder(problem, q),
                                    1.02 * problem.first_instability, ceiling=ceiling, **opts)

    free = run(None)
    assert free.converged and free.n_iter > 10 * CHUNK
    above = run(free.lagrangian + 1e-3)
    assert above.lagrangian == free.lagrangian and above.n_iter == free.n_iter
    below = run(free.lagrangian - 1e-3)
    assert not below.converged and below.lagrangian > free.lagrangian - 1e-3
    assert below.n_iter <= 2 * CHUNK


def test_solve_follows_the_schedule(monkeypatch):
    """The engine runs the steps the schedule names, in its order."""
    steps = []
    take_step = solve_module._take

    def recording(step, *args, **kwargs):
        steps.append(step)
        return take_step(step, *args, **kwargs)

    monkeypatch.setattr(solve_module, "_take", recording)
    p = np.random.default_rng(1).dirichlet(np.ones(24)).reshape(8, 3)
    res = ibsolver.solve(p, 3.2, random_state=0, accelerate=True)
    assert steps[:2] == [Step(PLAIN, FIRST_CHUNK), Step(NEWTON, CHUNK)]
    assert res.converged
    plain = []
    monkeypatch.setattr(solve_module, "_take", lambda step, *a, **kw: plain.append(step)
                        or take_step(step, *a, **kw))
    ibsolver.solve(p, 3.2, random_state=0)
    assert plain and {step.kind for step in plain} == {PLAIN}
    assert max(step.length for step in plain) == CHUNK
