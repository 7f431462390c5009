"""Fisher information of the weights: closed forms, brute force, the minibatch pitfall, CLI."""
import copy
import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from dnn.fisher import (FisherInfo, fisher_diagonal, fisher_trace,  # noqa: E402
                        minibatch_squared_gradient)


def _logistic(seed, n=64, d=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g, dtype=torch.float64))
        model.bias.fill_(float(torch.randn(1, generator=g)))
    return model, x


def _mlp(seed, widths=(4, 6, 5, 3)):
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g, dtype=torch.float64) / a ** 0.5)
            lin.bias.copy_(torch.randn(b, generator=g, dtype=torch.float64) * 0.1)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.Tanh())
    x = torch.randn(20, widths[0], generator=g, dtype=torch.float64)
    return nn.Sequential(*layers), x


def _assert_logistic_closed_form(info, model, x):
    """Bernoulli logistic regression: tr F = mean_x p(1-p)(|x|^2 + 1); per parameter
    diag_j = mean p(1-p) x_j^2, bias: mean p(1-p)."""
    w = model.weight.detach().numpy().ravel()
    b = float(model.bias.detach())
    xn = x.numpy()
    p = 1.0 / (1.0 + np.exp(-(xn @ w + b)))
    np.testing.assert_allclose(info.trace, np.mean(p * (1 - p) * ((xn ** 2).sum(1) + 1.0)),
                               rtol=1e-6)
    np.testing.assert_allclose(info.diagonal["weight"].ravel(),
                               np.mean((p * (1 - p))[:, None] * xn ** 2, axis=0), rtol=1e-6)
    np.testing.assert_allclose(info.diagonal["bias"], [np.mean(p * (1 - p))], rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logistic_trace_closed_form(seed):
    """Bernoulli logistic regression: tr F = mean_x p(1-p)(|x|^2 + 1) (weights and bias)."""
    model, x = _logistic(seed)
    _assert_logistic_closed_form(fisher_diagonal(model, x), model, x)
    # "auto" picks CUDA when there is one, as everywhere in dnn; the value does not change
    _assert_logistic_closed_form(fisher_diagonal(model, x, device="auto"), model, x)


def test_diagonal_sums_to_trace_and_layers():
    model, x = _mlp(0)
    info = fisher_diagonal(model, x)
    assert isinstance(info, FisherInfo)
    np.testing.assert_allclose(sum(v.sum() for v in info.diagonal.values()), info.trace,
                               rtol=1e-12)
    np.testing.assert_allclose(sum(info.layer_trace.values()), info.trace, rtol=1e-12)
    np.testing.assert_allclose(info.flat().sum(), info.trace, rtol=1e-12)
    assert set(info.layer_trace) == {"0", "2", "4"}
    for k, v in info.diagonal.items():
        assert v.shape == tuple(dict(model.named_parameters())[k].shape)
        assert np.all(v >= 0)


def _brute_force(model, x, y=None):
    params = list(model.parameters())
    diag = [torch.zeros_like(p) for p in params]
    for i in range(x.shape[0]):
        logp = torch.log_softmax(model(x[i:i + 1]), dim=-1)[0]
        classes = range(logp.shape[0]) if y is None else [int(y[i])]
        for c in classes:
            grads = torch.autograd.grad(logp[c], params, retain_graph=True)
            weight = logp[c].exp().detach() if y is None else 1.0
            for d, g in zip(diag, grads):
                d += weight * g ** 2
    return sum(float(d.sum()) for d in diag) / x.shape[0], [d / x.shape[0] for d in diag]


@pytest.mark.parametrize("kind", ["model", "empirical"])
def test_matches_brute_force_loop(kind):
    model, x = _mlp(1)
    y = torch.arange(x.shape[0]) % 3
    tr, diag = _brute_force(model, x, None if kind == "model" else y)
    info = fisher_diagonal(model, x, y, kind=kind, batch_size=7)  # chunks of 7 rows
    np.testing.assert_allclose(info.trace, tr, rtol=1e-10)
    for (k, v), d in zip(info.diagonal.items(), diag):
        np.testing.assert_allclose(v, d.detach().numpy(), rtol=1e-9, atol=1e-15)


def test_param_selection():
    model, x = _mlp(2)
    full = fisher_diagonal(model, x)
    part = fisher_diagonal(model, x, params="2")
    assert set(part.diagonal) == {"2.weight", "2.bias"}
    np.testing.assert_allclose(part.trace, full.layer_trace["2"], rtol=1e-12)
    np.testing.assert_allclose(fisher_trace(model, x, params=["0", "4"]),
                               full.layer_trace["0"] + full.layer_trace["4"], rtol=1e-12)


def test_minibatch_mean_pitfall():
    """Squaring minibatch-mean gradients equals the empirical Fisher only for batches of one;
    for larger batches it is smaller (cross terms and the 1/B^2 of the mean)."""
    model, x = _mlp(3)
    y = torch.arange(x.shape[0]) % 3
    emp = fisher_trace(model, x, y, kind="empirical")
    np.testing.assert_allclose(minibatch_squared_gradient(model, x, y, batch_size=1), emp,
                               rtol=1e-10)
    # by Cauchy-Schwarz |mean g|^2 <= mean |g|^2 for every batch
    assert minibatch_squared_gradient(model, x, y, batch_size=10) <= emp * (1 + 1e-12)


def test_errors_name_the_argument():
    model, x = _mlp(0)
    with pytest.raises(ValueError, match="kind"):
        fisher_diagonal(model, x, kind="observed")
    with pytest.raises(ValueError, match="y must be given"):
        fisher_diagonal(model, x, kind="empirical")
    with pytest.raises(ValueError, match="y must have shape"):
        fisher_diagonal(model, x, torch.zeros(3, dtype=torch.long), kind="empirical")
    with pytest.raises(ValueError, match="params"):
        fisher_diagonal(model, x, params="nonexistent")


def test_plot_returns_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnn.fisher import plot_fisher_trace

    ax = plot_fisher_trace([1, 2, 3], [1.0, 3.0, 2.0], layer_traces={"fc1": [0.5, 1, 1]})
    assert len(ax.lines) == 2
    plt.close(ax.figure)


def test_cli_fisher_end_to_end(tmp_path):
    from ibsolver.cli import main

    out = tmp_path / "fisher"
    rc = main(["fisher", "--epochs", "2", "--fisher-samples", "20", "--hidden", "8",
               "--record-epochs", "0,1,2", "--quiet", "--out", str(out)])
    assert rc == 0
    with open(out / "fisher.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert all(float(r["fisher_trace"]) > 0 for r in rows)
    meta = json.loads((out / "fisher.json").read_text())
    np.testing.assert_allclose(meta["trace"], [float(r["fisher_trace"]) for r in rows])
    diag = np.load(out / "fisher_diag.npz")
    assert "fc1_weight" in diag.files
    np.testing.assert_allclose(sum(diag[k].sum() for k in diag.files), meta["trace"][-1],
                               rtol=1e-5)
    # fisher.npz is the whole result: the numbers of fisher.json and of fisher_diag.npz
    from dnn.experiments import FisherOverTraining

    result = FisherOverTraining.load(out / "fisher.npz")
    assert result.summary() == meta
    for name, v in result.final.diagonal.items():
        np.testing.assert_array_equal(diag[name.replace(".", "_")], v)
    assert result.recording.settings["record_epochs"] == [0, 1, 2]
    import matplotlib.image as mpimg
    assert mpimg.imread(out / "fisher.png").ndim == 3


# --------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("kind", ["model", "empirical"])
def test_cuda_matches_cpu(kind, dtype, rtol):
    """device="cuda" (model left on the CPU) and a model moved to the GPU (device=None: the
    model's device) give the CPU's diagonal: float32 to rtol 1e-5, float64 to 1e-10."""
    model, x = _mlp(4)
    model, x = model.to(dtype), x.to(dtype)
    y = torch.arange(x.shape[0]) % 3
    cpu = fisher_diagonal(model, x, y, kind=kind, batch_size=7)
    on_arg = fisher_diagonal(model, x, y, kind=kind, batch_size=7, device="cuda")
    gpu_model = copy.deepcopy(model).to("cuda")
    on_model = fisher_diagonal(gpu_model, x.to("cuda"), y.to("cuda"), kind=kind)
    for gpu in (on_arg, on_model):
        assert gpu.kind == kind and gpu.n_samples == x.shape[0]
        assert gpu.diagonal.keys() == cpu.diagonal.keys()
        np.testing.assert_allclose(gpu.trace, cpu.trace, rtol=rtol)
        for name in cpu.layer_trace:
            np.testing.assert_allclose(gpu.layer_trace[name], cpu.layer_trace[name], rtol=rtol)
        # elementwise: entries far below the largest carry its absolute round-off
        scale = max(float(v.max()) for v in cpu.diagonal.values())
        for name, v in cpu.diagonal.items():
            assert isinstance(gpu.diagonal[name], np.ndarray)
            assert gpu.diagonal[name].shape == v.shape
            np.testing.assert_allclose(gpu.diagonal[name], v, rtol=10 * rtol, atol=rtol * scale,
                                       err_msg=name)
    # fisher_diagonal leaves the model where it was
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("seed", [0, 1])
def test_cuda_logistic_trace_closed_form(seed):
    """The Bernoulli closed form tr F = mean_x p(1-p)(|x|^2 + 1) holds on the GPU."""
    model, x = _logistic(seed)
    gpu_model = copy.deepcopy(model).to("cuda")
    for info in (fisher_diagonal(model, x, device="cuda"),
                 fisher_diagonal(gpu_model, x.to("cuda"))):
        _assert_logistic_closed_form(info, model, x)
