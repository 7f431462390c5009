"""The n-colour checkerboard task of Kleinman, Achille, Idnani & Kao (ICLR 2021).

A subject sees a checkerboard whose dominant colour is one of ``n`` colours, and ``n`` targets
placed at the corners of a regular n-polygon, each target painted with one of the colours.
It must reach toward the target whose colour matches the checkerboard. The network is given
(paper, appendix B.4):

* the checkerboard colour as a one-hot vector of length ``n`` plus Gaussian noise of standard
  deviation ``noise`` (0.1 in the paper) -- only the checkerboard inputs are noisy;
* the colour of every target as a one-hot vector of length ``n`` (``n * n`` numbers, target 0
  first, going round the polygon);

concatenated into an input of dimension ``n + n**2``. The output is the *direction*: the
index of the polygon corner whose target has the checkerboard's colour.

The targets' colours are a uniformly random permutation of the ``n`` colours on every trial
(for n = 2: red-left/green-right or green-left/red-right with probability 1/2), so exactly one
target matches. With the colour drawn uniformly and independently of the permutation, the
direction is uniform and independent of the colour: the colour is *irrelevant* given the
direction (needed to compute it, but the output carries no information about it). Both the
direction and the colour carry log2(n) bits (1 bit for n = 2, 3.32 for 10, 4.32 for 20), the
maximum usable information of either.
"""
from __future__ import annotations

import numbers

import numpy as np

from .base import Task


def _rng(random_state) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    raise TypeError(
        "random_state must be None, an int or a numpy Generator "
        f"(got {type(random_state).__name__})"
    )


def checkerboard(n_colors: int = 2, n_samples: int = 10_000, noise: float = 0.1,
                 random_state: int | np.random.Generator | None = None, *,
                 balanced: bool = True) -> Task:
    """Sample the n-colour checkerboard task.

    Parameters
    ----------
    n_colors : number of colours, of targets and of directions (>= 2).
    n_samples : number of trials (rows). The paper used 10 000 (n = 2), 25 000 (n = 10) and
        50 000 (n = 20), 90 % for training.
    noise : standard deviation of the Gaussian noise added to the one-hot checkerboard colour.
    random_state : None, int or ``np.random.Generator``; the only source of randomness.
    balanced : if True the checkerboard colours are an even cycle over the colours in random
        order (each colour occurs floor or ceil of n_samples / n_colors times); the direction
        is still uniformly random given the colour. If False they are i.i.d. uniform.

    Returns
    -------
    Task with ``x`` of shape (n_samples, n_colors + n_colors**2) float32 (checkerboard block
    first, then one block of ``n_colors`` per target), ``labels`` = direction (int64),
    ``extra_labels = {"direction": ..., "color": ...}``, ``n_classes = n_colors``.
    ``p_x`` and ``p_y_given_x`` are None (the inputs are noisy samples).
    The maximum usable information about the direction or the colour is log2(n_colors) bits.
    """
    if isinstance(n_colors, bool) or not isinstance(n_colors, numbers.Integral) or n_colors < 2:
        raise ValueError(f"n_colors must be an integer >= 2 (got {n_colors!r})")
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer (got {n_samples!r})")
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite standard deviation >= 0 (got {noise!r})")
    n, m = int(n_colors), int(n_samples)
    rng = _rng(random_state)

    if balanced:
        color = rng.permutation(np.arange(m) % n)
    else:
        color = rng.integers(0, n, size=m)
    # target_colors[i, j] = colour of the target at polygon corner j on trial i
    target_colors = np.argsort(rng.random((m, n)), axis=1)  # uniform random permutations
    direction = np.argmax(target_colors == color[:, None], axis=1)

    board = np.eye(n, dtype=np.float64)[color] + noise * rng.standard_normal((m, n))
    targets = np.eye(n, dtype=np.float64)[target_colors].reshape(m, n * n)
    x = np.concatenate([board, targets], axis=1).astype(np.float32)
    direction = direction.astype(np.int64)
    color = color.astype(np.int64)
    return Task(
        name=f"checkerboard{n}",
        x=x,
        labels=direction,
        n_classes=n,
        p_x=None,
        p_y_given_x=None,
        extra_labels={"direction": direction, "color": color},
    )
