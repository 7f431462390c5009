"""Result objects returned by the solvers."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .envelope import interpolate_envelope


@dataclass(frozen=True)
class IBResult:
    """The solution of the (generalised) IB at one beta.

    All information quantities are in bits.

    Attributes
    ----------
    encoder : (n_x, n_t) array, p(t|x); rows sum to 1, one per row of p_xy in its order
        (also where the solver worked on the table reduced to distinct p(y|x)). Empty and
        coincident clusters removed.
        None in the per-beta results of a curve (``IBCurve.branches``), which keep only the
        decoder state; ``ib_curve(return_encoders=True)`` returns the optimal encoders.
    p_t : (n_t,) array, p(t).
    p_y_given_t : (n_t, n_y) array, p(y|t); rows sum to 1.
    i_xt, i_ty, h_t : I(X;T), I(T;Y), H(T) of ``encoder``, bits.
    lagrangian : H(T) - alpha H(T|X) - beta I(T;Y), bits (I(X;T) - beta I(T;Y) for alpha = 1).
    beta, alpha : the trade-off parameters solved for.
    n_iter : BA iterations run.
    converged : whether the residual reached ``tol`` within ``max_iter``.
    residual : last max |change of p(t, y)| between iterations.
    backend : the backend that ran ("cpp", "numba" or "numpy").
    lagrangian_history : (n_iter,) array, the Lagrangian (bits) of each iteration's encoder.
    """

    encoder: np.ndarray | None
    p_t: np.ndarray
    p_y_given_t: np.ndarray
    i_xt: float
    i_ty: float
    h_t: float
    lagrangian: float
    beta: float
    alpha: float
    n_iter: int
    converged: bool
    residual: float
    backend: str
    lagrangian_history: np.ndarray

    @property
    def n_clusters(self) -> int:
        """Number of clusters with non-zero mass."""
        return int(self.p_t.size)

    def __repr__(self) -> str:
        state = "converged" if self.converged else "NOT converged"
        return (
            f"IBResult(beta={self.beta:.6g}, alpha={self.alpha:g}, I(X;T)={self.i_xt:.6f} bit, "
            f"I(T;Y)={self.i_ty:.6f} bit, H(T)={self.h_t:.6f} bit, n_clusters={self.n_clusters}, "
            f"n_iter={self.n_iter}, {state}, backend={self.backend!r})"
        )


@dataclass(frozen=True)
class Transition:
    """A phase transition of an IB branch. Information in bits.

    kind: "split" (a cluster loses stability, beta * lambda_2(C(t)) = 1), "birth" (a cluster
    of vanishing mass appears, invisible to the eigen-analysis) or "jump" (I(X;T) is
    discontinuous in beta where two branches exchange optimality) or "count": the optimal
    solution's cluster count changes somewhere in ``beta_bracket`` (``beta`` is its
    midpoint; no finer location is claimed). For the generalised IB (alpha != 1) every
    transition is a "count"; for alpha = 1 a "count" is a change no split or birth was
    found for (two events within one bracket of betas, one of them located).
    ``eigenvalue`` and ``direction`` (the split direction v(x)) are set for splits.
    ``beta_bracket`` is the interval known to contain the transition; ``located`` says
    whether ``beta`` is the transition's own (else the bracket's midpoint).
    ``n_clusters_*``, ``i_xt_*`` and ``i_ty_*`` are the values just before and just after
    ``beta`` (the limits from below and above, where located; a continuous split or birth
    shows none of a jump in I(X;T) and I(T;Y), only one more cluster after), and for a
    transition known only to its bracket, the values at the bracket's ends. Along the
    optimal path (``IBCurve.transitions``) the counts chain: each starts where the one
    before it ended.
    ``lagrangian`` is the branch's Lagrangian at ``beta`` (bits); ``optimal`` says whether
    that branch is the optimal one there.
    """

    beta: float
    kind: str
    branch: str
    n_clusters_before: int
    n_clusters_after: int
    i_xt_before: float
    i_xt_after: float
    i_ty_before: float
    i_ty_after: float
    beta_bracket: tuple
    lagrangian: float = float("nan")
    optimal: bool = True
    eigenvalue: float | None = None
    direction: np.ndarray | None = field(default=None, repr=False)
    located: bool = True

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in (
            "beta", "kind", "branch", "n_clusters_before", "n_clusters_after", "i_xt_before",
            "i_xt_after", "i_ty_before", "i_ty_after", "lagrangian", "optimal", "eigenvalue",
            "located")}
        out["beta_bracket"] = list(self.beta_bracket)
        out["direction"] = None if self.direction is None else self.direction.tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Transition:
        """The inverse of :meth:`to_dict`."""
        return cls(**{**d, "beta_bracket": tuple(d["beta_bracket"]),
                      "direction": None if d["direction"] is None else np.array(d["direction"])})


@dataclass(frozen=True)
class Branch:
    """One annealing branch: per-beta solutions, ascending in beta."""

    name: str
    results: tuple  # of IBResult

    def _arr(self, attr):
        return np.array([getattr(r, attr) for r in self.results])

    beta = property(lambda self: self._arr("beta"))
    i_xt = property(lambda self: self._arr("i_xt"))
    i_ty = property(lambda self: self._arr("i_ty"))
    lagrangian = property(lambda self: self._arr("lagrangian"))
    n_clusters = property(lambda self: self._arr("n_clusters"))
    n_iter = property(lambda self: self._arr("n_iter"))


@dataclass(frozen=True)
class IBCurve:
    """The IB curve of p(x, y). All information in bits.

    Per-beta arrays (ascending beta) describe the optimal solution found at each beta:
    ``beta, i_xt, i_ty, h_t, lagrangian, n_clusters, n_iter, converged, branch``.
    ``envelope_i_xt, envelope_i_ty`` are the vertices of the upper concave envelope;
    ``bound(i_xt)`` interpolates it. ``transitions`` lists the phase transitions on the
    optimal path (``all_transitions`` also those on sub-optimal branches).
    ``first_instability`` = 1/s2^2; ``onset_beta`` = first beta with a non-trivial optimum
    (located on the curve; where it is known only to a bracket of betas, ``onset_bracket``
    is that bracket and ``onset_beta`` its midpoint; NaN where the betas traced do not
    show it: a partial curve, or one already non-trivial at its lowest beta; inf where the
    optimum stays trivial over the whole range); ``onset_beta_s_star`` = 1/s* from the
    hypercontractivity coefficient (an independent estimate of the same number).
    ``accuracy`` bounds (bits) how far the true curve may lie above ``bound``: between the
    computed points, the largest gap a concave piece with end slopes 1/beta can leave above
    its chord, plus the points' own Lagrangian tolerance over beta; past the last point,
    where the envelope follows the chord to (H(X), I(X;Y)), the gap below the last tangent
    and I(X;Y). ``capped``: the cluster cap ``max_clusters`` bound, so the points end
    before it did (``accuracy`` then covers the rest of the curve).

    ``encoders`` (``ib_curve(return_encoders=True)``) are the optimal points' p(t|x), rows
    in the order of p_xy's rows.

    ``complete`` is False for a curve whose tracing was interrupted: ``untraced`` lists the
    ranges of beta it did not reach (drawn dashed by :func:`ibsolver.plotting.plot_curve`),
    and ``ib_curve(p_xy, resume=curve)`` continues it. ``settings`` holds the options that
    shape the curve (the starting grid of betas among them) and ``table_digest`` the SHA-256
    of the (reduced) table it was traced for; resuming checks both. ``to_npz`` writes the
    whole object and ``IBCurve.load`` reads it back.

    ``alpha`` is the generalised IB parameter the curve was traced for. For alpha != 1 the
    points are the optima of H(T) - alpha H(T|X) - beta I(T;Y) (``lagrangian`` is that),
    shown in the (I(X;T), I(T;Y)) plane, where they lie on or below the IB curve;
    ``transitions`` are cluster-count changes (kind "count") known to their bracket,
    ``onset_beta`` is the midpoint of the first one out of one cluster, and
    ``first_instability`` and ``onset_beta_s_star`` (IB quantities) are NaN. ``accuracy``
    then refers to the generalised curve in the plane (H(T) - alpha H(T|X), I(T;Y)), where
    these optima lie on a concave curve of slope 1/beta, not to the distance from ``bound``.
    """

    beta: np.ndarray
    i_xt: np.ndarray
    i_ty: np.ndarray
    h_t: np.ndarray
    lagrangian: np.ndarray
    n_clusters: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    branch: np.ndarray
    envelope_i_xt: np.ndarray
    envelope_i_ty: np.ndarray
    transitions: tuple
    all_transitions: tuple
    branches: dict
    i_xy: float
    h_y: float
    first_instability: float
    onset_beta: float
    onset_beta_s_star: float
    deterministic: bool = False
    encoders: tuple | None = None
    complete: bool = True
    accuracy: float = 0.0
    capped: bool = False
    max_clusters: int | None = None
    alpha: float = 1.0
    onset_bracket: tuple | None = None
    settings: dict = field(default_factory=dict)
    table_digest: str = ""

    def bound(self, i_xt):
        """The best I(T;Y) achievable at the given I(X;T) (bits), on the concave envelope.

        The envelope joins computed optima by straight lines, so it is achievable and lies
        at most about ``curve_tol`` bits (default 1e-5) below the true curve between them:
        an optimal encoder can score up to that much above it."""
        scalar = np.ndim(i_xt) == 0
        out = interpolate_envelope(self.envelope_i_xt, self.envelope_i_ty, i_xt)
        return float(out) if scalar else out

    @property
    def untraced(self) -> tuple:
        """The ranges of beta an interrupted run did not reach, as (low, high) pairs: each
        run of starting-grid betas that no branch solved, widened to the nearest betas
        solved on either side (or ended at the grid's end). Empty for a complete curve."""
        grid = np.asarray(self.settings.get("grid", ()), dtype=np.float64)
        if self.complete or grid.size == 0:
            return ()
        traced = np.unique(np.concatenate(
            [br.beta for br in self.branches.values()] + [np.empty(0)]))
        missing = ~np.isin(grid, traced)
        out = []
        for i in np.flatnonzero(missing & ~np.r_[False, missing[:-1]]):  # each run's start
            j = i + int(np.argmin(np.r_[missing[i:], False]))  # one past the run's end
            below, above = traced[traced < grid[i]], traced[traced > grid[j - 1]]
            out.append((float(below[-1]) if below.size else float(grid[i]),
                        float(above[0]) if above.size else float(grid[j - 1])))
        return tuple(out)

    @property
    def onset_kind(self) -> str:
        """The kind of the onset transition; where none is listed, "birth" when the optimum
        leaves the trivial solution before that is unstable, else "split"; "unknown" where
        the onset is not known (NaN), "none" where the optimum stays trivial."""
        if np.isnan(self.onset_beta):
            return "unknown"
        if not np.isfinite(self.onset_beta):
            return "none"
        for t in self.transitions:  # the onset transition says what it is
            if t.n_clusters_before == 1 and t.beta == self.onset_beta:
                return t.kind
        if self.alpha != 1.0:
            return "count"
        return "birth" if self.onset_beta < self.first_instability * (1 - 1e-4) else "split"

    @property
    def onset_agrees_with_s_star(self) -> bool | None:
        """Whether the onset, located or bracketed, agrees with 1/s* (relative 1e-6): the
        two are one number (theory.md section 2) found independently. None where either is
        unknown (alpha != 1, an onset not known from the betas traced, none at all)."""
        if self.alpha != 1.0 or not (np.isfinite(self.onset_beta)
                                     and np.isfinite(self.onset_beta_s_star)):
            return None
        lo, hi = self.onset_bracket or (self.onset_beta, self.onset_beta)
        target = self.onset_beta_s_star
        return bool(lo * (1 - 1e-6) <= target <= hi * (1 + 1e-6))

    def optimal_results(self) -> list:
        """The IBResult of the optimal branch at each beta of the curve (ascending)."""
        lookup = {name: {r.beta: r for r in br.results} for name, br in self.branches.items()}
        return [lookup[name][b] for b, name in zip(self.beta, self.branch)]

    def summary(self) -> str:
        head = (f"IB curve: {self.beta.size} betas, I(X;Y) = {self.i_xy:.6f} bit, "
                f"H(Y) = {self.h_y:.6f} bit" + ("" if self.complete else " (INTERRUPTED)"))
        if self.alpha != 1.0:
            lines = [head.replace("IB curve", f"Generalised IB curve (alpha = {self.alpha:g})"),
                     f"  optimum leaves zero {self._onset_text()}"]
        else:
            lines = [head, f"  first instability 1/s2^2 = {self.first_instability:.6g}; "
                     f"optimum leaves zero {self._onset_text()}; "
                     f"1/s* = {self.onset_beta_s_star:.6g}"]
        if self.onset_agrees_with_s_star is False:
            lines.append(f"  WARNING: the onset and 1/s* = {self.onset_beta_s_star:.6g} disagree "
                         "(no optimum leaves zero below 1/s*, and the curve's slope at zero is "
                         "s*): one of them is off")
        if not self.complete:
            gaps = "; ".join(f"beta {lo:.6g} to {hi:.6g}" for lo, hi in self.untraced)
            done = (f"not traced: {gaps}" if gaps else
                    "every starting beta traced by a branch; the other branch, refinement "
                    "or cross-seeding cut short")
            lines.append(f"  PARTIAL: interrupted ({done}); transitions known to their "
                         "brackets only. Resume with `ibsolver curve ... --resume` or "
                         "ib_curve(..., resume=curve)")
        if self.capped:
            lines.append(f"  capped at max_clusters = {self.max_clusters}: points end at "
                         f"I(X;T) = {self.i_xt[-1]:.4f} bit; beyond it the curve is known to "
                         f"{self.accuracy:.3g} bit")
        for t in self.transitions:
            where = (f"at beta = {t.beta:.7g}" if t.located else
                     "between beta = {} and {}".format(*_distinct(*t.beta_bracket)))
            lines.append(f"  {t.kind:5s} {where}: clusters {t.n_clusters_before} -> "
                         f"{t.n_clusters_after}, I(X;T) {t.i_xt_before:.4f} -> {t.i_xt_after:.4f}"
                         f", I(T;Y) {t.i_ty_before:.4f} -> {t.i_ty_after:.4f}")
        return "\n".join(lines)

    def _onset_text(self) -> str:
        """Where the optimum leaves zero and how: located, known only to a bracket of betas,
        or not known from the betas traced (and why)."""
        kind = "cluster count" if self.alpha != 1.0 else self.onset_kind
        if self.onset_bracket is not None:
            lo, hi = self.onset_bracket
            return "between beta = {} and {} ({})".format(*_distinct(lo, hi, 6), kind)
        if np.isnan(self.onset_beta):
            low = f"{self.beta.min():.6g}" if self.beta.size else "its lowest"
            why = ("the betas below were not traced" if self.untraced
                   and self.untraced[0][0] < self.beta.min() else "already non-trivial there")
            return f"at an unknown beta below beta = {low} ({why})"
        if np.isinf(self.onset_beta):
            return "nowhere in the betas traced"
        return f"at beta_0 = {self.onset_beta:.6g} ({kind})"

    # -- saving and loading ---------------------------------------------------------------
    def to_npz(self, path) -> None:
        """Save the whole curve as a numpy .npz file (``path`` a file name or an open binary
        file): the per-beta table, the envelope, every branch point with its decoder state,
        the transitions and the settings. :meth:`load` reads it back (no pickle)."""
        arrays: dict[str, Any] = {k: np.asarray(getattr(self, k)) for k in _CURVE_ARRAYS}
        arrays["branch"] = self.branch.astype(str)
        for name, br in self.branches.items():
            arrays.update(_branch_arrays(name, br))
        if self.encoders is not None:
            arrays["encoders"], arrays["encoders_width"] = _ragged(self.encoders)
        # (the same five numbers as before, for readers of older files)
        arrays["scalars"] = np.array([self.i_xy, self.h_y, self.first_instability,
                                      self.onset_beta, self.onset_beta_s_star])
        arrays["alpha"] = np.array(self.alpha)
        meta = {k: getattr(self, k) for k in _CURVE_META}
        meta["onset_bracket"] = (None if self.onset_bracket is None
                                 else [float(b) for b in self.onset_bracket])
        meta["settings"] = self.settings  # (arrays and numpy scalars: _json_scalar)
        meta["branches"] = list(self.branches)
        meta["transitions"] = [t.to_dict() for t in self.transitions]
        meta["all_transitions"] = [t.to_dict() for t in self.all_transitions]
        meta["format"] = NPZ_FORMAT
        arrays["meta"] = np.array(json.dumps(meta, default=_json_scalar))
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path) -> IBCurve:
        """Read a curve written by :meth:`to_npz`. Raises ValueError naming the file if it
        is not one (a file from an older version lacks the branches' decoder states)."""
        shown = repr(str(path))
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{shown} is not a readable .npz file ({exc})") from exc
        if "meta" not in arrays:
            raise ValueError(f"{shown} was not written by IBCurve.to_npz of this version "
                             "(it has no 'meta' entry)")
        try:
            meta = json.loads(str(arrays["meta"]))
            if meta.get("format") != NPZ_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {NPZ_FORMAT}")
            scalars = arrays["scalars"]
            settings = {k: (np.array(v) if k == "grid" else v)
                        for k, v in meta["settings"].items()}
            return cls(
                **{k: arrays[k] for k in _CURVE_ARRAYS}, branch=arrays["branch"],
                transitions=tuple(Transition.from_dict(t) for t in meta["transitions"]),
                all_transitions=tuple(Transition.from_dict(t) for t in meta["all_transitions"]),
                branches={name: _branch_from_arrays(name, arrays) for name in meta["branches"]},
                i_xy=float(scalars[0]), h_y=float(scalars[1]),
                first_instability=float(scalars[2]), onset_beta=float(scalars[3]),
                onset_beta_s_star=float(scalars[4]),
                encoders=(_unragged(arrays["encoders"], arrays["encoders_width"])
                          if "encoders" in arrays else None),
                alpha=float(arrays["alpha"]),
                onset_bracket=(None if meta["onset_bracket"] is None
                               else tuple(meta["onset_bracket"])),
                settings=settings, **{k: meta[k] for k in _CURVE_META})
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{shown} is not a curve written by IBCurve.to_npz "
                             f"({type(exc).__name__}: {exc})") from exc

    def transitions_dict(self) -> dict:
        """The summary as plain JSON values (a NaN or infinite number, e.g. an onset not
        known, is None: strict JSON has neither)."""
        return _json_safe({"alpha": self.alpha, "i_xy": self.i_xy, "h_y": self.h_y,
                "first_instability": self.first_instability,
                "onset_beta": self.onset_beta, "onset_kind": self.onset_kind,
                "onset_bracket": (None if self.onset_bracket is None
                                  else [float(b) for b in self.onset_bracket]),
                "onset_beta_s_star": self.onset_beta_s_star,
                "onset_agrees_with_s_star": self.onset_agrees_with_s_star,
                "deterministic": self.deterministic,
                "complete": self.complete, "untraced": [list(g) for g in self.untraced],
                "capped": self.capped, "max_clusters": self.max_clusters,
                "accuracy": self.accuracy,
                "transitions": [t.to_dict() for t in self.transitions],
                "all_transitions": [t.to_dict() for t in self.all_transitions]})


