"""GATConv: the graph attention layer of Velickovic et al. (2018) on the fused additive op."""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_real
from ..graph.adjacency import as_adjacency
from ..ops import gat_attention
from ._dropout import dropout
from ._fused import head_dots
from .conv_common import (COUNTS, AttentionConv, NodeInput, Pair, Size, check_features,
                          edge_features, linear, loop_edge_attr, node_inputs)

__all__ = ["GATConv"]


class GATConv(AttentionConv):
    r"""The graph attention layer of Velickovic et al. (2018), "Graph Attention Networks".

    .. math::
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}\big(\mathrm{LeakyReLU}(
        a_s^\top W_s x_j + a_d^\top W_d x_i + a_e^\top W_e e_{ij})\big), \qquad
        x_i' = \big\Vert_{h=1}^{H} \sum_j \alpha_{ij}^{h} W_s^{h} x_j \; (+\, b)

    The per-node halves of the score are computed once per node and the edge term once per edge
    (``W_e`` is folded into ``a_e``), so no ``[E, H, C]`` tensor is ever built. Without target
    features (``x = (x_src, None)``) the target half is left out, as in PyG.

    Args:
        in_channels (int or (int, int)): input features, or (source, target) sizes for
            bipartite graphs (then separate ``lin_src``/``lin_dst``); ``-1`` for lazy
            initialisation from the first input.
        out_channels (int): features per head.
        heads (int, default 1): attention heads.
        concat (bool, default True): concatenate heads (else average them).
        negative_slope (float, default 0.2): LeakyReLU slope.
        dropout (float, default 0.0): attention dropout (training only).
        add_self_loops (bool, default True): remove the caller's self-loops and add one per
            node (``min(S, T)`` loops for bipartite graphs).
        edge_dim (int, optional): edge feature size; enables the edge term of the score.
        fill_value (float, str or Tensor, default ``"mean"``): edge features of added loops.
        bias (bool, default True): add a learnable bias.
        residual (bool, default False): add a linear projection of the (target) input.
        value_dropout (float, default 0.0): dropout on the projected source features
            ``W_s x_j`` that are summed (training only), as the GAT authors' code applies it;
            the scores are computed from the features before this dropout. Not in PyG.

    Forward ``(x, edge_index, edge_attr=None, size=None, return_attention_weights=None)``:
        x: ``[N, F]``, or ``(x_src [S, F_s], x_dst [T, F_t] or None)``.
        edge_index: ``[2, E]``, a ``GraphCSR`` (hold it to build the structure, self-loops
            included, once), PyG's ``EdgeIndex``, a ``torch.sparse`` adjacency ``[T, S]`` (PyG's
            ``adj.t()``) or a ``torch_sparse.SparseTensor``.
        edge_attr: ``[E, edge_dim]`` (a sparse adjacency's ``[E, edge_dim]`` values serve when
            None).
        size: ``(S, T)``; with a single ``x`` its first ``T`` rows are the targets.
        return_attention_weights: when true, also return the weights (before dropout) as PyG
            does: ``(edge_index_used, alpha [E', H])``, where ``edge_index_used`` holds the
            added self-loops (an ``EdgeIndex`` for an ``EdgeIndex``; for a ``torch.sparse``
            input a sparse ``[T, S, H]`` adjacency of the weights in its layout; for a
            ``SparseTensor``, a ``SparseTensor`` of the weights alone).

    Shapes:
        -> ``[T, H * out_channels]`` (concat) or ``[T, out_channels]``, in the dtype of the
        projected features (the autocast dtype in an autocast region).

    A PyG ``MessagePassing`` (:class:`~gatlib.nn.conv_common.AttentionConv`): PyG's explainers
    (edge masks, attention weights through a message hook), ``to_hetero`` and ``summary``
    see it; outside explain mode and hooks it runs on the fused operator.
    """
    _MAPS = ("lin", "lin_src", "lin_dst", "lin_edge", "res")
    _VECTORS = ("att_src", "att_dst", "att_edge")

    def __init__(self, in_channels: Pair, out_channels: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0, add_self_loops: bool = True,
                 edge_dim: Optional[int] = None, fill_value: Union[float, str, Tensor] = "mean",
                 bias: bool = True, residual: bool = False, value_dropout: float = 0.0):
        super().__init__(in_channels, out_channels, heads, concat, dropout, edge_dim)
        if not 0.0 <= float(value_dropout) < 1.0:
            raise ValueError(f"value_dropout must lie in [0, 1), got {value_dropout}")
        self.value_dropout = float(value_dropout)
        self.negative_slope = check_real(negative_slope, "negative_slope")
        self.add_self_loops, self.fill_value = add_self_loops, fill_value
        self.residual = residual
        HC = heads * out_channels
        self.lin = self.lin_src = self.lin_dst = None
        if isinstance(in_channels, int):
            self.lin = linear(in_channels, HC, False, "glorot")
        else:
            self.lin_src = linear(in_channels[0], HC, False, "glorot")
            self.lin_dst = linear(in_channels[1], HC, False, "glorot")
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        if edge_dim is not None:
            self.lin_edge = nn.Linear(edge_dim, HC, bias=False)
            self.att_edge = nn.Parameter(torch.empty(1, heads, out_channels))
        else:
            self.lin_edge = None
            self.register_parameter("att_edge", None)
        total = HC if concat else out_channels
        in_dst = in_channels if isinstance(in_channels, int) else in_channels[1]
        self.res = linear(in_dst, total, False, "glorot") if residual else None
        self.bias = nn.Parameter(torch.empty(total)) if bias else None
        self.reset_parameters()

    def forward(self, x: NodeInput, edge_index, edge_attr: Optional[Tensor] = None,
                size: Size = None, return_attention_weights: Optional[bool] = None):
        H, C = self.heads, self.out_channels
        x_src, x_dst, single, T = node_inputs(x, size)
        if self.lin is not None:
            check_features(x_src, self.lin, "x")
            check_features(None if single else x_dst, self.lin, "x_dst")
        else:
            check_features(x_src, self.lin_src, "x" if single else "x_src")
            check_features(x_dst, self.lin_dst, "x" if single else "x_dst")
        adj = as_adjacency(edge_index, x_src.size(0), T, count_names=COUNTS)
        T = adj.num_dst
        if self.lin is not None:
            h_src = self.lin(x_src).view(-1, H, C)                         # [S, H, C]
            h_dst = (h_src[:T] if single else None if x_dst is None
                     else self.lin(x_dst).view(-1, H, C))                  # [T, H, C]
        else:
            h_src = self.lin_src(x_src).view(-1, H, C)                     # [S, H, C]
            h_dst = None if x_dst is None else self.lin_dst(x_dst).view(-1, H, C)
        # Under autocast the products with the fp32 attention vectors come back in fp32: keep
        # one dtype for the op (it computes in fp32 inside anyway).
        if h_dst is None:                                                  # no target half
            a_src = head_dots(h_src, self.att_src, h_src[:0], self.att_dst)[0]  # [S, H]
            a_dst = h_src.new_zeros(T, H)                                  # [T, H]
        elif single and self.lin is not None:
            # Both halves from the same features in one product; the targets are the first T.
            # (A bipartite layer maps one x by lin_dst for the targets, as PyG: below.)
            a_src, a_dst = head_dots(h_src, self.att_src, h_src, self.att_dst)
            a_dst = a_dst[:T]                                              # [T, H]
        else:
            a_src, a_dst = head_dots(h_src, self.att_src, h_dst, self.att_dst)  # [S, H], [T, H]
        graph = adj.with_self_loops() if self.add_self_loops else adj.graph()
        edge_score = None
        # Edge features count only with edge_dim (as PyG); then the loops get fill_value rows.
        edge_attr = (loop_edge_attr(edge_features(edge_attr, adj), graph, self.fill_value)
                     if self.lin_edge is not None else None)
        if edge_attr is not None:
            # a_e . (W_e e) = (a_e W_e) . e: one [H, edge_dim] matrix instead of [E, H, C].
            w = (self.lin_edge.weight.view(H, C, -1) * self.att_edge.view(H, C, 1)).sum(1)
            edge_score = edge_attr.to(w.dtype) @ w.t()                     # [E', H]
        # The authors' code drops out the summed features, not those the scores are made of.
        values = dropout(h_src, self.value_dropout, self.training)         # [S, H, C]
        want = bool(return_attention_weights)
        if self._inspected():
            # PyG's tooling looks inside: its propagate, with the score in the caller's order.
            src, dst = graph.edge_index()                                  # [E'], [E']
            score = a_src.index_select(0, src) + a_dst.index_select(0, dst)  # [E', H]
            if edge_score is not None:
                score = score + edge_score
            out, alpha = self._propagated(F.leaky_relu(score, self.negative_slope), values,
                                          graph)                           # [T, H, C]
        else:
            res = gat_attention(a_src, a_dst, values, graph, edge_score=edge_score,
                                negative_slope=self.negative_slope, return_attention=want,
                                dropout=self.dropout, training=self.training)  # [T, H, C]
            # The weights come back only when asked for (one pass fewer otherwise).
            out, alpha = res if want else (res, None)
        return self._finish(out, alpha, x_dst, h_src.dtype, adj, graph, self.add_self_loops,
                            want)

    @classmethod
    def _pyg_kwargs(cls, module) -> dict:
        return dict(super()._pyg_kwargs(module), bias=module.bias is not None)
