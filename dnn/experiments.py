"""Experiments of issue 5: usable information over training, Fisher over training.

Each trains the package's MLP with plain SGD through :func:`dnn.record_training` (one
network per seed, as one batched ensemble), keeping the activations of every hidden layer
(and the softmax output) on a fixed probe set at the recorded epochs and, optionally, the
exact Fisher trace (model and empirical) on a fixed subset of the training inputs
(``recording.measures``):

* :func:`checkerboard_experiment` -- Kleinman et al. (2021) fig. 2: usable direction
  (relevant) and colour (irrelevant) information per layer over epochs, n = 2, 10, 20, for
  an ensemble of seeds (:class:`dnn.usable.UsableEnsemble`: the spread over seeds, and in
  how many of them each curve rises then falls);
* :func:`sgd_regimes` -- the same task with small batch / high learning rate against large
  batch / low learning rate;
* :func:`digits_coarse_fine` -- train on the parity of a digit, track the usable information
  about the digit itself (the CIFAR-10 even/odd experiment, on scikit-learn's digits);
* :func:`fisher_over_training` -- the Fisher trace of an MLP over training;
* :func:`usable_experiment` -- what ``ibsolver usable`` runs (one of the above by name).

Each returns one frozen result (:class:`UsableRun`, :class:`UsableExperiment`,
:class:`FisherOverTraining`) that saves whole to one .npz (``save``/``load``, no pickle).
The networks are seeded by ``seeds``, the data, splits and decoders by ``random_state``;
nothing touches the global RNG. Information is in bits.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ibsolver.results import Result, json_safe
from numpy.typing import ArrayLike

from .usable import RISE_FALL_BITS, _over_seeds

if TYPE_CHECKING:
    import torch
    from matplotlib.axes import Axes
    from torch import nn

    from .fisher import FisherInfo
    from .recording import Recording
    from .tasks.base import Task
    from .usable import RandomState, UsableEnsemble

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsableRun(Result):
    """One run of :func:`checkerboard_experiment` or :func:`digits_coarse_fine`: the
    networks' training record and the usable information decoded from their layers, bits.

    ``save``/``load`` (one .npz, no pickle, both parts whole), ``summary()`` and
    ``to_dataframe()`` (one row per seed, label set, layer and record: the ensemble's
    table) as every ``ibsolver`` result.

    Attributes
    ----------
    recording : dnn.Recording
        The training of one network per seed, with every seed's probe activations at the
        recorded epochs (and the Fisher traces in ``measures`` where asked for).
    ensemble : dnn.usable.UsableEnsemble
        The usable information per seed, label set, layer and recorded epoch.
    """

    recording: Recording
    ensemble: UsableEnsemble

    def summary(self, *, threshold_bits: float = RISE_FALL_BITS) -> dict:
        """The settings, :meth:`dnn.usable.UsableEnsemble.summary` at ``threshold_bits``
        and "final_test_accuracy" over seeds, as plain JSON values (bits); NaN as None."""
        rec = self.recording
        return json_safe({"config": rec.settings,
                          **self.ensemble.summary(threshold_bits=threshold_bits),
                          "final_test_accuracy": _over_seeds(rec.test_acc[-1])})

    def _columns(self) -> list:
        """The ensemble's rows: one per (seed, label set, layer, epoch)."""
        return self.ensemble._columns()


