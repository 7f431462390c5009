"""Many training runs at once: a grid of settings, in local worker processes or on a Dask cluster.

:func:`record_sweep` trains the package's MLP on a task (:func:`dnn.train.train`) for every
run of a grid or a list of settings, each run (all its seeds, one ensemble) one task of
``ibsolver.sweep``'s runner: local worker processes or a ``dask.distributed.Client``, results
in order, a run's error its own, a progress bar over the runs. With ``out`` every finished
run is saved as it comes back, and a restarted sweep loads it instead of training it again.

This module imports without torch (``ibsolver sweep`` finds :func:`cli_spec` through the
``ibsolver.sweeps`` entry point group); torch is imported where a run is checked or trained.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ibsolver.io import output_folder, write_whole
from ibsolver.results import dataframe
from ibsolver.sweep import SweepFailure, map_tasks

from .recording import Recording

logger = logging.getLogger(__name__)

#: the tasks a run may name: the functions of :mod:`dnn.tasks` (their keywords go in
#: ``task_options``)
TASKS = ("tishby12", "checkerboard", "digits")
#: the settings of a run besides :class:`dnn.train.TrainConfig`'s fields
_TASK_KEYS = ("task", "task_options")
#: a run's name is a file name: other characters become "-"; a longer one is cut and ends
#: with a hash of the settings
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.,=+-]")
_MAX_NAME = 200


@dataclass(frozen=True)
class RecordingSweep:
    """What :func:`record_sweep` returns: every run, in the order of the configs. Bits.

    Attributes
    ----------
    names : tuple of str
        Each run's name: the task, its options and the training settings that differ from
        their defaults, then the seeds (``tishby12_activation=relu_lr=0.01_seeds=0,1``);
        its files in ``out`` are ``NAME.npz`` and ``NAME.json``.
    runs : tuple of dict
        Each run's settings, whole: ``task``, ``task_options`` (every keyword of the task's
        function) and ``config`` (every :class:`dnn.train.TrainConfig` field).
    results : tuple
        A :class:`dnn.Recording` where the run finished, an ``ibsolver.SweepFailure`` (which
        run, which error) where it raised.
    loaded : tuple of int
        The runs read from ``out`` (finished by an earlier call), not trained again.
    """

    names: tuple
    runs: tuple
    results: tuple
    loaded: tuple

    @property
    def failures(self) -> list:
        """The :class:`ibsolver.SweepFailure` of every run that raised."""
        return [r for r in self.results if isinstance(r, SweepFailure)]

    def to_dataframe(self) -> Any:
        """The table: one row per (finished run, estimator key, seed, layer) at the run's
        last record (needs pandas).

        Each row holds the run's name, its task, its task options (as JSON) and its
        TrainConfig fields but the seeds (``widths`` a tuple), then the columns of
        :meth:`dnn.Recording.to_dataframe`: I(X;T), I(T;Y) (bits), losses (bits), accuracies,
        gradient SNR. A failed run has no rows.
        """
        return dataframe(self._columns())

    def _columns(self) -> list:
        """The rows of :meth:`to_dataframe` (and of the CLI's runs.csv)."""
        rows = []
        for name, run, result in zip(self.names, self.runs, self.results):
            if isinstance(result, SweepFailure):
                continue
            settings = {"run": name, "task": run["task"],
                        "task_options": json.dumps(run["task_options"], sort_keys=True)}
            settings.update((k, tuple(value) if isinstance(value, list) else value)
                            for k, value in run["config"].items() if k != "seeds")
            last = int(result.epochs[-1])
            rows += [{**settings, **row} for row in result._columns() if row["epoch"] == last]
        return rows


def record_sweep(configs: Mapping[str, Sequence] | Sequence[Mapping[str, Any]], *,
                 out: str | Path | None = None, client: Any = None,
                 n_workers: int | None = None, n_threads: int = 1, device: str = "auto",
                 estimators: Any = None, progress: bool = False,
                 **settings: Any) -> RecordingSweep:
    """Train and record the MLP of every run of a grid, in parallel. Information in bits.

    Parameters
    ----------
    configs : dict of lists, or list of dicts
        The runs. A dict is a grid: each key a setting, each value the list of its values,
        one run per combination (``{"activation": ["tanh", "relu"], "lr": [1e-3, 1e-2]}``:
        four runs). A list holds one dict of settings per run. A setting is ``task`` (one of
        :data:`TASKS`, default ``"tishby12"``), ``task_options`` (a dict of keywords of that
        function of :mod:`dnn.tasks`; ``random_state`` defaults to 0, so that a run is a
        function of its settings) or a field of :class:`dnn.train.TrainConfig` (``widths``,
        ``activation``, ``optimizer``, ``lr``, ``epochs``, ``train_fraction``, ``seeds``,
        ...). ``widths`` must fit the task (the default, 12-10-7-5-4-3-2, fits tishby12).
    out : path, optional
        Save each run as it finishes: ``out/NAME.npz`` (:meth:`dnn.Recording.save`) and
        ``out/NAME.json`` (its settings, whole). A run whose ``NAME.npz`` is there with the
        same settings is loaded instead of trained, so a restarted sweep trains only the
        rest; one there with other settings raises before any training.
    client : dask.distributed.Client, optional
        Train on its cluster. Default: local worker processes.
    n_workers : int, optional
        Local worker processes (without ``client``). Default: the cores this process may
        use, at most one per run.
    n_threads : int, default 1
        Torch threads per run. One, so that the workers, one per core, do not oversubscribe
        the machine (these small networks run fastest on one thread anyway).
    device : str, default "auto"
        Where every run trains, as :func:`dnn.train.train` takes it: "auto" (CUDA where the
        worker has it, else the CPU), "cpu", "cuda" or "cuda:N". Without a client, "cuda"
        where this machine has no CUDA raises before any training.
    estimators : optional
        The estimators of every run, as :func:`dnn.record_training` takes them (default
        ``Binning(30)``).
    progress : bool, default False
        Show a tqdm progress bar over the runs.
    **settings
        Settings the same for every run (``task="checkerboard"``, ``epochs=100``,
        ``seeds=[0, 1, 2]``); a setting is given here or in ``configs``, not both.

    Returns
    -------
    RecordingSweep
        The runs' names, settings and results in the order of ``configs``: a
        :class:`dnn.Recording` per finished run (trained, or loaded from ``out``), an
        ``ibsolver.SweepFailure`` per run that raised (also logged as a warning; the others
        go on). ``to_dataframe()`` tabulates the last record of every run.

    Each recording is the one :func:`dnn.train.train` gives in this process (with the
    run's task and config, ``estimators``, ``n_threads`` and ``device``). Settings are checked here, before any
    training (a ValueError naming the setting and its value); what only the task can tell
    (``widths`` that do not fit it, a bad task option value) fails that run alone.
    Ctrl-C cancels the runs not finished; with ``out``, every finished run is saved.
    Without a client, a script must call this under ``if __name__ == "__main__":`` (the
    workers are new processes that import it).
    """
    from .loop import _check_int, resolve_estimators

    runs = _runs(configs, settings)
    names = _names(runs)
    _check_int("n_threads", n_threads, 1)
    if n_workers is not None:
        _check_int("n_workers", n_workers, 1)
    _check_device(device, local=client is None)
    if client is not None and n_workers is not None:
        raise ValueError(f"n_workers applies to local workers only; with a client the cluster "
                         f"has its own (got n_workers={n_workers!r})")
    ests = resolve_estimators(estimators)
    saved = [_as_json({**run, "estimators": [e.spec() for e in ests]}) for run in runs]
    folder = None if out is None else output_folder(out)
    done = {} if folder is None else _finished(folder, names, saved)
    if done:
        logger.info("%d of %d runs already in %s: loaded", len(done), len(runs), folder)
    save = None if folder is None else (
        lambda i, recording: _save(folder, names[i], saved[i], recording))
    task = functools.partial(_train_run, {"estimators": ests, "n_threads": n_threads,
                                          "device": device})
    results = map_tasks(task, runs, names=names, client=client, n_workers=n_workers,
                         skip=set(done), on_done=save, progress=progress, desc="runs")
    for i, recording in done.items():
        results[i] = recording
    return RecordingSweep(names=tuple(names), runs=tuple(runs), results=tuple(results),
                          loaded=tuple(sorted(done)))


def _train_run(options: dict, run: dict) -> Recording:
    """One task of record_sweep, run in the worker: build the task, train, record."""
    from . import tasks
    from .train import TrainConfig, train

    task = getattr(tasks, run["task"])(**run["task_options"])
    return train(task, TrainConfig.from_dict(run["config"]), **options)


# --- the arguments -------------------------------------------------------------------------

def _check_device(device: Any, *, local: bool = True) -> None:
    """``device`` as record_training takes it (:func:`dnn.models.resolve_device`, which
    also wants CUDA where asked for); for a cluster's workers (not ``local``) only its
    spelling, since CUDA is theirs to have. A ValueError naming ``device``."""
    import torch

    from .models import resolve_device

    if local:
        resolve_device(device)
    elif device != "auto":
        try:
            torch.device(device)
        except (TypeError, RuntimeError):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (got "
                             f"{device!r})") from None


# --- the runs: checked, whole, named ------------------------------------------------------

def _runs(configs, settings: dict) -> list:
    """Every run's settings, whole and checked (see RecordingSweep.runs)."""
    from .train import TrainConfig

    known = set(_TASK_KEYS) | {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown settings {unknown}: a setting is one of {sorted(known)}")
    runs = []
    for given in _combinations(configs):
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"the run {given} has unknown settings {unknown}: a setting is "
                             f"one of {sorted(known)}")
        both = sorted(set(given) & set(settings))
        if both:
            raise ValueError(f"{both[0]!r} is set for every run ({both[0]}="
                             f"{settings[both[0]]!r}) and by the run {given}: give it once")
        try:
            runs.append(_whole({**settings, **given}))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the run {given}: {exc}") from None
    return runs


def _combinations(configs) -> list:
    """The settings of each run: the grid's combinations, or the list's dicts."""
    if isinstance(configs, Mapping):
        for key, values in configs.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"the grid's {key!r} must be a non-empty list of values (got "
                                 f"{values!r}); a setting shared by every run goes beside the grid")
        return [dict(zip(configs, combination))
                for combination in itertools.product(*configs.values())]
    if isinstance(configs, (str, bytes)) or not isinstance(configs, Sequence) or not configs:
        raise ValueError(f"configs must be a grid (a dict of lists) or a non-empty list of "
                         f"dicts (got {configs!r})")
    for i, given in enumerate(configs):
        if not isinstance(given, Mapping):
            raise ValueError(f"configs[{i}] must be a dict of settings (got {given!r})")
    return [dict(given) for given in configs]


