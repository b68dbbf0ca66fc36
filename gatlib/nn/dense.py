"""Dense (global) graph attention: every node attends over all nodes of its own graph."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .._checks import check_positive_int, check_tensor
from ..ops.dense import dense_attention

__all__ = ["DenseGraphAttention"]


class DenseGraphAttention(nn.Module):
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
        ``[N, N]`` or ``[H, N, N]`` -> ``[N, F]``.
    """

    def __init__(self, channels: int, heads: int = 1, dropout: float = 0.0,
                 bias: bool = True) -> None:
        super().__init__()
        check_positive_int(channels, "channels")
        check_positive_int(heads, "heads")
        if channels % heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads}); the "
                             f"head dim is channels // heads, so pick e.g. channels="
                             f"{heads * max(1, round(channels / heads))}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.channels = channels
        self.heads = heads
        self.head_dim = channels // heads
        self.dropout = float(dropout)
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

    def forward(self, x: Tensor, batch: Optional[Tensor] = None,
                attn_bias: Optional[Tensor] = None) -> Tensor:
        """Attend over all nodes of each graph.

        Args:
            x: node features.
            batch (LongTensor, optional): graph id of each node, sorted (PyG's ``batch``);
                None means all nodes form one graph.
            attn_bias (Tensor, optional): additive score bias over node pairs ``(i, j)`` (row i
                = query/target, column j = key/source), shared by all heads when ``[N, N]``;
                ``-inf`` masks a pair. Entries between different graphs are ignored. A node
                whose every key is masked gets a zero attention output.

        Shapes:
            x ``[N, F]``, batch ``[N]``, attn_bias ``[N, N]`` or ``[H, N, N]`` -> ``[N, F]``.
        """
        check_tensor(x, "x", dim=2, shape=(None, self.channels))
        w = self.lin_q.weight
        if x.dtype != w.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"x has dtype {x.dtype} but the layer's weights are {w.dtype}; "
                            f"convert one of them (x.to({w.dtype}) or layer.to({x.dtype}))")
        N, H, D = x.size(0), self.heads, self.head_dim
        q = self.lin_q(x).view(N, H, D)                                   # [N, H, D]
        k = self.lin_k(x).view(N, H, D)                                   # [N, H, D]
        v = self.lin_v(x).view(N, H, D)                                   # [N, H, D]
        out = dense_attention(q, k, v, batch, dropout=self.dropout, training=self.training,
                              attn_bias=attn_bias)                             # [N, H, D]
        return self.lin_out(out.reshape(N, H * D))                        # [N, F]

    def __repr__(self) -> str:
        extra = f", dropout={self.dropout}" if self.dropout > 0 else ""
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads}{extra})"
