"""The Triton backend's table: each op's forward and backward kernels with the arguments every
backend's kernels take (:data:`gatlib.ops.factory.ATTENTION_OPS`), on the fused kernels of
:mod:`gatlib.ops.triton.kernels`.

``graph`` is the seven tensors of a ``GraphCSR``, optionally followed by its work lists
(``kernels.graph_plans``, kept on the caller's ``GraphCSR``); ``dropout_mask [E, H]`` is a bool
keep mask in the caller's edge order (the kept weights are scaled by ``1 / (1 - dropout)``); the
outputs are ``(out [T, H, C], lse [H, T], alpha)`` with ``alpha [E, H]`` in the caller's order,
or ``[0, H]`` when ``return_attention`` is False.
"""
from __future__ import annotations

from ..backend import Kernels
from . import kernels as K

__all__ = ["KERNELS"]


def _term_grad(g_term, term, v):
    return g_term.to(term.dtype) if term is not None else v.new_empty(0)


# The halves of the GAT score are [N, H] tensors, seen by the kernels as [N, H, 1].

def _gat_forward(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope, dropout,
                 return_attention):
    return K.attention_fwd(K.GAT, a_dst.unsqueeze(-1), a_src.unsqueeze(-1), v, graph,
                           edge_score, dropout_mask, 1.0, float(negative_slope),
                           float(dropout), return_attention)


def _gat_backward(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score, dropout_mask,
                  negative_slope, dropout):
    g_dst, g_src, g_v, g_es = K.attention_bwd(
        K.GAT, grad_out, grad_alpha, a_dst.unsqueeze(-1), a_src.unsqueeze(-1), v, lse, graph,
        edge_score, dropout_mask, 1.0, float(negative_slope), float(dropout))
    return g_src.squeeze(-1), g_dst.squeeze(-1), g_v, _term_grad(g_es, edge_score, v)


def _dot_forward(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention):
    return K.attention_fwd(K.DOT, q, k, v, graph, bias, dropout_mask, float(scale), 0.0,
                           float(dropout), return_attention)


def _dot_backward(grad_out, grad_alpha, q, k, v, lse, graph, bias, dropout_mask, scale,
                  dropout):
    g_q, g_k, g_v, g_bias = K.attention_bwd(K.DOT, grad_out, grad_alpha, q, k, v, lse, graph,
                                            bias, dropout_mask, float(scale), 0.0,
                                            float(dropout))
    return g_q, g_k, g_v, _term_grad(g_bias, bias, v)


# Given scores: the GAT kernels with zero halves and an identity activation (slope 1), the
# score entering as the per-edge term.

def _zero_halves(score, v, graph):
    T, S, H = graph[0].numel() - 1, v.size(0), v.size(1)
    return score.new_zeros(T, H, 1), score.new_zeros(S, H, 1)


def _attend_forward(score, v, graph, dropout_mask, dropout, return_attention):
    zt, zs = _zero_halves(score, v, graph)
    return K.attention_fwd(K.GAT, zt, zs, v, graph, score, dropout_mask, 1.0, 1.0,
                           float(dropout), return_attention)


def _attend_backward(grad_out, grad_alpha, score, v, lse, graph, dropout_mask, dropout):
    zt, zs = _zero_halves(score, v, graph)
    _, _, g_v, g_score = K.attention_bwd(K.GAT, grad_out, grad_alpha, zt, zs, v, lse, graph,
                                         score, dropout_mask, 1.0, 1.0, float(dropout))
    return g_score.to(score.dtype), g_v


KERNELS = {
    "gat_attention": Kernels(_gat_forward, _gat_backward),
    "sparse_attention": Kernels(_dot_forward, _dot_backward),
    "attend": Kernels(_attend_forward, _attend_backward),
    "segment_softmax": Kernels(K.segment_softmax_fwd, K.segment_softmax_bwd),
}