@dataclass(frozen=True)
class UsableExperiment(Result):
    """What :func:`usable_experiment` (and :func:`sgd_regimes`) ran: one or more
    :class:`UsableRun` by name, bits.

    ``save``/``load`` (one .npz, no pickle), ``summary()`` (what ``usable.json`` holds)
    and ``to_dataframe()`` (one row per run, seed, label set, layer and record: what
    ``usable.csv`` holds) as every ``ibsolver`` result; :meth:`training_rows` is
    ``training.csv``.

    Attributes
    ----------
    task : str
        "checkerboard" or "digits".
    runs : dict
        {run name: UsableRun}: "main", or with ``compare_sgd`` "small_batch_high_lr" and
        "large_batch_low_lr".
    """

    task: str
    runs: dict

    @property
    def label_sets(self) -> tuple:
        return next(iter(self.runs.values())).ensemble.label_sets

    def summary(self, *, threshold_bits: float = RISE_FALL_BITS) -> dict:
        """{"task", "runs": {run name: :meth:`UsableRun.summary`}}: per run the settings,
        the seeds, the decoder budget, H(Y) and the maximum per label set; "final" and
        "peak" usable information per label set and layer, each {"mean", "std", "min",
        "max"} over seeds; "rise_then_fall": per label set and layer the fraction of seeds
        whose curve rises then falls by more than ``threshold_bits`` (with each seed's rise
        and drop, :meth:`dnn.usable.UsableEnsemble.rise_then_fall`) and
        "rise_then_fall_bits", the threshold; "n_clipped" (decoders whose raw value was
        negative, over all seeds); "final_test_accuracy" over seeds. Plain JSON values,
        bits; NaN as None."""
        return {"task": self.task,
                "runs": {name: run.summary(threshold_bits=threshold_bits)
                         for name, run in self.runs.items()}}

    def _columns(self) -> list:
        """One row per (run, seed, label set, layer, epoch)."""
        return [{"run": name, **r} for name, run in self.runs.items() for r in run._columns()]

    def training_rows(self) -> list:
        """One row per (run, epoch, seed): :meth:`dnn.Recording.training_rows` of every
        run."""
        return [{"run": name, **r} for name, run in self.runs.items()
                for r in run.recording.training_rows()]


@dataclass(frozen=True)
class FisherOverTraining(Result):
    """What :func:`fisher_over_training` found: the Fisher trace over training and the
    final diagonal.

    The Fisher information is a curvature of the natural-log likelihood and has no unit
    of bits (the losses of the recording are in bits). ``save``/``load`` (one .npz, no
    pickle), ``summary()`` (what ``fisher.json`` holds) and ``to_dataframe()`` (one row
    per recorded epoch: :meth:`dnn.Recording.training_rows`, what ``fisher.csv`` holds)
    as every ``ibsolver`` result.

    Attributes
    ----------
    recording : dnn.Recording
        The run, one seed, with ``measures["fisher_trace"]``,
        ``measures["fisher_empirical_trace"]`` and ``measures["fisher_trace_<layer>"]``
        (:func:`fisher_measures`) at every recorded epoch.
    final : dnn.fisher.FisherInfo
        The model Fisher diagonal of the trained network.
    """

    recording: Recording
    final: FisherInfo

    @property
    def epochs(self) -> list:
        return [int(e) for e in self.recording.epochs]

    @property
    def trace(self) -> np.ndarray:
        """The model Fisher trace at every recorded epoch."""
        return self.recording.measures["fisher_trace"][:, 0]

    @property
    def empirical_trace(self) -> np.ndarray:
        """The empirical Fisher trace (observed labels) at every recorded epoch."""
        return self.recording.measures["fisher_empirical_trace"][:, 0]

    @property
    def layer_traces(self) -> dict:
        """{layer: the model Fisher trace of its parameters at every recorded epoch}."""
        return {k[len("fisher_trace_"):]: v[:, 0] for k, v in self.recording.measures.items()
                if k.startswith("fisher_trace_")}

    @property
    def peak_epoch(self) -> int:
        """The recorded epoch of the largest model Fisher trace."""
        return self.epochs[int(np.argmax(self.trace))]

    def summary(self) -> dict:
        """The task, the hidden widths, the settings, the number of inputs the Fisher is
        averaged over, the recorded epochs with the model and empirical trace at each, the
        epoch of the peak, the final trace per layer and the test accuracy at each
        record; plain JSON values, NaN as None."""
        rec = self.recording
        return json_safe({
            "task": rec.name, "hidden": rec.settings["hidden"], "config": rec.settings,
            "fisher_samples": int(self.final.n_samples), "epochs": self.epochs,
            "trace": self.trace, "empirical_trace": self.empirical_trace,
            "peak_epoch": self.peak_epoch, "final_layer_trace": self.final.layer_trace,
            "test_accuracy": rec.test_acc[:, 0]})

    def _columns(self) -> list:
        """One row per recorded epoch: :meth:`dnn.Recording.training_rows`."""
        return self.recording.training_rows()

