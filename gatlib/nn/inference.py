r"""Layer-wise inference and block-wise forward passes of message-passing models.

A model is described as a list of *steps*, each one of:

- :class:`NodeStep`: a map of each node's own features (an input projection, an activation, an
  output map), ``fn(h [n, F], idx) -> [n, F']`` where ``idx`` (a slice or an index) picks the
  same nodes' rows of per-node inputs such as positional encodings;
- :class:`GraphStep`: one message-passing layer, ``fn(h_src [S, F], edge_index [2, E], size=(S,
  T), edge_attr [E, ...] or None) -> [T, F']``, where the first ``T`` rows of ``h_src`` are the
  targets (gatlib's ``size=(S, T)`` convention, that of a ``NeighborLoader`` batch).

:func:`layerwise_inference` evaluates the steps one at a time over all nodes, the targets of
each graph step in chunks: a chunk of targets ``[a, b)`` reads its in-edges (a contiguous range
of the CSR structure) and the previous step's output of their sources only, so no call sees more
than the chunk's ``T + S`` rows and its in-edges, while the result equals the full-graph forward
pass (every target sees all its in-edges). :func:`forward_blocks` runs the same steps over the
per-layer bipartite blocks of a sampled mini-batch (:func:`gatlib.loader.to_blocks`).

:func:`layer_steps` gives the steps of a :class:`~gatlib.nn.NodeClassifier` with sparse layers,
of a model with a ``layerwise_steps()`` method (the protocol: return a list of steps or modules),
or of a list of modules (graph layers: those whose ``forward`` takes ``edge_index``; any other
module is a node-wise map). Dense and GPS layers attend over all nodes of a graph, so a chunk of
targets would need every node's features at once: they are not chunkable by targets and are
refused with an error.
"""
from __future__ import annotations

import inspect
import numbers
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..graph.adjacency import to_csr
from ..graph.csr import GraphCSR
from .conv import GATConv, GATv2Conv, GraphTransformerConv
from .stack import feature_dropout

__all__ = ["NodeStep", "GraphStep", "layer_steps", "layerwise_inference", "forward_blocks"]

_GATLIB_LAYERS = (GATConv, GATv2Conv, GraphTransformerConv)
Index = Union[slice, Tensor]


class NodeStep(NamedTuple):
    """A node-wise step: ``fn(h [n, F], idx) -> [n, F']`` (``idx`` selects the same nodes'
    rows of per-node inputs)."""
    fn: Callable[[Tensor, Index], Tensor]


class GraphStep(NamedTuple):
    """A message-passing step: ``fn(h_src [S, F], edge_index [2, E], size, edge_attr) ->
    [T, F']``, targets the first ``T`` rows of ``h_src``."""
    fn: Callable[[Tensor, Tensor, Tuple[int, int], Optional[Tensor]], Tensor]


Step = Union[NodeStep, GraphStep]


# ---------------------------------------------------------------------------- steps of models

def _is_graph_layer(module: nn.Module) -> bool:
    try:
        return "edge_index" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


def _module_step(module: nn.Module) -> Step:
    """A module as a step: a graph layer (gatlib's take ``size=(S, T)`` with targets first; any
    other, e.g. PyG's, gets PyG's bipartite pair ``(x_src, x_dst)``), else a node-wise map."""
    if not _is_graph_layer(module):
        return NodeStep(lambda h, idx: module(h))
    gatlib_layer = isinstance(module, _GATLIB_LAYERS)

    def fn(h, edge_index, size, edge_attr):
        kw = {} if edge_attr is None else {"edge_attr": edge_attr}
        if gatlib_layer:
            return module(h, edge_index, size=size, **kw)                  # [T, F']
        return module((h, h[:size[1]]), edge_index, size=size, **kw)        # [T, F']
    return GraphStep(fn)


