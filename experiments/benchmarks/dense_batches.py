"""Dense attention over one training batch of TU graphs (sizes drawn at random, as one shuffled
batch): gatlib's ``dense_attention``, which pads each group of similar sizes only to its own
largest graph, against padding every graph to the largest of the batch as PyG's ``GPSConv``
does (``to_dense_batch`` and a key-padding mask, the same SDPA kernel underneath). Forward plus
backward, each candidate in a fresh process (median of ``--repeats`` after a warm-up; peak =
growth of the resident set, or of CUDA memory, during one step).

Before timing, both candidates' outputs must agree to 1e-5 on the batch, else the script exits
non-zero.

Writes ``<out>.{md,json}`` (default ``results/dense_batches_<device>`` in the checkout,
git-ignored; ``--out experiments/results/dense_batches_<device>`` for the committed figures).

Run:  python experiments/benchmarks/dense_batches.py [--datasets PROTEINS,NCI1,ENZYMES,IMDB-BINARY]
      [--batch-size 128] [--heads 4] [--dim 16] [--repeats 10] [--device cpu]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from gatlib.experiments.bench import attention_inputs, device_name, time_candidates, write_results
from gatlib.experiments.bench_graphs import (DENSE_BATCH_IMPLS, graph_batch_sizes,
                                             padded_dense_attention)
from gatlib.ops import dense_attention

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"           # git-ignored: a run leaves the checkout clean


def check(sizes, heads: int, dim: int, device: str) -> float:
    counts = torch.tensor(sizes)
    batch = torch.repeat_interleave(torch.arange(counts.numel()), counts).to(device)
    q, k, v, _ = attention_inputs(int(counts.sum()), heads, dim, device=device)
    with torch.no_grad():
        err = (dense_attention(q, k, v, batch)
               - padded_dense_attention(q, k, v, batch)).abs().max().item()
    if not err < 1e-5:
        sys.exit(f"the candidates disagree (max error {err:.2e}); not timing")
    return err


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="PROTEINS,NCI1,ENZYMES,IMDB-BINARY")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev = args.device.split(":")[0]
    out = Path(args.out) if args.out else RESULTS / f"dense_batches_{dev}"
    name = device_name(args.device)
    print(f"dense attention fwd+bwd over a batch of {args.batch_size} graphs, {args.device} "
          f"({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    rows = []
    for dataset in args.datasets.split(","):
        sizes = graph_batch_sizes(dataset, args.batch_size)
        err = check(sizes, args.heads, args.dim, args.device)
        t, m = time_candidates("gatlib.experiments.bench_graphs:dense_batch_step",
                               DENSE_BATCH_IMPLS,
                               dict(sizes=sizes, heads=args.heads, dim=args.dim,
                                    device=args.device),
                               args.repeats, args.device, where=dataset)
        exact = sum(n * n for n in sizes)
        padded = len(sizes) * max(sizes) ** 2
        row = {"dataset": dataset, "nodes": sum(sizes), "largest": max(sizes),
               "pairs_exact": exact, "pairs_padded": padded, "max_error": err,
               "ms": t, "peak": m}
        rows.append(row)
        print(f"  {dataset:>12}: gatlib {t['gatlib']:.1f} ms, padded {t['padded']:.1f} ms "
              f"(speed-up {t['padded'] / t['gatlib']:.1f}x; padding makes "
              f"{padded / exact:.0f}x the node pairs)")

    def mib(b):
        return "n/a" if b is None else f"{b / 2**20:,.1f}"

    def ratio(a, b):
        return "n/a" if not a or not b else f"{b / a:.1f}x"
    lines = [f"Dense attention (forward + backward) over one batch of {args.batch_size} graphs "
             f"drawn at random, {args.heads} heads x {args.dim}, {args.device} ({name}), torch "
             f"{torch.__version__}, {torch.get_num_threads()} threads; median of "
             f"{args.repeats} steps. `python experiments/benchmarks/dense_batches.py`", "",
             "| dataset | nodes | largest graph | node pairs: padded / exact | gatlib (ms) | "
             "padded to the largest (ms) | speed-up | peak MiB gatlib / padded | memory ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        t, m = r["ms"], r["peak"]
        lines.append(f"| {r['dataset']} | {r['nodes']:,} | {r['largest']} | "
                     f"{r['pairs_padded'] / r['pairs_exact']:.1f}x | {t['gatlib']:,.1f} | "
                     f"{t['padded']:,.1f} | {t['padded'] / t['gatlib']:.1f}x | "
                     f"{mib(m['gatlib'])} / {mib(m['padded'])} | "
                     f"{ratio(m['gatlib'], m['padded'])} |")
    write_results(out, lines, {"rows": rows, "repeats": args.repeats,
                               "batch_size": args.batch_size, "device": name,
                               "torch": torch.__version__})
    return {"rows": rows}


if __name__ == "__main__":
    main()
