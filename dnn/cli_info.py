"""``ibsolver usable | fisher | weights | task2vec``: information beyond the information plane.

This module must import without torch (so ``ibsolver --help`` works everywhere); torch and
the rest of :mod:`dnn` are imported inside the commands. Every command writes tables
(CSV/JSON/npz) and PNG figures to ``--out``. All information is in bits.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import time

from .cli_common import (POSITIVE, POSITIVE_INT, add_run_flags, int_at_least, number_at_least,
                         one_seed, parse_floats, parse_ints, parse_seeds, parse_widths,
                         prepare_run, progress, require_torch, write_csv, write_json)
from .usable import RISE_FALL_BITS

#: log-spaced points of ``--record-epochs auto`` (epoch 0 added): about 15 records for
#: fisher, and about 9 for usable, where every record costs 2 x layers x seeds MLP decoders
AUTO_RECORDS = {"fisher": 14, "usable": 8}


def _record_epochs(text, epochs, n_points):
    """"auto" -> epoch 0 and ``n_points`` log-spaced epochs in [1, epochs] (rounded, without
    repeats); else a comma-separated list."""
    if text == "auto":
        import numpy as np

        pts = np.unique(np.round(np.geomspace(1, max(epochs, 1), n_points)).astype(int))
        return sorted({0, *[int(p) for p in pts if p <= epochs]})
    eps = parse_ints(text, "--record-epochs")
    bad = [e for e in eps if e < 0 or e > epochs]
    if not eps or bad:
        raise ValueError(f"--record-epochs must be epochs in [0, --epochs={epochs}], "
                         f"comma-separated, or auto (got {text!r})")
    return sorted(set(eps))


def _add_record_epochs(p, n_auto: int) -> None:
    """--record-epochs (formerly --record): the epochs themselves, not a count."""
    p.add_argument("--record-epochs", "--record", dest="record", default="auto",
                   metavar="EPOCHS",
                   help=f"epochs to record, comma-separated, or auto (0 and about {n_auto} "
                        "log-spaced; default). The epochs themselves: --records of "
                        "infoplane, datasize and linear is a number of log-spaced epochs. "
                        "--record is its former name")


def _common(p, out_default):
    """The run flags of a command that makes one run (one seed)."""
    add_run_flags(p, out_default=out_default, one_run=True)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    # ------------------------------------------------------------------ usable
    p = subparsers.add_parser(
        "usable", help="usable information per layer over training, over seeds (torch)",
        formatter_class=fmt,
        description="Usable information I_u(Z;Y) = H(Y) - held-out cross-entropy of a decoder "
                    "(Kleinman et al. 2021), in bits, per layer and label set at recorded "
                    "epochs, for networks that differ only in their seed.\n\ncheckerboard: "
                    "relevant (direction) and irrelevant (colour) information, max log2(n) "
                    "bits each; digits: train on parity, track the digit.\n\nPrints, per "
                    "label set and layer, the final usable information over seeds and the "
                    "fraction of seeds in which it rises then falls (its peak exceeds both "
                    "its first and its last record by more than --rise-threshold bits).\n\n"
                    "Writes usable.csv (every seed), training.csv, usable.json (the summary), "
                    "usable.npz (the whole result, with every network's record: "
                    "dnn.experiments.UsableExperiment.load reads it), "
                    "usable_main.npz (the curves; with --compare-sgd usable_small_batch_high_lr.npz "
                    "and usable_large_batch_low_lr.npz; dnn.usable.UsableEnsemble.load reads "
                    "them) and "
                    "usable.png (mean over seeds, their range shaded) (sgd_regimes.png / "
                    "sgd_regimes.csv with --compare-sgd) to --out. The defaults (checkerboard "
                    "n=2, 5 seeds, 30 epochs, 9 records, MLP decoders of the paper's 128-64-32 "
                    "architecture: 540 decoders) take about two minutes of one CPU core.",
        epilog="example:\n  ibsolver usable --task checkerboard --n-colors 10 --epochs 30 "
               "--seeds 3 --out runs/cb10\n"
               "  ibsolver usable --decoder linear --seeds 10 --out runs/linear")
    p.add_argument("--task", choices=("checkerboard", "digits"), default="checkerboard",
                   help="(default: checkerboard)")
    p.add_argument("--n-colors", type=int_at_least(2), default=2,
                   help="checkerboard colours (default: 2)")
    p.add_argument("--n-samples", type=POSITIVE_INT, default=None,
                   help="checkerboard training trials (default: the paper's, 10000 for n=2)")
    p.add_argument("--n-probe", type=POSITIVE_INT, default=2000,
                   help="checkerboard: fresh trials whose activations are decoded (default: 2000)")
    p.add_argument("--epochs", type=POSITIVE_INT, default=30, help="(default: 30)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=None,
                   help="(default: the paper's)")
    p.add_argument("--lr", type=POSITIVE, default=None,
                   help="SGD learning rate (default: the paper's)")
    _add_record_epochs(p, AUTO_RECORDS["usable"])
    p.add_argument("--decoder", choices=("linear", "mlp"), default="mlp",
                   help="mlp: the paper's 128-64-32, LeakyReLU 0.2, batch-norm, dropout; or "
                        "linear (default: mlp)")
    p.add_argument("--decoder-epochs", type=POSITIVE_INT, default=None,
                   help="decoder training epochs (default: 40)")
    p.add_argument("--rise-threshold", type=number_at_least(0.0), default=RISE_FALL_BITS,
                   help="bits a curve must rise from its first record to its peak and fall "
                        f"from there to its last to count as rising then falling (default: "
                        f"{RISE_FALL_BITS:g})")
    p.add_argument("--compare-sgd", action="store_true",
                   help="checkerboard: small batch / high lr (the paper's) vs batch 256 / "
                        "lr / 5")
    p.add_argument("--data-seed", type=int, default=0,
                   help="seed of the data, the splits and the decoders (default: 0)")
    add_run_flags(p, out_default="runs/usable", seeds_default="5",
                  seeds_help="networks: a count (seeds 0..N-1) or a comma-separated list")
    p.set_defaults(func=_usable)

    # ------------------------------------------------------------------ fisher
    p = subparsers.add_parser(
        "fisher", help="exact Fisher information trace over training (torch)",
        formatter_class=fmt,
        description="Trace (and per-layer trace) of the Fisher information of the weights at "
                    "every recorded epoch: the model Fisher (exact sum over classes, "
                    "per-sample gradients) and the empirical Fisher (observed labels).\n\n"
                    "Writes fisher.csv, fisher_diag.npz (final per-parameter diagonal, one "
                    "array per parameter), fisher.json, fisher.npz (the whole result: "
                    "dnn.experiments.FisherOverTraining.load reads it) and fisher.png to "
                    "--out.",
        epilog="example:\n  ibsolver fisher --task digits --epochs 60 --out runs/fisher")
    p.add_argument("--task", choices=("digits", "checkerboard"), default="digits",
                   help="digits: train on the 10-way digit; checkerboard: n=2 (default: digits)")
    p.add_argument("--epochs", type=POSITIVE_INT, default=40, help="(default: 40)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=32, help="(default: 32)")
    p.add_argument("--lr", type=POSITIVE, default=0.05, help="SGD learning rate (default: 0.05)")
    p.add_argument("--hidden", default="64,32",
                   help="hidden layer sizes, comma-separated, as every subcommand's --hidden "
                        "(infoplane's --widths also names the input and output) "
                        "(default: 64,32)")
    p.add_argument("--fisher-samples", type=POSITIVE_INT, default=300,
                   help="training inputs the Fisher is averaged over (default: 300)")
    _add_record_epochs(p, AUTO_RECORDS["fisher"])
    _common(p, "runs/fisher")
    p.set_defaults(func=_fisher)

    # ----------------------------------------------------------------- weights
    p = subparsers.add_parser(
        "weights",
        help="information in the weights, PAC-Bayes bound, true vs random labels (torch)",
        formatter_class=fmt,
        description="Train an MLP on digits, fit a Gaussian posterior N(w*, diag s^2) against "
                    "the prior N(w0, l^2 I) centred at the initialisation by minimising "
                    "E_q[sum CE] + beta KL, and report KL (bits), the expected loss, the "
                    "Fisher approximation of the KL and the PAC-Bayes bound on the test error "
                    "next to the measured one.\n\nThen true against random labels on the "
                    "same network (--rl-* options): --rl-samples digits labelled by their "
                    "parity, or by the same labels shuffled; per seed one initialisation, "
                    "trained to each labelling, and the posterior fitted at every beta of "
                    "--betas. Prints KL (bits), training error and PAC-Bayes bound per beta "
                    "and labelling (mean over seeds), and how much more information random "
                    "labels take where both fit.\n\nWrites weights.json, weights.npz (the whole "
                    "result: dnn.weights.WeightsExperiment.load reads it), weights_sigma.npz (the "
                    "fitted posterior with its s per weight: dnn.weights."
                    "WeightsInformation.load reads it), random_labels.csv, "
                    "random_labels.npz (dnn.weights.RandomLabels.load reads it) and "
                    "random_labels.png to --out. The defaults finish in about a "
                    "minute on 2 CPU cores.",
        epilog="example:\n  ibsolver weights --beta 1 --out runs/weights")
    p.add_argument("--epochs", type=POSITIVE_INT, default=30,
                   help="network training epochs (default: 30)")
    p.add_argument("--hidden", default="64",
                   help="hidden layer sizes, comma-separated (default: 64)")
    p.add_argument("--beta", type=POSITIVE, default=1.0, help="trade-off beta (default: 1)")
    p.add_argument("--prior-scale", default="optimize",
                   help="prior standard deviation l, or optimize (grid + union bound; default)")
    p.add_argument("--prior-center", choices=("init", "zero"), default="init",
                   help="(default: init)")
    p.add_argument("--learn-mean", action="store_true", help="also learn the posterior mean")
    p.add_argument("--posterior-epochs", type=POSITIVE_INT, default=200, help="(default: 200)")
    p.add_argument("--n-mc", type=POSITIVE_INT, default=500,
                   help="weight samples for the errors and the bound (default: 500)")
    p.add_argument("--delta", type=number_at_least(0.0, strict=True, below=1.0), default=0.05,
                   help="PAC-Bayes confidence, in (0, 1) (default: 0.05)")
    p.add_argument("--betas", default="0.003,0.01,0.03,0.1,0.3,1,3",
                   help="true vs random labels: the betas (default: "
                        "0.003,0.01,0.03,0.1,0.3,1,3); empty to skip")
    p.add_argument("--rl-samples", type=POSITIVE_INT, default=100,
                   help="true vs random labels: training images (default: 100)")
    p.add_argument("--rl-hidden", default="32", help="its hidden layer sizes (default: 32)")
    p.add_argument("--rl-seeds", default="3",
                   help="its networks: a count (seeds 0..N-1) or a comma-separated list "
                        "(default: 3)")
    p.add_argument("--rl-train-epochs", type=POSITIVE_INT, default=100,
                   help="full-batch Adam epochs to w* (default: 100)")
    p.add_argument("--rl-epochs", type=POSITIVE_INT, default=300,
                   help="posterior epochs per beta (default: 300)")
    _common(p, "runs/weights")
    p.set_defaults(func=_weights)

    # ---------------------------------------------------------------- task2vec
    p = subparsers.add_parser(
        "task2vec", help="Task2Vec embeddings and distances of digits tasks (torch)",
        formatter_class=fmt,
        description="Embed binary and multi-class tasks on scikit-learn's digits by the "
                    "Fisher diagonal of a fixed probe network (Task2Vec), and show the "
                    "normalised cosine distances.\n\nWrites task2vec_distances.csv, "
                    "task2vec_embeddings.npz (names, embeddings, distances: plain arrays), "
                    "task2vec.npz (the whole result: dnn.task2vec.Task2VecExperiment.load "
                    "reads it), task2vec.json and task2vec.png to --out.",
        epilog="example:\n  ibsolver task2vec --out runs/task2vec\n"
               "  ibsolver task2vec --tasks fine,parity,high,0_vs_rest --out runs/t2v")
    p.add_argument("--tasks", default="all",
                   help="comma-separated subset of: fine, parity, high, mod3, low5, high5, "
                        "0_vs_rest..9_vs_rest (default: all)")
    p.add_argument("--probe-hidden", default="64,32",
                   help="the probe's hidden layer sizes (default: 64,32)")
    p.add_argument("--probe-epochs", type=int_at_least(0), default=20,
                   help="probe pre-training epochs on the digit labels; 0 = random probe "
                        "(default: 20)")
    p.add_argument("--n-samples", type=int_at_least(2), default=None,
                   help="use a random subset of the 1797 digits (default: all)")
    p.add_argument("--metric", choices=("normalized_cosine", "cosine"),
                   default="normalized_cosine", help="(default: normalized_cosine)")
    _common(p, "runs/task2vec")
    p.set_defaults(func=_task2vec)


# --------------------------------------------------------------------- commands
# Each command checks all its flags first, then prepare_run makes --out: a usage error
# (exit 2) leaves no folder behind.

def _usable(args) -> int:
    seeds = parse_seeds(args.seeds)
    rec_epochs = _record_epochs(args.record, args.epochs, AUTO_RECORDS["usable"])
    prepare_run(args, "usable")
    from .infoplane import agg_figure

    from .experiments import plot_accuracy, usable_experiment
    from .usable import plot_usable_curves

    t0 = time.time()
    n_layers = {True: 6, False: 5}[args.n_colors == 2] if args.task == "checkerboard" else 4
    n_runs = 2 if args.compare_sgd and args.task == "checkerboard" else 1
    n_decoders = n_runs * len(seeds) * 2 * n_layers * len(rec_epochs)
    with progress(n_runs * args.epochs + n_decoders, f"{args.task} x{len(seeds)} seeds",
                  args.quiet) as bar:
        result = usable_experiment(
            args.task, n_colors=args.n_colors, n_samples=args.n_samples, n_probe=args.n_probe,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            record_epochs=rec_epochs, decoder=args.decoder,
            decoder_options={} if args.decoder_epochs is None else {"epochs": args.decoder_epochs},
            compare_sgd=args.compare_sgd, seeds=seeds, random_state=args.data_seed,
            progress=bar.update, device=args.device)
    summary = result.summary(threshold_bits=args.rise_threshold)
    write_csv(os.path.join(args.out, "usable.csv"), result)
    write_csv(os.path.join(args.out, "training.csv"), result.training_rows())
    write_json(os.path.join(args.out, "usable.json"), summary)
    for name, run in result.runs.items():
        run.ensemble.save(os.path.join(args.out, f"usable_{name}.npz"))
    result.save(os.path.join(args.out, "usable.npz"))
    if args.compare_sgd:
        write_csv(os.path.join(args.out, "sgd_regimes.csv"), result)

    title = f"checkerboard n={args.n_colors}" if args.task == "checkerboard" else \
        "digits: trained on parity"
    label_sets = result.label_sets
    runs = result.runs
    fig, axes = agg_figure((5.5 * len(label_sets), 4.2 * len(runs)), len(runs),
                           len(label_sets), squeeze=False)
    for row, (name, run) in zip(axes, runs.items()):
        for ax, lab in zip(row, label_sets):
            plot_usable_curves(run.ensemble, ax=ax, label_sets=[lab],
                               title=f"{title}: {lab}" + ("" if name == "main" else f" ({name})"))
            ax.set_ylim(-0.05, run.ensemble.max_bits[lab] * 1.08)
            plot_accuracy(run.recording, ax)
    fig.savefig(os.path.join(args.out, "sgd_regimes.png" if args.compare_sgd else "usable.png"),
                dpi=120)

    print(f"ibsolver usable: {args.task}, {len(seeds)} seeds, {n_decoders} decoders "
          f"({args.decoder}) in {time.time() - t0:.1f} s -> {args.out}")
    for name, s in summary["runs"].items():
        acc = s["final_test_accuracy"]
        print(f"  [{name}] final validation accuracy {acc['mean']:.3f} (min {acc['min']:.3f}, "
              f"max {acc['max']:.3f})")
        print(f"    per layer: final usable information, mean over seeds (bits); seeds in which "
              f"it rises then falls by more than {s['rise_then_fall_bits']:g} bit")
        for lab, per_layer in s["final"].items():
            vals = "  ".join(f"{layer} {v['mean']:.2f}" for layer, v in per_layer.items())
            print(f"    {lab:9s} (max {s['max_bits'][lab]:.2f}) final: {vals}")
            rf = "  ".join(f"{layer} {v['n_rise_fall']}/{v['n_seeds']}"
                           for layer, v in s["rise_then_fall"][lab].items())
            print(f"    {'':9s} rises then falls: {rf}")
    return 0


def _fisher(args) -> int:
    seed = one_seed(args, "fisher")
    hidden = parse_widths(args.hidden, "--hidden")
    rec_epochs = _record_epochs(args.record, args.epochs, AUTO_RECORDS["fisher"])
    prepare_run(args, "fisher")
    from .infoplane import agg_figure
    import numpy as np

    from ._info_utils import make_generator, seed_from
    from .experiments import fisher_over_training
    from .fisher import plot_fisher_trace

    gen = make_generator(seed)
    if args.task == "digits":
        from .tasks.digits import digits

        task = digits("fine")
    else:
        from .tasks.checkerboard import checkerboard

        task = checkerboard(2, 5000, random_state=seed_from(gen))
    t0 = time.time()
    with progress(args.epochs, "training", args.quiet) as bar:
        result = fisher_over_training(
            task, hidden=hidden, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            fisher_samples=args.fisher_samples, record_epochs=rec_epochs,
            random_state=seed_from(gen), progress=bar.update, device=args.device)
    rec = result.recording
    write_csv(os.path.join(args.out, "fisher.csv"), result)
    np.savez(os.path.join(args.out, "fisher_diag.npz"),
             **{k.replace(".", "_"): v for k, v in result.final.diagonal.items()})
    write_json(os.path.join(args.out, "fisher.json"), result.summary())
    result.save(os.path.join(args.out, "fisher.npz"))
    epochs, trace = result.epochs, result.trace
    fig, ax = agg_figure((6, 4))
    ep = [max(e, 0.5) for e in epochs]
    plot_fisher_trace(ep, trace, ax=ax, layer_traces=result.layer_traces)
    ax.plot(ep, result.empirical_trace, "k:", lw=1.2, label="empirical Fisher")
    ax.set_xscale("log")
    ax.legend(fontsize=7)
    ax.set_title(f"Fisher trace during training ({task.name})", fontsize=9)
    fig.savefig(os.path.join(args.out, "fisher.png"), dpi=120)
    peak = int(np.argmax(trace))
    print(f"ibsolver fisher: {task.name}, {len(epochs)} recorded epochs in "
          f"{time.time() - t0:.1f} s -> {args.out}")
    print(f"  model Fisher trace: epoch 0 {trace[0]:.3g}, peak {trace[peak]:.3g} at epoch "
          f"{epochs[peak]}, final {trace[-1]:.3g}; final test accuracy "
          f"{rec.test_acc[-1, 0]:.3f}")
    return 0


def _weights(args) -> int:
    seed = one_seed(args, "weights")
    prior_scale = args.prior_scale
    if prior_scale != "optimize":
        try:
            prior_scale = float(prior_scale)
        except ValueError:
            prior_scale = math.nan
        if not (prior_scale > 0 and math.isfinite(prior_scale)):
            raise ValueError("--prior-scale must be a number > 0 or 'optimize' "
                             f"(got {args.prior_scale!r})")
    hidden = parse_widths(args.hidden, "--hidden")
    betas = parse_floats(args.betas, "--betas")
    if not all(b > 0 and math.isfinite(b) for b in betas):
        raise ValueError(f"--betas must be numbers > 0, comma-separated (got {args.betas!r})")
    rl_seeds = parse_seeds(args.rl_seeds, "--rl-seeds")
    rl_hidden = parse_widths(args.rl_hidden, "--rl-hidden")
    prepare_run(args, "weights")
    from .infoplane import agg_figure

    from .weights import plot_random_labels, weights_experiment

    t0 = time.time()
    n_steps = args.epochs + args.posterior_epochs
    if betas:
        n_steps += 2 * len(rl_seeds) * (args.rl_train_epochs + len(betas) * args.rl_epochs)
    with progress(n_steps, "network, posterior" + (", true vs random labels" if betas else ""),
                  args.quiet) as bar:
        result = weights_experiment(
            hidden=hidden, epochs=args.epochs, beta=args.beta, prior_center=args.prior_center,
            prior_scale=prior_scale, learn_mean=args.learn_mean,
            posterior_epochs=args.posterior_epochs, n_mc=args.n_mc, delta=args.delta,
            betas=betas, random_labels={"n_samples": args.rl_samples, "hidden": rl_hidden,
                                        "seeds": rl_seeds, "train_epochs": args.rl_train_epochs,
                                        "epochs": args.rl_epochs},
            random_state=seed, progress=bar.update, device=args.device)
    res, rl = result.network.posterior, result.random_labels
    summary = result.summary()
    res.save(os.path.join(args.out, "weights_sigma.npz"))
    if rl is not None:
        write_csv(os.path.join(args.out, "random_labels.csv"), rl)
        rl.save(os.path.join(args.out, "random_labels.npz"))
        fig, ax = agg_figure((6.5, 4))
        plot_random_labels(rl, ax=ax)
        ax.set_title(f"true vs random labels (digits parity, N={rl.n_samples}, "
                     f"{len(rl.seeds)} seeds): E_q[sum CE] + beta KL", fontsize=9)
        fig.savefig(os.path.join(args.out, "random_labels.png"), dpi=120)
    write_json(os.path.join(args.out, "weights.json"), summary)
    result.save(os.path.join(args.out, "weights.npz"))
    pb = res.pac_bayes
    print(f"ibsolver weights: digits, {res.n_params} weights, N={res.n_samples}, beta={res.beta:g}"
          f" ({time.time() - t0:.1f} s) -> {args.out}")
    print(f"  KL(q||p) = {res.kl_bits:.1f} bits; Fisher approximation {res.kl_fisher_bits:.1f} "
          f"(noise part {res.kl_fisher_noise_bits:.1f} + mean part "
          f"{res.kl_fisher_bits - res.kl_fisher_noise_bits:.1f}; paper's formula, noise part "
          f"only: {res.kl_fisher_doc_bits:.1f}); E_q CE = {res.expected_ce_bits:.3f} bits/example;"
          f" prior scale {res.prior_scale:.3g}")
    print(f"  PAC-Bayes bound on the test error of q: {pb.bound:.3f} (delta={pb.delta:g}, "
          f"train error of q {res.train_error:.3f} -> {pb.train_error_upper:.3f} after MC); "
          f"measured test error of q {res.test_error:.3f}, of w* {res.test_error_mean:.3f}")
    if rl is not None:
        s = summary["random_labels"]
        print(f"  true vs random labels: {rl.n_params} weights, N={rl.n_samples}, "
              f"{len(rl.seeds)} seeds (mean over seeds; * = fits: training error of q <= "
              f"{s['fit_error']:g} in every seed)")
        print("    beta     KL bits true / random   train error true / random   "
              "PAC-Bayes bound true / random")
        for row in s["per_beta"]:
            t, r = row["true"], row["random"]
            kl = f"{t['kl_bits']['mean']:8.1f} / {r['kl_bits']['mean']:8.1f}"
            err = (f"{t['train_error']['mean']:.3f}{'*' if t['fits'] else ' '} / "
                   f"{r['train_error']['mean']:.3f}{'*' if r['fits'] else ' '}")
            bound = f"{t['pac_bayes_bound']['mean']:.3f} / {r['pac_bayes_bound']['mean']:.3f}"
            print(f"    {row['beta']:<7g}  {kl}     {err}             {bound}")
        print(f"  {s['verdict']}")
    return 0


def _task2vec(args) -> int:
    require_torch("task2vec")  # (before ._info_utils, which imports torch)
    seed = one_seed(args, "task2vec")
    probe_hidden = parse_widths(args.probe_hidden, "--probe-hidden")
    from ._info_utils import make_generator, seed_from
    from .task2vec import digits_task_family

    gen = make_generator(seed)
    fam = digits_task_family(n_samples=args.n_samples, random_state=seed_from(gen))
    if args.tasks != "all":
        names = [t.strip() for t in args.tasks.split(",") if t.strip()]
        unknown = [t for t in names if t not in fam]
        if unknown or len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(f"--tasks must name at least two distinct tasks of {sorted(fam)} "
                             f"(got {args.tasks!r})")
        fam = {t: fam[t] for t in names}
    prepare_run(args, "task2vec")
    from .infoplane import agg_figure
    import numpy as np

    from .task2vec import build_probe, plot_distance_matrix, task2vec_experiment

    t0 = time.time()
    probe = build_probe(hidden=probe_hidden,
                        pretrain="digits" if args.probe_epochs > 0 else None,
                        epochs=args.probe_epochs, random_state=seed_from(gen))
    with progress(len(fam), "tasks", args.quiet) as bar:
        result = task2vec_experiment(fam, probe=probe, metric=args.metric,
                                     random_state=seed_from(gen), progress=bar.update,
                                     device=args.device)
    names, dist = list(result.names), result.distances
    with open(os.path.join(args.out, "task2vec_distances.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task"] + names)
        for n, row in zip(names, dist):
            w.writerow([n] + [f"{v:.6f}" for v in row])
    np.savez(os.path.join(args.out, "task2vec_embeddings.npz"), names=np.array(names),
             embeddings=np.stack([e.vector for e in result.embeddings]), distances=dist)
    result.save(os.path.join(args.out, "task2vec.npz"))
    summary = result.summary()
    write_json(os.path.join(args.out, "task2vec.json"), summary)
    fig, ax = agg_figure((0.45 * len(names) + 2.5, 0.45 * len(names) + 2))
    plot_distance_matrix(dist, names, ax=ax)
    fig.savefig(os.path.join(args.out, "task2vec.png"), dpi=120)
    print(f"ibsolver task2vec: {len(names)} tasks in {time.time() - t0:.1f} s -> {args.out}")
    for n in names:
        print(f"  {n:10s} nearest: {summary['nearest'][n]}")
    return 0
