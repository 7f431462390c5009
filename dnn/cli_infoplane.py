"""``ibsolver infoplane``: train networks and overlay their layers on the exact IB bound.

This module must import without torch (so ``ibsolver --help`` works everywhere); torch and
the rest of :mod:`dnn` are imported inside the command.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from .cli_common import (POSITIVE, POSITIVE_INT, add_run_flags, int_at_least, number_at_least,
                         parse_floats, parse_seeds, parse_widths, prepare_run, progress,
                         require_torch, write_csv, write_json)

TASKS = ("tishby12", "var_u", "checkerboard", "digits")
DEFAULT_VAR_U = os.path.join("shared", "data", "var_u.mat")
#: tishby12's default label noise: I(X;Y) = 0.883 bit < H(Y), so the IB bound is a real
#: curve that a network could miss, not min(I(X;T), H(Y)), which every layer meets
DEFAULT_NOISE = 1.0
#: the learning rate when --lr is not given, per optimizer (sgd: the recipe's
#: dnn.recipes.DEFAULT_CONFIG, kept here as a number so that --help needs no torch)
DEFAULT_LR = {"sgd": 0.1, "adam": 3e-3}

_DESCRIPTION = f"""\
Train MLPs (several seeds as one batched ensemble) and record their layers on the
information plane against the exact IB bound of the same p(x, y). All information in bits.
The 12-bit task is noisy by default (--noise {DEFAULT_NOISE:g}), so the bound is a true curve; --noise 0
gives the canonical labels, whose bound min(I(X;T), H(Y)) only tests the solver.

Binning by default cannot manufacture compression: a tanh or sigmoid layer (and the
softmax output) gets 30 bins over its fixed range, a ReLU or any other layer bins of fixed
width 2/30. The summary states the rule per layer, each layer's compression verdict and
whether it survives a sweep of binnings (bins, widths, per-layer ranges) in every seed,
and every honesty flag: saturation at log2 N, data-processing violations, range changes
over 4x between records (in how many seeds, and the worst), points above the bound.

Training is plain SGD by default, as in Shwartz-Ziv & Tishby: per parametrised layer and
recorded epoch, the norms of the mean and of the standard deviation of the minibatch
gradients and their ratio (SNR) are kept, and the summary puts the epoch where the SNR
falls below 1 for good (the phase change) beside each layer's onset of compression (the
epoch of its peak I(X;T)), saying whether the two lie within a factor 2.

Writes to --out: records.npz (every array, with every seed's probe activations at the
recorded epochs, float32: about 100 MB at the defaults), records.csv (tidy: epoch, seed,
layer, estimator, knobs, I(X;T), I(T;Y), bound, gap, losses, gradient norms and SNR, ...),
summary.json, infoplane.png, gap.png, grad_snr.png, grad_stats.png, loss.png,
sensitivity.png, and checkpoint.pt (resume an interrupted run with --resume).

