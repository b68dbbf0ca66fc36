"""The CPU backend's registered ops (``torch.library.custom_op``), forward and backward.

Forward: score per edge ``[E, H]`` -> per-target log-sum-exp ``[T, H]`` -> weights ``[E, H]`` ->
SpMM. Backward recomputes the weights from the saved log-sum-exp (nothing per edge is saved)
and uses the FlashAttention identity ``sum_j alpha_ij dL/dalpha_ij`` computed per target.

``graph`` is the tensor list of a ``GraphCSR``:
``[rowptr, col, row, perm, rowptr_t, col_t, perm_t]``.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .kernels import sddmm, segment_sum, softmax_stats, softmax_weights, spmm

__all__ = ["graph_tensors"]

_F32 = (torch.float16, torch.bfloat16)


def graph_tensors(csr) -> List[Tensor]:
    """The tensors of a ``GraphCSR`` in the order the registered ops take them."""
    return [csr.rowptr, csr.col, csr.row, csr.perm, csr.rowptr_t, csr.col_t, csr.perm_t]


def _up(x: Optional[Tensor]) -> Optional[Tensor]:
    # Low-precision inputs are computed in fp32 (DESIGN.md section 3, numerics).
    return x.float() if x is not None and x.dtype in _F32 else x


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the statistics (log-sum-exp): fp32 for fp16/bf16 inputs."""
    return torch.float32 if dtype in _F32 else dtype


def _to_sorted(x: Optional[Tensor], perm: Tensor) -> Optional[Tensor]:
    if x is None:
        return None
    return x[perm]                                                         # [E, H]


def _to_caller(x: Tensor, perm: Tensor) -> Tensor:
    return torch.empty_like(x).index_copy_(0, perm, x)                     # [E, H]


def _keep_scale(mask: Optional[Tensor], dropout: float, perm: Tensor, dtype) -> Optional[Tensor]:
    """Dropout as a per-edge factor ``[E, H]`` in sorted order: 0 or ``1 / (1 - p)``."""
    if mask is None:
        return None
    return _to_sorted(mask, perm).to(dtype) * (1.0 / (1.0 - dropout))


