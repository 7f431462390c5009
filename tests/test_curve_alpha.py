"""The generalised and deterministic IB curves: ib_curve(alpha=...) for alpha < 1."""
import numpy as np
import pytest

import ibsolver
from ibsolver.measures import encoder_information

#: (rows, columns, seed) of the random tables
TABLES = [(6, 3, 0), (10, 4, 1), (8, 3, 5)]
ALPHAS = [0.0, 0.5]
SEEDS = [0, 1, 2]
#: curve points compared with independent solves (evenly spread over the curve)
N_CHECKED = 12


def _random_joint(n, m, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(n * m)).reshape(n, m)


def _generalised_lagrangian(p, encoder, beta, alpha):
    info = encoder_information(p, encoder)
    return info["h_t"] - alpha * info["h_t_given_x"] - beta * info["i_ty"]


@pytest.fixture(scope="module", params=TABLES, ids=lambda t: "%dx%d-seed%d" % t)
def table(request):
    """p and its curves for alpha in ALPHAS and 1 (the IB)."""
    p = _random_joint(*request.param)
    curves = {a: ibsolver.ib_curve(p, alpha=a, return_encoders=True) for a in ALPHAS}
    curves[1.0] = ibsolver.ib_curve(p)
    return p, curves


@pytest.mark.parametrize("alpha", ALPHAS)
def test_points_are_no_higher_than_solve_or_the_identity_encoder(table, alpha):
    p, curves = table
    c = curves[alpha]
    assert c.alpha == alpha and c.complete and c.converged.all()
    # the reported Lagrangian is the generalised one, of the reported encoder
    for b, enc, lag in zip(c.beta, c.encoders, c.lagrangian):
        np.testing.assert_allclose(_generalised_lagrangian(p, enc, b, alpha), lag, atol=1e-8)
    # T = X: H(X) - alpha * 0 - beta I(X;Y), computed independently of the solver
    identity = encoder_information(p, np.eye(p.shape[0]))
    assert identity["h_t_given_x"] == 0.0
    np.testing.assert_array_less(c.lagrangian, identity["h_t"] - c.beta * identity["i_ty"]
                                 + 1e-9)
    for i in np.unique(np.linspace(0, c.beta.size - 1, N_CHECKED).round().astype(int)):
        for s in SEEDS:
            res = ibsolver.solve(p, c.beta[i], alpha=alpha, random_state=s)
            assert c.lagrangian[i] <= res.lagrangian + 1e-9, (c.beta[i], s)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_curve_lies_on_or_below_the_ib_curve(table, alpha):
    p, curves = table
    ib, c = curves[1.0], curves[alpha]
    slack = ib.accuracy + 1e-9
    np.testing.assert_array_less(c.i_ty, ib.bound(c.i_xt) + slack)
    np.testing.assert_array_less(c.envelope_i_ty, ib.bound(c.envelope_i_xt) + slack)
    # ... and is not the IB curve itself: its optima are sub-optimal IB encoders somewhere
    # (the IB's optima are soft between its transitions, alpha = 0's hard)
    assert np.max(ib.bound(c.i_xt) - c.i_ty) > 1e-3
    # both end at the minimal sufficient statistic
    np.testing.assert_allclose(c.i_ty[-1], ibsolver.mutual_information(p), atol=1e-6)


def test_deterministic_ib_encoders_are_hard(table):
    p, curves = table
    c = curves[0.0]
    assert c.encoders is not None and len(c.encoders) == c.beta.size
    for enc in c.encoders:
        assert enc.shape[0] == p.shape[0]
        assert np.all((enc == 0.0) | (enc == 1.0))
    # the soft generalised IB is soft somewhere
    assert any(np.any((enc > 1e-6) & (enc < 1 - 1e-6)) for enc in curves[0.5].encoders)


def test_transitions_are_cluster_count_changes_known_to_their_bracket(table):
    _, curves = table
    for alpha in ALPHAS:
        c = curves[alpha]
        assert np.isnan(c.first_instability) and np.isnan(c.onset_beta_s_star)
        assert c.transitions and all(t.kind == "count" for t in c.transitions)
        for t in c.transitions:
            lo, hi = t.beta_bracket
            assert lo < t.beta < hi and (hi - lo) / lo <= 1.01e-2  # refined to COUNT_RTOL
            assert t.n_clusters_before != t.n_clusters_after
        first = c.transitions[0]
        assert first.n_clusters_before == 1 and c.onset_beta == first.beta
        assert c.onset_kind == "count"
        # the IB leaves the trivial solution first: its L is the lowest of all alpha
        assert c.onset_beta >= curves[1.0].onset_beta * (1 - 1e-2)
        assert "alpha = %g" % alpha in str(c)
        assert c.summary()["alpha"] == alpha


def test_alpha_one_is_the_default_ib_curve():
    p = _random_joint(5, 3, 3)
    a, b = ibsolver.ib_curve(p), ibsolver.ib_curve(p, alpha=1)
    assert a.alpha == b.alpha == 1.0
    np.testing.assert_array_equal(a.i_ty, b.i_ty)
    assert [t.kind for t in a.transitions] == [t.kind for t in b.transitions]
    assert "count" not in {t.kind for t in a.all_transitions}


@pytest.mark.parametrize("alpha", [-0.5, float("nan"), float("inf")])
def test_bad_alpha_is_an_error_naming_it(alpha):
    with pytest.raises(ValueError, match="alpha"):
        ibsolver.ib_curve(_random_joint(4, 2, 0), alpha=alpha)
