"""dnn.record_training: a user's own module and DataLoader through the whole pipeline."""
import json
import warnings
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import dnn  # noqa: E402
import ibsolver  # noqa: E402
from dnn.infoplane import (check_below_bound, gaps, plot_infoplane, save_figures,  # noqa: E402
                           summary)
from dnn.models import mlp_init  # noqa: E402
from dnn.tasks.digits import digits  # noqa: E402
from dnn.tasks.tishby12 import tishby12  # noqa: E402
from dnn.train import TrainConfig, train  # noqa: E402

N_TRAIN, N_PROBE = 240, 120


class Net(nn.Module):
    """Not a Sequential: named parts, a functional tanh between them."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(64, 12)
        self.squash = nn.Tanh()
        self.bottleneck = nn.Linear(12, 5)
        self.head = nn.Linear(5, 10)

    def forward(self, x):
        return self.head(torch.tanh(self.bottleneck(self.squash(self.encoder(x)))))


@pytest.fixture(scope="module")
def data():
    task = digits("fine")
    x, y = torch.as_tensor(task.x), torch.as_tensor(task.labels)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:N_TRAIN + N_PROBE],
                                        y[N_TRAIN:N_TRAIN + N_PROBE])


def loader(train_set, seed=0):
    # its own generator: the same minibatches for every run built with the same seed
    return DataLoader(TensorDataset(*train_set), batch_size=32, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def record(data, batched, **kw):
    train_set, (xp, yp) = data
    p_xy = dnn.joint_from_labels(np.arange(N_PROBE), yp.numpy(), n_classes=10)
    return dnn.record_training(
        Net(), loader(train_set), layers=lambda net: ["squash", "bottleneck", "head"],
        transforms={"head": "softmax"}, probe=(xp, p_xy), test_data=(xp, yp), epochs=4,
        optimizer="sgd", lr=0.1, momentum=0.9, seeds=[0, 1], n_records=3, batched=batched,
        name="digits-net", **kw)


@pytest.fixture(scope="module")
def recording(data):
    return record(data, batched=True, keep_activations=1)


def test_whole_pipeline_on_a_user_module(recording, tmp_path):
    rec = recording
    assert rec.batched and rec.layers == ("squash", "bottleneck", "head")
    assert repr(rec).startswith("Recording('digits-net': 2 seeds x 3 records (epochs 0..4)")
    assert rec.layer_widths == (12, 5, 10) and rec.epochs.tolist() == [0, 1, 4]
    assert rec.info["binning"]["i_xt"].shape == (3, 2, 3)
    # the module's parametrised layers, and the one that last feeds each recorded layer
    assert rec.grad_layers == ("encoder", "bottleneck", "head")
    assert rec.grad_layer_of == ("encoder", "bottleneck", "head")
    assert np.isnan(rec.grad_snr[0]).all() and np.all(rec.grad_std_norm[1:] > 0)
    np.testing.assert_allclose(rec.final_activations["head"].sum(axis=-1), 1.0, atol=1e-5)
    # the probe is one-hot with uniform p(x): H(Y) is the label entropy, log2 N the ceiling
    counts = np.bincount(np.argmax(rec.p_xy, axis=1), minlength=10) / N_PROBE
    assert rec.h_y == pytest.approx(ibsolver.entropy(counts), abs=1e-12)
    assert np.all(rec.info["binning"]["i_xt"] <= rec.log2_n + 1e-9)
    assert rec.train_acc[-1].mean() > rec.train_acc[0].mean() + 0.3  # it learned

    curve = ibsolver.ib_curve(rec.p_xy)  # once, for every function below
    check = check_below_bound(rec, curve)
    assert check.ok and check.n_points == 3 * 2 * 3 and check.kind == "deterministic"
    g = gaps(rec, curve)
    np.testing.assert_allclose(g, np.minimum(rec.info["binning"]["i_xt"], rec.h_y)
                               - rec.info["binning"]["i_ty"], rtol=0, atol=1e-6)
    assert plot_infoplane(rec, curve).has_data()
    paths = save_figures(rec, tmp_path, curve)
    assert {"infoplane", "gap", "grad_snr", "loss"} <= set(paths)
    assert summary(rec, curve, check=check)["bound_check"]["ok"] is True

    rec.save(tmp_path / "rec.npz")
    back = dnn.Recording.load(tmp_path / "rec.npz")
    assert back.layers == rec.layers and back.settings == rec.settings
    assert back.estimators == rec.estimators and back.knobs("binning")["n_bins"] == 30
    for name in ("epochs", "train_loss", "test_acc", "grad_mean_norm", "grad_snr", "p_xy"):
        np.testing.assert_array_equal(getattr(back, name), getattr(rec, name), err_msg=name)
    np.testing.assert_array_equal(back.info["binning"]["i_ty"], rec.info["binning"]["i_ty"])
    np.testing.assert_array_equal(back.activations["bottleneck"], rec.activations["bottleneck"])
    rows = back._columns(curve)
    assert len(rows) == 3 * 2 * 3 and rows[0]["grad_snr"] != rows[0]["grad_snr"]  # NaN at 0
    assert all(r["gap_bits"] >= -1e-6 for r in rows)


def test_batched_and_one_by_one_agree(recording, data):
    looped = record(data, batched=False, keep_activations=1)
    assert not looped.batched
    for name in ("train_loss", "test_loss", "train_acc", "grad_mean_norm", "grad_std_norm"):
        np.testing.assert_allclose(getattr(looped, name), getattr(recording, name), rtol=1e-4,
                                   atol=1e-6, err_msg=name)
    for layer in recording.layers:
        np.testing.assert_allclose(looped.final_activations[layer],
                                   recording.final_activations[layer], rtol=1e-4, atol=1e-5)
    # binning is discontinuous in the activations: a few probe rows may change bins
    np.testing.assert_allclose(looped.info["binning"]["i_xt"], recording.info["binning"]["i_xt"],
                               rtol=0, atol=0.1)


def test_a_model_vmap_refuses_runs_one_by_one(data):
    class WithDropout(Net):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.2)

        def forward(self, x):
            return self.head(self.drop(torch.tanh(self.bottleneck(self.encoder(x)))))

    train_set, (xp, yp) = data
    rec = dnn.record_training(WithDropout(), train_set, layers=["bottleneck"],
                              probe=(xp, yp.numpy()), epochs=1, n_records=2, seeds=[0, 1])
    assert not rec.batched and rec.info["binning"]["i_xt"].shape == (2, 2, 1)


def test_the_mlp_recipe_is_the_entry_on_a_plain_sequential():
    """train() on the 12-bit task equals record_training on a hand-built nn.Sequential."""
    task = tishby12()
    cfg = TrainConfig(widths=(12, 5, 3, 2), epochs=3, batch_size=512, n_records=3, lr=0.01,
                      seeds=(0, 1))
    ours = train(task, cfg, device="cpu")
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(12, 5), act1=nn.Tanh(), fc2=nn.Linear(5, 3),
                                      act2=nn.Tanh(), fc3=nn.Linear(3, 2)))
    tr = np.asarray(ours.settings["train_index"])
    te = np.setdiff1d(np.arange(task.n), tr)
    x, y = task.x, task.labels
    theirs = dnn.record_training(
        model, (x[tr], y[tr]), layers=["act1", "act2", "fc3"], transforms={"fc3": "softmax"},
        probe=(x, task.p_xy), test_data=(x[te], y[te]), epochs=3, optimizer=cfg.optimizer,
        lr=0.01, momentum=cfg.momentum, batch_size=512, seeds=(0, 1), n_records=3,
        init=mlp_init("uniform"))
    assert ours.settings["optimizer"] == "sgd"  # TrainConfig's default, plain SGD
    for name in ("train_loss", "test_loss", "train_acc", "test_acc", "grad_snr"):
        np.testing.assert_array_equal(getattr(theirs, name), getattr(ours, name), err_msg=name)
    for q in ("i_xt", "i_ty"):
        np.testing.assert_array_equal(theirs.info["binning"][q], ours.info["binning"][q])


def test_joint_from_labels():
    # ids 5 and 2 twice each (5 once with each label), 9 once; rows in sorted id order
    p = dnn.joint_from_labels([5, 2, 9, 5, 2], [0, 1, 1, 1, 1], n_classes=3)
    np.testing.assert_allclose(p, [[0, 0.4, 0], [0.2, 0.2, 0], [0, 0.2, 0]], rtol=0, atol=1e-15)
    noisy = dnn.joint_from_labels([1, 1, 0], p_y_given_x=[[0.5, 0.5], [0.9, 0.1]])
    np.testing.assert_allclose(noisy, [[1 / 6, 1 / 6], [0.6, 1 / 15]], rtol=1e-12)
    with pytest.raises(ValueError, match="exactly one of y"):
        dnn.joint_from_labels([0, 1])
    with pytest.raises(ValueError, match="n_classes"):
        dnn.joint_from_labels([0, 1], [0, 3], n_classes=2)
    with pytest.raises(ValueError, match="p_y_given_x must be"):
        dnn.joint_from_labels([0, 1], p_y_given_x=[[1.0, 0.0]])


def test_bad_arguments_name_themselves(data):
    train_set, (xp, yp) = data
    base = dict(layers=["squash"], probe=(xp, yp.numpy()), epochs=1)
    for kw, match in (({"layers": ["nope"]}, "layers \\['nope'\\]"), ({"epochs": 0}, "epochs"),
                      ({"seeds": [1, 1]}, "seeds"), ({"optimizer": "lbfgs"}, "optimizer"),
                      ({"batched": "yes"}, "batched"), ({"lr": -1}, "lr"),
                      ({"transforms": {"head": "softmax"}}, "transforms"),
                      ({"probe": (xp, np.ones((3, 2)) / 6)}, "p_xy")):
        with pytest.raises(ValueError, match=match):
            dnn.record_training(Net(), train_set, **{**base, **kw})
    with pytest.raises(TypeError, match="train_data"):
        dnn.record_training(Net(), xp, **base)
    with pytest.raises(TypeError, match="model"):
        dnn.record_training(lambda x: x, train_set, **base)


def test_buffers_train_the_same_batched_and_one_by_one():
    """BatchNorm's running statistics are buffers updated in place inside vmap."""
    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            # no bias before BatchNorm: its gradient is round-off, which Adam would amplify
            self.conv, self.bn = nn.Conv2d(1, 3, 3, bias=False), nn.BatchNorm2d(3)
            self.pool, self.fc = nn.AdaptiveAvgPool2d(2), nn.Linear(12, 2)

        def forward(self, x):
            return self.fc(self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1))

    x = torch.rand(120, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    y = (x.mean(dim=(1, 2, 3)) > 0.5).long()
    runs = [dnn.record_training(ConvNet(), (x[:90], y[:90]), layers=["pool", "fc"],
                                probe=(x[90:], y[90:]), epochs=3, batch_size=16, seeds=[0, 1],
                                n_records=2, batched=batched) for batched in (True, False)]
    assert runs[0].batched and not runs[1].batched
    assert runs[0].layer_widths == (12, 2) and runs[0].grad_layer_of == ("bn", "fc")
    for name, value in runs[0].final_state.items():
        np.testing.assert_allclose(value, runs[1].final_state[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert not np.allclose(runs[0].final_state["bn.running_mean"], 0.0)  # they moved
    np.testing.assert_allclose(runs[0].train_loss, runs[1].train_loss, rtol=1e-5)


@pytest.mark.parametrize("batched", [True, False])
def test_batchnorm1d_trains_and_every_seed_gets_the_same_updates(batched):
    """The probe that finds the layers' order ran one row through seed 0 in training mode:
    BatchNorm1d refused it (a ValueError), and BatchNorm2d counted one batch too many in
    seed 0. One epoch of 90 rows in batches of 30: three updates in every seed."""
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.rand(120, 4, generator=torch.Generator().manual_seed(0))
    y = (x.sum(dim=1) > 2).long()
    rec = dnn.record_training(net, (x[:90], y[:90]), layers=["2", "3"], probe=(x[90:], y[90:]),
                              epochs=1, batch_size=30, seeds=[0, 1], n_records=2,
                              batched=batched)
    assert rec.batched == batched
    np.testing.assert_array_equal(rec.final_state["1.num_batches_tracked"], [3, 3])


def test_auto_binning_gets_the_ranges_of_the_users_layers(data, tmp_path):
    """record_training's default binning: a Tanh module over (-1, 1), a ReLU at fixed width."""
    from dnn.estimators import Binning

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.tanh = nn.Linear(64, 8), nn.Tanh()
            self.fc2, self.relu = nn.Linear(8, 6), nn.ReLU()
            self.head = nn.Linear(6, 10)

        def forward(self, x):
            return self.head(self.relu(self.fc2(self.tanh(self.fc1(x)))))

    train_set, (xp, yp) = data
    kw = dict(layers=["tanh", "relu", "head"], transforms={"head": "softmax"},
              probe=(xp, yp.numpy()), test_data=(xp, yp), epochs=2, n_records=2)
    rec = dnn.record_training(Mixed(), train_set, **kw)
    rec.save(tmp_path / "rec.npz")
    knobs = dnn.Recording.load(tmp_path / "rec.npz").knobs("binning")
    assert knobs["range"] == "auto" and knobs["n_bins"] == 30 and knobs["bin_width"] == 2 / 30
    assert knobs["bounds"] == {"tanh": [-1.0, 1.0], "relu": None, "head": [0.0, 1.0]}
    layers = summary(rec)["layers"]
    assert layers["tanh"]["rule"] == "30 bins over (-1, 1)"
    assert layers["relu"]["rule"] == "bins of width 0.0667 (no known bounded range)"
    # the estimates are those of that rule, applied by hand to the last record
    by_hand = Binning(bounds={"tanh": (-1, 1), "relu": None, "head": (0, 1)})
    acts = {layer: rec.final_activations[layer][0] for layer in rec.layers}
    np.testing.assert_allclose(rec.info["binning"]["i_xt"][-1, 0],
                               by_hand.estimate(acts, rec.p_xy)[0].i_xt, rtol=0, atol=1e-12)
    # the user's bounds win; a layer they do not name gets its module's range
    mine = dnn.record_training(Mixed(), train_set, **kw,
                               estimators=[Binning(10, bounds={"tanh": None, "relu": (0, 5)})])
    assert mine.knobs("binning")["bounds"] == {"tanh": None, "relu": [0.0, 5.0],
                                               "head": [0.0, 1.0]}
    # a binning over a fixed or per-layer range is left as it is
    fixed = dnn.record_training(Mixed(), train_set, **kw, estimators=[Binning(range="layer")])
    assert "bounds" not in fixed.knobs("binning")


def test_to_dataframe(recording):
    pd = pytest.importorskip("pandas")
    curve = ibsolver.ib_curve(recording.p_xy)
    df = recording.to_dataframe(curve)
    assert isinstance(df, pd.DataFrame) and len(df) == 3 * 2 * 3
    mean = df[df.epoch == 4].groupby("layer")["i_xt_bits"].mean()
    np.testing.assert_allclose(mean["bottleneck"],
                               recording.info["binning"]["i_xt"][-1, :, 1].mean(), rtol=1e-12)
    np.testing.assert_allclose(df.gap_bits, df.bound_bits - df.i_ty_bits, rtol=0, atol=1e-12)


def test_to_xarray_holds_the_recordings_arrays(recording):
    pytest.importorskip("xarray")
    ds = recording.to_xarray()
    np.testing.assert_array_equal(ds["i_xt_binning"].values, recording.info["binning"]["i_xt"])
    assert ds["i_xt_binning"].dims == ("epoch", "seed", "layer")
    assert list(ds.layer.values) == list(recording.layers)
    np.testing.assert_array_equal(ds.epoch.values, recording.epochs)
    np.testing.assert_array_equal(ds["test_acc"].values, recording.test_acc)
    assert ds["grad_snr"].dims == ("epoch", "seed", "grad_layer")
    # selection by label gives the same number as indexing the arrays
    layer = recording.layers[1]
    assert float(ds["i_ty_binning"].sel(epoch=recording.epochs[-1], seed=recording.seeds[0],
                                        layer=layer)) \
        == recording.info["binning"]["i_ty"][-1, 0, 1]
    assert json.loads(ds.attrs["estimators"]) == [dict(e) for e in recording.estimators]


def test_one_minibatch_per_epoch_warns_that_gradient_statistics_are_nan():
    """Gradient statistics are a mean and a spread over an epoch's minibatches: with the
    default batch of 256 and fewer training rows they were NaN, silently."""
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    x = torch.rand(120, 4, generator=torch.Generator().manual_seed(0))
    y = (x.sum(dim=1) > 2).long()
    kw = dict(layers=["1", "2"], probe=(x[100:], y[100:]), epochs=2, seeds=[0], n_records=2)
    with pytest.warns(RuntimeWarning, match="one minibatch per epoch.*batch_size"):
        rec = dnn.record_training(net, (x[:100], y[:100]), **kw)
    assert np.all(np.isnan(rec.grad_snr))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rec = dnn.record_training(net, (x[:100], y[:100]), batch_size=50, **kw)
    assert np.all(np.isfinite(rec.grad_snr[1:]))


def test_summary_without_test_data_or_gradient_statistics_warns_nothing():
    """Regression (issue 13 audit): with no test data (test loss and accuracy NaN) and one
    minibatch per epoch (gradient statistics NaN), summary() raised numpy's 'Mean of empty
    slice'; its values are None (NaN) without a warning, with and without a curve."""
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    x = torch.rand(60, 4, generator=torch.Generator().manual_seed(0))
    y = (x.sum(dim=1) > 2).long()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the one-minibatch warning
        rec = dnn.record_training(net, (x, y), layers=["1", "2"], probe=(x, y), epochs=2,
                                  seeds=[0, 1], n_records=2)
    curve = ibsolver.ib_curve(rec.p_xy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for s in (rec.summary(), rec.summary(curve)):
            assert s["final"]["test_loss_bits"] == {"mean": None, "std": None}
            assert s["final"]["test_acc"] == {"mean": None, "std": None}
            assert s["final"]["train_acc"]["mean"] is not None
            assert json.loads(json.dumps(s, allow_nan=False)) == s
        assert rec.summary(curve)["layers"]["1"]["gap_bits"]["mean"] is not None
