"""What this installation of ibsolver was built with."""
from __future__ import annotations

import importlib.util
import os


def config() -> dict:
    """Machine-readable build and runtime configuration."""
    from .backends import _errors, available_backends

    backends = available_backends()
    info: dict[str, object] = {"backends": backends, "auto_backend": backends[0]}
    try:
        from . import _core
        info["cpp_extension"] = True
        info["openmp"] = bool(_core.has_openmp())
        info["cpp_threads"] = int(_core.max_threads())
        info["cpp_simd"] = str(_core.simd_target())
    except ImportError as exc:
        info["cpp_extension"] = False
        info["cpp_error"] = str(exc)
    if "numba" in backends:
        import numba
        info["numba"] = numba.__version__
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    else:
        info["numba"] = None
        if "numba" in _errors:
            info["numba_error"] = str(_errors["numba"])
    info["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS")
    info["cpu_count"] = os.cpu_count()
    info["torch"] = None
    if importlib.util.find_spec("torch") is not None:  # report only; never import torch here
        try:
            from importlib.metadata import version
            info["torch"] = version("torch")
        except Exception:  # noqa: BLE001 - metadata may be missing for a source checkout
            info["torch"] = "installed"
    return info


def show_config() -> None:
    """Print which backends are built and available (C++ extension, OpenMP, numba, torch)."""
    from . import __version__

    info = config()
    print(f"ibsolver {__version__}")
    if info["cpp_extension"]:
        print(f"  C++ extension : built (OpenMP: {'yes' if info['openmp'] else 'no'}, "
              f"threads: {info['cpp_threads']}, SIMD: {info['cpp_simd']})")
    else:
        print(f"  C++ extension : NOT built ({info['cpp_error']}); running without it")
    print(f"  numba         : {info['numba'] or 'not installed (pip install numba)'}")
    print(f"  torch         : {info['torch'] or 'not installed (pip install ibsolver[dnn])'}")
    print(f"  backends      : {', '.join(info['backends'])} (auto -> {info['auto_backend']})")
    print(f"  cpu cores     : {info['cpu_count']}  OMP_NUM_THREADS={info['OMP_NUM_THREADS']}")
