"""``ibsolver linear``: deep linear networks on Gaussian data, layer information exact.

This module must import without torch (so ``ibsolver --help`` works everywhere); torch and
the rest of :mod:`dnn` are imported inside the command.
"""
from __future__ import annotations

import argparse
import os
import sys

from .cli_common import (POSITIVE, POSITIVE_INT, add_run_flags, int_at_least, parse_seeds,
                         parse_widths, prepare_run, progress,
                         require_torch, write_csv, write_json)

_DESCRIPTION = """\
Saxe et al. (2018): do deep linear networks compress? A random linear teacher
Y = W X_rel + noise on Gaussian inputs X = (X_rel, X_irr), X_irr irrelevant to Y; a deep
linear network (bias-free linear layers) trained on 1/2 squared error by plain SGD
(minibatches) and by full-batch GD, each without and with the irrelevant dimensions (four
conditions; per seed, SGD and GD start from the same sample and weights). Every layer's
information is exact, from its weights and the covariances, for T = A X + N(0, s^2 I)
(A the product of the layer weights, s^2 = --noise-var): I(X;T), I(T;Y) and I(T;X_irr), in
bits, on the analytic Gaussian IB bound of (X, Y). A layer compresses when its I(X;T) falls
from its peak to the last record by more than 0.1 bit in every seed.

Writes to --out: linear.npz (the runs; DeepLinearStudy.load), linear.csv (tidy: condition,
epoch, seed, layer, information, bound, losses), summary.json, linear_infoplane.png (2 x 2
information planes) and linear_irrelevant.png (I(X;T) and I(T;X_irr) against epoch).
The defaults finish in about 10 to 20 seconds on one CPU core.
"""

