"""Benchmark steps shared by ``gatlib demo`` and ``experiments/benchmarks/``.

Each ``*_step`` function builds its inputs from a seed (so that every candidate, each in its own
process, sees the same graph and tensors) and returns a zero-argument callable that runs one
forward plus backward pass. ``gatlib.utils.measure`` times it and takes its peak memory. The
steps over real graphs (a Planetoid training epoch, dense attention over batches of TU graphs)
are :mod:`gatlib.experiments.bench_graphs`'s.
"""
from __future__ import annotations

import math
import platform
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..graph import complete_graph, to_csr
from ..ops import dense_attention, gat_attention, reference, sparse_attention, use_backend
from ..utils.measure import measure

__all__ = ["GAT_IMPLS", "random_graph", "gat_inputs", "gat_forward", "gat_step",
           "gat_forward_step", "gat_layer_forward_step", "available_impls", "device_name",
           "scaling_graph", "attention_inputs",
           "sparse_attention_step", "dense_attention_step", "fit_loglog", "extrapolate",
           "crossovers", "crossover", "time_candidates", "add_int_args", "write_results"]

# What each candidate is: gatlib's fast path, its pure-PyTorch reference, PyG's own path for the
# same maths (as GATConv computes it: its softmax utility, then gather and scatter), and
# torch_scatter's scatter_softmax with gather and scatter_add.
GAT_IMPLS = ("gatlib", "reference", "pyg", "torch_scatter")


def available_impls() -> Tuple[str, ...]:
    """The candidates whose packages are importable here."""
    out = ["gatlib", "reference"]
    for name, module in (("pyg", "torch_geometric"), ("torch_scatter", "torch_scatter")):
        try:
            __import__(module)
            out.append(name)
        except ImportError:
            pass
    return tuple(out)


def random_graph(num_nodes: int, num_edges: int, seed: int = 0, device: str = "cpu") -> Tensor:
    """Uniform random directed multigraph ``[2, E]`` (reproducible from ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_nodes, (2, num_edges), generator=g).to(device)


def gat_inputs(num_nodes: int, num_edges: int, heads: int, channels: int, seed: int = 0,
               device: str = "cpu", dtype=torch.float32) -> Dict[str, Tensor]:
    """``a_src, a_dst [N, H]``, ``v [N, H, C]`` (leaves with grad), ``edge_index`` and the output
    gradient ``grad [N, H, C]``."""
    g = torch.Generator().manual_seed(seed + 1)

    def r(*shape):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)
    return {"edge_index": random_graph(num_nodes, num_edges, seed, device),
            "a_src": r(num_nodes, heads).requires_grad_(),
            "a_dst": r(num_nodes, heads).requires_grad_(),
            "v": r(num_nodes, heads, channels).requires_grad_(),
            "grad": r(num_nodes, heads, channels)}


def _pyg_forward(a_src, a_dst, v, edge_index, negative_slope=0.2):
    from torch_geometric.utils import scatter, softmax
    src, dst = edge_index[0], edge_index[1]
    alpha = F.leaky_relu(a_src[src] + a_dst[dst], negative_slope)          # [E, H]
    alpha = softmax(alpha, dst, num_nodes=a_dst.size(0))                   # [E, H]
    msg = v[src] * alpha.unsqueeze(-1)                                     # [E, H, C]
    return scatter(msg, dst, dim=0, dim_size=a_dst.size(0), reduce="sum")  # [N, H, C]


def _torch_scatter_forward(a_src, a_dst, v, edge_index, negative_slope=0.2):
    from torch_scatter import scatter_add
    from torch_scatter.composite import scatter_softmax
    src, dst = edge_index[0], edge_index[1]
    alpha = F.leaky_relu(a_src[src] + a_dst[dst], negative_slope)          # [E, H]
    alpha = scatter_softmax(alpha, dst, dim=0, dim_size=a_dst.size(0))     # [E, H]
    msg = v[src] * alpha.unsqueeze(-1)                                     # [E, H, C]
    return scatter_add(msg, dst, dim=0, dim_size=a_dst.size(0))            # [N, H, C]


def gat_forward(impl: str, a_src: Tensor, a_dst: Tensor, v: Tensor, edge_index) -> Tensor:
    """One forward pass of additive attention by candidate ``impl``."""
    if impl == "gatlib":
        return gat_attention(a_src, a_dst, v, edge_index)
    if impl == "reference":
        ei = edge_index if isinstance(edge_index, Tensor) else edge_index.edge_index()
        return reference.gat_attention_ref(a_src, a_dst, v, ei)[0]
    if impl == "pyg":
        return _pyg_forward(a_src, a_dst, v, edge_index)
    if impl == "torch_scatter":
        return _torch_scatter_forward(a_src, a_dst, v, edge_index)
    raise ValueError(f"impl must be one of {GAT_IMPLS}, got {impl!r}")


def gat_forward_step(impl: str, num_nodes: int, num_edges: int, heads: int, channels: int,
                     seed: int = 0, device: str = "cpu") -> Callable[[], None]:
    """The forward pass alone (no autograd graph) of candidate ``impl``, on the inputs of
    :func:`gat_step` (for ``gatlib`` the CSR view built once)."""
    x = gat_inputs(num_nodes, num_edges, heads, channels, seed, device)
    graph = to_csr(x["edge_index"], num_nodes) if impl == "gatlib" else x["edge_index"]
    leaves = tuple(x[k].detach() for k in ("a_src", "a_dst", "v"))

    def step():
        with torch.no_grad():
            gat_forward(impl, *leaves, graph)
    return step


def gat_step(impl: str, num_nodes: int, num_edges: int, heads: int, channels: int,
             seed: int = 0, device: str = "cpu", backend: str = None) -> Callable[[], None]:
    """Build inputs and return the forward-plus-backward step of candidate ``impl``.

    For ``gatlib`` the CSR view is built here, once, as a training loop would reuse it.
    """
    x = gat_inputs(num_nodes, num_edges, heads, channels, seed, device)
    graph = to_csr(x["edge_index"], num_nodes) if impl == "gatlib" else x["edge_index"]
    leaves = (x["a_src"], x["a_dst"], x["v"])

    def step():
        for t in leaves:
            t.grad = None
        with use_backend(backend):
            out = gat_forward(impl, *leaves, graph)
        out.backward(x["grad"])
    return step


# ------------------------------------------------------------------------- the GATConv layer

LAYER_IMPLS = ("gatlib", "pyg")


def gat_layer_setup(impl: str, num_nodes: int, num_edges: int, in_channels: int, heads: int,
                    channels: int, seed: int = 0, device: str = "cpu"):
    """``(layer, x, edge_index, grad)``: a GATConv of candidate ``impl`` (the gatlib layer copies
    the PyG layer's weights, built from ``seed``), inputs and an output gradient."""
    from torch_geometric.nn import GATConv as PyGGATConv

    from ..nn import GATConv
    torch.manual_seed(seed)
    layer = PyGGATConv(in_channels, channels, heads=heads)
    if impl == "gatlib":
        layer = GATConv.from_pyg(layer)
    elif impl != "pyg":
        raise ValueError(f"impl must be one of {LAYER_IMPLS}, got {impl!r}")
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(num_nodes, in_channels, generator=g).to(device).requires_grad_()
    grad = torch.randn(num_nodes, heads * channels, generator=g).to(device)
    return layer.to(device), x, random_graph(num_nodes, num_edges, seed, device), grad


def gat_layer_forward_step(impl: str, **size) -> Callable[[], None]:
    """The forward pass alone (no autograd graph) of one GATConv layer, inputs as
    :func:`gat_layer_step`'s."""
    layer, x, edge_index, _ = gat_layer_setup(impl, **size)
    x = x.detach()

    def step():
        with torch.no_grad():
            layer(x, edge_index)
    return step


def gat_layer_step(impl: str, **size) -> Callable[[], None]:
    """Forward plus backward of one GATConv layer (self-loops added by the layer, as in use)."""
    layer, x, edge_index, grad = gat_layer_setup(impl, **size)

    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x, edge_index).backward(grad)
    return step


