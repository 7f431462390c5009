"""Train MLPs on a task and record them in the information plane.

Several seeds train as ONE batched ensemble (:mod:`dnn.ensemble`): one forward/backward pass
for all of them. Seed s draws its initial weights and then its minibatch order from its own
``torch.Generator(seed=s)`` (on the CPU, so CPU and CUDA runs see the same draws); the numbers
are those of training that seed alone (``batched=False`` does exactly that, with a plain
:func:`dnn.models.mlp` and a ``torch.optim`` optimizer per seed, and is the reference the
tests compare against).

On log-spaced epochs (:func:`dnn.record.log_epochs`) the run records, for every seed:
train/test cross-entropy (bits) and accuracy; per layer the gradient signal-to-noise ratio
over that epoch's minibatches; the layers' outputs on the probe set (through forward hooks on
layers picked by name), turned at once into I(X;T), I(T;Y) estimates (bits) by the chosen
estimators. With ``out_dir`` the run is checkpointed atomically (model, optimizer, generator
states, records) at every recorded epoch and every ``checkpoint_interval_s`` seconds;
``resume=True`` continues it and gives the same record as an uninterrupted run.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .ensemble import ensemble_mlp, init_parameters, load_member, single_mlp
from .estimators import (SATURATION, Binning, estimate_ensemble, make_estimator,
                         probe_joint)
from .models import ACTIVATIONS, resolve_device
from .record import GradientSNR, LayerRecorder, log_epochs
from .tasks.base import Task

logger = logging.getLogger(__name__)

LN2 = math.log(2.0)
OPTIMIZERS = ("sgd", "adam")
PROBES = ("full", "train", "test")
TARGETS = ("labels", "soft")
CHECKPOINT = "checkpoint.pt"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run (the records are a function of it and the task).

    Attributes
    ----------
    widths : layer sizes including input and output (default 12-10-7-5-4-3-2).
    activation : "tanh", "relu", ... (see :data:`dnn.models.ACTIVATIONS`).
    optimizer : "adam" or "sgd"; lr; momentum (sgd); weight_decay.
    batch_size : minibatch size (the last minibatch of an epoch may be smaller).
    epochs : passes over the training set.
    train_fraction : in (0, 1]; the split is stratified by label and shuffled with
        ``split_seed`` (the same split for every seed).
    seeds : the seeds (each one network: initial weights and minibatch order).
    init : "uniform" (PyTorch default) or "normal" (truncated normal, std 1/sqrt(fan_in)).
    n_records : how many log-spaced epochs to record (epoch 0 and the last included).
    probe : rows the layers are recorded on: "full" (all task rows), "train" or "test".
    targets : "labels" (cross-entropy on task.labels) or "soft" (expected cross-entropy under
        the task's p(y|x)).
    """

    widths: tuple = (12, 10, 7, 5, 4, 3, 2)
    activation: str = "tanh"
    optimizer: str = "adam"
    lr: float = 3e-3
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
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (got {v!r})")
            setf(name, float(v))
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
        seeds = (self.seeds,) if isinstance(self.seeds, (int, np.integer)) else tuple(self.seeds)
        if not seeds or any(isinstance(s, bool) or int(s) != s or s < 0 for s in seeds):
            raise ValueError(f"seeds must be a non-empty list of integers >= 0 (got {self.seeds!r})")
        seeds = tuple(int(s) for s in seeds)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct (got {seeds})")
        setf("seeds", seeds)
        if isinstance(self.split_seed, bool) or int(self.split_seed) != self.split_seed:
            raise ValueError(f"split_seed must be an integer (got {self.split_seed!r})")
        setf("split_seed", int(self.split_seed))
        if self.init not in ("uniform", "normal"):
            raise ValueError(f"init must be 'uniform' or 'normal' (got {self.init!r})")
        if self.probe not in PROBES:
            raise ValueError(f"probe must be one of {list(PROBES)} (got {self.probe!r})")
        if self.targets not in TARGETS:
            raise ValueError(f"targets must be one of {list(TARGETS)} (got {self.targets!r})")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown} (known: {sorted(known)})")
        return cls(**d)

    @property
    def record_epochs(self) -> np.ndarray:
        return log_epochs(self.epochs, self.n_records)


