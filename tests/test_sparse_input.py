"""scipy.sparse tables: ib_curve, solve and the CLI take them as they are. A table sparse
enough to gain from it (Problem.from_joint) stays sparse from the input check to the kernel,
so memory follows its non-zeros, not n_x * n_y; functions that need the dense form make it
dense up to a size limit, with an error naming the size beyond it."""
import importlib
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import ibsolver
from ibsolver import _validation
from ibsolver.bifurcation import hypercontractivity
from ibsolver.cli import main
from ibsolver.curve import reduced_table_digest
from ibsolver.measures import conditional_entropy, encoder_information, mutual_information
from ibsolver.solve import Problem

solve_module = importlib.import_module("ibsolver.solve")  # (ibsolver.solve is the function)


def _sparse_joint(seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(60)).reshape(20, 3) * (rng.random((20, 3)) < 0.6)
    p[p.sum(axis=1) == 0, 0] = 0.01
    return p / p.sum()


def _wide_sparse_joint(n=10000, m=1000, per_row=4, seed=0):
    """n x m (n >= m), ``per_row`` distinct random non-zeros in each row (0.4% at the
    defaults), row i < m holding column i, so that every column is used."""
    rng = np.random.default_rng(seed)
    cols = np.argsort(rng.random((n, m)), axis=1)[:, :per_row]
    for i in range(m):
        if i not in cols[i]:
            cols[i, 0] = i
    p = sp.csr_matrix((rng.random(n * per_row), (np.repeat(np.arange(n), per_row),
                                                 cols.ravel())), shape=(n, m))
    return p / p.sum()


def test_sparse_and_dense_tables_give_the_same_curve():
    p = _sparse_joint()
    dense = ibsolver.ib_curve(p, locate_transitions=False)
    sparse = ibsolver.ib_curve(sp.csr_matrix(p), locate_transitions=False)
    np.testing.assert_allclose(sparse.i_ty, dense.i_ty, atol=1e-12)
    res = ibsolver.solve(sp.coo_matrix(p), 4.0, random_state=0)
    np.testing.assert_allclose(res.i_ty, ibsolver.solve(p, 4.0, random_state=0).i_ty, atol=1e-12)