The defaults (1000 epochs, 5 seeds, 40 recorded epochs, binning) finish in about one to two
minutes on 2 CPU cores; the 3000-epoch, 10-seed run of the example below takes a few
minutes. --estimator kde is much slower (O(N^2) per layer, seed and record: about a second
at N = 4096); use --probe test or fewer --records with it.
"""

_EPILOG = """\
example:
  ibsolver infoplane --task tishby12 --activation tanh --epochs 3000 --seeds 10 --out runs/tanh
  ibsolver infoplane --task tishby12 --activation relu --out runs/relu
  ibsolver infoplane --task tishby12 --noise 0 --bound exact --out runs/canonical
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "infoplane", help="train networks and overlay their layers on the IB bound (torch)",
        description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("task")
    g.add_argument("--task", choices=TASKS, default="tishby12",
                   help="tishby12: the 12-bit icosahedral rule (4096 patterns); var_u: the "
                        "original var_u.mat (--data); checkerboard, digits: sampled tasks "
                        "(default: tishby12)")
    g.add_argument("--noise", type=number_at_least(0.0), default=None,
                   help="tishby12 only: p(y=1|x) = sigmoid(margin / noise); 0 = the canonical "
                        f"deterministic labels (default: {DEFAULT_NOISE:g})")
    g.add_argument("--data", default=None,
                   help=f"path of var_u.mat for --task var_u (default: {DEFAULT_VAR_U})")
    g = p.add_argument_group("network and training")
    g.add_argument("--widths", default=None,
                   help="layer sizes, input to output, comma-separated; the first and last must "
                        "match the task (default: the task's input size, 10,7,5,4,3, its number "
                        "of classes: 12,10,7,5,4,3,2 for tishby12). All the layers, unlike the "
                        "--hidden of the other subcommands, which names the hidden ones only")
    g.add_argument("--activation", default="tanh", help="tanh, relu, ... (default: tanh)")
    g.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="plain SGD (with --momentum 0) or Adam (default: sgd)")
    g.add_argument("--lr", type=POSITIVE, default=None,
                   help="learning rate (default: " + ", ".join(
                       f"{v:g} for {k}" for k, v in DEFAULT_LR.items()) + ")")
    g.add_argument("--momentum", type=number_at_least(0.0), default=0.0,
                   help="SGD momentum (default: 0)")
    g.add_argument("--batch-size", type=POSITIVE_INT, default=256, help="(default: 256)")
    g.add_argument("--epochs", type=POSITIVE_INT, default=1000, help="(default: 1000)")
    g.add_argument("--train-fraction", type=number_at_least(0.0, strict=True), default=0.85,
                   help="stratified, shuffled train split (default: 0.85)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split (default: 0)")
    g.add_argument("--init", choices=("uniform", "normal"), default="uniform",
                   help="uniform: PyTorch default; normal: truncated N(0, 1/fan_in), as in "
                        "Shwartz-Ziv & Tishby (default: uniform)")
    g = p.add_argument_group("recording and estimators")
    g.add_argument("--records", type=int_at_least(2), default=40,
                   help="the number of log-spaced epochs recorded, 0 and the last included "
                        "(usable and fisher take the epochs themselves: --record-epochs) "
                        "(default: 40)")
    g.add_argument("--probe", choices=("full", "train", "test"), default="full",
                   help="rows the layers are measured on (default: full)")
    g.add_argument("--estimator", choices=("binning", "kde"), default="binning",
                   help="binning (exact for the binned layer; always run) or kde (adds the "
                        "Kolchinsky-Tracey upper and lower bounds) (default: binning)")
    g.add_argument("--bins", type=POSITIVE_INT, default=30, help="bins per unit (default: 30)")
    g.add_argument("--bin-range", default="auto",
                   help="'auto' (--bins over the fixed range of a bounded layer: tanh, "
                        "sigmoid, the softmax output; bins of --bin-width for the others), "
                        "'layer' (each layer's range per epoch: can fake compression), "
                        "'global' (all layers') or LO,HI fixed, e.g. -1,1 (default: auto)")
    g.add_argument("--bin-strategy", choices=("count", "width", "mass"), default="count",
                   help="count: --bins equal bins over the range; width: bins of --bin-width; "
                        "mass: equal-mass bins (default: count)")
    g.add_argument("--bin-width", type=POSITIVE, default=None,
                   help="for --bin-strategy width, and for the unbounded layers of "
                        "--bin-range auto (default there: 2/30)")
    g.add_argument("--noise-var", type=POSITIVE, default=0.1,
                   help="KDE noise variance s^2 (default: 0.1)")
    g.add_argument("--bound", choices=("auto", "solver", "exact", "none"), default="auto",
                   help="the IB bound: auto or solver (ibsolver.ib_curve of the probe's "
                        "p(x, y)), exact (the same, for deterministic rules only, e.g. "
                        "--noise 0, where it is min(I(X;T), H(Y))), none (default: auto)")
    g.add_argument("--sweep", default=None,
                   help="knob values for the sensitivity sweep, comma-separated: numbers of "
                        "bins (widths with --bin-strategy width) tried on every seed's "
                        "trajectory after the run's own binning, or with --estimator kde s^2 "
                        "at the first seed's last epoch (default: bins 10,100, widths 0.5,0.02, every "
                        "layer at width 0.5 and 0.07, per-layer and all-layer ranges, "
                        "auto; s^2 "
                        "1e-3,1e-2,1e-1,1)")
    g = add_run_flags(p, out_default="runs/infoplane", seeds_default="5",
                      seeds_help="number of seeds (0..N-1) or a comma-separated list; all "
                                 "train as one batched ensemble")
    g.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out (same arguments)")
    p.set_defaults(func=_command)


def _make_task(args):
    from .tasks.tishby12 import load_var_u, tishby12

    if args.noise not in (None, 0) and args.task != "tishby12":
        raise ValueError(f"--noise applies to --task tishby12 only (got --task {args.task})")
    if args.data is not None and args.task != "var_u":
        raise ValueError(f"--data applies to --task var_u only (got --task {args.task})")
    if args.task == "tishby12":
        return tishby12(noise=DEFAULT_NOISE if args.noise is None else args.noise)
    if args.task == "var_u":
        return load_var_u(args.data or DEFAULT_VAR_U)
    import importlib

    module = importlib.import_module(f"dnn.tasks.{args.task}")
    return getattr(module, args.task)()


