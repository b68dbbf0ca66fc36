"""The ``gatlib`` command.

    gatlib train --config experiments/configs/cora-gat.yaml [key=value ...] [--seeds 0-9]
    gatlib summarize RESULTS_DIR
    gatlib compare [--tasks cluster,sequence,digits,mutag] [--seeds 0-1] [--full] ...
    gatlib data list | fetch [--mirror DIR] [--copy] [NAME ...]
    gatlib demo [--nodes N] [--edges E] [--heads H] [--channels C]

``train`` runs a config for each seed (resumable; results under ``--results``), ``summarize``
turns finished runs into ``mean ± std`` tables and learning curves, ``data`` lists and fetches
datasets, ``compare`` trains sparse, dense and hybrid attention side by side under one
parameter and tuning budget and writes the comparison table and plots, and ``demo`` checks the attention operators on a built-in graph against the
reference and compares their time and peak memory.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

import torch

from . import __version__
from .benchmarks import gat_forward, gat_inputs
from .graph import complete_graph, to_csr
from .ops import dense_attention, sparse_attention
from .utils import measure


def _max_err(a: List[torch.Tensor], b: List[torch.Tensor]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def _demo(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    print(f"gatlib {__version__} demo on torch {torch.__version__} "
          f"({torch.get_num_threads()} CPU threads)")

    # 1. Dense attention equals sparse attention over the complete graph.
    n, H, D = 256, args.heads, args.channels
    q, k, v = (torch.randn(n, H, D) for _ in range(3))
    err = (sparse_attention(q, k, v, complete_graph(n)) - dense_attention(q, k, v)).abs().max()
    print(f"\n[1] sparse attention on complete_graph({n}) vs dense attention (SDPA): "
          f"max abs difference {err.item():.2e}")

    # 2. GAT attention on a random graph: gatlib vs the reference, forward and backward.
    size = dict(num_nodes=args.nodes, num_edges=args.edges, heads=args.heads,
                channels=args.channels, seed=args.seed)
    grads = {}
    for impl in ("gatlib", "reference"):
        x = gat_inputs(**size)
        graph = to_csr(x["edge_index"], args.nodes) if impl == "gatlib" else x["edge_index"]
        out = gat_forward(impl, x["a_src"], x["a_dst"], x["v"], graph)
        out.backward(x["grad"])
        grads[impl] = [out.detach()] + [x[t].grad for t in ("a_src", "a_dst", "v")]
    err = _max_err(grads["gatlib"], grads["reference"])
    print(f"\n[2] gat_attention on a random graph ({args.nodes:,} nodes, {args.edges:,} edges, "
          f"{args.heads} heads x {args.channels}):\n    output and gradients vs the reference: "
          f"max abs difference {err:.2e}")
    ok = err < 1e-4

    # 3. Time and peak memory, each candidate in a fresh process.
    print("\n[3] forward + backward, median of 5 runs after warm-up, each in a fresh process:")
    res = {impl: measure("gatlib.benchmarks:gat_step", dict(impl=impl, **size), repeats=5)
           for impl in ("gatlib", "reference")}
    print(f"    {'path':<34} {'time (ms)':>10} {'peak (MiB)':>11}")
    for impl, label in (("gatlib", "gatlib (CPU backend)"),
                        ("reference", "reference (builds [E, H, C])")):
        r = res[impl]
        if r["status"] != "ok":
            print(f"    {label:<34} {r['status']}: {r['message'].splitlines()[0]}")
            ok = False
            continue
        peak = "n/a" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:,.0f}"
        print(f"    {label:<34} {r['time_s'] * 1e3:>10,.0f} {peak:>11}")
    g, ref = res["gatlib"], res["reference"]
    if g["status"] == ref["status"] == "ok":
        line = f"    gatlib is {ref['time_s'] / g['time_s']:.1f}x faster"
        if g["peak_bytes"] and ref["peak_bytes"]:
            line += f" and uses {g['peak_bytes'] / ref['peak_bytes']:.2f}x the peak memory"
        print(line)
    print("\nOK" if ok else "\nFAILED: see above")
    return 0 if ok else 1


def _train(args: argparse.Namespace) -> int:
    from .train import load_config, parse_seeds, run_config, summarize
    cfg = load_config(args.config, args.overrides)
    if args.device:
        cfg["device"] = args.device
    seeds = parse_seeds(args.seeds)
    rows = run_config(cfg, seeds, Path(args.results), progress=not args.quiet)
    metric = cfg["metric"]
    vals = [r[f"test_{metric}"] for r in rows]
    print(f"{cfg['name']}: test {metric} over {len(vals)} seed(s): "
          + ", ".join(f"{v:.4f}" for v in vals))
    print(summarize(Path(args.results)))
    return 0


_COMPARE_LRS = "0.003"
# gatlib.train.compare.DEFAULT_TASKS, named here so that --help needs no heavy import.
_COMPARE_TASKS = "cluster,sequence,digits,mutag"


def _default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _compare(args: argparse.Namespace) -> int:
    import platform

    from .train import parse_seeds
    from .train.compare import DEFAULT_TASKS, TASKS, compare, write_report
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    if tasks is None:
        tasks = list(DEFAULT_TASKS)
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        print(f"gatlib compare: unknown task(s) {', '.join(bad)}; choose from "
              f"{', '.join(TASKS)}", file=sys.stderr)
        return 2
    variants = ([v.strip() for v in args.variants.split(",") if v.strip()]
                if args.variants else None)
    try:
        lrs = [float(x) for x in args.lrs.split(",") if x.strip()]
    except ValueError:
        print(f"gatlib compare: --lrs must be comma-separated numbers, got {args.lrs!r}",
              file=sys.stderr)
        return 2
    seeds = parse_seeds(args.seeds)
    import time
    t0 = time.perf_counter()
    rows = compare(tasks, variants, seeds, budget=args.budget, lrs=lrs,
                   results=Path(args.results), device=args.device, quick=not args.full,
                   progress=not args.quiet, epochs=args.epochs, jobs=args.jobs)
    wall = time.perf_counter() - t0
    if not rows:
        print("gatlib compare: no task could run (see the messages above)", file=sys.stderr)
        return 1
    kept = list(dict.fromkeys(r["task"] for r in rows))
    per_task = dict.fromkeys((r["task"], r["budget"]) for r in rows)
    budgets = (f"{args.budget:,}" if args.budget else
               f"{rows[0]['budget']:,}" if len({b for _, b in per_task}) == 1 else
               ", ".join(f"{t} {b:,}" for t, b in per_task))
    threads = (f"{args.jobs} one-thread worker processes" if args.jobs > 1
               else f"{torch.get_num_threads()} threads")
    again = [f"--tasks {','.join(kept)}", f"--seeds {args.seeds}"]
    again += [f"--variants {args.variants}"] if args.variants else []
    again += [f"--lrs {args.lrs}"] if args.lrs != _COMPARE_LRS else []
    again += [f"--budget {args.budget}"] if args.budget else []
    again += [f"--epochs {args.epochs}"] if args.epochs is not None else []
    again += ["--full"] if args.full else []
    settings = (f"Settings: {len(seeds)} seed(s) ({args.seeds}); parameter budget "
                f"{budgets} (width chosen per variant); learning rates tried on seed "
                f"{seeds[0]}: {', '.join(f'{x:g}' for x in lrs)} (best on validation kept); "
                f"3 attention layers, 4 heads, AdamW; {'full' if args.full else 'small'} "
                f"sizes; device {args.device} ({platform.processor() or platform.machine()}, "
                f"{threads}); torch {torch.__version__}, gatlib "
                f"{__version__}; {wall / 60:.1f} min wall time (cached runs are not re-run). "
                f"Reproduce: `gatlib compare {' '.join(again)}`.")
    text = write_report(rows, Path(args.out), settings)
    print(text)
    print(f"wrote {Path(args.out) / 'compare.md'}, compare.json, compare_accuracy.png and "
          f"compare_cost.png")
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from .train import summarize
    print(summarize(Path(args.results_dir), plots=not args.no_plots))
    return 0


def _data(args: argparse.Namespace) -> int:
    from . import data
    if args.action == "list":
        for entry in data.list_datasets():
            print(f"{entry.name:<12} {entry.task:<5} {entry.description}")
        return 0
    report = data.fetch(args.names or None, mirror=args.mirror, copy=args.copy)
    print(report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatlib", description="Attention on graphs.")
    parser.add_argument("--version", action="version", version=f"gatlib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="check the operators against the reference and "
                                       "compare their time and memory on a built-in graph")
    demo.add_argument("--nodes", type=int, default=50_000, help="nodes (default 50,000)")
    demo.add_argument("--edges", type=int, default=1_000_000, help="edges (default 1,000,000)")
    demo.add_argument("--heads", type=int, default=8, help="attention heads (default 8)")
    demo.add_argument("--channels", type=int, default=16, help="channels per head (default 16)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)

    train = sub.add_parser("train", help="train a config over seeds (resumable)")
    train.add_argument("--config", required=True, help="a YAML file in experiments/configs/")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="config overrides, e.g. model.heads=4 optim.lr=0.01")
    train.add_argument("--seeds", default="0", help="e.g. 0-9 or 0,3,5 (default 0)")
    train.add_argument("--results", default="results", help="results folder (default results)")
    train.add_argument("--device", default=None, help="cpu or cuda (default: the config's)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=_train)

    summ = sub.add_parser("summarize", help="mean ± std tables and learning curves of runs")
    summ.add_argument("results_dir", help="a results folder written by gatlib train")
    summ.add_argument("--no-plots", action="store_true", help="tables only")
    summ.set_defaults(func=_summarize)

    cmp_ = sub.add_parser(
        "compare", help="dense vs sparse vs hybrid attention under one parameter and tuning "
                        "budget: table and plots")
    cmp_.add_argument("--tasks", default=None,
                      help="comma-separated, from pattern, cluster, sequence, digits, cora, "
                           f"citeseer, chameleon, mutag, proteins (default {_COMPARE_TASKS})")
    cmp_.add_argument("--variants", default=None,
                      help="comma-separated, e.g. sparse,dense+lap,gps,sparse[bigbird] "
                           "(default: each task's own list)")
    cmp_.add_argument("--seeds", default="0-1", help="e.g. 0-4 (default 0-1)")
    cmp_.add_argument("--budget", type=int, default=None,
                      help="parameters per model (default: the task's, 20,000, or 100,000 on "
                           "the citation graphs)")
    cmp_.add_argument("--lrs", default=_COMPARE_LRS,
                      help="learning rates tried on the first seed, the best on validation "
                           f"kept (default {_COMPARE_LRS})")
    cmp_.add_argument("--epochs", type=int, default=None, help="override every task's epochs")
    cmp_.add_argument("--full", action="store_true",
                      help="the full sizes (more graphs and epochs; default: the small sizes, "
                           "about 14 minutes on two CPU cores for the default tasks)")
    cmp_.add_argument("--results", default="results/compare",
                      help="per-run results, resumable (default results/compare)")
    cmp_.add_argument("--out", default="results/compare",
                      help="where compare.md, compare.json and the plots go "
                           "(default results/compare)")
    cmp_.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    cmp_.add_argument("--jobs", type=int, default=_default_jobs(),
                      help="runs trained at once, each in a one-thread worker process (CPU "
                           f"only; default {_default_jobs()}: one per core, up to four)")
    cmp_.add_argument("--quiet", action="store_true", help="no progress bars")
    cmp_.set_defaults(func=_compare)

    dat = sub.add_parser("data", help="list or fetch datasets")
    dat.add_argument("action", choices=("list", "fetch"))
    dat.add_argument("names", nargs="*", help="datasets to fetch (default: all)")
    dat.add_argument("--mirror", default=None, help="a mirror folder in PyG's layout")
    dat.add_argument("--copy", action="store_true", help="copy instead of linking")
    dat.set_defaults(func=_data)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
