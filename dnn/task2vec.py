"""Task2Vec (Achille et al., ICCV 2019): embed a task by the Fisher information of a probe.

A fixed *probe* network (here a small MLP feature extractor, optionally pre-trained on the
10-way digits task) is shared by every task. For a task (x, y) a fresh linear head is trained
on top of the frozen probe; the embedding is then the diagonal of the model Fisher (exact
expectation over y ~ p(y|x, w), ``dnn.fisher``) with respect to the *probe's* parameters, so
all tasks live in the same space whatever their number of classes. As in the paper the
diagonal is averaged over the parameters of each unit (the incoming weights and bias of a
hidden unit, the analogue of the paper's per-filter average), and normalised to sum to 1.

Distance: the paper's normalised cosine distance

    d(a, b) = 1 - cos( a / (a + b), b / (a + b) )     (elementwise division)

which is symmetric, 0 for identical embeddings and insensitive to the overall scale of
either (the embeddings are normalised first). ``metric="cosine"`` gives the plain cosine
distance 1 - cos(a, b).
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from ibsolver.results import Result, json_safe
from numpy.typing import ArrayLike

if TYPE_CHECKING:  # torch and matplotlib are imported where they are used
    import torch
    from matplotlib.axes import Axes
    from torch import nn

    from .usable import RandomState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskEmbedding(Result):
    """A Task2Vec embedding.

    ``save``/``load`` (one .npz, no pickle), ``summary()`` (plain JSON values, NaN as None)
    and ``to_dataframe()`` (one row: the task) as every ``ibsolver`` result; the rows of
    several embeddings concatenate into one table of tasks. The probe is not part of the
    embedding and is not saved.

    Attributes
    ----------
    name : str
        The task's name.
    vector : numpy.ndarray
        The normalised embedding (non-negative, sums to 1).
    raw : numpy.ndarray
        The Fisher diagonal it came from (per unit, or per parameter with reduce="none").
    n_classes : int
        The task's number of classes.
    fisher_trace : float
        Trace of the probe's Fisher for this task (the embedding's scale; natural-log
        likelihood, no unit of bits).
    head_accuracy : float
        Training accuracy of the task's linear head on the frozen probe.
    """

    name: str
    vector: np.ndarray = field(repr=False)
    raw: np.ndarray = field(repr=False)
    n_classes: int = 0
    fisher_trace: float = 0.0
    head_accuracy: float = float("nan")

    def summary(self) -> dict:
        """The task's name, its number of classes, the Fisher trace, the head's accuracy
        and the embedding's length, as plain JSON values; NaN as None."""
        return json_safe({"name": self.name, "n_classes": self.n_classes,
                           "fisher_trace": self.fisher_trace,
                           "head_accuracy": self.head_accuracy,
                           "n_entries": int(np.size(self.vector))})

    def _columns(self) -> dict:
        """One row, the task: the numbers of :meth:`summary` (``vector`` is the array)."""
        return {"name": [self.name], "n_classes": [self.n_classes],
                "fisher_trace": [self.fisher_trace], "head_accuracy": [self.head_accuracy],
                "n_entries": [int(np.size(self.vector))]}


def build_probe(*, hidden: Iterable[int] = (64, 32), n_inputs: int = 64, pretrain: str | None = "digits",
                epochs: int = 20, lr: float = 0.05, batch_size: int = 32,
                random_state: RandomState = 0) -> nn.Module:
    """The fixed feature extractor shared by every task: Linear/ReLU layers ``hidden``.

    pretrain : "digits" trains it (with a temporary 10-way head, plain SGD) on the digit
        labels of scikit-learn's digits, so its features mean something, as the
        ImageNet-trained probe of the paper; None keeps the random initialisation.

    Returns an ``nn.Sequential`` named ``fc1, act1, ..., fcK, actK``.
    """
    from ._info_utils import make_generator, seed_from
    from .loop import initial_network, record_training
    from .models import mlp, mlp_init

    if pretrain not in (None, "digits"):
        raise ValueError(f"pretrain must be 'digits' or None (got {pretrain!r})")
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden must list positive layer sizes (got {hidden!r})")
    seed = seed_from(make_generator(random_state))
    # the extractor and a 10-way head: an MLP whose last layer is dropped afterwards
    net = mlp((n_inputs,) + hidden + (10,), "relu")
    if pretrain == "digits":
        from .tasks.digits import digits

        task = digits("fine")
        rec = record_training(net, (task.x, task.labels), layers=[f"act{len(hidden)}"],
                              probe=(task.x, task.labels), epochs=int(epochs), optimizer="sgd",
                              lr=lr, batch_size=batch_size, seeds=[seed],
                              init=mlp_init("uniform"), estimators=(), n_records=2)
        net = rec.network(net)
    else:
        net = initial_network(net, seed, mlp_init("uniform"))
    probe = net[:-1]
    for p in probe.parameters():
        p.requires_grad_(False)
    probe.eval()
    return probe


