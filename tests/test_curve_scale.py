"""What keeps curves tractable on larger tables: the cluster cap, curve-only refinement,
and per-point results without n x k encoders."""
import numpy as np
import pytest

import ibsolver
from ibsolver.gaussian import discretize_gaussian


def _random_joint(n, m, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(n * m)).reshape(n, m)


def test_capped_curve_ends_before_the_cap_and_its_accuracy_covers_the_rest():
    p = _random_joint(40, 3, 0)
    full = ibsolver.ib_curve(p, locate_transitions=False)
    with pytest.warns(ibsolver.ConvergenceWarning, match="max_clusters=4 bound"):
        capped = ibsolver.ib_curve(p, locate_transitions=False, max_clusters=4)
    assert capped.capped and not full.capped and capped.max_clusters == 4
    assert capped.n_clusters.max() < 4
    # the points kept are optima of the uncapped problem: on the full curve to its accuracy
    np.testing.assert_array_less(full.bound(capped.i_xt) - capped.i_ty, full.accuracy + 1e-9)
    # beyond them the capped curve's stated accuracy covers the true (full) curve
    xs = np.linspace(0.0, full.envelope_i_xt[-1], 500)
    assert np.max(full.bound(xs) - capped.bound(xs)) <= capped.accuracy + 1e-9
    assert "capped at max_clusters = 4" in str(capped)
    assert capped.summary()["capped"] is True


def test_nothing_is_refined_restarted_or_cross_seeded_beyond_where_the_cap_ends_the_curve(
        monkeypatch):
    """Points past the first one that uses every cluster the cap allows are dropped, so no
    solve is spent there after the two passes over the grid: each grid beta there is solved
    by the reverse pass once (the top one twice: two starts) and by the forward pass at most
    twice (continued, then split), and no beta is inserted."""
    from collections import Counter
    from ibsolver import curve as curve_module
    from ibsolver.solve import Problem
    solved = Counter()
    solve = curve_module._Tracer.solve
    monkeypatch.setattr(curve_module._Tracer, "solve", lambda self, state, beta, *a, **kw:
                        solved.update([beta]) or solve(self, state, beta, *a, **kw))
    p = _random_joint(40, 3, 0)
    with pytest.warns(ibsolver.ConvergenceWarning, match="max_clusters=4 bound"):
        capped = ibsolver.ib_curve(p, locate_transitions=False, max_clusters=4, n_betas=20)
    grid = curve_module._default_grid(Problem.from_joint(p).compressed()[0], 20)
    end = min(b for b in grid if b > capped.beta[-1])  # the first capped point
    beyond = {b: n for b, n in solved.items() if b > end}
    assert beyond and set(beyond) <= set(grid)
    assert all(n <= 3 for b, n in beyond.items() if b < grid[-1]) and beyond[grid[-1]] <= 4


def test_max_clusters_is_validated():
    with pytest.raises(ValueError, match="max_clusters"):
        ibsolver.ib_curve(_random_joint(6, 2, 1), max_clusters=0)


def test_no_branch_carries_more_clusters_than_the_cap():
    """The forward branch splits unstable clusters; on a discretised Gaussian it once
    carried 92 clusters for 24 rows. It never exceeds the cap (by default the rows)."""
    with pytest.warns(ibsolver.ConvergenceWarning, match="max_clusters=3 bound"):
        curve = ibsolver.ib_curve(_random_joint(20, 3, 4), method="forward", max_clusters=3,
                                  locate_transitions=False)
    assert max(r.n_clusters for r in curve.branches["forward"].results) == 3
    assert curve.capped


@pytest.mark.parametrize("seed, cap", [(0, 6), (3, 3), (5, 3)])
def test_added_clusters_respect_the_cap_on_both_branches(seed, cap):
    """Clusters added where one would grow (invasion rate > 1) count against the cap too:
    on these 40 x 6 tables the branches reached cap + 1 or cap + 2 clusters before."""
    with pytest.warns(ibsolver.ConvergenceWarning, match=f"max_clusters={cap} bound"):
        curve = ibsolver.ib_curve(_random_joint(40, 6, seed), max_clusters=cap,
                                  locate_transitions=False, n_threads=1)
    assert max(r.n_clusters for b in curve.branches.values() for r in b.results) <= cap


