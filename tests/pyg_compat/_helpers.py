"""Shared helpers of the PyG-compatibility tests (not tests themselves)."""
from __future__ import annotations

import torch
from torch import Tensor


def dense_weights(weights, num_src: int, num_dst: int) -> Tensor:
    """The attention weights a layer returned with ``return_attention_weights=True`` as a dense
    ``[num_dst, num_src, H]`` tensor (entry ``[i, j]`` = weight of edge j -> i), whatever form
    they came in:

    - ``(edge_index [2, E], alpha [E, H])`` (edge_index may be PyG's ``EdgeIndex``);
    - a ``torch.sparse`` adjacency ``[num_dst, num_src, H]`` (COO or CSR, values ``[nnz, H]``),
      alone or as the first item of a tuple;
    - ``(sparse adjacency [num_dst, num_src], alpha [nnz, H])``, alpha in the adjacency's stored
      order (what PyG's ``TransformerConv`` returns for a ``torch.sparse`` input).

    The graphs these tests use have no duplicate edges, so the dense form loses nothing.
    """
    if isinstance(weights, (tuple, list)):
        first, alpha = weights[0], (weights[1] if len(weights) > 1 else None)
    else:
        first, alpha = weights, None
    if first.layout == torch.strided:                          # (edge_index, alpha)
        ei = first.as_subclass(Tensor)                         # EdgeIndex -> plain tensor
        return _scatter(ei[1], ei[0], alpha, num_src, num_dst)
    if first.values().dim() > 1:                               # values [nnz, H]
        return first.to_dense()                                # [N_dst, N_src, H]
    if alpha is None:                                          # one head, scalar values
        return first.to_dense().unsqueeze(-1)                  # [N_dst, N_src, 1]
    row, col = _stored_order_indices(first)                    # [nnz], [nnz]
    return _scatter(row, col, alpha, num_src, num_dst)


def _scatter(dst: Tensor, src: Tensor, alpha: Tensor, num_src: int, num_dst: int) -> Tensor:
    alpha = alpha.reshape(alpha.size(0), -1)                   # [E, H]
    out = alpha.new_zeros(num_dst, num_src, alpha.size(1))     # [N_dst, N_src, H]
    out[dst, src] = alpha
    return out


def _stored_order_indices(adj: Tensor):
    """(row, col) of each stored entry of a 2-D sparse tensor, in its storage order."""
    if adj.layout == torch.sparse_coo:
        idx = adj._indices()
        return idx[0], idx[1]
    if adj.layout == torch.sparse_csr:
        crow, col = adj.crow_indices(), adj.col_indices()
        row = torch.repeat_interleave(torch.arange(crow.numel() - 1), crow.diff())
        return row, col
    if adj.layout == torch.sparse_csc:
        ccol, row = adj.ccol_indices(), adj.row_indices()
        col = torch.repeat_interleave(torch.arange(ccol.numel() - 1), ccol.diff())
        return row, col
    raise TypeError(f"unexpected layout {adj.layout}")
