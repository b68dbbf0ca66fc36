"""The Triton backend's registered ops (``torch.library.custom_op``), forward and backward.

They take the same arguments and return the same outputs as the CPU backend's ops
(``gatlib/ops/cpu/ops.py``), so :mod:`gatlib.ops.attention` calls either: ``graph`` is the
tensor list of a ``GraphCSR`` (``[rowptr, col, row, perm, rowptr_t, col_t, perm_t]``; the
Triton ops also take it followed by the graph's work lists, ``kernels.graph_plans``, which
:mod:`gatlib.ops.attention` keeps on the caller's ``GraphCSR``),
``dropout_mask [E, H]`` is a bool keep mask in the caller's edge order (the kept weights are
scaled by ``1 / (1 - dropout)``), the outputs are ``(out [T, H, C], lse [H, T], alpha)`` with
``alpha [E, H]`` in the caller's order, or ``[0, H]`` when ``return_attention`` is False.

The ops run on any device Triton can launch on: CUDA, or CPU tensors under the interpreter
(``TRITON_INTERPRET=1``); :mod:`gatlib.ops.dispatch` decides when they are used.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .._autograd import register_attention_autograd, register_softmax_autograd
from . import kernels as K

__all__: List[str] = []


def _lse_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


# ----------------------------------------------------------------------------- GAT attention

@torch.library.custom_op("gatlib::triton_gat_attention", mutates_args=(), device_types=None)
def triton_gat_attention(a_src: Tensor, a_dst: Tensor, v: Tensor, graph: List[Tensor],
                         edge_score: Optional[Tensor], dropout_mask: Optional[Tensor],
                         negative_slope: float, dropout: float,
                         return_attention: bool) -> Tuple[Tensor, Tensor, Tensor]:
    # The halves of the score are [N, H] tensors, seen by the kernels as [N, H, 1].
    out, lse, alpha = K.attention_fwd(K.GAT, a_dst.unsqueeze(-1), a_src.unsqueeze(-1), v,
                                      graph, edge_score, dropout_mask, 1.0,
                                      float(negative_slope), float(dropout), return_attention)
    return out, lse, alpha


@triton_gat_attention.register_fake
def _(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope, dropout,
      return_attention):
    T, H, C = a_dst.size(0), v.size(1), v.size(2)
    E = graph[1].size(0) if return_attention else 0
    return (v.new_empty(T, H, C), a_dst.new_empty(H, T, dtype=_lse_dtype(a_dst.dtype)),
            v.new_empty(E, H))


@torch.library.custom_op("gatlib::triton_gat_attention_backward", mutates_args=(),
                         device_types=None)
def triton_gat_attention_backward(grad_out: Tensor, grad_alpha: Optional[Tensor],
                                  a_src: Tensor, a_dst: Tensor, v: Tensor, lse: Tensor,
                                  graph: List[Tensor], edge_score: Optional[Tensor],
                                  dropout_mask: Optional[Tensor], negative_slope: float,
                                  dropout: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    g_dst, g_src, g_v, g_es = K.attention_bwd(
        K.GAT, grad_out, grad_alpha, a_dst.unsqueeze(-1), a_src.unsqueeze(-1), v, lse, graph,
        edge_score, dropout_mask, 1.0, float(negative_slope), float(dropout))
    g_es = g_es.to(edge_score.dtype) if edge_score is not None else v.new_empty(0)
    return g_src.squeeze(-1), g_dst.squeeze(-1), g_v, g_es


@triton_gat_attention_backward.register_fake
def _(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score, dropout_mask,
      negative_slope, dropout):
    g_es = edge_score.new_empty(edge_score.shape) if edge_score is not None else v.new_empty(0)
    return (a_src.new_empty(a_src.shape), a_dst.new_empty(a_dst.shape), v.new_empty(v.shape),
            g_es)


register_attention_autograd(triton_gat_attention, torch.ops.gatlib.triton_gat_attention_backward)


# ------------------------------------------------------------------ dot-product attention

@torch.library.custom_op("gatlib::triton_sparse_attention", mutates_args=(), device_types=None)
def triton_sparse_attention(q: Tensor, k: Tensor, v: Tensor, graph: List[Tensor],
                            bias: Optional[Tensor], dropout_mask: Optional[Tensor],
                            scale: float, dropout: float,
                            return_attention: bool) -> Tuple[Tensor, Tensor, Tensor]:
    out, lse, alpha = K.attention_fwd(K.DOT, q, k, v, graph, bias, dropout_mask, float(scale),
                                      0.0, float(dropout), return_attention)
    return out, lse, alpha


@triton_sparse_attention.register_fake
def _(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention):
    T, H, C = q.size(0), v.size(1), v.size(2)
    E = graph[1].size(0) if return_attention else 0
    return (v.new_empty(T, H, C), q.new_empty(H, T, dtype=_lse_dtype(q.dtype)),
            v.new_empty(E, H))


@torch.library.custom_op("gatlib::triton_sparse_attention_backward", mutates_args=(),
                         device_types=None)
def triton_sparse_attention_backward(grad_out: Tensor, grad_alpha: Optional[Tensor], q: Tensor,
                                     k: Tensor, v: Tensor, lse: Tensor, graph: List[Tensor],
                                     bias: Optional[Tensor], dropout_mask: Optional[Tensor],
                                     scale: float,
                                     dropout: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    g_q, g_k, g_v, g_bias = K.attention_bwd(K.DOT, grad_out, grad_alpha, q, k, v, lse, graph,
                                            bias, dropout_mask, float(scale), 0.0,
                                            float(dropout))
    g_bias = g_bias.to(bias.dtype) if bias is not None else v.new_empty(0)
    return g_q, g_k, g_v, g_bias


@triton_sparse_attention_backward.register_fake
def _(grad_out, grad_alpha, q, k, v, lse, graph, bias, dropout_mask, scale, dropout):
    g_bias = bias.new_empty(bias.shape) if bias is not None else v.new_empty(0)
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), g_bias


register_attention_autograd(triton_sparse_attention,
                            torch.ops.gatlib.triton_sparse_attention_backward)


# ------------------------------------------------------------------------ segment softmax

@torch.library.custom_op("gatlib::triton_segment_softmax", mutates_args=(), device_types=None)
def triton_segment_softmax(src: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    return K.segment_softmax_fwd(src, index, num_nodes)


@triton_segment_softmax.register_fake
def _(src, index, num_nodes):
    return src.new_empty(src.shape)


@torch.library.custom_op("gatlib::triton_segment_softmax_backward", mutates_args=(),
                         device_types=None)
def triton_segment_softmax_backward(grad: Tensor, out: Tensor, index: Tensor,
                                    num_nodes: int) -> Tensor:
    return K.segment_softmax_bwd(grad, out, index, num_nodes)


@triton_segment_softmax_backward.register_fake
def _(grad, out, index, num_nodes):
    return grad.new_empty(out.shape)


register_softmax_autograd(triton_segment_softmax,
                          torch.ops.gatlib.triton_segment_softmax_backward)