def _node_classifier_steps(model, pe: Optional[Tensor]) -> List[Step]:
    """The steps of a :class:`NodeClassifier` with sparse layers, read from its public modules:
    ``(pe encoder, lin_in)``, then per layer ``dropout -> conv -> (+ residual) -> norm -> act``
    (no norm and act after the last conv when there is no ``lin_out``), then ``lin_out``."""
    if model.layer not in ("gat", "gatv2", "transformer"):
        raise ValueError(f"layer-wise evaluation needs message-passing layers; this "
                         f"NodeClassifier has layer={model.layer!r}, whose attention runs over "
                         f"all nodes of a graph, so a chunk of targets would need every node's "
                         f"features at once (not chunkable by targets). Run model(x, "
                         f"edge_index) on the whole graph instead, or use layer='gat', 'gatv2' "
                         f"or 'transformer'")
    if model.pe_encoder is not None and pe is None:
        raise ValueError(f"pe is required: the model was built with pe_dim={model.pe_dim} "
                         f"(pass the [N, {model.pe_dim}] encodings, e.g. data.pe)")
    if model.pe_encoder is None and pe is not None:
        raise ValueError("pe was given but the model was built with pe_dim=0")
    steps: List[Step] = []
    p = model.dropout

    if model.pe_encoder is not None or model.lin_in is not None:
        def pre(h, idx):
            if model.pe_encoder is not None:
                rows = pe[idx]                                             # [n, K]
                enc = (model.pe_encoder(rows, None) if model.pe == "lap"
                       else model.pe_encoder(rows))                        # [n, P]
                h = torch.cat([h, enc.to(h.dtype)], dim=-1)                # [n, F + P]
            if model.lin_in is not None:
                h = model.lin_in(feature_dropout(h, p, model.training))    # [n, W]
            return h
        steps.append(NodeStep(pre))

    last_conv = len(model.convs) - 1 if model.lin_out is None else -1
    for i, conv in enumerate(model.convs):
        def block(h, edge_index, size, edge_attr, i=i, conv=conv):
            # The model's own feature dropout (byte masks): torch's per-element Bernoulli
            # draw was two thirds of a sampled training step on the CPU.
            h_in = feature_dropout(h, p, model.training)                   # [S, F_i]
            if edge_attr is None:
                out = conv(h_in, edge_index, size=size)                    # [T, F_i+1]
            else:
                out = conv(h_in, edge_index, edge_attr, size=size)         # [T, F_i+1]
            if model.res is not None:
                # The skip reads the targets' un-dropped input, as the model does.
                out = out + model.res[i](h[:size[1]])                      # [T, F_i+1]
            if i == last_conv:
                return out
            return model.act(model.norms[i](out))
        steps.append(GraphStep(block))

    if model.lin_out is not None:
        steps.append(NodeStep(lambda h, idx: model.lin_out(
            feature_dropout(h, p, model.training))))
    return steps


def layer_steps(model, pe: Optional[Tensor] = None) -> List[Step]:
    """The steps of ``model``: a :class:`~gatlib.nn.NodeClassifier` (sparse layers), an object
    with ``layerwise_steps()``, or a sequence of steps and modules (see the module docstring).

    Args:
        model: the model.
        pe (Tensor, optional): the positional encodings a NodeClassifier with ``pe_dim > 0``
            reads (rows picked by each node step's ``idx``).
    """
    from .models import GraphClassifier, NodeClassifier
    if isinstance(model, NodeClassifier):
        return _node_classifier_steps(model, pe)
    if isinstance(model, GraphClassifier):
        raise TypeError("GraphClassifier pools whole graphs: it has no per-node output to "
                        "evaluate layer by layer; run it on batches of graphs")
    if hasattr(model, "layerwise_steps"):
        model = model.layerwise_steps()
    if isinstance(model, nn.Module) and not isinstance(model, (nn.Sequential, nn.ModuleList)):
        if _is_graph_layer(model):
            return [_module_step(model)]
        raise TypeError(f"{type(model).__name__} has no layer-by-layer description: give it a "
                        f"layerwise_steps() method returning its steps (NodeStep, GraphStep or "
                        f"modules), or pass the list of its layers")
    if not isinstance(model, (list, tuple, nn.Sequential, nn.ModuleList)):
        raise TypeError(f"model must be a NodeClassifier, a module with layerwise_steps(), or a "
                        f"list of steps and modules, got {type(model).__name__}")
    steps: List[Step] = []
    for k, item in enumerate(model):
        if isinstance(item, (NodeStep, GraphStep)):
            steps.append(item)
        elif isinstance(item, nn.Module):
            steps.append(_module_step(item))
        else:
            raise TypeError(f"step {k} is a {type(item).__name__}: wrap a function in NodeStep "
                            f"(node-wise) or GraphStep (message passing) so its kind is known")
    return steps


# ---------------------------------------------------------------------------- helpers

def _rows(h: Tensor, idx: Index) -> Tensor:
    """Dense rows of ``h`` (a sparse COO ``h`` gives the rows densified)."""
    if h.layout == torch.strided:
        return h[idx]
    if isinstance(idx, slice):
        idx = torch.arange(h.size(0), device=h.device)[idx]
    return h.index_select(0, idx.to(h.device)).to_dense()