def test_curve_only_and_located_trace_the_same_curve():
    """Curve-only mode does not isolate cluster-count changes; its curve agrees with the
    located run's to their stated accuracies. (A forward branch stopped where it first met
    the reverse one left this curve 3.4e-4 bit low.)"""
    p = discretize_gaussian(0.8, 8, 8)
    fast = ibsolver.ib_curve(p, locate_transitions=False)
    slow = ibsolver.ib_curve(p)
    xs = np.linspace(0.0, slow.envelope_i_xt[-1], 2000)
    np.testing.assert_allclose(fast.bound(xs), slow.bound(xs),
                               atol=fast.accuracy + slow.accuracy + 1e-9)
    assert fast.converged.all() and slow.converged.all()


def test_curve_results_keep_decoders_not_encoders():
    p = _random_joint(12, 3, 3)
    curve = ibsolver.ib_curve(p, return_encoders=True, locate_transitions=False)
    assert all(r.encoder is None for br in curve.branches.values() for r in br.results)
    for enc, b, i_ty in list(zip(curve.encoders, curve.beta, curve.i_ty))[::10]:
        np.testing.assert_allclose(enc.sum(axis=1), 1.0, atol=1e-12)
        score = ibsolver.score_encoder(p, enc, curve=curve)
        np.testing.assert_allclose(score.i_ty, i_ty, atol=1e-7)


def test_sparse_table_where_a_dying_cluster_is_some_rows_only_admissible_one():
    """Regression: with 80% zeros, dropping a dying cluster (the solver's shortcut) could
    leave some x no cluster it can join (p(y|t) = 0 where p(y|x) > 0), and the curve raised
    FloatingPointError. Such a drop is no longer tried."""
    rng = np.random.default_rng(0)
    keep = rng.random((64, 4)) < 0.2
    keep[np.flatnonzero(~keep.any(axis=1)), 0] = True
    keep[0, np.flatnonzero(~keep.any(axis=0))] = True
    p = rng.dirichlet(np.ones(256)).reshape(64, 4) * keep
    curve = ibsolver.ib_curve(p / p.sum(), locate_transitions=False)
    assert curve.converged.all()
    assert np.all(np.diff(curve.envelope_i_ty) >= -1e-12)


def test_unstable_clusters_agrees_with_the_full_eigen_analysis():
    """The trace bound only skips eigendecompositions: the clusters found unstable are those
    with beta lambda_2 >= 1 by the full analysis, on random soft encoders and betas."""
    from ibsolver.bifurcation import cluster_stabilities, unstable_clusters
    rng = np.random.default_rng(5)
    for _ in range(20):
        n, m, k = rng.integers(3, 30), rng.integers(2, 9), rng.integers(1, 12)
        p = _random_joint(n, m, int(rng.integers(1 << 30)))
        p_x = p.sum(axis=1)
        enc = rng.dirichlet(np.ones(k) * 0.3, size=n)
        for beta in (1.5, 4.0, 30.0):
            full = {t for t, s in enumerate(cluster_stabilities(p_x, p / p_x[:, None], enc))
                    if beta * s.eigenvalue >= 1.0}
            fast = unstable_clusters(p_x, p / p_x[:, None], enc, beta)
            assert set(fast) == full


def test_a_tolerance_not_reached_is_a_warning_naming_the_knob():
    p = _random_joint(30, 3, 6)
    with pytest.warns(ibsolver.ConvergenceWarning, match="max_points=12"):
        curve = ibsolver.ib_curve(p, locate_transitions=False, max_points=12, n_betas=10)
    assert curve.accuracy > 1e-5
    with pytest.warns(ibsolver.ConvergenceWarning, match="max_clusters=3 bound"):
        ibsolver.ib_curve(p, locate_transitions=False, max_clusters=3)


def test_transitions_known_only_to_a_bracket_say_so():
    """Curve-only transitions sit at their bracket's midpoint: the summary and the JSON say
    "between", not a located beta (a 512 x 4 onset read 4.10647 against 1/s* = 4.10945)."""
    p = np.random.default_rng(1).dirichlet(np.ones(24)).reshape(8, 3)
    fast = ibsolver.ib_curve(p, locate_transitions=False)
    assert fast.transitions and not any(t.located for t in fast.transitions)
    assert "optimum leaves zero between beta = " in str(fast)
    assert all(not t["located"] for t in fast.summary()["transitions"])
    located = ibsolver.ib_curve(p)
    onset = [t for t in located.transitions if t.beta == located.onset_beta]
    assert onset and onset[0].located
    assert f"optimum leaves zero at beta_0 = {located.onset_beta:.6g}" in str(located)
