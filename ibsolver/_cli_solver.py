"""CLI subcommands of the solver: demo, curve, transitions, solve."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .io import output_folder, probe_writable

#: built-in problems for `ibsolver demo`
DEMO_PROBLEMS = ("birth", "dsbs", "gaussian")


def demo_problem(name: str):
    """(p_xy, description) of a built-in problem."""
    if name == "birth":
        p = np.random.default_rng(1).dirichlet(np.ones(24)).reshape(8, 3)
        return p, ("random 8x3 p(x,y) (numpy seed 1): the optimum leaves zero by a cluster "
                   "birth before the first instability 1/s2^2")
    if name == "dsbs":
        eps = 0.1
        return (np.array([[1 - eps, eps], [eps, 1 - eps]]) / 2,
                "doubly symmetric binary source, eps = 0.1: one split at beta = 1/(1-2 eps)^2")
    if name == "gaussian":
        from .gaussian import discretize_gaussian
        return (discretize_gaussian(0.8, 24, 24),
                "discretised Gaussian pair, rho = 0.8, 24x24 bins: first split near 1/rho^2")
    raise ValueError(f"--problem must be one of {DEMO_PROBLEMS} (got {name!r})")


#: the fix a table that does not sum to 1 is told about
NORMALIZE_HINT = "pass --normalize to rescale it (a table of counts, say)"


def _check_out_file(out: Path, arg: str = "--out") -> Path:
    """An .npz path we can write, checked before any work is done."""
    shown = repr(str(out))
    if out.suffix.lower() != ".npz":
        raise ValueError(f"{arg} must name an .npz file (got {shown})")
    if out.is_dir():
        raise ValueError(f"{arg} {shown} is a folder; name an .npz file")
    parent = out.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise ValueError(f"{arg} {shown}: folder {str(parent)!r} {what}")
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"{arg} {shown} exists and is not writable")
    probe_writable(parent, out, arg)
    return out


#: the files `curve` and `demo` write into --out
RESULT_FILES = ("curve.npz", "transitions.json", "curve.png")


def _saved_curve(out: Path, args):
    """Before any work: the curve in ``out`` to resume (--resume), or None to start afresh.
    A result already in ``out`` is overwritten only with --force."""
    from .results import IBCurve

    shown = repr(str(out))
    existing = [name for name in RESULT_FILES if (out / name).exists()]
    if args.resume:
        if not (out / "curve.npz").exists():
            print(f"ibsolver {args.command}: note: --resume: no curve.npz in {shown} yet; "
                  "starting from the beginning", file=sys.stderr)
            return None
        try:
            return IBCurve.load(out / "curve.npz")
        except ValueError as exc:
            raise ValueError(f"--resume: cannot resume from {shown}: {exc}") from exc
    if existing and not args.force:
        raise ValueError(f"--out {shown} already holds a result ({', '.join(existing)}): pass "
                         "--resume to continue it or --force to overwrite it")
    return None


def _trace(p_xy, out: Path, args):
    """The curve of ``p_xy``, resumed from ``out`` where asked; None if the saved curve
    is already complete (it is printed, nothing is written)."""
    saved = _saved_curve(out, args)
    if saved is not None and saved.complete:
        print(saved)
        print(f"nothing to resume: the curve in {str(out)!r} is complete")
        return None
    return _quiet_curve(p_xy, resume=saved, **_curve_kwargs(args))


def _quiet_curve(p_xy, **kwargs):
    """``ib_curve(p_xy, **kwargs)`` without the "ib_curve interrupted" warning (the summary
    and the files say PARTIAL: no Python warning line on top)."""
    from .curve import ib_curve

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ib_curve interrupted", RuntimeWarning)
        return ib_curve(p_xy, **kwargs)


def _write_outputs(curve, out: Path, title: str) -> list:
    """Write curve.npz, transitions.json and curve.png, each to a temporary file first, so
    that an interruption while writing leaves the previous file whole."""
    from .io import transitions_json, write_whole
    from .plotting import plot_summary

    writers = (curve.save,
               lambda path: path.write_text(transitions_json(curve)),
               lambda path: plot_summary(curve, path, title=title))
    files = []
    for name, write in zip(RESULT_FILES, writers):
        path = out / name
        write_whole(path, write)
        files.append(path)
    return files


def _print_table(curve, rows: int = 12) -> None:
    idx = np.unique(np.linspace(0, curve.beta.size - 1, min(rows, curve.beta.size)).astype(int))
    print(f"{'beta':>10} {'I(X;T)':>9} {'I(T;Y)':>9} {'H(T)':>8} {'clusters':>8} {'iters':>6} branch")
    for i in idx:
        print(f"{curve.beta[i]:10.4g} {curve.i_xt[i]:9.5f} {curve.i_ty[i]:9.5f} {curve.h_t[i]:8.4f} "
              f"{curve.n_clusters[i]:8d} {curve.n_iter[i]:6d} {curve.branch[i]}")
    print("(information in bits)")


def _curve_kwargs(args) -> dict:
    kw = {"backend": args.backend, "progress": not args.quiet, "interruptible": True}
    if args.betas is not None:
        kw["betas"] = args.betas
    if args.n_betas is not None:
        kw["n_betas"] = args.n_betas
    for name in ("max_points", "curve_tol", "max_clusters"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    return kw


def _load(args):
    """(p_xy, kept rows, kept columns) of the INPUT table, as the options say."""
    from .io import _load as load

    return load(args.input, counts=True if args.normalize else None,
                normalize_hint=NORMALIZE_HINT)


def _betas_arg(text: str) -> np.ndarray:
    """--betas: comma-separated finite numbers >= 0."""
    try:
        values = np.array([float(b) for b in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated numbers >= 0, e.g. 0.5,1,2 (got {text!r})") from None
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise argparse.ArgumentTypeError(f"must be finite numbers >= 0 (got {text!r})")
    return values


def _number_arg(convert, what: str, low):
    """An argparse type: ``convert(text)``, finite and >= low, else an error naming it."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"must be {what} >= {low:g} (got {text!r})")
        return value
    return parse


