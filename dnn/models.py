"""Plain MLPs whose layers are addressable by name (for hooks and per-layer measures)."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2),
               "sigmoid": nn.Sigmoid, "elu": nn.ELU}


def mlp(widths, activation: str = "tanh") -> nn.Sequential:
    """An MLP with layers ``fc1, act1, fc2, act2, ..., fcL`` (no activation after the last).

    ``widths`` lists every layer size including input and output, e.g. (12, 10, 7, 5, 4, 3, 2).
    The hidden representation of layer i is the output of ``act{i}``; the output layer's
    representation is the softmax of ``fc{L}``.
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths must list at least two positive layer sizes (got {widths})")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} (got {activation!r})")
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        layers[f"fc{i}"] = nn.Linear(w_in, w_out)
        if i < len(widths) - 1:
            layers[f"act{i}"] = ACTIVATIONS[activation]()
    return nn.Sequential(layers)


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available")
    return dev
