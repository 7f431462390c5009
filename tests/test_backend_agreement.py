"""Every available backend reproduces the numpy reference kernel (the specification).

Agreement is asserted to 1e-10 (rtol and atol) on seeded random problems with zeros in
p(x, y), |Y| in {1, 2, 8, 64}, alpha in {0, 0.5, 1}, beta in {0, 0.3, 5, 1e8}: the state
after a run, the per-iteration objective history, the residual, the iteration count and
the encoder; then end to end through ``ibsolver.solve``. The numba backend must also not
depend on its thread count beyond round-off (1e-12).
"""
from __future__ import annotations

import numpy as np
import pytest

import ibsolver
from ibsolver.backends import get_backend
from ibsolver.backends import numpy_backend as reference
from ibsolver.solve import Problem, State, random_encoder

RTOL = 1e-10
ATOL = 1e-10
#: a tol below any residual: run exactly max_iter iterations. (With tol=0 a run may stop at
#: an exact fixed point, e.g. stable hard assignments, and whether the residual comes out as
#: 0 or 1e-17 there is round-off, which may differ between backends.)
NEVER = -1.0
BACKENDS = ibsolver.available_backends()


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def kernel(request):
    """The module of each backend built here (conftest's ``backend`` gives the name)."""
    return get_backend(request.param)


def random_joint(rng, n_x, n_y, zero_fraction=0.3):
    """A random p(x, y) with about ``zero_fraction`` exact zeros, no empty row or column."""
    p = rng.dirichlet(np.ones(n_x * n_y)).reshape(n_x, n_y)
    if n_y > 1:
        p[rng.random(p.shape) < zero_fraction] = 0.0
        rows = np.flatnonzero(p.sum(axis=1) == 0)
        p[rows, rng.integers(n_y, size=rows.size)] = rng.random(rows.size) + 0.1
        cols = np.flatnonzero(p.sum(axis=0) == 0)
        p[rng.integers(n_x, size=cols.size), cols] = rng.random(cols.size) + 0.1
    return p / p.sum()


def random_start(rng, problem, n_clusters):
    return State.from_encoder(problem, random_encoder(problem.p_x.size, n_clusters, rng))


def assert_same_run(got, want, *, rtol=RTOL, atol=ATOL):
    """Compare two (log_p_t, log_p_y_given_t, n_iter, residual, history) tuples; the
    positions of -inf must match exactly."""
    log_p_t, log_p_y_given_t, n_iter, residual, history = got
    assert n_iter == want[2], f"n_iter {n_iter} != {want[2]}"
    np.testing.assert_allclose(log_p_t, want[0], rtol=rtol, atol=atol)
    np.testing.assert_allclose(log_p_y_given_t, want[1], rtol=rtol, atol=atol)
    np.testing.assert_allclose(residual, want[3], rtol=rtol, atol=atol)
    assert history.shape == (n_iter,)
    np.testing.assert_allclose(history, want[4], rtol=rtol, atol=atol)


N_Y = [1, 2, 8, 64]
ALPHAS = [0.0, 0.5, 1.0]
BETAS = [0.0, 0.3, 5.0, 1e8]


@pytest.mark.parametrize("n_y", N_Y)
def test_kernel_agrees_with_numpy(kernel, n_y):
    """run_iterations and encoder agree with numpy for every (alpha, beta) on a problem
    with zeros in p(x, y); where numpy raises for an x with no admissible cluster, so does
    the backend."""
    rng = np.random.default_rng([20240611, n_y])
    problem = Problem.from_joint(random_joint(rng, 37, n_y))
    n_compared = 0
    for alpha in ALPHAS:
        for beta in BETAS:
            start = random_start(rng, problem, 7)
            args = (problem.p_x, problem.p_y_given_x, start.log_p_t, start.log_p_y_given_t,
                    beta, alpha)
            try:
                q_want = reference.encoder(*args[1:])
            except FloatingPointError:
                with pytest.raises(FloatingPointError, match="no admissible cluster"):
                    kernel.encoder(*args[1:])
            else:
                np.testing.assert_allclose(kernel.encoder(*args[1:]), q_want,
                                           rtol=RTOL, atol=ATOL)
            try:
                want = reference.run_iterations(*args, 25, NEVER)
            except FloatingPointError:
                with pytest.raises(FloatingPointError, match="no admissible cluster"):
                    kernel.run_iterations(*args, 25, NEVER)
                continue
            got = kernel.run_iterations(*args, 25, NEVER)
            assert_same_run(got, want)
            # the encoder the final state builds
            end = (problem.p_y_given_x, want[0], want[1], beta, alpha)
            try:
                q_want = reference.encoder(*end)
            except FloatingPointError:
                with pytest.raises(FloatingPointError, match="no admissible cluster"):
                    kernel.encoder(*end)
                continue
            q_got = kernel.encoder(problem.p_y_given_x, got[0], got[1], beta, alpha)
            np.testing.assert_allclose(q_got, q_want, rtol=RTOL, atol=ATOL)
            n_compared += 1
    assert n_compared >= len(ALPHAS) * len(BETAS) // 2  # most cases are compared, not skipped


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_tol_stop_agrees_with_numpy(kernel, alpha):
    """With tol > 0 the iteration stops at the same iteration with the same residual."""
    rng = np.random.default_rng([7, int(alpha)])
    problem = Problem.from_joint(random_joint(rng, 30, 5))
    start = random_start(rng, problem, 6)
    args = (problem.p_x, problem.p_y_given_x, start.log_p_t, start.log_p_y_given_t, 4.0, alpha)
    want = reference.run_iterations(*args, 2000, 1e-9)
    assert want[2] < 2000 and want[3] <= 1e-9  # the case really exercises the tol stop
    assert_same_run(kernel.run_iterations(*args, 2000, 1e-9), want)


