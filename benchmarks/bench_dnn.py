"""Training throughput of batched ensembles vs a loop of single networks, and the cost of the
information-plane estimates per recorded epoch.

Task: the 12-bit task (4096 patterns, 85% train), network 12-10-7-5-4-3-2 tanh, Adam,
batch 256 (14 minibatches per epoch). For S = 1, 10, 50 seeds the same configuration trains
(a) as ONE batched ensemble (``train(..., batched=True)``) and (b) as a loop of S single
``mlp`` runs (``batched=False``); the table gives epochs per second of the whole set of S
networks (so "ensemble / loop" is the speed-up) and the final train loss of each, which must
agree (same numbers: the ensemble is exact). Timing covers the unrecorded epochs only (from
the end of epoch 1 to the start of the last one), median over ``--repeats`` runs.

Estimates: seconds per recorded epoch for the run's own binning (the "auto" rule: 30 bins
over the fixed range of the tanh layers and the softmax output, bins of width 2/30 for any
other layer; all layers, S seeds) and for the KDE bounds (one seed, all layers, N = 4096),
on the activations of the trained ensemble.

    python benchmarks/bench_dnn.py
    python benchmarks/bench_dnn.py --seeds 1,10,50 --epochs 12 --out bench_dnn.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dnn.estimators import KDE, estimate_ensemble, make_estimator  # noqa: E402
from dnn.tasks.tishby12 import tishby12  # noqa: E402
from dnn.train import TrainConfig, train  # noqa: E402


def _time_training(task, cfg, batched, device):
    """(seconds per epoch of the whole set of seeds, final train loss per seed, result)."""
    stamps: list = []

    def cb(epoch):
        stamps.append((epoch, time.perf_counter()))

    res = train(task, cfg, device=device, batched=batched, callback=cb)
    # split the callback stream into runs (the epoch counter restarts for each single run)
    runs, cur = [], []
    for e, t in stamps:
        if e == 1 and cur:
            runs.append(cur)
            cur = []
        cur.append((e, t))
    runs.append(cur)
    per_epoch = 0.0
    for r in runs:
        # epochs 2 .. E-1 carry no record (records at 0 and E only)
        t = dict(r)
        e_last = max(t)
        per_epoch += (t[e_last - 1] - t[1]) / (e_last - 2)
    return per_epoch, res.train_loss[-1], res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1,10,50", help="ensemble sizes (default: 1,10,50)")
    ap.add_argument("--epochs", type=int, default=12, help="epochs per timing run (default: 12)")
    ap.add_argument("--repeats", type=int, default=3, help="timing runs per cell (default: 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    ap.add_argument("--device", default="cpu", help="(default: cpu)")
    ap.add_argument("--kde-repeats", type=int, default=1, help="KDE timing runs (default: 1)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.epochs < 4:
        ap.error(f"--epochs must be >= 4 (got {args.epochs})")
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.seeds.split(",")]
    task = tishby12()
    rows = []
    last = None
    for s in sizes:
        cfg = TrainConfig(epochs=args.epochs, seeds=tuple(range(s)), n_records=2,
                          batch_size=256, optimizer="adam", lr=3e-3)
        ens, loop = [], []
        for _ in range(args.repeats):
            t_e, loss_e, res = _time_training(task, cfg, True, args.device)
            t_l, loss_l, _ = _time_training(task, cfg, False, args.device)
            ens.append(t_e)
            loop.append(t_l)
        t_e, t_l = statistics.median(ens), statistics.median(loop)
        rows.append({"seeds": s, "ensemble_epochs_per_s": 1.0 / t_e,
                     "loop_epochs_per_s": 1.0 / t_l, "speedup": t_l / t_e,
                     "ensemble_seed_epochs_per_s": s / t_e, "loop_seed_epochs_per_s": s / t_l,
                     "final_train_loss_bits_ensemble": float(np.mean(loss_e)),
                     "final_train_loss_bits_loop": float(np.mean(loss_l)),
                     "max_abs_loss_diff_bits": float(np.max(np.abs(loss_e - loss_l)))})
        last = res

    # estimate cost on the largest ensemble's final activations
    acts = last.final_activations
    p_xy = last.p_xy
    est_rows = []
    n_seeds = acts[last.layers[0]].shape[0]
    binning = make_estimator({"name": "binning", **last.knobs("binning")})  # the run's own
    times = []
    for _ in range(max(args.repeats, 1)):
        t0 = time.perf_counter()
        estimate_ensemble(binning, acts, p_xy)
        times.append(time.perf_counter() - t0)
    est_rows.append({"estimator": "binning (auto: 30 bins or w 2/30)", "seeds": n_seeds,
                     "n_probe": p_xy.shape[0],
                     "s_per_record": statistics.median(times),
                     "s_per_record_per_seed": statistics.median(times) / n_seeds})
    one = {k: v[:1] for k, v in acts.items()}
    kde_devices = [None] + ([args.device] if args.device != "cpu" else [])
    for dev in kde_devices:  # None: numpy on the CPU; else torch (float64) on the device
        times = []
        for _ in range(max(args.kde_repeats, 1)):
            t0 = time.perf_counter()
            estimate_ensemble(KDE(0.1, device=dev), one, p_xy)
            times.append(time.perf_counter() - t0)
        where = "" if dev is None else f" on {dev}"
        est_rows.append({"estimator": f"KDE upper+lower (s^2=0.1){where}", "seeds": 1,
                         "n_probe": p_xy.shape[0], "s_per_record": statistics.median(times),
                         "s_per_record_per_seed": statistics.median(times)})

    print(f"training on {args.device}, tishby12, 12-10-7-5-4-3-2 tanh, Adam, batch 256 "
          f"({int(np.ceil(0.85 * 4096 / 256))} steps/epoch), torch {torch.__version__}, "
          f"{args.threads} CPU thread(s), median of {args.repeats}; the information-plane "
          "estimates below run on the CPU unless marked")
    print(f"{'seeds':>5} | {'ensemble ep/s':>13} | {'loop ep/s':>9} | {'speed-up':>8} | "
          f"{'ens. seed-ep/s':>14} | {'final loss ens / loop (bits)':>28}")
    for r in rows:
        print(f"{r['seeds']:>5} | {r['ensemble_epochs_per_s']:13.2f} | {r['loop_epochs_per_s']:9.2f} | "
              f"{r['speedup']:8.1f} | {r['ensemble_seed_epochs_per_s']:14.1f} | "
              f"{r['final_train_loss_bits_ensemble']:.6f} / {r['final_train_loss_bits_loop']:.6f}")
    print()
    print("information-plane estimates per recorded epoch (6 layers, N = 4096)")
    print(f"{'estimator':>34} | {'seeds':>5} | {'s / record':>10} | {'s / record / seed':>17}")
    for r in est_rows:
        print(f"{r['estimator']:>34} | {r['seeds']:>5} | {r['s_per_record']:10.3f} | "
              f"{r['s_per_record_per_seed']:17.3f}")
    if args.out:
        out = {"training": rows, "estimates": est_rows,
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "torch": torch.__version__, "threads": args.threads,
                           "device": args.device},
               "args": vars(args)}
        Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