def device_name(device: str) -> str:
    """The GPU's name on ``cuda``, else the CPU's (as ``platform`` knows it)."""
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name()
    return platform.processor() or platform.machine()


# ------------------------------------------------------- sparse versus dense attention (scaling)

def scaling_graph(num_nodes: int, avg_degree: float, seed: int = 0,
                  device: str = "cpu") -> Tensor:
    """``edge_index [2, E]`` with ``E = round(N * avg_degree)`` uniform random edges, or, when
    ``avg_degree >= num_nodes``, the complete graph with self-loops (``E = N^2``): the very
    attention that dense attention computes."""
    if avg_degree >= num_nodes:
        return complete_graph(num_nodes, device=device)
    return random_graph(num_nodes, max(round(num_nodes * avg_degree), 1), seed, device)


def attention_inputs(num_nodes: int, heads: int, dim: int, seed: int = 0, device: str = "cpu",
                     dtype=torch.float32) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """``q, k, v [N, H, D]`` (leaves with grad) and an output gradient ``grad [N, H, D]``."""
    g = torch.Generator().manual_seed(seed + 1)

    def r(grad):
        x = torch.randn(num_nodes, heads, dim, generator=g).to(device=device, dtype=dtype)
        return x.requires_grad_(grad)
    return r(True), r(True), r(True), r(False)


def _attention_step(attend: Callable[..., Tensor], q: Tensor, k: Tensor, v: Tensor,
                    grad: Tensor) -> Callable[[], None]:
    def step():
        for t in (q, k, v):
            t.grad = None
        attend(q, k, v).backward(grad)
    return step


def sparse_attention_step(num_nodes: int, avg_degree: float, heads: int, dim: int,
                          seed: int = 0, device: str = "cpu") -> Callable[[], None]:
    """Forward plus backward of :func:`gatlib.ops.sparse_attention` on :func:`scaling_graph`;
    the CSR view is built here, once, as a training loop would reuse it."""
    graph = to_csr(scaling_graph(num_nodes, avg_degree, seed, device), num_nodes)
    return _attention_step(lambda q, k, v: sparse_attention(q, k, v, graph),
                           *attention_inputs(num_nodes, heads, dim, seed, device))


