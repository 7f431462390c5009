"""dnn's results save and load as ibsolver's do (``save(path)`` returns None, ``load(path)``;
one .npz of arrays plus JSON, no pickle), nested results included, to the last bit; only
dnn and ibsolver classes are rebuilt."""
import dataclasses
import json
from collections import OrderedDict
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from torch import nn  # noqa: E402

import dnn  # noqa: E402
import ibsolver  # noqa: E402
from dnn.periods import DatasizeSweep  # noqa: E402
from dnn.recording import Recording  # noqa: E402


def assert_same(a, b, where="result"):
    """Equal types, fields, keys and arrays (dtype, shape, values; NaN equal to NaN),
    recursively."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            if f.init:
                assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def reloaded(result, tmp_path):
    path = tmp_path / "result.npz"
    assert result.save(path) is None  # as every ibsolver result's
    back = type(result).load(path)
    assert_same(result, back)
    return back


def tiny_recording(n=40, batch_size=16, **kw):
    torch.manual_seed(0)  # init=None below: every seed starts from these weights
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(3, 4), act=nn.Tanh(), fc2=nn.Linear(4, 2)))
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 3, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return dnn.record_training(model, (x, y), layers=["act", "fc2"], probe=(x, y.numpy()),
                               test_data=(x, y), epochs=2, optimizer="sgd", lr=0.1,
                               batch_size=batch_size, seeds=(0, 1), init=None,
                               record_epochs=range(3), **kw)


@pytest.fixture(scope="module")
def recording():
    return tiny_recording(keep_activations=True)


def test_the_comparison_itself_can_fail(recording):
    info = {**recording.info, "binning": {**recording.info["binning"],
                                          "i_xt": recording.info["binning"]["i_xt"] + 1e-12}}
    for changed in (dataclasses.replace(recording, info=info),
                    dataclasses.replace(recording, seeds=list(recording.seeds)),
                    dataclasses.replace(recording, epochs=recording.epochs.astype(np.int32)),
                    dataclasses.replace(recording, wall_time_s=float("nan"))):
        with pytest.raises(AssertionError):
            assert_same(recording, changed)


def test_a_recording_round_trips_with_its_table_and_summary(recording, tmp_path):
    back = reloaded(recording, tmp_path)
    assert back.activations is not None and back.final_state  # nested dicts of arrays
    with np.load(tmp_path / "result.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
        meta = json.loads(str(data["meta"]))
        np.testing.assert_array_equal(data["info/binning/i_xt"], recording.info["binning"]["i_xt"])
    assert (meta["type"], meta["format"]) == ("Recording", ibsolver.results.FORMAT)
    summary = back.summary()
    assert summary == recording.summary()
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary  # strict JSON
    assert summary["estimator"] == "binning" and set(summary["layers"]) == {"act", "fc2"}
    pytest.importorskip("pandas")
    df = back.to_dataframe()
    assert len(df) == 3 * 2 * 2  # (epoch, seed, layer)
    np.testing.assert_array_equal(df["i_xt_bits"], [r["i_xt_bits"] for r in recording._columns()])


def test_a_result_holding_recordings_and_an_ib_curve_round_trips(recording, tmp_path):
    curve = ibsolver.ib_curve(recording.p_xy)
    sweep = DatasizeSweep(sizes=np.array([0.5, 1.0]), recordings=(recording, recording),
                          curve=curve)
    back = reloaded(sweep, tmp_path)
    assert str(back.curve) == str(curve) and back.curve.bound(0.3) == curve.bound(0.3)


def test_only_dnn_and_ibsolver_classes_are_rebuilt(recording, tmp_path):
    @dataclasses.dataclass
    class Foreign:
        a: int = 1

    dataclasses.replace(recording, settings={"model": Foreign()}).save(tmp_path / "f.npz")
    with pytest.raises(ValueError, match=r"f\.npz' is not a complete Recording file "
                                         r"\(ValueError: refusing to rebuild .*Foreign"):
        Recording.load(tmp_path / "f.npz")
    with pytest.raises(TypeError, match=r"cannot save a set \(at settings/s\)"):
        dataclasses.replace(recording, settings={"s": {1, 2}}).save(tmp_path / "s.npz")
    assert not (tmp_path / "s.npz").exists()  # nothing half-written


# ----------------------------------------------------- the other public dnn results
def check_table_and_summary(result, n_rows, columns):
    """``summary()`` is strict JSON, equal after a round trip through it; the table has
    ``n_rows`` rows and the ``columns``."""
    summary = result.summary()
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    pytest.importorskip("pandas")
    df = result.to_dataframe()
    assert df.shape == (n_rows, len(columns)) and list(df.columns) == list(columns)
    return summary, df


def test_a_fisher_info_round_trips(tmp_path):
    from dnn.fisher import FisherInfo, fisher_diagonal

    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(3, 4), act=nn.Tanh(), fc2=nn.Linear(4, 2)))
    info = fisher_diagonal(model, torch.randn(10, 3, generator=torch.Generator().manual_seed(1)))
    diagonal = {**info.diagonal, "fc2.bias": np.array([np.nan, 0.5])}  # NaN kept too
    for result in (info, dataclasses.replace(info, diagonal=diagonal)):
        back = reloaded(result, tmp_path)
        assert isinstance(back, FisherInfo) and list(back.diagonal) == list(result.diagonal)
    summary, df = check_table_and_summary(info, 4, ("kind", "parameter", "layer", "n_entries",
                                                    "trace", "mean", "max"))
    assert summary == {"kind": "model", "trace": info.trace, "layer_trace": info.layer_trace,
                       "n_samples": 10, "n_params": 3 * 4 + 4 + 4 * 2 + 2}
    assert list(df["parameter"]) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert list(df["layer"]) == ["fc1", "fc1", "fc2", "fc2"]
    np.testing.assert_allclose(df["trace"].sum(), info.trace, rtol=1e-12)


def test_a_task_embedding_round_trips_and_says_what_it_cannot_save(tmp_path):
    from dnn.task2vec import TaskEmbedding, build_probe, digits_task_family, task2vec_embed

    x, y, c = digits_task_family(n_samples=60, random_state=0)["parity"]
    emb = task2vec_embed(x, y, probe=build_probe(hidden=(8,), pretrain=None), n_classes=c,
                         name="parity", head_max_iter=20)
    for result in (emb, dataclasses.replace(emb, head_accuracy=float("nan"))):
        reloaded(result, tmp_path)
    summary, df = check_table_and_summary(emb, 1, ("name", "n_classes", "fisher_trace",
                                                   "head_accuracy", "n_entries"))
    assert summary == {"name": "parity", "n_classes": 2, "fisher_trace": emb.fisher_trace,
                       "head_accuracy": emb.head_accuracy, "n_entries": 8}
    assert dataclasses.replace(emb, head_accuracy=float("nan")).summary()["head_accuracy"] is None
    # a field that is no array or plain value is refused by name, and nothing is written
    with pytest.raises(TypeError, match=r"cannot save a Tensor \(at vector\)"):
        dataclasses.replace(emb, vector=torch.as_tensor(emb.vector)).save(tmp_path / "t.npz")
    assert not (tmp_path / "t.npz").exists()
    from dnn.fisher import FisherInfo

    emb.save(tmp_path / "e.npz")
    with pytest.raises(ValueError, match="holds a result of type TaskEmbedding, not FisherInfo"):
        FisherInfo.load(tmp_path / "e.npz")
    assert TaskEmbedding.load(tmp_path / "e.npz").name == "parity"


def test_weights_information_round_trips(tmp_path):
    from dnn.weights import WeightsInformation, fit_weight_posterior

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(3, 4), act=nn.ReLU(), fc2=nn.Linear(4, 2)))
    res = fit_weight_posterior(model, x, y, prior_center="zero", epochs=3, batch_size=20,
                               n_mc=5, x_test=x[:10], y_test=y[:10])
    assert res.pac_bayes is not None and res.sigma_fisher
    without = fit_weight_posterior(model, x, y, prior_center="zero", epochs=2, n_mc=2,
                                   fisher=False)  # None where no test set and no Fisher
    assert without.test_error is None and without.kl_fisher_bits is None
    for result in (res, without, dataclasses.replace(res, history={
            **res.history, "kl_bits": [float("nan")] + res.history["kl_bits"][1:]})):
        back = reloaded(result, tmp_path)
        assert isinstance(back, WeightsInformation) and back.summary() == result.summary()
    summary, df = check_table_and_summary(res, 4, (
        "parameter", "n_weights", "sigma_mean", "sigma_min", "sigma_max", "sigma_fisher_mean",
        "beta", "prior_scale"))
    assert summary["kl_bits"] == res.kl_bits and summary["pac_bayes_bound"] == res.pac_bayes.bound
    assert list(df["parameter"]) == list(res.sigma) and df["n_weights"].sum() == res.n_params
    np.testing.assert_allclose(df["sigma_max"], [v.max() for v in res.sigma.values()], rtol=0)
    assert without.summary()["test_error"] is None
    assert without.to_dataframe()["sigma_fisher_mean"].isna().all()


def test_estimates_and_sensitivities_round_trip(recording, tmp_path):
    from dnn.estimators import KDE, Binning, InfoEstimate, Sensitivity, sensitivity

    acts = {layer: recording.final_activations[layer][0] for layer in recording.layers}
    estimates = Binning(5).estimate(acts, recording.p_xy) + KDE(0.1).estimate(acts,
                                                                             recording.p_xy)
    for est in estimates:
        back = reloaded(est, tmp_path)
        assert isinstance(back, InfoEstimate) and back.summary() == est.summary()
        summary, df = check_table_and_summary(est, 2, (
            "layer", "estimator", "i_xt_bits", "i_ty_bits", "n_clusters", "saturated", "exact",
            "n_probe"))
        assert summary["layers"] == ["act", "fc2"] and summary["estimator"] == est.estimator
        np.testing.assert_array_equal(df["i_xt_bits"], est.i_xt)
    sweeps = (sensitivity(acts, recording.p_xy, values=[4, 8, {"strategy": "width",
                                                                 "bin_width": 0.5}])
              + sensitivity(acts, recording.p_xy, estimator="kde", values=[0.01, 0.1]))
    assert [s.knob for s in sweeps] == ["setting", "noise_var", "noise_var"]
    for sweep in sweeps:
        back = reloaded(sweep, tmp_path)
        assert isinstance(back, Sensitivity) and back.summary() == sweep.summary()
        summary, df = check_table_and_summary(sweep, len(sweep.values) * 2, (
            "estimator", "knob", "setting", "value", "layer", "i_xt_bits", "i_ty_bits",
            "spread_xt_bits", "spread_ty_bits"))
        assert summary["values"] == list(sweep.values)
        np.testing.assert_array_equal(df["i_ty_bits"], sweep.i_ty.ravel())
    assert list(sweeps[0].to_dataframe()["value"][::2]) == [
        "4", "8", '{"bin_width": 0.5, "strategy": "width"}']


def test_a_bound_check_round_trips_with_its_violations(recording, tmp_path):
    from dnn.infoplane import BoundCheck, check_below_bound

    curve = ibsolver.ib_curve(recording.p_xy)
    check = check_below_bound(recording, curve)
    assert check.ok
    columns = ("epoch", "seed", "layer", "i_xt_bits", "i_ty_bits", "bound_bits", "excess_bits")
    check_table_and_summary(check, 0, columns)  # no violation: no row, the same columns
    # a curve too low: every point with I(T;Y) > 0 is flagged
    low = dataclasses.replace(curve, envelope_i_ty=np.zeros_like(curve.envelope_i_ty))
    flagged = check_below_bound(recording, low, on_violation="flag")
    assert not flagged.ok and flagged.violations
    empty = BoundCheck(ok=True, n_points=0, max_excess=float("nan"), violations=[], tol=1e-6,
                       kind="ib_curve")
    for result in (check, flagged, empty):
        back = reloaded(result, tmp_path)
        assert back.summary() == result.summary()
    summary, df = check_table_and_summary(flagged, len(flagged.violations), columns)
    assert summary["n_violations"] == len(flagged.violations) and summary["ok"] is False
    assert df.to_dict("records") == flagged.violations
    assert empty.summary()["max_excess_bits"] is None


def test_an_infoplane_experiment_round_trips(tmp_path):
    from dnn.estimators import Sensitivity
    from dnn.recipes import InfoplaneExperiment, infoplane_experiment
    from dnn.tasks.base import Task
    from dnn.tasks.tishby12 import all_patterns, tishby12
    from dnn.train import TrainConfig

    full = tishby12(0.0)
    idx = np.flatnonzero(np.all(all_patterns()[:, :8] == (1, 0, 1, 0, 0, 1, 1, 0), axis=1))
    task = Task(name="tiny", x=full.x[idx], labels=full.labels[idx], n_classes=2,
                p_x=np.full(idx.size, 1.0 / idx.size), p_y_given_x=full.p_y_given_x[idx])
    cfg = TrainConfig(widths=(12, 4, 2), epochs=3, batch_size=8, n_records=2, seeds=(0, 1))
    run = infoplane_experiment(task, cfg, estimators=["binning", "kde"], sweep=(0.1,),
                               device="cpu", n_threads=1)
    assert run.curve is not None and run.check is not None and run.scores
    assert any(isinstance(s, Sensitivity) for s in run.sweeps)  # the KDE's
    back = reloaded(run, tmp_path)
    assert isinstance(back, InfoplaneExperiment) and str(back.curve) == str(run.curve)
    summary = run.summary()
    assert back.summary() == summary and summary["bound_check"]["ok"] is True
    rows = run.recording._columns(run.curve)
    _, df = check_table_and_summary(run, len(rows), tuple(rows[0]))
    assert len(df) == 3 * 2 * 2 * 2  # (binning, kde_upper, kde_lower) x records x seeds x layers
    np.testing.assert_array_equal(df["gap_bits"], [r["gap_bits"] for r in rows])


# --- every recipe's result: one frozen result, saved and loaded to the last bit ------------

def _task2vec():
    from dnn.task2vec import build_probe, digits_task_family, task2vec_experiment

    fam = digits_task_family(n_samples=60, random_state=0)
    fam = {k: fam[k] for k in ("parity", "mod3", "3_vs_rest")}
    return task2vec_experiment(fam, probe=build_probe(hidden=(8,), pretrain=None),
                               random_state=0, head_max_iter=20)


def _fisher():
    from dnn.experiments import fisher_over_training
    from dnn.tasks.digits import digits

    return fisher_over_training(digits("fine", n_samples=200, random_state=0), hidden=(4,),
                                epochs=1, fisher_samples=10, record_epochs=[0, 1])


def _usable(compare_sgd=False):
    from dnn.experiments import usable_experiment

    return usable_experiment("checkerboard", n_samples=200, n_probe=60, epochs=1,
                             record_epochs=[0, 1], decoder="linear",
                             decoder_options={"epochs": 2}, compare_sgd=compare_sgd,
                             seeds=(0, 1))


def _weights(betas=(1.0,)):
    from dnn.weights import weights_experiment

    return weights_experiment(hidden=(4,), epochs=1, posterior_epochs=2, n_mc=4, betas=betas,
                              random_labels={"n_samples": 10, "n_test": 10, "hidden": (3,),
                                             "seeds": (0,), "train_epochs": 2, "epochs": 2,
                                             "n_mc": 4})


def _critical():
    from dnn.periods import critical_periods
    from dnn.tasks.digits import digits

    return critical_periods((0, 1), epochs_after=1, seeds=(0,), hidden=(4,), batch_size=32,
                            fisher_samples=4, task=digits("fine", n_samples=120,
                                                          random_state=0))


def _linear():
    from dnn.linear import deep_linear_experiment, gaussian_teacher

    return deep_linear_experiment(gaussian_teacher(2, 2, 2, random_state=1), widths=(3,),
                                  epochs=3, n_train=32, batch_size=16, seeds=(0,), n_records=2,
                                  n_threads=1)


#: every recipe that ``ibsolver`` runs, tiny (infoplane_experiment and the data-size sweep
#: have their own tests above), and the result type it returns
RECIPES = {"task2vec_experiment": (_task2vec, "Task2VecExperiment"),
           "fisher_over_training": (_fisher, "FisherOverTraining"),
           "usable_experiment": (_usable, "UsableExperiment"),
           "sgd_regimes": (lambda: _usable(compare_sgd=True), "UsableExperiment"),
           "weights_experiment": (_weights, "WeightsExperiment"),
           "weights_experiment without random labels": (lambda: _weights(betas=()),
                                                        "WeightsExperiment"),
           "critical_periods": (_critical, "CriticalPeriods"),
           "deep_linear_experiment": (_linear, "DeepLinearStudy")}


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_returns_one_result_that_round_trips(recipe, tmp_path):
    make, kind = RECIPES[recipe]
    result = make()
    assert isinstance(result, ibsolver.results.Result) and type(result).__name__ == kind
    assert dataclasses.is_dataclass(result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.extra = 1
    back = reloaded(result, tmp_path)
    summary = result.summary()
    assert back.summary() == summary
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary  # strict JSON
    with np.load(tmp_path / "result.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    pytest.importorskip("pandas")
    df = result.to_dataframe()
    assert len(df) > 0
    assert back.to_dataframe().equals(df)


def test_the_parts_of_a_recipe_result_round_trip_alone(tmp_path):
    """A UsableRun and a NetworkWeights (what checkerboard_experiment, digits_coarse_fine
    and weights_of_digits_mlp return) save and load whole, nested in their experiment or
    alone; the tables and summaries are those the CLI writes."""
    from dnn.experiments import UsableRun
    from dnn.usable import RISE_FALL_BITS
    from dnn.weights import NetworkWeights

    usable = _usable()
    run = usable.runs["main"]
    assert isinstance(run, UsableRun) and set(usable.runs) == {"main"}
    back = reloaded(run, tmp_path)
    assert back.summary(threshold_bits=0.2) == run.summary(threshold_bits=0.2)
    summary = usable.summary()
    assert summary["task"] == "checkerboard"
    assert summary["runs"]["main"]["rise_then_fall_bits"] == RISE_FALL_BITS
    assert summary["runs"]["main"]["final_test_accuracy"]["mean"] == pytest.approx(
        float(run.recording.test_acc[-1].mean()), rel=1e-12)
    rows = usable._columns()
    assert len(rows) == 2 * 2 * 6 * 2 and {r["run"] for r in rows} == {"main"}
    assert [r["run"] for r in usable.training_rows()] == ["main"] * 2 * 2

    weights = _weights()
    network = weights.network
    assert isinstance(network, NetworkWeights)
    reloaded(network, tmp_path)
    summary = weights.summary()
    assert summary["kl_bits"] == network.posterior.kl_bits
    assert summary["hidden"] == [4] and summary["network_epochs"] == 1
    assert summary["random_labels"]["seeds"] == [0]
    assert "random_labels" not in _weights(betas=()).summary()


def test_task2vec_and_fisher_results_hold_what_the_cli_writes():
    t2v = _task2vec()
    assert t2v.names == ("parity", "mod3", "3_vs_rest") and t2v.distances.shape == (3, 3)
    np.testing.assert_array_equal(np.diag(t2v.distances), 0.0)
    nearest = t2v.summary()["nearest"]
    for i, name in enumerate(t2v.names):
        others = [j for j in range(3) if j != i]
        assert nearest[name] == t2v.names[min(others, key=lambda j: t2v.distances[i, j])]
    rows = t2v._columns()
    assert [r["task"] for r in rows] == list(t2v.names)
    np.testing.assert_array_equal([[r[f"distance_{n}"] for n in t2v.names] for r in rows],
                                  t2v.distances)
    with pytest.raises(ValueError, match="one entry per task"):
        dataclasses.replace(t2v, names=t2v.names[:2])

    fisher = _fisher()
    assert fisher.epochs == [0, 1] and fisher.trace.shape == (2,)
    summary = fisher.summary()
    assert summary["trace"] == fisher.trace.tolist()
    assert summary["peak_epoch"] in (0, 1) and summary["fisher_samples"] == 10
    np.testing.assert_allclose(sum(fisher.layer_traces.values()), fisher.trace, rtol=1e-6)
    assert_same(fisher._columns(), fisher.recording.training_rows())


# --- the one CSV writer of the command line ------------------------------------------------

class _Table:
    """A result's table as the CLI's writer reads it: ``_columns``, here with an option."""

    def _columns(self, scale=1):
        return {"epoch": [0, 5], "i_xt_bits": [0.1 * scale, float("nan")], "note": ["a", None]}


def test_write_csv_writes_a_results_table_rows_or_columns_alike(tmp_path):
    from dnn.cli_common import write_csv

    path = write_csv(tmp_path / "t.csv", _Table(), scale=3)
    assert path == str(tmp_path / "t.csv")
    want = "epoch,i_xt_bits,note\r\n0,0.30000000000000004,a\r\n5,nan,\r\n"
    assert Path(path).read_bytes() == want.encode()
    rows = [{"epoch": 0, "i_xt_bits": 0.1 * 3, "note": "a"},
            {"epoch": 5, "i_xt_bits": float("nan"), "note": None}]
    assert Path(write_csv(tmp_path / "r.csv", rows)).read_bytes() == want.encode()
    # no rows: no file
    assert write_csv(tmp_path / "empty.csv", {"epoch": [], "note": []}) is None
    assert not (tmp_path / "empty.csv").exists()
    with pytest.raises(TypeError, match="options only with a result"):
        write_csv(tmp_path / "x.csv", rows, curve=None)
