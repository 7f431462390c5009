"""One BLAS thread for the solver's dense algebra.

Its matrices are small (Newton's Jacobian is at most 600 x 600; the eigen-analyses are
|Y| x |Y|), and a threaded BLAS loses on them: on a 16-core machine a 64 x 8 curve took
3.85 s with OpenBLAS's default threads and 1.11 s with one.
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _controller():
    try:  # a dependency, but the solver still runs (BLAS threads untouched) without it
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def single_threaded_blas(func):
    """Run ``func`` with BLAS limited to one thread (restored afterwards)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        controller = _controller()
        if controller is None:
            return func(*args, **kwargs)
        with controller.limit(limits=1, user_api="blas"):
            return func(*args, **kwargs)
    return wrapper


__all__ = ["single_threaded_blas"]
