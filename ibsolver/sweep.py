"""Many IB curves at once: in local worker processes, or on a Dask cluster.

``ib_curves`` maps :func:`ibsolver.ib_curve` over tables with ``map_tasks``, a generic
runner: a picklable callable over items, on a local process pool or a
``dask.distributed.Client``, results in input order, each item's error recorded without
stopping the rest, a progress bar, and a callback in the calling process as each item
finishes (where ``ib_curves`` saves the curve, so an interrupted sweep loses only the
curves still running). Dask is optional (the ``dask`` extra); the local pool needs only
the standard library.
"""
from __future__ import annotations

import functools
import inspect
import logging
import multiprocessing
import os
import re
import signal
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from . import _validation as v
from .curve import ib_curve
from .io import output_folder, transitions_json, write_whole

if TYPE_CHECKING:  # dask is optional
    from distributed import Client

    from .results import IBCurve

logger = logging.getLogger(__name__)

#: ib_curve keywords that ib_curves does not forward: its own progress bar replaces
#: ``progress``; an interrupted worker must not hand back a partial curve as finished
_NOT_FORWARDED = ("progress", "interruptible")
#: a table's name becomes a file name in ``out``: no folder part, not hidden
_FILE_NAME = re.compile(r"[^/\\\x00.][^/\\\x00]*")


@dataclass(frozen=True)
class SweepFailure:
    """An item of a sweep that raised; the others went on without it.

    ``index`` is its position in the input, ``name`` its name, ``error`` the exception's
    type (``"BrokenProcessPool"`` where a local worker process died running it, e.g.
    killed for memory; ``"KilledWorker"`` where Dask's workers died running it too often),
    ``message`` its text and ``traceback`` the worker's traceback.
    """

    index: int
    name: str
    error: str
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.name} (item {self.index}): {self.error}: {self.message}"


def ib_curves(tables: Iterable[ArrayLike | str | os.PathLike[str]], *, client: Client | None = None,
              n_workers: int | None = None, out: str | os.PathLike[str] | None = None,
              names: Iterable[str] | None = None, n_threads: int | None = 1,
              progress: bool = False, **options: Any) -> list[IBCurve | SweepFailure | None]:
    """Trace the IB curves of many tables in parallel. All information in bits.

    Parameters
    ----------
    tables : sequence of tables
        Each a p(x, y) array as :func:`ibsolver.ib_curve` takes, or the path of a table
        file (``.npy``, ``.npz``, ``.csv``, as ``ibsolver curve`` reads it: see
        :func:`ibsolver.io.load_joint`), read where the task runs (on a cluster, a path
        every worker can read). A 3-D array is a stack of tables.
    client : dask.distributed.Client, optional
        Run the curves on its cluster. Default: local worker processes.
    n_workers : int, optional
        Local worker processes (without ``client``). Default: the cores this process may
        use, at most one per table.
    out : path, optional
        Save each curve as it finishes, as ``out/NAME.npz`` (:meth:`IBCurve.save`) and
        ``out/NAME.json`` (its transitions, as ``ibsolver curve`` writes them); a table
        whose ``NAME.npz`` is already there is skipped, so a sweep restarted after an
        interruption traces only the rest. Files are written whole (through a temporary
        file), so a curve cut off while saving is traced again.
    names : sequence of str, optional
        Names of the tables (their files in ``out``, their failure records). Default: a
        path's file name without its suffix, ``table-<index>`` for an array. Must be
        unique, and a file name (no folder part, not starting with ``.``).
    n_threads : int, default 1
        Kernel threads per curve. One, so that the workers, one per core, do not
        oversubscribe the machine.
    progress : show a tqdm progress bar over the tables.
    **options : the keywords of :func:`ibsolver.ib_curve` (``betas``, ``n_betas``,
        ``alpha``, ``curve_tol``, ``normalize``, ...), the same for every table; not
        ``progress`` or ``interruptible``.

    Returns
    -------
    list, in the order of ``tables``: an :class:`IBCurve` where the curve was traced, a
    :class:`SweepFailure` (which table, which error) where it raised, and None where
    ``out`` already held the table's curve (``IBCurve.load`` reads it from
    ``out/NAME.npz``). A failure is also logged as a warning; the other tables go on. The
    type of each entry says which happened, whatever the arguments.

    Each curve is the one ``ib_curve(table, n_threads=n_threads, **options)`` gives in
    this process. Ctrl-C cancels the tables not yet finished (and stops the local workers);
    with ``out``, every finished curve is saved. Without a client, a script must call this
    under ``if __name__ == "__main__":`` (the workers are new processes that import it).
    """
    items = _as_items(tables)
    names = _names(items, names)
    _check_options({**options, "n_threads": n_threads})
    v.check_int(n_workers, name="n_workers", low=1, allow_none=True)
    if client is not None and n_workers is not None:
        raise ValueError(f"n_workers applies to local workers only; with a client the cluster "
                         f"has its own (got n_workers={n_workers!r})")
    out = None if out is None else output_folder(out)
    skip = set() if out is None else {i for i, name in enumerate(names)
                                      if (out / f"{name}.npz").exists()}
    if skip:
        logger.info("%d of %d curves already in %s: skipped", len(skip), len(items), out)
    save = None if out is None else (lambda i, curve: _save(curve, out, names[i]))
    task = functools.partial(_trace, {**options, "n_threads": n_threads})
    return map_tasks(task, items, names=names, client=client, n_workers=n_workers,
                      skip=skip, on_done=save, progress=progress, desc="curves")


