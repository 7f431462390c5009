"""Experiments of issue 5: usable information over training, Fisher over training.

A small self-contained SGD training loop (:func:`train_and_record`) records, at chosen epochs,
the activations of every hidden layer (and the softmax output) on a fixed probe set, the
train/test accuracy and, optionally, the exact Fisher trace (model and empirical) on a fixed
subset of the training inputs. The experiment functions build on it:

* :func:`checkerboard_experiment` -- Kleinman et al. (2021) fig. 2: usable direction
  (relevant) and colour (irrelevant) information per layer over epochs, n = 2, 10, 20;
* :func:`sgd_regimes` -- the same task with small batch / high learning rate against large
  batch / low learning rate;
* :func:`digits_coarse_fine` -- train on the parity of a digit, track the usable information
  about the digit itself (the CIFAR-10 even/odd experiment, on scikit-learn's digits).

Everything is seeded through ``random_state``; nothing touches the global RNG. Information
is in bits.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

#: the paper's architectures (appendix B.5), hidden widths only
SMALL_FC = (10, 7, 5, 4, 3)
MEDIUM_FC = (100, 20, 20, 20)


@dataclass
class TrainingRecord:
    """What :func:`train_and_record` saw at each recorded epoch (epoch 0 = initialisation).

    ``activations[k]`` is {layer: (n_probe, width) float32 array} at ``epochs[k]``; the
    layers are the hidden activations ``act1, act2, ...`` and ``output`` (softmax).
    ``fisher_trace`` / ``empirical_fisher_trace`` are None when the Fisher was not asked for.
    """

    epochs: list = field(default_factory=list)
    activations: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    test_accuracy: list = field(default_factory=list)
    fisher_trace: list | None = None
    fisher_layer_trace: list | None = None
    empirical_fisher_trace: list | None = None
    config: dict = field(default_factory=dict)

    @property
    def layers(self) -> tuple:
        return tuple(self.activations[0].keys()) if self.activations else ()

    def to_rows(self) -> list:
        rows = []
        for k, ep in enumerate(self.epochs):
            row = dict(epoch=int(ep), train_loss=self.train_loss[k],
                       train_accuracy=self.train_accuracy[k], test_accuracy=self.test_accuracy[k])
            if self.fisher_trace is not None:
                row["fisher_trace"] = self.fisher_trace[k]
                row["empirical_fisher_trace"] = self.empirical_fisher_trace[k]
                for layer, v in self.fisher_layer_trace[k].items():
                    row[f"fisher_trace_{layer}"] = v
            rows.append(row)
        return rows


def seeded_mlp(widths, activation: str = "relu", random_state=0, *, init: str = "he"):
    """``dnn.models.mlp`` initialised from ``random_state`` without touching the global RNG.

    init : "he" -- weights N(0, gain^2 / fan_in) with the activation's gain (2 for ReLU,
        1 for tanh), biases 0: keeps the signal alive through narrow ReLU layers such as
        Small FC's 5-4-3; "torch" -- PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    import torch

    from ._info_utils import build, make_generator
    from .models import mlp

    if init not in ("he", "torch"):
        raise ValueError(f"init must be 'he' or 'torch' (got {init!r})")
    gen = make_generator(random_state)
    model = build(lambda: mlp(widths, activation), gen)
    if init == "he":
        gain = {"relu": 2.0, "leaky_relu": 2.0 / (1 + 0.2 ** 2), "elu": 2.0}.get(activation, 1.0)
        with torch.no_grad():
            for name, sub in model.named_children():
                if name.startswith("fc"):
                    std = (gain / sub.in_features) ** 0.5
                    sub.weight.copy_(torch.randn(sub.weight.shape, generator=gen) * std)
                    sub.bias.zero_()
    return model


def _record_layers(model):
    names = [name for name, _ in model.named_children()]
    acts = [n for n in names if n.startswith("act")]
    last_fc = [n for n in names if n.startswith("fc")][-1]
    return acts, last_fc


