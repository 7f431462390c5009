"""Training over time and data: the size of the training set, and a deficit early in training.

* :func:`datasize_experiment` -- Shwartz-Ziv & Tishby (2017): the package's MLP on the 12-bit
  task trained on 5% to 85% of its 4096 inputs, one information plane per size against the
  IB curve of the task's p(x, y) (computed once: every run is measured on all inputs), the
  compression verdict of every layer, and the final I(T;Y) of the last hidden layer and the
  test accuracy against the size. Each size is one :func:`dnn.train.train` run, in the
  worker processes of :func:`dnn.sweep.record_sweep`.
* :func:`critical_periods` -- Achille, Rovere & Soatto (2019): blurred images for the first
  e epochs, clean ones for a fixed number of epochs after; the final test accuracy against
  the deficit removal epoch e, and the trace of the Fisher information of the weights over
  training. Each phase is one :func:`dnn.record_training` call that starts from the weights
  the previous phase left, on the same learning-rate schedule.

Information in bits.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ibsolver.results import Result

from .experiments import fisher_measures
from .infoplane import compression, plot_infoplane
from .loop import record_training
from .models import mlp, mlp_init, mlp_layers, resolve_device
from .recording import Recording, load_state
from .tasks.base import Task
from .train import TrainConfig, stratified_split

if TYPE_CHECKING:
    import torch
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike

    from .estimators import EstimatorSpec

#: the training fractions of the default sweep: Shwartz-Ziv & Tishby's 5% to 85%
DEFAULT_SIZES = (0.05, 0.25, 0.45, 0.65, 0.85)
#: the deficit removal epochs of the default critical-period run (0: never blurred)
DEFAULT_REMOVAL = (0, 10, 20, 40)


def _mean_std(a) -> dict:
    a = np.asarray(a, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std())}


def _checked(value, name: str, *, low: float, high: float | None = None,
             low_inclusive: bool = True, integer: bool = False) -> float:
    """``value`` as a float, checked: a finite real (an integer if ``integer``) within
    [low, high] ((low, high] without ``low_inclusive``); else a ValueError naming ``name``
    and the value."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite {'integer' if integer else 'real number'} "
                         f"(got {value!r})")
    v = float(value)
    if v < low or (v == low and not low_inclusive):
        raise ValueError(f"{name} must be {'>=' if low_inclusive else '>'} {low:g} (got {value!r})")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high:g} (got {value!r})")
    return v


