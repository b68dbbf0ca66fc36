"""The CSR view of a graph: edges sorted by target (and, for backward passes, by source), with
the permutations back to the caller's edge order.

A :class:`GraphCSR` is the one explicit graph structure of gatlib. Whatever is derived from it
(the caller-order ``edge_index``, the graph with one self-loop per node that the attention layers
use, the kernel work plans of a backend) is built the first time it is asked for and kept on the
object, so a training loop that holds the ``GraphCSR`` builds each of them once. Nothing is cached
anywhere else: a plain ``edge_index`` tensor passed to an op or a layer is converted on every call
(a stable sort, O(E log E), cheap next to the attention itself), so editing it in place by any
route always gives the new graph's answer.

Every ``GraphCSR`` is validated when it is built: from an ``edge_index`` (range of every index),
or field by field when constructed directly (ranges, monotone offsets, permutations,
consistency of the two orders). It owns its fields: the constructor copies the caller's tensors
(contiguous ``int64``), so editing them afterwards changes nothing, and a field edited in place
through the read-only properties is caught (ValueError) before it reaches a kernel. The native
kernels check every index they read besides (:mod:`gatlib.native`), so whatever route an edit
takes, it never reads out of bounds.

The builder from any adjacency form, :func:`~gatlib.graph.adjacency.to_csr`, lives beside
:func:`~gatlib.graph.adjacency.as_adjacency` (this module imports neither).
"""
from __future__ import annotations

from typing import Callable, Dict, Hashable, Optional, Tuple

import torch
from torch import Tensor

from .. import native
from ..native import abi
from .._checks import versions
from .validate import (check_edge_index, check_index_range, check_num_nodes, compiling,
                       require)

__all__ = ["GraphCSR"]

# Passed by the builders of this module, whose fields are correct by construction (they come
# from a validated edge_index): it skips the field-by-field checks of GraphCSR.__init__.
_TRUSTED = object()

_FIELDS = ("rowptr", "col", "row", "perm", "rowptr_t", "col_t", "perm_t")


