"""Estimator defaults that cannot manufacture compression, and the flags that say so (issue 14).

Every expected value is computed by hand from the constructed activations.
"""
import logging
import math

import numpy as np
import pytest

from dnn.estimators import (DEFAULT_BIN_WIDTH, Binning, layer_bounds, module_range,
                            range_changes, sensitivity)
from dnn.infoplane import compression, compression_robustness


def h2(p):
    """Binary entropy, bits."""
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


# --------------------------------------------------------------------------- the default rule
def test_default_rule_fixed_range_for_tanh_fixed_width_for_relu():
    torch = pytest.importorskip("torch")
    from torch import nn

    class Tanh(nn.Module):  # a user's module of the same name is not torch's tanh
        def forward(self, x):
            return 3 * torch.tanh(x)

    model = nn.Sequential()
    for name, module in (("fc1", nn.Linear(3, 4)), ("tanh", nn.Tanh()), ("relu", nn.ReLU()),
                         ("hard", nn.Hardtanh(-2.0, 3.0)), ("relu6", nn.ReLU6()),
                         ("sig", nn.Sigmoid()), ("gelu", nn.GELU()), ("mine", Tanh()),
                         ("out", nn.Linear(4, 2))):
        model.add_module(name, module)
    layers = ["tanh", "relu", "hard", "relu6", "sig", "gelu", "mine", "out"]
    bounds = layer_bounds(model, layers, transforms={"out": "softmax"})
    assert bounds == {"tanh": (-1.0, 1.0), "relu": None, "hard": (-2.0, 3.0),
                      "relu6": (0.0, 6.0), "sig": (0.0, 1.0), "gelu": None, "mine": None,
                      "out": (0.0, 1.0)}
    assert module_range(nn.Softmax(dim=-1)) == (0.0, 1.0)
    assert layer_bounds(model, ["out"], {"out": lambda t: t}) == {"out": None}

    b = Binning(bounds={"tanh": bounds["tanh"], "relu": bounds["relu"]})
    assert b.knobs == {"strategy": "count", "n_bins": 30, "range": "auto",
                       "bin_width": 2 / 30, "bounds": {"tanh": [-1.0, 1.0], "relu": None}}
    assert b.rules(["tanh", "relu"]) == {
        "tanh": "30 bins over (-1, 1)", "relu": "bins of width 0.0667 (no known bounded range)"}
    # by hand: tanh floor((a + 1) / 2 * 30), 1 in the last bin; relu floor(a / (2/30))
    acts = {"tanh": np.array([-1.0, -0.9, 0.0, 0.99, 1.0]),
            "relu": np.array([0.0, 0.05, 0.07, 1.01, 14.9])}
    codes = b.codes(acts)
    np.testing.assert_array_equal(codes["tanh"][:, 0], [0, 1, 15, 29, 29])
    np.testing.assert_array_equal(codes["relu"][:, 0], [0, 0, 1, 15, 223])
    # a spec round trip (what the Recording and the checkpoint hold) keeps the rule
    from dnn.estimators import make_estimator

    assert make_estimator(b.spec()).knobs == b.knobs


def test_a_sequential_layer_has_the_range_of_its_last_module():
    """Regression (issue 13 audit): a hooked nn.Sequential ending in Tanh was binned by
    fixed width, as unbounded; range-keeping modules after the bounded one (Dropout, Flatten,
    Identity) do not hide it, and anything unbounded at the end does."""
    pytest.importorskip("torch")
    from torch import nn

    from dnn.loop import record_training

    class Net(nn.Module):  # not a Sequential itself: the blocks are found by name
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
            self.gate = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Dropout(0.1),
                                      nn.Flatten())
            self.nested = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Hardtanh(-2.0, 3.0)))
            self.relu = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
            self.then_linear = nn.Sequential(nn.Tanh(), nn.Linear(4, 2))

        def forward(self, x):
            return self.then_linear(self.relu(self.nested(self.gate(self.block(x)))))

    layers = ["block", "gate", "nested", "relu", "then_linear"]
    expected = {"block": (-1.0, 1.0), "gate": (0.0, 1.0), "nested": (-2.0, 3.0), "relu": None,
                "then_linear": None}
    assert layer_bounds(Net(), layers) == expected
    assert module_range(nn.Sequential()) is None
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    rec = record_training(Net(), (x, y), layers=layers, probe=(x, y), epochs=1, batch_size=10,
                          n_records=2)
    assert rec.estimators[0]["bounds"] == {k: None if v is None else list(v)
                                           for k, v in expected.items()}