def _unit_average(diag: dict) -> np.ndarray:
    """Mean Fisher over the incoming weights and bias of every unit of every Linear layer."""
    out = []
    layers = OrderedDict()
    for k, v in diag.items():
        layer, kind = k.rsplit(".", 1)
        layers.setdefault(layer, {})[kind] = v
    for layer, d in layers.items():
        w = d.get("weight")
        b = d.get("bias")
        if w is None:
            out.append(np.ravel(b))
            continue
        w2 = w.reshape(w.shape[0], -1)
        tot = w2.sum(axis=1) + (b if b is not None else 0.0)
        out.append(tot / (w2.shape[1] + (1 if b is not None else 0)))
    return np.concatenate(out)


def task2vec_embed(x: ArrayLike | torch.Tensor, y: ArrayLike | torch.Tensor, *, probe: nn.Module,
                   n_classes: int | None = None, name: str = "",
                   head_l2: float = 1e-3, head_max_iter: int = 500,
                   n_fisher: int | None = None, reduce: str = "unit",
                   random_state: RandomState = 0,
                   device: str | torch.device | None = None) -> TaskEmbedding:
    """Embed the task (x, y) with the Fisher of ``probe`` under a freshly trained head.

    Parameters
    ----------
    x, y : inputs and integer labels of the task.
    probe : the shared feature extractor (``build_probe``); left unchanged.
    n_classes : default largest label + 1 (at least 2).
    head_l2, head_max_iter : the linear head minimises mean CE + head_l2/2 |(W, b)|^2 on the
        frozen features by full-batch L-BFGS (a convex problem with a unique optimum).
    n_fisher : number of inputs (a seeded random subset) the Fisher is averaged over;
        None = all.
    reduce : "unit" (mean over each unit's parameters, as the paper's filter average) or
        "none" (one entry per probe parameter).
    random_state : seed of the head's initialisation and of the Fisher subset. Both are
        drawn on the CPU for every device, so a GPU run embeds the same task with the same
        head initialisation and subset, up to float32 round-off.
    device : where the head is trained and the Fisher computed: "cpu", "cuda", "auto" (CUDA
        when available) or a torch.device; default: the device of ``probe``'s parameters.
        The probe itself is left where it is (a copy is moved); the result is numpy.
    """
    import copy

    import torch
    import torch.nn.functional as F
    from torch import nn

    from ._info_utils import make_generator, seed_from, to_tensor
    from .fisher import fisher_diagonal
    from .loop import initial_network
    from .models import mlp, mlp_init

    if reduce not in ("unit", "none"):
        raise ValueError(f"reduce must be 'unit' or 'none' (got {reduce!r})")
    dev = _embed_device(probe, device)
    gen = make_generator(random_state)
    xt = to_tensor(x, device=dev)
    yt = to_tensor(y, torch.long, dev)
    if xt.ndim != 2 or yt.shape != (xt.shape[0],):
        raise ValueError(f"x must be (n, d) and y (n,) (got {tuple(xt.shape)} and "
                         f"{tuple(yt.shape)})")
    k = int(yt.max().item()) + 1
    n_classes = max(k, 2) if n_classes is None else int(n_classes)
    if n_classes < k:
        raise ValueError(f"n_classes must exceed the largest label {k - 1} (got {n_classes})")
    probe = copy.deepcopy(probe).to(dev)
    for p in probe.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        feats = probe(xt[:1])
    # initialised on the CPU from the CPU generator, then moved: same head on every device
    head = initial_network(mlp((feats.shape[1], n_classes)), seed_from(gen),
                           mlp_init("uniform")).to(dev)
    model = nn.Sequential(OrderedDict(probe=probe, head=head))
    with torch.no_grad():
        f_all = probe(xt)
    # the head solves a strictly convex problem (L2-regularised multinomial logistic
    # regression on frozen features): full-batch L-BFGS reaches its unique optimum, so the
    # embedding does not depend on the head's initialisation. Not dnn.loop.fit, the training
    # loop: a fixed number of minibatch SGD/Adam epochs stops short of that optimum
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=int(head_max_iter),
                            tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(f_all), yt) + 0.5 * head_l2 * sum(
            (p ** 2).sum() for p in head.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = float((head(f_all).argmax(1) == yt).float().mean().item())
    if n_fisher is not None and n_fisher < len(yt):
        sub = torch.randperm(len(yt), generator=gen)[:int(n_fisher)].sort().values
        xf = xt[sub.to(dev)]
    else:
        xf = xt
    for p in probe.parameters():
        p.requires_grad_(True)
    fi = fisher_diagonal(model.eval(), xf, kind="model", params="probe", device=dev)
    diag = {key.split(".", 1)[1]: v for key, v in fi.diagonal.items()}
    raw = _unit_average(diag) if reduce == "unit" else np.concatenate(
        [np.ravel(v) for v in diag.values()])
    total = raw.sum()
    vec = raw / total if total > 0 else np.full_like(raw, 1.0 / raw.size)
    return TaskEmbedding(name=name, vector=vec, raw=raw, n_classes=n_classes,
                         fisher_trace=fi.trace, head_accuracy=acc)


def _embed_device(probe, device):
    """The torch.device to embed on: ``device`` resolved, default the probe's device."""
    import torch

    from .models import resolve_device

    if device is None:
        first = next(probe.parameters(), None)
        return first.device if first is not None else torch.device("cpu")
    return resolve_device(device) if isinstance(device, str) else torch.device(device)


def task_distance(a: TaskEmbedding | ArrayLike, b: TaskEmbedding | ArrayLike, *,
                  metric: str = "normalized_cosine") -> float:
    """Distance between two embeddings (TaskEmbedding or arrays), in [0, 1] for
    non-negative embeddings; symmetric; 0 for identical ones."""
    va = np.asarray(a.vector if isinstance(a, TaskEmbedding) else a, dtype=np.float64)
    vb = np.asarray(b.vector if isinstance(b, TaskEmbedding) else b, dtype=np.float64)
    if va.shape != vb.shape:
        raise ValueError(f"embeddings must have the same shape (got {va.shape} and {vb.shape})")
    if metric == "normalized_cosine":
        va = va / va.sum() if va.sum() > 0 else va
        vb = vb / vb.sum() if vb.sum() > 0 else vb
        s = va + vb
        safe = np.where(s > 0, s, 1.0)
        va, vb = np.where(s > 0, va / safe, 0.0), np.where(s > 0, vb / safe, 0.0)
    elif metric != "cosine":
        raise ValueError(f"metric must be 'normalized_cosine' or 'cosine' (got {metric!r})")
    na, nb = np.linalg.norm(va), np.linalg.norm(vb)
    if na == 0 or nb == 0:
        return 0.0 if na == nb else 1.0
    return float(np.clip(1.0 - va @ vb / (na * nb), 0.0, 2.0))


def distance_matrix(embeddings: Sequence[TaskEmbedding | ArrayLike], *,
                    metric: str = "normalized_cosine") -> np.ndarray:
    """Symmetric matrix of pairwise task distances with an exactly zero diagonal."""
    m = len(embeddings)
    d = np.zeros((m, m))
    for i in range(m):
        for j in range(i + 1, m):
            d[i, j] = d[j, i] = task_distance(embeddings[i], embeddings[j], metric=metric)
    return d


def digits_task_family(*, n_samples: int | None = None,
                       random_state: int | np.random.Generator | None = 0) -> dict:
    """Binary and multi-class tasks on scikit-learn's digits: {name: (x, y, n_classes)}.

    fine (10-way), parity, high (>= 5), mod3 (3-way), low5 / high5 (5-way on the images of
    0-4 / 5-9 only), and "k_vs_rest" for k = 0..9.
    """
    from .tasks.digits import digits

    t = digits("fine", n_samples=n_samples, random_state=random_state)
    x, d = t.x, t.labels
    fam = {
        "fine": (x, d, 10),
        "parity": (x, d % 2, 2),
        "high": (x, (d >= 5).astype(np.int64), 2),
        "mod3": (x, d % 3, 3),
        "low5": (x[d < 5], d[d < 5], 5),
        "high5": (x[d >= 5], d[d >= 5] - 5, 5),
    }
    for k in range(10):
        fam[f"{k}_vs_rest"] = (x, (d == k).astype(np.int64), 2)
    return fam


@dataclass(frozen=True)
class Task2VecExperiment(Result):
    """What :func:`task2vec_experiment` found: every task's embedding and their distances.

    ``save``/``load`` (one .npz, no pickle; the embeddings under ``embeddings/<i>/``),
    ``summary()`` (plain JSON values, NaN as None: what ``task2vec.json`` holds) and
    ``to_dataframe()`` (one row per task, with its distance to every task) as every
    ``ibsolver`` result. The probe is not part of the result and is not saved. The Fisher
    information has no unit of bits (natural-log likelihood); the distances have none.

    Attributes
    ----------
    names : tuple of str
        The tasks, in the order of ``embeddings`` and of the rows of ``distances``.
    embeddings : tuple of TaskEmbedding
        One per task.
    distances : numpy.ndarray
        (tasks, tasks) symmetric, with an exactly zero diagonal (:func:`distance_matrix`).
    metric : str
        The distance: "normalized_cosine" or "cosine" (:func:`task_distance`).
    """

    names: tuple
    embeddings: tuple = field(repr=False)
    distances: np.ndarray = field(repr=False)
    metric: str = "normalized_cosine"

    def __post_init__(self):
        n = len(self.names)
        if len(self.embeddings) != n or np.shape(self.distances) != (n, n):
            raise ValueError(f"embeddings and distances must hold one entry per task (got "
                             f"{n} names, {len(self.embeddings)} embeddings, distances of "
                             f"shape {np.shape(self.distances)})")

    def nearest(self) -> dict:
        """{task: its nearest other task} (None for a task alone)."""
        return {name: (self.names[int(np.argsort(self.distances[i])[1])]
                       if len(self.names) > 1 else None)
                for i, name in enumerate(self.names)}

    def summary(self) -> dict:
        """The tasks, the metric, each task's nearest other task, and per task the head's
        accuracy and the Fisher trace, as plain JSON values; NaN as None."""
        return json_safe({"tasks": list(self.names), "metric": self.metric,
                          "nearest": self.nearest(),
                          "head_accuracy": {e.name: e.head_accuracy for e in self.embeddings},
                          "fisher_trace": {e.name: e.fisher_trace for e in self.embeddings}})

    def _columns(self) -> list:
        """One row per task: the numbers of its embedding's row, its nearest task and its
        distance to every task (``distance_<task>``)."""
        nearest = self.nearest()
        return [{"task": name, **{k: v[0] for k, v in emb._columns().items() if k != "name"},
                 "nearest": nearest[name],
                 **{f"distance_{other}": float(self.distances[i, j])
                    for j, other in enumerate(self.names)}}
                for i, (name, emb) in enumerate(zip(self.names, self.embeddings))]


def task2vec_experiment(tasks: dict | None = None, *, probe: nn.Module | None = None,
                        metric: str = "normalized_cosine", random_state: RandomState = 0,
                        progress: Callable[[int], object] | None = None,
                        device: str | torch.device | None = None,
                        **embed_options: Any) -> Task2VecExperiment:
    """Embed every task of ``tasks`` (default: ``digits_task_family()``) with one probe.

    device : where every task is embedded, as in :func:`task2vec_embed` (default: the probe's
        device; a probe built here is trained on the CPU).

    Returns a :class:`Task2VecExperiment`: the names, the embeddings and their distance
    matrix under ``metric``.
    """
    from ._info_utils import make_generator, seed_from

    gen = make_generator(random_state)
    tasks = digits_task_family() if tasks is None else tasks
    probe = build_probe(random_state=seed_from(gen)) if probe is None else probe
    dev = _embed_device(probe, device)
    names, embs = [], []
    for name, (x, y, c) in tasks.items():
        embs.append(task2vec_embed(x, y, probe=probe, n_classes=c, name=name,
                                   random_state=seed_from(gen), device=dev, **embed_options))
        names.append(name)
        if progress is not None:
            progress(1)
    return Task2VecExperiment(names=tuple(names), embeddings=tuple(embs),
                              distances=distance_matrix(embs, metric=metric), metric=metric)


def plot_distance_matrix(d: ArrayLike, names: Sequence[str], *, ax: Axes | None = None,
                         cmap: str = "viridis_r", annotate: bool = True) -> Axes:
    """Heat map of a task distance matrix. Returns the axes."""
    import matplotlib.pyplot as plt

    d = np.asarray(d)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * len(names) + 2, 0.45 * len(names) + 1.5))
    im = ax.imshow(d, cmap=cmap, vmin=0.0)
    ax.set_xticks(range(len(names)))
    ax.set_yticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_yticklabels(names, fontsize=7)
    if annotate and len(names) <= 20:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{d[i, j]:.2f}", ha="center", va="center", fontsize=5,
                        color="w" if d[i, j] > 0.5 * d.max() else "k")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="Task2Vec distance")
    ax.set_title("Task2Vec distances (digits tasks)", fontsize=9)
    return ax
