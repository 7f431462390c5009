"""Information measures against closed forms (bits)."""
import numpy as np
import pytest
from conftest import dsbs, h2
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import ibsolver


def test_entropy_and_kl_closed_forms():
    np.testing.assert_allclose(ibsolver.entropy([0.5, 0.5]), 1.0, rtol=1e-15)
    np.testing.assert_allclose(ibsolver.entropy(np.ones(8) / 8), 3.0, rtol=1e-15)
    assert ibsolver.entropy([1.0, 0.0]) == 0.0
    np.testing.assert_allclose(ibsolver.kl_divergence([0.5, 0.5], [0.25, 0.75]),
                               0.5 * np.log2(2) + 0.5 * np.log2(2 / 3), rtol=1e-14)
    assert ibsolver.kl_divergence([0.5, 0.5], [1.0, 0.0]) == np.inf
    assert ibsolver.kl_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.1, 0.3, 0.5])
def test_dsbs_information_and_maximal_correlation(eps):
    p = dsbs(eps) if eps > 0 else np.eye(2) / 2
    np.testing.assert_allclose(ibsolver.mutual_information(p), 1 - h2(eps), atol=1e-14)
    np.testing.assert_allclose(ibsolver.maximal_correlation(p), abs(1 - 2 * eps), atol=1e-14)
    np.testing.assert_allclose(ibsolver.conditional_entropy(p), h2(eps), atol=1e-14)


def test_independent_variables():
    p = np.outer([0.2, 0.8], [0.1, 0.6, 0.3])
    assert ibsolver.mutual_information(p) == pytest.approx(0.0, abs=1e-15)
    assert ibsolver.maximal_correlation(p) == pytest.approx(0.0, abs=1e-12)
    assert ibsolver.first_instability(p) > 1e20


def test_joint_from_samples_and_counts():
    x = np.array([[0, 1], [0, 1], [1, 1], [1, 1]])
    y = np.array(["a", "b", "a", "a"])
    p, xv, yv = ibsolver.joint_from_samples(x, y)
    np.testing.assert_allclose(p, [[0.25, 0.25], [0.5, 0.0]])
    assert xv.tolist() == [[0, 1], [1, 1]] and yv.tolist() == ["a", "b"]
    np.testing.assert_allclose(ibsolver.joint_from_counts([[1, 3], [0, 4]]), [[0.125, 0.375], [0, 0.5]])


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 7), st.integers(2, 5)),
              elements=st.floats(0.01, 1.0)))
def test_measure_invariants(table):
    p = table / table.sum()
    i_xy = ibsolver.mutual_information(p)
    h_x = ibsolver.entropy(p.sum(1))
    h_y = ibsolver.entropy(p.sum(0))
    assert -1e-12 <= i_xy <= min(h_x, h_y) + 1e-12
    np.testing.assert_allclose(i_xy, h_y - ibsolver.conditional_entropy(p), atol=1e-12)
    s2 = ibsolver.maximal_correlation(p)
    assert 0.0 <= s2 <= 1.0
    # an encoder that is the identity carries I(X;T) = H(X) and I(T;Y) = I(X;Y)
    info = ibsolver.encoder_information(p, np.eye(p.shape[0]))
    np.testing.assert_allclose([info["i_xt"], info["i_ty"]], [h_x, i_xy], atol=1e-12)
