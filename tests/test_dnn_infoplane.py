"""Layers against the IB bound: the overlay, the bound check, the figures and the CLI."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

import ibsolver  # noqa: E402
from dnn.infoplane import (BoundViolationError, check_below_bound, gaps,  # noqa: E402
                           plot_accuracy, plot_bound, plot_gap, plot_grad_snr,
                           plot_gradient_stats, plot_infoplane, plot_loss, plot_sensitivity,
                           save_figures, summary, trajectory_sensitivity)
from dnn.recipes import infoplane_experiment  # noqa: E402
from dnn.estimators import Binning, sensitivity  # noqa: E402
from dnn.tasks.base import Task  # noqa: E402
from dnn.tasks.tishby12 import all_patterns, tishby12  # noqa: E402
from dnn.train import TrainConfig, train  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def small_task(noise=0.0, prefix=(1, 1, 0, 0)):
    """The patterns of the 12-bit task that start with ``prefix`` (256 for four fixed bits,
    16 for eight), uniform p(x), both labels present."""
    full = tishby12(noise)
    idx = np.flatnonzero(np.all(all_patterns()[:, :len(prefix)] == prefix, axis=1))
    return Task(name=f"{full.name}-small", x=full.x[idx], labels=full.labels[idx], n_classes=2,
                p_x=np.full(idx.size, 1.0 / idx.size), p_y_given_x=full.p_y_given_x[idx])


@pytest.fixture(scope="module")
def curve(run):
    """The IB curve of the run's probe: for this deterministic rule, min(I(X;T), H(Y))."""
    return ibsolver.ib_curve(run.p_xy)


@pytest.fixture(scope="module")
def run():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig(widths=(12, 6, 4, 2), epochs=40, batch_size=32, lr=0.01, n_records=6,
                          seeds=(0, 1, 2))
        return train(small_task(), cfg, device="cpu", keep_activations=True)
    finally:
        torch.set_num_threads(old)


def test_binned_points_lie_below_the_deterministic_bound(run, curve):
    h_y = run.h_y
    d = run.info["binning"]
    assert d["i_xt"].shape == (len(run.epochs), 3, 3)
    assert np.all(d["i_xt"] <= run.log2_n + 1e-9)
    assert np.all(d["i_ty"] <= np.minimum(d["i_xt"], h_y) + 1e-9)
    check = check_below_bound(run, curve, "binning")
    assert check.ok and check.n_points == d["i_xt"].size and check.violations == []
    assert check.kind == "deterministic"
    g = gaps(run, curve, "binning")
    np.testing.assert_allclose(g, np.minimum(d["i_xt"], h_y) - d["i_ty"], rtol=0, atol=1e-9)
    assert np.all(g >= -1e-9)


def test_the_curve_of_a_deterministic_rule_is_exact(run, curve):
    assert curve.deterministic
    r = np.linspace(0, run.log2_n, 19)
    np.testing.assert_allclose(curve.bound(r), np.minimum(r, run.h_y), rtol=0, atol=1e-9)
    np.testing.assert_allclose(curve.i_xy, run.h_y, rtol=0, atol=1e-12)


def test_the_recipe_checks_its_bound_argument():
    with pytest.raises(ValueError, match="deterministic"):
        infoplane_experiment(small_task(noise=3.0), bound="exact")
    with pytest.raises(ValueError, match="bound"):
        infoplane_experiment(small_task(), bound="closed")


def test_a_point_above_the_bound_is_an_error(run, curve):
    bad = run.info["binning"]
    tampered = type(run)(**{**run.__dict__, "info": {"binning": {**bad, "i_ty": bad["i_ty"].copy()}}})
    tampered.info["binning"]["i_ty"][2, 1, 0] = tampered.info["binning"]["i_xt"][2, 1, 0] + 0.5
    with pytest.raises(BoundViolationError, match="above the IB bound") as exc:
        check_below_bound(tampered, curve, "binning")
    v = exc.value.violations
    assert len(v) >= 1 and v[0]["epoch"] == int(run.epochs[2]) and v[0]["seed"] == 1
    assert v[0]["excess_bits"] > 0.4
    flagged = check_below_bound(tampered, curve, "binning", on_violation="flag")
    assert not flagged.ok and flagged.max_excess > 0.4
    assert summary(tampered, None, "binning", flagged)["bound_check"]["n_violations"] >= 1


