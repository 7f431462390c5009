"""Figures of IB curves, bifurcation diagrams and convergence (matplotlib, imported lazily).

Every function takes ``ax=None`` (a new figure then) and returns the axes; none calls
``plt.show()`` or touches global rcParams. Information is in bits.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # matplotlib is imported lazily
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .results import IBCurve

#: marker and colour per transition kind
KIND_STYLE = {"split": ("o", "C3"), "birth": ("*", "C2"), "jump": ("s", "C1")}


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=(5.5, 4.2))
    return ax


def _mark_transitions(ax, curve, *, vertical: bool):
    seen = set()
    for t in curve.transitions:
        marker, color = KIND_STYLE.get(t.kind, ("x", "k"))
        label = f"{t.kind}" if t.kind not in seen else None
        seen.add(t.kind)
        if vertical:
            ax.axvline(t.beta, color=color, lw=0.8, ls="--", alpha=0.7, label=label)
        else:
            ax.plot(t.i_xt_before, t.i_ty_before, marker, color=color, ms=9, mec="k", mew=0.5,
                    label=label, zorder=5)
            ax.annotate(f"β={t.beta:.4g}", (t.i_xt_before, t.i_ty_before), fontsize=7,
                        xytext=(4, -10), textcoords="offset points")


def _untraced_spans(curve) -> list:
    """The I(X;T) intervals (bits) over which an interrupted curve's envelope spans betas it
    did not trace: from the point at the lower traced beta (the origin if none) to the
    point at the upper one (the envelope's end if none)."""
    at = dict(zip(curve.beta.tolist(), curve.i_xt.tolist()))
    return [(at.get(lo, 0.0), at.get(hi, float(curve.envelope_i_xt[-1])))
            for lo, hi in curve.untraced]


def _envelope_pieces(curve, spans) -> tuple:
    """(traced, untraced): the envelope as x, y arrays with NaN between pieces, split at the
    ``spans`` of I(X;T) it was not traced over."""
    xs = np.unique(np.concatenate([curve.envelope_i_xt, np.ravel(spans)]))
    ys = curve.bound(xs)
    pieces: tuple[list, list] = ([], [])
    for x0, x1, y0, y1 in zip(xs[:-1], xs[1:], ys[:-1], ys[1:]):
        mid = 0.5 * (x0 + x1)
        untraced = any(lo <= mid <= hi for lo, hi in spans)
        pieces[untraced].append(([x0, x1, np.nan], [y0, y1, np.nan]))
    return tuple((np.concatenate([p[0] for p in side]), np.concatenate([p[1] for p in side]))
                 if side else (np.empty(0), np.empty(0)) for side in pieces)


def plot_curve(curve: IBCurve, ax: Axes | None = None, *, transitions: bool = True,
               points: bool = True, branches: bool = False, label: str = "IB bound",
               color: str = "C0") -> Axes:
    """The IB curve (upper concave envelope, bits) with its computed points and transitions.
    Where an interrupted curve did not trace its betas, the envelope (there only a chord
    between the points around the gap) is drawn dashed in grey, labelled "not traced"."""
    ax = _axes(ax)
    spans = _untraced_spans(curve)
    if spans:
        (x, y), (gap_x, gap_y) = _envelope_pieces(curve, spans)
        ax.plot(x, y, "-", color=color, lw=1.8, label=label)
        ax.plot(gap_x, gap_y, "--", color="0.55", lw=1.4, label="not traced (interrupted)")
    else:
        ax.plot(curve.envelope_i_xt, curve.envelope_i_ty, "-", color=color, lw=1.8,
                label=label)
    if points:
        ax.plot(curve.i_xt, curve.i_ty, ".", color=color, ms=3, alpha=0.6)
    if branches:
        for name, br in curve.branches.items():
            ax.plot(br.i_xt, br.i_ty, "--", lw=0.8, label=f"{name} branch")
    ax.axhline(curve.i_xy, color="0.5", ls=":", lw=0.8)
    ax.annotate("I(X;Y)", (0, curve.i_xy), fontsize=7, color="0.4", xytext=(2, 2),
                textcoords="offset points")
    if transitions:
        _mark_transitions(ax, curve, vertical=False)
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_bifurcation(curve: IBCurve, ax: Axes | None = None, *, y_index: int = 0,
                     transitions: bool = True) -> Axes:
    """Bifurcation diagram: each cluster's decoder p(y=y_index | t) against beta (log axis);
    marker area proportional to the cluster's mass p(t). Clusters appear where they split
    or are born, as in Tishby's bifurcation plots."""
    ax = _axes(ax)
    results = curve.optimal_results()
    betas = np.concatenate([np.full(r.n_clusters, r.beta) for r in results])
    values = np.concatenate([r.p_y_given_t[:, y_index] for r in results])
    mass = np.concatenate([r.p_t for r in results])
    ax.scatter(betas, values, s=4 + 40 * mass, c="C0", alpha=0.6, lw=0)
    if transitions:
        _mark_transitions(ax, curve, vertical=True)
        if curve.transitions:
            ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("β")
    ax.set_ylabel(f"p(y={y_index} | t)")
    return ax


def plot_iterations(curve: IBCurve, ax: Axes | None = None, *, transitions: bool = True) -> Axes:
    """BA iterations to converge at each beta, per branch: critical slowing down shows as
    peaks at the transitions."""
    ax = _axes(ax)
    for name, br in curve.branches.items():
        ax.plot(br.beta, br.n_iter, ".-", ms=3, lw=0.8, label=f"{name} branch")
    if transitions:
        _mark_transitions(ax, curve, vertical=True)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("β")
    ax.set_ylabel("BA iterations")
    ax.legend(fontsize=8)
    return ax


def plot_summary(curve: IBCurve, path: str | os.PathLike[str] | None = None, *,
                 title: str | None = None) -> Figure:
    """Curve, bifurcation diagram and iterations side by side; saved to ``path`` if given.
    Returns the figure."""
    from matplotlib.figure import Figure  # no pyplot state: safe in scripts and servers

    fig = Figure(figsize=(15, 4.3), layout="constrained")
    axes = fig.subplots(1, 3)
    plot_curve(curve, axes[0])
    if not curve.deterministic:
        plot_bifurcation(curve, axes[1])
        plot_iterations(curve, axes[2])
    else:
        for a in axes[1:]:
            a.text(0.5, 0.5, "deterministic rule:\ncurve from the squared IB", ha="center",
                   va="center", transform=a.transAxes)
            a.set_axis_off()
    if not curve.complete:
        what = "dashed: betas not traced" if curve.untraced else "refinement cut short"
        title = (f"{title}: " if title else "") + f"PARTIAL curve (interrupted; {what})"
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=130)
    return fig
