"""record_sweep: a grid of training runs on a Dask cluster or local workers, each equal to its
sequential dnn.train.train, in order, each run's error its own, finished runs saved and loaded
(not trained) on restart; and `ibsolver sweep` with a {"dnn": ...} SPEC."""
import csv
import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from ibsolver.cli import main  # noqa: E402
from ibsolver.sweep import SweepFailure  # noqa: E402

from dnn import Recording  # noqa: E402
from dnn.sweep import record_sweep  # noqa: E402
from dnn.tasks import checkerboard  # noqa: E402
from dnn.train import TrainConfig, train  # noqa: E402

#: the smallest task (6 inputs, 2 classes, 96 rows) and a few epochs: a run takes a fraction
#: of a second
SETTINGS = {"task": "checkerboard", "task_options": {"n_samples": 96}, "epochs": 3,
            "n_records": 2, "batch_size": 32, "seeds": [0, 1]}
#: the middle run's widths do not fit the task's 6 inputs: only its worker can tell
RUNS = [{"activation": "tanh", "widths": [6, 4, 2]}, {"activation": "tanh", "widths": [5, 4, 2]},
        {"activation": "relu", "widths": [6, 4, 2]}]
NAMES = ["checkerboard_n_samples=96_batch_size=32_epochs=3_n_records=2_widths=6,4,2_seeds=0,1",
         "checkerboard_n_samples=96_batch_size=32_epochs=3_n_records=2_widths=5,4,2_seeds=0,1",
         "checkerboard_n_samples=96_activation=relu_batch_size=32_epochs=3_n_records=2_"
         "widths=6,4,2_seeds=0,1"]
CONFIG = {k: v for k, v in SETTINGS.items() if k not in ("task", "task_options")}


@pytest.fixture(scope="module")
def sequential():
    """The reference: train() on RUNS[0] and RUNS[2], one after the other, in this process."""
    task = checkerboard(n_samples=96, random_state=0)
    return [train(task, TrainConfig(**CONFIG, **RUNS[i]), n_threads=1) for i in (0, 2)]


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def first_sweep(dask_cluster, tmp_path_factory):
    """RUNS on the two-process cluster, saved to a folder: (folder, sweep)."""
    from distributed import Client

    out = tmp_path_factory.mktemp("sweep")
    with Client(dask_cluster) as client:
        return out, record_sweep(RUNS, client=client, out=out, **SETTINGS)


def assert_same_recording(got, want):
    assert isinstance(got, Recording)
    assert got.seeds == want.seeds and got.settings["config"] == want.settings["config"]
    np.testing.assert_array_equal(got.epochs, want.epochs)
    for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
        np.testing.assert_allclose(getattr(got, key), getattr(want, key), rtol=1e-6, atol=1e-9)
    for q in ("i_xt", "i_ty"):
        np.testing.assert_allclose(got.info["binning"][q], want.info["binning"][q],
                                   rtol=1e-9, atol=1e-9)
    for name, value in want.final_state.items():
        np.testing.assert_allclose(got.final_state[name], value, rtol=1e-6, atol=1e-7)


def test_dask_cluster_matches_sequential_in_order_with_failure(first_sweep, sequential):
    out, sweep = first_sweep
    assert list(sweep.names) == NAMES and sweep.loaded == ()
    assert_same_recording(sweep.results[0], sequential[0])
    assert_same_recording(sweep.results[2], sequential[1])
    failure = sweep.results[1]
    assert isinstance(failure, SweepFailure) and sweep.failures == [failure]
    assert (failure.index, failure.name, failure.error) == (1, NAMES[1], "ValueError")
    assert "widths[0] must equal the task's input size 6" in failure.message
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{NAMES[i]}{suffix}" for i in (0, 2) for suffix in (".json", ".npz"))
    assert_same_recording(Recording.load(out / f"{NAMES[2]}.npz"), sequential[1])
    saved = json.loads((out / f"{NAMES[2]}.json").read_text())
    assert saved["config"] == {**json.loads(json.dumps(dataclasses.asdict(TrainConfig()))), **CONFIG, **RUNS[2]}
    assert saved["task_options"]["random_state"] == 0  # a sampled task: the same every run


def test_restart_loads_finished_runs_without_training_them(first_sweep, dask_cluster):
    from distributed import Client

    out, first = first_sweep
    files = sorted(out.iterdir())
    stamps = [p.stat().st_mtime_ns for p in files]
    with Client(dask_cluster) as client:
        again = record_sweep(RUNS, client=client, out=out, **SETTINGS)
    assert again.loaded == (0, 2)  # read, not trained
    assert [p.stat().st_mtime_ns for p in sorted(out.iterdir())] == stamps
    for i in (0, 2):
        assert_same_recording(again.results[i], first.results[i])
    assert isinstance(again.results[1], SweepFailure)  # tried again, failed again
    with pytest.raises(ValueError, match="other settings .*n_bins: saved 30, now 10"):
        record_sweep(RUNS, out=out, estimators=[{"name": "binning", "n_bins": 10}], **SETTINGS)


def test_the_table_holds_each_finished_run_at_its_last_record(first_sweep):
    _, sweep = first_sweep
    rows = sweep._columns()
    assert len(rows) == 2 * 2 * 2  # finished runs x seeds x layers (one estimator key)
    assert {r["run"] for r in rows} == {NAMES[0], NAMES[2]}
    for row in rows:
        i = NAMES.index(row["run"])
        rec = sweep.results[i]
        s, k = rec.seeds.index(row["seed"]), rec.layers.index(row["layer"])
        assert (row["activation"], row["widths"], row["epoch"]) == (
            RUNS[i]["activation"], (6, 4, 2), 3)
        assert row["i_xt_bits"] == rec.info["binning"]["i_xt"][-1, s, k]
        assert row["test_acc"] == rec.test_acc[-1, s]
    pytest.importorskip("pandas")
    frame = sweep.to_dataframe()
    assert frame.shape[0] == len(rows) and {"run", "lr", "seed", "i_ty_bits"} <= set(frame)


