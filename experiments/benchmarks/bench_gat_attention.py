"""Benchmark: forward + backward of additive (GAT) attention, gatlib against its peers.

On a random graph (default: 100,000 nodes, 2,000,000 edges, 8 heads x 16 channels) it
1. checks gatlib's output and gradients against PyG's path (or the reference) at full size,
2. measures each candidate in a fresh process: median wall time of forward + backward over
   ``--repeats`` runs after a warm-up, and the peak memory of one step,
3. prints a table with the ratios to PyG (and torch_scatter where installed), and writes it to
   ``experiments/results/bench_gat_attention_<device>.{md,json}`` atomically.

Run:  python experiments/benchmarks/bench_gat_attention.py [--device cuda] [--nodes N] ...
"""
from __future__ import annotations

import argparse
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

import gatlib
from gatlib.benchmarks import available_impls, gat_forward, gat_inputs
from gatlib.graph import to_csr
from gatlib.utils import atomic_write_json, atomic_write_text, measure

RESULTS = Path(__file__).resolve().parents[1] / "results"


def check(args) -> dict:
    """Max abs error of gatlib's forward and gradients against the peer at full size."""
    peer = "pyg" if "pyg" in available_impls() else "reference"
    errs = {}
    outs = {}
    for impl in ("gatlib", peer):
        x = gat_inputs(args.nodes, args.edges, args.heads, args.channels, args.seed, args.device)
        graph = to_csr(x["edge_index"], args.nodes) if impl == "gatlib" else x["edge_index"]
        out = gat_forward(impl, x["a_src"], x["a_dst"], x["v"], graph)
        out.backward(x["grad"])
        outs[impl] = [out.detach()] + [x[k].grad for k in ("a_src", "a_dst", "v")]
        del x, graph, out
    for name, a, b in zip(("out", "grad_a_src", "grad_a_dst", "grad_v"), outs["gatlib"],
                          outs[peer]):
        errs[name] = (a - b).abs().max().item()
    worst = max(errs.values())
    print(f"check against {peer}: max abs error " +
          ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
    if not worst < 1e-3:
        sys.exit(f"gatlib disagrees with {peer} (max abs error {worst:.3e}); not timing")
    return {"peer": peer, "max_abs_error": errs}


def fmt_mb(b):
    return "n/a" if b is None else f"{b / 2**20:,.0f}"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=100_000)
    p.add_argument("--edges", type=int, default=2_000_000)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--impls", default=",".join(available_impls()),
                   help="comma-separated candidates (default: all installed)")
    p.add_argument("--out", default=None, help="output stem (default experiments/results/...)")
    args = p.parse_args(argv)

    size = dict(num_nodes=args.nodes, num_edges=args.edges, heads=args.heads,
                channels=args.channels, seed=args.seed, device=args.device)
    print(f"GAT attention forward+backward: {args.nodes:,} nodes, {args.edges:,} edges, "
          f"{args.heads} heads x {args.channels}, device {args.device}, "
          f"torch {torch.__version__}, gatlib {gatlib.__version__}, "
          f"threads {torch.get_num_threads()}")
    checked = check(args)
    rows = {}
    for impl in args.impls.split(","):
        r = measure("gatlib.benchmarks:gat_step", dict(impl=impl, **size), device=args.device,
                    repeats=args.repeats)
        rows[impl] = r
        shown = (f"{r['time_s'] * 1e3:,.0f} ms, peak {fmt_mb(r['peak_bytes'])} MiB"
                 if r["status"] == "ok" else f"{r['status']}: {r['message'].splitlines()[0]}")
        print(f"  {impl:>14}: {shown}")

    g = rows.get("gatlib", {})
    lines = ["| implementation | fwd+bwd time (ms) | peak memory (MiB) | gatlib speed-up | "
             "gatlib memory ratio |", "|---|---:|---:|---:|---:|"]
    for impl, r in rows.items():
        if r["status"] != "ok":
            lines.append(f"| {impl} | {r['status']} | {r['status']} | | |")
            continue
        speed = g["time_s"] and r["time_s"] / g["time_s"] if g.get("status") == "ok" else None
        mem = (g["peak_bytes"] / r["peak_bytes"]
               if g.get("status") == "ok" and g["peak_bytes"] and r["peak_bytes"] else None)
        lines.append(f"| {impl} | {r['time_s'] * 1e3:,.0f} | {fmt_mb(r['peak_bytes'])} | "
                     f"{'' if speed is None else f'{speed:.1f}x'} | "
                     f"{'' if mem is None else f'{mem:.3f}'} |")
    device_name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                   else platform.processor() or platform.machine())
    header = (f"GAT attention forward+backward, {args.nodes:,} nodes, {args.edges:,} edges, "
              f"{args.heads} heads x {args.channels}; device {args.device} ({device_name}, "
              f"{torch.get_num_threads()} threads); torch {torch.__version__}, gatlib "
              f"{gatlib.__version__}; median of {args.repeats} after warm-up; "
              f"{datetime.now(timezone.utc):%Y-%m-%d}.")
    table = "\n".join(lines)
    print("\n" + header + "\n\n" + table)
    stem = Path(args.out) if args.out else RESULTS / f"bench_gat_attention_{args.device}"
    record = {"args": vars(args), "check": checked, "results": rows, "header": header,
              "torch": torch.__version__, "gatlib": gatlib.__version__, "device": device_name}
    atomic_write_json(stem.with_suffix(".json"), record)
    atomic_write_text(stem.with_suffix(".md"), header + "\n\n" + table + "\n")
    print(f"\nwrote {stem.with_suffix('.md')} and .json")
    return record


if __name__ == "__main__":
    main()
