"""Estimators of I(X;T) and I(T;Y) for network layers T, in bits (numpy only, no torch).

Inputs are the layer's activations on a probe set of N rows (one row per input x) and the
probe's exact joint ``p_xy`` (N, n_classes): p(x) over the probe rows times the task's
p(y|x). For a sampled task, use uniform p(x) and the one-hot labels.

Binning
    Each unit is discretised; the binned layer T_b(x) is a deterministic function of X, i.e.
    a real (hard) encoder of X. Then I(X;T_b) = H(T_b) and I(T_b;Y) follow exactly from
    p(x, y) (the same numbers as ``ibsolver.encoder_information(p_xy, hard_encoder(t))``,
    computed here by counting instead of through the (N, n_t) one-hot matrix). Every binned
    point is an achievable point of the IB problem and lies on or below the IB bound.
    Strategies: ``"count"`` (B equal bins over a range: by default "auto", the fixed range
    of a bounded nonlinearity such as tanh's (-1, 1) and bins of fixed width for any other
    layer; or each layer's own range, the range of all recorded layers, or a fixed
    (lo, hi)), ``"width"`` (bins of fixed width anchored at 0), ``"mass"`` (per unit, B
    bins of equal p(x)-mass). A range recomputed at every record ("layer", "global") can
    manufacture compression: see :class:`Binning`, :func:`sensitivity` (which sweeps the
    range rule, the width and the number of bins) and :func:`range_changes`.

KDE (Kolchinsky & Tracey 2017; Saxe et al. 2018)
    T + N(0, s^2 I) is a mixture of Gaussians centred on the activations; pairwise-distance
    bounds on its entropy give::

        upper:  I(X;T) <= - sum_i p_i log sum_j p_j exp(-|h_i - h_j|^2 / (2 s^2))
        lower:  I(X;T) >= - sum_i p_i log sum_j p_j exp(-|h_i - h_j|^2 / (8 s^2))

    and I(T;Y) = the same quantity minus its label-conditional average (weights p(x|y)).
    For uniform p(x) this is docs/theory.rst section 4. Both carry the knob ``noise_var`` = s^2.

Every result carries the estimator's name and knobs, the probe size N, the ceilings
log2 N and H(Y), and flags for saturation (I(X;T) >= 0.99 log2 N) and for violations of the
data-processing inequality across consecutive layers.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np
from ibsolver import entropy
from ibsolver.results import Result, json_safe
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import torch
    from torch import nn

    #: activations: {layer: (N, w) array} in feed-forward order, or a single (N, w) array
    Activations = Union[dict[str, ArrayLike], ArrayLike]
    #: an estimator, its name ("binning", "kde") or a spec dict {"name": ..., knob: value}
    EstimatorSpec = Union["Binning", "KDE", str, dict[str, Any]]

logger = logging.getLogger(__name__)

LN2 = math.log(2.0)
#: I(X;T) within this fraction of log2 N counts as saturated
SATURATION = 0.01
#: tolerance (bits) on the data-processing checks
DPI_TOL = 1e-9


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class InfoEstimate(Result):
    """Information of each layer of one network at one moment, in bits.

    ``save``/``load`` (one .npz, no pickle), ``summary()`` (plain JSON values, NaN as None)
    and ``to_dataframe()`` (one row per layer) as every ``ibsolver`` result.

    Attributes
    ----------
    estimator : "binning", "kde_upper" or "kde_lower".
    knobs : the estimator's settings (e.g. {"n_bins": 30, "strategy": "count", ...}).
    layers : layer names, in feed-forward order.
    i_xt, i_ty : (n_layers,) arrays, I(X;T) and I(T;Y) in bits.
    n_probe : N, the number of probe rows.
    log2_n : log2 N, the ceiling of I(X;T) for uniform p(x) on the probe (bits).
    h_x : H(X) of the probe's p(x) (the actual ceiling of I(X;T); = log2 N when uniform).
    h_y : H(Y) of the probe joint (a ceiling of I(T;Y)), bits.
    exact : True when T is a deterministic function of X (binning), so the point is an
        achievable IB point; False for the KDE bounds.
    n_clusters : (n_layers,) int array, the number of distinct binned states (binning), else -1.
    saturated : (n_layers,) bool, I(X;T) >= (1 - 0.01) log2 N.
    dpi_violations : tuple of dicts {"layer", "previous", "quantity", "excess_bits"} for each
        consecutive pair where a later layer has more information than an earlier one.
    ceiling_violations : tuple of dicts for values above log2 N / H(X) / H(Y) / I(X;T).
    """

    estimator: str
    knobs: dict
    layers: tuple
    i_xt: np.ndarray
    i_ty: np.ndarray
    n_probe: int
    log2_n: float
    h_x: float
    h_y: float
    exact: bool
    n_clusters: np.ndarray
    saturated: np.ndarray
    dpi_violations: tuple = field(default_factory=tuple)
    ceiling_violations: tuple = field(default_factory=tuple)

    def summary(self) -> dict:
        """The estimator, its knobs, per layer I(X;T) and I(T;Y) (bits), the cluster counts,
        the ceilings and the flags (saturation, data-processing and ceiling violations), as
        plain JSON values; NaN as None."""
        return json_safe({"estimator": self.estimator, "knobs": dict(self.knobs),
                           "layers": list(self.layers), "i_xt_bits": self.i_xt.tolist(),
                           "i_ty_bits": self.i_ty.tolist(), "n_probe": self.n_probe,
                           "log2_n": self.log2_n, "h_x": self.h_x, "h_y": self.h_y, "exact": self.exact,
                           "n_clusters": self.n_clusters.tolist(), "saturated": self.saturated.tolist(),
                           "dpi_violations": list(self.dpi_violations),
                           "ceiling_violations": list(self.ceiling_violations)})

    def _columns(self) -> dict:
        """One row per layer: I(X;T), I(T;Y) (bits), the binned states, the saturation
        flag, with the estimator's name and whether the point is exact."""
        n = len(self.layers)
        return {"layer": list(self.layers), "estimator": [self.estimator] * n,
                "i_xt_bits": np.asarray(self.i_xt), "i_ty_bits": np.asarray(self.i_ty),
                "n_clusters": np.asarray(self.n_clusters),
                "saturated": np.asarray(self.saturated), "exact": [self.exact] * n,
                "n_probe": [self.n_probe] * n}


