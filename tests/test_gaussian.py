"""Gaussian IB reference (Chechik, Globerson, Tishby, Weiss 2005) and its discretisation.

Layers: validation messages; analytic identities of the Gaussian curve (pinned scalar values,
a 2-D case with two critical betas, hypothesis invariants over random covariances, a direct
log-det check of the optimal projection); the exact discretiser; and the cross-check of the
discrete solver against the analytic curve. All information is in bits.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

import ibsolver
from ibsolver.exceptions import ConvergenceWarning
from ibsolver.gaussian import GaussianIB, _bvn_cdf, discretize_gaussian, gaussian_ib

LN2 = np.log(2.0)


def scalar_mi(rho):
    return -0.5 * np.log2(1.0 - rho ** 2)


def rotated_pair(rhos, seed=0):
    """Covariances of X' = M X, Y' = N Y with (X_i, Y_i) independent pairs of correlation
    rhos[i]; M, N random invertible. The eigenvalues stay 1 - rho_i^2."""
    rng = np.random.default_rng(seed)
    d = len(rhos)
    m = rng.normal(size=(d, d)) + 3 * np.eye(d)
    n = rng.normal(size=(d, d)) + 3 * np.eye(d)
    return m @ m.T, m @ np.diag(rhos) @ n.T, n @ n.T


def linear_gaussian_info(a, cov_x, cov_xy, cov_y):
    """(I(X;T), I(T;Y)) in bits of T = A X + xi, xi ~ N(0, I), by log-determinants."""
    cov_x_given_y = cov_x - cov_xy @ np.linalg.solve(cov_y, cov_xy.T)
    eye = np.eye(a.shape[0])
    ld_t = np.linalg.slogdet(a @ cov_x @ a.T + eye)[1]
    ld_t_y = np.linalg.slogdet(a @ cov_x_given_y @ a.T + eye)[1]
    return 0.5 * ld_t / LN2, 0.5 * (ld_t - ld_t_y) / LN2


@st.composite
def joint_covariances(draw):
    d_x = draw(st.integers(1, 4))
    d_y = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    b = rng.normal(size=(d_x + d_y, d_x + d_y + 2))
    joint = b @ b.T + 0.05 * np.eye(d_x + d_y)
    return joint[:d_x, :d_x], joint[:d_x, d_x:], joint[d_x:, d_x:]


# ----------------------------------------------------------------------------- validation

class TestValidation:
    def test_not_symmetric(self):
        with pytest.raises(ValueError, match=r"cov_x must be symmetric \(got max \|C - C\^T\| = 0\.5"):
            gaussian_ib([[1.0, 0.5], [0.0, 1.0]], [[0.1], [0.1]], 1.0)

    def test_not_positive_definite(self):
        with pytest.raises(ValueError, match=r"cov_y must be positive definite \(got smallest eigenvalue -1"):
            gaussian_ib(1.0, 0.1, [[1.0, 2.0], [2.0, 1.0]])
        with pytest.raises(ValueError, match=r"cov_x must be positive definite \(got smallest eigenvalue 0"):
            gaussian_ib(0.0, 0.0, 1.0)

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"cov_xy must have shape \(d_x, d_y\) = \(2, 1\).*got shape \(1, 2\)"):
            gaussian_ib(np.eye(2), [[0.1, 0.1]], 1.0)
        with pytest.raises(ValueError, match=r"cov_x must be a square 2-D matrix or a scalar \(got shape \(3,\)\)"):
            gaussian_ib([1.0, 2.0, 3.0], 0.1, 1.0)

    def test_singular_joint_means_infinite_information(self):
        with pytest.raises(ValueError, match=r"joint covariance .* must be positive definite.*infinite"):
            gaussian_ib(1.0, 1.0, 1.0)  # Y = X

    def test_non_finite_and_non_numeric(self):
        with pytest.raises(ValueError, match=r"cov_xy must be finite \(got nan\)"):
            gaussian_ib(1.0, np.nan, 1.0)
        with pytest.raises(TypeError, match=r"cov_x must be a real numeric array"):
            gaussian_ib("a", 0.1, 1.0)

    def test_bad_betas_and_information(self):
        g = gaussian_ib(1.0, 0.5, 1.0)
        with pytest.raises(ValueError, match=r"betas must be >= 0 \(got -1"):
            g.curve([1.0, -1.0])
        with pytest.raises(ValueError, match=r"i_xt must not contain NaN"):
            g.bound(np.nan)
        with pytest.raises(ValueError, match=r"i_xt must be >= 0 \(got -0.1"):
            g.bound(-0.1)

    def test_discretiser_arguments(self):
        with pytest.raises(ValueError, match=r"rho must be in the open interval \(-1, 1\) \(got 1.0\)"):
            discretize_gaussian(1.0, 10)
        with pytest.raises(ValueError, match=r"n_x_bins must be >= 1 \(got 0\)"):
            discretize_gaussian(0.5, 0)
        with pytest.raises(ValueError, match=r"span must be > 0.0 \(got 0.0\)"):
            discretize_gaussian(0.5, 10, span=0.0)
        with pytest.raises(ValueError, match=r"tails must be one of \['absorb', 'truncate'\] \(got 'fold'\)"):
            discretize_gaussian(0.5, 10, tails="fold")

    def test_result_is_frozen(self):
        g = gaussian_ib(1.0, 0.5, 1.0)
        assert isinstance(g, GaussianIB)
        with pytest.raises(AttributeError):
            g.mutual_information = 1.0
        with pytest.raises(ValueError):
            g.eigenvalues[0] = 0.5  # read-only array


# ------------------------------------------------------------------------ scalar Gaussian

@pytest.mark.parametrize("rho", [0.1, 0.5, -0.8, 0.99])
def test_scalar_eigenvalue_beta_and_information(rho):
    g = gaussian_ib(2.0, rho * np.sqrt(2.0 * 3.0), 3.0)  # unit-free: only rho matters
    np.testing.assert_allclose(g.eigenvalues, [1.0 - rho ** 2], rtol=1e-12)
    np.testing.assert_allclose(g.critical_betas, [1.0 / rho ** 2], rtol=1e-10)
    np.testing.assert_allclose(g.mutual_information, scalar_mi(rho), rtol=1e-12)


def test_scalar_pinned_values():
    # rho = 0.8: lambda = 0.36, beta_c = 1.5625; at beta = 4: I_x = 1/2 log2(3 * 0.64 / 0.36),
    # I_y = 1/2 log2((3/4) / 0.36); at beta = 10: I_x = 1/2 log2(9 * 16/9) = 2 bits exactly.
    g = gaussian_ib(1.0, 0.8, 1.0)
    i_xt, i_ty = g.curve([4.0, 10.0])
    np.testing.assert_allclose(i_xt, [0.5 * np.log2(3 * 0.64 / 0.36), 2.0], rtol=1e-13)
    np.testing.assert_allclose(i_ty, [0.5 * np.log2(0.75 / 0.36), 0.5 * np.log2(0.9 / 0.36)],
                               rtol=1e-13)


def test_curve_zero_up_to_critical_beta():
    g = gaussian_ib(1.0, 0.6, 1.0)
    beta_c = 1.0 / 0.36
    betas = np.array([0.0, 0.5, 1.0, 2.0, beta_c])
    i_xt, i_ty = g.curve(betas)
    np.testing.assert_array_equal(i_xt, 0.0)
    np.testing.assert_array_equal(i_ty, 0.0)
    i_xt, i_ty = g.curve(beta_c * (1 + 1e-6))
    assert 0 < i_xt < 1e-5 and 0 < i_ty < i_xt


def test_curve_is_monotone_concave_and_saturates():
    g = gaussian_ib(1.0, 0.8, 1.0)
    betas = np.geomspace(1.0, 1e6, 400)
    i_xt, i_ty = g.curve(betas)
    assert np.all(np.diff(i_xt) >= 0) and np.all(np.diff(i_ty) >= 0)
    assert np.all(i_ty <= np.minimum(i_xt, g.mutual_information) + 1e-15)
    # concave: slopes between successive points do not increase
    sel = i_xt > 0
    slopes = np.diff(i_ty[sel]) / np.diff(i_xt[sel])
    assert np.all(np.diff(slopes) <= 1e-12)
    # saturation: I(T;Y) -> I(X;Y), the gap is 1/2 log2(beta / (beta - 1)) ~ 1/(2 beta ln 2)
    _, i_ty_big = g.curve([1e8, np.inf])
    np.testing.assert_allclose(i_ty_big[0], g.mutual_information, atol=1e-8)
    assert i_ty_big[1] == pytest.approx(g.mutual_information, rel=1e-15)
    assert g.bound(np.inf) == pytest.approx(g.mutual_information, rel=1e-15)


@pytest.mark.parametrize("beta", [1.7, 3.0, 20.0, 1e3])
def test_slope_is_one_over_beta(beta):
    g = gaussian_ib(1.0, 0.8, 1.0)
    h = 1e-4 * beta
    i_xt, i_ty = g.curve([beta - h, beta + h])
    np.testing.assert_allclose(np.diff(i_ty) / np.diff(i_xt), 1.0 / beta, rtol=1e-4)
    # the same slope through bound(), at the curve point of beta
    x0 = float(g.curve(beta)[0])
    dx = 1e-5 * max(x0, 1e-3)
    slope = (g.bound(x0 + dx) - g.bound(x0 - dx)) / (2 * dx)
    np.testing.assert_allclose(slope, 1.0 / beta, rtol=1e-4)


def test_bound_inverts_curve():
    g = gaussian_ib(*rotated_pair([0.9, 0.5, 0.2]))
    betas = np.r_[np.linspace(1.0, 30.0, 300), g.critical_betas]
    i_xt, i_ty = g.curve(betas)
    np.testing.assert_allclose(g.bound(i_xt), i_ty, rtol=1e-10, atol=1e-14)
    assert g.bound(0.0) == 0.0
    assert np.shape(g.bound(np.ones((2, 3)))) == (2, 3)


def test_bound_is_monotone_concave_and_below_data_processing():
    g = gaussian_ib(*rotated_pair([0.95, 0.6]))
    x = np.linspace(0.0, 12.0, 4001)
    y = g.bound(x)
    assert np.all(np.diff(y) >= 0)
    assert np.all(np.diff(y, 2) <= 1e-12)
    assert np.all(y <= np.minimum(x, g.mutual_information) + 1e-15)
    # saturation is slow in I(X;T): with n directions active the gap is about
    # n / (2 beta ln 2) with beta ~ 2^(2 I(X;T) / n)
    np.testing.assert_allclose(g.bound(60.0), g.mutual_information, rtol=0, atol=1e-8)
    assert g.mutual_information - y[-1] > 1e-4


# ------------------------------------------------------------------- multivariate Gaussian

def test_two_dimensional_two_critical_betas():
    rhos = np.array([0.9, 0.5])
    g = gaussian_ib(*rotated_pair(rhos, seed=3))
    np.testing.assert_allclose(g.eigenvalues, [0.19, 0.75], rtol=1e-10)
    np.testing.assert_allclose(g.critical_betas, [1 / 0.81, 4.0], rtol=1e-10)
    np.testing.assert_allclose(g.mutual_information, scalar_mi(rhos).sum(), rtol=1e-12)
    np.testing.assert_array_equal(g.n_active([1.0, 1.2, 1.3, 4.0, 4.01, np.inf]), [0, 0, 1, 1, 2, 2])
    one, two = gaussian_ib(1.0, rhos[0], 1.0), gaussian_ib(1.0, rhos[1], 1.0)
    # between the critical betas only the first direction is used ...
    mid = np.linspace(1.3, 4.0, 20)
    np.testing.assert_allclose(np.array(g.curve(mid)), np.array(one.curve(mid)), rtol=1e-10)
    # ... above the second both are, and their information adds
    high = np.linspace(4.01, 50.0, 20)
    np.testing.assert_allclose(np.array(g.curve(high)),
                               np.array(one.curve(high)) + np.array(two.curve(high)), rtol=1e-10)
    # the second transition is second order: the slope is 1/beta_2 on both sides of the kink
    x2 = float(g.curve(4.0)[0])
    dx = 1e-6
    left = (g.bound(x2) - g.bound(x2 - dx)) / dx
    right = (g.bound(x2 + dx) - g.bound(x2)) / dx
    np.testing.assert_allclose([left, right], 0.25, rtol=1e-4)


def test_uninformative_direction_has_infinite_critical_beta():
    # X = (X1, X2), Y scalar correlated with X1 only: lambda = (1 - rho^2, 1)
    cov_x = np.eye(2)
    cov_xy = np.array([[0.7], [0.0]])
    g = gaussian_ib(cov_x, cov_xy, 1.0)
    np.testing.assert_allclose(g.eigenvalues, [0.51, 1.0], rtol=1e-12)
    assert g.eigenvalues[1] == 1.0 and g.critical_betas[1] == np.inf
    np.testing.assert_allclose(g.mutual_information, scalar_mi(0.7), rtol=1e-12)
    i_xt, i_ty = g.curve([1e3, np.inf])
    assert np.isfinite(i_xt[0]) and i_xt[1] == np.inf
    np.testing.assert_allclose(i_ty[1], scalar_mi(0.7), rtol=1e-14)


def test_independent_variables_give_a_flat_curve():
    g = gaussian_ib(np.eye(2), np.zeros((2, 3)), np.eye(3))
    np.testing.assert_array_equal(g.eigenvalues, [1.0, 1.0])
    assert g.mutual_information == 0.0
    np.testing.assert_array_equal(g.curve([2.0, 1e9, np.inf]), np.zeros((2, 3)))
    np.testing.assert_array_equal(g.bound([0.0, 5.0]), [0.0, 0.0])


@pytest.mark.parametrize("beta", [1.1, 2.0, 4.5, 40.0])
def test_projection_realises_the_curve_and_is_optimal(beta):
    # an independent check of the closed forms: build T = A X + xi from the optimal A and
    # measure its information by log-determinants
    covs = rotated_pair([0.9, 0.5, 0.3], seed=1)
    g = gaussian_ib(*covs)
    a = g.projection(beta)
    i_xt, i_ty = linear_gaussian_info(a, *covs)
    np.testing.assert_allclose([i_xt, i_ty], np.array(g.curve(beta), dtype=float),
                               rtol=1e-10, atol=1e-13)
    # no nearby linear Gaussian encoder has a lower Lagrangian I(X;T) - beta I(T;Y)
    best = i_xt - beta * i_ty
    rng = np.random.default_rng(0)
    for _ in range(50):
        trial = a + 1e-2 * rng.normal(size=a.shape)
        tx, ty = linear_gaussian_info(trial, *covs)
        assert tx - beta * ty >= best - 1e-12


@settings(max_examples=60, deadline=None)
@given(joint_covariances())
def test_invariants_random_covariances(covs):
    cov_x, cov_xy, cov_y = covs
    g = gaussian_ib(cov_x, cov_xy, cov_y)
    lam = g.eigenvalues
    assert lam.shape == (cov_x.shape[0],)
    assert np.all(lam > 0) and np.all(lam <= 1) and np.all(np.diff(lam) >= 0)
    # lambda = 1 for at least d_x - d_y directions (rank of cov_xy <= d_y)
    assert np.sum(lam == 1.0) >= cov_x.shape[0] - cov_y.shape[0]
    # I(X;Y) from the eigenvalues equals the log-det formula
    joint = np.block([[cov_x, cov_xy], [cov_xy.T, cov_y]])
    mi = 0.5 * (np.linalg.slogdet(cov_x)[1] + np.linalg.slogdet(cov_y)[1]
                - np.linalg.slogdet(joint)[1]) / LN2
    np.testing.assert_allclose(g.mutual_information, mi, rtol=1e-7, atol=1e-9)
    # the eigenvalues are invariant under invertible linear maps of X
    m = np.eye(cov_x.shape[0]) + 0.3 * np.tril(np.ones_like(cov_x))
    g2 = gaussian_ib(m @ cov_x @ m.T, m @ cov_xy, cov_y)
    np.testing.assert_allclose(g2.eigenvalues, lam, rtol=1e-7, atol=1e-9)
    # curve: non-decreasing, inside the data-processing region, consistent with bound
    betas = np.concatenate([np.geomspace(1.0, 1e4, 60), g.critical_betas[np.isfinite(g.critical_betas)]])
    betas.sort()
    i_xt, i_ty = g.curve(betas)
    assert np.all(np.diff(i_xt) >= 0) and np.all(np.diff(i_ty) >= -1e-15)
    assert np.all(i_ty <= np.minimum(i_xt, g.mutual_information) * (1 + 1e-12) + 1e-15)
    np.testing.assert_allclose(g.bound(i_xt), i_ty, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------- discretisation

def test_bvn_cdf_matches_scipy():
    rng = np.random.default_rng(0)
    pts = np.r_[rng.normal(scale=2.0, size=(40, 2)), [[0, 0], [0, 1.5], [-1.0, 0], [0, -2.0]]]
    for rho in [-0.95, -0.3, 0.0, 0.8, 0.999]:
        ref = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf(pts)
        np.testing.assert_allclose(_bvn_cdf(pts[:, 0], pts[:, 1], rho), ref, atol=1e-10)
    inf = np.inf
    np.testing.assert_allclose(_bvn_cdf([inf, 0.3, -inf, inf], [0.3, inf, 2.0, inf], 0.5),
                               [0.6179114221889527, 0.6179114221889527, 0.0, 1.0], rtol=1e-14)


@pytest.mark.parametrize("rho,shape", [(0.8, (40, 40)), (-0.3, (7, 12)), (0.0, (1, 5))])
def test_discretiser_sums_to_one(rho, shape):
    p = discretize_gaussian(rho, *shape)
    assert p.shape == shape and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=0, atol=1e-14)
    q = discretize_gaussian(rho, *shape, tails="truncate")
    np.testing.assert_allclose(q.sum(), 1.0, rtol=0, atol=1e-14)


def test_discretiser_cells_are_exact_integrals():
    # 3 x 3 grid, absorb: cells between -inf, -1/3*span..., checked by CDF differences
    rho, span = 0.6, 1.5
    p = discretize_gaussian(rho, 3, span=span)
    e = np.array([-np.inf, -0.5, 0.5, np.inf])
    mvn = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]])
    big = 40.0  # stands in for infinity
    e_f = np.clip(e, -big, big)
    cdf = mvn.cdf(np.stack(np.meshgrid(e_f, e_f, indexing="ij"), axis=-1))
    ref = cdf[1:, 1:] - cdf[:-1, 1:] - cdf[1:, :-1] + cdf[:-1, :-1]
    np.testing.assert_allclose(p, ref, atol=1e-10)
    # independence factorises
    from scipy.stats import norm
    marg = np.diff(norm.cdf(e))
    np.testing.assert_allclose(discretize_gaussian(0.0, 3, span=span), np.outer(marg, marg),
                               rtol=1e-12)


def test_discretiser_symmetries():
    p = discretize_gaussian(0.7, 25)
    np.testing.assert_array_equal(p, p.T)  # exact
    np.testing.assert_allclose(p, p[::-1, ::-1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(discretize_gaussian(-0.7, 25), p[:, ::-1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p.sum(axis=1), p.sum(axis=0), rtol=0, atol=1e-15)


def test_discretised_information_approaches_continuous():
    # data processing: I(bin X; bin Y) <= I(X;Y) exactly (tails absorbed); the deficit falls
    # like (bin width)^2: measured 8.5e-3 bit at 40 bins, 2.1e-3 at 80, 5.4e-4 at 160.
    rho = 0.8
    target = scalar_mi(rho)
    deficits = np.array([target - ibsolver.mutual_information(discretize_gaussian(rho, n))
                         for n in (40, 80, 160)])
    assert np.all(deficits > 0)
    assert deficits[2] < 1e-3  # bits, at 160 bins over +-4 sd
    np.testing.assert_allclose(deficits[:-1] / deficits[1:], 4.0, rtol=0.1)


# --------------------------------------------------- discrete solver vs the analytic curve

def test_first_instability_approaches_gaussian_critical_beta():
    # the maximal correlation of a binned Gaussian is <= |rho| (it is |rho| for the
    # continuous pair), so 1/s2^2 >= beta_c = 1/rho^2, and the excess is O(width^2):
    # measured 2.7 % at 20 bins, 0.67 % at 40, 0.17 % at 80.
    rho = 0.8
    g = gaussian_ib(1.0, rho, 1.0)
    beta_c = float(g.critical_betas[0])
    betas = np.array([1.0 / ibsolver.maximal_correlation(discretize_gaussian(rho, n)) ** 2
                      for n in (20, 40, 80)])
    rel = betas / beta_c - 1.0
    assert np.all(rel > 0)
    assert rel[0] < 0.03 and rel[1] < 0.01 and rel[2] < 0.0025
    np.testing.assert_allclose(rel[:-1] / rel[1:], 4.0, rtol=0.1)


def test_solver_points_lie_below_and_approach_gaussian_curve():
    # Every encoder of the binned X is an encoder of X, and binning Y can only lose
    # information, so each solver point (converged or not) lies on or below the Gaussian
    # curve, and its Lagrangian is >= the Gaussian optimum. Measured gaps to the curve,
    # bound(I(X;T)) - I(T;Y), at beta = 2, 4, 10: 6e-3, 2.0e-2, 2.8e-2 bit with 20 bins;
    # 1.8e-3, 5.1e-3, 7.2e-3 bit with 40 bins (about 1/n^2).
    rho = 0.8
    g = gaussian_ib(1.0, rho, 1.0)
    betas = [2.0, 4.0, 10.0]
    gaps = {}
    for n in (20, 40):
        p = discretize_gaussian(rho, n)
        for beta in betas:
            with warnings.catch_warnings():
                # convergence near a transition is slow; the bound holds for any encoder
                warnings.simplefilter("ignore", ConvergenceWarning)
                r = ibsolver.solve(p, beta, tol=1e-8, max_iter=1000, random_state=0)
            curve_x, curve_y = (float(c) for c in g.curve(beta))
            gap = float(g.bound(r.i_xt)) - r.i_ty
            assert gap >= -1e-10, (n, beta, r)
            assert r.i_xt - beta * r.i_ty >= curve_x - beta * curve_y - 1e-10
            gaps[n, beta] = gap
    for beta in betas:
        assert gaps[40, beta] < 0.5 * gaps[20, beta]  # finer bins, closer to the curve
        assert gaps[40, beta] < 1e-2  # bits
