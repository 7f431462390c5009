"""Each tolerance and margin the solver decides by, pinned near its value from both sides.

One test per threshold: it passes with the value in the code and fails when that value is
moved (an order of magnitude or more) or the check is dropped. Tests that sit far from a
threshold let such a change through unnoticed (issue 12, item 8).
"""

import numpy as np
import pytest
from conftest import birth_problem, dsbs, gerber

import ibsolver
from ibsolver._validation import check_encoder, check_joint
from ibsolver.bifurcation import invasion_rate, invasion_starts
from ibsolver.curve import _best_points
from ibsolver.results import IBResult
from ibsolver.score import EncoderScore

EPS = 0.1
#: DSBS(EPS) splits at 1/s2^2, s2 = 1 - 2 EPS
BETA_C = 1 / (1 - 2 * EPS) ** 2


# --- input checks -----------------------------------------------------------------------

def test_encoder_with_a_negative_entry_is_rejected_however_small():
    """Rows that sum to 1 with a negative entry are no encoder: accepted, a 1-bit X was
    reported to carry I(X;T) = 1.75 bit."""
    p = dsbs(EPS)
    for neg in (-0.5, -1e-12):
        q = np.array([[1.0 - neg, neg], [0.0, 1.0]])
        with pytest.raises(ValueError, match="encoder must be finite and non-negative"):
            check_encoder(q, n_x=2)
        with pytest.raises(ValueError, match="must be finite and non-negative"):
            ibsolver.encoder_information(p, q)
    # a zero is fine (a hard encoder), and its information is at most H(X) = 1 bit
    info = ibsolver.encoder_information(p, np.eye(2))
    np.testing.assert_allclose(info["i_xt"], 1.0, rtol=1e-14)


@pytest.mark.parametrize("off", [1e-7, -1e-7, 9e-7, -9e-7])
def test_table_sum_within_relative_1e_6_is_renormalised(off):
    arr = check_joint(dsbs(EPS) * (1.0 + off))
    np.testing.assert_allclose(arr, dsbs(EPS), rtol=2e-15, atol=0)


@pytest.mark.parametrize("off, shown", [(1.2e-6, "1.0000012"), (-1.2e-6, "0.9999988"),
                                        (1e-4, "1.0001"), (-1e-4, "0.9999")])
def test_table_sum_beyond_relative_1e_6_is_an_error(off, shown):
    with pytest.raises(ValueError, match=rf"p_xy must sum to 1 \(got {shown}\); pass "
                                         "normalize=True"):
        check_joint(dsbs(EPS) * (1.0 + off))


# --- the correctness steps of solve -----------------------------------------------------

@pytest.mark.parametrize("accelerate", [False, True])
@pytest.mark.parametrize("factor", [1.002, 1.005])
def test_saddle_just_past_the_dsbs_split_is_left(factor, accelerate):
    """From the trivial encoder BA stays trivial (a fixed point); just past the split
    (beta lambda_2 - 1 = 2e-3 and 5e-3) that point is a saddle, which solve must split and
    leave for the optimum on Mrs Gerber's curve, with I(X;T) growing from 0."""
    res = ibsolver.solve(dsbs(EPS), factor * BETA_C, init=np.ones((2, 1)), backend="numpy",
                         accelerate=accelerate)
    assert res.converged and res.n_clusters == 2
    assert res.i_xt > 0.01
    np.testing.assert_allclose(res.i_ty, gerber(res.i_xt, EPS), rtol=0, atol=1e-9)


def test_cluster_whose_invasion_rate_is_just_above_1_is_added():
    """Between beta_0 = 1/s* = 3.0338 and 1/s2^2 = 3.2696 of theory.md's 8x3 example the
    trivial solution is stable to splitting, yet a new cluster grows on it. At beta = 3.06
    its invasion rate is 1.0035 (so close to 1 that BA from the trivial point never leaves
    it): solve must add that cluster and reach the optimum a random start reaches."""
    p = birth_problem()
    beta = 3.06
    p_x = p.sum(axis=1)
    p_y_given_x = p / p_x[:, None]
    trivial = (np.ones(1), p.sum(axis=0)[None, :])
    rates = [invasion_rate(p_x, p_y_given_x, *trivial, beta, d0)[0]
             for d0 in invasion_starts(p_x, p_y_given_x, *trivial, beta, count=2)]
    assert 1.002 < max(rates) < 1.01  # the premise: close to the margin of 1e-3
    res = ibsolver.solve(p, beta, init=np.ones((8, 1)), backend="numpy")
    ref = ibsolver.solve(p, beta, random_state=0, backend="numpy")
    assert res.converged and ref.converged and res.n_clusters >= 2
    assert res.i_xt > 0.02
    np.testing.assert_allclose(res.lagrangian, ref.lagrangian, rtol=0, atol=1e-12)