def test_explicit_settings_are_unchanged():
    a = {"T": np.array([0.0, 0.3, 0.6, 3.0])}
    # the layer's range 0..3 in 3 bins: [0, 1), [1, 2), [2, 3]
    np.testing.assert_array_equal(Binning(3, range="layer").codes(a)["T"][:, 0], [0, 0, 0, 2])
    np.testing.assert_array_equal(Binning(3, range=(0, 1)).codes(a)["T"][:, 0], [0, 0, 1, 2])
    np.testing.assert_array_equal(
        Binning(strategy="width", bin_width=0.5).codes(a)["T"][:, 0], [0, 0, 1, 6])
    assert Binning(3, range="layer").knobs == {"strategy": "count", "n_bins": 3,
                                               "range": "layer"}


# --------------------------------------------------------------------------- manufactured effect
N_ROWS, N_RECORDS = 64, 5


def relu_records():
    """A ReLU-like unit over records: 63 rows sit at the centres of the first six bins of
    width 2/30 (0.033 .. 0.367) at every record; the largest activation grows 0.45 -> 14.9
    (33x), as on the 12-bit task. Its bins at fixed width never change."""
    small = ((np.arange(N_ROWS - 1) % 6) + 0.5) * DEFAULT_BIN_WIDTH
    scales = 0.45 * (14.9 / 0.45) ** np.linspace(0, 1, N_RECORDS)
    return [{"relu": np.append(small, s)[:, None]} for s in scales]


def p_uniform():
    y = np.arange(N_ROWS) % 2
    p = np.zeros((N_ROWS, 2))
    p[np.arange(N_ROWS), y] = 1.0 / N_ROWS
    return p


def i_xt_trajectory(binning):
    return np.array([binning.estimate(acts, p_uniform())[0].i_xt[0] for acts in relu_records()])


def test_default_binning_does_not_manufacture_compression():
    # by hand: 63 rows in six bins (residues 0-2 hold 11 rows, 3-5 hold 10) plus the
    # largest in its own bin, at every record
    sizes = np.array([11, 11, 11, 10, 10, 10, 1]) / N_ROWS
    h_all = float(-(sizes * np.log2(sizes)).sum())
    default = i_xt_trajectory(Binning())
    np.testing.assert_allclose(default, np.full(N_RECORDS, h_all), rtol=0, atol=1e-12)
    clusters = [Binning().clusters(a)["relu"] for a in relu_records()]
    for c in clusters[1:]:
        np.testing.assert_array_equal(c, clusters[0])
    assert compression(default)["verdict"] == "no compression"
    assert compression(default)["drop_bits"]["max"] == 0.0

    # 30 bins over the layer's range: first (0.45 - 1/30) / 30 wide, every row apart; last
    # (14.9 - 1/30) / 30 = 0.50 wide: the 63 rows share bin 0
    per_layer = i_xt_trajectory(Binning(range="layer"))
    np.testing.assert_allclose(per_layer[[0, -1]], [h_all, h2(1 / N_ROWS)], rtol=0, atol=1e-12)
    verdict = compression(per_layer)
    assert verdict["verdict"] == "compresses"
    np.testing.assert_allclose(verdict["drop_bits"]["mean"], h_all - h2(1 / N_ROWS),
                               rtol=0, atol=1e-12)


