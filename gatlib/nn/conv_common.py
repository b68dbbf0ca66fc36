"""What the sparse attention layers (GATConv, GATv2Conv, GraphTransformerConv) share: their base
class :class:`AttentionConv` (a PyG ``MessagePassing``: initialisation, PyG's propagate path
for its tooling, the heads' combination, the repr, copying a PyG layer's weights), and their
node and edge inputs in PyG's forms and constructor checks."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.conv import MessagePassing

from .._checks import check_positive_int, check_probability
from ..graph.adjacency import Adjacency
from ..graph.csr import GraphCSR
from ..graph.loops import self_loop_attr
from ..ops import segment_softmax

__all__ = ["AttentionConv", "Pair", "NodeInput", "Size", "COUNTS", "glorot", "lazy", "linear",
           "reset_glorot", "check_channels", "node_inputs", "check_features", "edge_features",
           "loop_edge_attr"]

Pair = Union[int, Tuple[int, int]]
NodeInput = Union[Tensor, Tuple[Tensor, Optional[Tensor]]]
Size = Optional[Tuple[int, int]]
# How the layers' inputs give the node counts, for errors about an adjacency of another size.
COUNTS = ("the number of source rows of x", "the number of targets (x_dst rows or size[1])")


def glorot(t: Tensor) -> None:
    nn.init.xavier_uniform_(t.view(-1, t.size(-1)) if t.dim() > 2 else t)


def lazy(lin: Optional[nn.Module]) -> bool:
    return lin is not None and isinstance(lin.weight, nn.parameter.UninitializedParameter)


def linear(in_channels: int, out_channels: int, bias: bool,
            initializer: Optional[str] = None) -> nn.Module:
    """``nn.Linear``, or PyG's lazily initialised ``Linear`` for ``in_channels=-1`` (its
    ``initializer`` is then applied when the first input fixes the width)."""
    if in_channels > 0:
        return nn.Linear(in_channels, out_channels, bias=bias)
    from torch_geometric.nn.dense.linear import Linear
    return Linear(-1, out_channels, bias=bias, weight_initializer=initializer,
                  bias_initializer="zeros" if initializer else None)


def reset_glorot(lin: Optional[nn.Module], zero_bias: bool = True) -> None:
    """Glorot weights and zero bias (a lazy map initialises itself on its first input)."""
    if lin is None:
        return
    if lazy(lin):
        lin.reset_parameters()
        return
    glorot(lin.weight)
    if zero_bias and lin.bias is not None:
        nn.init.zeros_(lin.bias)


def check_channels(layer: str, in_channels, out_channels, heads, edge_dim,
                    dropout=0.0) -> None:
    """Constructor checks shared by the three layers (ValueError naming the argument)."""
    ins = in_channels if isinstance(in_channels, (tuple, list)) else (in_channels,)
    if len(ins) not in (1, 2) or any(isinstance(c, bool) or not isinstance(c, int)
                                     or (c < 1 and c != -1) for c in ins):
        raise ValueError(f"{layer}: in_channels must be an int >= 1 (or -1 for lazy "
                         f"initialisation), or a pair (source, target) of them; got "
                         f"{in_channels!r}")
    check_positive_int(out_channels, f"{layer}: out_channels")
    check_positive_int(heads, f"{layer}: heads")
    check_positive_int(edge_dim, f"{layer}: edge_dim", optional=True)
    check_probability(dropout, f"{layer}: dropout")


def node_inputs(x: NodeInput, size: Size) -> Tuple[Tensor, Optional[Tensor], bool,
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


def check_features(x: Optional[Tensor], lin: Optional[nn.Module], name: str) -> None:
    """``x`` must have the width and (outside autocast) the dtype of ``lin``'s weight."""
    if x is None or lin is None:
        return
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; convert it "
                        f"with {name}.float()")
    if lazy(lin):
        return
    width = lin.weight.size(1)
    if x.size(-1) != width:
        raise ValueError(f"{name} has {x.size(-1)} features per node but the layer expects "
                         f"{width} (in_channels): {name} must be [N, {width}]")
    if x.dtype != lin.weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f"{name} has dtype {x.dtype} but the layer's weights are "
                        f"{lin.weight.dtype}; convert one of them ({name}.to"
                        f"({lin.weight.dtype}) or layer.to({x.dtype}))")


