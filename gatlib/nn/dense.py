"""Dense (global) graph attention: every node attends over all nodes of its own graph."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_positive_int, check_same_device, check_tensor
from ..ops.dense import _layout, dense_attention

__all__ = ["DenseGraphAttention"]


class QKVAttention(nn.Module):
    """What the global attention layers share: ``heads`` heads of ``channels // heads``
    features, query, key, value and output maps (Xavier weights, zero biases), and the checked
    projection of ``x`` to per-head queries, keys and values (:meth:`qkv`)."""

    def __init__(self, channels: int, heads: int = 1, bias: bool = True) -> None:
        super().__init__()
        check_positive_int(channels, "channels")
        check_positive_int(heads, "heads")
        if channels % heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads}); the "
                             f"head dim is channels // heads, so pick e.g. channels="
                             f"{heads * max(1, round(channels / heads))}")
        self.channels = channels
        self.heads = heads
        self.head_dim = channels // heads
        self.lin_q = nn.Linear(channels, channels, bias=bias)
        self.lin_k = nn.Linear(channels, channels, bias=bias)
        self.lin_v = nn.Linear(channels, channels, bias=bias)
        self.lin_out = nn.Linear(channels, channels, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin_q, self.lin_k, self.lin_v, self.lin_out):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def qkv(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``x [N, F]`` checked and mapped to ``(q, k, v)``, each ``[N, H, D]``."""
        check_tensor(x, "x", dim=2, shape=(None, self.channels))
        w = self.lin_q.weight
        if x.dtype != w.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"x has dtype {x.dtype} but the layer's weights are {w.dtype}; "
                            f"convert one of them (x.to({w.dtype}) or layer.to({x.dtype}))")
        N, H, D = x.size(0), self.heads, self.head_dim
        return (self.lin_q(x).view(N, H, D), self.lin_k(x).view(N, H, D),
                self.lin_v(x).view(N, H, D))