def test_the_sweep_reveals_the_manufactured_compression():
    sens = [sensitivity(acts, p_uniform())[0] for acts in relu_records()]
    sweep = {"labels": sens[0].labels, "layers": ["relu"],
             "i_xt": np.stack([s.i_xt for s in sens], axis=1)}    # (V, E, L)
    r = compression_robustness(sweep)["relu"]
    assert r["verdict"] == "no compression" and not r["survives_all_binnings"]
    assert r["changed_by"] == ["30 bins over each layer's range: compresses",
                               "30 bins over all layers' range: compresses"]
    assert r["n_seeds_surviving"] == 0
    assert r["statement"].endswith(f"over 1 seed; does not survive all {len(sens[0].labels)} "
                                   "binnings")


def test_real_compression_survives_all_binnings():
    """Eight tanh states at -0.875 .. 0.875 saturate to -1 and 1 (3 bits -> 1 bit)."""
    start = np.linspace(-0.875, 0.875, 8).repeat(8)
    p = np.zeros((64, 2))
    p[np.arange(64), (start > 0).astype(int)] = 1 / 64
    records = [{"tanh": ((1 - t) * start + t * np.sign(start))[:, None]}
               for t in np.linspace(0, 1, 4)]
    sens = [sensitivity(a, p, bounds={"tanh": (-1, 1)})[0] for a in records]
    sweep = {"labels": sens[0].labels, "layers": ["tanh"],
             "i_xt": np.stack([s.i_xt for s in sens], axis=1)}
    # 30 bins over (-1, 1) (the default, first): 3 bits at the start, 1 bit at the end
    np.testing.assert_allclose(sweep["i_xt"][0, [0, -1], 0], [3.0, 1.0], rtol=0, atol=1e-12)
    r = compression_robustness(sweep)["tanh"]
    assert r["verdict"] == "compresses" and r["survives_all_binnings"] and r["changed_by"] == []
    assert r["n_seeds"] == 1 and r["n_seeds_surviving"] == 1
    assert r["statement"] == (f"compresses, drop 2.000 +- 0.000 bit [2.000, 2.000] over 1 "
                              f"seed; survives all {len(sens[0].labels)} binnings")


def test_the_sweep_verdict_covers_every_seed():
    """Three seeds, two settings, one layer; the drops are set by hand (the threshold 0.1).

    Under setting A seeds 0 and 1 compress (drops 0.5, 0.3), seed 2 does not (0.05); under
    B seeds 0 and 2 do (0.4, 0.2) and seed 1 not (0.0): "mixed (2 of 3 seeds)" both times,
    but seeds 1 and 2 change, so the verdict does not survive.
    """
    peak, drops = 3.0, np.array([[0.5, 0.3, 0.05], [0.4, 0.0, 0.2]])       # (V, S)
    i_xt = np.empty((2, 4, 3, 1))                                         # (V, E, S, L)
    i_xt[:, 0] = 1.0
    i_xt[:, 1] = peak
    i_xt[:, 2, :, 0] = peak - drops / 2
    i_xt[:, 3, :, 0] = peak - drops
    sweep = {"labels": ["A", "B"], "layers": ["h"], "seeds": [10, 11, 12], "i_xt": i_xt}
    r = compression_robustness(sweep)["h"]
    assert r["verdict"] == "mixed (2 of 3 seeds)" and r["n_compressing"] == [2, 2]
    assert not r["survives_all_binnings"] and r["n_seeds_surviving"] == 1
    assert r["changed_by"] == ["B: mixed (2 of 3 seeds) (seeds 11, 12 change)"]
    for got, row in zip(r["drop_bits"], drops):
        np.testing.assert_allclose([got["mean"], got["std"], got["min"], got["max"]],
                                   [row.mean(), row.std(), row.min(), row.max()],
                                   rtol=0, atol=1e-12)
    assert r["statement"].startswith("mixed (2 of 3 seeds), drop 0.283 +- 0.184 bit "
                                      "[0.050, 0.500] over 3 seeds; survives all 2 "
                                      "binnings in 1 of 3 seeds")
    # seed 2 compressing under A as under B: every seed keeps its verdict
    i_xt[0, 3, 2, 0] = peak - 0.3
    r = compression_robustness(sweep)["h"]
    assert r["verdict"] == "compresses" and r["n_compressing"] == [3, 2]
    assert r["n_seeds_surviving"] == 2 and r["changed_by"] == [
        "B: mixed (2 of 3 seeds) (seed 11 changes)"]
    i_xt[1, 3, 1, 0] = peak - 0.15
    r = compression_robustness(sweep)["h"]
    assert r["survives_all_binnings"] and r["changed_by"] == [] and r["n_seeds_surviving"] == 3
    assert r["statement"].endswith("survives all 2 binnings in every seed")
    with pytest.raises(ValueError, match="settings, records, seeds, layers"):
        compression_robustness({**sweep, "labels": ["A"]})


