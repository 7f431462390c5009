"""Whole-curve benchmark: ibsolver (each backend) against embo on the same seeded problems.

For each problem (random p(x, y), numpy seed 0) and 60 betas, prints wall time (median of
--repeats for ibsolver, one run for embo: it is slow), the number of points returned, and
each tool's largest deficit below the best curve known: the upper concave envelope of every
point any run found, plus a tight-tolerance ibsolver run at the same betas (tol 1e-12,
lagrangian_tol 1e-12). Deficit = max over a tool's points of envelope(I(X;T)) - I(T;Y), bits.
ibsolver is timed twice: the curve with its transitions located (the default) and the curve
alone (``locate_transitions=False``; the same points, transitions known to their bracket).
embo's beta multiplies I(M;Y) in nats against I(M;X) in bits, so embo's beta = ours * ln 2.

    python benchmarks/bench_curve.py [--sizes 64x8,1024x2] [--repeats 3] [--no-embo] [--out f.json]
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

import ibsolver
from ibsolver.envelope import interpolate_envelope, upper_concave_envelope


def problem(n_x: int, n_y: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(n_x * n_y)).reshape(n_x, n_y)


def beta_grid(p_xy: np.ndarray, n: int = 60) -> np.ndarray:
    """60 betas spanning the curve: linear from 1 to 40/s2^2, as embo spaces them."""
    return np.linspace(1.0, 40.0 * ibsolver.first_instability(p_xy), n)


def deficit(env_x, env_y, i_xt, i_ty) -> float:
    return float(np.max(interpolate_envelope(env_x, env_y, np.asarray(i_xt)) - np.asarray(i_ty)))


def run_ibsolver(p_xy, betas, backend, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ibsolver.ConvergenceWarning)
        t0 = time.perf_counter()
        curve = ibsolver.ib_curve(p_xy, betas=betas, backend=backend, **options)
        return time.perf_counter() - t0, curve.i_xt, curve.i_ty


def run_embo(p_xy, betas):
    from embo import InformationBottleneck

    t0 = time.perf_counter()
    ib = InformationBottleneck(pxy=p_xy, numbeta=betas.size, minbeta=betas[0] * np.log(2),
                               maxbeta=betas[-1] * np.log(2))
    i_x, i_y, _, _ = ib.get_bottleneck()
    return time.perf_counter() - t0, np.asarray(i_x), np.asarray(i_y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64x8,1024x2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", help="comma-separated subset of the available backends")
    parser.add_argument("--no-embo", action="store_true", help="skip embo (not installed / slow)")
    parser.add_argument("--out", help="write the table as JSON")
    args = parser.parse_args(argv)

    rows = []
    for size in args.sizes.split(","):
        n_x, n_y = (int(s) for s in size.split("x"))
        p_xy = problem(n_x, n_y)
        betas = beta_grid(p_xy)
        t0 = time.perf_counter()
        _, ref_x, ref_y = run_ibsolver(p_xy, betas, "auto", tol=1e-12, lagrangian_tol=1e-12,
                                       locate_transitions=False, max_iter=200_000)
        print(f"{size}: reference points in {time.perf_counter() - t0:.1f} s", flush=True)
        found = []
        backends = args.backends.split(",") if args.backends else ibsolver.available_backends()
        for backend in backends:
            for label, options in (("", {}), (" curve only", {"locate_transitions": False})):
                if backend == "numpy" and not options and n_x > 64:
                    continue  # the reference backend with located transitions: hours
                times = []
                for _ in range(args.repeats):
                    t, i_xt, i_ty = run_ibsolver(p_xy, betas, backend, **options)
                    times.append(t)
                print(f"  ibsolver[{backend}]{label}: {np.median(times):.2f} s", flush=True)
                found.append(({"size": size, "tool": f"ibsolver[{backend}]{label}",
                               "time_s": float(np.median(times)), "points": int(i_xt.size)},
                              i_xt, i_ty))
        if not args.no_embo:
            try:
                t, i_x, i_y = run_embo(p_xy, betas)
                print(f"  embo: {t:.2f} s", flush=True)
                found.append(({"size": size, "tool": "embo", "time_s": t,
                               "points": int(i_x.size)}, i_x, i_y))
            except ImportError:
                print("embo is not installed (pip install 'ibsolver[bench]'); skipped")
        env_x, env_y = upper_concave_envelope(
            np.concatenate([[0.0], ref_x] + [f[1] for f in found]),
            np.concatenate([[0.0], ref_y] + [f[2] for f in found]))
        for row, i_x, i_y in found:
            row["deficit_bits"] = deficit(env_x, env_y, i_x, i_y)
            rows.append(row)
    embo = {r["size"]: r["time_s"] for r in rows if r["tool"] == "embo"}
    print(f"\n{'size':>8} {'tool':>27} {'time [s]':>9} {'x embo':>8} {'points':>6} {'deficit [bit]':>13}")
    for r in rows:
        speed = embo[r["size"]] / r["time_s"] if r["size"] in embo else float("nan")
        r["speedup_vs_embo"] = speed
        print(f"{r['size']:>8} {r['tool']:>27} {r['time_s']:9.3f} {speed:8.1f} {r['points']:6d} "
              f"{r['deficit_bits']:13.2e}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
