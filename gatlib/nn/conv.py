"""Sparse attention layers: GATConv, GATv2Conv and GraphTransformerConv on the gatlib operators.

Each is a drop-in for its PyG namesake: same constructor arguments (``in_channels=-1`` for lazy
initialisation included), parameter names and maths (``from_pyg`` copies a trained PyG layer),
and PyG's ``forward(x, edge_index, edge_attr=None, size=None, return_attention_weights=None)``
with every adjacency PyG takes (:mod:`gatlib.graph.adjacency`). They are computed without the
per-edge ``[E, H, C]`` tensor wherever the layer's maths allows it.

The graph structure a layer derives (the CSR view, the graph with self-loops) is kept on a
``GraphCSR`` the caller holds (``gatlib.graph.to_csr``) and built on every call from a plain
``edge_index``; nothing is cached anywhere else.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..graph.adjacency import Adjacency, as_adjacency
from ..graph.csr import GraphCSR
from ..graph.loops import self_loop_attr
from .._checks import check_real, compiling
from ..ops import gat_attention, sparse_attention
from ._dropout import dropout
from ._fused import gatv2_score, head_dots

__all__ = ["GATConv", "GATv2Conv", "GraphTransformerConv"]

Pair = Union[int, Tuple[int, int]]
NodeInput = Union[Tensor, Tuple[Tensor, Optional[Tensor]]]
Size = Optional[Tuple[int, int]]
# How the layers' inputs give the node counts, for errors about an adjacency of another size.
_COUNTS = ("the number of source rows of x", "the number of targets (x_dst rows or size[1])")


# ----------------------------------------------------------------------------- shared helpers

def _glorot(t: Tensor) -> None:
    nn.init.xavier_uniform_(t.view(-1, t.size(-1)) if t.dim() > 2 else t)


def _lazy(lin: Optional[nn.Module]) -> bool:
    return lin is not None and isinstance(lin.weight, nn.parameter.UninitializedParameter)


def _linear(in_channels: int, out_channels: int, bias: bool,
            initializer: Optional[str] = None) -> nn.Module:
    """``nn.Linear``, or PyG's lazily initialised ``Linear`` for ``in_channels=-1`` (its
    ``initializer`` is then applied when the first input fixes the width)."""
    if in_channels > 0:
        return nn.Linear(in_channels, out_channels, bias=bias)
    from torch_geometric.nn.dense.linear import Linear
    return Linear(-1, out_channels, bias=bias, weight_initializer=initializer,
                  bias_initializer="zeros" if initializer else None)


def _reset_glorot(lin: Optional[nn.Module], zero_bias: bool = True) -> None:
    """Glorot weights and zero bias (a lazy map initialises itself on its first input)."""
    if lin is None:
        return
    if _lazy(lin):
        lin.reset_parameters()
        return
    _glorot(lin.weight)
    if zero_bias and lin.bias is not None:
        nn.init.zeros_(lin.bias)


def _check_channels(layer: str, in_channels, out_channels, heads, edge_dim,
                    dropout=0.0) -> None:
    """Constructor checks shared by the three layers (ValueError naming the argument)."""
    ins = in_channels if isinstance(in_channels, (tuple, list)) else (in_channels,)
    if len(ins) not in (1, 2) or any(isinstance(c, bool) or not isinstance(c, int)
                                     or (c < 1 and c != -1) for c in ins):
        raise ValueError(f"{layer}: in_channels must be an int >= 1 (or -1 for lazy "
                         f"initialisation), or a pair (source, target) of them; got "
                         f"{in_channels!r}")
    for name, value in (("out_channels", out_channels), ("heads", heads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{layer}: {name} must be an int >= 1, got {value!r}")
    if edge_dim is not None and (isinstance(edge_dim, bool) or not isinstance(edge_dim, int)
                                 or edge_dim < 1):
        raise ValueError(f"{layer}: edge_dim must be an int >= 1 or None, got {edge_dim!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"{layer}: dropout must lie in [0, 1), got {dropout}")


def _node_inputs(x: NodeInput, size: Size) -> Tuple[Tensor, Optional[Tensor], bool,
                                                      Optional[int]]:
    """``x`` (and ``size``) -> ``(x_src, x_dst or None, single, T or None)``.

    A single tensor is both sources and targets; with ``size=(S, T)`` its first ``T`` rows are
    the targets (a mini-batch of sampled neighbourhoods, NeighborLoader's layout). A pair is
    ``(x_src, x_dst)``, ``x_dst`` possibly None (no target features)."""
    if isinstance(x, Tensor):
        x_src, x_dst, single = x, x, True
    elif (isinstance(x, (tuple, list)) and len(x) == 2 and isinstance(x[0], Tensor)
          and (x[1] is None or isinstance(x[1], Tensor))):
        x_src, x_dst, single = x[0], x[1], False
    else:
        raise TypeError("x must be a tensor [N, F] or a pair (x_src [S, F_s], x_dst [T, F_t]) "
                        "whose x_dst may be None")
    for name, t in (("x", x_src), ("x_dst", x_dst)):
        if t is not None and t.dim() != 2:
            raise ValueError(f"{name} must be [N, F], got shape {tuple(t.shape)}")
    S = x_src.size(0)
    if size is None:
        return x_src, x_dst, single, (None if x_dst is None else x_dst.size(0))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or any(s is not None and (isinstance(s, bool)
                                      or not isinstance(s, (int, torch.SymInt)) or s < 0)
                   for s in size)):
        raise ValueError(f"size must be a pair (S, T) of node counts, got {size!r}")
    if size[0] is not None and size[0] != S:
        raise ValueError(f"size[0] = {size[0]} but x has {S} source rows; size is (number of "
                         f"source nodes, number of target nodes)")
    T = size[1]
    if T is None:
        return x_src, x_dst, single, (None if x_dst is None else x_dst.size(0))
    if single:
        if T > S:
            raise ValueError(f"size = {tuple(size)} asks for {T} target nodes but x has only "
                             f"{S} rows; with one x the targets are its first T rows")
        return x_src, x_src[:T], True, T
    if x_dst is not None and x_dst.size(0) != T:
        raise ValueError(f"size[1] = {T} but x_dst has {x_dst.size(0)} rows")
    return x_src, x_dst, single, T


def _check_features(x: Optional[Tensor], lin: Optional[nn.Module], name: str) -> None:
    """``x`` must have the width and (outside autocast) the dtype of ``lin``'s weight."""
    if x is None or lin is None:
        return
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; convert it "
                        f"with {name}.float()")
    if _lazy(lin):
        return
    width = lin.weight.size(1)
    if x.size(-1) != width:
        raise ValueError(f"{name} has {x.size(-1)} features per node but the layer expects "
                         f"{width} (in_channels): {name} must be [N, {width}]")
    if x.dtype != lin.weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{name} has dtype {x.dtype} but the layer's weights are "
                        f"{lin.weight.dtype}; convert one of them ({name}.to"
                        f"({lin.weight.dtype}) or layer.to({x.dtype}))")


