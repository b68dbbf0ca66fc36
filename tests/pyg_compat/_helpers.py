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


def check_lazy(cls, **kw) -> None:
    """``in_channels=-1`` and ``(-1, -1)`` initialise on the first call, as PyG: the lazy layer
    and an eager one with its weights give the same output (and the repr shows ``-1``)."""
    x1 = torch.randn(4, 8)
    x2 = torch.randn(2, 16)
    edge_index = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    for lazy, eager_in, x, rows in ((-1, 8, x1, 4), ((-1, -1), (8, 16), (x1, x2), 2)):
        conv = cls(lazy, 32, heads=2, **kw)
        assert str(conv) == f"{cls.__name__}({lazy}, 32, heads=2)"
        out = conv(x, edge_index)
        assert out.size() == (rows, 64)
        eager = cls(eager_in, 32, heads=2, **kw)
        eager.load_state_dict(conv.state_dict())
        assert torch.allclose(eager(x, edge_index), out, atol=1e-6)


def check_module(conv) -> None:
    """PyG's ``assert_module`` on a 10-node graph (edge permutation, CSC and COO ``adj.t()``)."""
    from torch_geometric.testing import assert_module
    x = torch.randn(10, 8)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 2, 9],
                               [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 0]])
    assert_module(conv, x, edge_index, expected_size=(10, 48), atol=1e-6,
                  test_sparse_layouts=[torch.sparse_csc, torch.sparse_coo])
