"""Every adjacency PyG accepts, normalised into gatlib's :class:`GraphCSR`.

The attention ops and layers take the graph in any of the forms PyG's layers take:

- ``edge_index``: a ``LongTensor [2, E]``, row 0 = source j, row 1 = target i;
- a :class:`GraphCSR` (gatlib's explicit structure, built once and held by the caller);
- PyG's ``torch_geometric.EdgeIndex`` (its sort and CSR/CSC caches are used when it is sorted);
- a ``torch.sparse`` adjacency ``[T, S]`` in COO, CSR or CSC layout with rows = targets, as
  PyG's layers take it (``adj.t()`` of ``to_torch_coo_tensor(edge_index)``), whose stored entry
  order is the edge order;
- a ``torch_sparse.SparseTensor`` in the same layout, when that package is installed.

:func:`as_adjacency` checks any of them and returns an :class:`Adjacency`: the node counts, the
validated caller-order ``edge_index``, the ``GraphCSR`` (built on demand), the graph with
self-loops the layers use, and the conversion of attention weights back into the caller's form
(``return_attention_weights``).
"""
from __future__ import annotations

import sys
from typing import Optional, Tuple

import torch
from torch import Tensor

from .csr import _TRUSTED, GraphCSR, _build_csr, _offsets, _self_looped
from .validate import check_edge_index, check_num_nodes, compiling, require

__all__ = ["Adjacency", "as_adjacency", "to_csr", "ACCEPTED"]

ACCEPTED = ("a LongTensor [2, E] (row 0 = source j, row 1 = target i), a gatlib GraphCSR, a "
            "torch_geometric.EdgeIndex, a torch.sparse adjacency [T, S] with rows = targets "
            "(COO, CSR or CSC, e.g. PyG's adj.t()), or a torch_sparse.SparseTensor")

_SPARSE_LAYOUTS = (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc)


def _loaded_type(module: str, name: str):
    """``module.name`` if that module is already imported, else None: an object of a type from
    a module nobody imported cannot be passed in, so there is nothing to import here."""
    mod = sys.modules.get(module)
    return getattr(mod, name, None) if mod is not None else None


def _edge_index_type():
    return _loaded_type("torch_geometric.edge_index", "EdgeIndex")


def _sparse_tensor_type():
    return _loaded_type("torch_sparse.tensor", "SparseTensor")


class Adjacency:
    """A checked adjacency and what the ops and layers derive from it (one call's worth).

    Attributes:
        kind: ``"edge_index"``, ``"graph"`` (GraphCSR), ``"pyg_edge_index"`` (EdgeIndex),
            ``"sparse"`` (torch.sparse) or ``"sparse_tensor"`` (torch_sparse).
        source: the object the caller passed.
        num_src, num_dst: node counts ``S`` and ``T``.
        values: the stored values of a sparse adjacency in edge order (``[E]`` or ``[E, *]``),
            else None. PyG uses multi-dimensional values as edge features.
    """

    def __init__(self, kind: str, source, num_src: int, num_dst: int,
                 edge_index: Optional[Tensor] = None, graph: Optional[GraphCSR] = None,
                 values: Optional[Tensor] = None, *, _token=None):
        # Built only by as_adjacency, which has checked the edges (they reach the kernels).
        if _token is not _TRUSTED:
            raise TypeError("Adjacency objects are made by gatlib.graph.as_adjacency(adj, ...), "
                            "which checks the graph")
        self.kind, self.source = kind, source
        self.num_src, self.num_dst = num_src, num_dst
        self.values = values
        self._edge_index, self._graph = edge_index, graph

    def edge_index(self) -> Tensor:
        """The validated edges in the caller's order, ``[2, E]``."""
        if self._edge_index is None:
            self._edge_index = self._graph.edge_index()
        return self._edge_index

    def graph(self) -> GraphCSR:
        """The ``GraphCSR`` (the caller's own for a GraphCSR; built once per Adjacency)."""
        if self._graph is None:
            ei = self._edge_index
            self._graph = _build_csr(ei[0], ei[1], self.num_src, self.num_dst)
        return self._graph

    def with_self_loops(self) -> GraphCSR:
        """The graph without its self-loops, then one loop per node ``i < min(S, T)``: kept on
        a caller's GraphCSR (built once), built directly from the edges otherwise (one sort)."""
        if self.kind == "graph":
            return self._graph.with_self_loops()
        return _self_looped(self.edge_index(), self.num_src, self.num_dst)

    def attention_weights(self, used: GraphCSR, alpha: Tensor, loops_added: bool):
        """``alpha [E', H]`` (in ``used``'s edge order) in the caller's form, as PyG's layers
        return it: ``(edge_index, alpha)`` for index inputs (the input itself when the layer
        added no loops; an ``EdgeIndex`` for an ``EdgeIndex``), ``(adj, alpha)`` with ``adj`` a
        sparse ``[T, S, H]`` adjacency of the weights in the input's layout for a
        ``torch.sparse`` input, and a ``SparseTensor`` of the weights for a ``SparseTensor``."""
        if self.kind in ("edge_index", "pyg_edge_index") and not loops_added:
            return self.source, alpha
        if self.kind == "pyg_edge_index":
            cls = _edge_index_type()
            return cls(used.edge_index(), sparse_size=(self.num_src, self.num_dst)), alpha
        if self.kind == "sparse":
            return sparse_weights(used, alpha, self.source.layout), alpha
        if self.kind == "sparse_tensor":
            ei = used.edge_index()
            return _sparse_tensor_type()(row=ei[1], col=ei[0], value=alpha,
                                         sparse_sizes=(self.num_dst, self.num_src))
        return used.edge_index(), alpha