def check_probe_joint(p_xy: ArrayLike, n_rows: int | None = None) -> np.ndarray:
    """Validate a probe joint p(x, y): (N, n_classes), non-negative, sums to 1."""
    arr = np.asarray(p_xy, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"p_xy must be a 2-D table (N, n_classes) (got shape {arr.shape})")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"p_xy must have one row per probe row (N={n_rows}) "
                         f"(got {arr.shape[0]} rows)")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("p_xy must be finite and non-negative")
    total = arr.sum()
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"p_xy must sum to 1 (got {total:.6g})")
    return arr


def probe_joint(p_x: ArrayLike, p_y_given_x: ArrayLike,
                index: np.ndarray | Sequence[int] | slice | None = None) -> np.ndarray:
    """The joint on probe rows ``index``: p(x) renormalised over them times p(y|x)."""
    p_x = np.asarray(p_x, dtype=np.float64)
    p_y_given_x = np.asarray(p_y_given_x, dtype=np.float64)
    if index is not None:
        p_x = p_x[index]
        p_y_given_x = p_y_given_x[index]
    if p_x.size == 0:
        raise ValueError("the probe set is empty (index selects no rows)")
    return (p_x / p_x.sum())[:, None] * p_y_given_x


def joint_from_labels(x_ids: ArrayLike, y: ArrayLike | None = None, *, n_classes: int | None = None,
                      p_y_given_x: ArrayLike | None = None) -> np.ndarray:
    """The probe joint p(x, y) from the identities of the probe inputs and their labels.

    ``x_ids`` (N,) names the input of each example (equal ids = the same input, e.g. a
    repeated image); row i of the result is the i-th distinct id in sorted order, so the
    probe holds one input per distinct id in that order. With ``y`` (N,) integer labels
    p(x, y) is the empirical joint (an input seen with several labels gets a noisy row);
    with ``p_y_given_x`` (n_distinct, C) instead, the true conditional of a noisy task,
    p(x) is the empirical frequency of each id times that conditional. The table sums to 1.
    """
    ids = np.asarray(x_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"x_ids must be a non-empty 1-D array (got shape {ids.shape})")
    if (y is None) == (p_y_given_x is None):
        raise ValueError("pass exactly one of y (labels) and p_y_given_x (got "
                         f"{'both' if y is not None else 'neither'})")
    _, rows, counts = np.unique(ids, return_inverse=True, return_counts=True)
    rows = rows.ravel()
    if p_y_given_x is not None:
        cond = np.asarray(p_y_given_x, dtype=np.float64)
        if cond.ndim != 2 or cond.shape[0] != counts.size:
            raise ValueError(f"p_y_given_x must be (n_distinct={counts.size}, n_classes) "
                             f"(got shape {cond.shape})")
        if np.any(cond < 0) or not np.allclose(cond.sum(axis=1), 1.0, rtol=0, atol=1e-9):
            raise ValueError("p_y_given_x must have non-negative rows that sum to 1")
        return (counts / ids.size)[:, None] * cond
    labels = np.asarray(y)
    if labels.shape != ids.shape or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"y must be non-negative integer labels, one per x_id (got dtype "
                         f"{labels.dtype}, shape {labels.shape}; x_ids {ids.shape})")
    if labels.min() < 0:
        raise ValueError(f"y must be non-negative integer labels (got {int(labels.min())} at "
                         f"index {int(np.argmin(labels))})")
    n_classes = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if labels.max() >= n_classes:
        raise ValueError(f"n_classes must exceed every label (got {n_classes}, max label "
                         f"{int(labels.max())})")
    p = np.zeros((counts.size, n_classes))
    np.add.at(p, (rows, labels), 1.0 / ids.size)
    return p


def _flags(estimator, layers, i_xt, i_ty, log2_n, h_x, h_y, exact):
    saturated = i_xt >= (1.0 - SATURATION) * log2_n
    dpi = []
    for k in range(1, len(layers)):
        for name, vals in (("I(X;T)", i_xt), ("I(T;Y)", i_ty)):
            excess = float(vals[k] - vals[k - 1])
            if excess > DPI_TOL:
                dpi.append({"layer": layers[k], "previous": layers[k - 1], "quantity": name,
                            "excess_bits": excess})
    ceil = []
    for k, layer in enumerate(layers):
        for name, val, cap in (("I(X;T)", i_xt[k], h_x), ("I(T;Y)", i_ty[k], h_y),
                               ("I(T;Y) vs I(X;T)", i_ty[k], i_xt[k])):
            if val > cap + 1e-9:
                ceil.append({"layer": layer, "quantity": name, "value_bits": float(val),
                             "ceiling_bits": float(cap)})
    if ceil and exact:
        logger.error("%s: exact estimates above their ceilings: %s", estimator, ceil)
    return saturated, tuple(dpi), tuple(ceil)


def _make_estimate(estimator, knobs, layers, i_xt, i_ty, p_xy, exact, n_clusters=None):
    p_xy = np.asarray(p_xy)
    n = p_xy.shape[0]
    log2_n = math.log2(n)
    h_x = float(entropy(p_xy.sum(axis=1)))
    h_y = float(entropy(p_xy.sum(axis=0)))
    i_xt = np.asarray(i_xt, dtype=np.float64)
    i_ty = np.asarray(i_ty, dtype=np.float64)
    if n_clusters is None:
        n_clusters = np.full(len(layers), -1, dtype=np.int64)
    saturated, dpi, ceil = _flags(estimator, layers, i_xt, i_ty, log2_n, h_x, h_y, exact)
    return InfoEstimate(estimator=estimator, knobs=dict(knobs), layers=tuple(layers),
                        i_xt=i_xt, i_ty=i_ty, n_probe=n, log2_n=log2_n, h_x=h_x, h_y=h_y,
                        exact=exact, n_clusters=np.asarray(n_clusters, dtype=np.int64),
                        saturated=saturated, dpi_violations=dpi, ceiling_violations=ceil)


