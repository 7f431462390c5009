"""CLI subcommand `ibsolver sweep`: the IB curves of many tables (ibsolver.sweep.ib_curves),
or a sweep of another kind that a package adds through the entry point group ``SWEEP_GROUP``
(how ``dnn`` adds its training runs, so this module names none of them)."""
from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

from ._cli_solver import _betas_arg, _int_arg
from .io import FORMATS, output_folder

# a reStructuredText literal, as in the docstrings: the CLI page renders this help (a bare * would
# open emphasis there)
SPEC_HELP = ("the tables: a folder (its .npy, .npz and .csv files), a quoted glob pattern of "
             "table files (``'tables/**/*.npy'``), or a .json file {\"tables\": [paths or "
             "patterns, relative to the JSON file], \"options\": {ib_curve keywords, e.g. "
             "\"n_betas\": 30, \"alpha\": 0.5}}; or a .json file {KIND: {...}} of a sweep "
             "kind another package adds, e.g. {\"dnn\": {\"grid\": {\"activation\": "
             "[\"tanh\", \"relu\"]}, \"epochs\": 100, \"seeds\": [0, 1]}} (network "
             "trainings, with the dnn extra)")
#: entry point group of other packages' sweep kinds (each "KIND = module:function"): a JSON
#: SPEC {KIND: value} runs through ``function(value, where)``, which checks ``value`` (a
#: ValueError starting with ``where``, before any work) and returns the run, a callable of
#: ``out``, ``client``, ``n_workers`` and ``progress`` that prints what it did and returns
#: the exit status
SWEEP_GROUP = "ibsolver.sweeps"


def read_spec(spec: str) -> tuple[list, dict]:
    """(the table files SPEC names, sorted, and its ib_curve options). A ValueError naming
    SPEC where it names nothing, a file of another kind, or two tables of the same name."""
    shown = f"SPEC {spec!r}"
    path = Path(spec)
    options: dict = {}
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
        if not files:
            raise ValueError(f"{shown}: the folder holds no table files ({', '.join(FORMATS)})")
    elif path.suffix.lower() == ".json" and path.is_file():
        files, options = _read_json_spec(path, shown)
    else:
        files = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
        if not files:
            what = "matches no file" if glob.has_magic(spec) else "does not exist"
            raise ValueError(f"{shown} {what}: give a folder, a quoted glob pattern of table "
                             f"files or a .json spec")
        others = [p for p in files if p.suffix.lower() not in FORMATS]
        if others:
            what = f"matches {str(others[0])!r}, which is" if glob.has_magic(spec) else "is"
            raise ValueError(f"{shown} {what} not a table file (one of {', '.join(FORMATS)}), "
                             f"a folder or a .json spec")
    seen: dict[str, Path] = {}
    for file in files:
        if file.stem in seen:
            raise ValueError(f"{shown}: {str(seen[file.stem])!r} and {str(file)!r} would both be "
                             f"saved as {file.stem}.npz; rename one")
        seen[file.stem] = file
    return files, options


def _sweep_kinds() -> dict:
    """{KIND: entry point} of the sweep kinds installed (``SWEEP_GROUP``)."""
    from importlib.metadata import entry_points

    found = entry_points()
    group = (found.select(group=SWEEP_GROUP) if hasattr(found, "select")
             else found.get(SWEEP_GROUP, ()))  # Python 3.9
    return {ep.name: ep for ep in group}


def _load_json(path: Path, shown: str):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{shown}: cannot read it as JSON ({exc})") from None


def _kind_spec(spec: str):
    """(KIND, value) where SPEC is a .json file {KIND: value} of an installed sweep kind, else
    None."""
    path = Path(spec)
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    content = _load_json(path, f"SPEC {spec!r}")
    if isinstance(content, dict) and len(content) == 1 and set(content) <= set(_sweep_kinds()):
        return next(iter(content.items()))
    return None


def _read_json_spec(path: Path, shown: str) -> tuple[list, dict]:
    spec = _load_json(path, shown)
    if not isinstance(spec, dict) or not set(spec) <= {"tables", "options"}:
        kinds = ", ".join(repr(k) for k in sorted(_sweep_kinds())) or "none installed"
        raise ValueError(f"{shown} must hold an object with the keys 'tables' and, optionally, "
                         f"'options', or one key naming a sweep kind ({kinds}) (got "
                         f"{json.dumps(spec)[:80]})")
    patterns, options = spec.get("tables"), spec.get("options", {})
    if not isinstance(patterns, list) or not patterns or not all(
            isinstance(p, str) for p in patterns):
        raise ValueError(f"{shown}: 'tables' must be a non-empty list of paths or glob patterns "
                         f"(got {json.dumps(patterns)[:80]})")
    if not isinstance(options, dict):
        raise ValueError(f"{shown}: 'options' must be an object of ib_curve keywords "
                         f"(got {json.dumps(options)[:80]})")
    from .sweep import _check_options
    try:
        _check_options(options)
    except TypeError as exc:
        raise ValueError(f"{shown}: {exc}") from None
    files: list[Path] = []
    for pattern in patterns:
        matched = read_spec(str(path.parent / pattern))[0]  # each a glob or a file
        files.extend(p for p in matched if p not in files)
    return files, options


