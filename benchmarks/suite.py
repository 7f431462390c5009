"""Benchmark suite: whole IB curves of seeded, named problems nobody tuned for.

For each problem (random Dirichlet(1) joints, a near-deterministic rule, a sparse table, a
document-like counts table, discretised Gaussians; ``--list`` names them) it measures

* ``ib_curve(p, n_threads=1, locate_transitions=False)`` ("curve only") and
  ``ib_curve(p, n_threads=1)`` ("located"), otherwise at their defaults (``max_clusters=64``
  on the problems marked for it, where ``ib_curve`` has that parameter): time, number of
  points, clusters at the top, total BA iterations, whether every point converged, and the
  peak resident memory of the process that ran it;
* embo (``pip install embo``) at the same betas as our curve (its own linear grid, as in
  bench_curve.py, where our curve did not finish);
* on the sparse and counts tables, sequential IB (``pip install sib-clustering``) with hard
  clusters for k = 2, 4, ..., 64: its time and the exact (I(X;T), I(T;Y)) of each
  clustering, and how far each lies below our curve (negative: our curve is beaten);
* each method's deficit: the largest distance (bits) of its points below the upper concave
  envelope of every point any method found on that problem, and (0, 0). Our two runs are
  scored apart (they should find the same curve); the table shows the worse.

Every measurement runs in a fresh process (this script with ``--worker``) under a wall-clock
limit (``--limit``, default 60 s): a run past it is killed and shown as "> limit"; one that
would map more than 3/4 of physical memory reports "out of memory". Times are of the call
alone (not imports or building the problem). One run each: our times are medians only with
``--repeats`` > 1; embo and sib always run once. The table's peak MB is the largest peak
resident memory of our solver's runs on the problem (the JSON has each run's, embo's and
sib's too). Run one suite at a time on a quiet machine: every process is held to one thread.

    python benchmarks/suite.py --list
    python benchmarks/suite.py [--problems gaussian-24 dirichlet-512x4 ...] [--limit 60]
        [--repeats 1] [--skip-embo] [--skip-located] [--out benchmarks/suite-results.json]
    python benchmarks/suite.py --scaling [--limit 60]

``--scaling`` times the curve alone (``max_clusters=64`` where supported) on Dirichlet(1)
tables n x 4, n = 256 ... 16384, up to the first size past the limit, and fits the exponent
of time against n on log-log axes; then the same against the number of non-zeros on sparse
tables of one shape, if ``ib_curve`` accepts scipy.sparse input.

Prints a markdown table (one row per problem), a table for sib, and writes every number,
including the points of each method, as JSON (``--out``).
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

import ibsolver
from bench_curve import beta_grid, deficit, problem as dirichlet
from ibsolver.envelope import interpolate_envelope, upper_concave_envelope
from ibsolver.gaussian import discretize_gaussian

SUITE = ["dirichlet-512x4", "dirichlet-1024x4", "dirichlet-4096x4", "dirichlet-2048x8",
         "dirichlet-256x16", "dirichlet-512x64", "dirichlet-200x200", "neardet-512x8",
         "sparse-512x16", "counts-5000x1000", "gaussian-24", "gaussian-100", "gaussian-300"]
#: problems whose curves are run with max_clusters=64 (where ib_curve has it): the reverse
#: branch would otherwise start with one cluster per distinct row
CAPPED = {"counts-5000x1000"}
SIB_KS = (2, 4, 8, 16, 32, 64)  # sIB's cluster counts, one process each
MAX_CLUSTERS = 64
SCALING_NS = [256 * 2 ** i for i in range(7)]  # n x 4 tables, n = 256 ... 16384
#: one shape, growing density: about 5e3 to 1.7e5 non-zeros
SCALING_SPARSE = ("sparse-4096x256-d{:g}", [0.005, 0.01, 0.02, 0.04, 0.08, 0.16])
#: seconds a child may take beyond --limit for imports and building its problem before the
#: parent kills it (the child's own timer covers the measured call)
SETUP_GRACE = 120.0
#: a child may map at most this share of physical memory: embo's n_x^2 |Y| arrays on large
#: tables then fail with MemoryError instead of taking the machine down
MEMORY_SHARE = 0.75
#: one thread everywhere, so every tool gets the same single core (2-core development machine)
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
             "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


# ---------------------------------------------------------------- problems

def neardet(n_x: int, n_y: int, seed: int = 0) -> np.ndarray:
    """Each row's p(y|x) concentrated on one y (Dirichlet(0.05)), p(x) Dirichlet(1)."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(n_x))[:, None] * rng.dirichlet(np.full(n_y, 0.05), size=n_x)


