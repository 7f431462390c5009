"""Time one fused Blahut-Arimoto iteration per backend, beside the objective it reaches.

For every size n_x x n_t x n_y the same seeded p(x, y) and the same random initial encoder
are given to every available backend. A timing sample runs ``run_iterations`` for a few
iterations with tol=0 (enough for about 10 ms) and divides by the iterations done; the table
shows the median over ``--repeats`` samples (after a warm-up), taken in turns across the
backends so that a busy machine slows all of them alike. The last column is the Lagrangian
reached by ``ibsolver.solve(..., init=q0, max_iter=200, tol=0)`` from that start, in bits:
a backend that is fast but wrong shows there.

numpy gets its thread count through threadpoolctl (BLAS threads; its element-wise work is
single-threaded whatever the setting); without threadpoolctl its thread column is nominal.

    python benchmarks/bench_iteration.py
    python benchmarks/bench_iteration.py --sizes 64x64x8,1024x256x64 --repeats 31 --out results.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import ibsolver  # noqa: E402
from ibsolver.backends import get_backend  # noqa: E402
from ibsolver.solve import Problem, State, random_encoder  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None

DEFAULT_SIZES = "64x64x8,1024x1024x2,4096x256x2,1024x256x64"
SAMPLE_SECONDS = 0.01  # target duration of one timing sample
LAGRANGIAN_ITERS = 200


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    sizes = []
    for item in text.split(","):
        parts = item.lower().strip().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise SystemExit(f"--sizes: expected n_x x n_t x n_y like 64x64x8 (got {item!r})")
        sizes.append(tuple(int(p) for p in parts))
    return sizes


def make_case(n_x: int, n_t: int, n_y: int, seed: int):
    """Seeded p(x, y) (Dirichlet(1) over all cells) and initial encoder q0 (Dirichlet rows)."""
    rng = np.random.default_rng([seed, n_x, n_t, n_y])
    p_xy = rng.dirichlet(np.ones(n_x * n_y)).reshape(n_x, n_y)
    q0 = random_encoder(n_x, n_t, rng)
    return p_xy, q0


def thread_limit(backend: str, threads: int):
    if backend == "numpy" and threadpool_limits is not None:
        return threadpool_limits(limits=threads, user_api="blas")
    return contextlib.nullcontext()


def time_backends(names, problem, state, beta, alpha, threads, repeats):
    """Median seconds per iteration for each backend, samples interleaved across backends."""
    args = (problem.p_x, problem.p_y_given_x, state.log_p_t, state.log_p_y_given_t,
            beta, alpha)
    inner = {}
    for name in names:  # warm up (JIT, caches) and size the samples
        kernel = get_backend(name)
        with thread_limit(name, threads):
            kernel.run_iterations(*args, 2, 0.0, threads)
            start = time.perf_counter()
            done = kernel.run_iterations(*args, 3, 0.0, threads)[2]
            per_iter = (time.perf_counter() - start) / done
        inner[name] = max(1, min(1000, int(SAMPLE_SECONDS / max(per_iter, 1e-9))))
    samples = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            kernel = get_backend(name)
            with thread_limit(name, threads):
                start = time.perf_counter()
                done = kernel.run_iterations(*args, inner[name], 0.0, threads)[2]
                samples[name].append((time.perf_counter() - start) / done)
    medians = {name: statistics.median(s) for name, s in samples.items()}
    return medians, {name: min(s) for name, s in samples.items()}, inner


def lagrangian_after(name, p_xy, q0, beta, alpha, threads):
    with thread_limit(name, threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ibsolver.ConvergenceWarning)  # tol=0 never converges
        res = ibsolver.solve(p_xy, beta, alpha=alpha, init=q0, backend=name,
                             max_iter=LAGRANGIAN_ITERS, tol=0.0, n_threads=threads)
    return float(res.lagrangian)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help=f"comma-separated n_x x n_t x n_y (default {DEFAULT_SIZES})")
    parser.add_argument("--repeats", type=int, default=21,
                        help="timing samples per row (default 21)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--backends", default=None,
                        help="comma-separated subset of the available backends")
    parser.add_argument("--beta", type=float, default=50.0,
                        help="trade-off (default 50: past the first transition at every "
                             "default size)")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the table as JSON here")
    opts = parser.parse_args(argv)
    if opts.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    sizes = parse_sizes(opts.sizes)
    threads_list = [int(t) for t in opts.threads.split(",")]
    names = ibsolver.available_backends()
    if opts.backends:
        wanted = opts.backends.split(",")
        missing = [b for b in wanted if b not in names]
        if missing:
            raise SystemExit(f"--backends: not available here: {missing} (available: {names})")
        names = [b for b in names if b in wanted]
    if "numpy" not in names:
        names.append("numpy")  # the reference every ratio is taken against
    order = ("numpy", "numba", "cpp")
    names.sort(key=lambda b: order.index(b) if b in order else len(order))

    from ibsolver._config import config
    info = config()
    meta = {
        "beta": opts.beta, "alpha": opts.alpha, "seed": opts.seed, "repeats": opts.repeats,
        "lagrangian_iters": LAGRANGIAN_ITERS, "backends": names,
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(), "numpy": np.__version__,
        "numba": info.get("numba"), "cpp_simd": info.get("cpp_simd"),
        "openmp": info.get("openmp"), "threadpoolctl": threadpool_limits is not None,
        "loadavg_start": os.getloadavg(),
    }
    print(f"ibsolver {ibsolver.__version__}: one BA iteration, beta={opts.beta:g}, "
          f"alpha={opts.alpha:g}, median of {opts.repeats} samples; backends {', '.join(names)}")
    print(f"cpus={os.cpu_count()}  load average at start={meta['loadavg_start'][0]:.2f}  "
          f"numpy threads via threadpoolctl: {'yes' if threadpool_limits else 'NO (nominal)'}")
    print("ms/iter: median (and min) over the samples; ratio = median time / numpy's median at "
          "the same thread count (< 1 is faster);")
    print(f"L200 = solve(...).lagrangian, H(T) - alpha H(T|X) - beta I(T;Y) in bits, after "
          f"{LAGRANGIAN_ITERS} iterations from the common start")
    header = (f"{'size':>14} {'backend':>7} {'threads':>7} {'ms/iter':>10} {'(min)':>9} "
              f"{'ratio':>7} {'speedup':>8} {'L200 (bits)':>19}")
    print(header)
    print("-" * len(header))
    rows = []
    for n_x, n_t, n_y in sizes:
        p_xy, q0 = make_case(n_x, n_t, n_y, opts.seed)
        problem = Problem.from_joint(p_xy)
        state = State.from_encoder(problem, q0)
        label = f"{n_x}x{n_t}x{n_y}"
        for threads in threads_list:
            medians, minima, inner = time_backends(names, problem, state, opts.beta, opts.alpha,
                                           threads, opts.repeats)
            for name in names:
                lag = lagrangian_after(name, p_xy, q0, opts.beta, opts.alpha, threads)
                ratio = medians[name] / medians["numpy"]
                row = {"size": label, "n_x": n_x, "n_t": n_t, "n_y": n_y, "backend": name,
                       "threads": threads, "ms_per_iter": medians[name] * 1e3,
                       "min_ms_per_iter": minima[name] * 1e3,
                       "ratio_to_numpy": ratio, "iters_per_sample": inner[name],
                       "lagrangian_bits": lag}
                rows.append(row)
                print(f"{label:>14} {name:>7} {threads:>7} {row['ms_per_iter']:>10.4f} "
                      f"{row['min_ms_per_iter']:>9.4f} {ratio:>7.3f} {1 / ratio:>7.2f}x "
                      f"{lag:>19.12f}", flush=True)
    meta["loadavg_end"] = os.getloadavg()
    print(f"load average at end={meta['loadavg_end'][0]:.2f}"
          + ("  (machine was busy: timings are noisy)" if max(meta["loadavg_end"][0],
             meta["loadavg_start"][0]) > 0.75 * (os.cpu_count() or 1) else ""))
    if opts.out:
        Path(opts.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        print(f"wrote {opts.out}")
    return rows


if __name__ == "__main__":
    main()
