"""``ibsolver infoplane``: train networks and overlay their layers on the exact IB bound.

This module must import without torch (so ``ibsolver --help`` works everywhere); torch and
the rest of :mod:`dnn` are imported inside the command.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

TASKS = ("tishby12", "var_u", "checkerboard", "digits")
DEFAULT_VAR_U = os.path.join("shared", "data", "var_u.mat")

_DESCRIPTION = """\
Train MLPs (several seeds as one batched ensemble) and record their layers on the
information plane against the exact IB bound of the same p(x, y). All information in bits.

Writes to --out: records.npz (every array), records.csv (tidy: epoch, seed, layer,
estimator, knobs, I(X;T), I(T;Y), bound, gap, losses, gradient SNR, ...), summary.json,
infoplane.png, gap.png, grad_snr.png, loss.png, sensitivity.png, and checkpoint.pt (resume
an interrupted run with --resume).

The defaults (1000 epochs, 5 seeds, 40 recorded epochs, binning) finish in about one to two
minutes on 2 CPU cores; the 3000-epoch, 10-seed run of the example below takes a few
minutes. --estimator kde is much slower (O(N^2) per layer, seed and record: about a second
at N = 4096); use --probe test or fewer --records with it.
"""

_EPILOG = """\
example:
  ibsolver infoplane --task tishby12 --activation tanh --epochs 3000 --seeds 10 --out runs/tanh
  ibsolver infoplane --task tishby12 --activation relu --out runs/relu
  ibsolver infoplane --task tishby12 --noise 2 --out runs/noisy      (needs ibsolver.ib_curve)
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "infoplane", help="train networks and overlay their layers on the IB bound (torch)",
        description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("task")
    g.add_argument("--task", choices=TASKS, default="tishby12",
                   help="tishby12: the 12-bit icosahedral rule (4096 patterns); var_u: the "
                        "original var_u.mat (--data); checkerboard, digits: sampled tasks "
                        "(default: tishby12)")
    g.add_argument("--noise", type=float, default=0.0,
                   help="tishby12 only: p(y=1|x) = sigmoid(margin / noise); 0 = the canonical "
                        "deterministic labels (default: 0)")
    g.add_argument("--data", default=None,
                   help=f"path of var_u.mat for --task var_u (default: {DEFAULT_VAR_U})")
    g = p.add_argument_group("network and training")
    g.add_argument("--widths", default=None,
                   help="layer sizes, input to output, comma-separated; the first and last must "
                        "match the task (default: the task's input size, 10,7,5,4,3, its number "
                        "of classes: 12,10,7,5,4,3,2 for tishby12)")
    g.add_argument("--activation", default="tanh", help="tanh, relu, ... (default: tanh)")
    g.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                   help="(default: adam)")
    g.add_argument("--lr", type=float, default=3e-3, help="learning rate (default: 3e-3)")
    g.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default: 0)")
    g.add_argument("--batch-size", type=int, default=256, help="(default: 256)")
    g.add_argument("--epochs", type=int, default=1000, help="(default: 1000)")
    g.add_argument("--train-fraction", type=float, default=0.85,
                   help="stratified, shuffled train split (default: 0.85)")
    g.add_argument("--seeds", default="5",
                   help="number of seeds (0..N-1) or a comma-separated list; all train as one "
                        "batched ensemble (default: 5)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split (default: 0)")
    g.add_argument("--init", choices=("uniform", "normal"), default="uniform",
                   help="uniform: PyTorch default; normal: truncated N(0, 1/fan_in), as in "
                        "Shwartz-Ziv & Tishby (default: uniform)")
    g = p.add_argument_group("recording and estimators")
    g.add_argument("--records", type=int, default=40,
                   help="number of log-spaced epochs recorded, 0 and the last included (default: 40)")
    g.add_argument("--probe", choices=("full", "train", "test"), default="full",
                   help="rows the layers are measured on (default: full)")
    g.add_argument("--estimator", choices=("binning", "kde"), default="binning",
                   help="binning (exact for the binned layer; always run) or kde (adds the "
                        "Kolchinsky-Tracey upper and lower bounds) (default: binning)")
    g.add_argument("--bins", type=int, default=30, help="bins per unit (default: 30)")
    g.add_argument("--bin-range", default="layer",
                   help="'layer' (each layer's range per epoch), 'global' (all layers') or "
                        "LO,HI fixed, e.g. -1,1 for tanh (default: layer)")
    g.add_argument("--bin-strategy", choices=("count", "width", "mass"), default="count",
                   help="count: --bins equal bins over the range; width: bins of --bin-width; "
                        "mass: equal-mass bins (default: count)")
    g.add_argument("--bin-width", type=float, default=None, help="for --bin-strategy width")
    g.add_argument("--noise-var", type=float, default=0.1,
                   help="KDE noise variance s^2 (default: 0.1)")
    g.add_argument("--bound", choices=("auto", "solver", "exact", "none"), default="auto",
                   help="the IB bound: solver or auto (ibsolver.ib_curve), exact "
                        "(min(I(X;T), H(Y)), deterministic rules only), none (default: auto)")
    g.add_argument("--sweep", default=None,
                   help="knob values for the sensitivity sweep, comma-separated (default: bins "
                        "10,30,100 over the first seed's whole trajectory, bin widths "
                        "0.5,0.2,0.1,0.05,0.01, or s^2 1e-3,1e-2,1e-1,1 at the last epoch)")
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, help="output directory, e.g. runs/NAME")
    g.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out (same arguments)")
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda (default: auto)")
    g.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; small MLPs run fastest on 1 (default: 1)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_command)