def sparse_joint(n_x: int, n_y: int, density: float, seed: int = 0) -> sp.csr_matrix:
    """Dirichlet(1) joint with a random share 1 - density of zeros, renormalised."""
    rng = np.random.default_rng(seed)
    keep = rng.random((n_x, n_y)) < density
    # the solver rejects all-zero rows and columns: give each one a random entry
    empty_rows = np.flatnonzero(~keep.any(axis=1))
    keep[empty_rows, rng.integers(n_y, size=empty_rows.size)] = True
    empty_cols = np.flatnonzero(~keep.any(axis=0))
    keep[rng.integers(n_x, size=empty_cols.size), empty_cols] = True
    p = rng.dirichlet(np.ones(n_x * n_y)).reshape(n_x, n_y) * keep
    return sp.csr_matrix(p / p.sum())


def counts_table(n_docs: int, n_words: int, seed: int = 0, n_topics: int = 20,
                 words_per_doc: int = 10) -> sp.csr_matrix:
    """Document x word counts, about 1% non-zero: topics are Zipf weights over permuted
    words; a document mixes topics (Dirichlet(0.1)), draws 10 distinct words from the
    mixture and gives each 1 + its multinomial share of 20 more tokens."""
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, n_words + 1)
    topics = np.array([zipf[rng.permutation(n_words)] for _ in range(n_topics)])
    topics /= topics.sum(axis=1, keepdims=True)
    rows, cols, vals = [], [], []
    for d in range(n_docs):
        w = rng.dirichlet(np.full(n_topics, 0.1)) @ topics
        words = rng.choice(n_words, size=words_per_doc, replace=False, p=w)
        rows += [d] * words_per_doc
        cols += words.tolist()
        vals += (1 + rng.multinomial(2 * words_per_doc, w[words] / w[words].sum())).tolist()
    counts = sp.coo_matrix((vals, (rows, cols)), shape=(n_docs, n_words)).tocsr()
    # a word no document used would be an all-zero column: put it in a random document
    unused = np.flatnonzero(np.asarray(counts.sum(axis=0)).ravel() == 0)
    counts = counts + sp.csr_matrix((np.ones(unused.size), (rng.integers(n_docs, size=unused.size),
                                                            unused)), shape=counts.shape)
    return counts.astype(np.float64)


FAMILIES = {  # name pattern -> builder of the table (a joint, or counts for counts-*)
    r"dirichlet-(\d+)x(\d+)": lambda n, m: dirichlet(int(n), int(m)),
    r"neardet-(\d+)x(\d+)": lambda n, m: neardet(int(n), int(m)),
    r"sparse-(\d+)x(\d+)(?:-d([\d.]+))?": lambda n, m, d: sparse_joint(int(n), int(m),
                                                                        float(d or 0.2)),
    r"counts-(\d+)x(\d+)": lambda n, m: counts_table(int(n), int(m)),
    r"gaussian-(\d+)": lambda n: discretize_gaussian(0.8, int(n), int(n)),
}


def family(name: str):
    """The builder of a named problem and its arguments (the numbers in the name)."""
    for pattern, builder in FAMILIES.items():
        match = re.fullmatch(pattern, name)
        if match:
            return builder, match.groups()
    raise SystemExit(f"unknown problem {name!r}; --list shows the suite, and names follow "
                     f"the patterns {list(FAMILIES)}")


def build(name: str):
    """The seeded table of a named problem: dense, or scipy.sparse for sparse-* and counts-*."""
    builder, numbers = family(name)
    return builder(*numbers)


def joint(table) -> np.ndarray:
    """The table as a dense joint p(x, y) that sums to 1."""
    dense = table.toarray() if sp.issparse(table) else np.asarray(table)
    return dense / dense.sum()


@dataclass(frozen=True)
class Solver:
    """What this version of ib_curve takes, found once by the parent and passed to children."""

    sparse: bool        # accepts a scipy.sparse joint
    max_clusters: bool  # has the max_clusters parameter

    @classmethod
    def inspect(cls) -> "Solver":
        small = sp.csr_matrix(np.array([[0.3, 0.1], [0.1, 0.2], [0.05, 0.25]]))
        try:
            ibsolver.ib_curve(small, n_threads=1)
            sparse = True
        except Exception:  # whatever the reason, sparse input does not work
            sparse = False
        return cls(sparse, "max_clusters" in inspect.signature(ibsolver.ib_curve).parameters)

    def curve_options(self, locate: bool, capped: bool) -> dict:
        options = {"locate_transitions": locate}
        if capped and self.max_clusters:
            options["max_clusters"] = MAX_CLUSTERS
        return options


