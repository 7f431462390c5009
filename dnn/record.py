"""What is recorded during training: layer outputs via forward hooks, the epochs to record,
and the per-layer statistics of the gradients over an epoch's minibatches."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)


def log_epochs(epochs: int, n_records: int) -> np.ndarray:
    """Sorted distinct epochs 0 .. ``epochs`` spaced evenly in log(epoch), at most ``n_records``.

    Epoch 0 is the initial network; ``epochs`` (the last) is always included.
    """
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer (got {epochs!r})")
    if isinstance(n_records, bool) or int(n_records) != n_records or n_records < 2:
        raise ValueError(f"n_records must be an integer >= 2 (got {n_records!r})")
    epochs, n_records = int(epochs), int(n_records)
    if n_records >= epochs + 1:
        return np.arange(epochs + 1)
    # grow the number of log-spaced points until rounding leaves n_records distinct epochs
    k = n_records - 1
    out = np.array([0, epochs])
    while k <= 10 * n_records:
        pts = np.unique(np.round(np.logspace(0.0, math.log10(epochs), k)).astype(np.int64))
        cand = np.unique(np.concatenate([[0], pts, [epochs]]))
        if cand.size > n_records:
            break
        out = cand
        k += 1
    return out


class LayerRecorder:
    """Forward hooks on named submodules of any ``nn.Module``; keeps their latest outputs.

    >>> rec = LayerRecorder(model, ["act1", "act2"])
    >>> with rec:                      # hooks live only inside the block
    ...     model(x)
    >>> rec.outputs["act1"]            # detached tensor

    ``transforms`` maps a layer name to a function applied to its output before it is kept
    (e.g. a softmax for the output layer). Unknown names raise with the available ones.
    """

    def __init__(self, module: nn.Module, layers: Iterable[str],
                 transforms: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None) -> None:
        names = dict(module.named_modules())
        layers = list(layers)
        missing = [name for name in layers if name not in names]
        if missing:
            available = [n for n in names if n]
            raise ValueError(f"layers {missing} are not submodules of the model "
                             f"(available: {available})")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers must be distinct (got {layers})")
        self.module = module
        self.layers = layers
        self.transforms = dict(transforms or {})
        self.outputs: dict = {}
        self._handles = []
        self._modules = names

    def _hook(self, name):
        def hook(_module, _inputs, output):
            out = output.detach()
            if name in self.transforms:
                out = self.transforms[name](out)
            self.outputs[name] = out
        return hook

    def __enter__(self):
        self.outputs = {}
        for name in self.layers:
            self._handles.append(self._modules[name].register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return False

    @torch.no_grad()
    def capture(self, *inputs: Any) -> dict[str, torch.Tensor]:
        """Run the module on ``inputs`` with the hooks on; return {layer: output}."""
        with self:
            self.module(*inputs)
        missing = [name for name in self.layers if name not in self.outputs]
        if missing:
            raise RuntimeError(f"layers {missing} were not called in the forward pass")
        return dict(self.outputs)


class GradientStats:
    """Per-layer statistics of the minibatch gradients over one epoch, per ensemble member.

    For each layer (its parameters flattened together) and member, with g_b the minibatch
    gradient and mean and (population) standard deviation taken elementwise over the
    epoch's minibatches: ``mean_norm = |mean_b g_b|``, ``std_norm = |std_b g_b|`` (Euclidean
    norms) and ``snr = mean_norm / std_norm``. High = drift phase, low = diffusion phase.
    Not cumulative: :meth:`reset` at the start of each recorded epoch. Accumulates in
    float64.
    """

    def __init__(self, n_layers: int):
        self.n_layers = int(n_layers)
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self._sum: list[torch.Tensor | None] = [None] * self.n_layers
        self._sumsq: list[torch.Tensor | None] = [None] * self.n_layers

    @torch.no_grad()
    def add(self, grads: Iterable[torch.Tensor]) -> None:
        """Add one minibatch: ``grads`` lists one (n_members, n_params) tensor per layer."""
        for i, g in enumerate(grads):
            g = g.double()
            total, total_sq = self._sum[i], self._sumsq[i]
            if total is None or total_sq is None:
                self._sum[i] = g.clone()
                self._sumsq[i] = g * g
            else:  # in place, as the lists hold them
                total += g
                total_sq += g * g
        self.count += 1

    @torch.no_grad()
    def result(self, n_members: int) -> tuple[np.ndarray, ...]:
        """(mean_norm, std_norm, snr), each (n_members, n_layers) float64; NaN with fewer
        than two minibatches."""
        out = [np.full((n_members, self.n_layers), np.nan) for _ in range(3)]
        if self.count < 2:
            return tuple(out)
        for i in range(self.n_layers):
            # count >= 2: add() has filled every layer (one gradient per layer each call)
            total, total_sq = cast(torch.Tensor, self._sum[i]), cast(torch.Tensor, self._sumsq[i])
            mean = total / self.count
            var = (total_sq / self.count - mean * mean).clamp_min(0.0)
            num = torch.linalg.vector_norm(mean, dim=1)
            den = torch.sqrt(var.sum(dim=1))
            ratio = torch.where(den > 0, num / den, torch.full_like(num, float("inf")))
            for arr, val in zip(out, (num, den, ratio)):
                arr[:, i] = val.cpu().numpy()
        return tuple(out)


def execution_order(module: nn.Module, names: Iterable[str], forward: Callable[[], object]) -> list[str]:
    """The submodules ``names`` of ``module`` in the order their forward passes finish
    while ``forward()`` runs. The pass runs in eval mode (each submodule's mode restored
    after): in training mode BatchNorm refuses a one-row probe and updates its running
    statistics, one extra update for the model the probe ran through."""
    order = []
    modules = dict(module.named_modules())
    handles = [modules[n].register_forward_hook(lambda *_a, n=n: order.append(n)) for n in names]
    training = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with torch.no_grad():
            forward()
    finally:
        for h in handles:
            h.remove()
        for m, mode in training.items():
            m.training = mode
    return list(dict.fromkeys(order))