def test_inputs_not_mutated_and_new_arrays(kernel):
    rng = np.random.default_rng(3)
    problem = Problem.from_joint(random_joint(rng, 20, 4))
    start = random_start(rng, problem, 5)
    inputs = (problem.p_x, problem.p_y_given_x, start.log_p_t, start.log_p_y_given_t)
    copies = [a.copy() for a in inputs]
    log_p_t, log_p_y_given_t, *_ = kernel.run_iterations(*inputs, 2.0, 1.0, 5, 0.0)
    kernel.encoder(*inputs[1:], 2.0, 1.0)
    for a, c in zip(inputs, copies):
        np.testing.assert_array_equal(a, c)
    assert not np.shares_memory(log_p_t, start.log_p_t)
    assert not np.shares_memory(log_p_y_given_t, start.log_p_y_given_t)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_no_admissible_cluster_raises(kernel, alpha):
    """x0 puts mass on y0, which no cluster explains: every logit of x0 is -inf."""
    p_y_given_x = np.array([[0.5, 0.5, 0.0], [0.0, 0.3, 0.7], [0.0, 1.0, 0.0]])
    p_x = np.array([0.2, 0.3, 0.5])
    with np.errstate(divide="ignore"):
        log_p_y_given_t = np.log(np.array([[0.0, 0.4, 0.6], [0.0, 0.9, 0.1]]))
    log_p_t = np.log(np.array([0.5, 0.5]))
    for module in (reference, kernel):
        with pytest.raises(FloatingPointError, match="no admissible cluster"):
            module.run_iterations(p_x, p_y_given_x, log_p_t, log_p_y_given_t, 2.0, alpha, 3, 0.0)
        with pytest.raises(FloatingPointError, match="no admissible cluster"):
            module.encoder(p_y_given_x, log_p_t, log_p_y_given_t, 2.0, alpha)
    # with beta = 0 the decoder is ignored, so the same state is fine and agrees
    state = (p_x, p_y_given_x, log_p_t, log_p_y_given_t)
    want = reference.run_iterations(*state, 0.0, alpha, 3, NEVER)
    assert_same_run(kernel.run_iterations(*state, 0.0, alpha, 3, NEVER), want)


@pytest.mark.parametrize(("n_y", "beta", "alpha"),
                         [(3, 2.5, 1.0), (6, 12.0, 1.0), (4, 8.0, 0.5), (5, 20.0, 0.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_solve_agrees_with_numpy(kernel, n_y, beta, alpha, seed):
    rng = np.random.default_rng([11, n_y, seed])
    p_xy = random_joint(rng, 14, n_y, zero_fraction=0.2)
    want = ibsolver.solve(p_xy, beta, alpha=alpha, backend="numpy", random_state=seed)
    got = ibsolver.solve(p_xy, beta, alpha=alpha, backend=kernel.NAME, random_state=seed)
    assert got.backend == kernel.NAME
    assert got.n_iter == want.n_iter
    assert got.encoder.shape == want.encoder.shape
    np.testing.assert_allclose(got.encoder, want.encoder, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got.i_xt, want.i_xt, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got.i_ty, want.i_ty, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got.lagrangian_history, want.lagrangian_history,
                               rtol=RTOL, atol=ATOL)


# ---- numba specifics ----------------------------------------------------------------------
@pytest.fixture
def numba_backend():
    if "numba" not in BACKENDS:
        pytest.skip("numba is not installed")
    return get_backend("numba")


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_numba_thread_count_changes_only_round_off(numba_backend, alpha):
    import numba

    rng = np.random.default_rng(5)
    problem = Problem.from_joint(random_joint(rng, 2000, 8))  # big enough to be split
    start = random_start(rng, problem, 16)
    args = (problem.p_x, problem.p_y_given_x, start.log_p_t, start.log_p_y_given_t, 5.0, alpha)
    assert numba_backend._n_blocks(2, 2000, 16, 8) == 2  # two threads really split the rows
    before = numba.get_num_threads()
    one = numba_backend.run_iterations(*args, 40, NEVER, n_threads=1)
    two = numba_backend.run_iterations(*args, 40, NEVER, n_threads=2)
    assert numba.get_num_threads() == before  # restored after the call
    assert_same_run(two, one, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(numba_backend.encoder(*args[1:], n_threads=2),
                               numba_backend.encoder(*args[1:], n_threads=1),
                               rtol=1e-12, atol=1e-12)
    # a thread count above the cores numba has is accepted (more row blocks than threads)
    n_many = numba.config.NUMBA_NUM_THREADS + 1
    many = numba_backend.run_iterations(*args, 40, NEVER, n_threads=n_many)
    assert_same_run(many, one, rtol=1e-12, atol=1e-12)


def test_numba_rejects_bad_thread_count(numba_backend):
    rng = np.random.default_rng(0)
    problem = Problem.from_joint(random_joint(rng, 5, 2))
    start = random_start(rng, problem, 2)
    with pytest.raises(ValueError, match="n_threads"):
        numba_backend.run_iterations(problem.p_x, problem.p_y_given_x, start.log_p_t,
                                     start.log_p_y_given_t, 1.0, 1.0, 2, 0.0, n_threads=0)