class GraphCSR:
    """A graph sorted by target (CSR over targets) and by source (CSR over sources).

    Edge ``e`` of the caller's ``edge_index`` sits at position ``p`` of the target-sorted order
    where ``perm[p] == e``. Built from an ``edge_index``, the caller's edge order is kept within
    each target (stable sort).

    Build one with :func:`to_csr` (any adjacency: ``edge_index``, PyG's ``EdgeIndex``, a
    ``torch.sparse`` adjacency, ``torch_sparse.SparseTensor``) or
    :meth:`GraphCSR.from_edge_index`. The constructor takes the seven index tensors, checks
    them all (O(E); a bad field raises a ValueError naming it) and keeps contiguous copies.

    Fields (read-only: an in-place edit raises a ValueError at the next use; shapes with ``E``
    edges, ``S`` source nodes, ``T`` target nodes):
        rowptr: ``[T + 1]`` offsets of each target's in-edges in the sorted order.
        col:    ``[E]`` source node of each sorted edge.
        row:    ``[E]`` target node of each sorted edge.
        perm:   ``[E]`` caller's edge id of each sorted edge.
        rowptr_t: ``[S + 1]`` offsets of each source's out-edges in the source-sorted order.
        col_t:  ``[E]`` target node of each source-sorted edge.
        perm_t: ``[E]`` position in the target-sorted order of each source-sorted edge.
        num_src, num_dst: node counts (equal for ordinary graphs), read from the offsets' sizes.

    Derived structures, built once per object on first use: :meth:`edge_index`,
    :meth:`with_self_loops`, and :meth:`derived` (the slot backends keep their work plans in).
    """

    def __init__(self, rowptr: Tensor, col: Tensor, row: Tensor, perm: Tensor, rowptr_t: Tensor,
                 col_t: Tensor, perm_t: Tensor, num_src: Optional[int] = None,
                 num_dst: Optional[int] = None, *, _token=None):
        fields = (rowptr, col, row, perm, rowptr_t, col_t, perm_t)
        if _token is not _TRUSTED:
            # Copies first, then the checks: what is checked is what the kernels read, and the
            # caller's tensors never reach them.
            fields = _owned_copies(fields)
            _check_fields(fields, num_src, num_dst)
        else:                              # the builders' own tensors; contiguous for the C code
            fields = tuple(t if t.is_contiguous() else t.contiguous() for t in fields)
        (self._rowptr, self._col, self._row, self._perm, self._rowptr_t, self._col_t,
         self._perm_t) = fields
        self._versions = versions(fields)
        self._kept: Optional[Tensor] = None
        self._derived: Dict[Hashable, object] = {}

    # ------------------------------------------------------------------ fields (read-only)
    @property
    def rowptr(self) -> Tensor:
        return self._rowptr

    @property
    def col(self) -> Tensor:
        return self._col

    @property
    def row(self) -> Tensor:
        return self._row

    @property
    def perm(self) -> Tensor:
        return self._perm

    @property
    def rowptr_t(self) -> Tensor:
        return self._rowptr_t

    @property
    def col_t(self) -> Tensor:
        return self._col_t

    @property
    def perm_t(self) -> Tensor:
        return self._perm_t

    @property
    def num_src(self) -> int:
        return self._rowptr_t.size(0) - 1

    @property
    def num_dst(self) -> int:
        return self._rowptr.size(0) - 1

    @property
    def num_nodes(self) -> int:
        return self.num_dst

    @property
    def num_edges(self) -> int:
        return self._col.size(0)

    @property
    def device(self) -> torch.device:
        return self._col.device

    @property
    def kept_edges(self) -> Optional[Tensor]:
        """For a graph made by :meth:`with_self_loops`: ``[E']`` ids (in the original graph's
        edge order) of the edges it kept, which are its edges ``0 .. E'-1``; else None."""
        return self._kept

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_src: Optional[int] = None,
                        num_dst: Optional[int] = None) -> "GraphCSR":
        """The validated CSR view of a plain ``edge_index [2, E]`` (row 0 source j, row 1
        target i); ``num_src`` defaults to ``max index + 1``, ``num_dst`` to ``num_src``."""
        num_src = check_edge_index(edge_index, num_src, num_dst_nodes=num_dst)
        num_dst = num_src if num_dst is None else num_dst
        return _build_csr(edge_index[0], edge_index[1], num_src, num_dst)

    def tensors(self) -> Tuple[Tensor, ...]:
        """The seven fields in the order the ops take them (``rowptr, col, row, perm, rowptr_t,
        col_t, perm_t``), after checking that none was edited in place since the graph was
        built (ValueError naming the field)."""
        fields = (self._rowptr, self._col, self._row, self._perm, self._rowptr_t, self._col_t,
                  self._perm_t)
        if not compiling() and versions(fields) != self._versions:
            self._edited(fields)
        return fields

    def _edited(self, fields) -> None:
        for name, t, seen in zip(_FIELDS, fields, self._versions):
            if versions((t,))[0] != seen:
                raise ValueError(f"GraphCSR field {name} was edited in place after the graph was "
                                 f"built (its fields are read-only: the kernels read what was "
                                 f"checked); build a new graph with gatlib.graph.to_csr"
                                 f"(edge_index, num_nodes) or GraphCSR(...) instead")

    # ------------------------------------------------------------------ derived, memoised
    def derived(self, key: Hashable, build: Callable[[], object]):
        """The structure stored under ``key``, built by ``build()`` on the first call and kept on
        this object. Backends keep their work plans here, keyed by the plan's parameters; the
        layers keep the self-loop graph. Fields edited in place raise a ValueError here (the
        structures were derived from the checked fields)."""
        self.tensors()
        hit = self._derived.get(key)
        if hit is None:
            hit = self._derived[key] = build()
        return hit

    def edge_index(self) -> Tensor:
        """The edges in the caller's original order, ``[2, E]`` (built once; do not edit it)."""
        return self.derived("edge_index", self._caller_edges)

    def _caller_edges(self) -> Tensor:
        out = torch.empty(2, self.num_edges, dtype=torch.long, device=self.device)
        out[0, self._perm] = self._col
        out[1, self._perm] = self._row
        return out                                                         # [2, E]

    def with_self_loops(self) -> "GraphCSR":
        """The graph the attention layers attend over (built once, then kept): this graph's
        edges without their self-loops, in their order, then one loop ``(i, i)`` per node ``i <
        min(num_src, num_dst)`` (PyG's ``remove_self_loops`` + ``add_self_loops``). Its
        :attr:`kept_edges` are the ids of the edges kept from this graph."""
        # Built from the fields, not from the edge_index() handed to callers: a caller that
        # edits that tensor cannot reach the structure the kernels read.
        return self.derived("self_loops", lambda: _self_looped(self._caller_edges(),
                                                              self.num_src, self.num_dst))

    def in_degree(self) -> Tensor:
        return self._rowptr.diff()                                         # [T]

    def to(self, device) -> "GraphCSR":
        """This graph on ``device`` (derived structures are rebuilt there on demand)."""
        fields = [getattr(self, "_" + f).to(device) for f in _FIELDS]
        out = GraphCSR(*fields, _token=_TRUSTED)
        out._kept = None if self._kept is None else self._kept.to(device)
        return out

    def __repr__(self) -> str:
        n = (f"num_nodes={self.num_dst}" if self.num_src == self.num_dst
             else f"num_src={self.num_src}, num_dst={self.num_dst}")
        return f"GraphCSR({n}, num_edges={self.num_edges}, device={self.device})"