#: the paper's architectures (appendix B.5), hidden widths only
SMALL_FC = (10, 7, 5, 4, 3)
MEDIUM_FC = (100, 20, 20, 20)


def fisher_measures(fisher_x: ArrayLike | torch.Tensor, fisher_y: ArrayLike | torch.Tensor | None = None,
                    device: str | torch.device = "cpu") -> dict[str, Callable[[nn.Module], dict[str, float]]]:
    """``record_training`` measures: the exact model Fisher trace with its per-layer traces
    ("fisher_trace", "fisher_trace_<layer>") and, with labels, the empirical one
    ("fisher_empirical_trace"), on the inputs ``fisher_x``."""
    from ._info_utils import to_tensor
    from .fisher import fisher_diagonal

    import torch

    fx = to_tensor(fisher_x, device=device)
    fy = None if fisher_y is None else to_tensor(fisher_y, torch.long, device)

    def fisher(module):
        fi = fisher_diagonal(module, fx, kind="model")
        out = {"trace": fi.trace, **{f"trace_{k}": v for k, v in fi.layer_trace.items()}}
        out["empirical_trace"] = (fisher_diagonal(module, fx, fy, kind="empirical").trace
                                  if fy is not None else float("nan"))
        return out

    return {"fisher": fisher}


def train_mlp(x: np.ndarray, y: np.ndarray, train: np.ndarray, probe: np.ndarray, test: np.ndarray, *,
              hidden: Sequence[int], activation: str = "relu", epochs: int = 30,
              batch_size: int = 32, lr: float = 0.05, record_epochs: Sequence[int] | np.ndarray | None = None,
              fisher_samples: int = 0, seeds: int | Iterable[int] = (0,),
              progress: Callable[[int], object] | None = None, device: str | torch.device = "cpu",
              name: str = "mlp") -> Recording:
    """Train ``dnn.models.mlp`` (He initialisation, plain SGD, one network per seed) on the
    ``train`` rows of (x, y) and record it; every seed's probe-row activations are kept at
    every recorded epoch (default: every epoch). ``fisher_samples`` > 0 adds
    :func:`fisher_measures` on that many training rows. Returns a
    :class:`dnn.recording.Recording`."""
    from .loop import record_training
    from .models import mlp, mlp_init, mlp_layers, resolve_device

    dev = resolve_device(device) if isinstance(device, str) else device
    n_classes = int(np.max(y)) + 1
    model = mlp((x.shape[1],) + tuple(hidden) + (n_classes,), activation)
    layers = mlp_layers(model)
    fisher = (fisher_measures(x[train[:fisher_samples]], y[train[:fisher_samples]], dev)
              if fisher_samples else None)
    return record_training(
        model, (x[train], y[train]), layers=layers, transforms={layers[-1]: "softmax"},
        probe=(x[probe], y[probe]), test_data=(x[test], y[test]), epochs=epochs,
        optimizer="sgd", lr=lr, batch_size=batch_size, seeds=seeds,
        init=mlp_init("he", activation), estimators=(),
        record_epochs=range(epochs + 1) if record_epochs is None else record_epochs,
        keep_activations=True, measures=fisher, device=dev,
        callback=(lambda _epoch: progress(1)) if progress is not None else None, name=name,
        settings={"hidden": list(hidden), "activation": activation})


def probe_activations(record: Recording, seed_index: int = 0) -> list[dict[str, np.ndarray]]:
    """One seed's kept activations as one {layer: (N, width)} dict per recorded epoch, the
    softmax output named "output"."""
    out_layer = record.layers[-1]
    return [{("output" if layer == out_layer else layer):
             record.activations[layer][e, seed_index] for layer in record.layers}
            for e in range(len(record.epochs))]


