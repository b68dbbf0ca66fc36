"""The CPU backend's registered ops (``torch.library.custom_op``), forward and backward.

Forward: score per edge ``[E, H]`` -> per-target log-sum-exp ``[T, H]`` -> weights ``[E, H]`` ->
SpMM. Backward recomputes the weights from the saved log-sum-exp (nothing per edge is saved)
and uses the FlashAttention identity ``sum_j alpha_ij dL/dalpha_ij`` computed per target.

``graph`` is the tensor list of a ``GraphCSR``:
``[rowptr, col, row, perm, rowptr_t, col_t, perm_t]``.

On a small graph (``E * H`` up to ``kernels.FOLD_MAX_ENTRIES``) every op first folds the heads
into the graph (:func:`~gatlib.ops.cpu.kernels.fold_heads`): the same maths on one head of a
graph ``H`` times larger, so each step is one call of torch's kernels whatever ``H`` is. Inputs
and outputs are only viewed differently (``[N, H, C]`` as ``[N * H, 1, C]``); the
log-sum-exp saved for the backward pass keeps its ``[H, T]`` shape either way.

In eager mode, :func:`eager_op` runs the same forward and backward functions under a plain
``torch.autograd.Function`` (about 0.2 ms less per layer than the registered op's dispatch,
whose tensor-list argument costs a pytree walk per call); under ``torch.compile``, a dispatch
mode, functorch transforms or tensor subclasses the registered op runs.
"""
from __future__ import annotations

import functools
from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from .._autograd import register_attention_autograd as _register_autograd
from .kernels import (expand, fold_heads, index_select, sddmm, segment_sum, softmax_stats,
                      softmax_weights_, source_sum, spmm)

__all__ = ["graph_tensors", "eager_op"]

_F32 = (torch.float16, torch.bfloat16)


def graph_tensors(csr) -> List[Tensor]:
    """The tensors of a ``GraphCSR`` in the order the registered ops take them."""
    return [csr.rowptr, csr.col, csr.row, csr.perm, csr.rowptr_t, csr.col_t, csr.perm_t]


def _one(x: Optional[Tensor]) -> Optional[Tensor]:
    """``[N, H, *]`` -> ``[N * H, 1, *]``: a tensor of H heads as one head of the folded graph."""
    if x is None:
        return None
    return x.reshape((x.size(0) * x.size(1), 1) + tuple(x.shape[2:]))


def _lse_out(lse: Tensor, T: int, H: int) -> Tensor:
    """The folded graph's log-sum-exp ``[1, T * H]`` as ``[H, T]``."""
    return lse.view(T, H).t().contiguous()


def _lse_in(lse: Tensor) -> Tensor:
    """``[H, T]`` -> the folded graph's ``[1, T * H]``."""
    return lse.t().reshape(1, -1)


def _up(x: Optional[Tensor]) -> Optional[Tensor]:
    # Low-precision inputs are computed in fp32 (DESIGN.md section 3, numerics).
    return x.float() if x is not None and x.dtype in _F32 else x


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the statistics (log-sum-exp): fp32 for fp16/bf16 inputs."""
    return torch.float32 if dtype in _F32 else dtype


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


def _attend_fwd(score: Tensor, v: Tensor, graph: List[Tensor], num_dst: int,
                keep: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Softmax of ``score [H, E]`` (overwritten by the weights) and the weighted sum of ``v``."""
    rowptr, col, row = graph[0], graph[1], graph[2]
    buf = torch.empty_like(score)                                          # [H, E] scratch
    lse = softmax_stats(score, rowptr, row, buf)                           # [H, T]
    alpha = softmax_weights_(score, lse, row, buf)                         # [H, E]
    w = alpha if keep is None else alpha * keep
    out = spmm(rowptr, col, w, v, num_dst)                                 # [T, H, C]
    return out, lse, alpha