def stratified_split(labels, train_fraction: float, seed: int):
    """(train_idx, test_idx): per label, a shuffled ``round(fraction * count)`` rows go to
    train (at least one when the label has rows and fraction > 0). Sorted index arrays."""
    labels = np.asarray(labels)
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction must be in (0, 1] (got {train_fraction!r})")
    rng = np.random.default_rng(seed)
    train = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        k = max(1, int(round(train_fraction * idx.size)))
        train.append(idx[:k])
    train = np.sort(np.concatenate(train))
    test = np.setdiff1d(np.arange(labels.size), train)
    return train, test


def task_fingerprint(task: Task) -> str:
    """A short hash of the task's arrays (to refuse resuming a run on another task)."""
    h = hashlib.sha256()
    for arr in (task.x, task.labels, task.p_x, task.p_y_given_x):
        if arr is not None:
            a = np.ascontiguousarray(arr)
            h.update(str(a.dtype).encode())
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


def default_layers(widths):
    """The representation layers of an :func:`mlp`: act1 .. act{L-1} and the output fc{L}."""
    n = len(widths) - 1
    return [f"act{i}" for i in range(1, n)] + [f"fc{n}"]


# --------------------------------------------------------------------------- result
@dataclass
class TrainResult:
    """The record of a run. Information in bits; loss = cross-entropy in bits.

    Arrays are indexed (epoch record E, seed S[, layer]):
    epochs (E,); train_loss, test_loss, train_acc, test_acc (E, S);
    grad_snr (E, S, n_fc) for ``fc_layers`` (NaN at epoch 0);
    info {key: {"estimator", "knobs", "exact", "i_xt" (E, S, L), "i_ty" (E, S, L),
    "n_clusters" (E, S, L)}} for the representation ``layers`` (the output layer is recorded
    as its softmax); estimate_time_s (E,) seconds spent estimating per record;
    probe_index (N,) rows of the task used as probe and probe_p_xy (N, C) their joint;
    activations {layer: (E, S_kept, N, width)} float32 for the first ``keep_activations``
    seeds; final_activations {layer: (S, N, width)} float32 at the last record (always kept:
    the sensitivity sweep and the solver's encoder scoring use them).
    """

    config: TrainConfig
    task_name: str
    task_fingerprint: str
    layers: tuple
    layer_widths: tuple
    fc_layers: tuple
    epochs: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    grad_snr: np.ndarray
    info: dict
    estimate_time_s: np.ndarray
    probe_index: np.ndarray
    probe_p_xy: np.ndarray
    train_index: np.ndarray
    device: str = "cpu"
    batched: bool = True
    wall_time_s: float = float("nan")
    complete: bool = True
    activations: dict | None = None
    final_activations: dict | None = None
    estimators: list = field(default_factory=list)

    # ---- derived
    @property
    def seeds(self) -> tuple:
        return self.config.seeds

    @property
    def n_probe(self) -> int:
        return int(self.probe_p_xy.shape[0])

    @property
    def log2_n(self) -> float:
        return math.log2(self.n_probe)

    @property
    def h_y(self) -> float:
        p = self.probe_p_xy.sum(axis=0)
        p = p[p > 0]
        return float(-(p * np.log2(p)).sum())

    @property
    def h_x(self) -> float:
        p = self.probe_p_xy.sum(axis=1)
        p = p[p > 0]
        return float(-(p * np.log2(p)).sum())

    def saturated(self, key: str) -> np.ndarray:
        """(E, S, L) bool: I(X;T) within 1% of log2 N."""
        return self.info[key]["i_xt"] >= (1.0 - SATURATION) * self.log2_n

    def dpi_violations(self, key: str, tol: float = 1e-9) -> list:
        """Records where a later layer has more I(X;T) or I(T;Y) than the layer before it."""
        out = []
        d = self.info[key]
        for q, name in (("i_xt", "I(X;T)"), ("i_ty", "I(T;Y)")):
            diff = np.diff(d[q], axis=2)
            for e, s, k in zip(*np.nonzero(diff > tol)):
                out.append({"epoch": int(self.epochs[e]), "seed": int(self.seeds[s]),
                            "layer": self.layers[k + 1], "previous": self.layers[k],
                            "quantity": name, "excess_bits": float(diff[e, s, k])})
        return out

    def snr_layer_of(self, layer: str) -> str | None:
        """The fc layer whose weights produce representation ``layer`` (act3 -> fc3)."""
        digits = "".join(ch for ch in layer if ch.isdigit())
        name = f"fc{digits}"
        return name if name in self.fc_layers else None

    # ---- tables and files
    def tidy_rows(self, bound=None) -> list:
        """One dict per (epoch, seed, layer, estimator): the tidy table.

        ``bound`` (optional) maps I(X;T) (bits, array) to the IB bound; adds bound and gap.
        """
        rows = []
        snr_idx = {layer: (self.fc_layers.index(self.snr_layer_of(layer))
                           if self.snr_layer_of(layer) else None) for layer in self.layers}
        for key, d in self.info.items():
            knobs = json.dumps(d["knobs"], sort_keys=True)
            sat = d["i_xt"] >= (1.0 - SATURATION) * self.log2_n
            b = bound(d["i_xt"]) if bound is not None else None
            for e, epoch in enumerate(self.epochs):
                for s, seed in enumerate(self.seeds):
                    for k, layer in enumerate(self.layers):
                        j = snr_idx[layer]
                        row = {
                            "epoch": int(epoch), "seed": int(seed), "layer": layer,
                            "width": int(self.layer_widths[k]), "estimator": key,
                            "knobs": knobs,
                            "i_xt_bits": float(d["i_xt"][e, s, k]),
                            "i_ty_bits": float(d["i_ty"][e, s, k]),
                            "n_clusters": int(d["n_clusters"][e, s, k]),
                            "saturated": bool(sat[e, s, k]),
                            "grad_snr": float(self.grad_snr[e, s, j]) if j is not None else float("nan"),
                            "train_loss_bits": float(self.train_loss[e, s]),
                            "test_loss_bits": float(self.test_loss[e, s]),
                            "train_acc": float(self.train_acc[e, s]),
                            "test_acc": float(self.test_acc[e, s]),
                            "n_probe": self.n_probe, "log2_n": self.log2_n, "h_y_bits": self.h_y,
                        }
                        if b is not None:
                            row["bound_bits"] = float(b[e, s, k])
                            row["gap_bits"] = float(b[e, s, k] - d["i_ty"][e, s, k])
                        rows.append(row)
        return rows

    def write_csv(self, path, bound=None) -> str:
        rows = self.tidy_rows(bound)
        path = os.fspath(path)
        tmp = path + ".tmp"
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["epoch"])
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
        return path

    def to_arrays(self) -> dict:
        arrays = {
            "epochs": self.epochs, "seeds": np.asarray(self.seeds),
            "layers": np.asarray(self.layers), "layer_widths": np.asarray(self.layer_widths),
            "fc_layers": np.asarray(self.fc_layers),
            "train_loss": self.train_loss, "test_loss": self.test_loss,
            "train_acc": self.train_acc, "test_acc": self.test_acc, "grad_snr": self.grad_snr,
            "estimate_time_s": self.estimate_time_s, "probe_index": self.probe_index,
            "probe_p_xy": self.probe_p_xy, "train_index": self.train_index,
            "meta": np.asarray(json.dumps(self.meta())),
        }
        for key, d in self.info.items():
            for q in ("i_xt", "i_ty", "n_clusters"):
                arrays[f"info/{key}/{q}"] = d[q]
        if self.activations:
            for layer, a in self.activations.items():
                arrays[f"activations/{layer}"] = a
        if self.final_activations:
            for layer, a in self.final_activations.items():
                arrays[f"final_activations/{layer}"] = a
        return arrays

    def meta(self) -> dict:
        return {"config": self.config.to_dict(), "task_name": self.task_name,
                "task_fingerprint": self.task_fingerprint, "device": self.device,
                "batched": self.batched, "wall_time_s": self.wall_time_s,
                "complete": self.complete, "estimators": self.estimators,
                "info": {k: {"estimator": d["estimator"], "knobs": d["knobs"],
                             "exact": d["exact"]} for k, d in self.info.items()}}

    def save_npz(self, path) -> str:
        """Write every array (and the metadata as JSON) to ``path`` atomically."""
        path = os.fspath(path)
        tmp = path + ".tmp.npz"
        np.savez_compressed(tmp, **self.to_arrays())
        os.replace(tmp, path)
        return path

    @classmethod
    def load_npz(cls, path) -> "TrainResult":
        with np.load(os.fspath(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays["meta"]))
        info = {}
        for key, m in meta["info"].items():
            info[key] = {**m, **{q: arrays[f"info/{key}/{q}"] for q in ("i_xt", "i_ty", "n_clusters")}}
        acts = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("activations/")}
        final = {k.split("/", 1)[1]: v for k, v in arrays.items()
                 if k.startswith("final_activations/")}
        return cls(config=TrainConfig.from_dict(meta["config"]), task_name=meta["task_name"],
                   task_fingerprint=meta["task_fingerprint"],
                   layers=tuple(str(s) for s in arrays["layers"]),
                   layer_widths=tuple(int(w) for w in arrays["layer_widths"]),
                   fc_layers=tuple(str(s) for s in arrays["fc_layers"]),
                   epochs=arrays["epochs"], train_loss=arrays["train_loss"],
                   test_loss=arrays["test_loss"], train_acc=arrays["train_acc"],
                   test_acc=arrays["test_acc"], grad_snr=arrays["grad_snr"], info=info,
                   estimate_time_s=arrays["estimate_time_s"], probe_index=arrays["probe_index"],
                   probe_p_xy=arrays["probe_p_xy"], train_index=arrays["train_index"],
                   device=meta["device"], batched=meta["batched"],
                   wall_time_s=meta["wall_time_s"], complete=meta["complete"],
                   activations=acts or None, final_activations=final or None,
                   estimators=meta["estimators"])


