"""Several independently seeded MLPs trained as one batched module.

Member s of an ensemble of S networks holds its weights in slice s of tensors shaped
(S, in, out); one ``torch.baddbmm`` per layer runs every member at once on its own minibatch
(input (S, B, in), output (S, B, out)). Because the training loss is the sum of the members'
losses, each member's gradient, and so its SGD or Adam update (both elementwise), is exactly
the one it would get trained alone.

The layers carry the same names as :func:`dnn.models.mlp` (``fc1, act1, ..., fcL``), so
hooks picked by name work identically on a single network and on an ensemble.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from .models import ACTIVATIONS, mlp

INITS = ("uniform", "normal")


class EnsembleLinear(nn.Module):
    """S affine maps at once: ``y[s] = x[s] @ weight[s] + bias[s]``.

    weight : (S, in_features, out_features); bias : (S, out_features).
    Input (S, B, in_features) -> output (S, B, out_features).
    """

    def __init__(self, n_members: int, in_features: int, out_features: int):
        super().__init__()
        self.n_members = int(n_members)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = nn.Parameter(torch.zeros(self.n_members, self.in_features, self.out_features))
        self.bias = nn.Parameter(torch.zeros(self.n_members, self.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] != self.n_members or x.shape[2] != self.in_features:
            raise ValueError(
                f"input must have shape (n_members={self.n_members}, batch, "
                f"in_features={self.in_features}) (got {tuple(x.shape)})")
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)

    def extra_repr(self) -> str:
        return (f"n_members={self.n_members}, in_features={self.in_features}, "
                f"out_features={self.out_features}")


def ensemble_mlp(widths, activation: str = "tanh", n_members: int = 1) -> nn.Sequential:
    """An ensemble of ``n_members`` MLPs with layers ``fc1, act1, ..., fcL`` (zero weights;
    fill them with :func:`init_ensemble`)."""
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths must list at least two positive layer sizes (got {widths})")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} (got {activation!r})")
    if isinstance(n_members, bool) or int(n_members) != n_members or n_members < 1:
        raise ValueError(f"n_members must be a positive integer (got {n_members!r})")
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        layers[f"fc{i}"] = EnsembleLinear(n_members, w_in, w_out)
        if i < len(widths) - 1:
            layers[f"act{i}"] = ACTIVATIONS[activation]()
    return nn.Sequential(layers)


def init_parameters(widths, generator: torch.Generator, init: str = "uniform"):
    """Initial weights of one network drawn from ``generator`` (on the CPU).

    Returns a list of ``(weight (out, in), bias (out,))`` float32 pairs, one per layer, in the
    layout of ``nn.Linear``. ``init="uniform"``: PyTorch's default, weight and bias
    U(-1/sqrt(in), 1/sqrt(in)). ``init="normal"``: as in Shwartz-Ziv & Tishby's code, weight
    N(0, 1/in) truncated at two standard deviations, bias 0.
    The draws are the same for a single network and for an ensemble member with that seed.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)} (got {init!r})")
    params = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        w_in, w_out = int(w_in), int(w_out)
        bound = 1.0 / math.sqrt(w_in)
        if init == "uniform":
            weight = torch.rand((w_out, w_in), generator=generator) * (2 * bound) - bound
            bias = torch.rand((w_out,), generator=generator) * (2 * bound) - bound
        else:
            weight = torch.empty((w_out, w_in))
            nn.init.trunc_normal_(weight, mean=0.0, std=bound, a=-2 * bound, b=2 * bound,
                                  generator=generator)
            bias = torch.zeros((w_out,))
        params.append((weight.float(), bias.float()))
    return params


def _linears(model: nn.Module):
    return [m for name, m in model.named_children() if name.startswith("fc")]


@torch.no_grad()
def load_single(model: nn.Module, params) -> nn.Module:
    """Copy ``params`` (from :func:`init_parameters`) into the ``nn.Linear`` layers of an
    :func:`dnn.models.mlp`."""
    lins = _linears(model)
    if len(lins) != len(params):
        raise ValueError(f"params has {len(params)} layers but the model has {len(lins)}")
    for lin, (w, b) in zip(lins, params):
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    return model


def single_mlp(widths, activation: str, params) -> nn.Sequential:
    """A :func:`dnn.models.mlp` holding ``params``, built without drawing from (or changing)
    torch's global random state."""
    with torch.random.fork_rng(devices=[]):
        model = mlp(widths, activation)
    return load_single(model, params)


@torch.no_grad()
def load_member(model: nn.Module, member: int, params) -> nn.Module:
    """Copy one network's ``params`` into member ``member`` of an ensemble."""
    lins = _linears(model)
    if len(lins) != len(params):
        raise ValueError(f"params has {len(params)} layers but the model has {len(lins)}")
    for lin, (w, b) in zip(lins, params):
        lin.weight[member].copy_(w.t())
        lin.bias[member].copy_(b)
    return model


@torch.no_grad()
def member_module(model: nn.Module, member: int, activation: str = "tanh") -> nn.Sequential:
    """A plain :func:`dnn.models.mlp` holding a copy of ensemble member ``member``."""
    lins = _linears(model)
    if not 0 <= member < lins[0].n_members:
        raise ValueError(f"member must be in [0, {lins[0].n_members}) (got {member})")
    widths = [lins[0].in_features] + [lin.out_features for lin in lins]
    with torch.random.fork_rng(devices=[]):
        single = mlp(widths, activation)
    single = single.to(lins[0].weight.device)
    for lin, dst in zip(lins, _linears(single)):
        dst.weight.copy_(lin.weight[member].t())
        dst.bias.copy_(lin.bias[member])
    return single
