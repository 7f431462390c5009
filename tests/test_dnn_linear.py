"""Deep linear networks on Gaussian data: the exact layer information, the Gaussian IB bound,
the study's results and the ``ibsolver linear`` command."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy.stats import multivariate_normal  # noqa: E402

from dnn.linear import (BOUND_TOL, DeepLinearRun, DeepLinearStudy, _layer_information,  # noqa: E402
                        channel_information, deep_linear_experiment, deep_linear_network,
                        gaussian_teacher, plot_conditions, plot_irrelevant_information,
                        plot_linear_infoplane, train_deep_linear)

REPO = Path(__file__).resolve().parent.parent
LN2 = np.log(2.0)


def _logdet2(m):
    """log2 det by LU (np.linalg.det): independent of the Cholesky in dnn.linear."""
    return np.log(np.linalg.det(m)) / LN2


def _random_gaussian(rng, d_x=5, d_y=3):
    """Covariances of a jointly Gaussian (X, Y) with a general (not identity) Sigma_x."""
    m = rng.standard_normal((d_x + d_y, d_x + d_y))
    joint = m @ m.T + 0.5 * np.eye(d_x + d_y)
    return joint[:d_x, :d_x], joint[:d_x, d_x:], joint[d_x:, d_x:]


@pytest.fixture(scope="module")
def study():
    teacher = gaussian_teacher(2, 3, 2, random_state=1)
    return deep_linear_experiment(teacher, widths=(4,), epochs=20, n_train=64, batch_size=16,
                                  seeds=(0, 1), n_records=6, lr=0.05, n_threads=1)


# --------------------------------------------------------------------------- formulas
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_information_equals_the_determinant_formulas(seed):
    """I(X;T) = h(T) - h(T|X) and I(T;Y) = h(T) + h(Y) - h(T, Y) = h(Y) - h(Y|T), by LU."""
    rng = np.random.default_rng(seed)
    cov_x, cov_xy, cov_y = _random_gaussian(rng)
    a, s2 = rng.standard_normal((4, 5)), 0.7
    i_xt, i_ty = channel_information(a, cov_x, cov_xy, cov_y, noise_var=s2)
    cov_t = a @ cov_x @ a.T + s2 * np.eye(4)
    cov_ty = a @ cov_xy
    np.testing.assert_allclose(i_xt, 0.5 * (_logdet2(cov_t) - 4 * np.log2(s2)), rtol=1e-10)
    joint = np.block([[cov_t, cov_ty], [cov_ty.T, cov_y]])
    np.testing.assert_allclose(i_ty, 0.5 * (_logdet2(cov_t) + _logdet2(cov_y) - _logdet2(joint)),
                               rtol=1e-10)
    cov_y_given_t = cov_y - cov_ty.T @ np.linalg.inv(cov_t) @ cov_ty
    np.testing.assert_allclose(i_ty, 0.5 * (_logdet2(cov_y) - _logdet2(cov_y_given_t)), rtol=1e-10)
    assert 0 < i_ty < i_xt


def test_irrelevant_information_equals_the_joint_determinant():
    teacher = gaussian_teacher(3, 4, 2, random_state=3)
    covs = teacher.covariances()
    a, s2 = np.random.default_rng(3).standard_normal((5, 7)), 0.5
    i_xt, i_ty, i_irr = _layer_information(a, teacher, s2, covs)
    cov_t = a @ a.T + s2 * np.eye(5)
    cross = a[:, 3:]  # cov(T, X_irr) = A Sigma_x[:, irr], Sigma_x = I
    joint = np.block([[cov_t, cross], [cross.T, np.eye(4)]])
    np.testing.assert_allclose(i_irr, 0.5 * (_logdet2(cov_t) - _logdet2(joint)), rtol=1e-10)
    assert 0 < i_irr < i_xt
    # no irrelevant dimensions: nothing to know about them
    assert _layer_information(a[:, :3], teacher.with_irrelevant(0), s2,
                              teacher.with_irrelevant(0).covariances())[2] == 0.0


def test_information_against_monte_carlo():
    """I(X;T) as the mean log density ratio log p(t|x) / p(t) of samples, and I(T;Y) from
    the sample covariance of (T, Y); neither uses the conditional covariances of dnn.linear."""
    rng = np.random.default_rng(7)
    teacher = gaussian_teacher(2, 2, 2, output_noise=0.3, random_state=7)
    covs = teacher.covariances()
    a, s2, n = rng.standard_normal((3, 4)), 0.8, 200_000
    i_xt, i_ty = channel_information(a, *covs, noise_var=s2)
    x, y = teacher.sample(n, rng)
    z = rng.standard_normal((n, 3)) * np.sqrt(s2)
    t = x @ a.T + z
    ratio = (multivariate_normal(np.zeros(3), s2 * np.eye(3)).logpdf(z)
             - multivariate_normal(np.zeros(3), a @ a.T + s2 * np.eye(3)).logpdf(t)) / LN2
    stderr = ratio.std() / np.sqrt(n)
    np.testing.assert_allclose(ratio.mean(), i_xt, atol=5 * stderr)
    c = np.cov(np.hstack([t, y]).T)
    plug_in = 0.5 * (_logdet2(c[:3, :3]) + _logdet2(c[3:, 3:]) - _logdet2(c))
    np.testing.assert_allclose(plug_in, i_ty, atol=0.02)


def test_the_optimal_gaussian_encoder_lies_on_the_bound():
    """The Gaussian IB's own encoder T = P X + N(0, I) meets its curve: the formulas and the
    bound agree where the bound is tight, so the bound check can fail."""
    teacher = gaussian_teacher(3, 2, 3, random_state=2)
    ib = teacher.ib()
    for beta in (1.2, 2.0, 10.0):
        i_xt, i_ty = channel_information(ib.projection(beta), *teacher.covariances(), noise_var=1.0)
        curve_xt, curve_ty = ib.curve(beta)
        np.testing.assert_allclose([i_xt, i_ty], [curve_xt, curve_ty], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ib.bound(i_xt), i_ty, rtol=1e-9, atol=1e-12)


def test_irrelevant_dimensions_leave_the_bound_unchanged():
    teacher = gaussian_teacher(3, 5, 2, random_state=4)
    with_irr, without = teacher.ib(), teacher.with_irrelevant(0).ib()
    np.testing.assert_allclose(with_irr.mutual_information, without.mutual_information, rtol=1e-12)
    np.testing.assert_allclose(with_irr.eigenvalues[-5:], 1.0, rtol=0, atol=0)
    grid = np.linspace(0, 6, 50)
    np.testing.assert_allclose(with_irr.bound(grid), without.bound(grid), rtol=1e-10, atol=1e-12)


def test_samples_share_the_relevant_part():
    teacher = gaussian_teacher(2, 3, 2)
    x, y = teacher.sample(5, 0)
    x0, y0 = teacher.with_irrelevant(0).sample(5, 0)
    np.testing.assert_array_equal(x[:, :2], x0)
    np.testing.assert_array_equal(y, y0)


# --------------------------------------------------------------------------- training
def test_every_layer_lies_on_or_below_the_bound(study):
    for run in study.runs:
        assert np.max(run.bound_excess()) <= BOUND_TOL, run.name
        assert np.all(run.i_ty <= run.i_xt + 1e-12) and np.all(run.i_xt_irrelevant <= run.i_xt + 1e-12)
    assert study.summary()["bound_ok"] is True


def test_study_shapes_and_training(study):
    assert [r.name for r in study.runs] == ["SGD, 0 irrelevant dims", "GD, 0 irrelevant dims",
                                            "SGD, 3 irrelevant dims", "GD, 3 irrelevant dims"]
    for run in study.runs:
        assert run.layers == ("fc1", "fc2") and run.layer_widths == (4, 2)
        assert run.epochs[0] == 0 and run.epochs[-1] == 20 and run.i_xt.shape == (6, 2, 2)
        assert np.all(run.test_loss[-1] < run.test_loss[0])
    # SGD and GD start from the same weights (same seed): identical first records
    for irr in (False, True):
        np.testing.assert_array_equal(study.run("sgd", irr).i_xt[0], study.run("gd", irr).i_xt[0])
    np.testing.assert_array_equal(study.run("sgd", False).i_xt_irrelevant, 0.0)
    assert study.run("gd", True).settings["batch_size"] == 64


def test_the_output_layer_learns_to_ignore_irrelevant_inputs():
    """Full-batch GD from large initial weights: the output's information about X_irr falls to
    what the sample's noise leaves (a few thousandths of a bit)."""
    run = train_deep_linear(gaussian_teacher(2, 6, 2, random_state=5), widths=(4,), method="gd",
                            epochs=100, lr=0.1, n_train=128, init_scale=1.0, seeds=(0, 1),
                            n_records=4)
    first, last = run.i_xt_irrelevant[0, :, -1], run.i_xt_irrelevant[-1, :, -1]
    assert np.all(last < 0.05) and last.mean() < first.mean()
    assert np.all(run.test_loss[-1] < 1.5 * 2 * 0.1 / 2)  # near the noise floor 1/2 d_y s_y^2