# ---------------------------------------------------------------- what a child measures

def measure_curve(table, task) -> dict:
    p = sp.csr_matrix(joint(table)) if task["sparse"] else joint(table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ibsolver.ConvergenceWarning)  # converged says it
        t0 = time.perf_counter()
        curve = ibsolver.ib_curve(p, n_threads=1, **task["options"])
        seconds = time.perf_counter() - t0
    return {"time_s": seconds, "points": int(curve.beta.size),
            "clusters_top": int(curve.n_clusters[-1]), "iterations": int(curve.n_iter.sum()),
            "converged": bool(curve.converged.all()), "accuracy": float(curve.accuracy),
            "beta": curve.beta.tolist(), "i_xt": curve.i_xt.tolist(), "i_ty": curve.i_ty.tolist(),
            "envelope_i_xt": curve.envelope_i_xt.tolist(),
            "envelope_i_ty": curve.envelope_i_ty.tolist()}


def measure_embo(table, task) -> dict:
    """embo's own per-beta solver and monotone filter (what its InformationBottleneck does,
    at our betas instead of its linear grid)."""
    from embo import InformationBottleneck
    from embo.utils import compute_upper_bound

    p = joint(table)
    p_x, p_y, p_y_given_x = p.sum(axis=1), p.sum(axis=0), p.T / p.sum(axis=1)
    np.random.seed(0)  # embo draws its starts from the global generator
    t0 = time.perf_counter()
    # embo's beta multiplies I(M;Y) in nats against I(M;X) in bits: ours * ln 2
    points = [InformationBottleneck.beta_iter(1, b * np.log(2), p_x, p_y, p_y_given_x, p_x.size,
                                              restarts=3, iterations=100)
              for b in task["betas"]]
    bound, _ = compute_upper_bound([q[0] for q in points], [q[1] for q in points])
    seconds = time.perf_counter() - t0
    return {"time_s": seconds, "i_xt": np.ravel(bound[:, 0]).tolist(),
            "i_ty": np.ravel(bound[:, 1]).tolist()}


def measure_sib(table, task) -> dict:
    """sIB's hard clustering into k clusters, scored exactly as an encoder of p(x, y)."""
    from sib import SIB

    t0 = time.perf_counter()
    # uniform_prior=False: the rows keep their mass p(x) (counts for counts-*)
    labels = SIB(n_clusters=task["k"], random_state=0, n_jobs=1,
                 uniform_prior=False).fit(sp.csr_matrix(table)).labels_
    seconds = time.perf_counter() - t0
    _, labels = np.unique(labels, return_inverse=True)  # an empty cluster is no cluster
    info = ibsolver.encoder_information(joint(table), np.eye(labels.max() + 1)[labels])
    return {"time_s": seconds, "clusters": int(labels.max() + 1), "i_xt": [info["i_xt"]],
            "i_ty": [info["i_ty"]]}


MEASURES = {"curve": measure_curve, "embo": measure_embo, "sib": measure_sib}


def worker(task_path: str) -> None:
    """Child: build the problem, measure once under the time limit, write the result."""
    with open(task_path) as fh:
        task = json.load(fh)
    memory = int(MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    table = build(task["problem"])
    # SIGALRM's default action ends the process, even inside compiled code
    signal.setitimer(signal.ITIMER_REAL, task["limit"])
    try:
        result = {"status": "ok", **MEASURES[task["kind"]](table, task)}
    except MemoryError:
        result = {"status": "out of memory"}
    except ImportError as exc:
        result = {"status": "not installed", "error": str(exc)}
    except Exception as exc:  # reported in the table, not hidden
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    signal.setitimer(signal.ITIMER_REAL, 0)
    with open(task["out"], "w") as fh:
        json.dump(result, fh)


# ---------------------------------------------------------------- the parent

def run_child(task: dict, limit: float) -> dict:
    """Run one measurement in a fresh process; kill it past the limit. Adds peak_mb."""
    with tempfile.TemporaryDirectory() as tmp:
        task = {**task, "limit": limit, "out": os.path.join(tmp, "result.json")}
        task_path = os.path.join(tmp, "task.json")
        with open(task_path, "w") as fh:
            json.dump(task, fh)
        with open(os.path.join(tmp, "stderr"), "w+") as err:
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker",
                                     task_path], env=CHILD_ENV, stdout=subprocess.DEVNULL,
                                    stderr=err, start_new_session=True)
            status, usage, killed = wait_or_kill(proc, limit + SETUP_GRACE)
            err.seek(0)
            stderr = err.read()
        # wait4's ru_maxrss of the child is its own getrusage(RUSAGE_SELF) peak (KiB on
        # Linux), known for killed children too
        peak_mb = usage.ru_maxrss / 1024
        if os.path.exists(task["out"]):
            with open(task["out"]) as fh:
                return {**json.load(fh), "peak_mb": peak_mb}
    signum = -os.waitstatus_to_exitcode(status)
    if killed or signum == signal.SIGALRM:
        return {"status": "timeout", "peak_mb": peak_mb}
    return {"status": "error", "peak_mb": peak_mb,
            "error": f"exit status {os.waitstatus_to_exitcode(status)}: {stderr[-2000:]}"}


