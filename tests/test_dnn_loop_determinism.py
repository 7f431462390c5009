"""dnn.record_training: results depend only on the seeds and the data (issue 13 audit).

Regressions: dropout drew from torch's global generator, frozen parameters were trained, a
shuffling DataLoader's order depended on what was recorded, and bad arguments raised torch's
errors instead of naming themselves.
"""
import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from torch import nn  # noqa: E402

import dnn  # noqa: E402


class Interrupt(Exception):
    pass


def task(n=160, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 6, generator=gen)
    return x, (x[:, :3].sum(dim=1) > x[:, 3:].sum(dim=1)).long()


def dropout_net():
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 2))


def run(model, seeds=(0,), epochs=3, **kw):
    x, y = task()
    kw = {"layers": ["1"], "probe": (x[:40], y[:40]), "batch_size": 40, "n_records": 2,
          "optimizer": "sgd", "lr": 0.5, **kw}
    data = kw.pop("data", (x, y))
    return dnn.record_training(model, data, epochs=epochs, seeds=list(seeds), **kw)


def assert_same_state(a, b, atol=0.0, index_a=slice(None), index_b=slice(None)):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name][index_a], b[name][index_b], rtol=0, atol=atol,
                                   err_msg=name)


# --------------------------------------------------------------------------- dropout
def interrupted(model, at, **kw):
    """A run stopped by an interruption after epoch ``at`` (checkpointing every epoch)."""
    def stop(epoch):
        if epoch == at:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(model, callback=stop, checkpoint_interval_s=0.0, **kw)


def test_dropout_draws_from_the_seed_not_the_global_generator():
    """Two identical calls ended with weights up to 0.074 apart; each advanced torch's
    global generator. Now the global state neither matters nor moves."""
    nets = dropout_net(), dropout_net()  # (building them draws from the global generator)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    first = run(nets[0])
    assert torch.equal(before, torch.get_rng_state())
    torch.manual_seed(2)  # another global state gives the same run
    second = run(nets[1])
    assert not first.batched
    assert_same_state(first.final_state, second.final_state)
    np.testing.assert_array_equal(first.train_loss, second.train_loss)


def test_dropout_seed_trains_the_same_in_any_ensemble():
    """seeds=[0, 1, 2] against one seed per call differed by 0.48 bit in I(X;T)."""
    ensemble = run(dropout_net(), seeds=(0, 1, 2))
    for i, seed in enumerate((0, 1, 2)):
        alone = run(dropout_net(), seeds=(seed,))
        assert_same_state(ensemble.final_state, alone.final_state, atol=1e-6,
                          index_a=slice(i, i + 1))
        np.testing.assert_allclose(ensemble.info["binning"]["i_xt"][:, i],
                                   alone.info["binning"]["i_xt"][:, 0], rtol=0, atol=1e-9)
    # the seeds draw different masks: the members differ
    assert not np.allclose(ensemble.final_state["0.weight"][0],
                           ensemble.final_state["0.weight"][1])


def test_dropout_resumed_equals_uninterrupted(tmp_path):
    full = run(dropout_net(), seeds=(0, 1), epochs=5, record_epochs=[0, 5],
               out_dir=tmp_path / "a")

    interrupted(dropout_net(), 3, seeds=(0, 1), epochs=5, record_epochs=[0, 5],
                out_dir=tmp_path / "b")
    resumed = run(dropout_net(), seeds=(0, 1), epochs=5, record_epochs=[0, 5],
                  out_dir=tmp_path / "b", resume=True)
    assert_same_state(full.final_state, resumed.final_state)


def test_batched_true_on_a_random_model_names_batched():
    with pytest.raises(ValueError, match="batched=True.*dropout"):
        run(dropout_net(), seeds=(0, 1), batched=True)


def test_without_random_layers_the_global_generator_is_left_alone():
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    torch.manual_seed(3)  # after building the net (that draws from the global generator)
    before = torch.get_rng_state()
    run(net, seeds=(0, 1))
    assert torch.equal(before, torch.get_rng_state())


