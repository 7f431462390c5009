"""The 12-bit task of Shwartz-Ziv & Tishby (2017): an O(3)-invariant rule on an icosahedron.

Each of the 4096 inputs is a pattern of 12 bits, one per vertex of a regular icosahedron;
p(x) is uniform. The label depends on the pattern only through invariants of the rotation
group of the sphere: the number of 'on' vertices and how many 'on' pairs are neighbours,
second neighbours or antipodes.

The rule (recovered from the canonical ``var_u.mat`` and reproduced exactly)
--------------------------------------------------------------------------
Bit j of a pattern (column j of ``var_u.mat``'s ``F``, column 0 the most significant bit of
the row index) sits on vertex ``VERTICES[j]``. For a pattern x let

    n      = number of bits on                           (0 .. 12)
    n_nb   = 'on' pairs that are neighbours              (angle 63.4 deg, cos = +1/sqrt 5)
    n_2nd  = 'on' pairs that are second neighbours       (angle 116.6 deg, cos = -1/sqrt 5)
    n_anti = 'on' pairs that are antipodes               (angle 180 deg)

(n_nb + n_2nd + n_anti = n (n - 1) / 2.) The label is a linear threshold of these counts,

    score(x)  = 23 n + n_nb - 5 n_2nd - 8 n_anti          (an integer, 0 .. 128)
    y(x)      = 1  if  score(x) >= 99  else 0,

i.e. the margin ``m(x) = score(x) - 98.5`` is positive exactly for the 2118 patterns with
y = 1 (p(y=1) = 0.51709). These are the smallest integer weights (in L1 norm, searching all
weights up to 30) that separate the labels; the labels only vary with the pattern for
5 <= n <= 7 (all patterns with n <= 4 are 0, all with n >= 8 are 1). Every |m(x)| >= 0.5.

Noise
-----
``tishby12(noise=s)`` with s > 0 keeps p(x) and makes the label stochastic:
``p(y=1 | x) = sigmoid(m(x) / s)``, the margin measured in score units (s = 0.5 puts the
patterns closest to the boundary at p = 0.73 and gives I(X;Y) = 0.9292 bit; s = 5 leaves
64% of the patterns with 0.05 < p(y=1|x) < 0.95 and I(X;Y) = 0.5171 bit). With s = 0 the
conditional is one-hot and I(X;Y) = H(Y) = 0.999157 bit.
"""
from __future__ import annotations

import logging
import math
import os

import numpy as np
from numpy.typing import ArrayLike

from .base import Task

logger = logging.getLogger(__name__)

N_BITS = 12
_PHI = (1.0 + math.sqrt(5.0)) / 2.0

#: vertex of bit j (column j of var_u's F), unnormalised: cyclic permutations of (0, +-1, +-phi)
_RAW_VERTICES = np.array([
    [0.0, -1.0, -_PHI],
    [-1.0, -_PHI, 0.0],
    [0.0, -1.0, _PHI],
    [1.0, -_PHI, 0.0],
    [-_PHI, 0.0, 1.0],
    [0.0, 1.0, -_PHI],
    [-1.0, _PHI, 0.0],
    [1.0, _PHI, 0.0],
    [_PHI, 0.0, 1.0],
    [0.0, 1.0, _PHI],
    [_PHI, 0.0, -1.0],
    [-_PHI, 0.0, -1.0],
])
#: (12, 3) unit vectors: the icosahedron vertex carrying each input bit
VERTICES = _RAW_VERTICES / np.linalg.norm(_RAW_VERTICES, axis=1, keepdims=True)

#: weights of (n, n_nb, n_2nd, n_anti) in the score, and the threshold between the classes
RULE_WEIGHTS = np.array([23, 1, -5, -8], dtype=np.int64)
RULE_THRESHOLD = 98.5


def vertex_distances() -> np.ndarray:
    """(12, 12) int array: graph distance on the icosahedron between the vertices of two bits.

    0 on the diagonal, 1 for neighbours, 2 for second neighbours, 3 for antipodes; read off
    the inner products of ``VERTICES`` (cos = 1, 1/sqrt 5, -1/sqrt 5, -1).
    """
    cos = VERTICES @ VERTICES.T
    s5 = 1.0 / math.sqrt(5.0)
    dist = np.full(cos.shape, -1, dtype=np.int64)
    for d, c in enumerate((1.0, s5, -s5, -1.0)):
        dist[np.isclose(cos, c, atol=1e-9)] = d
    return dist


def all_patterns() -> np.ndarray:
    """(4096, 12) uint8 array of every 12-bit pattern in lexicographic order (as var_u's F)."""
    idx = np.arange(2 ** N_BITS)
    return ((idx[:, None] >> np.arange(N_BITS - 1, -1, -1)[None, :]) & 1).astype(np.uint8)