def _attend_bwd(score: Tensor, lse: Tensor, v: Tensor, grad_out: Tensor,
                grad_alpha: Optional[Tensor], graph: List[Tensor], keep: Optional[Tensor],
                buf: Tensor) -> Tuple[Tensor, Tensor]:
    """Gradients of the softmax-and-sum step from the recomputed weights:
    ``(d score [H, E], d v [S, H, C])``. ``score`` and the scratch ``buf`` are overwritten."""
    rowptr, col, row, perm, rowptr_t, col_t, perm_t = graph
    alpha = softmax_weights_(score, lse, row, buf)                         # [H, E]
    w = alpha if keep is None else alpha * keep
    w_t = index_select(w, 1, perm_t, out=buf)                              # [H, E] by source
    grad_v = spmm(rowptr_t, col_t, w_t, grad_out, v.size(0))               # [S, H, C]
    g = sddmm(rowptr, col, grad_out, v)                                    # [H, E] dL/dalpha
    if keep is not None:
        g.mul_(keep)
    if grad_alpha is not None:
        g.add_(_to_sorted(grad_alpha, perm, out=buf))
    # FlashAttention's identity: sum_j alpha_ij dL/dalpha_ij, one number per target and head.
    dot = segment_sum(torch.mul(alpha, g, out=buf), rowptr, row)           # [H, T]
    return g.sub_(expand(dot, row, out=buf)).mul_(alpha), grad_v           # [H, E]


# ----------------------------------------------------------------------------- GAT attention

def _leaky_relu_(score: Tensor, slope: float) -> Tensor:
    """LeakyReLU in place, a ``-inf`` pre-activation (a masked edge) kept ``-inf`` for every
    slope (``slope * -inf`` is nan for slope 0 and ``+inf`` for a negative slope)."""
    if slope > 0:
        return torch.nn.functional.leaky_relu_(score, slope)
    masked = torch.isneginf(score)                                         # [H, E]
    return torch.nn.functional.leaky_relu_(score, slope).masked_fill_(masked, float("-inf"))