def _as_layers(activations):
    """{name: (N, w) array} (dict order = feed-forward order) from a dict or a single array."""
    if isinstance(activations, np.ndarray) or hasattr(activations, "shape"):
        activations = {"T": activations}
    if not isinstance(activations, dict) or not activations:
        raise TypeError("activations must be a non-empty dict {layer: (N, width) array} "
                        f"(got {type(activations).__name__})")
    out = {}
    n = None
    for name, arr in activations.items():
        if hasattr(arr, "detach"):
            arr = arr.detach().cpu().numpy()
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"activations[{name!r}] must be (N, width) (got shape {arr.shape})")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"activations[{name!r}] must be finite (got NaN or inf)")
        if n is None:
            n = arr.shape[0]
        elif arr.shape[0] != n:
            raise ValueError(f"every layer needs the same N rows (got {n} and "
                             f"{arr.shape[0]} for {name!r})")
        out[str(name)] = arr
    return out


# --------------------------------------------------------------------------- hard encoders
def _rows_to_clusters(codes: np.ndarray) -> np.ndarray:
    """Cluster index (0 .. n_t-1) of each row of an integer code matrix (N, w)."""
    codes = np.asarray(codes, dtype=np.int64)
    if codes.shape[1] == 0:
        return np.zeros(codes.shape[0], dtype=np.int64)
    codes = codes - codes.min(axis=0, keepdims=True)
    radix = codes.max(axis=0) + 1
    if np.sum(np.log2(radix.astype(np.float64))) < 62:
        mult = np.concatenate([[1], np.cumprod(radix[:-1])]).astype(np.int64)
        _, inverse = np.unique(codes @ mult, return_inverse=True)
    else:
        _, inverse = np.unique(codes, axis=0, return_inverse=True)
    return inverse.ravel().astype(np.int64)


def hard_encoder(clusters: ArrayLike) -> np.ndarray:
    """The (N, n_t) one-hot encoder p(t|x) of a deterministic assignment ``clusters`` (N,)."""
    clusters = np.asarray(clusters, dtype=np.int64)
    _, t = np.unique(clusters, return_inverse=True)
    enc = np.zeros((clusters.size, int(t.max()) + 1 if t.size else 0))
    enc[np.arange(clusters.size), t.ravel()] = 1.0
    return enc