def _decoder_opts(options) -> dict:
    """Decoder options with "epochs" renamed (the curves' ``epochs`` are the recorded ones)."""
    opts = dict(options or {})
    if "epochs" in opts:
        opts["decoder_epochs"] = opts.pop("epochs")
    return opts


def checkerboard_experiment(n_colors: int = 2, *, hidden: Sequence[int] | None = None,
                            activation: str | None = None,
                            n_samples: int | None = None, epochs: int = 30,
                            batch_size: int | None = None, lr: float | None = None,
                            record_epochs: Sequence[int] | np.ndarray | None = None, n_probe: int = 2000,
                            decoder: str = "mlp", decoder_options: dict | None = None,
                            fisher_samples: int = 0, seeds: int | Iterable[int] = (0,),
                            random_state: RandomState = 0, progress: Callable[[int], object] | None = None,
                            device: str | torch.device = "cpu") -> UsableRun:
    """Usable direction (relevant) and colour (irrelevant) information per layer over training.

    Defaults follow the paper's appendix B.5: Small FC (10-7-5-4-3), batch 32, lr 0.05 and
    10 000 samples for n = 2 -- with LeakyReLU(0.2) instead of the paper's ReLU, which dies
    in the 5-4-3 layers for about half of the seeds (``activation="relu"`` restores it);
    Medium FC (100-20-20-20), lr 0.5, batch 64 and 25 000 samples
    for n = 10 (batch 128, 50 000 for n = 20); 90 % train, 10 % validation. The decoders read
    the activations of ``n_probe`` fresh trials (not used for training). ``fisher_samples``
    > 0 also records the exact Fisher trace on that many training inputs.

    One network per seed of ``seeds`` (its initial weights and minibatch order), all on the
    same data; ``random_state`` draws the data, the splits and the decoders, which share
    one train/test split across seeds. The decoder is by default an MLP of the paper's
    architecture (128-64-32; budget ``dnn.usable.DEFAULT_BUDGETS["mlp"]``).

    Returns a :class:`UsableRun` (the Recording and the UsableEnsemble); the curves have
    label sets "direction" and "color", each with max log2(n_colors) bits.
    """
    from ._info_utils import make_generator, seed_from, stratified_split
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
    tr, va = stratified_split(n_samples, 0.9, seed_from(gen))
    return _train_then_decode(
        x, y, tr, probe, va, {"direction": y[probe], "color": color[probe]},
        {"direction": n, "color": n}, gen, hidden=hidden, activation=activation,
        name=task.name, epochs=epochs, batch_size=batch_size, lr=lr,
        record_epochs=record_epochs, fisher_samples=fisher_samples, decoder=decoder,
        decoder_options=decoder_options, seeds=seeds, progress=progress, device=device)


def _train_then_decode(x, y, train, probe, test, label_sets, n_classes, gen, *, hidden,
                       activation, name, epochs, batch_size, lr, record_epochs,
                       fisher_samples, decoder, decoder_options, seeds, progress, device):
    """Train one MLP per seed on the ``train`` rows recording the activations of the
    ``probe`` rows, then decode every label set from each seed's activations over training
    (the same decoder split and seeds for every network). Returns a UsableRun."""
    from ._info_utils import seed_from
    from .usable import UsableEnsemble, decoder_budget, usable_information_over_training

    decoder_budget(decoder, **_decoder_opts(decoder_options))  # (checked before training)
    rec = train_mlp(x, y, train, probe, test, hidden=hidden, activation=activation,
                    epochs=epochs, batch_size=batch_size, lr=lr, record_epochs=record_epochs,
                    fisher_samples=fisher_samples, seeds=seeds, progress=progress,
                    device=device, name=name)
    decoder_seed = seed_from(gen)
    curves = tuple(usable_information_over_training(
        probe_activations(rec, s), label_sets, epochs=list(rec.epochs), decoder=decoder,
        n_classes=n_classes, random_state=decoder_seed, progress=progress, device=device,
        **_decoder_opts(decoder_options)) for s in range(len(rec.seeds)))
    return UsableRun(recording=rec, ensemble=UsableEnsemble(seeds=tuple(rec.seeds),
                                                            curves=curves))


