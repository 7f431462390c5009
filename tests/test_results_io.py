"""One way to save and read every result: ``save``/``load`` (one .npz, arrays plus JSON, no
pickle) round-trip to the last bit, ``load`` refuses other files by name and reads curves
written by the old ``IBCurve.to_npz``; ``to_dataframe`` is the table, ``summary`` a dict of
plain JSON values, ``str`` the text."""
import dataclasses
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import birth_problem, dsbs, h2

import ibsolver
from ibsolver import GaussianIB, IBCurve, IBResult
from ibsolver.cli import main

#: a DSBS (eps = 0.1) curve at betas 1, 1.4, 1.6, 2, 3 with its encoders, written by
#: IBCurve.to_npz (file format 1) before ``save`` replaced it
FORMAT1_CURVE = Path(__file__).parent / "data" / "dsbs_curve_format1.npz"
#: the keys of IBCurve.summary(), as IBCurve.transitions_dict() gave them
CURVE_SUMMARY_KEYS = {
    "alpha", "i_xy", "h_y", "first_instability", "onset_beta", "onset_kind", "onset_bracket",
    "onset_beta_s_star", "onset_agrees_with_s_star", "deterministic", "complete", "untraced",
    "capped", "max_clusters", "accuracy", "transitions", "all_transitions"}
#: the keys of Transition.summary(), as Transition.to_dict() gave them
TRANSITION_KEYS = {
    "beta", "kind", "branch", "n_clusters_before", "n_clusters_after", "i_xt_before",
    "i_xt_after", "i_ty_before", "i_ty_after", "lagrangian", "optimal", "eigenvalue",
    "located", "beta_bracket", "direction"}


