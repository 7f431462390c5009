"""ibsolver: exact Information Bottleneck curves for discrete distributions.

All information quantities a user sees are in bits.
"""
from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from ._config import show_config
from .backends import available_backends
from .exceptions import BackendUnavailableError, ConvergenceWarning, OptimalityWarning
from .measures import (
    conditional_entropy,
    encoder_information,
    entropy,
    joint_from_counts,
    joint_from_samples,
    kl_divergence,
    maximal_correlation,
    mutual_information,
)
from .bifurcation import first_instability, hypercontractivity
from .curve import ib_curve, phase_transitions
from .deterministic import is_deterministic, solve_squared_ib
from .gaussian import GaussianIB, discretize_gaussian, gaussian_ib
from .results import IBCurve, IBResult, Transition
from .score import EncoderScore, score_encoder
from .solve import solve
from .sweep import SweepFailure, ib_curves

try:  # the version lives in pyproject.toml only
    __version__ = version("ibsolver")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BackendUnavailableError", "ConvergenceWarning", "EncoderScore", "GaussianIB", "IBCurve",
    "IBResult", "OptimalityWarning", "Transition", "available_backends", "conditional_entropy", "discretize_gaussian",
    "encoder_information", "entropy", "first_instability", "gaussian_ib", "hypercontractivity",
    "ib_curve", "is_deterministic", "joint_from_counts", "joint_from_samples", "kl_divergence",
    "maximal_correlation", "mutual_information", "phase_transitions", "score_encoder",
    "show_config", "solve", "solve_squared_ib", "SweepFailure", "ib_curves",
]
