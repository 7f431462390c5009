"""Single-beta solutions: analytic cases, invariants, extremes, convergence reporting."""
import sys
import warnings

import numpy as np
import pytest
from conftest import birth_problem, dsbs, gerber, h2, h2_inverse
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import ibsolver
from ibsolver import ConvergenceWarning

EPS = 0.1
BETA_C = 1 / (1 - 2 * EPS) ** 2  # 1.5625


@pytest.mark.parametrize("beta", [2.0, 3.0, 5.0, 10.0, 40.0])
def test_dsbs_follows_mrs_gerbers_lemma(backend, beta):
    res = ibsolver.solve(dsbs(EPS), beta, backend=backend, random_state=0, tol=1e-13)
    assert res.converged and res.backend == backend
    np.testing.assert_allclose(res.i_ty, gerber(res.i_xt, EPS), atol=1e-9)
    # ... and sits where the curve's slope is 1/beta (it is the beta-optimum, not any point):
    # along T = BSC(d) of X, dI_Y/dI_X = (1 - 2 eps) h'(eps * d) / h'(d), h'(p) = log2((1-p)/p)
    if beta > 10:
        return  # the optimal crossover d ~ exp(-beta) is below what I(X;T) resolves
    d = h2_inverse(1 - res.i_xt)
    e_d = EPS * (1 - d) + d * (1 - EPS)
    slope = (1 - 2 * EPS) * np.log2((1 - e_d) / e_d) / np.log2((1 - d) / d)
    np.testing.assert_allclose(slope, 1 / beta, rtol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 1.5])
def test_dsbs_is_trivial_below_the_critical_beta(backend, beta):
    res = ibsolver.solve(dsbs(EPS), beta, backend=backend, random_state=1, accelerate=True)
    assert res.i_xt == pytest.approx(0.0, abs=1e-7)
    assert res.i_ty == pytest.approx(0.0, abs=1e-7)
    assert res.n_clusters == 1  # coincident clusters are merged


def test_huge_beta_is_finite_and_keeps_the_finest_encoder(backend):
    p = birth_problem()
    # from the finest encoder (the beta -> inf optimum) nothing moves
    res = ibsolver.solve(p, 1e8, backend=backend, init=np.eye(8))
    assert np.all(np.isfinite(res.encoder)) and res.converged
    np.testing.assert_allclose(res.i_ty, ibsolver.mutual_information(p), atol=1e-9)
    np.testing.assert_allclose(res.encoder, np.eye(8), atol=1e-12)
    # from a random start the encoder freezes hard at once: a finite local optimum
    rand = ibsolver.solve(p, 1e8, backend=backend, random_state=0)
    assert set(np.unique(np.round(rand.encoder, 12))) <= {0.0, 1.0}
    assert np.isfinite(rand.lagrangian) and rand.i_ty <= ibsolver.mutual_information(p) + 1e-12


def test_beta_zero_is_trivial(backend):
    res = ibsolver.solve(birth_problem(), 0.0, backend=backend, random_state=0)
    assert res.n_clusters == 1 and res.i_xt == pytest.approx(0.0, abs=1e-12)
    assert res.lagrangian == pytest.approx(0.0, abs=1e-12)


def test_birth_example_from_the_theory_notes(backend):
    """docs/theory.rst: at beta = 3.2 < 1/s2^2 a solution with I(X;T) ~ 0.138 bit beats the
    (still locally stable) trivial one."""
    p = birth_problem()
    assert ibsolver.first_instability(p) == pytest.approx(3.2696, abs=1e-4)
    res = ibsolver.solve(p, 3.2, backend=backend, random_state=0)
    assert res.lagrangian < -1e-3
    np.testing.assert_allclose([res.i_xt, res.i_ty], [0.1381, 0.0444], atol=5e-4)


def test_zeros_and_single_column():
    p = np.array([[0.2, 0.0, 0.1], [0.0, 0.3, 0.0], [0.1, 0.0, 0.3]])
    res = ibsolver.solve(p, 5.0, random_state=0)
    assert np.all(np.isfinite(res.encoder)) and res.converged
    one = ibsolver.solve(np.array([[0.3], [0.7]]), 5.0, random_state=0)
    assert one.i_ty == 0.0 and one.i_xt == pytest.approx(0.0, abs=1e-12)


