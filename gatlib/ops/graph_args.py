"""The graph as the backends' ops take it: the seven index tensors of a ``GraphCSR``, typed.

A registered op (``torch.library.custom_op``) takes its graph as one ``Tensor[]`` argument: the
seven tensors below, in this order, optionally followed by what a backend derives from them
and keeps on the caller's ``GraphCSR`` (the CPU backend's head-folded graph, Triton's work
lists). Kernel code reads them by name through :class:`CSRTensors` (``csr.perm``, never
``graph[3]``) and the rest through :func:`extras`.
"""
from __future__ import annotations

from typing import List, NamedTuple, Sequence

import torch
from torch import Tensor

__all__ = ["CSRTensors", "GRAPH_TENSORS", "graph_tensors", "csr_tensors", "extras",
           "caller_edge_index"]


class CSRTensors(NamedTuple):
    """The CSR view of a graph with ``T`` targets, ``S`` sources and ``E`` edges.

    Attributes:
        rowptr: ``[T + 1]`` offsets of each target's in-edges in the target-sorted order.
        col: ``[E]`` source of each target-sorted edge.
        row: ``[E]`` target of each target-sorted edge.
        perm: ``[E]`` caller's edge id of each target-sorted edge.
        rowptr_t: ``[S + 1]`` offsets of each source's out-edges in the source-sorted order.
        col_t: ``[E]`` target of each source-sorted edge.
        perm_t: ``[E]`` target-sorted position of each source-sorted edge.
    """

    rowptr: Tensor
    col: Tensor
    row: Tensor
    perm: Tensor
    rowptr_t: Tensor
    col_t: Tensor
    perm_t: Tensor

    @property
    def num_dst(self) -> int:
        return self.rowptr.numel() - 1

    @property
    def num_src(self) -> int:
        return self.rowptr_t.numel() - 1

    @property
    def num_edges(self) -> int:
        return self.col.numel()


GRAPH_TENSORS = len(CSRTensors._fields)       # 7


def graph_tensors(csr) -> List[Tensor]:
    """The tensors of a ``GraphCSR`` in the order the registered ops take them (a list, the
    form of a ``Tensor[]`` argument); a field edited in place since the graph was built raises
    a ValueError (:meth:`~gatlib.graph.GraphCSR.tensors`)."""
    return list(csr.tensors())


def csr_tensors(graph: Sequence[Tensor]) -> CSRTensors:
    """The first seven tensors of an op's graph argument, by name."""
    return CSRTensors(*graph[:GRAPH_TENSORS])


def extras(graph: Sequence[Tensor]) -> List[Tensor]:
    """What follows the seven tensors in an op's graph argument (a backend's derived
    structures; empty when the op was given only the seven)."""
    return list(graph[GRAPH_TENSORS:])


def caller_edge_index(graph: Sequence[Tensor]) -> Tensor:
    """``edge_index [2, E]`` in the caller's edge order, rebuilt from the CSR tensors."""
    g = csr_tensors(graph)
    ei = torch.empty(2, g.num_edges, dtype=torch.long, device=g.col.device)
    ei[0, g.perm] = g.col.long()
    ei[1, g.perm] = g.row.long()
    return ei                                                              # [2, E]
