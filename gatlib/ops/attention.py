"""Sparse attention over the edges of a graph: the public entry points.

Both ops reduce to: a score per edge ``[E, H]``, a softmax over the in-edges of each target, and
a weighted sum of the sources' values ``[T, H, C]``. They validate their arguments, take the
graph in any form PyG accepts (:mod:`gatlib.graph.adjacency`), build its CSR view (or use the
caller's ``GraphCSR``), pick a backend in ``dispatch.py`` and run it.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from ..graph.adjacency import as_adjacency
from ..graph.csr import GraphCSR
from .._checks import check_real, check_same_device, check_tensor, compiling
from . import reference
from .cpu.dropout import keep_mask
from .cpu.ops import graph_tensors
from .dispatch import backend_op, select

__all__ = ["sparse_attention", "gat_attention"]

AttentionOut = Union[Tensor, Tuple[Tensor, Tensor]]


def sparse_attention(q: Tensor, k: Tensor, v: Tensor, edge_index,
                     num_nodes: Optional[int] = None, bias: Optional[Tensor] = None,
                     scale: Optional[float] = None, return_attention: bool = False,
                     dropout: float = 0.0, training: bool = True) -> AttentionOut:
    r"""Scaled dot-product attention of each target node over its in-edges.

    .. math::
        s_{ij} = \mathrm{scale}\; q_i \cdot k_j + b_{ij}, \qquad
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}(s_{ij}), \qquad
        o_i = \sum_{j \in \mathcal{N}(i)} \alpha_{ij} v_j

    computed per head, without building any per-edge ``[E, H, D]`` or ``[E, H, C]`` tensor.

    Args:
        q: queries of the target nodes.
        k: keys of the source nodes.
        v: values of the source nodes.
        edge_index: the graph: ``[2, E]`` (row 0 source j, row 1 target i), a ``GraphCSR``
            from :func:`gatlib.graph.to_csr` (its CSR view and kernel plans are built once and
            kept on it), PyG's ``EdgeIndex``, a ``torch.sparse`` adjacency ``[T, S]`` (rows =
            targets; COO, CSR or CSC) or a ``torch_sparse.SparseTensor``. A plain tensor is
            converted on every call.
        num_nodes (int, optional): number of target nodes; defaults to ``q.size(0)`` and must
            equal it when given. Sources are counted by ``k.size(0)``.
        bias (Tensor, optional): added to the score of each edge (edge features, positional
            bias, or ``-inf`` to mask an edge); ``[E, H]``, or ``[E]`` shared by all heads.
        scale (float, optional): a finite number > 0; default ``1 / sqrt(D)``.
        return_attention (bool, default False): also return ``alpha`` in the caller's edge
            order (the stored order of a sparse adjacency; the softmax weights, before dropout).
        dropout (float, default 0.0): attention dropout probability.
        training (bool, default True): apply dropout only when True.

    Shapes:
        q ``[T, H, D]``, k ``[S, H, D]``, v ``[S, H, C]`` -> out ``[T, H, C]``, alpha ``[E, H]``.
        A target with no in-edges (or only ``-inf`` scores) gets a zero output.
    """
    check_tensor(q, "q", dim=3, shape=(None, None, None))
    T, H, D = q.shape
    check_tensor(k, "k", dim=3, shape=(None, H, D))
    check_tensor(v, "v", dim=3, shape=(k.size(0), H, None))
    _check_dtypes(q=q, k=k, v=v)
    if scale is None:
        scale = 1.0 / math.sqrt(D) if D > 0 else 1.0
    scale = check_real(scale, "scale", positive=True)
    graph, bias, mask, p = _prepare(edge_index, k.size(0), T, num_nodes, H, q, bias, "bias",
                                    dropout, training, q=q, k=k, v=v)
    backend = select("sparse_attention", q.device, q.dtype, head_dim=max(D, v.size(2)))
    if backend == "reference":
        out, alpha = reference.sparse_attention_ref(q, k, v, graph.edge_index(), bias, scale,
                                                    mask, p)
    else:
        out, _, alpha = backend_op(backend, "sparse_attention")(
            q, k, v, _graph_args(backend, graph, H), bias, mask, scale, p, return_attention)
    return (out, alpha) if return_attention else out


def gat_attention(a_src: Tensor, a_dst: Tensor, v: Tensor, edge_index,
                  edge_score: Optional[Tensor] = None, negative_slope: float = 0.2,
                  return_attention: bool = False, dropout: float = 0.0,
                  training: bool = True) -> AttentionOut:
    r"""Additive (GAT) attention of each target node over its in-edges.

    .. math::
        s_{ij} = \mathrm{LeakyReLU}(a^{src}_j + a^{dst}_i + a^{edge}_{ij}), \qquad
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}(s_{ij}), \qquad
        o_i = \sum_{j \in \mathcal{N}(i)} \alpha_{ij} v_j

    where ``a_src = <x_j W, att_src>`` and ``a_dst = <x_i W, att_dst>`` are the per-node halves
    of the GAT score (Velickovic et al., 2018), computed once per node by the caller.

    Args:
        a_src: per-source score half.
        a_dst: per-target score half.
        v: values of the source nodes.
        edge_index: the graph, in any form :func:`sparse_attention` takes.
        edge_score (Tensor, optional): per-edge score term ``[E, H]`` (or ``[E]``), e.g. the
            projected edge features; ``-inf`` masks an edge (for every ``negative_slope``: a
            ``-inf`` pre-activation stays ``-inf``).
        negative_slope (float, default 0.2): slope of the LeakyReLU (a finite number).
        return_attention (bool, default False): also return ``alpha [E, H]`` in the caller's
            edge order (before dropout).
        dropout (float, default 0.0): attention dropout probability.
        training (bool, default True): apply dropout only when True.

    Shapes:
        a_src ``[S, H]``, a_dst ``[T, H]``, v ``[S, H, C]`` -> out ``[T, H, C]``.
    """
    check_tensor(a_src, "a_src", dim=2, shape=(None, None))
    S, H = a_src.shape
    check_tensor(a_dst, "a_dst", dim=2, shape=(None, H))
    check_tensor(v, "v", dim=3, shape=(S, H, None))
    _check_dtypes(a_src=a_src, a_dst=a_dst, v=v)
    negative_slope = check_real(negative_slope, "negative_slope")
    graph, edge_score, mask, p = _prepare(edge_index, S, a_dst.size(0), None, H, v, edge_score,
                                          "edge_score", dropout, training, a_src=a_src,
                                          a_dst=a_dst, v=v)
    backend = select("gat_attention", v.device, v.dtype, head_dim=v.size(2))
    if backend == "reference":
        out, alpha = reference.gat_attention_ref(a_src, a_dst, v, graph.edge_index(),
                                                 edge_score, negative_slope, mask, p)
    else:
        out, _, alpha = backend_op(backend, "gat_attention")(
            a_src, a_dst, v, _graph_args(backend, graph, v.size(1)), edge_score, mask,
            negative_slope, p, return_attention)
    return (out, alpha) if return_attention else out


def _check_dtypes(**tensors: Tensor) -> None:
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) > 1:
        listing = ", ".join(f"{n}: {t.dtype}" for n, t in tensors.items())
        raise TypeError(f"inputs must share one floating dtype, got {listing}; cast them with "
                        f".to(dtype)")


def _prepare(edge_index, num_src: int, num_dst: int, num_nodes: Optional[int], H: int,
             like: Tensor, edge_term: Optional[Tensor], term_name: str, dropout: float,
             training: bool, **tensors: Tensor):
    """Shared checks of the sparse ops: graph, per-edge term, dropout mask (caller's order)."""
    if num_nodes is not None and int(num_nodes) != num_dst:
        raise ValueError(f"num_nodes={num_nodes} but the queries have {num_dst} rows; num_nodes "
                         f"is the number of target nodes and must equal q.size(0)")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    # A tensor adjacency joins the device check before its indices are read.
    ei = edge_index if isinstance(edge_index, Tensor) else None
    device = check_same_device(**tensors, **{term_name: edge_term}, edge_index=ei)
    # The sources are counted by k / a_src, the targets by q / a_dst.
    names = ("k.size(0)", "q.size(0)") if "q" in tensors else ("a_src.size(0)", "a_dst.size(0)")
    graph = as_adjacency(edge_index, num_src, num_dst, count_names=names).graph()
    if graph.device != device:
        raise ValueError(f"edge_index is on {graph.device} but the inputs are on {device}; move "
                         f"it with .to(device)")
    E = graph.num_edges
    if edge_term is not None:
        check_tensor(edge_term, term_name)
        if edge_term.dim() == 1:
            edge_term = edge_term.unsqueeze(-1)
        check_tensor(edge_term, term_name, dim=2, shape=(E, None))
        if edge_term.size(1) not in (1, H):
            raise ValueError(f"{term_name} must have shape [E, H] = [{E}, {H}] or [E], got "
                             f"{tuple(edge_term.shape)}")
        # One [E, H] tensor in the inputs' dtype; expand's backward sums over heads.
        edge_term = edge_term.to(like.dtype).expand(E, H).contiguous()
    mask, p = None, 0.0
    if training and dropout > 0.0:
        p = float(dropout)
        mask = keep_mask((E, H), p, device)                                # [E, H] keep
    return graph, edge_term, mask, p


def _graph_args(backend: str, graph: GraphCSR, heads: int) -> List[Tensor]:
    """The graph tensors a backend's registered op takes: the seven of the ``GraphCSR``, plus,
    for Triton, its work plans (built once per graph and row split), for the CPU on a small
    graph its head-folded copy (once per head count); both are kept on the graph. Under
    torch.compile the op builds them inside, since their sizes depend on the degrees."""
    tensors = graph_tensors(graph)
    if compiling() or backend not in ("cpu", "triton"):
        return tensors
    if backend == "cpu":
        from .cpu.kernels import folded_graph_args
        return folded_graph_args(graph, tensors, heads)
    from .triton import kernels
    split = kernels.SPLIT
    return graph.derived(("triton_plans", split),
                         lambda: tensors + kernels.graph_plans(tensors, split))
