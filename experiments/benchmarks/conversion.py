"""Per-call conversion of a raw ``edge_index`` into the graph a layer attends over (checks, the
target- and source-sorted orders, one self-loop per node): what a PyG user calling a gatlib
layer with a plain ``edge_index`` pays in every call.

Candidates, alternating round by round in one process (a change in the machine's load hits
them alike): the native counting sort cut into 1 chunk (one thread) and into ``--threads``
chunks, and torch's stable sorts (the path without the native library). Every candidate's
arrays are checked equal before timing. Wall and process CPU time are reported (on a machine
whose cores are busy, CPU time close to wall time with two threads means the second thread
found no free core).

Run:  python experiments/benchmarks/conversion.py [--nodes 100000] [--edges 2000000]
      [--threads 2] [--repeats 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable, Dict

import torch

from gatlib.experiments.bench import add_int_args, random_graph
from gatlib.graph import as_adjacency
from gatlib.graph import csr as csr_module
from gatlib.ops.graph_args import graph_tensors


def candidates(edge_index, num_nodes: int, threads: int) -> Dict[str, Callable]:
    """The conversion by each route, as zero-argument callables returning the GraphCSR."""
    def native(chunks):
        def run():
            saved = csr_module._csr_threads
            csr_module._csr_threads = lambda E, n: chunks
            try:
                return as_adjacency(edge_index, num_nodes).with_self_loops()
            finally:
                csr_module._csr_threads = saved
        return run

    def sorts():
        saved = csr_module._native_csr
        csr_module._native_csr = lambda *a, **k: None
        try:
            return as_adjacency(edge_index, num_nodes).with_self_loops()
        finally:
            csr_module._native_csr = saved
    out = {"native, 1 chunk": native(1)}
    if threads > 1:
        out[f"native, {threads} chunks"] = native(threads)
    out["torch sorts"] = sorts
    return out


def main(argv=None) -> Dict[str, Dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_int_args(p, nodes=100_000, edges=2_000_000, threads=2, repeats=7, seed=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ei = random_graph(args.nodes, args.edges, args.seed)
    cands = candidates(ei, args.nodes, args.threads)
    first = {k: f() for k, f in cands.items()}                           # also the warm-up
    want = first["torch sorts"]
    for name, g in first.items():
        same = all(torch.equal(a, b) for a, b in zip(graph_tensors(g), graph_tensors(want)))
        if not (same and torch.equal(g.kept_edges, want.kept_edges)):
            raise SystemExit(f"{name} differs from torch's sorts; not timing")
    wall = {k: [] for k in cands}
    cpu = {k: [] for k in cands}
    load0 = os.getloadavg()[0]
    for r in range(args.repeats):
        for name in (list(cands) if r % 2 == 0 else list(cands)[::-1]):
            t, c = time.perf_counter(), time.process_time()
            cands[name]()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - t)
    res = {k: {"wall_ms": statistics.median(wall[k]) * 1e3,
               "cpu_ms": statistics.median(cpu[k]) * 1e3} for k in cands}
    print(f"conversion of a raw edge_index with self-loops: {args.nodes:,} nodes, "
          f"{args.edges:,} edges, torch threads {args.threads}, median of {args.repeats}, "
          f"1-minute load {load0:.2f} -> {os.getloadavg()[0]:.2f}")
    for k, v in res.items():
        print(f"  {k:>16}: {v['wall_ms']:7.1f} ms wall, {v['cpu_ms']:7.1f} ms CPU")
    return res


if __name__ == "__main__":
    main()