_EPILOG = """\
example:
  ibsolver linear --out runs/linear
  ibsolver linear --init-scale 1 --hidden 16,16 --out runs/linear-large-init
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "linear", help="deep linear networks on Gaussian data: exact layer information (torch)",
        description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("task")
    g.add_argument("--relevant", type=POSITIVE_INT, default=4, help="relevant input dimensions (default: 4)")
    g.add_argument("--irrelevant", type=POSITIVE_INT, default=12,
                   help="irrelevant input dimensions, appended (default: 12)")
    g.add_argument("--outputs", type=POSITIVE_INT, default=4, help="output dimensions (default: 4)")
    g.add_argument("--output-noise", type=POSITIVE, default=0.1,
                   help="variance of each output's noise (default: 0.1)")
    g.add_argument("--teacher-seed", type=int, default=0, help="seed of the teacher W (default: 0)")
    g = p.add_argument_group("network and training")
    g.add_argument("--hidden", "--widths", dest="hidden", default="8,8",
                   help="hidden layer sizes, comma-separated, as every subcommand's --hidden "
                        "(default: 8,8; the input and output sizes come from the task; "
                        "--widths is its former name)")
    g.add_argument("--init-scale", type=POSITIVE, default=0.5,
                   help="initial weights N(0, scale^2 / fan_in) (default: 0.5)")
    g.add_argument("--lr", type=POSITIVE, default=0.05, help="learning rate, SGD and GD (default: 0.05)")
    g.add_argument("--batch-size", type=POSITIVE_INT, default=32, help="SGD minibatch rows (default: 32)")
    g.add_argument("--epochs", type=POSITIVE_INT, default=300, help="(default: 300)")
    g.add_argument("--n-train", type=POSITIVE_INT, default=256, help="training rows per seed (default: 256)")
    g = p.add_argument_group("recording")
    g.add_argument("--noise-var", type=POSITIVE, default=1.0,
                   help="s^2 of the noise added to each recorded layer (default: 1)")
    g.add_argument("--records", type=int_at_least(2), default=30,
                   help="the number of log-spaced epochs recorded, 0 and the last included "
                        "(usable and fisher take the epochs themselves: --record-epochs) "
                        "(default: 30)")
    add_run_flags(p, out_default="runs/linear", seeds_default="3")
    p.set_defaults(func=_command)


def _command(args) -> int:
    require_torch("linear")
    from .linear import deep_linear_experiment, gaussian_teacher, plot_conditions, plot_irrelevant_information

    seeds = parse_seeds(args.seeds)
    widths = parse_widths(args.hidden, "--hidden")
    teacher = gaussian_teacher(args.relevant, args.irrelevant, args.outputs,
                               output_noise=args.output_noise, random_state=args.teacher_seed)
    prepare_run(args, "linear")
    with progress(4 * len(seeds) * args.epochs, "linear: 4 conditions", args.quiet) as bar:
        study = deep_linear_experiment(
            teacher, widths=widths, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
            n_train=args.n_train, init_scale=args.init_scale, noise_var=args.noise_var,
            seeds=seeds, n_records=args.records, device=args.device, n_threads=args.threads,
            callback=lambda epoch: bar.update(1))
    from .infoplane import agg_figure

    npz = os.path.join(args.out, "linear.npz")
    study.save(npz)
    paths = {"npz": npz, "csv": write_csv(os.path.join(args.out, "linear.csv"), study)}
    for name, draw, shape, size in (
            ("linear_infoplane.png", plot_conditions, (2, 2), (11.0, 8.5)),
            ("linear_irrelevant.png", plot_irrelevant_information, (1, 2), (11.0, 4.0))):
        fig, axes = agg_figure(size, *shape)  # an Agg canvas: pyplot untouched
        draw(study, axes=axes)
        path = os.path.join(args.out, name)
        fig.savefig(path, dpi=110)
        paths[name] = path
    summ = study.summary()
    summ["files"] = {k: os.path.basename(v) for k, v in paths.items() if v is not None}
    write_json(os.path.join(args.out, "summary.json"), summ)
    _report(study, summ, args.out)
    if not summ["bound_ok"]:
        print("ibsolver linear: ERROR: points lie above the Gaussian IB bound; details in "
              "summary.json['conditions'][...]['bound_check']", file=sys.stderr)
        return 1
    return 0


def _report(study, summ, out) -> None:
    run = study.runs[-1]
    t, s = summ["teacher"], run.settings
    sizes = "-".join(str(w) for w in (run.teacher.n_inputs, *s["widths"], t["n_outputs"]))
    wall = sum(r.settings["wall_time_s"] for r in study.runs)
    ib = summ["gaussian_ib"]
    print(f"deep linear network {sizes} ({t['n_relevant']} relevant + {run.teacher.n_irrelevant} "
          f"irrelevant inputs, {t['n_outputs']} outputs, output noise {t['output_noise']:g}); "
          f"{len(run.seeds)} seeds x {s['epochs']} epochs, lr {s['lr']:g}, init scale "
          f"{s['init_scale']:g}, SGD batch {study.runs[0].settings['batch_size']} of {s['n_train']} "
          f"rows; {s['device']}, {wall:.1f} s")
    print(f"layers recorded as T = A X + N(0, {summ['noise_var']:g} I); Gaussian IB of (X, Y): "
          f"I(X;Y) = {ib['mutual_information']:.4f} bit, critical betas "
          + ", ".join("inf" if b is None else f"{b:.4g}" for b in ib["critical_betas"]))
    print("final record, mean over seeds (bits); drop = peak minus last I(X;T), [min, max] over seeds:")
    print(f"{'condition':<24} {'layer':>5} {'I(X;T)':>7} {'I(T;Y)':>7} {'gap':>6} "
          f"{'drop [min, max]':>17}  {'verdict':<15} {'I(T;X_irr)':>10} {'drop [min, max]':>17}  verdict")
    for name, c in summ["conditions"].items():
        for layer, e in c["layers"].items():
            comp, irr = e["compression"], e["compression"]["irrelevant"]
            d = comp["drop_bits"]
            line = (f"{name:<24} {layer:>5} {e['final_i_xt_bits']:7.3f} {e['final_i_ty_bits']:7.3f} "
                    f"{e['final_gap_bits']:6.3f} [{d['min']:6.3f}, {d['max']:6.3f}]  {comp['verdict']:<15}")
            if irr is not None:
                di = irr["drop_bits"]
                line += (f" {e['final_i_xt_irrelevant_bits']:10.3f} [{di['min']:6.3f}, {di['max']:6.3f}]"
                         f"  {irr['verdict']}")
            print(line)
    print(f"verdict: 'compresses' when the drop exceeds {summ['threshold_bits']:g} bit in every seed")
    for k, same in summ["sgd_gd_agree"].items():
        differ = [layer for layer, ok in same.items() if not ok]
        print(f"SGD vs GD, {k}: " + ("the same verdict in every layer" if not differ
                                     else "verdicts differ in " + ", ".join(differ)))
    n_points = sum(r.i_xt.size for r in study.runs)
    worst = max(c["bound_check"]["max_excess_bits"] for c in summ["conditions"].values())
    print(f"points above the Gaussian IB bound: {0 if summ['bound_ok'] else 'SOME'} of {n_points} "
          f"(closest: {-worst:.3g} bit below)")
    print(f"wrote {', '.join(sorted(summ['files'].values()))} to {out}")
