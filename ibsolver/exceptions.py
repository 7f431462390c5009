"""Warnings and errors raised by ibsolver."""


class ConvergenceWarning(UserWarning):
    """An iterative solve stopped before reaching its tolerance; the message names the knob."""


class OptimalityWarning(UserWarning):
    """Two quantities that must agree at the optimum do not; the message names both."""


class BackendUnavailableError(ImportError):
    """The requested backend is not installed or not built; the message gives the install hint."""
