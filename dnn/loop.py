"""The training loop: any ``nn.Module``, several seeds, its layers on the information plane.

:func:`record_training` trains one copy of the model per seed and returns a
:class:`dnn.recording.Recording`. Seed s owns a ``torch.Generator(seed=s)`` (on the CPU, so
CPU and CUDA runs draw the same numbers): it draws the initial weights, then, for ``(X, y)``
tensors, the order of the minibatches of every epoch. A ``DataLoader`` gives every seed the
same minibatches.

The seeds' parameters either live stacked, (S, ...) per tensor, and run as one
``torch.func.vmap`` of ``torch.func.functional_call`` (``batched=True``), or as S separate
sets run one after the other (``batched=False``). The loss is the sum of the members'
losses, so each member's gradient and its SGD or Adam update (both elementwise) are those it
would get alone: the two modes give the same numbers up to round-off. ``batched="auto"``
tries vmap on a few probe rows and runs one by one where the model does not allow it
(random layers such as dropout, data-dependent control flow); the Recording says which ran.

Random layers draw from torch's global generator; seed s's forward passes in training run
with that generator set to s's own stream (seeded from s alone, saved in the checkpoint), so
a seed draws the same dropout masks alone or in any ensemble, in any call. The run works
inside ``torch.random.fork_rng``: the caller's global state is never advanced.

:func:`fit` runs the same loop for a loss written by hand (the usable-information
decoders, the weight posterior, the deep linear networks): the minibatch order of
:func:`minibatches`, the optimizer of ``record_training``, and the one step both share
(zero_grad, backward, step per minibatch).
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from numpy.typing import ArrayLike
from torch.func import functional_call, vmap

from ._info_utils import _hash_array, seed_from, to_tensor, torch_threads
from .estimators import (Binning, check_probe_joint, estimate_ensemble, joint_from_labels, layer_bounds,
                         make_estimator)
from .models import resolve_device
from .record import GradientStats, LayerRecorder, execution_order, log_epochs
from .recording import Recording, load_state

if TYPE_CHECKING:
    from .estimators import KDE, EstimatorSpec

logger = logging.getLogger(__name__)

LN2 = math.log(2.0)
OPTIMIZERS = ("sgd", "adam")
CHECKPOINT = "checkpoint.pt"
FORMAT_VERSION = 4  # 4: each seed's stream for random layers (dropout)
#: rows per forward pass when recording or evaluating (bounds the memory of large probes)
EVAL_CHUNK = 8192


# --------------------------------------------------------------------------- data
class _Tensors:
    """(X, y) tensors: seed s shuffles the rows with its own generator every epoch."""

    shared = False

    def __init__(self, x, y, batch_size, device, name):
        self.x = to_tensor(x, device=device)
        y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        self.y = (y.to(device=device, dtype=torch.long) if not y.is_floating_point()
                  else y.to(device=device, dtype=torch.float32))
        if self.x.shape[0] != self.y.shape[0] or self.x.shape[0] == 0:
            raise ValueError(f"{name} must hold X and y with the same, positive number of rows "
                             f"(got {self.x.shape[0]} and {self.y.shape[0]})")
        self.batch_size = batch_size
        self.device = device
        self.name = name

    def check_targets(self, n_classes):
        _check_targets(self.y, n_classes, self.name)

    def fingerprint(self, h):
        for t in (self.x, self.y):
            _hash_array(h, t.detach().cpu().numpy())

    def train_batches(self, gens):
        for idx in minibatches(self.x.shape[0], self.batch_size, gens, self.device):
            yield self.x[idx], self.y[idx]

    def eval_batches(self):
        for start in range(0, self.x.shape[0], EVAL_CHUNK):
            yield self.x[start:start + EVAL_CHUNK], self.y[start:start + EVAL_CHUNK]


class _Loader:
    """A DataLoader: every seed sees its minibatches, in its order.

    Only training iterates the loader itself. Evaluation and the data fingerprint make a
    sequential pass over ``loader.dataset`` (same batch size, collate_fn and workers, a
    generator of its own), so neither draws from the loader's sampler or generator: what is
    recorded never changes the minibatch order. The generators that order the minibatches
    (the loader's and its sampler's) travel in the checkpoint.
    """

    shared = True

    def __init__(self, loader, device, name):
        self.loader, self.device, self.name = loader, device, name
        self._sequential = None
        self.n_classes: int | None = None  # checked in every batch once known

    def check_targets(self, n_classes):
        self.n_classes = n_classes

    @property
    def sequential(self) -> torch.utils.data.DataLoader:
        if self._sequential is None:
            ld = self.loader
            batch_size = ld.batch_size
            if batch_size is None and ld.batch_sampler is not None:  # a batch_sampler of its own
                batch_size = EVAL_CHUNK
            self._sequential = torch.utils.data.DataLoader(
                ld.dataset, batch_size=batch_size, shuffle=False, collate_fn=ld.collate_fn,
                num_workers=ld.num_workers, pin_memory=ld.pin_memory,
                worker_init_fn=ld.worker_init_fn, generator=torch.Generator().manual_seed(0))
        return self._sequential

    def generators(self) -> list[torch.Generator]:
        """The torch.Generators the training order draws from (loader, sampler, the batch
        sampler's sampler), each once."""
        ld = self.loader
        found = [ld.generator, getattr(ld.sampler, "generator", None),
                 getattr(getattr(ld.batch_sampler, "sampler", None), "generator", None)]
        out: list[torch.Generator] = []
        for g in found:
            if isinstance(g, torch.Generator) and all(g is not o for o in out):
                out.append(g)
        return out

    def order_from_global_state(self) -> bool:
        """Whether the training order is random and drawn from torch's global state (a
        shuffling loader without a generator): then a resumed run cannot repeat it."""
        ld = self.loader
        if isinstance(ld.dataset, torch.utils.data.IterableDataset):
            return False
        sampler = getattr(ld.batch_sampler, "sampler", ld.sampler)
        sequential = isinstance(sampler, torch.utils.data.SequentialSampler)
        return not sequential and not self.generators()

    def fingerprint(self, h):
        """The data's content: a TensorDataset's tensors, else the batches of one pass."""
        ds = self.loader.dataset
        h.update(f"DataLoader of {type(ds).__name__}".encode())
        if isinstance(ds, torch.utils.data.TensorDataset):
            for t in ds.tensors:
                _hash_array(h, t.detach().cpu().numpy())
            return
        for x, y in self._batches(self.sequential, to_device=False):
            for t in (x, y):
                _hash_array(h, t.detach().cpu().numpy())

    def _batches(self, loader, to_device=True):
        for batch in loader:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError(f"{self.name}'s DataLoader must yield (inputs, targets) "
                                 f"batches (got {type(batch).__name__})")
            x, y = batch[0], batch[1]
            _check_targets(torch.as_tensor(y), self.n_classes, self.name)
            if to_device:
                x, y = x.to(self.device), y.to(self.device)
            yield x.float() if not x.is_floating_point() else x, y

    def train_batches(self, gens):
        return self._batches(self.loader)

    def eval_batches(self):
        return self._batches(self.sequential)


def _as_data(data, name, batch_size, device):
    if data is None:
        return None
    if isinstance(data, torch.utils.data.DataLoader):
        return _Loader(data, device, name)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return _Tensors(data[0], data[1], batch_size, device, name)
    raise TypeError(f"{name} must be a torch DataLoader or an (X, y) pair "
                    f"(got {type(data).__name__})")


def _as_probe(probe, device):
    """(x tensor, p_xy array) from (x, p_xy) or (x, labels)."""
    if not isinstance(probe, (tuple, list)) or len(probe) != 2:
        raise TypeError("probe must be (x, p_xy) or (x, labels): the inputs the information is "
                        f"measured on and their joint or labels (got {type(probe).__name__})")
    x = to_tensor(probe[0], device=device)
    table = np.asarray(probe[1].detach().cpu() if isinstance(probe[1], torch.Tensor) else probe[1])
    if table.ndim == 1:
        if not np.issubdtype(table.dtype, np.integer) or (table.size and table.min() < 0):
            bad = table.min() if np.issubdtype(table.dtype, np.number) and table.size else None
            raise ValueError("probe labels must be integers >= 0 (got dtype "
                             f"{table.dtype}, smallest {bad!r})")
        table = joint_from_labels(np.arange(table.size), table)
    return x, check_probe_joint(table, x.shape[0])


# --------------------------------------------------------------------------- the seeds
def _initial_state(model, seed_gen, init):
    """A CPU copy of the model's parameters and buffers, initialised for one seed."""
    member = copy.deepcopy(model).cpu()
    if init == "reset":
        # reset_parameters draws from torch's global generator: fork it, seeded by this seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_from(seed_gen))
            for sub in member.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
    elif init is not None:
        init(member, seed_gen)
    return ({k: v.detach().clone() for k, v in member.named_parameters()},
            {k: v.detach().clone() for k, v in member.named_buffers()})


_Module = TypeVar("_Module", bound=nn.Module)  # the copy has the type given (a Sequential stays one)


def initial_network(model: _Module, seed: int,
                    init: str | Callable[[nn.Module, torch.Generator], object] | None = "reset") -> _Module:
    """A copy of ``model`` as :func:`record_training` initialises it for ``seed`` (on the
    CPU), e.g. the prior centre of the information in the weights."""
    params, buffers = _initial_state(model, torch.Generator().manual_seed(int(seed)), init)
    return load_state(copy.deepcopy(model).cpu(), {**params, **buffers})


def _make_optimizer(optimizer, params, lr, momentum, weight_decay):
    if callable(optimizer):
        return optimizer(params)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for seed ``seed``'s stream named ``purpose``, independent of (and
    drawing nothing from) the generator of its weights and minibatch order."""
    digest = hashlib.sha256(f"dnn.loop/{purpose}/{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class _ModelStreams:
    """Each seed's own random stream for the random layers of its model (dropout).

    Torch's random layers draw from the global generator (the CUDA one on a GPU). Member s's
    forward in training runs with that generator set to s's saved state, which is saved
    back after: s draws the same masks alone, in any ensemble, in any call, and resumed
    (the states travel in the checkpoint). The global state in between (the run's scratch
    inside its ``fork_rng``) is put back, so nothing else shifts the members' streams.
    """

    def __init__(self, seeds: Sequence[int], device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.states: list[list[torch.Tensor]] = []
        scratch = self._get()
        for s in seeds:
            torch.manual_seed(_stream_seed(s, "model"))
            self.states.append(self._get())
        self._set(scratch)

    def _get(self) -> list[torch.Tensor]:
        state = [torch.get_rng_state()]
        if self.cuda:
            state.append(torch.cuda.get_rng_state(self.device))
        return state

    def _set(self, state: Sequence[torch.Tensor]) -> None:
        torch.set_rng_state(state[0])
        if self.cuda:
            torch.cuda.set_rng_state(state[1], self.device)

    @contextmanager
    def member(self, s: int) -> Iterator[None]:
        scratch = self._get()
        self._set(self.states[s])
        try:
            yield
        finally:
            self.states[s] = self._get()
            self._set(scratch)

    @contextmanager
    def fixed(self, seed: int) -> Iterator[None]:
        """The global generator seeded with ``seed`` inside (records, measures), the
        scratch state restored after."""
        with torch.random.fork_rng(devices=[self.device] if self.cuda else []):
            torch.manual_seed(seed)
            yield


class _Members:
    """The seeds' parameters, stacked for vmap (``batched``) or one set per seed."""

    def __init__(self, base, states, batched, make_opt, device, streams=None, trainable=None):
        """``trainable``: the names of the parameters to train (None: all); the others (the
        user's ``requires_grad=False``) stay as initialised, without gradients."""
        self.base, self.batched, self.n = base, batched, len(states)
        self.streams = streams
        train = set(states[0][0]) if trainable is None else set(trainable)
        if batched:
            self.params = [{k: torch.stack([p[k] for p, _ in states]).to(device)
                            .requires_grad_(k in train) for k in states[0][0]}]
            self.buffers = [{k: torch.stack([b[k] for _, b in states]).to(device)
                             for k in states[0][1]}]
        else:
            self.params = [{k: v.to(device).requires_grad_(k in train) for k, v in p.items()}
                           for p, _ in states]
            self.buffers = [{k: v.to(device) for k, v in b.items()} for _, b in states]
        self.opts = [make_opt([v for k, v in p.items() if k in train]) for p in self.params]

    def _call(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def forward(self, x, shared, own_streams=False):
        """Logits (S, B, C) of every member; ``x`` is (B, ...) if shared, else (S, B, ...).

        ``own_streams``: each member draws its random layers from its own stream (training).
        Batched runs have none: vmap refuses random operations ("error"), and such models
        run one by one.
        """
        if self.batched:
            run = vmap(self._call, in_dims=(0, 0, None if shared else 0), randomness="error")
            return run(self.params[0], self.buffers[0], x)
        out = []
        for s, (p, b) in enumerate(zip(self.params, self.buffers)):
            if own_streams and self.streams is not None:
                with self.streams.member(s):
                    out.append(self._call(p, b, x if shared else x[s]))
            else:
                out.append(self._call(p, b, x if shared else x[s]))
        return torch.stack(out)

    def member(self, s):
        """(params, buffers) of member ``s`` (views, for recording)."""
        if self.batched:
            return ({k: v[s] for k, v in self.params[0].items()},
                    {k: v[s] for k, v in self.buffers[0].items()})
        return self.params[s], self.buffers[s]

    def grads(self, groups):
        """One (S, n_params) tensor per group of parameter names."""
        out = []
        for names in groups:
            if self.batched:
                p = self.params[0]
                parts = [(p[k].grad if p[k].grad is not None else torch.zeros_like(p[k]))
                         .reshape(self.n, -1) for k in names]
                out.append(torch.cat(parts, dim=1))
            else:
                out.append(torch.stack([torch.cat([
                    (p[k].grad if p[k].grad is not None else torch.zeros_like(p[k])).reshape(-1)
                    for k in names]) for p in self.params]))
        return out

    def final_state(self) -> dict:
        """{name: (S, ...) numpy array} of every parameter and buffer."""
        if self.batched:
            return {k: v.detach().cpu().numpy()
                    for g in (self.params[0], self.buffers[0]) for k, v in g.items()}
        return {k: np.stack([g[k].detach().cpu().numpy() for g in sets])
                for sets in (self.params, self.buffers) for k in sets[0]}

    def state(self) -> dict:
        return {"params": [{k: v.detach() for k, v in p.items()} for p in self.params],
                "buffers": self.buffers, "optimizers": [o.state_dict() for o in self.opts]}

    @torch.no_grad()
    def load_state(self, st):
        for mine, saved in zip(self.params + self.buffers, st["params"] + st["buffers"]):
            for k, v in mine.items():
                v.copy_(saved[k])
        for opt, saved in zip(self.opts, st["optimizers"]):
            opt.load_state_dict(saved)


def _vmap_refuses(base, states, x, trainable) -> Exception | None:
    """Why a vmapped training step fails on this model (tried on copies, in train mode), or
    None where it runs. Random layers (dropout) fail: vmap runs with randomness="error"."""
    # batched=True stacks the states into new tensors: the trial leaves ``states`` untouched
    trial = _Members(base, states, True, lambda params: None, x.device, trainable=trainable)
    try:
        base.train()
        out = trial.forward(x, shared=True)
        out.float().sum().backward()
        return None
    except Exception as exc:  # vmap refuses many model features; each raises its own type
        return exc


# --------------------------------------------------------------------------- the step
def minibatches(n: int, batch_size: int, generator: torch.Generator | Sequence[torch.Generator],
                device: str | torch.device = "cpu") -> tuple:
    """One epoch's minibatches of row indices: ``range(n)`` shuffled, then cut in order.

    Parameters
    ----------
    n : number of rows.
    batch_size : rows per minibatch (the last one may be smaller).
    generator : the CPU ``torch.Generator`` that draws the permutation, or a list of them
        (one permutation each, stacked: every minibatch is then (len(generator), b)).
    device : where the indices go. They are drawn on the CPU, so every device sees the same
        order.

    Returns
    -------
    tuple of int64 tensors, each (b,), or (S, b) for a list of generators.
    """
    if isinstance(generator, torch.Generator):
        return torch.randperm(n, generator=generator).to(device).split(batch_size)
    rows = torch.stack([torch.randperm(n, generator=g) for g in generator]).to(device)
    return rows.split(batch_size, dim=1)


def fit(params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        loss_of_batch: Callable[[torch.Tensor], torch.Tensor], n: int, *, epochs: int,
        batch_size: int, generator: torch.Generator,
        optimizer: str | Callable[..., torch.optim.Optimizer] = "adam", lr: float = 1e-3,
        momentum: float = 0.0, weight_decay: float = 0.0, min_rows: int = 1,
        device: str | torch.device = "cpu", on_epoch: Callable[[int], object] | None = None) -> None:
    """Minimise a loss over ``n`` rows by minibatch SGD or Adam, in place.

    Every epoch draws a fresh order of the rows from ``generator`` (:func:`minibatches`),
    then takes one optimizer step on ``loss_of_batch(idx)`` per minibatch ``idx``
    (zero_grad, backward, step): the step of :func:`record_training`, which draws its
    minibatch orders and builds its optimizers the same way.

    Parameters
    ----------
    params : the tensors to train (leaves with ``requires_grad``), or torch parameter groups
        (dicts, each with its own options such as ``lr``).
    loss_of_batch : callable ``idx -> scalar loss tensor`` for the row indices ``idx``. It
        may draw from ``generator`` too: its draws follow the epoch's permutation.
    n : number of rows.
    epochs : passes over the rows (0 trains nothing).
    batch_size : rows per minibatch (the last one of an epoch may be smaller).
    generator : the CPU ``torch.Generator`` of the minibatch order.
    optimizer, lr, momentum, weight_decay : "adam" or "sgd" with these settings (momentum
        for "sgd" only), or a callable ``params -> torch.optim.Optimizer``.
    min_rows : minibatches with fewer rows are skipped (batch norm needs 2).
    device : where the indices go.
    on_epoch : optional callable ``on_epoch(epoch)`` after every epoch (counted from 1).
    """
    opts = [_make_optimizer(optimizer, params, lr, momentum, weight_decay)]
    for epoch in range(1, epochs + 1):
        batches = (idx for idx in minibatches(n, batch_size, generator, device)
                   if len(idx) >= min_rows)
        _descend(batches, loss_of_batch, opts)
        if on_epoch is not None:
            on_epoch(epoch)


def _descend(batches: Iterable, loss_of_batch: Callable[[Any], torch.Tensor],
             opts: Sequence[torch.optim.Optimizer],
             after_backward: Callable[[], object] | None = None) -> None:
    """The step of every training loop here: per minibatch, the loss, zero_grad, backward,
    ``after_backward()`` (gradient statistics), then one step of every optimizer."""
    for batch in batches:
        loss = loss_of_batch(batch)
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            after_backward()
        for opt in opts:
            opt.step()


# --------------------------------------------------------------------------- records
class _Records:
    """Per-record lists, convertible to and from plain tensors for the checkpoint."""

    SCALARS = ("train_loss", "test_loss", "train_acc", "test_acc",
               "grad_mean_norm", "grad_std_norm", "grad_snr", "grad_n_batches")

    def __init__(self, keys, keep_activations: int):
        self.measures: dict = {}
        self.epochs: list = []
        self.est_time: list = []
        self.data: dict[str, list] = {k: [] for k in self.SCALARS}
        self.info: dict[str, dict[str, list]] = {k: {"i_xt": [], "i_ty": [], "n_clusters": []} for k in keys}
        self.keep_activations = int(keep_activations)
        self.acts: dict = {}
        self.last_acts: dict = {}

    def append(self, epoch, scalars, info, acts, est_time, measures):
        for name, values in measures.items():
            self.measures.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
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
                "measures": {k: [t(a) for a in v] for k, v in self.measures.items()},
                "data": {k: [t(a) for a in v] for k, v in self.data.items()},
                "info": {key: {q: [t(a) for a in v] for q, v in d.items()}
                         for key, d in self.info.items()},
                "acts": {k: [t(a) for a in v] for k, v in self.acts.items()},
                "last_acts": {k: t(a) for k, a in self.last_acts.items()}}

    def load_state(self, st):
        self.epochs = list(st["epochs"])
        self.est_time = list(st["est_time"])
        self.measures = {k: [a.numpy() for a in v] for k, v in st["measures"].items()}
        self.data = {k: [a.numpy() for a in v] for k, v in st["data"].items()}
        self.info = {key: {q: [a.numpy() for a in v] for q, v in d.items()}
                     for key, d in st["info"].items()}
        self.acts = {k: [a.numpy() for a in v] for k, v in st["acts"].items()}
        self.last_acts = {k: a.numpy() for k, a in st["last_acts"].items()}


