"""dnn's results save and load as ibsolver's do (``save(path)`` returns None, ``load(path)``;
one .npz of arrays plus JSON, no pickle), nested results included, to the last bit; files of
the former ``dnn.results_io.save_result`` still load; only dnn and ibsolver classes are
rebuilt."""
import dataclasses
import json
from collections import OrderedDict
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from torch import nn  # noqa: E402

import dnn  # noqa: E402
import ibsolver  # noqa: E402
from dnn.periods import DatasizeSweep  # noqa: E402
from dnn.recording import Recording  # noqa: E402
from dnn.weights import RandomLabels  # noqa: E402

#: a Recording of ``tiny_recording(n=16, batch_size=8)`` written by
#: ``dnn.results_io.save_result`` (file format "dnn.result/1") before that module was removed
RESULTS_IO_RECORDING = Path(__file__).parent / "data" / "dnn_recording_results_io.npz"


def assert_same(a, b, where="result"):
    """Equal types, fields, keys and arrays (dtype, shape, values; NaN equal to NaN),
    recursively."""
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
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def reloaded(result, tmp_path):
    path = tmp_path / "result.npz"
    assert result.save(path) is None  # as every ibsolver result's
    back = type(result).load(path)
    assert_same(result, back)
    return back


def tiny_recording(n=40, batch_size=16, **kw):
    torch.manual_seed(0)  # init=None below: every seed starts from these weights
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(3, 4), act=nn.Tanh(), fc2=nn.Linear(4, 2)))
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 3, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return dnn.record_training(model, (x, y), layers=["act", "fc2"], probe=(x, y.numpy()),
                               test_data=(x, y), epochs=2, optimizer="sgd", lr=0.1,
                               batch_size=batch_size, seeds=(0, 1), init=None,
                               record_epochs=range(3), **kw)


@pytest.fixture(scope="module")
def recording():
    return tiny_recording(keep_activations=True)


def test_the_comparison_itself_can_fail(recording):
    info = {**recording.info, "binning": {**recording.info["binning"],
                                          "i_xt": recording.info["binning"]["i_xt"] + 1e-12}}
    for changed in (dataclasses.replace(recording, info=info),
                    dataclasses.replace(recording, seeds=list(recording.seeds)),
                    dataclasses.replace(recording, epochs=recording.epochs.astype(np.int32)),
                    dataclasses.replace(recording, wall_time_s=float("nan"))):
        with pytest.raises(AssertionError):
            assert_same(recording, changed)


def test_a_recording_round_trips_with_its_table_and_summary(recording, tmp_path):
    back = reloaded(recording, tmp_path)
    assert back.activations is not None and back.final_state  # nested dicts of arrays
    with np.load(tmp_path / "result.npz", allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
        meta = json.loads(str(data["meta"]))
        np.testing.assert_array_equal(data["info/binning/i_xt"], recording.info["binning"]["i_xt"])
    assert (meta["type"], meta["format"]) == ("Recording", ibsolver.results.FORMAT)
    summary = back.summary()
    assert summary == recording.summary()
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary  # strict JSON
    assert summary["estimator"] == "binning" and set(summary["layers"]) == {"act", "fc2"}
    pytest.importorskip("pandas")
    df = back.to_dataframe()
    assert len(df) == 3 * 2 * 2  # (epoch, seed, layer)
    np.testing.assert_array_equal(df["i_xt_bits"], [r["i_xt_bits"] for r in recording.to_rows()])


def test_a_result_holding_recordings_and_an_ib_curve_round_trips(recording, tmp_path):
    curve = ibsolver.ib_curve(recording.p_xy)
    sweep = DatasizeSweep(sizes=np.array([0.5, 1.0]), recordings=(recording, recording),
                          curve=curve)
    back = reloaded(sweep, tmp_path)
    assert str(back.curve) == str(curve) and back.curve.bound(0.3) == curve.bound(0.3)


def test_a_file_of_the_former_results_io_still_loads(tmp_path):
    rec = Recording.load(RESULTS_IO_RECORDING)
    with np.load(RESULTS_IO_RECORDING, allow_pickle=False) as data:
        old = {k: data[k] for k in data.files}
    assert json.loads(str(old["__meta__"]))["format"] == "dnn.result/1"
    for name in ("epochs", "train_loss", "grad_snr", "p_xy"):
        np.testing.assert_array_equal(getattr(rec, name), old[name], err_msg=name)
    np.testing.assert_array_equal(rec.info["binning"]["i_ty"], old["info/binning/i_ty"])
    assert rec.layers == ("act", "fc2") and rec.seeds == (0, 1) and rec.n_probe == 16
    assert rec.settings["optimizer"] == "sgd" and rec.settings["batch_size"] == 8
    reloaded(rec, tmp_path)  # and it saves anew in today's format
    with pytest.raises(ValueError, match=r"holds a result of type Recording, not RandomLabels"):
        RandomLabels.load(RESULTS_IO_RECORDING)


def test_only_dnn_and_ibsolver_classes_are_rebuilt(recording, tmp_path):
    @dataclasses.dataclass
    class Foreign:
        a: int = 1

    dataclasses.replace(recording, settings={"model": Foreign()}).save(tmp_path / "f.npz")
    with pytest.raises(ValueError, match=r"f\.npz' is not a complete Recording file "
                                         r"\(ValueError: refusing to rebuild .*Foreign"):
        Recording.load(tmp_path / "f.npz")
    with pytest.raises(TypeError, match=r"cannot save a set \(at settings/s\)"):
        dataclasses.replace(recording, settings={"s": {1, 2}}).save(tmp_path / "s.npz")
    assert not (tmp_path / "s.npz").exists()  # nothing half-written