def as_adjacency(adj, num_src: Optional[int] = None, num_dst: Optional[int] = None,
                 name: str = "edge_index",
                 count_names: Tuple[str, str] = ("num_src", "num_dst")) -> Adjacency:
    """Check an adjacency in any accepted form and normalise it.

    Args:
        adj: see the module docstring for the accepted forms.
        num_src (int, optional): number of source nodes ``S`` (e.g. ``x_src.size(0)``);
            default: the adjacency's own size, else ``max index + 1``.
        num_dst (int, optional): number of target nodes ``T``; default: the adjacency's own
            size, else ``num_src``.
        name (str, default ``"edge_index"``): the argument name for error messages.
        count_names (default ``("num_src", "num_dst")``): what the caller calls the two counts,
            for error messages (e.g. ``("x_src.size(0)", "x_dst.size(0)")``).

    Returns:
        An :class:`Adjacency`. A bad index, a size that disagrees with the given counts, or an
        unknown type raises a ValueError or TypeError naming ``name``.
    """
    num_src = None if num_src is None else check_num_nodes(num_src, "num_src")
    num_dst = None if num_dst is None else check_num_nodes(num_dst, "num_dst")
    if isinstance(adj, GraphCSR):
        _match(name, "a GraphCSR", (adj.num_src, adj.num_dst), num_src, num_dst, count_names)
        return Adjacency("graph", adj, adj.num_src, adj.num_dst, graph=adj, _token=_TRUSTED)
    sparse_tensor = _sparse_tensor_type()
    if sparse_tensor is not None and isinstance(adj, sparse_tensor):
        return _from_sparse_tensor(adj, num_src, num_dst, name, count_names)
    if not isinstance(adj, Tensor):
        raise TypeError(f"{name} must be {ACCEPTED}; got {type(adj).__name__}")
    if adj.layout in _SPARSE_LAYOUTS:
        return _from_torch_sparse(adj, num_src, num_dst, name, count_names)
    if adj.layout != torch.strided:
        raise TypeError(f"{name} has layout {adj.layout}; it must be {ACCEPTED}")
    edge_index_cls = _edge_index_type()
    if edge_index_cls is not None and isinstance(adj, edge_index_cls):
        return _from_pyg_edge_index(adj, num_src, num_dst, name, count_names)
    if adj.dtype.is_floating_point and (adj.dim() != 2 or adj.size(0) != 2):
        # Not an edge_index with the wrong dtype but (likely) a dense adjacency matrix.
        raise TypeError(f"{name} is a dense {adj.dtype} tensor of shape {tuple(adj.shape)}; it "
                        f"must be {ACCEPTED}. For a dense adjacency matrix [T, S] pass "
                        f"adj.to_sparse()")
    S = check_edge_index(adj, num_src, name=name, num_dst_nodes=num_dst)
    T = S if num_dst is None else num_dst
    return Adjacency("edge_index", adj, S, T, edge_index=adj, _token=_TRUSTED)


