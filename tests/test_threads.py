"""The default thread count (n_threads=None): ibsolver.backends._threads.ThreadPolicy.

The policy is tested with made-up timings (deterministic), and through the backends: with
the static gate lowered, None really alternates between one thread and all, and the results
agree with one thread's to round-off.
"""
import numpy as np
import pytest

from ibsolver.backends import _threads
from ibsolver.backends._threads import ThreadPolicy, work_units

BIG = (4096, 256, 2)  # above the static gate
SMALL = (1024, 16, 2)  # a 1024 x 2 curve problem: below it


def feed(policy, size, seconds_for, calls):
    """Makes `calls` calls, each taking seconds_for[threads] per iteration (10 iterations);
    returns the thread counts used."""
    used = []
    for _ in range(calls):
        threads, key = policy.choose(*size)
        used.append(threads)
        policy.record(key, threads, work_units(*size), 10 * seconds_for[threads], 10)
    return used


def test_small_problems_run_on_one_thread_without_measuring():
    policy = ThreadPolicy(lambda: 8)
    assert policy.choose(*SMALL) == (1, None)
    assert policy.candidates(*BIG) == 8
    assert ThreadPolicy(lambda: 1).choose(*BIG) == (1, None)  # OMP_NUM_THREADS=1


def test_threads_used_where_they_measure_faster():
    policy = ThreadPolicy(lambda: 2)
    used = feed(policy, BIG, {1: 1e-3, 2: 0.6e-3}, 100)
    assert used[:2] == [1, 2]  # one thread first, then a trial of two
    assert used[2:].count(2) >= 90  # then two, with rare re-trials of one
    assert 1 in used[2:]


def test_one_thread_where_threads_are_slower_and_trials_are_rare():
    policy = ThreadPolicy(lambda: 2)
    # a busy machine: two threads 5x slower
    used = feed(policy, BIG, {1: 1e-3, 2: 5e-3}, 400)
    trials = used[2:].count(2)
    assert 1 <= trials <= 400 * 5 / _threads.EXPLORE_RATIO / 4
    # the time the trials cost is bounded by about 1/EXPLORE_RATIO of the total
    total = sum(10 * {1: 1e-3, 2: 5e-3}[t] for t in used)
    assert total <= 10e-3 * len(used) * (1 + 1.5 / _threads.EXPLORE_RATIO) + 2 * 50e-3


def test_load_changes_are_followed():
    policy = ThreadPolicy(lambda: 2)
    feed(policy, BIG, {1: 1e-3, 2: 5e-3}, 50)  # busy: one thread
    used = feed(policy, BIG, {1: 1e-3, 2: 0.5e-3}, 200)  # the other core becomes free
    assert used[-100:].count(2) >= 95


def test_tables_of_other_widths_do_not_share_estimates():
    """1024 x 256 x 64 and 4096 x 256 x 2 fall in the same log2 of work but cost 2.3x apart
    per work unit (bench_threads.py, one thread). Sharing a class, the narrow table
    inherited the wide one's estimates on a busy machine and stayed on two threads, 1.3x
    slower than one; per width, each decides on its own timings."""
    wide, narrow = (1024, 256, 64), BIG
    assert int(np.log2(work_units(*wide))) == int(np.log2(work_units(*narrow)))
    policy = ThreadPolicy(lambda: 2)
    per_unit = {wide: {1: 97e-12, 2: 54e-12}, narrow: {1: 43e-12, 2: 56e-12}}  # busy
    seconds = {size: {t: c * work_units(*size) for t, c in cost.items()}
               for size, cost in per_unit.items()}
    feed(policy, narrow, seconds[narrow], 3)
    feed(policy, wide, seconds[wide], 20)
    assert feed(policy, narrow, seconds[narrow], 12)[-9:] == [1] * 9


@pytest.fixture
def low_gate(monkeypatch):
    monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)


@pytest.mark.parametrize("name", ["cpp", "numba"])
def test_default_threads_change_only_round_off(name, low_gate):
    from ibsolver.backends import get_backend

    try:
        backend = get_backend(name)
    except Exception:  # noqa: BLE001 - backend not built / installed
        pytest.skip(f"{name} backend unavailable")
    if backend.POLICY.candidates(300, 4, 100) < 2:
        pytest.skip("one thread only here")
    rng = np.random.default_rng(5)
    n, k, m = 300, 4, 100
    p_xy = rng.dirichlet(np.ones(n * m)).reshape(n, m)
    p_x = p_xy.sum(1)
    p_y_given_x = p_xy / p_x[:, None]
    q = rng.dirichlet(np.ones(k), size=n)
    p_t = p_x @ q
    log_p_t = np.log(p_t)
    log_p_y_given_t = np.log((q * p_x[:, None]).T @ p_y_given_x / p_t[:, None])
    args = (p_x, p_y_given_x, log_p_t, log_p_y_given_t, 3.0, 1.0, 10, -1.0)
    one = backend.run_iterations(*args, n_threads=1)
    backend.POLICY.reset()
    chosen = []
    choose = backend.POLICY.choose

    def spy(*a):
        out = choose(*a)
        chosen.append(out[0])
        return out

    backend.POLICY.choose = spy
    try:
        for _ in range(4):
            got = backend.run_iterations(*args)
            assert got[2] == one[2]
            np.testing.assert_allclose(got[0], one[0], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(got[1], one[1], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(got[4], one[4], rtol=1e-12, atol=1e-14)
        q1 = backend.encoder(*args[1:6], n_threads=1)
        np.testing.assert_allclose(backend.encoder(*args[1:6]), q1, rtol=1e-12, atol=1e-15)
    finally:
        del backend.POLICY.choose
        backend.POLICY.reset()
    assert chosen[:2] == [1, backend.POLICY.candidates(n, k, m)]  # both were really used
