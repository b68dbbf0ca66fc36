"""Sparse attention over the edges of a graph: the public entry points.

Each op reduces to: a score per edge ``[E, H]``, a softmax over the in-edges of each target, and
a weighted sum of the sources' values ``[T, H, C]``; :func:`gat_attention` and
:func:`sparse_attention` compute the score from per-node tensors, :func:`attend` takes it
given. They validate their arguments, take the graph in any form PyG accepts
(:mod:`gatlib.graph.adjacency`), build its CSR view (or use the caller's ``GraphCSR``), pick a
backend in ``dispatch.py`` and run its table's op.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from ..graph.adjacency import as_adjacency
from .._checks import check_probability, check_real, check_same_device, check_tensor
from .dropout import keep_mask
from .dispatch import select_backend

__all__ = ["sparse_attention", "gat_attention", "attend"]

AttentionOut = Union[Tensor, Tuple[Tensor, Tensor]]


def sparse_attention(q: Tensor, k: Tensor, v: Tensor, edge_index,
                     num_nodes: Optional[int] = None, bias: Optional[Tensor] = None,
                     scale: Optional[float] = None, return_attention: bool = False,
                     dropout: float = 0.0, training: bool = True,
                     dropout_mask: Optional[Tensor] = None) -> AttentionOut:
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
        dropout_mask (Tensor, optional): a bool keep mask ``[E, H]`` (caller's order) to use
            instead of drawing one, e.g. to weight something else with the same dropped
            weights; used only when dropout is applied.

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
                                    dropout, training, dropout_mask, q=q, k=k, v=v)
    backend = select_backend("sparse_attention", q.device, q.dtype, head_dim=max(D, v.size(2)))
    out, _, alpha = backend.call("sparse_attention")(
        q, k, v, backend.graph_args(graph, H), bias, mask, scale, p, return_attention)
    return (out, alpha) if return_attention else out


def gat_attention(a_src: Tensor, a_dst: Tensor, v: Tensor, edge_index,
                  edge_score: Optional[Tensor] = None, negative_slope: float = 0.2,
                  return_attention: bool = False, dropout: float = 0.0,
                  training: bool = True, dropout_mask: Optional[Tensor] = None) -> AttentionOut:
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
        dropout_mask (Tensor, optional): as :func:`sparse_attention`.

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
                                          "edge_score", dropout, training, dropout_mask,
                                          a_src=a_src, a_dst=a_dst, v=v)
    backend = select_backend("gat_attention", v.device, v.dtype, head_dim=v.size(2))
    out, _, alpha = backend.call("gat_attention")(
        a_src, a_dst, v, backend.graph_args(graph, H), edge_score, mask, negative_slope, p,
        return_attention)
    return (out, alpha) if return_attention else out


def attend(score: Tensor, v: Tensor, edge_index, num_nodes: Optional[int] = None,
           return_attention: bool = False, dropout: float = 0.0, training: bool = True,
           dropout_mask: Optional[Tensor] = None) -> AttentionOut:
    r"""Softmax over given per-edge scores and the weighted sum of the sources' values.

    .. math::
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i)}(s_{ij}), \qquad
        o_i = \sum_{j \in \mathcal{N}(i)} \alpha_{ij} v_j

    The middle of every attention layer, for scores no per-node form gives (GATv2's
    ``a . LeakyReLU(W_s x_j + W_d x_i)``, a score with per-edge features), without building
    ``[E, H, C]``.

    Args:
        score: the score of each edge in the caller's edge order; ``-inf`` masks an edge.
        v: values of the source nodes.
        edge_index: the graph, in any form :func:`sparse_attention` takes.
        num_nodes (int, optional): number of target nodes ``T``; default the number of
            sources (a square graph), or the graph's own count for a ``GraphCSR`` or sparse
            adjacency.
        return_attention (bool, default False): also return ``alpha [E, H]`` in the caller's
            edge order (before dropout).
        dropout (float, default 0.0): attention dropout probability.
        training (bool, default True): apply dropout only when True.
        dropout_mask (Tensor, optional): as :func:`sparse_attention`.

    Shapes:
        score ``[E, H]``, v ``[S, H, C]`` -> out ``[T, H, C]``, alpha ``[E, H]``. A target with
        no in-edges (or only ``-inf`` scores) gets a zero output.
    """
    check_tensor(score, "score", dim=2, shape=(None, None))
    H = score.size(1)
    check_tensor(v, "v", dim=3, shape=(None, H, None))
    _check_dtypes(score=score, v=v)
    graph, _, mask, p = _prepare(edge_index, v.size(0), num_nodes, None, H, v, None, "term",
                                 dropout, training, dropout_mask, score=score, v=v)
    E = graph.num_edges
    if score.size(0) != E:
        raise ValueError(f"score must have one row per edge: [E, H] = [{E}, {H}], got "
                         f"{tuple(score.shape)}")
    backend = select_backend("attend", v.device, v.dtype, head_dim=v.size(2))
    out, _, alpha = backend.call("attend")(score, v, backend.graph_args(graph, H), mask, p,
                                           return_attention)
    return (out, alpha) if return_attention else out


def _check_dtypes(**tensors: Tensor) -> None:
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) > 1:
        listing = ", ".join(f"{n}: {t.dtype}" for n, t in tensors.items())
        raise TypeError(f"inputs must share one floating dtype, got {listing}; cast them with "
                        f".to(dtype)")


def _prepare(edge_index, num_src: int, num_dst: int, num_nodes: Optional[int], H: int,
             like: Tensor, edge_term: Optional[Tensor], term_name: str, dropout: float,
             training: bool, dropout_mask: Optional[Tensor] = None, **tensors: Tensor):
    """Shared checks of the sparse ops: graph, per-edge term, dropout mask (caller's order:
    ``dropout_mask`` when given, else drawn)."""
    if num_nodes is not None and int(num_nodes) != num_dst:
        raise ValueError(f"num_nodes={num_nodes} but the queries have {num_dst} rows; num_nodes "
                         f"is the number of target nodes and must equal q.size(0)")
    check_probability(dropout, "dropout")
    # A tensor adjacency joins the device check before its indices are read.
    ei = edge_index if isinstance(edge_index, Tensor) else None
    device = check_same_device(**tensors, **{term_name: edge_term}, edge_index=ei)
    # The sources are counted by k / a_src, the targets by q / a_dst.
    names = (("k.size(0)", "q.size(0)") if "q" in tensors else ("v.size(0)", "num_nodes")
             if "score" in tensors else ("a_src.size(0)", "a_dst.size(0)"))
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
        if dropout_mask is None:
            mask = keep_mask((E, H), p, device)                            # [E, H] keep
        else:
            check_tensor(dropout_mask, "dropout_mask", floating=False, dim=2, shape=(E, H))
            check_same_device(dropout_mask=dropout_mask, inputs=like)
            mask = dropout_mask.bool()                                     # [E, H] keep
    return graph, edge_term, mask, p