def wait_or_kill(proc: subprocess.Popen, timeout: float):
    """Wait for the child (its rusage too); kill its process group past timeout or on ^C."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
                return status, usage, False
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                return status, usage, True
            time.sleep(0.05)
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def measure_repeated(task: dict, args) -> dict:
    """Our solver's measurement, the median time of --repeats runs (stops at a failure)."""
    runs = []
    for _ in range(args.repeats):
        runs.append(run_child(task, args.limit))
        if runs[-1]["status"] != "ok":
            return runs[-1]
    return {**runs[0], "time_s": float(np.median([r["time_s"] for r in runs])),
            "times_s": [r["time_s"] for r in runs],
            "peak_mb": max(r["peak_mb"] for r in runs)}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def outcome(result: dict, limit: float) -> str:
    """One measurement's result for the progress log (errors in full: the table says only
    "error")."""
    if result["status"] == "ok":
        return f"{result['time_s']:.2f} s"
    if result["status"] == "timeout":
        return f"> {limit:g} s (killed)"
    return f"{result['status']}: {result.get('error', '')}".rstrip(": ")


def run_problem(name: str, solver: Solver, args) -> dict:
    table = build(name)
    row = {"problem": name, "shape": list(table.shape),
           "nnz": int(table.nnz if sp.issparse(table) else np.count_nonzero(table)),
           "sparse_passed": solver.sparse and sp.issparse(table)}
    runs = {"curve_only": False} if args.skip_located else {"curve_only": False, "located": True}
    for key, locate in runs.items():
        options = solver.curve_options(locate, capped=name in CAPPED)
        row[key] = {"options": options, **measure_repeated(
            {"problem": name, "kind": "curve", "options": options,
             "sparse": row["sparse_passed"]}, args)}
        log(f"{name}: {key} {outcome(row[key], args.limit)}")
    # our curve for embo's betas and sIB's gaps: the default (located) call's, where it finished
    curve = next((row[k] for k in ("located", "curve_only")
                  if row.get(k, {}).get("status") == "ok"), None)
    if not args.skip_embo:
        row["embo"] = run_embo(name, table, curve, args)
    if sp.issparse(table):  # sIB is for sparse count-like data: the sparse-* and counts-* tables
        row["sib"] = run_sib(name, table, curve, args)
    add_deficits(row)
    return row


def run_embo(name: str, table, curve: dict | None, args) -> dict:
    if importlib.util.find_spec("embo") is None:
        return {"status": "not installed"}
    # at our curve's betas; where it did not finish, at bench_curve's linear grid
    betas = curve["beta"] if curve else beta_grid(joint(table)).tolist()
    result = {"betas": "curve" if curve else "bench_curve.beta_grid",
              **run_child({"problem": name, "kind": "embo", "betas": betas}, args.limit)}
    log(f"{name}: embo {outcome(result, args.limit)}")
    return result