def test_a_curve_of_other_data_is_refused_not_blamed_on_the_solver(run, curve, tmp_path):
    """A curve of another joint would put the points against the wrong bound, and
    check_below_bound would blame a point above it on the solver: every function taking a
    curve checks its I(X;Y) and H(Y) against the recording's probe joint."""
    tilted = run.p_xy * [1.5, 0.5]
    other = ibsolver.ib_curve(tilted / tilted.sum())
    for call in (lambda c: gaps(run, c), lambda c: check_below_bound(run, c),
                 lambda c: plot_infoplane(run, c), lambda c: summary(run, c),
                 lambda c: save_figures(run, tmp_path / "figs", c)):
        with pytest.raises(ValueError, match="curve is not the IB curve of this recording"):
            call(other)
        call(curve)  # (the right one passes)
    with pytest.raises(TypeError, match="curve must be the ibsolver.IBCurve"):
        check_below_bound(run, None)
    with pytest.raises(TypeError, match="got ndarray"):
        gaps(run, run.p_xy)


def test_a_violation_blames_the_solver_only_for_the_recordings_own_curve(run, curve):
    """The I(X;Y) and H(Y) check cannot tell every other table apart (swapping the labels
    keeps both): a point above the bound accuses the solver only where the curve was
    traced for the recording's own table (its digest), else the curve's data."""
    assert curve.traced_for(run.p_xy) is True
    permuted = ibsolver.ib_curve(run.p_xy[:, ::-1].copy())
    assert permuted.traced_for(run.p_xy) is False
    bad = run.info["binning"]
    tampered = type(run)(**{**run.__dict__, "info": {"binning": {**bad, "i_ty": bad["i_ty"].copy()}}})
    tampered.info["binning"]["i_ty"][2, 1, 0] = tampered.info["binning"]["i_xt"][2, 1, 0] + 0.5
    with pytest.raises(BoundViolationError, match="an error of the solver"):
        check_below_bound(tampered, curve)
    with pytest.raises(BoundViolationError, match="not traced for this recording's p_xy"):
        check_below_bound(tampered, permuted)
    with pytest.raises(ValueError, match="curve is not the IB curve of this recording"):
        tilted = run.p_xy * [1.5, 0.5]
        run.to_dataframe(ibsolver.ib_curve(tilted / tilted.sum()))


def test_a_layer_without_gradient_does_not_blank_the_snr_plot(run):
    """An unused or frozen parametrised layer has SNR 0/0 at every record; the other
    layers are still drawn, and the legend names the silent one."""
    import dataclasses

    snr = np.array(run.grad_snr, dtype=float)
    snr[:, :, 0] = np.nan
    silent = dataclasses.replace(run, grad_snr=snr)
    ax = plot_grad_snr(silent)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == f"{run.grad_layers[0]}: no gradient signal"
    drawn = [line for line in ax.get_lines() if line.get_xdata().size]
    assert len(drawn) == len(run.grad_layers) - 1
    matplotlib.pyplot.close("all")


