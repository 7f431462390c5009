"""Thread-count benchmark: n_threads = 1, 2 and the default (None), quiet and with the other
core busy.

For each size n_x x n_t x n_y the same seeded problem and start (as in bench_iteration.py)
are iterated in calls of ``--chunk`` iterations (tol=0), the way the solver calls the
kernel; a sample is one call, and the table shows the median ms per iteration over
``--repeats`` samples (each setting in its own block, after 3 warm-up calls). The "curve" row is the
whole 1024 x 2 curve ``ib_curve(p, locate_transitions=False)`` (seconds per curve, each
sample in a fresh, spawned process so that every sample starts cold; a sample that runs past
``--curve-timeout`` counts as that many seconds and is marked ">").

Every configuration is measured twice: on the machine as it is ("quiet"), and with a
background process spinning (``while True: pass``) to keep one more core busy ("busy").
ratio = default / one thread (the default must not be more than 10% slower than one
thread when the other core is busy).

    python benchmarks/bench_threads.py
    python benchmarks/bench_threads.py --backend numba --no-curve
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ibsolver  # noqa: E402
from bench_iteration import make_case  # noqa: E402
from ibsolver.backends import get_backend  # noqa: E402
from ibsolver.solve import Problem, State  # noqa: E402

DEFAULT_SIZES = "1024x8x2,1024x64x2,4096x256x2,1024x256x64"
SETTINGS = (1, 2, None)


def _spin():
    while True:
        pass


class Spinner:
    """A process that keeps one core busy while the block runs."""

    def __init__(self, on: bool):
        self.on = on
        self.proc = None

    def __enter__(self):
        if self.on:
            self.proc = mp.get_context("fork").Process(target=_spin, daemon=True)
            self.proc.start()
            time.sleep(0.3)  # let the scheduler see it
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()


def time_size(backend, size, settings, repeats, chunk, beta, seed):
    n_x, n_t, n_y = size
    p_xy, q0 = make_case(n_x, n_t, n_y, seed)
    problem = Problem.from_joint(p_xy)
    state = State.from_encoder(problem, q0)
    args = (problem.p_x, problem.p_y_given_x, state.log_p_t, state.log_p_y_given_t, beta, 1.0)
    kernel = get_backend(backend)
    samples = {nt: [] for nt in settings}
    # one setting after the other, not interleaved: after a multi-threaded call the idle
    # OpenMP worker spins for milliseconds, which would slow the next one-thread sample
    for nt in settings:
        time.sleep(0.1)
        for _ in range(3):  # warm up (JIT, thread pool, the default's choice)
            kernel.run_iterations(*args, chunk, 0.0, nt)
        for _ in range(repeats):
            start = time.perf_counter()
            done = kernel.run_iterations(*args, chunk, 0.0, nt)[2]
            samples[nt].append((time.perf_counter() - start) / done * 1e3)
    return {nt: statistics.median(s) for nt, s in samples.items()}


def _curve_child(backend, n_threads, queue):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(2048)).reshape(1024, 2)
    start = time.perf_counter()
    ibsolver.ib_curve(p, locate_transitions=False, backend=backend, n_threads=n_threads)
    queue.put(time.perf_counter() - start)


def time_curve(backend, settings, repeats, timeout):
    """Seconds per 1024 x 2 curve; (median, any sample timed out) per setting."""
    # spawn, not fork: a child forked after this process ran OpenMP threads inherits
    # libgomp's state but not its threads (its first parallel region can hang)
    ctx = mp.get_context("spawn")
    out = {}
    samples = {nt: [] for nt in settings}
    hit = {nt: False for nt in settings}
    for _ in range(repeats):
        for nt in settings:
            if hit[nt]:  # one timeout is enough: do not spend it again
                continue
            queue = ctx.Queue()
            proc = ctx.Process(target=_curve_child, args=(backend, nt, queue))
            proc.start()
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join()
                samples[nt].append(timeout)
                hit[nt] = True
            else:
                samples[nt].append(queue.get())
    for nt in settings:
        out[nt] = (statistics.median(samples[nt]), hit[nt])
    return out


def fmt(value, timed_out=False, digits=4):
    text = f"{value:.{digits}g}"
    return (">" + text) if timed_out else text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES)
    parser.add_argument("--backend", default="cpp")
    parser.add_argument("--repeats", type=int, default=9, help="samples per size (default 9)")
    parser.add_argument("--chunk", type=int, default=50, help="iterations per call (default 50)")
    parser.add_argument("--curve-repeats", type=int, default=3)
    parser.add_argument("--curve-timeout", type=float, default=60.0)
    parser.add_argument("--no-curve", action="store_true")
    parser.add_argument("--modes", default="quiet,busy")
    parser.add_argument("--beta", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args(argv)
    sizes = [tuple(int(p) for p in s.split("x")) for s in opts.sizes.split(",") if s]

    print(f"ibsolver {ibsolver.__version__} ({ibsolver.__file__}), backend {opts.backend}, "
          f"cpus={os.cpu_count()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"sizes: median ms per iteration over {opts.repeats} calls of {opts.chunk} "
          f"iterations; curve: median s over {opts.curve_repeats} fresh processes")
    print()
    print("| problem | machine | load at start | 1 thread | 2 threads | default | "
          "default / 1 thread |")
    print("|---|---|---|---|---|---|---|")
    for mode in opts.modes.split(","):
        busy = mode == "busy"
        with Spinner(busy):
            for size in sizes:
                load = os.getloadavg()[0]
                med = time_size(opts.backend, size, SETTINGS, opts.repeats, opts.chunk,
                                opts.beta, opts.seed)
                label = "x".join(map(str, size))
                print(f"| {label} [ms/iter] | {mode} | {load:.2f} | {fmt(med[1])} | "
                      f"{fmt(med[2])} | {fmt(med[None])} | {med[None] / med[1]:.2f} |",
                      flush=True)
            if not opts.no_curve:
                load = os.getloadavg()[0]
                res = time_curve(opts.backend, SETTINGS, opts.curve_repeats,
                                 opts.curve_timeout)
                ratio = res[None][0] / res[1][0]
                print(f"| 1024x2 curve [s] | {mode} | {load:.2f} | {fmt(*res[1])} | "
                      f"{fmt(*res[2])} | {fmt(*res[None])} | "
                      f"{'>' if res[None][1] else ''}{ratio:.2f} |", flush=True)
    print()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