def run_sib(name: str, table, curve: dict | None, args) -> dict:
    if importlib.util.find_spec("sib") is None:
        return {"status": "not installed"}
    runs = {}
    for k in SIB_KS:
        if k > table.shape[0]:  # sIB needs at least k rows
            break
        runs[k] = run_child({"problem": name, "kind": "sib", "k": k}, args.limit)
        log(f"{name}: sib k={k} {outcome(runs[k], args.limit)}")
        if runs[k]["status"] == "ok" and curve:
            i_xt, i_ty = runs[k]["i_xt"][0], runs[k]["i_ty"][0]
            below = float(interpolate_envelope(curve["envelope_i_xt"], curve["envelope_i_ty"],
                                               i_xt)) - i_ty
            runs[k]["below_curve_bits"] = below
            if below < -1e-12:
                log(f"!!! {name}: sIB with k={k} lies {-below:.3g} bit ABOVE our curve "
                    f"(I(X;T)={i_xt:.6g}, I(T;Y)={i_ty:.6g}; curve accuracy "
                    f"{curve['accuracy']:.3g} bit): our curve is beaten there !!!")
    done = [r["time_s"] for r in runs.values() if r["status"] == "ok"]
    return {"status": "ok" if done else "failed", "total_s": float(sum(done)),
            "all_finished": len(done) == len(runs), "runs": runs}


def methods(row: dict) -> dict:
    """Each method's finished runs that found points: our two runs (apart: they should find
    the same curve), embo's, sib's (one run per k)."""
    found = {k: [row[k]] for k in ("curve_only", "located", "embo")
             if row.get(k, {}).get("status") == "ok"}
    if row.get("sib", {}).get("status") == "ok":
        found["sib"] = [r for r in row["sib"]["runs"].values() if r["status"] == "ok"]
    return {m: runs for m, runs in found.items() if runs}


def add_deficits(row: dict) -> None:
    """row["deficit_bits"][method]: the largest distance of its points below the envelope of
    every point found on this problem, and (0, 0)."""
    found = methods(row)
    points = [(r["i_xt"], r["i_ty"]) for runs in found.values() for r in runs]
    env_x, env_y = upper_concave_envelope(np.concatenate([[0.0]] + [x for x, _ in points]),
                                          np.concatenate([[0.0]] + [y for _, y in points]))
    row["deficit_bits"] = {
        m: deficit(env_x, env_y, np.concatenate([r["i_xt"] for r in runs]),
                   np.concatenate([r["i_ty"] for r in runs]))
        for m, runs in found.items()}


# ---------------------------------------------------------------- tables