def _offsets(sorted_index: Tensor, n: int) -> Tensor:
    """``[n + 1]`` offsets of each value's run in a sorted index. On the CPU, a count per value
    and its running sum (O(E + n); about 7x faster than searchsorted on a batch of small
    graphs). Elsewhere and under torch.compile, searchsorted: deterministic on every device
    (CUDA's bincount is not guaranteed to be) and a static output shape. Both are exact."""
    if sorted_index.device.type != "cpu" or compiling():
        return torch.searchsorted(sorted_index, torch.arange(
            n + 1, dtype=sorted_index.dtype, device=sorted_index.device))
    out = sorted_index.new_zeros(n + 1)                                    # [n + 1]
    torch.cumsum(torch.bincount(sorted_index, minlength=n), 0, out=out[1:])
    return out


def _stable_argsort(index: Tensor, n: int) -> Tensor:
    """``torch.argsort(index, stable=True)`` for node ids in ``[0, n)``. On the CPU, NumPy's
    stable sort of 16-bit keys is a radix sort, O(E): one pass for ``n <= 2**16``, two (low
    then high 16 bits) up to ``2**32``; measured 25 us against torch's 300 us for the 6,000
    edges of a batch of 128 molecules. The stable order is unique, so both give the same
    permutation. Elsewhere (CUDA, torch.compile, larger ids) torch's own sort."""
    if index.device.type != "cpu" or compiling() or n > 1 << 32 or index.numel() < 2:
        return torch.argsort(index, stable=True)
    import numpy as np
    keys = index.numpy()
    perm = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    if n > 1 << 16:
        high = (keys >> 16).astype(np.uint16)[perm]
        perm = perm[np.argsort(high, kind="stable")]
    return torch.from_numpy(perm.astype(np.int64, copy=False))


# Below this many edges the native CSR builder runs on one thread: a parallel region costs more
# than it saves on a batch of small graphs or a sampled block.
CSR_PARALLEL_MIN_EDGES = 1 << 16


