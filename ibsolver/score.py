"""Score any encoder p(t|x) against the IB bound."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from . import _validation as v
from .measures import _encoder_information


@dataclass(frozen=True)
class EncoderScore:
    """Where an encoder sits relative to the IB curve. Information in bits.

    Attributes
    ----------
    gap : bound(I(X;T)) - I(T;Y), the vertical distance below the curve (negative means the
        encoder is above the computed curve, which proves the curve sub-optimal there).
    epsilon : deviation from optimality min_beta [F_beta(q) - F*_beta] / beta with
        F_beta = I(X;T) - beta I(T;Y) (Zaslavsky et al. 2018); 0 on the curve.
    beta_fit : the beta attaining that minimum.
    tolerance : the curve's stated accuracy (:attr:`ibsolver.IBCurve.accuracy`): how far
        the true curve may lie above the computed one between its points.
    """

    i_xt: float
    i_ty: float
    h_t: float
    bound: float
    gap: float
    epsilon: float
    beta_fit: float
    tolerance: float = 0.0

    @property
    def above_bound(self) -> bool:
        """True when the encoder beats the computed curve by more than its accuracy (and
        round-off, 1e-9 bit): then the curve is provably sub-optimal there."""
        return self.gap < -max(self.tolerance, 1e-9)


def _epsilon(i_xt, i_ty, env_x, env_y):
    """min over beta of max_v [(i_xt - x_v) / beta + y_v - i_ty]: the envelope's Legendre
    transform gives F*_beta = min_v (x_v - beta y_v) exactly."""
    def eps(log_beta):
        b = np.exp(log_beta)
        return float(np.max((i_xt - env_x) / b + env_y) - i_ty)

    grid = np.linspace(np.log(1e-3), np.log(1e7), 400)
    vals = np.array([eps(g) for g in grid])
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(eps, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    if res.fun <= vals[i]:
        return float(res.fun), float(np.exp(res.x))
    return float(vals[i]), float(np.exp(grid[i]))


def score_encoder(p_xy, encoder, curve=None) -> EncoderScore:
    """I(X;T), I(T;Y), the gap to the IB curve and the deviation from optimality of an encoder.

    ``encoder`` is any (n_x, n_t) row-stochastic p(t|x) (a binned network layer is one).
    ``curve`` is an :class:`ibsolver.IBCurve` of the same p_xy; computed if None.
    """
    from .curve import ib_curve

    p_xy = v.check_joint(p_xy)
    q = v.check_encoder(encoder, n_x=p_xy.shape[0])
    if curve is None:
        curve = ib_curve(p_xy)
    info = _encoder_information(p_xy, q)
    bound = curve.bound(info["i_xt"])
    epsilon, beta_fit = _epsilon(info["i_xt"], info["i_ty"], curve.envelope_i_xt,
                                 curve.envelope_i_ty)
    return EncoderScore(i_xt=info["i_xt"], i_ty=info["i_ty"], h_t=info["h_t"], bound=bound,
                        gap=bound - info["i_ty"], epsilon=epsilon, beta_fit=beta_fit,
                        tolerance=float(curve.accuracy))
