"""Network layers on the information plane against the exact IB bound (all values in bits).

The bound F(r) = max{ I(T;Y) : I(X;T) <= r } is computed for the same p(x, y) the layers
were measured on (the probe joint): by ``ibsolver.ib_curve`` when the library provides it,
otherwise, for a deterministic rule (one-hot p(y|x)), by the exact F(r) = min(r, H(Y)).

A binned layer is a deterministic function of X, i.e. a real encoder, so its point must lie
on or below F: :func:`check_below_bound` reports any point above it as an error of the
solver (``BoundViolationError``, or a loudly flagged :class:`BoundCheck`).

Plotting functions import matplotlib lazily, take ``ax=None`` and return the axes; they
never call ``plt.show()`` nor change rcParams. :func:`save_figures` writes PNGs through the
Agg canvas without touching pyplot's backend.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

#: default tolerance (bits) for a point above the bound before it is called a violation
BOUND_TOL = 1e-6


class BoundViolationError(RuntimeError):
    """An achievable (binned) point lies above the computed IB bound: the bound is wrong.

    ``violations`` lists dicts with epoch, seed, layer, i_xt, i_ty, bound and excess (bits).
    """

    def __init__(self, message, violations):
        super().__init__(message)
        self.violations = violations


# --------------------------------------------------------------------------- the bound
def _entropy_bits(p) -> float:
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


@dataclass
class Bound:
    """The IB bound F for one p(x, y), in bits.

    Attributes
    ----------
    kind : "ib_curve" (computed by ``ibsolver.ib_curve``) or "deterministic" (exact
        min(r, H(Y)) for a one-hot p(y|x)).
    h_x, h_y, i_xy : H(X), H(Y), I(X;Y) of the joint.
    curve : the IBCurve, or None.
    transitions : list of dicts {"beta", "kind", "i_xt", "i_ty"} (the point after each one).
    """

    kind: str
    h_x: float
    h_y: float
    i_xy: float
    curve: object = None
    transitions: list = field(default_factory=list)

    def __call__(self, i_xt):
        """F(i_xt), vectorised, bits."""
        x = np.asarray(i_xt, dtype=np.float64)
        if self.curve is not None:
            flat = np.asarray(self.curve.bound(x.ravel()), dtype=np.float64)
            return flat.reshape(x.shape)
        return np.minimum(np.maximum(x, 0.0), self.h_y)

    def points(self):
        """(i_xt, i_ty) arrays tracing the curve from the origin to (H(X), I(X;Y))."""
        if self.curve is not None:
            c = self.curve
            if hasattr(c, "envelope_i_xt"):
                return np.asarray(c.envelope_i_xt, float), np.asarray(c.envelope_i_ty, float)
            return np.asarray(c.i_xt, float), np.asarray(c.i_ty, float)
        return np.array([0.0, self.h_y, self.h_x]), np.array([0.0, self.h_y, self.h_y])


def _is_deterministic(p_xy) -> bool:
    p_x = p_xy.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = p_xy / p_x[:, None]
    cond = cond[p_x > 0]
    return bool(np.all((np.abs(cond) < 1e-12) | (np.abs(cond - 1.0) < 1e-12)))


def _joint_of(obj) -> np.ndarray:
    if hasattr(obj, "probe_p_xy"):          # a TrainResult
        return np.asarray(obj.probe_p_xy, dtype=np.float64)
    if hasattr(obj, "p_y_given_x"):         # a Task
        if obj.p_x is None or obj.p_y_given_x is None:
            p = np.zeros((obj.n, obj.n_classes))
            p[np.arange(obj.n), np.asarray(obj.labels)] = 1.0 / obj.n
            return p
        return np.asarray(obj.p_xy, dtype=np.float64)
    return np.asarray(obj, dtype=np.float64)


BOUND_METHODS = ("auto", "solver", "exact")


def _bound_for(task, method: str = "auto", **curve_kwargs) -> Bound:
    """The IB bound for a Task, a TrainResult (its probe joint) or a p(x, y) table.

    method "auto" or "solver": ``ibsolver.ib_curve`` (``curve_kwargs`` go to it). "exact":
    the closed form min(r, H(Y)), for deterministic rules only (ValueError otherwise).
    """
    import ibsolver

    if method not in BOUND_METHODS:
        raise ValueError(f"method must be one of {list(BOUND_METHODS)} (got {method!r})")
    p_xy = _joint_of(task)
    if p_xy.ndim != 2:
        raise ValueError(f"task must be a Task, a TrainResult or a 2-D p(x, y) (got shape {p_xy.shape})")
    h_x = _entropy_bits(p_xy.sum(axis=1))
    h_y = _entropy_bits(p_xy.sum(axis=0))
    i_xy = float(ibsolver.mutual_information(p_xy, normalize=True))
    if method == "exact":
        if not _is_deterministic(p_xy):
            raise ValueError("method='exact' needs a deterministic rule (one-hot p(y|x)); this "
                             "p(x, y) is noisy: use method='solver' or 'auto'")
        return Bound("deterministic", h_x, h_y, i_xy, None,
                     [{"beta": 1.0, "kind": "corner", "i_xt": h_y, "i_ty": h_y}])
    curve = ibsolver.ib_curve(p_xy, **curve_kwargs)
    trans = [{"beta": float(t.beta), "kind": str(t.kind), "i_xt": float(t.i_xt_after),
              "i_ty": float(t.i_ty_after)} for t in curve.transitions]
    return Bound("ib_curve", h_x, h_y, i_xy, curve, trans)


ib_bound = _bound_for


# --------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class BoundCheck:
    """Result of checking achievable points against the bound (bits).

    ok : no point above bound + tol. n_points; max_excess : max of I(T;Y) - F(I(X;T));
    violations : list of dicts (epoch, seed, layer, i_xt, i_ty, bound, excess); tol; kind.
    """

    ok: bool
    n_points: int
    max_excess: float
    violations: list
    tol: float
    kind: str

    def as_dict(self) -> dict:
        return {"ok": self.ok, "n_points": self.n_points, "max_excess_bits": self.max_excess,
                "n_violations": len(self.violations), "violations": self.violations[:20],
                "tol_bits": self.tol, "bound_kind": self.kind}


def gaps(result, key: str = "binning", bound: Bound | None = None) -> np.ndarray:
    """(E, S, L) array: F(I(X;T)) - I(T;Y) of every recorded point, bits."""
    bound = _bound_for(result) if bound is None else bound
    d = result.info[key]
    return bound(d["i_xt"]) - d["i_ty"]


def check_below_bound(result, key: str = "binning", bound: Bound | None = None, *,
                      tol: float = BOUND_TOL, on_violation: str = "raise") -> BoundCheck:
    """Check that every binned point of ``result`` lies on or below the IB bound.

    ``on_violation="raise"`` raises :class:`BoundViolationError`; ``"flag"`` logs an error
    and returns a BoundCheck with ``ok=False`` and the offending numbers.
    """
    if on_violation not in ("raise", "flag"):
        raise ValueError(f"on_violation must be 'raise' or 'flag' (got {on_violation!r})")
    if key not in result.info:
        raise ValueError(f"key must be one of {sorted(result.info)} (got {key!r})")
    d = result.info[key]
    if not d.get("exact", False):
        raise ValueError(f"key {key!r} holds bounds, not achievable points; only exact "
                         "(binning) estimates can be checked against the IB bound")
    bound = _bound_for(result) if bound is None else bound
    f = bound(d["i_xt"])
    excess = d["i_ty"] - f
    bad = np.argwhere(excess > tol)
    violations = [{"epoch": int(result.epochs[e]), "seed": int(result.seeds[s]),
                   "layer": result.layers[k], "i_xt_bits": float(d["i_xt"][e, s, k]),
                   "i_ty_bits": float(d["i_ty"][e, s, k]), "bound_bits": float(f[e, s, k]),
                   "excess_bits": float(excess[e, s, k])} for e, s, k in bad]
    check = BoundCheck(ok=not violations, n_points=int(excess.size),
                       max_excess=float(excess.max()) if excess.size else float("nan"),
                       violations=violations, tol=tol, kind=bound.kind)
    if violations:
        worst = max(violations, key=lambda v: v["excess_bits"])
        msg = (f"{len(violations)} of {excess.size} binned layer points lie above the IB bound "
               f"({bound.kind}) by up to {worst['excess_bits']:.3g} bit (tol {tol:g}); e.g. "
               f"epoch {worst['epoch']}, seed {worst['seed']}, layer {worst['layer']}: "
               f"I(X;T) = {worst['i_xt_bits']:.6f}, I(T;Y) = {worst['i_ty_bits']:.6f} > "
               f"bound {worst['bound_bits']:.6f} bit. Binned layers are real encoders of X, "
               "so the computed IB bound is wrong (an error of the solver).")
        if on_violation == "raise":
            raise BoundViolationError(msg, violations)
        logger.error("BOUND VIOLATION: %s", msg)
    return check


def score_final_layers(result, bound: Bound, estimator=None, seed_index: int = 0) -> list:
    """Score the binned final-epoch layers of one seed with ``ibsolver.score_encoder``.

    Returns a list of dicts (layer, i_xt, i_ty, gap, epsilon, beta_fit; bits), or [] when
    ibsolver has no ``score_encoder`` or the bound is not a computed curve.
    """
    import ibsolver

    from .estimators import Binning, hard_encoder, make_estimator

    if not hasattr(ibsolver, "score_encoder") or bound.curve is None:
        return []
    if not result.final_activations:
        return []
    est = make_estimator(estimator) if estimator is not None else Binning(30)
    acts = {layer: result.final_activations[layer][seed_index] for layer in result.layers}
    clusters = est.clusters(acts, result.probe_p_xy.sum(axis=1))
    out = []
    for layer in result.layers:
        sc = ibsolver.score_encoder(result.probe_p_xy, hard_encoder(clusters[layer]),
                                    curve=bound.curve)
        out.append({"layer": layer, "i_xt_bits": float(sc.i_xt), "i_ty_bits": float(sc.i_ty),
                    "gap_bits": float(sc.gap), "epsilon": float(getattr(sc, "epsilon", np.nan)),
                    "beta_fit": float(getattr(sc, "beta_fit", np.nan))})
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


def plot_bound(bound: Bound, ax=None, *, color="k", transitions: bool = True, label="IB bound"):
    """The bound F (and its transitions, marked and annotated with beta) on ``ax``.

    A solver curve is drawn by ``ibsolver.plotting.plot_curve`` when that exists; the
    transitions are then marked by it too.
    """
    ax = _new_ax(ax)
    if bound.curve is not None:
        try:
            from ibsolver.plotting import plot_curve
        except ImportError:
            plot_curve = None
        if plot_curve is not None:
            plot_curve(bound.curve, ax=ax, transitions=transitions, points=False,
                       label=f"{label} (ib_curve)", color=color)
            # F is flat beyond the curve's last vertex: draw it out to H(X)
            x, _ = bound.points()
            if x.size and x.max() < bound.h_x:
                xs = np.array([x.max(), bound.h_x])
                ax.plot(xs, bound(xs), color=color, lw=1.8)
            return ax
    x, y = bound.points()
    ax.plot(x, y, color=color, lw=1.6, label=f"{label} ({bound.kind})", zorder=3)
    if transitions and bound.transitions:
        tx = [t["i_xt"] for t in bound.transitions]
        ty = [t["i_ty"] for t in bound.transitions]
        ax.plot(tx, ty, "D", ms=6, mfc="none", mec="crimson", mew=1.5, zorder=6,
                label="transitions")
        # label the transitions that are not crowded (4% of the bound's I(X;T) range apart)
        span = max(float(np.max(bound.points()[0])), 1e-12)
        last = -np.inf
        for t in sorted(bound.transitions, key=lambda t: t["i_xt"]):
            if t["i_xt"] - last < 0.04 * span:
                continue
            last = t["i_xt"]
            ax.annotate(f"{t['kind']} β={t['beta']:.3g}", (t["i_xt"], t["i_ty"]),
                        textcoords="offset points", xytext=(4, -12), fontsize=7,
                        color="crimson")
    return ax


def plot_infoplane(result, key: str = "binning", bound: Bound | None = None, ax=None, *,
                   layers=None, cmap: str = "viridis", spread: bool = True,
                   show_bound: bool = True, colorbar: bool = True):
    """Each layer's trajectory (mean over seeds, coloured by epoch) with the IB bound.

    ``spread`` draws +-1 standard deviation over seeds as error bars. Dashed lines mark the
    ceilings log2 N and H(Y). Returns the axes.
    """
    from matplotlib.colors import LogNorm

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
    if show_bound:
        if bound is None:
            try:
                bound = _bound_for(result)
            except NotImplementedError as exc:
                logger.warning("no IB bound drawn: %s", exc)
        if bound is not None:
            plot_bound(bound, ax)
    ax.axvline(result.log2_n, color="0.4", ls="--", lw=0.8, label=f"log2 N = {result.log2_n:.2f}")
    ax.axhline(result.h_y, color="0.4", ls=":", lw=0.8, label=f"H(Y) = {result.h_y:.4f}")
    if colorbar and sc is not None:
        ax.figure.colorbar(sc, ax=ax, label="epoch")
    est = d.get("estimator", key)
    knobs = ", ".join(f"{k}={v}" for k, v in d.get("knobs", {}).items())
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    ax.set_title(f"{result.task_name}: {est} ({knobs}), {len(result.seeds)} seeds, "
                 f"N = {result.n_probe}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def plot_gap(result, key: str = "binning", bound: Bound | None = None, ax=None):
    """Per layer, the gap F(I(X;T)) - I(T;Y) (bits) against epoch; mean and spread over seeds."""
    ax = _new_ax(ax)
    g = gaps(result, key, bound)
    x = _epoch_x(result.epochs)
    for k, layer in enumerate(result.layers):
        m, s = g[:, :, k].mean(axis=1), g[:, :, k].std(axis=1)
        (line,) = ax.plot(x, m, label=layer)
        ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("epoch (0 drawn at 0.5)")
    ax.set_ylabel("gap to the IB bound [bits]")
    ax.set_title(f"{result.task_name}: distance below the bound ({key})", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_grad_snr(result, ax=None):
    """Per layer, the gradient signal-to-noise ratio over each recorded epoch's minibatches
    (geometric mean over seeds, band = min..max)."""
    ax = _new_ax(ax)
    snr = np.asarray(result.grad_snr, dtype=float)
    keep = np.all(np.isfinite(snr) & (snr > 0), axis=(1, 2))
    x = _epoch_x(result.epochs)[keep]
    for j, layer in enumerate(result.fc_layers):
        v = snr[keep, :, j]
        if v.size == 0:
            continue
        gm = np.exp(np.log(v).mean(axis=1))
        (line,) = ax.plot(x, gm, label=layer)
        ax.fill_between(x, v.min(axis=1), v.max(axis=1), color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("|mean grad| / |std grad|")
    ax.set_title(f"{result.task_name}: gradient signal-to-noise per layer", fontsize=9)
    ax.legend(fontsize=7)
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


def plot_loss(result, ax=None):
    """Train and test cross-entropy (bits) against epoch; mean and spread over seeds; H(Y)."""
    ax = _plot_train_test(result, ax, "loss", "cross-entropy [bits]")
    ax.axhline(result.h_y, color="0.4", ls=":", lw=0.8, label="H(Y)")
    ax.legend(fontsize=7)
    return ax


def plot_accuracy(result, ax=None):
    """Train and test accuracy against epoch; mean and spread over seeds."""
    ax = _plot_train_test(result, ax, "acc", "accuracy")
    ax.legend(fontsize=7)
    return ax


def plot_sensitivity(sens, ax=None, *, bound: Bound | None = None, cmap: str = "plasma"):
    """How a layer's point moves with the estimator's knob (one Sensitivity or a list):
    each layer's points for the knob values, joined, coloured by value."""
    from matplotlib.colors import LogNorm

    ax = _new_ax(ax)
    items = sens if isinstance(sens, (list, tuple)) else [sens]
    markers = ["o", "s", "^", "v"]
    sc = None
    for i, s in enumerate(items):
        vals = np.asarray(s.values, dtype=float)
        norm = LogNorm(vmin=vals.min(), vmax=max(vals.max(), vals.min() * 1.0001))
        for k, layer in enumerate(s.layers):
            ax.plot(s.i_xt[:, k], s.i_ty[:, k], color="0.7", lw=0.7, zorder=1)
            sc = ax.scatter(s.i_xt[:, k], s.i_ty[:, k], c=vals, cmap=cmap, norm=norm,
                            marker=markers[i % len(markers)], s=20, zorder=3,
                            label=s.estimator if k == 0 else None)
            ax.annotate(layer, (s.i_xt[-1, k], s.i_ty[-1, k]), fontsize=6,
                        textcoords="offset points", xytext=(3, 3))
    if bound is not None:
        plot_bound(bound, ax, transitions=False)
    if sc is not None:
        ax.figure.colorbar(sc, ax=ax, label=items[0].knob)
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    ax.set_title(f"sensitivity to {items[0].knob}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def trajectory_sensitivity(result, *, estimator: str = "binning", values=None, seed_index=0,
                           **knobs) -> list:
    """Re-estimate the kept activations of one seed at every recorded epoch for each knob
    value. Returns a list (one per estimator key) of dicts {"estimator", "knob", "values",
    "i_xt" (V, E, L), "i_ty" (V, E, L)}, bits. Needs ``train(..., keep_activations=...)``."""
    from .estimators import DEFAULT_SWEEPS, make_estimator

    if not result.activations:
        raise ValueError("result has no activations; train with keep_activations=True or 1")
    knob = "noise_var" if estimator == "kde" else (
        "bin_width" if knobs.get("strategy") == "width" else "n_bins")
    values = list(DEFAULT_SWEEPS[knob] if values is None else values)
    out: dict = {}
    for v in values:
        est = make_estimator({"name": estimator, **knobs, knob: v})
        per_epoch: dict = {}
        for e in range(len(result.epochs)):
            acts = {layer: result.activations[layer][e, seed_index] for layer in result.layers}
            for r in est.estimate(acts, result.probe_p_xy):
                per_epoch.setdefault(r.estimator, []).append((r.i_xt, r.i_ty))
        for key, rows in per_epoch.items():
            o = out.setdefault(key, {"estimator": key, "knob": knob, "values": values,
                                     "i_xt": [], "i_ty": []})
            o["i_xt"].append(np.stack([a for a, _ in rows]))
            o["i_ty"].append(np.stack([b for _, b in rows]))
    res = []
    for o in out.values():
        o["i_xt"] = np.stack(o["i_xt"])
        o["i_ty"] = np.stack(o["i_ty"])
        res.append(o)
    return res


