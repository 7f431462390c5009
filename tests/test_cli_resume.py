"""`ibsolver curve/demo --out DIR`: an existing result is never overwritten without --force,
an interrupted run saves what it traced and `--resume` finishes it into the curve an
uninterrupted run writes; `--out` is checked before any work."""
import json
import sys
from dataclasses import replace

import numpy as np
import pytest
from conftest import birth_problem, run_cli
from test_cli_errors import assert_clear_error
from test_resume import Interrupt

from ibsolver.results import IBCurve


@pytest.fixture()
def table(tmp_path):
    np.save(tmp_path / "p.npy", birth_problem())
    return tmp_path / "p.npy"


def curve_files(folder):
    return {name: (folder / name).read_bytes()
            for name in ("curve.npz", "transitions.json", "curve.png")}


def test_a_result_is_not_overwritten_without_force(table, tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    code, _, err = run_cli(["curve", table, "--out", out, "-q", "--betas", "1,2,3"], capsys)
    assert code == 0, err
    before = curve_files(out)
    with monkeypatch.context() as m:
        m.setattr(sys.modules["ibsolver.curve"], "ib_curve", None)  # no work may start
        code, _, err = run_cli(["curve", table, "--out", out, "-q", "--betas", "1,2,3,4"], capsys)
    assert_clear_error(code, err, "--out", "already holds a result", "curve.npz", "--force",
                       "--resume")
    assert curve_files(out) == before
    code, _, err = run_cli(["curve", table, "--out", out, "-q", "--betas", "1,2,3,4", "--force"],
                       capsys)
    assert code == 0, err
    np.testing.assert_array_equal(IBCurve.load(out / "curve.npz").beta, [1, 2, 3, 4])
    code, _, err = run_cli(["curve", table, "--out", out, "--resume", "--force"], capsys)
    assert code == 2 and "not allowed with" in err


def test_demo_keeps_its_result_too(tmp_path, capsys):
    out = tmp_path / "demo"
    assert run_cli(["demo", "--problem", "dsbs", "--out", out, "-q", "--betas", "1,2"], capsys)[0] == 0
    code, _, err = run_cli(["demo", "--problem", "dsbs", "--out", out, "-q"], capsys)
    assert_clear_error(code, err, "already holds a result", "--force")


def test_interrupted_curve_is_saved_marked_and_resumed_to_the_full_one(table, tmp_path, capsys,
                                                                      monkeypatch):
    full, part = tmp_path / "full", tmp_path / "part"
    assert run_cli(["curve", table, "--out", full, "-q"], capsys)[0] == 0
    with monkeypatch.context() as m:
        Interrupt(m, at=90)  # Ctrl-C (or SIGTERM, which main turns into it) mid-forward
        code, out, err = run_cli(["curve", table, "--out", part, "-q"], capsys)
    assert code == 130, err
    assert "PARTIAL" in out
    saved = json.loads((part / "transitions.json").read_text())
    assert saved["complete"] is False
    # located: only the splits the forward branch located as it went
    assert {(t["branch"], t["kind"]) for t in saved["all_transitions"] if t["located"]} \
        == {("forward", "split")}
    assert not IBCurve.load(part / "curve.npz").complete
    code, out, err = run_cli(["curve", table, "--out", part, "-q", "--resume"], capsys)
    assert code == 0, err
    assert "PARTIAL" not in out
    # the same curve as the uninterrupted run, byte for byte in the table and the JSON
    assert (part / "transitions.json").read_text() == (full / "transitions.json").read_text()
    with np.load(full / "curve.npz") as a, np.load(part / "curve.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # resuming a complete curve does nothing
    before = curve_files(part)
    code, out, err = run_cli(["curve", table, "--out", part, "-q", "--resume"], capsys)
    assert code == 0 and "nothing to resume" in out
    assert curve_files(part) == before


def test_resume_with_nothing_saved_starts_afresh(table, tmp_path, capsys):
    code, _, err = run_cli(["curve", table, "--out", tmp_path / "o", "-q", "--resume",
                        "--betas", "1,2,4"], capsys)
    assert code == 0
    assert "--resume: no curve.npz" in err and "starting from the beginning" in err


def test_resume_errors_name_the_option_and_come_before_any_work(table, tmp_path, capsys,
                                                               monkeypatch):
    out = tmp_path / "o"
    assert run_cli(["curve", table, "--out", out, "-q", "--betas", "1,2,4"], capsys)[0] == 0
    saved = IBCurve.load(out / "curve.npz")
    # an interrupted curve of the same table, with other options than the call's
    replace(saved, complete=False).save(out / "curve.npz")
    code, _, err = run_cli(["curve", table, "--out", out, "-q", "--resume", "--n-betas", "30"],
                       capsys)
    assert_clear_error(code, err, "resume", "grid=[3 betas from 1 to 4]",
                       "grid=[30 betas from 1")
    np.save(tmp_path / "other.npy", np.random.default_rng(2).dirichlet(np.ones(24)).reshape(8, 3))
    code, _, err = run_cli(["curve", tmp_path / "other.npy", "--out", out, "-q", "--resume",
                        "--betas", "1,2,4"], capsys)
    assert_clear_error(code, err, "resume", "another table")
    (out / "curve.npz").write_bytes(b"garbage")
    with monkeypatch.context() as m:
        m.setattr(sys.modules["ibsolver.curve"], "ib_curve", None)
        code, _, err = run_cli(["curve", table, "--out", out, "-q", "--resume"], capsys)
    assert_clear_error(code, err, "--resume", "curve.npz", "not a readable .npz")


def test_interrupted_transitions_exit_130(table, capsys, monkeypatch):
    with monkeypatch.context() as m:
        Interrupt(m, at=45)
        code, out, _ = run_cli(["transitions", table, "-q"], capsys)
    assert code == 130 and "PARTIAL" in out
