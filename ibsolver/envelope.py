"""Upper concave envelope of achievable (I(X;T), I(T;Y)) points, and interpolation on it."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def upper_concave_envelope(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the upper concave hull of the points, left to right, non-decreasing.

    Points are sorted by x; the hull is the least concave majorant, then flattened where
    it would decrease (the IB curve is non-decreasing: more I(X;T) never hurts).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    order = np.lexsort((-y, x))
    x, y = x[order], y[order]
    hull: list[int] = []
    for i in range(x.size):
        if hull and x[hull[-1]] == x[i]:
            continue  # same x, lower or equal y (sorted by -y within equal x)
        while len(hull) >= 2:
            i0, i1 = hull[-2], hull[-1]
            # drop i1 if it lies on or below the chord i0 -> i
            cross = (x[i1] - x[i0]) * (y[i] - y[i0]) - (y[i1] - y[i0]) * (x[i] - x[i0])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    hx, hy = x[hull], y[hull]
    top = int(np.argmax(hy))  # beyond the maximum the majorant is flat
    return hx[: top + 1], hy[: top + 1]


def interpolate_envelope(hx: np.ndarray, hy: np.ndarray, r: ArrayLike) -> float | np.ndarray:
    """Piecewise-linear interpolation on hull vertices; flat at the maximum beyond the last."""
    r = np.asarray(r, dtype=np.float64)
    if np.any(r < 0) or not np.all(np.isfinite(r)):
        raise ValueError("i_xt must be finite and non-negative (bits)")
    return np.interp(r, hx, hy, left=hy[0], right=hy[-1])
