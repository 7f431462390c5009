"""Gradient statistics per layer (issue 14 item 3): the norms of the mean and of the standard
deviation of the minibatch gradients, their ratio, the phase change beside the onset of
compression, the figure, and the recipe's SGD default."""
import dataclasses
import math
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import matplotlib  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import dnn  # noqa: E402
from dnn.infoplane import gradient_phases, phase_change, plot_gradient_stats, summary  # noqa: E402
from dnn.loop import minibatches  # noqa: E402

N, BATCH, LR, SEEDS = 40, 16, 0.1, (0, 1)


def tiny_model():
    torch.manual_seed(0)  # init=None below: every seed starts from these weights
    return nn.Sequential(OrderedDict(fc1=nn.Linear(3, 4), act=nn.Tanh(), fc2=nn.Linear(4, 2)))


def tiny_data():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(N, 3, generator=g)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).long()


def record(batched, epochs=2):
    x, y = tiny_data()
    return dnn.record_training(tiny_model(), (x, y), layers=["act", "fc2"], probe=(x, y.numpy()),
                               test_data=(x, y), epochs=epochs, optimizer="sgd", lr=LR,
                               batch_size=BATCH, seeds=SEEDS, init=None,
                               record_epochs=range(epochs + 1), batched=batched)


def naive_stats(seed, epochs):
    """Replay one seed's SGD by hand; per epoch, the minibatch gradients of each layer
    (its parameters flattened) stacked, then their mean and population std, norms."""
    x, y = tiny_data()
    model = tiny_model()
    gen = torch.Generator().manual_seed(seed)  # init=None draws nothing: it orders the rows
    out = []
    for _ in range(epochs):
        grads = {"fc1": [], "fc2": []}
        for idx in minibatches(N, BATCH, gen):
            model.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            for name in grads:
                layer = getattr(model, name)
                grads[name].append(torch.cat([layer.weight.grad.flatten(), layer.bias.grad]))
            with torch.no_grad():
                for p in model.parameters():
                    p -= LR * p.grad
        epoch = {}
        for name, gs in grads.items():
            g = torch.stack(gs).double().numpy()
            epoch[name] = (np.linalg.norm(g.mean(axis=0)), np.linalg.norm(g.std(axis=0)),
                           len(gs))
        out.append(epoch)
    return out


@pytest.mark.parametrize("batched", [True, False])
def test_mean_and_std_norms_equal_a_naive_computation(batched):
    rec = record(batched)
    assert rec.batched is batched and rec.grad_layers == ("fc1", "fc2")
    n_batches = math.ceil(N / BATCH)
    np.testing.assert_array_equal(rec.grad_n_batches, [0, n_batches, n_batches])
    assert np.isnan(rec.grad_mean_norm[0]).all() and np.isnan(rec.grad_snr[0]).all()
    for s, seed in enumerate(SEEDS):
        for e, epoch in enumerate(naive_stats(seed, 2), start=1):
            for j, name in enumerate(rec.grad_layers):
                mean, std, count = epoch[name]
                assert count == rec.grad_n_batches[e]
                np.testing.assert_allclose(rec.grad_mean_norm[e, s, j], mean, rtol=1e-6, atol=0)
                np.testing.assert_allclose(rec.grad_std_norm[e, s, j], std, rtol=1e-6, atol=0)
                np.testing.assert_allclose(rec.grad_snr[e, s, j], mean / std, rtol=1e-6, atol=0)


def test_phase_change_is_the_last_crossing_below_one():
    assert phase_change([5, 3, 0.8, 1.2, 0.5, 0.4]) == 4  # 0.8 is followed by 1.2
    assert phase_change([np.nan, 3, 0.9, 0.5]) == 2       # epoch 0 is not measured
    assert phase_change([np.nan, 0.5, 0.4]) == 1
    assert phase_change([5, 0.5, 2]) is None              # it ends above 1
    assert phase_change([5, 0.5, np.inf]) is None         # std 0: all drift
    assert phase_change([np.nan, np.nan]) is None
    assert phase_change([1.0, 0.99]) == 1                 # 1 itself is not below
    assert phase_change([4, 3, 1.5], threshold=2.0) == 2