def hard_information(p_xy: ArrayLike, clusters: ArrayLike) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) in bits of the deterministic encoder T = clusters[x].

    I(X;T) = H(T). Equal to ``ibsolver.encoder_information(p_xy, hard_encoder(clusters))``.
    """
    p_xy = np.asarray(p_xy, dtype=np.float64)
    t = np.asarray(clusters, dtype=np.int64)
    _, t = np.unique(t, return_inverse=True)
    t = t.ravel()
    n_t = int(t.max()) + 1
    p_x = p_xy.sum(axis=1)
    p_y = p_xy.sum(axis=0)
    p_t = np.bincount(t, weights=p_x, minlength=n_t)
    p_ty = np.stack([np.bincount(t, weights=p_xy[:, y], minlength=n_t)
                     for y in range(p_xy.shape[1])], axis=1)
    h_t = float(entropy(p_t))
    mask = p_ty > 0
    ratio = p_ty[mask] / (np.broadcast_to(p_t[:, None], p_ty.shape)[mask]
                          * np.broadcast_to(p_y[None, :], p_ty.shape)[mask])
    i_ty = float((p_ty[mask] * np.log(ratio)).sum() / LN2)
    return max(h_t, 0.0), min(max(i_ty, 0.0), max(h_t, 0.0))


# --------------------------------------------------------------------------- binning
BIN_STRATEGIES = ("count", "width", "mass")
#: bin width for layers with no known bounded range under ``range="auto"``: one of the 30
#: bins Shwartz-Ziv & Tishby lay over tanh's (-1, 1), Saxe et al.'s 0.07 made exact. Both
#: grids are then multiples of 2/30 from 0, so a tanh layer whose type is unknown is binned
#: as if it were known (only values at +-1 may land one bin further). Saxe's other width,
#: 0.5, puts a whole freshly initialised ReLU layer of the 12-bit task (largest activation
#: about 0.45) into one bin, so its I(X;T) could only rise.
DEFAULT_BIN_WIDTH = 2.0 / 30.0
#: the output range of bounded torch.nn activation modules, by class name (no torch import
#: here); Hardtanh and its subclass ReLU6 report their own ``min_val`` and ``max_val``
MODULE_RANGES = {"Tanh": (-1.0, 1.0), "Softsign": (-1.0, 1.0), "Sigmoid": (0.0, 1.0),
                 "Hardsigmoid": (0.0, 1.0), "Softmax": (0.0, 1.0), "Softmin": (0.0, 1.0)}
#: torch.nn modules that keep their input's range when recorded (in eval mode): a
#: Sequential ending in a bounded module followed only by these is bounded by it
RANGE_KEEPING = frozenset({"Identity", "Flatten", "Unflatten", "Dropout", "Dropout1d",
                           "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"})


def _torch_nn_names(module: nn.Module) -> list[str]:
    """The names of the ``torch.nn`` classes ``module`` is (its class and base classes)."""
    return [cls.__name__ for cls in type(module).__mro__ if cls.__module__.startswith("torch.nn")]


def module_range(module: nn.Module) -> tuple[float, float] | None:
    """The output range (lo, hi) of a bounded ``torch.nn`` activation module, else None.

    Parameters
    ----------
    module : torch.nn.Module
        Recognised by its class (or a base class) from ``torch.nn``: Tanh, Softsign (-1, 1);
        Sigmoid, Hardsigmoid, Softmax, Softmin (0, 1); Hardtanh and ReLU6 their own bounds.
        An ``nn.Sequential`` has the range of its last module that is not one of
        :data:`RANGE_KEEPING` (Identity, Flatten, Dropout, ...), e.g.
        ``Sequential(Linear, Tanh)`` (-1, 1).

    Returns
    -------
    tuple of two floats or None
        None for anything else: ReLU, Linear, GELU, a Sequential ending in one of those, a
        user's module that applies tanh inside its forward, ... (:class:`Binning` then bins
        it with fixed-width bins).
    """
    names = _torch_nn_names(module)
    if "Sequential" in names:
        inner = [m for m in cast("nn.Sequential", module)
                 if not RANGE_KEEPING.intersection(_torch_nn_names(m))]
        return module_range(inner[-1]) if inner else None
    for name in names:
        if name == "Hardtanh":
            hardtanh = cast("nn.Hardtanh", module)  # torch.nn's Hardtanh or a subclass (ReLU6)
            return float(hardtanh.min_val), float(hardtanh.max_val)
        if name in MODULE_RANGES:
            return MODULE_RANGES[name]
    return None


def layer_bounds(model: nn.Module, layers: Sequence[str],
                 transforms: Mapping[str, Any] | None = None) -> dict[str, tuple[float, float] | None]:
    """{layer: (lo, hi) or None}: the ``bounds`` of :class:`Binning` for hooked layers.

    Parameters
    ----------
    model : torch.nn.Module
        The network whose submodules ``layers`` name (as in ``dnn.record_training``).
    layers : list of str
        The recorded submodule names.
    transforms : dict, optional
        ``record_training``'s transforms: a layer recorded through "softmax" has range
        (0, 1); one recorded through any other callable has no known range (None).

    Returns
    -------
    dict
        Each layer's output range from :func:`module_range`, None where not known.
    """
    modules = dict(model.named_modules())
    transforms = dict(transforms or {})
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"layers {missing} are not submodules of the model")
    out = {}
    for name in layers:
        if name in transforms:
            out[name] = (0.0, 1.0) if transforms[name] == "softmax" else None
        else:
            out[name] = module_range(modules[name])
    return out


def _check_range(value, name):
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 'auto', 'layer', 'global' or (lo, hi) "
                         f"(got {value!r})") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"{name} must satisfy lo < hi, both finite (got {value!r})")
    return lo, hi


class Binning:
    """Binning estimator: T_b = bin(layer output), a deterministic function of X.

    Parameters
    ----------
    n_bins : bins per unit for ``strategy="count"`` and ``"mass"`` (30 in Shwartz-Ziv &
        Tishby).
    strategy : "count" (n_bins equal bins over ``range``), "width" (bins of width
        ``bin_width`` anchored at 0, any number of them), "mass" (per unit, n_bins quantile
        bins of equal p(x)-mass; ties can merge bins).
    range : for "count": "auto" (the default, see below), "layer" (each layer's min..max at
        that moment), "global" (min..max over all the layers passed together) or a fixed
        (lo, hi), e.g. (-1, 1) for tanh.
    bin_width : for "width"; for "auto", the width of the bins of a layer without a known
        range (default :data:`DEFAULT_BIN_WIDTH`, 2/30).
    bounds : for "auto": {layer: (lo, hi) or None}, each layer's output range, e.g. from
        :func:`layer_bounds` (the infoplane recipe fills it in for its MLP).

    The "auto" rule: a layer named in ``bounds`` with a range (lo, hi) (tanh (-1, 1),
    sigmoid or softmax (0, 1), hardtanh its bounds) gets n_bins equal bins over that fixed
    range; every other layer, unbounded (ReLU, linear, GELU, ...) or not named, gets bins of
    width ``bin_width`` anchored at 0. Neither depends on the activations, so the bins of a
    layer stay the same over training. "layer" and "global" recompute the range at every
    record: when a ReLU layer's largest activation grows 30x, each of its bins widens 30x
    and I(X;T) falls with no change in the binned pattern -- compression manufactured by
    the estimator. :meth:`rules` states, per layer, what is applied.
    """

    name = "binning"
    keys = ("binning",)
    exact = True

    def __init__(self, n_bins: int = 30, *, strategy: str = "count",
                 range: str | Sequence[float] = "auto", bin_width: float | None = None,
                 bounds: dict[str, Sequence[float] | None] | None = None) -> None:
        if strategy not in BIN_STRATEGIES:
            raise ValueError(f"strategy must be one of {list(BIN_STRATEGIES)} (got {strategy!r})")
        if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer (got {n_bins!r})")
        if isinstance(range, str):
            if range not in ("auto", "layer", "global"):
                raise ValueError(f"range must be 'auto', 'layer', 'global' or (lo, hi) "
                                 f"(got {range!r})")
        else:
            range = _check_range(range, "range")
        if bin_width is None and strategy == "count" and range == "auto":
            bin_width = DEFAULT_BIN_WIDTH
        if bin_width is not None or strategy == "width":
            if bin_width is None or not (float(bin_width) > 0 and math.isfinite(float(bin_width))):
                raise ValueError(f"bin_width must be a positive number (needed for "
                                 f"strategy='width') (got {bin_width!r})")
            bin_width = float(bin_width)
        if not isinstance(bounds, (dict, type(None))):
            raise ValueError(f"bounds must be a dict {{layer: (lo, hi) or None}} (got {bounds!r})")
        self.bounds = {str(k): None if v is None else _check_range(v, f"bounds[{k!r}]")
                       for k, v in (bounds or {}).items()}
        self.n_bins = int(n_bins)
        self.strategy = strategy
        self.range = range
        self.bin_width = bin_width

    @property
    def _auto(self) -> bool:
        return self.strategy == "count" and self.range == "auto"

    @property
    def knobs(self) -> dict:
        k = {"strategy": self.strategy}
        if self.strategy in ("count", "mass"):
            k["n_bins"] = self.n_bins
        if self.strategy == "count":
            k["range"] = self.range if isinstance(self.range, str) else list(self.range)
        if self.strategy == "width" or self._auto:
            k["bin_width"] = self.bin_width
        if self._auto:
            k["bounds"] = {name: None if b is None else list(b) for name, b in self.bounds.items()}
        return k

    def spec(self) -> dict:
        return {"name": self.name, **self.knobs}

    def __repr__(self) -> str:
        return "Binning(" + ", ".join(f"{k}={v!r}" for k, v in self.knobs.items()) + ")"

    @property
    def label(self) -> str:
        """The setting in words, e.g. "30 bins over each layer's range" (sweep legends)."""
        if self._auto:
            return (f"auto: {self.n_bins} bins over a bounded layer's range, else width "
                    f"{self.bin_width:.3g}")
        if self.strategy == "width":
            return f"width {self.bin_width:.3g}"
        if self.strategy == "mass":
            return f"{self.n_bins} equal-mass bins per unit"
        if self.range == "layer":
            return f"{self.n_bins} bins over each layer's range"
        if self.range == "global":
            return f"{self.n_bins} bins over all layers' range"
        return "{} bins over ({:g}, {:g})".format(self.n_bins, *self.range)

    def rules(self, layers: Iterable[str]) -> dict[str, str]:
        """{layer: the binning applied to it, in words}, e.g. {"act1": "30 bins over (-1, 1)",
        "act5": "bins of width 0.0667 (no known bounded range)"}."""
        out = {}
        for name in layers:
            if not self._auto:
                out[name] = self.label
            elif (bounds := self.bounds.get(name)) is None:
                out[name] = f"bins of width {self.bin_width:.3g} (no known bounded range)"
            else:
                out[name] = f"{self.n_bins} bins over ({bounds[0]:g}, {bounds[1]:g})"
        return out

    def codes(self, activations: Activations, p_x: ArrayLike | None = None) -> dict[str, np.ndarray]:
        """{layer: (N, w) int array}: the bin index of every unit of every row."""
        acts = _as_layers(activations)
        if self.strategy == "mass":
            return {name: _mass_codes(a, self.n_bins, p_x) for name, a in acts.items()}
        lo, hi = self.range if isinstance(self.range, tuple) else (None, None)
        if self.range == "global":
            lo, hi = min(a.min() for a in acts.values()), max(a.max() for a in acts.values())
        out = {}
        for name, a in acts.items():
            if self.strategy == "width" or (self._auto and self.bounds.get(name) is None):
                out[name] = np.floor(a / self.bin_width).astype(np.int64)
                continue
            if self._auto:
                lo, hi = self.bounds[name]  # type: ignore[misc]  # (not None here)
                if a.min() < lo or a.max() > hi:
                    logger.warning("layer %r has values in [%.4g, %.4g], outside its declared "
                                   "range (%g, %g): they fall into the end bins", name,
                                   a.min(), a.max(), lo, hi)
            elif self.range == "layer":
                lo, hi = a.min(), a.max()
            if hi > lo:
                c = np.floor((a - lo) / (hi - lo) * self.n_bins).astype(np.int64)
                out[name] = np.clip(c, 0, self.n_bins - 1)
            else:
                out[name] = np.zeros(a.shape, dtype=np.int64)
        return out

    def clusters(self, activations: Activations,
                 p_x: ArrayLike | None = None) -> dict[str, np.ndarray]:
        """{layer: (N,) int array}: the binned state T_b(x) of every row, numbered 0..n_t-1."""
        return {name: _rows_to_clusters(c) for name, c in self.codes(activations, p_x).items()}

    def estimate(self, activations: Activations, p_xy: ArrayLike) -> list[InfoEstimate]:
        """[InfoEstimate] for ``activations`` ({layer: (N, w)}, in feed-forward order)."""
        acts = _as_layers(activations)
        n = next(iter(acts.values())).shape[0]
        p_xy = check_probe_joint(p_xy, n)
        clusters = self.clusters(acts, p_xy.sum(axis=1))
        i_xt, i_ty, n_t = [], [], []
        for name in acts:
            a, b = hard_information(p_xy, clusters[name])
            i_xt.append(a)
            i_ty.append(b)
            n_t.append(int(clusters[name].max()) + 1)
        return [_make_estimate(self.name, self.knobs, list(acts), i_xt, i_ty, p_xy, True, n_t)]


def _mass_codes(a, n_bins, p_x):
    """Per unit of ``a`` (N, w), n_bins quantile bins of equal p(x)-mass."""
    n = a.shape[0]
    w = np.full(n, 1.0 / n) if p_x is None else np.asarray(p_x, dtype=np.float64)
    c = np.empty(a.shape, dtype=np.int64)
    for u in range(a.shape[1]):
        order = np.argsort(a[:, u], kind="stable")
        cdf = np.cumsum(w[order])
        targets = np.arange(1, n_bins) / n_bins * cdf[-1]
        # first row past each mass target: bin k holds the rows whose
        # cumulative mass is within (k/B, (k+1)/B] (up to round-off)
        pos = np.searchsorted(cdf, targets * (1 + 1e-9), side="right")
        edges = np.unique(a[order[np.minimum(pos, n - 1)], u])
        c[:, u] = np.searchsorted(edges, a[:, u], side="right")
    return c


# --------------------------------------------------------------------------- KDE
def _pairwise_terms(h: np.ndarray, weights: np.ndarray, scales, chunk: int = 512):
    """For each scale c: log sum_j W[j, k] exp(-|h_i - h_j|^2 / c), shape (N, K) per scale.

    Distances in float64; the kernel and its weighted sums in float32 (numpy's float32 exp is
    an order of magnitude faster), logs in float64. The diagonal term keeps every sum > 0
    wherever the row's own weight is.
    """
    n = h.shape[0]
    sq = np.einsum("ij,ij->i", h, h)
    w32 = np.ascontiguousarray(weights, dtype=np.float32)
    outs = [np.empty((n, weights.shape[1])) for _ in scales]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        d = h[start:stop] @ h.T
        d *= -2.0
        d += sq[start:stop, None]
        d += sq[None, :]
        np.maximum(d, 0.0, out=d)
        d[np.arange(stop - start), np.arange(start, stop)] = 0.0
        for out, c in zip(outs, scales):
            k = np.exp((d * (-1.0 / c)).astype(np.float32))
            s = (k @ w32).astype(np.float64)
            with np.errstate(divide="ignore"):
                out[start:stop] = np.log(s)
    return outs


def _pairwise_terms_torch(h: np.ndarray, weights: np.ndarray, scales, device, chunk: int = 2048):
    """:func:`_pairwise_terms` in torch (float64 distances and kernel) on ``device``."""
    import torch

    dev = torch.device(device)
    ht = torch.as_tensor(h, dtype=torch.float64, device=dev)
    wt = torch.as_tensor(weights, dtype=torch.float64, device=dev)
    sq = (ht * ht).sum(dim=1)
    n = ht.shape[0]
    outs = [np.empty((n, weights.shape[1])) for _ in scales]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        d = torch.addmm(sq[start:stop, None] + sq[None, :], ht[start:stop], ht.T, alpha=-2.0)
        d.clamp_min_(0.0)
        idx = torch.arange(stop - start, device=dev)
        d[idx, idx + start] = 0.0
        for out, c in zip(outs, scales):
            out[start:stop] = torch.log(torch.exp(d * (-1.0 / c)) @ wt).cpu().numpy()
    return outs


def kde_information(h: ArrayLike, p_xy: ArrayLike, noise_var: float, *,
                    device: torch.device | str | None = None) -> dict[str, tuple[float, float]]:
    """KDE bounds for one layer: {"upper": (I(X;T), I(T;Y)), "lower": (...)}, bits.

    ``h`` (N, w) activations, ``p_xy`` (N, C) the probe joint, ``noise_var`` = s^2 > 0.
    ``device`` None computes with numpy; a torch device ("cpu", "cuda") with torch (float64,
    worth it on a GPU: the cost is O(N^2 w)).
    """
    h = np.asarray(h, dtype=np.float64)
    if h.ndim == 1:
        h = h[:, None]
    p_xy = np.asarray(p_xy, dtype=np.float64)
    p_x = p_xy.sum(axis=1)
    p_y = p_xy.sum(axis=0)
    keep = p_y > 0
    p_x_given_y = p_xy[:, keep] / p_y[keep][None, :]
    weights = np.concatenate([p_x[:, None], p_x_given_y], axis=1)
    out = {}
    scales = (2.0 * noise_var, 8.0 * noise_var)
    if device is None:
        terms = _pairwise_terms(h, weights, scales)
    else:
        terms = _pairwise_terms_torch(h, weights, scales, device)
    for kind, logs in zip(("upper", "lower"), terms):
        with np.errstate(invalid="ignore"):
            marg = -float(np.sum(np.where(p_x > 0, p_x * logs[:, 0], 0.0)))
            cond = 0.0
            for k, py in enumerate(p_y[keep]):
                w = p_x_given_y[:, k]
                cond += py * -float(np.sum(np.where(w > 0, w * logs[:, k + 1], 0.0)))
        out[kind] = (marg / LN2, (marg - cond) / LN2)
    return out


class KDE:
    """Kolchinsky-Tracey pairwise-distance bounds for T + N(0, noise_var I).

    Produces two estimates, "kde_upper" and "kde_lower" (knob ``noise_var`` = s^2 in the
    units of the activations squared; Saxe et al. used 1e-1). Cost O(N^2 w) per layer.
    ``device``: None (numpy) or a torch device to compute on ("cuda" is much faster for
    large N); not a knob: the numbers agree to round-off.
    """

    name = "kde"
    keys = ("kde_upper", "kde_lower")
    exact = False

    def __init__(self, noise_var: float = 0.1, *, device: torch.device | str | None = None) -> None:
        self.device = device
        try:
            v = float(noise_var)
        except (TypeError, ValueError):
            raise ValueError(f"noise_var must be a positive number (got {noise_var!r})") from None
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"noise_var must be a positive number (got {noise_var!r})")
        self.noise_var = v

    @property
    def knobs(self) -> dict:
        return {"noise_var": self.noise_var}

    def spec(self) -> dict:
        return {"name": self.name, **self.knobs}

    def __repr__(self) -> str:
        return f"KDE(noise_var={self.noise_var!r})"

    @property
    def label(self) -> str:
        """The setting in words (sweep legends)."""
        return f"noise_var={self.noise_var:g}"

    def rules(self, layers: Iterable[str]) -> dict[str, str]:
        """{layer: the setting applied to it, in words} (the same for every layer)."""
        return {name: self.label for name in layers}

    def estimate(self, activations: Activations, p_xy: ArrayLike) -> list[InfoEstimate]:
        """[upper, lower] InfoEstimates for ``activations`` ({layer: (N, w)})."""
        acts = _as_layers(activations)
        n = next(iter(acts.values())).shape[0]
        p_xy = check_probe_joint(p_xy, n)
        vals = {name: kde_information(a, p_xy, self.noise_var, device=self.device)
                for name, a in acts.items()}
        res = []
        for kind in ("upper", "lower"):
            i_xt = [vals[name][kind][0] for name in acts]
            i_ty = [vals[name][kind][1] for name in acts]
            res.append(_make_estimate(f"kde_{kind}", self.knobs, list(acts), i_xt, i_ty,
                                      p_xy, False))
        return res


def make_estimator(spec: EstimatorSpec) -> Binning | KDE:
    """An estimator from an instance, a name ("binning", "kde") or a spec dict
    ({"name": "binning", "n_bins": 30, ...})."""
    if isinstance(spec, (Binning, KDE)):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"estimator must be Binning(...), KDE(...), 'binning', 'kde' or a "
                         f"spec dict with 'name' (got {spec!r})")
    knobs = {k: v for k, v in spec.items() if k != "name"}
    if spec["name"] == "binning":
        return Binning(**knobs)
    if spec["name"] == "kde":
        return KDE(**knobs)
    raise ValueError(f"estimator name must be 'binning' or 'kde' (got {spec['name']!r})")


def estimate_ensemble(estimator: EstimatorSpec, activations: Mapping[str, np.ndarray],
                      p_xy: ArrayLike) -> dict[str, dict[str, Any]]:
    """Run ``estimator`` on every ensemble member.

    ``activations`` {layer: (S, N, w)}. Returns {key: {"i_xt": (S, L), "i_ty": (S, L),
    "n_clusters": (S, L), "estimates": [InfoEstimate per member]}} for each of the
    estimator's keys ("binning", or "kde_upper" and "kde_lower").
    """
    est = make_estimator(estimator)
    layers = list(activations)
    n_members = np.asarray(activations[layers[0]]).shape[0]
    per_key = {k: [] for k in est.keys}
    for s in range(n_members):
        res = est.estimate({name: np.asarray(activations[name][s]) for name in layers}, p_xy)
        for r in res:
            per_key[r.estimator].append(r)
    out = {}
    for key, rs in per_key.items():
        out[key] = {"i_xt": np.stack([r.i_xt for r in rs]),
                    "i_ty": np.stack([r.i_ty for r in rs]),
                    "n_clusters": np.stack([r.n_clusters for r in rs]),
                    "estimates": rs}
    return out


# --------------------------------------------------------------------------- sensitivity
@dataclass(frozen=True)
class Sensitivity(Result):
    """How an estimate moves with the estimator's setting, in bits.

    ``save``/``load`` (one .npz, no pickle; the estimates are saved with it),
    ``summary()`` (plain JSON values, NaN as None) and ``to_dataframe()`` (one row per
    (value, layer)) as every ``ibsolver`` result.

    estimator : "binning", "kde_upper" or "kde_lower"; knob : "n_bins", "bin_width" or
    "noise_var" (a sweep of numbers), or "setting" (a sweep of changes to the settings,
    dicts); values : the numbers or changes swept, as given; labels : each setting in words;
    layers; i_xt, i_ty : (V, n_layers); spread_xt, spread_ty : (n_layers,) max - min over
    the values; estimates : the InfoEstimate of each value.
    """

    estimator: str
    knob: str
    values: tuple
    labels: tuple
    layers: tuple
    i_xt: np.ndarray
    i_ty: np.ndarray
    spread_xt: np.ndarray
    spread_ty: np.ndarray
    estimates: tuple

    def summary(self) -> dict:
        """The estimator, the knob, the values swept and their labels, per value and layer
        I(X;T) and I(T;Y), per layer their spread over the values (bits), as plain JSON
        values; NaN as None."""
        return json_safe({"estimator": self.estimator, "knob": self.knob, "values": list(self.values),
                           "labels": list(self.labels), "layers": list(self.layers),
                           "i_xt_bits": self.i_xt.tolist(), "i_ty_bits": self.i_ty.tolist(),
                           "spread_xt_bits": self.spread_xt.tolist(),
                           "spread_ty_bits": self.spread_ty.tolist()})

    def _columns(self) -> list:
        """One row per (value, layer): the setting in words, its value (the number, or for
        a sweep of settings its JSON text), I(X;T), I(T;Y) and the layer's spreads (bits)."""
        return [{"estimator": self.estimator, "knob": self.knob, "setting": label,
                 "value": (json.dumps(value, sort_keys=True) if self.knob == "setting"
                           else value),
                 "layer": layer, "i_xt_bits": float(self.i_xt[v, k]),
                 "i_ty_bits": float(self.i_ty[v, k]),
                 "spread_xt_bits": float(self.spread_xt[k]),
                 "spread_ty_bits": float(self.spread_ty[k])}
                for v, (value, label) in enumerate(zip(self.values, self.labels))
                for k, layer in enumerate(self.layers)]