def fisher_over_training(task: Task, *, hidden: Sequence[int] = (64, 32), epochs: int = 40,
                         batch_size: int = 32, lr: float = 0.05, fisher_samples: int = 300,
                         record_epochs: Sequence[int] | np.ndarray | None = None, train_fraction: float = 0.7,
                         random_state: RandomState = 0, progress: Callable[[int], object] | None = None,
                         device: str | torch.device = "cpu") -> FisherOverTraining:
    """The exact Fisher trace (model, empirical, per layer) of a ReLU MLP over SGD training
    on ``task`` (a :class:`dnn.tasks.Task`), on ``fisher_samples`` training inputs.

    Returns a :class:`FisherOverTraining`: the Recording with ``measures["fisher_trace"]``
    and the others of :func:`fisher_measures`, and the final model Fisher diagonal as a
    :class:`dnn.fisher.FisherInfo`."""
    from ._info_utils import make_generator, seed_from, stratified_split
    from .fisher import fisher_diagonal
    from .models import mlp

    if isinstance(fisher_samples, bool) or int(fisher_samples) != fisher_samples \
            or fisher_samples < 1:
        raise ValueError(f"fisher_samples must be a positive integer (got {fisher_samples!r})")
    gen = make_generator(random_state)
    tr, te = stratified_split(task.n, train_fraction, seed_from(gen))
    rec = train_mlp(task.x, task.labels, tr, tr[:1], te, hidden=hidden, epochs=epochs,
                    batch_size=batch_size, lr=lr, record_epochs=record_epochs,
                    fisher_samples=fisher_samples, seeds=[seed_from(gen)],
                    progress=progress, device=device, name=task.name)
    model = rec.network(mlp((task.x.shape[1],) + tuple(hidden) + (task.n_classes,), "relu"))
    return FisherOverTraining(recording=rec, final=fisher_diagonal(
        model, task.x[tr[:fisher_samples]], kind="model"))


def sgd_regimes(n_colors: int = 2, *, small: tuple[int, float] = (32, 0.05),
                large: tuple[int, float] = (256, 0.01),
                **kw: Any) -> UsableExperiment:
    """Checkerboard usable information under two SGD regimes, same data and initialisation.

    ``small`` and ``large`` are (batch_size, lr): small batch / high learning rate against
    large batch / low learning rate (defaults for n = 2; for n = 10 use (64, 0.5) and
    (256, 0.1)). A much larger batch (1024 at lr / 10) does not learn the task within the
    same number of epochs, which confounds the comparison. Returns a
    :class:`UsableExperiment` with the runs "small_batch_high_lr" and "large_batch_low_lr".
    """
    out = {}
    for name, (bs, lr) in (("small_batch_high_lr", small), ("large_batch_low_lr", large)):
        out[name] = checkerboard_experiment(n_colors, batch_size=bs, lr=lr, **kw)
    return UsableExperiment(task="checkerboard", runs=out)