# --------------------------------------------------------------------------- the run
class _Records:
    """Per-record lists, convertible to and from plain tensors for the checkpoint."""

    SCALARS = ("train_loss", "test_loss", "train_acc", "test_acc", "grad_snr")

    def __init__(self, keys, keep_activations: int):
        self.epochs: list = []
        self.est_time: list = []
        self.data = {k: [] for k in self.SCALARS}
        self.info = {k: {"i_xt": [], "i_ty": [], "n_clusters": []} for k in keys}
        self.keep_activations = int(keep_activations)
        self.acts: dict = {}
        self.last_acts: dict = {}

    def append(self, epoch, scalars, info, acts, est_time):
        self.epochs.append(int(epoch))
        self.est_time.append(float(est_time))
        for k in self.SCALARS:
            self.data[k].append(np.asarray(scalars[k], dtype=np.float64))
        for key, d in info.items():
            for q in ("i_xt", "i_ty", "n_clusters"):
                self.info[key][q].append(np.asarray(d[q]))
        self.last_acts = {layer: np.asarray(a, dtype=np.float32) for layer, a in acts.items()}
        if self.keep_activations:
            for layer, a in acts.items():
                self.acts.setdefault(layer, []).append(
                    np.asarray(a[:self.keep_activations], dtype=np.float32))

    def state(self) -> dict:
        t = torch.as_tensor
        return {"epochs": list(self.epochs), "est_time": list(self.est_time),
                "data": {k: [t(a) for a in v] for k, v in self.data.items()},
                "info": {key: {q: [t(a) for a in v] for q, v in d.items()}
                         for key, d in self.info.items()},
                "acts": {k: [t(a) for a in v] for k, v in self.acts.items()},
                "last_acts": {k: t(a) for k, a in self.last_acts.items()}}

    def load_state(self, st):
        self.epochs = list(st["epochs"])
        self.est_time = list(st["est_time"])
        self.data = {k: [a.numpy() for a in v] for k, v in st["data"].items()}
        self.info = {key: {q: [a.numpy() for a in v] for q, v in d.items()}
                     for key, d in st["info"].items()}
        self.acts = {k: [a.numpy() for a in v] for k, v in st["acts"].items()}
        self.last_acts = {k: a.numpy() for k, a in st["last_acts"].items()}


