"""The CSR view of a graph: edges sorted by target (and, for backward passes, by source), with
the permutations back to the caller's edge order. Built once per graph and cached."""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor

from .validate import check_edge_index

__all__ = ["GraphCSR", "to_csr", "clear_csr_cache", "cache_get", "cache_put"]


@dataclass(frozen=True)
class GraphCSR:
    """A graph sorted by target (CSR over targets) and by source (CSR over sources).

    Edge ``e`` of the caller's ``edge_index`` sits at position ``p`` of the target-sorted order
    where ``perm[p] == e``. Within a target the caller's edge order is kept (stable sort).

    Attributes (shapes with ``E`` edges, ``S`` source nodes, ``T`` target nodes):
        rowptr: ``[T + 1]`` offsets of each target's in-edges in the sorted order.
        col:    ``[E]`` source node of each sorted edge.
        row:    ``[E]`` target node of each sorted edge.
        perm:   ``[E]`` caller's edge id of each sorted edge.
        rowptr_t: ``[S + 1]`` offsets of each source's out-edges in the source-sorted order.
        col_t:  ``[E]`` target node of each source-sorted edge.
        perm_t: ``[E]`` position in the target-sorted order of each source-sorted edge.
        num_src, num_dst: node counts (equal for ordinary graphs).
    """

    rowptr: Tensor
    col: Tensor
    row: Tensor
    perm: Tensor
    rowptr_t: Tensor
    col_t: Tensor
    perm_t: Tensor
    num_src: int
    num_dst: int

    @property
    def num_edges(self) -> int:
        return self.col.numel()

    @property
    def device(self) -> torch.device:
        return self.col.device

    @property
    def num_nodes(self) -> int:
        return self.num_dst

    def edge_index(self) -> Tensor:
        """The edges in the caller's original order, ``[2, E]``."""
        out = torch.empty(2, self.num_edges, dtype=torch.long, device=self.device)
        out[0, self.perm] = self.col
        out[1, self.perm] = self.row
        return out

    def in_degree(self) -> Tensor:
        return self.rowptr.diff()                                        # [T]

    def to(self, device) -> "GraphCSR":
        fields = {k: (v.to(device) if isinstance(v, Tensor) else v)
                  for k, v in self.__dict__.items()}
        return GraphCSR(**fields)

    def __repr__(self) -> str:
        n = (f"num_nodes={self.num_dst}" if self.num_src == self.num_dst
             else f"num_src={self.num_src}, num_dst={self.num_dst}")
        return f"GraphCSR({n}, num_edges={self.num_edges}, device={self.device})"


def _offsets(index: Tensor, n: int) -> Tensor:
    ptr = torch.zeros(n + 1, dtype=torch.long, device=index.device)
    if index.numel() > 0:
        torch.cumsum(torch.bincount(index, minlength=n), 0, out=ptr[1:])
    return ptr


def _build(edge_index: Tensor, num_src: int, num_dst: int) -> GraphCSR:
    src, dst = edge_index[0].long(), edge_index[1].long()
    perm = torch.argsort(dst, stable=True)                               # [E]
    col, row = src[perm], dst[perm]                                      # [E], [E]
    perm_t = torch.argsort(col, stable=True)                             # [E]
    return GraphCSR(rowptr=_offsets(row, num_dst), col=col, row=row, perm=perm,
                    rowptr_t=_offsets(col, num_src), col_t=row[perm_t], perm_t=perm_t,
                    num_src=num_src, num_dst=num_dst)


# Structures derived from an edge_index are cached on the tensor's identity: a weak reference
# and the tensor's version counter guard against reuse of a freed id and against in-place edits.
# Each tensor holds a small dict of entries, one per tag ("csr", "self_loops", ...).
_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def clear_csr_cache() -> None:
    """Forget every cached structure (CSR views and the layers' self-loop structures)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _stamp(tensor: Tensor, extra) -> tuple:
    return (tensor._version, tensor.device, tensor.data_ptr(), tuple(tensor.stride()), extra)


def cache_get(tensor: Tensor, tag: str, extra=None):
    """The value cached on ``tensor`` under ``tag`` for ``extra`` (e.g. node counts), or None."""
    with _CACHE_LOCK:
        entry = _CACHE.get(id(tensor))
    if entry is None or entry[0]() is not tensor:
        return None
    hit = entry[1].get(tag)
    if hit is None or hit[0] != _stamp(tensor, extra):
        return None
    return hit[1]


def cache_put(tensor: Tensor, tag: str, extra, value):
    """Cache ``value`` on ``tensor`` under ``tag``; dropped when the tensor is freed."""
    key = id(tensor)
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is None or entry[0]() is not tensor:
            entry = (weakref.ref(tensor, lambda _r, k=key: _CACHE.pop(k, None)), {})
            _CACHE[key] = entry
        entry[1][tag] = (_stamp(tensor, extra), value)
    return value


def to_csr(edge_index: Union[Tensor, GraphCSR], num_nodes: Optional[int] = None,
           num_dst_nodes: Optional[int] = None, cache: bool = True,
           validate: bool = True) -> GraphCSR:
    """Return the CSR view of ``edge_index`` (built once, then served from a cache).

    Args:
        edge_index: ``[2, E]`` edges (row 0 source j, row 1 target i), or a ready ``GraphCSR``.
        num_nodes: number of source nodes (default: ``max index + 1``).
        num_dst_nodes: number of target nodes for bipartite graphs (default ``num_nodes``).
        cache (bool, default True): reuse the view for the same tensor across calls.
        validate (bool, default True): check dtype, shape and index range.
    """
    if isinstance(edge_index, GraphCSR):
        _check_counts(edge_index, num_nodes, num_dst_nodes)
        return edge_index
    if cache and num_nodes is not None:
        # A hit was validated for these node counts when it was built: skip the O(E) checks.
        n_dst = num_nodes if num_dst_nodes is None else int(num_dst_nodes)
        hit = cache_get(edge_index, "csr", (int(num_nodes), n_dst))
        if hit is not None:
            return hit
    if validate:
        num_nodes = check_edge_index(edge_index, num_nodes, num_dst_nodes=num_dst_nodes)
    elif num_nodes is None:
        num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
    num_dst = num_nodes if num_dst_nodes is None else int(num_dst_nodes)
    if not cache or not validate:
        # Only validated views enter the cache, since a hit skips validation.
        return _build(edge_index, num_nodes, num_dst)
    hit = cache_get(edge_index, "csr", (num_nodes, num_dst))
    if hit is not None:
        return hit
    return cache_put(edge_index, "csr", (num_nodes, num_dst),
                     _build(edge_index, num_nodes, num_dst))


def _check_counts(csr: GraphCSR, num_nodes: Optional[int], num_dst: Optional[int]) -> None:
    if num_nodes is not None and int(num_nodes) != csr.num_src:
        raise ValueError(f"num_nodes={num_nodes} does not match the GraphCSR passed as edge_index "
                         f"({csr.num_src} source nodes)")
    if num_dst is not None and int(num_dst) != csr.num_dst:
        raise ValueError(f"num_dst_nodes={num_dst} does not match the GraphCSR passed as "
                         f"edge_index ({csr.num_dst} target nodes)")

