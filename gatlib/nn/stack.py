"""What the ready models (:mod:`gatlib.nn.models`) share: argument checks, the positional-encoding
input, one block per attention layer (dropout -> layer -> residual -> norm -> act), read-outs.

Both models stack ``num_layers`` attention layers of one kind (``layer``):

- ``'gat'``, ``'gatv2'``, ``'transformer'``: sparse attention over the neighbours
  (:class:`GATConv`, :class:`GATv2Conv`, :class:`GraphTransformerConv`);
- ``'dense'``: :class:`DenseGraphAttention` over all nodes of each graph;
- ``'linear'``: :class:`LinearGraphAttention` over all nodes of each graph (kernelised, linear
  in the nodes);
- ``'gps'``: :class:`GPSLayer` with a :class:`GATConv` local branch.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from .._checks import check_positive_int, check_probability
from ..graph.adjacency import as_adjacency
from ._dropout import dropout
from .conv import GATConv, GATv2Conv, GraphTransformerConv
from .dense import DenseGraphAttention
from .linear import LinearGraphAttention
from .blocks import ACTIVATIONS, NORMS, make_norm
from .encoders import LapPEEncoder, RWSEEncoder
from .gps import GPSLayer

__all__ = ["AttentionStack", "POOLS", "LAYERS", "SPARSE", "feature_dropout",
           "first_node_pool"]

LAYERS = ("gat", "gatv2", "transformer", "dense", "linear", "gps")
GLOBAL = {"dense": DenseGraphAttention, "linear": LinearGraphAttention}   # see no edges
SPARSE = {"gat": GATConv, "gatv2": GATv2Conv, "transformer": GraphTransformerConv}
_PES = ("lap", "rw")


def first_node_pool(h: Tensor, batch: Optional[Tensor]) -> Tensor:
    """The first node of each graph (a read-out token such as a sequence's CLS): ``[B, W]``."""
    if batch is None:
        return h[:1]                                                       # [1, W]
    if batch.numel() == 0:
        return h[:0]                                                       # [0, W]
    starts = torch.ones_like(batch, dtype=torch.bool)                      # [N]
    starts[1:] = batch[1:] != batch[:-1]
    return h[starts]                                                       # [B, W]


def feature_dropout(h: Tensor, p: float, training: bool) -> Tensor:
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


POOLS = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool,
          "first": first_node_pool}


class AttentionStack(nn.Module):
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
        if layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of 'batch', 'layer' or None, got {norm!r}")
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
        check_probability(dropout, "dropout")
        check_probability(attn_dropout, "attn_dropout")
        if check_positive_int(edge_dim, "edge_dim", optional=True) is not None:
            if layer in GLOBAL:
                raise ValueError(f"edge_dim is not supported with layer={layer!r} (attention "
                                 f"over all nodes has no edges); use layer='gps' or 'gat', or "
                                 f"edge_dim=None")
        if layer == "linear" and float(attn_dropout) > 0:
            raise ValueError(f"attn_dropout must be 0 with layer='linear' (linear attention "
                             f"never forms the weights it would drop), got {attn_dropout}")
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
        self.act = ACTIVATIONS[act]()
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
        self.norms.append(make_norm(None if gps_or_last else self.norm, out_width))
        if self.res is not None:
            self.res.append(nn.Identity() if in_width == out_width
                            else nn.Linear(in_width, out_width, bias=False))

    def _make_conv(self, in_width: int, out_channels: int, heads: int, concat: bool,
                   width: Optional[int] = None) -> nn.Module:
        """One attention layer; ``width`` is the kept width of a dense or GPS layer."""
        if self.layer in SPARSE:
            extra = ({"value_dropout": self.value_dropout} if self.value_dropout > 0 else {})
            return SPARSE[self.layer](in_width, out_channels, heads=heads, concat=concat,
                                       dropout=self.attn_dropout, edge_dim=self.edge_dim,
                                       **extra)
        if self.layer == "dense":
            return DenseGraphAttention(width, heads, dropout=self.attn_dropout)
        if self.layer == "linear":
            return LinearGraphAttention(width, heads)
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
        if self.layer in GLOBAL:
            return edge_index
        return as_adjacency(edge_index, x.size(0), x.size(0)).graph()

    def _block(self, i: int, h: Tensor, edge_index, batch: Optional[Tensor],
               edge_attr: Optional[Tensor], last: bool) -> Tensor:
        """Layer ``i``: dropout -> attention -> residual -> norm -> act (no act when last)."""
        conv = self.convs[i]
        if self.layer == "gps":
            # A GPS layer has its own dropout, residuals, norms and feed-forward activation.
            return conv(h, edge_index, batch, edge_attr)                   # [N, W]
        h_in = feature_dropout(h, self.dropout, self.training)                    # [N, F_i]
        if self.layer in GLOBAL:
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
