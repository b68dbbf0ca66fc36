"""The CPU backend's kernels, forward and backward of each op (registered by
:mod:`gatlib.ops.factory` from the table in :mod:`gatlib.ops.cpu`).

Forward: score per edge ``[E, H]`` -> per-target log-sum-exp ``[T, H]`` -> weights ``[E, H]`` ->
SpMM. Backward recomputes the weights from the saved log-sum-exp (nothing per edge is saved)
and uses the FlashAttention identity ``sum_j alpha_ij dL/dalpha_ij`` computed per target.

``graph`` is an op's graph argument: the seven tensors of a ``GraphCSR``
(:class:`~gatlib.ops.graph_args.CSRTensors`), optionally followed by its head-folded graph.

Each op runs on the native fused kernels (:mod:`gatlib.ops.cpu.fused`) where their size-and-type
rule admits it (:func:`_fused_or`), and otherwise on torch's kernels as follows. On a small
graph (``E * H`` up to ``kernels.FOLD_MAX_ENTRIES``) every op first folds the heads into the
graph (:func:`~gatlib.ops.cpu.kernels.fold_heads`, see :func:`_folding`): the same
maths on one head of a graph ``H`` times larger, so each step is one call of torch's kernels
whatever ``H`` is. Inputs and outputs are only viewed differently (``[N, H, C]`` as
``[N * H, 1, C]``); the log-sum-exp saved for the backward pass keeps its ``[H, T]`` shape
either way.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ...native.abi import ScoreKind
from ..factory import ATTENTION_OPS
from ..graph_args import CSRTensors, csr_tensors
from . import fused
from .kernels import (expand, fold_heads, index_select, sddmm, segment_sum, softmax_stats,
                      softmax_weights_, source_sum, spmm)

__all__ = ["gat_forward", "gat_backward", "dot_forward", "dot_backward", "attend_forward",
           "attend_backward", "softmax_forward", "softmax_backward"]

_F32 = (torch.float16, torch.bfloat16)


def _up(x: Optional[Tensor]) -> Optional[Tensor]:
    # Low-precision inputs are computed in fp32 (accumulating in fp16/bf16 loses the sums).
    return x.float() if x is not None and x.dtype in _F32 else x


def _to_sorted(x: Optional[Tensor], perm: Tensor,
               out: Optional[Tensor] = None) -> Optional[Tensor]:
    """Caller-order ``[E, H]`` -> head-major target-sorted ``[H, E]`` (into ``out`` if given)."""
    if x is None:
        return None
    return index_select(x.t().contiguous(), 1, perm, out=out)              # [H, E]


def _to_caller(x: Tensor, perm: Tensor) -> Tensor:
    """Head-major target-sorted ``[H, E]`` -> caller-order ``[E, H]``."""
    return x.new_empty(x.size(1), x.size(0)).index_copy_(0, perm, x.t())   # [E, H]


def _keep_scale(mask: Optional[Tensor], dropout: float, perm: Tensor, dtype) -> Optional[Tensor]:
    """Dropout as a per-edge factor ``[H, E]`` in sorted order: 0 or ``1 / (1 - p)``."""
    if mask is None:
        return None
    return _to_sorted(mask, perm).to(dtype).mul_(1.0 / (1.0 - dropout))


# ------------------------------------------------------------------ softmax and weighted sum

def _attend_fwd(score: Tensor, v: Tensor, g: CSRTensors, mask: Optional[Tensor],
                dropout: float, return_attention: bool, dtype) -> Tuple[Tensor, Tensor, Tensor]:
    """Softmax of ``score [H, E]`` (overwritten by the weights) and the weighted sum of ``v``:
    the op's outputs ``(out [T, H, C], lse [H, T], alpha [E, H] or [0, H])``."""
    keep = _keep_scale(mask, dropout, g.perm, score.dtype)
    buf = torch.empty_like(score)                                          # [H, E] scratch
    lse = softmax_stats(score, g.rowptr, g.row, buf)                       # [H, T]
    alpha = softmax_weights_(score, lse, g.row, buf)                       # [H, E]
    w = alpha if keep is None else alpha * keep
    out = spmm(g.rowptr, g.col, w, v, g.num_dst)                           # [T, H, C]
    alpha = (_to_caller(alpha, g.perm) if return_attention
             else alpha.new_empty(0, alpha.size(0)))                       # [E, H]
    return out.to(dtype), lse, alpha.to(dtype)


