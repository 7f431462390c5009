"""score_encoder: epsilon, the deviation in the Lagrangian at the fitted beta, is the
horizontal distance to the curve (not the vertical gap again), checked on the DSBS against
Mrs Gerber's lemma; every encoder ibsolver returns has the user's rows of x."""
import numpy as np
import pytest
from conftest import dsbs, gerber
from scipy.optimize import brentq

import ibsolver

EPS = 0.1


@pytest.fixture(scope="module")
def dsbs_curve():
    return ibsolver.ib_curve(dsbs(EPS))


def test_epsilon_is_the_complexity_spent_beyond_the_curve(dsbs_curve):
    """A Z-channel encoder of the DSBS is sub-optimal (the optimal ones are symmetric):
    epsilon is its I(X;T) minus the least I(X;T) reaching its I(T;Y) on the analytic
    curve, and beta_fit the inverse slope there; the vertical gap is another number."""
    q = np.array([[1.0, 0.0], [0.35, 0.65]])
    score = ibsolver.score_encoder(dsbs(EPS), q, curve=dsbs_curve)
    least = brentq(lambda x: gerber(x, EPS) - score.i_ty, 1e-12, 1.0, xtol=1e-14)
    # (the envelope lies within its accuracy, 1e-5 bit, of the curve: times the slope 1/beta)
    np.testing.assert_allclose(score.epsilon, score.i_xt - least, atol=5e-5)
    slope = (gerber(least + 1e-6, EPS) - gerber(least - 1e-6, EPS)) / 2e-6
    np.testing.assert_allclose(score.beta_fit, 1.0 / slope, rtol=2e-2)
    assert score.gap > 1e-3 and abs(score.epsilon - score.gap) > 1e-2


def test_an_optimal_encoder_scores_zero(dsbs_curve):
    """T = X through a binary symmetric channel is optimal for the DSBS (Mrs Gerber)."""
    d = 0.2
    score = ibsolver.score_encoder(dsbs(EPS), np.array([[1 - d, d], [d, 1 - d]]),
                                   curve=dsbs_curve)
    assert abs(score.epsilon) < 1e-4 and abs(score.gap) < 1e-5 and not score.above_bound
    slope = (gerber(score.i_xt + 1e-6, EPS) - gerber(score.i_xt - 1e-6, EPS)) / 2e-6
    np.testing.assert_allclose(score.beta_fit, 1.0 / slope, rtol=2e-2)


def test_returned_encoders_have_the_users_rows():
    """Rows 0 and 2 share p(y|x), so the solver works on a reduced table with one row for
    both; the encoders it returns still have one row per x of the table given."""
    p = np.array([[0.10, 0.05], [0.05, 0.30], [0.20, 0.10], [0.15, 0.05]])
    curve = ibsolver.ib_curve(p, return_encoders=True, n_betas=8)
    for q, i_xt, i_ty in zip(curve.encoders, curve.i_xt, curve.i_ty, strict=True):
        assert q.shape[0] == 4
        np.testing.assert_allclose(q[0], q[2], atol=1e-12)
        info = ibsolver.encoder_information(p, q)
        np.testing.assert_allclose([info["i_xt"], info["i_ty"]], [i_xt, i_ty], atol=1e-8)
        score = ibsolver.score_encoder(p, q, curve=curve)
        assert abs(score.gap) < 1e-8 and abs(score.epsilon) < 1e-8
