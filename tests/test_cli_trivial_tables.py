"""A table with a single row or a single column (1x1, 1xN, Nx1, also one left so after its
all-zero rows or columns are dropped) is good input with a trivial IB: I(X;Y) = 0, one
cluster, no transitions. The command line prints and writes what ``ib_curve`` and
``solve`` return for it (issue 12 item 4), with exit status 0 and no warning."""
import json

import numpy as np
import pytest

import ibsolver
from conftest import run_cli

TABLES = {
    "1x1": np.array([[1.0]]),
    "1x3": np.array([[0.2, 0.3, 0.5]]),
    "3x1": np.array([[0.2], [0.3], [0.5]]),
    # a 2x3 table whose second row and last column are all zero: 1x2 once they are dropped
    "2x3-zeros": np.array([[0.25, 0.75, 0.0], [0.0, 0.0, 0.0]]),
}
#: H(Y) of each table, in bits (the columns kept)
H_Y = {"1x1": 0.0, "1x3": float(-np.sum([p * np.log2(p) for p in (0.2, 0.3, 0.5)])),
       "3x1": 0.0, "2x3-zeros": float(-(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75)))}

pytestmark = [pytest.mark.filterwarnings("error"),
              pytest.mark.parametrize("name", sorted(TABLES))]


def table_file(tmp_path, name):
    path = tmp_path / f"{name}.npy"
    np.save(path, TABLES[name])
    return path


def assert_clean(err):
    """Nothing on stderr but the notes on dropped rows and columns: no warning, no error."""
    lines = [line for line in err.splitlines() if line and "note: table in" not in line]
    assert lines == [], err


def assert_trivial_text(out, name):
    assert "I(X;Y) = 0.000000 bit" in out, out
    assert f"H(Y) = {H_Y[name]:.6f} bit" in out, out
    assert "optimum leaves zero nowhere in the betas traced" in out, out
    for kind in ("split", "birth", "jump", "count"):
        assert kind not in out, out


def assert_trivial_summary(summary, name):
    assert summary["i_xy"] == 0.0
    np.testing.assert_allclose(summary["h_y"], H_Y[name], rtol=1e-12, atol=1e-15)
    assert summary["transitions"] == [] and summary["all_transitions"] == []
    assert summary["onset_beta"] is None and summary["onset_kind"] == "none"
    assert summary["complete"] is True


def test_transitions_prints_the_trivial_curve(tmp_path, capsys, name):
    path = table_file(tmp_path, name)
    code, out, err = run_cli(["transitions", path, "-q"], capsys)
    assert code == 0, err
    assert_clean(err)
    assert_trivial_text(out, name)
    assert out.strip() == str(ibsolver.ib_curve(TABLES[name])).strip()
    code, out, err = run_cli(["transitions", path, "-q", "--json"], capsys)
    assert code == 0, err
    assert_clean(err)
    assert_trivial_summary(json.loads(out), name)


def test_curve_writes_the_trivial_curve(tmp_path, capsys, name):
    path = table_file(tmp_path, name)
    out_dir = tmp_path / "out"
    code, out, err = run_cli(["curve", path, "-q", "--betas", "0,1,5,50", "--out", out_dir], capsys)
    assert code == 0, err
    assert_clean(err)
    assert_trivial_text(out, name)
    assert "IB curve: 4 betas" in out
    curve = ibsolver.IBCurve.load(out_dir / "curve.npz")
    np.testing.assert_array_equal(curve.beta, [0.0, 1.0, 5.0, 50.0])
    np.testing.assert_allclose(curve.i_xt, 0.0, atol=1e-12)
    np.testing.assert_allclose(curve.i_ty, 0.0, atol=1e-12)
    np.testing.assert_array_equal(curve.n_clusters, 1)
    assert curve.transitions == () and curve.complete
    assert curve.i_xy == 0.0
    assert_trivial_summary(json.loads((out_dir / "transitions.json").read_text()), name)
    assert (out_dir / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_solve_prints_and_writes_the_trivial_solution(tmp_path, capsys, name):
    path = table_file(tmp_path, name)
    out_file = tmp_path / "r.npz"
    code, out, err = run_cli(["solve", path, "--beta", 4, "--out", out_file], capsys)
    assert code == 0, err
    assert_clean(err)
    assert "I(X;T)=0.000000 bit, I(T;Y)=0.000000 bit" in out and "n_clusters=1" in out, out
    assert f"wrote {out_file}" in out
    res = ibsolver.IBResult.load(out_file)
    rows, cols = np.flatnonzero(TABLES[name].sum(axis=1)), np.flatnonzero(TABLES[name].sum(axis=0))
    np.testing.assert_array_equal(res.encoder, np.ones((rows.size, 1)))
    kept = TABLES[name][np.ix_(rows, cols)]
    np.testing.assert_allclose(res.p_y_given_t, kept.sum(axis=0, keepdims=True), rtol=1e-12)
    assert res.i_xt == 0.0 and res.i_ty == 0.0 and res.beta == 4.0
    with np.load(out_file) as saved:
        np.testing.assert_array_equal(saved["x_index"], rows)
        np.testing.assert_array_equal(saved["y_index"], cols)


def test_a_real_process_exits_0_with_no_warning(tmp_path, name):
    """As a shell runs it (Python's default warning filters, the progress bar on)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    path = table_file(tmp_path, name)
    proc = subprocess.run([sys.executable, "-W", "default", "-m", "ibsolver.cli", "transitions",
                           str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert_trivial_text(proc.stdout, name)