def _csr_threads(E: int, n: int) -> int:
    """Threads (= chunks) of the native counting sort of ``E`` edges over ``n`` nodes: torch's
    thread count, one below :data:`CSR_PARALLEL_MIN_EDGES`, and at most ``E / (n + 1)`` so that
    the per-chunk histograms (``n + 1`` entries each) stay within the edges' own size."""
    if E < CSR_PARALLEL_MIN_EDGES:
        return 1
    return max(1, min(torch.get_num_threads(), E // (n + 1)))


def _native_csr(src: Tensor, dst: Tensor, num_src: int, num_dst: int,
                loops: bool) -> Optional[GraphCSR]:
    """The ``GraphCSR`` of checked edges by the native counting sort (``gatlib/native/csr.h``,
    O(E + N), shared out among torch's threads; the same arrays as the sorts below), with the
    layers' self-loops when ``loops``; None where it does not run (not on the CPU, under
    torch.compile, or no native library)."""
    if src.device.type != "cpu" or compiling():
        return None
    lib = native.library()
    if lib is None:
        return None
    src, dst = src.long().contiguous(), dst.long().contiguous()
    E, S, T = src.numel(), num_src, num_dst
    L = min(S, T) if loops else 0
    i64 = dict(dtype=torch.long)
    rowptr, rowptr_t = torch.empty(T + 1, **i64), torch.empty(S + 1, **i64)
    per_edge = torch.empty(5, E + L, **i64)           # col, row, perm, col_t, perm_t
    P = _csr_threads(E, max(S, T))
    keep, scratch = torch.empty(E, **i64), torch.empty((P + 1) * (max(S, T) + 1), **i64)
    col, row, perm, col_t, perm_t = per_edge
    M = abi.call(lib, "gatlib_build_csr", src=src, dst=dst, E=E, S=S, T=T, loops=int(loops),
                 L=L, rowptr=rowptr, col=col, row=row, perm=perm, rowptr_t=rowptr_t,
                 col_t=col_t, perm_t=perm_t, keep=keep, cnt=scratch,
                 pairs=per_edge[3:].view(-1), nthreads=P)     # scratch in col_t, perm_t
    if M < 0:                              # unreachable after the caller's range check
        raise ValueError(f"edge {-1 - M} has an index out of range (num_src={S}, "
                         f"num_dst={T})")
    graph = GraphCSR(rowptr, col[:M], row[:M], perm[:M], rowptr_t, col_t[:M], perm_t[:M],
                     _token=_TRUSTED)
    if loops:
        graph._kept = keep[:M - L]
    return graph


def _build_csr(src: Tensor, dst: Tensor, num_src: int, num_dst: int,
               loops: bool = False) -> GraphCSR:
    """The ``GraphCSR`` of the edges ``(src[e], dst[e])``, whose ranges the caller has checked
    (internal builder: no field checks). With ``loops``: without the edges ``(i, i)``, then one
    loop per node ``i < min(num_src, num_dst)``, its ``kept_edges`` the ids of the kept edges."""
    built = _native_csr(src, dst, num_src, num_dst, loops)
    if built is not None:
        return built
    src, dst = src.long(), dst.long()
    if loops:
        keep = (src != dst).nonzero().view(-1)                             # [E']
        ids = torch.arange(min(num_src, num_dst), device=src.device)      # [L]
        src = torch.cat([src.index_select(0, keep), ids])                  # [E' + L]
        dst = torch.cat([dst.index_select(0, keep), ids])                  # [E' + L]
    perm = _stable_argsort(dst, num_dst)                                   # [E]
    col, row = src.index_select(0, perm), dst.index_select(0, perm)        # [E], [E]
    perm_t = _stable_argsort(col, num_src)                                 # [E]
    graph = GraphCSR(_offsets(row, num_dst), col, row, perm,
                     _offsets(col.index_select(0, perm_t), num_src),
                     row.index_select(0, perm_t), perm_t, _token=_TRUSTED)
    if loops:
        graph._kept = keep
        # src and dst are this function's own tensors: they are the caller-order edges.
        graph._derived["edge_index"] = torch.stack([src, dst])             # [2, E' + L]
    return graph


def _self_looped(edge_index: Tensor, num_src: int, num_dst: int) -> GraphCSR:
    """The ``GraphCSR`` of a checked ``edge_index`` without its self-loops, then one loop per
    node ``i < min(num_src, num_dst)``; its ``kept_edges`` are the ids of the kept edges."""
    return _build_csr(edge_index[0], edge_index[1], num_src, num_dst, loops=True)


# ------------------------------------------------------------------------------ field checks

def _owned_copies(fields: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    """Contiguous copies of the fields (any strides, an expanded or sliced tensor included),
    after checking each is a 1-D ``torch.long`` tensor."""
    for name, t in zip(_FIELDS, fields):
        if not isinstance(t, Tensor):
            raise TypeError(f"GraphCSR field {name} must be a torch.LongTensor, got "
                            f"{type(t).__name__}")
        if t.dtype != torch.long or t.dim() != 1 or t.layout != torch.strided:
            raise TypeError(f"GraphCSR field {name} must be a 1-D torch.long tensor, got dtype "
                            f"{t.dtype} and shape {tuple(t.shape)}; convert it with .long()")
    return tuple(t.clone(memory_format=torch.contiguous_format) for t in fields)


def _check_fields(fields: Tuple[Tensor, ...], num_src, num_dst) -> None:
    """Every check that makes a hand-built GraphCSR safe for the kernels; O(E)."""
    rowptr, col, row, perm, rowptr_t, col_t, perm_t = fields
    if len({t.device for t in fields}) > 1:
        raise ValueError("GraphCSR fields must all be on one device, got "
                         + ", ".join(f"{n} on {t.device}" for n, t in zip(_FIELDS, fields)))
    if rowptr.numel() < 1 or rowptr_t.numel() < 1:
        raise ValueError("GraphCSR fields rowptr and rowptr_t need at least one entry "
                         "(num_nodes + 1)")
    T, S, E = rowptr.numel() - 1, rowptr_t.numel() - 1, col.numel()
    if num_src is not None and check_num_nodes(num_src, "num_src") != S:
        raise ValueError(f"num_src={num_src} but rowptr_t has {S + 1} entries (num_src + 1)")
    if num_dst is not None and check_num_nodes(num_dst, "num_dst") != T:
        raise ValueError(f"num_dst={num_dst} but rowptr has {T + 1} entries (num_dst + 1)")
    for name, t in zip(_FIELDS, fields):
        if name not in ("rowptr", "rowptr_t") and t.numel() != E:
            raise ValueError(f"GraphCSR field {name} must have one entry per edge (E = {E}, the "
                             f"length of col), got {t.numel()}")
    for name, ptr in (("rowptr", rowptr), ("rowptr_t", rowptr_t)):
        require((ptr[0] == 0) & (ptr[-1] == E) & (ptr.diff() >= 0).all(),
                lambda name=name: f"GraphCSR field {name} must rise monotonically from 0 to E = "
                                  f"{E} (the number of edges)")
    hint = "; build the graph with gatlib.graph.to_csr(edge_index, num_nodes)"
    check_index_range(col, S, "GraphCSR field col (sources)", hint)
    check_index_range(row, T, "GraphCSR field row (targets)", hint)
    check_index_range(col_t, T, "GraphCSR field col_t (targets)", hint)
    for name, p in (("perm", perm), ("perm_t", perm_t)):
        check_index_range(p, E, f"GraphCSR field {name} (edge ids)", hint)
        hits = torch.zeros(E, dtype=torch.long, device=p.device).index_add_(
            0, p, torch.ones_like(p))                                      # [E]
        require((hits == 1).all(), lambda name=name: f"GraphCSR field {name} must be a "
                                                     f"permutation of 0 .. E-1")
    if E == 0:
        return
    # The two orders must describe the same edges: rows agree with their offsets, and the
    # source-sorted order is a sort of the target-sorted one.
    require((_offsets(row, T) == rowptr).all() & (row.diff() >= 0).all(),
            "GraphCSR field row must be sorted and agree with rowptr")
    col_sorted = col[perm_t]                                               # [E]
    require((col_sorted.diff() >= 0).all() & (_offsets(col_sorted, S) == rowptr_t).all(),
            "GraphCSR fields perm_t and rowptr_t must sort the edges by source (col[perm_t])")
    require((col_t == row[perm_t]).all(),
            "GraphCSR field col_t must equal row[perm_t] (the target of each source-sorted "
            "edge)")
