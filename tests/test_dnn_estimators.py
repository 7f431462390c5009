"""Estimators of I(X;T), I(T;Y) for layers (numpy; the hook recorder part needs torch)."""
import math

import numpy as np
import pytest

import ibsolver
from dnn.estimators import (KDE, Binning, estimate_ensemble, hard_encoder, hard_information,
                            kde_information, make_estimator, probe_joint, sensitivity)
from dnn.tasks.tishby12 import tishby12

LOG2_N = 12.0


@pytest.fixture(scope="module")
def task():
    return tishby12()


def _random_layers(task, seed, widths=(6, 4, 2)):
    """tanh layers of a random deterministic network on the task's inputs."""
    rng = np.random.default_rng(seed)
    h = task.x.astype(np.float64) * 2 - 1
    acts = {}
    for i, w in enumerate(widths, start=1):
        h = np.tanh(h @ rng.normal(scale=1.0, size=(h.shape[1], w)) + rng.normal(size=w))
        acts[f"act{i}"] = h
    return acts


# --------------------------------------------------------------------------- hard encoders
@pytest.mark.parametrize("seed", range(5))
def test_hard_information_equals_encoder_information(seed):
    rng = np.random.default_rng(seed)
    n, m = 60, 3
    p_xy = rng.dirichlet(np.ones(n * m)).reshape(n, m)
    clusters = rng.integers(0, 7, size=n)
    i_xt, i_ty = hard_information(p_xy, clusters)
    ref = ibsolver.encoder_information(p_xy, hard_encoder(clusters))
    np.testing.assert_allclose(i_xt, ref["i_xt"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(i_ty, ref["i_ty"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(i_xt, ref["h_t"], rtol=0, atol=1e-12)


def test_binned_layers_equal_encoder_information(task):
    acts = _random_layers(task, 0)
    b = Binning(8)
    est = b.estimate(acts, task.p_xy)[0]
    clusters = b.clusters(acts)
    for k, layer in enumerate(acts):
        ref = ibsolver.encoder_information(task.p_xy, hard_encoder(clusters[layer]))
        np.testing.assert_allclose(est.i_xt[k], ref["i_xt"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(est.i_ty[k], ref["i_ty"], rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- binning
@pytest.mark.parametrize("binning", [
    Binning(30), Binning(30, bounds={"act1": (-1, 1), "act3": (-1, 1)}),
    Binning(30, range="layer"), Binning(10, range="global"), Binning(30, range=(-1, 1)),
    Binning(strategy="width", bin_width=0.25), Binning(6, strategy="mass")],
    ids=["count-auto", "count-auto-bounds", "count-layer", "count-global", "count-fixed",
         "width", "mass"])
@pytest.mark.parametrize("seed", range(3))
def test_binned_points_lie_below_the_bound_and_ceilings(task, binning, seed):
    acts = _random_layers(task, seed)
    est = binning.estimate(acts, task.p_xy)[0]
    h_y = ibsolver.entropy(task.p_xy.sum(axis=0))
    assert est.n_probe == 4096
    np.testing.assert_allclose(est.log2_n, LOG2_N, rtol=0, atol=0)
    np.testing.assert_allclose(est.h_y, h_y, rtol=0, atol=1e-12)
    assert est.exact and est.estimator == "binning"
    assert est.knobs == binning.knobs
    assert np.all(est.i_xt <= LOG2_N + 1e-9)
    assert np.all(est.i_ty <= np.minimum(est.i_xt, h_y) + 1e-9)  # the bound min(I(X;T), H(Y))
    assert np.all(est.i_ty >= 0) and np.all(est.i_xt >= 0)
    assert est.ceiling_violations == ()
    np.testing.assert_array_equal(est.saturated, est.i_xt >= 0.99 * LOG2_N)


def test_one_bin_carries_nothing_and_identity_saturates(task):
    # bins over the layer's own range, 0..1 here (the default range "auto" would give this
    # layer of unknown type bins of width 2/30, and 0 and 1 would fall in different ones)
    x = task.x.astype(np.float64)
    est = Binning(1, range="layer").estimate({"T": x}, task.p_xy)[0]
    np.testing.assert_allclose(est.i_xt, [0.0], rtol=0, atol=0)
    np.testing.assert_allclose(est.i_ty, [0.0], rtol=0, atol=1e-15)
    # the raw 12-bit input, two bins per unit: T = X
    est = Binning(2, range="layer").estimate({"X": x}, task.p_xy)[0]
    np.testing.assert_allclose(est.i_xt, [LOG2_N], rtol=0, atol=1e-9)
    np.testing.assert_allclose(est.i_ty, [est.h_y], rtol=0, atol=1e-9)
    assert est.saturated.tolist() == [True]
    assert est.n_clusters.tolist() == [4096]


def test_nested_bins_increase_information(task):
    acts = _random_layers(task, 4)
    # over the layer's own range (under the default "auto" these tanh layers, whose type is
    # not declared, get fixed-width bins and the number of bins would change nothing)
    sens = sensitivity(acts, task.p_xy, estimator="binning", values=(4, 8, 16, 32),
                       range="layer")[0]
    assert sens.knob == "n_bins" and sens.i_xt.shape == (4, 3)
    assert sens.values == (4, 8, 16, 32) and sens.labels[0] == "4 bins over each layer's range"
    # 2k equal bins over the same range refine k bins: I(X;T) and I(T;Y) cannot drop
    assert np.all(np.diff(sens.i_xt, axis=0) >= -1e-12)
    assert np.all(np.diff(sens.i_ty, axis=0) >= -1e-12)
    np.testing.assert_allclose(sens.spread_xt, sens.i_xt.max(0) - sens.i_xt.min(0), rtol=0, atol=0)


def test_equal_mass_bins_have_equal_mass():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1000, 2))
    codes = Binning(4, strategy="mass").codes({"T": a})["T"]
    for u in range(2):
        counts = np.bincount(codes[:, u], minlength=4)
        np.testing.assert_array_equal(counts, [250, 250, 250, 250])


def test_dpi_violations_are_flagged(task):
    acts = _random_layers(task, 1)
    # put a richer layer after a poorer one
    est = Binning(30).estimate({"poor": acts["act3"], "rich": acts["act1"]}, task.p_xy)[0]
    assert est.i_xt[1] > est.i_xt[0]
    flagged = [v for v in est.dpi_violations if v["quantity"] == "I(X;T)"]
    assert len(flagged) == 1 and flagged[0]["layer"] == "rich"
    np.testing.assert_allclose(flagged[0]["excess_bits"], est.i_xt[1] - est.i_xt[0], rtol=1e-12)


def test_probe_subset_joint(task):
    idx = np.arange(0, 4096, 4)
    p = probe_joint(task.p_x, task.p_y_given_x, idx)
    np.testing.assert_allclose(p.sum(), 1.0, rtol=0, atol=1e-12)
    acts = {k: v[idx] for k, v in _random_layers(task, 2).items()}
    est = Binning(30).estimate(acts, p)[0]
    np.testing.assert_allclose(est.log2_n, math.log2(1024), rtol=0, atol=0)
    assert np.all(est.i_xt <= 10 + 1e-9)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_bins": 0}, "n_bins"), ({"strategy": "quantile"}, "strategy"),
    ({"strategy": "width"}, "bin_width"), ({"range": (1, 0)}, "range"),
    ({"range": "all"}, "range"), ({"bin_width": -0.1}, "bin_width"),
    ({"bounds": [(-1, 1)]}, "bounds"), ({"bounds": {"act1": (1, -1)}}, r"bounds\['act1'\]")])
def test_binning_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Binning(**kwargs)


def test_estimate_validates_inputs(task):
    with pytest.raises(ValueError, match="p_xy"):
        Binning(30).estimate({"T": np.zeros((10, 2))}, task.p_xy)
    with pytest.raises(ValueError, match="finite"):
        Binning(30).estimate({"T": np.full((4096, 2), np.nan)}, task.p_xy)
    with pytest.raises(ValueError, match="estimator name"):
        make_estimator("mine")


# --------------------------------------------------------------------------- KDE
def test_kde_two_points_by_hand():
    d, s2 = 1.3, 0.4
    h = np.array([[0.0], [d]])
    p_xy = np.array([[0.5, 0.0], [0.0, 0.5]])
    res = kde_information(h, p_xy, s2)
    up = -math.log2((1 + math.exp(-d * d / (2 * s2))) / 2)
    lo = -math.log2((1 + math.exp(-d * d / (8 * s2))) / 2)
    # each label holds one point: the conditional term is 0, so I(T;Y) = I(X;T)
    np.testing.assert_allclose(res["upper"], (up, up), rtol=1e-6)
    np.testing.assert_allclose(res["lower"], (lo, lo), rtol=1e-6)


def test_kde_three_points_with_labels_by_hand():
    s2 = 0.25
    h = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    p_x = np.array([0.5, 0.25, 0.25])
    p_xy = np.array([[0.5, 0.0], [0.25, 0.0], [0.0, 0.25]])
    d2 = ((h[:, None, :] - h[None, :, :]) ** 2).sum(-1)
    for kind, c in (("upper", 2 * s2), ("lower", 8 * s2)):
        k = np.exp(-d2 / c)
        marg = -(p_x * np.log(k @ p_x)).sum()
        w0 = np.array([2 / 3, 1 / 3, 0.0])           # p(x | y=0)
        cond0 = -(w0[:2] * np.log((k @ w0)[:2])).sum()
        cond = 0.75 * cond0 + 0.25 * 0.0             # y=1 has one point
        expect = (marg / math.log(2), (marg - cond) / math.log(2))
        np.testing.assert_allclose(kde_information(h, p_xy, s2)[kind], expect, rtol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_kde_bounds_are_ordered_and_capped(task, seed):
    rng = np.random.default_rng(seed)
    idx = rng.choice(4096, size=512, replace=False)
    p = probe_joint(task.p_x, task.p_y_given_x, idx)
    acts = {k: v[idx] for k, v in _random_layers(task, seed).items()}
    for s2 in (1e-3, 1e-1, 10.0):
        up, lo = KDE(s2).estimate(acts, p)
        assert up.estimator == "kde_upper" and lo.estimator == "kde_lower"
        assert up.knobs == {"noise_var": s2} and not up.exact
        assert np.all(lo.i_xt <= up.i_xt + 1e-9)
        for r in (up, lo):
            assert np.all(r.i_xt <= math.log2(512) + 1e-9) and np.all(r.i_xt >= -1e-9)
            assert np.all(r.i_ty <= r.h_y + 1e-9)
            assert r.n_probe == 512


def test_kde_limits(task):
    idx = np.arange(0, 4096, 16)
    p = probe_joint(task.p_x, task.p_y_given_x, idx)
    x = task.x[idx].astype(np.float64)        # 256 distinct binary patterns, spacing >= 1
    up, lo = KDE(1e-4).estimate({"X": x}, p)  # tiny noise: T + noise identifies X
    np.testing.assert_allclose([up.i_xt[0], lo.i_xt[0]], [8.0, 8.0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(up.i_ty[0], up.h_y, rtol=0, atol=1e-6)
    up, lo = KDE(1e6).estimate({"X": x}, p)   # huge noise: nothing gets through
    np.testing.assert_allclose([up.i_xt[0], lo.i_xt[0]], [0.0, 0.0], rtol=0, atol=1e-4)


def test_kde_sensitivity_and_validation(task):
    idx = np.arange(0, 4096, 32)
    p = probe_joint(task.p_x, task.p_y_given_x, idx)
    acts = {k: v[idx] for k, v in _random_layers(task, 0).items()}
    up, lo = sensitivity(acts, p, estimator="kde", values=(1e-2, 1e-1, 1.0))
    assert up.knob == "noise_var" and up.i_xt.shape == (3, 3)
    # more noise, less information
    assert np.all(np.diff(up.i_xt, axis=0) <= 1e-9)
    assert np.all(lo.i_xt <= up.i_xt + 1e-9)
    with pytest.raises(ValueError, match="noise_var"):
        KDE(-1.0)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_kde_torch_path_matches_numpy(task, device):
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    idx = np.arange(0, 4096, 13)
    p = probe_joint(task.p_x, task.p_y_given_x, idx)
    acts = {k: v[idx] for k, v in _random_layers(task, 5).items()}
    for a, b in zip(KDE(0.05).estimate(acts, p), KDE(0.05, device=device).estimate(acts, p)):
        np.testing.assert_allclose(a.i_xt, b.i_xt, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.i_ty, b.i_ty, rtol=1e-4, atol=1e-6)
        assert a.knobs == b.knobs


def test_estimate_ensemble_stacks_members(task):
    a = _random_layers(task, 0)
    b = _random_layers(task, 1)
    stacked = {k: np.stack([a[k], b[k]]) for k in a}
    out = estimate_ensemble(Binning(30), stacked, task.p_xy)["binning"]
    assert out["i_xt"].shape == (2, 3)
    np.testing.assert_allclose(out["i_xt"][1], Binning(30).estimate(b, task.p_xy)[0].i_xt,
                               rtol=0, atol=0)


# --------------------------------------------------------------------------- hooks (torch)
def test_layer_recorder_on_any_module():
    torch = pytest.importorskip("torch")
    from torch import nn

    from dnn.record import LayerRecorder

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.ModuleDict({"enc": nn.Linear(3, 4), "mid": nn.ReLU()})
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.body["mid"](self.body["enc"](x)))

    net = Net()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    rec = LayerRecorder(net, ["body.enc", "body.mid", "head"],
                        transforms={"head": lambda t: torch.softmax(t, -1)})
    out = rec.capture(x)
    with torch.no_grad():
        enc = net.body["enc"](x)
        np.testing.assert_allclose(out["body.enc"].numpy(), enc.numpy(), rtol=0, atol=0)
        np.testing.assert_allclose(out["body.mid"].numpy(), enc.clamp_min(0).numpy(), rtol=0, atol=0)
        np.testing.assert_allclose(out["head"].numpy(), torch.softmax(net(x), -1).numpy(),
                                   rtol=1e-6, atol=1e-7)
    # hooks are removed after the capture
    assert all(not m._forward_hooks for m in net.modules())
    with pytest.raises(ValueError, match="nope"):
        LayerRecorder(net, ["nope"])


def test_joint_from_labels_names_a_negative_label():
    from dnn.estimators import joint_from_labels

    with pytest.raises(ValueError, match=r"non-negative integer labels \(got -3 at index 2\)"):
        joint_from_labels([0, 1, 2], [1, 0, -3])