def _attend_fwd(score: Tensor, v: Tensor, graph: List[Tensor], num_dst: int,
                keep: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    rowptr, col, row = graph[0], graph[1], graph[2]
    lse = softmax_stats(score, rowptr, row)                                # [T, H]
    alpha = softmax_weights(score, lse, row)                               # [E, H]
    w = alpha if keep is None else alpha * keep
    out = spmm(rowptr, col, w, v, num_dst)                                 # [T, H, C]
    return out, lse, alpha


def _attend_bwd(score: Tensor, lse: Tensor, v: Tensor, grad_out: Tensor,
                grad_alpha: Optional[Tensor], graph: List[Tensor],
                keep: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients of the softmax-and-sum step: ``(d score [E,H], d v [S,H,C], alpha [E,H])``."""
    rowptr, col, row, perm, rowptr_t, col_t, perm_t = graph
    alpha = softmax_weights(score, lse, row)                               # [E, H]
    w = alpha if keep is None else alpha * keep
    grad_v = spmm(rowptr_t, col_t, w[perm_t], grad_out, v.size(0))         # [S, H, C]
    g_alpha = sddmm(rowptr, col, grad_out, v)                              # [E, H]
    if keep is not None:
        g_alpha = g_alpha * keep
    if grad_alpha is not None:
        g_alpha = g_alpha + _to_sorted(grad_alpha, perm)
    dot = segment_sum(alpha * g_alpha, rowptr)                             # [T, H]
    g_score = alpha * (g_alpha - dot[row])                                 # [E, H]
    return g_score, grad_v, alpha


# ----------------------------------------------------------------------------- GAT attention

def _gat_score(a_src: Tensor, a_dst: Tensor, graph: List[Tensor],
               edge_score: Optional[Tensor]) -> Tensor:
    pre = a_src[graph[1]] + a_dst[graph[2]]                                # [E, H]
    if edge_score is not None:
        pre = pre + _to_sorted(edge_score, graph[3])
    return pre


@torch.library.custom_op("gatlib::gat_attention", mutates_args=(), device_types="cpu")
def gat_attention_op(a_src: Tensor, a_dst: Tensor, v: Tensor, graph: List[Tensor],
                     edge_score: Optional[Tensor], dropout_mask: Optional[Tensor],
                     negative_slope: float, dropout: float,
                     return_attention: bool) -> Tuple[Tensor, Tensor, Tensor]:
    dtype = v.dtype
    a_src, a_dst, v, edge_score = _up(a_src), _up(a_dst), _up(v), _up(edge_score)
    pre = _gat_score(a_src, a_dst, graph, edge_score)                      # [E, H]
    score = torch.nn.functional.leaky_relu(pre, negative_slope)
    keep = _keep_scale(dropout_mask, dropout, graph[3], score.dtype)
    out, lse, alpha = _attend_fwd(score, v, graph, a_dst.size(0), keep)
    alpha = _to_caller(alpha, graph[3]) if return_attention else alpha.new_empty(0, alpha.size(1))
    return out.to(dtype), lse, alpha.to(dtype)


@gat_attention_op.register_fake
def _(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope, dropout,
      return_attention):
    T, H, C = a_dst.size(0), v.size(1), v.size(2)
    E = graph[1].size(0) if return_attention else 0
    return (v.new_empty(T, H, C), a_dst.new_empty(T, H, dtype=_acc_dtype(a_dst.dtype)),
            v.new_empty(E, H))


@torch.library.custom_op("gatlib::gat_attention_backward", mutates_args=(), device_types="cpu")
def gat_attention_backward_op(grad_out: Tensor, grad_alpha: Optional[Tensor], a_src: Tensor,
                              a_dst: Tensor, v: Tensor, lse: Tensor, graph: List[Tensor],
                              edge_score: Optional[Tensor], dropout_mask: Optional[Tensor],
                              negative_slope: float,
                              dropout: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    dtypes = (a_src.dtype, a_dst.dtype, v.dtype)
    es_dtype = edge_score.dtype if edge_score is not None else v.dtype
    a_src, a_dst, v, edge_score = _up(a_src), _up(a_dst), _up(v), _up(edge_score)
    grad_out, grad_alpha = _up(grad_out), _up(grad_alpha)
    pre = _gat_score(a_src, a_dst, graph, edge_score)                      # [E, H]
    score = torch.nn.functional.leaky_relu(pre, negative_slope)
    keep = _keep_scale(dropout_mask, dropout, graph[3], score.dtype)
    g_score, grad_v, _ = _attend_bwd(score, lse, v, grad_out, grad_alpha, graph, keep)
    # leaky_relu'(x) = 1 for x > 0, negative_slope otherwise (as torch's own backward).
    g_pre = torch.where(pre > 0, g_score, g_score * negative_slope)      # [E, H]
    grad_a_dst = segment_sum(g_pre, graph[0])                              # [T, H]
    grad_a_src = segment_sum(g_pre[graph[6]], graph[4])                    # [S, H]
    if edge_score is not None:
        grad_es = _to_caller(g_pre, graph[3]).view(edge_score.shape).to(es_dtype)
    else:
        grad_es = g_pre.new_empty(0)
    return (grad_a_src.to(dtypes[0]), grad_a_dst.to(dtypes[1]), grad_v.to(dtypes[2]), grad_es)


@gat_attention_backward_op.register_fake
def _(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score, dropout_mask,
      negative_slope, dropout):
    grad_es = torch.empty_like(edge_score) if edge_score is not None else v.new_empty(0)
    return torch.empty_like(a_src), torch.empty_like(a_dst), torch.empty_like(v), grad_es


def _gat_setup(ctx, inputs, output):
    a_src, a_dst, v, graph, edge_score, dropout_mask, slope, dropout, _ = inputs
    ctx.save_for_backward(a_src, a_dst, v, output[1], edge_score, dropout_mask, *graph)
    ctx.slope, ctx.dropout = slope, dropout


def _gat_backward(ctx, grad_out, _grad_lse, grad_alpha):
    a_src, a_dst, v, lse, edge_score, mask, *graph = ctx.saved_tensors
    if grad_alpha is not None and grad_alpha.numel() == 0:
        grad_alpha = None
    g_src, g_dst, g_v, g_es = torch.ops.gatlib.gat_attention_backward(
        grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score, mask, ctx.slope,
        ctx.dropout)
    return (g_src, g_dst, g_v, [None] * len(graph), g_es if edge_score is not None else None,
            None, None, None, None)


gat_attention_op.register_autograd(_gat_backward, setup_context=_gat_setup)


# ------------------------------------------------------------------ dot-product attention

def _dot_score(q: Tensor, k: Tensor, graph: List[Tensor], bias: Optional[Tensor],
               scale: float) -> Tensor:
    score = sddmm(graph[0], graph[1], q, k) * scale                        # [E, H]
    if bias is not None:
        score = score + _to_sorted(bias, graph[3])
    return score


@torch.library.custom_op("gatlib::sparse_attention", mutates_args=(), device_types="cpu")
def sparse_attention_op(q: Tensor, k: Tensor, v: Tensor, graph: List[Tensor],
                        bias: Optional[Tensor], dropout_mask: Optional[Tensor], scale: float,
                        dropout: float, return_attention: bool) -> Tuple[Tensor, Tensor, Tensor]:
    dtype = v.dtype
    q, k, v, bias = _up(q), _up(k), _up(v), _up(bias)
    score = _dot_score(q, k, graph, bias, scale)                           # [E, H]
    keep = _keep_scale(dropout_mask, dropout, graph[3], score.dtype)
    out, lse, alpha = _attend_fwd(score, v, graph, q.size(0), keep)
    alpha = _to_caller(alpha, graph[3]) if return_attention else alpha.new_empty(0, alpha.size(1))
    return out.to(dtype), lse, alpha.to(dtype)


@sparse_attention_op.register_fake
def _(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention):
    T, H, C = q.size(0), v.size(1), v.size(2)
    E = graph[1].size(0) if return_attention else 0
    return v.new_empty(T, H, C), q.new_empty(T, H, dtype=_acc_dtype(q.dtype)), v.new_empty(E, H)


@torch.library.custom_op("gatlib::sparse_attention_backward", mutates_args=(),
                         device_types="cpu")
def sparse_attention_backward_op(grad_out: Tensor, grad_alpha: Optional[Tensor], q: Tensor,
                                 k: Tensor, v: Tensor, lse: Tensor, graph: List[Tensor],
                                 bias: Optional[Tensor], dropout_mask: Optional[Tensor],
                                 scale: float,
                                 dropout: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    dtypes = (q.dtype, k.dtype, v.dtype)
    bias_dtype = bias.dtype if bias is not None else v.dtype
    q, k, v, bias = _up(q), _up(k), _up(v), _up(bias)
    grad_out, grad_alpha = _up(grad_out), _up(grad_alpha)
    rowptr, col, _, perm, rowptr_t, col_t, perm_t = graph
    score = _dot_score(q, k, graph, bias, scale)                           # [E, H]
    keep = _keep_scale(dropout_mask, dropout, perm, score.dtype)
    g_score, grad_v, _ = _attend_bwd(score, lse, v, grad_out, grad_alpha, graph, keep)
    grad_q = spmm(rowptr, col, g_score, k, q.size(0)) * scale              # [T, H, D]
    grad_k = spmm(rowptr_t, col_t, g_score[perm_t], q, k.size(0)) * scale  # [S, H, D]
    if bias is not None:
        grad_bias = _to_caller(g_score, perm).view(bias.shape).to(bias_dtype)
    else:
        grad_bias = g_score.new_empty(0)
    return grad_q.to(dtypes[0]), grad_k.to(dtypes[1]), grad_v.to(dtypes[2]), grad_bias


@sparse_attention_backward_op.register_fake
def _(grad_out, grad_alpha, q, k, v, lse, graph, bias, dropout_mask, scale, dropout):
    grad_bias = torch.empty_like(bias) if bias is not None else v.new_empty(0)
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), grad_bias


def _dot_setup(ctx, inputs, output):
    q, k, v, graph, bias, dropout_mask, scale, dropout, _ = inputs
    ctx.save_for_backward(q, k, v, output[1], bias, dropout_mask, *graph)
    ctx.scale, ctx.dropout = scale, dropout


def _dot_backward(ctx, grad_out, _grad_lse, grad_alpha):
    q, k, v, lse, bias, mask, *graph = ctx.saved_tensors
    if grad_alpha is not None and grad_alpha.numel() == 0:
        grad_alpha = None
    g_q, g_k, g_v, g_bias = torch.ops.gatlib.sparse_attention_backward(
        grad_out, grad_alpha, q, k, v, lse, graph, bias, mask, ctx.scale, ctx.dropout)
    return (g_q, g_k, g_v, [None] * len(graph), g_bias if bias is not None else None, None,
            None, None, None)


sparse_attention_op.register_autograd(_dot_backward, setup_context=_dot_setup)


# ------------------------------------------------------------------------ segment softmax

def _flat(x: Tensor) -> Tensor:
    tail = 1
    for d in x.shape[1:]:
        tail *= d
    return x.reshape(x.size(0), tail)                                      # [E, H]


@torch.library.custom_op("gatlib::segment_softmax", mutates_args=(), device_types="cpu")
def segment_softmax_op(src: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    x = _flat(_up(src))                                                    # [E, H]
    idx = index.view(-1, 1).expand_as(x)                                   # [E, H]
    m = x.new_full((num_nodes, x.size(1)), float("-inf"))
    m = m.scatter_reduce_(0, idx, x, "amax", include_self=True)            # [N, H]
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(x - m[index])                                            # [E, H]
    z = x.new_zeros(num_nodes, x.size(1)).index_add_(0, index, p)         # [N, H]
    z = torch.where(z > 0, z, torch.ones_like(z))
    return (p / z[index]).view(src.shape).to(src.dtype)


@segment_softmax_op.register_fake
def _(src, index, num_nodes):
    return torch.empty_like(src)


@torch.library.custom_op("gatlib::segment_softmax_backward", mutates_args=(),
                         device_types="cpu")
def segment_softmax_backward_op(grad: Tensor, out: Tensor, index: Tensor,
                                num_nodes: int) -> Tensor:
    g, y = _flat(_up(grad)), _flat(_up(out))                               # [E, H]
    dot = y.new_zeros(num_nodes, y.size(1)).index_add_(0, index, g * y)    # [N, H]
    return (y * (g - dot[index])).view(out.shape).to(grad.dtype)


@segment_softmax_backward_op.register_fake
def _(grad, out, index, num_nodes):
    return torch.empty_like(grad)


def _softmax_setup(ctx, inputs, output):
    ctx.save_for_backward(output, inputs[1])
    ctx.num_nodes = inputs[2]


def _softmax_backward(ctx, grad):
    out, index = ctx.saved_tensors
    return torch.ops.gatlib.segment_softmax_backward(grad, out, index, ctx.num_nodes), None, None


segment_softmax_op.register_autograd(_softmax_backward, setup_context=_softmax_setup)
