"""Types of ibsolver's compiled kernel (csrc/bindings.cpp); private, used by
ibsolver.backends.cpp_backend.

Array arguments take anything numpy converts to float64 (any dtype or memory layout: the
binding copies to C-contiguous float64); returned arrays are new float64 arrays. Kernel
errors raise FloatingPointError, bad shapes or parameters ValueError.

``p_y_given_x`` is a dense (n, m) array (the kernel visits its positive entries) or a
scipy.sparse CSR matrix whose stored entries are all positive and finite, with sorted
column indices (the kernel visits those; the cost per iteration is then about
nnz * clusters).
"""
import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike, NDArray

Rows = ArrayLike | scipy.sparse.csr_matrix | scipy.sparse.csr_array

def run_iterations(
    p_x: ArrayLike,
    p_y_given_x: Rows,
    log_p_t: ArrayLike,
    log_p_y_given_t: ArrayLike,
    beta: float,
    alpha: float,
    max_iter: int,
    tol: float,
    n_threads: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], int, float, NDArray[np.float64]]:
    """Iterate from the given state: (log_p_t, log_p_y_given_t, n_iter, residual, history)."""

def run_squarem(
    p_x: ArrayLike,
    p_y_given_x: Rows,
    log_p_t: ArrayLike,
    log_p_y_given_t: ArrayLike,
    beta: float,
    alpha: float,
    max_iter: int,
    tol: float,
    n_threads: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], int, float, NDArray[np.float64]]:
    """run_iterations accelerated by SQUAREM: n_iter counts map evaluations, history holds
    the Lagrangian of the points kept."""

def encoder(
    p_y_given_x: Rows,
    log_p_t: ArrayLike,
    log_p_y_given_t: ArrayLike,
    beta: float,
    alpha: float,
    n_threads: int | None = None,
) -> NDArray[np.float64]:
    """The encoder q(t|x), shape (n, k), that one iteration builds from the state."""

def ba_jacobian(
    p_x: ArrayLike,
    p_y_given_x: ArrayLike,
    theta: ArrayLike,
    beta: float,
    alpha: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(log R, J): the BA map in joint log coordinates, shape (k, m), and its Jacobian (km, km)."""

def has_openmp() -> bool:
    """Whether the kernel was built with OpenMP."""

def max_threads() -> int:
    """Threads used when n_threads is None (respects OMP_NUM_THREADS)."""

def simd_target() -> str:
    """Instruction set the hot loops run with (IBSOLVER_SIMD may name a lower one)."""

def simd_targets() -> list[str]:
    """Instruction sets this CPU supports for the hot loops, best first."""

def _exp2(x: ArrayLike) -> NDArray[np.float64]:
    """2^x with the kernel's vectorised exp2 (x <= 900); for tests only."""

def _log(x: ArrayLike) -> NDArray[np.float64]:
    """log(x) with the kernel's vectorised log (x >= 0); for tests only."""

def _exp(x: ArrayLike) -> NDArray[np.float64]:
    """e^x with the kernel's vectorised exp (x <= 600); for tests only."""

def _set_simd_target(name: str) -> None:
    """Force an instruction set for the hot loops ('best' restores); for tests only."""
