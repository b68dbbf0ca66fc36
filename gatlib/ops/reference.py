"""Pure-PyTorch reference implementations: the specification every backend is tested against.

They are written for clarity, not speed: they build the per-edge ``[E, H, C]`` tensor that the
fast backends never build, and rely on autograd for the backward pass. All tensors are in the
caller's edge order; no sorting is involved, so the reference shares no code with the backends.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "segment_softmax_ref",
    "attend_ref",
    "sparse_attention_ref",
    "gat_attention_ref",
    "dense_attention_ref",
]


def segment_softmax_ref(src: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    """Softmax of ``src [E, *]`` over the edges that share a target ``index [E]``.

    A segment whose scores are all ``-inf`` gets zeros, not NaN.
    """
    shape = (num_nodes,) + tuple(src.shape[1:])
    idx = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)       # [E, *]
    m = torch.full(shape, -math.inf, dtype=src.dtype, device=src.device)
    m = m.scatter_reduce(0, idx, src.detach(), "amax", include_self=True)  # [N, *]
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(src - m.gather(0, idx))                                  # [E, *]
    z = torch.zeros(shape, dtype=src.dtype, device=src.device).index_add(0, index, p)
    z = z.gather(0, idx)                                                   # [E, *]
    return p / torch.where(z > 0, z, torch.ones_like(z))


def attend_ref(score: Tensor, v: Tensor, edge_index: Tensor, num_dst: int,
               dropout_mask: Optional[Tensor] = None,
               dropout: float = 0.0) -> Tuple[Tensor, Tensor]:
    """Softmax ``score [E, H]`` over in-edges, then ``out[i] = sum_j alpha_ij v_j``.

    ``dropout_mask [E, H]`` (bool, True = keep) drops attention weights, the kept ones scaled by
    ``1 / (1 - dropout)``. Returns ``out [T, H, C]`` and ``alpha [E, H]`` (before dropout).
    """
    src, dst = edge_index[0], edge_index[1]
    alpha = segment_softmax_ref(score, dst, num_dst)                       # [E, H]
    w = alpha
    if dropout_mask is not None:
        w = alpha * dropout_mask.to(alpha.dtype) / (1.0 - dropout)         # [E, H]
    msg = v[src] * w.unsqueeze(-1)                                         # [E, H, C]
    out = torch.zeros((num_dst,) + tuple(v.shape[1:]), dtype=v.dtype, device=v.device)
    return out.index_add(0, dst, msg), alpha                               # [T, H, C]


def sparse_attention_ref(q: Tensor, k: Tensor, v: Tensor, edge_index: Tensor,
                         bias: Optional[Tensor] = None, scale: Optional[float] = None,
                         dropout_mask: Optional[Tensor] = None,
                         dropout: float = 0.0) -> Tuple[Tensor, Tensor]:
    """Dot-product attention of each target over its in-edges: ``q [T,H,D]``, ``k [S,H,D]``,
    ``v [S,H,C]``, ``bias [E,H]``. Returns ``(out [T,H,C], alpha [E,H])``."""
    src, dst = edge_index[0], edge_index[1]
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    score = (q[dst] * k[src]).sum(-1) * scale                              # [E, H]
    if bias is not None:
        score = score + bias
    return attend_ref(score, v, edge_index, q.size(0), dropout_mask, dropout)


def gat_attention_ref(a_src: Tensor, a_dst: Tensor, v: Tensor, edge_index: Tensor,
                      edge_score: Optional[Tensor] = None, negative_slope: float = 0.2,
                      dropout_mask: Optional[Tensor] = None,
                      dropout: float = 0.0) -> Tuple[Tensor, Tensor]:
    """Additive (GAT) attention: ``leaky_relu(a_src[j] + a_dst[i] (+ edge_score))``, softmax over
    in-edges, weighted sum of ``v``. Returns ``(out [T,H,C], alpha [E,H])``."""
    src, dst = edge_index[0], edge_index[1]
    score = a_src[src] + a_dst[dst]                                        # [E, H]
    if edge_score is not None:
        score = score + edge_score
    # A -inf pre-activation (a masked edge) stays -inf for every slope.
    score = torch.where(torch.isneginf(score), score, F.leaky_relu(score, negative_slope))
    return attend_ref(score, v, edge_index, a_dst.size(0), dropout_mask, dropout)


def dense_attention_ref(q: Tensor, k: Tensor, v: Tensor, batch: Optional[Tensor] = None,
                        scale: Optional[float] = None) -> Tensor:
    """Every node attends over every node of its own graph: explicit ``[H, N, N]`` scores with a
    same-graph mask. ``q, k [N,H,D]``, ``v [N,H,C]`` -> ``[N,H,C]``."""
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    score = torch.einsum("ihd,jhd->hij", q, k) * scale                   # [H, N, N]
    if batch is not None:
        same = batch.view(-1, 1) == batch.view(1, -1)                      # [N, N]
        score = score.masked_fill(~same, -math.inf)
    attn = torch.softmax(score, dim=-1)                                    # [H, N, N]
    return torch.einsum("hij,jhc->ihc", attn, v)                          # [N, H, C]
