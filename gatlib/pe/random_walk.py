"""Random-walk structural encodings (RWSE).

Node ``i`` gets the probabilities that a simple random walk started at ``i`` is back at ``i``
after ``1, 2, ..., steps`` steps: the diagonal of the powers of the random-walk matrix. They
describe the node's neighbourhood (cycles, degree pattern) and, unlike eigenvectors, have no
sign or basis ambiguity. This is preprocessing and runs on NumPy/SciPy in float64.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from ..graph.validate import check_edge_index, check_num_nodes
from .laplacian import _check_batch, _check_positive_int, _simple_adjacency

__all__ = ["random_walk_pe"]

#: Inputs up to this many nodes use dense matrix products, larger ones sparse ones.
DENSE_MAX_NODES = 2000


def random_walk_pe(edge_index: Tensor, num_nodes: int, steps: int,
                   batch: Optional[Tensor] = None, *,
                   dense_max_nodes: int = DENSE_MAX_NODES) -> Tensor:
    r"""Random-walk return probabilities: the diagonal of ``(D^{-1} A)^t``, ``t = 1..steps``.

    With ``A`` the adjacency of the undirected simple graph (``edge_index`` symmetrised,
    duplicates and self-loops dropped, as in :func:`gatlib.pe.laplacian_pe`) and ``D`` its
    degree matrix, ``P = D^{-1} A`` moves a walker to a uniformly random neighbour, and

    .. math::
        \mathrm{pe}[i, t - 1] = (P^t)_{ii}, \qquad t = 1, \dots, \text{steps}.

    An isolated node has a zero row in ``P`` (its walk stops) and gets zeros.

    The diagonal is computed without ``P^{steps}``: with ``a = ceil(t / 2)`` and
    ``b = floor(t / 2)``, ``(P^t)_{ii} = sum_j (P^a)_{ij} (P^b)_{ji}``, so only the powers up to
    ``ceil(steps / 2)`` are formed. Inputs with more than ``dense_max_nodes`` nodes use sparse
    matrices; their memory grows with the size of the ``ceil(steps / 2)``-hop neighbourhoods.

    A batch (disjoint union) needs no special handling: ``P`` is block diagonal and its powers
    stay so. ``batch`` is only validated (sorted, no edge between two graphs).

    Args:
        edge_index (LongTensor [2, E]): the graph (direction is ignored).
        num_nodes (int): number of nodes ``N``.
        steps (int): number of walk lengths, ``>= 1``.
        batch (LongTensor [N], default None): graph id of each node (PyG's batch vector).
        dense_max_nodes (int, default 2000): largest ``N`` computed with dense matrices.

    Returns:
        ``pe`` of shape ``[N, steps]``, float32, on the device of ``edge_index``.

    Shapes:
        - edge_index: ``[2, E]``, batch: ``[N]``
        - output: ``[N, steps]``
    """
    num_nodes = check_edge_index(edge_index, num_nodes)
    steps = _check_positive_int(steps, "steps")
    dense_max_nodes = check_num_nodes(dense_max_nodes, "dense_max_nodes")
    _check_batch(batch, edge_index, num_nodes)

    out = np.zeros((num_nodes, steps))                                  # [N, steps]
    if num_nodes > 0 and edge_index.size(1) > 0:
        adj = _simple_adjacency(edge_index, num_nodes)                  # [N, N] csr
        deg = np.asarray(adj.sum(axis=1)).ravel()                       # [N]
        inv_deg = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
        walk = sp.diags(inv_deg) @ adj                                  # [N, N] P = D^-1 A
        dense = num_nodes <= dense_max_nodes
        if dense:
            walk = walk.toarray()
        # powers[a] = P^a for a = 0..ceil(steps / 2)
        powers = [np.eye(num_nodes) if dense else sp.identity(num_nodes, format="csr"), walk]
        for _ in range((steps + 1) // 2 - 1):
            powers.append(powers[-1] @ walk)
        for t in range(1, steps + 1):
            p_a, p_b = powers[(t + 1) // 2], powers[t // 2]
            if dense:
                out[:, t - 1] = np.einsum("ij,ji->i", p_a, p_b)         # diag(P^a P^b)
            else:
                out[:, t - 1] = np.asarray(p_a.multiply(p_b.T).sum(axis=1)).ravel()
    return torch.from_numpy(out).to(device=edge_index.device, dtype=torch.float32)
