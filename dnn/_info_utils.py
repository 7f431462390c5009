"""Small helpers shared by the dnn modules: generators, tensors, the split, torch threads.

Nothing here touches torch's global random state: every draw goes through an explicit
``torch.Generator`` (or a numpy Generator for the split).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch


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


def to_tensor(a, dtype=torch.float32, device="cpu") -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def _hash_array(h, a: np.ndarray) -> None:
    """Feed ``a``'s dtype, shape and bytes (C order) into the hash ``h`` (data fingerprints)."""
    h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())


def stratified_split(labels, train_fraction: float, seed: int):
    """(train_idx, test_idx), sorted index arrays: per label, a shuffled
    ``round(train_fraction * count)`` rows go to train (for a fraction below 1, at least one
    row on each side when the label has two). ``labels`` may be a row count n (one label)."""
    if isinstance(labels, (int, np.integer)) and not isinstance(labels, bool):
        labels = np.zeros(int(labels), dtype=np.int64)
    labels = np.asarray(labels)
    if isinstance(train_fraction, bool) or not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction must be in (0, 1] (got {train_fraction!r})")
    rng = np.random.default_rng(seed)
    parts = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        k = max(1, int(round(train_fraction * idx.size)))
        if train_fraction < 1 and idx.size >= 2:
            k = min(k, idx.size - 1)
        parts.append(idx[:k])
    train = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    test = np.setdiff1d(np.arange(labels.size), train)
    return train, test


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
