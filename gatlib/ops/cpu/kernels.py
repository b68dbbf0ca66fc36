"""CPU building blocks over the CSR view: SpMM and SDDMM on torch's sparse CSR kernels (MKL on
x86), segment reductions over sorted edges, the online-softmax statistics, and the head-folded
CSR (:func:`fold_heads`) that runs every head of a small graph in one call.

Nothing here builds a per-edge ``[E, H, C]`` or ``[E, H, D]`` tensor: the only per-edge tensors
are ``[E, H]`` scores and weights (and, for the head-folded CSR, ``[E * H]`` indices). All
functions take and return tensors in the target-sorted edge order of a ``GraphCSR`` unless they
say otherwise.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import List, Optional

import torch
from torch import Tensor

from ..graph_args import csr_tensors, extras

# torch warns once per process that sparse CSR support is "beta"; the kernels used here
# (CSR @ dense and sampled_addmm) are stable and tested against the reference.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

__all__ = ["spmm", "sddmm", "segment_sum", "segment_max", "expand", "softmax_stats",
           "softmax_weights_", "source_sum", "fold_heads", "FOLD_MAX_ENTRIES"]

# Layout: per-edge tensors are head-major ``[H, E]`` in the target-sorted order, so that each
# head's values are one contiguous row (what the CSR kernels take) and segment reductions run
# along the last axis. Where a per-edge temporary is no longer needed, ops work in place:
# on the CPU a fresh 64 MB tensor costs more in page faults than the arithmetic on it.
#
# With H heads each step costs H calls of torch's CSR kernels, and on a batch of small graphs
# the fixed cost of a call (a Python loop, a CSR handle, .contiguous() copies, torch.stack)
# outweighs its arithmetic. ``fold_heads`` removes H from the call count: node i's head h
# becomes node ``i * H + h`` of a graph made of H disjoint copies of the original, so that a
# node tensor ``[N, H, C]`` is, unchanged in memory, the one-head tensor ``[N * H, 1, C]`` of
# the folded graph, and each step is one call for all heads.

# torch's own index_select: importing PyG replaces ``torch.index_select`` with a Python wrapper
# (for its HashTensor), a few microseconds a call that add up over a layer's dozens of calls.
index_select = torch._C._VariableFunctions.index_select


def no_autocast(device_type: str):
    """A context without autocast (the ops compute in fp32 by design: an autocast region around
    the layer must not cast their products down); free when autocast is off."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


# MKL's CSR product honours BLAS's beta = 0 (the output is written, never read), which saves
# zero-filling it; torch's own fallback scales the output by beta, so it needs zeros.
_OUT_UNREAD = torch.backends.mkl.is_available()


def _csr(rowptr: Tensor, col: Tensor, values: Tensor, size) -> Tensor:
    # Invariants hold by construction (rowptr from bincount, col validated), so skip the check.
    return torch.sparse_csr_tensor(rowptr, col, values, size=size, check_invariants=False)


def _csr_mm(rowptr: Tensor, col: Tensor, values: Tensor, x: Tensor, num_rows: int) -> Tensor:
    """One CSR product: ``values [E]`` on the pattern, ``x [S, C]`` -> ``[num_rows, C]``."""
    a = _csr(rowptr, col, values, (num_rows, x.size(0)))
    out = (x.new_empty if _OUT_UNREAD else x.new_zeros)(num_rows, x.size(1))
    return torch.addmm(out, a, x, beta=0.0, out=out)


def spmm(rowptr: Tensor, col: Tensor, values: Tensor, x: Tensor, num_rows: int) -> Tensor:
    """``out[i, h] = sum_{e in row i} values[h, e] * x[col[e], h]``.

    Shapes: ``values [H, E]``, ``x [S, H, C]`` -> ``[num_rows, H, C]``.
    """
    S, H, C = x.shape
    if values.numel() == 0 or num_rows == 0 or C == 0:
        return x.new_zeros(num_rows, H, C)
    # The MKL kernels have no fp16/bf16 path anyway.
    with no_autocast(x.device.type):
        if H == 1:                         # one call, no copies (the head-folded graph)
            return _csr_mm(rowptr, col, values[0], x.reshape(S, C), num_rows).view(-1, 1, C)
        xs = x.transpose(0, 1).contiguous()                                # [H, S, C]
        vals = values.contiguous()                                         # [H, E]
        outs = [_csr_mm(rowptr, col, vals[h], xs[h], num_rows) for h in range(H)]
    return torch.stack(outs, dim=1)                                        # [T, H, C]