def usable_experiment(task: str = "checkerboard", *, n_colors: int = 2, n_samples: int | None = None,
                      n_probe: int = 2000, epochs: int = 30, batch_size: int | None = None,
                      lr: float | None = None, record_epochs: Sequence[int] | np.ndarray | None = None,
                      decoder: str = "mlp", decoder_options: dict | None = None,
                      compare_sgd: bool = False, seeds: int | Iterable[int] = (0, 1, 2, 3, 4),
                      random_state: RandomState = 0, progress: Callable[[int], object] | None = None,
                      device: str | torch.device = "cpu") -> UsableExperiment:
    """What ``ibsolver usable`` runs: a :class:`UsableExperiment`, {run name: UsableRun}.

    task "checkerboard": :func:`checkerboard_experiment` with ``n_colors`` (the paper's
    batch size and learning rate where None), or with ``compare_sgd`` the two regimes of
    :func:`sgd_regimes` (the paper's batch and lr against batch 256 at lr / 5); "digits":
    :func:`digits_coarse_fine`. One network per seed of ``seeds`` (default five), decoded
    by MLP decoders of the paper's architecture by default. Information in bits.
    """
    common = dict(epochs=epochs, record_epochs=record_epochs, decoder=decoder,
                  decoder_options=decoder_options, seeds=seeds, random_state=random_state,
                  progress=progress, device=device)
    if task == "digits":
        kw = {k: v for k, v in (("batch_size", batch_size), ("lr", lr)) if v}
        return UsableExperiment(task=task, runs={"main": digits_coarse_fine(**common, **kw)})
    if task != "checkerboard":
        raise ValueError(f"task must be 'checkerboard' or 'digits' (got {task!r})")
    if isinstance(n_colors, bool) or int(n_colors) != n_colors or n_colors < 2:
        raise ValueError(f"n_colors must be an integer >= 2 (got {n_colors!r})")
    common.update(n_samples=n_samples, n_probe=n_probe)
    if not compare_sgd:
        return UsableExperiment(task=task, runs={"main": checkerboard_experiment(
            n_colors, batch_size=batch_size, lr=lr, **common)})
    lr = lr or (0.05 if n_colors == 2 else 0.5)
    return sgd_regimes(n_colors, small=(batch_size or 32, lr), large=(256, lr / 5), **common)


def digits_coarse_fine(*, hidden: Sequence[int] = (64, 32, 16), activation: str = "relu",
                       epochs: int = 40, batch_size: int = 32, lr: float = 0.05,
                       test_fraction: float = 0.5, record_epochs: Sequence[int] | np.ndarray | None = None,
                       decoder: str = "mlp", decoder_options: dict | None = None,
                       fisher_samples: int = 0, seeds: int | Iterable[int] = (0,),
                       random_state: RandomState = 0, progress: Callable[[int], object] | None = None,
                       device: str | torch.device = "cpu") -> UsableRun:
    """Train on the parity of scikit-learn digits, track usable fine (digit) and coarse info.

    The network sees only the parity label (1 bit); a minimal representation carries no
    more usable information about the digit (3.32 bits) than the parity does (1 bit). Half
    of the 1797 images train the network; the decoders read the activations of the other
    half (their own train/test split inside it). One network per seed of ``seeds``.

    Returns a :class:`UsableRun` (the Recording and the UsableEnsemble) with label sets
    "fine" and "coarse".
    """
    from ._info_utils import make_generator, seed_from, stratified_split
    from .tasks.digits import digits

    gen = make_generator(random_state)
    task = digits("coarse")
    x, y, fine = task.x, task.labels, task.extra_labels["fine"]
    tr, te = stratified_split(task.n, 1.0 - test_fraction, seed_from(gen))
    return _train_then_decode(
        x, y, tr, te, te, {"fine": fine[te], "coarse": y[te]}, {"fine": 10, "coarse": 2},
        gen, hidden=hidden, activation=activation, name=task.name,
        epochs=epochs, batch_size=batch_size, lr=lr, record_epochs=record_epochs,
        fisher_samples=fisher_samples, decoder=decoder, decoder_options=decoder_options,
        seeds=seeds, progress=progress, device=device)


def plot_accuracy(record: Recording, ax: Axes) -> Axes:
    """Validation accuracy of a Recording on a twin axis (green dashed, as in the paper):
    the mean over seeds, their range shaded. Returns the twin."""
    twin = ax.twinx()
    acc = record.test_acc
    twin.plot(record.epochs, acc.mean(axis=1), "g--", lw=1.2, label="validation accuracy")
    twin.fill_between(record.epochs, acc.min(axis=1), acc.max(axis=1), color="g", alpha=0.1,
                      lw=0)
    twin.set_ylim(0, 1.02)
    twin.set_ylabel("validation accuracy", color="g")
    return twin
