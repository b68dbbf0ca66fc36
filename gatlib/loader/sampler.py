"""Neighbour sampling over gatlib's CSR structure, for PyG's loaders: one native pass a hop
(``gatlib/native/sample.h``: picks and relabelling together) where the native library is
loaded, else vectorised torch ops with the same semantics.

PyG's ``NeighborLoader`` samples through ``pyg-lib`` or ``torch-sparse``; where neither is
installed it cannot sample at all. :class:`NeighborSampler` is a
``torch_geometric.sampler.BaseSampler`` over a :class:`GraphCSR`, so
PyG's own ``NodeLoader`` turns its output into the usual mini-batch ``Data`` (``n_id``,
``e_id``, ``batch_size``, ``input_id``, ``num_sampled_nodes``, ``num_sampled_edges`` and the
node and edge attributes of the graph). :func:`neighbor_loader` returns PyG's own
``NeighborLoader`` whenever PyG can sample, else a ``NodeLoader`` with this sampler.

Conventions (PyG's): a target ``i`` samples among its in-edges ``j -> i`` (row 0 of
``edge_index`` is the source). Hop ``l`` expands the nodes first reached at hop ``l - 1``
(the seeds at hop 1) by ``num_neighbors[l - 1]`` in-edges each. The sampled nodes are the seeds
in the order given (duplicates kept, as PyG keeps them), then the new nodes of each hop in order
of first appearance; the sampled edges are listed hop by hop, grouped by target.
"""
from __future__ import annotations

import contextlib
import functools
import numbers
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.sampler import BaseSampler, NodeSamplerInput, SamplerOutput

from ..graph.adjacency import to_csr
from ..graph.csr import GraphCSR, _stable_argsort

__all__ = ["NeighborSampler", "sample_neighbors", "check_num_neighbors", "check_seeds"]


# ---------------------------------------------------------------------------- argument checks

def check_num_neighbors(num_neighbors) -> List[int]:
    """``num_neighbors`` as a list of Python ints (one fanout per hop, ``-1`` = all in-edges),
    or a TypeError/ValueError naming the bad entry."""
    if isinstance(num_neighbors, Tensor):
        num_neighbors = num_neighbors.tolist()
    if not isinstance(num_neighbors, (list, tuple)):
        raise TypeError(f"num_neighbors must be a list of ints, one fanout per hop (layer), e.g. "
                        f"[10, 5]; -1 takes every in-neighbour. Got {type(num_neighbors).__name__}")
    out = []
    for hop, k in enumerate(num_neighbors):
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"num_neighbors[{hop}] must be an int (a fanout; -1 for all "
                            f"neighbours), got {type(k).__name__} {k!r}")
        if k < -1:
            raise ValueError(f"num_neighbors[{hop}] = {k}: a fanout is an int >= 0, or -1 for "
                             f"all neighbours")
        out.append(int(k))
    return out


def check_seeds(seeds, num_nodes: int, name: str = "seeds") -> Tensor:
    """``seeds`` as a 1-D LongTensor of node ids in ``[0, num_nodes)``, else a clear error."""
    if not isinstance(seeds, Tensor):
        raise TypeError(f"{name} must be a 1-D LongTensor of node ids, got "
                        f"{type(seeds).__name__}")
    if seeds.dtype == torch.bool or seeds.dtype.is_floating_point or seeds.dtype.is_complex:
        raise TypeError(f"{name} must hold integer node ids, got dtype {seeds.dtype} (turn a "
                        f"boolean mask into ids with mask.nonzero().view(-1))")
    if seeds.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(seeds.shape)}")
    seeds = seeds.long()
    if seeds.numel() > 0:
        lo, hi = int(seeds.min()), int(seeds.max())
        if lo < 0 or hi >= num_nodes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} holds node id {bad}, outside [0, {num_nodes}) (the graph "
                             f"has {num_nodes} nodes)")
    return seeds