# --------------------------------------------------------------------------- validation
def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low} (got {value!r})")
    return int(value)


def _check_number(name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'} "
                         f"(got {value!r})")
    return float(value)


def _check_seeds(seeds: int | Iterable[int]) -> tuple[int, ...]:
    seeds = (seeds,) if isinstance(seeds, (int, np.integer)) else tuple(seeds)
    if not seeds or any(isinstance(s, bool) or int(s) != s or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers >= 0 (got {seeds!r})")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (got {seeds})")
    return tuple(int(s) for s in seeds)


def resolve_estimators(estimators: EstimatorSpec | Iterable[EstimatorSpec] | None) -> list[Binning | KDE]:
    """Estimator instances from instances, names or spec dicts (default ``[Binning(30)]``)."""
    if estimators is None:
        return [Binning(30)]
    if isinstance(estimators, (str, dict)) or hasattr(estimators, "estimate"):
        estimators = [estimators]  # type: ignore[list-item]  # (one spec: hasattr keeps Iterable)
    ests = [make_estimator(e) for e in estimators]
    keys = [k for e in ests for k in e.keys]
    if len(set(keys)) != len(keys):
        raise ValueError(f"estimators must produce distinct keys (got {keys}); use one "
                         "binning and at most one KDE per run, and sensitivity() for sweeps")
    return ests