def _parse_ints(text, name):
    try:
        return [int(v) for v in str(text).split(",") if v.strip() != ""]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers (got {text!r})") from None


def _parse_floats(text, name):
    try:
        return [float(v) for v in str(text).split(",") if v.strip() != ""]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers (got {text!r})") from None


def _make_task(args):
    from .tasks.tishby12 import load_var_u, tishby12

    if args.noise != 0 and args.task != "tishby12":
        raise ValueError(f"--noise applies to --task tishby12 only (got --task {args.task})")
    if args.task == "tishby12":
        return tishby12(noise=args.noise)
    if args.task == "var_u":
        path = args.data or DEFAULT_VAR_U
        if not os.path.exists(path) and args.data is None:
            alt = os.path.join(os.sep, "work", "shared", "data", "var_u.mat")
            path = alt if os.path.exists(alt) else path
        return load_var_u(path)
    import importlib

    module = importlib.import_module(f"dnn.tasks.{args.task}")
    return getattr(module, args.task)()


def _command(args) -> int:
    try:
        import torch
    except ImportError:
        raise SystemExit("ibsolver infoplane: error: this command needs torch; install it with "
                         "pip install 'ibsolver[dnn]'") from None
    import numpy as np

    from .estimators import KDE, Binning, sensitivity
    from .infoplane import (_bound_for, check_below_bound, plot_infoplane, save_figures,
                            score_final_layers, summary, trajectory_sensitivity)
    from .train import CHECKPOINT, TrainConfig, train

    seeds_arg = str(args.seeds)
    if "," in seeds_arg:
        seeds = _parse_ints(seeds_arg, "--seeds")
    else:
        n = _parse_ints(seeds_arg, "--seeds")[0]
        if n < 1:
            raise ValueError(f"--seeds must be >= 1 (got {n})")
        seeds = list(range(n))
    task = _make_task(args)
    if args.widths is None:
        widths = [int(task.x.shape[1]), 10, 7, 5, 4, 3, int(task.n_classes)]
    else:
        widths = _parse_ints(args.widths, "--widths")
    if args.bin_range in ("layer", "global"):
        bin_range = args.bin_range
    else:
        bin_range = tuple(_parse_floats(args.bin_range, "--bin-range"))
        if len(bin_range) != 2:
            raise ValueError(f"--bin-range must be layer, global or LO,HI (got {args.bin_range!r})")
    binning = Binning(args.bins, strategy=args.bin_strategy, range=bin_range,
                      bin_width=args.bin_width)
    estimators = [binning]
    if args.estimator == "kde":
        kde_device = None if args.device == "cpu" else (
            "cuda" if args.device == "auto" and torch.cuda.is_available() else
            (None if args.device == "auto" else args.device))
        estimators.append(KDE(args.noise_var, device=kde_device))
    key = "kde_upper" if args.estimator == "kde" else "binning"
    cfg = TrainConfig(widths=tuple(widths), activation=args.activation,
                      optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
                      batch_size=args.batch_size, epochs=args.epochs,
                      train_fraction=args.train_fraction, seeds=tuple(seeds),
                      split_seed=args.split_seed, init=args.init, n_records=args.records,
                      probe=args.probe)
    out = args.out
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(out, CHECKPOINT)) and not args.resume:
        raise ValueError(f"--out {out!r} already holds a run; add --resume to continue it or "
                         "choose another --out")

    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, desc=f"{task.name} x{len(seeds)} seeds", unit="epoch",
                   file=sys.stderr, dynamic_ncols=True)

    def progress(epoch):
        if bar is not None:
            bar.update(epoch - bar.n)

    t0 = time.perf_counter()
    try:
        result = train(task, cfg, out_dir=out, resume=args.resume, device=args.device,
                       estimators=estimators, keep_activations=1, callback=progress,
                       n_threads=args.threads)
    finally:
        if bar is not None:
            bar.close()
    t_train = time.perf_counter() - t0

    bound = None
    if args.bound != "none":
        t_bound = time.perf_counter()
        try:
            bound = _bound_for(result, method=args.bound)
        except NotImplementedError as exc:
            print(f"ibsolver infoplane: warning: no IB bound: {exc}", file=sys.stderr)
        t_bound = time.perf_counter() - t_bound
    check = None
    if bound is not None:
        check = check_below_bound(result, "binning", bound, on_violation="flag")

    # sensitivity: trajectories of the first seed for each knob value
    t1 = time.perf_counter()
    sweep_est = args.estimator
    values = _parse_floats(args.sweep, "--sweep") if args.sweep else None
    if sweep_est == "binning":
        if values is not None and args.bin_strategy != "width":
            values = [int(v) for v in values]
        knobs = {"strategy": args.bin_strategy, "range": bin_range}
        if args.bin_strategy == "width":
            knobs.pop("range")
        if values is None and args.bin_strategy != "width":
            values = [10, 30, 100]
        sweeps = trajectory_sensitivity(result, estimator="binning", values=values, **knobs)
        fig_sweep = sweeps[0]
        sens_summary = [{"estimator": s["estimator"], "knob": s["knob"],
                         "values": list(s["values"]), "layers": list(result.layers),
                         "final_i_xt_bits": s["i_xt"][:, -1, :].tolist(),
                         "final_i_ty_bits": s["i_ty"][:, -1, :].tolist(),
                         "max_spread_xt_bits": float(np.ptp(s["i_xt"], axis=0).max()),
                         "max_spread_ty_bits": float(np.ptp(s["i_ty"], axis=0).max())}
                        for s in sweeps]
    else:  # KDE: final epoch only (O(N^2) per value)
        acts = {layer: result.final_activations[layer][0] for layer in result.layers}
        sens = sensitivity(acts, result.probe_p_xy, estimator="kde", values=values)
        fig_sweep = sens
        sens_summary = [s.as_dict() for s in sens]
    t_sweep = time.perf_counter() - t1

    bound_fn = bound if bound is not None else None
    paths = {"npz": result.save_npz(os.path.join(out, "records.npz")),
             "csv": result.write_csv(os.path.join(out, "records.csv"), bound=bound_fn)}
    paths.update(save_figures(result, out, key=key, bound=bound, sensitivity=fig_sweep))
    if args.estimator == "kde":
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        for other in ("binning", "kde_lower"):
            fig = Figure(figsize=(7.5, 5.2), layout="constrained")
            FigureCanvasAgg(fig)
            plot_infoplane(result, other, bound, ax=fig.subplots(), show_bound=bound is not None)
            path = os.path.join(out, f"infoplane_{other}.png")
            fig.savefig(path, dpi=120)
            paths[f"infoplane_{other}"] = path

    summ = summary(result, key, bound, check)
    if bound is not None and bound.curve is not None:
        # the solver's own verdict on each binned final layer of the first seed
        summ["solver_scores_seed0"] = score_final_layers(result, bound, binning)
    if key != "binning":
        summ["binning"] = summary(result, "binning", bound, check)["layers"]
    summ["config"] = cfg.to_dict()
    summ["estimators"] = result.estimators
    summ["sensitivity"] = sens_summary
    summ["timing_s"] = {"train_and_record": t_train, "sensitivity": t_sweep,
                        "bound": t_bound if args.bound != "none" else 0.0}
    summ["files"] = {k: os.path.basename(v) for k, v in paths.items()}
    summ["task_info"] = {"name": task.name, "n": task.n, "n_classes": task.n_classes}
    tmp = os.path.join(out, "summary.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(summ, fh, indent=2, default=_json_default)
    os.replace(tmp, os.path.join(out, "summary.json"))

    # ---- report
    print(f"{task.name}: {len(seeds)} seeds x {cfg.epochs} epochs on {result.device} in "
          f"{t_train:.1f} s; test accuracy {summ['final']['test_acc']['mean']:.3f} "
          f"(+- {summ['final']['test_acc']['std']:.3f})")
    head = f"{'layer':>7} {'width':>5} {'I(X;T)':>8} {'I(T;Y)':>8}"
    if bound is not None:
        head += f" {'gap':>8}"
    print(f"final epoch, {key} (bits, mean over seeds; N = {result.n_probe}, "
          f"log2 N = {result.log2_n:.2f}, H(Y) = {result.h_y:.6f}):")
    print(head)
    for layer, e in summ["layers"].items():
        line = (f"{layer:>7} {e['width']:>5} {e['i_xt_bits']['mean']:8.4f} "
                f"{e['i_ty_bits']['mean']:8.4f}")
        if "gap_bits" in e:
            line += f" {e['gap_bits']['mean']:8.4f}"
        print(line)
    print(f"wrote {', '.join(sorted(summ['files'].values()))} to {out}")
    if check is not None and not check.ok:
        print(f"ibsolver infoplane: ERROR: {len(check.violations)} binned points lie above the IB "
              f"bound (max excess {check.max_excess:.3g} bit): the bound is wrong; details in "
              "summary.json['bound_check']", file=sys.stderr)
        return 1
    return 0


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
