"""ib_curves: many curves in local worker processes or on a Dask cluster, each equal to its
sequential ib_curve, in input order, each table's error its own, finished curves saved
as they finish and skipped on restart; and `ibsolver sweep`."""
import json
import os
import sys
import time

import numpy as np
import pytest
from conftest import birth_problem, dsbs

import ibsolver
from ibsolver.cli import main
from ibsolver.sweep import SweepFailure, map_tasks, ib_curves

#: explicit betas: no refinement, so each curve takes a fraction of a second
BETAS = np.linspace(0.5, 30.0, 12)
#: a worker runs the same code as the sequential call, on one kernel thread as it does:
#: equal to round-off
ATOL = 1e-12
#: negative: every worker must report it, not stop on it
INVALID = np.array([[0.5, -0.1], [0.3, 0.3]])


def three_tables():
    random_5x3 = np.random.default_rng(3).dirichlet(np.ones(15)).reshape(5, 3)
    return [dsbs(0.1), birth_problem(), random_5x3]


@pytest.fixture(scope="module")
def sequential():
    """The reference: ib_curve on each of three_tables(), one after the other, in this process."""
    return [ibsolver.ib_curve(t, betas=BETAS, n_threads=1) for t in three_tables()]


def assert_same_curve(got, want):
    assert isinstance(got, ibsolver.IBCurve)
    np.testing.assert_array_equal(got.beta, want.beta)
    for key in ("i_xt", "i_ty", "lagrangian"):
        np.testing.assert_allclose(getattr(got, key), getattr(want, key), rtol=0, atol=ATOL)
    np.testing.assert_array_equal(got.n_clusters, want.n_clusters)
    np.testing.assert_allclose([t.beta for t in got.transitions],
                               [t.beta for t in want.transitions], rtol=1e-12)


def check_with_failure(results, sequential):
    """three_tables() with INVALID at index 1: in order, the failure in its place."""
    assert len(results) == 4
    for got, want in zip([results[0], results[2], results[3]], sequential):
        assert_same_curve(got, want)
    failure = results[1]
    assert isinstance(failure, SweepFailure)
    assert (failure.index, failure.name, failure.error) == (1, "table-1", "ValueError")
    assert "non-negative" in failure.message and "ValueError" in failure.traceback


def with_invalid_second():
    t = three_tables()
    return [t[0], INVALID, t[1], t[2]]


