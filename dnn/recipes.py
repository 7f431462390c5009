"""Recipes: the paper experiments as short library functions on :func:`dnn.record_training`.

:func:`infoplane_experiment` -- the package's MLP on a task (the 12-bit task of Shwartz-Ziv
& Tishby by default), trained by plain SGD, its layers against the exact IB curve of the
probe's p(x, y), the bound check, the compression verdict of every layer and whether it
survives a sweep of binnings, the gradient phase change beside the onset of compression,
the honesty flags and the solver's score of the final layers. What ``ibsolver infoplane``
runs; a notebook calls it the same way.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from ibsolver.results import Result, json_safe

from .estimators import KDE, make_estimator, range_changes, sensitivity
from .infoplane import (BoundCheck, check_below_bound, compression_robustness,
                        score_final_layers, summary, trajectory_sensitivity)
from .loop import resolve_estimators
from .recording import Recording
from .tasks.base import Task
from .train import TrainConfig, train

if TYPE_CHECKING:
    import torch
    from ibsolver import IBCurve

    from .estimators import Binning, EstimatorSpec, Sensitivity

BOUNDS = ("auto", "solver", "exact", "none")
#: the recipe's training when no config is given: :class:`dnn.train.TrainConfig`'s own
#: defaults, plain SGD at lr 0.1 without momentum, as in Shwartz-Ziv & Tishby, whose drift
#: and diffusion phases are those of SGD's minibatch noise (Adam rescales each coordinate by
#: its own gradient history). The 12-bit task (noise 1) reaches test accuracy 0.93 in 1000
#: epochs, as Adam at 3e-3 does.
DEFAULT_CONFIG = TrainConfig()


@dataclass(frozen=True)
class InfoplaneExperiment(Result):
    """What :func:`infoplane_experiment` found. Information in bits.

    ``save``/``load`` (one .npz, no pickle, with the recording, the curve, the check and
    the sweeps), ``summary()`` (plain JSON values, NaN as None: what ``summary.json``
    holds) and ``to_dataframe()`` (one row per estimator key, record, seed and layer, with
    the bound and the gap where there is a curve: :meth:`dnn.Recording.to_dataframe`) as every
    ``ibsolver`` result.

    recording : the run; curve : the ``ibsolver.IBCurve`` of ``recording.p_xy`` (None with
    ``bound="none"``); check : every binned point against it (None without a curve); key :
    the estimator key the figures and the summary show; sweeps : first the binning sweep
    (every seed's trajectories under each binning, a :func:`trajectory_sensitivity` dict,
    the run's own binning first), then with a KDE the first seed's last record per noise
    variance (``Sensitivity``); scores : ``ibsolver.score_encoder`` of the first seed's
    binned final layers; timing_s : seconds per stage; range_changes :
    :func:`dnn.estimators.range_changes` of every seed's layers over the records.
    """

    recording: Recording
    curve: IBCurve | None
    check: BoundCheck | None
    key: str
    sweeps: list
    scores: list
    timing_s: dict
    range_changes: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """The JSON-ready summary (what ``summary.json`` holds): :func:`dnn.infoplane.summary`
        of the recording with the curve and the check, the solver's scores, the binning's
        numbers where the key is a KDE, the config and the estimators, every sweep, the
        compression verdict under the binning sweep, the range changes, the timing and the
        task; plain JSON values (bits), NaN and infinity as None."""
        rec = self.recording
        out = summary(rec, self.curve, self.key, self.check)
        if self.scores:
            out["solver_scores_seed0"] = self.scores
        if self.key != "binning":
            out["binning"] = summary(rec, self.curve, "binning", self.check)["layers"]
        out["config"] = rec.settings["config"]
        out["estimators"] = [dict(s) for s in rec.estimators]
        out["sensitivity"] = [_sweep_summary(s, rec.layers) for s in self.sweeps]
        out["compression_sweep"] = {"seeds": list(self.sweeps[0]["seeds"]),
                                    "binnings": list(self.sweeps[0]["labels"]),
                                    "layers": compression_robustness(self.sweeps[0])}
        out["range_changes"] = dict(self.range_changes)
        out["range_warnings"] = [layer for layer, r in self.range_changes.items() if r["warn"]]
        out["timing_s"] = dict(self.timing_s)
        out["task_info"] = rec.settings["task_info"]
        return json_safe(out)

    def _columns(self) -> list:
        """The rows of the recording's table with the curve: one row per (estimator key,
        record, seed, layer)."""
        return self.recording._columns(self.curve)


def _sweep_summary(sweep, layers) -> dict:
    if not isinstance(sweep, dict):
        return sweep.summary()
    return {"estimator": sweep["estimator"], "knob": sweep["knob"], "seeds": sweep["seeds"],
            "values": list(sweep["values"]), "labels": list(sweep["labels"]),
            "layers": list(layers),
            "final_i_xt_bits": sweep["i_xt"][:, -1].mean(axis=1).tolist(),  # mean over seeds
            "final_i_ty_bits": sweep["i_ty"][:, -1].mean(axis=1).tolist(),
            "max_spread_xt_bits": float(np.ptp(sweep["i_xt"], axis=0).max()),
            "max_spread_ty_bits": float(np.ptp(sweep["i_ty"], axis=0).max())}


def infoplane_experiment(task: Task, config: TrainConfig | None = None, *,
                         estimators: EstimatorSpec | Iterable[EstimatorSpec] | None = None,
                         bound: str = "auto", sweep: Iterable[float] | None = None,
                         curve_kwargs: Mapping[str, Any] | None = None,
                         out_dir: str | os.PathLike[str] | None = None, resume: bool = False,
                         device: str | torch.device = "auto",
                         callback: Callable[[int], object] | None = None,
                         n_threads: int | None = None) -> InfoplaneExperiment:
    """Train and record (:func:`dnn.train.train`), then place the layers under the IB curve.

    config : the :class:`dnn.train.TrainConfig` of the run
        (default :data:`DEFAULT_CONFIG`, TrainConfig's defaults: plain SGD at lr 0.1,
        momentum 0).
    estimators : a binning first (default ``Binning(30)``: range "auto", which bins the
        MLP's tanh or sigmoid layers and its softmax output over their fixed ranges and
        ReLU and the rest at fixed width, as :func:`dnn.record_training` fills in),
        optionally a KDE; with a KDE the figures and summary show its upper bound, else the
        binning.
    bound : "auto" or "solver" (``ibsolver.ib_curve`` of the probe's joint, exact for a
        deterministic rule, and the solver's scores of the first seed's final layers),
        "exact" (the curve without the scores, refused for a noisy rule) or "none".
    sweep : values of the sensitivity sweep: without a KDE, numbers of bins (or widths, for
        a binning of strategy "width") tried after the run's own binning; with a KDE, noise
        variances. Default: :data:`dnn.estimators.DEFAULT_SWEEPS` (binning: the number of
        bins, the range rules and the widths). The binning sweep re-bins every seed's
        trajectory, and the summary says for each layer whether its compression verdict
        (the drop from its peak, with its spread over seeds) holds under all its binnings
        in every seed.

    The other arguments go to :func:`dnn.train.train`. Every seed's probe activations are
    kept at the recorded epochs only (float32, ``n_records`` x seeds x N x the layers'
    total width), for the sweep and for :func:`dnn.estimators.range_changes`, which warns
    about a layer whose range changes more than 4x between records in any seed.
    """
    import ibsolver

    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {list(BOUNDS)} (got {bound!r})")
    if bound == "exact" and task.p_y_given_x is not None \
            and not ibsolver.is_deterministic(task.p_y_given_x / task.p_y_given_x.shape[0]):
        raise ValueError("bound='exact' needs a deterministic rule (one-hot p(y|x)); this "
                         "task is noisy: use bound='solver' or 'auto'")
    ests = resolve_estimators(estimators)
    if ests[0].name != "binning":
        raise ValueError(f"estimators must start with a Binning (got {ests[0]!r})")
    key = "kde_upper" if any(isinstance(e, KDE) for e in ests) else "binning"
    timing = {}
    t0 = time.perf_counter()
    rec = train(task, DEFAULT_CONFIG if config is None else config, out_dir=out_dir,
                resume=resume, device=device, estimators=ests, keep_activations=True,
                callback=callback, n_threads=n_threads)
    timing["train_and_record"] = time.perf_counter() - t0
    # layer ranges filled; a "binning" spec makes a Binning
    binning = cast("Binning", make_estimator({"name": "binning", **rec.knobs("binning")}))

    curve, check, scores = None, None, []
    t0 = time.perf_counter()
    if bound != "none":
        curve = ibsolver.ib_curve(rec.p_xy, **(curve_kwargs or {}))
        check = check_below_bound(rec, curve, "binning", on_violation="flag")
    timing["bound"] = time.perf_counter() - t0
    if curve is not None and bound != "exact":
        # seconds where the finest layers have thousands of clusters; not in the timing
        scores = score_final_layers(rec, curve, binning)

    t0 = time.perf_counter()
    values = None if sweep is None else list(sweep)
    binning_values: list | None = None
    if key == "binning" and values is not None:
        to_value = float if binning.strategy == "width" else int
        binning_values = [{}] + [to_value(v) for v in values]
    traj = trajectory_sensitivity(rec, estimator="binning", values=binning_values,
                                  **binning.knobs)
    sweeps: list[dict[str, Any] | Sensitivity] = list(traj)
    if key != "binning":  # KDE: the last record only (O(N^2) per value)
        acts = {layer: rec.final_activations[layer][0] for layer in rec.layers}
        sweeps += sensitivity(acts, rec.p_xy, estimator="kde", values=values)
    timing["sensitivity"] = time.perf_counter() - t0
    kept = traj[0]["seeds"]   # every seed (train keeps them all)
    kept_acts = cast("dict[str, np.ndarray]", rec.activations)  # keep_activations=True
    return InfoplaneExperiment(recording=rec, curve=curve, check=check, key=key,
                               sweeps=sweeps, scores=scores, timing_s=timing,
                               range_changes=range_changes(kept_acts, seeds=kept))