# --------------------------------------------------------------------------- the sweep
def test_sweep_covers_bins_range_rules_and_widths():
    acts = relu_records()[-1]
    sens = sensitivity(acts, p_uniform())[0]
    assert sens.knob == "setting" and len(sens.labels) == 9
    assert sens.labels == (
        "auto: 30 bins over a bounded layer's range, else width 0.0667",
        "auto: 10 bins over a bounded layer's range, else width 0.0667",
        "auto: 100 bins over a bounded layer's range, else width 0.0667",
        "auto: 30 bins over a bounded layer's range, else width 0.5",
        "auto: 30 bins over a bounded layer's range, else width 0.02",
        "width 0.5", "width 0.07",
        "30 bins over each layer's range", "30 bins over all layers' range")
    # each entry is that binning's own estimate
    for value, row in zip(sens.values, sens.i_xt):
        np.testing.assert_array_equal(row, Binning(**value).estimate(acts, p_uniform())[0].i_xt)
    # by hand, last record (largest 14.9): width 0.5 puts the 63 small rows in bin 0
    np.testing.assert_allclose(sens.i_xt[5], [h2(1 / N_ROWS)], rtol=0, atol=1e-12)
    # a sweep over a per-layer range drops the settings that repeat it
    over_layer = sensitivity(acts, p_uniform(), range="layer")[0].labels
    assert over_layer == ("30 bins over each layer's range", "10 bins over each layer's range",
                          "100 bins over each layer's range", "width 0.5", "width 0.07",
                          "30 bins over all layers' range", sens.labels[0])


# --------------------------------------------------------------------------- verdicts
def test_compression_verdict_by_hand():
    i_xt = np.array([[1.0, 1.0, 1.0],
                     [3.0, 2.0, 1.05],
                     [2.0, 2.0, 1.5],
                     [2.5, 1.95, 1.25]])          # drops 0.5, 0.05, 0.25
    c = compression(i_xt)
    assert c["verdict"] == "mixed (2 of 3 seeds)" and c["n_compressing"] == 2
    np.testing.assert_allclose([c["drop_bits"]["mean"], c["drop_bits"]["min"],
                                c["drop_bits"]["max"], c["drop_bits"]["std"]],
                               [0.8 / 3, 0.05, 0.5, np.std([0.5, 0.05, 0.25])],
                               rtol=0, atol=1e-12)
    assert compression(i_xt, threshold_bits=0.04)["verdict"] == "compresses"
    assert compression(i_xt, threshold_bits=0.6)["verdict"] == "no compression"
    assert compression(i_xt[:, 0])["n_seeds"] == 1


