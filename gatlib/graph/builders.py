"""Graphs whose edges are attention patterns: a path (sequence attention, sliding windows,
dilated windows, causal masks), a grid (image attention) and the complete graph (dense attention).

Every builder returns a ``LongTensor [2, E]`` (row 0 = source j, row 1 = target i) sorted by
target, then by source, so the result is deterministic and already in CSR order. The edges are
built with tensor operations: one ``[N, K]`` table of candidate sources for the ``K`` offsets of
the pattern, masked to the nodes that exist. No Python loop runs over nodes.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from .validate import check_num_nodes
from .validate import check_positive_int as _check_positive

__all__ = ["path_graph", "grid_graph", "complete_graph"]

Device = Optional[Union[str, torch.device]]


def path_graph(n: int, window: int = 1, dilation: int = 1, causal: bool = False,
               self_loops: bool = False, device: Device = None) -> Tensor:
    """The path graph on ``n`` nodes, widened to a (dilated, optionally causal) window.

    Node ``i`` receives from node ``j = i + d * dilation`` and ``j = i - d * dilation`` for
    ``d = 1, ..., window``, wherever ``0 <= j < n``; with ``causal=True`` only from the earlier
    nodes ``j = i - d * dilation``. With ``window=w, dilation=1`` this is the band
    ``0 < |i - j| <= w``: sliding-window attention over a sequence. ``path_graph(n)`` is the
    plain path ``0 - 1 - ... - n-1`` with both directions of every edge.

    Args:
        n (int): number of nodes (positions in the sequence), ``>= 0``.
        window (int, default 1): neighbours on each side, ``>= 0``; 0 gives no neighbour edges.
        dilation (int, default 1): step between neighbours, ``>= 1``.
        causal (bool, default False): keep only edges from earlier to later nodes (``j < i``).
        self_loops (bool, default False): add the edge ``(i, i)`` for every node.
        device (default None): device of the result (CPU when None).

    Returns:
        ``edge_index`` of shape ``[2, E]``, int64, sorted by target then source. Without self
        loops, ``E = sum_i min(window, i // dilation) + min(window, (n - 1 - i) // dilation)``
        (only the first term when causal), plus ``n`` with self loops.
    """
    n = check_num_nodes(n, "n")
    window = check_num_nodes(window, "window")
    dilation = _check_positive(dilation, "dilation")
    steps = torch.arange(1, window + 1, device=device) * dilation        # [W]
    parts = [-steps.flip(0)]                                             # earlier nodes, ascending
    if self_loops:
        parts.append(torch.zeros(1, dtype=torch.long, device=device))
    if not causal:
        parts.append(steps)                                              # later nodes, ascending
    offsets = torch.cat(parts)                                           # [K]
    dst = torch.arange(n, device=device)                                 # [N]
    src = dst.unsqueeze(1) + offsets                                     # [N, K]
    return _masked_edges(src, (src >= 0) & (src < n))


def grid_graph(height: int, width: int, radius: int = 1, diagonal: bool = False,
               self_loops: bool = False, device: Device = None) -> Tensor:
    """The ``height x width`` grid graph: pixels of an image as nodes, neighbourhoods as edges.

    Node ``(r, c)`` has id ``r * width + c`` (row-major, as ``image.flatten()``). Node ``j`` at
    ``(r_j, c_j)`` is a neighbour of node ``i`` at ``(r_i, c_i)``, ``j != i``, when

    - ``diagonal=False``: they share a row or a column and are at most ``radius`` steps apart,
      i.e. ``min(|r_i - r_j|, |c_i - c_j|) == 0`` and ``max(|r_i - r_j|, |c_i - c_j|) <= radius``
      (a plus-shaped neighbourhood of up to ``4 * radius`` nodes; the 4-neighbourhood for
      ``radius=1``);
    - ``diagonal=True``: their Chebyshev distance ``max(|r_i - r_j|, |c_i - c_j|)`` is at most
      ``radius`` (a square of up to ``(2 * radius + 1) ** 2 - 1`` nodes; the 8-neighbourhood for
      ``radius=1``).

    Neighbourhoods are cut at the border (no wrap-around). The relation is symmetric, so both
    directions of every edge are present.

    Args:
        height (int): number of rows, ``>= 0``.
        width (int): number of columns, ``>= 0``.
        radius (int, default 1): neighbourhood radius, ``>= 0``; 0 gives no neighbour edges.
        diagonal (bool, default False): square (Chebyshev) instead of plus-shaped neighbourhood.
        self_loops (bool, default False): add the edge ``(i, i)`` for every node.
        device (default None): device of the result (CPU when None).

    Returns:
        ``edge_index`` of shape ``[2, E]``, int64, sorted by target then source, on
        ``N = height * width`` nodes. For ``radius=1``: ``E = 2 * (h * (w - 1) + w * (h - 1))``,
        plus ``4 * (h - 1) * (w - 1)`` with ``diagonal=True``, plus ``N`` with self loops.
    """
    height = check_num_nodes(height, "height")
    width = check_num_nodes(width, "width")
    radius = check_num_nodes(radius, "radius")
    steps = torch.arange(-radius, radius + 1, device=device)             # [2R+1]
    dr, dc = torch.meshgrid(steps, steps, indexing="ij")                 # [2R+1, 2R+1] each
    dr, dc = dr.flatten(), dc.flatten()                                  # [(2R+1)^2] each
    # Offsets in row-major (dr, dc) order, which is the order of the source ids they produce.
    keep = (dr != 0) | (dc != 0)
    if self_loops:
        keep |= (dr == 0) & (dc == 0)
    if not diagonal:
        keep &= (dr == 0) | (dc == 0)
    dr, dc = dr[keep], dc[keep]                                          # [K] each
    rows = torch.arange(height, device=device).repeat_interleave(width)  # [N]
    cols = torch.arange(width, device=device).repeat(height)             # [N]
    src_r = rows.unsqueeze(1) + dr                                       # [N, K]
    src_c = cols.unsqueeze(1) + dc                                       # [N, K]
    valid = (src_r >= 0) & (src_r < height) & (src_c >= 0) & (src_c < width)
    return _masked_edges(src_r * width + src_c, valid)


def complete_graph(n: int, self_loops: bool = True, device: Device = None) -> Tensor:
    """The complete graph on ``n`` nodes: every node attends to every node (dense attention).

    Args:
        n (int): number of nodes, ``>= 0``.
        self_loops (bool, default True): include the edges ``(i, i)``, as dense attention does.
        device (default None): device of the result (CPU when None).

    Returns:
        ``edge_index`` of shape ``[2, E]``, int64, holding every ordered pair ``(j, i)``
        (``j != i`` unless ``self_loops``), sorted by target then source. ``E = n * n`` with
        self loops, ``n * (n - 1)`` without.
    """
    n = check_num_nodes(n, "n")
    nodes = torch.arange(n, device=device)                               # [N]
    src = nodes.expand(n, n)                                             # [N, N] src[i, j] = j
    mask = None if self_loops else nodes.unsqueeze(1) != nodes           # [N, N]
    return _masked_edges(src, mask)


def _masked_edges(src: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Edges ``(src[i, k], i)`` for the ``(i, k)`` where ``mask`` holds, in row-major order.

    Row ``i`` of ``src`` holds the candidate sources of target ``i`` in ascending order, so the
    row-major order of the kept entries is sorted by target, then source.
    """
    dst = torch.arange(src.size(0), device=src.device).unsqueeze(1).expand_as(src)  # [N, K]
    if mask is None:
        return torch.stack([src.reshape(-1), dst.reshape(-1)])           # [2, N*K]
    return torch.stack([src[mask], dst[mask]])                           # [2, E]
