"""Reading joint-distribution tables from files (.npy, .npz, .csv); writing result files
whole."""
from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse

from ._validation import _checked_joint

if TYPE_CHECKING:  # (results imports this module)
    from .results import IBCurve

logger = logging.getLogger(__name__)

#: file formats load_joint reads, by suffix
FORMATS = (".npy", ".npz", ".csv")
#: keys of an .npz that hold the table; "arr_0" is what np.savez(file, table) writes
NPZ_KEYS = ("p_xy", "counts", "arr_0")


def read_table(path: str | os.PathLike[str]) -> tuple[np.ndarray | scipy.sparse.spmatrix, bool]:
    """(the raw numeric table in ``path``, whether an .npz stored it as ``counts``); a
    ``scipy.sparse.save_npz`` file gives a sparse matrix.

    Raises FileNotFoundError or ValueError naming the file and what was wrong with it.
    """
    path = Path(path)
    shown = repr(str(path))
    if not path.exists():
        raise FileNotFoundError(f"input file {shown} does not exist")
    if not path.is_file():
        raise ValueError(f"input file {shown} is not a regular file")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"input file {shown} has an unknown format {path.suffix!r}: it must be "
                         f"one of {', '.join(FORMATS)}")
    if path.stat().st_size == 0:
        raise ValueError(f"input file {shown} is empty (0 bytes)")
    from_counts = False
    try:
        if suffix == ".npy":
            table = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                keys = list(data.keys())
                if {"format", "shape", "data"} <= set(keys):  # scipy.sparse.save_npz
                    # (counts or not is told as for any table: whole numbers not summing to 1)
                    return scipy.sparse.load_npz(path), False
                key = next((k for k in ("p_xy", "counts") if k in keys), None)
                if key is None and keys == ["arr_0"]:
                    key = "arr_0"
                if key is None:
                    raise ValueError(f"input file {shown} must hold an array named 'p_xy' or "
                                     f"'counts' (or a single unnamed array, 'arr_0'); found "
                                     f"{keys}")
                table = data[key]
                from_counts = key == "counts"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                table = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as exc:
        if str(exc).startswith("input file"):
            raise
        raise ValueError(f"input file {shown}: could not read a numeric {suffix} table "
                         f"({exc})") from exc
    except (EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"input file {shown}: could not read a {suffix} file "
                         f"({str(exc) or type(exc).__name__})") from exc
    table = np.asarray(table)
    if table.size == 0:
        raise ValueError(f"input file {shown} holds no numbers (got an array of shape "
                         f"{table.shape})")
    return table, from_counts


def load_joint(path: str | os.PathLike[str], *, counts: bool | None = None, normalize: bool = False,
               drop_empty: bool = True, normalize_hint: str | None = None
               ) -> np.ndarray | scipy.sparse.csr_matrix:
    """Load p(x, y) (rows x, columns y) from .npy, .npz (a ``scipy.sparse.save_npz`` file, an
    array named ``p_xy`` or ``counts``, or a single unnamed array ``arr_0``) or .csv (comma
    separated, no header).

    ``counts=None`` treats a table of non-negative integers that does not sum to 1 as
    counts and normalises it (an .npz key ``counts`` too); ``counts=True`` or
    ``normalize=True`` always normalises; otherwise the table must sum to 1 within float32
    rounding (relative 1e-6; such a table is renormalised exactly). With ``drop_empty``
    (the default) all-zero rows and columns (probability 0) are dropped and logged at info
    level. A table left with one row or one column is fine: its IB is trivial (I(X;Y) = 0,
    one cluster), as ``ib_curve`` and ``solve`` return it. A ``save_npz`` table is returned
    as a CSR matrix (never made dense here: ``ib_curve`` and ``solve`` take it as it is).
    """
    return _load(path, counts=counts, normalize=normalize, drop_empty=drop_empty,
                 normalize_hint=normalize_hint)[0]


def _load(path, *, counts=None, normalize=False, drop_empty=True, normalize_hint=None):
    """(p_xy, kept row indices, kept column indices): load_joint with the indices of the
    rows and columns kept from the file's table."""
    path = Path(path)
    table, from_counts = read_table(path)
    if counts is None:
        values = table.data if scipy.sparse.issparse(table) else table
        whole = np.issubdtype(values.dtype, np.integer) or (
            np.issubdtype(values.dtype, np.floating) and np.all(np.isfinite(values))
            and np.all(values == np.round(values)))
        counts = from_counts or bool(whole and abs(float(np.sum(values)) - 1.0) > 1e-9)
    p_xy, rows, cols = _checked_joint(
        table, name=f"table in {path.name}", normalize=bool(counts or normalize),
        drop_empty=drop_empty, normalize_hint=normalize_hint or "pass normalize=True to rescale",
        keep_sparse=True)
    return p_xy, np.flatnonzero(rows), np.flatnonzero(cols)


def output_folder(out: str | os.PathLike[str], arg: str = "out") -> Path:
    """The folder ``out``, created, and checked to take files before any work is done: the
    one check of every output folder (``ibsolver`` and ``dnn`` commands and sweeps). A
    ValueError names ``arg`` (the argument or flag) and the value."""
    out = Path(out)
    shown = repr(str(out))
    if out.exists() and not out.is_dir():
        raise ValueError(f"{arg} {shown} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{arg} {shown}: cannot create the folder ({exc.strerror or exc})") from exc
    probe_writable(out, out, arg)
    return out


def probe_writable(folder: Path, out: Path, arg: str) -> None:
    """Raise a ValueError naming ``arg`` and ``out`` unless a file can be created in
    ``folder``."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"{arg} {str(out)!r}: cannot write in folder {str(folder)!r} "
                         f"({exc.strerror or exc})") from exc


def write_whole(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then moved onto ``path``, so that
    an interruption while writing leaves the previous file whole (the temporary is removed
    whatever happens)."""
    if not path.parent.is_dir():  # (else the error would name the temporary file)
        what = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise FileNotFoundError(f"cannot write {str(path)!r}: its folder "
                                f"{str(path.parent)!r} {what}")
    # (same suffix, so that each writer picks its format; created with the umask's mode)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def transitions_json(curve: IBCurve) -> str:
    """``curve.summary()`` as the JSON text the CLI prints and the result files
    hold."""
    return json.dumps(curve.summary(), indent=2)