def _gat_score(a_src: Tensor, a_dst: Tensor, graph: List[Tensor],
               edge_score: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """The pre-activation ``a_src[j] + a_dst[i] (+ edge_score)`` -> ``[H, E]``, and a scratch
    tensor of the same shape."""
    pre = index_select(a_src.t().contiguous(), 1, graph[1])                # [H, E]
    buf = expand(a_dst.t(), graph[2])                                      # [H, E]
    pre.add_(buf)
    if edge_score is not None:
        pre.add_(_to_sorted(edge_score, graph[3], out=buf))
    return pre, buf


def gat_forward(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope, dropout,
                return_attention):
    """The forward of ``gatlib::gat_attention`` (arguments and outputs as the op's)."""
    (T, H), C = a_dst.shape, v.size(2)
    folded = fold_heads(graph, H)
    if folded is None:
        return _gat_fwd(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope,
                        dropout, return_attention)
    out, lse, alpha = _gat_fwd(_one(a_src), _one(a_dst), _one(v), folded, _one(edge_score),
                               _one(dropout_mask), negative_slope, dropout, return_attention)
    return out.view(T, H, C), _lse_out(lse, T, H), alpha.reshape(-1, H)


def _gat_fwd(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope, dropout,
             return_attention):
    dtype = v.dtype
    a_src, a_dst, v, edge_score = _up(a_src), _up(a_dst), _up(v), _up(edge_score)
    score, _ = _gat_score(a_src, a_dst, graph, edge_score)                 # [H, E]
    score = _leaky_relu_(score, negative_slope)
    keep = _keep_scale(dropout_mask, dropout, graph[3], score.dtype)
    out, lse, alpha = _attend_fwd(score, v, graph, a_dst.size(0), keep)
    alpha = _to_caller(alpha, graph[3]) if return_attention else alpha.new_empty(0, alpha.size(0))
    return out.to(dtype), lse, alpha.to(dtype)


@torch.library.custom_op("gatlib::gat_attention", mutates_args=(), device_types="cpu")
def gat_attention_op(a_src: Tensor, a_dst: Tensor, v: Tensor, graph: List[Tensor],
                     edge_score: Optional[Tensor], dropout_mask: Optional[Tensor],
                     negative_slope: float, dropout: float,
                     return_attention: bool) -> Tuple[Tensor, Tensor, Tensor]:
    return gat_forward(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope, dropout,
                       return_attention)


@gat_attention_op.register_fake
def _(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope, dropout,
      return_attention):
    T, H, C = a_dst.size(0), v.size(1), v.size(2)
    E = graph[1].size(0) if return_attention else 0
    return (v.new_empty(T, H, C), a_dst.new_empty(H, T, dtype=_acc_dtype(a_dst.dtype)),
            v.new_empty(E, H))


def gat_backward(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score, dropout_mask,
                 negative_slope, dropout):
    """The backward of ``gatlib::gat_attention`` (arguments and outputs as
    ``gatlib::gat_attention_backward``'s)."""
    (S, H), T = a_src.shape, a_dst.size(0)
    folded = fold_heads(graph, H)
    if folded is None:
        return _gat_bwd(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score,
                        dropout_mask, negative_slope, dropout)
    g_src, g_dst, g_v, g_es = _gat_bwd(_one(grad_out), _one(grad_alpha), _one(a_src),
                                       _one(a_dst), _one(v), _lse_in(lse), folded,
                                       _one(edge_score), _one(dropout_mask), negative_slope,
                                       dropout)
    g_es = g_es.view(-1, H) if edge_score is not None else g_es
    return g_src.view(S, H), g_dst.view(T, H), g_v.view(v.shape), g_es


def _gat_bwd(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score, dropout_mask,
             negative_slope, dropout):
    dtypes = (a_src.dtype, a_dst.dtype, v.dtype)
    es_dtype = edge_score.dtype if edge_score is not None else v.dtype
    a_src, a_dst, v, edge_score = _up(a_src), _up(a_dst), _up(v), _up(edge_score)
    grad_out, grad_alpha = _up(grad_out), _up(grad_alpha)
    score, buf = _gat_score(a_src, a_dst, graph, edge_score)               # [H, E]
    # leaky_relu'(x) = 1 for x > 0, negative_slope otherwise (as torch's own backward). The
    # flags are written as bytes and read as bool (a bool-valued comparison is 8x slower), and
    # take a quarter of the memory a copy of the pre-activation would.
    positive = torch.gt(score, 0, out=torch.empty_like(score, dtype=torch.uint8))
    positive = positive.view(torch.bool)                                   # [H, E]
    _leaky_relu_(score, negative_slope)
    keep = _keep_scale(dropout_mask, dropout, graph[3], score.dtype)
    g_pre, grad_v = _attend_bwd(score, lse, v, grad_out, grad_alpha, graph, keep, buf)
    g_pre = torch.where(positive, g_pre, torch.mul(g_pre, negative_slope, out=buf),
                        out=g_pre)                                         # [H, E]
    grad_a_dst = segment_sum(g_pre, graph[0], graph[2]).t()                # [T, H]
    grad_a_src = source_sum(g_pre, graph[1], a_src.size(0)).t()            # [S, H]
    if edge_score is not None:
        grad_es = _to_caller(g_pre, graph[3]).to(es_dtype)                 # [E, H]
    else:
        grad_es = g_pre.new_empty(0)
    return (grad_a_src.to(dtypes[0]).contiguous(), grad_a_dst.to(dtypes[1]).contiguous(),
            grad_v.to(dtypes[2]), grad_es)


@torch.library.custom_op("gatlib::gat_attention_backward", mutates_args=(), device_types="cpu")
def gat_attention_backward_op(grad_out: Tensor, grad_alpha: Optional[Tensor], a_src: Tensor,
                              a_dst: Tensor, v: Tensor, lse: Tensor, graph: List[Tensor],
                              edge_score: Optional[Tensor], dropout_mask: Optional[Tensor],
                              negative_slope: float,
                              dropout: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    return gat_backward(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score,
                        dropout_mask, negative_slope, dropout)


@gat_attention_backward_op.register_fake
def _(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, edge_score, dropout_mask,
      negative_slope, dropout):
    grad_es = torch.empty_like(edge_score) if edge_score is not None else v.new_empty(0)
    return torch.empty_like(a_src), torch.empty_like(a_dst), torch.empty_like(v), grad_es


_register_autograd(gat_attention_op, torch.ops.gatlib.gat_attention_backward)


# ------------------------------------------------------------------ dot-product attention

def _dot_score(q: Tensor, k: Tensor, graph: List[Tensor], bias: Optional[Tensor],
               scale: float) -> Tensor:
    """``scale * <q_i, k_j> (+ bias)`` -> ``[H, E]``."""
    score = sddmm(graph[0], graph[1], q, k).mul_(scale)                    # [H, E]
    if bias is not None:
        score.add_(_to_sorted(bias, graph[3]))
    return score


def dot_forward(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention):
    """The forward of ``gatlib::sparse_attention`` (arguments and outputs as the op's)."""
    (T, H, _), C = q.shape, v.size(2)
    folded = fold_heads(graph, H)
    if folded is None:
        return _dot_fwd(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention)
    out, lse, alpha = _dot_fwd(_one(q), _one(k), _one(v), folded, _one(bias), _one(dropout_mask),
                               scale, dropout, return_attention)
    return out.view(T, H, C), _lse_out(lse, T, H), alpha.reshape(-1, H)


def _dot_fwd(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention):
    dtype = v.dtype
    q, k, v, bias = _up(q), _up(k), _up(v), _up(bias)
    score = _dot_score(q, k, graph, bias, scale)                           # [H, E]
    keep = _keep_scale(dropout_mask, dropout, graph[3], score.dtype)
    out, lse, alpha = _attend_fwd(score, v, graph, q.size(0), keep)
    alpha = _to_caller(alpha, graph[3]) if return_attention else alpha.new_empty(0, alpha.size(0))
    return out.to(dtype), lse, alpha.to(dtype)


@torch.library.custom_op("gatlib::sparse_attention", mutates_args=(), device_types="cpu")
def sparse_attention_op(q: Tensor, k: Tensor, v: Tensor, graph: List[Tensor],
                        bias: Optional[Tensor], dropout_mask: Optional[Tensor], scale: float,
                        dropout: float, return_attention: bool) -> Tuple[Tensor, Tensor, Tensor]:
    return dot_forward(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention)


@sparse_attention_op.register_fake
def _(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention):
    T, H, C = q.size(0), v.size(1), v.size(2)
    E = graph[1].size(0) if return_attention else 0
    return (v.new_empty(T, H, C), q.new_empty(H, T, dtype=_acc_dtype(q.dtype)),
            v.new_empty(E, H))


def dot_backward(grad_out, grad_alpha, q, k, v, lse, graph, bias, dropout_mask, scale,
                 dropout):
    """The backward of ``gatlib::sparse_attention`` (arguments and outputs as
    ``gatlib::sparse_attention_backward``'s)."""
    H = q.size(1)
    folded = fold_heads(graph, H)
    if folded is None:
        return _dot_bwd(grad_out, grad_alpha, q, k, v, lse, graph, bias, dropout_mask, scale,
                        dropout)
    g_q, g_k, g_v, g_bias = _dot_bwd(_one(grad_out), _one(grad_alpha), _one(q), _one(k), _one(v),
                                     _lse_in(lse), folded, _one(bias), _one(dropout_mask),
                                     scale, dropout)
    g_bias = g_bias.view(-1, H) if bias is not None else g_bias
    return g_q.view(q.shape), g_k.view(k.shape), g_v.view(v.shape), g_bias


def _dot_bwd(grad_out, grad_alpha, q, k, v, lse, graph, bias, dropout_mask, scale, dropout):
    dtypes = (q.dtype, k.dtype, v.dtype)
    bias_dtype = bias.dtype if bias is not None else v.dtype
    q, k, v, bias = _up(q), _up(k), _up(v), _up(bias)
    grad_out, grad_alpha = _up(grad_out), _up(grad_alpha)
    rowptr, col, _, perm, rowptr_t, col_t, perm_t = graph
    score = _dot_score(q, k, graph, bias, scale)                           # [H, E]
    keep = _keep_scale(dropout_mask, dropout, perm, score.dtype)
    g_score, grad_v = _attend_bwd(score, lse, v, grad_out, grad_alpha, graph, keep,
                                  torch.empty_like(score))
    grad_q = spmm(rowptr, col, g_score, k, q.size(0)).mul_(scale)          # [T, H, D]
    g_score_t = index_select(g_score, 1, perm_t, out=score)                # [H, E]
    grad_k = spmm(rowptr_t, col_t, g_score_t, q, k.size(0)).mul_(scale)    # [S, H, D]
    if bias is not None:
        grad_bias = _to_caller(g_score, perm).to(bias_dtype)               # [E, H]
    else:
        grad_bias = g_score.new_empty(0)
    return grad_q.to(dtypes[0]), grad_k.to(dtypes[1]), grad_v.to(dtypes[2]), grad_bias


@torch.library.custom_op("gatlib::sparse_attention_backward", mutates_args=(),
                         device_types="cpu")
def sparse_attention_backward_op(grad_out: Tensor, grad_alpha: Optional[Tensor], q: Tensor,
                                 k: Tensor, v: Tensor, lse: Tensor, graph: List[Tensor],
                                 bias: Optional[Tensor], dropout_mask: Optional[Tensor],
                                 scale: float,
                                 dropout: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    return dot_backward(grad_out, grad_alpha, q, k, v, lse, graph, bias, dropout_mask, scale,
                        dropout)


@sparse_attention_backward_op.register_fake
def _(grad_out, grad_alpha, q, k, v, lse, graph, bias, dropout_mask, scale, dropout):
    grad_bias = torch.empty_like(bias) if bias is not None else v.new_empty(0)
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), grad_bias


_register_autograd(sparse_attention_op, torch.ops.gatlib.sparse_attention_backward)


# ------------------------------------------------------------------------- the eager path

class _Attention(torch.autograd.Function):
    """An attention op's forward and backward functions as one autograd node: the same
    arguments, outputs and gradients as the registered op (``lse`` not differentiable)."""

    @staticmethod
    def forward(ctx, fwd, bwd, x1, x2, v, graph, term, mask, param, dropout, return_attention):
        out, lse, alpha = fwd(x1, x2, v, graph, term, mask, param, dropout, return_attention)
        ctx.save_for_backward(x1, x2, v, lse, term, mask)
        ctx.graph, ctx.bwd, ctx.args, ctx.out_shape = graph, bwd, (param, dropout), out.shape
        ctx.mark_non_differentiable(lse)
        ctx.set_materialize_grads(False)
        return out, lse, alpha

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, _grad_lse, grad_alpha):
        x1, x2, v, lse, term, mask = ctx.saved_tensors
        if grad_alpha is not None and grad_alpha.numel() == 0:
            grad_alpha = None
        if grad_out is None:                   # only the weights were used
            grad_out = v.new_zeros(ctx.out_shape)
        g1, g2, g_v, g_term = ctx.bwd(grad_out, grad_alpha, x1, x2, v, lse, ctx.graph, term,
                                      mask, *ctx.args)
        return (None, None, g1, g2, g_v, None, g_term if term is not None else None, None,
                None, None, None)


_EAGER = {"gat_attention": (gat_forward, gat_backward),
          "sparse_attention": (dot_forward, dot_backward)}


def _plain(*tensors) -> bool:
    return all(t is None or type(t) is Tensor for t in tensors)


@functools.lru_cache(maxsize=None)
def eager_op(op: str):
    """The CPU backend's callable for ``op``: the registered ``torch.ops.gatlib.<op>``, or, for
    the attention ops in plain eager mode, the same functions under :class:`_Attention`."""
    registered = getattr(torch.ops.gatlib, op)
    if op not in _EAGER:
        return registered
    fwd, bwd = _EAGER[op]

    def call(x1, x2, v, graph, term, mask, param, dropout, return_attention):
        if (torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()
                or is_in_torch_dispatch_mode() or not _plain(x1, x2, v, term, mask, *graph)):
            return registered(x1, x2, v, graph, term, mask, param, dropout, return_attention)
        return _Attention.apply(fwd, bwd, x1, x2, v, graph, term, mask, param, dropout,
                                return_attention)
    return call


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
