"""Fisher information of a classifier's weights: exact trace and per-parameter diagonal.

For a network with predictive distribution p(y|x, w) over C classes, on inputs x_1..x_N:

    model Fisher      F = (1/N) sum_n  sum_y p(y|x_n, w) g_{n,y} g_{n,y}^T
    empirical Fisher  F_emp = (1/N) sum_n g_{n,y_n} g_{n,y_n}^T
    g_{n,y} = grad_w log p(y | x_n, w)   (natural log)

The model Fisher takes the expectation over y ~ p(y|x, w) *exactly*, by summing over the C
classes (no sampling of y); it equals the Gauss-Newton matrix J^T (diag p - p p^T) J of the
cross-entropy, i.e. the curvature used by the Fisher approximation of the information in the
weights (``dnn.weights``). The empirical Fisher uses the observed labels instead; the two
agree only where the model fits the data distribution.

Only the diagonal is ever formed (trace = sum of the diagonal), from *per-sample* gradients
(torch.func: ``functional_call`` + ``vmap`` + ``grad``; for the model Fisher one vmapped
pass per class, weighted by p(c|x): as fast as or faster than ``vmap(jacrev)`` over all
classes at once in our timings, and C times lighter in memory). Squaring the gradient of a
minibatch *mean* instead, as some Task2Vec code did, gives (1/B^2) (sum_n g_n)^2: for
uncorrelated per-sample gradients that is about 1/B of the right value, and it mixes in
cross terms. ``minibatch_squared_gradient`` computes that quantity so the difference can be
shown; do not use it as a Fisher.

A network with a single output unit is read as a Bernoulli model with p(y=1|x) =
sigmoid(output) (logits [0, output]); then the Fisher trace of logistic regression on
(x, 1) is mean_x p(x)(1 - p(x)) (|x|^2 + 1).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from ibsolver.results import Result, json_safe
from numpy.typing import ArrayLike

if TYPE_CHECKING:  # torch and matplotlib are imported where they are used
    import torch
    from matplotlib.axes import Axes
    from torch import nn

logger = logging.getLogger(__name__)

#: floats held at once by the per-sample gradients (batch x parameters)
_CHUNK_FLOATS = 2 ** 22


@dataclass(frozen=True)
class FisherInfo(Result):
    """Diagonal of the Fisher information matrix (natural-log likelihood, mean over inputs).

    The Fisher information is a curvature of the natural-log likelihood, not an amount of
    information: it has no unit of bits. ``save``/``load`` (one .npz, no pickle; the
    diagonal under ``diagonal/<parameter>``), ``summary()`` (plain JSON values, NaN as
    None) and ``to_dataframe()`` (one row per parameter) as every ``ibsolver`` result.

    Attributes
    ----------
    kind : "model" (exact expectation over y ~ p(y|x, w)) or "empirical" (observed labels).
    trace : sum of the diagonal over the included parameters.
    layer_trace : {layer name: trace of its block} (layer = parameter name before the last
        dot, e.g. "fc1" for "fc1.weight" and "fc1.bias").
    diagonal : {parameter name: array of the parameter's shape}.
    n_samples : number of inputs averaged over.
    """

    kind: str
    trace: float
    layer_trace: dict
    diagonal: dict = field(repr=False)
    n_samples: int = 0

    def flat(self) -> np.ndarray:
        """The diagonal as one vector (parameters in ``diagonal`` order)."""
        return np.concatenate([np.ravel(v) for v in self.diagonal.values()])

    def summary(self) -> dict:
        """The kind, the trace, the trace per layer, the number of inputs averaged over and
        of parameters (entries of the diagonal), as plain JSON values; NaN as None."""
        return json_safe({"kind": self.kind, "trace": self.trace,
                           "layer_trace": dict(self.layer_trace),
                           "n_samples": self.n_samples,
                           "n_params": int(sum(np.size(v) for v in self.diagonal.values()))})

    def _columns(self) -> list:
        """One row per parameter: its layer, its number of entries, and the sum (its share
        of the trace), mean and largest entry of its diagonal."""
        rows = []
        for name, v in self.diagonal.items():
            v = np.asarray(v, dtype=np.float64)
            rows.append({"kind": self.kind, "parameter": name, "layer": _layer_of(name),
                         "n_entries": int(v.size), "trace": float(v.sum()),
                         "mean": float(v.mean()) if v.size else float("nan"),
                         "max": float(v.max()) if v.size else float("nan")})
        return rows


def _layer_of(name: str) -> str:
    """"fc1.weight" -> "fc1"; a parameter of the root module -> "model"."""
    return name.rsplit(".", 1)[0] if "." in name else "model"


def _select_params(model, params):
    named = dict(model.named_parameters())
    if params is None:
        names = [k for k, v in named.items() if v.requires_grad]
    elif isinstance(params, str):
        names = [k for k in named if k == params or k.startswith(params + ".")]
    else:
        params = list(params)
        names = [k for k in named if any(k == p or k.startswith(p + ".") for p in params)]
    if not names:
        raise ValueError(f"params selects no parameter of the model (got {params!r}; "
                         f"the model has {list(named)[:8]})")
    return names


def as_logits(out: torch.Tensor) -> torch.Tensor:
    """Class logits from a model output: itself, or [0, out] for one output unit (Bernoulli
    with p(y=1|x) = sigmoid(out))."""
    import torch

    if out.shape[-1] == 1:
        return torch.cat([torch.zeros_like(out), out], dim=-1)
    return out


def _log_probs(out):
    """Log-probabilities from the model output: softmax, or Bernoulli for one output unit."""
    import torch

    return torch.log_softmax(as_logits(out), dim=-1)


def fisher_diagonal(model: nn.Module, x: ArrayLike | torch.Tensor, y: ArrayLike | torch.Tensor | None = None,
                    *, kind: str = "model", params: str | Iterable[str] | None = None,
                    batch_size: int | None = None, device: str | torch.device | None = None) -> FisherInfo:
    """Exact diagonal (and trace) of the Fisher information of ``model``'s weights.

    Parameters
    ----------
    model : torch module mapping (B, d) inputs to (B, C) logits (or (B, 1): Bernoulli). Put
        it in eval mode if it has batch-norm or dropout; it is not modified.
    x : (N, d) inputs (array or tensor).
    y : (N,) observed labels; needed for ``kind="empirical"``, ignored for "model".
    kind : "model" -- expectation over y ~ p(y|x, w), exact sum over classes -- or
        "empirical" -- observed labels.
    params : None (all parameters), a layer name ("fc2"), or a list of names / prefixes.
    batch_size : inputs per vmap chunk; default keeps batch x parameters <= 2**22.
    device : where to compute: None (the model's device), "auto" (CUDA when available) or a
        torch device.

    Returns
    -------
    FisherInfo with the diagonal per parameter, its trace and the trace per layer.
    """
    import torch
    from torch.func import functional_call, grad, vmap

    from .models import resolve_device

    if kind not in ("model", "empirical"):
        raise ValueError(f"kind must be 'model' or 'empirical' (got {kind!r})")
    names = _select_params(model, params)
    first = next(model.parameters())
    dev = first.device if device is None else resolve_device(device)
    dtype = first.dtype
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach(),
                         dtype=dtype).to(dev)
    if xt.ndim < 2 or xt.shape[0] < 1:
        raise ValueError(f"x must be a non-empty batch of inputs (got shape {tuple(xt.shape)})")
    n = xt.shape[0]
    if kind == "empirical":
        if y is None:
            raise ValueError("y must be given for kind='empirical' (got None)")
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y.detach(),
                             dtype=torch.long).to(dev)
        if yt.shape != (n,):
            raise ValueError(f"y must have shape ({n},) (got {tuple(yt.shape)})")

    all_params = {k: v.detach().to(dev) for k, v in model.named_parameters()}
    buffers = {k: v.detach().to(dev) for k, v in model.named_buffers()}
    train_params = {k: all_params[k] for k in names}
    frozen = {k: v for k, v in all_params.items() if k not in train_params}
    n_par = sum(v.numel() for v in train_params.values())

    def log_probs(p, xi):
        out = functional_call(model, ({**frozen, **p}, buffers), (xi.unsqueeze(0),))
        return _log_probs(out).squeeze(0)

    with torch.no_grad():
        n_cls = _log_probs(functional_call(model, (all_params, buffers), (xt[:1],))).shape[-1]
    if batch_size is None:
        batch_size = max(1, min(n, _CHUNK_FLOATS // max(1, n_par)))
    diag = {k: torch.zeros_like(v) for k, v in train_params.items()}

    def log_lik(p, xi, yi):
        return torch.gather(log_probs(p, xi), 0, yi.unsqueeze(0)).squeeze(0)

    # per-sample gradients of log p(y|x) for one label per row: vmap over rows of grad
    per_sample_grad = vmap(grad(log_lik), in_dims=(None, 0, 0))
    for start in range(0, n, batch_size):
        xb = xt[start:start + batch_size]
        if kind == "model":
            # exact expectation over y ~ p(y|x, w): one pass per class, weighted by p(c|x)
            with torch.no_grad():
                prob = torch.exp(_log_probs(functional_call(model, (all_params, buffers),
                                                            (xb,))))
            passes = [(torch.full((xb.shape[0],), c, dtype=torch.long, device=dev), prob[:, c])
                      for c in range(n_cls)]
        else:
            passes = [(yt[start:start + batch_size], None)]
        for labels, weight in passes:
            g = per_sample_grad(train_params, xb, labels)   # {name: (B, *shape)}
            with torch.no_grad():
                for k, v in g.items():
                    sq = v * v
                    if weight is not None:
                        sq = sq * weight.reshape((-1,) + (1,) * (v.ndim - 1))
                    diag[k] += sq.sum(dim=0)

    diag_np = {k: (v / n).cpu().double().numpy() for k, v in diag.items()}
    layer_trace: dict = {}
    for k, v in diag_np.items():
        layer_trace[_layer_of(k)] = layer_trace.get(_layer_of(k), 0.0) + float(v.sum())
    trace = float(sum(layer_trace.values()))
    return FisherInfo(kind=kind, trace=trace, layer_trace=layer_trace, diagonal=diag_np,
                      n_samples=int(n))


def fisher_trace(model: nn.Module, x: ArrayLike | torch.Tensor, y: ArrayLike | torch.Tensor | None = None,
                 *, kind: str = "model", params: str | Iterable[str] | None = None, **kw: Any) -> float:
    """Trace of the Fisher information (see :func:`fisher_diagonal`)."""
    return fisher_diagonal(model, x, y, kind=kind, params=params, **kw).trace


def minibatch_squared_gradient(model: nn.Module, x: ArrayLike, y: ArrayLike, *, batch_size: int = 32,
                               params: str | Iterable[str] | None = None) -> float:
    """The *wrong* estimate: mean over minibatches of |grad of the minibatch-mean loss|^2.

    Kept to show the pitfall (about the empirical Fisher trace divided by ``batch_size`` when
    per-sample gradients are uncorrelated, plus the squared mean gradient); never use it as a
    Fisher.
    """
    import torch

    names = _select_params(model, params)
    named = dict(model.named_parameters())
    xt = torch.as_tensor(np.asarray(x), dtype=next(model.parameters()).dtype)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    total, count = 0.0, 0
    for start in range(0, len(xt), batch_size):
        xb, yb = xt[start:start + batch_size], yt[start:start + batch_size]
        loss = -_log_probs(model(xb)).gather(1, yb[:, None]).mean()
        grads = torch.autograd.grad(loss, [named[k] for k in names])
        total += float(sum(g.pow(2).sum() for g in grads))
        count += 1
    return total / count


def plot_fisher_trace(epochs: ArrayLike, traces: ArrayLike, *, ax: Axes | None = None,
                      layer_traces: Mapping[str, ArrayLike] | None = None, label: str = "model Fisher",
                      logy: bool = True) -> Axes:
    """Fisher trace vs epoch (optionally one thin curve per layer, darker = deeper).

    ``traces`` is a sequence of totals; ``layer_traces`` an optional {layer: sequence}.
    Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, traces, color="k", lw=2, label=label)
    if layer_traces:
        cmap = plt.get_cmap("Blues")
        n = len(layer_traces)
        for j, (name, tr) in enumerate(layer_traces.items()):
            ax.plot(epochs, tr, color=cmap(0.35 + 0.6 * j / max(n - 1, 1)), lw=1, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("trace of the Fisher information")
    ax.legend(fontsize=7)
    return ax


__all__ = ["FisherInfo", "fisher_diagonal", "fisher_trace", "minibatch_squared_gradient",
           "plot_fisher_trace"]