def _as_rowwise(x: Tensor) -> Tensor:
    """``x`` ready for row gathers: dense as is, any sparse layout as COO (converted once)."""
    if x.layout == torch.strided:
        return x
    if x.layout in (torch.sparse_csr, torch.sparse_coo):
        return x.to_sparse_coo().coalesce()
    raise ValueError(f"x must be a dense, sparse CSR or sparse COO tensor, got layout {x.layout}")


def _check_count(value, name: str, allow_none: bool = False) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1{' or None' if allow_none else ''}, got "
                         f"{value!r}")
    return int(value)


def _chunks(rowptr: Tensor, n: int, chunk_size: int,
            max_edges: Optional[int]) -> List[Tuple[int, int]]:
    """Ranges ``[a, b)`` of at most ``chunk_size`` targets and, with ``max_edges``, at most
    that many in-edges (a target with more gets a chunk of its own)."""
    if n == 0:
        return [(0, 0)]
    ptr = rowptr.cpu()
    out, a = [], 0
    while a < n:
        b = min(a + chunk_size, n)
        if max_edges is not None:
            limit = ptr[a] + max_edges
            fit = int(torch.searchsorted(ptr, limit, right=True)) - 1       # rowptr[fit] <= limit
            b = max(a + 1, min(b, fit))
        out.append((a, b))
        a = b
    return out


def _fill(n: int, chunks: Sequence[Tuple[int, int]], fn: Callable[[int, int], Tensor],
          device: torch.device) -> Tensor:
    """``[n, ...]`` on ``device`` whose rows ``[a, b)`` are ``fn(a, b)``."""
    out = None
    for a, b in chunks:
        part = fn(a, b)                                                    # [b - a, F']
        if out is None:
            out = part.new_empty((n,) + tuple(part.shape[1:]), device=device)  # [N, F']
        out[a:b] = part.to(device)
    return out


# ---------------------------------------------------------------------------- entry points

@torch.no_grad()
def layerwise_inference(model, x: Tensor, edge_index, *, edge_attr: Optional[Tensor] = None,
                        pe: Optional[Tensor] = None, chunk_size: int = 1024,
                        max_edges: Optional[int] = None,
                        device: Optional[Union[str, torch.device]] = None) -> Tensor:
    r"""The model's output for every node, computed one layer at a time over chunks of targets.

    For each graph step (layer) ``l`` and each chunk ``[a, b)`` of targets:

    .. math::
        h^{(l+1)}_{a:b} = f_l\big(h^{(l)}_{[a:b] \cup \mathcal{N}^{-}(a:b)},\;
        \{ j \to i : a \le i < b \}\big)

    a ``size=(S, T)`` bipartite call whose ``T = b - a`` targets come first, then the ``S - T``
    other sources of their in-edges; node steps map chunks of rows. Each target sees all its
    in-edges, so the result equals ``model(x, edge_index)`` (in eval mode) up to floating
    point summation order, while a call never sees more than one chunk's in-edges: peak memory
    is the layer outputs ``[N, F_l]`` plus what one chunk needs.

    Args:
        model: a :class:`~gatlib.nn.NodeClassifier` (sparse layers), a model with
            ``layerwise_steps()``, or a list of steps and modules (:func:`layer_steps`). Must be
            in eval mode (dropout and batch statistics are per forward pass, not per chunk).
        x: ``[N, F]`` node features (dense, or sparse CSR/COO: rows are densified per chunk).
        edge_index: ``[2, E]`` (row 0 source j, row 1 target i) or any adjacency
            :func:`gatlib.graph.to_csr` takes (hold a ``GraphCSR`` to convert once).
        edge_attr (Tensor, optional): ``[E, ...]`` edge features, in ``edge_index``'s order.
        pe (Tensor, optional): ``[N, K]`` positional encodings (NodeClassifier with pe).
        chunk_size (int, default 1024): targets per chunk.
        max_edges (int, optional): also cap each chunk's in-edges (a target with more in-edges
            gets a chunk of its own).
        device (optional): where chunks are computed (e.g. ``'cuda'`` with ``x`` and the layer
            outputs kept on the CPU); default ``x.device``. Outputs stay on ``x.device``.

    Shapes:
        x ``[N, F]``, edge_index ``[2, E]``, edge_attr ``[E, D_e]``, pe ``[N, K]`` -> ``[N, C]``.
    """
    if isinstance(model, nn.Module) and model.training:
        raise ValueError("layerwise_inference needs the model in eval mode (dropout and batch "
                         "statistics would differ per chunk): call model.eval() first")
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a 2-D tensor [N, F], got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    chunk_size = _check_count(chunk_size, "chunk_size")
    max_edges = _check_count(max_edges, "max_edges", allow_none=True)
    steps = layer_steps(model, pe)
    n, store = x.size(0), x.device
    dev = store if device is None else torch.device(device)
    graph = edge_index if isinstance(edge_index, GraphCSR) else to_csr(edge_index, n)
    if graph.num_src != n or graph.num_dst != n:
        raise ValueError(f"edge_index has {graph.num_src} source and {graph.num_dst} target "
                         f"nodes but x has {n} rows")
    if edge_attr is not None and (edge_attr.dim() == 0 or edge_attr.size(0) != graph.num_edges):
        raise ValueError(f"edge_attr must have one row per edge ({graph.num_edges}), got shape "
                         f"{tuple(edge_attr.shape)}")
    if pe is not None and pe.size(0) != n:
        raise ValueError(f"pe must have one row per node ({n}), got shape {tuple(pe.shape)}")
    rowptr, col, perm = graph.rowptr, graph.col, graph.perm
    node_chunks = _chunks(rowptr, n, chunk_size, None)
    edge_chunks = _chunks(rowptr, n, chunk_size, max_edges)
    h = _as_rowwise(x)
    for step in steps:
        if isinstance(step, NodeStep):
            def node_part(a, b, h=h, step=step):
                return step.fn(_rows(h, slice(a, b)).to(dev), slice(a, b))   # [b - a, F']
            h = _fill(n, node_chunks, node_part, store)
            continue

        def graph_part(a, b, h=h, step=step):
            p0, p1 = int(rowptr[a]), int(rowptr[b])
            src, dst = col[p0:p1], graph.row[p0:p1] - a                       # [E_c], [E_c]
            inside = (src >= a) & (src < b)
            # Targets first (local id i - a), then the other sources in sorted order.
            others, inv = torch.unique(src[~inside], return_inverse=True)    # [S - T], [E_c']
            local = torch.empty_like(src)                                    # [E_c]
            local[inside] = src[inside] - a
            local[~inside] = (b - a) + inv
            nodes = torch.cat([torch.arange(a, b, device=src.device), others])  # [S]
            h_src = _rows(h, nodes).to(dev)                                  # [S, F]
            ei = torch.stack([local, dst]).to(dev)                           # [2, E_c]
            ea = None if edge_attr is None else edge_attr[perm[p0:p1].to(edge_attr.device)]
            ea = None if ea is None else ea.to(dev)
            return step.fn(h_src, ei, (nodes.numel(), b - a), ea)            # [T, F']
        h = _fill(n, edge_chunks, graph_part, store)
    return h


