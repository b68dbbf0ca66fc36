"""Interop with networkx: ``edge_index`` to a networkx graph and back. networkx is imported
inside the functions, so importing gatlib does not pay for it."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .validate import check_edge_index

__all__ = ["to_networkx", "from_networkx"]


def to_networkx(edge_index: Tensor, num_nodes: Optional[int] = None, directed: bool = True):
    """Convert ``edge_index`` to a networkx graph on the nodes ``0 .. num_nodes - 1``.

    Every edge ``(j, i)`` (source j = ``edge_index[0]``, target i = ``edge_index[1]``) becomes
    the networkx edge ``(j, i)``. Isolated nodes are kept. networkx's simple graphs hold each
    edge once, so duplicate edges collapse into one (and with ``directed=False``, ``(j, i)`` and
    ``(i, j)`` are the same edge).

    Args:
        edge_index: ``[2, E]`` edges, row 0 = source j, row 1 = target i.
        num_nodes (int, default None): number of nodes; ``max index + 1`` when None.
        directed (bool, default True): return an ``nx.DiGraph``, else an ``nx.Graph``.

    Returns:
        ``networkx.DiGraph`` (or ``networkx.Graph``) with nodes ``0 .. num_nodes - 1``.
    """
    import networkx as nx

    num_nodes = check_edge_index(edge_index, num_nodes)
    G = nx.DiGraph() if directed else nx.Graph()
    G.add_nodes_from(range(num_nodes))
    src, dst = edge_index.cpu().tolist()
    G.add_edges_from(zip(src, dst))
    return G


def from_networkx(G) -> Tuple[Tensor, int]:
    """Convert a networkx graph to ``(edge_index, num_nodes)``.

    Nodes are numbered ``0 .. n-1`` in the order of ``G.nodes``. A directed edge ``(u, v)``
    becomes the edge ``(j, i) = (u, v)`` (messages flow u -> v). An undirected edge ``{u, v}``
    becomes both ``(u, v)`` and ``(v, u)``; an undirected self-loop becomes one ``(u, u)``.
    Parallel edges of a multigraph are kept as duplicate edges. Node and edge attributes are
    not converted.

    Args:
        G: a ``networkx.Graph``, ``DiGraph``, ``MultiGraph`` or ``MultiDiGraph``.

    Returns:
        ``(edge_index, num_nodes)``: int64 ``[2, E]`` edges in the order of ``G.edges`` (for an
        undirected graph, the edges as listed, then their reverses), and the number of nodes.
    """
    import networkx as nx

    if not isinstance(G, nx.Graph):
        raise TypeError(f"G must be a networkx graph (nx.Graph, nx.DiGraph, nx.MultiGraph or "
                        f"nx.MultiDiGraph), got {type(G).__name__}")
    index = {node: k for k, node in enumerate(G.nodes)}
    pairs = [(index[u], index[v]) for u, v in G.edges()]
    edge_index = torch.tensor(pairs, dtype=torch.long).view(-1, 2).t()  # [2, E]
    if not G.is_directed():
        rev = edge_index.flip(0)                                         # [2, E]
        rev = rev[:, rev[0] != rev[1]]                                   # [2, E'] no loop twice
        edge_index = torch.cat([edge_index, rev], dim=1)                 # [2, E + E']
    return edge_index.contiguous(), len(index)