class _Run:
    """One training run over ``seeds``: a batched ensemble (stacked) or one plain mlp."""

    def __init__(self, task, cfg, seeds, device, stacked, layers, estimators, keep_activations):
        self.task, self.cfg, self.seeds, self.device = task, cfg, list(seeds), device
        self.stacked = stacked
        n_members = len(self.seeds)
        if not stacked and n_members != 1:
            raise ValueError("a plain (unbatched) run trains exactly one seed")
        self.gens = [torch.Generator().manual_seed(int(s)) for s in self.seeds]
        inits = [init_parameters(cfg.widths, g, cfg.init) for g in self.gens]
        if stacked:
            model = ensemble_mlp(cfg.widths, cfg.activation, n_members)
            for s, params in enumerate(inits):
                load_member(model, s, params)
        else:
            model = single_mlp(cfg.widths, cfg.activation, inits[0])
        self.model = model.to(device)
        params = list(self.model.parameters())
        if cfg.optimizer == "sgd":
            self.opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                       weight_decay=cfg.weight_decay)
        else:
            self.opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        fcs = [(name, m) for name, m in self.model.named_children() if name.startswith("fc")]
        self.fc_layers = [name for name, _ in fcs]
        self.snr = GradientSNR([[m.weight, m.bias] for _, m in fcs], n_members, stacked)
        self.layers = list(layers)
        out_name = self.fc_layers[-1]
        self.recorder = LayerRecorder(self.model, self.layers,
                                      transforms={out_name: lambda t: torch.softmax(t, dim=-1)})
        self.estimators = estimators
        self.keys = [k for est in estimators for k in est.keys]
        self.records = _Records(self.keys, keep_activations)
        self.epoch = 0

        x = torch.as_tensor(np.asarray(task.x, dtype=np.float32))
        self.x = x.to(device)
        self.y = torch.as_tensor(np.asarray(task.labels, dtype=np.int64)).to(device)
        self.soft = None
        if cfg.targets == "soft":
            self.soft = torch.as_tensor(np.asarray(task.p_y_given_x, dtype=np.float32)).to(device)
        self.train_idx, self.test_idx = stratified_split(task.labels, cfg.train_fraction,
                                                         cfg.split_seed)
        self.train_idx_t = torch.as_tensor(self.train_idx)
        self.train_idx_dev = self.train_idx_t.to(device)
        self.test_idx_dev = torch.as_tensor(self.test_idx).to(device)
        if cfg.probe == "full":
            self.probe_idx = np.arange(task.n)
        elif cfg.probe == "train":
            self.probe_idx = self.train_idx
        else:
            self.probe_idx = self.test_idx
        if self.probe_idx.size == 0:
            raise ValueError(f"probe={cfg.probe!r} selects no rows (train_fraction="
                             f"{cfg.train_fraction}); use probe='full' or 'train'")
        self.probe_idx_dev = torch.as_tensor(self.probe_idx).to(device)
        self.p_xy = _probe_p_xy(task, self.probe_idx)

    # ---- forward adapters: always (S, B, ...) on the outside
    def _forward(self, xb):
        if self.stacked:
            return self.model(xb)
        return self.model(xb[0]).unsqueeze(0)

    def _loss(self, logits, idx):
        """Per-member mean loss (S,) in nats for rows idx (S, B)."""
        s, b, c = logits.shape
        if self.soft is None:
            per = F.cross_entropy(logits.reshape(s * b, c), self.y[idx].reshape(s * b),
                                  reduction="none").view(s, b)
        else:
            per = -(self.soft[idx] * torch.log_softmax(logits, dim=-1)).sum(-1)
        return per.mean(dim=1)

    def train_epoch(self, record_grads: bool):
        n = self.train_idx.size
        bs = self.cfg.batch_size
        perms = torch.stack([torch.randperm(n, generator=g) for g in self.gens])
        rows = self.train_idx_t[perms].to(self.device)
        if record_grads:
            self.snr.reset()
        self.model.train()
        for start in range(0, n, bs):
            idx = rows[:, start:start + bs]
            logits = self._forward(self.x[idx])
            loss = self._loss(logits, idx).sum()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if record_grads:
                self.snr.accumulate()
            self.opt.step()
        self.epoch += 1

    @torch.no_grad()
    def record(self, snr):
        self.model.eval()
        n_members = len(self.seeds)
        xin = self.x.unsqueeze(0).expand(n_members, -1, -1) if self.stacked else self.x.unsqueeze(0)
        with self.recorder:
            logits = self._forward(xin)
        outs = self.recorder.outputs
        scalars = {}
        for part, idx in (("train", self.train_idx_dev), ("test", self.test_idx_dev)):
            if idx.numel() == 0:
                scalars[f"{part}_loss"] = np.full(n_members, np.nan)
                scalars[f"{part}_acc"] = np.full(n_members, np.nan)
                continue
            lg = logits[:, idx]
            rows = idx.unsqueeze(0).expand(n_members, -1)
            scalars[f"{part}_loss"] = (self._loss(lg, rows) / LN2).double().cpu().numpy()
            acc = (lg.argmax(-1) == self.y[idx].unsqueeze(0)).double().mean(dim=1)
            scalars[f"{part}_acc"] = acc.cpu().numpy()
        scalars["grad_snr"] = snr
        acts = {}
        for name in self.layers:
            a = outs[name]
            if not self.stacked:
                a = a.unsqueeze(0)
            acts[name] = a[:, self.probe_idx_dev].double().cpu().numpy()
        t0 = time.perf_counter()
        info = {}
        for est in self.estimators:
            for key, d in estimate_ensemble(est, acts, self.p_xy).items():
                info[key] = {q: d[q] for q in ("i_xt", "i_ty", "n_clusters")}
                bad = [v for r in d["estimates"] for v in r.ceiling_violations]
                if bad and est.exact:
                    logger.error("epoch %d: %s estimates above their ceilings: %s",
                                 self.epoch, key, bad[:3])
        est_time = time.perf_counter() - t0
        self.records.append(self.epoch, scalars, info, acts, est_time)

    # ---- checkpoint
    def state(self) -> dict:
        return {"epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.opt.state_dict(),
                "generators": [g.get_state() for g in self.gens],
                "records": self.records.state()}

    def load_state(self, st):
        self.epoch = int(st["epoch"])
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        for g, s in zip(self.gens, st["generators"]):
            g.set_state(s)
        self.records.load_state(st["records"])