def cmd_sweep(args) -> int:
    from .sweep import SweepFailure, ib_curves

    kind = _kind_spec(args.spec)
    if kind is not None:
        return _cmd_kind(args, *kind)
    files, options = read_spec(args.spec)
    _check_workers(args)
    for key in ("betas", "n_betas", "backend"):  # given on the command line: over SPEC's
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.normalize:
        options["normalize"] = True
    for file in files:  # `sweep tables --out tables` would write x.npz over the table x.npz
        for suffix in (".npz", ".json"):
            if (Path(args.out) / (file.stem + suffix)).resolve() == file.resolve():
                raise ValueError(f"--out {args.out!r} would overwrite the table {str(file)!r} "
                                 f"with its curve: write the curves to another folder")
    client = _connect(args.scheduler) if args.scheduler else None
    try:
        out = output_folder(args.out, "--out")
        results = ib_curves([str(f) for f in files], client=client, n_workers=args.workers,
                            out=out, progress=not args.quiet, **options)
    finally:
        if client is not None:
            client.close()
    failed = [r for r in results if isinstance(r, SweepFailure)]
    for failure in failed:
        print(f"ibsolver sweep: failed: {files[failure.index]}: {failure.error}: "
              f"{failure.message}", file=sys.stderr)
    skipped = sum(r is None for r in results)
    print(f"of {len(results)} tables: {len(results) - skipped - len(failed)} traced, "
          f"{skipped} skipped (already in {out}), {len(failed)} failed; each curve is in "
          f"{out}/NAME.npz and NAME.json")
    return 1 if failed else 0


def _cmd_kind(args, kind: str, value) -> int:
    """Run SPEC's sweep of another kind: its plugin checks ``value``, then runs."""
    where = f"SPEC {args.spec!r}: {kind!r}"
    for flag, given in (("--normalize", args.normalize or None), ("--backend", args.backend),
                        ("--betas", args.betas), ("--n-betas", args.n_betas)):
        if given is not None:
            raise ValueError(f"{where}: {flag} applies to tables, not to this kind of sweep")
    _check_workers(args)
    run = _sweep_kinds()[kind].load()(value, where)
    client = _connect(args.scheduler) if args.scheduler else None
    try:
        out = output_folder(args.out, "--out")
        return int(run(out=out, client=client, n_workers=args.workers,
                       progress=not args.quiet))
    finally:
        if client is not None:
            client.close()


def _check_workers(args) -> None:
    if args.workers is not None and args.scheduler:
        raise ValueError(f"--workers applies to local workers only; the cluster at --scheduler "
                         f"has its own (got --workers {args.workers})")


def _connect(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise ValueError(f"--scheduler {address!r} needs dask.distributed: pip install "
                         f"'ibsolver[dask]'") from None
    try:
        return Client(address, timeout="10s")
    except (OSError, ValueError) as exc:  # unreachable; not an address
        raise ValueError(f"--scheduler {address!r}: cannot connect ({exc})") from None


def register(sub) -> None:
    p = sub.add_parser("sweep", help="trace the IB curves of many tables, in parallel",
                       description="Trace the IB curve of each table SPEC names, in local "
                                   "worker processes (one kernel thread each) or on a Dask "
                                   "cluster, and write NAME.npz and NAME.json (the "
                                   "transitions) for each to --out as it finishes. Curves "
                                   "already in --out are skipped, so a sweep that was stopped "
                                   "goes on where it was. A table that fails is reported and "
                                   "the others go on (exit status 1). A SPEC of another kind "
                                   "(e.g. {\"dnn\": ...}: network trainings) runs the same "
                                   "way, one task per run.")
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a Dask scheduler's address (tcp://host:8786; needs the dask extra); "
                        "its workers must be able to read the table files. Default: local "
                        "worker processes")
    p.add_argument("--workers", type=_int_arg(1), default=None,
                   help="local worker processes (default: the cores available)")
    p.add_argument("--normalize", "--counts", dest="normalize", action="store_true",
                   help="rescale every table to sum to 1 (as for `ibsolver curve`)")
    p.add_argument("--backend", default=None, choices=["auto", "cpp", "numba", "numpy"],
                   help="BA kernel (default: fastest available)")
    p.add_argument("--betas", type=_betas_arg, default=None,
                   help="comma-separated betas >= 0 (default: chosen and refined adaptively)")
    p.add_argument("--n-betas", type=_int_arg(2), default=None,
                   help="size of the initial log-spaced grid, >= 2 (default 60)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)
