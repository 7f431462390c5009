"""Result objects returned by the solvers."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .envelope import interpolate_envelope


@dataclass(frozen=True)
class IBResult:
    """The solution of the (generalised) IB at one beta.

    All information quantities are in bits.

    Attributes
    ----------
    encoder : (n_x, n_t) array, p(t|x); rows sum to 1. Empty and coincident clusters removed.
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
    discontinuous in beta where two branches exchange optimality); for the generalised IB
    (alpha != 1) only "count": the optimal solution's cluster count changes somewhere in
    ``beta_bracket`` (``beta`` is its midpoint; no finer location is claimed).
    ``eigenvalue`` and ``direction`` (the split direction v(x)) are set for splits.
    ``beta_bracket`` is the interval known to contain the transition.
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
    (located on the curve); ``onset_beta_s_star`` = 1/s* from the hypercontractivity
    coefficient (an independent estimate of the same number).
    ``accuracy`` bounds (bits) how far the true curve may lie above ``bound``: between the
    computed points, the largest gap a concave piece with end slopes 1/beta can leave above
    its chord, plus the points' own Lagrangian tolerance over beta; past the last point,
    where the envelope follows the chord to (H(X), I(X;Y)), the gap below the last tangent
    and I(X;Y). ``capped``: the cluster cap ``max_clusters`` bound, so the points end
    before it did (``accuracy`` then covers the rest of the curve).

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

    def bound(self, i_xt):
        """The best I(T;Y) achievable at the given I(X;T) (bits), on the concave envelope.

        The envelope joins computed optima by straight lines, so it is achievable and lies
        at most about ``curve_tol`` bits (default 1e-5) below the true curve between them:
        an optimal encoder can score up to that much above it."""
        scalar = np.ndim(i_xt) == 0
        out = interpolate_envelope(self.envelope_i_xt, self.envelope_i_ty, i_xt)
        return float(out) if scalar else out

    @property
    def onset_kind(self) -> str:
        """The kind of the onset transition; where none is listed, "birth" when the optimum
        leaves the trivial solution before that is unstable, else "split"."""
        if not np.isfinite(self.onset_beta):
            return "none"
        for t in self.transitions:  # the onset transition says what it is
            if t.n_clusters_before == 1 and t.beta == self.onset_beta:
                return t.kind
        if self.alpha != 1.0:
            return "count"
        return "birth" if self.onset_beta < self.first_instability * (1 - 1e-4) else "split"

    def optimal_results(self) -> list:
        """The IBResult of the optimal branch at each beta of the curve (ascending)."""
        lookup = {name: {r.beta: r for r in br.results} for name, br in self.branches.items()}
        return [lookup[name][b] for b, name in zip(self.beta, self.branch)]

    def summary(self) -> str:
        head = (f"IB curve: {self.beta.size} betas, I(X;Y) = {self.i_xy:.6f} bit, "
                f"H(Y) = {self.h_y:.6f} bit" + ("" if self.complete else " (INTERRUPTED)"))
        if self.alpha != 1.0:
            lines = [head.replace("IB curve", f"Generalised IB curve (alpha = {self.alpha:g})"),
                     f"  optimum leaves zero {self._onset_text()} (cluster count)"]
        else:
            lines = [head, f"  first instability 1/s2^2 = {self.first_instability:.6g}; "
                     f"optimum leaves zero {self._onset_text()} ({self.onset_kind}); "
                     f"1/s* = {self.onset_beta_s_star:.6g}"]
        if self.capped:
            lines.append(f"  capped at max_clusters = {self.max_clusters}: points end at "
                         f"I(X;T) = {self.i_xt[-1]:.4f} bit; beyond it the curve is known to "
                         f"{self.accuracy:.3g} bit")
        for t in self.transitions:
            where = (f"at beta = {t.beta:.7g}" if t.located else
                     f"between beta = {t.beta_bracket[0]:.7g} and {t.beta_bracket[1]:.7g}")
            lines.append(f"  {t.kind:5s} {where}: clusters {t.n_clusters_before} -> "
                         f"{t.n_clusters_after}, I(X;T) {t.i_xt_before:.4f} -> {t.i_xt_after:.4f}")
        return "\n".join(lines)

    def _onset_text(self) -> str:
        """Where the optimum leaves zero: located, or only known to a bracket of betas."""
        onset = [t for t in self.transitions if t.n_clusters_before == 1
                 and t.beta == self.onset_beta]
        if onset and not onset[0].located:
            lo, hi = onset[0].beta_bracket
            return f"between beta = {lo:.6g} and {hi:.6g}"
        return f"at beta_0 = {self.onset_beta:.6g}"

    def to_npz(self, path) -> None:
        """Save the per-beta table, the envelope and the branches as a numpy .npz file."""
        arrays = {k: getattr(self, k) for k in (
            "beta", "i_xt", "i_ty", "h_t", "lagrangian", "n_clusters", "n_iter", "converged",
            "envelope_i_xt", "envelope_i_ty")}
        arrays["branch"] = self.branch.astype(str)
        for name, br in self.branches.items():
            for attr in ("beta", "i_xt", "i_ty", "lagrangian", "n_clusters", "n_iter"):
                arrays[f"{name}_{attr}"] = getattr(br, attr)
        arrays["scalars"] = np.array([self.i_xy, self.h_y, self.first_instability,
                                      self.onset_beta, self.onset_beta_s_star])
        arrays["alpha"] = np.array(self.alpha)
        np.savez(path, **arrays)

    def transitions_dict(self) -> dict:
        return {"alpha": self.alpha, "i_xy": self.i_xy, "h_y": self.h_y,
                "first_instability": self.first_instability,
                "onset_beta": self.onset_beta, "onset_kind": self.onset_kind,
                "onset_beta_s_star": self.onset_beta_s_star, "deterministic": self.deterministic,
                "complete": self.complete, "capped": self.capped, "max_clusters": self.max_clusters,
                "accuracy": self.accuracy,
                "transitions": [t.to_dict() for t in self.transitions],
                "all_transitions": [t.to_dict() for t in self.all_transitions]}