def _probe_p_xy(task: Task, index) -> np.ndarray:
    if task.p_x is not None and task.p_y_given_x is not None:
        return probe_joint(task.p_x, task.p_y_given_x, index)
    # sampled task: every row its own x, uniform, one-hot label
    labels = np.asarray(task.labels)[index]
    p = np.zeros((labels.size, task.n_classes))
    p[np.arange(labels.size), labels] = 1.0 / labels.size
    return p


def _atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _check_task(task):
    if not isinstance(task, Task):
        raise TypeError(f"task must be a dnn.tasks.Task (got {type(task).__name__})")


def _resolve_estimators(estimators):
    if estimators is None:
        return [Binning(30)]
    if isinstance(estimators, (str, dict)) or hasattr(estimators, "estimate"):
        estimators = [estimators]
    ests = [make_estimator(e) for e in estimators]
    keys = [k for e in ests for k in e.keys]
    if len(set(keys)) != len(keys):
        raise ValueError(f"estimators must produce distinct keys (got {keys}); use one "
                         "binning and at most one KDE per run, and sensitivity() for sweeps")
    return ests


def train(task: Task, config: TrainConfig | None = None, *, out_dir=None, resume: bool = False,
          device="auto", estimators=None, layers=None, keep_activations=False,
          batched: bool = True, callback=None, checkpoint_interval_s: float = 60.0,
          n_threads: int | None = None, **overrides) -> TrainResult:
    """Train ``config.seeds`` networks on ``task`` and record them (see the module docstring).

    Parameters
    ----------
    task : a :class:`dnn.tasks.Task`.
    config : a :class:`TrainConfig`; keyword ``overrides`` (e.g. ``epochs=100``) replace
        its fields.
    out_dir : directory for ``checkpoint.pt`` (written atomically at every recorded epoch and
        at least every ``checkpoint_interval_s`` seconds). None: nothing is written.
    resume : continue the run in ``out_dir`` (config, task and estimators must match);
        without a checkpoint there it starts afresh. An existing run with resume=False is an
        error rather than being overwritten.
    device : "auto" (CUDA when available), "cpu", "cuda", ...
    estimators : Binning / KDE instances, names or spec dicts (default ``[Binning(30)]``).
    layers : module names to record (default act1 .. act{L-1} and the output fc{L}, which is
        recorded as its softmax).
    keep_activations : also return the probe activations at every record, float32:
        True for all seeds, an int k for the first k seeds (E x k x N x width floats).
        The last record's activations of every seed are always returned.
    batched : True trains all seeds as one ensemble; False trains them one after the other
        as plain ``mlp`` modules (the reference; no checkpointing).
    callback : called as ``callback(epoch)`` after every epoch (progress bars; an exception
        it raises interrupts the run, whose checkpoint can then be resumed).
    n_threads : torch intra-op threads during the run (restored afterwards); None leaves
        torch's setting. Small MLPs gain nothing from several threads and lose a lot when
        cores are shared: 1 is usually fastest on CPU.
    """
    _check_task(task)
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
    if cfg.targets == "soft" and task.p_y_given_x is None:
        raise ValueError(f"targets='soft' needs a task with p_y_given_x (task {task.name!r} has none)")
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    ests = _resolve_estimators(estimators)
    layers = default_layers(cfg.widths) if layers is None else list(layers)
    if not batched and out_dir is not None:
        raise ValueError("out_dir (checkpointing) needs batched=True (got batched=False)")
    if keep_activations is True:
        keep_activations = len(cfg.seeds)
    elif keep_activations is False or keep_activations is None:
        keep_activations = 0
    elif isinstance(keep_activations, bool) or int(keep_activations) != keep_activations \
            or keep_activations < 0:
        raise ValueError(f"keep_activations must be a bool or an integer >= 0 (got {keep_activations!r})")
    keep_activations = min(int(keep_activations), len(cfg.seeds))
    if n_threads is not None and (isinstance(n_threads, bool) or int(n_threads) != n_threads
                                  or n_threads < 1):
        raise ValueError(f"n_threads must be None or a positive integer (got {n_threads!r})")
    fingerprint = task_fingerprint(task)
    specs = [e.spec() for e in ests]
    old_threads = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(int(n_threads))
    try:
        return _train(task, cfg, out_dir, resume, dev, ests, layers, keep_activations, batched,
                      callback, checkpoint_interval_s, fingerprint, specs)
    finally:
        if n_threads is not None:
            torch.set_num_threads(old_threads)