def _with_layer_bounds(estimator, bounds):
    """``estimator`` where it is not an "auto" Binning, else that Binning with the ranges of
    the layers its own ``bounds`` do not name filled in from ``bounds``."""
    if estimator.name != "binning" or "bounds" not in estimator.knobs:
        return estimator
    return make_estimator({**estimator.spec(), "bounds": {**bounds, **estimator.bounds}})


def _check_layers(layers) -> list[str]:
    """A list of layer names from one name or an iterable of them."""
    if isinstance(layers, str):
        return [layers]  # one name, not its characters
    try:
        out = list(layers)
    except TypeError:
        raise TypeError("layers must be a submodule name, a list of them or a callable "
                        f"model -> names (got {type(layers).__name__})") from None
    if not out:
        raise ValueError("layers must name at least one submodule to record (got [])")
    bad = [n for n in out if not isinstance(n, str)]
    if bad:
        raise TypeError(f"layers must be submodule names (str) (got {bad!r})")
    return out


def _check_output(base, state, x, default_loss) -> int | None:
    """The number of outputs of the model on a few probe rows (eval mode, no gradient,
    each submodule's mode restored), checked to be class logits (B, C); None where a
    custom loss takes other outputs."""
    training = {m: m.training for m in base.modules()}
    params, buffers = ({k: v.to(x.device) for k, v in part.items()} for part in state)
    base.eval()
    try:
        with torch.no_grad():
            out = functional_call(base, (params, buffers), (x,))
    finally:
        for m, mode in training.items():
            m.training = mode
    if not isinstance(out, torch.Tensor):
        raise TypeError("model's forward must return one tensor of class logits (B, C) "
                        f"(got {type(out).__name__}); wrap a model that returns several "
                        "outputs in a module that returns the logits")
    if out.ndim < 1 or out.shape[0] != x.shape[0]:
        raise ValueError(f"model's forward must return (B, C) logits for B={x.shape[0]} "
                         f"inputs (got shape {tuple(out.shape)})")
    if not default_loss:
        return None
    if out.ndim != 2:
        raise ValueError(f"model's forward must return (B, C) class logits for the "
                         f"cross-entropy (got shape {tuple(out.shape)}); pass loss= for "
                         "other outputs")
    return int(out.shape[1])


