"""Result objects returned by the solvers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
