"""Result objects returned by the solvers, and the one way results are saved and read.

Every result class (:class:`IBResult`, :class:`IBCurve`, :class:`~ibsolver.GaussianIB`,
:class:`~ibsolver.EncoderScore`, and ``dnn``'s results through the same :class:`Result`)
has ``save(path)`` and ``load(path)``: one ``.npz`` file holding the result's arrays under
their names and everything else as JSON text in the entry ``meta`` (with the result's type
and the file format); no pickle. ``summary()`` is a dict of plain JSON values,
``to_dataframe()`` a pandas table and ``str(result)`` the text to print.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from .envelope import interpolate_envelope
from .io import write_whole

#: version of the file layout that ``save`` writes; ``IBCurve.load`` also reads format 1,
#: written by ``IBCurve.to_npz`` (the name of ``IBCurve.save`` before it)
FORMAT = 2

_R = TypeVar("_R", bound="Result")


class Result:
    """The base of every frozen result (ibsolver's and dnn's): ``save``, ``load`` and
    ``to_dataframe`` of a result dataclass. By default the
    dataclass fields that are numpy arrays are saved as arrays and the others as JSON, where
    nested dataclasses, dicts, tuples and lists keep their types and their arrays are saved
    as arrays too (:func:`_encode`); a class overrides ``_payload`` and ``_from_payload``
    (their inverse) to save otherwise, and gives ``_columns``, its table."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # (set by @dataclass on the subclass)

    def save(self, path: str | os.PathLike[str] | BinaryIO) -> None:
        """Write the result to one ``.npz`` file; no pickle.

        Parameters
        ----------
        path : str, path-like or binary file
            Where to write: a file name (used as given: no suffix is added; written to a
            temporary file first, so that an interruption leaves no partial file) or a file
            open for writing bytes. The file holds the result's arrays under their names
            and everything else as JSON text in the entry ``meta``; :meth:`load` reads it
            back equal to the last bit (NaN included).
        """
        _write(path, self)

    @classmethod
    def load(cls: type[_R], path: str | os.PathLike[str] | BinaryIO) -> _R:
        """Read a result of this class that :meth:`save` wrote.

        Parameters
        ----------
        path : str, path-like or binary file

        Returns
        -------
        The result, equal to the one saved.

        Raises
        ------
        ValueError
            Naming the file, where it holds no such result: not an ``.npz``, another
            result type or file format, or entries missing.
        """
        meta, arrays = _read(path, cls.__name__)
        try:
            return cls._from_payload(meta, arrays)
        except (KeyError, ValueError, TypeError, AttributeError, ImportError) as exc:
            raise ValueError(f"{str(path)!r} is not a complete {cls.__name__} file "
                             f"({type(exc).__name__}: {exc})") from exc

    def to_dataframe(self) -> Any:
        """The result as a table (information in bits).

        Returns
        -------
        pandas.DataFrame
            One row per point of a curve, per direction of a Gaussian IB, per record of a
            training run, else one row.

        Raises
        ------
        ImportError
            Where pandas is not installed (:meth:`summary` needs no pandas).
        """
        return dataframe(self._columns())

    def _columns(self) -> dict | list:
        """The table of :meth:`to_dataframe`: its columns by name, equal in length, or its
        rows (dicts with the same keys)."""
        raise NotImplementedError

    def _payload(self) -> tuple[dict, dict]:
        """(JSON values, arrays) that :meth:`_from_payload` rebuilds the result from."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        arrays = {k: v for k, v in values.items() if isinstance(v, np.ndarray)}
        return {k: _encode(v, arrays, k) for k, v in values.items() if k not in arrays}, arrays

    @classmethod
    def _from_payload(cls: type[_R], meta: dict, arrays: dict) -> _R:
        """The result of :meth:`_payload`'s values; fields missing from both take their
        defaults (a file written before the field was added)."""
        packages = {"ibsolver", cls.__module__.partition(".")[0]}
        return cls(**{f.name: _decode(meta[f.name], arrays, packages) if f.name in meta
                      else arrays[f.name] for f in dataclasses.fields(cls)
                      if f.init and (f.name in meta or f.name in arrays)})


def dataframe(table: Any) -> Any:
    """``pandas.DataFrame(table)``, or an ImportError saying how to get pandas."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_dataframe needs pandas: pip install pandas (or use "
                          "summary() for a dict)") from None
    return pd.DataFrame(table)