def _as_patterns(x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != N_BITS:
        raise ValueError(f"x must be a (n, 12) array of 0/1 patterns (got shape {arr.shape})")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError("x must contain only 0 and 1 (got other values)")
    return arr.astype(np.int64)


def invariants(x: ArrayLike) -> np.ndarray:
    """(n, 4) int array of the O(3) invariants (n_on, n_nb, n_2nd, n_anti) of each pattern."""
    f = _as_patterns(x)
    dist = vertex_distances()
    cols = [f.sum(axis=1)]
    for d in (1, 2, 3):
        a = (dist == d).astype(np.int64)
        cols.append(np.einsum("pi,ij,pj->p", f, a, f) // 2)
    return np.stack(cols, axis=1)


def rule_score(x: ArrayLike) -> np.ndarray:
    """(n,) int array: 23 n + n_nb - 5 n_2nd - 8 n_anti (see the module docstring)."""
    return invariants(x) @ RULE_WEIGHTS


def rule_margin(x: ArrayLike) -> np.ndarray:
    """(n,) float array: ``rule_score(x) - 98.5``; y = 1 exactly where it is positive."""
    return rule_score(x).astype(np.float64) - RULE_THRESHOLD


def _sigmoid(z):
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def tishby12(noise: float = 0.0, *, random_state: int | np.random.Generator | None = 0) -> Task:
    """The 12-bit icosahedral task: 4096 patterns, p(x) uniform, binary label.

    Parameters
    ----------
    noise : float >= 0. 0 gives the canonical deterministic labels of ``var_u.mat``
        (exactly). Above 0, ``p(y=1|x) = sigmoid(m(x) / noise)`` with the rule's margin
        ``m(x) = 23 n + n_nb - 5 n_2nd - 8 n_anti - 98.5`` (score units; |m| >= 0.5).
    random_state : int or numpy Generator, used only when noise > 0 to draw the training
        labels from p(y|x) (one label per pattern). The task's ``p_y_given_x`` is the true
        conditional either way, so the IB bound and the estimators use the exact joint.

    Returns
    -------
    Task with ``x`` (4096, 12) float32 in var_u's order, ``labels`` (4096,), ``p_x`` uniform,
    ``p_y_given_x`` (4096, 2) and ``extra_labels["rule"]`` (the noise-free labels).
    I(X;Y) = H(Y) = 0.999157 bit for noise = 0.
    """
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating, np.integer)):
        raise TypeError(f"noise must be a real number (got {noise!r})")
    noise = float(noise)
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be finite and >= 0 (got {noise})")
    f = all_patterns()
    margin = rule_margin(f)
    rule = (margin > 0).astype(np.int64)
    n = f.shape[0]
    if noise == 0.0:
        p1 = rule.astype(np.float64)
        labels = rule.copy()
        name = "tishby12"
    else:
        p1 = _sigmoid(margin / noise)
        if isinstance(random_state, np.random.Generator):
            rng = random_state
        else:
            rng = np.random.default_rng(random_state)
        labels = (rng.random(n) < p1).astype(np.int64)
        name = f"tishby12-noise{noise:g}"
    p_y_given_x = np.stack([1.0 - p1, p1], axis=1)
    logger.debug("tishby12(noise=%g): p(y=1) = %.5f", noise, p1.mean())
    return Task(name=name, x=f.astype(np.float32), labels=labels, n_classes=2,
                p_x=np.full(n, 1.0 / n), p_y_given_x=p_y_given_x,
                extra_labels={"rule": rule})


def load_var_u(path: str | os.PathLike[str]) -> Task:
    """The original ``var_u.mat`` (MATLAB v5, keys ``F`` (4096, 12) and ``y`` (1, 4096)) as a
    Task with uniform p(x) and the one-hot p(y|x) of its labels."""
    from scipy.io import loadmat

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path {path!r} does not exist (expected var_u.mat)")
    data = loadmat(path)
    for key in ("F", "y"):
        if key not in data:
            raise ValueError(f"path {path!r} has no key {key!r} (keys: "
                             f"{sorted(k for k in data if not k.startswith('__'))})")
    f = np.asarray(data["F"])
    y = np.asarray(data["y"]).ravel().astype(np.int64)
    if f.ndim != 2 or f.shape[0] != y.shape[0]:
        raise ValueError(f"path {path!r}: F must be (n, d) with one row per label "
                         f"(got F {f.shape}, y {y.shape})")
    classes = np.unique(y)
    if classes.min() < 0:
        raise ValueError(f"path {path!r}: labels must be >= 0 (got {classes.min()})")
    n_classes = int(classes.max()) + 1
    n = f.shape[0]
    return Task(name="var_u", x=f.astype(np.float32), labels=y, n_classes=n_classes,
                p_x=np.full(n, 1.0 / n), p_y_given_x=np.eye(n_classes)[y])
