"""The information-plane recipe: the package's MLP trained on a :class:`dnn.tasks.Task`.

:func:`train` builds :func:`dnn.models.mlp` from a :class:`TrainConfig`, splits the task
(stratified by label, the same split for every seed), measures the layers on the chosen
probe rows with the task's exact p(x, y) and runs :func:`dnn.record_training`; the result
is a :class:`dnn.recording.Recording` (bits). Seed s draws its initial weights and then its
minibatch order from ``torch.Generator(seed=s)``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ibsolver.results import json_safe

from ._info_utils import _hash_array, stratified_split
from .estimators import joint_from_labels, probe_joint
from .loop import CHECKPOINT, OPTIMIZERS, _check_number, _check_seeds, record_training
from .models import ACTIVATIONS, INITS, mlp, mlp_init, mlp_layers
from .record import log_epochs
from .recording import Recording
from .tasks.base import Task

if TYPE_CHECKING:
    import torch

    from .estimators import EstimatorSpec

__all__ = ["CHECKPOINT", "TrainConfig", "stratified_split", "task_fingerprint", "train"]

PROBES = ("full", "train", "test")
TARGETS = ("labels", "soft")


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run (the records are a function of it and the task).

    Attributes
    ----------
    widths : layer sizes including input and output (default 12-10-7-5-4-3-2).
    activation : "tanh", "relu", ... (see :data:`dnn.models.ACTIVATIONS`).
    optimizer, lr, momentum : default "sgd" at lr 0.1, momentum 0: plain minibatch SGD, as
        in Shwartz-Ziv & Tishby, whose drift and diffusion phases are those of SGD's
        minibatch noise (Adam rescales each coordinate by its own gradient history). On the
        12-bit task (canonical labels, tanh, 1000 epochs, seeds 0-2) it reaches test
        accuracy 0.95-0.98, as Adam at lr 3e-3 does (0.96-0.98); with ReLU a seed can sit
        at chance for hundreds of epochs before it learns. "adam" (momentum unused) wants a
        smaller lr, e.g. 3e-3; SGD at such rates trains far slower (tanh, 300 epochs: test
        accuracy 0.52 at lr 1e-3, 0.73-0.88 at 1e-2). :func:`dnn.recipes.infoplane_experiment`
        and ``ibsolver infoplane`` train with these defaults too.
    weight_decay : L2 penalty of either optimizer (default 0).
    batch_size : minibatch size (the last minibatch of an epoch may be smaller).
    epochs : passes over the training set.
    train_fraction : in (0, 1]; the split is stratified by label and shuffled with
        ``split_seed`` (the same split for every seed).
    seeds : the seeds (each one network: initial weights and minibatch order).
    init : "uniform" (PyTorch default), "normal" (truncated normal, std 1/sqrt(fan_in)) or
        "he" (see :data:`dnn.models.INITS`).
    n_records : how many log-spaced epochs to record (epoch 0 and the last included).
    probe : rows the layers are recorded on: "full" (all task rows), "train" or "test".
    targets : "labels" (cross-entropy on task.labels) or "soft" (expected cross-entropy under
        the task's p(y|x)).
    """

    widths: tuple = (12, 10, 7, 5, 4, 3, 2)
    activation: str = "tanh"
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 1000
    train_fraction: float = 0.85
    seeds: tuple = (0,)
    split_seed: int = 0
    init: str = "uniform"
    n_records: int = 40
    probe: str = "full"
    targets: str = "labels"

    def __post_init__(self):
        def setf(name, value):
            object.__setattr__(self, name, value)

        widths = tuple(int(w) for w in self.widths)
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths must list at least two positive layer sizes (got {self.widths})")
        setf("widths", widths)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} (got {self.activation!r})")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)} (got {self.optimizer!r})")
        for name in ("lr", "momentum", "weight_decay"):
            setf(name, _check_number(name, getattr(self, name)))
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0 (got {self.lr})")
        for name, low in (("batch_size", 1), ("epochs", 1), ("n_records", 2)):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < low:
                raise ValueError(f"{name} must be an integer >= {low} (got {v!r})")
            setf(name, int(v))
        tf = self.train_fraction
        if isinstance(tf, bool) or not isinstance(tf, (int, float)) or not 0 < tf <= 1:
            raise ValueError(f"train_fraction must be in (0, 1] (got {tf!r})")
        setf("train_fraction", float(tf))
        setf("seeds", _check_seeds(self.seeds))
        if isinstance(self.split_seed, bool) or int(self.split_seed) != self.split_seed:
            raise ValueError(f"split_seed must be an integer (got {self.split_seed!r})")
        setf("split_seed", int(self.split_seed))
        if self.init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)} (got {self.init!r})")
        if self.probe not in PROBES:
            raise ValueError(f"probe must be one of {list(PROBES)} (got {self.probe!r})")
        if self.targets not in TARGETS:
            raise ValueError(f"targets must be one of {list(TARGETS)} (got {self.targets!r})")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown} (known: {sorted(known)})")
        return cls(**d)

    def settings(self) -> dict:
        """Every field as plain JSON values (tuples as lists): what a Recording's
        ``settings["config"]`` holds and :meth:`from_dict` reads back."""
        return json_safe(dataclasses.asdict(self))

    @property
    def record_epochs(self) -> np.ndarray:
        return log_epochs(self.epochs, self.n_records)


