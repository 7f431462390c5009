"""ibsolver: exact Information Bottleneck curves for discrete distributions.

All information quantities a user sees are in bits.
"""
from __future__ import annotations

import logging

from ._config import show_config
from .backends import available_backends
from .exceptions import BackendUnavailableError, ConvergenceWarning
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
from .results import IBResult
from .solve import solve

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BackendUnavailableError", "ConvergenceWarning", "IBResult", "available_backends",
    "conditional_entropy", "encoder_information", "entropy", "joint_from_counts",
    "joint_from_samples", "kl_divergence", "maximal_correlation", "mutual_information",
    "show_config", "solve",
]