def _write(path, result: Result, **extra: np.ndarray) -> None:
    """``result.save(path)``, with the ``extra`` arrays beside it (``load`` skips them)."""
    meta, arrays = result._payload()
    meta = {"type": type(result).__name__, "format": FORMAT, **meta}
    entries = {**arrays, **extra, "meta": np.array(json.dumps(meta, default=_json_scalar))}
    if isinstance(path, (str, os.PathLike)):  # whole or not at all
        write_whole(Path(path), lambda tmp: _savez(tmp, entries))
    else:
        np.savez(path, **entries)


def _savez(path: Path, entries: dict) -> None:
    with open(path, "wb") as fh:  # (np.savez would append ".npz" to a name without it)
        np.savez(fh, **entries)


def _read(path, kind: str) -> tuple[dict, dict]:
    """(JSON values, arrays) of the ``kind`` result saved in ``path``, with the JSON's
    "format"; a ValueError naming the file where it holds none."""
    shown = repr(str(path))
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{shown} is not a readable .npz file ({exc})") from exc
    if "meta" not in arrays:
        raise ValueError(f"{shown} was not written by {kind}.save (it has no 'meta' entry)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError as exc:
        raise ValueError(f"{shown} was not written by {kind}.save (its 'meta' entry is not "
                         f"JSON: {exc})") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{shown} was not written by {kind}.save (its 'meta' entry is not "
                         "a JSON object)")
    # format 1 was IBCurve.to_npz's, which did not record the type
    saved = meta.pop("type", "IBCurve" if meta.get("format") == 1 else None)
    if saved != kind:
        raise ValueError(f"{shown} holds a result of type {saved}, not {kind}")
    if meta.get("format") not in ((1, FORMAT) if kind == "IBCurve" else (FORMAT,)):
        raise ValueError(f"{shown} has file format {meta.get('format')!r}; this version of "
                         f"ibsolver reads format {FORMAT}")
    return meta, arrays


def _encode(value, arrays: dict, key: str):
    """``value`` as JSON: a number, string, bool or None as itself, the rest as a node that
    keeps its type: ``{"array": entry}`` (the array put into ``arrays`` under its path,
    e.g. ``info/binning/i_xt``), ``{"tuple": [...]}``, ``{"list": [...]}``, ``{"dict":
    [[key, value], ...]}`` and ``{"dataclass": "module:Class", "fields": {...}}``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"dataclass": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _encode(getattr(value, f.name), arrays, f"{key}/{f.name}")
                           for f in dataclasses.fields(value) if f.init}}
    if isinstance(value, np.ndarray):
        name = key
        while name in arrays or name == "meta":  # a path taken already
            name += "_"
        arrays[name] = value
        return {"array": name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {"dict": [[_encode(k, arrays, f"{key}/key{i}"),
                          _encode(v, arrays, f"{key}/{k if isinstance(k, str) else i}")]
                         for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, (tuple, list)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [_encode(v, arrays, f"{key}/{i}") for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} (at {key}) in a result file: "
                    "dataclasses, dicts, tuples, lists, numpy arrays and plain values only")


def _decode(node, arrays: dict, packages: set):
    """The value that :func:`_encode` wrote as ``node``; dataclasses are rebuilt (from their
    fields: no code is run but theirs) only where defined in one of ``packages``."""
    if not isinstance(node, dict):
        return node
    if "array" in node:
        return arrays[node["array"]]
    if "tuple" in node:
        return tuple(_decode(v, arrays, packages) for v in node["tuple"])
    if "list" in node:
        return [_decode(v, arrays, packages) for v in node["list"]]
    if "dict" in node:
        return {_decode(k, arrays, packages): _decode(v, arrays, packages)
                for k, v in node["dict"]}
    module, _, qualname = node["dataclass"].partition(":")
    if module.partition(".")[0] not in packages:
        raise ValueError(f"refusing to rebuild {node['dataclass']!r}: only classes of "
                         f"{' and '.join(sorted(packages))} are read")
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"{node['dataclass']!r} is not a dataclass")
    return cls(**{k: _decode(v, arrays, packages) for k, v in node["fields"].items()})


@dataclass(frozen=True)
class IBResult(Result):
    """The solution of the (generalised) IB at one beta.

    All information quantities are in bits. ``summary()`` gives the numbers as plain JSON
    values, ``to_dataframe()`` as a one-row table, ``save``/``load`` the whole result.

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

    def summary(self) -> dict:
        """The numbers of the solution (beta, alpha, information in bits, cluster count,
        iterations, convergence, backend) as plain JSON values; NaN as None."""
        return json_safe({k: getattr(self, k) for k in _RESULT_SUMMARY})

    def _columns(self) -> dict:
        """One row: the numbers of :meth:`summary`."""
        return {k: [getattr(self, k)] for k in _RESULT_SUMMARY}

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
    transition known only to its bracket, the values at the bracket's ends. Cluster counts
    are of distinct decoders, as in ``IBCurve.n_clusters``. Along the
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

    def summary(self) -> dict:
        """Every field as plain JSON values (bits; NaN and inf as None, the bracket and the
        direction as lists)."""
        return json_safe(self._record())

    def _record(self) -> dict:
        """Every field as JSON values, NaN kept (for a file: Python's json writes it)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["beta_bracket"] = list(self.beta_bracket)
        out["direction"] = None if self.direction is None else self.direction.tolist()
        return out

    @classmethod
    def _from_record(cls, d: dict) -> Transition:
        return cls(**{**d, "beta_bracket": tuple(d["beta_bracket"]),
                      "direction": None if d["direction"] is None else np.array(d["direction"])})


@dataclass(frozen=True)
class Branch:
    """One annealing branch: per-beta solutions, ascending in beta (saved and read as part
    of its :class:`IBCurve`)."""

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
class IBCurve(Result):
    """The IB curve of p(x, y). All information in bits.

    Per-beta arrays (ascending beta) describe the optimal solution found at each beta:
    ``beta, i_xt, i_ty, h_t, lagrangian, n_clusters, n_iter, converged, branch``.
    ``n_clusters`` counts distinct decoders: clusters whose p(y|t) agree within 1e-4
    (max-norm; ``ibsolver.curve.DISTINCT_DECODER``) are near-copies of one cluster and count
    once, with their masses summed, and a cluster counts where its mass exceeds 1e-6
    (``ibsolver.curve.n_distinct``); the solutions in ``branches`` keep every copy
    (``IBResult.n_clusters``).
    ``envelope_i_xt, envelope_i_ty`` are the vertices of the upper concave envelope;
    ``bound(i_xt)`` interpolates it. ``transitions`` lists the phase transitions on the
    optimal path (``all_transitions`` also those on sub-optimal branches).
    ``first_instability`` = 1/s2^2; ``onset_beta`` = first beta with a non-trivial optimum
    (located on the curve; where it is known only to a bracket of betas, ``onset_bracket``
    is that bracket and ``onset_beta`` its midpoint; NaN where the betas traced do not
    show it: a partial curve, or one already non-trivial at its lowest beta; inf where the
    optimum stays trivial over the whole range); ``onset_beta_s_star`` = 1/s* from the
    hypercontractivity coefficient (an independent estimate of the same number; s* is
    ascended further where it disagrees with a located onset; against a bracketed onset
    it may lie some 1e-5 (relative) below s*, inside the bracket).
    ``accuracy`` bounds (bits) how far the true curve may lie above ``bound``: between the
    computed points, the largest gap a concave piece through both points with slopes 1/beta
    there can leave above their chord (the height of the triangle their tangents make with
    it), plus the points' own Lagrangian tolerance over beta; past the last point,
    where the envelope follows the chord to (H(X), I(X;Y)), the gap below the last tangent
    and I(X;Y). ``capped``: the cluster cap ``max_clusters`` bound, so the points end
    before it did (``accuracy`` then covers the rest of the curve).

    ``encoders`` (``ib_curve(return_encoders=True)``) are the optimal points' p(t|x), rows
    in the order of p_xy's rows.

    ``complete`` is False for a curve whose tracing was interrupted: ``untraced`` lists the
    ranges of beta it did not reach (drawn dashed by :func:`ibsolver.plotting.plot_curve`),
    and ``ib_curve(p_xy, resume=curve)`` continues it. ``settings`` holds the options that
    shape the curve (the starting grid of betas among them) and ``table_digest`` the SHA-256
    of the (reduced) table it was traced for; resuming checks both. ``save`` writes the
    whole object and ``IBCurve.load`` reads it back.

    ``str(curve)`` is the text the command line prints; ``summary()`` the same facts (the
    onset, the transitions, the curve's accuracy and completeness) as plain JSON values;
    ``to_dataframe()`` the per-beta arrays as a table.

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

    def traced_for(self, p_xy: ArrayLike) -> bool | None:
        """Whether this curve was traced for the table ``p_xy`` (a distribution, as
        ``ib_curve`` takes it without ``normalize``): the SHA-256 of its reduced table is
        ``table_digest``. Bit for bit: the same distribution computed another way can differ
        in its last bits and answer False. None where the curve records no digest."""
        if not self.table_digest:
            return None
        from .curve import reduced_table_digest

        return reduced_table_digest(p_xy) == self.table_digest

    def bound(self, i_xt: ArrayLike) -> float | np.ndarray:
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
        two are one number (docs/theory.rst section 2) found independently. None where either is
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

    def __str__(self) -> str:
        """The curve as text (what the command line prints): I(X;Y), the onset, warnings,
        what a partial or capped curve lacks, the transitions."""
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
            lines.append(f"  PARTIAL: interrupted ({done}); transitions other than the "
                         "splits the forward pass located are known to their brackets only. "
                         "Resume with `ibsolver curve ... --resume` or "
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
            if self.alpha == 1.0 and hi >= self.first_instability * (1 - 1e-4):
                # a bracket reaching 1/s2^2 holds a split or an earlier birth: the kind the
                # bracket's ends suggest is a guess (a partial DSBS-like curve read "birth"
                # for a split)
                kind = f"{kind}, a guess from the bracket's ends"
            return "between beta = {} and {} ({})".format(*_distinct(lo, hi, 6), kind)
        if np.isnan(self.onset_beta):
            low = f"{self.beta.min():.6g}" if self.beta.size else "its lowest"
            why = ("the betas below were not traced" if self.untraced
                   and self.untraced[0][0] < self.beta.min() else "already non-trivial there")
            return f"at an unknown beta below beta = {low} ({why})"
        if np.isinf(self.onset_beta):
            return "nowhere in the betas traced"
        return f"at beta_0 = {self.onset_beta:.6g} ({kind})"

    def summary(self) -> dict:
        """The curve's facts as plain JSON values (bits): I(X;Y), H(Y), the onset and how it
        was found, completeness, the cluster cap, the accuracy and the transitions (each as
        :meth:`Transition.summary`). A NaN or infinite number, e.g. an onset not known, is
        None: strict JSON has neither."""
        return json_safe({
            "alpha": self.alpha, "i_xy": self.i_xy, "h_y": self.h_y,
            "first_instability": self.first_instability,
            "onset_beta": self.onset_beta, "onset_kind": self.onset_kind,
            "onset_bracket": self.onset_bracket,
            "onset_beta_s_star": self.onset_beta_s_star,
            "onset_agrees_with_s_star": self.onset_agrees_with_s_star,
            "deterministic": self.deterministic,
            "complete": self.complete, "untraced": self.untraced,
            "capped": self.capped, "max_clusters": self.max_clusters,
            "accuracy": self.accuracy,
            "transitions": [t.summary() for t in self.transitions],
            "all_transitions": [t.summary() for t in self.all_transitions]})

    def _columns(self) -> dict:
        """One row per beta of the curve."""
        return {k: getattr(self, k) for k in _CURVE_COLUMNS}

    def _payload(self) -> tuple[dict, dict]:
        """The per-beta table, the envelope, every branch point with its decoder state and
        the encoders as arrays; the rest (transitions, settings) as JSON."""
        arrays: dict[str, Any] = {k: np.asarray(getattr(self, k)) for k in _CURVE_ARRAYS}
        arrays["branch"] = self.branch.astype(str)
        for name, br in self.branches.items():
            arrays.update(_branch_arrays(name, br))
        if self.encoders is not None:
            arrays["encoders"], arrays["encoders_width"] = _ragged(self.encoders)
        meta = {k: getattr(self, k) for k in _CURVE_META}
        meta["onset_bracket"] = self.onset_bracket
        meta["settings"] = self.settings  # (arrays and numpy scalars: _json_scalar)
        meta["branches"] = list(self.branches)
        meta["transitions"] = [t._record() for t in self.transitions]
        meta["all_transitions"] = [t._record() for t in self.all_transitions]
        return meta, arrays

    @classmethod
    def _from_payload(cls, meta: dict, arrays: dict) -> IBCurve:
        if meta["format"] == 1:  # (IBCurve.to_npz kept six of the numbers as arrays)
            meta = {**meta, **dict(zip(_FORMAT1_SCALARS, arrays["scalars"].tolist())),
                    "alpha": float(arrays["alpha"])}
        return cls(
            **{k: arrays[k] for k in _CURVE_ARRAYS}, branch=arrays["branch"],
            transitions=tuple(Transition._from_record(t) for t in meta["transitions"]),
            all_transitions=tuple(Transition._from_record(t) for t in meta["all_transitions"]),
            branches={name: _branch_from_arrays(name, arrays) for name in meta["branches"]},
            encoders=(_unragged(arrays["encoders"], arrays["encoders_width"])
                      if "encoders" in arrays else None),
            onset_bracket=(None if meta["onset_bracket"] is None
                           else tuple(meta["onset_bracket"])),
            settings={k: (np.array(v) if k == "grid" else v)
                      for k, v in meta["settings"].items()},
            **{k: meta[k] for k in _CURVE_META})


#: per-beta arrays of IBCurve, saved under their own names
_CURVE_ARRAYS = ("beta", "i_xt", "i_ty", "h_t", "lagrangian", "n_clusters", "n_iter",
                 "converged", "envelope_i_xt", "envelope_i_ty")
#: the columns of IBCurve.to_dataframe
_CURVE_COLUMNS = ("beta", "i_xt", "i_ty", "h_t", "lagrangian", "n_clusters", "n_iter",
                  "converged", "branch")
#: IBCurve fields that are plain JSON values
_CURVE_META = ("i_xy", "h_y", "first_instability", "onset_beta", "onset_beta_s_star",
               "alpha", "deterministic", "complete", "accuracy", "capped", "max_clusters",
               "table_digest")
#: the numbers that a format-1 file holds in its array "scalars", in order
_FORMAT1_SCALARS = ("i_xy", "h_y", "first_instability", "onset_beta", "onset_beta_s_star")
#: the IBResult numbers of its summary and its table
_RESULT_SUMMARY = ("beta", "alpha", "i_xt", "i_ty", "h_t", "lagrangian", "n_clusters",
                   "n_iter", "converged", "residual", "backend")
#: per-point IBResult fields a branch saves as one array each
_RESULT_SCALARS = ("beta", "i_xt", "i_ty", "h_t", "lagrangian", "alpha", "n_iter",
                   "converged", "residual")


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON values: numpy scalars and arrays as Python numbers and
    lists, tuples as lists, and every NaN or infinite float (at any depth) as None."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_scalar(value):
    """numpy scalars and arrays for json.dumps."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot save a {type(value).__name__} in a result file")


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