def plot_trajectory_sensitivity(result, sweep: dict, ax=None, *, bound: Bound | None = None,
                                cmap: str = "plasma"):
    """Each layer's trajectory (one seed) for every knob value of a
    :func:`trajectory_sensitivity` sweep, one colour per value."""
    import matplotlib as mpl

    ax = _new_ax(ax)
    colors = mpl.colormaps[cmap](np.linspace(0.0, 0.85, len(sweep["values"])))
    for i, v in enumerate(sweep["values"]):
        for k in range(sweep["i_xt"].shape[2]):
            ax.plot(sweep["i_xt"][i, :, k], sweep["i_ty"][i, :, k], "-o", ms=2, lw=0.8,
                    color=colors[i], label=f"{sweep['knob']}={v:g}" if k == 0 else None)
    if bound is not None:
        plot_bound(bound, ax, transitions=False)
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    ax.set_title(f"{result.task_name}: {sweep['estimator']} trajectories vs {sweep['knob']} "
                 f"(seed {result.seeds[0]})", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def _figure(figsize=(6.4, 4.8), ncols=1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def save_figures(result, out_dir, *, key: str = "binning", bound="auto",
                 sensitivity=None, dpi: int = 120) -> dict:
    """Write infoplane.png, gap.png (when a bound is known), grad_snr.png, loss.png and,
    given a sensitivity result, sensitivity.png to ``out_dir`` (Agg canvas, no pyplot).

    ``bound``: a :class:`Bound`, "auto" (computed by :func:`_bound_for` when possible) or
    None (no bound drawn). Returns {name: path}."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = {}

    def save(fig, name):
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=dpi)
        paths[name.rsplit(".", 1)[0]] = path

    if isinstance(bound, str):
        if bound != "auto":
            raise ValueError(f"bound must be a Bound, 'auto' or None (got {bound!r})")
        try:
            bound = _bound_for(result)
        except NotImplementedError as exc:
            logger.warning("figures without the IB bound: %s", exc)
            bound = None
    fig, ax = _figure((7.5, 5.2))
    plot_infoplane(result, key, bound, ax=ax, show_bound=bound is not None)
    save(fig, "infoplane.png")
    if bound is not None:
        fig, ax = _figure()
        plot_gap(result, key, bound, ax=ax)
        save(fig, "gap.png")
    fig, ax = _figure()
    plot_grad_snr(result, ax=ax)
    save(fig, "grad_snr.png")
    fig, axes = _figure((10, 4), ncols=2)
    plot_loss(result, ax=axes[0])
    plot_accuracy(result, ax=axes[1])
    save(fig, "loss.png")
    if sensitivity is not None:
        fig, ax = _figure()
        if isinstance(sensitivity, dict):
            plot_trajectory_sensitivity(result, sensitivity, ax=ax, bound=bound)
        else:
            plot_sensitivity(sensitivity, ax=ax, bound=bound)
        save(fig, "sensitivity.png")
    return paths


def summary(result, key: str = "binning", bound: Bound | None = None, check=None) -> dict:
    """A JSON-ready summary of a run: final losses, per-layer final information (bits),
    gaps to the bound, flags."""
    d = result.info[key]

    def ms(a):
        a = np.asarray(a, dtype=float)
        return {"mean": float(np.nanmean(a)), "std": float(np.nanstd(a))} if a.size else {}

    layers = {}
    g = gaps(result, key, bound) if bound is not None else None
    sat = d["i_xt"] >= 0.99 * result.log2_n
    for k, layer in enumerate(result.layers):
        entry = {"width": int(result.layer_widths[k]),
                 "i_xt_bits": ms(d["i_xt"][-1, :, k]), "i_ty_bits": ms(d["i_ty"][-1, :, k]),
                 "max_i_xt_bits": float(d["i_xt"][:, :, k].mean(axis=1).max()),
                 "epoch_of_max_i_xt": int(result.epochs[int(np.argmax(d["i_xt"][:, :, k].mean(axis=1)))]),
                 "saturated_records": int(sat[:, :, k].sum())}
        if g is not None:
            entry["gap_bits"] = ms(g[-1, :, k])
        layers[layer] = entry
    out = {
        "task": result.task_name, "n_probe": result.n_probe, "log2_n": result.log2_n,
        "h_y_bits": result.h_y, "estimator": key, "knobs": d.get("knobs", {}),
        "epochs_recorded": [int(e) for e in result.epochs],
        "final": {"train_loss_bits": ms(result.train_loss[-1]),
                  "test_loss_bits": ms(result.test_loss[-1]),
                  "train_acc": ms(result.train_acc[-1]), "test_acc": ms(result.test_acc[-1])},
        "layers": layers,
        "dpi_violations": len(result.dpi_violations(key)) if key in result.info else 0,
        "estimate_time_per_record_s": float(np.mean(result.estimate_time_s)),
        "wall_time_s": result.wall_time_s, "device": result.device,
    }
    if bound is not None:
        out["bound"] = {"kind": bound.kind, "h_x_bits": bound.h_x, "h_y_bits": bound.h_y,
                        "i_xy_bits": bound.i_xy, "transitions": bound.transitions}
    if check is not None:
        out["bound_check"] = check.as_dict()
    return out
