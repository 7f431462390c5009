"""Usable information, the checkerboard and digits tasks, the experiments and the CLI."""
import csv
import dataclasses
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dnn.tasks.checkerboard import checkerboard  # noqa: E402
from dnn.tasks.digits import digits  # noqa: E402
from dnn.usable import (RISE_FALL_BITS, DecoderBudget, UsableCurves,  # noqa: E402
                        UsableEnsemble, UsableInformation, rise_and_drop, rises_then_falls, usable_information,
                        usable_information_over_training)


def _plugin_mi_bits(a, b):
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / (pa * pb)[nz])).sum())


# ----------------------------------------------------------------------- tasks

@pytest.mark.parametrize("n", [2, 5])
def test_checkerboard_shapes_and_rule(n):
    m = 3000
    t = checkerboard(n, m, random_state=1)
    assert t.x.shape == (m, n + n * n) and t.x.dtype == np.float32
    assert t.labels.shape == (m,) and t.labels.dtype == np.int64
    assert t.n_classes == n and t.p_x is None
    color, direction = t.extra_labels["color"], t.extra_labels["direction"]
    np.testing.assert_array_equal(direction, t.labels)
    # the target at the direction's corner has the checkerboard's colour, and the targets
    # carry every colour exactly once
    targets = t.x[:, n:].reshape(m, n, n)
    np.testing.assert_array_equal(targets[np.arange(m), direction].argmax(1), color)
    np.testing.assert_array_equal(targets.sum(1), np.ones((m, n)))
    # board = one-hot colour + N(0, 0.1^2) noise
    resid = t.x[:, :n] - np.eye(n)[color]
    np.testing.assert_allclose(resid.std(), 0.1, rtol=0.05)
    np.testing.assert_allclose(resid.mean(), 0.0, atol=0.01)


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("n", [2, 10])
def test_checkerboard_balance_and_independence(n, seed):
    m = 20000
    t = checkerboard(n, m, random_state=seed)
    color, direction = t.extra_labels["color"], t.labels
    cc = np.bincount(color, minlength=n)
    assert cc.max() - cc.min() <= 1                       # balanced colours, by design
    dc = np.bincount(direction, minlength=n)
    sd = math.sqrt(m * (1 / n) * (1 - 1 / n))
    assert np.all(np.abs(dc - m / n) < 6 * sd)            # uniform directions
    # colour independent of direction: the plug-in MI is at its small-sample bias
    bias = (n - 1) ** 2 / (2 * m * math.log(2))
    assert _plugin_mi_bits(color, direction) < 5 * bias + 1e-3


def test_checkerboard_errors_and_determinism():
    with pytest.raises(ValueError, match="n_colors"):
        checkerboard(1)
    with pytest.raises(ValueError, match="noise"):
        checkerboard(2, 10, noise=-1)
    with pytest.raises(ValueError, match="n_samples"):
        checkerboard(2, 0)
    a, b = checkerboard(3, 50, random_state=4), checkerboard(3, 50, random_state=4)
    np.testing.assert_array_equal(a.x, b.x)


