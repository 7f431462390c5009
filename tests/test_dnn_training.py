"""Training: batched ensembles equal single runs, resume equals an uninterrupted run."""
import json

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

import ibsolver  # noqa: E402

from dnn.estimators import KDE, Binning  # noqa: E402
from dnn.record import GradientStats, log_epochs  # noqa: E402
from dnn.recording import Recording  # noqa: E402
from dnn.tasks.tishby12 import tishby12  # noqa: E402
from dnn.train import CHECKPOINT, TrainConfig, stratified_split, train  # noqa: E402

TINY = dict(widths=(12, 6, 4, 2), epochs=6, batch_size=512, n_records=4, lr=0.01)
ARRAYS = ("train_loss", "test_loss", "train_acc", "test_acc", "grad_mean_norm",
          "grad_std_norm", "grad_snr")


@pytest.fixture(scope="module")
def task():
    return tishby12()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def assert_same_record(a: Recording, b: Recording, atol=1e-6, info_atol=None):
    """Same record to float tolerance. Binned information is discontinuous in the
    activations (a pattern on a bin edge moves with round-off), so batched and looped runs
    compare it with ``info_atol`` bits (a few patterns changing bins); identical code paths
    (resume) pass info_atol=None and must agree to ``atol``."""
    info_atol = atol if info_atol is None else info_atol
    np.testing.assert_array_equal(a.epochs, b.epochs)
    for name in ARRAYS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=atol,
                                   err_msg=name)
    assert a.info.keys() == b.info.keys()
    for key in a.info:
        for q in ("i_xt", "i_ty"):
            np.testing.assert_allclose(a.info[key][q], b.info[key][q], rtol=0, atol=info_atol,
                                       err_msg=f"{key}/{q}")
    for layer in a.final_activations:
        np.testing.assert_allclose(a.final_activations[layer], b.final_activations[layer],
                                   rtol=1e-5, atol=1e-5, err_msg=layer)


# --------------------------------------------------------------------------- ensemble
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_ensemble_equals_separate_runs(task, optimizer):
    cfg = TrainConfig(seeds=(0, 1, 2), optimizer=optimizer, momentum=0.9 if optimizer == "sgd" else 0.0,
                      **TINY)
    batched = train(task, cfg, device="cpu", batched=True)
    looped = train(task, cfg, device="cpu", batched=False)
    assert batched.batched and not looped.batched
    assert batched.train_loss.shape == (len(batched.epochs), 3)
    assert batched.grad_snr.shape == (len(batched.epochs), 3, 3)
    assert batched.grad_layers == ("fc1", "fc2", "fc3")
    assert batched.grad_layer_of == ("fc1", "fc2", "fc3")  # act1 <- fc1, ..., fc3 itself
    np.testing.assert_allclose(batched.grad_snr[1:],
                               batched.grad_mean_norm[1:] / batched.grad_std_norm[1:], rtol=1e-12)
    assert_same_record(batched, looped, info_atol=5e-3)
    # training moved the weights: records differ between epochs and between seeds
    assert not np.allclose(batched.train_loss[0], batched.train_loss[-1])
    assert not np.allclose(batched.train_loss[-1, 0], batched.train_loss[-1, 1])


def test_a_seed_trains_the_same_in_any_ensemble(task):
    both = train(task, TrainConfig(seeds=(4, 9), **TINY), device="cpu")
    alone = train(task, TrainConfig(seeds=(9,), **TINY), device="cpu")
    for name in ARRAYS:
        np.testing.assert_allclose(getattr(both, name)[:, 1], getattr(alone, name)[:, 0],
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(both.info["binning"]["i_xt"][:, 1],
                               alone.info["binning"]["i_xt"][:, 0], rtol=0, atol=5e-3)
    for layer in both.final_activations:
        np.testing.assert_allclose(both.final_activations[layer][1],
                                   alone.final_activations[layer][0], rtol=1e-5, atol=1e-6)


def test_training_leaves_global_rng_alone(task):
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    train(task, TrainConfig(seeds=(0,), **{**TINY, "epochs": 1, "n_records": 2}), device="cpu")
    assert torch.equal(torch_state, torch.get_rng_state())
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1])