#: what a sweep tries by default. Binning: the run's own setting ({}), then each change to
#: it in turn: the number of bins (over a bounded range), the width of an unbounded layer's
#: bins, fixed-width bins for every layer (Saxe et al.'s 0.5 and 0.07), the ranges
#: recomputed at every record (Shwartz-Ziv & Tishby's per-layer range, and all layers'
#: range), which can manufacture compression, and the "auto" rule (changes that repeat
#: the run's own setting are dropped). KDE: the noise variance s^2.
DEFAULT_SWEEPS = {"binning": ({}, {"n_bins": 10}, {"n_bins": 100}, {"bin_width": 0.5},
                              {"bin_width": 0.02}, {"strategy": "width", "bin_width": 0.5},
                              {"strategy": "width", "bin_width": 0.07},
                              {"strategy": "count", "range": "layer"},
                              {"strategy": "count", "range": "global"},
                              {"strategy": "count", "range": "auto"}),
                  "kde": (1e-3, 1e-2, 1e-1, 1.0)}


def sweep_estimators(estimator: str = "binning", values: Iterable[float | dict[str, Any]] | None = None,
                     **knobs: Any) -> tuple[str, list[float | dict[str, Any]], list[Binning | KDE]]:
    """The estimators of a sensitivity sweep.

    Parameters
    ----------
    estimator : "binning" or "kde".
    values : sequence, optional
        Numbers (values of the main knob: ``n_bins``, or ``bin_width`` with
        strategy="width"; ``noise_var`` for KDE) or dicts (changes to ``knobs``, e.g.
        ``{"strategy": "count", "range": "layer"}``), or both. Default
        ``DEFAULT_SWEEPS[estimator]``.
    **knobs
        The setting every value changes (e.g. a run's ``Binning.knobs``).

    Returns
    -------
    (knob, values, estimators)
        knob : the main knob's name, or "setting" when a value is a dict; values : those
        giving distinct estimators, in order (a repeat of an earlier setting is dropped);
        estimators : one per value.
    """
    if estimator not in DEFAULT_SWEEPS:
        raise ValueError(f"estimator must be 'binning' or 'kde' (got {estimator!r})")
    knob = "noise_var" if estimator == "kde" else (
        "bin_width" if knobs.get("strategy") == "width" else "n_bins")
    kept, ests, seen = [], [], set()
    for v in DEFAULT_SWEEPS[estimator] if values is None else values:
        est = make_estimator({"name": estimator, **knobs,
                              **(v if isinstance(v, dict) else {knob: v})})
        spec = json.dumps(est.spec(), sort_keys=True)
        if spec not in seen:
            seen.add(spec)
            kept.append(v)
            ests.append(est)
    if not kept:
        raise ValueError("values must list at least one knob value (got none)")
    if any(isinstance(v, dict) for v in kept):
        knob = "setting"
    return knob, kept, ests


