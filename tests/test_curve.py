"""The whole IB curve, its transitions and the bound, against analytic answers and invariants."""
import json
import warnings

import numpy as np
import pytest
from conftest import birth_problem, dsbs, gerber

import ibsolver

EPS = 0.1


@pytest.fixture(scope="module")
def dsbs_curve():
    return ibsolver.ib_curve(dsbs(EPS))


@pytest.fixture(scope="module")
def birth_curve():
    return ibsolver.ib_curve(birth_problem(), return_encoders=True)


def test_dsbs_curve_follows_mrs_gerbers_lemma(dsbs_curve):
    c = dsbs_curve
    assert c.complete and c.converged.all()
    dev = [abs(gerber(x, EPS) - y) for x, y in zip(c.i_xt, c.i_ty)]
    assert max(dev) < 1e-6
    # the interpolated bound too, between computed points
    r = np.linspace(0.01, 0.99, 50)
    np.testing.assert_allclose(c.bound(r), [gerber(x, EPS) for x in r], atol=1e-4)
    assert np.all(c.bound(r) <= np.array([gerber(x, EPS) for x in r]) + 1e-9)  # achievable


def test_dsbs_first_transition_is_the_split_at_1_5625(dsbs_curve):
    t = dsbs_curve.transitions[0]
    assert t.kind == "split" and (t.n_clusters_before, t.n_clusters_after) == (1, 2)
    np.testing.assert_allclose(t.beta, 1 / (1 - 2 * EPS) ** 2, rtol=1e-5)
    np.testing.assert_allclose(t.eigenvalue, (1 - 2 * EPS) ** 2, rtol=1e-10)
    np.testing.assert_allclose(np.abs(t.direction), 1.0, atol=1e-12)  # x=0 vs x=1
    assert dsbs_curve.onset_kind == "split"
    np.testing.assert_allclose(dsbs_curve.onset_beta_s_star, 1.5625, rtol=1e-5)


def test_birth_before_the_first_instability(birth_curve):
    c = birth_curve
    beta_c = ibsolver.first_instability(birth_problem())
    np.testing.assert_allclose(c.first_instability, 3.26961, rtol=1e-5)
    # the curve holds the non-trivial branch below 1/s2^2 ...
    below = (c.beta < beta_c) & (c.i_xt > 0.01)
    assert below.any() and np.all(c.lagrangian[below] < 0)
    # ... reached by a birth, the first transition, at beta_0 < 1/s2^2
    first = c.transitions[0]
    assert first.kind == "birth" and first.n_clusters_before == 1
    assert first.beta < beta_c * 0.95
    assert c.onset_kind == "birth" and c.onset_beta == first.beta
    # two independent routes to beta_0: the invasion rate root and 1/s*
    np.testing.assert_allclose(first.beta, c.onset_beta_s_star, rtol=1e-3)
    # the forward (eigen-analysis) branch splits at 1/s2^2, but it is not optimal there
    fwd = [t for t in c.all_transitions if t.branch == "forward" and t.kind == "split"]
    assert fwd and np.isclose(fwd[0].beta, beta_c, rtol=1e-7) and not fwd[0].optimal


def test_births_and_splits_are_located_consistently(birth_curve):
    kinds = [t.kind for t in birth_curve.transitions]
    assert kinds.count("birth") >= 2 and "split" in kinds
    betas = [t.beta for t in birth_curve.transitions]
    assert betas == sorted(betas)
    for t in birth_curve.transitions:
        assert t.n_clusters_after > t.n_clusters_before
        assert t.beta_bracket[0] <= t.beta <= t.beta_bracket[1]


def _check_curve_invariants(c, p):
    i_xy = ibsolver.mutual_information(p)
    x, y = c.envelope_i_xt, c.envelope_i_ty
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) >= -1e-12)  # non-decreasing
    slopes = np.diff(y) / np.diff(x)
    assert np.all(np.diff(slopes) <= 1e-9)  # concave
    assert np.all(c.i_ty <= c.i_xt + 1e-9) and np.all(c.i_ty <= i_xy + 1e-9)
    np.testing.assert_allclose(y[-1], i_xy, atol=1e-9)
    # chords between optimal points have slopes between 1/beta_hi and 1/beta_lo
    good = np.diff(c.i_xt) > 1e-4
    chord = np.diff(c.i_ty)[good] / np.diff(c.i_xt)[good]
    assert np.all(chord <= 1 / c.beta[:-1][good] + 1e-6)
    assert np.all(chord >= 1 / c.beta[1:][good] - 1e-6)
    # per-beta optimum: nothing on the envelope does better at that beta
    for b, lag in zip(c.beta, c.lagrangian):
        assert lag <= np.min(x - b * y) + 1e-7


