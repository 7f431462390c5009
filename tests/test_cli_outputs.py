"""What the command line writes, checked by content: the arrays and values of curve.npz and
of solve's .npz (files that IBCurve.load and IBResult.load read), the fields of
transitions.json, against the library on the same table and against analytic values (DSBS:
Mrs Gerber's lemma, the split at 1/(1 - 2 eps)^2)."""
import json

import numpy as np
import pytest
from conftest import dsbs, gerber, h2

import ibsolver
from ibsolver.cli import main

EPS = 0.1
BETAS = "0.5,1,1.5,1.6,2,3,5,10,30"
#: arrays curve.npz holds (at least), one entry per grid beta or per envelope vertex, and
#: "meta": the other values as JSON
CURVE_KEYS = {"beta", "i_xt", "i_ty", "h_t", "lagrangian", "n_clusters", "n_iter", "converged",
              "branch", "envelope_i_xt", "envelope_i_ty", "meta"}


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def dsbs_reference():
    betas = np.array([float(b) for b in BETAS.split(",")])
    return ibsolver.ib_curve(dsbs(EPS), betas=betas, progress=False)


def test_curve_npz_and_json_hold_the_curve_of_the_table(tmp_path, capsys, dsbs_reference):
    """Counts in a CSV: the files hold the curve of the normalised table, the one the
    library computes, and the DSBS's analytic values."""
    counts = np.round(dsbs(EPS) * 1000).astype(int)  # [[450, 50], [50, 450]]
    np.savetxt(tmp_path / "counts.csv", counts, delimiter=",", fmt="%d")
    run(["curve", tmp_path / "counts.csv", "--out", tmp_path / "o", "--betas", BETAS, "-q"],
        capsys)
    ref = dsbs_reference
    i_xy = 1 - h2(EPS)  # I(X;Y) of the DSBS, bits
    with np.load(tmp_path / "o" / "curve.npz") as data:
        assert CURVE_KEYS <= set(data.files)
        for key in ("beta", "i_xt", "i_ty", "h_t", "lagrangian", "envelope_i_xt",
                    "envelope_i_ty"):
            np.testing.assert_allclose(data[key], getattr(ref, key), rtol=0, atol=1e-12,
                                       err_msg=key)
        np.testing.assert_array_equal(data["n_clusters"], ref.n_clusters)
        np.testing.assert_array_equal(data["branch"], ref.branch.astype(str))
        assert data["converged"].all()
        meta = json.loads(str(data["meta"]))
        assert (meta["type"], meta["format"]) == ("IBCurve", 2)
        np.testing.assert_allclose([meta["i_xy"], meta["h_y"], meta["first_instability"]],
                                   [i_xy, 1.0, 1.5625], rtol=1e-12)
        np.testing.assert_allclose([meta["onset_beta"], meta["onset_beta_s_star"]], 1.5625,
                                   rtol=1e-5)
        ok = data["i_xt"] > 1e-6
        np.testing.assert_allclose(data["i_ty"][ok], [gerber(x, EPS) for x in data["i_xt"][ok]],
                                   atol=1e-6)
        np.testing.assert_array_equal(data["i_xt"][data["beta"] < 1.5625], 0.0)
        np.testing.assert_allclose(data["envelope_i_ty"][-1], i_xy, atol=1e-9)
    tr = json.loads((tmp_path / "o" / "transitions.json").read_text())
    assert {"i_xy", "h_y", "first_instability", "onset_beta", "onset_kind", "complete",
            "accuracy", "transitions", "all_transitions"} <= set(tr)
    np.testing.assert_allclose([tr["i_xy"], tr["h_y"], tr["first_instability"]],
                               [i_xy, 1.0, 1.5625], rtol=1e-12)
    assert tr["complete"] is True and tr["onset_kind"] == "split"
    assert 0 <= tr["accuracy"] == ref.accuracy
    first = tr["transitions"][0]
    assert first["kind"] == "split" and first["located"] is True
    assert (first["n_clusters_before"], first["n_clusters_after"]) == (1, 2)
    np.testing.assert_allclose(first["beta"], 1.5625, rtol=1e-5)
    lo, hi = first["beta_bracket"]
    assert (lo, hi) == (1.5, 1.6)


def test_transitions_json_on_stdout_equals_the_file_curve_writes(tmp_path, capsys):
    np.save(tmp_path / "p.npy", dsbs(EPS))
    printed = json.loads(run(["transitions", tmp_path / "p.npy", "--json", "--betas", BETAS,
                              "-q"], capsys))
    run(["curve", tmp_path / "p.npy", "--out", tmp_path / "o", "--betas", BETAS, "-q"], capsys)
    written = json.loads((tmp_path / "o" / "transitions.json").read_text())
    assert printed == written


def test_solve_npz_holds_the_solution_indexed_by_the_files_rows(tmp_path, capsys):
    """A zero row (x = 1) and a zero column are dropped; the saved encoder is the solution
    of the rest, x_index and y_index say which rows and columns of the file it is for, and
    its information equals the saved I(X;T) and I(T;Y)."""
    table = np.zeros((3, 3))
    table[[0, 2], :2] = dsbs(EPS)
    np.save(tmp_path / "z.npy", table)
    run(["solve", tmp_path / "z.npy", "--beta", 3, "--out", tmp_path / "r.npz"], capsys)
    with np.load(tmp_path / "r.npz") as r:
        x_index, y_index = r["x_index"], r["y_index"]
    np.testing.assert_array_equal(x_index, [0, 2])
    np.testing.assert_array_equal(y_index, [0, 1])
    res = ibsolver.IBResult.load(tmp_path / "r.npz")
    assert res.beta == 3.0
    p = table[np.ix_(x_index, y_index)]
    q = res.encoder
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(res.p_t, p.sum(axis=1) @ q, rtol=1e-12)
    np.testing.assert_allclose(res.p_y_given_t, (q.T @ p) / res.p_t[:, None], rtol=1e-10)
    info = ibsolver.encoder_information(p, q)
    np.testing.assert_allclose([info["i_xt"], info["i_ty"]], [res.i_xt, res.i_ty], rtol=1e-12)
    # beta = 3 is past the split: on Mrs Gerber's curve, and no better than the optimum
    assert res.i_xt > 0.5
    np.testing.assert_allclose(res.i_ty, gerber(res.i_xt, EPS), atol=1e-9)