# --------------------------------------------------------------------------- frozen
class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer_a, self.act, self.layer_b = nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2)

    def forward(self, x):
        return self.layer_b(self.act(self.layer_a(x)))


@pytest.mark.parametrize("batched", [True, False])
def test_frozen_parameters_stay_as_given(batched):
    """The loop called requires_grad_() on every parameter: layer_a's weights moved."""
    model = TwoLayers()
    model.layer_a.requires_grad_(False)
    given = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    rec = run(model, seeds=(0, 1), layers=["act"], init=None, batched=batched)
    assert rec.batched == batched
    for name in ("layer_a.weight", "layer_a.bias"):
        for s in range(2):
            np.testing.assert_array_equal(rec.final_state[name][s], given[name], err_msg=name)
    assert not np.allclose(rec.final_state["layer_b.weight"][0], given["layer_b.weight"])
    # frozen parameters have no gradient statistics: layer_a is no gradient layer
    assert rec.grad_layers == ("layer_b",) and rec.grad_layer_of == ("",)
    assert np.all(np.isfinite(rec.grad_snr[1:]))
    assert all(p.requires_grad is False for p in model.layer_a.parameters())  # left as given


def test_frozen_batched_and_one_by_one_agree():
    runs = []
    for batched in (True, False):
        model = TwoLayers()
        model.layer_b.weight.requires_grad_(False)
        runs.append(run(model, seeds=(0, 1), layers=["act"], batched=batched))
    assert_same_state(runs[0].final_state, runs[1].final_state, atol=1e-6)
    assert runs[0].grad_layers == ("layer_a", "layer_b")  # layer_b still trains its bias


def test_a_model_with_nothing_to_train_is_refused():
    model = TwoLayers().requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad=False"):
        run(model, layers=["act"])


# --------------------------------------------------------------------------- DataLoader
def shuffling_loader(seed=0, data=None, generator=True):
    from torch.utils.data import DataLoader, TensorDataset
    x, y = task() if data is None else data
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True,
                      generator=torch.Generator().manual_seed(seed) if generator else None)


def net():
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))


def test_what_is_recorded_does_not_change_a_loaders_order():
    """Evaluation iterated the training loader and drew from its shuffle generator:
    record_epochs=[0, 6] against every epoch ended up to 0.0023 apart."""
    x, y = task()
    kw = dict(epochs=6, seeds=(0, 1), test_data=shuffling_loader(seed=5))
    few = run(net(), data=shuffling_loader(), record_epochs=[0, 6], **kw)
    every = run(net(), data=shuffling_loader(), record_epochs=list(range(7)), **kw)
    assert_same_state(few.final_state, every.final_state)
    np.testing.assert_array_equal(few.train_loss[-1], every.train_loss[-1])
    # the loss is over every row of the data, drop_last or not
    from torch.utils.data import DataLoader, TensorDataset
    dropping = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(0))
    model = net()
    rec = run(model, data=dropping, record_epochs=[0], epochs=1)
    by_tensors = run(model, record_epochs=[0], epochs=1)
    np.testing.assert_allclose(rec.train_loss[0], by_tensors.train_loss[0], rtol=1e-6)


def test_resume_with_a_seeded_shuffling_loader_equals_uninterrupted(tmp_path):
    """The loader's generator was not in the checkpoint: up to 3e-4 bit apart."""
    kw = dict(epochs=6, seeds=(0, 1), record_epochs=[0, 2, 6])
    full = run(net(), data=shuffling_loader(), out_dir=tmp_path / "a", **kw)

    interrupted(net(), 4, data=shuffling_loader(), out_dir=tmp_path / "b", **kw)
    resumed = run(net(), data=shuffling_loader(), out_dir=tmp_path / "b", resume=True, **kw)
    assert_same_state(full.final_state, resumed.final_state)
    np.testing.assert_array_equal(full.info["binning"]["i_xt"], resumed.info["binning"]["i_xt"])


