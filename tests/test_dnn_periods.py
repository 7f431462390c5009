"""dnn.periods: the training-set size sweep (Shwartz-Ziv & Tishby) and critical learning periods
(Achille, Rovere & Soatto): the blur, the schedule of deficit and clean phases, a removal at
epoch 0 equal to a plain run, the learning-rate decay of record_training, save/load, and the
`ibsolver datasize` and `ibsolver critical` commands end to end and on bad flags."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import run_cli  # noqa: E402

from dnn import periods  # noqa: E402
from dnn.experiments import fisher_measures  # noqa: E402
from dnn.loop import record_training  # noqa: E402
from dnn.models import mlp, mlp_init, mlp_layers  # noqa: E402
from dnn.periods import (CriticalPeriods, DatasizeSweep, blur, critical_periods,  # noqa: E402
                         datasize_experiment)
from dnn.tasks.digits import digits  # noqa: E402
from dnn.train import TrainConfig, stratified_split  # noqa: E402

#: a small digits task and network: a critical_periods run takes a fraction of a second
TASK = digits("fine", n_samples=150, random_state=0)
SMALL = dict(task=TASK, hidden=(8,), batch_size=16, fisher_samples=6, train_fraction=0.7)


# --- the deficit ---------------------------------------------------------------------------

def test_blur_means_blocks_then_interpolates_back():
    flat = np.full((1, 64), 0.3, dtype=np.float32)
    np.testing.assert_allclose(blur(flat, 4), flat, rtol=0, atol=1e-7)
    checker = (np.indices((8, 8)).sum(axis=0) % 2).reshape(1, 64).astype(np.float32)
    np.testing.assert_allclose(blur(checker, 2), 0.5, rtol=0, atol=1e-7)
    out = blur(TASK.x, 4)
    assert out.shape == TASK.x.shape and out.dtype == np.float32
    # a digit loses its detail: every image changes, by a large share of the pixel range
    assert np.abs(out - TASK.x).max(axis=1).min() > 0.1
    with pytest.raises(ValueError, match="factor must divide"):
        blur(TASK.x, 3)
    with pytest.raises(ValueError, match="x must hold one 8 x 8 image per row"):
        blur(TASK.x[:, :60], 2)


def test_inputs_are_blurred_before_the_removal_epoch_and_clean_after(monkeypatch):
    calls = []

    def spy(model, train_data, **kw):
        calls.append((np.asarray(train_data[0]), kw["epochs"], kw["lr"]))
        return record_training(model, train_data, **kw)

    monkeypatch.setattr(periods, "record_training", spy)
    result = critical_periods((0, 2), epochs_after=1, seeds=(0,), lr=0.1, lr_decay=0.5, **SMALL)
    train_idx, _ = stratified_split(TASK.labels, 0.7, 0)
    clean, blurred = TASK.x[train_idx], blur(TASK.x, 4)[train_idx]
    assert not np.allclose(clean, blurred, atol=0.05)
    # e = 0: one clean phase; e = 2: 2 blurred epochs, then 1 clean epoch at lr 0.1 * 0.5**2;
    # never removed: 2 + 1 blurred epochs
    want = [(clean, 1, 0.1), (blurred, 2, 0.1), (clean, 1, 0.025), (blurred, 3, 0.1)]
    assert len(calls) == len(want)
    for (x, epochs, lr), (x_want, epochs_want, lr_want) in zip(calls, want):
        np.testing.assert_array_equal(x, x_want)
        assert epochs == epochs_want
        np.testing.assert_allclose(lr, lr_want, rtol=1e-12)
    assert result.removal_epochs == [0, 2, None]
    np.testing.assert_array_equal(result.runs[1].blurred, [False, True, True, False])
    np.testing.assert_array_equal(result.runs[2].blurred, [False, True, True, True])


@pytest.fixture(scope="module")
def result():
    return critical_periods((0, 1, 3), epochs_after=2, seeds=(4, 7), **SMALL)


def test_runs_have_consistent_shapes_accuracies_and_fisher_traces(result):
    assert [r.removal_epoch for r in result.runs] == [0, 1, 3, None]
    for run, last in zip(result.runs, (2, 3, 5, 5)):
        np.testing.assert_array_equal(run.epochs, np.arange(last + 1))
        for a in (run.test_acc, run.train_acc, run.test_loss_bits, run.fisher_trace):
            assert a.shape == (last + 1, 2)
            assert np.isfinite(a).all()
        assert ((run.test_acc >= 0) & (run.test_acc <= 1)).all()
        assert ((run.train_acc >= 0) & (run.train_acc <= 1)).all()
        assert (run.fisher_trace >= 0).all() and (run.fisher_trace > 0).any()
        assert set(run.fisher_layer_trace) == {"fc1", "fc2"}
        np.testing.assert_allclose(sum(run.fisher_layer_trace.values()), run.fisher_trace,
                                   rtol=1e-9)
    # every schedule starts from the same initial networks; the blurred ones see other inputs
    np.testing.assert_allclose(result.runs[1].test_acc[0], result.runs[0].test_acc[0], atol=0)
    assert not np.allclose(result.runs[1].fisher_trace[0], result.runs[0].fisher_trace[0])
    s = result.summary()
    assert [r["label"] for r in s["runs"]] == ["never blurred", "removed at 1", "removed at 3",
                                              "never removed"]
    np.testing.assert_allclose([r["final_test_acc"]["mean"] for r in s["runs"]],
                               [r.final_test_acc.mean() for r in result.runs], rtol=1e-12)
    assert s["runs"][0]["drop_from_never_blurred"] == 0.0
    json.dumps(s)  # JSON-ready


def test_removal_at_epoch_zero_is_a_plain_run():
    """The schedule with e = 0 is a plain SGD run of record_training with the same network,
    seeds and schedule, to round-off: no blur, the same split, initialisation, minibatches
    and Fisher inputs."""
    seeds, epochs = (5, 2), 3
    got = critical_periods((0,), epochs_after=epochs, never_removed=False, seeds=seeds,
                           lr=0.05, lr_decay=0.9, **SMALL).runs[0]
    train_idx, test_idx = stratified_split(TASK.labels, 0.7, 0)
    x, y = TASK.x, TASK.labels
    model = mlp((64, 8, 10), "relu")
    plain = record_training(
        model, (x[train_idx], y[train_idx]), layers=mlp_layers(model), probe=(x, y),
        test_data=(x[test_idx], y[test_idx]), epochs=epochs, optimizer="sgd", lr=0.05,
        lr_decay=0.9, batch_size=16, seeds=seeds, init=mlp_init("he", "relu"),
        estimators=(), record_epochs=range(epochs + 1),
        measures=fisher_measures(x[train_idx[:6]]))
    np.testing.assert_allclose(got.test_acc, plain.test_acc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.test_loss_bits, plain.test_loss, rtol=1e-6)
    np.testing.assert_allclose(got.fisher_trace, plain.measures["fisher_trace"], rtol=1e-6)
    # and a deficit of one epoch changes the outcome
    blurred = critical_periods((1,), epochs_after=epochs - 1, never_removed=False, seeds=seeds,
                               lr=0.05, lr_decay=0.9, **SMALL).runs[0]
    assert not np.allclose(blurred.test_loss_bits[-1], got.test_loss_bits[-1], rtol=1e-3)


def test_lr_decay_of_record_training_is_a_new_phase_at_the_decayed_rate():
    """lr_decay = 0.5: epoch 2 runs at half the rate. One full batch per epoch, so the
    minibatch order cannot matter: two epochs equal one epoch, then one more from its
    weights at lr / 2. At 1 the settings are those of before (no lr_decay key)."""
    x, y = TASK.x[:60], TASK.labels[:60]
    model = mlp((64, 6, 10), "tanh")
    kw = dict(layers=mlp_layers(model), probe=(x, y), optimizer="sgd", batch_size=60,
              seeds=(0, 1), estimators=(), init=mlp_init("uniform"))
    both = record_training(model, (x, y), epochs=2, lr=0.5, lr_decay=0.5, **kw)
    first = record_training(model, (x, y), epochs=1, lr=0.5, **kw)
    kw["init"] = periods._continue_from(first)
    second = record_training(model, (x, y), epochs=1, lr=0.25, **kw)
    for name, value in both.final_state.items():
        np.testing.assert_allclose(value, second.final_state[name], rtol=1e-5, atol=1e-7)
    assert not np.allclose(both.final_state["fc1.weight"], first.final_state["fc1.weight"])
    assert both.settings["lr_decay"] == 0.5 and "lr_decay" not in first.settings
    with pytest.raises(ValueError, match="lr_decay must be a finite number > 0"):
        record_training(model, (x, y), epochs=1, lr_decay=0.0, **kw)


def test_critical_periods_round_trip_and_table(result, tmp_path):
    path = tmp_path / "critical.npz"
    assert result.save(path) is None
    back = CriticalPeriods.load(path)
    assert back.summary() == result.summary()
    for a, b in zip(back.runs, result.runs):
        assert a.removal_epoch == b.removal_epoch
        for name in ("epochs", "test_acc", "train_acc", "test_loss_bits", "fisher_trace"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        for layer, trace in b.fisher_layer_trace.items():
            np.testing.assert_array_equal(a.fisher_layer_trace[layer], trace)
    df = result.to_dataframe()
    assert len(df) == sum(len(r.epochs) for r in result.runs) * 2
    assert {"removal_epoch", "epoch", "seed", "blurred", "test_acc", "fisher_trace",
            "fisher_trace_fc1"} <= set(df.columns)
    with pytest.raises(ValueError, match="holds a result of type CriticalPeriods, not "
                                         "DatasizeSweep"):
        DatasizeSweep.load(path)


@pytest.mark.parametrize("call, match", [
    (lambda: critical_periods((2, 2), **SMALL), "removal_epochs must be distinct"),
    (lambda: critical_periods((-1,), **SMALL), "removal_epochs must be >= 0"),
    (lambda: critical_periods((1,), lr_decay=1.5, **SMALL), "lr_decay must be <= 1"),
    (lambda: critical_periods((1,), blur_factor=3, **SMALL), "factor must divide"),
    (lambda: datasize_experiment((0.5, 1.0)), "sizes must be distinct training fractions"),
    (lambda: datasize_experiment((0.5,), TrainConfig(probe="train")), "config.probe must"),
    (lambda: datasize_experiment((0.5,), noise=-1.0), "noise must be >= 0"),
    (lambda: critical_periods((1,), epochs_after="3", **SMALL),
     "epochs_after must be a finite integer \\(got '3'\\)"),
    (lambda: datasize_experiment((0.5,), noise=float("nan")),
     "noise must be a finite real number \\(got nan\\)"),
])
def test_bad_arguments_name_themselves(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- the command line ----------------------------------------------------------------------

def test_cli_datasize_end_to_end(tmp_path, capsys):
    out = tmp_path / "ds"
    code, stdout, err = run_cli(["datasize", "--sizes", "0.1,0.05", "--epochs", 2, "--records",
                                 2, "--seeds", 2, "--workers", 1, "--noise", 0, "--quiet",
                                 "--out", out], capsys)
    assert code == 0, err
    for name in ("datasize.npz", "datasize.csv", "datasize.json", "datasize_grid.png",
                 "datasize.png"):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "runs").glob("*.npz"))) == 2
    summary = json.loads((out / "datasize.json").read_text())
    assert [s["train_fraction"] for s in summary["sizes"]] == [0.05, 0.1]
    assert [s["n_train"] for s in summary["sizes"]] == [205, 410]
    assert summary["last_hidden_layer"] == "act5" and summary["seeds"] == [0, 1]
    np.testing.assert_allclose(summary["i_xy_bits"], 0.999157, atol=1e-6)  # H(Y), noise 0
    back = DatasizeSweep.load(out / "datasize.npz")
    assert json.loads(json.dumps(back.summary())) == summary
    assert len(back._columns()) == 2 * 6
    assert "act5" in stdout and "5%" in stdout


def test_cli_critical_end_to_end(tmp_path, capsys):
    out = tmp_path / "cr"
    code, stdout, err = run_cli(["critical", "--removal", "0,2", "--epochs", 1, "--seeds", 2,
                                 "--hidden", 8, "--fisher-samples", 10, "--quiet", "--out", out],
                                capsys)
    assert code == 0, err
    for name in ("critical.npz", "critical.csv", "critical.json", "critical.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "critical.json").read_text())
    assert [r["removal_epoch"] for r in summary["runs"]] == [0, 2, None]
    assert [r["epochs"] for r in summary["runs"]] == [1, 3, 3]
    assert CriticalPeriods.load(out / "critical.npz").summary()["runs"] == summary["runs"]
    assert "never removed" in stdout


@pytest.mark.parametrize("argv, flag", [
    (["datasize", "--sizes", "0.5,1.5"], "--sizes"),
    (["datasize", "--sizes", "0.1,x"], "--sizes"),
    pytest.param(["datasize", "--device", "cuda"], "--device", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="CUDA is there: --device cuda is valid")),
    (["datasize", "--records", "1"], "--records"),
    (["datasize", "--epochs", "ten"], "--epochs"),
    (["critical", "--removal", "0,-3"], "--removal"),
    (["critical", "--lr-decay", "1.5"], "--lr-decay"),
    (["critical", "--blur-factor", "3"], "--blur-factor"),
    (["critical", "--epochs", "0"], "--epochs"),
    (["critical", "--hidden", "8,0"], "--hidden"),
])
def test_bad_flags_exit_2_naming_the_flag(tmp_path, capsys, argv, flag):
    code, _, err = run_cli(argv + ["--out", tmp_path / "o"], capsys)
    assert code == 2, err
    assert flag in err and "Traceback" not in err
