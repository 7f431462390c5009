"""Networks in the information plane: tasks, training, recording and estimators (torch).

Needs the ``dnn`` extra (``pip install 'ibsolver[dnn]'``). Imports ``ibsolver`` for the
bound; ``ibsolver`` never imports this package. The public entry points below load torch
only when first used, so the command-line modules import without it:

* :func:`record_training` -- any ``nn.Module`` and data, its layers recorded over training;
* :class:`Recording` -- what it returns (bits), with ``save``/``load``;
* :func:`joint_from_labels` -- the probe's p(x, y) from input ids and labels;
* :func:`record_sweep` -- trainings over a grid of settings and seeds, in worker processes
  or on a Dask cluster (:class:`RecordingSweep`).
"""
import importlib

_PUBLIC = {"record_training": "dnn.loop", "Recording": "dnn.recording",
           "joint_from_labels": "dnn.estimators", "record_sweep": "dnn.sweep",
           "RecordingSweep": "dnn.sweep"}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'dnn' has no attribute {name!r}")
