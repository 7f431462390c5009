"""The ``ibsolver`` command line.

Subcommands from other modules plug in through ``_PLUGINS``: each module defines
``register(subparsers)`` that adds its parsers with ``set_defaults(func=...)``; a plugin
whose optional dependencies are missing still shows up, and says what to install.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

#: modules that add subcommands; imported lazily so `import ibsolver` stays light
_PLUGINS = (
    "ibsolver._cli_solver",
    "dnn.cli_infoplane",
    "dnn.cli_info",
)


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
    for name in _PLUGINS:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name and exc.name.split(".")[0] == name.split(".")[0]:
                continue  # the plugin module itself is not part of this installation
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
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
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"ibsolver {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ibsolver {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