@pytest.mark.parametrize("targets", ["labels", "soft"])
def test_recorded_loss_is_the_cross_entropy_in_bits(targets):
    task = tishby12(2.0)
    cfg = TrainConfig(seeds=(0,), targets=targets, **{**TINY, "epochs": 1, "n_records": 2})
    res = train(task, cfg, device="cpu", keep_activations=True)
    q = res.activations["fc3"][0, 0].astype(np.float64)  # softmax output at epoch 0
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    tr = np.asarray(res.settings["train_index"])
    if targets == "labels":
        target = np.eye(2)[task.labels[tr]]
        labels = task.labels[tr]
    else:  # soft targets: accuracy against the most likely class
        target = task.p_y_given_x[tr]
        labels = target.argmax(axis=1)
    ce = -(target * np.log2(q[tr])).sum(axis=1).mean()
    np.testing.assert_allclose(res.train_loss[0, 0], ce, rtol=1e-5)
    acc = (q[tr].argmax(axis=1) == labels).mean()
    np.testing.assert_allclose(res.train_acc[0, 0], acc, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- resume
class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(task, tmp_path):
    cfg = TrainConfig(seeds=(0, 1), probe="test", **{**TINY, "epochs": 9, "n_records": 5})
    assert 7 not in cfg.record_epochs  # interrupt between records: epochs get replayed
    ests = [Binning(30), KDE(0.1)]
    full = train(task, cfg, out_dir=tmp_path / "a", estimators=ests, device="cpu",
                 keep_activations=1)

    def stop_at_7(epoch):
        if epoch == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(task, cfg, out_dir=tmp_path / "b", estimators=ests, device="cpu",
              keep_activations=1, callback=stop_at_7)
    saved = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)
    assert saved["run"]["epoch"] < 7 and saved["run"]["records"]["epochs"][-1] <= 7
    with pytest.raises(ValueError, match="resume=True"):
        train(task, cfg, out_dir=tmp_path / "b", estimators=ests, device="cpu", keep_activations=1)
    with pytest.raises(ValueError, match="lr"):
        train(task, cfg, out_dir=tmp_path / "b", estimators=ests, device="cpu", keep_activations=1,
              resume=True, lr=0.5)
    resumed = train(task, cfg, out_dir=tmp_path / "b", estimators=ests, device="cpu",
                    keep_activations=1, resume=True)
    assert_same_record(full, resumed, atol=1e-7)
    for layer in full.activations:
        np.testing.assert_allclose(full.activations[layer], resumed.activations[layer],
                                   rtol=0, atol=1e-6)
    # resuming a finished run returns its record without training
    again = train(task, cfg, out_dir=tmp_path / "b", estimators=ests, device="cpu",
                  keep_activations=1, resume=True)
    assert_same_record(full, again, atol=0)


def test_resume_refuses_another_task(task, tmp_path):
    cfg = TrainConfig(seeds=(0,), **{**TINY, "epochs": 2, "n_records": 2})
    train(task, cfg, out_dir=tmp_path, device="cpu")
    with pytest.raises(ValueError, match="task_fingerprint"):
        train(tishby12(1.0), cfg, out_dir=tmp_path, device="cpu", resume=True)


# --------------------------------------------------------------------------- result files
def test_result_round_trip(task, tmp_path):
    cfg = TrainConfig(seeds=(0, 1), **{**TINY, "epochs": 3, "n_records": 3})
    res = train(task, cfg, device="cpu", estimators=["binning"], keep_activations=True)
    path = tmp_path / "r.npz"
    assert res.save(path) is None
    back = Recording.load(path)
    assert back.settings == res.settings and back.layers == res.layers
    assert back.estimators == res.estimators and back.knobs("binning")["n_bins"] == 30
    assert TrainConfig.from_dict(back.settings["config"]) == cfg
    assert_same_record(res, back, atol=0)
    assert back.activations["act1"].shape == (3, 2, 4096, 6)

    curve = ibsolver.ib_curve(res.p_xy)  # (a deterministic rule: min(I(X;T), H(Y)))
    rows = res._columns(curve)
    assert len(rows) == 3 * 2 * 3
    assert {"epoch", "seed", "layer", "estimator", "knobs", "i_xt_bits", "i_ty_bits",
            "gap_bits", "grad_snr"} <= set(rows[0])
    assert json.loads(rows[0]["knobs"])["n_bins"] == 30