def test_phase_change_beside_compression_onset():
    rec = record(True, epochs=5)  # records at 0 .. 5
    snr = np.full(rec.grad_snr.shape, 3.0)
    snr[0] = np.nan
    # seed 0: fc1 below 1 from epoch 2, fc2 from 4; seed 1: fc1 from 5, fc2 never
    snr[2:, 0, 0] = 0.5
    snr[4:, 0, 1] = 0.5
    snr[5:, 1, 0] = 0.5
    i_xt = np.zeros(rec.info["binning"]["i_xt"].shape)
    # act (fed by fc1): seed 0 peaks at epoch 3 and falls 1 bit; seed 1 never falls
    i_xt[:, 0, 0] = [1, 2, 3, 4, 3.5, 3]
    i_xt[:, 1, 0] = [1, 2, 3, 4, 5, 6]
    # fc2: both seeds peak at epoch 1 and fall 2 bits
    i_xt[:, :, 1] = np.array([1, 4, 3, 2, 2, 2])[:, None]
    info = {"binning": {**rec.info["binning"], "i_xt": i_xt}}
    made = dataclasses.replace(rec, grad_snr=snr, info=info)
    got = gradient_phases(made)
    assert got["act"]["grad_layer"] == "fc1" and got["fc2"]["grad_layer"] == "fc2"
    assert got["act"]["phase_change_epoch"] == [2, 5]
    assert got["act"]["compression_onset_epoch"] == [3, None]
    assert got["act"]["coincide"] == [True, False]                 # 3 <= 2 * 2
    assert got["fc2"]["phase_change_epoch"] == [4, None]
    assert got["fc2"]["compression_onset_epoch"] == [1, 1]
    assert got["fc2"]["coincide"] == [False, False]                # 4 > 2 * 1
    assert got["act"]["statement"] == ("phase change at epochs [2, 5], compression onset at "
                                       "[3, -]: within 2x in 1 of 2 seeds")
    assert gradient_phases(made, factor=4.0)["fc2"]["coincide"] == [True, False]
    summ = summary(made)
    assert summ["layers"]["fc2"]["gradient_phase"] == got["fc2"]
    assert summ["gradient_stats"] == {"optimizer": "sgd",
                                      "minibatches_per_record": [0, 3, 3, 3, 3, 3]}


def test_save_load_and_tables_keep_the_norms(tmp_path):
    rec = record(True)
    rec.save(tmp_path / "rec.npz")
    back = dnn.Recording.load(tmp_path / "rec.npz")
    for name in ("grad_mean_norm", "grad_std_norm", "grad_snr", "grad_n_batches"):
        np.testing.assert_array_equal(getattr(back, name), getattr(rec, name), err_msg=name)
    assert back.grad_n_batches.dtype == np.int64
    rows = back._columns()
    last = [r for r in rows if r["epoch"] == 2 and r["seed"] == 1 and r["layer"] == "fc2"][0]
    assert last["grad_layer"] == "fc2" and last["grad_n_batches"] == 3
    np.testing.assert_allclose([last["grad_mean_norm"], last["grad_std_norm"], last["grad_snr"]],
                               [rec.grad_mean_norm[2, 1, 1], rec.grad_std_norm[2, 1, 1],
                                rec.grad_snr[2, 1, 1]], rtol=1e-15, atol=0)
    train_rows = back.training_rows()
    assert train_rows[-1]["grad_std_norm_fc1"] == rec.grad_std_norm[2, 1, 0]
    pd = pytest.importorskip("pandas")
    df = back.to_dataframe()
    assert isinstance(df, pd.DataFrame)
    np.testing.assert_allclose(df.grad_mean_norm / df.grad_std_norm, df.grad_snr, rtol=1e-12)


def test_plot_gradient_stats_draws_mean_and_std_per_layer():
    import matplotlib.pyplot as plt

    rec = record(True)
    before = dict(matplotlib.rcParams)
    fig, ax = plt.subplots()
    try:
        assert plot_gradient_stats(rec, ax=ax) is ax
        assert len(ax.lines) == 2 * len(rec.grad_layers)
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        for j in range(len(rec.grad_layers)):
            mean, std = ax.lines[2 * j], ax.lines[2 * j + 1]
            np.testing.assert_array_equal(mean.get_xdata(), [1, 2])  # epoch 0 has no statistics
            np.testing.assert_allclose(mean.get_ydata(), rec.grad_mean_norm[1:, :, j].mean(axis=1),
                                       rtol=1e-12)
            np.testing.assert_allclose(std.get_ydata(), rec.grad_std_norm[1:, :, j].mean(axis=1),
                                       rtol=1e-12)
            assert std.get_linestyle() == "--" and std.get_color() == mean.get_color()
        assert "3 minibatches per epoch" in ax.get_title()
    finally:
        plt.close(fig)
    assert dict(matplotlib.rcParams) == before


def test_the_infoplane_recipe_trains_with_sgd():
    from dnn.cli_infoplane import DEFAULT_LR
    from dnn.recipes import DEFAULT_CONFIG

    assert DEFAULT_CONFIG.optimizer == "sgd" and DEFAULT_CONFIG.momentum == 0.0
    assert DEFAULT_LR["sgd"] == DEFAULT_CONFIG.lr
