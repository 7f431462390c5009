"""The model builder: plain MLPs whose layers are addressable by name, and their initialisers."""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2),
               "sigmoid": nn.Sigmoid, "elu": nn.ELU}
#: "uniform": PyTorch's default for nn.Linear, weight and bias U(-1/sqrt(in), 1/sqrt(in));
#: "normal": Shwartz-Ziv & Tishby's, weight N(0, 1/in) truncated at two standard
#: deviations, bias 0; "he": weight N(0, gain/in) with the activation's gain (2 for ReLU),
#: bias 0, which keeps the signal alive through narrow ReLU layers (gain 1 without an
#: activation: N(0, 1/in), the deep linear networks' init with their ``scale``)
INITS = ("uniform", "normal", "he")
_HE_GAIN = {"relu": 2.0, "leaky_relu": 2.0 / (1 + 0.2 ** 2), "elu": 2.0}


def mlp(widths: Iterable[int], activation: str | None = "tanh", *,
        bias: bool = True) -> nn.Sequential:
    """An MLP with layers ``fc1, act1, fc2, act2, ..., fcL`` (no activation after the last).

    ``widths`` lists every layer size including input and output, e.g. (12, 10, 7, 5, 4, 3, 2).
    The hidden representation of layer i is the output of ``act{i}``; the output layer's
    representation is the softmax of ``fc{L}``. ``activation=None`` leaves the ``act``
    layers out (a deep linear network, fc1 .. fcL); ``bias=False`` builds the ``nn.Linear``
    layers without bias. Built without touching torch's global random state; the weights
    are those of :func:`mlp_init` ("uniform") for generator seed 0 until a training run
    initialises them per seed.
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths must list at least two positive layer sizes (got {widths})")
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} or None "
                         f"(got {activation!r})")
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    with torch.random.fork_rng(devices=[]):
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
            layers[f"fc{i}"] = nn.Linear(w_in, w_out, bias=bias)
            if activation is not None and i < len(widths) - 1:
                layers[f"act{i}"] = ACTIVATIONS[activation]()
    model = nn.Sequential(layers)
    mlp_init("uniform")(model, torch.Generator().manual_seed(0))
    return model


def mlp_layers(model: nn.Sequential) -> list:
    """The representation layers of an :func:`mlp`: act1 .. act{L-1} and the output fc{L}."""
    names = [name for name, _ in model.named_children()]
    fcs = [n for n in names if n.startswith("fc")]
    return [n for n in names if n.startswith("act")] + fcs[-1:]


def mlp_init(scheme: str = "uniform", activation: str | None = "tanh", *,
             scale: float = 1.0) -> Callable[[nn.Module, torch.Generator], None]:
    """An initialiser ``(model, generator)`` for :func:`dnn.record_training`'s ``init``:
    every ``nn.Linear`` in order, weight then bias (if it has one), drawn from the generator
    (see :data:`INITS`; ``activation`` sets the gain of "he", 1 for None). ``scale``
    multiplies the standard deviation of "he" (N(0, scale^2 gain / in))."""
    if scheme not in INITS:
        raise ValueError(f"init must be one of {list(INITS)} (got {scheme!r})")
    if scale != 1.0 and scheme != "he":
        raise ValueError(f"scale applies to init 'he' only (got scale={scale!r} with {scheme!r})")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0 (got {scale!r})")

    @torch.no_grad()
    def init(model: nn.Module, gen: torch.Generator):
        for lin in (m for m in model.modules() if isinstance(m, nn.Linear)):
            w_out, w_in = lin.weight.shape
            bound = 1.0 / math.sqrt(w_in)
            if scheme == "uniform":
                lin.weight.copy_(torch.rand((w_out, w_in), generator=gen) * (2 * bound) - bound)
                if lin.bias is not None:
                    lin.bias.copy_(torch.rand((w_out,), generator=gen) * (2 * bound) - bound)
                continue
            if scheme == "normal":
                weight = torch.empty((w_out, w_in))
                nn.init.trunc_normal_(weight, mean=0.0, std=bound, a=-2 * bound, b=2 * bound,
                                      generator=gen)
            else:
                std = math.sqrt(_HE_GAIN.get(activation or "", 1.0) / w_in) * scale
                weight = torch.randn((w_out, w_in), generator=gen) * std
            lin.weight.copy_(weight)
            if lin.bias is not None:
                lin.bias.zero_()

    init.__name__ = f"mlp_init_{scheme}" + (f"_scale{scale:g}" if scale != 1.0 else "")
    return init


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else is passed to torch.device
    (a ValueError naming ``device`` where torch does not know it)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError("device must be 'auto', 'cpu', 'cuda', 'cuda:N' or another torch "
                         f"device (got {device!r})") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available")
    return dev