@pytest.mark.parametrize("configs, settings, error, words", [
    ({"lr": 0.1}, {}, ValueError, r"the grid's 'lr' must be a non-empty list .* \(got 0.1\)"),
    ("tanh", {}, ValueError, "configs must be a grid"),
    ([{"lrr": 0.1}], {}, ValueError, r"unknown settings \['lrr'\]"),
    ([{}], {"lrr": 0.1}, TypeError, r"unknown settings \['lrr'\]"),
    ([{"epochs": 2}], {"epochs": 3}, ValueError, "'epochs' is set for every run"),
    ([{"activation": "tahn"}], {}, ValueError, r"activation must be one of .* \(got 'tahn'\)"),
    ([{"task": "mnist"}], {}, ValueError, r"task must be one of .* \(got 'mnist'\)"),
    ([{"task_options": {"nois": 1}}], {}, ValueError, r"do not fit tishby12\(\)"),
    ({"lr": [0.01, 0.01]}, {}, ValueError, "runs 0 and 1 have the same settings"),
    ([{}], {"client": object(), "n_workers": 2}, ValueError, "n_workers=2"),
    ([{}], {"n_threads": 0}, ValueError, r"n_threads must be an integer >= 1 \(got 0\)"),
    ([{}], {"n_workers": True}, ValueError, r"n_workers must be an integer >= 1 \(got True\)"),
    ([{}], {"device": "gpu"}, ValueError, r"device must be 'auto', 'cpu', .* \(got 'gpu'\)"),
])
def test_bad_arguments_raise_before_any_work(tmp_path, configs, settings, error, words):
    with pytest.raises(error, match=words):
        record_sweep(configs, out=tmp_path / "out", **settings)
    assert not (tmp_path / "out").exists()


def test_cuda_without_cuda_raises_before_any_work(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda' was asked for but CUDA is not available"):
        record_sweep([{}], out=tmp_path / "out", device="cuda")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_every_run_trains_on_the_device_asked_for(monkeypatch, device):
    """The device reaches train() in the worker (here the runs are run in this process)."""
    from dnn import sweep, train as train_module

    seen = []

    def spy(task, config, **options):
        seen.append(options["device"])
        return train(task, config, **options)

    monkeypatch.setattr(train_module, "train", spy)
    monkeypatch.setattr(sweep, "map_tasks", lambda task, runs, **_: [task(r) for r in runs])
    result = record_sweep({"activation": ["tanh", "relu"]}, widths=[6, 4, 2], device=device,
                          **SETTINGS)
    import torch

    assert seen == [device, device]
    where = "cuda" if device == "auto" and torch.cuda.is_available() else "cpu"
    assert all(isinstance(r, Recording) and r.device.startswith(where) for r in result.results)


def write_spec(folder, dnn):
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"dnn": dnn}))
    return str(spec)


def test_cli_sweep_dnn_spec_local_then_on_a_scheduler(tmp_path, capsys, dask_cluster,
                                                      sequential):
    spec = write_spec(tmp_path, {"grid": {"activation": ["tanh", "relu"]}, "widths": [6, 4, 2],
                                 **SETTINGS})
    out = tmp_path / "out"
    assert main(["sweep", spec, "--out", str(out), "-q", "--workers", "2"]) == 0
    assert "of 2 runs: 2 trained, 0 loaded" in capsys.readouterr().out
    for name, want in zip((NAMES[0], NAMES[2]), sequential):
        assert_same_recording(Recording.load(out / f"{name}.npz"), want)
    with open(out / "runs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run"] for r in rows] == [NAMES[0]] * 4 + [NAMES[2]] * 4
    assert main(["sweep", spec, "--out", str(out), "-q",
                 "--scheduler", dask_cluster.scheduler_address]) == 0
    assert "of 2 runs: 0 trained, 2 loaded" in capsys.readouterr().out


@pytest.mark.parametrize("dnn, extra, words", [
    ({"grid": {"lr": 0.1}}, [], "'dnn': the grid's 'lr' must be a non-empty list of values "
                                "(got 0.1)"),
    ({"runs": [{"activation": "tahn"}]}, [], "activation must be one of"),
    ({"grid": [{"lr": 0.1}]}, [], "'dnn': 'grid' must be an object of lists"),
    ({"epochs": 3}, [], "'dnn' must be an object with 'grid'"),
    ({"runs": [{}], "estimators": ["histogram"]}, [], "estimator name must be"),
    ({"runs": [{}]}, ["--betas", "1,2"], "--betas applies to tables"),
])
def test_cli_sweep_bad_dnn_spec_exits_2_naming_it(tmp_path, capsys, dnn, extra, words):
    spec = write_spec(tmp_path, dnn)
    assert main(["sweep", spec, "--out", str(tmp_path / "out")] + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ibsolver sweep: error: SPEC {spec!r}") and words in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_the_dnn_sweep_kind_is_installed():
    from ibsolver._cli_sweep import _sweep_kinds

    kinds = _sweep_kinds()
    assert "dnn" in kinds, ("the entry point ibsolver.sweeps: dnn = dnn.sweep:cli_spec is not "
                            "installed: reinstall the package (pip install -e .)")
    assert kinds["dnn"].value == "dnn.sweep:cli_spec"
