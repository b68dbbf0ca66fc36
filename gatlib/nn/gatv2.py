"""GATv2Conv: the dynamic attention layer of Brody et al. (2022); its score is computed per edge
(fused on small graphs, chunked and checkpointed on large ones), softmax and aggregation run on
:func:`gatlib.ops.attend`."""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .._checks import check_real, compiling
from ..graph.adjacency import as_adjacency
from ..ops import attend
from ._fused import gatv2_score
from .conv_common import (COUNTS, AttentionConv, NodeInput, Pair, Size, check_features,
                          edge_features, linear, loop_edge_attr, node_inputs)

__all__ = ["GATv2Conv"]


class GATv2Conv(AttentionConv):
    r"""The dynamic attention layer of Brody et al. (2022), "How Attentive are Graph Attention
    Networks?".

    .. math::
        \alpha_{ij} = \mathrm{softmax}_{j}\big(a^\top \mathrm{LeakyReLU}(W_s x_j + W_d x_i +
        W_e e_{ij})\big), \qquad x_i' = \big\Vert_{h} \sum_j \alpha_{ij}^h W_s^h x_j \; (+\, b)

    The score needs the per-edge vector ``W_s x_j + W_d x_i`` before the nonlinearity, so it is
    computed in chunks of edges with activation checkpointing (memory ``O(chunk x H x C)``, the
    backward pass recomputes each chunk); softmax and aggregation run on the fused operator.
    Small graphs (``E * H * C`` up to ``gatlib.nn._fused.GATV2_FUSED_MAX``, 4M elements) take
    one fused pass instead, which keeps that ``[E, H, C]`` activation for the backward pass.

    Args: as :class:`GATConv` (``value_dropout`` aside), plus ``share_weights`` (bool, default
    False): one linear map for sources and targets, and ``edge_chunk`` (int, default 65536):
    edges per checkpointed chunk. ``lin_l`` (sources) and ``lin_r`` (targets) carry a bias
    when ``bias``.

    Forward: as :class:`GATConv`; target features are required (``x_dst`` may not be None,
    as in PyG).

    Shapes: as :class:`GATConv`.

    A PyG ``MessagePassing``, as :class:`GATConv`: outside explain mode and hooks the softmax
    and aggregation run on the fused operator.
    """
    _MAPS = ("lin_l", "lin_r", "lin_edge", "res")
    _VECTORS = ("att",)

    def __init__(self, in_channels: Pair, out_channels: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0, add_self_loops: bool = True,
                 edge_dim: Optional[int] = None, fill_value: Union[float, str, Tensor] = "mean",
                 bias: bool = True, share_weights: bool = False, residual: bool = False,
                 edge_chunk: int = 1 << 16):
        super().__init__(in_channels, out_channels, heads, concat, dropout, edge_dim)
        if isinstance(edge_chunk, bool) or not isinstance(edge_chunk, int) or edge_chunk < 1:
            raise ValueError(f"edge_chunk must be an int >= 1, got {edge_chunk!r}")
        self.negative_slope = check_real(negative_slope, "negative_slope")
        self.add_self_loops, self.fill_value = add_self_loops, fill_value
        self.share_weights, self.residual, self.edge_chunk = share_weights, residual, edge_chunk
        HC = heads * out_channels
        in_src, in_dst = ((in_channels, in_channels) if isinstance(in_channels, int)
                          else in_channels)
        self.lin_l = linear(in_src, HC, bias, "glorot")
        self.lin_r = self.lin_l if share_weights else linear(in_dst, HC, bias, "glorot")
        self.att = nn.Parameter(torch.empty(1, heads, out_channels))
        self.lin_edge = nn.Linear(edge_dim, HC, bias=False) if edge_dim is not None else None
        total = HC if concat else out_channels
        self.res = linear(in_dst, total, False, "glorot") if residual else None
        self.bias = nn.Parameter(torch.empty(total)) if bias else None
        self.reset_parameters()

    def _scores(self, h_src: Tensor, h_dst: Tensor, src: Tensor, dst: Tensor,
                edge_attr: Optional[Tensor]) -> Tensor:
        """``a . LeakyReLU(h_src[j] + h_dst[i] (+ W_e e_ij))`` -> ``[E, H]``, chunk by chunk."""
        H, C = self.heads, self.out_channels
        w_edge = self.lin_edge.weight if (self.lin_edge is not None and
                                          edge_attr is not None) else None

        def chunk_score(h_src, h_dst, att, src, dst, e, w_edge):
            z = h_src.index_select(0, src) + h_dst.index_select(0, dst)    # [c, H, C]
            if w_edge is not None:
                z = z + (e.to(w_edge.dtype) @ w_edge.t()).view(-1, H, C)
            return (F.leaky_relu(z, self.negative_slope) * att).sum(-1)    # [c, H]

        E = src.numel()
        needs_grad = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (h_src, h_dst, self.att, w_edge))
        if compiling():
            # The edge count may be known only at run time (self-loops removed), so the edges
            # go as one chunk, checkpointed as a whole.
            args = (h_src, h_dst, self.att, src, dst, edge_attr, w_edge)
            return (checkpoint(chunk_score, *args, use_reentrant=False) if needs_grad
                    else chunk_score(*args))                               # [E, H]
        parts = []
        for s in range(0, E, self.edge_chunk):
            sl = slice(s, s + self.edge_chunk)
            args = (h_src, h_dst, self.att, src[sl], dst[sl],
                    None if edge_attr is None else edge_attr[sl], w_edge)
            parts.append(checkpoint(chunk_score, *args, use_reentrant=False) if needs_grad
                         else chunk_score(*args))
        return torch.cat(parts) if parts else h_src.new_zeros(0, H)       # [E, H]

    def forward(self, x: NodeInput, edge_index, edge_attr: Optional[Tensor] = None,
                size: Size = None, return_attention_weights: Optional[bool] = None):
        H, C = self.heads, self.out_channels
        x_src, x_dst, single, T = node_inputs(x, size)
        if x_dst is None:
            raise ValueError("GATv2Conv needs target features: x = (x_src, x_dst) with x_dst a "
                             "tensor (its score mixes W_s x_j and W_d x_i; PyG's GATv2Conv "
                             "requires them too)")
        check_features(x_src, self.lin_l, "x" if single else "x_src")
        check_features(x_dst, self.lin_r, "x" if single else "x_dst")
        adj = as_adjacency(edge_index, x_src.size(0), T, count_names=COUNTS)
        h_src = self.lin_l(x_src).view(-1, H, C)                           # [S, H, C]
        if single and self.share_weights:
            h_dst = h_src[:adj.num_dst]                                    # [T, H, C]
        else:
            h_dst = self.lin_r(x_dst).view(-1, H, C)                       # [T, H, C]
        graph = adj.with_self_loops() if self.add_self_loops else adj.graph()
        edge_attr = (loop_edge_attr(edge_features(edge_attr, adj), graph, self.fill_value)
                     if self.lin_edge is not None else None)
        ei = graph.edge_index() if self.add_self_loops else adj.edge_index()  # [2, E']
        score = gatv2_score(self, h_src, h_dst, ei, graph, edge_attr)      # [E', H]
        # Under autocast the score may come back wider than the values: one dtype for the op.
        score = score.to(h_src.dtype)                                      # [E', H]
        want = bool(return_attention_weights)
        if self._inspected():
            # PyG's tooling looks inside: its propagate (score in the caller's edge order).
            out, alpha = self._propagated(score, h_src, graph)             # [T, H, C]
        else:
            res = attend(score, h_src, graph, return_attention=want, dropout=self.dropout,
                         training=self.training)                           # [T, H, C]
            # The weights come back only when asked for (one pass fewer otherwise).
            out, alpha = res if want else (res, None)
        return self._finish(out, alpha, x_dst, h_src.dtype, adj, graph, self.add_self_loops,
                            want)

    @classmethod
    def _pyg_kwargs(cls, module) -> dict:
        return dict(super()._pyg_kwargs(module), bias=module.lin_l.bias is not None,
                    share_weights=module.share_weights)
