"""Ready models built from the gatlib attention layers: node and graph classification.

Both models stack ``num_layers`` attention layers of one kind (``layer``):

- ``'gat'``, ``'gatv2'``, ``'transformer'``: sparse attention over the neighbours
  (:class:`GATConv`, :class:`GATv2Conv`, :class:`GraphTransformerConv`);
- ``'dense'``: :class:`DenseGraphAttention` over all nodes of each graph;
- ``'gps'``: :class:`GPSLayer` with a :class:`GATConv` local branch.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from .._checks import check_positive_int, check_probability
from ..graph.adjacency import as_adjacency
from ._dropout import Dropout, dropout
from .conv import GATConv, GATv2Conv, GraphTransformerConv
from .dense import DenseGraphAttention
from .encoders import LapPEEncoder, RWSEEncoder
from .gps import _ACTIVATIONS, GPSLayer, _make_norm

__all__ = ["NodeClassifier", "GraphClassifier"]

_LAYERS = ("gat", "gatv2", "transformer", "dense", "gps")
_SPARSE = {"gat": GATConv, "gatv2": GATv2Conv, "transformer": GraphTransformerConv}
_NORMS = ("batch", "layer", None)
_PES = ("lap", "rw")
def _first_node_pool(h: Tensor, batch: Optional[Tensor]) -> Tensor:
    """The first node of each graph (a read-out token such as a sequence's CLS): ``[B, W]``."""
    if batch is None:
        return h[:1]                                                       # [1, W]
    if batch.numel() == 0:
        return h[:0]                                                       # [0, W]
    starts = torch.ones_like(batch, dtype=torch.bool)                      # [N]
    starts[1:] = batch[1:] != batch[:-1]
    return h[starts]                                                       # [B, W]


def _dropout(h: Tensor, p: float, training: bool) -> Tensor:
    """Feature dropout; on a sparse (CSR or COO) ``h`` only the stored entries are dropped.

    Dropout leaves a zero entry zero, so dropping only the stored entries has exactly the
    distribution of dense dropout, while it draws ``nnz`` random numbers instead of ``N * F``
    (Cora's bag-of-words features are 1.3% non-zero).
    """
    if h.layout == torch.strided:
        return dropout(h, p, training)
    if not training or p == 0.0:
        return h
    if h.layout == torch.sparse_csr:
        # The pattern is the input's own, already valid: skip the invariant check.
        return torch.sparse_csr_tensor(h.crow_indices(), h.col_indices(),
                                       dropout(h.values(), p, True), size=h.shape,
                                       check_invariants=False)
    if h.layout == torch.sparse_coo:
        h = h.coalesce()
        return torch.sparse_coo_tensor(h.indices(), dropout(h.values(), p, True),
                                       size=h.shape, is_coalesced=True, check_invariants=False)
    raise ValueError(f"x must be a dense, sparse CSR or sparse COO tensor, got layout "
                     f"{h.layout}; convert it with x.to_dense() or x.to_sparse_csr()")


_POOLS = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool,
          "first": _first_node_pool}