def to_csr(edge_index, num_nodes: Optional[int] = None,
           num_dst_nodes: Optional[int] = None) -> GraphCSR:
    """The validated CSR view of any adjacency gatlib accepts.

    Args:
        edge_index: ``[2, E]`` edges (row 0 source j, row 1 target i); a ``GraphCSR`` (returned
            as is); PyG's ``EdgeIndex`` (its sorted and CSC caches are used when present); a
            ``torch.sparse`` adjacency ``[T, S]`` (COO, CSR or CSC; row = target, as PyG's
            ``adj.t()``); or a ``torch_sparse.SparseTensor`` in the same layout.
        num_nodes: number of source nodes (default: the adjacency's own size, else
            ``max index + 1``).
        num_dst_nodes: number of target nodes for bipartite graphs (default: the adjacency's own
            size, else ``num_nodes``).

    A plain tensor is converted anew on every call; hold the returned ``GraphCSR`` (or a PyG
    ``EdgeIndex``) to build the structure once.
    """
    return as_adjacency(edge_index, num_nodes, num_dst_nodes,
                        count_names=("num_nodes", "num_dst_nodes")).graph()


def _match(name: str, what: str, sizes: Tuple[int, int], num_src, num_dst,
           count_names: Tuple[str, str]) -> None:
    """Raise when the node counts given by the inputs disagree with the adjacency's own."""
    for given, own, side, arg in ((num_src, sizes[0], "source", count_names[0]),
                                  (num_dst, sizes[1], "target", count_names[1])):
        if given is not None and own is not None and int(given) != int(own):
            raise ValueError(f"{name} is {what} with {own} {side} nodes, but {arg} = {given}; "
                             f"pass inputs for this graph or rebuild {name} for them")


def _from_torch_sparse(adj: Tensor, num_src, num_dst, name: str, count_names) -> Adjacency:
    """A ``torch.sparse`` adjacency ``[T, S]`` (row = target i, column = source j)."""
    if adj.sparse_dim() != 2:
        raise ValueError(f"{name} is a sparse tensor with {adj.sparse_dim()} sparse dims; a "
                         f"sparse adjacency must be a [T, S] matrix (rows = targets, e.g. PyG's "
                         f"adj.t())")
    T, S = adj.size(0), adj.size(1)
    _match(name, f"a sparse adjacency [T, S] = [{T}, {S}]", (S, T), num_src, num_dst,
           count_names)
    if adj.layout == torch.sparse_coo:
        idx, values = adj._indices(), adj._values()                         # [2, E], [E, *]
        dst, src = idx[0], idx[1]
    elif adj.layout == torch.sparse_csr:
        ptr, src, values = adj.crow_indices(), adj.col_indices(), adj.values()
        dst = _expand_ptr(ptr, src.numel(), f"{name}.crow_indices()")
    else:
        ptr, dst, values = adj.ccol_indices(), adj.row_indices(), adj.values()
        src = _expand_ptr(ptr, dst.numel(), f"{name}.ccol_indices()")
    edge_index = torch.stack([src.long(), dst.long()])                      # [2, E]
    check_edge_index(edge_index, S, name=f"{name} (as [source, target] indices)",
                     num_dst_nodes=T)
    return Adjacency("sparse", adj, S, T, edge_index=edge_index, values=values,
                     _token=_TRUSTED)


def _expand_ptr(ptr: Tensor, nnz: int, name: str) -> Tensor:
    """Compressed offsets ``[n + 1]`` -> the index of each entry ``[nnz]`` (after checking them)."""
    require((ptr[0] == 0) & (ptr[-1] == nnz) & (ptr.diff() >= 0).all(),
            lambda: f"{name} must rise monotonically from 0 to the number of stored entries "
                    f"({nnz})")
    n = ptr.numel() - 1
    return torch.repeat_interleave(torch.arange(n, device=ptr.device), ptr.diff(),
                                   output_size=nnz)                        # [nnz]


