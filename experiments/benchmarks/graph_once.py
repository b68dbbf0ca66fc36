"""Benchmark: what holding the graph saves. GATConv forward + backward with a raw
``edge_index`` (the CSR view and the self-loop graph are built on every call) against the same
layer given a ``GraphCSR`` built once (``gatlib.graph.to_csr``, outside the timing) and PyG's
``EdgeIndex`` sorted by target with its caches filled (``sort_by("col")``, ``fill_cache_()``,
outside the timing: the form PyG users may hold; gatlib reads its CSR views from the caches
instead of sorting, but still adds the self-loops on every call).

On a random graph (default: 100,000 nodes, 2,000,000 edges, 64 input features, 8 heads x 16,
self-loops added by the layer, as in use) it checks that the three give the same output, then
times each ``--repeats`` times, the three forms in turn within each round (so that a busy
machine slows them alike), and prints the medians, the time ``to_csr`` takes, and the saving.

Run:  python experiments/benchmarks/graph_once.py [--nodes N] [--edges E] [--repeats R]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import gatlib
from gatlib.experiments.bench import add_int_args, gat_layer_setup
from gatlib.graph import to_csr


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_int_args(p, nodes=100_000, edges=2_000_000, heads=8, channels=16, repeats=5, seed=0)
    p.add_argument("--in-channels", type=int, default=64)
    args = p.parse_args(argv)
    layer, x, edge_index, grad = gat_layer_setup(
        "gatlib", num_nodes=args.nodes, num_edges=args.edges, in_channels=args.in_channels,
        heads=args.heads, channels=args.channels, seed=args.seed)
    from torch_geometric import EdgeIndex
    t0 = time.perf_counter()
    graph = to_csr(edge_index, args.nodes)
    build_s = time.perf_counter() - t0
    held = EdgeIndex(edge_index, sparse_size=(args.nodes, args.nodes)).sort_by("col")[0]
    held.fill_cache_()
    forms = {"edge_index": edge_index, "GraphCSR": graph, "EdgeIndex": held}

    def step(adj):
        layer.zero_grad(set_to_none=True)
        x.grad = None
        out = layer(x, adj)
        out.backward(grad)
        return out.detach()

    want = step(forms["edge_index"])
    for name in ("GraphCSR", "EdgeIndex"):                 # also the warm-up of each form
        torch.testing.assert_close(step(forms[name]), want, rtol=1e-5, atol=1e-5)
    times = {name: [] for name in forms}
    for _ in range(args.repeats):
        for name, adj in forms.items():
            t = time.perf_counter()
            step(adj)
            times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"GATConv forward+backward, {args.nodes:,} nodes, {args.edges:,} edges, "
          f"{args.in_channels} -> {args.heads} heads x {args.channels}; {cpu}, "
          f"{torch.get_num_threads()} threads, load {load:.1f}; torch {torch.__version__}, "
          f"gatlib {gatlib.__version__}; median of {args.repeats}")
    print(f"  to_csr once: {build_s * 1e3:,.0f} ms")
    for name, s in med.items():
        saved = 1 - s / med["edge_index"]
        change = f"{abs(saved):.0%} {'less' if saved >= 0 else 'more'} than edge_index"
        print(f"  {name:>10}: {s * 1e3:,.0f} ms" + ("" if name == "edge_index"
                                                     else f"  ({change})"))
    return {"median_s": med, "to_csr_s": build_s, "load": load}


if __name__ == "__main__":
    main()