def _estimators(args):
    from .estimators import KDE, Binning

    if args.bin_range in ("auto", "layer", "global"):
        bin_range = args.bin_range
    else:
        bin_range = tuple(parse_floats(args.bin_range, "--bin-range"))
        if len(bin_range) != 2:
            raise ValueError(f"--bin-range must be auto, layer, global or LO,HI (got {args.bin_range!r})")
    estimators = [Binning(args.bins, strategy=args.bin_strategy, range=bin_range,
                          bin_width=args.bin_width)]
    if args.estimator == "kde":
        import torch

        # the O(N^2) KDE sums run on the GPU when the run does
        on_gpu = args.device.startswith("cuda") or (args.device == "auto"
                                                    and torch.cuda.is_available())
        estimators.append(KDE(args.noise_var, device="cuda" if on_gpu else None))
    return estimators


def _command(args) -> int:
    require_torch("infoplane")
    from .infoplane import save_figures
    from .recipes import infoplane_experiment
    from .train import CHECKPOINT, TrainConfig

    seeds = parse_seeds(args.seeds)
    if args.bound == "exact" and args.task == "tishby12" and args.noise is None:
        raise ValueError(f"--bound exact needs a deterministic rule, and the 12-bit task is "
                         f"noisy by default (--noise {DEFAULT_NOISE:g}): add --noise 0")
    task = _make_task(args)
    widths = ([int(task.x.shape[1]), 10, 7, 5, 4, 3, int(task.n_classes)] if args.widths is None
              else parse_widths(args.widths, "--widths"))
    estimators = _estimators(args)
    cfg = TrainConfig(widths=tuple(widths), activation=args.activation,
                      optimizer=args.optimizer,
                      lr=DEFAULT_LR[args.optimizer] if args.lr is None else args.lr,
                      momentum=args.momentum,
                      batch_size=args.batch_size, epochs=args.epochs,
                      train_fraction=args.train_fraction, seeds=tuple(seeds),
                      split_seed=args.split_seed, init=args.init, n_records=args.records,
                      probe=args.probe)
    out = args.out
    if os.path.exists(os.path.join(out, CHECKPOINT)) and not args.resume:
        raise ValueError(f"--out {out!r} already holds a run; add --resume to continue it or "
                         "choose another --out")
    sweep = parse_floats(args.sweep, "--sweep") if args.sweep else None
    prepare_run(args, "infoplane")  # after every check: a usage error makes no --out

    with progress(cfg.epochs, f"{task.name} x{len(seeds)} seeds", args.quiet) as bar:
        run = infoplane_experiment(task, cfg, estimators=estimators, bound=args.bound,
                                   sweep=sweep, out_dir=out, resume=args.resume,
                                   device=args.device, n_threads=args.threads,
                                   callback=lambda epoch: bar.update(epoch - bar.n))

    rec, curve, key = run.recording, run.curve, run.key
    npz = os.path.join(out, "records.npz")
    rec.save(npz)
    paths = {"npz": npz, "csv": write_csv(os.path.join(out, "records.csv"), rec, curve=curve)}
    paths.update(save_figures(rec, out, curve, key=key,
                              sensitivity=run.sweeps[0] if key == "binning" else run.sweeps[1:],
                              extra_keys=() if key == "binning" else ("binning", "kde_lower")))
    summ = run.summary()
    summ["files"] = {k: os.path.basename(v) for k, v in paths.items() if v is not None}
    write_json(os.path.join(out, "summary.json"), summ)
    _report(run, summ, out)
    check = run.check
    if check is not None and not check.ok:
        print(f"ibsolver infoplane: ERROR: {len(check.violations)} binned points lie above the IB "
              f"bound (max excess {check.max_excess:.3g} bit): the bound is wrong; details in "
              "summary.json['bound_check']", file=sys.stderr)
        return 1
    return 0


def _num(value, missing=math.nan):
    """A number of the summary, to print: ``missing`` where the summary has None (JSON's
    stand-in for NaN, and for infinity where ``missing`` says so)."""
    return missing if value is None else value