def test_digits_parity_and_fine():
    t = digits()
    fine = t.extra_labels["fine"]
    assert t.x.shape == (1797, 64) and 0 <= t.x.min() and t.x.max() <= 1
    np.testing.assert_array_equal(t.labels, fine % 2)
    np.testing.assert_array_equal(t.extra_labels["coarse"], t.labels)
    assert t.n_classes == 2
    np.testing.assert_allclose(t.p_xy.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(t.p_xy.sum(0), np.bincount(t.labels) / t.n, rtol=1e-12)
    f = digits("fine", n_samples=300, random_state=0)
    assert f.n == 300 and f.n_classes == 10 and f.p_y_given_x.shape == (300, 10)
    np.testing.assert_array_equal(f.extra_labels["coarse"], f.labels % 2)
    h = digits(coarse="high")
    np.testing.assert_array_equal(h.labels, (h.extra_labels["fine"] >= 5).astype(int))
    with pytest.raises(ValueError, match="label"):
        digits("medium")


# ----------------------------------------------------------------- usable info

def _encoded(seed, n=2000, k=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = np.eye(k)[y] * 3 + 0.1 * rng.standard_normal((n, k))
    return z, y


@pytest.mark.parametrize("decoder", ["linear", "mlp"])
def test_encoding_representation_reaches_entropy(decoder):
    z, y = _encoded(0)
    res = usable_information(z, y, decoder=decoder, epochs=15, random_state=0)
    assert res.h_y == pytest.approx(2.0, abs=0.01)
    assert res.value == pytest.approx(res.h_y, abs=0.05)
    assert res.value <= res.h_y and not res.clipped
    assert res.test_accuracy > 0.99
    b = res.budget
    assert b.decoder == decoder and b.epochs == 15
    assert b.hidden == (() if decoder == "linear" else (128, 64, 32))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_noise_is_near_zero_and_clipping_is_reported(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 600)
    z = rng.standard_normal((600, 8))
    res = usable_information(z, y, epochs=20, random_state=seed)
    assert res.value >= 0.0
    assert res.value < 0.05
    np.testing.assert_allclose(res.h_y - res.cross_entropy, res.raw, rtol=1e-12)
    assert res.clipped == (res.raw < 0)
    np.testing.assert_allclose(res.value, max(res.raw, 0.0))
    d = res.summary()
    assert set(d) >= {"value", "raw", "clipped", "h_y", "cross_entropy", "budget"}
    assert d["budget"]["batch_norm"] is False  # a linear decoder has none


def test_explicit_h_y_and_split():
    z, y = _encoded(1, n=400)
    idx = np.arange(400)
    res = usable_information(z, y, h_y=2.0, split=(idx[:200], idx[200:]), epochs=10)
    assert res.h_y == 2.0 and res.n_train == 200 and res.n_test == 200
    with pytest.raises(ValueError, match="disjoint"):
        usable_information(z, y, split=(idx[:300], idx[200:]))


def test_usable_errors_name_the_argument():
    z, y = _encoded(0, n=50)
    with pytest.raises(ValueError, match="decoder"):
        usable_information(z, y, decoder="forest")
    with pytest.raises(ValueError, match="y must be a 1-D"):
        usable_information(z, y[:10])
    with pytest.raises(ValueError, match="epochs"):
        usable_information(z, y, epochs=0)
    with pytest.raises(ValueError, match="dropout"):
        usable_information(z, y, decoder="mlp", dropout=1.5)
    with pytest.raises(ValueError, match="finite"):
        usable_information(np.full((50, 2), np.nan), y)


def test_over_training_shapes_determinism_and_grouping():
    rng = np.random.default_rng(0)
    n = 300
    y = {"a": rng.integers(0, 2, n), "b": rng.integers(0, 3, n)}
    acts = [{"l1": rng.standard_normal((n, 4)) + y["a"][:, None] * e,
             "l2": rng.standard_normal((n, 2))} for e in range(3)]
    calls = []
    kw = dict(epochs=[0, 5, 10], decoder_epochs=5, random_state=3)
    c1 = usable_information_over_training(acts, y, progress=calls.append, **kw)
    assert isinstance(c1, UsableCurves)
    assert c1.value.shape == (2, 2, 3) and sum(calls) == 12
    assert c1.layers == ("l1", "l2") and c1.label_sets == ("a", "b")
    assert c1.max_bits == {"a": 1.0, "b": math.log2(3)}
    assert len(c1._columns()) == 12 and len(c1.results) == 12
    assert np.all(c1.value >= 0) and np.all(c1.clipped == (c1.raw < 0))
    # more separation at later epochs -> more usable information about "a" in l1
    assert c1.value[0, 0, 2] > c1.value[0, 0, 0] + 0.3
    # the decoders are independent: grouping them differently changes nothing
    c2 = usable_information_over_training(acts, y, max_group=1, **kw)
    np.testing.assert_allclose(c1.raw, c2.raw, atol=1e-4)
    c3 = usable_information_over_training(dict(zip([0, 5, 10], acts)), y, **kw)
    np.testing.assert_allclose(c1.raw, c3.raw, atol=1e-12)
    with pytest.raises(ValueError, match="layer 'l3'"):
        usable_information_over_training(acts, y, layers=["l3"])


def test_mlp_decoders_do_not_depend_on_their_grouping():
    """Each MLP decoder draws its dropout masks from its own generator, so training the
    decoders one at a time or as one stack gives the same numbers (float32 round-off)."""
    rng = np.random.default_rng(1)
    n = 200
    y = {"a": rng.integers(0, 2, n)}
    acts = [{"l1": rng.standard_normal((n, 3)) + y["a"][:, None] * e,
             "l2": rng.standard_normal((n, 5))} for e in range(2)]
    kw = dict(decoder="mlp", hidden=(16, 8), decoder_epochs=4, dropout=0.3, random_state=5)
    grouped = usable_information_over_training(acts, y, **kw)
    single = usable_information_over_training(acts, y, max_group=1, **kw)
    np.testing.assert_allclose(grouped.raw, single.raw, atol=1e-4)
    assert np.ptp(grouped.raw) > 1e-3  # the decoders do differ from one another


# ----------------------------------------------------------- rise then fall, ensembles

def test_rises_then_falls_on_synthetic_curves():
    t = 0.25   # binary fractions: the differences below are exact
    curves = np.array([
        [0.25, 0.75, 1.0, 0.5],      # rises by 0.75, falls by 0.5: counts
        [0.0, 0.25, 0.5, 1.0],       # rises only
        [1.0, 0.75, 0.5, 0.0],       # falls only (present at the start, then lost)
        [0.0, 0.25, 0.0, 0.0],       # rise and drop exactly at the threshold: not more
        [0.0, 0.5, 0.5, 0.25],       # drop exactly at the threshold
        [0.0, 0.5, 0.5, 0.125],      # drop just over it
        [0.5, 0.5, 0.5, 0.5],        # flat
    ])
    np.testing.assert_array_equal(rises_then_falls(curves, threshold_bits=t),
                                  [True, False, False, False, False, True, False])
    rise, drop = rise_and_drop(curves)
    np.testing.assert_allclose(rise, [0.75, 1.0, 0.0, 0.25, 0.5, 0.5, 0.0], rtol=0, atol=0)
    np.testing.assert_allclose(drop, [0.5, 0.0, 1.0, 0.25, 0.25, 0.375, 0.0], rtol=0, atol=0)
    # just below the threshold the edge case counts; the default threshold is 0.05 bit
    assert rises_then_falls(curves[3], threshold_bits=np.nextafter(t, 0))
    assert RISE_FALL_BITS == 0.05 and not rises_then_falls([0.9, 0.94, 0.9])
    assert rises_then_falls([0.9, 0.96, 0.9])
    # any leading shape
    assert rises_then_falls(np.zeros((2, 3, 5))).shape == (2, 3)
    with pytest.raises(ValueError, match="threshold_bits"):
        rises_then_falls(curves, threshold_bits=-0.1)


def _budget():
    return DecoderBudget(decoder="mlp", hidden=(128, 64, 32), epochs=40, lr=0.01,
                         weight_decay=1e-3, dropout=0.2, batch_size=256, test_size=0.5,
                         standardize=True)


def _curves(value, epochs=(0, 1, 2, 3), budget=None):
    """UsableCurves holding ``value`` (label set, layer, epoch), two label sets, three
    layers."""
    value = np.asarray(value, dtype=np.float64)
    return UsableCurves(epochs=np.asarray(epochs), layers=("l1", "l2", "l3"),
                        label_sets=("a", "b"), value=value, raw=value.copy(),
                        clipped=np.zeros(value.shape, dtype=bool),
                        test_accuracy=np.full(value.shape, 0.5), h_y={"a": 1.0, "b": 1.0},
                        max_bits={"a": 1.0, "b": 1.0}, budget=budget or _budget())



def test_usable_information_saves_loads_and_tabulates(tmp_path):
    z, y = _encoded(0, n=200)
    res = usable_information(z, y, epochs=3, random_state=0)
    assert res.save(tmp_path / "ui.npz") is None
    back = UsableInformation.load(tmp_path / "ui.npz")
    assert back == res and back.summary() == res.summary()
    assert json.loads(json.dumps(res.summary(), allow_nan=False)) == res.summary()
    (row,) = res._columns()
    assert row["value"] == res.value and row["decoder"] == "linear"
    with pytest.raises(ValueError, match="UsableCurves"):
        UsableCurves.load(tmp_path / "ui.npz")
    pytest.importorskip("pandas")
    assert back.to_dataframe().to_dict("records") == [row]


def test_usable_curves_save_load_summary_and_table(tmp_path):
    value = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 24
    curves = _curves(value)
    assert curves.save(tmp_path / "c.npz") is None
    back = UsableCurves.load(tmp_path / "c.npz")
    for name in ("epochs", "value", "raw", "clipped", "test_accuracy"):
        np.testing.assert_array_equal(getattr(back, name), getattr(curves, name), err_msg=name)
    assert (back.layers, back.label_sets, back.h_y, back.max_bits, back.budget) == (
        curves.layers, curves.label_sets, curves.h_y, curves.max_bits, curves.budget)
    summary = curves.summary()
    assert back.summary() == summary
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary["final"]["b"]["l2"] == value[1, 1, -1] and summary["n_clipped"] == 0
    assert summary["peak"]["a"]["l3"] == value[0, 2].max()
    assert summary["decoder_budget"]["hidden"] == [128, 64, 32]
    rows = curves._columns()
    assert len(rows) == 2 * 3 * 4
    assert rows[5] == {"label": "a", "layer": "l2", "epoch": 1, "usable_bits": value[0, 1, 1],
                       "raw_bits": value[0, 1, 1], "clipped": False, "test_accuracy": 0.5,
                       "h_y_bits": 1.0, "decoder": "mlp"}
    pytest.importorskip("pandas")
    assert back.to_dataframe().to_dict("records") == rows


def _ensemble(seed=0):
    """Three seeds of synthetic curves; layer l1 of label set a rises then falls in the
    first two seeds only."""
    rng = np.random.default_rng(seed)
    per_seed = []
    for s in range(3):
        v = 0.5 + 0.001 * rng.standard_normal((2, 3, 4))        # flat, noise far below 0.05
        if s < 2:
            v[0, 0] = [0.2, 0.8, 0.6, 0.4]
        per_seed.append(_curves(v))
    return UsableEnsemble(seeds=(0, 1, 2), curves=tuple(per_seed))


def test_usable_ensemble_spread_fraction_and_round_trip(tmp_path):
    ens = _ensemble()
    assert ens.value.shape == (3, 2, 3, 4) and ens.layers == ("l1", "l2", "l3")
    spread = ens.spread()
    assert set(spread) == {"mean", "std", "min", "max"}
    for v in spread.values():
        assert v.shape == (2, 3, 4)
    stacked = np.stack([c.value for c in ens.curves])
    np.testing.assert_allclose(spread["mean"], stacked.mean(0), rtol=1e-15)
    np.testing.assert_array_equal(spread["min"], stacked.min(0))
    np.testing.assert_array_equal(spread["max"], stacked.max(0))
    assert np.all(spread["min"] <= spread["mean"]) and np.all(spread["mean"] <= spread["max"])
    rf = ens.rise_then_fall()
    assert rf["a"]["l1"]["n_rise_fall"] == 2 and rf["a"]["l1"]["n_seeds"] == 3
    np.testing.assert_allclose(rf["a"]["l1"]["fraction"], 2 / 3, rtol=1e-15)
    np.testing.assert_allclose(rf["a"]["l1"]["rise_bits"][:2], [0.6, 0.6], rtol=1e-12)
    np.testing.assert_allclose(rf["a"]["l1"]["drop_bits"][:2], [0.4, 0.4], rtol=1e-12)
    assert all(rf[lab][layer]["fraction"] == 0.0 for lab in ("a", "b")
               for layer in ("l1", "l2", "l3") if (lab, layer) != ("a", "l1"))
    # a larger threshold than the drop: no seed counts
    assert ens.rise_then_fall(threshold_bits=0.45)["a"]["l1"]["n_rise_fall"] == 0
    rows = ens._columns()
    assert len(rows) == 3 * 2 * 3 * 4 and {r["seed"] for r in rows} == {0, 1, 2}
    assert ens.save(tmp_path / "ens.npz") is None
    back = UsableEnsemble.load(tmp_path / "ens.npz")
    assert back.seeds == ens.seeds and back.summary() == ens.summary()
    np.testing.assert_array_equal(back.value, ens.value)
    assert back.budget == ens.budget and back.rise_then_fall() == rf
    pytest.importorskip("pandas")
    assert back.to_dataframe().to_dict("records") == rows


def test_usable_ensemble_rejects_mismatched_curves():
    c = _curves(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="one UsableCurves per seed"):
        UsableEnsemble(seeds=(0, 1), curves=(c,))
    with pytest.raises(ValueError, match="share epochs"):
        UsableEnsemble(seeds=(0, 1), curves=(c, _curves(np.zeros((2, 3, 4)), (0, 1, 2, 5))))
    linear = dataclasses.replace(_budget(), decoder="linear", hidden=())
    with pytest.raises(ValueError, match="share epochs"):
        UsableEnsemble(seeds=(0, 1), curves=(c, _curves(np.zeros((2, 3, 4)), budget=linear)))


def test_plot_usable_ensemble_shades_the_range():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnn.usable import plot_usable_curves

    ens = _ensemble()
    _, ax = plt.subplots()
    assert plot_usable_curves(ens, ax=ax, label_sets=["a"]) is ax
    assert len(ax.lines) == 3 + 1                   # three mean curves and the maximum
    np.testing.assert_allclose(ax.lines[0].get_ydata(), ens.spread()["mean"][0, 0])
    assert len(ax.collections) == 3                 # one min-max band per layer
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose([band.min(), band.max()],
                               [ens.spread()["min"][0, 0].min(), ens.spread()["max"][0, 0].max()])
    plt.close(ax.figure)


def test_plot_usable_curves():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnn.usable import plot_usable_curves

    rng = np.random.default_rng(0)
    y = {"d": rng.integers(0, 2, 100)}
    c = usable_information_over_training([{"x": rng.standard_normal((100, 2))}] * 2, y,
                                         decoder_epochs=2)
    _, ax = plt.subplots()
    assert plot_usable_curves(c, ax=ax) is ax
    plt.close(ax.figure)


def test_checkerboard_experiment_tiny():
    from dnn.experiments import checkerboard_experiment

    run = checkerboard_experiment(2, n_samples=600, n_probe=200, epochs=2,
                                  record_epochs=[0, 2], decoder_options={"epochs": 3},
                                  fisher_samples=16, seeds=(0, 1), random_state=0)
    rec, ens = run.recording, run.ensemble
    assert isinstance(ens, UsableEnsemble) and ens.seeds == (0, 1) == rec.seeds
    assert rec.epochs.tolist() == [0, 2] and ens.value.shape == (2, 2, 6, 2)
    assert ens.layers == ("act1", "act2", "act3", "act4", "act5", "output")
    assert ens.budget.decoder == "mlp" and ens.budget.epochs == 3   # the paper's decoder
    assert rec.layers[-1] == "fc6" and rec.activations["act1"].shape == (2, 2, 200, 10)
    # each seed's curves decode its own network's activations
    assert not np.allclose(ens.curves[0].raw, ens.curves[1].raw, atol=1e-3)
    fisher = rec.measures["fisher_trace"]
    assert fisher.shape == (2, 2) and np.all(fisher > 0)
    # the trace is the sum of the layers' traces
    layers = sum(v for k, v in rec.measures.items() if k.startswith("fisher_trace_"))
    np.testing.assert_allclose(layers, fisher, rtol=1e-6)
    assert np.all(rec.measures["fisher_empirical_trace"] > 0)


@pytest.mark.parametrize("experiment", ["checkerboard_experiment", "digits_coarse_fine"])
def test_experiment_decodes_on_its_device(experiment, monkeypatch):
    """Regression: the experiments trained the network on ``device`` but never passed it to
    the decoders, which always ran on the CPU (the CUDA test below checks the GPU itself)."""
    import dnn.experiments as experiments
    import dnn.usable as usable

    real = usable.usable_information_over_training
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device", "<not passed>"))
        return real(*args, **kwargs)

    monkeypatch.setattr(usable, "usable_information_over_training", spy)
    dev = torch.device("cpu")
    kw = dict(epochs=1, record_epochs=[1], decoder_options={"epochs": 1}, random_state=0,
              device=dev)
    if experiment == "checkerboard_experiment":
        kw.update(n_colors=2, n_samples=300, n_probe=100)
    else:
        kw.update(hidden=(8,))
    ens = getattr(experiments, experiment)(**kw).ensemble
    assert seen == [dev]
    assert np.all(np.isfinite(ens.curves[0].raw))


def test_cli_usable_end_to_end(tmp_path, capsys):
    """The default run (a seed ensemble, MLP decoders) with tiny sizes: every seed's curves,
    the fraction of seeds rising then falling per label set and layer, printed and saved."""
    from ibsolver.cli import main

    out = tmp_path / "usable"
    rc = main(["usable", "--n-samples", "400", "--n-probe", "200", "--epochs", "3",
               "--record-epochs", "0,1,3", "--decoder-epochs", "3", "--seeds", "2", "--quiet",
               "--out", str(out)])
    assert rc == 0
    with open(out / "usable.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 6 * 3
    assert {r["label"] for r in rows} == {"direction", "color"}
    assert {r["seed"] for r in rows} == {"0", "1"}
    assert all(float(r["usable_bits"]) >= 0 for r in rows)
    meta = json.loads((out / "usable.json").read_text())["runs"]["main"]
    assert meta["decoder_budget"]["decoder"] == "mlp" and meta["decoder_budget"]["epochs"] == 3
    assert meta["seeds"] == [0, 1] and meta["rise_then_fall_bits"] == RISE_FALL_BITS
    ens = UsableEnsemble.load(out / "usable_main.npz")
    assert ens.summary(threshold_bits=RISE_FALL_BITS).items() <= meta.items()
    fraction = rises_then_falls(ens.value).mean(axis=0)
    printed = capsys.readouterr().out
    for i, lab in enumerate(ens.label_sets):
        for j, layer in enumerate(ens.layers):
            entry = meta["rise_then_fall"][lab][layer]
            assert entry["n_seeds"] == 2 and entry["fraction"] == fraction[i, j]
            assert f"{layer} {entry['n_rise_fall']}/2" in printed
    assert printed.count("rises then falls:") == 2
    with open(out / "training.csv") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [0, 0, 1, 1, 3, 3]
    import matplotlib.image as mpimg
    assert mpimg.imread(out / "usable.png").ndim == 3
    # usable.npz is the whole result: usable.json's summary, usable.csv's rows
    from dnn.experiments import UsableExperiment

    result = UsableExperiment.load(out / "usable.npz")
    assert result.summary() == json.loads((out / "usable.json").read_text())
    assert [r["usable_bits"] for r in result._columns()] == [float(r["usable_bits"])
                                                             for r in rows]
    np.testing.assert_array_equal(result.runs["main"].ensemble.value, ens.value)


def test_cli_module_imports_without_torch(tmp_path):
    """`ibsolver --help` must work without torch; the commands say what to install."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import dnn.cli_info, ibsolver.cli\n"
            "p = ibsolver.cli.build_parser()\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "try:\n"
            f"    ibsolver.cli.main(['usable', '--out', {str(tmp_path / 'x')!r}])\n"
            "except SystemExit as e:\n"
            "    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert res.returncode == 0, res.stderr
    assert "pip install 'ibsolver[dnn]'" in res.stdout


# --------------------------------------------------------------------------- CUDA
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


def _spy_decoder_devices(monkeypatch):
    """Record the device every batch of decoders is trained on (the results do not say)."""
    import inspect

    import dnn.usable as usable

    real = usable._train_decoders
    seen = []

    def spy(*args, **kwargs):
        seen.append(torch.device(inspect.signature(real).bind(*args, **kwargs)
                                 .arguments["device"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(usable, "_train_decoders", spy)
    return seen


@needs_cuda
@pytest.mark.parametrize("decoder", ["linear", "mlp"])
def test_cuda_encoding_representation_reaches_entropy(decoder, monkeypatch):
    z, y = _encoded(0)
    seen = _spy_decoder_devices(monkeypatch)
    res = usable_information(z, y, decoder=decoder, epochs=15, random_state=0, device="cuda")
    assert [d.type for d in seen] == ["cuda"]
    assert all(math.isfinite(v) for v in (res.value, res.raw, res.cross_entropy,
                                           res.train_cross_entropy))
    assert res.h_y == pytest.approx(2.0, abs=0.01)
    assert res.value == pytest.approx(res.h_y, abs=0.05)
    assert res.value <= res.h_y and not res.clipped
    assert res.test_accuracy > 0.99
    # initialisation, minibatch order and dropout masks are drawn on the CPU for every
    # device: the GPU trains the same decoders, up to float32 round-off
    cpu = usable_information(z, y, decoder=decoder, epochs=15, random_state=0, device="cpu")
    np.testing.assert_allclose(res.cross_entropy, cpu.cross_entropy, rtol=0, atol=1e-3)


@needs_cuda
@pytest.mark.parametrize("seed", [0, 1])
def test_cuda_noise_is_near_zero(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 600)
    z = rng.standard_normal((600, 8))
    seen = _spy_decoder_devices(monkeypatch)
    res = usable_information(z, y, epochs=20, random_state=seed, device="cuda")
    assert [d.type for d in seen] == ["cuda"]
    assert math.isfinite(res.raw) and math.isfinite(res.cross_entropy)
    assert 0.0 <= res.value < 0.05
    np.testing.assert_allclose(res.h_y - res.cross_entropy, res.raw, rtol=1e-12)
    assert res.clipped == (res.raw < 0)
    np.testing.assert_allclose(res.value, max(res.raw, 0.0))


@needs_cuda
def test_cuda_over_training_matches_cpu(monkeypatch):
    rng = np.random.default_rng(0)
    n = 300
    y = {"a": rng.integers(0, 2, n), "b": rng.integers(0, 3, n)}
    acts = [{"l1": rng.standard_normal((n, 4)) + y["a"][:, None] * e,
             "l2": rng.standard_normal((n, 2))} for e in range(3)]
    kw = dict(epochs=[0, 5, 10], decoder_epochs=5, random_state=3)
    seen = _spy_decoder_devices(monkeypatch)
    gpu = usable_information_over_training(acts, y, device="cuda", **kw)
    assert seen and all(d.type == "cuda" for d in seen)
    assert gpu.value.shape == (2, 2, 3) and len(gpu.results) == 12
    assert np.all(np.isfinite(gpu.raw)) and np.all(gpu.value >= 0)
    assert np.all(gpu.clipped == (gpu.raw < 0))
    assert gpu.value[0, 0, 2] > gpu.value[0, 0, 0] + 0.3
    # grouping changes nothing on the GPU either
    one_by_one = usable_information_over_training(acts, y, device="cuda", max_group=1, **kw)
    np.testing.assert_allclose(gpu.raw, one_by_one.raw, atol=1e-4)
    cpu = usable_information_over_training(acts, y, device="cpu", **kw)
    np.testing.assert_allclose(gpu.raw, cpu.raw, rtol=0, atol=1e-3)
    np.testing.assert_allclose(gpu.test_accuracy, cpu.test_accuracy, rtol=0, atol=0.02)


@needs_cuda
def test_cuda_checkerboard_experiment_tiny(monkeypatch):
    """The network trains (and its Fisher is taken) on the GPU, and the decoders run there
    too; same record and curves as on the CPU."""
    from dnn.experiments import checkerboard_experiment

    kw = dict(n_samples=600, n_probe=200, epochs=2, record_epochs=[0, 2],
              decoder_options={"epochs": 3}, fisher_samples=16, random_state=0)
    seen = _spy_decoder_devices(monkeypatch)
    run = checkerboard_experiment(2, device="cuda", **kw)
    rec, ens = run.recording, run.ensemble
    curves = ens.curves[0]
    assert seen and all(d.type == "cuda" for d in seen)   # they used to stay on the CPU
    assert rec.epochs.tolist() == [0, 2] and curves.value.shape == (2, 6, 2)
    assert rec.device.startswith("cuda")
    for name in ("fisher_trace", "fisher_empirical_trace"):
        assert np.all(np.isfinite(rec.measures[name]) & (rec.measures[name] >= 0))
    for layer, a in rec.activations.items():
        assert a.dtype == np.float32 and a.shape[2] == 200 and np.all(np.isfinite(a)), layer
    assert np.all(np.isfinite(curves.raw)) and np.all(curves.value >= 0)
    cpu_run = checkerboard_experiment(2, device="cpu", **kw)
    cpu_rec, cpu_ens = cpu_run.recording, cpu_run.ensemble
    np.testing.assert_allclose(rec.train_loss, cpu_rec.train_loss, rtol=1e-4)
    for name in ("fisher_trace", "fisher_empirical_trace"):
        np.testing.assert_allclose(rec.measures[name], cpu_rec.measures[name], rtol=1e-3)
    np.testing.assert_allclose(curves.raw, cpu_ens.curves[0].raw, rtol=0, atol=1e-2)


@pytest.mark.parametrize("options", [{"decoder": "logistic"},
                                     {"decoder_options": {"epochs": 0}},
                                     {"decoder_options": {"depth": 3}}])
def test_a_bad_decoder_setting_fails_before_training(options, monkeypatch):
    """(It failed only after the networks' training: 28 s of digits_coarse_fine.)"""
    from dnn import experiments

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the decoder")

    monkeypatch.setattr(experiments, "train_mlp", no_training)
    with pytest.raises((ValueError, TypeError), match="decoder|epochs"):
        experiments.digits_coarse_fine(epochs=2, **options)
    with pytest.raises((ValueError, TypeError), match="decoder|epochs"):
        experiments.checkerboard_experiment(2, epochs=2, n_samples=200, **options)