def edge_features(edge_attr: Optional[Tensor], adj: Adjacency) -> Optional[Tensor]:
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


def loop_edge_attr(edge_attr: Optional[Tensor], graph: GraphCSR, fill_value) -> Optional[Tensor]:
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


class AttentionConv(MessagePassing):
    r"""What GATConv, GATv2Conv and GraphTransformerConv share: a PyG ``MessagePassing`` (so
    PyG's tooling sees them: ``set_masks`` and the explainers, ``to_hetero``, ``summary``)
    whose ``forward`` runs gatlib's fused operators, with the constructor's common checks,
    initialisation, the heads' combination, the repr and ``from_pyg``.

    PyG's ``propagate`` runs only when PyG's tooling looks inside a layer: in explain mode
    (``set_masks`` sets ``explain`` and ``_edge_mask``) or while a propagate, message or
    aggregate hook is registered (``AttentionExplainer`` reads ``alpha`` through a message
    hook). Then the layer computes each edge's score in the caller's edge order, the softmax
    over each target's in-edges and attention dropout, and hands ``propagate`` the values and
    weights: ``message`` is ``alpha_ij (v_j (+ e_ij))`` as in PyG's layers, which PyG's
    ``explain_message`` multiplies by the edge mask (the added self-loops by 1). That path
    builds the ``[E, H, C]`` messages; every other call stays on the fused path.

    Subclasses name their linear maps in ``_MAPS`` and attention vectors in ``_VECTORS``
    (reset by :meth:`reset_parameters`), give the constructor arguments read from a PyG layer
    (:meth:`_pyg_kwargs`) and add their target terms (:meth:`_root`).
    """

    # The linear maps and attention vectors reset_parameters initialises, by attribute name.
    _MAPS: Tuple[str, ...] = ()
    _VECTORS: Tuple[str, ...] = ()
    # Glorot weights and zero biases (GAT, GATv2), or the maps' own reset (TransformerConv).
    _GLOROT_MAPS = True
    # What propagate is called with (read by PyG when it builds its propagate).
    propagate_type = {"x": "Tensor", "alpha": "Tensor", "edge_value": "Optional[Tensor]"}

    def __init__(self, in_channels: Pair, out_channels: int, heads: int, concat: bool,
                 dropout: float, edge_dim: Optional[int]):
        # node_dim=0: messages are [E, H, C], edges along the first dimension (as PyG's GAT).
        super().__init__(aggr="add", node_dim=0)
        check_channels(type(self).__name__, in_channels, out_channels, heads, edge_dim,
                        dropout)
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.dropout, self.edge_dim = concat, dropout, edge_dim

    def _set_jittable_templates(self, raise_on_error: bool = False) -> None:
        """Keep PyG's Python ``propagate``: PyG would generate a faster one per class from a
        template (written to a temporary file), which only explain mode and hooks would use
        here, and which a subclass (``TransformerConv``) would inherit as its "original"
        ``propagate``, the one explain mode switches to, without the edge mask."""

    def reset_parameters(self) -> None:
        for name in self._MAPS:
            lin = getattr(self, name)
            if self._GLOROT_MAPS:
                reset_glorot(lin)
            elif lin is not None:
                lin.reset_parameters()
        for name in self._VECTORS:
            if getattr(self, name) is not None:
                glorot(getattr(self, name))
        if getattr(self, "bias", None) is not None:
            nn.init.zeros_(self.bias)

    # ------------------------------------------------------------------ PyG's propagate path
    def _inspected(self) -> bool:
        """Whether PyG's tooling looks inside this call (explain mode or hooks), so that it
        must run through ``propagate``."""
        return bool(self._explain or self._propagate_forward_pre_hooks
                    or self._propagate_forward_hooks or self._message_forward_pre_hooks
                    or self._message_forward_hooks or self._aggregate_forward_pre_hooks
                    or self._aggregate_forward_hooks)

    def _propagated(self, score: Tensor, values: Tensor, graph: GraphCSR,
                    edge_value: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(out [T, H, C], alpha [E, H])`` through PyG's ``propagate``: the softmax of
        ``score [E, H]`` (the edges of ``graph`` in its caller's order) over each target's
        in-edges, dropout, then ``sum_j alpha_ij (v_j (+ e_ij))``."""
        ei = graph.edge_index()                                            # [2, E]
        alpha = segment_softmax(score, ei[1], num_nodes=graph.num_dst)     # [E, H]
        dropped = F.dropout(alpha, p=self.dropout, training=self.training)
        out = self.propagate(ei, x=values, alpha=dropped, edge_value=edge_value,
                             size=(graph.num_src, graph.num_dst))          # [T, H, C]
        return out, alpha

    def message(self, x_j: Tensor, alpha: Tensor, edge_value: Optional[Tensor]) -> Tensor:
        if edge_value is not None:
            x_j = x_j + edge_value                                         # [E, H, C]
        return x_j * alpha.unsqueeze(-1)                                   # [E, H, C]

    # ------------------------------------------------------------------ the output
    def _root(self, out: Tensor, x_dst: Optional[Tensor]) -> Tensor:
        """The terms of the targets' own features added after the heads are combined (GAT's
        residual map and bias here; TransformerConv's skip and gate override it)."""
        if self.res is not None and x_dst is not None:
            out = out + self.res(x_dst)
        if self.bias is not None:
            out = out + self.bias
        return out

    def _finish(self, out: Tensor, alpha: Optional[Tensor], x_dst: Optional[Tensor], dtype,
                adj: Adjacency, graph: GraphCSR, loops_added: bool, want: bool):
        """The end of every forward: ``out [T, H, C]`` heads concatenated or averaged, the
        targets' own terms (:meth:`_root`), in ``dtype`` (that of the projected features: the
        autocast dtype inside an autocast region); with the weights ``alpha`` in the input's
        form when asked for."""
        H, C = self.heads, self.out_channels
        out = out.reshape(-1, H * C) if self.concat else out.mean(dim=1)   # [T, H*C] / [T, C]
        out = self._root(out, x_dst).to(dtype)
        if want:
            return out, adj.attention_weights(graph, alpha, loops_added)
        return out

    # ------------------------------------------------------------------ PyG's layers
    @classmethod
    def _pyg_kwargs(cls, module) -> dict:
        """The constructor arguments, beyond the channels, of the layer computing ``module``'s
        function (GAT's and GATv2's shared ones here)."""
        return dict(heads=module.heads, concat=module.concat,
                    negative_slope=module.negative_slope, dropout=module.dropout,
                    add_self_loops=module.add_self_loops, edge_dim=module.edge_dim,
                    fill_value=module.fill_value,
                    residual=getattr(module, "res", None) is not None)

    @classmethod
    def _pyg_unused(cls, module) -> Tuple[str, ...]:
        """Prefixes of ``module``'s parameters that play no part in its function."""
        return ()

    @classmethod
    def from_pyg(cls, module):
        """The gatlib layer computing the same function as the PyG layer ``module`` (weights
        copied: same names, same shapes), on the module's device."""
        layer = cls(module.in_channels, module.out_channels, **cls._pyg_kwargs(module))
        unused = cls._pyg_unused(module)
        state = {k: v for k, v in module.state_dict().items()
                 if not k.startswith("_") and not k.startswith(unused)}
        missing, unexpected = layer.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"cannot copy {type(module).__name__} into {cls.__name__}: "
                             f"missing {missing}, unexpected {unexpected}")
        return layer.to(next(module.parameters()).device)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"heads={self.heads})")