# --------------------------------------------------------------------------- pieces
def test_log_epochs():
    e = log_epochs(3000, 40)
    assert e[0] == 0 and e[-1] == 3000 and len(e) <= 40 and len(e) >= 30
    assert np.all(np.diff(e) > 0)
    np.testing.assert_array_equal(log_epochs(5, 40), np.arange(6))
    # regression: two records were only epoch 0, without the last
    np.testing.assert_array_equal(log_epochs(3, 2), [0, 3])
    np.testing.assert_array_equal(log_epochs(100, 3), [0, 1, 100])
    with pytest.raises(ValueError, match="n_records"):
        log_epochs(10, 1)


def test_stratified_split(task):
    tr, te = stratified_split(task.labels, 0.8, seed=3)
    assert np.intersect1d(tr, te).size == 0 and tr.size + te.size == 4096
    for c in (0, 1):
        n_c = (task.labels == c).sum()
        assert (task.labels[tr] == c).sum() == round(0.8 * n_c)
    tr2, _ = stratified_split(task.labels, 0.8, seed=4)
    assert not np.array_equal(tr, tr2)
    np.testing.assert_array_equal(tr, stratified_split(task.labels, 0.8, seed=3)[0])


def test_gradient_statistics_by_hand():
    acc = GradientStats(n_layers=1)  # 2 members, 3 weights each
    for g in (torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0]]),
              torch.tensor([[3.0, 2.0, 0.0], [-1.0, 0.0, 0.0]])):
        acc.add([g])
    mean_norm, std_norm, snr = acc.result(2)
    # member 0: mean (2, 2, 0), std (1, 0, 0) -> sqrt(8) / 1; member 1: mean 0, std (1, 0, 0)
    np.testing.assert_allclose(mean_norm[:, 0], [np.sqrt(8.0), 0.0], rtol=1e-12)
    np.testing.assert_allclose(std_norm[:, 0], [1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(snr[:, 0], [np.sqrt(8.0), 0.0], rtol=1e-12)
    acc.reset()
    assert all(np.isnan(a).all() for a in acc.result(2))


@pytest.mark.parametrize("optimizer, options", [
    ("sgd", {"momentum": 0.9, "weight_decay": 1e-3}), ("adam", {"weight_decay": 1e-3})])
def test_fit_takes_the_steps_of_a_hand_written_loop(optimizer, options):
    """dnn.loop.fit against the naive loop: a permutation per epoch from the seeded
    generator, batches cut in order (33 rows by 8: the last, of one row, skipped by
    min_rows=2), and the loss's own draws from the same generator after the permutation."""
    import torch.nn.functional as F

    from dnn.loop import fit

    g = torch.Generator().manual_seed(0)
    n, epochs = 33, 3
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    w0 = torch.randn(5, 3, generator=g)

    def loss(w, b, idx, gen):
        noise = 0.1 * torch.randn(3, generator=gen)
        return F.cross_entropy(x[idx] @ w + b + noise, y[idx])

    gen = torch.Generator().manual_seed(1)
    w, b = w0.clone().requires_grad_(), torch.zeros(3, requires_grad=True)
    opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]([w, b], lr=0.1, **options)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, 8):
            idx = perm[start:start + 8]
            if len(idx) < 2:
                continue
            step_loss = loss(w, b, idx, gen)
            opt.zero_grad()
            step_loss.backward()
            opt.step()

    fit_gen = torch.Generator().manual_seed(1)
    fw, fb = w0.clone().requires_grad_(), torch.zeros(3, requires_grad=True)
    seen = []
    fit([fw, fb], lambda idx: loss(fw, fb, idx, fit_gen), n, epochs=epochs, batch_size=8,
        generator=fit_gen, optimizer=optimizer, lr=0.1, min_rows=2, on_epoch=seen.append,
        **options)
    assert seen == [1, 2, 3]
    assert not torch.allclose(fw, w0, atol=1e-2)  # it trained
    np.testing.assert_allclose(fw.detach().numpy(), w.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(fb.detach().numpy(), b.detach().numpy(), rtol=0, atol=1e-6)
    assert torch.equal(fit_gen.get_state(), gen.get_state())  # the same draws, no more


def test_minibatches_of_several_generators_stack_theirs():
    from dnn.loop import minibatches

    one = [torch.cat(minibatches(10, 4, torch.Generator().manual_seed(s))) for s in (3, 5)]
    for perm in one:
        np.testing.assert_array_equal(np.sort(perm.numpy()), np.arange(10))
    both = minibatches(10, 4, [torch.Generator().manual_seed(s) for s in (3, 5)])
    assert [tuple(b.shape) for b in both] == [(2, 4), (2, 4), (2, 2)]
    np.testing.assert_array_equal(torch.cat(both, dim=1).numpy(), torch.stack(one).numpy())


def test_the_default_optimizer_is_the_recipes_plain_sgd():
    """TrainConfig, the infoplane recipe and ``ibsolver infoplane`` train alike by default."""
    from ibsolver.cli import build_parser

    from dnn.cli_infoplane import DEFAULT_LR
    from dnn.recipes import DEFAULT_CONFIG

    cfg = TrainConfig()
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay) == ("sgd", 0.1, 0.0, 0.0)
    assert DEFAULT_CONFIG == cfg
    args = build_parser().parse_args(["infoplane", "--out", "unused"])
    assert (args.optimizer, DEFAULT_LR[args.optimizer], args.momentum) == ("sgd", cfg.lr,
                                                                          cfg.momentum)
    for field, flag in (("batch_size", "batch_size"), ("epochs", "epochs"),
                        ("train_fraction", "train_fraction"), ("n_records", "records"),
                        ("init", "init"), ("probe", "probe"), ("activation", "activation"),
                        ("split_seed", "split_seed")):
        assert getattr(args, flag) == getattr(cfg, field), field
    # the optimizer a run used is in its settings (what summary.json and the CLI print)
    small = tishby12(1.0)
    rec = train(small, TrainConfig(seeds=(0,), **{**TINY, "epochs": 1, "n_records": 2}),
                device="cpu")
    assert rec.settings["config"]["optimizer"] == "sgd" and rec.settings["optimizer"] == "sgd"