def sddmm(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``out[h, e] = <a[row(e), h], b[col[e], h]>`` for every edge of the CSR pattern.

    Shapes: ``a [T, H, D]``, ``b [S, H, D]`` -> ``[H, E]``.
    """
    T, H, D = a.shape
    S = b.size(0)
    E = col.numel()
    if E == 0 or D == 0:
        return a.new_zeros(H, E)
    if E > T * S:
        # sampled_addmm refuses a pattern with more entries than the dense matrix (possible
        # only for small multigraphs with duplicate edges): gather in bounded chunks instead.
        return _sddmm_gather(rowptr, col, a, b)
    zeros = a.new_zeros(E)
    with no_autocast(a.device.type):
        if H == 1:
            # b's transpose as a view: the kernel reads each b row contiguously.
            pattern = _csr(rowptr, col, zeros, (T, S))
            return torch.sparse.sampled_addmm(pattern, a.reshape(T, D), b.reshape(S, D).t(),
                                              beta=0.0).values().view(1, E)   # [1, E]
        at = a.transpose(0, 1).contiguous()                                # [H, T, D]
        bt = b.permute(1, 2, 0).contiguous()                               # [H, D, S]
        outs = [torch.sparse.sampled_addmm(_csr(rowptr, col, zeros, (T, S)), at[h], bt[h],
                                           beta=0.0).values() for h in range(H)]
    return torch.stack(outs, dim=0)                                        # [H, E]


def _sddmm_gather(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor,
                  chunk: int = 1 << 14) -> Tensor:
    row = torch.repeat_interleave(torch.arange(a.size(0), device=a.device), rowptr.diff())
    out = a.new_empty(a.size(1), col.numel())                              # [H, E]
    for s in range(0, col.numel(), chunk):
        r, c = row[s:s + chunk], col[s:s + chunk]
        out[:, s:s + chunk] = (a[r] * b[c]).sum(-1).t()                    # [H, chunk]
    return out


def _segment(x: Tensor, reduce: str, rowptr: Tensor) -> Tensor:
    if x.size(0) == 1:                     # one flat reduction (the head-folded graph)
        return torch.segment_reduce(x.view(-1), reduce, offsets=rowptr).view(1, -1)
    return torch.segment_reduce(x, reduce, offsets=rowptr.expand(x.size(0), -1), axis=1)


def segment_sum(x: Tensor, rowptr: Tensor, row: Optional[Tensor] = None) -> Tensor:
    """Sum of ``x [H, E]`` over each segment of sorted edges -> ``[H, T]`` (0 if empty).
    ``row [E]``, each edge's segment, makes a one-head sum an ``index_add_`` (twice as fast
    as ``segment_reduce`` on 1-D data, same order of summation)."""
    if x.size(1) == 0:
        return x.new_zeros(x.size(0), rowptr.numel() - 1)
    if x.size(0) == 1 and row is not None:
        return x.new_zeros(rowptr.numel() - 1).index_add_(0, row, x.view(-1)).view(1, -1)
    return _segment(x, "sum", rowptr)


def segment_max(x: Tensor, rowptr: Tensor) -> Tensor:
    """Max of ``x [H, E]`` over each segment -> ``[H, T]`` (-inf if empty)."""
    if x.size(1) == 0:
        return x.new_full((x.size(0), rowptr.numel() - 1), float("-inf"))
    return _segment(x, "max", rowptr)


def source_sum(x: Tensor, col: Tensor, num_src: int) -> Tensor:
    """Sum of ``x [H, E]`` over the edges of each source ``col[e]`` -> ``[H, num_src]``."""
    if x.size(0) == 1:                     # flat: index_add_ along dim 1 of [1, S] is slow
        return x.new_zeros(num_src).index_add_(0, col, x.view(-1)).view(1, -1)
    return x.new_zeros(x.size(0), num_src).index_add_(1, col, x)


def expand(x: Tensor, row: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """Per-node ``x [H, T]`` repeated onto the edges: ``[H, E]`` with ``out[:, e] = x[:, row[e]]``.

    Pass a scratch ``out [H, E]`` to reuse its memory (see the layout note above).
    """
    return index_select(x.contiguous(), 1, row, out=out)


def softmax_stats(score: Tensor, rowptr: Tensor, row: Tensor, buf: Tensor) -> Tensor:
    """Per-target log-sum-exp of ``score [H, E]`` -> ``lse [H, T]``; ``-inf`` for a target with
    no in-edges or only ``-inf`` scores. ``buf [H, E]`` is scratch."""
    # A target without a finite max (no in-edges, or all -inf) is shifted by 0.
    m = segment_max(score, rowptr).nan_to_num_(0.0, 0.0, 0.0)              # [H, T]
    p = torch.sub(score, expand(m, row, out=buf), out=buf).exp_()         # [H, E]
    return m.add_(segment_sum(p, rowptr, row).log_())


def softmax_weights_(score: Tensor, lse: Tensor, row: Tensor, buf: Tensor) -> Tensor:
    """In place: ``score <- exp(score - lse[target])`` -> ``alpha [H, E]``; exactly 0 where the
    target's mass is 0. This is how the backward pass recomputes the weights. ``buf`` is
    scratch."""
    inf = float("inf")
    safe = torch.nan_to_num(lse, inf, inf, inf)                            # -inf mass -> weight 0
    return score.sub_(expand(safe, row, out=buf)).exp_()


# ------------------------------------------------------------------ all heads in one CSR

# The size rule: heads are folded when E * H is at most this many entries. Folding is faster at
# every size measured (forward+backward, one thread, 8 heads x 16, random graphs; GAT / dot
# product, folded against per head): 32,000 entries 1.4 / 1.8 ms against 2.0 / 3.6 ms; 2M
# entries 89 / 139 ms against 120 / 246 ms; 8M entries 458 / 704 ms against 610 / 1,342 ms.
# What bounds it is memory: the folded graph's indices (24 bytes an entry) stay cached with the
# graph, and on a big graph (the 100,000-node, 2,000,000-edge benchmark with 8 heads: 16.8M
# entries, 400 MB) they would double the peak memory. 2**21 entries caps them at 48 MiB, well
# above a training batch of small graphs (256 molecules x 4 heads: about 75,000 entries).
FOLD_MAX_ENTRIES = 1 << 21


# Building the folded graph costs about 50 ns an entry (63 ms for the 1.2M entries of 256
# CLUSTER graphs with 4 heads), and a graph passed as a raw edge_index is new on every call.
# A graph's first use folds only up to this size, where folding pays for itself within the
# call; from its second use on (an explicit GraphCSR reused by the layers of a model or across
# epochs) up to FOLD_MAX_ENTRIES, the fold then kept on it. Measured per forward+backward of a
# layer called with a raw edge_index, 4 heads x 16, one thread (folded / not folded):
# GraphTransformerConv on 256 PROTEINS-sized graphs (186k entries) 27.5 / 42.1 ms, on 256
# NCI1-sized (97k) 18.4 / 27.5 ms; GATConv on 128 CLUSTER graphs (600k) 56.8 / 34.5 ms.
FOLD_FIRST_USE_MAX_ENTRIES = 1 << 18


def _folds(H: int, E: int, S: int, T: int, limit: Optional[int] = None) -> bool:
    """The size rule: fold when ``E * H`` is at most ``limit`` (default
    :data:`FOLD_MAX_ENTRIES`) and the folded node ids ``N * H`` fit the int32 indices MKL
    takes."""
    limit = FOLD_MAX_ENTRIES if limit is None else limit
    return 1 <= H and H * E <= limit and (max(S, T) + 1) * H < 1 << 31


def fold_heads(graph: List[Tensor], heads: int) -> Optional[List[Tensor]]:
    """The graph with each node ``i`` split into ``heads`` copies ``i * H + h``, as the tensor
    list of a ``GraphCSR`` (``[rowptr, col, row, perm, rowptr_t, col_t, perm_t]``), or None
    when the size rule (:data:`FOLD_MAX_ENTRIES`) keeps the per-head path.

    Copy ``h`` of the graph links node ``j * H + h`` to node ``i * H + h`` for every edge
    ``j -> i``; within a target the entries are ordered by head, then by edge. Hence a node
    tensor ``[N, H, C]`` is the one-head tensor ``[N * H, 1, C]`` of the folded graph, a
    caller-order edge tensor ``[E, H]`` is ``[E * H, 1]``, and ``perm`` indexes that flat order.
    Indices are int32 (MKL's native width) except ``perm``. The folded graph is built once
    per ``GraphCSR`` and head count and kept on it (the backend's ``graph_args`` passes it after
    the seven tensors, see :func:`folded_graph_args`); given only the seven, it is built here.
    """
    rowptr, col, row, perm, rowptr_t, col_t, perm_t = csr_tensors(graph)
    H, E = int(heads), col.numel()
    if not _folds(H, E, rowptr_t.numel() - 1, rowptr.numel() - 1):
        return None
    if extras(graph):                      # built once and passed after the seven tensors
        return extras(graph) if len(extras(graph)) > 1 else None    # or the marker: not folded
    dev, i32 = col.device, torch.int32
    h = torch.arange(H, device=dev).view(H, 1)                             # [H, 1]

    def place(ptr: Tensor, seg: Tensor) -> Tensor:
        # Entry (h, p) of sorted edge p in segment seg[p]: H * ptr[seg] + h * deg + (p - ptr[seg]).
        start = ptr[:-1].index_select(0, seg)                              # [E]
        deg = ptr.diff().index_select(0, seg)                              # [E]
        return torch.arange(E, device=dev) + (H - 1) * start + h * deg     # [H, E]

    def flat(ptr: Tensor) -> Tensor:
        deg = ptr[1:] - ptr[:-1]                                           # [R]
        out = torch.empty(deg.numel() * H + 1, dtype=i32, device=dev)
        out[:-1] = (H * ptr[:-1].view(-1, 1) + h.view(1, H) * deg.view(-1, 1)).view(-1)
        out[-1] = H * E
        return out                                                         # [R * H + 1]

    def inverse(pos: Tensor) -> Tensor:
        # The (h, p) entry each folded slot holds: one scatter, then every array is a gather
        # (index_select is 2-4x faster than index_put_ on the CPU).
        slots = torch.arange(H * E, device=dev)                            # [H * E]
        return torch.empty_like(slots).scatter_(0, pos.view(-1), slots)    # [H * E]

    def gather(inv: Tensor, values: Tensor, dtype) -> Tensor:
        return values.expand(H, E).reshape(-1).index_select(0, inv).to(dtype)  # [H * E]

    pos = place(rowptr, row)                                               # [H, E]
    src_t = col.index_select(0, perm_t)                                    # [E] source, by source
    pos_t = place(rowptr_t, src_t)                                         # [H, E]
    inv, inv_t = inverse(pos), inverse(pos_t)                              # [H * E] each
    h32 = h.to(i32)                                                        # node ids fit int32
    folded = [flat(rowptr), gather(inv, col.to(i32) * H + h32, i32),
              gather(inv, row.to(i32) * H + h32, i32), gather(inv, perm * H + h, torch.long),
              flat(rowptr_t), gather(inv_t, col_t.to(i32) * H + h32, i32),
              gather(inv_t, pos.to(i32).index_select(1, perm_t), i32)]
    return folded


def folded_graph_args(csr, tensors: List[Tensor], heads: int) -> List[Tensor]:
    """The CPU ops' graph argument for ``heads`` heads: the seven tensors of ``csr``, followed
    by its head-folded graph when the size rule folds (built once per head count and kept on
    the ``GraphCSR``, so an epoch's calls share it), or by one empty marker tensor that tells
    the ops not to fold (a large graph on its first use, see
    :data:`FOLD_FIRST_USE_MAX_ENTRIES`)."""
    H, E = int(heads), tensors[1].numel()
    S, T = tensors[4].numel() - 1, tensors[0].numel() - 1
    if not _folds(H, E, S, T):
        return tensors
    key = ("cpu_fold_heads", H)
    uses = csr.derived(("cpu_fold_uses", H), lambda: [0])
    uses[0] += 1
    first = min(FOLD_FIRST_USE_MAX_ENTRIES, FOLD_MAX_ENTRIES)
    if uses[0] == 1 and not _folds(H, E, S, T, first):
        return tensors + [tensors[0].new_empty(0)]                        # marker: not now
    return csr.derived(key, lambda: tensors + fold_heads(tensors, H))