def _from_sparse_tensor(adj, num_src, num_dst, name: str, count_names) -> Adjacency:
    """A ``torch_sparse.SparseTensor`` ``[T, S]`` (row = target, col = source)."""
    T, S = adj.sparse_sizes()
    _match(name, f"a SparseTensor [T, S] = [{T}, {S}]", (S, T), num_src, num_dst, count_names)
    row, col, values = adj.coo()
    edge_index = torch.stack([col.long(), row.long()])                      # [2, E]
    check_edge_index(edge_index, S, name=f"{name} (as [source, target] indices)",
                     num_dst_nodes=T)
    return Adjacency("sparse_tensor", adj, S, T, edge_index=edge_index, values=values,
                     _token=_TRUSTED)


def _from_pyg_edge_index(adj, num_src, num_dst, name: str, count_names) -> Adjacency:
    """PyG's ``EdgeIndex`` ``[2, E]`` (row 0 source, row 1 target, ``sparse_size = (S, T)``).

    When it is sorted and its sizes are known, its cached CSC (by target) and CSR (by source)
    views become the GraphCSR, copied (so later edits of the EdgeIndex cannot reach a held
    GraphCSR) and checked; otherwise it is an ordinary ``edge_index``."""
    data = adj.as_tensor()                                                 # [2, E] plain
    rows, cols = adj.sparse_size()
    _match(name, "an EdgeIndex", (rows, cols), num_src, num_dst, count_names)
    S = num_src if num_src is not None else rows
    T = num_dst if num_dst is not None else cols
    S = check_edge_index(data, S, name=name, num_dst_nodes=T)
    T = S if T is None else T
    out = Adjacency("pyg_edge_index", adj, S, T, edge_index=data, _token=_TRUSTED)
    # Under torch.compile the caches are left alone: AOTAutograd cannot trace an EdgeIndex
    # whose cached views are filled in during the trace (torch 2.13), so it is then sorted here.
    if (adj.is_sorted and (rows, cols) == (S, T) and data.size(1) > 0
            and not compiling()):
        out._graph = _graph_from_pyg_caches(adj, data)
    return out


def _graph_from_pyg_caches(adj, data: Tensor) -> GraphCSR:
    (colptr, col), perm = adj.get_csc()            # by target: offsets, sources, edge ids
    (rowptr_t, col_t), perm_r = adj.get_csr()      # by source: offsets, targets, edge ids
    E = data.size(1)
    arange = torch.arange(E, device=data.device)
    perm = arange if perm is None else perm.long()
    perm_r = arange if perm_r is None else perm_r.long()
    inverse = torch.empty_like(perm).index_copy_(0, perm, arange)          # [E] edge -> position
    fields = [colptr, col, data[1][perm], perm, rowptr_t, col_t, inverse[perm_r]]
    # The constructor copies and checks them: the GraphCSR shares no memory with the EdgeIndex.
    return GraphCSR(*[t.long() for t in fields])


def sparse_weights(used: GraphCSR, alpha: Tensor, layout: torch.layout) -> Tensor:
    """The weights ``alpha [E, *]`` (``used``'s edge order) as a sparse ``[T, S, *]`` adjacency in
    ``layout`` (COO coalesced as PyG returns it; CSR/CSC with sorted indices)."""
    ei = used.edge_index()
    src, dst = ei[0], ei[1]                                                # [E], [E]
    T, S = used.num_dst, used.num_src
    size = (T, S) + tuple(alpha.shape[1:])
    if layout == torch.sparse_coo:
        return torch.sparse_coo_tensor(torch.stack([dst, src]), alpha, size).coalesce()
    if layout == torch.sparse_csr:
        order = torch.argsort(dst * S + src, stable=True)                  # [E] row-major
        return torch.sparse_csr_tensor(_offsets(dst[order], T), src[order], alpha[order], size)
    order = torch.argsort(src * T + dst, stable=True)                      # [E] column-major
    return torch.sparse_csc_tensor(_offsets(src[order], S), dst[order], alpha[order], size)
