"""Shared fixtures: problems with known answers and a fixture over every built backend;
a header line saying which ibsolver and backends run, and a warning where C++ did not."""
import sys

import numpy as np
import pytest

import ibsolver


def _cpp_missing():
    """Why the C++ backend cannot run here, or None where it can."""
    if "cpp" in ibsolver.available_backends():
        return None
    from ibsolver._config import config
    return config().get("cpp_error", "not available")


def pytest_report_header(config):
    """Which ibsolver is tested and with which backends: an editable install of another
    checkout, or a build without the C++ extension, shows here first."""
    missing = _cpp_missing()
    if missing:
        cpp = "C++ extension: NOT built, its tests are skipped"
    else:
        from ibsolver import _core
        cpp = f"C++ extension: {_core.__file__}"
    return (f"ibsolver {ibsolver.__version__} from {ibsolver.__file__}; backends: "
            f"{', '.join(ibsolver.available_backends())}; {cpp}")


def pytest_terminal_summary(terminalreporter):
    """Outside CI (where test_extension_is_built_in_ci fails instead) a run without the C++
    backend passes with its tests skipped: say so where the result is read."""
    missing = _cpp_missing()
    if missing:
        terminalreporter.write_sep("=", "the C++ backend did not run", yellow=True, bold=True)
        terminalreporter.write_line(f"ibsolver._core could not be imported ({missing}): the cpp "
                                    "tests were skipped and backend='auto' ran numba or numpy. "
                                    "Build it with `pip install .` (a C++17 compiler).")


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


def run_cli(argv, capsys):
    """(exit status, stdout, stderr) of `ibsolver ARGV` run in this process."""
    from ibsolver.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
