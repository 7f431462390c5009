"""``ibsolver datasize | critical``: the training-set size sweep and critical learning periods.

This module must import without torch (so ``ibsolver --help`` works everywhere); torch and
the rest of :mod:`dnn` are imported inside the commands. Each command parses its flags,
calls one function of :mod:`dnn.periods` and writes its tables (npz, CSV, JSON) and PNG
figures to ``--out``. All information is in bits.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

from .cli_common import (POSITIVE, POSITIVE_INT, add_run_flags, int_at_least, number_at_least,
                         parse_floats, parse_ints, parse_seeds, parse_widths, prepare_run,
                         progress, write_csv, write_json)
from .cli_infoplane import DEFAULT_NOISE

#: the defaults, kept here as text so that --help needs no torch (dnn.periods holds the
#: library's: the same sizes and removal epochs)
SIZES = "0.05,0.25,0.45,0.65,0.85"
REMOVAL = "0,10,20,40"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``datasize`` and ``critical`` subcommands."""
    fmt = argparse.RawDescriptionHelpFormatter

    # ---------------------------------------------------------------- datasize
    p = subparsers.add_parser(
        "datasize", help="information planes of the 12-bit task for growing training sets (torch)",
        formatter_class=fmt,
        description="Train the 12-10-7-5-4-3-2 tanh MLP (plain SGD) on --sizes fractions of "
                    "the 4096 inputs of the 12-bit task (Shwartz-Ziv & Tishby 2017: 5% to "
                    "85%), one run per size in worker processes, every run measured on all "
                    "inputs (binning: 30 bins over tanh's fixed range (-1, 1)) under the IB curve of "
                    "the task's p(x, y), computed once. Reports per size the test accuracy, "
                    "the final I(T;Y) of the last hidden layer and every layer's compression "
                    "verdict.\n\nThe defaults (500 epochs, 3 seeds) are far shorter than the "
                    "paper's thousands of epochs and 50 runs: about a minute and a half on 2 "
                    "CPU cores.\n\nWrites datasize.npz (every run and the curve), datasize.csv "
                    "(per size and layer), datasize.json, datasize_grid.png (one information "
                    "plane per size), datasize.png (I(T;Y) and accuracy against size) and "
                    "runs/ (each run as it finishes: a rerun with the same flags loads them) "
                    "to --out.",
        epilog="example:\n  ibsolver datasize --sizes 0.05,0.45,0.85 --epochs 2000 --seeds 5 "
               "--out runs/datasize")
    p.add_argument("--sizes", default=SIZES,
                   help=f"training fractions in (0, 1), comma-separated (default: {SIZES})")
    p.add_argument("--noise", type=number_at_least(0.0), default=DEFAULT_NOISE,
                   help="label noise of the 12-bit task, as in `ibsolver infoplane`; 0 = the "
                        f"canonical deterministic labels (default: {DEFAULT_NOISE:g})")
    p.add_argument("--activation", default="tanh", help="tanh, relu, ... (default: tanh)")
    p.add_argument("--lr", type=POSITIVE, default=0.1, help="SGD learning rate (default: 0.1)")
    p.add_argument("--epochs", type=POSITIVE_INT, default=500, help="(default: 500)")
    p.add_argument("--records", type=int_at_least(2), default=30,
                   help="the number of log-spaced epochs recorded, 0 and the last included "
                        "(usable and fisher take the epochs themselves: --record-epochs) "
                        "(default: 30)")
    p.add_argument("--workers", type=POSITIVE_INT, default=None,
                   help="worker processes (default: the usable cores, at most one per size)")
    add_run_flags(p, out_default="runs/datasize", seeds_default="3")
    p.set_defaults(func=_datasize)

    # ---------------------------------------------------------------- critical
    p = subparsers.add_parser(
        "critical", help="critical learning periods: a blur deficit removed at epoch e (torch)",
        formatter_class=fmt,
        description="Achille, Rovere & Soatto (2019) on scikit-learn's 8x8 digits: an MLP "
                    "trains on blurred images (--blur-factor block means, bilinear back to "
                    "8x8) for the first e epochs, then on the clean images for --epochs more, "
                    "for each e of --removal (0 = never blurred), and once with the blur never "
                    "removed. Plain SGD whose learning rate falls by --lr-decay every epoch, "
                    "as in the paper. Every epoch records the accuracy on the clean test "
                    "images and the trace of the model Fisher information of the weights on "
                    "--fisher-samples training inputs (blurred during the deficit).\n\nWith "
                    "--lr-decay 1 (a constant rate) this small network recovers from the "
                    "deficit: the accuracy lost by a late removal comes with the annealed "
                    "rate.\n\nThe defaults take about a minute on 2 CPU cores. Writes "
                    "critical.npz, critical.csv (per run, epoch and seed), critical.json and "
                    "critical.png (accuracy against e; Fisher trace against epoch) to --out.",
        epilog="example:\n  ibsolver critical --removal 0,5,10,20,40,80 --epochs 60 "
               "--out runs/critical")
    p.add_argument("--removal", default=REMOVAL,
                   help=f"deficit removal epochs e, comma-separated (default: {REMOVAL})")
    p.add_argument("--epochs", type=POSITIVE_INT, default=30,
                   help="epochs on clean images after the removal, the same for every e "
                        "(default: 30)")
    p.add_argument("--blur-factor", type=int, choices=(2, 4), default=4,
                   help="block size of the blur: 2 or 4 (8x8 through 4x4 or 2x2; the paper's "
                        "factor is 4) (default: 4)")
    p.add_argument("--hidden", default="64,32",
                   help="hidden layer sizes, comma-separated (default: 64,32)")
    p.add_argument("--lr", type=POSITIVE, default=0.05,
                   help="initial SGD learning rate (default: 0.05)")
    p.add_argument("--lr-decay", type=float, default=0.97,
                   help="learning-rate factor per epoch, in (0, 1] (default: 0.97)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=32, help="(default: 32)")
    p.add_argument("--fisher-samples", type=POSITIVE_INT, default=100,
                   help="training inputs the Fisher trace is averaged over (default: 100)")
    add_run_flags(p, out_default="runs/critical", seeds_default="3")
    p.set_defaults(func=_critical)


def _datasize(args) -> int:
    sizes = parse_floats(args.sizes, "--sizes")
    if not sizes or not all(0 < s < 1 for s in sizes) or len(set(sizes)) != len(sizes):
        raise ValueError(f"--sizes must be distinct fractions in (0, 1) (got {args.sizes!r})")
    seeds = parse_seeds(args.seeds)
    prepare_run(args, "datasize")
    from .infoplane import agg_figure
    from .periods import datasize_experiment, plot_datasize_grid, plot_datasize_summary
    from .recipes import DEFAULT_CONFIG

    cfg = dataclasses.replace(DEFAULT_CONFIG, activation=args.activation, lr=args.lr,
                              epochs=args.epochs, n_records=args.records, seeds=tuple(seeds))
    t0 = time.time()
    result = datasize_experiment(sizes, cfg, noise=args.noise,
                                 out=os.path.join(args.out, "runs"), n_workers=args.workers,
                                 n_threads=args.threads, device=args.device,
                                 progress=not args.quiet)
    out = args.out
    result.save(os.path.join(out, "datasize.npz"))
    write_csv(os.path.join(out, "datasize.csv"), result)
    summary = result.summary()
    write_json(os.path.join(out, "datasize.json"), summary)
    fig, (axes,) = agg_figure((4.2 * len(sizes), 3.9), 1, len(sizes), squeeze=False)
    plot_datasize_grid(result, axes=axes)
    fig.savefig(os.path.join(out, "datasize_grid.png"), dpi=110)
    fig, (axes,) = agg_figure((6.4, 4.2), 1, 1, squeeze=False)
    plot_datasize_summary(result, ax=axes[0])
    fig.savefig(os.path.join(out, "datasize.png"), dpi=120)

    print(f"ibsolver datasize: {summary['task']}, {len(sizes)} sizes x {len(seeds)} seeds x "
          f"{args.epochs} epochs in {time.time() - t0:.1f} s -> {out}")
    print(f"I(X;Y) = {summary['i_xy_bits']:.4f} bit; last hidden layer {summary['last_hidden_layer']}"
          " at the last record (mean +- std over seeds):")
    print(f"{'size':>5} {'n_train':>7} {'test acc':>15} {'I(T;Y) [bit]':>15} {'gap [bit]':>8}"
          "  compression verdicts per layer")
    for e in summary["sizes"]:
        verdicts = ", ".join(f"{layer} {v}" for layer, v in e["compression"].items())
        print(f"{e['train_fraction']:5.0%} {e['n_train']:7d} {e['test_acc']['mean']:7.3f} +- "
              f"{e['test_acc']['std']:.3f} {e['last_hidden_i_ty_bits']['mean']:7.3f} +- "
              f"{e['last_hidden_i_ty_bits']['std']:.3f} {e['last_hidden_gap_bits']['mean']:8.3f}"
              f"  {verdicts}")
    return 0


def _critical(args) -> int:
    removal = parse_ints(args.removal, "--removal")
    if not removal or min(removal) < 0 or len(set(removal)) != len(removal):
        raise ValueError(f"--removal must be distinct epochs >= 0 (got {args.removal!r})")
    hidden = parse_widths(args.hidden, "--hidden")
    if not 0 < args.lr_decay <= 1:
        raise ValueError(f"--lr-decay must be in (0, 1] (got {args.lr_decay})")
    seeds = parse_seeds(args.seeds)
    prepare_run(args, "critical")
    from .infoplane import agg_figure
    from .periods import critical_periods, plot_critical_accuracy, plot_critical_fisher

    n_epochs = sum(removal) + len(removal) * args.epochs + max(removal) + args.epochs
    t0 = time.time()
    with progress(n_epochs, "epochs", args.quiet) as bar:
        result = critical_periods(removal, epochs_after=args.epochs,
                                  blur_factor=args.blur_factor, hidden=hidden, lr=args.lr,
                                  lr_decay=args.lr_decay, batch_size=args.batch_size,
                                  seeds=seeds, fisher_samples=args.fisher_samples,
                                  device=args.device, progress=bar.update)
    out = args.out
    result.save(os.path.join(out, "critical.npz"))
    write_csv(os.path.join(out, "critical.csv"), result)
    summary = result.summary()
    write_json(os.path.join(out, "critical.json"), summary)
    fig, (axes,) = agg_figure((12, 4.2), 1, 2, squeeze=False)
    plot_critical_accuracy(result, ax=axes[0])
    plot_critical_fisher(result, ax=axes[1])
    fig.savefig(os.path.join(out, "critical.png"), dpi=120)

    print(f"ibsolver critical: {summary['settings']['task']}, {len(result.runs)} runs x "
          f"{len(seeds)} seeds in {time.time() - t0:.1f} s -> {out}")
    print(f"{'deficit':>15} {'epochs':>6} {'final test acc':>17} {'drop':>7}   Fisher trace: "
          "epoch 0, peak (epoch), final")
    for r in summary["runs"]:
        f, acc, drop = r["fisher_trace"], r["final_test_acc"], r["drop_from_never_blurred"]
        print(f"{r['label']:>15} {r['epochs']:6d} {acc['mean']:9.4f} +- {acc['std']:.4f} "
              f"{'' if drop is None else format(drop, '7.4f'):>7}   {f['initial']:.3g}, "
              f"{f['peak']:.3g} ({f['peak_epoch']}), {f['final']:.3g}")
    return 0