def test_a_large_sparse_table_is_never_made_dense(monkeypatch):
    """A 10000 x 1000 table at 0.4% (80 MB dense) goes through ib_curve (s*, the onset and
    the births included) without a dense copy: no call of densified (its limit set below
    the table's size) and a traced peak under a quarter of the dense size."""
    p = _wide_sparse_joint()
    assert Problem.from_joint(p).sparse and sp.issparse(Problem.from_joint(p).p_xy)
    monkeypatch.setattr(_validation, "MAX_DENSE_ENTRIES", 1000)
    dense_bytes = p.shape[0] * p.shape[1] * 8
    tracemalloc.start()
    try:
        curve = ibsolver.ib_curve(p, betas=[1.5, 4.0], max_clusters=4, n_threads=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < dense_bytes / 4, (peak, dense_bytes)
    assert curve.i_xy == pytest.approx(mutual_information(p.toarray()), rel=1e-12)
    assert np.isfinite(curve.onset_beta_s_star) and curve.transitions


def test_a_backend_without_a_csr_kernel_names_itself_where_the_table_is_too_large(
        monkeypatch):
    monkeypatch.setattr(_validation, "MAX_DENSE_ENTRIES", 1000)
    with pytest.raises(ValueError, match="backend='numpy' reads p\\(y\\|x\\) dense"):
        ibsolver.ib_curve(_wide_sparse_joint(n=2000, m=300), betas=[2.0], max_clusters=3,
                          backend="numpy")


def test_solve_on_a_table_kept_sparse_is_solve_on_the_dense_table(monkeypatch):
    """(SPARSE_MIN_ENTRIES and SPARSE_DENSITY moved: the 20 x 3 table, half of it zeros,
    stays CSR from the check to the end.)"""
    p = _sparse_joint()
    dense = ibsolver.solve(p, 4.0, random_state=0, n_threads=1)
    monkeypatch.setattr(solve_module, "SPARSE_MIN_ENTRIES", 10)
    monkeypatch.setattr(solve_module, "SPARSE_DENSITY", 1.0)
    assert sp.issparse(Problem.from_joint(sp.csr_matrix(p)).p_xy)
    res = ibsolver.solve(sp.csr_matrix(p), 4.0, random_state=0, n_threads=1)
    assert res.lagrangian == pytest.approx(dense.lagrangian, abs=1e-9)
    assert res.encoder.shape == dense.encoder.shape


def test_sparse_and_dense_forms_agree_on_the_measures_and_the_digest():
    """(Every entry 2^-11: both forms sum to 1 exactly, so neither is renormalised, and the
    digest compares the same bits.)"""
    p = _wide_sparse_joint(n=512, m=200)
    p.data[:] = 2.0 ** -11
    d = p.toarray()
    assert mutual_information(p) == pytest.approx(mutual_information(d), rel=1e-12)
    assert conditional_entropy(p) == pytest.approx(conditional_entropy(d), rel=1e-12)
    assert reduced_table_digest(p) == reduced_table_digest(d)
    s_sparse, s_dense = hypercontractivity(p)[0], hypercontractivity(d)[0]
    assert s_sparse == pytest.approx(s_dense, rel=1e-6)


def test_sparse_input_is_checked_as_dense_input_is():
    p = sp.csr_matrix(_sparse_joint())
    bad = p.copy()
    bad.data[4] = -bad.data[4]
    row, col = bad.nonzero()[0][4], bad.nonzero()[1][4]
    with pytest.raises(ValueError, match=rf"non-negative .* at index \({row}, {col}\)"):
        ibsolver.ib_curve(bad)
    bad.data[4] = np.nan
    with pytest.raises(ValueError, match="must be finite"):
        ibsolver.solve(bad, 2.0)
    with pytest.raises(TypeError, match="must be real"):
        ibsolver.solve(sp.csr_matrix(p.toarray() * (1 + 1j)), 2.0)
    # an empty row and column are dropped, and the result is in the user's shape
    wide = sp.hstack([sp.vstack([p, sp.csr_matrix((1, 3))]), sp.csr_matrix((21, 1))]).tocsr()
    res = ibsolver.solve(wide, 4.0, random_state=0)
    assert res.encoder.shape[0] == 21 and res.p_y_given_t.shape[1] == 4
    np.testing.assert_allclose(res.i_ty, ibsolver.solve(p, 4.0, random_state=0).i_ty,
                               atol=1e-12)


def test_too_large_a_sparse_table_for_a_dense_function_is_an_error_naming_its_size(
        monkeypatch):
    monkeypatch.setattr(_validation, "MAX_DENSE_ENTRIES", 50)
    with pytest.raises(ValueError, match=r"p_xy is a sparse table of shape \(20, 3\)"):
        encoder_information(sp.csr_matrix(_sparse_joint()), np.ones((20, 1)))


def test_cli_reads_a_save_npz_table(tmp_path, capsys):
    path = tmp_path / "table.npz"
    counts = sp.csr_matrix(np.round(_sparse_joint() * 1000))
    sp.save_npz(path, counts)
    assert main(["solve", str(path), "--beta", "3"]) == 0
    out = capsys.readouterr().out
    want = ibsolver.solve(counts.toarray() / counts.sum(), 3.0, accelerate=True)
    assert f"I(T;Y)={want.i_ty:.6f} bit" in out


def test_the_cli_keeps_a_large_save_npz_table_sparse(tmp_path, capsys, monkeypatch):
    path = tmp_path / "wide.npz"
    sp.save_npz(path, _wide_sparse_joint(n=2000, m=300))
    monkeypatch.setattr(_validation, "MAX_DENSE_ENTRIES", 1000)
    assert main(["transitions", str(path), "--betas", "2,6", "--max-clusters", "3"]) == 0
    assert "capped at max_clusters = 3" in capsys.readouterr().out
