"""Every bad input to the command line ends in exit status 2 and one clear line naming the
argument and the value it got, never a traceback; odd but good input (float32 tables,
tables written with 6 digits, all-zero rows and columns) is accepted."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import dsbs, run_cli

from ibsolver.cli import EXIT_BROKEN_PIPE, main

REPO = Path(__file__).resolve().parents[1]
#: a 3x2 table with no special structure
P = np.array([[0.30, 0.05], [0.10, 0.25], [0.12, 0.18]])


def run_subprocess(argv, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "ibsolver.cli", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=120, **kw)


def assert_clear_error(code, err, *words):
    assert code == 2, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"


# --- the table's sum: tolerant within float32 rounding, exact beyond ---------------------

def test_float32_npy_and_6_digit_csv_are_accepted(tmp_path, capsys):
    np.save(tmp_path / "f32.npy", P.astype(np.float32))
    np.savetxt(tmp_path / "g6.csv", P / 3 * 3 + 1e-8, delimiter=",", fmt="%.6g")
    ref = run_cli(["solve", tmp_path / "f32.npy", "--beta", 3], capsys)
    assert ref[0] == 0 and "I(X;T)" in ref[1], ref[2]
    code, out, err = run_cli(["solve", tmp_path / "g6.csv", "--beta", 3], capsys)
    assert code == 0 and "I(X;T)" in out, err


@pytest.mark.parametrize("cmd", [["solve", "--beta", "3"], ["transitions", "--betas", "1,2"],
                                 ["curve", "--betas", "1,2", "--out", "o"]])
def test_table_off_1_names_normalize_and_prints_its_sum(tmp_path, capsys, cmd):
    np.savetxt(tmp_path / "off.csv", P * (1 - 1e-4), delimiter=",", fmt="%.17g")
    argv = [cmd[0], tmp_path / "off.csv", *cmd[1:]]
    if cmd[0] == "curve":
        argv[-1] = tmp_path / "o"
    code, _, err = run_cli(argv, capsys)
    assert_clear_error(code, err, "--normalize", "off.csv", "got 0.9999)")
    code, out, err = run_cli(argv + ["--normalize"], capsys)
    assert code == 0, err


def test_table_off_1_by_1e_7_is_accepted(tmp_path, capsys):
    np.savetxt(tmp_path / "near.csv", P * (1 + 1e-7), delimiter=",", fmt="%.17g")
    code, out, err = run_cli(["solve", tmp_path / "near.csv", "--beta", 3], capsys)
    assert code == 0 and "I(X;T)" in out, err


# --- zero rows and columns --------------------------------------------------------------

def test_all_zero_rows_and_columns_are_dropped_with_a_note(tmp_path, capsys):
    table = np.zeros((4, 3))
    table[[0, 2, 3], :2] = P
    np.save(tmp_path / "z.npy", table)
    code, out, err = run_cli(["solve", tmp_path / "z.npy", "--beta", 3, "--seed", 1,
                          "--out", tmp_path / "r.npz"], capsys)
    assert code == 0, err
    assert "note: table in z.npy: dropped 1 all-zero rows (probability 0) at indices [1]" in err
    assert "dropped 1 all-zero columns (probability 0) at indices [2]" in err
    with np.load(tmp_path / "r.npz") as r:
        np.testing.assert_array_equal(r["x_index"], [0, 2, 3])
        np.testing.assert_array_equal(r["y_index"], [0, 1])
    import ibsolver
    res = ibsolver.IBResult.load(tmp_path / "r.npz")
    assert np.all(np.isfinite(res.encoder)) and res.encoder.shape[0] == 3
    ref = ibsolver.solve(P, 3.0, random_state=1, accelerate=True)
    np.testing.assert_allclose(res.i_ty, ref.i_ty, rtol=1e-9, atol=1e-12)
    code, out, err = run_cli(["transitions", tmp_path / "z.npy", "--betas", "1,2,4", "-q"], capsys)
    assert code == 0 and "nan" not in out.lower(), err


@pytest.mark.filterwarnings("error")
def test_an_all_zero_table_is_a_clear_error(tmp_path, capsys):
    # (a table with one row or column is good input: see test_cli_trivial_tables.py)
    np.save(tmp_path / "small.npy", np.zeros((2, 2)))
    code, _, err = run_cli(["transitions", tmp_path / "small.npy"], capsys)
    assert_clear_error(code, err, "small.npy", "all zeros")


# --- files that are not tables ------------------------------------------------------------

@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name, content, words", [
    ("empty.npy", b"", ["'", "empty.npy", "is empty"]),
    ("empty.csv", b"", ["empty.csv", "is empty"]),
    ("blank.csv", b"\n\n", ["blank.csv", "holds no numbers"]),
    ("trunc.npy", b"\x93NUMPY\x01\x00", ["trunc.npy", "could not read"]),
    ("header.csv", b"a,b\n0.5,0.5\n", ["header.csv", "could not read a numeric"]),
    ("p.txt", b"0.25,0.25\n0.25,0.25\n", ["p.txt", ".txt", ".npy, .npz, .csv"]),
])
def test_unreadable_files_name_the_file(tmp_path, capsys, name, content, words):
    (tmp_path / name).write_bytes(content)
    code, _, err = run_cli(["solve", tmp_path / name, "--beta", 2], capsys)
    assert_clear_error(code, err, *words)


def test_empty_npy_array_and_npz_keys(tmp_path, capsys):
    np.save(tmp_path / "zero.npy", np.zeros((0, 2)))
    code, _, err = run_cli(["solve", tmp_path / "zero.npy", "--beta", 2], capsys)
    assert_clear_error(code, err, "zero.npy", "holds no numbers", "(0, 2)")
    np.savez(tmp_path / "k.npz", weights=P)
    code, _, err = run_cli(["solve", tmp_path / "k.npz", "--beta", 2], capsys)
    assert_clear_error(code, err, "k.npz", "'p_xy'", "'counts'", "found ['weights']")
    np.savez(tmp_path / "two.npz", P, P)
    code, _, err = run_cli(["solve", tmp_path / "two.npz", "--beta", 2], capsys)
    assert_clear_error(code, err, "two.npz", "['arr_0', 'arr_1']")
    np.savez(tmp_path / "one.npz", P)  # a single unnamed array is the table
    code, out, err = run_cli(["solve", tmp_path / "one.npz", "--beta", 2], capsys)
    assert code == 0, err
    code, _, err = run_cli(["solve", tmp_path, "--beta", 2], capsys)
    assert_clear_error(code, err, str(tmp_path), "not a regular file")


# --- option values -----------------------------------------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["transitions", "T", "--n-betas", "0"], ["argument --n-betas", "'0'", ">= 2"]),
    (["transitions", "T", "--n-betas", "1"], ["argument --n-betas", "'1'"]),
    (["curve", "T", "--out", "o", "--n-betas", "x"], ["argument --n-betas", "'x'"]),
    (["transitions", "T", "--betas", "abc"], ["argument --betas", "'abc'"]),
    (["transitions", "T", "--betas", "1,,2"], ["argument --betas", "'1,,2'"]),
    (["transitions", "T", "--betas", "1,-2"], ["argument --betas", "'1,-2'", ">= 0"]),
    (["transitions", "T", "--betas", "nan"], ["argument --betas", "'nan'", "finite"]),
    (["demo", "--betas", "abc"], ["argument --betas", "'abc'"]),
    (["demo", "--n-betas", "0"], ["argument --n-betas", "'0'"]),
    (["transitions", "T", "--betas", "1,2", "--n-betas", "5"],
     ["argument --n-betas", "not allowed with argument --betas"]),
    (["solve", "T", "--beta", "inf"], ["argument --beta", "'inf'", "finite"]),
    (["solve", "T", "--beta", "-1"], ["argument --beta", "'-1'"]),
    (["solve", "T", "--beta", "2", "--alpha", "-1"], ["argument --alpha", "'-1'"]),
])
def test_bad_option_values_name_the_option_and_value(tmp_path, capsys, argv, words):
    np.save(tmp_path / "t.npy", P)
    argv = [str(tmp_path / "t.npy") if a == "T" else a for a in argv]
    argv = [str(tmp_path / "o") if a == "o" else a for a in argv]
    code, _, err = run_cli(argv, capsys)
    assert_clear_error(code, err, *words)


def test_demo_honours_betas(tmp_path, capsys):
    code, _, err = run_cli(["demo", "--problem", "dsbs", "--betas", "1,2,3", "-q",
                        "--out", tmp_path / "d"], capsys)
    assert code == 0, err
    with np.load(tmp_path / "d" / "curve.npz") as data:
        np.testing.assert_allclose(data["beta"], [1.0, 2.0, 3.0], rtol=0, atol=0)


# --- outputs -----------------------------------------------------------------------------

def test_solve_out_writes_exactly_the_path_asked(tmp_path, capsys):
    np.save(tmp_path / "t.npy", P)
    code, out, err = run_cli(["solve", tmp_path / "t.npy", "--beta", 3, "--out", tmp_path / "r.npz"],
                         capsys)
    assert code == 0 and f"wrote {tmp_path / 'r.npz'}" in out, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz", "t.npy"]
    code, _, err = run_cli(["solve", tmp_path / "t.npy", "--beta", 3, "--out", tmp_path / "r.txt"],
                       capsys)
    assert_clear_error(code, err, "--out", "r.txt", ".npz")
    assert not (tmp_path / "r.txt").exists() and not (tmp_path / "r.txt.npz").exists()


@pytest.fixture
def no_work(monkeypatch):
    """Make the solvers fail loudly: an error about --out must come before any work."""
    def boom(*args, **kwargs):
        raise AssertionError("the work started before --out was checked")

    monkeypatch.setattr(sys.modules["ibsolver.curve"], "ib_curve", boom)
    monkeypatch.setattr(sys.modules["ibsolver.solve"], "solve", boom)


def test_out_errors_come_before_any_work(tmp_path, capsys, no_work):
    np.save(tmp_path / "t.npy", P)
    (tmp_path / "afile").write_text("x")
    cases = [
        (["curve", tmp_path / "t.npy", "--out", tmp_path / "afile"],
         ["--out", "afile", "exists and is not a folder"]),
        (["demo", "--problem", "dsbs", "--out", tmp_path / "afile"],
         ["--out", "afile", "exists and is not a folder"]),
        (["curve", tmp_path / "t.npy", "--out", tmp_path / "afile" / "sub"],
         ["--out", "sub", "cannot create the folder"]),
        (["solve", tmp_path / "t.npy", "--beta", 2, "--out", tmp_path / "afile" / "r.npz"],
         ["--out", "r.npz", "is a file, not a folder"]),
        (["solve", tmp_path / "t.npy", "--beta", 2, "--out", tmp_path / "nodir" / "r.npz"],
         ["--out", "r.npz", "does not exist"]),
        (["solve", tmp_path / "t.npy", "--beta", 2, "--out", tmp_path],
         ["--out", ".npz"]),
    ]
    for argv, words in cases:
        code, _, err = run_cli(argv, capsys)
        assert_clear_error(code, err, *words)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_out_folder_is_found_before_any_work(tmp_path, capsys, no_work):
    np.save(tmp_path / "t.npy", P)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run_cli(["curve", tmp_path / "t.npy", "--out", ro / "o"], capsys)
        assert_clear_error(code, err, "--out", "ro")
        code, _, err = run_cli(["solve", tmp_path / "t.npy", "--beta", 2, "--out", ro / "r.npz"],
                           capsys)
        assert_clear_error(code, err, "--out", "r.npz")
    finally:
        ro.chmod(0o755)


# --- the process as a shell sees it ------------------------------------------------------

def test_errors_in_a_real_process_have_no_traceback(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "zeros.npy", np.zeros((1, 1)))
    for name in ("empty.npy", "zeros.npy"):
        proc = run_subprocess(["transitions", tmp_path / name])
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
        assert name in proc.stderr


def test_broken_pipe_exits_quietly(tmp_path):
    np.save(tmp_path / "p.npy", dsbs(0.2))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibsolver.cli", "transitions", str(tmp_path / "p.npy"), "--json",
         "-q", "--betas", "1,2,3"],
        env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader went away before a byte was read, as `| head -0` does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE, err
    assert err == ""


def test_broken_pipe_in_process(tmp_path, capsys, monkeypatch):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    np.save(tmp_path / "p.npy", dsbs(0.2))
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code = main(["transitions", str(tmp_path / "p.npy"), "--json", "-q", "--betas", "1,2"])
    assert code == EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""


def test_transitions_json_still_parses(tmp_path, capsys):
    np.save(tmp_path / "p.npy", dsbs(0.2))
    code, out, err = run_cli(["transitions", tmp_path / "p.npy", "--json", "-q", "--betas", "1,2,3"],
                         capsys)
    assert code == 0, err
    assert json.loads(out)["first_instability"] > 0


def sigterm_after_start(argv, out, cwd, seconds):
    """Run `ibsolver ARGV` in a process, SIGTERM it ``seconds`` after it made ``out`` (its
    work started), and assert it saved what it had: exit 130, no traceback, the JSON
    marked incomplete. Returns that JSON."""
    import signal
    import time

    # the ibsolver these tests import (installed, with its C++ extension), not the source
    # tree a run from the repository root would find first
    import ibsolver
    env = {**os.environ, "PYTHONPATH": str(Path(ibsolver.__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "ibsolver.cli", *map(str, argv)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / ".").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(seconds)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    saved = json.loads((out / "transitions.json").read_text())
    assert saved["complete"] is False
    return saved


def test_sigterm_saves_the_curve_traced_so_far(tmp_path):
    """A batch scheduler's SIGTERM is handled like Ctrl-C: `curve` writes what it traced,
    marked incomplete, and exits 130."""
    table = tmp_path / "p.npy"
    np.save(table, np.random.default_rng(0).dirichlet(np.ones(1024)).reshape(256, 4))
    out = tmp_path / "out"
    sigterm_after_start(["curve", table, "--out", out, "--quiet"], out, tmp_path, 3.0)
    assert (out / "curve.npz").exists()


def test_sigterm_inside_the_numba_loop_saves_the_curve_too(tmp_path):
    """With the numba backend the signal lands inside a compiled loop, and numba reported
    the handler's KeyboardInterrupt as a SystemError: traceback, exit 1, nothing saved. The
    signal is sent once compilation (cached after the first run) is long over."""
    pytest.importorskip("numba")
    import ibsolver

    table = tmp_path / "g.npy"
    np.save(table, ibsolver.discretize_gaussian(0.8, 20))
    out = tmp_path / "out"
    saved = sigterm_after_start(["curve", table, "--backend", "numba", "--out", out,
                                 "--quiet"], out, tmp_path, 15.0)
    assert saved["complete"] is False
    assert (out / "curve.npz").exists()


def test_demo_gaussian_runs_and_sigterm_saves_its_partial_curve(tmp_path):
    """`demo --problem gaussian` (24 x 24; the whole located curve takes minutes, too long
    for every test run): it starts, and stopped by SIGTERM it saves a partial curve that
    says so and whose traced points are a valid piece of the IB curve."""
    import ibsolver

    out = tmp_path / "demo"
    saved = sigterm_after_start(["demo", "--problem", "gaussian", "--out", out, "--quiet"],
                                out, tmp_path, 5.0)
    assert saved["complete"] is False
    curve = ibsolver.IBCurve.load(out / "curve.npz")
    assert not curve.complete and curve.beta.size > 0
    p_xy = ibsolver.discretize_gaussian(0.8, 24, 24)
    assert curve.i_xy == pytest.approx(ibsolver.mutual_information(p_xy), rel=1e-12)
    assert np.all(curve.i_ty <= np.minimum(curve.i_xt, curve.i_xy) + 1e-9)


def test_a_tolerance_not_reached_is_one_line_naming_the_cli_option(tmp_path, capsys):
    """Python's warnings print as one line each (no source line), and the knob a
    ConvergenceWarning names is an option of the command: --max-points."""
    table = tmp_path / "dsbs.npy"
    np.save(table, dsbs(0.1))
    code, _, err = run_cli(["curve", table, "--out", tmp_path / "o", "--curve-tol", "1e-9",
                        "--max-points", "20", "-q"], capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if "ConvergenceWarning" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("ibsolver curve: ConvergenceWarning: ib_curve: the curve is")
    assert "max_points=20" in lines[0] and "ib_curve(" not in err
    saved = json.loads((tmp_path / "o" / "transitions.json").read_text())
    assert saved["accuracy"] > 1e-9