# ---------------------------------------------------------------------------- sampling core

def _expand(start: Tensor, count: Tensor) -> Tuple[Tensor, Tensor]:
    """For segments ``[start[s], start[s] + count[s])``: the segment id and the position of
    every element, segment after segment: ``([M], [M])`` with ``M = count.sum()``."""
    n = count.numel()
    seg = torch.repeat_interleave(torch.arange(n, device=count.device), count)   # [M]
    first = torch.cumsum(count, 0) - count                                     # [n]
    pos = start[seg] + torch.arange(seg.numel(), device=count.device) - first[seg]  # [M]
    return seg, pos


def _floyd(start: Tensor, deg: Tensor, k: int,
           generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
    """``k`` distinct in-edges of each node (all with ``deg > k``), uniformly, by Floyd's
    algorithm run for all nodes at once: step ``s`` draws ``t`` uniform in ``[0, j]`` with ``j =
    deg - k + s`` and keeps ``t``, or ``j`` when ``t`` was kept before. O(n k^2) work, whatever
    the degrees. Returns ``(seg, pos)`` grouped by node."""
    n, dev = deg.numel(), deg.device
    picks = torch.empty(n, k, dtype=torch.long, device=dev)                 # [n, k]
    for s in range(k):
        j = deg - k + s                                                      # [n]
        u = torch.rand(n, dtype=torch.float64, device=dev, generator=generator)
        t = torch.minimum((u * (j + 1)).long(), j)                           # [n] in [0, j]
        seen = (picks[:, :s] == t.unsqueeze(1)).any(1)                       # [n]
        picks[:, s] = torch.where(seen, j, t)
    seg = torch.arange(n, device=dev).repeat_interleave(k)                  # [n k]
    return seg, (start.unsqueeze(1) + picks).view(-1)


def _pick(start: Tensor, deg: Tensor, k: int, replace: bool,
          generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
    """``k`` in-edges of each frontier node whose in-edges sit at CSR positions
    ``[start, start + deg)``: ``(seg, pos)``, grouped by frontier node (``seg`` ascending).

    ``k < 0`` takes every in-edge; with ``replace`` each node draws ``k`` uniform positions in
    ``[0, deg)`` (none when ``deg = 0``); without, ``min(k, deg)`` distinct ones, uniformly. For
    a node with ``k < deg <= k^2`` the candidate in-edges are shuffled by one random permutation
    and then stably sorted by node, which leaves each node's in-edges in a uniformly random
    order, of which the first ``k`` are kept (O(deg) work); a node of higher degree uses
    :func:`_floyd` (O(k^2) work), so a hub costs no more than its fanout.
    """
    dev = deg.device
    if k < 0:
        return _expand(start, deg)
    if replace:
        count = torch.where(deg > 0, k, 0)                                  # [n]
        seg, _ = _expand(start, count)                                       # [M]
        d = deg[seg]                                                         # [M]
        u = torch.rand(seg.numel(), dtype=torch.float64, device=dev, generator=generator)
        off = torch.minimum((u * d).long(), d - 1)                           # [M] in [0, deg)
        return seg, start[seg] + off
    whole = deg <= k                                                         # [n]
    seg_all, pos_all = _expand(start, torch.where(whole, deg, 0))          # all in-edges
    if bool(whole.all()):
        return seg_all, pos_all
    hub = deg > k * k                                                        # [n]
    part_deg = torch.where(whole | hub, 0, deg)                              # [n]
    seg, pos = _expand(start, part_deg)                                      # [M]
    shuffle = torch.randperm(seg.numel(), device=dev, generator=generator)  # [M]
    order = shuffle[_stable_argsort(seg[shuffle], deg.numel())]            # by node, random within
    seg, pos = seg[order], pos[order]
    first = torch.cumsum(part_deg, 0) - part_deg                            # [n]
    rank = torch.arange(seg.numel(), device=dev) - first[seg]               # [M]
    keep = rank < k
    hubs = hub.nonzero().view(-1)                                            # [n_h]
    seg_hub, pos_hub = _floyd(start[hubs], deg[hubs], k, generator)         # [n_h k]
    seg = torch.cat([seg_all, seg[keep], hubs[seg_hub]])
    pos = torch.cat([pos_all, pos[keep], pos_hub])
    regroup = _stable_argsort(seg, deg.numel())
    return seg[regroup], pos[regroup]


class _LocalIds:
    """The local id of every global node reached so far, in one node-indexed array (``-1``:
    not reached), so that relabelling a hop's sources is a gather and two scatters, O(M), with
    no sort. ``first`` (made at first use: the torch path only) is scratch of the same size
    holding ``M`` (past every position) except while a hop is relabelled."""

    def __init__(self, num_nodes: int, device):
        self.local = torch.full((num_nodes,), -1, dtype=torch.long, device=device)  # [N]
        self._first: Optional[Tensor] = None      # made by the first torch-path relabel
        self.count = 0

    @property
    def first(self) -> Tensor:
        if self._first is None:
            self._first = torch.full_like(self.local, -1)                        # [N]
        return self._first

    def seed(self, seeds: Tensor) -> None:
        """The seeds' local ids are their positions (``B`` of them); the copies of a repeated
        seed are distinct rows, and an edge from that node reaches its first copy."""
        B = seeds.numel()
        self.local.index_fill_(0, seeds, B)
        self.local.scatter_reduce_(0, seeds, torch.arange(B, device=seeds.device), "amin")
        self.count = B

    def add(self, nodes: Tensor) -> None:
        """Give ``nodes`` (distinct, none known) the next local ids, in their order."""
        self.local[nodes] = self.count + torch.arange(nodes.numel(), device=nodes.device)
        self.count += nodes.numel()

    def relabel(self, src: Tensor) -> Tuple[Tensor, Tensor]:
        """Local ids of the global ids ``src [M]``: a known node keeps its id; new nodes get
        the next ids in order of first appearance in ``src``. Returns ``(src_local [M],
        new_nodes [M'])``."""
        M = src.numel()
        pos = torch.arange(M, device=src.device)                              # [M]
        fresh = self.local[src] < 0                                          # [M]
        cand, at = src[fresh], pos[fresh]                                    # [M''] unknown
        # The first position of each unknown node: the smallest position scattered to it.
        self.first.index_fill_(0, cand, M)
        self.first.scatter_reduce_(0, cand, at, "amin")
        new = cand[self.first[cand] == at]                                   # [M'] in order
        self.add(new)
        return self.local[src], new


@contextlib.contextmanager
def _one_thread():
    """torch on one thread inside, its thread count restored after. Sampling a batch is a chain
    of a few dozen small ops (tens of thousands of entries each), which two threads do not
    speed up, and on a machine whose cores are busy each parallel op waits for its second
    thread to be scheduled: measured 15 ms a batch on one thread against 710 ms on two on
    this repository's 2-core test machine under load (pyg-lib's sampler is single-threaded
    too). The count is process-wide: torch ops of other Python threads run on one thread
    meanwhile."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def sample_neighbors(graph: GraphCSR, seeds: Tensor, num_neighbors: Sequence[int],
                     replace: bool = False,
                     generator: Optional[torch.Generator] = None) -> SamplerOutput:
    """Sample a multi-hop in-neighbourhood around ``seeds`` (no Python loop over nodes).

    Hop ``l`` (``l = 1 .. L``) expands each node first reached at hop ``l - 1`` (the seeds at
    hop 1) by ``num_neighbors[l - 1]`` of its in-edges ``j -> i``, drawn uniformly without
    replacement (``min(k, deg)`` distinct in-edges) or with replacement (``k`` draws, none for a
    node without in-edges); ``-1`` takes them all. A node is expanded once, at the hop after it
    is first reached, so with ``-1`` at every hop the result is the exact ``L``-hop
    in-neighbourhood, every in-edge of every node within ``L - 1`` hops included.

    Args:
        graph: the graph (its ``rowptr``/``col``/``perm``: in-edges grouped by target).
        seeds: ``[B]`` node ids; duplicates are kept (each copy is a seed row of its own, as
            PyG does), a seed without in-edges is kept alone.
        num_neighbors: one fanout per hop, each an int ``>= 0`` or ``-1``.
        replace (default False): sample with replacement.
        generator (optional): the random source (on the graph's device); default torch's.

    Returns:
        PyG's ``SamplerOutput``: ``node [N']`` global ids, seeds first; ``row``/``col [E']``
        local source/target of each sampled edge (PyG's direction: ``row -> col``); ``edge
        [E']`` the edge ids in the caller's edge order of ``edge_index``;
        ``num_sampled_nodes`` (``L + 1`` ints: seeds, then new nodes per hop) and
        ``num_sampled_edges`` (``L`` ints).
    """
    fanouts = check_num_neighbors(num_neighbors)
    if graph.rowptr.device.type == "cpu":
        with _one_thread():
            return _sample(graph, seeds, fanouts, replace, generator)
    return _sample(graph, seeds, fanouts, replace, generator)


def _native_lib():
    """The native library where it is loaded (None: sample with torch ops)."""
    from .. import native
    return native.library()


def _sample(graph, seeds: Tensor, fanouts: List[int], replace: bool,
            generator: Optional[torch.Generator]) -> SamplerOutput:
    dev = graph.rowptr.device
    seeds = check_seeds(seeds, graph.num_dst).to(dev)
    ids = _LocalIds(graph.num_dst, dev)
    ids.seed(seeds)
    lib = _native_lib() if dev.type == "cpu" else None
    hop = _hop_torch if lib is None else functools.partial(_hop_native, lib)
    nodes, rows, cols, edges = [seeds], [], [], []
    counts_n, counts_e = [seeds.numel()], []
    frontier, begin = seeds, 0
    for k in fanouts:
        src_local, tgt, edge, new = hop(graph, ids, frontier, begin, k, replace, generator)
        rows.append(src_local)
        cols.append(tgt)
        edges.append(edge)
        counts_e.append(edge.numel())
        counts_n.append(new.numel())
        nodes.append(new)
        begin, frontier = ids.count - new.numel(), new
    empty = seeds.new_empty(0)
    return SamplerOutput(node=torch.cat(nodes),
                         row=torch.cat(rows) if rows else empty,
                         col=torch.cat(cols) if cols else empty,
                         edge=torch.cat(edges) if edges else empty,
                         num_sampled_nodes=counts_n, num_sampled_edges=counts_e)


def _hop_torch(graph, ids: _LocalIds, frontier: Tensor, begin: int, k: int, replace: bool,
               generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """One hop in torch ops: ``k`` in-edges of each frontier node (:func:`_pick`), their
    sources relabelled (``ids``). Returns ``(src_local [M], tgt [M], edge [M], new [M'])``,
    ``tgt`` = ``begin`` + the target's frontier position."""
    start = graph.rowptr[frontier]                                           # [n]
    deg = graph.rowptr[frontier + 1] - start                                 # [n]
    seg, pos = _pick(start, deg, k, replace, generator)                     # [M], [M]
    src_local, new = ids.relabel(graph.col[pos])                            # [M], [M']
    return src_local, begin + seg, graph.perm[pos], new


def _hop_size(rowptr: Tensor, frontier: Tensor, E: int, k: int, replace: bool) -> int:
    """The number of in-edges one hop picks for ``frontier`` (see :func:`_pick`), the
    frontier's rows checked first (an edited ``rowptr`` is reported as the kernel reports it,
    before it can size an allocation)."""
    a, b = rowptr[frontier], rowptr[frontier + 1]                            # [n], [n]
    if frontier.numel() and bool(((a < 0) | (a > b) | (b > E)).any()):
        from ..native import abi
        abi.check_status("gatlib_sample_hop", abi.CODES["rowptr"])
    deg = b - a                                                              # [n]
    if k < 0:
        return int(deg.sum())
    if replace:
        return k * int((deg > 0).sum())
    return int(deg.clamp(max=k).sum())


def _hop_native(lib, graph, ids: _LocalIds, frontier: Tensor, begin: int, k: int,
                replace: bool, generator: Optional[torch.Generator]
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`_hop_torch` in one pass of the native ``gatlib_sample_hop``
    (``gatlib/native/sample.h``): the same semantics (``min(k, deg)`` distinct in-edges, every
    subset equally likely, or ``k`` draws with replacement; sources relabelled in order of
    first appearance), its own random stream seeded by one draw of ``generator``, so the
    batches differ from the torch path's but are as reproducible."""
    from ..native import abi
    rowptr, col, perm = graph.rowptr, graph.col, graph.perm
    E = col.numel()
    M = _hop_size(rowptr, frontier, E, k, replace)
    out = torch.empty(4, M, dtype=torch.long)                                # [4, M]
    seed = int(torch.randint(0, 2 ** 62, (), generator=generator))
    fresh = abi.call(lib, "gatlib_sample_hop", rowptr=rowptr, col=col, perm=perm,
                     N=rowptr.numel() - 1, E=E, frontier=frontier.contiguous(),
                     n=frontier.numel(), k=k, replace=int(replace), seed=seed, begin=begin,
                     local=ids.local, count=ids.count, M=M, src_local=out[0], tgt=out[1],
                     edge=out[2], new_nodes=out[3])
    if fresh < 0:
        abi.check_status("gatlib_sample_hop", fresh)
    ids.count += fresh
    return out[0], out[1], out[2], out[3, :fresh]


# ---------------------------------------------------------------------------- PyG sampler

class NeighborSampler(BaseSampler):
    """A ``torch_geometric.sampler.BaseSampler`` that samples in-neighbourhoods over gatlib's CSR
    structure (one native pass a hop, or torch ops; no ``pyg-lib`` or ``torch-sparse`` needed).

    Use it through PyG's ``NodeLoader`` (or :func:`gatlib.loader.neighbor_loader`)::

        loader = NodeLoader(data, NeighborSampler(data, [10, 5]), batch_size=512)

    Each batch is a PyG ``Data``: the seeds are its first ``batch.batch_size`` nodes, ``n_id``
    and ``e_id`` map nodes and edges back to ``data`` (``e_id`` in ``data.edge_index``'s order),
    node and edge attributes are sliced by them, and ``num_sampled_nodes`` /
    ``num_sampled_edges`` count them hop by hop (see :func:`sample_neighbors`).

    Args:
        data: a PyG ``Data`` (its ``edge_index`` and ``num_nodes``), a ``GraphCSR``, or an
            ``edge_index [2, E]``.
        num_neighbors (list of int): fanout per hop, ``-1`` for all in-neighbours.
        replace (bool, default False): sample with replacement.
        seed (int, optional): seed of the sampler's own generator (reproducible batches); in
            ``DataLoader`` worker processes the generator is re-seeded from ``seed`` and the
            worker's seed, so workers draw different streams. Default: torch's global generator
            (which ``DataLoader`` seeds per worker itself).
        num_nodes (int, optional): the node count when ``data`` is an ``edge_index``.

    Only the three index tensors the sampler reads (``rowptr``, ``col``, ``perm``) are kept, as
    every ``DataLoader`` worker holds a copy of the sampler.
    """

    def __init__(self, data, num_neighbors: Sequence[int], replace: bool = False,
                 seed: Optional[int] = None, num_nodes: Optional[int] = None):
        self.num_neighbors = check_num_neighbors(num_neighbors)
        if not isinstance(replace, bool):
            raise TypeError(f"replace must be a bool, got {type(replace).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self.replace, self.seed = replace, None if seed is None else int(seed)
        graph = _graph_of(data, num_nodes)
        self.rowptr, self.col, self.perm = graph.rowptr, graph.col, graph.perm
        self.num_nodes = graph.num_dst
        self._generator: Optional[torch.Generator] = None
        self._generator_key = None

    def reseed(self, seed: Optional[int]) -> None:
        """Restart the sampler's generator from ``seed`` (None: torch's global generator), e.g.
        at the start of each epoch with a seed made from the run's seed, the rank and the epoch,
        so that an epoch's batches do not depend on the epochs before it (exact resumption)."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self.seed = None if seed is None else int(seed)
        self._generator, self._generator_key = None, None

    @property
    def graph(self) -> "_CSRView":
        """A light ``GraphCSR``-like view of the kept fields (for :func:`sample_neighbors`)."""
        return _CSRView(self.rowptr, self.col, self.perm)

    def _generator_now(self) -> Optional[torch.Generator]:
        if self.seed is None:
            return None
        info = torch.utils.data.get_worker_info()
        key = None if info is None else (info.id, info.seed)
        if self._generator is None or key != self._generator_key:
            seed = self.seed if info is None else (self.seed * 1_000_003 + info.seed) % (2 ** 63)
            self._generator = torch.Generator(device=self.rowptr.device).manual_seed(seed)
            self._generator_key = key
        return self._generator

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs) -> SamplerOutput:
        if index.input_type is not None:
            raise TypeError("gatlib's NeighborSampler samples homogeneous graphs (PyG Data); for "
                            "HeteroData use PyG's NeighborLoader with pyg-lib")
        if index.time is not None:
            raise ValueError("gatlib's NeighborSampler does not do temporal sampling (seed "
                             "times were given); use PyG's NeighborLoader with pyg-lib")
        out = sample_neighbors(self.graph, index.node, self.num_neighbors, self.replace,
                               self._generator_now())
        out.metadata = (index.input_id, index.time)
        return out

    def sample_from_edges(self, index, neg_sampling=None):
        raise NotImplementedError("gatlib's NeighborSampler samples around seed nodes only "
                                  "(NodeLoader); for link prediction use PyG's "
                                  "LinkNeighborLoader with pyg-lib")

    @property
    def edge_permutation(self):
        # Edge ids are returned in the caller's order already (perm applied while sampling).
        return None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_nodes={self.num_nodes}, "
                f"num_edges={self.col.numel()}, num_neighbors={self.num_neighbors}, "
                f"replace={self.replace})")


class _CSRView:
    """The three fields of a ``GraphCSR`` that sampling reads (no derived structures)."""

    def __init__(self, rowptr: Tensor, col: Tensor, perm: Tensor):
        self.rowptr, self.col, self.perm = rowptr, col, perm

    @property
    def num_dst(self) -> int:
        return self.rowptr.numel() - 1


def _graph_of(data, num_nodes: Optional[int] = None) -> GraphCSR:
    """The ``GraphCSR`` of a PyG ``Data``, a ``GraphCSR`` or an ``edge_index``."""
    from torch_geometric.data import Data
    if isinstance(data, GraphCSR):
        return data
    if isinstance(data, Tensor):
        return to_csr(data, num_nodes)
    if isinstance(data, Data):
        if data.edge_index is None:
            raise ValueError("data has no edge_index: gatlib's NeighborSampler reads "
                             "data.edge_index [2, E] (row 0 source j, row 1 target i)")
        return to_csr(data.edge_index, data.num_nodes)
    raise TypeError(f"data must be a PyG Data, a GraphCSR or an edge_index tensor, got "
                    f"{type(data).__name__} (HeteroData and remote stores need PyG's "
                    f"NeighborLoader with pyg-lib)")
