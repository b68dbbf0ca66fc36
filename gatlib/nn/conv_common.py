"""What the sparse attention layers (GATConv, GATv2Conv, GraphTransformerConv) share: their
node and edge inputs in PyG's forms, constructor checks, initialisation, the heads' combination
and copying a PyG layer's weights."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .._checks import check_positive_int, check_probability
from ..graph.adjacency import Adjacency
from ..graph.csr import GraphCSR
from ..graph.loops import self_loop_attr

__all__ = ["Pair", "NodeInput", "Size", "COUNTS", "glorot", "lazy", "linear", "reset_glorot",
           "check_channels", "node_inputs", "check_features", "edge_features",
           "loop_edge_attr", "finish", "gat_family_kwargs", "layer_repr", "copy_weights"]

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


def finish(layer: nn.Module, res, x_dst: Optional[Tensor], dtype, adj: Adjacency,
           graph: GraphCSR, return_attention_weights):
    """The end of GAT's and GATv2's forward from the op's result ``res`` (``out [T, H, C]``, or
    ``(out, alpha)`` when the weights were asked for): heads concatenated or averaged, then the
    residual map and the bias, in the dtype of the projected features (the autocast dtype inside
    an autocast region); with the weights in the input's form when asked for."""
    out, alpha = res if return_attention_weights else (res, None)
    H, C = layer.heads, layer.out_channels
    out = out.reshape(-1, H * C) if layer.concat else out.mean(dim=1)      # [T, H*C] / [T, C]
    if layer.res is not None and x_dst is not None:
        out = out + layer.res(x_dst)
    if layer.bias is not None:
        out = out + layer.bias
    out = out.to(dtype)
    if return_attention_weights:
        return out, adj.attention_weights(graph, alpha, layer.add_self_loops)
    return out


def gat_family_kwargs(module: nn.Module) -> dict:
    """The constructor arguments GATConv and GATv2Conv share, read from a PyG layer."""
    return dict(heads=module.heads, concat=module.concat, negative_slope=module.negative_slope,
                dropout=module.dropout, add_self_loops=module.add_self_loops,
                edge_dim=module.edge_dim, fill_value=module.fill_value,
                residual=getattr(module, "res", None) is not None)


def layer_repr(layer: nn.Module) -> str:
    return (f"{type(layer).__name__}({layer.in_channels}, {layer.out_channels}, "
            f"heads={layer.heads})")


def copy_weights(layer: nn.Module, module: nn.Module, unused: Tuple[str, ...] = ()) -> nn.Module:
    """Load a PyG layer's parameters into the gatlib layer (same names, same shapes); the
    PyG parameters under the prefixes ``unused`` play no part in its function."""
    state = {k: v for k, v in module.state_dict().items()
             if not k.startswith("_") and not k.startswith(unused)}
    missing, unexpected = layer.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"cannot copy {type(module).__name__} into {type(layer).__name__}: "
                         f"missing {missing}, unexpected {unexpected}")
    return layer.to(next(module.parameters()).device)