def _check_targets(y: torch.Tensor, n_classes: int | None, name: str) -> None:
    """Class indices in [0, n_classes), or probabilities (N, n_classes); ``n_classes`` None
    (a custom loss) checks nothing."""
    if n_classes is None or y.numel() == 0:
        return
    if y.is_floating_point():
        if y.ndim != 2 or y.shape[1] != n_classes:
            raise ValueError(f"{name}'s targets must be class indices (N,) or class "
                             f"probabilities (N, {n_classes}) for the model's {n_classes} "
                             f"outputs (got float targets of shape {tuple(y.shape)})")
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= n_classes:
        raise ValueError(f"{name}'s targets must be class indices in [0, {n_classes}) for "
                         f"the model's {n_classes} outputs (got {lo if lo < 0 else hi})")


def _transform(fn, layer):
    if fn == "softmax":
        return lambda t: torch.softmax(t, dim=-1)
    if callable(fn):
        return fn
    raise ValueError(f"transforms[{layer!r}] must be 'softmax' or a callable (got {fn!r})")


# --------------------------------------------------------------------------- the entry
def record_training(model: nn.Module,
                    train_data: torch.utils.data.DataLoader | Sequence[ArrayLike | torch.Tensor], *,
                    layers: Sequence[str] | Callable[[nn.Module], Iterable[str]],
                    probe: Sequence[ArrayLike | torch.Tensor], epochs: int,
                    optimizer: str | Callable[..., torch.optim.Optimizer] = "adam",
                    lr: float = 1e-3, momentum: float = 0.0,
                    weight_decay: float = 0.0, lr_decay: float = 1.0, batch_size: int = 256,
                    seeds: int | Iterable[int] = (0,),
                    init: str | Callable[[nn.Module, torch.Generator], object] | None = "reset",
                    transforms: Mapping[str, str | Callable[[torch.Tensor], torch.Tensor]] | None = None,
                    test_data: torch.utils.data.DataLoader | Sequence[ArrayLike | torch.Tensor] | None = None,
                    estimators: EstimatorSpec | Iterable[EstimatorSpec] | None = None,
                    n_records: int = 40, record_epochs: Sequence[int] | np.ndarray | None = None,
                    batched: bool | str = "auto", keep_activations: bool | int = False,
                    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                    measures: Mapping[str, Callable[[nn.Module], float | Mapping[str, float]]] | None = None,
                    out_dir: str | os.PathLike[str] | None = None, resume: bool = False,
                    checkpoint_interval_s: float = 60.0, device: str | torch.device = "cpu",
                    callback: Callable[[int], object] | None = None,
                    n_threads: int | None = None, name: str | None = None,
                    settings: dict | None = None) -> Recording:
    """Train ``model`` once per seed and record its layers on the information plane (bits).

    Parameters
    ----------
    model : any ``nn.Module`` whose forward takes a batch of inputs and returns class
        logits (B, C). It is copied, never trained in place.
    train_data : a ``DataLoader`` yielding (inputs, targets), or an (X, y) pair of tensors or
        arrays; targets are class indices (N,) or class probabilities (N, C). Training
        iterates the DataLoader (every seed the same minibatches); the losses and accuracies
        come from a sequential pass over its dataset, which leaves its sampler and generator
        alone. A DataLoader that shuffles without a generator draws from torch's global
        state (read as the caller left it, never advanced).
    layers : names of the submodules to record (see ``model.named_modules()``), in
        feed-forward order, or a callable ``model -> names``. Hooked with forward hooks.
    probe : (x, p_xy) or (x, labels): the inputs the information is measured on and their
        joint p(x, y) (rows = probe rows, e.g. from :func:`dnn.joint_from_labels`); labels
        (N,) stand for the joint with uniform p(x).
    epochs : passes over the training data.
    optimizer : "adam", "sgd" (with ``lr``, ``momentum``, ``weight_decay``) or a callable
        ``params -> torch.optim.Optimizer`` (elementwise optimizers only when batched).
    lr_decay : after every epoch, every parameter group's learning rate is multiplied by
        this: epoch t (counted from 1) runs at ``lr * lr_decay**(t - 1)``, the exponential
        annealing of Achille, Rovere & Soatto (2019). 1 (the default) keeps it constant. The
        rate lives in the optimizer's state, so a resumed run continues the schedule.
    batch_size : minibatch size for (X, y) data (a DataLoader has its own).
    seeds : one network per seed; each seed's generator draws its initial weights and
        minibatch order, and a stream of its own its random layers (dropout). A seed trains
        the same alone or in any list of seeds. Torch's global random state is left as it
        was.
    init : "reset" (every submodule's ``reset_parameters``, drawn from the seed), None (the
        model's own weights for every seed) or a callable ``(module, generator)``.
        Parameters with ``requires_grad=False`` stay frozen: not optimised, and absent from
        the gradient statistics (a module with no trainable parameter is not one of
        ``grad_layers``). "reset" redraws them too: pass None to keep given frozen weights.
    transforms : {layer: "softmax" or callable} applied to a layer's output before it is
        measured (a softmax on logits).
    test_data : like ``train_data``, for the test loss and accuracy (NaN without it).
    estimators : Binning / KDE instances, names or spec dicts (default ``[Binning(30)]``).
        A binning of range "auto" bins each layer whose range its module states (Tanh,
        Sigmoid, Hardtanh, ..., or a "softmax" transform; :func:`dnn.estimators.layer_bounds`)
        in n_bins equal bins over that range, and every other layer in bins of fixed width:
        the ranges are filled in here for the layers its ``bounds`` do not name (the ones
        it names keep the given range, or None for fixed width). The recording's knobs
        state the rule per layer.
    n_records, record_epochs : record ``n_records`` log-spaced epochs (0 and the last
        included), or exactly the epochs listed in ``record_epochs``.
    batched : True (vmap the seeds; a ValueError where the model cannot be vmapped, e.g.
        dropout), False (one by one) or "auto" (vmap where it works).
    keep_activations : also keep the probe activations at every record (float32): True for
        every seed, an int k for the first k. The last record's are always kept.
    loss : a callable ``(logits, targets) -> per-row loss`` in nats (default: the
        cross-entropy, with class indices or probabilities).
    measures : {name: callable(module) -> float or {key: float}} taken at every record on a
        copy of each seed's network (e.g. a Fisher trace), kept in ``recording.measures``
        as (E, S) arrays named ``name`` or ``name_key``.
    out_dir : directory for ``checkpoint.pt``, written atomically at every recorded epoch
        and at least every ``checkpoint_interval_s`` seconds; ``resume=True`` continues the
        run there and gives the same Recording as an uninterrupted one: for (X, y) data, and
        for a DataLoader that is sequential or shuffles with a ``torch.Generator`` (its state
        is in the checkpoint). A DataLoader that shuffles from torch's global random state
        cannot be repeated: resuming it warns. The checkpoint holds a fingerprint of the data
        (a TensorDataset's tensors, else the batches of one sequential pass): resuming with
        other data, or other settings, is a ValueError. An existing run with resume=False is
        an error.
    device : "cpu", "cuda", "auto", ...; callback : ``callback(epoch)`` after every epoch
        (an exception it raises stops the run, which can then be resumed).
    n_threads : torch intra-op threads during the run (None leaves torch's setting).
    name, settings : a title and JSON-ready metadata stored in the Recording (and compared
        when resuming).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    epochs = _check_int("epochs", epochs, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    seeds = _check_seeds(seeds)
    if not (callable(optimizer) or optimizer in OPTIMIZERS):
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or a callable "
                         f"(got {optimizer!r})")
    lr = _check_number("lr", lr, positive=True)
    momentum = _check_number("momentum", momentum)
    weight_decay = _check_number("weight_decay", weight_decay)
    lr_decay = _check_number("lr_decay", lr_decay, positive=True)
    if batched not in (True, False, "auto"):
        raise ValueError(f"batched must be True, False or 'auto' (got {batched!r})")
    if not (init in ("reset", None) or callable(init)):
        raise ValueError(f"init must be 'reset', None or a callable (got {init!r})")
    if record_epochs is None:
        rec_epochs = log_epochs(epochs, _check_int("n_records", n_records, 2))
    else:
        rec_epochs = np.unique(np.asarray(record_epochs, dtype=np.int64))
        if rec_epochs.size == 0 or rec_epochs[0] < 0 or rec_epochs[-1] > epochs:
            raise ValueError(f"record_epochs must list epochs in [0, epochs={epochs}] "
                             f"(got {list(record_epochs)})")
    if keep_activations is True:
        keep_activations = len(seeds)
    keep_activations = min(_check_int("keep_activations", int(keep_activations or 0), 0),
                           len(seeds))
    dev = resolve_device(device)
    names = dict(model.named_modules())
    layers = _check_layers(layers(model) if callable(layers) else layers)
    missing = [n for n in layers if n not in names]
    if missing:
        raise ValueError(f"layers {missing} are not submodules of the model "
                         f"(available: {[n for n in names if n]})")
    transforms = dict(transforms or {})
    unknown = [k for k in transforms if k not in layers]
    if unknown:
        raise ValueError(f"transforms names layers {unknown} that are not recorded "
                         f"(layers: {layers})")
    bounds = layer_bounds(model, layers, transforms)
    ests = [_with_layer_bounds(e, bounds) for e in resolve_estimators(estimators)]
    transforms = {k: _transform(v, k) for k, v in transforms.items()}
    train = _as_data(train_data, "train_data", batch_size, dev)
    test = _as_data(test_data, "test_data", batch_size, dev)
    if train is None:
        raise TypeError("train_data must be a torch DataLoader or an (X, y) pair (got None)")
    x_probe, p_xy = _as_probe(probe, dev)
    loss_fn = loss if loss is not None else (
        lambda logits, y: F.cross_entropy(logits, y, reduction="none"))
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no parameter to train (every parameter has "
                         "requires_grad=False)")
    grad_groups = {}  # per module, its parameters that train (frozen ones have no gradient)
    for mod_name, mod in model.named_modules():
        own = [p for p, t in mod.named_parameters(recurse=False) if t.requires_grad]
        if own:
            grad_groups[mod_name or "model"] = [f"{mod_name}.{p}" if mod_name else p for p in own]
    settings = dict(settings or {})
    settings.update({
        "optimizer": optimizer if isinstance(optimizer, str) else repr(optimizer),
        "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
        "batch_size": batch_size if isinstance(train, _Tensors) else train.loader.batch_size,
        "epochs": epochs, "record_epochs": [int(e) for e in rec_epochs],
        "init": init if init in ("reset", None) else getattr(init, "__name__", repr(init)),
        "loss": "cross_entropy" if loss is None else getattr(loss, "__name__", repr(loss)),
        "model": type(model).__name__})
    if lr_decay != 1.0:  # absent at 1: the settings (and checkpoint headers) of before
        settings["lr_decay"] = lr_decay
    fingerprint = None
    if out_dir is not None:  # only a checkpoint's header needs it (a DataLoader: one pass)
        h = hashlib.sha256()
        for part in (train, test):
            if part is not None:
                part.fingerprint(h)
        h.update(np.ascontiguousarray(p_xy).tobytes())
        fingerprint = h.hexdigest()[:16]
    header = {"format_version": FORMAT_VERSION, "settings": settings,
              "data_fingerprint": fingerprint, "seeds": list(seeds),
              "estimators": [e.spec() for e in ests], "layers": layers,
              "keep_activations": keep_activations}
    # the caller's global random state is read (a DataLoader without its own generator
    # shuffles from it) but never advanced: every seed draws from its own streams
    with torch_threads(n_threads), \
            torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        run = _Run(model, train, test, x_probe, p_xy, layers, transforms, ests, seeds, init,
                   optimizer, (lr, momentum, weight_decay), batched, keep_activations,
                   loss_fn, grad_groups, dict(measures or {}), dev, lr_decay, loss is None)
        return run.go(epochs, rec_epochs, out_dir, resume, header, callback, name, settings,
                      float(checkpoint_interval_s))


class _Run:
    def __init__(self, model, train, test, x_probe, p_xy, layers, transforms, ests, seeds,
                 init, optimizer, hyper, batched, keep_activations, loss_fn, grad_groups,
                 measures, dev, lr_decay, default_loss):
        self.train, self.test, self.x_probe, self.p_xy = train, test, x_probe, p_xy
        self.lr_decay = lr_decay
        self.measures = measures
        self.layers, self.ests, self.seeds, self.loss_fn = layers, ests, seeds, loss_fn
        self.grad_names = list(grad_groups)
        self.grad_groups = [grad_groups[g] for g in self.grad_names]
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.streams = _ModelStreams(seeds, dev)
        trainable = {k for k, p in model.named_parameters() if p.requires_grad}
        self.warned_one_batch = False
        states = [_initial_state(model, g, init) for g in self.gens]
        self.base = copy.deepcopy(model).to(dev)
        n_classes = _check_output(self.base, states[0], x_probe[:8], default_loss)
        for data in (train, test):
            if data is not None:
                data.check_targets(n_classes)
        if batched in ("auto", True):
            refused = _vmap_refuses(self.base, states, x_probe[:8], trainable)
            if refused is not None and batched is True:
                raise ValueError("batched=True but this model cannot be vmapped "
                                 f"({type(refused).__name__}: {refused}); random layers such "
                                 "as dropout and data-dependent control flow run one by one: "
                                 "pass batched='auto' or False") from refused
            if refused is not None:
                logger.info("the seeds run one by one: this model cannot be vmapped (%s: %s)",
                            type(refused).__name__, refused)
            batched = refused is None
        self.members = _Members(self.base, states, batched,
                                lambda params: _make_optimizer(optimizer, params, *hyper), dev,
                                self.streams, trainable)
        self.recorder = LayerRecorder(self.base, layers, transforms)
        self.stats = GradientStats(len(self.grad_groups))
        self.keys = [k for e in ests for k in e.keys]
        self.records = _Records(self.keys, keep_activations)
        self.epoch = 0
        self.device = dev
        params, buffers = self.members.member(0)
        order = execution_order(self.base, self.grad_names + layers, lambda: functional_call(
            self.base, (params, buffers), (x_probe[:1],)))
        self.grad_layer_of = []
        for layer in layers:  # the last parametrised module to finish before (or as) it
            done = order[:order.index(layer) + 1] if layer in order else []
            fed = [g for g in done if g in self.grad_names]
            self.grad_layer_of.append(fed[-1] if fed else "")

    # ---- training
    def train_epoch(self, record_grads):
        if record_grads:
            self.stats.reset()
        self.base.train()
        shared = self.train.shared

        def loss_of_batch(batch):
            xb, yb = batch
            logits = self.members.forward(xb, shared, own_streams=True)
            return self._row_losses(logits, yb, shared).mean(dim=1).sum()

        _descend(self.train.train_batches(self.gens), loss_of_batch, self.members.opts,
                 (lambda: self.stats.add(self.members.grads(self.grad_groups)))
                 if record_grads else None)
        if record_grads and self.stats.count < 2 and not self.warned_one_batch:
            self.warned_one_batch = True
            warnings.warn("one minibatch per epoch: the gradient statistics (mean and spread "
                          "over an epoch's minibatches) need two and are NaN; lower "
                          "batch_size below the training rows", RuntimeWarning, stacklevel=2)
        if self.lr_decay != 1.0:
            for opt in self.members.opts:
                for group in opt.param_groups:
                    group["lr"] *= self.lr_decay
        self.epoch += 1

    def _row_losses(self, logits, yb, shared):
        """(S, B) per-row losses of the logits (S, B, C); ``yb`` is (B, ...) if shared, else
        (S, B, ...)."""
        s, b = logits.shape[:2]
        y = yb.unsqueeze(0).expand(s, *yb.shape) if shared else yb
        per = self.loss_fn(logits.reshape(s * b, -1), y.reshape(s * b, *y.shape[2:]))
        return per.reshape(s, b)

    @torch.no_grad()
    def _evaluate(self, data):
        """Per-member mean loss (bits) and accuracy on ``data``."""
        n_members = len(self.seeds)
        if data is None:
            return np.full(n_members, np.nan), np.full(n_members, np.nan)
        total = torch.zeros(n_members, dtype=torch.float64, device=self.device)
        correct = torch.zeros_like(total)
        rows = 0
        for xb, yb in data.eval_batches():
            logits = self.members.forward(xb, shared=True)
            b = logits.shape[1]
            total += self._row_losses(logits, yb, True).double().sum(dim=1)
            labels = yb.argmax(dim=-1) if yb.is_floating_point() else yb
            correct += (logits.argmax(dim=-1) == labels.unsqueeze(0)).double().sum(dim=1)
            rows += b
        return (total / rows / LN2).cpu().numpy(), (correct / rows).cpu().numpy()

    @torch.no_grad()
    def _activations(self):
        """{layer: (S, N, width) float64 array} on the probe."""
        per_member = []
        for s in range(len(self.seeds)):
            params, buffers = self.members.member(s)
            chunks = []
            for start in range(0, self.x_probe.shape[0], EVAL_CHUNK):
                with self.recorder:
                    functional_call(self.base, (params, buffers),
                                    (self.x_probe[start:start + EVAL_CHUNK],))
                missing = [n for n in self.layers if n not in self.recorder.outputs]
                if missing:
                    raise RuntimeError(f"layers {missing} were not called in the forward pass")
                chunks.append({n: self.recorder.outputs[n].flatten(1) for n in self.layers})
            per_member.append({n: torch.cat([c[n] for c in chunks]) for n in self.layers})
        return {n: torch.stack([m[n] for m in per_member]).double().cpu().numpy()
                for n in self.layers}

    def record(self):
        """Measure every seed's network now: losses, the statistics of the gradients of the
        minibatches of the epoch just trained (none at epoch 0), the layers' information.
        Anything random in here (a model random in eval mode, a measure that samples) draws
        from streams fixed by the epoch (a measure: by its seed and the epoch), never from
        the members' training streams."""
        with self.streams.fixed(_stream_seed(self.epoch, "record")):
            self._record()

    def _record(self):
        self.base.eval()
        scalars = dict(zip(("grad_mean_norm", "grad_std_norm", "grad_snr"),
                           self.stats.result(len(self.seeds))))
        scalars["grad_n_batches"] = self.stats.count
        for part, data in (("train", self.train), ("test", self.test)):
            scalars[f"{part}_loss"], scalars[f"{part}_acc"] = self._evaluate(data)
        acts = self._activations()
        t0 = time.perf_counter()
        info = {}
        for est in self.ests:
            for key, d in estimate_ensemble(est, acts, self.p_xy).items():
                info[key] = {q: d[q] for q in ("i_xt", "i_ty", "n_clusters")}
                bad = [v for r in d["estimates"] for v in r.ceiling_violations]
                if bad and est.exact:
                    logger.error("epoch %d: %s estimates above their ceilings: %s",
                                 self.epoch, key, bad[:3])
        est_time = time.perf_counter() - t0
        self.records.append(self.epoch, scalars, info, acts, est_time, self._measures())

    def _member_module(self, s) -> nn.Module:
        """A copy of the model holding seed ``s``'s parameters and buffers."""
        params, buffers = self.members.member(s)
        return load_state(copy.deepcopy(self.base), {**params, **buffers})

    def _measures(self) -> dict:
        """{name: (S,) values} of the user's measures on every seed's network."""
        out: dict = {}
        if not self.measures:
            return out
        for s in range(len(self.seeds)):
            module = self._member_module(s)
            for name, fn in self.measures.items():
                with self.streams.fixed(_stream_seed(self.seeds[s], f"measures/{self.epoch}")):
                    value = fn(module)
                items = value.items() if isinstance(value, dict) else [(None, value)]
                for key, v in items:
                    out.setdefault(name if key is None else f"{name}_{key}", []).append(float(v))
        return out

    # ---- checkpoint
    def state(self) -> dict:
        return {"epoch": self.epoch, "members": self.members.state(),
                "generators": [g.get_state() for g in self.gens],
                "model_streams": self.streams.states,
                "loader_generators": [g.get_state() for g in self._loader_generators()],
                "records": self.records.state()}

    def load_state(self, st):
        self.epoch = int(st["epoch"])
        self.members.load_state(st["members"])
        for g, s in zip(self.gens, st["generators"]):
            g.set_state(s)
        self.streams.states = [list(s) for s in st["model_streams"]]
        mine = self._loader_generators()
        if len(mine) != len(st["loader_generators"]):
            raise ValueError(f"cannot resume: the checkpoint holds the state of "
                             f"{len(st['loader_generators'])} generators of train_data's "
                             f"DataLoader, which now has {len(mine)}")
        for g, saved in zip(mine, st["loader_generators"]):
            g.set_state(saved)
        self.records.load_state(st["records"])

    def _loader_generators(self) -> list[torch.Generator]:
        return self.train.generators() if isinstance(self.train, _Loader) else []

    def go(self, epochs, rec_epochs, out_dir, resume, header, callback, name, settings,
           checkpoint_interval_s):
        t_start = time.perf_counter()
        ckpt = _open_checkpoint(out_dir, resume, header)
        if ckpt is not None and os.path.exists(ckpt):
            st = torch.load(ckpt, map_location="cpu", weights_only=True)
            _check_header(st["header"], header, ckpt)
            self.load_state(st["run"])
            logger.info("resumed %s at epoch %d", ckpt, self.epoch)
            if isinstance(self.train, _Loader) and self.train.order_from_global_state() \
                    and self.epoch < epochs:
                warnings.warn("train_data's DataLoader shuffles without a torch.Generator: "
                              "its order comes from torch's global random state, which the "
                              "checkpoint does not hold, so the resumed epochs differ from "
                              "an uninterrupted run; give the DataLoader "
                              "generator=torch.Generator().manual_seed(...) for an exact "
                              "resume", RuntimeWarning, stacklevel=3)
        record_set = set(int(e) for e in rec_epochs)
        if self.epoch == 0 and not self.records.epochs and 0 in record_set:
            # no minibatch yet (count 0): the statistics are all NaN
            self.record()
            _save(ckpt, header, self)
        last_save = time.perf_counter()
        while self.epoch < epochs:
            rec = (self.epoch + 1) in record_set
            self.train_epoch(record_grads=rec)
            if rec:
                self.record()
            if rec or self.epoch == epochs or \
                    time.perf_counter() - last_save > checkpoint_interval_s:
                _save(ckpt, header, self)
                last_save = time.perf_counter()
            if callback is not None:
                callback(self.epoch)
        return self.assemble(time.perf_counter() - t_start, name, settings)

    def assemble(self, wall, name, settings) -> Recording:
        r = self.records
        data: dict[str, Any] = {k: np.stack(r.data[k]) for k in _Records.SCALARS}
        data["grad_n_batches"] = data["grad_n_batches"].astype(np.int64)
        info = {key: {q: np.stack(r.info[key][q]) for q in ("i_xt", "i_ty", "n_clusters")}
                for key in self.keys}
        acts = ({layer: np.stack(r.acts[layer]) for layer in self.layers}
                if r.keep_activations else None)
        return Recording(
            epochs=np.asarray(r.epochs), seeds=self.seeds, layers=tuple(self.layers),
            layer_widths=tuple(int(r.last_acts[n].shape[-1]) for n in self.layers), info=info,
            estimators=tuple(e.spec() for e in self.ests),
            exact_keys=tuple(k for e in self.ests if e.exact for k in e.keys),
            grad_layers=tuple(self.grad_names), grad_layer_of=tuple(self.grad_layer_of),
            p_xy=self.p_xy, estimate_time_s=np.asarray(r.est_time),
            final_activations=dict(r.last_acts), activations=acts, settings=settings,
            measures={k: np.stack(v) for k, v in r.measures.items()},
            final_state=self.members.final_state(),
            name=name or settings.get("model", "network"), batched=self.members.batched,
            device=str(self.device), wall_time_s=wall, **data)


