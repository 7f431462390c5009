"""Shared fixtures: problems with known answers and a fixture over every built backend."""
import sys

import numpy as np
import pytest

import ibsolver


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny torch networks run on one thread: on a busy 2-core machine two threads were
    10-100x slower. Acts only where torch is already imported (the dnn tests); module scope
    so it is in place before the modules' own module-scoped fixtures."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(params=ibsolver.available_backends())
def backend(request):
    """Each backend that is built on this machine (cpp, numba, numpy)."""
    return request.param


def dsbs(eps):
    """Doubly symmetric binary source: X uniform, Y = X through a BSC(eps)."""
    return np.array([[1 - eps, eps], [eps, 1 - eps]]) / 2


def h2(p):
    p = np.clip(p, 1e-300, 1 - 1e-16)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def h2_inverse(v):
    """The inverse of the binary entropy on [0, 1/2]."""
    from scipy.optimize import brentq
    if v <= 0:
        return 0.0
    if v >= 1:
        return 0.5
    return brentq(lambda d: h2(d) - v, 1e-300, 0.5, xtol=1e-15)


def gerber(i_x, eps):
    """Mrs Gerber's lemma: the DSBS(eps) IB curve, I_Y = 1 - h(eps * h^-1(1 - I_X))."""
    d = h2_inverse(1 - i_x)
    return 1 - h2(eps * (1 - d) + d * (1 - eps))


def birth_problem():
    """docs/theory.rst's 8x3 example: its optimum leaves zero by a birth before 1/s2^2."""
    return np.random.default_rng(1).dirichlet(np.ones(24)).reshape(8, 3)