@pytest.mark.parametrize("seed, shape", [(3, (6, 2)), (4, (5, 4))])
def test_curve_invariants_on_random_problems(seed, shape):
    p = np.random.default_rng(seed).dirichlet(np.ones(shape[0] * shape[1])).reshape(shape)
    c = ibsolver.ib_curve(p, n_betas=30)
    _check_curve_invariants(c, p)


def test_curve_invariants_birth(birth_curve):
    _check_curve_invariants(birth_curve, birth_problem())


def test_deterministic_rule_curve_is_min_ix_hy():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 3, 40)
    p = np.zeros((40, 3))
    p[np.arange(40), f] = rng.dirichlet(np.ones(40))
    c = ibsolver.ib_curve(p)
    h_y = ibsolver.entropy(p.sum(0))
    assert c.deterministic
    interior = (c.i_xt > 0.05) & (c.i_xt < h_y - 0.05)
    assert interior.sum() >= 5  # the squared IB reaches the inside of the line
    np.testing.assert_allclose(c.i_ty, np.minimum(c.i_xt, h_y), atol=1e-7)
    # the squared IB optimum is I(X;T) = beta / 2 below H(Y)
    np.testing.assert_allclose(c.i_xt[interior], c.beta[interior] / 2, atol=1e-5)
    r = np.linspace(0, 2 * h_y, 9)
    np.testing.assert_allclose(c.bound(r), np.minimum(r, h_y), atol=1e-12)


def test_gaussian_discretisation_transitions_approach_the_analytic_ones():
    rho = 0.8
    g = ibsolver.gaussian_ib(1.0, rho, 1.0)
    beta_c = g.critical_betas[0]
    np.testing.assert_allclose(beta_c, 1 / rho**2, rtol=1e-12)
    betas = np.geomspace(1.2, 4.0, 6)  # explicit grid: the split itself is located exactly
    err = []
    for bins in (6, 10):
        p = ibsolver.discretize_gaussian(rho, bins)
        # the eigen-analysis branch alone: it finds the split at 1/s2^2, but the optimum
        # leaves zero earlier, by a birth at 1/s* (s* > s2^2 here), and that is flagged
        with pytest.warns(ibsolver.OptimalityWarning, match="onset"):
            c = ibsolver.ib_curve(p, betas=betas, method="forward")
        first = c.transitions[0]
        assert first.kind == "split"
        np.testing.assert_allclose(first.beta, ibsolver.first_instability(p), rtol=1e-9)
        err.append(abs(first.beta - beta_c) / beta_c)
        # a discretised X carries no more than the continuous pair: below the analytic curve
        assert np.all(c.i_ty <= g.bound(c.i_xt) + 1e-9)
    assert err[1] < 0.75 * err[0]  # 6 bins: 31% above 1/rho^2; finer bins close in


def test_explicit_betas_are_used_as_given():
    betas = [1.2, 2.0, 3.0, 10.0]
    c = ibsolver.ib_curve(dsbs(EPS), betas=betas)
    np.testing.assert_array_equal(c.beta, betas)
    assert c.transitions[0].kind == "split"
    np.testing.assert_allclose(c.transitions[0].beta, 1.5625, rtol=1e-5)


def test_bound_is_vectorised_and_validated(dsbs_curve):
    r = np.array([[0.1, 0.5], [0.9, 2.0]])
    out = dsbs_curve.bound(r)
    assert out.shape == r.shape and isinstance(dsbs_curve.bound(0.5), float)
    np.testing.assert_allclose(dsbs_curve.bound(5.0), dsbs_curve.i_xy, atol=1e-12)
    with pytest.raises(ValueError, match="non-negative"):
        dsbs_curve.bound(-0.1)


