"""The C++ backend's compiled SQUAREM against ibsolver.accelerate (its specification): the
same fixed point, the same bookkeeping, never uphill."""
import sys

import numpy as np
import pytest

from ibsolver.accelerate import squarem_iterations
from ibsolver.backends import available_backends, get_backend

pytestmark = pytest.mark.skipif("cpp" not in available_backends(),
                                reason="the C++ extension is not built")
solve_module = sys.modules["ibsolver.solve"]


@pytest.mark.parametrize("seed, shape, zeros", [(0, (24, 5), False), (1, (60, 3), True),
                                                (2, (7, 7), False)])
def test_compiled_squarem_reaches_the_reference_fixed_point(seed, shape, zeros):
    """From one random 6-cluster start, both converge (residual 1e-12) to the same state
    (p(t, y) to 1e-9) and Lagrangian (1e-10 nats); their paths agree until round-off,
    amplified by the extrapolation, separates them. Each history never rises."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(shape[0] * shape[1])).reshape(shape)
    if zeros:
        p[rng.random(shape) < 0.3] = 0.0
        p[np.arange(shape[0]), rng.integers(shape[1], size=shape[0])] += 0.01
        p /= p.sum()
    problem = solve_module.Problem.from_joint(p)
    state = solve_module.State.from_encoder(
        problem, solve_module.random_encoder(problem.p_x.size, 6, rng))
    args = (problem.p_x, problem.p_y_given_x, state.log_p_t, state.log_p_y_given_t, 4.0, 1.0,
            20_000, 1e-12, 1)
    cpp = get_backend("cpp")
    ref = squarem_iterations(cpp, *args)
    out = cpp.squarem_iterations(*args)
    for run in (ref, out):
        assert run.residual <= 1e-12
        assert run.history.size <= run.n_iter
        assert np.all(np.diff(run.history) <= 1e-12 * (1 + np.abs(run.history[1:])))
    np.testing.assert_allclose(np.exp(out.log_p_t[:, None] + out.log_p_y_given_t),
                               np.exp(ref.log_p_t[:, None] + ref.log_p_y_given_t), atol=1e-9)
    assert out.history[-1] == pytest.approx(ref.history[-1], abs=1e-10)
    n = min(10, ref.history.size)
    np.testing.assert_allclose(out.history[:n], ref.history[:n], rtol=1e-12)


def test_compiled_squarem_stops_at_max_iter_and_checks_its_input():
    cpp = get_backend("cpp")
    p = np.random.default_rng(3).dirichlet(np.ones(40)).reshape(10, 4)
    problem = solve_module.Problem.from_joint(p)
    state = solve_module.State.from_encoder(
        problem, solve_module.random_encoder(10, 4, np.random.default_rng(0)))
    out = cpp.squarem_iterations(problem.p_x, problem.p_y_given_x, state.log_p_t,
                                 state.log_p_y_given_t, 30.0, 1.0, 7, 0.0, 1)
    assert out.n_iter == 7 and out.history.size <= 7
    with pytest.raises(ValueError, match="max_iter"):
        cpp.squarem_iterations(problem.p_x, problem.p_y_given_x, state.log_p_t,
                               state.log_p_y_given_t, 30.0, 1.0, -1, 0.0, 1)
