"""Dense attention: every node attends over every node of its own graph."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..graph.validate import check_same_device, check_tensor

__all__ = ["dense_attention"]


def dense_attention(q: Tensor, k: Tensor, v: Tensor, batch: Optional[Tensor] = None,
                    scale: Optional[float] = None, dropout: float = 0.0,
                    training: bool = True, attn_bias: Optional[Tensor] = None) -> Tensor:
    r"""Scaled dot-product attention of every node over all nodes of its own graph.

    .. math::
        o_i = \sum_{j : b_j = b_i} \mathrm{softmax}_j(\mathrm{scale}\; q_i \cdot k_j
        + B_{ij})\, v_j

    The graphs of a batch are padded to ``[B, H, L, *]`` and run through one call of
    ``torch.nn.functional.scaled_dot_product_attention`` with a key-padding mask (FlashAttention
    or memory-efficient attention on a GPU); there is no Python loop over graphs.

    Args:
        q, k: queries and keys of all nodes.
        v: values of all nodes.
        batch (LongTensor, optional): graph id of each node, sorted (PyG's ``batch``); None
            means one graph.
        scale (float, optional): default ``1 / sqrt(D)``.
        dropout (float, default 0.0): attention dropout probability.
        training (bool, default True): apply dropout only when True.
        attn_bias (Tensor, optional): additive score attn_bias over node pairs ``(i, j)`` (row i = query,
            column j = key), shared by all heads when ``[N, N]``; ``-inf`` masks a pair.
            Entries between different graphs are ignored. A node whose every key is masked
            gets a zero output, as in :func:`sparse_attention`.

    Shapes:
        q, k ``[N, H, D]``, v ``[N, H, C]``, batch ``[N]``, attn_bias ``[N, N]`` or ``[H, N, N]``
        -> ``[N, H, C]``.
    """
    check_tensor(q, "q", dim=3)
    N, H, D = q.shape
    check_tensor(k, "k", dim=3, shape=(N, H, D))
    check_tensor(v, "v", dim=3, shape=(N, H, None))
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    if attn_bias is not None:
        check_tensor(attn_bias, "attn_bias")
        attn_bias = attn_bias.unsqueeze(0) if attn_bias.dim() == 2 else attn_bias              # [H', N, N]
        if attn_bias.dim() != 3 or attn_bias.size(0) not in (1, H) or attn_bias.shape[1:] != (N, N):
            raise ValueError(f"attn_bias must have shape [N, N] = [{N}, {N}] or [H, N, N] = "
                             f"[{H}, {N}, {N}], got {tuple(attn_bias.shape)}")
    check_same_device(q=q, k=k, v=v, batch=batch, attn_bias=attn_bias)
    p = float(dropout) if training else 0.0
    if scale is None:
        scale = 1.0 / math.sqrt(D) if D > 0 else 1.0
    if N == 0:
        return v.new_zeros(0, H, v.size(2))
    if batch is None and attn_bias is None:
        out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1),
                                             v.transpose(0, 1), dropout_p=p, scale=scale)
        return out.transpose(0, 1)                                         # [N, H, C]

    batch, counts, pos = _layout(batch, N, q.device)
    B, L = counts.numel(), int(counts.max())
    qp, kp, vp = (_pad(x, batch, pos, B, L) for x in (q, k, v))           # [B, H, L, *]
    # Keys beyond a graph's size are masked; graphs with no nodes keep all keys so that their
    # (discarded) padding rows stay finite.
    keep = torch.arange(L, device=q.device).view(1, L) < counts.view(B, 1)  # [B, L]
    dead = None
    if attn_bias is None:
        mask = (keep | (counts == 0).view(B, 1)).view(B, 1, 1, L)
    else:
        # Each graph's diagonal block of the attn_bias, then -inf on padding keys. Rows with every
        # key masked get a zero attn_bias inside the kernel (no NaN, forward or backward) and a zero
        # output afterwards.
        first = torch.cumsum(counts, 0) - counts                           # [B]
        node = (first.view(B, 1) + torch.arange(L, device=q.device)).clamp(max=N - 1)  # [B, L]
        mask = attn_bias[:, node.view(B, L, 1), node.view(B, 1, L)]             # [H', B, L, L]
        mask = mask.transpose(0, 1).to(q.dtype).masked_fill(~keep.view(B, 1, 1, L),
                                                             float("-inf"))
        dead = torch.isneginf(mask).all(dim=-1, keepdim=True)              # [B, H', L, 1]
        mask = mask.masked_fill(dead, 0.0).expand(B, H, L, L)              # [B, H, L, L]
    out = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=mask, dropout_p=p,
                                         scale=scale)                      # [B, H, L, C]
    if dead is not None:
        out = out.masked_fill(dead.expand(B, H, L, 1), 0.0)
    return out.transpose(1, 2)[batch, pos]                                 # [N, H, C]


def _layout(batch: Optional[Tensor], N: int, device) -> Tuple[Tensor, Tensor, Tensor]:
    """Validate ``batch`` and return ``(batch, nodes per graph [B], position in graph [N])``."""
    if batch is None:
        batch = torch.zeros(N, dtype=torch.long, device=device)
    check_tensor(batch, "batch", dim=1, floating=False, shape=(N,))
    if batch.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"batch must be an integer tensor (torch.long), got {batch.dtype}")
    if int(batch.min()) < 0:
        raise ValueError("batch holds a negative graph id; graph ids must be >= 0")
    if N > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted (nodes of each graph contiguous, as in PyG's "
                         "Batch); sort the nodes with torch.sort(batch, stable=True)")
    batch = batch.long()
    counts = torch.bincount(batch)                                         # [B]
    ptr = torch.cumsum(counts, 0) - counts                                 # [B] first node
    return batch, counts, torch.arange(N, device=device) - ptr[batch]      # [N]


def _pad(x: Tensor, batch: Tensor, pos: Tensor, B: int, L: int) -> Tensor:
    out = x.new_zeros(B, L, x.size(1), x.size(2))
    out = out.index_put((batch, pos), x)                                   # [B, L, H, *]
    return out.transpose(1, 2)                                             # [B, H, L, *]
