"""Validation of graph inputs (edge_index, node index ranges). The generic argument checks
live in :mod:`gatlib._checks` and are re-exported here for the callers that import them from
this module."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .._checks import (check_num_nodes, check_positive_int, check_real, check_same_device,
                       check_tensor, compiling, require)

__all__ = [
    "check_positive_int",
    "check_real",
    "check_edge_index",
    "check_index_range",
    "require",
    "check_num_nodes",
    "check_same_device",
    "check_tensor",
    "compiling",
]


def check_index_range(index: Tensor, bound, name: str, hint: str = "") -> None:
    """Raise a ValueError naming ``name`` unless every entry of ``index`` lies in ``[0, bound)``.

    O(E) and cheap next to any attention over the edges; under ``torch.compile`` the check is a
    graph op (see :func:`require`), whose message leaves out the bound (formatting a traced
    size would fix its value)."""
    if index.numel() == 0:
        return
    if compiling():
        torch._assert_async(((index >= 0) & (index < bound)).all(),
                            f"{name} holds a node index out of range{hint}")
        return
    lo, hi = int(index.min()), int(index.max())
    if lo < 0:
        raise ValueError(f"{name} contains a negative node index ({lo}); node indices must lie in "
                         f"[0, {bound}){hint}")
    if hi >= bound:
        raise ValueError(f"{name} contains node index {hi} but there are only {bound} "
                         f"nodes{hint}")


def check_edge_index(edge_index: Tensor, num_nodes: Optional[int] = None,
                     name: str = "edge_index", num_dst_nodes: Optional[int] = None) -> int:
    """Check that ``edge_index`` is a ``LongTensor [2, E]`` with entries in range.

    Under ``torch.compile`` the range check is a graph op (no graph break), so ``num_nodes``
    must then be given.

    Args:
        edge_index: the graph, row 0 = source j, row 1 = target i.
        num_nodes: number of (source) nodes; inferred as ``max + 1`` when None.
        name: the argument name used in error messages.
        num_dst_nodes: number of target nodes for bipartite graphs (default ``num_nodes``).

    Returns:
        ``num_nodes`` as an int (inferred when it was None).
    """
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"{name} must be a torch.LongTensor of shape [2, E], "
                        f"got {type(edge_index).__name__}")
    if edge_index.layout != torch.strided:
        raise TypeError(f"{name} must be a dense LongTensor [2, E] here, got a sparse tensor "
                        f"(layout {edge_index.layout}); the attention ops and layers take a sparse "
                        f"adjacency directly, elsewhere convert it with "
                        f"torch_geometric.utils.to_edge_index(adj.t())")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must have an integer dtype (torch.long), got {edge_index.dtype}; "
                        f"convert it with {name}.long()")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{name} must have shape [2, E] (row 0 = source, row 1 = target), got "
                         f"{tuple(edge_index.shape)}; if it is [E, 2], pass {name}.t()")
    E = edge_index.size(1)
    # One pass for both rows' extremes (aminmax): half the time of min() then max(dim=1).
    extremes = torch.aminmax(edge_index, dim=1) if E > 0 and not compiling() else None
    if num_nodes is None:
        num_nodes = (int(extremes[1].max()) if extremes is not None
                     else int(edge_index.max())) + 1 if E > 0 else 0
    num_nodes = check_num_nodes(num_nodes)
    n_dst = num_nodes if num_dst_nodes is None else check_num_nodes(num_dst_nodes,
                                                                    "num_dst_nodes")
    if E > 0 and compiling():
        check_index_range(edge_index[0], num_nodes, f"{name}[0] (sources)")
        check_index_range(edge_index[1], n_dst, f"{name}[1] (targets)")
    elif E > 0:
        lows, highs = extremes
        lo = int(lows.min())
        if lo < 0:
            raise ValueError(f"{name} contains a negative node index ({lo}); node indices must "
                             f"lie in [0, num_nodes)")
        hi_src, hi_dst = (int(m) for m in highs)
        if hi_src >= num_nodes:
            raise ValueError(f"{name}[0] (sources) contains node index {hi_src} but num_nodes is "
                             f"{num_nodes}; pass the right num_nodes or fix the edges")
        if hi_dst >= n_dst:
            raise ValueError(f"{name}[1] (targets) contains node index {hi_dst} but the graph has "
                             f"{n_dst} target nodes; pass the right num_nodes or fix the edges")
    return num_nodes