def _report(run, summ, out):
    from .infoplane import COMPRESSION_BITS

    rec = run.recording
    cfg = summ["config"]
    print(f"{rec.name}: {len(rec.seeds)} seeds x {rec.settings['epochs']} epochs on {rec.device} "
          f"in {run.timing_s['train_and_record']:.1f} s; test accuracy "
          f"{_num(summ['final']['test_acc']['mean']):.3f} (+- {_num(summ['final']['test_acc']['std']):.3f})")
    print(f"config: {cfg['activation']} {'-'.join(map(str, cfg['widths']))}, "
          f"{cfg['optimizer']} lr {cfg['lr']:g}"
          + (f" momentum {cfg['momentum']:g}" if cfg["optimizer"] == "sgd" else "")
          + (f" weight decay {cfg['weight_decay']:g}" if cfg["weight_decay"] else "")
          + f", batch {cfg['batch_size']}, train fraction {cfg['train_fraction']:g}, "
          f"{cfg['init']} init, probe {cfg['probe']}, {len(rec.epochs)} records")
    print(f"final epoch, {run.key} (bits, mean over seeds; N = {rec.n_probe}, "
          f"log2 N = {rec.log2_n:.2f}, H(Y) = {rec.h_y:.6f}):")
    gap = run.curve is not None
    print(f"{'layer':>7} {'width':>5} {'I(X;T)':>8} {'I(T;Y)':>8}" + (f" {'gap':>8}" if gap else "")
          + f"  {'drop from peak [min, max]':>25}  verdict")
    for layer, e in summ["layers"].items():
        drop = e["compression"]["drop_bits"]
        print(f"{layer:>7} {e['width']:>5} {_num(e['i_xt_bits']['mean']):8.4f} "
              f"{_num(e['i_ty_bits']['mean']):8.4f}" + (f" {_num(e['gap_bits']['mean']):8.4f}" if gap else "")
              + f"  {_num(drop['mean']):7.3f} [{_num(drop['min']):7.3f}, {_num(drop['max']):7.3f}]  "
              f"{e['compression']['verdict']}")
    print(f"verdict: 'compresses' when I(X;T) falls from its peak to the last record by more "
          f"than {COMPRESSION_BITS:g} bit in every seed")
    print("binning per layer:")
    for layer, e in summ["layers"].items():
        print(f"  {layer}: {e['rule']}")
    sweep = summ["compression_sweep"]
    print(f"the verdict under {len(sweep['binnings'])} binnings, each seed re-binned (seeds "
          f"{', '.join(map(str, sweep['seeds']))}; drop from peak under the run's binning, "
          f"mean +- std [min, max] over seeds):")
    for layer, r in sweep["layers"].items():
        print(f"  {layer}: {r['statement']}"
              + ("" if r["survives_all_binnings"] else "; changed by " + "; ".join(r["changed_by"])))
    _report_phases(summ)
    _report_flags(summ)
    print(f"wrote {', '.join(sorted(summ['files'].values()))} to {out}")


def _report_phases(summ):
    """Per layer, the gradient phase change beside the onset of compression."""
    grad = summ["gradient_stats"]
    batches = sorted({b for b in grad["minibatches_per_record"] if b})
    print(f"gradient phase change (the SNR |mean| / |std| of the gradients of the layer's "
          f"parameters over {', '.join(map(str, batches)) or 'no'} minibatches per epoch, "
          f"{grad['optimizer']}, below 1 from then on) beside the compression onset (the "
          f"epoch of peak I(X;T)), per seed:")
    for layer, e in summ["layers"].items():
        p = e["gradient_phase"]
        print(f"  {layer} ({p['grad_layer'] or 'no parametrised layer'}): {p['statement']}")


def _report_flags(summ):
    """Every honesty flag, each printed even when nothing was flagged."""
    from .estimators import RANGE_CHANGE_WARN

    sat = summ["saturation"]
    hit = {layer: e["saturated_records"] for layer, e in summ["layers"].items()
           if e["saturated_records"]}
    print(f"flags: saturated (I(X;T) >= {sat['ceiling_bits']:.2f} bit = 0.99 log2 N): "
          f"{sat['records']} of {sat['of']} points"
          + (" (" + ", ".join(f"{k} {v}" for k, v in hit.items()) + ")" if hit else ""))
    dpi = summ["dpi_violations"]
    print(f"  data-processing violations (a later layer with more information): "
          f"{dpi['count']} of {dpi['of']} checks")
    for p in dpi["pairs"]:
        print(f"    {p['layer']} > {p['previous']} in {p['quantity']}: {p['count']} record(s), worst "
              f"{_num(p['worst_excess_bits']):.4f} bit (epoch {p['epoch']}, seed {p['seed']})")
    warned = {layer: r for layer, r in summ["range_changes"].items() if r["warn"]}
    n_seeds = len(summ["compression_sweep"]["seeds"])
    print(f"  range changes over {RANGE_CHANGE_WARN:g}x between records (max - min of a "
          f"layer, in each of {n_seeds} seed{'s' if n_seeds > 1 else ''}): "
          + ("; ".join(f"{k} in {r['n_seeds_changed']} of {r['n_seeds']}, worst "
                       f"{_num(r['ratio'], math.inf):.3g}x ({_num(r['smallest']):.3g} to "
                       f"{_num(r['largest']):.3g}, seed "
                       f"{r['seed']})" for k, r in warned.items()) if warned else "none"))
    check = summ.get("bound_check")
    if check is None:
        print("  bound check: not run (--bound none)")
        return
    print(f"  points above the IB bound: {check['n_violations']} of {check['n_points']} "
          f"(max excess {_num(check['max_excess_bits']):.3g} bit)")
    if summ["bound"]["self_test"]:
        print(f"  note: {summ['bound']['note']}")