def _train(task, cfg, out_dir, resume, dev, ests, layers, keep_activations, batched, callback,
           checkpoint_interval_s, fingerprint, specs):

    t_start = time.perf_counter()
    if batched:
        runs = [_Run(task, cfg, cfg.seeds, dev, True, layers, ests, keep_activations)]
    else:
        runs = [_Run(task, cfg, [s], dev, False, layers, ests, 1 if i < keep_activations else 0)
                for i, s in enumerate(cfg.seeds)]

    ckpt_path = None
    header = {"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "task_name": task.name,
              "task_fingerprint": fingerprint, "estimators": specs, "layers": layers,
              "keep_activations": int(keep_activations)}
    if out_dir is not None:
        out_dir = os.fspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        ckpt_path = os.path.join(out_dir, CHECKPOINT)
        if os.path.exists(ckpt_path):
            if not resume:
                raise ValueError(f"out_dir {out_dir!r} already holds a run ({CHECKPOINT}); pass "
                                 "resume=True to continue it or choose another out_dir")
            # CPU first: the generator states must stay CPU tensors; load_state_dict moves
            # the model and optimizer tensors to the run's device
            st = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            _check_header(st["header"], header, ckpt_path)
            runs[0].load_state(st["run"])
            logger.info("resumed %s at epoch %d", ckpt_path, runs[0].epoch)
        elif resume:
            logger.info("resume=True but %s has no checkpoint; starting afresh", out_dir)

    record_set = set(int(e) for e in cfg.record_epochs)
    for run in runs:
        if run.epoch == 0 and not run.records.epochs:
            run.record(np.full((len(run.seeds), len(run.fc_layers)), np.nan))
            if ckpt_path:
                _atomic_save({"header": header, "run": run.state()}, ckpt_path)
        last_ckpt = time.perf_counter()
        while run.epoch < cfg.epochs:
            rec = (run.epoch + 1) in record_set
            run.train_epoch(record_grads=rec)
            if rec:
                run.record(run.snr.snr())
            if ckpt_path and (rec or time.perf_counter() - last_ckpt > checkpoint_interval_s
                              or run.epoch == cfg.epochs):
                _atomic_save({"header": header, "run": run.state()}, ckpt_path)
                last_ckpt = time.perf_counter()
            if callback is not None:
                callback(run.epoch)
    wall = time.perf_counter() - t_start
    return _assemble(task, cfg, runs, dev, batched, wall, fingerprint, specs)


