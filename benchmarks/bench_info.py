"""Time the per-epoch costs of the information measures of issue 5, beside what they compute.

1. Exact Fisher trace per recorded epoch (``dnn.fisher.fisher_diagonal``): the model Fisher
   by torch.func (per class, vmap over samples of grad, weighted by p(c|x)), the empirical
   Fisher (vmap of grad), and, as the reference, a per-sample autograd loop (C backward
   passes per input).
   The last column is the trace: the fast path must reach the reference's value.
2. Usable information per recorded epoch: every layer x label set of one epoch, decoders
   trained one at a time (``max_group=1``) or as one batched stack (the default), for the
   linear and the MLP decoder. The last column is the mean usable information (bits).

Every case runs on CPU (at each of ``--threads``; default 1) and on CUDA when available. The
table shows the median of ``--repeats`` runs after a warm-up. These networks are tiny: on a
2-core machine shared with other work, 2 intra-op threads were 10-30x *slower* than 1
(OpenMP threads waiting for a busy core), which is why the CLI defaults to ``--threads 1``.

    python benchmarks/bench_info.py
    python benchmarks/bench_info.py --repeats 5 --out bench_info.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

try:
    import torch
except ImportError:  # pragma: no cover
    raise SystemExit("bench_info needs torch: pip install 'ibsolver[dnn]'") from None

from dnn.experiments import SMALL_FC, MEDIUM_FC  # noqa: E402
from dnn.fisher import fisher_diagonal  # noqa: E402
from dnn.loop import initial_network  # noqa: E402
from dnn.models import mlp, mlp_init  # noqa: E402
from dnn.tasks.checkerboard import checkerboard  # noqa: E402
from dnn.usable import usable_information_over_training  # noqa: E402


def median_time(fn, repeats):
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def loop_fisher_trace(model, x):
    """Reference: one autograd backward pass per (input, class)."""
    params = list(model.parameters())
    total = 0.0
    for i in range(x.shape[0]):
        logp = torch.log_softmax(model(x[i:i + 1]), dim=-1)[0]
        p = logp.exp().detach()
        for c in range(logp.shape[0]):
            grads = torch.autograd.grad(logp[c], params, retain_graph=True)
            total += float(p[c]) * float(sum((g ** 2).sum() for g in grads))
    return total / x.shape[0]


def fisher_cases(devices, threads, repeats, n_inputs):
    rows = []
    cases = [("checkerboard n=2, small FC 6-10-7-5-4-3-2", 2, SMALL_FC),
             ("checkerboard n=10, medium FC 110-100-20-20-20-10", 10, MEDIUM_FC)]
    for name, n, hidden in cases:
        task = checkerboard(n, n_inputs, random_state=0)
        model = initial_network(mlp((task.x.shape[1],) + hidden + (n,), "relu"), 0,
                                mlp_init("he", "relu"))
        n_par = sum(p.numel() for p in model.parameters())
        for dev in devices:
            for th in (threads if dev == "cpu" else [None]):
                if th:
                    torch.set_num_threads(th)
                m = model.to(dev)
                x = torch.as_tensor(task.x, device=dev)
                y = torch.as_tensor(task.labels, device=dev)
                t_model, fm = median_time(lambda: fisher_diagonal(m, x, kind="model"), repeats)
                t_emp, fe = median_time(lambda: fisher_diagonal(m, x, y, kind="empirical"),
                                        repeats)
                label = f"{dev}" + (f" x{th}" if th else "")
                rows.append((name, n_par, n_inputs, label, "model, vmap+grad per class", t_model,
                             fm.trace))
                rows.append((name, n_par, n_inputs, label, "empirical, vmap+grad", t_emp,
                             fe.trace))
                if dev == "cpu" and th == threads[0]:
                    t_loop, tr = median_time(lambda: loop_fisher_trace(m, x), 1)
                    rows.append((name, n_par, n_inputs, label, "model, autograd loop (ref)",
                                 t_loop, tr))
    return rows


def usable_cases(devices, threads, repeats, n_probe, decoder_epochs):
    rows = []
    for n, hidden in ((2, SMALL_FC), (10, MEDIUM_FC)):
        task = checkerboard(n, n_probe, random_state=1)
        model = initial_network(mlp((task.x.shape[1],) + hidden + (n,), "relu"), 0,
                                mlp_init("he", "relu"))
        acts = {}
        hook_out = {}
        hooks = [getattr(model, k).register_forward_hook(
            lambda _m, _i, o, k=k: hook_out.__setitem__(k, o.detach().numpy()))
            for k, _ in model.named_children() if k.startswith("act")]
        with torch.no_grad():
            out = model(torch.as_tensor(task.x))
        for h in hooks:
            h.remove()
        acts = dict(hook_out)
        acts["output"] = torch.softmax(out, -1).numpy()
        labels = {"direction": task.labels, "color": task.extra_labels["color"]}
        n_dec = len(acts) * 2
        for decoder in ("linear", "mlp"):
            for dev in devices:
                for th in (threads if dev == "cpu" else [None]):
                    if th:
                        torch.set_num_threads(th)
                    for group, label in ((1, "one at a time"), (64, "batched stack")):
                        def run():
                            return usable_information_over_training(
                                [acts], labels, decoder=decoder, decoder_epochs=decoder_epochs,
                                max_group=group, device=dev, random_state=0)
                        t, c = median_time(run, repeats)
                        rows.append((f"checkerboard n={n}: {len(acts)} layers x 2 labels",
                                     n_dec, n_probe, f"{dev}" + (f" x{th}" if th else ""),
                                     f"{decoder}, {label}", t, float(c.value.mean())))
    return rows


def print_table(title, header, rows, ref_key):
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(f"{r[i]:.4g}" if isinstance(r[i], float) else str(r[i]))
                                 for r in rows)) for i, h in enumerate(header)]
    widths.append(8)
    print("  ".join(str(h).ljust(w) for h, w in zip(header + ["ratio"], widths)))
    for r in rows:
        ref = ref_key(r, rows)
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in r]
        cells.append(f"{ref:.2f}" if ref else "")
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fisher-inputs", type=int, default=300)
    ap.add_argument("--probe", type=int, default=2000)
    ap.add_argument("--decoder-epochs", type=int, default=40)
    ap.add_argument("--threads", default="1", help="comma-separated torch thread counts")
    ap.add_argument("--out", default=None, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"devices {devices}, threads {threads}, median of {args.repeats}")

    fr = fisher_cases(devices, threads, args.repeats, args.fisher_inputs)

    def fisher_ratio(r, rows):  # time relative to the autograd loop of the same case
        ref = [q for q in rows if q[0] == r[0] and "loop" in q[4]]
        return ref[0][5] / r[5] if ref else None

    print_table("Fisher trace, one recorded epoch (speed-up over the autograd loop)",
                ["case", "params", "inputs", "device", "method", "median s", "trace"], fr,
                fisher_ratio)
    ur = usable_cases(devices, threads, args.repeats, args.probe, args.decoder_epochs)

    def usable_ratio(r, rows):  # speed-up of this row over one-at-a-time on the same setup
        ref = [q for q in rows if q[0] == r[0] and q[3] == r[3]
               and q[4].split(",")[0] == r[4].split(",")[0] and "one at a time" in q[4]]
        return ref[0][5] / r[5] if ref else None

    print_table(f"Usable information, one recorded epoch ({args.decoder_epochs} decoder epochs, "
                f"{args.probe} probe rows, half held out; speed-up over one at a time)",
                ["case", "decoders", "rows", "device", "decoder", "median s", "mean bits"], ur,
                usable_ratio)
    if args.out:
        Path(args.out).write_text(json.dumps({"fisher": fr, "usable": ur}, indent=1))


if __name__ == "__main__":
    main()