def _attend_bwd(score: Tensor, lse: Tensor, v: Tensor, grad_out: Tensor,
                grad_alpha: Optional[Tensor], g: CSRTensors, mask: Optional[Tensor],
                dropout: float, buf: Tensor) -> Tuple[Tensor, Tensor]:
    """Gradients of the softmax-and-sum step from the recomputed weights:
    ``(d score [H, E], d v [S, H, C])``. ``score`` and the scratch ``buf`` are overwritten."""
    keep = _keep_scale(mask, dropout, g.perm, score.dtype)
    alpha = softmax_weights_(score, lse, g.row, buf)                       # [H, E]
    w = alpha if keep is None else alpha * keep
    w_t = index_select(w, 1, g.perm_t, out=buf)                            # [H, E] by source
    grad_v = spmm(g.rowptr_t, g.col_t, w_t, grad_out, v.size(0))           # [S, H, C]
    d = sddmm(g.rowptr, g.col, grad_out, v)                                # [H, E] dL/dalpha
    if keep is not None:
        d.mul_(keep)
    if grad_alpha is not None:
        d.add_(_to_sorted(grad_alpha, g.perm, out=buf))
    # FlashAttention's identity: sum_j alpha_ij dL/dalpha_ij, one number per target and head.
    dot = segment_sum(torch.mul(alpha, d, out=buf), g.rowptr, g.row)       # [H, T]
    return d.sub_(expand(dot, g.row, out=buf)).mul_(alpha), grad_v         # [H, E]


def _attend_forward(score, v, graph, dropout_mask, dropout, return_attention):
    g = csr_tensors(graph)
    s = _to_sorted(_up(score), g.perm)                                     # [H, E]
    return _attend_fwd(s, _up(v), g, dropout_mask, dropout, return_attention, v.dtype)


def _attend_backward(grad_out, grad_alpha, score, v, lse, graph, dropout_mask, dropout):
    g = csr_tensors(graph)
    s = _to_sorted(_up(score), g.perm)                                     # [H, E]
    g_s, grad_v = _attend_bwd(s, lse, _up(v), _up(grad_out), _up(grad_alpha), g, dropout_mask,
                              dropout, torch.empty_like(s))
    return _to_caller(g_s, g.perm).to(score.dtype), grad_v.to(v.dtype)


# ----------------------------------------------------------------------------- GAT attention

def _leaky_relu_(score: Tensor, slope: float) -> Tensor:
    """LeakyReLU in place, a ``-inf`` pre-activation (a masked edge) kept ``-inf`` for every
    slope (``slope * -inf`` is nan for slope 0 and ``+inf`` for a negative slope)."""
    if slope > 0:
        return torch.nn.functional.leaky_relu_(score, slope)
    masked = torch.isneginf(score)                                         # [H, E]
    return torch.nn.functional.leaky_relu_(score, slope).masked_fill_(masked, float("-inf"))