class _AttentionStack(nn.Module):
    """What both models share: argument checks, the positional-encoding input, one block per
    attention layer (dropout -> layer -> residual -> norm -> act) and a readable repr."""

    _defaults: dict = {}
    value_dropout: float = 0.0          # GATConv's value_dropout (NodeClassifier sets it)

    def _check_args(self, in_channels: int, hidden_channels: int, out_channels: int,
                    num_layers: int, layer: str, heads: int, dropout: float, attn_dropout: float,
                    norm: Optional[str], act: str, edge_dim: Optional[int], pe_dim: int,
                    pe_channels: int, pe: str) -> None:
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                            ("out_channels", out_channels), ("num_layers", num_layers),
                            ("heads", heads)):
            check_positive_int(value, name)
        if layer not in _LAYERS:
            raise ValueError(f"layer must be one of {_LAYERS}, got {layer!r}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of 'batch', 'layer' or None, got {norm!r}")
        if act not in _ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(_ACTIVATIONS)}, got {act!r}")
        check_probability(dropout, "dropout")
        check_probability(attn_dropout, "attn_dropout")
        if check_positive_int(edge_dim, "edge_dim", optional=True) is not None:
            if layer == "dense":
                raise ValueError("edge_dim is not supported with layer='dense' (dense attention "
                                 "has no edges); use layer='gps' or 'gat', or edge_dim=None")
        check_positive_int(pe_dim, "pe_dim", minimum=0)
        check_positive_int(pe_channels, "pe_channels", minimum=0)
        if pe not in _PES:
            raise ValueError(f"pe must be 'lap' (Laplacian eigenvectors) or 'rw' (random-walk "
                             f"encodings), got {pe!r}")
        if pe_dim > 0 and pe_channels < 1:
            raise ValueError(f"pe_channels must be >= 1 when pe_dim > 0 (got pe_dim={pe_dim}, "
                             f"pe_channels={pe_channels}): it is the width of the encoded "
                             f"positional features concatenated to x")

    def _build_common(self, layer: str, heads: int, dropout: float, attn_dropout: float,
                      residual: bool, norm: Optional[str], act: str, edge_dim: Optional[int],
                      pe_dim: int, pe_channels: int, pe: str) -> None:
        self.layer, self.heads = layer, heads
        self.dropout, self.attn_dropout = dropout, attn_dropout
        self.residual, self.norm, self.act_name, self.edge_dim = residual, norm, act, edge_dim
        self.pe_dim, self.pe_channels, self.pe = pe_dim, pe_channels, pe
        self.pe_encoder: Optional[nn.Module] = None
        if pe_dim > 0:
            self.pe_encoder = (LapPEEncoder(pe_dim, pe_channels) if pe == "lap"
                               else RWSEEncoder(pe_dim, pe_channels))
        self.act = _ACTIVATIONS[act]()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        # GPS layers carry their own residuals: the stack adds none around them.
        self.res: Optional[nn.ModuleList] = (nn.ModuleList() if residual and layer != "gps"
                                             else None)

    def _add_layer(self, conv: nn.Module, in_width: int, out_width: int, last: bool) -> None:
        """Append an attention layer with its residual map and norm."""
        self.convs.append(conv)
        # GPS layers norm themselves; the output layer of a node classifier is never normed.
        gps_or_last = self.layer == "gps" or last
        self.norms.append(_make_norm(None if gps_or_last else self.norm, out_width))
        if self.res is not None:
            self.res.append(nn.Identity() if in_width == out_width
                            else nn.Linear(in_width, out_width, bias=False))

    def _make_conv(self, in_width: int, out_channels: int, heads: int, concat: bool,
                   width: Optional[int] = None) -> nn.Module:
        """One attention layer; ``width`` is the kept width of a dense or GPS layer."""
        if self.layer in _SPARSE:
            extra = ({"value_dropout": self.value_dropout} if self.value_dropout > 0 else {})
            return _SPARSE[self.layer](in_width, out_channels, heads=heads, concat=concat,
                                       dropout=self.attn_dropout, edge_dim=self.edge_dim,
                                       **extra)
        if self.layer == "dense":
            return DenseGraphAttention(width, heads, dropout=self.attn_dropout)
        local = GATConv(width, width // heads, heads=heads, dropout=self.attn_dropout,
                        edge_dim=self.edge_dim)
        return GPSLayer(width, local, heads=heads, dropout=self.dropout,
                        attn_dropout=self.attn_dropout, norm=self.norm, act=self.act_name)

    def _reset_common(self) -> None:
        if self.pe_encoder is not None:
            self.pe_encoder.reset_parameters()
        for module in list(self.convs) + list(self.norms) + list(self.res or []):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def _with_pe(self, x: Tensor, pe: Optional[Tensor], batch: Optional[Tensor]) -> Tensor:
        """``x`` with the encoded positional features appended: ``[N, F]`` -> ``[N, F + P]``."""
        if x.layout != torch.strided and pe is not None:
            raise ValueError("positional encodings cannot be appended to sparse node features "
                             "x: pass a dense x (x.to_dense()) when pe is given")
        if self.pe_encoder is None:
            if pe is not None:
                raise ValueError("pe was given but the model was built with pe_dim=0; build it "
                                 "with pe_dim=K and pe_channels=P to use positional encodings")
            return x
        if pe is None:
            raise ValueError(f"pe is required: the model was built with pe_dim={self.pe_dim} "
                             f"(pass the [N, {self.pe_dim}] encodings, e.g. data.pe)")
        if self.pe == "lap":
            enc = self.pe_encoder(pe, batch)                               # [N, P]
        else:
            enc = self.pe_encoder(pe)                                      # [N, P]
        return torch.cat([x, enc.to(x.dtype)], dim=-1)                     # [N, F + P]

    def _graph(self, x: Tensor, edge_index):
        """The graph every layer of one forward pass shares: the caller's ``GraphCSR`` as is
        (its self-loop graph is then built once and kept on it), any other adjacency converted
        once here, so the layers do not each rebuild it. Dense layers read no graph: passed
        through as given."""
        if self.layer == "dense":
            return edge_index
        return as_adjacency(edge_index, x.size(0), x.size(0)).graph()

    def _block(self, i: int, h: Tensor, edge_index, batch: Optional[Tensor],
               edge_attr: Optional[Tensor], last: bool) -> Tensor:
        """Layer ``i``: dropout -> attention -> residual -> norm -> act (no act when last)."""
        conv = self.convs[i]
        if self.layer == "gps":
            # A GPS layer has its own dropout, residuals, norms and feed-forward activation.
            return conv(h, edge_index, batch, edge_attr)                   # [N, W]
        h_in = _dropout(h, self.dropout, self.training)                    # [N, F_i]
        if self.layer == "dense":
            out = conv(h_in, batch)                                        # [N, W]
        elif edge_attr is None:
            out = conv(h_in, edge_index)                                   # [N, F_i+1]
        else:
            out = conv(h_in, edge_index, edge_attr)                        # [N, F_i+1]
        if self.res is not None:
            # The skip reads the un-dropped input, so dropout does not compound along it.
            out = out + self.res[i](h)
        if last:
            return out
        return self.act(self.norms[i](out))

    def _extra_repr_items(self):
        for name, default in self._defaults.items():
            value = getattr(self, "act_name" if name == "act" else name)
            if value != default:
                yield f"{name}={value!r}"