def _check_options(options: dict) -> None:
    """A TypeError naming an option that is not one of ib_curve's keywords, or one that
    ib_curves does not forward: caught here, not as the same failure of every table."""
    for key in options:
        if key in _NOT_FORWARDED:
            raise TypeError(f"ib_curves does not take ib_curve's {key!r}: its progress= shows "
                            "a bar over the tables, and with out= every finished curve is "
                            "saved when interrupted")
    try:
        inspect.signature(ib_curve).bind(None, **options)
    except TypeError as exc:
        raise TypeError(f"the options must be ib_curve's keywords ({exc})") from None


def _trace(options: dict, table):
    """One task of ib_curves: the table's curve (a path is read here, where the task runs)."""
    if isinstance(table, (str, os.PathLike)):
        from .io import load_joint
        table = load_joint(table, counts=True if options.get("normalize") else None,
                           normalize_hint="pass normalize=True (ibsolver sweep: --normalize) "
                                          "to rescale")
    return ib_curve(table, **options)


def _as_items(tables) -> list:
    if isinstance(tables, (str, os.PathLike)) or (isinstance(tables, np.ndarray)
                                                  and tables.ndim != 3):
        shown = (repr(str(tables)) if isinstance(tables, (str, os.PathLike))
                 else f"an array of shape {tables.shape}")
        raise ValueError(f"tables must be a sequence of tables (arrays or paths; a 3-D array "
                         f"is a stack of tables), got {shown}: for one table use ib_curve")
    try:
        return list(tables)
    except TypeError:
        raise TypeError(f"tables must be a sequence of tables (got {type(tables).__name__})") \
            from None


def _names(items: list, names) -> list:
    if names is None:
        width = len(str(max(len(items) - 1, 0)))
        names = [Path(t).stem if isinstance(t, (str, os.PathLike)) else f"table-{i:0{width}d}"
                 for i, t in enumerate(items)]
        what = "the tables' default names (file names without suffix)"
    else:
        names = [str(n) for n in names]
        what = "names"
        if len(names) != len(items):
            raise ValueError(f"names must name each of the {len(items)} tables "
                             f"(got {len(names)} names)")
    bad = [n for n in names if not _FILE_NAME.fullmatch(n)]
    if bad:
        raise ValueError(f"{what} must be file names, without a folder and not starting "
                         f"with '.' (got {bad[0]!r})")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{what} must be unique: {name!r} names tables {seen[name]} and "
                             f"{i}; pass names=")
        seen[name] = i
    return names


def _save(curve, out: Path, name: str) -> None:
    """``name.json`` (the transitions), then ``name.npz``, each through a temporary file:
    the .npz is what marks the table done, and it only appears whole."""
    write_whole(out / f"{name}.json", lambda path: path.write_text(transitions_json(curve)))
    write_whole(out / f"{name}.npz", curve.save)


# --- the generic runner ------------------------------------------------------------------

def map_tasks(func: Callable[[Any], Any], items: Sequence[Any], *, names: Sequence[str],
              client: Client | None = None, n_workers: int | None = None,
              skip: Iterable[int] = (), on_done: Callable[[int, Any], object] | None = None,
              progress: bool = False, desc: str = "tasks") -> list:
    """``[func(item) for item in items]``, the calls run in parallel.

    ``func`` and the items must pickle (``func`` a module-level function or a
    functools.partial of one). On ``client`` (a dask.distributed.Client) the calls run on its
    cluster; otherwise in ``n_workers`` local processes (default: the usable cores, at most
    one per item), each limited to one BLAS/OpenMP thread. The result keeps the order of
    ``items``: ``func``'s value, a :class:`SweepFailure` where the call raised (or its
    worker died), None for the indices in ``skip`` (not run). ``on_done(index, value)`` runs
    here, in this process, as each call succeeds; an exception from it stops the run.
    KeyboardInterrupt cancels the calls not finished and stops the workers.
    """
    from tqdm.auto import tqdm

    if n_workers is not None:
        n_workers = v.check_int(n_workers, name="n_workers", low=1)
    results = [None] * len(items)
    todo = [i for i in range(len(items)) if i not in skip]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc,
               disable=not progress)
    n_failed = 0

    def report(index, outcome):
        nonlocal n_failed
        ok, value = outcome
        if ok:
            results[index] = value
            if on_done is not None:
                on_done(index, value)
        else:
            results[index] = SweepFailure(index, names[index], *value)
            logger.warning("failed: %s", results[index])
            n_failed += 1
            bar.set_postfix(failed=n_failed)
        bar.update()

    try:
        if not todo:
            return results
        if client is not None:
            _run_on_dask(client, func, items, todo, report)
        else:
            _run_local(func, items, todo, n_workers or min(len(todo), _usable_cores()),
                       report)
    finally:
        bar.close()
    return results