def _capture(model, x, acts, last_fc):
    """Activations of the named layers and the softmax output on ``x`` (eval, no grad)."""
    import torch

    store = {}
    hooks = [getattr(model, n).register_forward_hook(
        lambda _m, _i, out, n=n: store.__setitem__(n, out.detach())) for n in acts]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
    res = {n: store[n].cpu().numpy().astype(np.float32) for n in acts}
    res["output"] = torch.softmax(out, dim=-1).cpu().numpy().astype(np.float32)
    return res, out


def train_and_record(model, x_train, y_train, *, x_probe=None, x_test=None, y_test=None,
                     epochs: int = 30, batch_size: int = 32, lr: float = 0.05,
                     momentum: float = 0.0, weight_decay: float = 0.0, record_epochs=None,
                     fisher_x=None, fisher_y=None, random_state=0, progress=None,
                     device="cpu"):
    """Train ``model`` (an ``mlp``) with plain SGD on the cross-entropy and record.

    Parameters
    ----------
    model : a ``dnn.models.mlp`` (layers fc1, act1, ..., fcL); trained in place.
    x_train, y_train : training inputs and integer labels.
    x_probe : inputs whose activations are recorded (default: x_test, else x_train).
    x_test, y_test : optional held-out set for the test accuracy.
    epochs, batch_size, lr, momentum, weight_decay : SGD (constant learning rate).
    record_epochs : epochs after which to record (0 = before training); default every epoch.
    fisher_x, fisher_y : if given, the exact model Fisher trace (and the empirical one with
        ``fisher_y``, default: the model Fisher only) on these inputs at every recorded epoch.
    random_state : seed of the minibatch order.
    progress : optional callable invoked once per epoch.

    Returns
    -------
    TrainingRecord
    """
    import torch
    import torch.nn.functional as F

    from ._info_utils import make_generator, to_tensor
    from .fisher import fisher_diagonal
    from .models import resolve_device

    for name, val in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(val, bool) or int(val) != val or val < (0 if name == "epochs" else 1):
            kind = "non-negative" if name == "epochs" else "positive"
            raise ValueError(f"{name} must be a {kind} integer (got {val!r})")
    if not lr > 0:
        raise ValueError(f"lr must be positive (got {lr!r})")
    dev = resolve_device(device) if isinstance(device, str) else device
    model.to(dev)
    gen = make_generator(random_state)
    xt, yt = to_tensor(x_train, device=dev), to_tensor(y_train, torch.long, dev)
    if xt.shape[0] != yt.shape[0]:
        raise ValueError(f"x_train and y_train must have the same number of rows "
                         f"(got {xt.shape[0]} and {yt.shape[0]})")
    xte = to_tensor(x_test, device=dev) if x_test is not None else None
    yte = to_tensor(y_test, torch.long, dev) if y_test is not None else None
    xp = to_tensor(x_probe, device=dev) if x_probe is not None else (xte if xte is not None else xt)
    fx = to_tensor(fisher_x, device=dev) if fisher_x is not None else None
    fy = to_tensor(fisher_y, torch.long, dev) if fisher_y is not None else None
    record_epochs = (set(range(epochs + 1)) if record_epochs is None
                     else {int(e) for e in record_epochs})
    acts, last_fc = _record_layers(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    rec = TrainingRecord(config=dict(epochs=epochs, batch_size=batch_size, lr=lr,
                                     momentum=momentum, weight_decay=weight_decay,
                                     n_train=int(xt.shape[0]), n_probe=int(xp.shape[0])))
    if fx is not None:
        rec.fisher_trace, rec.fisher_layer_trace, rec.empirical_fisher_trace = [], [], []

    def record(ep):
        model.eval()
        a, _ = _capture(model, xp, acts, last_fc)
        with torch.no_grad():
            out = model(xt)
            loss = F.cross_entropy(out, yt).item()
            tr_acc = (out.argmax(1) == yt).float().mean().item()
            te_acc = ((model(xte).argmax(1) == yte).float().mean().item() if yte is not None
                      else float("nan"))
        rec.epochs.append(ep)
        rec.activations.append(a)
        rec.train_loss.append(loss)
        rec.train_accuracy.append(tr_acc)
        rec.test_accuracy.append(te_acc)
        if fx is not None:
            fi = fisher_diagonal(model, fx, kind="model")
            rec.fisher_trace.append(fi.trace)
            rec.fisher_layer_trace.append(fi.layer_trace)
            rec.empirical_fisher_trace.append(
                fisher_diagonal(model, fx, fy, kind="empirical").trace if fy is not None
                else float("nan"))
        model.train()

    if 0 in record_epochs:
        record(0)
    n = xt.shape[0]
    model.train()
    for ep in range(1, epochs + 1):
        perm = torch.randperm(n, generator=gen).to(dev)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if ep in record_epochs:
            record(ep)
        if progress is not None:
            progress(1)
    logger.info("trained %d epochs: final train acc %.3f, test acc %.3f", epochs,
                rec.train_accuracy[-1] if rec.train_accuracy else float("nan"),
                rec.test_accuracy[-1] if rec.test_accuracy else float("nan"))
    model.eval()
    return rec


def _decoder_opts(options) -> dict:
    """Decoder options with "epochs" renamed (the curves' ``epochs`` are the recorded ones)."""
    opts = dict(options or {})
    if "epochs" in opts:
        opts["decoder_epochs"] = opts.pop("epochs")
    return opts


def _split(n, test_fraction, gen):
    import torch

    perm = torch.randperm(n, generator=gen).numpy()
    n_test = int(round(test_fraction * n))
    return perm[n_test:], perm[:n_test]


def checkerboard_experiment(n_colors: int = 2, *, hidden=None, activation: str | None = None,
                            n_samples: int | None = None, epochs: int = 30,
                            batch_size: int | None = None, lr: float | None = None,
                            record_epochs=None, n_probe: int = 2000, decoder: str = "linear",
                            decoder_options: dict | None = None, fisher_samples: int = 0,
                            random_state=0, progress=None, device="cpu"):
    """Usable direction (relevant) and colour (irrelevant) information per layer over training.

    Defaults follow the paper's appendix B.5: Small FC (10-7-5-4-3), batch 32, lr 0.05 and
    10 000 samples for n = 2 -- with LeakyReLU(0.2) instead of the paper's ReLU, which dies
    in the 5-4-3 layers for about half of the seeds (``activation="relu"`` restores it);
    Medium FC (100-20-20-20), lr 0.5, batch 64 and 25 000 samples
    for n = 10 (batch 128, 50 000 for n = 20); 90 % train, 10 % validation. The decoders read
    the activations of ``n_probe`` fresh trials (not used for training). ``fisher_samples``
    > 0 also records the exact Fisher trace on that many training inputs.

    Returns (TrainingRecord, UsableCurves); the curves have label sets "direction" and
    "color", each with max log2(n_colors) bits.
    """
    from ._info_utils import make_generator, seed_from
    from .tasks.checkerboard import checkerboard

    n = int(n_colors)
    paper = {2: (SMALL_FC, 32, 0.05, 10_000)}
    default = paper.get(n, (MEDIUM_FC, 64 if n <= 10 else 128, 0.5,
                            25_000 if n <= 10 else 50_000))
    hidden = default[0] if hidden is None else tuple(hidden)
    if activation is None:
        activation = "leaky_relu" if n == 2 else "relu"
    batch_size = default[1] if batch_size is None else batch_size
    lr = default[2] if lr is None else lr
    n_samples = default[3] if n_samples is None else n_samples
    gen = make_generator(random_state)
    task = checkerboard(n, n_samples=n_samples + n_probe, random_state=seed_from(gen))
    x, y, color = task.x, task.labels, task.extra_labels["color"]
    probe = np.arange(n_samples, n_samples + n_probe)
    tr, va = _split(n_samples, 0.1, gen)
    model = seeded_mlp((x.shape[1],) + tuple(hidden) + (n,), activation, seed_from(gen))
    return _train_then_decode(
        model, x, y, tr, probe, va, {"direction": y[probe], "color": color[probe]},
        {"direction": n, "color": n}, gen, config=dict(task=task.name, hidden=list(hidden),
                                                      activation=activation),
        epochs=epochs, batch_size=batch_size, lr=lr, record_epochs=record_epochs,
        fisher_samples=fisher_samples, decoder=decoder, decoder_options=decoder_options,
        progress=progress, device=device)


def _train_then_decode(model, x, y, train, probe, test, label_sets, n_classes, gen, *, config,
                       epochs, batch_size, lr, record_epochs, fisher_samples, decoder,
                       decoder_options, progress, device):
    """Train ``model`` on the ``train`` rows recording activations of the ``probe`` rows,
    then decode every label set from them over training. Returns (record, curves)."""
    from ._info_utils import seed_from
    from .usable import usable_information_over_training

    fisher_x = x[train[:fisher_samples]] if fisher_samples else None
    fisher_y = y[train[:fisher_samples]] if fisher_samples else None
    rec = train_and_record(model, x[train], y[train], x_probe=x[probe], x_test=x[test],
                           y_test=y[test], epochs=epochs, batch_size=batch_size, lr=lr,
                           record_epochs=record_epochs, fisher_x=fisher_x, fisher_y=fisher_y,
                           random_state=seed_from(gen), progress=progress, device=device)
    rec.config.update(config)
    curves = usable_information_over_training(
        rec.activations, label_sets, epochs=rec.epochs, decoder=decoder, n_classes=n_classes,
        random_state=seed_from(gen), progress=progress, device=device,
        **_decoder_opts(decoder_options))
    return rec, curves


def sgd_regimes(n_colors: int = 2, *, small=(32, 0.05), large=(256, 0.01), **kw):
    """Checkerboard usable information under two SGD regimes, same data and initialisation.

    ``small`` and ``large`` are (batch_size, lr): small batch / high learning rate against
    large batch / low learning rate (defaults for n = 2; for n = 10 use (64, 0.5) and
    (256, 0.1)). A much larger batch (1024 at lr / 10) does not learn the task within the
    same number of epochs, which confounds the comparison. Returns {"small_batch_high_lr": (record, curves),
    "large_batch_low_lr": (record, curves)}.
    """
    out = {}
    for name, (bs, lr) in (("small_batch_high_lr", small), ("large_batch_low_lr", large)):
        out[name] = checkerboard_experiment(n_colors, batch_size=bs, lr=lr, **kw)
    return out


def digits_coarse_fine(*, hidden=(64, 32, 16), activation: str = "relu", epochs: int = 40,
                       batch_size: int = 32, lr: float = 0.05, test_fraction: float = 0.5,
                       record_epochs=None, decoder: str = "linear",
                       decoder_options: dict | None = None, fisher_samples: int = 0,
                       random_state=0, progress=None, device="cpu"):
    """Train on the parity of scikit-learn digits, track usable fine (digit) and coarse info.

    The network sees only the parity label (1 bit); a minimal representation carries no
    more usable information about the digit (3.32 bits) than the parity does (1 bit). Half
    of the 1797 images train the network; the decoders read the activations of the other
    half (their own train/test split inside it).

    Returns (TrainingRecord, UsableCurves) with label sets "fine" and "coarse".
    """
    from ._info_utils import make_generator, seed_from
    from .tasks.digits import digits

    gen = make_generator(random_state)
    task = digits("coarse")
    x, y, fine = task.x, task.labels, task.extra_labels["fine"]
    tr, te = _split(task.n, test_fraction, gen)
    model = seeded_mlp((x.shape[1],) + tuple(hidden) + (2,), activation, seed_from(gen))
    return _train_then_decode(
        model, x, y, tr, te, te, {"fine": fine[te], "coarse": y[te]}, {"fine": 10, "coarse": 2},
        gen, config=dict(task=task.name, hidden=list(hidden), activation=activation),
        epochs=epochs, batch_size=batch_size, lr=lr, record_epochs=record_epochs,
        fisher_samples=fisher_samples, decoder=decoder, decoder_options=decoder_options,
        progress=progress, device=device)


def plot_accuracy(record: TrainingRecord, ax):
    """Validation accuracy on a twin axis (green dashed, as in the paper). Returns the twin."""
    twin = ax.twinx()
    twin.plot(record.epochs, record.test_accuracy, "g--", lw=1.2, label="validation accuracy")
    twin.set_ylim(0, 1.02)
    twin.set_ylabel("validation accuracy", color="g")
    return twin
