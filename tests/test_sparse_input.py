"""scipy.sparse tables: accepted by the solver and the CLI (made dense up to a size limit,
with an error naming the size beyond it)."""
import numpy as np
import pytest
import scipy.sparse as sp

import ibsolver
from ibsolver import _validation
from ibsolver.cli import main


def _sparse_joint(seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(60)).reshape(20, 3) * (rng.random((20, 3)) < 0.6)
    p[p.sum(axis=1) == 0, 0] = 0.01
    return p / p.sum()


def test_sparse_and_dense_tables_give_the_same_curve():
    p = _sparse_joint()
    dense = ibsolver.ib_curve(p, locate_transitions=False)
    sparse = ibsolver.ib_curve(sp.csr_matrix(p), locate_transitions=False)
    np.testing.assert_allclose(sparse.i_ty, dense.i_ty, atol=1e-12)
    res = ibsolver.solve(sp.coo_matrix(p), 4.0, random_state=0)
    np.testing.assert_allclose(res.i_ty, ibsolver.solve(p, 4.0, random_state=0).i_ty, atol=1e-12)


def test_too_large_a_sparse_table_is_an_error_naming_its_size(monkeypatch):
    monkeypatch.setattr(_validation, "MAX_DENSE_ENTRIES", 50)
    with pytest.raises(ValueError, match=r"p_xy is a sparse table of shape \(20, 3\)"):
        ibsolver.ib_curve(sp.csr_matrix(_sparse_joint()))


def test_cli_reads_a_save_npz_table(tmp_path, capsys):
    path = tmp_path / "table.npz"
    counts = sp.csr_matrix(np.round(_sparse_joint() * 1000))
    sp.save_npz(path, counts)
    assert main(["solve", str(path), "--beta", "3"]) == 0
    out = capsys.readouterr().out
    want = ibsolver.solve(counts.toarray() / counts.sum(), 3.0, accelerate=True)
    assert f"I(T;Y)={want.i_ty:.6f} bit" in out
