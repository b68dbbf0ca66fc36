"""Linear (kernelised) attention over all nodes of each graph, in time linear in the nodes."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from ..ops.dense import _layout
from .dense import QKVAttention

__all__ = ["LinearGraphAttention", "linear_attention"]


def _feature_map(x: Tensor) -> Tensor:
    """``elu(x) + 1``: a positive feature map, so every weight and every normaliser is > 0."""
    return F.elu(x) + 1.0


def linear_attention(q: Tensor, k: Tensor, v: Tensor, batch: Optional[Tensor] = None) -> Tensor:
    r"""Kernelised attention of every node over all nodes of its own graph.

    .. math::
        o_i = \frac{\sum_{j : b_j = b_i} \phi(q_i)^\top \phi(k_j)\, v_j}
                   {\sum_{j : b_j = b_i} \phi(q_i)^\top \phi(k_j)}, \qquad
        \phi(x) = \mathrm{elu}(x) + 1

    (Katharopoulos et al., "Transformers are RNNs", ICML 2020): softmax's ``exp(q . k)``
    replaced by the kernel ``phi(q) . phi(k)``, so the sums over ``j`` factor into one
    ``[D, D]`` matrix ``sum_j phi(k_j) v_j^T`` and one ``[D]`` vector ``sum_j phi(k_j)`` per
    graph and head: ``O(N D^2)`` time and memory instead of ``O(sum_b n_b^2 D)``, and no
    ``[n, n]`` weight matrix. The weights of a node sum to one and are all positive.

    Args:
        q, k, v (Tensor [N, H, D]): queries, keys and values of the nodes.
        batch (LongTensor [N], optional): graph id of each node, sorted (PyG's ``batch``);
            None means one graph.

    Returns:
        ``[N, H, D]``.
    """
    N, H, D = q.shape
    if k.shape != q.shape or v.shape[:2] != (N, H):
        raise ValueError(f"q, k and v must be [N, H, D] with one shape for q and k, got "
                         f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if N == 0:                          # no nodes: an empty result that stays in autograd
        return v + (q.sum() + k.sum()) * 0                                 # [0, H, Dv]
    batch, _ = _layout(batch, N, q.device)
    # Padded per graph ([B, L, H, D], zero rows past a graph's nodes), so that the per-graph
    # sums are batched matrix products and no [N, H, D, Dv] outer product is ever formed.
    fq, mask = to_dense_batch(_feature_map(q), batch)                      # [B, L, H, D]
    fk, _ = to_dense_batch(_feature_map(k), batch)                         # [B, L, H, D]
    vp, _ = to_dense_batch(v, batch)                                       # [B, L, H, Dv]
    kv_sum = torch.einsum("blhd,blhe->bhde", fk, vp)                       # [B, H, D, Dv]
    k_sum = fk.sum(1)                                                      # [B, H, D]
    num = torch.einsum("blhd,bhde->blhe", fq, kv_sum)                      # [B, L, H, Dv]
    den = torch.einsum("blhd,bhd->blh", fq, k_sum).unsqueeze(-1)           # [B, L, H, 1]
    return (num / den.clamp_min(torch.finfo(den.dtype).tiny))[mask]        # [N, H, Dv]


class LinearGraphAttention(QKVAttention):
    r"""Multi-head linear attention of every node over all nodes of its own graph.

    The layout of :class:`DenseGraphAttention` (query, key, value and output maps, ``heads``
    heads of ``channels // heads`` features) with :func:`linear_attention` in place of softmax
    attention: global attention whose cost grows with the number of nodes, not its square.

    Args:
        channels (int): input and output features ``F``; must be divisible by ``heads``.
        heads (int, default 1): number of heads ``H``.
        bias (bool, default True): learn additive biases in the four linear maps.

    Shapes:
        x ``[N, F]``, batch ``[N]`` (sorted graph ids, or None for one graph) -> ``[N, F]``.
    """

    def forward(self, x: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        q, k, v = self.qkv(x)                                             # [N, H, D] each
        out = linear_attention(q, k, v, batch)                            # [N, H, D]
        return self.lin_out(out.reshape(x.size(0), -1))                   # [N, F]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads})"