def _whole(given: dict) -> dict:
    """A run's settings with every default filled in; a ValueError names a bad one."""
    from .train import TrainConfig

    task = given.get("task", TASKS[0])
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)} (got {task!r})")
    options = given.get("task_options", {})
    if not isinstance(options, Mapping):
        raise ValueError(f"task_options must be a dict of {task}() keywords (got {options!r})")
    try:
        inspect.signature(_task_function(task)).bind(**options)
    except TypeError as exc:
        raise ValueError(f"task_options {dict(options)} do not fit {task}(): {exc}") from None
    config = TrainConfig(**{k: value for k, value in given.items() if k not in _TASK_KEYS})
    return {"task": task, "task_options": {**_task_defaults(task), **options},
            "config": config.settings()}


def _task_function(task: str) -> Callable:
    from . import tasks

    return getattr(tasks, task)


def _task_defaults(task: str) -> dict:
    """The task function's keyword defaults, with random_state 0 (a run is a function of
    its settings, restarted or not)."""
    return {name: 0 if name == "random_state" else p.default
            for name, p in inspect.signature(_task_function(task)).parameters.items()
            if p.default is not p.empty}


def _names(runs: list) -> list:
    """Each run's name (see RecordingSweep.names); a ValueError where two runs share one."""
    from .train import TrainConfig

    default_config = TrainConfig().settings()
    names: list[str] = []
    for i, run in enumerate(runs):
        task_defaults = _task_defaults(run["task"])
        parts = [run["task"]]
        parts += [f"{k}={_text(value)}" for k, value in sorted(run["task_options"].items())
                  if value != task_defaults.get(k, inspect.Parameter.empty)]
        parts += [f"{k}={_text(value)}" for k, value in sorted(run["config"].items())
                  if k != "seeds" and value != default_config[k]]
        parts.append(f"seeds={_text(run['config']['seeds'])}")
        name = _NOT_IN_NAME.sub("-", "_".join(parts))
        if len(name) > _MAX_NAME:
            digest = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:10]
            name = f"{name[:_MAX_NAME - 11]}-{digest}"
        if name in names:
            raise ValueError(f"runs {names.index(name)} and {i} have the same settings "
                             f"({name}): give each run its own")
        names.append(name)
    return names