def task_fingerprint(task: Task) -> str:
    """A short hash of the task's arrays (to refuse resuming a run on another task)."""
    h = hashlib.sha256()
    for arr in (task.x, task.labels, task.p_x, task.p_y_given_x):
        if arr is not None:
            _hash_array(h, np.ascontiguousarray(arr))
    return h.hexdigest()[:16]


def _probe(task: Task, cfg: TrainConfig, train_idx, test_idx):
    """(probe rows, their joint p(x, y)): the task's exact table, or one-hot labels of a
    sampled task with uniform p(x)."""
    index = {"full": np.arange(task.n), "train": train_idx, "test": test_idx}[cfg.probe]
    if index.size == 0:
        raise ValueError(f"probe={cfg.probe!r} selects no rows (train_fraction="
                         f"{cfg.train_fraction}); use probe='full' or 'train'")
    if task.p_x is not None and task.p_y_given_x is not None:
        return index, probe_joint(task.p_x, task.p_y_given_x, index)
    return index, joint_from_labels(np.arange(index.size), np.asarray(task.labels)[index],
                                    n_classes=task.n_classes)


def train(task: Task, config: TrainConfig | None = None, *,
          out_dir: str | os.PathLike[str] | None = None, resume: bool = False,
          device: str | torch.device = "auto",
          estimators: EstimatorSpec | Iterable[EstimatorSpec] | None = None,
          layers: Iterable[str] | None = None, keep_activations: bool | int = False,
          batched: bool | str = "auto", callback: Callable[[int], object] | None = None,
          checkpoint_interval_s: float = 60.0, n_threads: int | None = None,
          **overrides: Any) -> Recording:
    """Train ``config.seeds`` MLPs on ``task`` and record them (see the module docstring).

    ``config`` is a :class:`TrainConfig`; keyword ``overrides`` (e.g. ``epochs=100``) replace
    its fields. ``layers`` defaults to act1 .. act{L-1} and the output fc{L}, recorded as its
    softmax. The other arguments go to :func:`dnn.record_training` (``out_dir``/``resume``
    checkpoint and continue a run; ``keep_activations`` keeps every record's probe
    activations; ``batched`` vmaps the seeds). Settings, the task's name and fingerprint and
    the train and probe rows are in ``recording.settings``.
    """
    if not isinstance(task, Task):
        raise TypeError(f"task must be a dnn.tasks.Task (got {type(task).__name__})")
    cfg = config if config is not None else TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"config must be a TrainConfig (got {type(cfg).__name__})")
    if overrides:
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown train() arguments {unknown} (TrainConfig fields: {sorted(known)})")
        cfg = dataclasses.replace(cfg, **overrides)
    if cfg.widths[0] != task.x.shape[1]:
        raise ValueError(f"widths[0] must equal the task's input size {task.x.shape[1]} "
                         f"(got widths={list(cfg.widths)})")
    if cfg.widths[-1] != task.n_classes:
        raise ValueError(f"widths[-1] must equal the task's n_classes {task.n_classes} "
                         f"(got widths={list(cfg.widths)})")
    soft = task.p_y_given_x if cfg.targets == "soft" else None
    if cfg.targets == "soft" and soft is None:
        raise ValueError(f"targets='soft' needs a task with p_y_given_x (task {task.name!r} has none)")
    model = mlp(cfg.widths, cfg.activation)
    layers = mlp_layers(model) if layers is None else list(layers)
    train_idx, test_idx = stratified_split(task.labels, cfg.train_fraction, cfg.split_seed)
    probe_idx, p_xy = _probe(task, cfg, train_idx, test_idx)
    # soft targets: the expected cross-entropy under the task's p(y|x)
    targets = soft.astype(np.float32) if soft is not None else task.labels
    x = np.asarray(task.x, dtype=np.float32)
    settings = {"task": task.name, "task_fingerprint": task_fingerprint(task),
                "task_info": {"name": task.name, "n": task.n, "n_classes": task.n_classes},
                "config": cfg.settings(), "train_index": train_idx.tolist(),
                "probe_index": probe_idx.tolist()}
    return record_training(
        model, (x[train_idx], targets[train_idx]), layers=layers, probe=(x[probe_idx], p_xy),
        epochs=cfg.epochs, optimizer=cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum,
        weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, seeds=cfg.seeds,
        init=mlp_init(cfg.init, cfg.activation),
        transforms={out: "softmax" for out in mlp_layers(model)[-1:] if out in layers},
        test_data=(x[test_idx], targets[test_idx]) if test_idx.size else None,
        estimators=estimators, n_records=cfg.n_records, batched=batched,
        keep_activations=keep_activations, out_dir=out_dir, resume=resume, device=device,
        callback=callback, checkpoint_interval_s=checkpoint_interval_s, n_threads=n_threads,
        name=task.name, settings=settings)
