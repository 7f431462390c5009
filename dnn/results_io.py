"""Frozen results to and from one ``.npz`` file: arrays as arrays, the rest as JSON.

:func:`save_result` writes any nesting of dataclasses, dicts, tuples, lists, numpy arrays
and plain values (a :class:`dnn.recording.Recording`, a recipe's tuple of results, an
``ibsolver.IBCurve``); :func:`load_result` rebuilds it. No pickle: only dataclasses defined
in ``dnn`` or ``ibsolver`` are rebuilt, from their fields.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os

import numpy as np

FORMAT = "dnn.result/1"
_TRUSTED = ("dnn", "ibsolver")


def _join(key: str, part: str) -> str:
    return f"{key}/{part}" if key else part


def _encode(value, arrays: dict, key: str):
    """A JSON tree for ``value``; its arrays go into ``arrays`` under readable paths
    (``info/binning/i_xt``: field names and string keys, else positions)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"dataclass": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _encode(getattr(value, f.name), arrays, _join(key, f.name))
                           for f in dataclasses.fields(value) if f.init}}
    if isinstance(value, np.ndarray):
        name = key or "array"
        while name in arrays or name == "__meta__":  # a path taken already
            name += "_"
        arrays[name] = value
        return {"array": name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {"dict": [[_encode(k, arrays, _join(key, f"key{i}")),
                          _encode(v, arrays, _join(key, k if isinstance(k, str) else str(i)))]
                         for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, (tuple, list)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [_encode(v, arrays, _join(key, str(i))) for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} at {key or 'the top'} "
                    "(dataclasses, dicts, sequences, numpy arrays and plain values only)")


def _decode(node, arrays: dict):
    if not isinstance(node, dict):
        return node
    if "array" in node:
        return arrays[node["array"]]
    if "tuple" in node:
        return tuple(_decode(v, arrays) for v in node["tuple"])
    if "list" in node:
        return [_decode(v, arrays) for v in node["list"]]
    if "dict" in node:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in node["dict"]}
    module, _, qualname = node["dataclass"].partition(":")
    if module.split(".")[0] not in _TRUSTED:
        raise ValueError(f"refusing to rebuild {node['dataclass']!r}: only dnn and ibsolver "
                         "results are read")
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"{node['dataclass']!r} is not a dataclass")
    return cls(**{k: _decode(v, arrays) for k, v in node["fields"].items()})


def save_result(obj, path) -> str:
    """Write ``obj`` to ``path`` (.npz, atomically); returns the path."""
    arrays: dict = {}
    tree = _encode(obj, arrays, "")
    path = os.fspath(path)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, __meta__=np.asarray(json.dumps({"format": FORMAT, "tree": tree})),
                        **arrays)
    os.replace(tmp, path)
    return path


def load_result(path):
    """Read what :func:`save_result` wrote."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("__meta__", "{}")))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a {FORMAT} file "
                         f"(format {meta.get('format')!r})")
    return _decode(meta["tree"], arrays)
