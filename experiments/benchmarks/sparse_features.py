"""One training epoch of the GAT paper's model on Cora and CiteSeer: gatlib with dense
features, gatlib with sparse CSR features (what ``gatlib train`` uses there), and PyG's layers
with dense features as the peer, each in a fresh process (median of ``--repeats`` epochs after
a warm-up; peak = growth of the resident set during one epoch).

Before timing, gatlib's logits (eval mode) with CSR features must equal those with dense
features to 1e-5, else the script exits non-zero.

Writes ``<out>.{md,json}`` (default ``results/sparse_features_cpu`` in the checkout,
git-ignored; ``--out experiments/results/sparse_features_cpu`` for the committed figures).

Run:  python experiments/benchmarks/sparse_features.py [--datasets Cora,CiteSeer]
      [--layers gat,gatv2,transformer] [--repeats 10]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from gatlib.experiments.bench import device_name, time_candidates, write_results
from gatlib.experiments.bench_graphs import PLANETOID_IMPLS, planetoid_model

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"           # git-ignored: a run leaves the checkout clean


def check(dataset: str, layer: str) -> float:
    dense, x, data = planetoid_model("gatlib-dense", dataset, layer)
    csr, xs, _ = planetoid_model("gatlib-csr", dataset, layer)
    dense.eval(), csr.eval()
    with torch.no_grad():
        err = (dense(x, data.edge_index) - csr(xs, data.edge_index)).abs().max().item()
    if not err < 1e-5:
        sys.exit(f"{dataset} {layer}: CSR features change the logits (max error {err:.2e}); "
                 f"not timing")
    return err


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="Cora,CiteSeer")
    p.add_argument("--layers", default="gat,gatv2,transformer")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else RESULTS / "sparse_features_cpu"
    rows = []
    print(f"one training epoch + evaluation, cpu ({device_name('cpu')}), torch "
          f"{torch.__version__}, threads {torch.get_num_threads()}")
    for dataset in args.datasets.split(","):
        for layer in args.layers.split(","):
            err = check(dataset, layer)
            t, m = time_candidates("gatlib.experiments.bench_graphs:planetoid_epoch_step",
                                   PLANETOID_IMPLS,
                                   dict(dataset=dataset, layer=layer), args.repeats,
                                   where=f"{dataset} {layer}")
            row = {"dataset": dataset, "layer": layer, "max_error": err, "ms": t, "peak": m}
            rows.append(row)
            print(f"  {dataset:>8} {layer:>11}: dense {t['gatlib-dense']:.0f} ms, csr "
                  f"{t['gatlib-csr']:.0f} ms, pyg {t['pyg']:.0f} ms "
                  f"(csr speed-up {t['gatlib-dense'] / t['gatlib-csr']:.1f}x over dense, "
                  f"{t['pyg'] / t['gatlib-csr']:.1f}x over pyg)")

    def mib(b):
        return "n/a" if b is None else f"{b / 2**20:,.0f}"
    lines = [f"One training epoch + evaluation pass of the GAT paper's model (2 layers, 8 heads "
             f"x 8), CPU ({device_name('cpu')}), torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads; median of {args.repeats} epochs. "
             f"`python experiments/benchmarks/sparse_features.py`", "",
             "| dataset | layer | gatlib dense (ms) | gatlib CSR (ms) | PyG (ms) | CSR vs dense "
             "| CSR vs PyG | peak MiB dense / CSR / PyG |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        t, m = r["ms"], r["peak"]
        lines.append(f"| {r['dataset']} | {r['layer']} | {t['gatlib-dense']:,.0f} | "
                     f"{t['gatlib-csr']:,.0f} | {t['pyg']:,.0f} | "
                     f"{t['gatlib-dense'] / t['gatlib-csr']:.1f}x | "
                     f"{t['pyg'] / t['gatlib-csr']:.1f}x | {mib(m['gatlib-dense'])} / "
                     f"{mib(m['gatlib-csr'])} / {mib(m['pyg'])} |")
    write_results(out, lines, {"rows": rows, "repeats": args.repeats,
                               "torch": torch.__version__})
    return {"rows": rows}


if __name__ == "__main__":
    main()
