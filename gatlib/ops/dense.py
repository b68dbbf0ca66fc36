"""Dense attention: every node attends over every node of its own graph."""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_real, check_same_device, check_tensor

__all__ = ["dense_attention"]


def dense_attention(q: Tensor, k: Tensor, v: Tensor, batch: Optional[Tensor] = None,
                    scale: Optional[float] = None, dropout: float = 0.0,
                    training: bool = True, attn_bias: Optional[Tensor] = None) -> Tensor:
    r"""Scaled dot-product attention of every node over all nodes of its own graph.

    .. math::
        o_i = \sum_{j : b_j = b_i} \mathrm{softmax}_j(\mathrm{scale}\; q_i \cdot k_j
        + B_{ij})\, v_j

    The graphs of a batch are grouped by size (within a factor of sqrt(2)), each group padded
    to ``[B, H, L, *]`` for its own largest graph and run through one call of
    ``torch.nn.functional.scaled_dot_product_attention`` with a key-padding mask (FlashAttention
    or memory-efficient attention on a GPU); there is no Python loop over graphs, and a batch
    with one large graph among many small ones does not pad them all to the large one.

    Args:
        q, k: queries and keys of all nodes.
        v: values of all nodes.
        batch (LongTensor, optional): graph id of each node, sorted (PyG's ``batch``); None
            means one graph.
        scale (float, optional): a finite number > 0; default ``1 / sqrt(D)``.
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
    scale = check_real(scale, "scale", positive=True)
    if N == 0:
        # Empty, but inside autograd: built from q, k and v, so requires_grad flows and the
        # backward pass gives each of them its (empty) gradient.
        return v + (q.sum() + k.sum()) * 0                                 # [0, H, C]
    if batch is None and attn_bias is None:
        out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1),
                                             v.transpose(0, 1), dropout_p=p, scale=scale)
        return out.transpose(0, 1)                                         # [N, H, C]

    batch, counts = _layout(batch, N, q.device)
    first = torch.cumsum(counts, 0) - counts                               # [B] first node
    if attn_bias is not None:
        attn_bias = attn_bias.to(q.dtype)
    groups = [_group_layout(graphs, counts, first) for graphs in _size_buckets(counts)]
    # One gather for all groups (padding slots included), so the backward pass scatters into
    # q, k and v once rather than once per group.
    flat = torch.cat([node.view(-1) for node, _ in groups])                # [sum B*L]
    sizes = [node.numel() for node, _ in groups]
    parts = [torch.split(x[flat], sizes) for x in (q, k, v)]               # [B*L, H, *] each
    outs = []
    for (node, keep), qg, kg, vg in zip(groups, *parts):
        outs.append(_attend_group(qg, kg, vg, node, keep, scale, p, attn_bias))
    out = torch.cat(outs)                                                  # [N, H, C]
    if len(outs) == 1:          # one group: its graphs in id order, so its nodes in order
        return out
    node = torch.cat([node[keep] for node, keep in groups])                # [N]
    inverse = torch.empty_like(node)
    inverse[node] = torch.arange(N, device=q.device)
    return out[inverse]                                                    # [N, H, C]


def _size_buckets(counts: Tensor) -> List[Tensor]:
    """Group the non-empty graphs by size, within a factor of sqrt(2) of each other.

    Each group is padded only to its own largest graph, so a batch that mixes a few large graphs
    with many small ones (PROTEINS: 4 to 620 nodes) does not pay ``B * L_max^2`` for its padding;
    the padded work is at most twice the exact work per group. One call per group, never one per
    graph: a batch of graphs of up to ``n`` nodes makes at most ``2 log2(n) + 1`` calls.
    """
    graphs = (counts > 0).nonzero().view(-1)                               # [B']
    if graphs.numel() == 0:
        return []
    key = torch.ceil(2 * torch.log2(counts[graphs].double())).long()       # [B']
    order = torch.sort(key, stable=True)
    _, sizes = torch.unique_consecutive(order.values, return_counts=True)
    return list(torch.split(graphs[order.indices], sizes.tolist()))


def _group_layout(graphs: Tensor, counts: Tensor, first: Tensor) -> Tuple[Tensor, Tensor]:
    """Node id of each padded slot ``[B, L]`` of the graphs ``graphs``, and which slots are real.

    Padding slots point at the first node of their own graph: their keys are masked and their
    query rows dropped, so they only need to be finite."""
    n = counts[graphs]                                                     # [B]
    B, L = graphs.numel(), int(n.max())
    pos = torch.arange(L, device=counts.device)
    keep = pos.view(1, L) < n.view(B, 1)                                   # [B, L]
    return first[graphs].view(B, 1) + torch.where(keep, pos.view(1, L), 0), keep


def _attend_group(q: Tensor, k: Tensor, v: Tensor, node: Tensor, keep: Tensor, scale: float,
                  p: float, attn_bias: Optional[Tensor]) -> Tensor:
    """Padded SDPA over one group of graphs; ``q, k, v`` are their gathered slots ``[B*L, H, *]``.
    Returns the outputs of the real slots, in slot order ``[n, H, C]``."""
    (B, L), H = keep.shape, q.size(1)
    qp, kp, vp = (x.view(B, L, H, x.size(2)).transpose(1, 2) for x in (q, k, v))  # [B, H, L, *]
    dead = None
    if attn_bias is None:
        mask = keep.view(B, 1, 1, L)
    else:
        # Each graph's diagonal block of the bias, then -inf on padding keys. Rows with every
        # key masked get a zero bias inside the kernel (no NaN, forward or backward) and a zero
        # output afterwards.
        mask = attn_bias[:, node.view(B, L, 1), node.view(B, 1, L)]       # [H', B, L, L]
        mask = mask.transpose(0, 1).masked_fill(~keep.view(B, 1, 1, L), float("-inf"))
        dead = torch.isneginf(mask).all(dim=-1, keepdim=True)              # [B, H', L, 1]
        mask = mask.masked_fill(dead, 0.0).expand(B, H, L, L)              # [B, H, L, L]
    out = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=mask, dropout_p=p,
                                         scale=scale)                      # [B, H, L, C]
    if dead is not None:
        out = out.masked_fill(dead.expand(B, H, L, 1), 0.0)
    return out.transpose(1, 2)[keep]                                       # [n, H, C]


def _layout(batch: Optional[Tensor], N: int, device) -> Tuple[Tensor, Tensor]:
    """Validate ``batch`` and return ``(batch, nodes per graph [B])``."""
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
    return batch, torch.bincount(batch)                                    # [N], [B]