def _int_arg(low: int):
    return _number_arg(int, "an integer", low)


def _real_arg(low: float):
    return _number_arg(float, "a finite number", low)


def cmd_demo(args) -> int:
    p_xy, text = demo_problem(args.problem)
    out = output_folder(args.out, "--out")
    print(f"ibsolver demo: {text}")
    t0 = time.perf_counter()
    curve = _trace(p_xy, out, args)
    if curve is None:
        return 0
    print(f"traced in {time.perf_counter() - t0:.1f} s\n")
    print(f"{curve}\n")
    _print_table(curve)
    files = _write_outputs(curve, out, f"ibsolver demo: {args.problem}")
    print("\nwrote " + ", ".join(str(f) for f in files))
    return 0 if curve.complete else 130


def cmd_curve(args) -> int:
    p_xy, _, _ = _load(args)
    out = output_folder(args.out, "--out")
    curve = _trace(p_xy, out, args)
    if curve is None:
        return 0
    print(curve)
    files = _write_outputs(curve, out, Path(args.input).name)
    print("wrote " + ", ".join(str(f) for f in files))
    return 0 if curve.complete else 130


def cmd_transitions(args) -> int:
    from .io import transitions_json

    p_xy, _, _ = _load(args)
    curve = _quiet_curve(p_xy, **_curve_kwargs(args))
    if args.json:
        print(transitions_json(curve))
    else:
        print(curve)
    return 0 if curve.complete else 130


def cmd_solve(args) -> int:
    from .results import _write
    from .solve import solve

    p_xy, rows, cols = _load(args)
    out = _check_out_file(Path(args.out)) if args.out else None
    res = solve(p_xy, args.beta, alpha=args.alpha, backend=args.backend,
                random_state=args.seed, accelerate=True)
    print(res)
    if out is not None:
        _write(out, res, x_index=rows, y_index=cols)
        print(f"wrote {out}")
    return 0