# --------------------------------------------------------------------------- data size
@dataclass(frozen=True)
class DatasizeSweep(Result):
    """What :func:`datasize_experiment` found. Information in bits.

    Attributes
    ----------
    sizes : (K,) array
        The training fractions, ascending.
    recordings : tuple of K :class:`dnn.recording.Recording`
        One run per size (all its seeds), measured on every input of the task.
    curve : ibsolver.IBCurve
        The IB curve of the runs' common p(x, y).
    key : str
        The estimator key the verdicts and figures use ("binning").
    """

    sizes: np.ndarray
    recordings: tuple
    curve: Any  # the ibsolver.IBCurve of the task's p_xy
    key: str = "binning"

    @property
    def last_hidden(self) -> str:
        """The last hidden layer (the one before the softmax output)."""
        return self.recordings[0].layers[-2]

    @property
    def n_train(self) -> list:
        """The number of training inputs of each size."""
        return [len(rec.settings["train_index"]) for rec in self.recordings]

    def compression(self) -> list:
        """Per size, {layer: :func:`dnn.infoplane.compression` verdict of its I(X;T)}."""
        return [{layer: compression(rec.info[self.key]["i_xt"][:, :, k])
                 for k, layer in enumerate(rec.layers)} for rec in self.recordings]

    def _columns(self) -> list:
        """One dict per (size, layer) at the last record, means over seeds (bits): I(X;T),
        I(T;Y), the bound at I(X;T) and the gap to it, the compression verdict and drop,
        the test accuracy."""
        rows = []
        for size, n, rec, verdicts in zip(self.sizes, self.n_train, self.recordings,
                                          self.compression()):
            d = rec.info[self.key]
            for k, layer in enumerate(rec.layers):
                i_xt, i_ty = d["i_xt"][-1, :, k], d["i_ty"][-1, :, k]
                bound = self.curve.bound(i_xt)
                rows.append({"train_fraction": float(size), "n_train": n, "layer": layer,
                             "i_xt_bits": float(i_xt.mean()), "i_ty_bits": float(i_ty.mean()),
                             "bound_bits": float(np.mean(bound)),
                             "gap_bits": float(np.mean(bound - i_ty)),
                             "compression": verdicts[layer]["verdict"],
                             "drop_bits": verdicts[layer]["drop_bits"]["mean"],
                             "test_acc": float(rec.test_acc[-1].mean()),
                             "n_seeds": len(rec.seeds)})
        return rows

    def summary(self) -> dict:
        """The JSON-ready summary (bits): per size the test accuracy, the last hidden
        layer's final I(X;T), I(T;Y) and gap to the bound, and every layer's compression
        verdict (mean and spread over seeds)."""
        config = dict(self.recordings[0].settings["config"])
        config.pop("train_fraction")
        rec0 = self.recordings[0]
        k = rec0.layers.index(self.last_hidden)
        sizes = []
        for size, n, rec, verdicts in zip(self.sizes, self.n_train, self.recordings,
                                          self.compression()):
            i_xt, i_ty = (rec.info[self.key][q][-1, :, k] for q in ("i_xt", "i_ty"))
            sizes.append({"train_fraction": float(size), "n_train": n,
                          "test_acc": _mean_std(rec.test_acc[-1]),
                          "last_hidden_i_xt_bits": _mean_std(i_xt),
                          "last_hidden_i_ty_bits": _mean_std(i_ty),
                          "last_hidden_gap_bits": _mean_std(self.curve.bound(i_xt) - i_ty),
                          "compression": {layer: c["verdict"] for layer, c in verdicts.items()},
                          "drop_bits": {layer: c["drop_bits"] for layer, c in verdicts.items()}})
        return {"task": rec0.name, "n_inputs": rec0.n_probe, "h_y_bits": rec0.h_y,
                "i_xy_bits": float(self.curve.i_xy), "estimator": self.key,
                "last_hidden_layer": self.last_hidden, "seeds": list(rec0.seeds),
                "config": config, "sizes": sizes}