def forward_blocks(model, x: Tensor, blocks: Sequence, *, edge_attr: Optional[Tensor] = None,
                   pe: Optional[Tensor] = None) -> Tensor:
    """The model's output for the seeds of a sampled batch, layer ``l`` run on block ``l``.

    With ``blocks = gatlib.loader.to_blocks(batch)``, graph step ``l`` reads the first ``S_l``
    rows of the previous output and the block's edges and writes ``T_l`` rows; node steps map
    the rows they get. In training mode dropout is drawn as in ``model(...)``. With fanout
    ``-1`` at every hop the result equals the full-graph output on the seeds.

    Args:
        model: as for :func:`layerwise_inference` (any mode).
        x: ``[N_b, F]`` the batch's node features (``batch.x``).
        blocks: one ``(edge_index, (S, T), num_edges)`` per graph step, input layer first.
        edge_attr (Tensor, optional): the batch's edge features (``batch.edge_attr``).
        pe (Tensor, optional): the batch's positional encodings (``batch.pe``).

    Shapes:
        x ``[N_b, F]`` -> ``[batch_size, C]`` (``T`` of the last block).
    """
    steps = layer_steps(model, pe)
    num_graph = sum(isinstance(s, GraphStep) for s in steps)
    blocks = list(blocks)
    if len(blocks) != num_graph:
        raise ValueError(f"the model has {num_graph} message-passing layers but {len(blocks)} "
                         f"blocks were given; build them with to_blocks(batch, "
                         f"num_layers={num_graph}) from a batch sampled with >= {num_graph} hops")
    h = _as_rowwise(x)
    S0 = blocks[0][1][0] if blocks else x.size(0)
    h = _rows(h, slice(0, S0))                                                # [S_0, F]
    k = 0
    for step in steps:
        if isinstance(step, NodeStep):
            h = step.fn(h, slice(0, h.size(0)))                               # [n, F']
            continue
        ei, (S, T), E = blocks[k][0], blocks[k][1], blocks[k][2]
        ea = None if edge_attr is None else edge_attr[:E]
        h = step.fn(h[:S], ei, (S, T), ea)                                    # [T, F']
        k += 1
    return h
