"""Network layers on the information plane against the exact IB bound (all values in bits).

Every function takes a :class:`dnn.recording.Recording` and the ``ibsolver.IBCurve`` of its
probe joint, computed once by the caller: ``curve = ibsolver.ib_curve(recording.p_xy)``
(for a deterministic rule that is the exact min(I(X;T), H(Y))).

A binned layer is a deterministic function of X, i.e. a real encoder, so its point must lie
on or below the curve: :func:`check_below_bound` reports any point above it as an error of
the solver (``BoundViolationError``, or a loudly flagged :class:`BoundCheck`).

Plotting functions import matplotlib lazily, take ``ax=None`` and return the axes; they
never call ``plt.show()`` nor change rcParams. :func:`save_figures` writes PNGs through the
Agg canvas without touching pyplot's backend.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from ibsolver.io import output_folder
from ibsolver.results import Result, json_safe
from numpy.typing import ArrayLike

from .estimators import SATURATION
from .recording import _bound_values, _checked_curve

if TYPE_CHECKING:
    from ibsolver import IBCurve
    from matplotlib.axes import Axes

    from .estimators import EstimatorSpec, Sensitivity
    from .recording import Recording

logger = logging.getLogger(__name__)

#: default tolerance (bits) for a point above the bound before it is called a violation
BOUND_TOL = 1e-6


class BoundViolationError(RuntimeError):
    """An achievable (binned) point lies above the computed IB bound: the bound is wrong.

    ``violations`` lists dicts with epoch, seed, layer, i_xt, i_ty, bound and excess (bits).
    """

    def __init__(self, message: str, violations: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.violations = violations


def _kind(curve) -> str:
    return "deterministic" if curve.deterministic else "ib_curve"


def _estimator(result, key):
    """The estimator that produced ``key`` of ``result``, rebuilt from its spec."""
    from .estimators import make_estimator

    name = "kde" if key.startswith("kde") else key
    return make_estimator({"name": name, **result.knobs(key)})


# --------------------------------------------------------------------------- checks
#: the keys of each of BoundCheck.violations, the columns of its table
_VIOLATION_COLUMNS = ("epoch", "seed", "layer", "i_xt_bits", "i_ty_bits", "bound_bits",
                      "excess_bits")


@dataclass(frozen=True)
class BoundCheck(Result):
    """Result of checking achievable points against the bound (bits).

    ok : no point above bound + tol. n_points; max_excess : max of I(T;Y) - F(I(X;T))
    (NaN without points); violations : list of dicts (epoch, seed, layer, i_xt_bits,
    i_ty_bits, bound_bits, excess_bits); tol; kind : "deterministic" or "ib_curve".

    ``save``/``load`` (one .npz, no pickle), ``summary()`` (plain JSON values, NaN as
    None) and ``to_dataframe()`` (one row per violation: none when ``ok``) as every
    ``ibsolver`` result.
    """

    ok: bool
    n_points: int
    max_excess: float
    violations: list
    tol: float
    kind: str

    def summary(self) -> dict:
        """Whether every point lies on or below the bound, the number of points and of
        violations, the largest excess and the tolerance (bits), the bound's kind and the
        first 20 violations, as plain JSON values; NaN as None."""
        return json_safe({"ok": self.ok, "n_points": self.n_points, "max_excess_bits": self.max_excess,
                           "n_violations": len(self.violations), "violations": self.violations[:20],
                           "tol_bits": self.tol, "bound_kind": self.kind})

    def _columns(self) -> dict:
        """One row per point above the bound (epoch, seed, layer, I(X;T), I(T;Y), the bound
        there and the excess, bits); no rows, the same columns, when the check is ok."""
        return {k: [v[k] for v in self.violations] for k in _VIOLATION_COLUMNS}


def _blame(result: Recording, curve: IBCurve) -> str:
    """Whom a point above the bound accuses: the solver where the curve was traced for the
    recording's own table; otherwise the curve may belong to other data with the same
    I(X;Y) and H(Y) (what :func:`_checked_curve` compares)."""
    traced = curve.traced_for(result.p_xy)
    if traced:
        return ("Binned layers are real encoders of X, so the computed IB bound is wrong (an "
                "error of the solver).")
    why = ("its table digest differs" if traced is False else "it records no table digest")
    return ("The curve was not traced for this recording's p_xy (" + why + "), so the "
            "excess may come from the curve's data, not the solver: compute it with "
            "ibsolver.ib_curve(recording.p_xy).")


def gaps(result: Recording, curve: IBCurve, key: str = "binning") -> np.ndarray:
    """(E, S, L) array: F(I(X;T)) - I(T;Y) of every recorded point, bits (F = the curve)."""
    result._check_key(key)
    d = result.info[key]
    return _bound_values(result, curve, d["i_xt"]) - d["i_ty"]


def check_below_bound(result: Recording, curve: IBCurve, key: str = "binning", *, tol: float = BOUND_TOL,
                      on_violation: str = "raise") -> BoundCheck:
    """Check that every binned point of ``result`` lies on or below the IB curve.

    ``on_violation="raise"`` raises :class:`BoundViolationError`; ``"flag"`` logs an error
    and returns a BoundCheck with ``ok=False`` and the offending numbers.
    """
    if on_violation not in ("raise", "flag"):
        raise ValueError(f"on_violation must be 'raise' or 'flag' (got {on_violation!r})")
    result._check_key(key)
    d = result.info[key]
    if key not in result.exact_keys:
        raise ValueError(f"key {key!r} holds bounds, not achievable points; only exact "
                         "(binning) estimates can be checked against the IB bound")
    f = _bound_values(result, curve, d["i_xt"])
    excess = d["i_ty"] - f
    bad = np.argwhere(excess > tol)
    violations = [{"epoch": int(result.epochs[e]), "seed": int(result.seeds[s]),
                   "layer": result.layers[k], "i_xt_bits": float(d["i_xt"][e, s, k]),
                   "i_ty_bits": float(d["i_ty"][e, s, k]), "bound_bits": float(f[e, s, k]),
                   "excess_bits": float(excess[e, s, k])} for e, s, k in bad]
    check = BoundCheck(ok=not violations, n_points=int(excess.size),
                       max_excess=float(excess.max()) if excess.size else float("nan"),
                       violations=violations, tol=tol, kind=_kind(curve))
    if violations:
        worst = max(violations, key=lambda v: v["excess_bits"])
        msg = (f"{len(violations)} of {excess.size} binned layer points lie above the IB bound "
               f"({_kind(curve)}) by up to {worst['excess_bits']:.3g} bit (tol {tol:g}); e.g. "
               f"epoch {worst['epoch']}, seed {worst['seed']}, layer {worst['layer']}: "
               f"I(X;T) = {worst['i_xt_bits']:.6f}, I(T;Y) = {worst['i_ty_bits']:.6f} > "
               f"bound {worst['bound_bits']:.6f} bit. " + _blame(result, curve))
        if on_violation == "raise":
            raise BoundViolationError(msg, violations)
        logger.error("BOUND VIOLATION: %s", msg)
    return check


def score_final_layers(result: Recording, curve: IBCurve | None, estimator: EstimatorSpec | None = None,
                       seed_index: int = 0) -> list[dict[str, Any]]:
    """Score the binned last-record layers of one seed with ``ibsolver.score_encoder``
    (``estimator`` default: the recording's own binning).

    Returns a list of dicts (layer, i_xt, i_ty, gap, epsilon, beta_fit; bits)."""
    import ibsolver

    from .estimators import Binning, hard_encoder, make_estimator

    curve = _checked_curve(result, curve, optional=True)

    est = make_estimator(estimator if estimator is not None
                         else {"name": "binning", **result.knobs("binning")})
    if not isinstance(est, Binning):
        raise ValueError(f"estimator must be a binning: only binned layers are encoders to score "
                         f"(got {est!r})")
    acts = {layer: result.final_activations[layer][seed_index] for layer in result.layers}
    clusters = est.clusters(acts, result.p_xy.sum(axis=1))
    out = []
    for layer in result.layers:
        sc = ibsolver.score_encoder(result.p_xy, hard_encoder(clusters[layer]), curve=curve)
        out.append({"layer": layer, "i_xt_bits": float(sc.i_xt), "i_ty_bits": float(sc.i_ty),
                    "gap_bits": float(sc.gap), "epsilon": float(sc.epsilon),
                    "beta_fit": float(sc.beta_fit)})
    return out


# --------------------------------------------------------------------------- plotting
def _new_ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.4, 4.8))
    return ax


def _epoch_x(epochs):
    """Epochs for a log axis: epoch 0 drawn at 0.5."""
    e = np.asarray(epochs, dtype=float)
    return np.where(e > 0, e, 0.5)


def plot_bound(curve: IBCurve, ax: Axes | None = None, *, h_x: float | None = None, color: Any = "k",
               transitions: bool = True, label: str = "IB bound") -> Axes:
    """The IB curve (and its transitions) on ``ax``, drawn by ``ibsolver.plotting.plot_curve``;
    flat from its last vertex out to ``h_x`` (H(X), where the curve ends) when given."""
    from ibsolver.plotting import plot_curve

    ax = _new_ax(ax)
    plot_curve(curve, ax=ax, transitions=transitions, points=False, label=label, color=color)
    x_end = float(np.max(curve.envelope_i_xt)) if len(curve.envelope_i_xt) else 0.0
    if h_x is not None and x_end < h_x:
        xs = np.array([x_end, h_x])
        ax.plot(xs, curve.bound(xs), color=color, lw=1.8)
    return ax


def plot_infoplane(result: Recording, curve: IBCurve | None = None, key: str = "binning",
                   ax: Axes | None = None, *, layers: Iterable[str] | None = None,
                   cmap: str = "viridis", spread: bool = True, colorbar: bool = True) -> Axes:
    """Each layer's trajectory (mean over seeds, coloured by epoch) with the IB curve
    (none drawn when ``curve`` is None).

    ``spread`` draws +-1 standard deviation over seeds as error bars. Dashed lines mark the
    ceilings log2 N and H(Y). Returns the axes.
    """
    from matplotlib.colors import LogNorm

    result._check_key(key)
    curve = _checked_curve(result, curve, optional=True)
    ax = _new_ax(ax)
    d = result.info[key]
    layers = list(result.layers) if layers is None else list(layers)
    epochs = _epoch_x(result.epochs)
    norm = LogNorm(vmin=epochs.min(), vmax=max(epochs.max(), epochs.min() * 1.0001))
    sc = None
    for layer in layers:
        k = result.layers.index(layer)
        x = d["i_xt"][:, :, k]
        y = d["i_ty"][:, :, k]
        mx, my = x.mean(axis=1), y.mean(axis=1)
        if spread and x.shape[1] > 1:
            ax.errorbar(mx, my, xerr=x.std(axis=1), yerr=y.std(axis=1), fmt="none",
                        ecolor="0.75", elinewidth=0.6, zorder=1)
        ax.plot(mx, my, color="0.6", lw=0.7, zorder=2)
        sc = ax.scatter(mx, my, c=epochs, cmap=cmap, norm=norm, s=18, zorder=4,
                        edgecolors="none")
        ax.annotate(layer, (mx[-1], my[-1]), textcoords="offset points", xytext=(3, 3),
                    fontsize=7)
    if curve is not None:
        plot_bound(curve, ax, h_x=result.h_x)
    ax.axvline(result.log2_n, color="0.4", ls="--", lw=0.8, label=f"log2 N = {result.log2_n:.2f}")
    ax.axhline(result.h_y, color="0.4", ls=":", lw=0.8, label=f"H(Y) = {result.h_y:.4f}")
    if colorbar and sc is not None:
        ax.figure.colorbar(sc, ax=ax, label="epoch")
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    ax.set_title(f"{result.name}: {key}, {len(result.seeds)} seeds, N = {result.n_probe}\n"
                 f"{_estimator(result, key).label}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def plot_gap(result: Recording, curve: IBCurve, key: str = "binning", ax: Axes | None = None) -> Axes:
    """Per layer, the gap F(I(X;T)) - I(T;Y) (bits) against epoch; mean and spread over seeds."""
    ax = _new_ax(ax)
    g = gaps(result, curve, key)
    x = _epoch_x(result.epochs)
    for k, layer in enumerate(result.layers):
        m, s = g[:, :, k].mean(axis=1), g[:, :, k].std(axis=1)
        (line,) = ax.plot(x, m, label=layer)
        ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("epoch (0 drawn at 0.5)")
    ax.set_ylabel("gap to the IB bound [bits]")
    ax.set_title(f"{result.name}: distance below the bound ({key})", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_grad_snr(result: Recording, ax: Axes | None = None) -> Axes:
    """Per layer, the gradient signal-to-noise ratio over each recorded epoch's minibatches
    (geometric mean over seeds, band = min..max), at the epochs where it is finite and
    positive in every seed; a layer with none is named in the legend ("no gradient
    signal")."""
    ax = _new_ax(ax)
    snr = np.asarray(result.grad_snr, dtype=float)
    # per layer, the epochs where its SNR is finite and positive in every seed (a layer
    # without gradient, e.g. an unused or frozen one, has none; it must not blank the rest)
    usable = np.all(np.isfinite(snr) & (snr > 0), axis=1)
    x_all = _epoch_x(result.epochs)
    for j, layer in enumerate(result.grad_layers):
        keep = usable[:, j]
        if not keep.any():
            ax.plot([], [], ls="none", label=f"{layer}: no gradient signal")
            continue
        v = snr[keep, :, j]
        gm = np.exp(np.log(v).mean(axis=1))
        (line,) = ax.plot(x_all[keep], gm, label=layer)
        ax.fill_between(x_all[keep], v.min(axis=1), v.max(axis=1), color=line.get_color(),
                        alpha=0.15, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("|mean grad| / |std grad|")
    ax.set_title(f"{result.name}: gradient signal-to-noise per layer", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_gradient_stats(result: Recording, ax: Axes | None = None) -> Axes:
    """Per parametrised layer, the norms of the mean and of the standard deviation of its
    minibatch gradients against epoch, log-log (the figure of Shwartz-Ziv & Tishby 2017).

    Solid: ``|mean|``, dashed: ``|std|``, one colour per layer, each the mean over seeds of
    ``Recording.grad_mean_norm`` and ``Recording.grad_std_norm``; two lines per
    layer. Records without statistics (epoch 0) are left out. Where the solid line falls
    below the dashed one the ratio (SNR) is below 1: the diffusion phase. Returns the axes.
    """
    ax = _new_ax(ax)
    keep = result.grad_n_batches >= 2
    x = _epoch_x(result.epochs)[keep]
    for j, layer in enumerate(result.grad_layers):
        (line,) = ax.plot(x, result.grad_mean_norm[keep, :, j].mean(axis=1), label=f"{layer} mean")
        ax.plot(x, result.grad_std_norm[keep, :, j].mean(axis=1), ls="--",
                color=line.get_color(), label=f"{layer} std")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("norm of the gradient's mean (solid) and std (dashed)")
    batches = sorted({int(b) for b in result.grad_n_batches[keep]})
    ax.set_title(f"{result.name}: gradient statistics per layer over "
                 f"{', '.join(map(str, batches)) or 'fewer than 2'} minibatches per epoch, "
                 f"{result.settings.get('optimizer', '')}", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return ax


def _plot_train_test(result, ax, quantity: str, ylabel: str):
    """Train and test ``quantity`` ("loss" or "acc") against epoch; mean and spread over seeds."""
    ax = _new_ax(ax)
    x = _epoch_x(result.epochs)
    label = "loss" if quantity == "loss" else "accuracy"
    for name in ("train", "test"):
        arr = getattr(result, f"{name}_{quantity}")
        if np.all(np.isnan(arr)):
            continue
        m, s = np.nanmean(arr, axis=1), np.nanstd(arr, axis=1)
        (line,) = ax.plot(x, m, label=f"{name} {label}")
        ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    return ax


def plot_loss(result: Recording, ax: Axes | None = None) -> Axes:
    """Train and test cross-entropy (bits) against epoch; mean and spread over seeds; H(Y)."""
    ax = _plot_train_test(result, ax, "loss", "cross-entropy [bits]")
    ax.axhline(result.h_y, color="0.4", ls=":", lw=0.8, label="H(Y)")
    ax.legend(fontsize=7)
    return ax


def plot_accuracy(result: Recording, ax: Axes | None = None) -> Axes:
    """Train and test accuracy against epoch; mean and spread over seeds."""
    ax = _plot_train_test(result, ax, "acc", "accuracy")
    ax.legend(fontsize=7)
    return ax


def plot_sensitivity(sens: Sensitivity | list[Sensitivity] | tuple[Sensitivity, ...], ax: Axes | None = None, *,
                     curve: IBCurve | None = None, cmap: str = "plasma") -> Axes:
    """How a layer's point moves with the estimator's setting (one Sensitivity or a list):
    each layer's points for the swept settings, joined, one colour per setting."""
    import matplotlib as mpl

    ax = _new_ax(ax)
    items = sens if isinstance(sens, (list, tuple)) else [sens]
    markers = ["o", "s", "^", "v"]
    for i, s in enumerate(items):
        colors = mpl.colormaps[cmap](np.linspace(0.0, 0.85, len(s.labels)))
        for k, layer in enumerate(s.layers):
            ax.plot(s.i_xt[:, k], s.i_ty[:, k], color="0.7", lw=0.7, zorder=1)
            ax.scatter(s.i_xt[:, k], s.i_ty[:, k], c=colors, marker=markers[i % len(markers)],
                       s=20, zorder=3)
            ax.annotate(layer, (s.i_xt[-1, k], s.i_ty[-1, k]), fontsize=6,
                        textcoords="offset points", xytext=(3, 3))
        for color, label in zip(colors, s.labels):
            ax.scatter([], [], color=color, marker=markers[i % len(markers)],
                       label=f"{s.estimator}: {label}")
    if curve is not None:
        plot_bound(curve, ax, transitions=False)
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    ax.set_title(f"sensitivity to {items[0].knob}", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    return ax


def trajectory_sensitivity(result: Recording, *, estimator: str = "binning",
                           values: Iterable[float | dict[str, Any]] | None = None,
                           seed_index: int | Sequence[int] | None = None,
                           **knobs: Any) -> list[dict[str, Any]]:
    """Re-estimate the kept activations of every recorded epoch under each setting, per seed.

    Parameters
    ----------
    result : Recording
        A run with activations (``train(..., keep_activations=True)``; the infoplane
        recipe keeps them for every seed, at the recorded epochs only).
    estimator, values, **knobs
        As in :func:`dnn.estimators.sweep_estimators` (default: the binning's number of
        bins, range rules and widths).
    seed_index : int, sequence of int or None
        Positions in ``result.seeds`` to re-estimate (default None: every seed whose
        activations are kept).

    Returns
    -------
    list
        One dict per estimator key: {"estimator", "knob", "values", "labels" (each setting
        in words), "layers", "seeds" (the seeds re-estimated), "i_xt" (V, E, S, L), "i_ty"
        (V, E, S, L)}, bits: V settings, E records, S seeds, L layers.
    """
    from .estimators import sweep_estimators

    if not result.activations:
        raise ValueError("result has no activations; train with keep_activations=True")
    n_kept = int(np.asarray(result.activations[result.layers[0]]).shape[1])
    if seed_index is None:
        index = list(range(n_kept))
    else:
        index = ([cast(int, seed_index)] if np.ndim(seed_index) == 0      # one position
                 else list(cast("Sequence[int]", seed_index)))
        bad = [i for i in index if isinstance(i, bool) or not isinstance(i, (int, np.integer))
               or not 0 <= i < n_kept]
        if not index or bad:
            raise ValueError(f"seed_index must be None or positions in 0..{n_kept - 1} of the "
                             f"seeds whose activations are kept (got {seed_index!r})")
    knob, values, ests = sweep_estimators(estimator, values, **knobs)
    out: dict = {}
    for est in ests:
        rows: dict = {}       # key -> [(i_xt, i_ty) per epoch and seed]
        for e in range(len(result.epochs)):
            for s in index:
                acts = {layer: result.activations[layer][e, s] for layer in result.layers}
                for r in est.estimate(acts, result.p_xy):
                    rows.setdefault(r.estimator, []).append((r.i_xt, r.i_ty))
        shape = (len(result.epochs), len(index), len(result.layers))
        for key, pairs in rows.items():
            o = out.setdefault(key, {"estimator": key, "knob": knob, "values": values,
                                     "labels": [x.label for x in ests],
                                     "layers": list(result.layers),
                                     "seeds": [int(result.seeds[s]) for s in index],
                                     "i_xt": [], "i_ty": []})
            o["i_xt"].append(np.stack([a for a, _ in pairs]).reshape(shape))
            o["i_ty"].append(np.stack([b for _, b in pairs]).reshape(shape))
    res = []
    for o in out.values():
        o["i_xt"] = np.stack(o["i_xt"])
        o["i_ty"] = np.stack(o["i_ty"])
        res.append(o)
    return res


def plot_trajectory_sensitivity(result: Recording, sweep: Mapping[str, Any], ax: Axes | None = None, *,
                                curve: IBCurve | None = None, cmap: str = "plasma") -> Axes:
    """Each layer's trajectory (mean over the sweep's seeds) for every setting of a
    :func:`trajectory_sensitivity` sweep, one colour per setting."""
    import matplotlib as mpl

    ax = _new_ax(ax)
    colors = mpl.colormaps[cmap](np.linspace(0.0, 0.85, len(sweep["labels"])))
    i_xt, i_ty = sweep["i_xt"].mean(axis=2), sweep["i_ty"].mean(axis=2)   # (V, E, L)
    for i, label in enumerate(sweep["labels"]):
        for k in range(i_xt.shape[2]):
            ax.plot(i_xt[i, :, k], i_ty[i, :, k], "-o", ms=2, lw=0.8,
                    color=colors[i], label=label if k == 0 else None)
    if curve is not None:
        plot_bound(curve, ax, transitions=False)
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    n = len(sweep["seeds"])
    ax.set_title(f"{result.name}: {sweep['estimator']} trajectories vs {sweep['knob']} "
                 f"(mean over {n} seed{'s' if n > 1 else ''})", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    return ax


def agg_figure(figsize: tuple[float, float] = (6.4, 4.8), nrows: int = 1, ncols: int = 1,
               **subplots: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` on an Agg canvas (constrained layout), as ``plt.subplots`` gives
    them but without pyplot: every figure dnn writes to a file is drawn this way, so that
    neither the caller's matplotlib backend nor pyplot's figure list is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplots)


def save_figures(result: Recording, out_dir: str | os.PathLike[str], curve: IBCurve | None = None, *,
                 key: str = "binning",
                 sensitivity: dict[str, Any] | Sensitivity | list[Sensitivity] | tuple[Sensitivity, ...]
                 | None = None,
                 extra_keys: Iterable[str] = (), dpi: int = 120) -> dict[str, str]:
    """Write infoplane.png, gap.png (with a curve), grad_snr.png, grad_stats.png, loss.png,
    given a sensitivity result sensitivity.png, and infoplane_KEY.png for each of ``extra_keys``
    (other estimator keys) to ``out_dir`` (Agg canvas, no pyplot).

    ``curve``: the ``ibsolver.IBCurve`` of ``result.p_xy``, or None (no bound drawn).
    Returns {name: path}."""
    _checked_curve(result, curve, optional=True)  # (before the folder is made)
    out_dir = os.fspath(output_folder(out_dir, "out_dir"))
    paths = {}

    def save(fig, name):
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=dpi)
        paths[name.rsplit(".", 1)[0]] = path

    for k, name in [(key, "infoplane.png")] + [(k, f"infoplane_{k}.png") for k in extra_keys]:
        fig, ax = agg_figure((7.5, 5.2))
        plot_infoplane(result, curve, k, ax=ax)
        save(fig, name)
    if curve is not None:
        fig, ax = agg_figure()
        plot_gap(result, curve, key, ax=ax)
        save(fig, "gap.png")
    fig, ax = agg_figure()
    plot_grad_snr(result, ax=ax)
    save(fig, "grad_snr.png")
    fig, ax = agg_figure()
    plot_gradient_stats(result, ax=ax)
    save(fig, "grad_stats.png")
    fig, axes = agg_figure((10, 4), ncols=2)
    plot_loss(result, ax=axes[0])
    plot_accuracy(result, ax=axes[1])
    save(fig, "loss.png")
    if sensitivity is not None:
        fig, ax = agg_figure()
        if isinstance(sensitivity, dict):
            plot_trajectory_sensitivity(result, sensitivity, ax=ax, curve=curve)
        else:
            plot_sensitivity(sensitivity, ax=ax, curve=curve)
        save(fig, "sensitivity.png")
    return paths


# --------------------------------------------------------------------------- compression
#: a layer compresses when its I(X;T) falls from its peak to its last record by more than
#: this many bits in every seed: small against the 1-2 bits of compression reported for
#: the 12-bit task, large against the step of one probe input changing its binned state
#: (of the order of log2(N) / N, 0.003 bit at N = 4096)
COMPRESSION_BITS = 0.1
#: what the summary says of a deterministic rule's bound
SELF_TEST_NOTE = ("H(Y|X) = 0: the bound is min(I(X;T), H(Y)), which every binned layer "
                  "meets by construction, so the bound check only tests the solver; a noisy "
                  "task (noise > 0) gives a bound a network could miss")


def compression(i_xt: ArrayLike, *, threshold_bits: float = COMPRESSION_BITS) -> dict[str, Any]:
    """The compression verdict of one layer: how far its I(X;T) falls after its peak.

    Parameters
    ----------
    i_xt : array (E,) or (E, S)
        The layer's I(X;T) in bits at E records, in order, for S seeds.
    threshold_bits : float
        The drop, in bits, a seed must exceed to count as compressing.

    Returns
    -------
    dict
        "drop_bits": {"mean", "std", "min", "max"} over seeds of the peak I(X;T) minus the
        last; "n_seeds"; "n_compressing" (seeds whose drop exceeds the threshold);
        "verdict": "compresses" (every seed), "no compression" (none) or "mixed (k of S
        seeds)"; "threshold_bits".
    """
    a = np.asarray(i_xt, dtype=np.float64)
    a = a[:, None] if a.ndim == 1 else a
    drop = a.max(axis=0) - a[-1]
    n, k = drop.size, int(np.sum(drop > threshold_bits))
    verdict = ("compresses" if k == n else "no compression" if k == 0
               else f"mixed ({k} of {n} seeds)")
    return {"drop_bits": {"mean": float(drop.mean()), "std": float(drop.std()),
                          "min": float(drop.min()), "max": float(drop.max())},
            "n_seeds": n, "n_compressing": k, "verdict": verdict,
            "threshold_bits": float(threshold_bits)}


def compression_robustness(sweep: dict, *, threshold_bits: float = COMPRESSION_BITS) -> dict:
    """Per layer, whether its compression verdict survives every setting of a sweep, in
    every seed.

    Parameters
    ----------
    sweep : dict
        One :func:`trajectory_sensitivity` result: "labels" (V settings), "layers" (L),
        "i_xt" (V, E, S, L) bits (or (V, E, L) for one seed) and optionally "seeds"; its
        first setting is the reference (the run's own binning in
        :func:`dnn.recipes.infoplane_experiment`).
    threshold_bits : float
        As in :func:`compression`: a seed compresses under a setting when its I(X;T) falls
        from its peak to the last record by more than this.

    Returns
    -------
    dict
        {layer: {"verdict": :func:`compression`'s verdict under the first setting, over all
        seeds; "drop_bits": per setting, the drop from the peak (bits) over seeds
        {"mean", "std", "min", "max"}; "n_compressing": per setting, the seeds that
        compress; "n_seeds"; "seeds"; "n_seeds_surviving": the seeds that compress, or do
        not, under every setting as under the first; "survives_all_binnings": all of them
        do; "changed_by": "label: verdict" of each setting under which any seed changes,
        naming those seeds when there are several; "statement": one line saying so}}.
    """
    i_xt = np.asarray(sweep["i_xt"], dtype=np.float64)
    i_xt = i_xt[:, :, None, :] if i_xt.ndim == 3 else i_xt          # (V, E, S, L)
    if i_xt.ndim != 4 or i_xt.shape[0] != len(sweep["labels"]) \
            or i_xt.shape[3] != len(sweep["layers"]):
        raise ValueError(f"sweep['i_xt'] must be (settings, records, seeds, layers) = "
                         f"({len(sweep['labels'])}, E, S, {len(sweep['layers'])}) "
                         f"(got shape {np.shape(sweep['i_xt'])})")
    n_seeds = i_xt.shape[2]
    seeds = list(sweep.get("seeds", range(n_seeds)))
    out = {}
    for k, layer in enumerate(sweep["layers"]):
        per = [compression(i_xt[v, :, :, k], threshold_bits=threshold_bits)
               for v in range(len(sweep["labels"]))]
        drops = i_xt[:, :, :, k].max(axis=1) - i_xt[:, -1, :, k]            # (V, S)
        compresses = drops > threshold_bits
        changed = compresses != compresses[:1]                             # (V, S)
        surviving = int(np.sum(~changed.any(axis=0)))
        ref = per[0]["verdict"]
        changed_by = []
        for label, c, row in zip(sweep["labels"], per, changed):
            if row.any():
                which = ", ".join(str(seeds[s]) for s in np.flatnonzero(row))
                changed_by.append(f"{label}: {c['verdict']}" + (
                    (f" (seeds {which} change)" if row.sum() > 1 else f" (seed {which} changes)")
                    if n_seeds > 1 else ""))
        d = per[0]["drop_bits"]
        n_set = len(per)
        if surviving == n_seeds:
            held = f"survives all {n_set} binnings" + (" in every seed" if n_seeds > 1 else "")
        elif n_seeds > 1:
            held = f"survives all {n_set} binnings in {surviving} of {n_seeds} seeds"
        else:
            held = f"does not survive all {n_set} binnings"
        statement = (f"{ref}, drop {d['mean']:.3f} +- {d['std']:.3f} bit [{d['min']:.3f}, "
                     f"{d['max']:.3f}] over {n_seeds} seed{'s' if n_seeds > 1 else ''}; {held}")
        out[layer] = {"verdict": ref, "drop_bits": [c["drop_bits"] for c in per],
                      "n_compressing": [c["n_compressing"] for c in per],
                      "n_seeds": n_seeds, "seeds": seeds, "n_seeds_surviving": surviving,
                      "survives_all_binnings": surviving == n_seeds,
                      "changed_by": changed_by, "statement": statement}
    return out


def phase_change(snr: ArrayLike, *, threshold: float = 1.0) -> int | None:
    """The record where the gradient signal-to-noise ratio falls below ``threshold`` for good.

    Parameters
    ----------
    snr : array (E,)
        One layer's ratio ``|mean| / |std|`` of its minibatch gradients at E records, in
        order (NaN where not measured, e.g. epoch 0; inf where the std is 0).
    threshold : float
        1: the mean gradient (drift) no longer dominates its fluctuations (diffusion).

    Returns
    -------
    int or None
        The index of the first record below ``threshold`` after which every measured record
        stays below it ([5, 3, 0.8, 1.2, 0.5, 0.4] -> 4); None if the last measured record
        is not below it.
    """
    r = np.asarray(snr, dtype=np.float64)
    above = np.flatnonzero(r >= threshold)
    start = above[-1] + 1 if above.size else 0
    below = np.flatnonzero(r[start:] < threshold)
    return int(start + below[0]) if below.size else None


def gradient_phases(result: Recording, key: str = "binning", *, factor: float = 2.0,
                    threshold_bits: float = COMPRESSION_BITS) -> dict[str, dict[str, Any]]:
    """Per recorded layer and seed, the gradient phase change beside the onset of compression.

    Parameters
    ----------
    result : Recording
        The run.
    key : str
        The estimator key whose I(X;T) (bits) locates the compression.
    factor : float
        The two epochs coincide when the larger is at most ``factor`` times the smaller.
    threshold_bits : float
        A seed compresses when its I(X;T) falls from its peak to the last record by more
        than this (as in :func:`compression`).

    Returns
    -------
    dict
        {layer: {"grad_layer": the parametrised module whose gradients are used (the one
        that last feeds the layer; "" if none), "phase_change_epoch": per seed, the epoch of
        :func:`phase_change` of its SNR (None where the SNR does not stay below 1),
        "compression_onset_epoch": per seed, the epoch of its peak I(X;T) (None where the
        seed does not compress), "coincide": per seed, both exist within ``factor``,
        "statement": one line saying so}}.
    """
    result._check_key(key)
    i_xt = result.info[key]["i_xt"]
    grad_index = {g: j for j, g in enumerate(result.grad_layers)}
    out = {}
    for k, layer in enumerate(result.layers):
        j = grad_index.get(result.grad_layer_of[k])
        phase, onset, together = [], [], []
        for s in range(len(result.seeds)):
            i = None if j is None else phase_change(result.grad_snr[:, s, j])
            a = i_xt[:, s, k]
            peak = int(np.argmax(a))
            p = None if i is None else int(result.epochs[i])
            o = int(result.epochs[peak]) if a[peak] - a[-1] > threshold_bits else None
            phase.append(p)
            onset.append(o)
            together.append(p is not None and o is not None and max(p, o) <= factor * min(p, o))
        out[layer] = {"grad_layer": result.grad_layer_of[k], "phase_change_epoch": phase,
                      "compression_onset_epoch": onset, "coincide": together,
                      "statement": _phase_statement(phase, onset, together, factor)}
    return out


def _phase_statement(phase, onset, together, factor) -> str:
    """E.g. "phase change at epochs [30, 30], compression onset at [-, 15]: within 2x in 1
    of 2 seeds" (per seed; "-" where there is none)."""
    def epochs(values):
        return "[" + ", ".join("-" if v is None else str(v) for v in values) + "]"

    return (f"phase change at epochs {epochs(phase)}, compression onset at {epochs(onset)}: "
            f"within {factor:g}x in {sum(together)} of {len(together)} seeds")


def _dpi_by_pair(violations) -> list:
    """Data-processing violations grouped by (previous layer, layer, quantity): the count
    and the worst (largest excess, bits) with its epoch and seed."""
    pairs: dict = {}
    for v in violations:
        key = (v["previous"], v["layer"], v["quantity"])
        p = pairs.setdefault(key, {"previous": key[0], "layer": key[1], "quantity": key[2],
                                   "count": 0, "worst_excess_bits": -np.inf})
        p["count"] += 1
        if v["excess_bits"] > p["worst_excess_bits"]:
            p.update(worst_excess_bits=v["excess_bits"], epoch=v["epoch"], seed=v["seed"])
    return list(pairs.values())


def summary(result: Recording, curve: IBCurve | None = None, key: str = "binning",
            check: BoundCheck | None = None) -> dict[str, Any]:
    """A JSON-ready summary of a run (bits): final losses; per layer the estimator's rule,
    the final information, the gap to the bound, the compression verdict
    (:func:`compression`) and the gradient phase change beside the onset of compression
    (:func:`gradient_phases`, over the minibatches "gradient_stats" states); and every
    honesty flag: records saturated at 0.99 log2 N,
    data-processing violations (count, and per layer pair the worst), the bound check
    (points above the bound; a self-test of the solver for a deterministic rule)."""
    result._check_key(key)
    d = result.info[key]
    rules = _estimator(result, key).rules(result.layers)

    def ms(a):
        """Mean and spread over the finite values (NaN where none: no test data)."""
        a = np.asarray(a, dtype=float)
        if not a.size:
            return {}
        a = a[~np.isnan(a)]
        return ({"mean": float(a.mean()), "std": float(a.std())} if a.size
                else {"mean": float("nan"), "std": float("nan")})

    layers = {}
    g = gaps(result, curve, key) if curve is not None else None
    sat = result.saturated(key)
    phases = gradient_phases(result, key)
    for k, layer in enumerate(result.layers):
        entry = {"width": int(result.layer_widths[k]), "rule": rules[layer],
                 "i_xt_bits": ms(d["i_xt"][-1, :, k]), "i_ty_bits": ms(d["i_ty"][-1, :, k]),
                 "max_i_xt_bits": float(d["i_xt"][:, :, k].mean(axis=1).max()),
                 "epoch_of_max_i_xt": int(result.epochs[int(np.argmax(d["i_xt"][:, :, k].mean(axis=1)))]),
                 "compression": compression(d["i_xt"][:, :, k]),
                 "saturated_records": int(sat[:, :, k].sum()),
                 "gradient_phase": phases[layer]}
        if g is not None:
            entry["gap_bits"] = ms(g[-1, :, k])
        layers[layer] = entry
    dpi = result.dpi_violations(key)
    out: dict[str, Any] = {
        "task": result.name, "n_probe": result.n_probe, "log2_n": result.log2_n,
        "h_y_bits": result.h_y, "estimator": key, "knobs": result.knobs(key),
        "epochs_recorded": [int(e) for e in result.epochs],
        "final": {"train_loss_bits": ms(result.train_loss[-1]),
                  "test_loss_bits": ms(result.test_loss[-1]),
                  "train_acc": ms(result.train_acc[-1]), "test_acc": ms(result.test_acc[-1])},
        "layers": layers,
        "gradient_stats": {"optimizer": result.settings.get("optimizer"),
                           "minibatches_per_record": [int(b) for b in result.grad_n_batches]},
        "saturation": {"ceiling_bits": (1.0 - SATURATION) * result.log2_n,
                       "records": int(sat.sum()), "of": int(sat.size)},
        "dpi_violations": {"count": len(dpi), "of": int(d["i_xt"][..., 1:].size * 2),
                           "pairs": _dpi_by_pair(dpi)},
        "estimate_time_per_record_s": float(np.mean(result.estimate_time_s)),
        "wall_time_s": result.wall_time_s, "device": result.device,
    }
    if curve is not None:
        out["bound"] = {"kind": _kind(curve), "h_x_bits": result.h_x, "h_y_bits": curve.h_y,
                        "i_xy_bits": curve.i_xy, "self_test": bool(curve.deterministic),
                        "transitions": [{"beta": float(t.beta), "kind": str(t.kind),
                                         "i_xt": float(t.i_xt_after), "i_ty": float(t.i_ty_after)}
                                        for t in curve.transitions]}
        if curve.deterministic:
            out["bound"]["note"] = SELF_TEST_NOTE
    if check is not None:
        out["bound_check"] = check.summary()
    return out