def _open_checkpoint(out_dir, resume, header):
    if out_dir is None:
        return None
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, CHECKPOINT)
    if os.path.exists(path) and not resume:
        raise ValueError(f"out_dir {out_dir!r} already holds a run ({CHECKPOINT}); pass "
                         "resume=True to continue it or choose another out_dir")
    if resume and not os.path.exists(path):
        logger.info("resume=True but %s has no checkpoint; starting afresh", out_dir)
    return path


def _save(path, header, run):
    if path is None:
        return
    tmp = path + ".tmp"
    torch.save({"header": header, "run": run.state()}, tmp)
    os.replace(tmp, path)


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_header(saved, current, path):
    if saved.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {path!r} has format_version {saved.get('format_version')} "
                         f"(this code writes {FORMAT_VERSION})")
    saved_flat = _flat(json.loads(json.dumps(saved)))
    now_flat = _flat(json.loads(json.dumps(current)))
    diff = [k for k in sorted(set(saved_flat) | set(now_flat))
            if saved_flat.get(k) != now_flat.get(k)]
    if diff:
        detail = ", ".join(f"{k}: saved {saved_flat.get(k)!r}, now {now_flat.get(k)!r}"
                           for k in diff)
        data = ("; data_fingerprint: train_data, test_data or the probe hold other data "
                "than the saved run's") if "data_fingerprint" in diff else ""
        raise ValueError(f"cannot resume {path!r}: the run differs ({detail}){data}")