def _common(p, *, curve=True):
    p.add_argument("--backend", default="auto", choices=["auto", "cpp", "numba", "numpy"],
                   help="BA kernel (default: fastest available)")
    if curve:
        grid = p.add_mutually_exclusive_group()  # (given betas have no grid to size)
        grid.add_argument("--betas", type=_betas_arg, default=None,
                          help="comma-separated betas >= 0 (default: chosen and refined "
                               "adaptively)")
        grid.add_argument("--n-betas", type=_int_arg(2), default=None,
                          help="size of the initial log-spaced grid, >= 2 (default 60)")
        p.add_argument("--curve-tol", type=_real_arg(0.0), default=None,
                       help="accuracy (bits) the refinement aims for (default 1e-5)")
        p.add_argument("--max-points", type=_int_arg(2), default=None,
                       help="most betas the refinement may reach (default 300)")
        p.add_argument("--max-clusters", type=_int_arg(1), default=None,
                       help="most clusters an encoder may use; the curve ends where they "
                            "bind (default: the distinct rows, at most 1024 and 2**23 / rows)")
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _resumable(p):
    """--resume and --force of the commands that write a result into --out."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the interrupted curve saved in --out (curve.npz; the "
                            "same table and options) and save the whole curve there")
    group.add_argument("--force", action="store_true",
                       help="overwrite a result already in --out (without it, that is an "
                            "error)")


def _input(p):
    p.add_argument("input", help="joint table p(x,y) or counts: .npy, .npz (key p_xy or counts, "
                                 "or one unnamed array) or .csv (rows x, columns y, comma "
                                 "separated, no header). All-zero rows and columns are dropped")
    p.add_argument("--normalize", "--counts", dest="normalize", action="store_true",
                   help="rescale the table to sum to 1 (counts, or a table further off 1 than "
                        "float32 rounding; integer tables not summing to 1 are treated as "
                        "counts anyway)")


def register(sub) -> None:
    p = sub.add_parser("demo", help="trace the IB curve of a built-in problem (the quick tour)",
                       description="Trace the whole IB curve of a built-in problem, print its "
                                   "phase transitions and a table, and write curve.npz, "
                                   "transitions.json and curve.png. Takes seconds.")
    p.add_argument("--problem", default="birth", choices=DEMO_PROBLEMS,
                   help="which built-in problem (default: birth)")
    p.add_argument("--out", default="ibsolver-demo", help="output folder (default ./ibsolver-demo)")
    _resumable(p)
    _common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("curve", help="trace the IB curve of a joint table and save it",
                       description="Trace the IB curve of INPUT by forward and reverse "
                                   "annealing and write curve.npz, transitions.json and "
                                   "curve.png to --out. Ctrl-C or SIGTERM stops and saves "
                                   "what was traced (exit 130); --resume continues it.")
    _input(p)
    p.add_argument("--out", required=True, help="output folder")
    _resumable(p)
    _common(p)
    p.set_defaults(func=cmd_curve)

    p = sub.add_parser("transitions", help="print the phase transitions of a joint table",
                       description="Locate the phase transitions (splits, births, jumps) of "
                                   "the IB curve of INPUT and print them.")
    _input(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _common(p)
    p.set_defaults(func=cmd_transitions)

    p = sub.add_parser("solve", help="solve the IB at one beta",
                       description="Solve the (generalised) IB of INPUT at one beta from a "
                                   "random start and print the result (bits).")
    _input(p)
    p.add_argument("--beta", type=_real_arg(0.0), required=True,
                   help="trade-off parameter beta >= 0")
    p.add_argument("--alpha", type=_real_arg(0.0), default=1.0,
                   help="generalised IB alpha (1: IB, 0: deterministic IB)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initial encoder")
    p.add_argument("--out", help="save the result to this .npz file (read it with "
                                 "ibsolver.IBResult.load; its x_index and y_index are the rows "
                                 "and columns of INPUT that the encoder and decoder are for)")
    _common(p, curve=False)
    p.set_defaults(func=cmd_solve)
