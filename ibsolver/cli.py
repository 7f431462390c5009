"""The ``ibsolver`` command line.

Subcommands from other modules plug in through ``_PLUGINS`` and the entry point group
``ibsolver.subcommands`` (how the ``dnn`` package adds its own, so this module names none
of them): each names a ``register(subparsers)`` that adds its parsers with
``set_defaults(func=...)``; a plugin whose optional dependencies are missing still shows
up, and says what to install.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence

from . import __version__

#: loggers whose info-level notes a CLI user sees (what was done to the input table)
_NOTE_LOGGERS = ("ibsolver.io", "ibsolver._validation")
#: exit status after a broken pipe (`ibsolver transitions --json t.csv | head`): the shell's
#: status of a process killed by SIGPIPE, 128 + 13, as git and C tools give
EXIT_BROKEN_PIPE = 141

#: modules that add subcommands; imported lazily so `import ibsolver` stays light
_PLUGINS = (
    "ibsolver._cli_solver",
    "ibsolver._cli_sweep",
)
#: entry point group of other packages' subcommands (each value: "module:register")
PLUGIN_GROUP = "ibsolver.subcommands"


def _registrars():
    """``register`` functions of the built-in plugins, then of the entry point group."""
    from importlib.metadata import entry_points

    targets = [f"{name}:register" for name in _PLUGINS]
    found = entry_points()
    group = (found.select(group=PLUGIN_GROUP) if hasattr(found, "select")
             else found.get(PLUGIN_GROUP, ()))  # Python 3.9
    targets += sorted({ep.value for ep in group})
    for target in targets:
        name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name and exc.name.split(".")[0] == name.split(".")[0]:
                continue  # the plugin module itself is not part of this installation
            raise
        yield getattr(module, attr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibsolver",
        description="Exact Information Bottleneck curves, their phase transitions, and "
                    "network layers on the information plane. All information is in bits.",
        epilog="Start with `ibsolver demo`. Each subcommand has its own --help.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="with --version: also show what was built (C++, OpenMP, numba, torch)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        if args.verbose:
            from ._config import show_config
            show_config()
        else:
            print(f"ibsolver {__version__}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"ibsolver {args.command}: note: %(message)s"))
    handler.setLevel(logging.INFO)
    saved = []
    for name in _NOTE_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    # a batch scheduler stops a job with SIGTERM: treat it as Ctrl-C, so that an
    # interruptible command (curve) saves what it has traced
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # warnings (a curve_tol not reached, an onset that disagrees with 1/s*) as one line
    # each, as the notes are, without Python's source line
    shown = warnings.showwarning
    warnings.showwarning = lambda message, category, *_: print(
        f"ibsolver {args.command}: {category.__name__}: {message}", file=sys.stderr)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except (ValueError, TypeError, OSError) as exc:  # FileNotFoundError, PermissionError, ...
        print(f"ibsolver {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ibsolver {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        warnings.showwarning = shown
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _discard_stdout() -> None:
    """Point stdout at /dev/null after its reader went away, so that the interpreter's
    final flush does not raise (and print) BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # not a real file (a test's stand-in)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
