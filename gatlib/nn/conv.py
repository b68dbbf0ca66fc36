"""Sparse attention layers: GATConv, GATv2Conv and GraphTransformerConv on the gatlib operators.

Each is a drop-in for its PyG namesake (same arguments, parameter names and maths; ``from_pyg``
copies a trained PyG layer), computed without the per-edge ``[E, H, C]`` tensor wherever the
layer's maths allows it.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..graph.csr import cache_get, cache_put, to_csr
from ..graph.loops import self_loop_attr
from ..graph.validate import check_edge_index
from ..ops import gat_attention, sparse_attention
from ._dropout import dropout
from ._fused import gatv2_score, head_dots

__all__ = ["GATConv", "GATv2Conv", "GraphTransformerConv"]

Pair = Union[int, Tuple[int, int]]
NodeInput = Union[Tensor, Tuple[Tensor, Tensor]]


def _glorot(t: Tensor) -> None:
    nn.init.xavier_uniform_(t.view(-1, t.size(-1)) if t.dim() > 2 else t)


def _pair(x: NodeInput, name: str = "x") -> Tuple[Tensor, Tensor, bool]:
    """``x`` or ``(x_src, x_dst)`` -> ``(x_src, x_dst, bipartite)``."""
    if isinstance(x, Tensor):
        if x.dim() != 2:
            raise ValueError(f"{name} must be [N, F], got shape {tuple(x.shape)}")
        return x, x, False
    if isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(t, Tensor) for t in x):
        return x[0], x[1], True
    raise TypeError(f"{name} must be a tensor [N, F] or a pair (x_src [S, F_s], x_dst [T, F_t])")


def _with_self_loops(edge_index: Tensor, num_src: int, num_dst: int,
                     add_loops: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """The graph a layer attends over: the caller's edges without their self-loops, then one
    loop per node (PyG's order), cached on the caller's tensor with the indices of the kept
    edges, so the CSR view of the result is built once too."""
    if not add_loops:
        return edge_index, None                # to_csr validates it (once: its view is cached)
    n_loops = min(num_src, num_dst)
    hit = cache_get(edge_index, "self_loops", (num_src, num_dst))
    if hit is not None:
        return hit                             # validated when it was built
    check_edge_index(edge_index, num_src, num_dst_nodes=num_dst)
    keep = (edge_index[0] != edge_index[1]).nonzero().view(-1)             # [E']
    loops = torch.arange(n_loops, device=edge_index.device).expand(2, -1)  # [2, L]
    out = torch.cat([edge_index[:, keep].long(), loops], dim=1)            # [2, E' + L]
    return cache_put(edge_index, "self_loops", (num_src, num_dst), (out, keep))


def _loop_edge_attr(edge_attr: Optional[Tensor], edge_index: Tensor, keep: Optional[Tensor],
                    num_dst: int, n_loops: int, fill_value) -> Optional[Tensor]:
    """Edge features on the graph of :func:`_with_self_loops` (loops get ``fill_value``)."""
    if edge_attr is None or keep is None:
        return edge_attr
    if edge_attr.size(0) != edge_index.size(1):
        raise ValueError(f"edge_attr must have one row per edge ({edge_index.size(1)}), got "
                         f"shape {tuple(edge_attr.shape)}")
    kept_attr = edge_attr[keep]                                            # [E', F_e]
    fill = self_loop_attr(edge_index[:, keep], num_dst, kept_attr, fill_value)[:n_loops]
    return torch.cat([kept_attr, fill], dim=0)                             # [E' + L, F_e]


def _prepare_graph(x_src: Tensor, x_dst: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor],
                   add_loops: bool, fill_value):
    """Self-loops (cached), their edge features, and the cached CSR view."""
    S, T = x_src.size(0), x_dst.size(0)
    ei, keep = _with_self_loops(edge_index, S, T, add_loops)
    if edge_attr is not None and edge_attr.dim() == 1:
        edge_attr = edge_attr.view(-1, 1)
    edge_attr = _loop_edge_attr(edge_attr, edge_index, keep, T, min(S, T), fill_value)
    return ei, to_csr(ei, S, T), edge_attr


def _finish(layer: nn.Module, out: Tensor, x_dst: Tensor) -> Tensor:
    """Heads concatenated or averaged, then the residual map and the bias (GAT and GATv2)."""
    out = out.reshape(out.size(0), -1) if layer.concat else out.mean(dim=1)
    if layer.res is not None:
        out = out + layer.res(x_dst)
    if layer.bias is not None:
        out = out + layer.bias
    return out


class GATConv(nn.Module):
    r"""The graph attention layer of Velickovic et al. (2018), "Graph Attention Networks".

    .. math::
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}\big(\mathrm{LeakyReLU}(
        a_s^\top W_s x_j + a_d^\top W_d x_i + a_e^\top W_e e_{ij})\big), \qquad
        x_i' = \big\Vert_{h=1}^{H} \sum_j \alpha_{ij}^{h} W_s^{h} x_j \; (+\, b)

    The per-node halves of the score are computed once per node and the edge term once per edge
    (``W_e`` is folded into ``a_e``), so no ``[E, H, C]`` tensor is ever built.

    Args:
        in_channels (int or (int, int)): input features, or (source, target) sizes for
            bipartite graphs (then separate ``lin_src``/``lin_dst``).
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

    Shapes:
        x ``[N, F]`` or ``([S, F_s], [T, F_t])``; edge_index ``[2, E]``; edge_attr
        ``[E, edge_dim]`` -> ``[T, H * out_channels]`` (concat) or ``[T, out_channels]``.
        With ``return_attention_weights=True`` also ``(edge_index_used [2, E'], alpha [E', H])``
        (the graph with the added loops; weights before dropout).
    """

    def __init__(self, in_channels: Pair, out_channels: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0, add_self_loops: bool = True,
                 edge_dim: Optional[int] = None, fill_value: Union[float, str, Tensor] = "mean",
                 bias: bool = True, residual: bool = False, value_dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= float(value_dropout) < 1.0:
            raise ValueError(f"value_dropout must lie in [0, 1), got {value_dropout}")
        self.value_dropout = float(value_dropout)
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.negative_slope, self.dropout = concat, negative_slope, dropout
        self.add_self_loops, self.edge_dim, self.fill_value = add_self_loops, edge_dim, fill_value
        self.residual = residual
        HC = heads * out_channels
        self.lin = self.lin_src = self.lin_dst = None
        if isinstance(in_channels, int):
            self.lin = nn.Linear(in_channels, HC, bias=False)
        else:
            self.lin_src = nn.Linear(in_channels[0], HC, bias=False)
            self.lin_dst = nn.Linear(in_channels[1], HC, bias=False)
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
        self.res = nn.Linear(in_dst, total, bias=False) if residual else None
        self.bias = nn.Parameter(torch.empty(total)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin, self.lin_src, self.lin_dst, self.lin_edge, self.res):
            if lin is not None:
                _glorot(lin.weight)
        for att in (self.att_src, self.att_dst, self.att_edge):
            if att is not None:
                _glorot(att)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: NodeInput, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                return_attention_weights: bool = False):
        H, C = self.heads, self.out_channels
        x_src, x_dst, bipartite = _pair(x)
        if self.lin is not None:
            if bipartite:
                raise ValueError("x is a pair (x_src, x_dst) but the layer was built with one "
                                 "in_channels; pass in_channels=(F_src, F_dst)")
            h_src = h_dst = self.lin(x_src).view(-1, H, C)                 # [N, H, C]
        else:
            h_src = self.lin_src(x_src).view(-1, H, C)                     # [S, H, C]
            h_dst = self.lin_dst(x_dst).view(-1, H, C)                     # [T, H, C]
        # Under autocast the products with the fp32 attention vectors come back in fp32: keep
        # one dtype for the op (it computes in fp32 inside anyway).
        a_src, a_dst = head_dots(h_src, self.att_src, h_dst, self.att_dst)  # [S, H], [T, H]
        ei, graph, edge_attr = _prepare_graph(x_src, x_dst, edge_index, edge_attr,
                                              self.add_self_loops, self.fill_value)
        edge_score = None
        if edge_attr is not None and self.lin_edge is not None:
            # a_e . (W_e e) = (a_e W_e) . e: one [H, edge_dim] matrix instead of [E, H, C].
            w = (self.lin_edge.weight.view(H, C, -1) * self.att_edge.view(H, C, 1)).sum(1)
            edge_score = edge_attr.to(w.dtype) @ w.t()                     # [E', H]
        # The authors' code drops out the summed features, not those the scores are made of.
        values = dropout(h_src, self.value_dropout, self.training)         # [S, H, C]
        res = gat_attention(a_src, a_dst, values, graph, edge_score=edge_score,
                            negative_slope=self.negative_slope,
                            return_attention=return_attention_weights,
                            dropout=self.dropout, training=self.training)  # [T, H, C]
        # The weights come back only when asked for (one pass fewer otherwise).
        out, alpha = res if return_attention_weights else (res, None)
        out = _finish(self, out, x_dst)
        return (out, (ei, alpha)) if return_attention_weights else out

    @classmethod
    def from_pyg(cls, module) -> "GATConv":
        """The gatlib layer computing the same function as a PyG ``GATConv`` (weights copied)."""
        layer = cls(module.in_channels, module.out_channels, heads=module.heads,
                    concat=module.concat, negative_slope=module.negative_slope,
                    dropout=module.dropout, add_self_loops=module.add_self_loops,
                    edge_dim=module.edge_dim, fill_value=module.fill_value,
                    bias=module.bias is not None, residual=getattr(module, "res", None) is not None)
        return _copy_weights(layer, module)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, heads={self.heads})"


class GATv2Conv(nn.Module):
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

    Args: as :class:`GATConv`, plus ``share_weights`` (bool, default False): one linear map for
    sources and targets. ``lin_l`` (sources) and ``lin_r`` (targets) carry a bias when ``bias``.

    Shapes: as :class:`GATConv`.
    """

    def __init__(self, in_channels: Pair, out_channels: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0, add_self_loops: bool = True,
                 edge_dim: Optional[int] = None, fill_value: Union[float, str, Tensor] = "mean",
                 bias: bool = True, share_weights: bool = False, residual: bool = False,
                 edge_chunk: int = 1 << 16):
        super().__init__()
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.negative_slope, self.dropout = concat, negative_slope, dropout
        self.add_self_loops, self.edge_dim, self.fill_value = add_self_loops, edge_dim, fill_value
        self.share_weights, self.residual, self.edge_chunk = share_weights, residual, edge_chunk
        HC = heads * out_channels
        in_src, in_dst = ((in_channels, in_channels) if isinstance(in_channels, int)
                          else in_channels)
        self.lin_l = nn.Linear(in_src, HC, bias=bias)
        self.lin_r = self.lin_l if share_weights else nn.Linear(in_dst, HC, bias=bias)
        self.att = nn.Parameter(torch.empty(1, heads, out_channels))
        self.lin_edge = nn.Linear(edge_dim, HC, bias=False) if edge_dim is not None else None
        total = HC if concat else out_channels
        self.res = nn.Linear(in_dst, total, bias=False) if residual else None
        self.bias = nn.Parameter(torch.empty(total)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin_l, self.lin_r, self.lin_edge, self.res):
            if lin is not None:
                _glorot(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
        _glorot(self.att)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

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
        parts = []
        for s in range(0, E, self.edge_chunk):
            sl = slice(s, s + self.edge_chunk)
            args = (h_src, h_dst, self.att, src[sl], dst[sl],
                    None if edge_attr is None else edge_attr[sl], w_edge)
            parts.append(checkpoint(chunk_score, *args, use_reentrant=False) if needs_grad
                         else chunk_score(*args))
        return torch.cat(parts) if parts else h_src.new_zeros(0, H)       # [E, H]

    def forward(self, x: NodeInput, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                return_attention_weights: bool = False):
        H, C = self.heads, self.out_channels
        x_src, x_dst, _ = _pair(x)
        h_src = self.lin_l(x_src).view(-1, H, C)                           # [S, H, C]
        h_dst = self.lin_r(x_dst).view(-1, H, C)                           # [T, H, C]
        ei, graph, edge_attr = _prepare_graph(x_src, x_dst, edge_index, edge_attr,
                                              self.add_self_loops, self.fill_value)
        score = gatv2_score(self, h_src, h_dst, ei, graph, edge_attr)      # [E', H]
        # The score is complete, so the fused op runs with an identity activation (slope 1)
        # and zero per-node halves; on the CPU, as the bias of a dot product over empty queries
        # and keys, which skips the halves' gathers and gradients.
        kw = dict(return_attention=return_attention_weights, dropout=self.dropout,
                  training=self.training)
        if h_src.device.type == "cpu":
            res = sparse_attention(h_src.new_empty(h_dst.size(0), H, 0),
                                   h_src.new_empty(h_src.size(0), H, 0), h_src, graph,
                                   bias=score, **kw)                       # [T, H, C]
        else:
            zeros_s = h_src.new_zeros(h_src.size(0), H)
            zeros_d = h_src.new_zeros(h_dst.size(0), H)
            res = gat_attention(zeros_s, zeros_d, h_src, graph, edge_score=score,
                                negative_slope=1.0, **kw)                  # [T, H, C]
        # The weights come back only when asked for (one pass fewer otherwise).
        out, alpha = res if return_attention_weights else (res, None)
        out = _finish(self, out, x_dst)
        return (out, (ei, alpha)) if return_attention_weights else out

    @classmethod
    def from_pyg(cls, module) -> "GATv2Conv":
        """The gatlib layer computing the same function as a PyG ``GATv2Conv``."""
        layer = cls(module.in_channels, module.out_channels, heads=module.heads,
                    concat=module.concat, negative_slope=module.negative_slope,
                    dropout=module.dropout, add_self_loops=module.add_self_loops,
                    edge_dim=module.edge_dim, fill_value=module.fill_value,
                    bias=module.lin_l.bias is not None, share_weights=module.share_weights,
                    residual=getattr(module, "res", None) is not None)
        return _copy_weights(layer, module)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, heads={self.heads})"