def _text(value) -> str:
    return ",".join(map(_text, value)) if isinstance(value, (list, tuple)) else str(value)


# --- out: finished runs ------------------------------------------------------------------

def _as_json(obj) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), to compare with a file."""
    return json.loads(json.dumps(obj))


def _finished(folder: Path, names: list, saved: list) -> dict:
    """{index: Recording} of the runs whose NAME.npz is in ``folder``; a ValueError where one
    there was trained with other settings (before any training)."""
    done = {}
    for i, name in enumerate(names):
        path = folder / f"{name}.npz"
        if not path.exists():
            continue
        try:
            there = json.loads((folder / f"{name}.json").read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{str(path)!r} is there but its settings ({name}.json) cannot be "
                             f"read ({exc}): delete {path.name} to train the run again") from None
        if there != saved[i]:
            was, now = _flat(there), _flat(saved[i])
            differ = ", ".join(f"{k}: saved {was.get(k)!r}, now {now.get(k)!r}"
                               for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k))
            raise ValueError(f"{str(path)!r} holds a run with other settings ({differ}): "
                             f"delete it or choose another out")
        done[i] = Recording.load(path)
    return done


def _flat(obj, prefix: str = "") -> dict:
    """{"config.lr": 0.01, "estimators.0.n_bins": 30, ...}: the leaves of nested JSON."""
    items = (obj.items() if isinstance(obj, dict) else enumerate(obj)
             if isinstance(obj, list) else ())
    out: dict = {}
    for key, value in items:
        out.update(_flat(value, f"{prefix}{key}."))
    return out or {prefix[:-1]: obj}


def _save(folder: Path, name: str, settings: dict, recording: Recording) -> None:
    """``name.json`` (the settings), then ``name.npz``, each written whole: the .npz is what
    marks the run done."""
    write_whole(folder / f"{name}.json",
                lambda path: path.write_text(json.dumps(settings, indent=2)))
    recording.save(folder / f"{name}.npz")


# --- `ibsolver sweep` with {"dnn": ...} -----------------------------------------------------

def cli_spec(spec: Any, where: str) -> Callable[..., int]:
    """The ``dnn`` sweep kind of ``ibsolver sweep`` (entry point group ``ibsolver.sweeps``).

    Parameters
    ----------
    spec : the value of the JSON SPEC's ``"dnn"`` key: ``{"grid": {setting: [values]}}`` or
        ``{"runs": [{setting: value}, ...]}``, optionally ``"estimators"`` (names or spec
        dicts) and settings the same for every run (``"task"``, ``"epochs"``, ...).
    where : SPEC and the key, to start the error messages with.

    Returns
    -------
    The run: a callable of ``out``, ``client``, ``n_workers`` and ``progress`` that calls
    :func:`record_sweep`, writes ``out/runs.csv`` (:meth:`RecordingSweep.to_dataframe`'s table), prints
    what happened and returns the exit status (1 where a run failed). A ValueError naming
    ``where``, the key and its value where ``spec`` is not a sweep, before any work.
    """
    from .cli_common import require_torch

    require_torch("sweep")
    from .loop import resolve_estimators

    if not isinstance(spec, dict) or len({"grid", "runs"} & set(spec)) != 1:
        raise ValueError(f"{where} must be an object with 'grid' (a setting's list of values "
                         f"per key) or 'runs' (a list of settings), optionally 'estimators' "
                         f"and the settings every run shares (got {json.dumps(spec)[:80]})")
    settings = dict(spec)
    key = "grid" if "grid" in spec else "runs"
    configs = settings.pop(key)
    if not isinstance(configs, dict if key == "grid" else list):
        raise ValueError(f"{where}: {key!r} must be " + (
            "an object of lists" if key == "grid" else "a list of objects")
            + f" (got {json.dumps(configs)[:80]})")
    estimators = settings.pop("estimators", None)
    try:
        _names(_runs(configs, settings))
        resolve_estimators(estimators)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None

    def run(*, out: Path, client: Any, n_workers: int | None, progress: bool) -> int:
        from .cli_common import write_csv

        sweep = record_sweep(configs, out=out, client=client, n_workers=n_workers,
                             estimators=estimators, progress=progress, **settings)
        for failure in sweep.failures:
            print(f"ibsolver sweep: failed: {failure}", file=sys.stderr)
        table = write_csv(out / "runs.csv", sweep)
        n, n_failed, n_loaded = len(sweep.names), len(sweep.failures), len(sweep.loaded)
        print(f"of {n} runs: {n - n_loaded - n_failed} trained, {n_loaded} loaded (already in "
              f"{out}), {n_failed} failed; each run is in {out}/NAME.npz (its Recording) and "
              f"NAME.json (its settings)" + (f", their last records in {table}" if table else ""))
        return 1 if n_failed else 0

    return run


__all__ = ["TASKS", "RecordingSweep", "cli_spec", "record_sweep"]
