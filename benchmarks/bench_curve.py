"""Whole-curve benchmark: ibsolver (each backend) against embo on the same seeded problems.

For each problem (random p(x, y), numpy seed 0) and 60 betas, prints wall time (median of
--repeats for ibsolver, one run for embo: it is slow), the number of points returned, and
each tool's largest deficit below a high-accuracy reference curve (ibsolver's refined curve
with tight tolerances): max over returned points of reference(I(X;T)) - I(T;Y), in bits.
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


def problem(n_x: int, n_y: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(n_x * n_y)).reshape(n_x, n_y)


def beta_grid(p_xy: np.ndarray, n: int = 60) -> np.ndarray:
    """60 betas spanning the curve: linear from 1 to 40/s2^2, as embo spaces them."""
    return np.linspace(1.0, 40.0 * ibsolver.first_instability(p_xy), n)


def deficit(reference, i_xt, i_ty) -> float:
    return float(np.max(reference.bound(np.asarray(i_xt)) - np.asarray(i_ty)))


def run_ibsolver(p_xy, betas, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ibsolver.ConvergenceWarning)
        t0 = time.perf_counter()
        curve = ibsolver.ib_curve(p_xy, betas=betas, backend=backend)
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
    parser.add_argument("--no-embo", action="store_true", help="skip embo (not installed / slow)")
    parser.add_argument("--out", help="write the table as JSON")
    args = parser.parse_args(argv)

    rows = []
    for size in args.sizes.split(","):
        n_x, n_y = (int(s) for s in size.split("x"))
        p_xy = problem(n_x, n_y)
        betas = beta_grid(p_xy)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ibsolver.ConvergenceWarning)
            reference = ibsolver.ib_curve(p_xy, tol=1e-13, curve_tol=1e-7, max_points=600)
        print(f"{size}: reference curve {reference.beta.size} betas in "
              f"{time.perf_counter() - t0:.1f} s")
        for backend in ibsolver.available_backends():
            times = []
            for _ in range(args.repeats):
                t, i_xt, i_ty = run_ibsolver(p_xy, betas, backend)
                times.append(t)
            rows.append({"size": size, "tool": f"ibsolver[{backend}]", "time_s": float(np.median(times)),
                         "points": int(i_xt.size), "deficit_bits": deficit(reference, i_xt, i_ty)})
        if not args.no_embo:
            try:
                t, i_x, i_y = run_embo(p_xy, betas)
                rows.append({"size": size, "tool": "embo", "time_s": t, "points": int(i_x.size),
                             "deficit_bits": deficit(reference, i_x, i_y)})
            except ImportError:
                print("embo is not installed (pip install 'ibsolver[bench]'); skipped")
    embo = {r["size"]: r["time_s"] for r in rows if r["tool"] == "embo"}
    print(f"\n{'size':>8} {'tool':>16} {'time [s]':>9} {'x embo':>8} {'points':>6} {'deficit [bit]':>13}")
    for r in rows:
        speed = embo[r["size"]] / r["time_s"] if r["size"] in embo else float("nan")
        r["speedup_vs_embo"] = speed
        print(f"{r['size']:>8} {r['tool']:>16} {r['time_s']:9.3f} {speed:8.1f} {r['points']:6d} "
              f"{r['deficit_bits']:13.2e}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