#: version of the layout to_npz writes (load refuses others)
NPZ_FORMAT = 1
#: per-beta arrays of IBCurve, saved under their own names
_CURVE_ARRAYS = ("beta", "i_xt", "i_ty", "h_t", "lagrangian", "n_clusters", "n_iter",
                 "converged", "envelope_i_xt", "envelope_i_ty")
#: IBCurve fields that are plain JSON values
_CURVE_META = ("deterministic", "complete", "accuracy", "capped", "max_clusters",
               "table_digest")
#: per-point IBResult fields a branch saves as one array each
_RESULT_SCALARS = ("beta", "i_xt", "i_ty", "h_t", "lagrangian", "alpha", "n_iter",
                   "converged", "residual")


def _json_safe(value):
    """``value`` with every non-finite float (at any depth) replaced by None."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def _json_scalar(value):
    """numpy scalars and arrays for json.dumps."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} in an IBCurve's settings")


def _ragged(arrays) -> tuple:
    """Arrays that differ in their last axis, side by side, and each one's width."""
    widths = np.array([a.shape[-1] for a in arrays], dtype=np.int64)
    return np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays], axis=-1), widths


def _unragged(joined: np.ndarray, widths: np.ndarray) -> tuple:
    return tuple(np.split(joined, np.cumsum(widths)[:-1], axis=-1))


