"""What every ``dnn`` subcommand shares: argument parsers, the common flags and the writers.

Imports neither torch nor pyplot (``ibsolver --help`` works without them).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ibsolver.io import output_folder, write_whole

if TYPE_CHECKING:
    from tqdm.auto import tqdm

INSTALL = "pip install 'ibsolver[dnn]'"


def require_torch(command: str) -> ModuleType:
    """torch, or exit with the install hint."""
    try:
        import torch
    except ImportError:
        raise SystemExit(f"ibsolver {command}: error: this command needs torch; install it with "
                         f"{INSTALL}") from None
    return torch


def parse_ints(text: str | int, name: str) -> list:
    try:
        return [int(v) for v in str(text).split(",") if v.strip() != ""]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers (got {text!r})") from None


def parse_floats(text: str | float, name: str) -> list:
    try:
        return [float(v) for v in str(text).split(",") if v.strip() != ""]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers (got {text!r})") from None


def parse_seeds(text: str | int, name: str = "--seeds") -> list:
    """"N" -> seeds 0 .. N-1; "a,b,c" -> those seeds, distinct."""
    if "," in str(text):
        seeds = parse_ints(text, name)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{name} must be distinct (got {text!r})")
        return seeds
    values = parse_ints(text, name)
    if len(values) != 1 or values[0] < 1:
        raise ValueError(f"{name} must be a count >= 1 or a comma-separated list (got {text!r})")
    return list(range(values[0]))


def parse_widths(text: str, name: str) -> list:
    """Layer sizes, comma-separated: at least one, each an integer >= 1."""
    widths = parse_ints(text, name)
    if not widths or min(widths) < 1:
        raise ValueError(f"{name} must list layer sizes >= 1, comma-separated (got {text!r})")
    return widths


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``. Every integer flag of the dnn subcommands
    takes one, so that a bad value reads the same everywhere, before any work and before
    --out is made: "argument --epochs: must be an integer >= 1 (got '0')"."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low} (got {text!r})")
        return value

    return parse


def number_at_least(low: float, *, strict: bool = False, below: float | None = None
                    ) -> Callable[[str], float]:
    """An argparse type: a finite number >= ``low`` (> ``low`` where ``strict``), and <
    ``below`` where given: "argument --lr: must be a number > 0 (got '-1')"."""
    what = f"{'>' if strict else '>='} {low:g}" + ("" if below is None else f" and < {below:g}")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > low if strict else value >= low)
                and (below is None or value < below)):
            raise argparse.ArgumentTypeError(f"must be a number {what} (got {text!r})")
        return value

    return parse


#: the types of the flags that every subcommand spells alike
POSITIVE_INT = int_at_least(1)
POSITIVE = number_at_least(0.0, strict=True)


#: --device of every subcommand: its values (cuda:N picks a GPU) and its one default
DEVICES = "auto (CUDA if present, else the CPU), cpu, cuda or cuda:N"
DEVICE_DEFAULT = "auto"


def add_run_flags(parser: argparse.ArgumentParser, *, out_default: str, one_run: bool = False,
                  seeds_default: str = "1",
                  seeds_help: str = "number of seeds (0..N-1) or a comma-separated list"
                  ) -> argparse._ArgumentGroup:
    """The flags every subcommand takes, with the same meaning: --out, --seeds, --device,
    --threads, --quiet.

    ``one_run``: the command makes one run, so --seeds names one seed (:func:`one_seed`
    reads it; ``--seed K`` is its deprecated spelling)."""
    g = parser.add_argument_group("run")
    g.add_argument("--out", default=out_default, help=f"output folder (default: {out_default})")
    if one_run:
        seeds = g.add_mutually_exclusive_group()
        # default None, not "1": argparse takes a value equal to the default for no flag,
        # and would let "--seed 5 --seeds 1" through
        seeds.add_argument("--seeds", default=None,
                           help="the seed of the one run, as every subcommand's --seeds: 1 is "
                                "seed 0, 'K,' is seed K (default: 1)")
        seeds.add_argument("--seed", type=int, default=None, metavar="K",
                           help="deprecated: the same as --seeds K,")
    else:
        g.add_argument("--seeds", default=seeds_default,
                       help=f"{seeds_help} (default: {seeds_default})")
    g.add_argument("--device", default=DEVICE_DEFAULT, type=_device_text,
                   help=f"{DEVICES}; these small networks, with few seeds, often train "
                        f"faster on the CPU (default: {DEVICE_DEFAULT})")
    g.add_argument("--threads", type=POSITIVE_INT, default=1,
                   help="torch CPU threads; these small networks run fastest on 1 (default: 1)")
    g.add_argument("--quiet", "-q", "--no-progress", action="store_true", help="no progress bars")
    return g


def prepare_run(args: argparse.Namespace, command: str) -> ModuleType:
    """What every dnn subcommand does before any work: torch (or the install hint) with
    --threads CPU threads, --device checked, the --out folder made and checked to take
    files. Returns torch.

    The folder is the first thing a command leaves behind: a command checks all its own
    arguments before it calls this, so that a usage error (exit 2) creates nothing."""
    torch = require_torch(command)
    torch.set_num_threads(args.threads)
    check_device(args.device, command)
    output_folder(args.out, "--out")
    return torch


def _device_text(text: str) -> str:
    """--device's spelling (argparse type; needs no torch): auto, cpu, cuda or cuda:N."""
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"must be {DEVICES} (got {text!r})")


