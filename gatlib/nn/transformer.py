"""GraphTransformerConv: dot-product attention over neighbours with edge features in keys and
values and an optional gated residual (PyG's ``TransformerConv``)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..graph.adjacency import Adjacency, as_adjacency
from ..graph.csr import GraphCSR
from ..ops import sparse_attention
from ..ops.dropout import keep_mask
from .conv_common import (COUNTS, AttentionConv, NodeInput, Pair, Size, check_features,
                          edge_features, linear, node_inputs)

__all__ = ["GraphTransformerConv", "TransformerConv"]


class GraphTransformerConv(AttentionConv):
    r"""Dot-product attention over neighbours with edge features in keys and values and an
    optional gated residual (Shi et al. 2021, "Masked Label Prediction"; PyG's
    ``TransformerConv``).

    .. math::
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}\Big(\frac{(W_q x_i)^\top
        (W_k x_j + W_e e_{ij})}{\sqrt{C}}\Big), \qquad
        m_i = \big\Vert_h \sum_j \alpha_{ij}^h (W_v x_j + W_e e_{ij})^h

    and ``x_i' = m_i + W_r x_i`` (``root_weight``), or with ``beta``:
    ``b_i = \sigma(w^\top [m_i, W_r x_i, m_i - W_r x_i])``, ``x_i' = b_i W_r x_i + (1 - b_i) m_i``.

    Nothing per edge beyond ``[E, H]`` is built, and with edge features ``[E, H, edge_dim]``:
    the projected edge features ``W_e e_ij [E, H, C]`` never are (see ``_with_edge_features``).

    Args:
        in_channels (int or (int, int)): input features (source, target for bipartite);
            ``-1`` for lazy initialisation.
        out_channels (int): features per head.
        heads (int, default 1): attention heads.
        concat (bool, default True): concatenate heads (else average them).
        beta (bool, default False): gated residual.
        dropout (float, default 0.0): attention dropout (training only).
        edge_dim (int, optional): edge feature size.
        bias (bool, default True): biases of the query/key/value/skip maps.
        root_weight (bool, default True): add the skip map ``W_r x_i``.

    Forward: as :class:`GATConv` (target features required; no self-loops are added);
    ``return_attention_weights`` (any bool, as PyG) returns ``(edge_index, alpha [E, H])`` in
    the input's form (weights before dropout).

    Shapes:
        x ``[N, F]`` or ``([S, F_s], [T, F_t])`` -> ``[T, H * out_channels]`` or
        ``[T, out_channels]``, in the dtype of the projected features.

    A PyG ``MessagePassing``, as :class:`GATConv`; ``gatlib.nn.TransformerConv`` is the same
    layer under PyG's name.
    """
    _MAPS = ("lin_key", "lin_query", "lin_value", "lin_edge", "lin_skip", "lin_beta")
    _GLOROT_MAPS = False

    def __init__(self, in_channels: Pair, out_channels: int, heads: int = 1, concat: bool = True,
                 beta: bool = False, dropout: float = 0.0, edge_dim: Optional[int] = None,
                 bias: bool = True, root_weight: bool = True):
        super().__init__(in_channels, out_channels, heads, concat, dropout, edge_dim)
        self.beta, self.root_weight = beta and root_weight, root_weight
        HC = heads * out_channels
        in_src, in_dst = ((in_channels, in_channels) if isinstance(in_channels, int)
                          else in_channels)
        self.lin_key = linear(in_src, HC, bias)
        self.lin_query = linear(in_dst, HC, bias)
        self.lin_value = linear(in_src, HC, bias)
        self.lin_edge = nn.Linear(edge_dim, HC, bias=False) if edge_dim is not None else None
        total = HC if concat else out_channels
        self.lin_skip = linear(in_dst, total, bias) if root_weight else None
        self.lin_beta = nn.Linear(3 * total, 1, bias=False) if self.beta else None
        self.reset_parameters()

    def _withedge_features(self, q: Tensor, k: Tensor, v: Tensor, graph: GraphCSR,
                            adj: Adjacency, edge_attr: Tensor,
                            scale: float) -> Tuple[Tensor, Tensor]:
        """``(out [T, H, C], alpha [E, H])`` with ``e_ij = W_e x_ij`` in keys and values, and no
        ``[E, H, C]`` tensor: per head, ``q_i . e_ij = (W_e^T q_i) . x_ij`` and
        ``sum_j w_ij e_ij = W_e (sum_j w_ij x_ij)``, so the edge features enter as ``[E, H, F_e]``
        at most (``F_e = edge_dim``), beside the fused op's ``sum_j w_ij v_j``."""
        H, C = self.heads, self.out_channels
        x_e = edge_attr.to(q.dtype)                                        # [E, F_e]
        w_e = self.lin_edge.weight.to(q.dtype).view(H, C, -1)              # [H, C, F_e]
        dst = adj.edge_index()[1]                                          # [E]
        # einsum may return a permuted view; index_select on it is several times slower.
        q_e = torch.einsum("thc,hcf->thf", q, w_e).contiguous()            # [T, H, F_e]
        bias = (q_e.index_select(0, dst) * x_e.unsqueeze(1)).sum(-1) * scale  # [E, H]
        # One keep mask for both sums: the values' (in the op) and the edge features' (here).
        mask = None
        if self.training and self.dropout > 0:
            mask = keep_mask((x_e.size(0), H), self.dropout, q.device)     # [E, H]
        out, alpha = sparse_attention(q, k, v, graph, bias=bias, scale=scale,
                                      return_attention=True, dropout=self.dropout,
                                      training=self.training, dropout_mask=mask)
        w = alpha if mask is None else alpha * mask / (1.0 - self.dropout)  # [E, H]
        x_w = w.unsqueeze(-1) * x_e.unsqueeze(1)                           # [E, H, F_e]
        agg = x_w.new_zeros(q.size(0), H, x_e.size(1)).index_add_(0, dst, x_w)  # [T, H, F_e]
        return out + torch.einsum("thf,hcf->thc", agg, w_e), alpha         # [T, H, C]

    def forward(self, x: NodeInput, edge_index, edge_attr: Optional[Tensor] = None,
                size: Size = None, return_attention_weights: Optional[bool] = None):
        H, C = self.heads, self.out_channels
        x_src, x_dst, single, T = node_inputs(x, size)
        if x_dst is None:
            raise ValueError("GraphTransformerConv needs target features: x = (x_src, x_dst) "
                             "with x_dst a tensor (the queries are W_q x_dst)")
        check_features(x_src, self.lin_key, "x" if single else "x_src")
        check_features(x_dst, self.lin_query, "x" if single else "x_dst")
        adj = as_adjacency(edge_index, x_src.size(0), T, count_names=COUNTS)
        q = self.lin_query(x_dst).view(-1, H, C)                           # [T, H, C]
        k = self.lin_key(x_src).view(-1, H, C)                             # [S, H, C]
        v = self.lin_value(x_src).view(-1, H, C)                           # [S, H, C]
        graph = adj.graph()
        edge_attr = edge_features(edge_attr, adj) if self.lin_edge is not None else None
        scale = 1.0 / math.sqrt(C)
        # PyG returns the weights for any bool, True or False.
        want = isinstance(return_attention_weights, bool)
        if self._inspected():
            # PyG's tooling looks inside: its propagate, with the edge features' projection
            # W_e e_ij [E, H, C] in keys and values, as PyG's TransformerConv.
            src, dst = graph.edge_index()                                  # [E], [E]
            k_e = k.index_select(0, src)                                   # [E, H, C]
            e = None
            if edge_attr is not None:
                e = self.lin_edge(edge_attr.to(q.dtype)).view(-1, H, C)    # [E, H, C]
                k_e = k_e + e
            score = (q.index_select(0, dst) * k_e).sum(-1) * scale         # [E, H]
            out, alpha = self._propagated(score, v, graph, edge_value=e)   # [T, H, C]
        elif edge_attr is None:
            res = sparse_attention(q, k, v, graph, scale=scale, return_attention=want,
                                   dropout=self.dropout, training=self.training)
            out, alpha = res if want else (res, None)
        else:
            out, alpha = self._withedge_features(q, k, v, graph, adj, edge_attr, scale)
        return self._finish(out, alpha, x_dst, q.dtype, adj, graph, False, want)

    def _root(self, out: Tensor, x_dst: Optional[Tensor]) -> Tensor:
        """The skip map ``W_r x_i``, added or mixed in by the gate ``beta``."""
        if self.lin_skip is None:
            return out
        x_r = self.lin_skip(x_dst)                                         # [T, total]
        if self.lin_beta is None:
            return out + x_r
        b = torch.sigmoid(self.lin_beta(torch.cat([out, x_r, out - x_r], dim=-1)))  # [T, 1]
        return b * x_r + (1 - b) * out

    @classmethod
    def _pyg_kwargs(cls, module) -> dict:
        return dict(heads=module.heads, concat=module.concat, beta=module.beta,
                    dropout=module.dropout, edge_dim=module.edge_dim,
                    bias=module.lin_key.bias is not None, root_weight=module.root_weight)

    @classmethod
    def _pyg_unused(cls, module) -> Tuple[str, ...]:
        # PyG keeps a skip map even with root_weight=False, unused by its forward.
        return () if module.root_weight else ("lin_skip.",)


class TransformerConv(GraphTransformerConv):
    """:class:`GraphTransformerConv` under PyG's name (``torch_geometric.nn.TransformerConv``):
    the same layer, whose repr reads ``TransformerConv(16, 8, heads=2)`` as PyG's."""
