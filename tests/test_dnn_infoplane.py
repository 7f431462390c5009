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

from dnn.infoplane import (BoundViolationError, _bound_for, check_below_bound, gaps,  # noqa: E402
                           plot_accuracy, plot_bound, plot_gap, plot_grad_snr, plot_infoplane,
                           plot_loss, plot_sensitivity, save_figures, summary,
                           trajectory_sensitivity)
from dnn.estimators import sensitivity  # noqa: E402
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
def run():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig(widths=(12, 6, 4, 2), epochs=40, batch_size=32, lr=0.01, n_records=6,
                          seeds=(0, 1, 2))
        return train(small_task(), cfg, device="cpu", keep_activations=1)
    finally:
        torch.set_num_threads(old)


def test_binned_points_lie_below_the_deterministic_bound(run):
    h_y = run.h_y
    d = run.info["binning"]
    assert d["i_xt"].shape == (len(run.epochs), 3, 3)
    assert np.all(d["i_xt"] <= run.log2_n + 1e-9)
    assert np.all(d["i_ty"] <= np.minimum(d["i_xt"], h_y) + 1e-9)
    exact = _bound_for(run, method="exact")
    check = check_below_bound(run, "binning", exact)
    assert check.ok and check.n_points == d["i_xt"].size and check.violations == []
    assert check.kind == "deterministic"
    g = gaps(run, "binning", exact)
    np.testing.assert_allclose(g, np.minimum(d["i_xt"], h_y) - d["i_ty"], rtol=0, atol=1e-12)
    assert np.all(g >= -1e-12)


def test_exact_bound_of_a_deterministic_rule(run):
    bound = _bound_for(run, method="exact")
    assert bound.kind == "deterministic"
    r = np.linspace(0, 9, 19)
    np.testing.assert_allclose(bound(r), np.minimum(r, run.h_y), rtol=0, atol=0)
    np.testing.assert_allclose(bound.i_xy, run.h_y, rtol=0, atol=1e-12)
    assert bound.transitions[0]["i_xt"] == pytest.approx(run.h_y)


def test_bound_methods_are_checked():
    with pytest.raises(ValueError, match="deterministic"):
        _bound_for(small_task(noise=3.0), method="exact")
    with pytest.raises(ValueError, match="method"):
        _bound_for(small_task(), method="closed")


def test_a_point_above_the_bound_is_an_error(run):
    bad = run.info["binning"]
    tampered = type(run)(**{**run.__dict__, "info": {"binning": {**bad, "i_ty": bad["i_ty"].copy()}}})
    tampered.info["binning"]["i_ty"][2, 1, 0] = tampered.info["binning"]["i_xt"][2, 1, 0] + 0.5
    exact = _bound_for(run, method="exact")
    with pytest.raises(BoundViolationError, match="above the IB bound") as exc:
        check_below_bound(tampered, "binning", exact)
    v = exc.value.violations
    assert len(v) >= 1 and v[0]["epoch"] == int(run.epochs[2]) and v[0]["seed"] == 1
    assert v[0]["excess_bits"] > 0.4
    flagged = check_below_bound(tampered, "binning", exact, on_violation="flag")
    assert not flagged.ok and flagged.max_excess > 0.4
    assert summary(tampered, "binning", None, flagged)["bound_check"]["n_violations"] >= 1


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
    bound = _bound_for(res, **CURVE_KW)
    assert bound.kind == "ib_curve"
    assert bound.i_xy < bound.h_y
    # every binned point is a real encoder of X: above the solver's curve = solver error
    check = check_below_bound(res, "binning", bound)
    assert check.ok, check.violations[:3]
    ax = plot_infoplane(res, "binning", bound)
    assert ax.get_xlabel() == "I(X;T) [bits]"
    paths = save_figures(res, tmp_path, bound=bound)
    assert Path(paths["infoplane"]).stat().st_size > 0


def test_solver_bound_of_a_deterministic_rule():
    res = _tiny_run(noise=0.0)
    solver = _bound_for(res, method="solver", **CURVE_KW)
    exact = _bound_for(res, method="exact")
    r = np.linspace(0.0, exact.h_x, 41)
    np.testing.assert_allclose(solver(r), exact(r), rtol=0, atol=1e-3)
    check = check_below_bound(res, "binning", solver)
    assert check.ok, check.violations[:3]


def test_plots_take_an_axis_and_return_it(run):
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    try:
        bound = _bound_for(run, method="exact")
        for fn, args in ((plot_infoplane, ("binning", bound)), (plot_gap, ("binning", bound)),
                         (plot_grad_snr, ()), (plot_loss, ()), (plot_accuracy, ())):
            fig, ax = plt.subplots()
            assert fn(run, *args, ax=ax) is ax
            assert ax.has_data()
            plt.close(fig)
            ax2 = fn(run, *args)  # ax=None makes its own
            assert ax2 is not None
            plt.close(ax2.figure)
        fig, ax = plt.subplots()
        assert plot_bound(bound, ax=ax) is ax
        acts = {k: v[0] for k, v in run.final_activations.items()}
        sens = sensitivity(acts, run.probe_p_xy, values=(5, 30))
        assert plot_sensitivity(sens, ax=ax, bound=bound) is ax
        plt.close("all")
    finally:
        assert dict(matplotlib.rcParams) == before


def test_save_figures_writes_pngs(run, tmp_path):
    from matplotlib.image import imread

    backend = matplotlib.get_backend()
    sweep = trajectory_sensitivity(run, values=(5, 30))[0]
    assert sweep["i_xt"].shape == (2, len(run.epochs), 3)
    paths = save_figures(run, tmp_path, sensitivity=sweep, bound=_bound_for(run, method="exact"))
    assert set(paths) == {"infoplane", "gap", "grad_snr", "loss", "sensitivity"}
    for p in paths.values():
        img = imread(p)
        assert img.ndim == 3 and img.shape[0] > 100
    assert matplotlib.get_backend() == backend


# --------------------------------------------------------------------------- CLI
def test_cli_end_to_end(tmp_path):
    from ibsolver.cli import main

    out = tmp_path / "run"
    argv = ["infoplane", "--task", "tishby12", "--widths", "12,5,3,2", "--epochs", "3",
            "--seeds", "2", "--records", "3", "--batch-size", "1024", "--sweep", "5,30",
            "--bound", "exact",
            "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
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
    from matplotlib.image import imread

    for name in ("infoplane.png", "gap.png", "grad_snr.png", "loss.png", "sensitivity.png"):
        assert imread(out / name).ndim == 3
    # a second run into the same directory must ask for --resume
    assert main(argv) == 2
    assert main(argv + ["--resume"]) == 0


def test_cli_module_does_not_import_torch():
    code = ("import sys, dnn.cli_infoplane, dnn.infoplane, dnn.estimators, ibsolver.cli; "
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


def test_cli_rejects_noise_for_other_tasks(tmp_path, capsys):
    from ibsolver.cli import main

    code = main(["infoplane", "--task", "var_u", "--noise", "1", "--out", str(tmp_path)])
    assert code == 2
    assert "--noise" in capsys.readouterr().err