def sensitivity(activations: Activations, p_xy: ArrayLike, *, estimator: str = "binning",
                values: Iterable[float | dict[str, Any]] | None = None,
                **knobs: Any) -> list[Sensitivity]:
    """Sweep an estimator's settings on fixed activations ({layer: (N, w)}).

    ``values`` and ``knobs`` as in :func:`sweep_estimators`: by default binning tries its
    number of bins, its range rules and its widths, KDE its noise variance. Returns a list
    of :class:`Sensitivity` (one for binning, upper and lower for KDE).
    """
    knob, values, ests = sweep_estimators(estimator, values, **knobs)
    acts = _as_layers(activations)
    per_key: dict = {}
    for est in ests:
        for r in est.estimate(acts, p_xy):
            per_key.setdefault(r.estimator, []).append(r)
    out = []
    for key, rs in per_key.items():
        i_xt = np.stack([r.i_xt for r in rs])
        i_ty = np.stack([r.i_ty for r in rs])
        out.append(Sensitivity(estimator=key, knob=knob, values=tuple(values),
                               labels=tuple(e.label for e in ests), layers=tuple(acts),
                               i_xt=i_xt, i_ty=i_ty, spread_xt=i_xt.max(0) - i_xt.min(0),
                               spread_ty=i_ty.max(0) - i_ty.min(0), estimates=tuple(rs)))
    return out