def _edge_features(edge_attr: Optional[Tensor], adj: Adjacency) -> Optional[Tensor]:
    """``edge_attr``, or (as PyG) the multi-dimensional values of a sparse adjacency."""
    if edge_attr is None and adj.values is not None and adj.values.dim() > 1:
        edge_attr = adj.values
    if edge_attr is None:
        return None
    if not isinstance(edge_attr, Tensor):
        raise TypeError(f"edge_attr must be a tensor [E, edge_dim], got "
                        f"{type(edge_attr).__name__}")
    E = adj.edge_index().size(1) if adj.kind != "graph" else adj.graph().num_edges
    if edge_attr.dim() == 0 or edge_attr.size(0) != E:
        raise ValueError(f"edge_attr must have one row per edge ({E}), got shape "
                         f"{tuple(edge_attr.shape)}")
    return edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr


def _loop_edge_attr(edge_attr: Optional[Tensor], graph: GraphCSR, fill_value) -> Optional[Tensor]:
    """Edge features on a graph from ``with_self_loops``: the kept edges' rows, then
    ``fill_value`` rows for the loops (PyG's ``add_self_loops`` fill)."""
    if edge_attr is None or graph.kept_edges is None:
        return edge_attr
    kept = graph.kept_edges
    kept_attr = edge_attr[kept]                                            # [E', F_e]
    n_kept, n_loops = kept.numel(), graph.num_edges - kept.numel()
    kept_index = graph.edge_index()[:, :n_kept]                            # [2, E']
    fill = self_loop_attr(kept_index, graph.num_dst, kept_attr, fill_value)[:n_loops]
    return torch.cat([kept_attr, fill], dim=0)                             # [E' + L, F_e]