class NodeClassifier(_AttentionStack):
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
        layer (str, default ``'gat'``): ``'gat'``, ``'gatv2'``, ``'transformer'``, ``'dense'``
            or ``'gps'`` (a :class:`GPSLayer` with a :class:`GATConv` local branch).
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
        if layer in _SPARSE and not self.project_input:
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
            per_head = hidden_channels if layer in _SPARSE else hidden
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
            h = self.lin_in(_dropout(h, self.dropout, self.training))      # [N, W]
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


class GraphClassifier(_AttentionStack):
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
        layer (str, default ``'gat'``): ``'gat'``, ``'gatv2'``, ``'transformer'``, ``'dense'``
            or ``'gps'``.
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
        if pool not in _POOLS:
            raise ValueError(f"pool must be one of {tuple(_POOLS)}, got {pool!r}")
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
        self.head = nn.Sequential(nn.Linear(W, W), _ACTIVATIONS[act](), Dropout(dropout),
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
        g = _POOLS[self.pool](h, batch)                                    # [B, W]
        return self.head(g)                                                # [B, out]

    def __repr__(self) -> str:
        extra = "".join(f", {item}" for item in self._extra_repr_items())
        return (f"{type(self).__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, layer={self.layer!r}, num_layers={self.num_layers}, "
                f"heads={self.heads}{extra})")