def _gat_score(a_src: Tensor, a_dst: Tensor, g: CSRTensors,
               edge_score: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """The pre-activation ``a_src[j] + a_dst[i] (+ edge_score)`` -> ``[H, E]``, and a scratch
    tensor of the same shape."""
    pre = index_select(a_src.t().contiguous(), 1, g.col)                   # [H, E]
    buf = expand(a_dst.t(), g.row)                                         # [H, E]
    pre.add_(buf)
    if edge_score is not None:
        pre.add_(_to_sorted(edge_score, g.perm, out=buf))
    return pre, buf


def _gat_forward(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope, dropout,
                 return_attention):
    g = csr_tensors(graph)
    score, _ = _gat_score(_up(a_src), _up(a_dst), g, _up(edge_score))      # [H, E]
    score = _leaky_relu_(score, negative_slope)
    return _attend_fwd(score, _up(v), g, dropout_mask, dropout, return_attention, v.dtype)


def _gat_backward(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score, dropout_mask,
                  negative_slope, dropout):
    g = csr_tensors(graph)
    score, buf = _gat_score(_up(a_src), _up(a_dst), g, _up(edge_score))    # [H, E]
    # leaky_relu'(x) = 1 for x > 0, negative_slope otherwise (as torch's own backward). The
    # flags are written as bytes and read as bool (a bool-valued comparison is 8x slower), and
    # take a quarter of the memory a copy of the pre-activation would.
    positive = torch.gt(score, 0, out=torch.empty_like(score, dtype=torch.uint8))
    positive = positive.view(torch.bool)                                   # [H, E]
    _leaky_relu_(score, negative_slope)
    g_pre, grad_v = _attend_bwd(score, lse, _up(v), _up(grad_out), _up(grad_alpha), g,
                                dropout_mask, dropout, buf)
    g_pre = torch.where(positive, g_pre, torch.mul(g_pre, negative_slope, out=buf),
                        out=g_pre)                                         # [H, E]
    grad_a_dst = segment_sum(g_pre, g.rowptr, g.row).t()                   # [T, H]
    grad_a_src = source_sum(g_pre, g.col, a_src.size(0)).t()               # [S, H]
    return (grad_a_src.to(a_src.dtype).contiguous(), grad_a_dst.to(a_dst.dtype).contiguous(),
            grad_v.to(v.dtype), _term_grad(g_pre, g, edge_score))


def _term_grad(g_score: Tensor, g: CSRTensors, term: Optional[Tensor]) -> Tensor:
    """The gradient of the per-edge score term in the caller's order ``[E, H]`` (an empty
    tensor without a term)."""
    if term is None:
        return g_score.new_empty(0)
    return _to_caller(g_score, g.perm).to(term.dtype)                      # [E, H]


# ------------------------------------------------------------------ dot-product attention

def _dot_score(q: Tensor, k: Tensor, g: CSRTensors, bias: Optional[Tensor],
               scale: float) -> Tensor:
    """``scale * <q_i, k_j> (+ bias)`` -> ``[H, E]``."""
    score = sddmm(g.rowptr, g.col, q, k).mul_(scale)                       # [H, E]
    if bias is not None:
        score.add_(_to_sorted(bias, g.perm))
    return score


def _dot_forward(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention):
    g = csr_tensors(graph)
    score = _dot_score(_up(q), _up(k), g, _up(bias), scale)                # [H, E]
    return _attend_fwd(score, _up(v), g, dropout_mask, dropout, return_attention, v.dtype)


def _dot_backward(grad_out, grad_alpha, q, k, v, lse, graph, bias, dropout_mask, scale,
                  dropout):
    g = csr_tensors(graph)
    q32, k32 = _up(q), _up(k)
    score = _dot_score(q32, k32, g, _up(bias), scale)                      # [H, E]
    g_score, grad_v = _attend_bwd(score, lse, _up(v), _up(grad_out), _up(grad_alpha), g,
                                  dropout_mask, dropout, torch.empty_like(score))
    grad_q = spmm(g.rowptr, g.col, g_score, k32, q.size(0)).mul_(scale)    # [T, H, D]
    g_score_t = index_select(g_score, 1, g.perm_t, out=score)              # [H, E]
    grad_k = spmm(g.rowptr_t, g.col_t, g_score_t, q32, k.size(0)).mul_(scale)  # [S, H, D]
    return (grad_q.to(q.dtype), grad_k.to(k.dtype), grad_v.to(v.dtype),
            _term_grad(g_score, g, bias))


# --------------------------------------------------------------- the fused kernels (gatlib.native)

def _fused_gat_forward(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope,
                        dropout, return_attention):
    out, lse, alpha = fused.forward(ScoreKind.GAT, csr_tensors(graph), _up(a_dst),
                                     _up(a_src), _up(v), _up(edge_score), dropout_mask, dropout,
                                     negative_slope, return_attention)
    return out.to(v.dtype), lse, alpha.to(v.dtype)


def _fused_gat_backward(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score,
                         dropout_mask, negative_slope, dropout):
    g_dst, g_src, g_v, g_term = fused.backward(
        ScoreKind.GAT, csr_tensors(graph), _up(a_dst), _up(a_src), _up(v), _up(edge_score),
        dropout_mask, dropout, negative_slope, lse, _up(grad_out), _up(grad_alpha))
    return (g_src.to(a_src.dtype), g_dst.to(a_dst.dtype), g_v.to(v.dtype),
            _fused_term_grad(g_term, edge_score, g_v))


def _fused_term_grad(g_term: Optional[Tensor], term: Optional[Tensor], like: Tensor) -> Tensor:
    return like.new_empty(0) if term is None else g_term.to(term.dtype)


def _fused_dot_forward(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention):
    out, lse, alpha = fused.forward(ScoreKind.DOT, csr_tensors(graph), _up(q), _up(k),
                                     _up(v), _up(bias), dropout_mask, dropout, scale,
                                     return_attention)
    return out.to(v.dtype), lse, alpha.to(v.dtype)


def _fused_dot_backward(grad_out, grad_alpha, q, k, v, lse, graph, bias, dropout_mask, scale,
                         dropout):
    g_q, g_k, g_v, g_term = fused.backward(
        ScoreKind.DOT, csr_tensors(graph), _up(q), _up(k), _up(v), _up(bias), dropout_mask,
        dropout, scale, lse, _up(grad_out), _up(grad_alpha))
    return (g_q.to(q.dtype), g_k.to(k.dtype), g_v.to(v.dtype),
            _fused_term_grad(g_term, bias, g_v))


def _fused_attend_forward(score, v, graph, dropout_mask, dropout, return_attention):
    out, lse, alpha = fused.forward(ScoreKind.ATTEND, csr_tensors(graph), None, None, _up(v),
                                     _up(score), dropout_mask, dropout, 0.0, return_attention)
    return out.to(v.dtype), lse, alpha.to(v.dtype)


def _fused_attend_backward(grad_out, grad_alpha, score, v, lse, graph, dropout_mask, dropout):
    _, _, g_v, g_score = fused.backward(
        ScoreKind.ATTEND, csr_tensors(graph), None, None, _up(v), _up(score), dropout_mask,
        dropout, 0.0, lse, _up(grad_out), _up(grad_alpha))
    return g_score.to(score.dtype), g_v.to(v.dtype)


def _fused_or(op: str, native_forward, native_backward, forward, backward):
    """``(forward, backward)`` of ``op``: the fused kernels where :func:`fused.handles` the
    graph's size and the inputs' dtypes, ``forward``/``backward`` (torch's kernels) otherwise.
    Forward and backward decide alike (same size, same dtypes)."""
    at = ATTENTION_OPS[op].graph_at

    def entries(graph, v) -> int:
        return graph[1].numel() * v.size(1)

    def pick_forward(*args):
        graph, v = args[at], args[at - 1]
        floats = [a for a in args if isinstance(a, Tensor)]
        if fused.handles(entries(graph, v), *floats):
            return native_forward(*args)
        return forward(*args)

    def pick_backward(grad_out, grad_alpha, *args):
        graph, v = args[at + 1], args[at - 1]
        floats = [a for i, a in enumerate(args) if isinstance(a, Tensor) and i != at]
        if fused.handles(entries(graph, v), grad_out, grad_alpha, *floats):
            return native_backward(grad_out, grad_alpha, *args)
        return backward(grad_out, grad_alpha, *args)

    return pick_forward, pick_backward


# -------------------------------------------------------------------------- head folding

def _one(x):
    """``[N, H, *]`` -> ``[N * H, 1, *]``: a tensor of H heads as one head of the folded graph
    (anything else passes through)."""
    if not isinstance(x, Tensor):
        return x
    return x.reshape((x.size(0) * x.size(1), 1) + tuple(x.shape[2:]))


def _folding(op: str, forward, backward):
    """``(forward, backward)`` of ``op`` that run on the head-folded graph when the size rule
    folds (every tensor argument seen as one head of it) and as given otherwise."""
    spec = ATTENTION_OPS[op]
    at = spec.graph_at

    def fold_forward(*args):
        graph, v = args[at], args[at - 1]
        (T, H, C) = (graph[0].numel() - 1, v.size(1), v.size(2))
        folded = fold_heads(graph, H)
        if folded is None:
            return forward(*args)
        out, lse, alpha = forward(*[folded if i == at else _one(a) for i, a in enumerate(args)])
        lse = lse.view(T, H).t().contiguous()                              # [1, T*H] -> [H, T]
        return out.view(T, H, C), lse, alpha.reshape(-1, H)

    def fold_backward(grad_out, grad_alpha, *args):
        # args: the forward's tensors before the graph, lse, graph, the rest.
        graph, v, lse = args[at + 1], args[at - 1], args[at]
        folded = fold_heads(graph, v.size(1))
        if folded is None:
            return backward(grad_out, grad_alpha, *args)
        lse = lse.t().reshape(1, -1)                                       # [H, T] -> [1, T*H]
        grads = backward(_one(grad_out), _one(grad_alpha), *[
            folded if i == at + 1 else lse if i == at else _one(a) for i, a in enumerate(args)])
        inputs = args[:at] + args[at + 1:]
        return tuple(grad if inputs[i] is None else grad.view(inputs[i].shape)
                     for i, grad in zip(spec.grads, grads))

    return fold_forward, fold_backward


gat_forward, gat_backward = _fused_or(
    "gat_attention", _fused_gat_forward, _fused_gat_backward,
    *_folding("gat_attention", _gat_forward, _gat_backward))
dot_forward, dot_backward = _fused_or(
    "sparse_attention", _fused_dot_forward, _fused_dot_backward,
    *_folding("sparse_attention", _dot_forward, _dot_backward))
attend_forward, attend_backward = _fused_or(
    "attend", _fused_attend_forward, _fused_attend_backward,
    *_folding("attend", _attend_forward, _attend_backward))


# ------------------------------------------------------------------------ segment softmax

def _flat(x: Tensor) -> Tensor:
    tail = 1
    for d in x.shape[1:]:
        tail *= d
    return x.reshape(x.size(0), tail)                                      # [E, H]


def softmax_forward(src: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    """Softmax of ``src [E, *]`` over the entries sharing ``index [E]`` (unsorted)."""
    x = _flat(_up(src))                                                    # [E, H]
    idx = index.view(-1, 1).expand_as(x)                                   # [E, H]
    m = x.new_full((num_nodes, x.size(1)), float("-inf"))
    m = m.scatter_reduce_(0, idx, x, "amax", include_self=True)            # [N, H]
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(x - m[index])                                            # [E, H]
    z = x.new_zeros(num_nodes, x.size(1)).index_add_(0, index, p)         # [N, H]
    z = torch.where(z > 0, z, torch.ones_like(z))
    return (p / z[index]).view(src.shape).to(src.dtype)


def softmax_backward(grad: Tensor, out: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    """``out * (grad - segment_sum(grad * out))``."""
    g, y = _flat(_up(grad)), _flat(_up(out))                               # [E, H]
    dot = y.new_zeros(num_nodes, y.size(1)).index_add_(0, index, g * y)    # [N, H]
    return (y * (g - dot[index])).view(out.shape).to(grad.dtype)