def datasize_experiment(sizes: Iterable[float] = DEFAULT_SIZES, config: TrainConfig | None = None, *,
                        noise: float = 1.0,
                        estimators: EstimatorSpec | Iterable[EstimatorSpec] | None = None,
                        curve_kwargs: dict | None = None, out: str | Path | None = None,
                        n_workers: int | None = None, n_threads: int = 1,
                        device: str = "auto", progress: bool = False) -> DatasizeSweep:
    """Train the MLP on the 12-bit task with a growing share of the inputs. Bits.

    Parameters
    ----------
    sizes : sequence of float
        Training fractions in (0, 1), distinct (Shwartz-Ziv & Tishby: 5% to 85%); the split
        is stratified by label, the rest is the test set.
    config : TrainConfig, optional
        Everything but ``train_fraction`` (default :data:`dnn.recipes.DEFAULT_CONFIG`:
        plain SGD at lr 0.1, 1000 epochs). Its probe must be "full": every size is measured
        on all 4096 inputs, so that one IB curve bounds them all.
    noise : float
        The task's label noise (:func:`dnn.tasks.tishby12`); above 0 the bound is a true
        curve, at 0 it is min(I(X;T), H(Y)).
    estimators, n_threads, device : as :func:`dnn.sweep.record_sweep` takes them (default
        ``Binning(30)``, range "auto"; one thread per run; "auto": CUDA where the worker
        has it, else the CPU).
    curve_kwargs : options of ``ibsolver.ib_curve``.
    out : folder, optional
        Each run saved there as it finishes (``NAME.npz``, ``NAME.json``); a later call
        loads the finished ones instead of training them again.
    n_workers : local worker processes (default: the usable cores, at most one per size).
    progress : a progress bar over the sizes.

    Returns
    -------
    DatasizeSweep
        A script must call this under ``if __name__ == "__main__":`` (the workers are new
        processes that import it; see record_sweep).

    Raises
    ------
    RuntimeError
        Naming the runs that failed, after the others finished (and were saved to ``out``).
    """
    import ibsolver

    from .recipes import DEFAULT_CONFIG
    from .sweep import record_sweep

    sizes = [_checked(s, "sizes", low=0.0, high=1.0, low_inclusive=False) for s in sizes]
    if not sizes or len(set(sizes)) != len(sizes) or max(sizes) == 1.0:
        raise ValueError(f"sizes must be distinct training fractions in (0, 1), at least one "
                         f"(got {sizes})")
    cfg = DEFAULT_CONFIG if config is None else config
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"config must be a TrainConfig (got {type(cfg).__name__})")
    if cfg.probe != "full":
        raise ValueError(f"config.probe must be 'full' (every size measured on all inputs, "
                         f"under one bound) (got {cfg.probe!r})")
    if len(cfg.widths) < 3:
        raise ValueError(f"config.widths must have a hidden layer (got {list(cfg.widths)})")
    noise = _checked(noise, "noise", low=0.0)
    settings = {k: value for k, value in dataclasses.asdict(cfg).items() if k != "train_fraction"}
    sizes = sorted(sizes)
    sweep = record_sweep({"train_fraction": sizes}, task="tishby12",
                         task_options={"noise": noise}, out=out, n_workers=n_workers,
                         n_threads=n_threads, device=device, estimators=estimators,
                         progress=progress,
                         **settings)
    if sweep.failures:
        raise RuntimeError("training failed: " + "; ".join(map(str, sweep.failures)))
    recordings = tuple(sweep.results)
    curve = ibsolver.ib_curve(recordings[0].p_xy, **(curve_kwargs or {}))
    return DatasizeSweep(sizes=np.asarray(sizes), recordings=recordings, curve=curve)


def plot_datasize_grid(result: DatasizeSweep,
                       axes: Sequence[Axes] | np.ndarray | None = None) -> Sequence[Axes] | np.ndarray:
    """One information plane per size (:func:`dnn.infoplane.plot_infoplane`: every layer's
    trajectory, mean over seeds, coloured by epoch, under the IB curve).

    ``axes``: one per size (default: a row of new ones). Returns the axes."""
    if axes is None:
        import matplotlib.pyplot as plt

        k = len(result.sizes)
        _, axes = plt.subplots(1, k, figsize=(4.2 * k, 3.8), squeeze=False)
        axes = axes[0]
    for i, (ax, size, n, rec) in enumerate(zip(axes, result.sizes, result.n_train,
                                               result.recordings)):
        plot_infoplane(rec, result.curve, result.key, ax=ax, colorbar=i == len(axes) - 1)
        ax.set_title(f"{size:.0%} of the inputs for training (n = {n})\n"
                     f"test accuracy {rec.test_acc[-1].mean():.3f}", fontsize=9)
    return axes


