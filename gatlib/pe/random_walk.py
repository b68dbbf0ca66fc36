"""Random-walk structural encodings (RWSE).

Node ``i`` gets the probabilities that a random walk started at ``i`` is back at ``i`` after
``1, 2, ..., walk_length`` steps: the diagonal of the powers of the random-walk matrix. They
describe the node's neighbourhood (cycles, degree pattern) and, unlike eigenvectors, have no
sign or basis ambiguity. This is preprocessing and runs on NumPy/SciPy in float64.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .._checks import check_num_nodes, check_positive_int
from ..graph.validate import check_edge_index
from .laplacian import _check_batch, _simple_adjacency

__all__ = ["random_walk_pe"]

#: Inputs up to this many nodes use dense matrix products, larger ones sparse ones.
DENSE_MAX_NODES = 2000


def random_walk_pe(edge_index: Tensor, num_nodes: int, walk_length: Optional[int] = None,
                   batch: Optional[Tensor] = None, *, steps: Optional[int] = None,
                   simple: bool = False, dense_max_nodes: int = DENSE_MAX_NODES) -> Tensor:
    r"""Random-walk return probabilities: the diagonal of ``(D^{-1} A)^t``, ``t = 1..walk_length``.

    ``P = D^{-1} A`` moves a walker from a node along one of its edges chosen uniformly, and

    .. math::
        \mathrm{pe}[i, t - 1] = (P^t)_{ii}, \qquad t = 1, \dots, \text{walk\_length}.

    Which graph the walk runs on:

    - ``simple=False`` (default, PyG's ``AddRandomWalkPE``): the edges as given, ``A[j, i]`` the
      number of edges ``j -> i`` (row 0 of ``edge_index`` to row 1) and ``D`` the out-degrees.
      A self-loop is an edge like any other: the walker may stay, so it counts in ``(P^1)_ii``
      and in the degree. For an undirected graph (both directions stored) the direction does
      not matter. Duplicate edges count with their multiplicity (PyG's dense path counts them
      in the degree but not in ``A``; on coalesced graphs, PyG's datasets, the two agree).
    - ``simple=True`` (gatlib's earlier reading, that of :func:`gatlib.pe.laplacian_pe`): the
      undirected simple graph: ``edge_index`` symmetrised, duplicates and self-loops dropped.

    A node without out-edges has a zero row in ``P`` (its walk stops) and gets zeros.

    The diagonal is computed without ``P^{walk_length}``: with ``a = ceil(t / 2)`` and
    ``b = floor(t / 2)``, ``(P^t)_{ii} = sum_j (P^a)_{ij} (P^b)_{ji}``, so only the powers up to
    ``ceil(walk_length / 2)`` are formed. Inputs with more than ``dense_max_nodes`` nodes use
    sparse matrices; their memory grows with the size of the ``ceil(walk_length / 2)``-hop
    neighbourhoods.

    A batch (disjoint union) needs no special handling: ``P`` is block diagonal and its powers
    stay so. ``batch`` is only validated (sorted, no edge between two graphs).

    Args:
        edge_index (LongTensor [2, E]): the graph.
        num_nodes (int): number of nodes ``N``.
        walk_length (int): number of walk lengths, ``>= 1`` (PyG's name; ``steps`` is the old
            gatlib name of the same argument, pass one of them).
        batch (LongTensor [N], default None): graph id of each node (PyG's batch vector).
        steps (int, default None): alias of ``walk_length``.
        simple (bool, default False): walk on the undirected simple graph (see above).
        dense_max_nodes (int, default 2000): largest ``N`` computed with dense matrices.

    Returns:
        ``pe`` of shape ``[N, walk_length]``, float32, on the device of ``edge_index``.

    Shapes:
        - edge_index: ``[2, E]``, batch: ``[N]``
        - output: ``[N, walk_length]``
    """
    num_nodes = check_edge_index(edge_index, num_nodes)
    walk_length = _walk_length(walk_length, steps)
    dense_max_nodes = check_num_nodes(dense_max_nodes, "dense_max_nodes")
    _check_batch(batch, edge_index, num_nodes)

    out = np.zeros((num_nodes, walk_length))                            # [N, T]
    if num_nodes > 0 and edge_index.size(1) > 0:
        adj = (_simple_adjacency(edge_index, num_nodes) if simple
               else _multigraph_adjacency(edge_index, num_nodes))       # [N, N] csr
        deg = np.asarray(adj.sum(axis=1)).ravel()                       # [N] out-degrees
        inv_deg = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
        walk = (sp.diags(inv_deg) @ adj).tocsr()                        # [N, N] P = D^-1 A
        dense = num_nodes <= dense_max_nodes
        if dense:
            walk = walk.toarray()
        # powers[a] = P^a for a = 0..ceil(walk_length / 2)
        powers = [np.eye(num_nodes) if dense else sp.identity(num_nodes, format="csr"), walk]
        for _ in range((walk_length + 1) // 2 - 1):
            powers.append(powers[-1] @ walk)
        for t in range(1, walk_length + 1):
            p_a, p_b = powers[(t + 1) // 2], powers[t // 2]
            if dense:
                out[:, t - 1] = np.einsum("ij,ji->i", p_a, p_b)         # diag(P^a P^b)
            else:
                out[:, t - 1] = np.asarray(p_a.multiply(p_b.T).sum(axis=1)).ravel()
    return torch.from_numpy(out).to(device=edge_index.device, dtype=torch.float32)


def _walk_length(walk_length, steps) -> int:
    """The walk length from PyG's name or gatlib's old one (exactly one of them)."""
    if walk_length is not None and steps is not None:
        raise TypeError("pass walk_length or steps (the same argument: PyG's name and gatlib's "
                        "old one), not both")
    if steps is not None:
        return check_positive_int(steps, "steps")
    if walk_length is None:
        raise TypeError("walk_length (the number of random-walk steps) is required")
    return check_positive_int(walk_length, "walk_length (steps)")


def _multigraph_adjacency(edge_index: Tensor, num_nodes: int) -> sp.csr_matrix:
    """``A [N, N]`` (float64) with ``A[j, i]`` the number of edges ``j -> i``, loops included."""
    src, dst = edge_index.detach().cpu().long().numpy()
    adj = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(num_nodes, num_nodes))
    adj.sum_duplicates()
    return adj
