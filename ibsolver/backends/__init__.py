"""Backend registry: the same fused BA kernel in C++, numba and numpy.

Every backend module exposes ``NAME``, ``READS_CSR`` (whether its ``run_iterations`` and
``encoder`` also take p(y|x) as a scipy CSR matrix), ``run_iterations`` (returning
:class:`Iterated`) and ``encoder`` with the signatures and semantics documented in
:mod:`ibsolver.backends.numpy_backend`.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple

import numpy as np

from ..exceptions import BackendUnavailableError

#: fastest first; "auto" takes the first one that imports
ORDER = ("cpp", "numba", "numpy")

_MODULES = {
    "cpp": "ibsolver.backends.cpp_backend",
    "numba": "ibsolver.backends.numba_backend",
    "numpy": "ibsolver.backends.numpy_backend",
}

_HINTS = {
    "cpp": "the C++ extension ibsolver._core was not built; reinstall with a C++17 compiler "
           "available (`pip install --force-reinstall --no-cache-dir ibsolver`)",
    "numba": "numba is not installed; `pip install 'ibsolver[numba]'` (or `pip install numba`)",
    "numpy": "numpy is missing",
}

class Iterated(NamedTuple):
    """What a run of BA map evaluations returns: every backend's ``run_iterations``, and
    SQUAREM and Newton on top of them (Newton adds whether it met a saddle)."""

    log_p_t: np.ndarray          #: the state reached: log p(t), shape (k,)
    log_p_y_given_t: np.ndarray  #: and log p(y|t), shape (k, m); -inf where p(y|t) = 0
    n_iter: int                  #: map evaluations done
    residual: float              #: max |change in p(t, y)| of the last evaluation
    history: np.ndarray          #: the kernel's objective (nats) after each kept evaluation


_loaded: dict = {}
_errors: dict = {}


def _load(name: str):
    if name not in _loaded and name not in _errors:
        try:
            _loaded[name] = importlib.import_module(_MODULES[name])
        except ImportError as exc:  # missing extension or optional dependency
            _errors[name] = exc
    return _loaded.get(name)


def available_backends() -> list[str]:
    """Names of the backends that import on this machine, fastest first."""
    return [name for name in ORDER if _load(name) is not None]


def get_backend(name: str = "auto") -> ModuleType:
    """The backend module for ``name`` ("auto", "cpp", "numba" or "numpy")."""
    if name == "auto":
        for candidate in ORDER:
            module = _load(candidate)
            if module is not None:
                return module
        raise BackendUnavailableError("no backend could be imported")  # numpy always can
    if name not in _MODULES:
        raise ValueError(f"backend must be one of {['auto', *ORDER]} (got {name!r})")
    module = _load(name)
    if module is None:
        raise BackendUnavailableError(
            f"backend {name!r} is not available: {_HINTS[name]} (import error: {_errors[name]})"
        )
    return module
