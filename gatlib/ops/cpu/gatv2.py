"""GATv2's score by the native kernels (``gatlib/native/gatv2.h``), an op of the CPU backend's
table (``BACKEND.call("gatv2_score")``; layers reach it through
:func:`gatlib.ops.dispatch.offered`, never the C library):

    score[e, h] = sum_c att[h, c] * LeakyReLU(h_src[j, h, c] + h_dst[i, h, c] (+ edge[p, h, c]))

for the edge ``e`` (caller's order) at target-sorted position ``p``, from source ``j`` to
target ``i``, with a hand-written backward that recomputes the activations: nothing of size
``[E, H, C]`` is kept (but the projected edge features, when given).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..._checks import check_same_device
from ..graph_args import CSRTensors, graph_tensors
from . import fused
from .kernels import no_autocast

__all__ = ["gatv2_score"]


class _NativeGATv2Score(torch.autograd.Function):
    """The score ``[E, H]`` in the caller's edge order (see the module docstring)."""

    @staticmethod
    def forward(ctx, h_src: Tensor, h_dst: Tensor, att: Tensor, edge: Optional[Tensor],
                g: CSRTensors, slope: float) -> Tensor:
        S, H, C = h_src.shape
        T, E = h_dst.size(0), g.num_edges
        xs, xd, a = h_src.contiguous(), h_dst.contiguous(), att.contiguous()
        xe = None if edge is None else edge.contiguous()
        score = xs.new_empty(E, H)
        fused.call("gatv2_score_forward", xs.dtype, T=T, S=S, E=E, H=H, C=C, rowptr=g.rowptr,
                   col=g.col, perm=g.perm, xs=xs, xd=xd, xe=xe, att=a, slope=slope,
                   score=score)
        ctx.save_for_backward(xs, xd, a, xe, *g)
        ctx.meta = (slope, att.shape)
        return score                                                       # [E, H]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        xs, xd, a, xe, *graph = ctx.saved_tensors
        g = CSRTensors(*graph)
        slope, att_shape = ctx.meta
        S, H, C = xs.shape
        T, E = xd.size(0), g.num_edges
        grad = grad.contiguous()
        g_xs, g_xd = torch.empty_like(xs), torch.empty_like(xd)
        g_att = a.new_empty(H, C)
        g_xe = None if xe is None else torch.empty_like(xe)
        sizes = dict(T=T, S=S, E=E, H=H, C=C, xs=xs, xd=xd, xe=xe, att=a, slope=slope, g=grad)
        fused.call("gatv2_score_backward_targets", xs.dtype, rowptr=g.rowptr, col=g.col,
                   perm=g.perm, g_xd=g_xd, g_att=g_att, g_xe=g_xe, **sizes)
        fused.call("gatv2_score_backward_sources", xs.dtype, rowptr_t=g.rowptr_t,
                   col_t=g.col_t, perm_t=g.perm_t, perm=g.perm, g_xs=g_xs, **sizes)
        return g_xs, g_xd, g_att.view(att_shape), g_xe, None, None


def gatv2_score(h_src: Tensor, h_dst: Tensor, att: Tensor, edge: Optional[Tensor], graph,
                negative_slope: float) -> Optional[Tensor]:
    """GATv2's score ``[E, H]`` in the caller's edge order of ``graph`` (a ``GraphCSR``), or
    None where the native kernels do not take these inputs (no native library, a dtype other
    than one fp32/fp64 for all): the caller then computes it another way.

    Shapes: ``h_src [S, H, C]``, ``h_dst [T, H, C]``, ``att [1, H, C]`` (or ``[H, C]``),
    ``edge [E, H * C]`` (the projected edge features in the target-sorted order) -> ``[E, H]``.
    Every tensor and the graph must be on the CPU (ValueError naming the one that is not).
    """
    device = check_same_device(h_src=h_src, h_dst=h_dst, att=att, edge=edge, graph=graph.col)
    if device.type != "cpu":
        raise ValueError(f"the CPU backend's gatv2_score takes CPU tensors, got {device}")
    if (h_src.dtype not in fused.REAL_SUFFIX or h_dst.dtype != h_src.dtype
            or att.dtype != h_src.dtype or (edge is not None and edge.dtype != h_src.dtype)
            or not fused.fits(0)):
        return None
    with no_autocast("cpu"):
        return _NativeGATv2Score.apply(h_src, h_dst, att, edge,
                                       CSRTensors(*graph_tensors(graph)),
                                       float(negative_slope))              # [E, H]