def check_device(device: str, command: str) -> str:
    """--device, checked where the command runs: CUDA must be there when asked for."""
    torch = require_torch(command)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine "
                         "(torch.cuda.is_available() is False); use --device cpu or auto")
    return device


def one_seed(args: argparse.Namespace, command: str) -> int:
    """The seed of a command that makes one run: --seeds must name one (or the deprecated
    --seed K)."""
    if args.seed is not None:
        print(f"ibsolver {command}: note: --seed is deprecated; use --seeds {args.seed},",
              file=sys.stderr)
        return int(args.seed)
    seeds = parse_seeds("1" if args.seeds is None else args.seeds)
    if len(seeds) != 1:
        raise ValueError(f"--seeds must name one seed: {command} makes one run (got "
                         f"{args.seeds!r}, seeds {', '.join(map(str, seeds))}); --seeds 1 is "
                         f"seed 0, --seeds {seeds[-1]}, is seed {seeds[-1]}")
    return seeds[0]


def progress(total: int | None, desc: str, quiet: bool) -> tqdm:
    """A tqdm bar on stderr (disabled with --quiet)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=quiet, unit="step", leave=False,
                dynamic_ncols=True)


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    return str(obj)


def write_json(path: str | os.PathLike[str], obj: Any) -> str:
    """Write ``obj`` as indented JSON, atomically; numpy values become plain ones."""
    path = os.fspath(path)
    text = json.dumps(obj, indent=2, default=_json_default)
    write_whole(Path(path), lambda tmp: tmp.write_text(text))
    return path


def write_csv(path: str | os.PathLike[str], table: Any, **options: Any) -> str | None:
    """Write a table as CSV, atomically: the one writer of every CSV file the CLIs write.

    ``table`` is a result (its ``to_dataframe`` table, ``_columns(**options)``: columns by
    name or rows) or a list of dicts; the columns are the union of the rows' keys in
    first-seen order and the values are written as the ``csv`` module writes them (floats as
    ``repr``, NaN as ``nan``, None empty). Needs no pandas. Returns the path, or None (and
    writes nothing) where the table has no rows.
    """
    if hasattr(table, "_columns"):
        table = table._columns(**options)
    elif options:
        raise TypeError(f"write_csv takes options only with a result (got {sorted(options)})")
    rows: Sequence[Mapping[str, Any]]
    if isinstance(table, Mapping):  # columns of equal length
        rows = [dict(zip(table, values)) for values in zip(*table.values())]
    else:
        rows = table
    if not rows:
        return None
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    path = os.fspath(path)
    write_whole(Path(path), write)
    return path
