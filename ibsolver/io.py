"""Reading joint-distribution tables from files (.npy, .npz, .csv)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ._validation import check_joint


def load_joint(path, *, counts: bool | None = None) -> np.ndarray:
    """Load p(x, y) (rows x, columns y) from .npy, .npz (key ``p_xy`` or ``counts``, or the
    only array) or .csv (comma separated, no header).

    ``counts=None`` treats a table of non-negative integers that does not sum to 1 as
    counts and normalises it; ``counts=True`` always normalises; ``counts=False`` requires
    a table summing to 1.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        table = np.load(path, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            key = next((k for k in ("p_xy", "counts") if k in keys), None)
            if key is None and len(keys) == 1:
                key = keys[0]
            if key is None:
                raise ValueError(f"{path.name}: .npz must hold 'p_xy', 'counts' or a single array "
                                 f"(found {keys})")
            table = data[key]
            counts = True if key == "counts" and counts is None else counts
    elif suffix in (".csv", ".txt"):
        try:
            table = np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{path.name}: could not read a numeric comma-separated table ({exc})") from exc
    else:
        raise ValueError(f"input must be a .npy, .npz or .csv file (got {path.name!r})")
    table = np.asarray(table)
    if counts is None:
        whole = np.issubdtype(table.dtype, np.integer) or (
            np.issubdtype(table.dtype, np.floating) and np.all(np.isfinite(table))
            and np.all(table == np.round(table)))
        counts = bool(whole and abs(float(np.sum(table)) - 1.0) > 1e-9)
    return check_joint(table, name=f"table in {path.name}", normalize=counts)