def test_local_workers_match_sequential_in_order(sequential):
    check_with_failure(ib_curves(with_invalid_second(), n_workers=2, betas=BETAS), sequential)


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_dask_local_cluster_matches_sequential_in_order(dask_cluster, sequential):
    from distributed import Client

    with Client(dask_cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        check_with_failure(ib_curves(with_invalid_second(), client=client, betas=BETAS),
                           sequential)


def test_out_saves_each_curve_and_a_restart_skips_it(tmp_path, sequential):
    t = three_tables()
    first = ib_curves(t[:2], names=["a", "b"], out=tmp_path, n_workers=2, betas=BETAS)
    with np.load(tmp_path / "a.npz") as saved:
        np.testing.assert_array_equal(saved["i_ty"], first[0].i_ty)
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved == json.loads(json.dumps(first[1].summary()))
    # "b" is now invalid: traced again, it would fail; skipped, it is None
    again = ib_curves([t[0], INVALID, t[2]], names=["a", "b", "c"], out=tmp_path, betas=BETAS)
    assert again[:2] == [None, None]
    assert_same_curve(again[2], sequential[2])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.json", "a.npz", "b.json", "b.npz", "c.json", "c.npz"]  # no .part left


def _tenfold_or_die(x):
    if x < 0:
        os._exit(3)  # the worker dies, as one killed for memory would
    return 10 * x


def test_a_dying_worker_fails_only_its_own_item():
    results = map_tasks(_tenfold_or_die, [1, -1, 2, 3], names=list("abcd"), n_workers=2)
    assert [results[i] for i in (0, 2, 3)] == [10, 20, 30]
    assert isinstance(results[1], SweepFailure)
    assert (results[1].index, results[1].name, results[1].error) == (1, "b", "BrokenProcessPool")


def _sleep_or_return(item):
    seconds, pid_file = item
    if seconds:
        pid_file.write_text(str(os.getpid()))
        time.sleep(seconds)
    return seconds


def _process_ended(pid, patience_s=20.0):
    """Whether process ``pid`` is gone within ``patience_s`` (a liveness check, not a timing)."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_interrupt_stops_the_running_workers(tmp_path):
    pid_file = tmp_path / "pid"

    def interrupt(index, value):  # like Ctrl-C once the short item is saved
        while not pid_file.exists():
            time.sleep(0.05)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        map_tasks(_sleep_or_return, [(0, pid_file), (600, pid_file)], names=["short", "long"],
                   n_workers=2, on_done=interrupt)
    assert _process_ended(int(pid_file.read_text()))


@pytest.mark.parametrize("call, error, words", [
    (lambda: ib_curves(dsbs(0.1)), ValueError, "sequence of tables"),
    (lambda: ib_curves([dsbs(0.1)], n_betaz=3), TypeError, "n_betaz"),
    (lambda: ib_curves([dsbs(0.1)], interruptible=True), TypeError, "interruptible"),
    (lambda: ib_curves([dsbs(0.1)], client=object(), n_workers=2), ValueError, "n_workers=2"),
    (lambda: ib_curves([dsbs(0.1)], n_workers=0), ValueError, "n_workers"),
    (lambda: ib_curves([dsbs(0.1)] * 2, names=["x", "x"]), ValueError, "'x'"),
    (lambda: ib_curves(["a/x.npy", "b/x.npy"]), ValueError, "'x'"),
    (lambda: ib_curves([dsbs(0.1)], names=["../x"]), ValueError, "'../x'"),
])
def test_bad_arguments_raise_before_any_work(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_cli_sweep_folder_then_restart(tmp_path, capsys):
    tables = tmp_path / "tables"
    tables.mkdir()
    np.save(tables / "dsbs.npy", dsbs(0.1))
    np.savetxt(tables / "counts.csv", np.round(birth_problem() * 1000), delimiter=",", fmt="%d")
    np.save(tables / "invalid.npy", INVALID)
    out = tmp_path / "out"
    argv = ["sweep", str(tables), "--out", str(out), "--betas", "0.5,1,2,5,10,30", "-q"]
    assert main(argv) == 1  # a table failed; the others were written
    captured = capsys.readouterr()
    assert "invalid.npy: ValueError" in captured.err and "non-negative" in captured.err
    assert "2 traced, 0 skipped" in captured.out
    with np.load(out / "dsbs.npz") as saved:
        want = ibsolver.ib_curve(dsbs(0.1), betas=[0.5, 1, 2, 5, 10, 30], n_threads=1)
        np.testing.assert_allclose(saved["i_ty"], want.i_ty, rtol=0, atol=ATOL)
    (tables / "invalid.npy").unlink()
    assert main(argv) == 0
    assert "0 traced, 2 skipped" in capsys.readouterr().out


def test_cli_sweep_json_spec_on_a_scheduler(tmp_path, capsys, dask_cluster):
    np.save(tmp_path / "dsbs.npy", dsbs(0.1))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"tables": ["*.npy"], "options": {"betas": [1, 2, 5, 30],
                                                                  "alpha": 0.5}}))
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "-q",
                 "--scheduler", dask_cluster.scheduler_address]) == 0
    saved = ibsolver.IBCurve.load(out / "dsbs.npz")
    want = ibsolver.ib_curve(dsbs(0.1), betas=[1, 2, 5, 30], alpha=0.5, n_threads=1)
    np.testing.assert_allclose(saved.i_ty, want.i_ty, rtol=0, atol=ATOL)
    assert saved.alpha == 0.5


@pytest.mark.parametrize("spec, words", [
    ("missing", "SPEC '{tmp}/missing' does not exist"),
    ("empty", "SPEC '{tmp}/empty': the folder holds no table files"),
    ("*.txt", "matches no file"),
    ("notes.md", "not a table file"),
    ("bad.json", "the options must be ib_curve's keywords"),
    ("dup/**/*.npy", "would both be saved as x.npz"),
])
def test_cli_sweep_bad_spec_exits_2_naming_it(tmp_path, capsys, spec, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.md").write_text("not a table")
    (tmp_path / "bad.json").write_text(json.dumps({"tables": ["x.npy"], "options": {"bta": 1}}))
    for sub in ("dup/a", "dup/b"):
        (tmp_path / sub).mkdir(parents=True)
        np.save(tmp_path / sub / "x.npy", dsbs(0.1))
    assert main(["sweep", str(tmp_path / spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ibsolver sweep: error: SPEC") and words.format(tmp=tmp_path) in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_cli_sweep_option_errors_exit_2(tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "dsbs.npy", dsbs(0.1))
    argv = ["sweep", str(tmp_path), "--out", str(tmp_path / "out"), "--scheduler", "tcp://h:1"]
    assert main(argv + ["--workers", "2"]) == 2
    assert "--workers applies to local workers only" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)  # as where dask is not installed
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--scheduler 'tcp://h:1' needs dask.distributed" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    np.savez(tmp_path / "table.npz", p_xy=dsbs(0.1))
    assert main(["sweep", str(tmp_path), "--out", str(tmp_path)]) == 2  # over its own input
    assert "would overwrite the table" in capsys.readouterr().err
