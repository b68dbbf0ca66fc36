"""Two parts of a sampled training step, each by its native route against its torch route:
sampling a batch's neighbourhood (``gatlib.loader.sample_neighbors``: one pass of
``gatlib/native/sample.h`` a hop, or torch ops) and the input layer's dropout on the batch's
rows (``gatlib.ops.dropout.dropout``: ``gatlib/native/dropout.h`` in one pass keeping no mask,
or a byte mask from torch's generator and a product).

On the arxiv-size graph of ``experiments/configs/arxiv-size-gat.yaml`` (generated here, or
read from ``scaling_out.py``'s cache), fanouts [10, 10] and batches of 1,024 training nodes
as that config; the dropout on ``[rows of a batch, 128]`` with p = 0.6. The routes alternate
round by round in one process; before timing, each route's batch is checked (every sampled
edge is an edge of the graph from the node it names, the seeds first) and each dropout's
output is checked to be the input scaled by 1 / (1 - p) or zero.

Run:  python experiments/benchmarks/step_parts.py [--threads 2] [--batches 20]
      [--cache results/cache] [--nodes N]   (--nodes: a smaller CSBM graph instead)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict

import torch

ROOT = Path(__file__).resolve().parents[2]


def _graph(cache: Path, nodes):
    """``(x, edge_index, train ids)`` of the benchmark graph."""
    if nodes is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import scaling_out
        _, data = scaling_out._graph(cache)
        return data.x, data.edge_index, data.train_mask.nonzero().view(-1)
    from gatlib.data.synthetic import csbm
    data = csbm(num_nodes=nodes, num_classes=8, avg_degree=6.9, homophily=0.65,
                feature_dim=128, seed=0)
    return data.x, data.edge_index, torch.arange(0, nodes, 2)


def _routes(module, attr: str) -> Dict[str, Callable[[Callable], object]]:
    """Run a callable with ``module.<attr>`` (the native library lookup) as it is, or as None
    (the torch route)."""
    def native(fn):
        return fn()

    def torch_route(fn):
        saved = getattr(module, attr)
        setattr(module, attr, lambda: None)
        try:
            return fn()
        finally:
            setattr(module, attr, saved)
    return {"native": native, "torch": torch_route}


def _check_batch(out, edge_index, seeds) -> None:
    src, dst = out.node[out.row], out.node[out.col]
    if not (torch.equal(src, edge_index[0, out.edge]) and torch.equal(dst, edge_index[1, out.edge])
            and torch.equal(out.node[:seeds.numel()], seeds)):
        raise SystemExit("a sampled batch is not a subgraph of the graph; not timing")


def _time(routes: Dict[str, Callable], jobs: Dict[str, Callable], rounds: int
          ) -> Dict[str, float]:
    """Median ms per job and route, the routes alternating round by round."""
    times = {(j, r): [] for j in jobs for r in routes}
    for i in range(rounds):
        for job, fn in jobs.items():
            for name in (list(routes) if i % 2 == 0 else list(routes)[::-1]):
                t = time.perf_counter()
                routes[name](lambda: fn(i))
                times[(job, name)].append(time.perf_counter() - t)
    return {f"{j} ({r})": statistics.median(v) * 1e3 for (j, r), v in times.items()}


def main(argv=None) -> Dict[str, float]:
    from gatlib import native
    from gatlib.graph import to_csr
    from gatlib.loader import sample_neighbors
    from gatlib.loader import sampler as sampler_module
    from gatlib.ops import dropout as dropout_module
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--cache", default=str(ROOT / "results" / "cache"))
    p.add_argument("--nodes", type=int, default=None)
    args = p.parse_args(argv)
    if not native.available():
        raise SystemExit(f"no native route to compare: {native.status()}")
    torch.set_num_threads(args.threads)
    x, ei, train = _graph(Path(args.cache), args.nodes)
    graph = to_csr(ei, x.size(0))
    order = train[torch.randperm(train.numel(), generator=torch.Generator().manual_seed(0))]
    seeds = [order[i:i + 1024] for i in range(0, order.numel(), 1024)][:args.batches]
    gen = torch.Generator().manual_seed(1)
    rows = [x[sample_neighbors(graph, s, [10, 10], generator=gen).node] for s in seeds]
    samplers = _routes(sampler_module, "_native_lib")
    for name, route in samplers.items():                    # check, and warm up, each route
        for s in seeds[:2]:
            _check_batch(route(lambda: sample_neighbors(graph, s, [10, 10], generator=gen)),
                         ei, s)
    drops = _routes(dropout_module, "_native_lib")
    for name, route in drops.items():
        y = route(lambda: dropout_module.dropout(rows[0], 0.6, True))
        kept = y != 0
        if not torch.allclose(y[kept], rows[0][kept] / 0.4) or not 0.3 < kept.float().mean() < 0.5:
            raise SystemExit(f"the {name} dropout is not the scaled input or zero; not timing")
    load0 = os.getloadavg()[0]
    res = _time(samplers, {"sample a batch": lambda i: sample_neighbors(
        graph, seeds[i % len(seeds)], [10, 10], generator=gen)}, len(seeds))
    res.update(_time(drops, {"input dropout": lambda i: dropout_module.dropout(
        rows[i % len(rows)], 0.6, True)}, len(rows)))
    mean_rows = sum(r.size(0) for r in rows) / len(rows)
    print(f"parts of a sampled step: {x.size(0):,} nodes, {ei.size(1):,} edges, fanouts "
          f"[10, 10], 1,024 seeds a batch ({mean_rows:,.0f} rows x {x.size(1)} a batch on "
          f"average), torch threads {args.threads}, median of {len(seeds)} alternating; "
          f"1-minute load {load0:.2f} -> {os.getloadavg()[0]:.2f}; {native.status()}")
    print("\n| part | native (ms) | torch (ms) | torch / native |\n|---|---:|---:|---:|")
    for part in ("sample a batch", "input dropout"):
        nat, tor = res[f"{part} (native)"], res[f"{part} (torch)"]
        print(f"| {part} | {nat:.2f} | {tor:.2f} | {tor / nat:.1f}x |")
    return res


if __name__ == "__main__":
    main()