class GraphTransformerConv(nn.Module):
    r"""Dot-product attention over neighbours with edge features in keys and values and an
    optional gated residual (Shi et al. 2021, "Masked Label Prediction"; PyG's
    ``TransformerConv``).

    .. math::
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}\Big(\frac{(W_q x_i)^\top
        (W_k x_j + W_e e_{ij})}{\sqrt{C}}\Big), \qquad
        m_i = \big\Vert_h \sum_j \alpha_{ij}^h (W_v x_j + W_e e_{ij})^h

    and ``x_i' = m_i + W_r x_i`` (``root_weight``), or with ``beta``:
    ``b_i = \sigma(w^\top [m_i, W_r x_i, m_i - W_r x_i])``, ``x_i' = b_i W_r x_i + (1 - b_i) m_i``.

    Without edge features nothing per edge beyond ``[E, H]`` is built; with them, the projected
    edge features ``[E, H, C]`` are the layer's own input to keys and values.

    Args:
        in_channels (int or (int, int)): input features (source, target for bipartite).
        out_channels (int): features per head.
        heads (int, default 1): attention heads.
        concat (bool, default True): concatenate heads (else average them).
        beta (bool, default False): gated residual.
        dropout (float, default 0.0): attention dropout (training only).
        edge_dim (int, optional): edge feature size.
        bias (bool, default True): biases of the query/key/value/skip maps.
        root_weight (bool, default True): add the skip map ``W_r x_i``.

    Shapes:
        x ``[N, F]`` or ``([S, F_s], [T, F_t])`` -> ``[T, H * out_channels]`` or
        ``[T, out_channels]``; with ``return_attention_weights=True`` also
        ``(edge_index, alpha [E, H])`` (weights before dropout).
    """

    def __init__(self, in_channels: Pair, out_channels: int, heads: int = 1, concat: bool = True,
                 beta: bool = False, dropout: float = 0.0, edge_dim: Optional[int] = None,
                 bias: bool = True, root_weight: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.beta, self.dropout = concat, beta and root_weight, dropout
        self.edge_dim, self.root_weight = edge_dim, root_weight
        HC = heads * out_channels
        in_src, in_dst = ((in_channels, in_channels) if isinstance(in_channels, int)
                          else in_channels)
        self.lin_key = nn.Linear(in_src, HC, bias=bias)
        self.lin_query = nn.Linear(in_dst, HC, bias=bias)
        self.lin_value = nn.Linear(in_src, HC, bias=bias)
        self.lin_edge = nn.Linear(edge_dim, HC, bias=False) if edge_dim is not None else None
        total = HC if concat else out_channels
        self.lin_skip = nn.Linear(in_dst, total, bias=bias) if root_weight else None
        self.lin_beta = nn.Linear(3 * total, 1, bias=False) if self.beta else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin_key, self.lin_query, self.lin_value, self.lin_edge, self.lin_skip,
                    self.lin_beta):
            if lin is not None:
                lin.reset_parameters()

    def forward(self, x: NodeInput, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                return_attention_weights: bool = False):
        H, C = self.heads, self.out_channels
        x_src, x_dst, _ = _pair(x)
        q = self.lin_query(x_dst).view(-1, H, C)                           # [T, H, C]
        k = self.lin_key(x_src).view(-1, H, C)                             # [S, H, C]
        v = self.lin_value(x_src).view(-1, H, C)                           # [S, H, C]
        ei, graph, _ = _prepare_graph(x_src, x_dst, edge_index, None, False, None)
        scale = 1.0 / math.sqrt(C)
        if edge_attr is None or self.lin_edge is None:
            res = sparse_attention(q, k, v, graph, scale=scale,
                                   return_attention=return_attention_weights,
                                   dropout=self.dropout, training=self.training)
            out, alpha = res if return_attention_weights else (res, None)
        else:
            if edge_attr.dim() == 1:
                edge_attr = edge_attr.view(-1, 1)
            e = self.lin_edge(edge_attr.to(q.dtype)).view(-1, H, C)        # [E, H, C]
            src, dst = ei[0], ei[1]
            bias = (q.index_select(0, dst) * e).sum(-1) * scale            # [E, H]
            _, alpha = sparse_attention(q, k, v, graph, bias=bias, scale=scale,
                                        return_attention=True)             # [E, H]
            w = dropout(alpha, self.dropout, self.training)                # [E, H]
            msg = (v.index_select(0, src) + e) * w.unsqueeze(-1)           # [E, H, C]
            out = q.new_zeros(q.size(0), H, C).index_add_(0, dst, msg)     # [T, H, C]
        out = out.reshape(-1, H * C) if self.concat else out.mean(dim=1)
        if self.lin_skip is not None:
            x_r = self.lin_skip(x_dst)                                     # [T, total]
            if self.lin_beta is not None:
                b = torch.sigmoid(self.lin_beta(torch.cat([out, x_r, out - x_r], dim=-1)))
                out = b * x_r + (1 - b) * out
            else:
                out = out + x_r
        return (out, (ei, alpha)) if return_attention_weights else out

    @classmethod
    def from_pyg(cls, module) -> "GraphTransformerConv":
        """The gatlib layer computing the same function as a PyG ``TransformerConv``."""
        layer = cls(module.in_channels, module.out_channels, heads=module.heads,
                    concat=module.concat, beta=module.beta, dropout=module.dropout,
                    edge_dim=module.edge_dim, bias=module.lin_key.bias is not None,
                    root_weight=module.root_weight)
        # PyG keeps a skip map even with root_weight=False, unused by its forward.
        return _copy_weights(layer, module, () if module.root_weight else ("lin_skip.",))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, heads={self.heads})"


def _copy_weights(layer: nn.Module, module: nn.Module, unused: Tuple[str, ...] = ()) -> nn.Module:
    """Load a PyG layer's parameters into the gatlib layer (same names, same shapes); the
    PyG parameters under the prefixes ``unused`` play no part in its function."""
    state = {k: v for k, v in module.state_dict().items()
             if not k.startswith("_") and not k.startswith(unused)}
    missing, unexpected = layer.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"cannot copy {type(module).__name__} into {type(layer).__name__}: "
                         f"missing {missing}, unexpected {unexpected}")
    return layer.to(next(module.parameters()).device)