def test_resume_with_an_unseeded_shuffling_loader_warns(tmp_path):
    kw = dict(epochs=4, record_epochs=[0, 4])

    interrupted(net(), 2, data=shuffling_loader(generator=False), out_dir=tmp_path, **kw)
    with pytest.warns(RuntimeWarning, match="without a torch.Generator.*differ"):
        run(net(), data=shuffling_loader(generator=False), out_dir=tmp_path, resume=True, **kw)


def test_resume_refuses_other_data_of_the_same_size(tmp_path):
    """The fingerprint was only 'DataLoader of N rows': other data resumed silently."""
    kw = dict(epochs=3, record_epochs=[0, 3])

    interrupted(net(), 1, data=shuffling_loader(), out_dir=tmp_path, **kw)
    with pytest.raises(ValueError, match="data_fingerprint.*other data"):
        run(net(), data=shuffling_loader(data=task(seed=1)), out_dir=tmp_path, resume=True,
            **kw)


def test_a_loader_over_any_dataset_is_fingerprinted_by_its_content(tmp_path):
    from torch.utils.data import DataLoader, Dataset

    class Rows(Dataset):
        def __init__(self, seed):
            self.x, self.y = task(seed=seed)

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.x[i], self.y[i]

    def loader(seed):
        return DataLoader(Rows(seed), batch_size=40)

    run(net(), data=loader(0), out_dir=tmp_path, epochs=1, record_epochs=[0, 1])
    run(net(), data=loader(0), out_dir=tmp_path, epochs=1, record_epochs=[0, 1], resume=True)
    with pytest.raises(ValueError, match="data_fingerprint"):
        run(net(), data=loader(1), out_dir=tmp_path, epochs=1, record_epochs=[0, 1],
            resume=True)


# --------------------------------------------------------------------------- errors
def test_layers_given_as_one_name_or_none():
    """layers="act" was split into ['a', 'c', 't']; layers=[] raised a bare IndexError."""
    model = TwoLayers()
    rec = run(model, layers="act", epochs=1)
    assert rec.layers == ("act",)
    with pytest.raises(ValueError, match="layers must name at least one"):
        run(model, layers=[], epochs=1)
    with pytest.raises(ValueError, match="layers must name at least one"):
        run(model, layers=lambda m: [], epochs=1)
    with pytest.raises(TypeError, match="layers must be"):
        run(model, layers=3, epochs=1)


def test_an_unknown_device_names_device():
    with pytest.raises(ValueError, match="device must be .*'gpu'"):
        run(TwoLayers(), layers=["act"], device="gpu")


def test_a_model_returning_a_tuple_is_refused_by_name():
    class Pair(TwoLayers):
        def forward(self, x):
            return super().forward(x), x

    for batched in ("auto", False):
        with pytest.raises(TypeError, match="model's forward must return one tensor.*tuple"):
            run(Pair(), layers=["act"], batched=batched)


def test_labels_out_of_range_name_the_data_and_the_value():
    from torch.utils.data import DataLoader, TensorDataset
    x, y = task()
    bad = y.clone()
    bad[7] = 5
    with pytest.raises(ValueError, match=r"train_data's targets .* \[0, 2\) .*got 5"):
        run(TwoLayers(), layers=["act"], data=(x, bad))
    with pytest.raises(ValueError, match=r"test_data's targets .*got -1"):
        run(TwoLayers(), layers=["act"], test_data=(x, y - 1))
    with pytest.raises(ValueError, match=r"train_data's targets .*got 5"):
        run(TwoLayers(), layers=["act"], data=DataLoader(TensorDataset(x, bad), batch_size=32))
    with pytest.raises(ValueError, match=r"probabilities \(N, 2\).*\(160, 3\)"):
        run(TwoLayers(), layers=["act"], data=(x, torch.full((160, 3), 1 / 3)))
    with pytest.raises(ValueError, match="probe labels must be integers >= 0 .*-1"):
        run(TwoLayers(), layers=["act"], probe=(x[:4], np.array([0, 1, -1, 0])))