def test_summary_states_verdicts_per_layer_and_condition(study):
    summ = study.summary()
    json.dumps(summ, allow_nan=False)
    assert set(summ["verdicts"]) == {"fc1", "fc2"}
    for layer, per in summ["verdicts"].items():
        assert len(per) == 4
        assert all(v in ("compresses", "no compression") or v.startswith("mixed") for v in per.values())
        assert set(summ["irrelevant_verdicts"][layer]) == {"SGD, 3 irrelevant dims", "GD, 3 irrelevant dims"}
    cond = summ["conditions"]["GD, 3 irrelevant dims"]["layers"]["fc2"]
    run = study.run("gd", True)
    drop = run.i_xt[:, :, 1].max(axis=0) - run.i_xt[-1, :, 1]
    np.testing.assert_allclose(cond["compression"]["drop_bits"]["max"], drop.max(), rtol=1e-12)
    assert summ["gaussian_ib"]["mutual_information"] == pytest.approx(
        run.teacher.ib().mutual_information, rel=1e-12)


def test_save_load_round_trip(study, tmp_path):
    path = tmp_path / "study.npz"
    assert study.save(path) is None
    back = DeepLinearStudy.load(path)
    assert back.summary() == study.summary()
    for a, b in zip(study.runs, back.runs):
        for name in ("epochs", "i_xt", "i_ty", "i_xt_irrelevant", "train_loss", "test_loss"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(a.teacher.weights, b.teacher.weights)
    run_path = tmp_path / "run.npz"
    study.runs[0].save(run_path)
    assert DeepLinearRun.load(run_path).name == study.runs[0].name
    with pytest.raises(ValueError, match="holds a result of type DeepLinearRun, not "
                                         "DeepLinearStudy"):
        DeepLinearStudy.load(run_path)
    with np.load(path, allow_pickle=False) as z:
        assert "meta" in z.files


def test_dataframe_has_a_row_per_point(study):
    pytest.importorskip("pandas")
    df = study.to_dataframe()
    assert len(df) == sum(r.i_xt.size for r in study.runs)
    assert (df["i_ty_bits"] <= df["bound_bits"] + BOUND_TOL).all()


def test_plots_take_axes_and_return_them(study):
    import matplotlib.pyplot as plt

    fig = plt.figure()
    try:
        ax = fig.add_subplot()
        assert plot_linear_infoplane(study.runs[0], ax=ax, colorbar=False) is ax
        assert len(ax.collections) == 2 and len(ax.lines) == 3  # 2 layers, their paths, bound
        axes = plot_conditions(study, axes=fig.subplots(2, 2))
        assert axes.shape == (2, 2) and axes[1, 1].get_title().startswith("GD, 3 irrelevant")
        assert len(plot_irrelevant_information(study, axes=fig.subplots(1, 2))[0].lines) == 4
    finally:
        plt.close(fig)


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match="output_noise"):
        gaussian_teacher(output_noise=0.0)
    with pytest.raises(ValueError, match="method"):
        train_deep_linear(gaussian_teacher(), method="adam")
    with pytest.raises(ValueError, match="irrelevant"):
        deep_linear_experiment(gaussian_teacher(n_irrelevant=0))
    with pytest.raises(ValueError, match="noise_var"):
        channel_information(np.eye(2), np.eye(2), np.ones((2, 1)), np.eye(1) * 3, noise_var=0)
    with pytest.raises(ValueError, match="widths"):
        deep_linear_network([3])