def _branch_arrays(name: str, branch: Branch) -> dict:
    """The arrays that :func:`_branch_from_arrays` rebuilds ``branch`` from, keyed
    ``{name}_{field}``: one entry per point for scalars, the ragged ones (p(t), p(y|t) as
    rows, the Lagrangian history, encoders where kept) joined with their lengths."""
    res = branch.results
    out = {f"{name}_{k}": np.array([getattr(r, k) for r in res]) for k in _RESULT_SCALARS}
    out[f"{name}_n_clusters"] = np.array([r.n_clusters for r in res], dtype=np.int64)
    out[f"{name}_backend"] = np.array([r.backend for r in res], dtype=str)
    out[f"{name}_p_t"] = np.concatenate([r.p_t for r in res] + [np.empty(0)])
    out[f"{name}_p_y_given_t"] = (np.concatenate([r.p_y_given_t for r in res]) if res
                                  else np.empty((0, 0)))
    out[f"{name}_history"], out[f"{name}_history_length"] = _ragged(
        [r.lagrangian_history for r in res] or [np.empty(0)])
    if res and all(r.encoder is not None for r in res):
        out[f"{name}_encoder"], _ = _ragged([r.encoder for r in res])
    return out


def _branch_from_arrays(name: str, arrays: dict) -> Branch:
    get = {k: arrays[f"{name}_{k}"] for k in _RESULT_SCALARS}
    split = np.cumsum(arrays[f"{name}_n_clusters"])[:-1]
    p_t = np.split(arrays[f"{name}_p_t"], split)
    p_y_given_t = np.split(arrays[f"{name}_p_y_given_t"], split)
    histories = _unragged(arrays[f"{name}_history"], arrays[f"{name}_history_length"])
    encoders = (np.split(arrays[f"{name}_encoder"], split, axis=1)
                if f"{name}_encoder" in arrays else [None] * len(p_t))
    results = []
    for i in range(get["beta"].size):
        values = {k: get[k][i].item() for k in _RESULT_SCALARS}
        results.append(IBResult(
            encoder=encoders[i], p_t=p_t[i], p_y_given_t=p_y_given_t[i],
            backend=str(arrays[f"{name}_backend"][i]), lagrangian_history=histories[i],
            **values))
    return Branch(name, tuple(results))


def _distinct(lo: float, hi: float, digits: int = 7) -> tuple:
    """``lo`` and ``hi`` printed with ``digits`` significant digits, or as many more as
    tell them apart (a bracket refined to 1e-7 otherwise prints as "between 2.717358 and
    2.717358")."""
    for n in range(digits, 18):
        a, b = f"{lo:.{n}g}", f"{hi:.{n}g}"
        if a != b or lo == hi:
            return a, b
    return a, b
