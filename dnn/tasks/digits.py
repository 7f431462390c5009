"""scikit-learn's bundled 8x8 digits with a fine (digit) and a coarse (parity) label.

The coarse/fine experiment of Kleinman et al. (2021): train on the coarse label and measure
the usable information about the fine one. Needs scikit-learn (the ``dnn`` extra); the data
ship with it, nothing is downloaded.
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

from .base import Task

#: coarse labellings of a digit 0..9
COARSE = {
    "parity": lambda d: d % 2,             # 0 = even, 1 = odd
    "high": lambda d: (d >= 5).astype(np.int64),  # 0 = 0..4, 1 = 5..9
}


@functools.lru_cache(maxsize=1)
def _load():
    """The bundled data, read once per process (read-only arrays; callers copy)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("digits() needs scikit-learn: pip install 'ibsolver[dnn]'") from exc
    data = load_digits()
    x = (np.asarray(data.data, dtype=np.float64) / 16.0).astype(np.float32)
    fine = np.asarray(data.target, dtype=np.int64)
    x.flags.writeable = False
    fine.flags.writeable = False
    return x, fine


def digits(label: str = "coarse", *, coarse: str = "parity", n_samples: int | None = None,
           random_state: int | np.random.Generator | None = None) -> Task:
    """The 1797 8x8 digits of ``sklearn.datasets.load_digits`` as a Task.

    Parameters
    ----------
    label : "coarse" (train on the coarse label, 2 classes) or "fine" (the digit, 10 classes).
        The other label set goes to ``extra_labels``; both are always there under
        ``extra_labels["coarse"]`` and ``extra_labels["fine"]``.
    coarse : the coarse labelling: "parity" (even/odd, the default, as the paper's CIFAR-10
        even/odd superclasses) or "high" (digit >= 5).
    n_samples : keep a random subset of this many images (None = all 1797).
    random_state : None, int or Generator; used only to draw the subset.

    Returns
    -------
    Task with ``x`` (n, 64) float32 pixel intensities scaled to [0, 1], ``p_x`` uniform over
    the rows and ``p_y_given_x`` one-hot of the chosen label: the empirical joint, so
    ``task.p_xy`` is exact for the sample (H(fine) ~ 3.32 bits, H(parity) ~ 1 bit).
    """
    if label not in ("coarse", "fine"):
        raise ValueError(f"label must be 'coarse' or 'fine' (got {label!r})")
    if coarse not in COARSE:
        raise ValueError(f"coarse must be one of {sorted(COARSE)} (got {coarse!r})")
    x, fine = _load()
    x, fine = x.copy(), fine.copy()
    if n_samples is not None:
        if (isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral)
                or not 1 <= n_samples <= len(fine)):
            raise ValueError(f"n_samples must be an integer in [1, {len(fine)}] or None "
                             f"(got {n_samples!r})")
        if isinstance(random_state, np.random.Generator):
            rng = random_state
        else:
            rng = np.random.default_rng(random_state)
        keep = np.sort(rng.choice(len(fine), size=int(n_samples), replace=False))
        x, fine = x[keep], fine[keep]
    coarse_labels = COARSE[coarse](fine).astype(np.int64)
    labels = coarse_labels if label == "coarse" else fine
    n_classes = 2 if label == "coarse" else 10
    n = len(labels)
    p_y_given_x = np.zeros((n, n_classes))
    p_y_given_x[np.arange(n), labels] = 1.0
    return Task(
        name=f"digits_{label}" if label == "fine" else f"digits_{coarse}",
        x=x,
        labels=labels,
        n_classes=n_classes,
        p_x=np.full(n, 1.0 / n),
        p_y_given_x=p_y_given_x,
        extra_labels={"coarse": coarse_labels, "fine": fine},
    )