def test_deep_linear_network_is_the_mlp_builder_without_bias_or_activation():
    """One builder: fc1 .. fcL, bias-free, torch's global random state untouched; the
    initialiser draws N(0, scale^2 / fan_in) weights from the seed's generator."""
    from dnn.models import mlp_init

    state = torch.get_rng_state()
    net = deep_linear_network((400, 300, 2))
    assert torch.equal(state, torch.get_rng_state())
    assert [name for name, _ in net.named_children()] == ["fc1", "fc2"]
    assert all(m.bias is None for m in net)
    mlp_init("he", None, scale=0.5)(net, torch.Generator().manual_seed(0))
    w = net.fc1.weight.detach().numpy()
    np.testing.assert_allclose(w.std(), 0.5 / np.sqrt(400), rtol=0.02)
    with pytest.raises(ValueError, match="scale"):
        mlp_init("uniform", scale=2.0)


# --------------------------------------------------------------------------- CLI
def test_cli_end_to_end(tmp_path, capsys):
    import matplotlib

    from ibsolver.cli import main

    backend = matplotlib.get_backend()

    out = tmp_path / "lin"
    argv = ["linear", "--relevant", "2", "--irrelevant", "3", "--outputs", "2", "--hidden", "4",
            "--epochs", "8", "--n-train", "32", "--batch-size", "8", "--records", "4",
            "--seeds", "2", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for name in ("linear.npz", "linear.csv", "summary.json", "linear_infoplane.png",
                 "linear_irrelevant.png"):
        assert (out / name).stat().st_size > 0, name
    summ = json.loads((out / "summary.json").read_text())
    assert summ["bound_ok"] is True and set(summ["verdicts"]) == {"fc1", "fc2"}
    assert len(summ["conditions"]) == 4 and summ["noise_var"] == 1.0
    assert "points above the Gaussian IB bound: 0 of 64" in printed
    for name in summ["conditions"]:
        assert name in printed
    back = DeepLinearStudy.load(out / "linear.npz")
    assert back.runs[0].settings["epochs"] == 8
    assert matplotlib.get_backend() == backend  # figures drawn on an Agg canvas, no pyplot


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--irrelevant", "0"),
                                         ("--noise-var", "-1"), ("--lr", "x"), ("--records", "1")])
def test_cli_bad_flags_exit_2_naming_the_flag(flag, value, tmp_path, capsys):
    from ibsolver.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["linear", flag, value, "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_cli_bad_widths_exit_2(tmp_path, capsys):
    from ibsolver.cli import main

    for flag in ("--hidden", "--widths"):  # --widths: its former name
        assert main(["linear", flag, "4,x", "--out", str(tmp_path)]) == 2
        assert "--hidden" in capsys.readouterr().err
        assert main(["linear", flag, "4,0", "--out", str(tmp_path)]) == 2
        assert "--hidden must list layer sizes >= 1" in capsys.readouterr().err


def test_cli_module_does_not_import_torch():
    code = ("import sys, dnn.cli_linear, ibsolver.cli; ibsolver.cli.build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
