"""Benchmark steps shared by ``gatlib demo`` and ``experiments/benchmarks/``.

Each ``*_step`` function builds its inputs from a seed (so that every candidate, each in its own
process, sees the same graph and tensors) and returns a zero-argument callable that runs one
forward plus backward pass. ``gatlib.utils.measure`` times it and takes its peak memory.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .graph import to_csr
from .ops import gat_attention, reference, use_backend

__all__ = ["GAT_IMPLS", "random_graph", "gat_inputs", "gat_forward", "gat_step",
           "available_impls"]

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

    from .nn import GATConv
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


def gat_layer_step(impl: str, **size) -> Callable[[], None]:
    """Forward plus backward of one GATConv layer (self-loops added by the layer, as in use)."""
    layer, x, edge_index, grad = gat_layer_setup(impl, **size)

    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x, edge_index).backward(grad)
    return step
