"""The solver's sparse paths (Problem.joint / Problem.rows as CSR; Lanczos eigenpairs and
singular values for wide tables) against the dense ones they replace."""
import importlib

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

import ibsolver
from ibsolver import _tables, bifurcation, measures

solve = importlib.import_module("ibsolver.solve")  # (ibsolver.solve is the function)


def _sparse_table(n, m, density, seed=0):
    """A joint p(x, y) with about ``density`` non-zeros, none of its rows or columns empty."""
    rng = np.random.default_rng(seed)
    keep = rng.random((n, m)) < density
    keep[np.arange(n), rng.integers(m, size=n)] = True
    keep[rng.integers(n, size=m), np.arange(m)] = True
    p = rng.dirichlet(np.ones(n * m)).reshape(n, m) * keep
    return p / p.sum()


def test_a_sparse_problem_solves_as_the_dense_problem(monkeypatch):
    """From the same start, the same solve to round-off (1e-9 bit: the paths differ only in
    the order of their sums)."""
    p = _sparse_table(60, 12, 0.15)
    dense = [ibsolver.solve(p, beta, random_state=0, n_threads=1) for beta in (2.0, 5.0, 20.0)]
    monkeypatch.setattr(solve, "SPARSE_MIN_ENTRIES", 10)
    assert solve.Problem.from_joint(p).sparse
    for beta, want in zip((2.0, 5.0, 20.0), dense):
        got = ibsolver.solve(p, beta, random_state=0, n_threads=1)
        assert got.lagrangian == pytest.approx(want.lagrangian, abs=1e-9)
        assert got.i_ty == pytest.approx(want.i_ty, abs=1e-9)


def test_a_sparse_problem_traces_the_curve(monkeypatch):
    """The whole curve on the sparse path. Its annealing starts its clusters in another
    order (rows grouped in order of appearance, not sorted), so a solve may end at another
    local optimum: here the two paths differ by 1.2e-5 bit in I(T;Y) at beta = 5, where
    the sparse path's Lagrangian is the lower one. Tolerance 1e-4 bit."""
    p = _sparse_table(60, 12, 0.15)
    dense = ibsolver.ib_curve(p, betas=[2.0, 5.0, 20.0], n_threads=1)
    monkeypatch.setattr(solve, "SPARSE_MIN_ENTRIES", 10)
    sparse = ibsolver.ib_curve(p, betas=[2.0, 5.0, 20.0], n_threads=1)
    np.testing.assert_allclose(sparse.i_ty, dense.i_ty, atol=1e-4)
    assert sparse.first_instability == pytest.approx(dense.first_instability, rel=1e-12)


def test_lanczos_gives_the_dense_eigenpair_of_a_wide_cluster(monkeypatch):
    p = _sparse_table(80, 40, 0.3, seed=1)
    problem = solve.Problem.from_joint(p)
    q = np.random.default_rng(2).dirichlet(np.ones(3), size=80)[:, 0]
    want = bifurcation.cluster_stability(problem.p_x, problem.p_y_given_x, q)
    monkeypatch.setattr(bifurcation, "DENSE_EIGEN_MAX", 4)
    for rows in (problem.p_y_given_x, sp.csr_matrix(problem.p_y_given_x)):
        got = bifurcation.cluster_stability(problem.p_x, rows, q)
        assert got.eigenvalue == pytest.approx(want.eigenvalue, rel=1e-10)
        # (an eigenvector's sign is arbitrary; both are scaled to max-norm 1)
        sign = np.sign(got.direction @ want.direction)
        np.testing.assert_allclose(sign * got.direction, want.direction, atol=1e-8)


def test_svds_gives_the_dense_maximal_correlation(monkeypatch):
    p = _sparse_table(70, 30, 0.3, seed=3)
    want = measures.maximal_correlation(p)
    monkeypatch.setattr(measures, "DENSE_SVD_MAX", 5)
    assert measures._maximal_correlation(p) == pytest.approx(want, rel=1e-12)
    assert measures._maximal_correlation(sp.csr_matrix(p)) == pytest.approx(want, rel=1e-12)


def _same_partition(a, b):
    """Whether two label arrays group the same items together."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_table_helpers_agree_between_forms():
    rng = np.random.default_rng(4)
    p = np.round(rng.random((30, 6)) * (rng.random((30, 6)) < 0.4), 1)
    p[10] = p[3]  # equal rows must share a group
    p[20] = p[3]
    dense_groups = _tables.row_groups(p)
    sparse_groups = _tables.row_groups(sp.csr_matrix(p))
    assert _same_partition(dense_groups, sparse_groups)
    assert dense_groups[10] == dense_groups[3] == dense_groups[20]
    np.testing.assert_allclose(_tables.group_sums(sp.csr_matrix(p), sparse_groups).toarray(),
                               _tables.group_sums(p, sparse_groups), atol=1e-15)
    centres = p[[0, 5, 7]]
    brute = np.argmin(((p[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(_tables.nearest_rows(sp.csr_matrix(p), centres), brute)
    np.testing.assert_allclose(_tables.row_distances(sp.csr_matrix(p), 5),
                               np.linalg.norm(p - p[5], axis=1), atol=1e-12)


@pytest.mark.parametrize("k, m", [(24, 24), (300, 4), (8, 2)])
def test_coincident_groups_without_close_pairs(k, m):
    """The one-column screen: rows apart in max-norm are their own groups, also where two of
    them agree on the column that spreads the rows most (the screen cannot decide there)
    and where two agree within the tolerance in all columns but one."""
    rng = np.random.default_rng(k)
    points = rng.dirichlet(np.ones(m), size=k)
    assert np.array_equal(solve._coincident_groups(points, 1e-7), np.arange(k))
    widest = np.argmax(points.max(axis=0) - points.min(axis=0))
    points[1, widest] = points[0, widest]  # the same there, apart elsewhere
    assert np.array_equal(solve._coincident_groups(points, 1e-7), np.arange(k))
    points[2] = points[0] + 1e-8
    points[2, (widest + 1) % m] += 1e-3   # within tol in every column but one
    assert np.array_equal(solve._coincident_groups(points, 1e-7), np.arange(k))


@pytest.mark.parametrize("k, m", [(64, 1000), (200, 300), (60, 4), (500, 4), (64, 16)])
def test_coincident_groups_match_brute_force(k, m):
    """Decoders within merge_tol (max-norm, chained) share a group, whichever way the pairs
    are found (a k x k table, screened on a few columns where there are many, or a tree):
    the same as comparing every pair in full."""
    rng = np.random.default_rng(k + m)
    points = rng.dirichlet(np.ones(m), size=k)
    points[5] = points[3] + 1e-9
    points[7] = points[5] - 5e-9           # chained to 3 through 5
    points[k - 1] = points[0] + 2e-8
    points[k - 2] = points[1] + 2e-7       # just outside the tolerance
    group = solve._coincident_groups(points, 1e-7)
    close = np.max(np.abs(points[:, None, :] - points[None, :, :]), axis=2) <= 1e-7
    n_components, label = connected_components(close, directed=False)
    assert group.max() + 1 == n_components == k - 3
    assert np.array_equal(group[:, None] == group[None, :], label[:, None] == label[None, :])
    assert np.all(np.diff([np.flatnonzero(group == g)[0] for g in range(n_components)]) > 0)
