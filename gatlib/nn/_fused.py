"""Pieces of the attention layers computed as a few large calls instead of many small ones
(what matters on batches of small graphs, where a layer's fixed cost per call dominates).

- :func:`head_dots`: the per-node halves of the GAT score, ``<h_i^h, a^h>`` for two attention
  vectors at once, as one matrix product with a block-diagonal ``[H * C, 2 H]`` matrix instead
  of two broadcast products and sums over ``[N, H, C]`` (forward and backward).
- :func:`gatv2_score`: GATv2's score ``a . LeakyReLU(W_s x_j + W_d x_i (+ W_e e_ij))`` with a
  hand-written backward, in the target-sorted edge order of the CSR view, on graphs small
  enough (:data:`GATV2_FUSED_MAX`) for its transient ``[E, H, C]`` tensor: on the CPU by the
  CPU backend's native ``gatv2_score`` where it runs (:mod:`gatlib.ops.cpu.gatv2`, nothing
  ``[E, H, C]`` kept, found through :func:`gatlib.ops.dispatch.offered`), else with torch's
  kernels; larger graphs keep the layer's chunked, checkpointed path.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..graph.csr import GraphCSR
from .._checks import compiling
from ..ops.cpu.kernels import no_autocast
from ..ops.dispatch import offered

__all__ = ["head_dots", "gatv2_score", "GATV2_FUSED_MAX"]

# GATv2's score builds one [E, H, C] tensor (and keeps it for the backward pass) when
# E * H * C is at most this many elements: 2**22 floats, 16 MiB in fp32. Above it the layer's
# own path runs in chunks of edges with activation checkpointing (memory O(chunk x H x C)).
# Measured forward+backward of the score alone, one thread, 4 heads x 16 (fused / chunked):
# 1.2M elements 3.8 / 7.8 ms, 4.1M 11 / 35 ms, 8M 63 / 67 ms, 16M 141 / 139 ms: past a few
# million elements both are bound by memory traffic, and the chunked path's memory stays small.
GATV2_FUSED_MAX = 1 << 22
_OUT_UNREAD = torch.backends.mkl.is_available()


def _block_diag(att: Tensor) -> Tensor:
    """``[1, H, C]`` attention vectors -> the ``[H * C, H]`` matrix with head ``h``'s vector in
    rows ``h * C ... h * C + C - 1`` of column ``h`` and zeros elsewhere."""
    H, C = att.shape[-2:]
    eye = torch.eye(H, dtype=att.dtype, device=att.device)
    return (att.reshape(H, C, 1) * eye.view(H, 1, H)).view(H * C, H)       # [H * C, H]


def head_dots(h_a: Tensor, att_a: Tensor, h_b: Tensor, att_b: Tensor) -> Tuple[Tensor, Tensor]:
    """``(sum_c h_a[n, h, c] att_a[0, h, c], sum_c h_b[n, h, c] att_b[0, h, c])``: one matrix
    product when ``h_a is h_b`` (both halves of the GAT score from the same features), else two.

    Shapes: ``h_a [N, H, C]``, ``h_b [M, H, C]``, ``att_a, att_b [1, H, C]`` -> ``[N, H]``,
    ``[M, H]`` (in ``h_a``'s dtype).
    """
    N, H, C = h_a.shape
    if h_a is h_b:
        w = torch.cat([_block_diag(att_a), _block_diag(att_b)], dim=1)     # [H * C, 2H]
        ab = h_a.reshape(N, H * C) @ w.to(h_a.dtype)                       # [N, 2H]
        return ab[:, :H], ab[:, H:]
    a = h_a.reshape(N, H * C) @ _block_diag(att_a).to(h_a.dtype)           # [N, H]
    b = h_b.reshape(h_b.size(0), H * C) @ _block_diag(att_b).to(h_a.dtype)  # [M, H]
    return a, b


def _incidence(graph: GraphCSR):
    """The edge-by-node incidence matrices of the target-sorted edges as int32 CSR patterns:
    ``(edge -> source, edge -> target, source -> edges, target -> edges)``, each a
    ``(rowptr, col)`` pair whose values are all 1. A product with them gathers node rows onto
    the edges, or sums edge rows per node, in one call of torch's CSR kernel (2-3x faster than
    ``index_select`` / ``index_add_`` of ``[E, H * C]`` rows). Built once and kept on ``graph``."""
    return graph.derived("incidence", lambda: _build_incidence(graph))


def _build_incidence(graph: GraphCSR):
    i32, E = torch.int32, graph.num_edges
    one_each = torch.arange(E + 1, dtype=i32, device=graph.device)         # [E + 1]
    out = ((one_each, graph.col.to(i32)), (one_each, graph.row.to(i32)),
           (graph.rowptr_t.to(i32), graph.perm_t.to(i32)),
           (graph.rowptr.to(i32), one_each[:-1]))
    return out


def _times(pattern, x: Tensor, num_rows: int, out: Optional[Tensor] = None) -> Tensor:
    """``P @ x`` for the 0/1 CSR ``pattern`` (``[num_rows, x.size(0)]``); added into ``out``
    when given."""
    rowptr, col = pattern
    a = torch.sparse_csr_tensor(rowptr, col, x.new_ones(col.numel()),
                                size=(num_rows, x.size(0)), check_invariants=False)
    if out is None:
        # MKL honours beta = 0 (the output is written, never read); torch's fallback scales it.
        out = (x.new_empty if _OUT_UNREAD else x.new_zeros)(num_rows, x.size(1))
        return torch.addmm(out, a, x, beta=0.0, out=out)
    return torch.addmm(out, a, x, out=out)


class _GATv2Score(torch.autograd.Function):
    """``score[p, h] = sum_c att[h, c] * LeakyReLU(h_src[col[p], h, c] + h_dst[row[p], h, c]
    (+ edge[p, h, c]))`` over the target-sorted edges ``p``; saves the activations
    ``[E, H * C]`` for the backward pass."""

    @staticmethod
    def forward(ctx, h_src: Tensor, h_dst: Tensor, att: Tensor, edge: Optional[Tensor],
                inc, slope: float) -> Tensor:
        S, H, C = h_src.shape
        T, E = h_dst.size(0), inc[0][1].numel()
        with no_autocast(h_src.device.type):
            z = _times(inc[0], h_src.reshape(S, H * C), E)                 # [E, H * C]
            z = _times(inc[1], h_dst.reshape(T, H * C), E, out=z)          # + h_dst[row]
        if edge is not None:
            z.add_(edge)
        # With slope > 0 the activation's sign is the input's: keep only the activation.
        keep_input = slope <= 0
        z_in = z.clone() if keep_input else None
        act = F.leaky_relu_(z, slope)                                      # [E, H * C]
        score = act @ _block_diag(att)                                     # [E, H]
        ctx.save_for_backward(act, z_in if keep_input else act, att)
        ctx.meta = (S, T, slope, not keep_input, edge is not None, inc)
        return score

    @staticmethod
    def backward(ctx, g: Tensor):
        act, z, att = ctx.saved_tensors
        S, T, slope, is_result, has_edge, inc = ctx.meta
        E, HC = act.shape
        H = att.size(-2)
        C = HC // H
        g = g.contiguous()
        d_act = g @ _block_diag(att).t()                                   # [E, H * C]
        dz = torch.ops.aten.leaky_relu_backward(d_act, z, slope, is_result)  # [E, H * C]
        # d att[h, c] = sum_p act[p, h, c] g[p, h]: the diagonal blocks of act^T g.
        g_att = (act.t() @ g).view(H, C, H).diagonal(dim1=0, dim2=2).t()    # [H, C]
        with no_autocast(act.device.type):
            g_src = _times(inc[2], dz, S)                                  # [S, H * C]
            g_dst = _times(inc[3], dz, T)                                  # [T, H * C]
        return (g_src.view(S, H, C), g_dst.view(T, H, C), g_att.reshape(att.shape),
                dz if has_edge else None, None, None)


def gatv2_score(layer, h_src: Tensor, h_dst: Tensor, edge_index: Tensor, graph: GraphCSR,
                edge_attr: Optional[Tensor]) -> Tensor:
    """GATv2's score ``[E, H]`` in the caller's edge order for ``layer`` (a ``GATv2Conv``):
    the fused score on graphs with ``E * H * C <= GATV2_FUSED_MAX``, else ``layer._scores``.

    Shapes: ``h_src [S, H, C]``, ``h_dst [T, H, C]``, ``edge_index [2, E]`` (the graph of
    ``graph``), ``edge_attr [E, edge_dim]`` -> ``[E, H]``.
    """
    S, H, C = h_src.shape
    # Under torch.compile E is data-dependent (no size rule to branch on): the layer's path.
    if compiling():
        return layer._scores(h_src, h_dst, edge_index[0], edge_index[1], edge_attr)
    E = graph.num_edges
    with_edges = edge_attr is not None and layer.lin_edge is not None
    big = E * H * C > GATV2_FUSED_MAX
    # A backend's own GATv2 score (the CPU's native kernels, on CPU inputs: it checks the
    # graph's device too) keeps nothing [E, H, C] (but the projected edge features): any size.
    native = offered("gatv2_score", h_src.device, h_src.dtype)
    if (h_src.dtype != h_dst.dtype or h_src.dtype not in (torch.float32, torch.float64)
            or (big and (native is None or with_edges))):
        return layer._scores(h_src, h_dst, edge_index[0], edge_index[1], edge_attr)
    edge = None
    if with_edges:
        ea = edge_attr.index_select(0, graph.perm)                         # [E, edge_dim] sorted
        edge = ea.to(layer.lin_edge.weight.dtype) @ layer.lin_edge.weight.t()  # [E, H * C]
        edge = edge.to(h_src.dtype)
    att = layer.att.to(h_src.dtype)
    if native is not None:
        score = native(h_src, h_dst, att, edge, graph, float(layer.negative_slope))  # [E, H]
        if score is not None:
            return score
        if big:                            # the backend declined (no native library)
            return layer._scores(h_src, h_dst, edge_index[0], edge_index[1], edge_attr)
    score = _GATv2Score.apply(h_src, h_dst, att, edge, _incidence(graph),
                              float(layer.negative_slope))                 # [E, H] sorted
    # Back to the caller's edge order (the backward gathers the gradient by perm).
    return score.new_empty(E, H).index_copy(0, graph.perm, score)          # [E, H]
