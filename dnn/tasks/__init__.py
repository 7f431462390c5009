"""Tasks with inputs, labels and (when finite) the exact joint p(x, y)."""
from .base import Task
from .checkerboard import checkerboard
from .digits import digits
from .tishby12 import load_var_u, tishby12

__all__ = ["Task", "checkerboard", "digits", "load_var_u", "tishby12"]