def _check_header(saved, current, path):
    if saved.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {path!r} has format_version {saved.get('format_version')} "
                         f"(this code writes {FORMAT_VERSION})")
    for key in ("task_fingerprint", "estimators", "layers", "keep_activations"):
        if saved[key] != current[key]:
            raise ValueError(f"cannot resume {path!r}: {key} differs (saved {saved[key]!r}, "
                             f"now {current[key]!r})")
    diff = {k: (saved["config"][k], v) for k, v in current["config"].items()
            if saved["config"].get(k) != v}
    if diff:
        detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"cannot resume {path!r}: the config differs ({detail})")


def _assemble(task, cfg, runs, dev, batched, wall, fingerprint, specs) -> TrainResult:
    r0 = runs[0]
    epochs = np.asarray(r0.records.epochs)
    for r in runs[1:]:
        if r.records.epochs != r0.records.epochs:
            raise RuntimeError("runs recorded different epochs")

    def stack(getter):
        # each run gives (E, S_run, ...) -> concatenate along seeds
        return np.concatenate([np.stack(getter(r)) for r in runs], axis=1)

    data = {k: stack(lambda r, k=k: r.records.data[k]) for k in _Records.SCALARS}
    info = {}
    est_of = {k: e for e in r0.estimators for k in e.keys}
    for key in r0.keys:
        info[key] = {"estimator": key, "knobs": est_of[key].knobs, "exact": est_of[key].exact}
        for q in ("i_xt", "i_ty", "n_clusters"):
            info[key][q] = stack(lambda r, q=q: r.records.info[key][q])
    acts = None
    kept = [r for r in runs if r.records.keep_activations]
    if kept:
        acts = {layer: np.concatenate([np.stack(r.records.acts[layer]) for r in kept], axis=1)
                for layer in r0.layers}
    final = {layer: np.concatenate([r.records.last_acts[layer] for r in runs], axis=0)
             for layer in r0.layers}
    est_time = np.sum([np.asarray(r.records.est_time) for r in runs], axis=0)
    modules = dict(r0.model.named_modules())
    widths = []
    for layer in r0.layers:
        m = modules[layer]
        if hasattr(m, "out_features"):
            widths.append(int(m.out_features))
        else:  # an activation: the width of the fc layer feeding it
            digits = "".join(ch for ch in layer if ch.isdigit())
            widths.append(int(getattr(modules.get(f"fc{digits}"), "out_features", -1)))
    return TrainResult(
        config=cfg, task_name=task.name, task_fingerprint=fingerprint, layers=tuple(r0.layers),
        layer_widths=tuple(widths), fc_layers=tuple(r0.fc_layers), epochs=epochs,
        train_loss=data["train_loss"], test_loss=data["test_loss"],
        train_acc=data["train_acc"], test_acc=data["test_acc"], grad_snr=data["grad_snr"],
        info=info, estimate_time_s=est_time, probe_index=np.asarray(r0.probe_idx),
        probe_p_xy=r0.p_xy, train_index=np.asarray(r0.train_idx), device=str(dev),
        batched=batched, wall_time_s=wall, complete=bool(epochs[-1] == cfg.epochs),
        activations=acts, final_activations=final, estimators=specs)
