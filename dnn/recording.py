"""The record of a training run on the information plane: one frozen object, in bits.

A :class:`Recording` is what :func:`dnn.record_training` returns, whatever the model and
data. Every downstream function (:mod:`dnn.infoplane`) takes one, with the
``ibsolver.IBCurve`` of its ``p_xy``. ``save``/``load`` use one ``.npz`` of plain arrays with
the metadata as JSON (no pickle), as every ``ibsolver`` result does.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from ibsolver.results import Result, dataframe, json_safe
from numpy.typing import ArrayLike

from .estimators import DPI_TOL, SATURATION

if TYPE_CHECKING:
    import pandas as pd
    import torch
    import xarray as xr
    from ibsolver import IBCurve
    from torch import nn

#: a torch module type, kept by :func:`load_state`
ModuleT = TypeVar("ModuleT", bound="nn.Module")

@dataclass(frozen=True, repr=False)
class Recording(Result):
    """Layers of a network (one per seed) on the information plane over training. Bits.

    Arrays are indexed (epoch record E, seed S[, layer]):

    epochs (E,); seeds (S,); layers (L,) the recorded module names, layer_widths (L,)
    (units per probe row, flattened); info {key: {"i_xt", "i_ty", "n_clusters"} (E, S, L)}
    for each estimator key ("binning", "kde_upper", ...), with estimators (their specs: name
    and every setting) and exact_keys (keys whose points are real encoders of X);
    train_loss, test_loss (E, S) cross-entropy in bits, train_acc, test_acc (E, S) (NaN
    without test data); grad_layers (G,) the parametrised modules (each one's own
    parameters, flattened together), grad_mean_norm, grad_std_norm (E, S, G) the Euclidean
    norms of the elementwise mean and (population) standard deviation of the minibatch
    gradients over the epoch ending at the record, grad_snr their ratio (the signal-to-noise
    ratio; NaN with fewer than two minibatches, so at epoch 0), grad_n_batches (E,) the
    number of minibatches those statistics are taken over (0 at epoch 0);
    grad_layer_of (L,) the grad layer that last feeds each recorded layer ("" if none);
    p_xy (N, C) the probe's joint; estimate_time_s (E,); activations {layer: (E, S_kept, N,
    width)} float32 for the first seeds kept, or None; final_activations {layer: (S, N,
    width)} float32 at the last record; final_state {name: (S, ...)} every seed's
    parameters and buffers after training (see :meth:`network`); measures {name: (E, S)}
    the values of ``record_training``'s ``measures`` (e.g. a Fisher trace); settings
    (JSON-ready: optimizer, lr, epochs, ..., and whatever the recipe adds); name (for
    titles); batched (the seeds ran as one vmapped ensemble); device; wall_time_s;
    complete (training ran all its epochs).
    """

    epochs: np.ndarray
    seeds: tuple
    layers: tuple
    layer_widths: tuple
    info: dict
    estimators: tuple
    exact_keys: tuple
    train_loss: np.ndarray
    test_loss: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    grad_layers: tuple
    grad_mean_norm: np.ndarray
    grad_std_norm: np.ndarray
    grad_snr: np.ndarray
    grad_n_batches: np.ndarray
    grad_layer_of: tuple
    p_xy: np.ndarray
    estimate_time_s: np.ndarray
    final_activations: dict
    activations: dict | None = None
    final_state: dict = field(default_factory=dict)
    measures: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    name: str = "network"
    batched: bool = False
    device: str = "cpu"
    wall_time_s: float = float("nan")
    complete: bool = True

    def __repr__(self) -> str:
        return (f"Recording({self.name!r}: {len(self.seeds)} seeds x {len(self.epochs)} records "
                f"(epochs {int(self.epochs[0])}..{int(self.epochs[-1])}) x layers "
                f"{list(self.layers)}, N = {self.n_probe}, estimators {list(self.info)}, "
                f"{'batched' if self.batched else 'one by one'} on {self.device})")

    # ---- derived
    @property
    def n_probe(self) -> int:
        return int(self.p_xy.shape[0])

    @property
    def log2_n(self) -> float:
        """log2 N, the ceiling of I(X;T) for uniform p(x) on the probe (bits)."""
        return math.log2(self.n_probe)

    @property
    def h_x(self) -> float:
        from ibsolver import entropy

        return float(entropy(self.p_xy.sum(axis=1)))

    @property
    def h_y(self) -> float:
        from ibsolver import entropy

        return float(entropy(self.p_xy.sum(axis=0)))

    def knobs(self, key: str) -> dict:
        """The settings of the estimator that produced ``key``."""
        self._check_key(key)
        spec = next(s for s in self.estimators
                    if key == s["name"] or key.startswith(s["name"] + "_"))
        return {k: v for k, v in spec.items() if k != "name"}

    def _check_key(self, key):
        if key not in self.info:
            raise ValueError(f"key must be one of {sorted(self.info)} (got {key!r})")

    def saturated(self, key: str) -> np.ndarray:
        """(E, S, L) bool: I(X;T) within 1% of log2 N."""
        self._check_key(key)
        return self.info[key]["i_xt"] >= (1.0 - SATURATION) * self.log2_n

    def dpi_violations(self, key: str) -> list:
        """Records where a later layer has more I(X;T) or I(T;Y) than the layer before it."""
        self._check_key(key)
        out = []
        d = self.info[key]
        for q, label in (("i_xt", "I(X;T)"), ("i_ty", "I(T;Y)")):
            diff = np.diff(d[q], axis=2)
            for e, s, k in zip(*np.nonzero(diff > DPI_TOL)):
                out.append({"epoch": int(self.epochs[e]), "seed": int(self.seeds[s]),
                            "layer": self.layers[k + 1], "previous": self.layers[k],
                            "quantity": label, "excess_bits": float(diff[e, s, k])})
        return out

    def network(self, model: ModuleT, seed_index: int = 0) -> ModuleT:
        """A copy of ``model`` (the module that was trained) holding seed ``seed_index``'s
        final parameters and buffers."""
        import copy

        if not 0 <= seed_index < len(self.seeds):
            raise ValueError(f"seed_index must be in [0, {len(self.seeds)}) (got {seed_index})")
        return load_state(copy.deepcopy(model),
                          {k: v[seed_index] for k, v in self.final_state.items()})

    # ---- tables
    def _columns(self, curve: IBCurve | None = None) -> list[dict[str, Any]]:
        """The rows of :meth:`to_dataframe` (and of the CLI's records.csv): one dict per
        (estimator key, epoch, seed, layer), bits; with ``curve`` the bound and the gap."""
        rows = []
        grad_index = {g: j for j, g in enumerate(self.grad_layers)}
        common = {"n_probe": self.n_probe, "log2_n": self.log2_n, "h_y_bits": self.h_y}
        for key, d in self.info.items():
            knobs = json.dumps(self.knobs(key), sort_keys=True)
            sat = self.saturated(key)
            bound = (None if curve is None
                     else _bound_values(self, curve, d["i_xt"]))
            for e, epoch in enumerate(self.epochs):
                for s, seed in enumerate(self.seeds):
                    for k, layer in enumerate(self.layers):
                        j = grad_index.get(self.grad_layer_of[k])
                        grad = {name: (float(getattr(self, name)[e, s, j]) if j is not None
                                       else float("nan"))
                                for name in ("grad_mean_norm", "grad_std_norm", "grad_snr")}
                        row = {"epoch": int(epoch), "seed": int(seed), "layer": layer,
                               "width": int(self.layer_widths[k]), "estimator": key,
                               "knobs": knobs, "i_xt_bits": float(d["i_xt"][e, s, k]),
                               "i_ty_bits": float(d["i_ty"][e, s, k]),
                               "n_clusters": int(d["n_clusters"][e, s, k]),
                               "saturated": bool(sat[e, s, k]),
                               "grad_layer": self.grad_layer_of[k], **grad,
                               "grad_n_batches": int(self.grad_n_batches[e]),
                               "train_loss_bits": float(self.train_loss[e, s]),
                               "test_loss_bits": float(self.test_loss[e, s]),
                               "train_acc": float(self.train_acc[e, s]),
                               "test_acc": float(self.test_acc[e, s]), **common}
                        if bound is not None:
                            row["bound_bits"] = float(bound[e, s, k])
                            row["gap_bits"] = float(bound[e, s, k] - d["i_ty"][e, s, k])
                        rows.append(row)
        return rows

    def training_rows(self) -> list:
        """One dict per (epoch, seed): losses (bits), accuracies, the gradient statistics per
        parametrised layer (grad_mean_norm_G, grad_std_norm_G, grad_snr_G; over
        grad_n_batches minibatches) and the measures."""
        rows = []
        for e, epoch in enumerate(self.epochs):
            for s, seed in enumerate(self.seeds):
                row = {"epoch": int(epoch), "seed": int(seed),
                       "train_loss_bits": float(self.train_loss[e, s]),
                       "test_loss_bits": float(self.test_loss[e, s]),
                       "train_acc": float(self.train_acc[e, s]),
                       "test_acc": float(self.test_acc[e, s]),
                       "grad_n_batches": int(self.grad_n_batches[e])}
                for j, g in enumerate(self.grad_layers):
                    for name in ("grad_mean_norm", "grad_std_norm", "grad_snr"):
                        row[f"{name}_{g}"] = float(getattr(self, name)[e, s, j])
                for name, values in self.measures.items():
                    row[name] = float(values[e, s])
                rows.append(row)
        return rows

    def to_dataframe(self, curve: IBCurve | None = None) -> pd.DataFrame:
        """The tidy table, one row per (estimator key, epoch, seed, layer); information in
        bits.

        The gradient columns (grad_mean_norm, grad_std_norm, grad_snr, grad_n_batches) are
        those of ``grad_layer``, the parametrised module that last feeds the layer (NaN
        where none does). With ``curve`` (the ``ibsolver.IBCurve`` of ``p_xy``) adds the
        bound and the gap (``bound_bits``, ``gap_bits``).

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ImportError
            Where pandas is not installed (:meth:`summary` needs no pandas).
        """
        return dataframe(self._columns(curve))

    def summary(self, curve: IBCurve | None = None, key: str | None = None) -> dict[str, Any]:
        """:func:`dnn.infoplane.summary` of the run for estimator ``key`` (default
        "binning" where recorded, else the first key), with ``curve`` (the
        ``ibsolver.IBCurve`` of ``p_xy``) the gaps to the bound: plain JSON values, bits,
        NaN as None."""
        from .infoplane import summary

        if key is None:
            key = "binning" if "binning" in self.info else next(iter(self.info))
        return json_safe(summary(self, curve, key))

    def to_xarray(self) -> xr.Dataset:
        """The recording as an ``xarray.Dataset`` (needs xarray): per estimator key,
        ``i_xt_KEY``, ``i_ty_KEY``, ``n_clusters_KEY`` over (epoch, seed, layer); the losses
        and accuracies over (epoch, seed); the gradient statistics over (epoch, seed,
        grad_layer); ``grad_n_batches`` over epoch. Information in bits. The estimators'
        settings and the run's settings are JSON text in the attributes."""
        try:
            import xarray as xr
        except ImportError:
            raise ImportError("to_xarray needs xarray: pip install xarray "
                              "(or use summary() for a dict)") from None
        esl, es, esg = ("epoch", "seed", "layer"), ("epoch", "seed"), ("epoch", "seed", "grad_layer")
        data: dict[str, tuple[tuple[str, ...], np.ndarray]] = {f"{q}_{key}": (esl, np.asarray(d[q]))
                for key, d in self.info.items() for q in ("i_xt", "i_ty", "n_clusters")}
        data.update({name: (es, np.asarray(getattr(self, name)))
                     for name in ("train_loss", "test_loss", "train_acc", "test_acc")})
        data.update({name: (esg, np.asarray(getattr(self, name)))
                     for name in ("grad_mean_norm", "grad_std_norm", "grad_snr")})
        data["grad_n_batches"] = (("epoch",), np.asarray(self.grad_n_batches))
        coords = {"epoch": np.asarray(self.epochs), "seed": list(self.seeds),
                  "layer": list(self.layers), "grad_layer": list(self.grad_layers),
                  "layer_width": ("layer", list(self.layer_widths))}
        attrs = {"name": self.name, "units": "bits", "log2_n": self.log2_n,
                 "estimators": json.dumps(list(self.estimators)),
                 "settings": json.dumps(self.settings, default=str)}
        return xr.Dataset(data, coords=coords, attrs=attrs)


def _checked_curve(result: Recording, curve: IBCurve | None, *, optional: bool = False):
    """``curve``, checked to be the IB curve of ``result.p_xy``: an ``ibsolver.IBCurve``
    whose I(X;Y) and H(Y) are the probe joint's (to 1e-9 bit). A curve of other data would
    put the points against the wrong bound, and a point above it would be blamed on the
    solver. None passes where ``optional``."""
    from ibsolver import IBCurve, mutual_information

    if curve is None and optional:
        return None
    if not isinstance(curve, IBCurve):
        raise TypeError(f"curve must be the ibsolver.IBCurve of the recording's p_xy, e.g. "
                        f"ibsolver.ib_curve(recording.p_xy) (got {type(curve).__name__})")
    i_xy = float(mutual_information(result.p_xy))
    if not (abs(curve.i_xy - i_xy) <= 1e-9 and abs(curve.h_y - result.h_y) <= 1e-9):
        raise ValueError(f"curve is not the IB curve of this recording's p_xy: its I(X;Y) = "
                         f"{curve.i_xy:.9g} and H(Y) = {curve.h_y:.9g} bit, the probe joint's "
                         f"{i_xy:.9g} and {result.h_y:.9g}; compute it with "
                         "ibsolver.ib_curve(recording.p_xy)")
    return curve


def _bound_values(result: Recording, curve: IBCurve, i_xt: np.ndarray) -> np.ndarray:
    """The bound of ``curve``, checked to be ``result``'s (:func:`_checked_curve`), at
    every I(X;T) of an array, same shape (bits)."""
    x = np.asarray(i_xt, dtype=np.float64)
    bound = _checked_curve(result, curve).bound(x.ravel())
    return np.asarray(bound, dtype=np.float64).reshape(x.shape)


def load_state(module: ModuleT, state: Mapping[str, ArrayLike | torch.Tensor]) -> ModuleT:
    """Copy ``state`` ({name: array or tensor}, every parameter and buffer) into ``module``
    in place; returns it."""
    import torch

    own: dict[str, torch.Tensor] = dict(module.named_parameters())
    own.update(module.named_buffers())
    mismatch = sorted(set(own) ^ set(state))
    if mismatch:
        raise ValueError(f"the state does not match the module (names not in both: "
                         f"{mismatch[:6]})")
    with torch.no_grad():
        for name, tensor in own.items():
            tensor.copy_(torch.as_tensor(state[name]))
    return module
