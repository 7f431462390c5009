"""Small torch helpers shared by the information modules (seeded init, dropout, splits).

Nothing here touches torch's global random state: every draw goes through an explicit
``torch.Generator``; module constructors that would draw from the global generator run
inside ``torch.random.fork_rng`` and are then re-initialised from the given generator.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import nn

LN2 = math.log(2.0)


def make_generator(random_state, device="cpu") -> torch.Generator:
    """A torch.Generator from None, an int, a numpy Generator or a torch.Generator."""
    if isinstance(random_state, torch.Generator):
        return random_state
    gen = torch.Generator(device=device)
    if random_state is None:
        gen.seed()
    elif isinstance(random_state, np.random.Generator):
        gen.manual_seed(int(random_state.integers(0, 2**63 - 1)))
    elif isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        gen.manual_seed(int(random_state))
    else:
        raise TypeError("random_state must be None, an int, a numpy Generator or a "
                        f"torch.Generator (got {type(random_state).__name__})")
    return gen


def seed_from(gen: torch.Generator) -> int:
    """Draw a fresh 62-bit seed from ``gen`` (to derive independent child generators)."""
    return int(torch.randint(0, 2**62, (1,), generator=gen).item())


def reset_parameters(module: nn.Module, gen: torch.Generator) -> nn.Module:
    """Re-initialise every Linear (PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))) and
    BatchNorm layer of ``module`` from ``gen``."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.Linear):
                bound = 1.0 / math.sqrt(sub.in_features)
                sub.weight.copy_(torch.rand(sub.weight.shape, generator=gen) * 2 * bound - bound)
                if sub.bias is not None:
                    sub.bias.copy_(torch.rand(sub.bias.shape, generator=gen) * 2 * bound - bound)
            elif isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.reset_parameters()
    return module


def build(factory, gen: torch.Generator) -> nn.Module:
    """Call ``factory()`` without disturbing the global RNG, then re-initialise from ``gen``."""
    with torch.random.fork_rng(devices=[]):
        module = factory()
    return reset_parameters(module, gen)


class SeededDropout(nn.Module):
    """Dropout that draws its masks from its own generator (not the global one)."""

    def __init__(self, p: float, generator: torch.Generator):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (got {p!r})")
        self.p = float(p)
        self.generator = generator

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def to_tensor(a, dtype=torch.float32, device="cpu") -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def split_indices(n: int, test_size: float, gen: torch.Generator, y=None):
    """Random (stratified when ``y`` is given) split of range(n) into train and test indices."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1) (got {test_size!r})")
    if y is None:
        perm = torch.randperm(n, generator=gen)
        n_test = max(1, min(n - 1, int(round(test_size * n))))
        return perm[n_test:].sort().values, perm[:n_test].sort().values
    y = torch.as_tensor(np.asarray(y))
    train, test = [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        k = int(round(test_size * len(idx)))
        if len(idx) >= 2:
            k = max(1, min(len(idx) - 1, k))
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


class torch_threads:
    """Context manager: torch intra-op threads set to ``n`` inside, restored on exit.

    ``None`` leaves the setting alone. Small models run fastest on one thread; more threads
    only add synchronisation (and stall badly when the cores are shared).
    """

    def __init__(self, n):
        if n is not None and (isinstance(n, bool) or int(n) != n or n < 1):
            raise ValueError(f"n_threads must be None or a positive integer (got {n!r})")
        self.n = None if n is None else int(n)
        self.old = None

    def __enter__(self):
        if self.n is not None:
            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            torch.set_num_threads(self.old)
        return False
