"""Ready models built from the gatlib attention layers: node and graph classification.

Both models stack ``num_layers`` attention layers of one kind (``layer``):

- ``'gat'``, ``'gatv2'``, ``'transformer'``: sparse attention over the neighbours
  (:class:`GATConv`, :class:`GATv2Conv`, :class:`GraphTransformerConv`);
- ``'dense'``: :class:`DenseGraphAttention` over all nodes of each graph;
- ``'linear'``: :class:`LinearGraphAttention`, kernelised attention over all nodes;
- ``'gps'``: :class:`GPSLayer` with a :class:`GATConv` local branch.

Their shared machinery is :class:`gatlib.nn.stack.AttentionStack`.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ._dropout import Dropout, dropout
from .blocks import ACTIVATIONS
from .stack import POOLS, SPARSE, AttentionStack, feature_dropout

__all__ = ["NodeClassifier", "GraphClassifier"]


class NodeClassifier(AttentionStack):
    r"""Node classification with a stack of attention layers; by default exactly the GAT of
    Velickovic et al. (2018) for Cora.

    With a sparse layer (``'gat'``, ``'gatv2'``, ``'transformer'``):

    .. math::
        h^{(0)} = x \,\Vert\, \mathrm{PE}(pe), \qquad
        h^{(l+1)} = \sigma\big(\mathrm{Norm}(\mathrm{Conv}_l(\mathrm{Dropout}(h^{(l)}))
                    \, (+\, R_l h^{(l)}))\big), \qquad
        \mathrm{logits} = \mathrm{Conv}_{L-1}(\mathrm{Dropout}(h^{(L-1)})) \,(+\, R_{L-1} h^{(L-1)})

    where the hidden layers have ``heads`` heads of ``hidden_channels`` features each,
    concatenated (width ``hidden_channels * heads``), and the last layer one head of
    ``out_channels`` (``concat=False``), as in the paper's Cora model. ``R_l`` is the identity
    or a linear map when the widths differ (only with ``residual``).

    With ``'dense'`` or ``'gps'`` an input linear map brings the features to the width
    ``W = hidden_channels * heads``, the ``num_layers`` attention layers keep it, and an output
    linear map gives the logits: ``logits = W_o Dropout(h^{(L)})``. GPS layers bring their
    own dropout, residuals and norms (GraphGPS's layout), so the stack only chains them.

    The defaults give ``Dropout(0.6) -> GATConv(F, 8, heads=8, dropout=0.6) -> ELU ->
    Dropout(0.6) -> GATConv(64, out, heads=1, concat=False, dropout=0.6)``.

    Args:
        in_channels (int): input node features ``F``.
        hidden_channels (int): features per head in the hidden layers.
        out_channels (int): classes.
        num_layers (int, default 2): attention layers, ``>= 1``.
        layer (str, default ``'gat'``): ``'gat'``, ``'gatv2'``, ``'transformer'``, ``'dense'``,
            ``'linear'`` (:class:`LinearGraphAttention`) or ``'gps'`` (a :class:`GPSLayer`
            with a :class:`GATConv` local branch).
        heads (int, default 8): attention heads of the hidden layers.
        dropout (float, default 0.6): feature dropout before each layer.
        attn_dropout (float, default 0.6): dropout on the attention weights.
        residual (bool, default False): add the layer input (linearly projected when the widths
            differ) to each layer's output.
        norm (str or None, default None): ``'batch'``, ``'layer'`` or None, between layers.
        act (str, default ``'elu'``): activation between layers, one of ``'relu'``, ``'gelu'``,
            ``'elu'``, ``'silu'``, ``'tanh'``.
        edge_dim (int, optional): edge feature size (not with ``'dense'``).
        pe_dim (int, default 0): positional encoding size ``K``; 0 for none.
        pe_channels (int, default 0): width ``P`` of the encoded positions appended to ``x``.
        pe (str, default ``'lap'``): ``'lap'`` (:class:`LapPEEncoder`, random sign flips in
            training) or ``'rw'`` (:class:`RWSEEncoder`).
        project_input (bool, default False): give sparse layers the dense layers' layout, an
            input linear map to ``W``, ``num_layers`` layers of width ``W`` and an output map
            (so sparse and dense models differ only in their attention layers, as in
            ``gatlib compare``); always the layout of ``'dense'`` and ``'gps'``.
        value_dropout (float, default 0.0): :class:`GATConv`'s ``value_dropout`` (dropout on
            the summed features, as in the GAT authors' code), ``layer='gat'`` only.

    Shapes:
        x ``[N, F]``, edge_index ``[2, E]``, batch ``[N]`` (optional), edge_attr
        ``[E, edge_dim]`` (optional), pe ``[N, K]`` -> logits ``[N, out_channels]``.
    """

    _defaults = {"residual": False, "norm": None, "act": "elu", "dropout": 0.6,
                 "attn_dropout": 0.6, "edge_dim": None, "pe_dim": 0, "pe_channels": 0,
                 "pe": "lap", "project_input": False, "value_dropout": 0.0}

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 2, layer: str = "gat", heads: int = 8, dropout: float = 0.6,
                 attn_dropout: float = 0.6, residual: bool = False, norm: Optional[str] = None,
                 act: str = "elu", edge_dim: Optional[int] = None, pe_dim: int = 0,
                 pe_channels: int = 0, pe: str = "lap", project_input: bool = False,
                 value_dropout: float = 0.0) -> None:
        super().__init__()
        if float(value_dropout) > 0 and layer != "gat":
            raise ValueError(f"value_dropout is a GATConv option (the GAT authors' dropout on "
                             f"the summed features); layer={layer!r} has none, so pass "
                             f"value_dropout=0.0 or layer='gat'")
        self.value_dropout = float(value_dropout)
        self._check_args(in_channels, hidden_channels, out_channels, num_layers, layer, heads,
                         dropout, attn_dropout, norm, act, edge_dim, pe_dim, pe_channels, pe)
        self.project_input = bool(project_input)
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.out_channels, self.num_layers = out_channels, num_layers
        self._build_common(layer, heads, dropout, attn_dropout, residual, norm, act, edge_dim,
                           pe_dim, pe_channels, pe)
        width_in = in_channels + (pe_channels if pe_dim > 0 else 0)       # F + P
        hidden = hidden_channels * heads                                   # W
        self.lin_in: Optional[nn.Linear] = None
        self.lin_out: Optional[nn.Linear] = None
        if layer in SPARSE and not self.project_input:
            width = width_in
            for i in range(num_layers):
                last = i == num_layers - 1
                if last:    # one output head, not concatenated (the paper's Cora model)
                    conv = self._make_conv(width, out_channels, heads=1, concat=False)
                    out_width = out_channels
                else:
                    conv = self._make_conv(width, hidden_channels, heads=heads, concat=True)
                    out_width = hidden
                self._add_layer(conv, width, out_width, last)
                width = out_width
        else:
            # Dense and GPS layers (and sparse ones with project_input) keep one width W
            # between an input and an output linear map.
            per_head = hidden_channels if layer in SPARSE else hidden
            self.lin_in = nn.Linear(width_in, hidden)
            for _ in range(num_layers):
                self._add_layer(self._make_conv(hidden, per_head, heads, True, width=hidden),
                                hidden, hidden, last=False)
            self.lin_out = nn.Linear(hidden, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._reset_common()
        for lin in (self.lin_in, self.lin_out):
            if lin is not None:
                lin.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, batch: Optional[Tensor] = None,
                edge_attr: Optional[Tensor] = None, pe: Optional[Tensor] = None) -> Tensor:
        """Class logits of every node.

        Args:
            x: node features, dense or sparse (``x.to_sparse_csr()``, for bag-of-words
                features such as Cora's: the input dropout and the first projection then
                touch only the non-zeros; the same model in distribution, several times
                cheaper on the CPU). Not with positional encodings.
            edge_index: ``[2, E]`` (row 0 source j, row 1 target i), or any adjacency the
                layers take (a ``GraphCSR`` to build the structure once for many calls, PyG's
                ``EdgeIndex``, a sparse adjacency); converted once per call and shared by all
                layers.
            batch (LongTensor, optional): sorted graph id of each node, for ``'dense'`` and
                ``'gps'`` (attention stays within each graph) and per-graph PE sign flips;
                None means one graph.
            edge_attr (Tensor, optional): edge features (used when ``edge_dim`` is set).
            pe (Tensor, optional): positional encodings, required when ``pe_dim > 0``.

        Shapes:
            x ``[N, F]``, edge_index ``[2, E]``, batch ``[N]``, edge_attr ``[E, edge_dim]``,
            pe ``[N, K]`` -> ``[N, out_channels]``.
        """
        graph = self._graph(x, edge_index)
        h = self._with_pe(x, pe, batch)                                    # [N, F + P]
        if self.lin_in is not None:
            h = self.lin_in(feature_dropout(h, self.dropout, self.training))  # [N, W]
        last_conv = len(self.convs) - 1 if self.lin_out is None else -1
        for i in range(len(self.convs)):
            h = self._block(i, h, graph, batch, edge_attr, last=i == last_conv)
        if self.lin_out is not None:
            h = self.lin_out(dropout(h, self.dropout, self.training))      # [N, out]
        return h

    def __repr__(self) -> str:
        extra = "".join(f", {item}" for item in self._extra_repr_items())
        return (f"{type(self).__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, layer={self.layer!r}, num_layers={self.num_layers}, "
                f"heads={self.heads}{extra})")


class GraphClassifier(AttentionStack):
    r"""Graph classification: attention layers, global pooling and an MLP head.

    .. math::
        h^{(0)} = W_{in} (x \,\Vert\, \mathrm{PE}(pe)), \qquad
        h^{(l+1)} = \sigma\big(\mathrm{Norm}(\mathrm{Conv}_l(\mathrm{Dropout}(h^{(l)}))
                    + h^{(l)})\big), \qquad
        \mathrm{logits}_b = W_2\, \mathrm{Dropout}(\sigma(W_1\, \mathrm{Pool}_{i : b_i = b}
                    h_i^{(L)}))

    Every layer keeps the width ``W = hidden_channels``: sparse layers (``'gat'``,
    ``'gatv2'``, ``'transformer'``) use ``heads`` heads of ``hidden_channels // heads``
    features, concatenated; ``'dense'`` and ``'gps'`` split ``W`` over their heads. GPS layers
    bring their own dropout, residuals and norms (GraphGPS's layout), so the stack only chains
    them.

    Args:
        in_channels (int): input node features ``F``.
        hidden_channels (int): width ``W`` of every layer; divisible by ``heads``.
        out_channels (int): classes (or targets).
        num_layers (int, default 3): attention layers, ``>= 1``.
        layer (str, default ``'gat'``): ``'gat'``, ``'gatv2'``, ``'transformer'``, ``'dense'``,
            ``'linear'`` or ``'gps'``.
        heads (int, default 4): attention heads.
        dropout (float, default 0.0): feature dropout before each layer and in the head.
        attn_dropout (float, default 0.0): dropout on the attention weights.
        residual (bool, default True): add each layer's input to its output.
        norm (str or None, default ``'batch'``): ``'batch'``, ``'layer'`` or None.
        act (str, default ``'relu'``): activation, one of ``'relu'``, ``'gelu'``, ``'elu'``,
            ``'silu'``, ``'tanh'``.
        pool (str, default ``'mean'``): global pooling, ``'mean'``, ``'sum'`` or ``'max'``;
            or ``'first'``: read out at the first node of each graph (a CLS token; every
            graph of the batch must have at least one node).
        edge_dim (int, optional): edge feature size (not with ``'dense'``).
        pe_dim (int, default 0): positional encoding size ``K``; 0 for none.
        pe_channels (int, default 0): width ``P`` of the encoded positions appended to ``x``.
        pe (str, default ``'lap'``): ``'lap'`` or ``'rw'``.

    Shapes:
        x ``[N, F]``, edge_index ``[2, E]``, batch ``[N]``, edge_attr ``[E, edge_dim]``,
        pe ``[N, K]`` -> logits ``[B, out_channels]``.
    """

    _defaults = {"residual": True, "norm": "batch", "act": "relu", "pool": "mean",
                 "dropout": 0.0, "attn_dropout": 0.0, "edge_dim": None, "pe_dim": 0,
                 "pe_channels": 0, "pe": "lap"}

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 3, layer: str = "gat", heads: int = 4, dropout: float = 0.0,
                 attn_dropout: float = 0.0, residual: bool = True, norm: Optional[str] = "batch",
                 act: str = "relu", pool: str = "mean", edge_dim: Optional[int] = None,
                 pe_dim: int = 0, pe_channels: int = 0, pe: str = "lap") -> None:
        super().__init__()
        self._check_args(in_channels, hidden_channels, out_channels, num_layers, layer, heads,
                         dropout, attn_dropout, norm, act, edge_dim, pe_dim, pe_channels, pe)
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {tuple(POOLS)}, got {pool!r}")
        if hidden_channels % heads != 0:
            fit = heads * max(1, hidden_channels // heads)
            raise ValueError(f"hidden_channels ({hidden_channels}) must be divisible by heads "
                             f"({heads}): each head gets hidden_channels // heads features; "
                             f"pick e.g. hidden_channels={fit}")
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.out_channels, self.num_layers, self.pool = out_channels, num_layers, pool
        self._build_common(layer, heads, dropout, attn_dropout, residual, norm, act, edge_dim,
                           pe_dim, pe_channels, pe)
        width_in = in_channels + (pe_channels if pe_dim > 0 else 0)       # F + P
        W = hidden_channels
        self.lin_in = nn.Linear(width_in, W)
        for _ in range(num_layers):
            self._add_layer(self._make_conv(W, W // heads, heads, True, width=W), W, W,
                            last=False)
        self.head = nn.Sequential(nn.Linear(W, W), ACTIVATIONS[act](), Dropout(dropout),
                                  nn.Linear(W, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._reset_common()
        self.lin_in.reset_parameters()
        self.head[0].reset_parameters()
        self.head[3].reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, batch: Optional[Tensor] = None,
                edge_attr: Optional[Tensor] = None, pe: Optional[Tensor] = None) -> Tensor:
        """Class logits of every graph of the batch.

        Args:
            x: node features.
            edge_index: ``[2, E]`` (row 0 source j, row 1 target i), or any adjacency the
                layers take; converted once per call and shared by all layers.
            batch (LongTensor, optional): sorted graph id of each node (PyG's ``batch``); None
                means one graph.
            edge_attr (Tensor, optional): edge features (used when ``edge_dim`` is set).
            pe (Tensor, optional): positional encodings, required when ``pe_dim > 0``.

        Shapes:
            x ``[N, F]``, edge_index ``[2, E]``, batch ``[N]``, edge_attr ``[E, edge_dim]``,
            pe ``[N, K]`` -> ``[B, out_channels]``.
        """
        graph = self._graph(x, edge_index)
        h = self.lin_in(self._with_pe(x, pe, batch))                      # [N, W]
        for i in range(len(self.convs)):
            h = self._block(i, h, graph, batch, edge_attr, last=False)     # [N, W]
        g = POOLS[self.pool](h, batch)                                    # [B, W]
        return self.head(g)                                                # [B, out]

    def __repr__(self) -> str:
        extra = "".join(f", {item}" for item in self._extra_repr_items())
        return (f"{type(self).__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, layer={self.layer!r}, num_layers={self.num_layers}, "
                f"heads={self.heads}{extra})")
