"""Every recipe's result round-trips through save_result / load_result (npz + JSON, no pickle)."""
import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

from dnn.results_io import load_result, save_result  # noqa: E402


def assert_same(a, b, where="result"):
    """Equal types, fields, keys and arrays (NaN equal to NaN), recursively."""
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
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def round_trip(obj, tmp_path):
    back = load_result(save_result(obj, tmp_path / "result.npz"))
    assert_same(obj, back)
    return back


def test_infoplane_experiment(tmp_path):
    from dnn.recipes import infoplane_experiment
    from dnn.tasks.base import Task
    from dnn.tasks.tishby12 import tishby12
    from dnn.train import TrainConfig

    full = tishby12()
    rows = np.arange(0, 4096, 16)  # 256 patterns, uniform p(x)
    task = Task("tishby12-256", full.x[rows], full.labels[rows], 2,
                np.full(rows.size, 1 / rows.size), full.p_y_given_x[rows])
    run = infoplane_experiment(task, TrainConfig(widths=(12, 4, 2), epochs=3, n_records=3,
                                                 batch_size=64, seeds=(0, 1)),
                               sweep=(5, 30), device="cpu", n_threads=1)
    back = round_trip(run, tmp_path)  # the IBCurve with its branches, too
    assert back.curve.bound(0.5) == run.curve.bound(0.5) and back.check.ok
    json.dumps(back.summary())  # the summary stays JSON-ready


def test_usable_experiment(tmp_path):
    from dnn.experiments import usable_experiment

    runs = usable_experiment("checkerboard", n_samples=300, n_probe=100, epochs=1,
                             record_epochs=[0, 1], decoder_options={"epochs": 2})
    round_trip(runs, tmp_path)


def test_fisher_over_training(tmp_path):
    from dnn.experiments import fisher_over_training
    from dnn.tasks.digits import digits

    result = fisher_over_training(digits("fine", n_samples=200, random_state=0), hidden=(8,),
                                  epochs=1, fisher_samples=10)
    rec, final = round_trip(result, tmp_path)
    np.testing.assert_allclose(rec.measures["fisher_trace"][-1, 0], final.trace, rtol=1e-5)


def test_weights_of_digits_mlp(tmp_path):
    from dnn.weights import weights_of_digits_mlp

    round_trip(weights_of_digits_mlp(hidden=(8,), epochs=1, n_train=200, posterior_epochs=2,
                                     n_mc=5), tmp_path)


def test_task2vec_experiment(tmp_path):
    from dnn.task2vec import build_probe, digits_task_family, task2vec_experiment

    family = digits_task_family(n_samples=120, random_state=0)
    family = {k: family[k] for k in ("parity", "high")}
    round_trip(task2vec_experiment(family, probe=build_probe(hidden=(8,), pretrain=None)),
               tmp_path)


def test_only_dnn_and_ibsolver_classes_are_rebuilt(tmp_path):
    path = save_result({"x": np.arange(3), 2: (1.5, None, "a")}, tmp_path / "d.npz")
    assert_same(load_result(path), {"x": np.arange(3), 2: (1.5, None, "a")})
    with pytest.raises(AssertionError):  # the comparison itself can fail
        assert_same(load_result(path), {"x": np.arange(1, 4), 2: (1.5, None, "a")})
    with pytest.raises(AssertionError):
        assert_same(load_result(path), {"x": np.arange(3), 2: [1.5, None, "a"]})

    @dataclasses.dataclass
    class Foreign:
        a: int = 1

    path = save_result(Foreign(), tmp_path / "f.npz")
    with pytest.raises(ValueError, match="refusing"):
        load_result(path)
    with pytest.raises(TypeError, match="cannot save a set"):
        save_result({"s": {1, 2}}, tmp_path / "s.npz")