def assert_same(a, b, where="result"):
    """Equal dataclass types and fields, keys, lengths, arrays (dtype, shape and values),
    numbers (NaN equal to NaN), recursively."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), f"{where}: {type(b).__name__}, not an array"
        assert (a.dtype, a.shape) == (b.dtype, b.shape), f"{where}: {a.dtype}{a.shape} != " \
                                                         f"{b.dtype}{b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), f"{where}: {b!r}, not NaN"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_the_comparison_itself_can_fail(result):
    for changed in (dataclasses.replace(result, p_t=np.nextafter(result.p_t, 2.0)),
                    dataclasses.replace(result, p_t=result.p_t.astype(np.float32)),
                    dataclasses.replace(result, residual=float("nan")),
                    dataclasses.replace(result, backend="other")):
        with pytest.raises(AssertionError):
            assert_same(result, changed)
    with pytest.raises(AssertionError):
        assert_same((1.0,), [1.0])


def reloaded(result, tmp_path):
    path = tmp_path / "result.npz"
    assert result.save(path) is None  # (dnn's results too)
    back = type(result).load(path)
    assert_same(result, back)
    return back


@pytest.fixture(scope="module")
def curve():
    """The 8x3 birth problem's whole curve (births, splits with their directions) with its
    encoders."""
    return ibsolver.ib_curve(birth_problem(), return_encoders=True)


@pytest.fixture(scope="module")
def result():
    return ibsolver.solve(birth_problem(), 5.0, random_state=0)


@pytest.fixture(scope="module")
def gaussian():
    return ibsolver.gaussian_ib(np.diag([1.0, 2.0]), [[0.8], [0.0]], 1.0)


@pytest.fixture(scope="module")
def score(curve, result):
    return ibsolver.score_encoder(birth_problem(), result.encoder, curve=curve)


# --- save and load ------------------------------------------------------------------------

def test_a_curve_round_trips_to_the_last_bit(curve, tmp_path):
    back = reloaded(curve, tmp_path)
    assert {t.kind for t in back.transitions} == {"birth", "split"}
    assert any(t.direction is not None for t in back.all_transitions)
    assert back.encoders is not None and len(back.encoders) == curve.beta.size
    assert back.bound(0.3) == curve.bound(0.3) and str(back) == str(curve)


def test_unknown_and_infinite_numbers_round_trip(curve, result, tmp_path):
    reloaded(dataclasses.replace(curve, onset_beta=float("nan"), accuracy=float("inf"),
                                 complete=False), tmp_path)
    back = reloaded(dataclasses.replace(result, residual=float("nan"),
                                        lagrangian=float("-inf")), tmp_path)
    assert np.isnan(back.residual) and back.lagrangian == -np.inf


def test_a_single_solution_round_trips_with_its_encoder(result, tmp_path):
    back = reloaded(result, tmp_path)
    np.testing.assert_array_equal(back.encoder, result.encoder)
    # a curve's per-beta results keep no encoder: None is saved as None
    inner = dataclasses.replace(result, encoder=None)
    assert reloaded(inner, tmp_path).encoder is None


def test_the_gaussian_ib_and_a_score_round_trip(gaussian, score, tmp_path):
    back = reloaded(gaussian, tmp_path)
    assert not back.eigenvalues.flags.writeable  # read-only, as gaussian_ib gives them
    np.testing.assert_array_equal(back.curve([2.0, 5.0]), gaussian.curve([2.0, 5.0]))
    assert reloaded(score, tmp_path).above_bound == score.above_bound


def test_save_writes_the_path_given_and_takes_an_open_file(result, tmp_path):
    result.save(tmp_path / "solution")  # (np.savez alone would write solution.npz)
    assert [p.name for p in tmp_path.iterdir()] == ["solution"]
    assert_same(result, IBResult.load(tmp_path / "solution"))
    buf = io.BytesIO()
    result.save(buf)
    buf.seek(0)
    assert_same(result, IBResult.load(buf))


def test_a_curve_knows_the_table_it_was_traced_for(curve):
    p = dsbs(0.1)
    traced = ibsolver.ib_curve(p, betas=[1.0, 5.0])
    assert traced.traced_for(p) is True
    assert traced.traced_for(dsbs(0.2)) is False
    assert dataclasses.replace(traced, table_digest="").traced_for(p) is None


def test_save_into_a_missing_folder_names_the_folder(result, tmp_path):
    """(The error named the temporary file ``.r.<pid>.part.npz`` it could not create.)"""
    with pytest.raises(FileNotFoundError, match=r"cannot write .*r\.npz.*its folder .*nowhere.* "
                                               r"does not exist"):
        result.save(tmp_path / "nowhere" / "r.npz")
    assert list(tmp_path.iterdir()) == []


def test_nothing_needs_pickle(curve, tmp_path):
    curve.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
        meta = json.loads(str(data["meta"]))
    assert (meta["type"], meta["format"]) == ("IBCurve", 2)


def test_a_file_that_is_not_the_result_asked_for_is_refused_by_name(result, tmp_path):
    np.savez(tmp_path / "other.npz", beta=np.arange(3.0))
    with pytest.raises(ValueError, match=r"'.*other\.npz' was not written by IBCurve\.save "
                                         r"\(it has no 'meta' entry\)"):
        IBCurve.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk\.npz' is not a readable \.npz file"):
        IBResult.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "text.npz", meta=np.array("{not json"))
    with pytest.raises(ValueError, match=r"text\.npz' was not written by GaussianIB\.save "
                                         r"\(its 'meta' entry is not JSON"):
        GaussianIB.load(tmp_path / "text.npz")
    result.save(tmp_path / "solution.npz")
    with pytest.raises(ValueError, match=r"solution\.npz' holds a result of type IBResult, "
                                         r"not IBCurve"):
        IBCurve.load(tmp_path / "solution.npz")


def test_a_file_of_another_format_or_missing_entries_is_refused_by_name(result, tmp_path):
    meta = {"type": "IBResult", "format": 3}
    np.savez(tmp_path / "newer.npz", meta=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match=r"newer\.npz' has file format 3; this version of "
                                         r"ibsolver reads format 2"):
        IBResult.load(tmp_path / "newer.npz")
    np.savez(tmp_path / "short.npz", meta=np.array(json.dumps({**meta, "format": 2})))
    with pytest.raises(ValueError, match=r"short\.npz' is not a complete IBResult file "
                                         r"\(TypeError: .*missing 14 required"):
        IBResult.load(tmp_path / "short.npz")
    # format 1 is IBCurve.to_npz's: no other result was written in it
    np.savez(tmp_path / "old.npz", meta=np.array(json.dumps({**meta, "format": 1})))
    with pytest.raises(ValueError, match=r"old\.npz' has file format 1"):
        IBResult.load(tmp_path / "old.npz")


def test_saving_and_loading_imports_neither_dnn_nor_torch(tmp_path):
    code = ("import sys; from ibsolver import IBCurve; "
            f"c = IBCurve.load({str(FORMAT1_CURVE)!r}); c.save({str(tmp_path / 'c.npz')!r}); "
            f"IBCurve.load({str(tmp_path / 'c.npz')!r}); "
            "assert not {'dnn', 'torch'} & set(sys.modules), 'dnn or torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --- files of the old IBCurve.to_npz --------------------------------------------------------

def test_a_curve_written_by_to_npz_still_loads():
    curve = IBCurve.load(FORMAT1_CURVE)
    with np.load(FORMAT1_CURVE, allow_pickle=False) as data:
        old = {k: data[k] for k in data.files}
    meta = json.loads(str(old["meta"]))
    assert meta["format"] == 1 and "type" not in meta
    for key in ("beta", "i_xt", "i_ty", "n_clusters", "branch", "envelope_i_ty"):
        np.testing.assert_array_equal(getattr(curve, key), old[key], err_msg=key)
    np.testing.assert_array_equal(
        [curve.i_xy, curve.h_y, curve.first_instability, curve.onset_beta,
         curve.onset_beta_s_star], old["scalars"])
    # and they are the DSBS's: I(X;Y) = 1 - h(eps), the split at 1/(1 - 2 eps)^2
    np.testing.assert_allclose([curve.i_xy, curve.h_y, curve.first_instability],
                               [1 - h2(0.1), 1.0, 1.5625], rtol=1e-12)
    assert curve.alpha == 1.0 and curve.complete and curve.settings["grid"].size == 5
    (split,) = curve.transitions
    assert split.kind == "split" and split.direction is not None
    np.testing.assert_allclose(split.beta, 1.5625, rtol=1e-5)
    assert len(curve.encoders) == 5 and set(curve.branches) == {"forward", "reverse"}
    assert [t.summary() for t in curve.all_transitions] == meta["all_transitions"]


def test_a_curve_written_by_to_npz_saves_anew_in_the_new_format(tmp_path):
    curve = IBCurve.load(FORMAT1_CURVE)
    back = reloaded(curve, tmp_path)
    assert back.summary() == curve.summary()


def test_the_cli_resume_reads_a_curve_written_by_to_npz(tmp_path, capsys):
    np.save(tmp_path / "dsbs.npy", dsbs(0.1))
    (tmp_path / "out").mkdir()
    shutil.copy(FORMAT1_CURVE, tmp_path / "out" / "curve.npz")
    code = main(["curve", str(tmp_path / "dsbs.npy"), "--out", str(tmp_path / "out"), "-q",
                 "--resume"])
    out = capsys.readouterr().out
    assert code == 0 and "nothing to resume" in out
    assert "split at beta = 1.5625" in out


# --- the table, the summary, the text ---------------------------------------------------

def test_the_curve_table_has_one_row_per_point(curve):
    pytest.importorskip("pandas")
    df = curve.to_dataframe()
    assert list(df.columns) == ["beta", "i_xt", "i_ty", "h_t", "lagrangian", "n_clusters",
                                "n_iter", "converged", "branch"]
    assert len(df) == curve.beta.size
    for column in df.columns:
        np.testing.assert_array_equal(df[column].to_numpy(), getattr(curve, column),
                                      err_msg=column)


def test_single_results_are_one_row_and_a_gaussian_one_per_direction(result, gaussian, score):
    pytest.importorskip("pandas")
    df = result.to_dataframe()
    assert list(df.columns) == ["beta", "alpha", "i_xt", "i_ty", "h_t", "lagrangian",
                                "n_clusters", "n_iter", "converged", "residual", "backend"]
    assert len(df) == 1 and df["n_clusters"][0] == result.n_clusters
    assert df.iloc[0].to_dict() == result.summary()
    df = score.to_dataframe()
    assert len(df) == 1 and df.iloc[0].to_dict() == score.summary()
    df = gaussian.to_dataframe()
    assert list(df.columns) == ["eigenvalue", "critical_beta"]
    np.testing.assert_array_equal(df["critical_beta"], gaussian.critical_betas)


def test_to_dataframe_without_pandas_says_how_to_get_it(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(ImportError, match=r"pip install pandas \(or use summary\(\)"):
        result.to_dataframe()


def test_every_summary_is_strict_json(curve, result, gaussian, score):
    for res in (curve, result, gaussian, score, curve.transitions[0]):
        summary = res.summary()
        assert isinstance(summary, dict)
        assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert gaussian.summary()["critical_betas"][-1] is None  # beta = inf: no information
    assert result.summary()["n_clusters"] == result.n_clusters


def test_the_curve_summary_keeps_the_keys_transitions_dict_had(curve):
    summary = curve.summary()
    assert set(summary) == CURVE_SUMMARY_KEYS
    for t in summary["transitions"] + summary["all_transitions"]:
        assert set(t) == TRANSITION_KEYS
    with np.load(FORMAT1_CURVE, allow_pickle=False) as data:  # as the old code wrote them
        assert set(json.loads(str(data["meta"]))["transitions"][0]) == TRANSITION_KEYS
    assert summary["onset_kind"] == curve.onset_kind == "birth"


def test_str_is_the_text_the_cli_prints(curve):
    text = str(curve)
    assert text.startswith(f"IB curve: {curve.beta.size} betas, I(X;Y) = ")
    assert "birth at beta = " in text and "split at beta = " in text
