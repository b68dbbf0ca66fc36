"""Self-loops: add one ``(i, i)`` edge per node (so every node attends to itself and none is left
without in-edges), remove them, or test for them."""
from __future__ import annotations

from numbers import Number
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from .validate import check_edge_index, check_same_device

__all__ = ["add_self_loops", "remove_self_loops", "contains_self_loops", "self_loop_attr"]


def add_self_loops(edge_index: Tensor, num_nodes: Optional[int] = None,
                   edge_attr: Optional[Tensor] = None,
                   fill_value: Union[None, float, str, Tensor] = None,
                   ) -> Tuple[Tensor, Optional[Tensor]]:
    """Append one self-loop ``(i, i)`` for every node ``i`` at the end of ``edge_index``.

    The caller's edges keep their positions ``0 .. E-1``; the loop of node ``i`` is edge
    ``E + i`` (PyG's convention). Loops already present are kept, so a node may end up with two;
    call :func:`remove_self_loops` first to have exactly one.

    Args:
        edge_index: ``[2, E]`` edges, row 0 = source j, row 1 = target i.
        num_nodes (int, default None): number of nodes; ``max index + 1`` when None. Pass it
            whenever the last nodes may be isolated, or they get no loop.
        edge_attr (Tensor, default None): ``[E]`` or ``[E, *]`` edge features, extended with a
            row for each new loop.
        fill_value (default None): features of the new loops, used only with ``edge_attr``:
            None -> zeros; a number -> that constant; ``"mean"`` -> the mean of the node's
            incoming edge features (zeros for a node without in-edges; needs a floating-point
            ``edge_attr``); a tensor -> broadcast to ``[N, *]`` (one row for all loops, or one per
            node).

    Returns:
        ``(edge_index, edge_attr)``: ``[2, E + N]`` edges (same dtype and device as the input) and
        ``[E + N, *]`` features, or None when ``edge_attr`` is None.
    """
    num_nodes = check_edge_index(edge_index, num_nodes)
    loops = torch.arange(num_nodes, dtype=edge_index.dtype, device=edge_index.device)  # [N]
    out_index = torch.cat([edge_index, loops.expand(2, -1)], dim=1)     # [2, E + N]
    if edge_attr is None:
        return out_index, None
    _check_edge_attr(edge_attr, edge_index)
    loop_attr = self_loop_attr(edge_index, num_nodes, edge_attr, fill_value)  # [N, *]
    return out_index, torch.cat([edge_attr, loop_attr], dim=0)          # [E + N, *]


def remove_self_loops(edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                      ) -> Tuple[Tensor, Optional[Tensor]]:
    """Drop every edge ``(i, i)``; the other edges keep their relative order.

    Args:
        edge_index: ``[2, E]`` edges, row 0 = source j, row 1 = target i.
        edge_attr (Tensor, default None): ``[E]`` or ``[E, *]`` edge features, filtered alike.

    Returns:
        ``(edge_index, edge_attr)``: ``[2, E']`` edges and ``[E', *]`` features (None when
        ``edge_attr`` is None), ``E'`` the number of edges that are not loops.
    """
    check_edge_index(edge_index)
    keep = edge_index[0] != edge_index[1]                                # [E]
    if edge_attr is None:
        return edge_index[:, keep], None                                 # [2, E']
    _check_edge_attr(edge_attr, edge_index)
    return edge_index[:, keep], edge_attr[keep]                          # [2, E'], [E', *]


def contains_self_loops(edge_index: Tensor) -> bool:
    """Return True when ``edge_index`` (``[2, E]``) holds at least one edge ``(i, i)``."""
    check_edge_index(edge_index)
    return bool((edge_index[0] == edge_index[1]).any())


def _check_edge_attr(edge_attr: Tensor, edge_index: Tensor) -> None:
    if not isinstance(edge_attr, Tensor):
        raise TypeError(f"edge_attr must be a torch.Tensor of shape [E] or [E, *], "
                        f"got {type(edge_attr).__name__}")
    E = edge_index.size(1)
    if edge_attr.dim() == 0 or edge_attr.size(0) != E:
        raise ValueError(f"edge_attr must have shape [E] or [E, *] with E = {E} (one row per "
                         f"edge of edge_index), got {tuple(edge_attr.shape)}")
    check_same_device(edge_index=edge_index, edge_attr=edge_attr)


def self_loop_attr(edge_index: Tensor, num_nodes: int, edge_attr: Tensor,
               fill_value: Union[None, float, str, Tensor]) -> Tensor:
    """Features of the ``num_nodes`` new loops, ``[N, *]``, with ``edge_attr``'s dtype."""
    shape = (num_nodes,) + tuple(edge_attr.shape[1:])
    if fill_value is None:
        return edge_attr.new_zeros(shape)                                # [N, *]
    if isinstance(fill_value, str):
        if fill_value != "mean":
            raise ValueError(f"fill_value must be None, a number, 'mean' or a tensor, got "
                             f"{fill_value!r}")
        if not edge_attr.dtype.is_floating_point:
            raise TypeError(f"fill_value='mean' needs a floating-point edge_attr, got "
                            f"{edge_attr.dtype}; convert it with edge_attr.float()")
        dst = edge_index[1].long()                                       # [E]
        total = edge_attr.new_zeros(shape).index_add_(0, dst, edge_attr)  # [N, *]
        # index_add, not bincount: a static output shape under torch.compile.
        # Counted in at least fp32 (bf16 holds integers exactly only up to 256).
        cdt = torch.promote_types(edge_attr.dtype, torch.float32)
        count = torch.zeros(num_nodes, dtype=cdt, device=edge_attr.device)
        count = count.index_add_(0, dst, torch.ones_like(dst, dtype=cdt)).clamp_(min=1)  # [N]
        count = count.view((-1,) + (1,) * (edge_attr.dim() - 1))         # [N, 1, ...]
        return (total / count).to(edge_attr.dtype)                       # [N, *]
    if isinstance(fill_value, Tensor):
        fill = fill_value.to(dtype=edge_attr.dtype, device=edge_attr.device)
        try:
            return torch.broadcast_to(fill, shape).clone()               # [N, *]
        except RuntimeError:
            raise ValueError(f"fill_value of shape {tuple(fill_value.shape)} cannot be "
                             f"broadcast to the loop features' shape {shape}; pass one row "
                             f"{tuple(shape[1:])} or one row per node {shape}") from None
    if isinstance(fill_value, Number):
        return edge_attr.new_full(shape, fill_value)                     # [N, *]
    raise TypeError(f"fill_value must be None, a number, 'mean' or a tensor, got "
                    f"{type(fill_value).__name__}")