class DenseGraphAttention(QKVAttention):
    r"""Multi-head self-attention of every node over all nodes of its own graph.

    .. math::
        \alpha^h_{ij} = \mathrm{softmax}_{j : b_j = b_i}\Big(
            \frac{(W_q x_i)_h \cdot (W_k x_j)_h}{\sqrt{D}} + B^h_{ij}\Big), \qquad
        o_i = W_o \,\big\Vert_{h=1}^{H} \sum_{j : b_j = b_i} \alpha^h_{ij} (W_v x_j)_h

    where ``b`` is the graph id of each node (``batch``), ``D = channels // heads`` and ``B`` an
    optional additive bias over node pairs. This is sparse attention over the disjoint union of
    complete graphs (self-loops included), run as padded dense attention
    (:func:`gatlib.ops.dense_attention`) with no Python loop over graphs.

    Args:
        channels (int): input and output features ``F``; must be divisible by ``heads``.
        heads (int, default 1): number of attention heads ``H``.
        dropout (float, default 0.0): dropout on the attention weights (training only).
        bias (bool, default True): learn additive biases in the four linear maps.

    Shapes:
        x ``[N, F]``, batch ``[N]`` (sorted graph ids, or None for one graph), attn_bias
        ``[N, N]``, ``[H, N, N]`` or per graph ``[B, H, L, L]`` -> ``[N, F]`` (and the weights
        ``[B, H, L, L]`` when asked for).
    """

    def __init__(self, channels: int, heads: int = 1, dropout: float = 0.0,
                 bias: bool = True) -> None:
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        super().__init__(channels, heads, bias)
        self.dropout = float(dropout)

    def forward(self, x: Tensor, batch: Optional[Tensor] = None,
                attn_bias: Optional[Tensor] = None, return_attention_weights: bool = False):
        """Attend over all nodes of each graph.

        Args:
            x: node features.
            batch (LongTensor, optional): graph id of each node, sorted (PyG's ``batch``);
                None means all nodes form one graph.
            attn_bias (Tensor, optional): additive score bias over node pairs ``(i, j)`` (row i
                = query/target, column j = key/source); ``-inf`` masks a pair, and a node whose
                every key is masked gets a zero attention output. Either over the batch's
                nodes, ``[N, N]`` (shared by all heads) or ``[H, N, N]``, entries between
                different graphs ignored; or per graph, padded as Graphormer-style models build
                it, ``[B, H, L, L]`` or ``[B, 1, L, L]`` (shared by the heads): entry
                ``[b, h, i, j]`` for the ``i``-th and ``j``-th nodes of graph ``b``, ``L`` at
                least the largest graph's node count (entries past a graph's nodes ignored).
            return_attention_weights (bool, default False): also return the attention weights
                (before dropout) per graph, ``[B, H, L, L]`` with ``L`` the largest graph's
                node count, zero past each graph's nodes.

        Shapes:
            x ``[N, F]``, batch ``[N]``, attn_bias ``[N, N]``, ``[H, N, N]`` or
            ``[B, H', L', L']`` -> ``[N, F]``, or ``([N, F], [B, H, L, L])``.
        """
        q, k, v = self.qkv(x)                                             # [N, H, D] each
        N, H, D = q.shape
        padded_bias = attn_bias is not None and attn_bias.dim() == 4
        if return_attention_weights or padded_bias:
            out, weights = self._per_graph(q, k, v, batch, attn_bias)     # [N, H, D]
            out = self.lin_out(out.reshape(N, H * D))                     # [N, F]
            return (out, weights) if return_attention_weights else out
        out = dense_attention(q, k, v, batch, dropout=self.dropout, training=self.training,
                              attn_bias=attn_bias)                        # [N, H, D]
        return self.lin_out(out.reshape(N, H * D))                        # [N, F]

    def _per_graph(self, q: Tensor, k: Tensor, v: Tensor, batch: Optional[Tensor],
                   attn_bias: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """``(out [N, H, D], weights [B, H, L, L])``: the attention with its weights formed,
        each graph padded to the largest one's ``L`` nodes (the path for a per-graph bias and
        for returning the weights; the others run on :func:`gatlib.ops.dense_attention`)."""
        N, H, D = q.shape
        if N == 0:                         # no graphs; the result stays inside autograd
            empty = v + (q.sum() + k.sum()) * 0                           # [0, H, D]
            return empty, q.new_zeros(0, H, 0, 0)
        batch, counts = _layout(batch, N, q.device)
        B, L = counts.numel(), int(counts.max())
        first = torch.cumsum(counts, 0) - counts                          # [B]
        slot = batch * L + torch.arange(N, device=q.device) - first[batch]  # [N] in [0, B*L)

        def padded(t: Tensor) -> Tensor:                                  # [N, H, D] ->
            out = t.new_zeros(B * L, H, D).index_copy(0, slot, t)         # [B*L, H, D]
            return out.view(B, L, H, D).transpose(1, 2)                   # [B, H, L, D]

        keep = torch.zeros(B * L, dtype=torch.bool, device=q.device)
        keep[slot] = True
        keep = keep.view(B, L)                                            # [B, L] real nodes
        score = padded(q) @ padded(k).transpose(-1, -2) / math.sqrt(D)    # [B, H, L, L]
        if attn_bias is not None:
            score = score + self._padded_bias(attn_bias, batch, slot, B, L, H).to(score.dtype)
        score = score.masked_fill(~keep.view(B, 1, 1, L), float("-inf"))
        # A padding row, or a row whose every key is masked, gets zero weights.
        live = torch.isfinite(score).any(-1, keepdim=True) & keep.view(B, 1, L, 1)  # [B,H,L,1]
        weights = torch.softmax(score.masked_fill(~live, 0.0), dim=-1) * live  # [B, H, L, L]
        dropped = F.dropout(weights, p=self.dropout, training=self.training)
        out = dropped @ padded(v)                                         # [B, H, L, D]
        out = out.transpose(1, 2).reshape(B * L, H, D).index_select(0, slot)  # [N, H, D]
        return out, weights

    def _padded_bias(self, attn_bias: Tensor, batch: Tensor, slot: Tensor, B: int, L: int,
                     H: int) -> Tensor:
        """``attn_bias`` in any accepted form as ``[B, H or 1, L, L]`` (0 at padding)."""
        N = batch.numel()
        check_tensor(attn_bias, "attn_bias")
        check_same_device(attn_bias=attn_bias, batch=batch)
        if attn_bias.dim() == 4:
            if (attn_bias.size(0) != B or attn_bias.size(1) not in (1, H)
                    or attn_bias.size(2) != attn_bias.size(3) or attn_bias.size(2) < L):
                raise ValueError(f"a per-graph attn_bias must have shape [B, H, L, L] = "
                                 f"[{B}, {H}, L, L] or [B, 1, L, L] with L >= {L} (the largest "
                                 f"graph's node count), got {tuple(attn_bias.shape)}")
            return attn_bias[:, :, :L, :L]
        bias = attn_bias.unsqueeze(0) if attn_bias.dim() == 2 else attn_bias  # [H', N, N]
        if bias.dim() != 3 or bias.size(0) not in (1, H) or bias.shape[1:] != (N, N):
            raise ValueError(f"attn_bias must have shape [N, N] = [{N}, {N}], [H, N, N] = "
                             f"[{H}, {N}, {N}] or per graph [B, H, L, L], got "
                             f"{tuple(attn_bias.shape)}")
        # Each node's own graph's block, moved to its padded slots (other entries stay 0).
        Hb = bias.size(0)
        node = torch.full((B * L,), -1, dtype=torch.long, device=batch.device)
        node[slot] = torch.arange(N, device=batch.device)
        node = node.view(B, L)                                            # [B, L], -1 padding
        safe = node.clamp(min=0)
        out = bias[:, safe.unsqueeze(-1), safe.unsqueeze(-2)]             # [H', B, L, L]
        real = (node >= 0)
        out = out.masked_fill(~(real.unsqueeze(-1) & real.unsqueeze(-2)), 0.0)
        return out.transpose(0, 1).reshape(B, Hb, L, L)                  # [B, H', L, L]

    def __repr__(self) -> str:
        extra = f", dropout={self.dropout}" if self.dropout > 0 else ""
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads}{extra})"