def test_save_figures_into_a_file_names_out_dir(run, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(ValueError, match="out_dir .* exists and is not a folder"):
        save_figures(run, afile)


def test_dpi_violations_are_counted_per_layer_pair(run):
    """Information that falls layer by layer everywhere, then three planted violations."""
    shape = (len(run.epochs), 3, 3)  # records, seeds, layers
    i_xt = np.broadcast_to(3.0 - np.arange(3), shape).copy()
    i_ty = np.broadcast_to(0.5 - 0.1 * np.arange(3), shape).copy()
    i_xt[2, 1, 1] = 3.5    # act2 above act1 (3.0) by 0.5 bit
    i_xt[3, 0, 1] = 3.25   # and by 0.25 bit
    i_ty[1, 2, 2] = 0.45   # fc3 above act2 (0.4) by 0.05 bit
    info = {"binning": {**run.info["binning"], "i_xt": i_xt, "i_ty": i_ty}}
    summ = summary(type(run)(**{**run.__dict__, "info": info}), None, "binning")
    dpi = summ["dpi_violations"]
    assert dpi["count"] == 3 and dpi["of"] == len(run.epochs) * 3 * 2 * 2
    by_pair = {(p["previous"], p["layer"], p["quantity"]): p for p in dpi["pairs"]}
    assert set(by_pair) == {("act1", "act2", "I(X;T)"), ("act2", "fc3", "I(T;Y)")}
    worst = by_pair["act1", "act2", "I(X;T)"]
    assert worst["count"] == 2 and (worst["epoch"], worst["seed"]) == (int(run.epochs[2]), 1)
    np.testing.assert_allclose(worst["worst_excess_bits"], 0.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(by_pair["act2", "fc3", "I(T;Y)"]["worst_excess_bits"], 0.05,
                               rtol=0, atol=1e-12)


def test_recipe_bins_relu_layers_at_fixed_width(caplog):
    """The recipe declares the MLP's ranges: ReLU layers unbounded, the softmax (0, 1)."""
    cfg = TrainConfig(widths=(12, 4, 3, 2), activation="relu", epochs=3, n_records=3,
                      batch_size=64, seeds=(0, 1))
    run = infoplane_experiment(small_task(), cfg, bound="none", device="cpu", n_threads=1,
                               sweep=(10,))
    knobs = run.recording.knobs("binning")
    assert knobs["bounds"] == {"act1": None, "act2": None, "fc3": [0.0, 1.0]}
    summ = run.summary()
    assert summ["layers"]["act1"]["rule"] == "bins of width 0.0667 (no known bounded range)"
    assert summ["layers"]["fc3"]["rule"] == "30 bins over (0, 1)"
    d = run.recording.info["binning"]["i_xt"]
    for k, layer in enumerate(run.recording.layers):
        drop = d[:, :, k].max(axis=0) - d[-1, :, k]
        c = summ["layers"][layer]["compression"]
        np.testing.assert_allclose([c["drop_bits"]["min"], c["drop_bits"]["max"]],
                                   [drop.min(), drop.max()], rtol=0, atol=1e-12)
        assert c["n_compressing"] == int(np.sum(drop > 0.1))
    # the sweep: the run's own binning, then 10 bins, over every seed
    sweep = run.sweeps[0]
    assert sweep["values"] == [{}, 10] and sweep["seeds"] == [0, 1]
    assert sweep["i_xt"].shape == (2, len(run.recording.epochs), 2, 3)
    np.testing.assert_allclose(sweep["i_xt"][0], d, rtol=0, atol=1e-3)
    # the verdict per layer: each seed's drop under each binning, computed here
    drops = sweep["i_xt"].max(axis=1) - sweep["i_xt"][:, -1]              # (V, S, L)
    for k, layer in enumerate(run.recording.layers):
        r = summ["compression_sweep"]["layers"][layer]
        for got, row in zip(r["drop_bits"], drops[:, :, k]):
            np.testing.assert_allclose([got["mean"], got["min"], got["max"]],
                                       [row.mean(), row.min(), row.max()], rtol=0, atol=1e-12)
        same = np.all((drops[:, :, k] > 0.1) == (drops[:1, :, k] > 0.1), axis=0)
        assert r["n_seeds"] == 2 and r["n_seeds_surviving"] == int(same.sum())
    # the range check covers every layer and every seed, and says the same as its log
    warned = {r.args[0] for r in caplog.records if "range (max - min)" in r.getMessage()}
    assert set(summ["range_changes"]) == {"act1", "act2", "fc3"}
    assert warned == set(summ["range_warnings"])
    for layer, r in summ["range_changes"].items():
        a = run.recording.activations[layer].astype(np.float64)          # (E, S, N, w)
        spans = a.max(axis=(2, 3)) - a.min(axis=(2, 3))
        ratios = spans.max(axis=0) / spans.min(axis=0)
        np.testing.assert_allclose(r["ratios"], ratios, rtol=1e-12)
        assert r["n_seeds"] == 2 and r["n_seeds_changed"] == int(np.sum(ratios > 4.0))
        assert r["ratio"] == pytest.approx(ratios.max(), rel=1e-12)


#: a short curve for the tests (the solver's own tests cover its accuracy)
CURVE_KW = dict(n_betas=20, max_points=60)
TINY_PREFIX = (1, 0, 1, 0, 0, 1, 1, 0)  # 16 patterns, 7 with y = 1


def _tiny_run(noise):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(small_task(noise, TINY_PREFIX),
                     TrainConfig(widths=(12, 6, 4, 2), epochs=20, batch_size=4, lr=0.01,
                                 n_records=5, seeds=(0, 1)), device="cpu")
    finally:
        torch.set_num_threads(old)


def test_noisy_overlay_against_the_solver(tmp_path):
    res = _tiny_run(noise=3.0)
    curve = ibsolver.ib_curve(res.p_xy, **CURVE_KW)
    assert not curve.deterministic and curve.i_xy < curve.h_y
    # every binned point is a real encoder of X: above the solver's curve = solver error
    check = check_below_bound(res, curve, "binning")
    assert check.ok and check.kind == "ib_curve", check.violations[:3]
    ax = plot_infoplane(res, curve, "binning")
    assert ax.get_xlabel() == "I(X;T) [bits]"
    paths = save_figures(res, tmp_path, curve)
    assert Path(paths["infoplane"]).stat().st_size > 0


def test_plots_take_an_axis_and_return_it(run, curve):
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    try:
        for fn, args in ((plot_infoplane, (curve, "binning")), (plot_gap, (curve, "binning")),
                         (plot_grad_snr, ()), (plot_gradient_stats, ()), (plot_loss, ()),
                         (plot_accuracy, ())):
            fig, ax = plt.subplots()
            assert fn(run, *args, ax=ax) is ax
            assert ax.has_data()
            plt.close(fig)
            ax2 = fn(run, *args)  # ax=None makes its own
            assert ax2 is not None
            plt.close(ax2.figure)
        fig, ax = plt.subplots()
        assert plot_bound(curve, ax=ax, h_x=run.h_x) is ax
        acts = {k: v[0] for k, v in run.final_activations.items()}
        sens = sensitivity(acts, run.p_xy, values=(5, 30))
        assert plot_sensitivity(sens, ax=ax, curve=curve) is ax
        plt.close("all")
    finally:
        assert dict(matplotlib.rcParams) == before


def test_trajectory_sensitivity_re_bins_every_seed(run):
    """Each (setting, record, seed) entry is that binning's own estimate of those activations."""
    knobs = run.knobs("binning")
    sweep = trajectory_sensitivity(run, values=(5, {"strategy": "width", "bin_width": 0.5}),
                                   **knobs)[0]
    assert sweep["seeds"] == [0, 1, 2] and sweep["labels"] == [
        "auto: 5 bins over a bounded layer's range, else width 0.0667", "width 0.5"]
    for v, est in enumerate((Binning(5, bounds=knobs["bounds"]),
                             Binning(strategy="width", bin_width=0.5))):
        for e in (0, len(run.epochs) - 1):
            for s in range(3):
                acts = {layer: run.activations[layer][e, s] for layer in run.layers}
                r = est.estimate(acts, run.p_xy)[0]
                np.testing.assert_allclose(sweep["i_xt"][v, e, s], r.i_xt, rtol=0, atol=1e-12)
                np.testing.assert_allclose(sweep["i_ty"][v, e, s], r.i_ty, rtol=0, atol=1e-12)
    # a subset of the seeds: the same numbers
    two = trajectory_sensitivity(run, values=(5,), seed_index=[2, 0], **knobs)[0]
    assert two["seeds"] == [2, 0]
    np.testing.assert_array_equal(two["i_xt"][0], sweep["i_xt"][0][:, [2, 0]])
    one = trajectory_sensitivity(run, values=(5,), seed_index=1)[0]
    assert one["i_xt"].shape == (1, len(run.epochs), 1, 3)
    for bad in (3, [], [0, -1], True):
        with pytest.raises(ValueError, match="seed_index"):
            trajectory_sensitivity(run, values=(5,), seed_index=bad)


def test_save_figures_writes_pngs(run, curve, tmp_path):
    from matplotlib.image import imread

    backend = matplotlib.get_backend()
    sweep = trajectory_sensitivity(run, values=(5, 30))[0]
    assert sweep["i_xt"].shape == (2, len(run.epochs), 3, 3)
    paths = save_figures(run, tmp_path, curve, sensitivity=sweep)
    assert set(paths) == {"infoplane", "gap", "grad_snr", "grad_stats", "loss", "sensitivity"}
    for p in paths.values():
        img = imread(p)
        assert img.ndim == 3 and img.shape[0] > 100
    assert matplotlib.get_backend() == backend


# --------------------------------------------------------------------------- CLI
def test_cli_end_to_end(tmp_path, capsys):
    from ibsolver.cli import main

    out = tmp_path / "run"
    # --noise 0: the canonical labels (the default is noisy), the only rule --bound exact takes
    argv = ["infoplane", "--task", "tishby12", "--noise", "0", "--widths", "12,5,3,2",
            "--epochs", "3", "--seeds", "2", "--records", "3", "--batch-size", "1024",
            "--sweep", "5,30", "--bound", "exact",
            "--out", str(out), "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    with np.load(out / "records.npz") as z:
        assert z["info/binning/i_xt"].shape == (3, 2, 3)
        assert z["epochs"].tolist() == [0, 1, 3]
    with open(out / "records.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 2 * 3
    for row in rows:
        assert float(row["i_ty_bits"]) <= min(float(row["i_xt_bits"]), float(row["h_y_bits"])) + 1e-9
        assert float(row["gap_bits"]) >= -1e-6
    summ = json.loads((out / "summary.json").read_text())
    assert summ["bound_check"]["ok"] is True
    assert summ["config"]["epochs"] == 3 and summ["h_y_bits"] == pytest.approx(0.999157, abs=1e-6)
    assert set(summ["layers"]) == {"act1", "act2", "fc3"}
    # the rule applied to each layer, in the saved knobs and in what is printed
    assert summ["knobs"]["range"] == "auto" and summ["knobs"]["bin_width"] == 2 / 30
    assert summ["knobs"]["bounds"] == {"act1": [-1.0, 1.0], "act2": [-1.0, 1.0],
                                       "fc3": [0.0, 1.0]}
    assert summ["layers"]["act1"]["rule"] == "30 bins over (-1, 1)"
    assert "  fc3: 30 bins over (0, 1)" in printed
    # the sweep: the run's own binning first, then 5 bins (30 is the run's own)
    assert summ["compression_sweep"]["binnings"] == [
        "auto: 30 bins over a bounded layer's range, else width 0.0667",
        "auto: 5 bins over a bounded layer's range, else width 0.0667"]
    for layer, r in summ["compression_sweep"]["layers"].items():
        assert r["survives_all_binnings"] == (r["changed_by"] == []), layer
        assert f"  {layer}: {r['verdict']}, " in printed
    # every honesty flag is printed, flagged or not
    for line in ("flags: saturated (I(X;T) >= 11.88 bit = 0.99 log2 N)",
                 "data-processing violations", "range changes over 4x",
                 "points above the IB bound: 0 of 18", "only tests the solver"):
        assert line in printed, line
    assert summ["bound"]["self_test"] is True
    assert summ["dpi_violations"]["of"] == 3 * 2 * 2 * 2
    # plain SGD by default; the gradient phase change beside the compression onset
    assert summ["config"]["optimizer"] == "sgd" and summ["config"]["lr"] == 0.1
    assert ("config: tanh 12-5-3-2, sgd lr 0.1 momentum 0, batch 1024, train fraction 0.85, "
            "uniform init, probe full, 3 records") in printed
    # the sweep and the range check cover both seeds
    assert summ["compression_sweep"]["seeds"] == [0, 1]
    for layer, r in summ["compression_sweep"]["layers"].items():
        assert r["n_seeds"] == 2 and f"  {layer}: {r['statement']}" in printed
    for layer, r in summ["range_changes"].items():
        assert r["n_seeds"] == 2 and len(r["ratios"]) == 2
        assert (f"{layer} in {r['n_seeds_changed']} of 2, worst" in printed) == r["warn"]
    assert summ["gradient_stats"] == {"optimizer": "sgd", "minibatches_per_record": [0, 4, 4]}
    assert "over 4 minibatches per epoch, sgd" in printed
    for layer, e in summ["layers"].items():
        phase = e["gradient_phase"]
        assert len(phase["phase_change_epoch"]) == 2 and phase["grad_layer"] == f"fc{layer[-1]}"
        assert f"  {layer} ({phase['grad_layer']}): {phase['statement']}" in printed
    assert {"grad_mean_norm", "grad_std_norm", "grad_n_batches"} <= set(rows[0])
    from matplotlib.image import imread

    for name in ("infoplane.png", "gap.png", "grad_snr.png", "grad_stats.png", "loss.png",
                 "sensitivity.png"):
        assert imread(out / name).ndim == 3
    # a second run into the same directory must ask for --resume
    assert main(argv) == 2
    assert main(argv + ["--resume"]) == 0


def test_cli_without_a_test_split_prints_nan(tmp_path, capsys):
    """--train-fraction 1 leaves no test accuracy: the summary holds None there (NaN in
    JSON is None), and the printed report says nan instead of failing to format it."""
    from ibsolver.cli import main

    argv = ["infoplane", "--task", "tishby12", "--widths", "12,5,3,2", "--epochs", "2",
            "--seeds", "1", "--records", "2", "--batch-size", "1024", "--train-fraction", "1",
            "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    assert "test accuracy nan" in capsys.readouterr().out


def test_cli_module_does_not_import_torch():
    code = ("import sys, dnn, dnn.cli_infoplane, dnn.infoplane, dnn.estimators, ibsolver.cli; "
            "ibsolver.cli.build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_cli_help_mentions_defaults(capsys):
    from ibsolver.cli import main

    with pytest.raises(SystemExit):
        main(["infoplane", "--help"])
    text = capsys.readouterr().out
    assert "--resume" in text and "2 CPU cores" in text
    assert "(default: sgd)" in text and "0.1 for sgd, 0.003 for adam" in text


def test_cli_default_task_is_noisy(tmp_path, capsys):
    from argparse import Namespace

    from ibsolver.cli import main

    from dnn.cli_infoplane import _make_task

    task = _make_task(Namespace(task="tishby12", noise=None, data=None))
    assert task.name == "tishby12-noise1"
    np.testing.assert_array_equal(task.p_y_given_x, tishby12(1.0).p_y_given_x)
    # the bound check can fail only where H(Y|X) > 0
    p_xy = task.p_x[:, None] * task.p_y_given_x
    assert ibsolver.entropy(p_xy.sum(axis=0)) - ibsolver.mutual_information(p_xy) > 0.1
    assert main(["infoplane", "--bound", "exact", "--out", str(tmp_path)]) == 2
    assert "--noise 0" in capsys.readouterr().err


def test_cli_rejects_noise_for_other_tasks(tmp_path, capsys):
    from ibsolver.cli import main

    code = main(["infoplane", "--task", "var_u", "--noise", "1", "--out", str(tmp_path)])
    assert code == 2
    assert "--noise" in capsys.readouterr().err


def test_cli_rejects_data_for_other_tasks(tmp_path, capsys):
    """(--data was ignored silently unless --task var_u; the run went ahead.)"""
    from ibsolver.cli import main

    out = tmp_path / "x"
    code = main(["infoplane", "--task", "digits", "--data", "nope.npz", "--out", str(out)])
    assert code == 2 and "--data applies to --task var_u only" in capsys.readouterr().err
    assert not out.exists()


def test_dnn_subcommands_come_from_the_entry_point_group():
    """ibsolver's CLI names no dnn module; pyproject.toml registers them."""
    from ibsolver import cli

    assert not any(name.startswith("dnn") for name in cli._PLUGINS)
    assert "dnn" not in (REPO / "ibsolver" / "cli.py").read_text().replace(
        "the ``dnn`` package", "")
    text = (REPO / "pyproject.toml").read_text()
    assert f'[project.entry-points."{cli.PLUGIN_GROUP}"]' in text
    assert 'infoplane = "dnn.cli_infoplane:register"' in text
