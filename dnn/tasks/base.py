"""The task record shared by every task: inputs, labels and, when known, the true p(x, y)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Task:
    """A supervised task with a finite (or sampled) input set.

    Attributes
    ----------
    name : short identifier used in file names and figure titles.
    x : (n, d) float32 array, the inputs (one row per input pattern or sample).
    labels : (n,) int64 array, the label used for training.
    n_classes : number of label values.
    p_x : (n,) array or None, the probability of each input row (uniform for a finite
        pattern set); None when rows are i.i.d. samples with no table.
    p_y_given_x : (n, n_classes) array or None, the true conditional of the label given each
        row; then ``p_xy`` is the exact joint the IB bound is computed for.
    extra_labels : other label sets for the same rows (e.g. {"fine": digit}), each (n,) int.
    """

    name: str
    x: np.ndarray
    labels: np.ndarray
    n_classes: int
    p_x: np.ndarray | None = None
    p_y_given_x: np.ndarray | None = None
    extra_labels: dict = field(default_factory=dict)

    @property
    def p_xy(self) -> np.ndarray:
        """The joint p(x, y), shape (n, n_classes); raises if the task has no exact table."""
        if self.p_x is None or self.p_y_given_x is None:
            raise ValueError(f"task {self.name!r} has no exact p(x, y) (sampled inputs)")
        return self.p_x[:, None] * self.p_y_given_x

    @property
    def n(self) -> int:
        return int(self.x.shape[0])