# --- the curve --------------------------------------------------------------------------

def _point(lagrangian, n_clusters):
    p_t = np.full(n_clusters, 1.0 / n_clusters)
    return IBResult(encoder=None, p_t=p_t, p_y_given_t=np.full((n_clusters, 2), 0.5),
                    i_xt=0.5, i_ty=0.25, h_t=1.0, lagrangian=lagrangian, beta=2.0, alpha=1.0,
                    n_iter=1, converged=True, residual=0.0, backend="numpy",
                    lagrangian_history=np.array([lagrangian]))


def test_equal_lagrangians_go_to_fewer_clusters_then_to_the_reverse_branch():
    """At one beta, Lagrangians within 1e-10 bit are one solution reached twice: the one
    with fewer clusters wins, and at equal counts the reverse branch; beyond 1e-10 the
    lower Lagrangian wins."""
    low = -0.5
    cases = [  # (reverse, forward, winning branch)
        ((low, 3), (low, 3), "reverse"),
        ((low, 3), (low + 0.5e-10, 2), "forward"),
        ((low + 0.5e-10, 2), (low, 3), "reverse"),
        ((low, 3), (low + 2e-10, 2), "reverse"),
        ((low + 2e-10, 2), (low, 3), "forward"),
    ]
    for rev, fwd, winner in cases:
        best = _best_points({2.0: _point(*fwd)}, {2.0: _point(*rev)})
        assert best[2.0][1] == winner, (rev, fwd)


def test_unlocated_births_read_birth_as_located():
    """Without locating, a cluster-count change of the reverse branch is told a birth or a
    split by its lightest new cluster: a newborn's decoder is far from every decoder
    below, a heavy cluster's is not. On this grid theory.md's 8x3 example gains its 5th and
    7th clusters by births (located at 33.6 and 100.9); unlocated, they read the same."""
    betas = np.geomspace(20.0, 120.0, 13)
    quick = ibsolver.ib_curve(birth_problem(), betas=betas, locate_transitions=False)
    located = ibsolver.ib_curve(birth_problem(), betas=betas)

    def reverse_kinds(curve):
        return {(t.n_clusters_before, t.n_clusters_after): t.kind
                for t in curve.all_transitions if t.branch == "reverse"}

    assert reverse_kinds(located)[4, 5] == reverse_kinds(located)[6, 7] == "birth"
    assert reverse_kinds(quick)[4, 5] == reverse_kinds(quick)[6, 7] == "birth"


def test_above_bound_only_beyond_the_stated_accuracy():
    """An encoder beats a computed curve only where it lies above it by more than the
    curve's accuracy (how far the true curve may lie above the computed one)."""
    def score(gap, tolerance):
        return EncoderScore(i_xt=0.5, i_ty=0.3 - gap, h_t=1.0, bound=0.3, gap=gap,
                            epsilon=0.0, beta_fit=2.0, tolerance=tolerance)

    for tol in (1e-5, 1e-3):
        assert not score(-0.99 * tol, tol).above_bound
        assert score(-1.01 * tol, tol).above_bound
    # with no stated accuracy, round-off (1e-9 bit) still is no evidence
    assert not score(-0.9e-9, 0.0).above_bound
    assert score(-1.1e-9, 0.0).above_bound


def test_encoder_between_the_coarse_points_is_within_the_coarse_curves_accuracy():
    """The optimal encoder at a beta between two grid points lies above the coarse curve's
    chord, but by less than its accuracy: no evidence against the curve."""
    p = birth_problem()
    coarse = ibsolver.ib_curve(p, betas=[3.2, 5.0, 8.0], locate_transitions=False)
    res = ibsolver.solve(p, 6.3, random_state=0)
    s = ibsolver.score_encoder(p, res.encoder, curve=coarse)
    assert 1e-9 < -s.gap < s.tolerance  # the premise: above the chord, within accuracy
    assert not s.above_bound


# --- the onset --------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.1, 0.25, 0.4])
def test_hypercontractivity_of_the_dsbs_is_s2_squared(eps):
    """For the DSBS, s* = s2^2 = (1 - 2 eps)^2 exactly. The search over tilts only
    approaches it (the ratio's sup is its limit at the trivial tilt), so the floor
    s* >= s2^2 gives the exact value."""
    s_star, _ = ibsolver.hypercontractivity(dsbs(eps))
    np.testing.assert_allclose(s_star, (1 - 2 * eps) ** 2, rtol=1e-13)