def test_warm_start_from_a_solution_stays_there():
    p = birth_problem()
    res = ibsolver.solve(p, 6.0, random_state=0, tol=1e-13)
    again = ibsolver.solve(p, 6.0, init=res.encoder, tol=1e-13)
    assert again.n_iter <= 5
    np.testing.assert_allclose(again.encoder, res.encoder, atol=1e-9)


def test_nonconvergence_is_reported_with_the_knob():
    with pytest.warns(ConvergenceWarning, match="increase max_iter"):
        res = ibsolver.solve(birth_problem(), 3.05, max_iter=3, random_state=0)
    assert not res.converged and res.n_iter == 3 and res.residual > 0


def test_acceleration_reaches_the_same_solution_in_fewer_iterations(monkeypatch):
    # tiny problem: force it (the module, not the function ibsolver.solve it defines)
    monkeypatch.setattr(sys.modules["ibsolver.solve"], "ACCELERATE_MIN_WORK", 0)
    p = birth_problem()
    plain = ibsolver.solve(p, 3.1, random_state=3, tol=1e-12, max_iter=100_000)
    fast = ibsolver.solve(p, 3.1, random_state=3, tol=1e-12, max_iter=100_000, accelerate=True)
    assert fast.n_iter < plain.n_iter / 3
    np.testing.assert_allclose(fast.lagrangian, plain.lagrangian, atol=1e-11)
    np.testing.assert_allclose(fast.i_xt, plain.i_xt, atol=1e-7)


def test_deterministic_ib_gives_hard_encoders(backend):
    res = ibsolver.solve(birth_problem(), 8.0, alpha=0.0, backend=backend, random_state=0)
    assert set(np.unique(res.encoder)) <= {0.0, 1.0}
    np.testing.assert_allclose(res.i_xt, res.h_t, atol=1e-12)  # hard: I(X;T) = H(T)
    np.testing.assert_allclose(res.lagrangian, res.h_t - 8.0 * res.i_ty, atol=1e-12)


def test_generalised_ib_interpolates():
    p = birth_problem()
    for alpha in (0.3, 0.7):
        res = ibsolver.solve(p, 8.0, alpha=alpha, random_state=0)
        np.testing.assert_allclose(res.lagrangian, res.h_t - alpha * (res.h_t - res.i_xt)
                                   - 8.0 * res.i_ty, atol=1e-12)


joint_tables = arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(1, 4)),
                      elements=st.one_of(st.just(0.0), st.floats(0.01, 1.0))).filter(
    lambda a: np.all(a.sum(1) > 0) and np.all(a.sum(0) > 0))


@settings(max_examples=30, deadline=None)
@given(joint_tables, st.floats(0.0, 50.0), st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 2**31))
def test_solution_invariants(table, beta, alpha, seed):
    p = table / table.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = ibsolver.solve(p, beta, alpha=alpha, random_state=seed, max_iter=3000)
    np.testing.assert_allclose(res.encoder.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(res.p_y_given_t.sum(axis=1), 1.0, atol=1e-12)
    i_xy = ibsolver.mutual_information(p)
    assert -1e-12 <= res.i_ty <= min(res.i_xt, i_xy) + 1e-9  # data processing
    assert res.i_xt <= min(ibsolver.entropy(p.sum(1)), np.log2(res.n_clusters)) + 1e-9
    # BA decreases the Lagrangian monotonically
    assert np.all(np.diff(res.lagrangian_history) <= 1e-10 * (1 + abs(res.lagrangian)))
    if alpha == 0.0:
        assert set(np.unique(res.encoder)) <= {0.0, 1.0}


def test_results_are_bits_and_frozen():
    res = ibsolver.solve(dsbs(EPS), 1e6, random_state=0)
    np.testing.assert_allclose(res.i_xt, 1.0, atol=1e-9)  # one bit, not ln 2
    np.testing.assert_allclose(res.i_ty, 1 - h2(EPS), atol=1e-9)
    with pytest.raises(AttributeError):
        res.beta = 3.0
    assert "bit" in repr(res)
