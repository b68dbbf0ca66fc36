"""Bipartite blocks of a sampled mini-batch: per layer, the edges into the nodes still needed
and the ``(S, T)`` sizes the layers take (PyG's ``trim_to_layer`` idea)."""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

from torch import Tensor

__all__ = ["Block", "to_blocks"]


class Block(NamedTuple):
    """One layer's share of a sampled batch.

    Fields:
        edge_index: ``[2, E_l]`` local edges (row 0 source, row 1 target), all sources ``< S``
            and targets ``< T``; the batch's first ``E_l`` edges, so edge features are
            ``batch.edge_attr[:num_edges]`` and edge ids ``batch.e_id[:num_edges]``.
        size: ``(S, T)``: the layer reads the first ``S`` rows of its input and writes the
            first ``T`` nodes of the batch, which are also the first ``T`` of those ``S`` rows.
        num_edges: ``E_l``.
    """
    edge_index: Tensor
    size: Tuple[int, int]
    num_edges: int


def to_blocks(batch, num_layers: Optional[int] = None) -> List[Block]:
    r"""The per-layer bipartite blocks of a batch of a neighbour loader.

    With ``n_0`` seeds and ``n_h`` nodes, ``e_h`` edges first sampled at hop ``h`` (``h = 1 ..
    L``), layer ``l`` (``l = 0 .. L' - 1`` of an ``L'``-layer model, ``L' <= L``) only needs the
    nodes within ``L' - 1 - l`` hops of the seeds as targets and their in-edges:

    .. math::
        T_l = \sum_{h=0}^{L'-1-l} n_h, \qquad S_l = \sum_{h=0}^{L'-l} n_h, \qquad
        E_l = \sum_{h=1}^{L'-l} e_h

    so ``T_l = S_{l+1}``, the last layer writes the seeds (``T = batch_size``), and each layer
    computes nothing for nodes no later layer reads. A model then runs
    ``h = conv_l(h[:S_l], block.edge_index, size=block.size)`` layer after layer.

    Args:
        batch: a batch of :func:`gatlib.loader.neighbor_loader` (or any object with
            ``edge_index``, ``num_sampled_nodes`` and ``num_sampled_edges``, hops in order).
        num_layers (int, optional): the model's layers ``L'`` (default: the sampled hops ``L``).

    Returns:
        ``L'`` :class:`Block` s, input layer first.
    """
    n = getattr(batch, "num_sampled_nodes", None)
    e = getattr(batch, "num_sampled_edges", None)
    if n is None or e is None:
        raise ValueError("batch has no num_sampled_nodes/num_sampled_edges (PyG's torch-sparse "
                         "sampler does not count hops): build the loader with "
                         "neighbor_loader(..., backend='gatlib') or install pyg-lib")
    n, e = [int(v) for v in n], [int(v) for v in e]
    if len(n) != len(e) + 1:
        raise ValueError(f"num_sampled_nodes must have one entry more than num_sampled_edges "
                         f"(seeds, then one per hop), got {len(n)} and {len(e)}")
    hops = len(e)
    L = hops if num_layers is None else num_layers
    if isinstance(L, bool) or not isinstance(L, int) or not 1 <= L <= max(hops, 1):
        raise ValueError(f"num_layers must be an int in [1, {hops}] (the batch was sampled with "
                         f"{hops} hops), got {num_layers!r}")
    if hops == 0:
        raise ValueError("the batch was sampled with 0 hops: it has no edges to make blocks of")
    edge_index = batch.edge_index
    blocks = []
    for l in range(L):
        T = sum(n[:L - l])
        S = sum(n[:L - l + 1])
        E = sum(e[:L - l])
        blocks.append(Block(edge_index[:, :E], (S, T), E))
    return blocks