def markdown(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def cell_time(result: dict | None, limit: float) -> str:
    if result is None:
        return "skipped"
    if result["status"] == "ok":
        return f"{result['time_s']:.2f}"
    return f"> {limit:g}" if result["status"] == "timeout" else result["status"]


def cell_bits(value) -> str:
    return "-" if value is None else f"{value:.1e}"


def problem_table(rows: list, limit: float) -> str:
    header = ["problem", "shape", "nnz", "curve-only s", "located s", "located/curve",
              "points", "clusters at top", "iterations", "all converged", "deficit [bit]",
              "peak MB", "embo s", "embo deficit"]
    out = []
    for r in rows:
        only, located = r["curve_only"], r.get("located")
        ours = [x for x in (only, located) if x is not None]
        curve = next((x for x in ours if x["status"] == "ok"), None)  # same curve either way
        ratio = (f"{located['time_s'] / only['time_s']:.1f}"
                 if located and located["status"] == only["status"] == "ok" else "-")
        out.append([r["problem"], "x".join(map(str, r["shape"])), r["nnz"],
                    cell_time(only, limit), cell_time(located, limit), ratio,
                    *((curve["points"], curve["clusters_top"], curve["iterations"],
                       "yes" if curve["converged"] else "**no**") if curve else ["-"] * 4),
                    cell_bits(max((r["deficit_bits"][k] for k in ("curve_only", "located")
                                   if k in r["deficit_bits"]), default=None)),
                    f"{max(x['peak_mb'] for x in ours):.0f}", embo_time(r.get("embo"), limit),
                    cell_bits(r["deficit_bits"].get("embo"))])
    return markdown(header, out) + (f"\n\n{OWN_GRID}: our curve did not finish, so embo ran at "
                                    "bench_curve's linear grid and its deficit is against embo's "
                                    "and sib's points only" if OWN_GRID in str(out) else "")


OWN_GRID = "(own grid)"


def embo_time(result: dict | None, limit: float) -> str:
    cell = cell_time(result, limit)
    own_grid = result is not None and result.get("betas") == "bench_curve.beta_grid"
    return f"{cell} {OWN_GRID}" if own_grid else cell


def sib_table(rows: list, limit: float) -> str:
    header = ["problem", "k", "sib s", "clusters", "I(X;T) [bit]", "I(T;Y) [bit]",
              "below our curve [bit]"]
    out = []
    for r in rows:
        sib = r.get("sib")
        if sib is None:
            continue
        if "runs" not in sib:
            out.append([r["problem"], "-", sib["status"], "-", "-", "-", "-"])
            continue
        for k, run in sib["runs"].items():
            if run["status"] != "ok":
                out.append([r["problem"], k, cell_time(run, limit), "-", "-", "-", "-"])
                continue
            below = run.get("below_curve_bits")
            out.append([r["problem"], k, f"{run['time_s']:.2f}", run["clusters"],
                        f"{run['i_xt'][0]:.4f}", f"{run['i_ty'][0]:.4f}",
                        "no curve" if below is None else
                        f"**{below:.1e} (beaten)**" if below < -1e-12 else f"{below:.1e}"])
        out.append([r["problem"], "total", f"{sib['total_s']:.2f}"
                    + ("" if sib["all_finished"] else " (finished runs)"), "", "", "", ""])
    return markdown(header, out)


# ---------------------------------------------------------------- scaling

def scaling(solver: Solver, args) -> dict:
    """Curve-only time against n (dense n x 4) and against nnz (sparse, if accepted)."""
    runs = {"n": [(f"dirichlet-{n}x4", n) for n in SCALING_NS]}
    if solver.sparse:
        pattern, densities = SCALING_SPARSE
        runs["nnz"] = [(pattern.format(d), build(pattern.format(d)).nnz) for d in densities]
    else:
        log("ib_curve does not accept scipy.sparse input: nnz scaling skipped")
    out = {}
    for axis, problems in runs.items():
        points = []
        for name, size in problems:
            options = solver.curve_options(locate=False, capped=True)
            result = measure_repeated({"problem": name, "kind": "curve", "options": options,
                                       "sparse": axis == "nnz"}, args)
            points.append({"problem": name, "size": size, **result})
            log(f"{name}: {outcome(result, args.limit)}")
            if result["status"] == "timeout":  # larger sizes take longer still
                log(f"larger {axis} sizes not run")
                break
        done = [(p["size"], p["time_s"]) for p in points if p["status"] == "ok"]
        # least squares on log-log axes over the sizes that finished
        exponent = (float(np.polyfit(*np.log(np.array(done).T), 1)[0]) if len(done) >= 2
                    else None)
        out[axis] = {"points": points, "exponent": exponent}
        print(f"\n### time vs {axis}\n")
        print(markdown(["problem", axis, "curve-only s", "peak MB"],
                       [[p["problem"], p["size"], cell_time(p, args.limit),
                         f"{p['peak_mb']:.0f}"] for p in points]))
        print(f"\nexponent of time vs {axis} (log-log least squares over {len(done)} sizes): "
              + ("-" if exponent is None else f"{exponent:.2f}"))
    return out


# ---------------------------------------------------------------- command line

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=SUITE, metavar="NAME")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=1, help="median of this many runs "
                        "for our times (embo and sib run once)")
    parser.add_argument("--skip-embo", action="store_true")
    parser.add_argument("--skip-located", action="store_true")
    parser.add_argument("--list", action="store_true", help="name the suite's problems")
    parser.add_argument("--scaling", action="store_true", help="time against n and nnz")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__),
                                                      "suite-results.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    if args.list:
        for name in SUITE:
            table = build(name)
            notes = [n for n, on in (("max_clusters=64", name in CAPPED),
                                     ("sib", sp.issparse(table))) if on]
            print(f"{name:20} {table.shape[0]}x{table.shape[1]}"
                  + (f"  ({', '.join(notes)})" if notes else ""))
        return None

    for name in args.problems:
        family(name)  # an unknown name stops here, before anything runs
    solver = Solver.inspect()
    log(f"ib_curve: sparse input {'accepted' if solver.sparse else 'not accepted'}, "
        f"max_clusters {'supported' if solver.max_clusters else 'not supported'}; "
        f"limit {args.limit:g} s per measurement")
    report = {"limit_s": args.limit, "repeats": args.repeats, "solver": vars(solver),
              "version": ibsolver.__version__}
    if args.scaling:
        report["scaling"] = scaling(solver, args)
    else:
        rows = [run_problem(name, solver, args) for name in args.problems]
        report["problems"] = rows
        print(problem_table(rows, args.limit))
        if any("sib" in r for r in rows):
            print("\nsequential IB (sib-clustering), hard clusters\n")
            print(sib_table(rows, args.limit))
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1)
    log(f"wrote {args.out}")
    return None


if __name__ == "__main__":
    main()