def _finish(layer: nn.Module, out: Tensor, x_dst: Optional[Tensor], dtype) -> Tensor:
    """Heads concatenated or averaged, then the residual map and the bias (GAT and GATv2), in
    the dtype of the projected features (the autocast dtype inside an autocast region)."""
    H, C = layer.heads, layer.out_channels
    out = out.reshape(-1, H * C) if layer.concat else out.mean(dim=1)      # [T, H*C] / [T, C]
    if layer.res is not None and x_dst is not None:
        out = out + layer.res(x_dst)
    if layer.bias is not None:
        out = out + layer.bias
    return out.to(dtype)


def _repr(layer: nn.Module) -> str:
    return (f"{type(layer).__name__}({layer.in_channels}, {layer.out_channels}, "
            f"heads={layer.heads})")


# ----------------------------------------------------------------------------------- GATConv

class GATConv(nn.Module):
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
    """

    def __init__(self, in_channels: Pair, out_channels: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0, add_self_loops: bool = True,
                 edge_dim: Optional[int] = None, fill_value: Union[float, str, Tensor] = "mean",
                 bias: bool = True, residual: bool = False, value_dropout: float = 0.0):
        super().__init__()
        _check_channels(type(self).__name__, in_channels, out_channels, heads, edge_dim,
                        dropout)
        if not 0.0 <= float(value_dropout) < 1.0:
            raise ValueError(f"value_dropout must lie in [0, 1), got {value_dropout}")
        self.value_dropout = float(value_dropout)
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.dropout = concat, dropout
        self.negative_slope = check_real(negative_slope, "negative_slope")
        self.add_self_loops, self.edge_dim, self.fill_value = add_self_loops, edge_dim, fill_value
        self.residual = residual
        HC = heads * out_channels
        self.lin = self.lin_src = self.lin_dst = None
        if isinstance(in_channels, int):
            self.lin = _linear(in_channels, HC, False, "glorot")
        else:
            self.lin_src = _linear(in_channels[0], HC, False, "glorot")
            self.lin_dst = _linear(in_channels[1], HC, False, "glorot")
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
        self.res = _linear(in_dst, total, False, "glorot") if residual else None
        self.bias = nn.Parameter(torch.empty(total)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin, self.lin_src, self.lin_dst, self.lin_edge, self.res):
            _reset_glorot(lin)
        for att in (self.att_src, self.att_dst, self.att_edge):
            if att is not None:
                _glorot(att)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: NodeInput, edge_index, edge_attr: Optional[Tensor] = None,
                size: Size = None, return_attention_weights: Optional[bool] = None):
        H, C = self.heads, self.out_channels
        x_src, x_dst, single, T = _node_inputs(x, size)
        if self.lin is not None:
            _check_features(x_src, self.lin, "x")
            _check_features(None if single else x_dst, self.lin, "x_dst")
        else:
            _check_features(x_src, self.lin_src, "x" if single else "x_src")
            _check_features(x_dst, self.lin_dst, "x" if single else "x_dst")
        adj = as_adjacency(edge_index, x_src.size(0), T, count_names=_COUNTS)
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
        elif single:
            # Both halves from the same features in one product; the targets are the first T.
            a_src, a_dst = head_dots(h_src, self.att_src, h_src, self.att_dst)
            a_dst = a_dst[:T]                                              # [T, H]
        else:
            a_src, a_dst = head_dots(h_src, self.att_src, h_dst, self.att_dst)  # [S, H], [T, H]
        graph = adj.with_self_loops() if self.add_self_loops else adj.graph()
        edge_score = None
        # Edge features count only with edge_dim (as PyG); then the loops get fill_value rows.
        edge_attr = (_loop_edge_attr(_edge_features(edge_attr, adj), graph, self.fill_value)
                     if self.lin_edge is not None else None)
        if edge_attr is not None:
            # a_e . (W_e e) = (a_e W_e) . e: one [H, edge_dim] matrix instead of [E, H, C].
            w = (self.lin_edge.weight.view(H, C, -1) * self.att_edge.view(H, C, 1)).sum(1)
            edge_score = edge_attr.to(w.dtype) @ w.t()                     # [E', H]
        # The authors' code drops out the summed features, not those the scores are made of.
        values = dropout(h_src, self.value_dropout, self.training)         # [S, H, C]
        res = gat_attention(a_src, a_dst, values, graph, edge_score=edge_score,
                            negative_slope=self.negative_slope,
                            return_attention=bool(return_attention_weights),
                            dropout=self.dropout, training=self.training)  # [T, H, C]
        # The weights come back only when asked for (one pass fewer otherwise).
        out, alpha = res if return_attention_weights else (res, None)
        out = _finish(self, out, x_dst, h_src.dtype)
        if return_attention_weights:
            return out, adj.attention_weights(graph, alpha, self.add_self_loops)
        return out

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
        return _repr(self)


# --------------------------------------------------------------------------------- GATv2Conv

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

    Args: as :class:`GATConv` (``value_dropout`` aside), plus ``share_weights`` (bool, default
    False): one linear map for sources and targets, and ``edge_chunk`` (int, default 65536):
    edges per checkpointed chunk. ``lin_l`` (sources) and ``lin_r`` (targets) carry a bias
    when ``bias``.

    Forward: as :class:`GATConv`; target features are required (``x_dst`` may not be None,
    as in PyG).

    Shapes: as :class:`GATConv`.
    """

    def __init__(self, in_channels: Pair, out_channels: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0, add_self_loops: bool = True,
                 edge_dim: Optional[int] = None, fill_value: Union[float, str, Tensor] = "mean",
                 bias: bool = True, share_weights: bool = False, residual: bool = False,
                 edge_chunk: int = 1 << 16):
        super().__init__()
        _check_channels(type(self).__name__, in_channels, out_channels, heads, edge_dim,
                        dropout)
        if isinstance(edge_chunk, bool) or not isinstance(edge_chunk, int) or edge_chunk < 1:
            raise ValueError(f"edge_chunk must be an int >= 1, got {edge_chunk!r}")
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.dropout = concat, dropout
        self.negative_slope = check_real(negative_slope, "negative_slope")
        self.add_self_loops, self.edge_dim, self.fill_value = add_self_loops, edge_dim, fill_value
        self.share_weights, self.residual, self.edge_chunk = share_weights, residual, edge_chunk
        HC = heads * out_channels
        in_src, in_dst = ((in_channels, in_channels) if isinstance(in_channels, int)
                          else in_channels)
        self.lin_l = _linear(in_src, HC, bias, "glorot")
        self.lin_r = self.lin_l if share_weights else _linear(in_dst, HC, bias, "glorot")
        self.att = nn.Parameter(torch.empty(1, heads, out_channels))
        self.lin_edge = nn.Linear(edge_dim, HC, bias=False) if edge_dim is not None else None
        total = HC if concat else out_channels
        self.res = _linear(in_dst, total, False, "glorot") if residual else None
        self.bias = nn.Parameter(torch.empty(total)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin_l, self.lin_r, self.lin_edge, self.res):
            _reset_glorot(lin)
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
        x_src, x_dst, single, T = _node_inputs(x, size)
        if x_dst is None:
            raise ValueError("GATv2Conv needs target features: x = (x_src, x_dst) with x_dst a "
                             "tensor (its score mixes W_s x_j and W_d x_i; PyG's GATv2Conv "
                             "requires them too)")
        _check_features(x_src, self.lin_l, "x" if single else "x_src")
        _check_features(x_dst, self.lin_r, "x" if single else "x_dst")
        adj = as_adjacency(edge_index, x_src.size(0), T, count_names=_COUNTS)
        h_src = self.lin_l(x_src).view(-1, H, C)                           # [S, H, C]
        if single and self.share_weights:
            h_dst = h_src[:adj.num_dst]                                    # [T, H, C]
        else:
            h_dst = self.lin_r(x_dst).view(-1, H, C)                       # [T, H, C]
        graph = adj.with_self_loops() if self.add_self_loops else adj.graph()
        edge_attr = (_loop_edge_attr(_edge_features(edge_attr, adj), graph, self.fill_value)
                     if self.lin_edge is not None else None)
        ei = graph.edge_index() if self.add_self_loops else adj.edge_index()  # [2, E']
        score = gatv2_score(self, h_src, h_dst, ei, graph, edge_attr)      # [E', H]
        # The score is complete, so the fused op runs with an identity activation (slope 1)
        # and zero per-node halves; on the CPU, as the bias of a dot product over empty queries
        # and keys, which skips the halves' gathers and gradients.
        kw = dict(return_attention=bool(return_attention_weights), dropout=self.dropout,
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
        out = _finish(self, out, x_dst, h_src.dtype)
        if return_attention_weights:
            return out, adj.attention_weights(graph, alpha, self.add_self_loops)
        return out

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
        return _repr(self)


# ---------------------------------------------------------------------- GraphTransformerConv

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
    """

    def __init__(self, in_channels: Pair, out_channels: int, heads: int = 1, concat: bool = True,
                 beta: bool = False, dropout: float = 0.0, edge_dim: Optional[int] = None,
                 bias: bool = True, root_weight: bool = True):
        super().__init__()
        _check_channels(type(self).__name__, in_channels, out_channels, heads, edge_dim,
                        dropout)
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.beta, self.dropout = concat, beta and root_weight, dropout
        self.edge_dim, self.root_weight = edge_dim, root_weight
        HC = heads * out_channels
        in_src, in_dst = ((in_channels, in_channels) if isinstance(in_channels, int)
                          else in_channels)
        self.lin_key = _linear(in_src, HC, bias)
        self.lin_query = _linear(in_dst, HC, bias)
        self.lin_value = _linear(in_src, HC, bias)
        self.lin_edge = nn.Linear(edge_dim, HC, bias=False) if edge_dim is not None else None
        total = HC if concat else out_channels
        self.lin_skip = _linear(in_dst, total, bias) if root_weight else None
        self.lin_beta = nn.Linear(3 * total, 1, bias=False) if self.beta else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin_key, self.lin_query, self.lin_value, self.lin_edge, self.lin_skip,
                    self.lin_beta):
            if lin is not None:
                lin.reset_parameters()

    def forward(self, x: NodeInput, edge_index, edge_attr: Optional[Tensor] = None,
                size: Size = None, return_attention_weights: Optional[bool] = None):
        H, C = self.heads, self.out_channels
        x_src, x_dst, single, T = _node_inputs(x, size)
        if x_dst is None:
            raise ValueError("GraphTransformerConv needs target features: x = (x_src, x_dst) "
                             "with x_dst a tensor (the queries are W_q x_dst)")
        _check_features(x_src, self.lin_key, "x" if single else "x_src")
        _check_features(x_dst, self.lin_query, "x" if single else "x_dst")
        adj = as_adjacency(edge_index, x_src.size(0), T, count_names=_COUNTS)
        q = self.lin_query(x_dst).view(-1, H, C)                           # [T, H, C]
        k = self.lin_key(x_src).view(-1, H, C)                             # [S, H, C]
        v = self.lin_value(x_src).view(-1, H, C)                           # [S, H, C]
        graph = adj.graph()
        edge_attr = _edge_features(edge_attr, adj) if self.lin_edge is not None else None
        scale = 1.0 / math.sqrt(C)
        # PyG returns the weights for any bool, True or False.
        want = isinstance(return_attention_weights, bool)
        if edge_attr is None:
            res = sparse_attention(q, k, v, graph, scale=scale, return_attention=want,
                                   dropout=self.dropout, training=self.training)
            out, alpha = res if want else (res, None)
        else:
            e = self.lin_edge(edge_attr.to(q.dtype)).view(-1, H, C)        # [E, H, C]
            ei = adj.edge_index()
            src, dst = ei[0], ei[1]
            bias = (q.index_select(0, dst) * e).sum(-1) * scale            # [E, H]
            _, alpha = sparse_attention(q, k, v, graph, bias=bias, scale=scale,
                                        return_attention=True)             # [E, H]
            w = dropout(alpha, self.dropout, self.training)                # [E, H]
            msg = (v.index_select(0, src) + e) * w.unsqueeze(-1)           # [E, H, C]
            out = q.new_zeros(q.size(0), H, C).index_add_(0, dst, msg.to(q.dtype))  # [T, H, C]
        out = out.reshape(-1, H * C) if self.concat else out.mean(dim=1)   # [T, H*C] / [T, C]
        if self.lin_skip is not None:
            x_r = self.lin_skip(x_dst)                                     # [T, total]
            if self.lin_beta is not None:
                b = torch.sigmoid(self.lin_beta(torch.cat([out, x_r, out - x_r], dim=-1)))
                out = b * x_r + (1 - b) * out
            else:
                out = out + x_r
        out = out.to(q.dtype)
        if want:
            return out, adj.attention_weights(graph, alpha, False)
        return out

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
        return _repr(self)


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