def dense_attention_step(num_nodes: int, heads: int, dim: int, seed: int = 0,
                         device: str = "cpu") -> Callable[[], None]:
    """Forward plus backward of :func:`gatlib.ops.dense_attention` over one graph of
    ``num_nodes`` nodes (every pair attends)."""
    return _attention_step(dense_attention, *attention_inputs(num_nodes, heads, dim, seed, device))


def _positive(x: Sequence, *ys: Sequence) -> List[Tuple[float, ...]]:
    """The points ``(x, y...)`` where every value is a positive finite number."""
    def ok(v):
        return v is not None and math.isfinite(v) and v > 0
    return [p for p in zip(x, *ys) if all(ok(v) for v in p)]


def fit_loglog(x: Sequence[float], y: Sequence[float]) -> Tuple[float, float]:
    """Least-squares line through ``(log x, log y)``: ``y ~ exp(intercept) * x ** slope``.

    Points with a missing, zero or negative value are left out; at least two distinct ``x``
    must remain, else ``ValueError``.
    """
    pts = _positive(x, y)
    lx = [math.log(a) for a, _ in pts]
    ly = [math.log(b) for _, b in pts]
    if len(set(lx)) < 2:
        raise ValueError(f"fit_loglog needs two distinct positive x, got {len(set(lx))}")
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    slope = (sum((a - mx) * (b - my) for a, b in zip(lx, ly))
             / sum((a - mx) ** 2 for a in lx))
    return slope, my - slope * mx


def extrapolate(x: Sequence[float], y: Sequence[float], x_new: float) -> Optional[float]:
    """``y`` at ``x_new`` on the power law through the last two usable points (the local trend
    of a sweep, where the fixed overhead of small sizes weighs least); None with fewer than
    two. The slope is at least 0: a cost never shrinks as the size grows."""
    pts = _positive(x, y)[-2:]
    if len(pts) < 2 or pts[0][0] == pts[1][0]:
        return None
    (x0, y0), (x1, y1) = pts
    slope = max(math.log(y1 / y0) / math.log(x1 / x0), 0.0)
    return y1 * (x_new / x1) ** slope


def crossovers(x: Sequence[float], a: Sequence[float], b: Sequence[float]) -> List[float]:
    """Every ``x`` where curves ``a`` and ``b`` cross, in increasing order.

    Between two neighbouring points with ``a - b`` of opposite signs in log space, the crossing
    is interpolated linearly in ``(log x, log a - log b)``, so two power laws cross exactly
    where they do. A point where the curves touch counts once. Points where ``a`` or ``b`` is
    missing or not positive are left out.
    """
    pts = sorted(_positive(x, a, b))
    d = [(math.log(xi), math.log(ai) - math.log(bi)) for xi, ai, bi in pts]
    out = []
    for (l0, d0), (l1, d1) in zip(d, d[1:]):
        if d0 == 0:
            out.append(math.exp(l0))
        elif d0 * d1 < 0:
            out.append(math.exp(l0 + d0 / (d0 - d1) * (l1 - l0)))
    if d and d[-1][1] == 0:
        out.append(math.exp(d[-1][0]))
    return out


def crossover(x: Sequence[float], a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """The last ``x`` where ``a`` and ``b`` cross (see :func:`crossovers`): past it their order
    holds to the end of the range. None when they never cross."""
    found = crossovers(x, a, b)
    return found[-1] if found else None


# ------------------------------------------------------------------------- script helpers

def time_candidates(target: str, impls: Sequence[str], kwargs: dict, repeats: int,
                    device: str = "cpu", where: str = "") -> Tuple[Dict[str, float],
                                                                   Dict[str, Optional[int]]]:
    """Measure ``target(impl=impl, **kwargs)`` for each candidate, each in a fresh process.

    Returns ``(ms, peak_bytes)`` keyed by candidate; exits with the failures named (``where``
    first) when any candidate did not run, so that no half-filled table is written."""
    res = {impl: measure(target, dict(kwargs, impl=impl), repeats=repeats, device=device)
           for impl in impls}
    bad = [f"{i}: {r['message'].splitlines()[0]}" for i, r in res.items() if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"{where}: " + "; ".join(bad))
    return ({i: r["time_s"] * 1e3 for i, r in res.items()},
            {i: r["peak_bytes"] for i, r in res.items()})


def add_int_args(parser, **defaults: int) -> None:
    """Add an int option ``--<name>`` (underscores as dashes) per keyword, with its default."""
    for name, default in defaults.items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default)


def write_results(stem, lines: Sequence[str], record: dict) -> None:
    """``<stem>.md`` from the table lines and ``<stem>.json`` from the record, each atomically."""
    from pathlib import Path

    from ..utils import atomic_write_json, atomic_write_text
    stem = Path(stem)
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write_json(stem.with_suffix(".json"), record)
    print(f"wrote {stem.with_suffix('.md')}")
