"""Score any encoder p(t|x) against the IB bound."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import _validation as v
from .measures import _encoder_information
from .results import IBCurve, Result, json_safe


@dataclass(frozen=True)
class EncoderScore(Result):
    """Where an encoder sits relative to the IB curve. Information in bits.

    ``summary()`` gives the numbers (and ``above_bound``) as plain JSON values,
    ``to_dataframe()`` as a one-row table, ``save``/``load`` the whole score.

    Attributes
    ----------
    gap : bound(I(X;T)) - I(T;Y), the vertical distance below the curve: the relevant
        information the encoder leaves out at its complexity (negative means the encoder
        is above the computed curve, which proves the curve sub-optimal there).
    epsilon : the deviation in the Lagrangian at the fitted beta, min over beta of
        F_beta(q) - F*_beta with F_beta = I(X;T) - beta I(T;Y) (bits; Zaslavsky et al.
        2018 divide it by beta, which on a concave curve gives back ``gap``). On the curve
        it is the horizontal distance to it: the I(X;T) the encoder spends beyond the
        least any encoder needs for its I(T;Y). 0 on the curve, negative left of it.
    beta_fit : the beta attaining that minimum: the curve's slope is 1/beta_fit where it
        reaches the encoder's I(T;Y) (the geometric middle of the betas that do, where
        several do: at a computed point, those of the pieces on either side).
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

    def summary(self) -> dict:
        """Every field and ``above_bound`` as plain JSON values (bits; NaN as None)."""
        return json_safe({k: getattr(self, k) for k in _SUMMARY})

    def _columns(self) -> dict:
        """One row: the numbers of :meth:`summary`."""
        return {k: [getattr(self, k)] for k in _SUMMARY}


#: the numbers of EncoderScore's summary and its table
_SUMMARY = ("i_xt", "i_ty", "h_t", "bound", "gap", "epsilon", "beta_fit", "tolerance",
            "above_bound")


def _epsilon(i_xt, i_ty, env_x, env_y) -> tuple:
    """(min over beta of D(beta), its beta) for D(beta) = F_beta(q) - F*_beta, where
    F*_beta = min_v (x_v - beta y_v) over the envelope's vertices (exact for the
    piecewise-linear envelope). D is convex and piecewise linear in beta, so its minimum
    is at beta = 0 or at the inverse slope of one of the envelope's pieces."""
    env_x, env_y = np.asarray(env_x), np.asarray(env_y)
    slopes = np.diff(env_y) / np.diff(env_x)
    betas = np.concatenate([[0.0], 1.0 / slopes[slopes > 0]])

    def deviation(beta):
        return float(np.max((i_xt - env_x) - beta * (i_ty - env_y)))

    values = np.array([deviation(b) for b in betas])
    low = values.min()
    ties = betas[values <= low + 1e-12 * max(1.0, abs(low))]
    fit = float(np.sqrt(ties.min() * ties.max())) if ties.min() > 0 else float(ties.max())
    return float(low), fit


def score_encoder(p_xy: ArrayLike, encoder: ArrayLike, curve: IBCurve | None = None) -> EncoderScore:
    """I(X;T), I(T;Y), the gap to the IB curve and the deviation from optimality of an encoder.

    ``encoder`` is any (n_x, n_t) row-stochastic p(t|x) (a binned network layer is one), its
    rows in the order of ``p_xy``'s rows, as every encoder ibsolver returns is.
    ``curve`` is an :class:`ibsolver.IBCurve` of the same p_xy; computed if None.
    """
    from .curve import ib_curve

    p_xy = v.check_joint(p_xy)
    q = v.check_encoder(encoder, n_x=p_xy.shape[0])
    if curve is None:
        curve = ib_curve(p_xy)
    info = _encoder_information(p_xy, q)
    bound = float(curve.bound(info["i_xt"]))
    epsilon, beta_fit = _epsilon(info["i_xt"], info["i_ty"], curve.envelope_i_xt,
                                 curve.envelope_i_ty)
    return EncoderScore(i_xt=info["i_xt"], i_ty=info["i_ty"], h_t=info["h_t"], bound=bound,
                        gap=bound - info["i_ty"], epsilon=epsilon, beta_fit=beta_fit,
                        tolerance=float(curve.accuracy))