def _call(func, item):
    """Run in the worker: (True, func(item)), or (False, (type, message, traceback)) where it
    raised. The error travels as text: an exception need not pickle, and one item's error
    must not stop the others."""
    try:
        return True, func(item)
    except Exception as exc:  # noqa: BLE001 - every error is the item's own, reported
        return False, (type(exc).__name__, str(exc), traceback.format_exc())


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_worker() -> None:
    """A local worker: one BLAS/OpenMP thread (one worker per core already uses them all);
    Ctrl-C is the parent's to handle (it stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=1)


def _new_pool(n_workers: int) -> ProcessPoolExecutor:
    # not fork: a forked child of a process that has run OpenMP (the C++ kernel) or torch
    # threads can deadlock in them. The fork server imports ibsolver once and forks each
    # worker from it (0.15 s for a pool of two against 2.7 s where each imports it anew;
    # the preload applies where this process starts the fork server, as it does here)
    context: multiprocessing.context.BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # The fork server imports with the current directory first on sys.path (the
        # workers get this process's sys.path only after the fork). From a source checkout
        # whose ibsolver is not the one running here (tests of an installed wheel, run from
        # the checkout) the preload took the checkout's, without the compiled kernel: the
        # workers ran numba and their curves differed from this process's in the 11th
        # digit. There each worker imports after the fork, from this process's sys.path.
        local = Path.cwd() / __package__
        if not local.is_dir() or local.resolve() == Path(__file__).parent.resolve():
            context.set_forkserver_preload(["__main__", __name__])
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(n_workers, mp_context=context, initializer=_init_worker)


def _run_local(func, items, todo, n_workers, report) -> None:
    """Run ``todo`` on a local process pool, at most ``n_workers`` at a time (so the items in
    flight are the ones running). Where a worker dies, the pool breaks and every item in
    flight fails with it: a lone one is the culprit and is reported; several are run again
    one at a time, so only the culprit is reported and the others finish."""
    waiting = deque(todo)
    suspects: deque = deque()
    running: dict = {}
    pool = _new_pool(n_workers)
    try:
        while waiting or suspects or running:
            if suspects:
                if not running:
                    i = suspects.popleft()
                    running[pool.submit(_call, func, items[i])] = i
            else:
                while waiting and len(running) < n_workers:
                    i = waiting.popleft()
                    running[pool.submit(_call, func, items[i])] = i
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            if not any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                for f in done:
                    report(running.pop(f), f.result())
                continue
            wait(running)  # the pool is broken: the others in flight fail too
            crashed = []
            for f, i in running.items():
                if isinstance(f.exception(), BrokenProcessPool):
                    crashed.append(i)
                else:
                    report(i, f.result())
            running.clear()
            pool.shutdown()
            pool = _new_pool(n_workers)
            if len(crashed) == 1:
                report(crashed[0], (False, (
                    "BrokenProcessPool", "the worker process died running it (killed, e.g. "
                    "for memory, or a crash in compiled code)", "")))
            else:
                suspects.extend(sorted(crashed))
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (shutdown alone would wait for
    the running items, whole curves)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


def _run_on_dask(client, func, items, todo, report) -> None:
    """Run ``todo`` on a dask.distributed cluster, reporting each as it finishes. Errors
    outside ``func`` (a worker lost too often: KilledWorker) are the item's failure too."""
    from distributed import as_completed

    futures = {client.submit(_call, func, items[i], pure=False): i for i in todo}
    try:
        for future in as_completed(list(futures)):
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - reported as the item's failure
                outcome = False, (type(exc).__name__, str(exc), traceback.format_exc())
            report(futures[future], outcome)
            future.release()
    except BaseException:
        client.cancel(list(futures))
        raise


__all__ = ["SweepFailure", "ib_curves"]
