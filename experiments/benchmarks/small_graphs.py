"""Attention layers on batches of small graphs, gatlib against PyG, on the CPU.

Forward plus backward of gatlib's ``GATConv``, ``GATv2Conv`` and ``GraphTransformerConv``
against PyG's ``GATConv``, ``GATv2Conv`` and ``TransformerConv`` (gatlib's weights copied from
the PyG layer with ``from_pyg``), on one batch (PyG's disjoint union) of random graphs shaped
like four graph-classification workloads:

- ``NCI1``: molecules of about 30 nodes and 32 undirected edges,
- ``PROTEINS``: about 39 nodes and 73 undirected edges,
- ``ZINC``: molecules of about 23 nodes and 25 undirected edges,
- ``CLUSTER``: the SBM graphs of the CLUSTER task (``gatlib.data.synthetic.sbm_cluster``,
  about 61 nodes, edges with probability 0.55 inside a cluster and 0.25 across).

A molecule-like graph of ``n`` nodes (``n`` uniform within 50% of the mean) and ``m`` edges is
a random spanning tree plus ``m - n + 1`` random extra edges, stored in both directions with
no self-loops or duplicates. Every layer has ``--in-channels`` inputs, ``--heads`` heads of
``--channels`` (default 64 inputs, 4 heads x 16) and adds self-loops where PyG's does.

Timing: in one process, one thread and then two, the two candidates alternate step by step
(``--steps`` timed steps each after ``--warmup``, so a change in the machine's load hits both
alike); the figure is the median step and the speed-up is PyG's median over gatlib's. The
load average (``os.getloadavg()``) is recorded beside each row. Before timing, gatlib's output
and input gradient must agree with PyG's to 1e-4 (relative to their scale), else the script
exits non-zero.

Roofline: beside each row, in the same run and thread count, the bound of the same work done
by the plainest means (:mod:`gatlib.experiments.roofline`: the layer's linear maps, the
attention's unavoidable row gathers on the graph with self-loops with ``torch.index_select``,
the output and the input gradients written once, the exponentials; forward + backward) and the
ratio gatlib / bound.

Writes ``<out>.{md,json}`` (default ``experiments/results/small_graphs_cpu``).

Run:  python experiments/benchmarks/small_graphs.py [--shapes NCI1,PROTEINS,ZINC,CLUSTER]
      [--batch-sizes 128,256] [--threads 1,2] [--steps 40] [--layers gat,gatv2,transformer]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

import gatlib
from gatlib.experiments.bench import add_int_args, device_name, write_results
from gatlib.experiments.roofline import attention_bound
from gatlib.graph import as_adjacency, to_csr

ROOT = Path(__file__).resolve().parents[2]

# name -> (mean nodes, mean undirected edges) of a molecule-like graph; CLUSTER is an SBM.
SHAPES = {"NCI1": (30, 32), "PROTEINS": (39, 73), "ZINC": (23, 25), "CLUSTER": None}
LAYERS = ("gat", "gatv2", "transformer")


def molecule_like(num_nodes: int, num_edges: int, g: torch.Generator) -> Tensor:
    """``[2, 2M]``: a random spanning tree on ``num_nodes`` nodes plus random extra edges, up
    to ``M = num_edges`` undirected edges (fewer if the graph fills up), in both directions."""
    n = num_nodes
    order = torch.randperm(n, generator=g).tolist()
    edges = set()
    for k in range(1, n):                        # node order[k] hangs from an earlier node
        j = order[int(torch.randint(0, k, (1,), generator=g))]
        edges.add((min(order[k], j), max(order[k], j)))
    target = min(num_edges, n * (n - 1) // 2)
    while len(edges) < target:
        a, b = torch.randint(0, n, (2,), generator=g).tolist()
        if a != b:
            edges.add((min(a, b), max(a, b)))
    und = torch.tensor(sorted(edges), dtype=torch.long).view(-1, 2).t()    # [2, M]
    return torch.cat([und, und.flip(0)], dim=1)                            # [2, 2M]


def graph_batch(shape: str, batch_size: int, seed: int = 0) -> Tuple[Tensor, int, int]:
    """``(edge_index [2, E], num_nodes, num_undirected_edges)`` of one batch of
    ``batch_size`` graphs of ``shape``, as PyG's disjoint union."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {sorted(SHAPES)}, got {shape!r}")
    g = torch.Generator().manual_seed(seed)
    if SHAPES[shape] is None:
        from gatlib.data.synthetic import sbm_cluster
        parts = [(d.edge_index, d.num_nodes) for d in sbm_cluster(batch_size, seed=seed)]
    else:
        n_mean, m_mean = SHAPES[shape]
        parts = []
        for _ in range(batch_size):
            n = int(torch.randint(n_mean // 2, n_mean * 3 // 2 + 1, (1,), generator=g))
            parts.append((molecule_like(n, round(m_mean * n / n_mean), g), n))
    offset, eis = 0, []
    for ei, n in parts:
        eis.append(ei + offset)
        offset += n
    ei = torch.cat(eis, dim=1)
    return ei, offset, ei.size(1) // 2


def layer_pair(layer: str, in_channels: int, heads: int, channels: int, seed: int = 0):
    """``(pyg_layer, gatlib_layer)`` with the same weights."""
    from torch_geometric import nn as pyg_nn

    from gatlib import nn as gnn
    torch.manual_seed(seed)
    if layer == "gat":
        pyg = pyg_nn.GATConv(in_channels, channels, heads=heads)
        return pyg, gnn.GATConv.from_pyg(pyg)
    if layer == "gatv2":
        pyg = pyg_nn.GATv2Conv(in_channels, channels, heads=heads)
        return pyg, gnn.GATv2Conv.from_pyg(pyg)
    if layer == "transformer":
        pyg = pyg_nn.TransformerConv(in_channels, channels, heads=heads)
        return pyg, gnn.GraphTransformerConv.from_pyg(pyg)
    raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")


def make_step(module, x: Tensor, edge_index: Tensor, grad: Tensor) -> Callable[[], Tensor]:
    """One forward plus backward pass; returns the output."""
    def step():
        module.zero_grad(set_to_none=True)
        x.grad = None
        out = module(x, edge_index)
        out.backward(grad)
        return out
    return step


def check(steps: Dict[str, Callable], x: Tensor) -> float:
    """Largest error of every gatlib candidate's output and input gradient against PyG's,
    relative to the scale of PyG's (at least 1)."""
    got = {}
    for name, step in steps.items():
        out = step().detach().clone()
        got[name] = (out, x.grad.clone())
    err = 0.0
    for name in got:
        for a, b in zip(got[name], got["pyg"]):
            err = max(err, ((a - b).abs().max() / b.abs().max().clamp(min=1.0)).item())
    return err


def alternate(steps: Dict[str, Callable], warmup: int,
              n: int) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Median wall seconds and median CPU seconds (this process, all threads) of each
    candidate's step, the candidates alternating (order flipped every round). CPU time is what
    the step itself consumed, so other processes on the machine move it less than wall time."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for i in range(n):
        for name in (names if i % 2 == 0 else names[::-1]):
            t, c = time.perf_counter(), time.process_time()
            steps[name]()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - t)
    return ({k: statistics.median(v) for k, v in wall.items()},
            {k: statistics.median(v) for k, v in cpu.items()})


def layer_bound(layer: str, module, x: Tensor, edge_index: Tensor, heads: int, channels: int,
                repeats: int, candidates: Optional[Dict[str, Callable]] = None
                ) -> Dict[str, float]:
    """The roofline of one layer's forward + backward (:func:`attention_bound`): its linear maps
    of ``x`` (the 2-D weights reading ``x.size(1)`` features), and the attention over the graph
    with self-loops gathering per edge what the score and the message need (GAT: the values and
    the source score; GATv2: the projected sources; the transformer: keys and values).
    ``candidates`` are timed in the same rounds (see :func:`attention_bound`)."""
    N, F = x.shape
    graph = as_adjacency(edge_index, N).with_self_loops()
    linear = [(N, F, p.size(0)) for p in module.parameters() if p.dim() == 2 and p.size(1) == F]
    HC = heads * channels
    widths = {"gat": [HC, heads], "gatv2": [HC], "transformer": [HC, HC]}[layer]
    return attention_bound(graph.col, graph.col_t, graph.num_src, graph.num_dst, heads, channels,
                           widths=widths, linear=linear, repeats=repeats,
                           candidates=candidates)


def run(shapes, batch_sizes, threads, layers, in_channels, heads, channels, warmup, n,
        seed=0) -> List[dict]:
    rows = []
    for shape in shapes:
        for B in batch_sizes:
            ei, N, M = graph_batch(shape, B, seed)
            g = torch.Generator().manual_seed(seed + 1)
            x = torch.randn(N, in_channels, generator=g).requires_grad_()
            grad = torch.randn(N, heads * channels, generator=g)
            for layer in layers:
                pyg, ours = layer_pair(layer, in_channels, heads, channels, seed)
                # "gatlib": the edge_index as PyG gets it, converted on every call; "graph": one
                # GraphCSR built before timing, as a model shares it among its layers (and a
                # loop over fixed batches can keep it), so its structures are built once.
                steps = {"pyg": make_step(pyg, x, ei, grad), "gatlib": make_step(ours, x, ei, grad),
                         "graph": make_step(ours, x, to_csr(ei, N), grad)}
                err = check(steps, x)
                if not err < 1e-4:
                    sys.exit(f"{shape} B={B} {layer}: gatlib disagrees with PyG (max scaled "
                             f"error {err:.2e}); not timing")
                for t in threads:
                    torch.set_num_threads(t)
                    load = os.getloadavg()[0]
                    med, cpu = alternate(steps, warmup, n)
                    # gatlib's step again, in the same rounds as the bound's parts: the ratio.
                    bound = layer_bound(layer, ours, x.detach(), ei, heads, channels, n,
                                        candidates={"gatlib": steps["gatlib"]})
                    mine = bound["candidates_s"]["gatlib"]
                    row = {"shape": shape, "batch": B, "nodes": N, "edges": M, "layer": layer,
                           "threads": t, "ms": {k: v * 1e3 for k, v in med.items()},
                           "cpu_ms": {k: v * 1e3 for k, v in cpu.items()},
                           "speedup": med["pyg"] / med["gatlib"],
                           "speedup_graph": med["pyg"] / med["graph"],
                           "speedup_cpu": cpu["pyg"] / cpu["gatlib"], "max_error": err,
                           "bound_ms": bound["fwd_bwd_s"] * 1e3,
                           "bound_warm_ms": bound["fwd_bwd_warm_s"] * 1e3,
                           "bound_round_ms": mine * 1e3,
                           "ratio_bound": mine / bound["fwd_bwd_s"],
                           "ratio_bound_warm": mine / bound["fwd_bwd_warm_s"],
                           "load": [load, os.getloadavg()[0]]}
                    rows.append(row)
                    print(f"  {shape:>8} B={B:<3} {layer:>11} {t} thr: gatlib "
                          f"{row['ms']['gatlib']:7.2f} ms, pyg {row['ms']['pyg']:7.2f} ms, "
                          f"speed-up {row['speedup']:.2f}x (graph built once "
                          f"{row['speedup_graph']:.2f}x; CPU time {row['speedup_cpu']:.2f}x, "
                          f"load {load:.2f}); bound {row['bound_ms']:.2f} ms (warm "
                          f"{row['bound_warm_ms']:.2f}), gatlib / bound {row['ratio_bound']:.2f}x "
                          f"({row['ratio_bound_warm']:.2f}x)", flush=True)
    return rows


def table(rows: List[dict], args, header: str) -> List[str]:
    names = {"gat": "GATConv / GATConv", "gatv2": "GATv2Conv / GATv2Conv",
             "transformer": "GraphTransformerConv / TransformerConv"}
    threads = sorted({r["threads"] for r in rows})
    lines = [header, "",
             "| batch | nodes | undirected edges | layer (gatlib / PyG) | "
             + " | ".join(f"gatlib / PyG ms, {t} thr | speed-up, {t} thr | (CPU time) "
                          f"| graph built once, {t} thr | bound ms, {t} thr | gatlib / bound, "
                          f"{t} thr" for t in threads)
             + " | load avg |",
             "|---|---:|---:|---|" + "---:|---:|---:|---:|---:|---:|" * len(threads) + "---|"]
    keyed = {}
    for r in rows:
        keyed.setdefault((r["shape"], r["batch"], r["layer"]), {})[r["threads"]] = r
    for (shape, B, layer), by_t in keyed.items():
        first = next(iter(by_t.values()))
        cells = []
        for t in threads:
            r = by_t.get(t)
            cells.append("n/a | n/a | n/a | n/a | n/a | n/a" if r is None else
                         f"{r['ms']['gatlib']:.2f} / {r['ms']['pyg']:.2f} | "
                         f"**{r['speedup']:.2f}x** | {r['speedup_cpu']:.2f}x | "
                         f"{r['speedup_graph']:.2f}x | {r['bound_ms']:.2f} | "
                         f"{r['ratio_bound']:.2f}x")
        loads = "-".join(f"{max(r['load']):.1f}" for r in by_t.values())
        lines.append(f"| {shape} x {B} | {first['nodes']:,} | {first['edges']:,} | "
                     f"{names[layer]} | " + " | ".join(cells) + f" | {loads} |")
    return lines


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="NCI1,PROTEINS,ZINC,CLUSTER")
    p.add_argument("--batch-sizes", default="128,256")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--layers", default=",".join(LAYERS))
    add_int_args(p, in_channels=64, heads=4, channels=16, warmup=5, steps=40, seed=0)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import torch_geometric
    out = Path(args.out) if args.out else ROOT / "experiments/results/small_graphs_cpu"
    name = device_name("cpu")
    versions = {"torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
                "gatlib": gatlib.__version__}
    threads0 = torch.get_num_threads()
    print(f"attention layers fwd+bwd on batches of small graphs, cpu ({name}, "
          f"{os.cpu_count()} cores), " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    try:
        rows = run(args.shapes.split(","), [int(b) for b in args.batch_sizes.split(",")],
                   [int(t) for t in args.threads.split(",")], args.layers.split(","),
                   args.in_channels, args.heads, args.channels, args.warmup, args.steps,
                   args.seed)
    finally:
        torch.set_num_threads(threads0)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    header = (f"Attention layers, forward + backward, on one batch of small graphs: gatlib "
              f"against PyG with copied weights. {args.in_channels} input features, "
              f"{args.heads} heads x {args.channels}, self-loops added as PyG adds them, the input "
              f"requiring grad (an inner layer). CPU "
              f"({name}, {os.cpu_count()} cores), torch {versions['torch']}, PyG "
              f"{versions['torch_geometric']}, gatlib {versions['gatlib']}; {when}. In one "
              f"process the candidates alternate step by step; median of {args.steps} steps "
              f"after {args.warmup} warm-up steps; speed-up = PyG time / gatlib time; outputs "
              f"and input gradients agree to 1e-4 before timing. CPU time: the same ratio of "
              f"median process CPU time per step (less moved by other processes; with two threads "
              f"it also counts OpenMP's waiting thread). Graph built once: the speed-up when gatlib "
              f"gets a GraphCSR built before timing (a model converts its edge_index once per "
              f"forward for all its layers), against the same PyG time. Load avg: "
              f"the largest 1-minute load average seen during the row, per thread count. Bound: "
              f"the roofline of the same forward + backward measured in the same run "
              f"(gatlib.experiments.roofline: the linear maps, the attention's unavoidable row "
              f"gathers with index_select into new tensors, outputs and gradients written once, "
              f"the exponentials); gatlib / bound is gatlib's time, taken again in the same rounds as "
              f"the bound's parts, over it. "
              f"`python experiments/benchmarks/small_graphs.py`")
    write_results(out, table(rows, args, header),
                  {"rows": rows, "device": name, "cores": os.cpu_count(), **versions,
                   "in_channels": args.in_channels, "heads": args.heads,
                   "channels": args.channels, "steps": args.steps, "warmup": args.warmup,
                   "date": when})
    return {"rows": rows}


if __name__ == "__main__":
    main()