def test_score_encoder(birth_curve):
    p = birth_problem()
    c = birth_curve
    i = int(np.argmin(np.abs(c.beta - 6.0)))
    on = ibsolver.score_encoder(p, c.encoders[i], curve=c)
    assert abs(on.gap) < 1e-6 and on.epsilon < 1e-6 and not on.above_bound
    np.testing.assert_allclose(on.beta_fit, c.beta[i], rtol=0.05)
    rand = np.random.default_rng(0).dirichlet(np.ones(3), size=8)
    off = ibsolver.score_encoder(p, rand, curve=c)
    assert off.gap > 1e-3 and off.epsilon > 0


def test_outputs_round_trip(tmp_path, dsbs_curve):
    import json
    dsbs_curve.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as data:
        np.testing.assert_array_equal(data["beta"], dsbs_curve.beta)
        np.testing.assert_array_equal(data["envelope_i_ty"], dsbs_curve.envelope_i_ty)
    d = json.loads(json.dumps(dsbs_curve.summary()))
    assert d["transitions"][0]["kind"] == "split"


def test_plots_return_axes(birth_curve, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from ibsolver import plotting
    for fn in (plotting.plot_curve, plotting.plot_bifurcation, plotting.plot_iterations):
        ax = fn(birth_curve)
        assert ax.get_xlabel()
    fig = plotting.plot_summary(birth_curve, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 10_000 and len(fig.axes) == 3


def _dirichlet_64x8():
    return np.random.default_rng(0).dirichlet(np.ones(512)).reshape(64, 8)


def test_birth_located_on_a_coarse_grid_at_one_over_s_star():
    """On a grid whose first bracket spans the onset, the invasion rate of the light cluster
    falls back onto p(y) below the onset (G = 1 there is not a root): the birth must still
    be located, at beta_0 = 1/s* (docs/theory.rst section 2), not left at the bracket midpoint."""
    p_xy = _dirichlet_64x8()
    curve = ibsolver.ib_curve(p_xy, betas=[1.0, 4.9, 5.3])
    first = curve.transitions[0]
    assert first.kind == "birth" and first.beta_bracket == (1.0, 4.9)
    assert first.beta == pytest.approx(curve.onset_beta_s_star, rel=1e-3)
    assert curve.onset_beta == pytest.approx(curve.onset_beta_s_star, rel=1e-3)


def test_unlocated_transitions_keep_the_curve_and_their_brackets(birth_curve):
    betas = birth_curve.beta[::4]
    located = ibsolver.ib_curve(birth_problem(), betas=betas)
    quick = ibsolver.ib_curve(birth_problem(), betas=betas, locate_transitions=False)
    np.testing.assert_allclose(quick.i_ty, located.i_ty, atol=1e-9)
    np.testing.assert_allclose(quick.i_xt, located.i_xt, atol=1e-6)
    assert [t.kind for t in quick.transitions][:1] == [t.kind for t in located.transitions][:1]
    for t in quick.all_transitions:
        lo, hi = t.beta_bracket
        assert t.beta == pytest.approx(0.5 * (lo + hi))


def test_accuracy_bounds_the_gap_to_a_finer_curve(birth_curve):
    """A coarse curve's stated accuracy covers how far the finer (refined) curve lies above
    it; an encoder scored against the coarse curve is 'above' it only beyond that."""
    coarse = ibsolver.ib_curve(birth_problem(), betas=birth_curve.beta[::8])
    assert birth_curve.accuracy <= 2e-5  # refined to curve_tol = 1e-5 (+ point tolerance)
    xs = np.linspace(0.0, birth_curve.envelope_i_xt[-1], 400)
    excess = birth_curve.bound(xs) - coarse.bound(xs)
    assert excess.max() <= coarse.accuracy + 1e-9
    # the refined curve's own optimal encoder at a mid beta scores on the coarse curve
    mid = len(birth_curve.beta) // 2
    enc = birth_curve.encoders[mid]
    score = ibsolver.score_encoder(birth_problem(), enc, curve=coarse)
    assert score.tolerance == coarse.accuracy
    assert score.above_bound == (score.gap < -coarse.accuracy)


@pytest.mark.parametrize("power", [0.5, 0.2])
def test_chord_gap_is_the_tangent_triangle_over_the_chord(power):
    """Between two points of a concave curve y = x^power (slopes 1/beta there) the gap is
    at least the curve's largest distance above the chord, at most the worst case over
    all chord slopes, dx (s_lo - s_hi) / 4, and 0 on a straight piece."""
    from types import SimpleNamespace
    from ibsolver.curve import _chord_gap

    def point(x):
        slope = power * x ** (power - 1.0)
        return SimpleNamespace(i_xt=x, i_ty=x ** power, beta=1.0 / slope)

    for x0, x1 in [(0.1, 0.3), (0.5, 0.9), (0.01, 2.0)]:
        lo, hi = point(x0), point(x1)
        xs = np.linspace(x0, x1, 20001)
        chord = lo.i_ty + (xs - x0) * (hi.i_ty - lo.i_ty) / (x1 - x0)
        true_gap = np.max(xs ** power - chord)
        gap = _chord_gap(lo, hi, 1.0)
        assert true_gap - 1e-12 <= gap <= (x1 - x0) * (1 / lo.beta - 1 / hi.beta) / 4 + 1e-15
    # a straight piece from a point of slope 1 (a first-order transition's time-sharing
    # segment) to one of slope 1/2: no gap, where the worst case would be 1/8
    straight = (SimpleNamespace(i_xt=0.0, i_ty=0.0, beta=1.0),
                SimpleNamespace(i_xt=1.0, i_ty=1.0, beta=2.0))
    assert _chord_gap(*straight, 1.0) == 0.0
    # a subnormal beta_lo (a vertical tangent there): the triangle's limit, dx (m - s_hi)
    steep = (SimpleNamespace(i_xt=0.0, i_ty=0.0, beta=5e-324),
             SimpleNamespace(i_xt=1.0, i_ty=1.0, beta=2.0))
    assert _chord_gap(*steep, 1.0) == 0.5


def test_birth_and_split_twins_count_once():
    """A birth (reverse branch) and a split (forward) between the same cluster counts within
    1e-3 of each other are one first-order transition: the earlier stays optimal, the
    later does not; a split farther away, or between other counts, is left alone."""
    from ibsolver.curve import Transition, _demote_twins

    def tr(beta, kind, branch, before=7, after=8):
        return Transition(beta=beta, kind=kind, branch=branch, n_clusters_before=before,
                          n_clusters_after=after, i_xt_before=0.0, i_xt_after=0.1,
                          i_ty_before=0.0, i_ty_after=0.05, beta_bracket=(beta - 1, beta + 1))

    out = _demote_twins([tr(37.3404, "birth", "reverse"), tr(37.3465, "split", "forward"),
                         tr(81.27, "birth", "reverse", 12, 13),
                         tr(81.92, "split", "forward", 12, 13),
                         tr(90.0, "birth", "reverse", 13, 14),
                         tr(90.01, "split", "forward", 14, 15)])
    assert [t.optimal for t in out] == [True, False, True, True, True, True]


def test_located_splits_satisfy_the_instability_condition():
    """Every split located on the forward branch, also from more than one cluster (where
    the branch moves with beta and the root is found by regula falsi), satisfies
    beta * lambda_2(C(t)) = 1 to the 1e-7 relative bracket it is located to."""
    curve = ibsolver.ib_curve(birth_problem())
    splits = [t for t in curve.all_transitions if t.kind == "split"]
    assert sum(t.n_clusters_before > 1 for t in splits) >= 3
    for t in splits:
        assert abs(t.beta * t.eigenvalue - 1.0) < 1e-6
        assert t.beta_bracket[0] <= t.beta <= t.beta_bracket[1]


def test_reverse_branch_from_grouped_rows_reaches_the_same_points(monkeypatch):
    """The reverse branch starts with rows whose p(y|x) share a narrow cell grouped into one
    cluster (far too narrow to split there); from one cluster per row it reaches the same
    solutions at every beta (Lagrangians within 1e-9 bit)."""
    from ibsolver import curve as curve_module

    p_xy = np.random.default_rng(4).dirichlet(np.ones(800)).reshape(400, 2)
    betas = np.linspace(1.0, 60.0, 12)
    starts = []
    finest = curve_module._Tracer.finest_state

    def recorded(self, beta):
        state = finest(self, beta)
        starts.append(state.n_clusters)
        return state

    monkeypatch.setattr(curve_module._Tracer, "finest_state", recorded)
    grouped = ibsolver.ib_curve(p_xy, betas=betas, method="reverse", locate_transitions=False)
    monkeypatch.setattr(curve_module, "FINEST_CELL", 1e-12)  # no two rows share a cell
    rows = ibsolver.ib_curve(p_xy, betas=betas, method="reverse", locate_transitions=False)
    assert starts[0] < 200 and starts[1] == 400
    np.testing.assert_allclose(grouped.lagrangian, rows.lagrangian, rtol=0, atol=1e-9)
    np.testing.assert_allclose(grouped.i_xt, rows.i_xt, rtol=0, atol=1e-6)
    np.testing.assert_allclose(grouped.i_ty, rows.i_ty, rtol=0, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hypercontractivity_over_tilts_matches_a_search_over_all_r(seed):
    """s* is searched over exponential tilts of p(x) only (the I-projections); a direct
    maximisation of D(r_Y || p_Y) / D(r || p_X) over all r (a grid on the simplex, then
    Nelder-Mead from its 5 best points) finds no higher value, and the returned r attains
    the returned value. DSBS: s* = s2^2."""
    from itertools import product

    from scipy.optimize import minimize

    p_xy = np.random.default_rng(seed).dirichlet(np.full(12, 0.5)).reshape(4, 3)
    p_x, p_y = p_xy.sum(axis=1), p_xy.sum(axis=0)

    def ratio(r):  # rows of r: distributions on X away from p_x
        r_y = r @ (p_xy / p_x[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            num = np.sum(np.where(r_y > 0, r_y * np.log(r_y / p_y), 0.0), axis=-1)
            den = np.sum(np.where(r > 0, r * np.log(r / p_x), 0.0), axis=-1)
        return np.where(den > 1e-6, num / den, 0.0)

    grid = np.array([c for c in product(range(41), repeat=3) if sum(c) <= 40], float)
    grid = np.column_stack([grid, 40.0 - grid.sum(axis=1)]) / 40.0
    values = ratio(grid)

    def neg(z):
        r = np.exp(z - z.max())
        return -float(ratio(r / r.sum()))

    direct = max(values.max(), *(-minimize(neg, np.log(grid[i] + 1e-9), method="Nelder-Mead",
                                           options={"xatol": 1e-10, "fatol": 1e-13}).fun
                                 for i in np.argsort(values)[-5:]))
    s_star, r = ibsolver.hypercontractivity(p_xy)
    assert s_star >= direct - 1e-7
    if s_star > ibsolver.measures.maximal_correlation(p_xy) ** 2 + 1e-9:
        assert float(ratio(r)) == pytest.approx(s_star, rel=1e-9)
    assert ibsolver.hypercontractivity(dsbs(0.1))[0] == pytest.approx(0.64, rel=1e-6)


def test_batched_cluster_stabilities_match_one_at_a_time():
    """cluster_stabilities (one stacked eigendecomposition) gives each cluster's lambda_2
    and split direction (up to sign) as cluster_stability does, with zeros in p(x, y) and
    clusters that miss some x."""
    from ibsolver.bifurcation import cluster_stabilities, cluster_stability

    rng = np.random.default_rng(0)
    for n, m, k in [(50, 2, 5), (30, 4, 7), (40, 3, 6)]:
        p = rng.dirichlet(np.ones(n * m)).reshape(n, m)
        p[rng.random(p.shape) < 0.3] = 0.0
        p[np.arange(n), rng.integers(m, size=n)] += 0.01
        p /= p.sum()
        p_x = p.sum(axis=1)
        q = rng.dirichlet(np.ones(k), size=n)
        q[:5, 1] = 0.0
        q /= q.sum(axis=1, keepdims=True)
        batched = cluster_stabilities(p_x, p / p_x[:, None], q)
        for t in range(k):
            one = cluster_stability(p_x, p / p_x[:, None], q[:, t])
            assert batched[t].eigenvalue == pytest.approx(one.eigenvalue, abs=1e-13)
            sign = np.sign(batched[t].direction @ one.direction)
            np.testing.assert_allclose(sign * batched[t].direction, one.direction, atol=1e-10)


def test_secant_prediction_changes_nothing_but_the_work(monkeypatch):
    """Each solve starts from the secant through its branch's last two solutions: the same
    curve (Lagrangians within 1e-9 bit) as starting from the last solution, in fewer
    iterations."""
    from ibsolver import curve as curve_module

    p_xy = np.random.default_rng(7).dirichlet(np.ones(600)).reshape(300, 2)
    betas = np.linspace(1.0, 40.0 * ibsolver.first_instability(p_xy), 40)
    predicted = ibsolver.ib_curve(p_xy, betas=betas, locate_transitions=False)
    monkeypatch.setattr(curve_module, "PREDICT_DECODER", -1.0)  # never predict
    plain = ibsolver.ib_curve(p_xy, betas=betas, locate_transitions=False)
    for name in ("forward", "reverse"):
        np.testing.assert_allclose(predicted.branches[name].lagrangian,
                                   plain.branches[name].lagrangian, rtol=0, atol=1e-9)
    work = [sum(br.n_iter.sum() for br in c.branches.values()) for c in (predicted, plain)]
    assert work[0] < work[1]


def test_onset_birth_is_found_when_the_bracket_holds_several_events():
    """On a coarse grid the bracket of the onset holds two events (1 -> 3 clusters): the
    lightest new cluster's own birth comes later, and an ascent of the invasion rate from
    its decoder falls back onto the existing one. The first birth is still located, at
    1/s* (to 1e-6), below the first instability 1/s2^2. (It was reported at 3.5576,
    above 1/s2^2 = 3.5166.)"""
    rng = np.random.default_rng(1)
    n, m = int(rng.integers(50, 400)), int(rng.choice([2, 3]))
    p_xy = rng.dirichlet(np.ones(n * m)).reshape(n, m)
    betas = np.linspace(1.0, 10 * ibsolver.first_instability(p_xy), 30)
    curve = ibsolver.ib_curve(p_xy, betas=betas)
    first = curve.transitions[0]
    assert (first.kind, first.n_clusters_before) == ("birth", 1)
    assert first.beta == pytest.approx(curve.onset_beta_s_star, rel=1e-6)
    assert curve.onset_beta < curve.first_instability


def test_a_cluster_newton_merged_away_is_added_back():
    """On this 76 x 3 problem the accelerated reverse branch at beta = 10.33 converged in
    14 iterations to 3 coincident clusters plus a small one (2 distinct), 6.9e-4 bit above
    the 3 distinct clusters plain BA reaches in 2000; a zero-mass cluster would grow there
    (invasion rate 1.105). Now it is added: no point of the accelerated curve lies above
    plain BA's."""
    rng = np.random.default_rng(0)
    while True:  # the 76 x 3 problem of a seeded stream of random problems
        n, m = int(rng.integers(3, 150)), int(rng.integers(2, 6))
        alpha = float(rng.choice([0.2, 0.5, 1.0, 3.0]))
        p_xy = rng.dirichlet(np.full(n * m, alpha)).reshape(n, m)
        if (n, m) == (76, 3):
            break
    betas = np.geomspace(1.0, 30 * ibsolver.first_instability(p_xy), 25)
    fast = ibsolver.ib_curve(p_xy, betas=betas, locate_transitions=False)
    plain = ibsolver.ib_curve(p_xy, betas=betas, locate_transitions=False, accelerate=False,
                              max_iter=200_000)
    assert np.max(fast.lagrangian - plain.lagrangian) <= 1e-8


def _fuzzed_problem(seed: int, index: int) -> np.ndarray:
    """Problem ``index`` of the seeded stream the curve was fuzzed with: random n x m
    (n < 80, m < 7), every third with zeros in p(x, y)."""
    rng = np.random.default_rng(seed)
    for i in range(index + 1):
        n, m = int(rng.integers(2, 80)), int(rng.integers(2, 7))
        alpha = float(rng.choice([0.1, 0.3, 1.0]))
        p_xy = rng.dirichlet(np.full(n * m, alpha)).reshape(n, m)
        if i % 3 == 0:
            p_xy[rng.random(p_xy.shape) < 0.3] = 0.0
            p_xy[np.arange(n), rng.integers(m, size=n)] += 1e-3
            p_xy /= p_xy.sum()
    return p_xy


def test_near_copies_of_the_trivial_cluster_are_no_transition():
    """Near the onset the reverse branch can end on two near-copies of the trivial cluster
    (I(X;T) ~ 1e-16). They count as one cluster: the onset is the birth at 1/s*, not a
    "birth" at the midpoint of the bracket where the copies appear (1.2386 here, below
    1/s* = 1.24545, which no solution can leave zero before)."""
    p_xy = _fuzzed_problem(123, 23)
    assert p_xy.shape == (20, 4)
    curve = ibsolver.ib_curve(p_xy, n_betas=20)
    assert curve.onset_beta == pytest.approx(curve.onset_beta_s_star, rel=1e-6)


def test_curve_converges_where_newton_cannot_run():
    """With zeros in p(x, y) some p(y|t) = 0 and Newton cannot run (log p(t, y) is
    infinite); where BA then crawls towards a cluster's death or merge, the shortcut must
    still be tried. On this 5 x 3 problem three points ran to max_iter without it."""
    p_xy = _fuzzed_problem(456, 15)
    assert p_xy.shape == (5, 3) and np.any(p_xy == 0)
    curve = ibsolver.ib_curve(p_xy, n_betas=20, locate_transitions=False)
    assert curve.converged.all()


def test_onset_and_one_over_s_star_agree_where_the_generic_ascent_stops_short():
    """On this random 16 x 16 table the generic ascents of the tilt ratio stop 1.6e-5
    (relative) short of s*, below the birth the curve locates; the clusters found past the
    onset certify a larger s* (every T has I(T;Y) <= s* I(X;T)), and the two agree to 1e-6."""
    p_xy = np.random.default_rng(0).dirichlet(np.ones(256)).reshape(16, 16)
    generic = ibsolver.hypercontractivity(p_xy)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ibsolver.OptimalityWarning)
        curve = ibsolver.ib_curve(p_xy)
    assert curve.onset_kind == "birth"
    assert curve.onset_beta < (1 - 1e-5) / generic  # the case this test is about
    assert curve.onset_beta == pytest.approx(curve.onset_beta_s_star, rel=1e-6)
    ratios = curve.i_ty[curve.i_xt > 1e-6] / curve.i_xt[curve.i_xt > 1e-6]
    assert np.all(ratios <= 1.0 / curve.onset_beta_s_star * (1 + 1e-9))


def test_a_user_grid_reaches_optima_that_neither_annealing_branch_passes():
    """A 5 x 4 table on a 40-point user grid: at beta 3.11, 3.53 and 5.15 both branches
    (and cross-seeding between them) sat on local optima up to 6.6e-3 bit above what
    ``solve`` reaches from random starts; the curve's own random restarts find them."""
    rng = np.random.default_rng(21)
    n, m = rng.integers(3, 12), rng.integers(2, 5)
    p_xy = rng.dirichlet(np.ones(n * m) * 0.5).reshape(n, m)
    assert p_xy.shape == (5, 4)
    grid = np.geomspace(1.0, 50 * ibsolver.first_instability(p_xy), 40)
    curve = ibsolver.ib_curve(p_xy, betas=grid)
    with warnings.catch_warnings():  # a reference short of convergence is still the
        warnings.simplefilter("ignore", ibsolver.ConvergenceWarning)  # value of an encoder
        for beta, lagrangian in zip(curve.beta, curve.lagrangian):
            best = min(ibsolver.solve(p_xy, beta, random_state=s).lagrangian for s in range(6))
            assert lagrangian <= best + 1e-9, beta


def test_progress_never_goes_back_and_ends_full(monkeypatch):
    """The bar's total is fixed up front (the most grid solves refinement allows), so its
    fraction only grows as the curve is refined; it reads 100% when the curve is done."""
    import ibsolver.curve as curve_module

    class Bar:
        def __init__(self, total):
            self.total, self.n, self.fractions = total, 0, []

        def update(self, n=1):
            self.n += n
            self.fractions.append(self.n / self.total)

        def refresh(self):
            self.fractions.append(self.n / self.total)

        def close(self):
            pass

    bars = []
    monkeypatch.setattr(curve_module, "_progress",
                        lambda enabled, total: bars.append(Bar(total)) or bars[-1])
    ibsolver.ib_curve(birth_problem(), progress=True, n_betas=8)
    (bar,) = bars
    assert bar.n > 16  # refinement added solves after the 2 x 8 of the first grid
    assert np.all(np.diff(bar.fractions) >= 0) and bar.fractions[-1] == 1.0


def test_the_summary_is_strict_json_where_values_are_unknown_or_infinite():
    """X independent of Y: the optimum never leaves zero (onset and 1/s* infinite); the
    JSON summary has null there, not the Infinity strict JSON lacks."""
    curve = ibsolver.ib_curve(np.ones((3, 2)) / 6, n_betas=4)
    assert np.isinf(curve.onset_beta) and np.isinf(curve.onset_beta_s_star)
    d = json.loads(json.dumps(curve.summary(), allow_nan=False))
    assert d["onset_beta"] is None and d["onset_beta_s_star"] is None