# --------------------------------------------------------------------------- range warning
def test_range_change_warning(caplog):
    base = np.linspace(0.0, 1.0, 10)[:, None]        # range 1
    acts = {"grows": np.stack([s * base for s in (1.0, 2.0, 5.0)]),          # (E, N, w)
            "stable": np.stack([s * base for s in (1.0, 1.5, 1.2)]),
            "seeds": np.stack([np.stack([s0 * base, s1 * base])              # (E, S, N, w)
                               for s0, s1 in ((1.0, 1.0), (1.2, 4.0), (1.1, 8.0))]),
            "both": np.stack([np.stack([s0 * base, s1 * base])
                              for s0, s1 in ((1.0, 1.0), (5.0, 2.0), (2.0, 9.0))]),
            "dead": np.stack([s * base for s in (0.0, 1.0, 1.0)])}
    with caplog.at_level(logging.WARNING, logger="dnn.estimators"):
        r = range_changes(acts)
    np.testing.assert_allclose([r["grows"]["ratio"], r["stable"]["ratio"], r["seeds"]["ratio"],
                                r["both"]["ratio"]], [5.0, 1.5, 8.0, 9.0], rtol=1e-12)
    assert (r["seeds"]["smallest"], r["seeds"]["largest"]) == pytest.approx((1.0, 8.0))
    # per seed: the factor of each network, how many exceed 4x, and the worst one
    np.testing.assert_allclose(r["seeds"]["ratios"], [1.2, 8.0], rtol=1e-12)
    np.testing.assert_allclose(r["both"]["ratios"], [5.0, 9.0], rtol=1e-12)
    assert [(r[k]["n_seeds_changed"], r[k]["n_seeds"], r[k]["seed"])
            for k in ("grows", "stable", "seeds", "both")] == [(1, 1, 0), (0, 1, 0), (1, 2, 1),
                                                             (2, 2, 1)]
    assert r["dead"]["ratio"] == math.inf
    assert {k: v["warn"] for k, v in r.items()} == {"grows": True, "stable": False,
                                                   "seeds": True, "both": True, "dead": True}
    assert sorted(rec.args[0] for rec in caplog.records) == ["both", "dead", "grows", "seeds"]
    both = next(rec.getMessage() for rec in caplog.records if rec.args[0] == "both")
    assert "in 2 of 2 seeds (worst 9x, 1 to 9, seed 1)" in both
    assert not range_changes({"grows": acts["grows"]}, factor=6.0)["grows"]["warn"]
    named = range_changes({"both": acts["both"]}, seeds=(7, 9))["both"]
    assert named["seed"] == 9 and named["n_seeds_changed"] == 2
    # float32 records (as kept by the recorder) give the same factors
    assert range_changes({"both": acts["both"].astype(np.float32)})["both"]["ratios"] \
        == pytest.approx([5.0, 9.0], rel=1e-6)
    with pytest.raises(ValueError, match="activations"):
        range_changes({"flat": base})
    with pytest.raises(ValueError, match="seeds must name the 2 networks"):
        range_changes({"both": acts["both"]}, seeds=(7,))


# --------------------------------------------------------------------------- DPI flags
def test_dpi_flags_by_hand():
    """Four rows, labels 0 0 1 1; each layer one unit binned at width 2/30."""
    p = np.array([[0.25, 0], [0.25, 0], [0, 0.25], [0, 0.25]])
    acts = {"a": [0.0, 0.0, 1.0, 1.0],      # I(X;T) 1, I(T;Y) 1
            "b": [0.0, 0.5, 1.0, 1.5],      # 2, 1: above a in I(X;T) by 1
            "c": [0.0, 0.0, 0.0, 1.0],      # h(1/4), 1 - 3/4 h(1/3)
            "d": [0.0, 0.0, 1.0, 1.0]}      # 1, 1: above c in both
    est = Binning().estimate({k: np.array(v) for k, v in acts.items()}, p)[0]
    i_ty_c = 1 - 0.75 * h2(1 / 3)
    np.testing.assert_allclose(est.i_xt, [1, 2, h2(0.25), 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(est.i_ty, [1, 1, i_ty_c, 1], rtol=0, atol=1e-12)
    flagged = [(v["previous"], v["layer"], v["quantity"]) for v in est.dpi_violations]
    assert flagged == [("a", "b", "I(X;T)"), ("c", "d", "I(X;T)"), ("c", "d", "I(T;Y)")]
    np.testing.assert_allclose([v["excess_bits"] for v in est.dpi_violations],
                               [1.0, 1 - h2(0.25), 1 - i_ty_c], rtol=0, atol=1e-12)
