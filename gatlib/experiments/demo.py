"""``gatlib demo``: the attention operators on a built-in graph, checked against the
reference, then timed with their peak memory, each candidate in a fresh process (it prints
only; about 3 GB of memory at the default size)."""
from __future__ import annotations

from typing import List

import torch

from .. import __version__
from ..graph import complete_graph, to_csr
from ..ops import dense_attention, sparse_attention
from ..utils import measure
from .bench import gat_forward, gat_inputs

__all__ = ["demo"]


def _max_err(a: List[torch.Tensor], b: List[torch.Tensor]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def demo(nodes: int = 50_000, edges: int = 1_000_000, heads: int = 8, channels: int = 16,
         seed: int = 0) -> int:
    """Print the three checks; return 0 when they pass, 1 otherwise."""
    torch.manual_seed(seed)
    print(f"gatlib {__version__} demo on torch {torch.__version__} "
          f"({torch.get_num_threads()} CPU threads)")

    # 1. Dense attention equals sparse attention over the complete graph.
    n, H, D = 256, heads, channels
    q, k, v = (torch.randn(n, H, D) for _ in range(3))
    err = (sparse_attention(q, k, v, complete_graph(n)) - dense_attention(q, k, v)).abs().max()
    print(f"\n[1] sparse attention on complete_graph({n}) vs dense attention (SDPA): "
          f"max abs difference {err.item():.2e}")

    # 2. GAT attention on a random graph: gatlib vs the reference, forward and backward.
    size = dict(num_nodes=nodes, num_edges=edges, heads=heads,
                channels=channels, seed=seed)
    grads = {}
    for impl in ("gatlib", "reference"):
        x = gat_inputs(**size)
        graph = to_csr(x["edge_index"], nodes) if impl == "gatlib" else x["edge_index"]
        out = gat_forward(impl, x["a_src"], x["a_dst"], x["v"], graph)
        out.backward(x["grad"])
        grads[impl] = [out.detach()] + [x[t].grad for t in ("a_src", "a_dst", "v")]
    err = _max_err(grads["gatlib"], grads["reference"])
    print(f"\n[2] gat_attention on a random graph ({nodes:,} nodes, {edges:,} edges, "
          f"{heads} heads x {channels}):\n    output and gradients vs the reference: "
          f"max abs difference {err:.2e}")
    ok = err < 1e-4

    # 3. Time and peak memory, each candidate in a fresh process.
    print("\n[3] forward + backward, median of 5 runs after warm-up, each in a fresh process:")
    res = {impl: measure("gatlib.experiments.bench:gat_step", dict(impl=impl, **size), repeats=5)
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