def plot_datasize_summary(result: DatasizeSweep, ax: Axes | None = None) -> Axes:
    """The last hidden layer's final I(T;Y) (bits; left axis, mean +- std over seeds) and the
    test accuracy (right axis, green) against the training fraction. Returns the axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.2))
    s = result.summary()
    x = [e["train_fraction"] for e in s["sizes"]]
    for key, axis, style, label in (
            ("last_hidden_i_ty_bits", ax, "o-k", f"I(T;Y), {result.last_hidden}"),
            ("test_acc", ax.twinx(), "s--g", "test accuracy")):
        axis.errorbar(x, [e[key]["mean"] for e in s["sizes"]],
                      yerr=[e[key]["std"] for e in s["sizes"]], fmt=style, capsize=3,
                      label=label)
        axis.set_ylabel(label if key == "test_acc" else "I(T;Y) [bits]",
                        color="g" if key == "test_acc" else "k")
    ax.axhline(s["i_xy_bits"], color="0.4", ls=":", lw=0.8,
               label=f"I(X;Y) = {s['i_xy_bits']:.3f}")
    ax.set_xlabel("fraction of the inputs used for training")
    ax.set_title(f"{s['task']}: the last record, {len(s['seeds'])} seeds", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax


# --------------------------------------------------------------------------- critical periods
def blur(x: ArrayLike, factor: int = 4, *, image_shape: Sequence[int] = (8, 8)) -> np.ndarray:
    """The deficit of Achille et al.: images downsampled by ``factor`` and upsampled back.

    Each image is averaged over ``factor`` x ``factor`` blocks, then interpolated back to its
    size (bilinear), as the paper blurs CIFAR-10's 32 x 32 images through 8 x 8.

    Parameters
    ----------
    x : (N, H * W) array
        One image per row, ``image_shape`` = (H, W) in row-major order (the digits task).
    factor : int >= 2
        Must divide H and W.
    image_shape : (H, W)

    Returns
    -------
    (N, H * W) float32 array.
    """
    import torch
    import torch.nn.functional as F

    h, w = (int(_checked(d, "image_shape", low=1, integer=True)) for d in image_shape)
    factor = int(_checked(factor, "factor", low=2, integer=True))
    if h % factor or w % factor:
        raise ValueError(f"factor must divide the image size {h} x {w} (got {factor})")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != h * w:
        raise ValueError(f"x must hold one {h} x {w} image per row, shape (N, {h * w}) "
                         f"(got {x.shape})")
    images = torch.from_numpy(x).reshape(-1, 1, h, w)
    coarse = F.avg_pool2d(images, factor)
    return F.interpolate(coarse, size=(h, w), mode="bilinear",
                         align_corners=False).reshape(x.shape).numpy()


@dataclass(frozen=True)
class DeficitRun:
    """One schedule of :func:`critical_periods`, every epoch recorded, S seeds.

    Attributes
    ----------
    removal_epoch : int or None
        Epochs trained on blurred inputs before the clean ones (0: never blurred; None: the
        deficit is never removed).
    epochs : (E,) int array
        The recorded epochs, 0 to the last.
    test_acc : (E, S)
        Accuracy on the clean test images.
    train_acc : (E, S)
        Accuracy on the training inputs as trained on (blurred during the deficit).
    test_loss_bits : (E, S)
        Cross-entropy on the clean test images, in bits.
    fisher_trace : (E, S)
        Trace of the model Fisher information of the weights (natural-log likelihood, mean
        over the Fisher inputs: the first training inputs, blurred during the deficit).
    fisher_layer_trace : {layer: (E, S)}
        The same per linear layer.
    """

    removal_epoch: int | None
    epochs: np.ndarray
    test_acc: np.ndarray
    train_acc: np.ndarray
    test_loss_bits: np.ndarray
    fisher_trace: np.ndarray
    fisher_layer_trace: dict

    @property
    def label(self) -> str:
        """"never blurred", "removed at E" or "never removed"."""
        if self.removal_epoch is None:
            return "never removed"
        return "never blurred" if self.removal_epoch == 0 else f"removed at {self.removal_epoch}"

    @property
    def blurred(self) -> np.ndarray:
        """(E,) bool: the epoch ending at each record trained on blurred inputs."""
        last = self.epochs[-1] if self.removal_epoch is None else self.removal_epoch
        return (self.epochs > 0) & (self.epochs <= last)

    @property
    def final_test_acc(self) -> np.ndarray:
        """(S,) the test accuracy after the last epoch."""
        return self.test_acc[-1]


@dataclass(frozen=True)
class CriticalPeriods(Result):
    """What :func:`critical_periods` found: one :class:`DeficitRun` per schedule.

    Attributes
    ----------
    runs : tuple of DeficitRun
        By removal epoch, the never-removed deficit last.
    seeds : tuple of int
    settings : dict
        The task, the split sizes and every training option (JSON-ready).
    """

    runs: tuple
    seeds: tuple
    settings: dict

    @property
    def removal_epochs(self) -> list:
        """The removal epochs of the runs (None: never removed)."""
        return [run.removal_epoch for run in self.runs]

    def _columns(self) -> list:
        """One dict per (run, recorded epoch, seed): accuracies, test loss (bits), Fisher
        traces (``fisher_trace`` and ``fisher_trace_<layer>``)."""
        rows = []
        for run in self.runs:
            for e, epoch in enumerate(run.epochs):
                for s, seed in enumerate(self.seeds):
                    row = {"removal_epoch": run.removal_epoch, "run": run.label,
                           "epoch": int(epoch), "seed": int(seed),
                           "blurred": bool(run.blurred[e]),
                           "test_acc": float(run.test_acc[e, s]),
                           "train_acc": float(run.train_acc[e, s]),
                           "test_loss_bits": float(run.test_loss_bits[e, s]),
                           "fisher_trace": float(run.fisher_trace[e, s])}
                    row.update((f"fisher_trace_{layer}", float(t[e, s]))
                               for layer, t in run.fisher_layer_trace.items())
                    rows.append(row)
        return rows

    def summary(self) -> dict:
        """The JSON-ready summary: per run the final test accuracy (mean, std and per seed),
        its drop from the never-blurred run's, and the Fisher trace (seed mean) at epoch 0,
        at its peak and at the end."""
        base = next((r.final_test_acc.mean() for r in self.runs if r.removal_epoch == 0), None)
        runs = []
        for run in self.runs:
            acc = run.final_test_acc
            fisher = run.fisher_trace.mean(axis=1)
            peak = int(np.argmax(fisher))
            runs.append({"removal_epoch": run.removal_epoch, "label": run.label,
                         "epochs": int(run.epochs[-1]),
                         "final_test_acc": {**_mean_std(acc), "per_seed": acc.tolist()},
                         "drop_from_never_blurred": (None if base is None
                                                     else float(base - acc.mean())),
                         "fisher_trace": {"initial": float(fisher[0]), "peak": float(fisher[peak]),
                                          "peak_epoch": int(run.epochs[peak]),
                                          "final": float(fisher[-1])}})
        return {"settings": dict(self.settings), "seeds": list(self.seeds), "runs": runs}


def _continue_from(rec: Recording) -> Callable:
    """An ``init`` of :func:`dnn.record_training` that gives each seed its final weights in
    ``rec`` (record_training seeds seed s's generator with s, so the generator names it)."""
    index = {seed: i for i, seed in enumerate(rec.seeds)}

    def init(module, generator):
        seed = index[generator.initial_seed()]
        load_state(module, {name: value[seed] for name, value in rec.final_state.items()})

    init.__name__ = "continue_from_previous_phase"
    return init


def _joined(removal_epoch, phases: list) -> DeficitRun:
    """One DeficitRun from its phases' recordings (the later ones without their epoch 0)."""
    offsets = np.cumsum([0] + [int(rec.epochs[-1]) for rec in phases[:-1]])
    layers = [k[len("fisher_trace_"):] for k in phases[0].measures if k.startswith("fisher_trace_")]

    def cat(get):
        return np.concatenate([get(rec) for rec in phases])

    return DeficitRun(
        removal_epoch=removal_epoch,
        epochs=np.concatenate([rec.epochs + off for rec, off in zip(phases, offsets)]),
        test_acc=cat(lambda r: r.test_acc), train_acc=cat(lambda r: r.train_acc),
        test_loss_bits=cat(lambda r: r.test_loss),
        fisher_trace=cat(lambda r: r.measures["fisher_trace"]),
        fisher_layer_trace={layer: cat(lambda r: r.measures[f"fisher_trace_{layer}"])
                            for layer in layers})


def critical_periods(removal_epochs: Sequence[int] = DEFAULT_REMOVAL, *, epochs_after: int = 30,
                     never_removed: bool = True, task: Task | None = None,
                     image_shape: Sequence[int] = (8, 8), blur_factor: int = 4,
                     hidden: Sequence[int] = (64, 32),
                     activation: str = "relu", lr: float = 0.05, lr_decay: float = 0.97,
                     batch_size: int = 32, train_fraction: float = 0.7, split_seed: int = 0,
                     seeds: int | Iterable[int] = (0, 1, 2), fisher_samples: int = 100,
                     device: str | torch.device = "cpu", n_threads: int | None = None,
                     progress: Callable[[int], object] | None = None) -> CriticalPeriods:
    """A blur deficit for the first e epochs, then clean images (Achille et al. 2019).

    For each removal epoch e: the MLP trains on the training images blurred by :func:`blur`
    for e epochs, then on the clean ones for ``epochs_after`` epochs, by plain SGD whose learning
    rate falls by ``lr_decay`` every epoch over the whole run (the paper's 0.97). e = 0 is a
    plain run; ``never_removed`` adds the deficit kept for max(e) + epochs_after epochs.
    Every epoch records the accuracy and loss on the clean test images and the trace of the
    model Fisher information on the first ``fisher_samples`` training inputs, blurred while
    the deficit lasts.

    Each phase is one :func:`dnn.record_training` call; the clean phase starts from the
    weights the deficit left and goes on with the learning rate of its first epoch (plain
    SGD keeps no other state). Its minibatch order is drawn afresh from the seed.

    With ``lr_decay=1`` (a constant rate) the default MLP recovers from the deficit (final
    test accuracy 0.966 both for e = 0 and for e = 40, 3 seeds): the accuracy a late removal
    costs it under the annealed rate (0.964 at e = 0, 0.942 at e = 40) comes with the rate.

    Parameters
    ----------
    removal_epochs : sequence of int >= 0, distinct.
    epochs_after : epochs on clean images after the deficit (the same for every e).
    task : an image task (default ``dnn.tasks.digits("fine")``: 8 x 8 digits, 10 classes).
    image_shape, blur_factor : as :func:`blur` takes them (the paper's factor 4).
    hidden, activation : the MLP's hidden widths and activation (He initialisation).
    lr, lr_decay, batch_size : plain SGD; epoch t (from 1) runs at lr * lr_decay**(t - 1).
    train_fraction, split_seed : the stratified train/test split.
    seeds : one network per seed (its initial weights and minibatch order).
    device, n_threads : as :func:`dnn.record_training` takes them.
    progress : optional callable ``progress(1)`` after every epoch.

    Returns
    -------
    CriticalPeriods
    """
    from .tasks.digits import digits

    task = digits("fine") if task is None else task
    if not isinstance(task, Task):
        raise TypeError(f"task must be a dnn.tasks.Task (got {type(task).__name__})")
    removal = [int(_checked(e, "removal_epochs", low=0, integer=True)) for e in removal_epochs]
    if not removal or len(set(removal)) != len(removal):
        raise ValueError(f"removal_epochs must be distinct epochs >= 0, at least one "
                         f"(got {list(removal_epochs)})")
    epochs_after = int(_checked(epochs_after, "epochs_after", low=1, integer=True))
    lr_decay = _checked(lr_decay, "lr_decay", low=0.0, high=1.0, low_inclusive=False)
    x_clean, y = np.asarray(task.x, dtype=np.float32), np.asarray(task.labels)
    x_blurred = blur(x_clean, blur_factor, image_shape=image_shape)
    train_idx, test_idx = stratified_split(y, train_fraction, split_seed)
    if test_idx.size == 0:
        raise ValueError(f"train_fraction must leave test images (got {train_fraction})")
    fisher_rows = train_idx[:int(_checked(fisher_samples, "fisher_samples", low=1, integer=True))]
    dev = resolve_device(device) if isinstance(device, str) else device
    model = mlp((x_clean.shape[1], *hidden, task.n_classes), activation)
    test = (x_clean[test_idx], y[test_idx])

    def phase(x, epochs, lr_start, init, first):
        return record_training(
            model, (x[train_idx], y[train_idx]), layers=mlp_layers(model)[-1:], probe=test,
            test_data=test, epochs=epochs, optimizer="sgd", lr=lr_start, lr_decay=lr_decay,
            batch_size=batch_size, seeds=seeds, init=init, estimators=(),
            record_epochs=range(0 if first else 1, epochs + 1),
            measures=fisher_measures(x[fisher_rows], device=dev), device=dev,
            n_threads=n_threads, name=task.name,
            callback=None if progress is None else lambda _epoch: progress(1))

    schedules: list[tuple[int | None, list]] = [
        (e, [(x_blurred, e), (x_clean, epochs_after)]) for e in sorted(removal)]
    if never_removed:
        schedules.append((None, [(x_blurred, max(removal) + epochs_after)]))
    runs = []
    for e, steps in schedules:
        phases: list = []
        init, lr_now = mlp_init("he", activation), lr
        for x, epochs in steps:
            if epochs:
                phases.append(phase(x, epochs, lr_now, init, first=not phases))
                init, lr_now = _continue_from(phases[-1]), lr_now * lr_decay ** epochs
        runs.append(_joined(e, phases))
    settings = {"task": task.name, "n_train": int(train_idx.size), "n_test": int(test_idx.size),
                "deficit": f"blur: {blur_factor}x{blur_factor} block means, bilinear back",
                "image_shape": list(image_shape), "blur_factor": blur_factor,
                "epochs_after": epochs_after, "hidden": list(hidden), "activation": activation,
                "init": "he", "optimizer": "sgd", "lr": lr, "lr_decay": lr_decay,
                "batch_size": batch_size, "train_fraction": train_fraction,
                "split_seed": split_seed, "fisher_samples": int(fisher_rows.size),
                "fisher": "model Fisher trace on the first training inputs"}
    return CriticalPeriods(runs=tuple(runs), seeds=tuple(phases[0].seeds), settings=settings)


def plot_critical_accuracy(result: CriticalPeriods, ax: Axes | None = None) -> Axes:
    """Final test accuracy (mean +- std over seeds) against the deficit removal epoch; the
    never-removed deficit as a dashed line. Returns the axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.2))
    removed = [r for r in result.runs if r.removal_epoch is not None]
    ax.errorbar([r.removal_epoch for r in removed],
                [r.final_test_acc.mean() for r in removed],
                yerr=[r.final_test_acc.std() for r in removed], fmt="o-k", capsize=3,
                label=f"deficit removed at e, then {result.settings['epochs_after']} epochs")
    for r in result.runs:
        if r.removal_epoch is None:
            ax.axhline(r.final_test_acc.mean(), color="r", ls="--", lw=1,
                       label=f"never removed ({int(r.epochs[-1])} epochs)")
    ax.set_xlabel("deficit removal epoch e")
    ax.set_ylabel("final test accuracy")
    ax.set_title(f"{result.settings['task']}: blur deficit, {len(result.seeds)} seeds",
                 fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_critical_fisher(result: CriticalPeriods, ax: Axes | None = None) -> Axes:
    """The Fisher trace (mean over seeds) against epoch, one curve per run (darker =
    removed later, red = never removed), a dot where the deficit is removed. Returns the
    axes."""
    import matplotlib

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.2))
    removed = [r.removal_epoch for r in result.runs if r.removal_epoch is not None]
    cmap = matplotlib.colormaps["viridis"]
    for r in result.runs:
        trace = r.fisher_trace.mean(axis=1)
        if r.removal_epoch is None:
            ax.plot(r.epochs, trace, color="r", ls="--", lw=1, label=r.label)
            continue
        color = cmap(0.85 * removed.index(r.removal_epoch) / max(len(removed) - 1, 1))
        ax.plot(r.epochs, trace, color=color, lw=1.2, label=r.label)
        if r.removal_epoch:
            ax.plot(r.removal_epoch, trace[r.epochs == r.removal_epoch][0], "o", color=color)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("trace of the Fisher information")
    ax.legend(fontsize=7)
    return ax


__all__ = ["DEFAULT_REMOVAL", "DEFAULT_SIZES", "CriticalPeriods", "DatasizeSweep", "DeficitRun",
           "blur", "critical_periods", "datasize_experiment", "plot_critical_accuracy",
           "plot_critical_fisher", "plot_datasize_grid", "plot_datasize_summary"]