#: a layer whose range (max - min of its activations) changes by more than this factor
#: between records gets a warning: bins over the layer's own range widen or narrow as
#: much, whatever the layer separates
RANGE_CHANGE_WARN = 4.0


def range_changes(activations: Mapping[str, ArrayLike], *, factor: float = RANGE_CHANGE_WARN,
                  seeds: Iterable[Any] | None = None) -> dict[str, dict[str, Any]]:
    """How much each layer's range (max - min over probe rows and units) changes over records,
    in every network.

    Parameters
    ----------
    activations : dict
        {layer: (E, S, N, w) or (E, N, w) array}: E records (epochs) of S networks (seeds),
        e.g. ``Recording.activations`` (kept for every seed by the infoplane recipe).
    factor : float
        A network whose largest range over the records exceeds ``factor`` times its
        smallest is counted; a layer with any such network is warned about through
        ``logging``.
    seeds : sequence, optional
        The names of the S networks (default 0 .. S-1), as the result reports them.

    Returns
    -------
    dict
        {layer: {"ratio": the worst factor (largest over smallest range) over the networks,
        inf when a smallest range is 0; "seed", "smallest", "largest": the network where
        it is worst and its two ranges; "ratios": the factor of each network;
        "n_seeds_changed": how many networks exceed ``factor``; "n_seeds": S; "warn":
        whether any does}}.
    """
    factor = float(factor)
    out = {}
    for name, a in activations.items():
        a = np.asarray(a)
        if a.ndim not in (3, 4):
            raise ValueError(f"activations[{name!r}] must be (E, S, N, w) or (E, N, w) "
                             f"(got shape {a.shape})")
        a = a if a.ndim == 4 else a[:, None]
        # reduced in the stored dtype (no float64 copy of every record), subtracted in float64
        spans = (a.max(axis=(2, 3)).astype(np.float64)
                 - a.min(axis=(2, 3)).astype(np.float64))            # (E, S)
        lo, hi = spans.min(axis=0), spans.max(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(hi > 0, hi / lo, 1.0)
        names = list(range(a.shape[1])) if seeds is None else list(seeds)
        if len(names) != a.shape[1]:
            raise ValueError(f"seeds must name the {a.shape[1]} networks of "
                             f"activations[{name!r}] (got {len(names)})")
        s = int(np.argmax(ratio))
        n_changed = int(np.sum(ratio > factor))
        out[name] = {"ratio": float(ratio[s]), "seed": names[s], "smallest": float(lo[s]),
                     "largest": float(hi[s]), "ratios": [float(r) for r in ratio],
                     "n_seeds_changed": n_changed, "n_seeds": int(ratio.size),
                     "warn": n_changed > 0}
        if n_changed:
            logger.warning("layer %r: its range (max - min) changes more than %gx between "
                           "records in %d of %d seeds (worst %.3gx, %.3g to %.3g, seed %s); "
                           "bins over a layer's own range (range='layer' or 'global') widen "
                           "as much and can fake compression", name, factor, n_changed,
                           ratio.size, ratio[s], lo[s], hi[s], names[s])
    return out