@pytest.mark.parametrize("kwargs, match", [
    ({"optimizer": "rmsprop"}, "optimizer"), ({"lr": 0}, "lr"), ({"train_fraction": 0}, "train_fraction"),
    ({"seeds": (1, 1)}, "seeds"), ({"batch_size": 0}, "batch_size"), ({"probe": "all"}, "probe"),
    ({"activation": "swish"}, "activation")])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_train_validation(task, tmp_path):
    with pytest.raises(ValueError, match="widths"):
        train(task, widths=(10, 2), epochs=1, device="cpu")
    with pytest.raises(ValueError, match="batched"):
        train(task, epochs=1, batched="yes", device="cpu")
    with pytest.raises(TypeError, match="epoch"):
        train(task, epoch=1)


# --------------------------------------------------------------------------- CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu(task):
    cfg = TrainConfig(seeds=(0, 1, 2), **TINY)
    gpu = train(task, cfg, device="cuda")
    assert gpu.device.startswith("cuda")
    cpu = train(task, cfg, device="cpu")
    for name in ("train_loss", "test_loss", "train_acc"):
        np.testing.assert_allclose(getattr(gpu, name), getattr(cpu, name), rtol=1e-3, atol=1e-3)
    auto = train(task, TrainConfig(seeds=(0,), **{**TINY, "epochs": 1, "n_records": 2}))
    assert auto.device.startswith("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_resume_equals_uninterrupted(task, tmp_path):
    cfg = TrainConfig(seeds=(0, 1), **{**TINY, "epochs": 9, "n_records": 5})
    full = train(task, cfg, out_dir=tmp_path / "a", device="cuda")

    def stop_at_7(epoch):
        if epoch == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(task, cfg, out_dir=tmp_path / "b", device="cuda", callback=stop_at_7)
    resumed = train(task, cfg, out_dir=tmp_path / "b", device="cuda", resume=True)
    assert resumed.device.startswith("cuda")
    # GPU kernels may reorder sums between launches: binned values get a few patterns' slack
    assert_same_record(full, resumed, atol=1e-6, info_atol=5e-3)
