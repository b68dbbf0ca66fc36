"""PyG's ``test/nn/conv/test_gat_conv.py`` (PyG 2.8) against ``gatlib.nn.GATConv``.

Every assertion of PyG's test is kept, on the same inputs, with the import swapped. Each layer
is also built from a PyG ``GATConv`` with the same arguments and copied with ``from_pyg``, and
its outputs and attention weights are compared with PyG's (float32, atol 1e-5).

Adapted, and why:
- TorchScript blocks (PyG runs them under ``is_full_test()``): moved to ``test_gat_conv_jit``,
  marked not applicable (gatlib layers run on custom ops and are compiled with
  ``torch.compile``, not TorchScript).
- ``torch_sparse.SparseTensor`` blocks (inline under ``WITH_TORCH_SPARSE`` in PyG): moved to
  ``test_gat_conv_sparse_tensor`` and ``test_gat_conv_with_edge_attr_sparse_tensor``, skipped
  when ``torch_sparse`` is not installed (as PyG skips them).
- ``normalize=True`` blocks, ``test_gat_conv_csc_error``, ``test_gat_norm_csc_error``,
  ``test_gat_conv_bipartite_error`` and ``test_remove_diag_sparse_tensor``: they test the
  ``normalize`` argument of PyG's master branch, which PyG 2.8.1 does not have; left out.

Extras (issue 16, not in PyG's test, marked ``gatlib extra``): PyG's ``EdgeIndex`` and a COO
``adj.t()``, lazy ``in_channels=-1``, ``torch_geometric.testing.assert_module`` (edge
permutation, CSC and COO layouts), and a float64 comparison with PyG on a random multigraph.
"""
import pytest
import torch
import torch_geometric.typing
from torch_geometric import EdgeIndex
from torch_geometric.nn import GATConv as PygGATConv
from torch_geometric.testing import withDevice, withPackage
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csc_tensor

from gatlib.nn import GATConv

from ._helpers import check_lazy, check_module, dense_weights


def _same_weights(result, ref_result, num_src, num_dst, atol=1e-5):
    return torch.allclose(dense_weights(result[1], num_src, num_dst),
                          dense_weights(ref_result[1], num_src, num_dst), atol=atol)


@pytest.mark.parametrize('residual', [False, True])
def test_gat_conv(residual):
    x1 = torch.randn(4, 8)
    x2 = torch.randn(2, 16)
    edge_index = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    adj1 = to_torch_csc_tensor(edge_index, size=(4, 4))

    conv = GATConv(8, 32, heads=2, residual=residual)
    assert str(conv) == 'GATConv(8, 32, heads=2)'
    ref = PygGATConv(8, 32, heads=2, residual=residual)
    conv = GATConv.from_pyg(ref)
    assert str(conv) == 'GATConv(8, 32, heads=2)'

    out = conv(x1, edge_index)
    assert out.size() == (4, 64)
    assert torch.allclose(out, ref(x1, edge_index), atol=1e-5)            # gatlib == PyG
    assert torch.allclose(conv(x1, edge_index, size=(4, 4)), out)
    assert torch.allclose(conv(x1, adj1.t()), out, atol=1e-6)

    # Test `return_attention_weights`.
    result = conv(x1, edge_index, return_attention_weights=True)
    assert torch.allclose(result[0], out)
    assert result[1][0].size() == (2, 7)
    assert result[1][1].size() == (7, 2)
    assert result[1][1].min() >= 0 and result[1][1].max() <= 1
    assert _same_weights(result, ref(x1, edge_index, return_attention_weights=True), 4, 4)

    if torch_geometric.typing.WITH_PT113:
        # PyTorch < 1.13 does not support multi-dimensional CSR values (PyG's comment).
        result = conv(x1, adj1.t(), return_attention_weights=True)
        assert torch.allclose(result[0], out, atol=1e-6)
        assert result[1][0].size() == torch.Size([4, 4, 2])
        assert result[1][0]._nnz() == 7
        assert _same_weights(result, ref(x1, adj1.t(), return_attention_weights=True), 4, 4)

    # Test bipartite message passing:
    adj1 = to_torch_csc_tensor(edge_index, size=(4, 2))

    conv = GATConv((8, 16), 32, heads=2, residual=residual)
    assert str(conv) == 'GATConv((8, 16), 32, heads=2)'
    ref = PygGATConv((8, 16), 32, heads=2, residual=residual)
    conv = GATConv.from_pyg(ref)

    out1 = conv((x1, x2), edge_index)
    assert out1.size() == (2, 64)
    assert torch.allclose(out1, ref((x1, x2), edge_index), atol=1e-5)    # gatlib == PyG
    assert torch.allclose(conv((x1, x2), edge_index, size=(4, 2)), out1)
    assert torch.allclose(conv((x1, x2), adj1.t()), out1, atol=1e-6)

    out2 = conv((x1, None), edge_index, size=(4, 2))
    assert out2.size() == (2, 64)
    assert torch.allclose(conv((x1, None), adj1.t()), out2, atol=1e-6)
    assert torch.allclose(out2, ref((x1, None), edge_index, size=(4, 2)), atol=1e-5)


@withPackage('torch_sparse')
@pytest.mark.parametrize('residual', [False, True])
def test_gat_conv_sparse_tensor(residual):
    # PyG's `if torch_geometric.typing.WITH_TORCH_SPARSE:` blocks of test_gat_conv.
    x1 = torch.randn(4, 8)
    x2 = torch.randn(2, 16)
    edge_index = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])

    conv = GATConv(8, 32, heads=2, residual=residual)
    out = conv(x1, edge_index)
    adj2 = SparseTensor.from_edge_index(edge_index, sparse_sizes=(4, 4))
    assert torch.allclose(conv(x1, adj2.t()), out, atol=1e-6)

    result = conv(x1, adj2.t(), return_attention_weights=True)
    assert torch.allclose(result[0], out, atol=1e-6)
    assert result[1].sizes() == [4, 4, 2] and result[1].nnz() == 7

    conv = GATConv((8, 16), 32, heads=2, residual=residual)
    out1 = conv((x1, x2), edge_index)
    out2 = conv((x1, None), edge_index, size=(4, 2))
    adj2 = SparseTensor.from_edge_index(edge_index, sparse_sizes=(4, 2))
    assert torch.allclose(conv((x1, x2), adj2.t()), out1, atol=1e-6)
    assert torch.allclose(conv((x1, None), adj2.t()), out2, atol=1e-6)


# Not applicable: PyG scripts the layer with torch.jit.script (under is_full_test()); gatlib's
# layers dispatch to torch.library custom ops from Python and are compiled with torch.compile,
# not TorchScript.
@pytest.mark.skip(reason='TorchScript (torch.jit.script) is not applicable to gatlib layers')
def test_gat_conv_jit():
    x1 = torch.randn(4, 8)
    edge_index = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    conv = GATConv(8, 32, heads=2)
    out = conv(x1, edge_index)
    jit = torch.jit.script(conv)
    assert torch.allclose(jit(x1, edge_index), out)
    assert torch.allclose(jit(x1, edge_index, size=(4, 4)), out)


def test_gat_conv_with_edge_attr():
    x = torch.randn(4, 8)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 1, 1]])
    edge_weight = torch.randn(edge_index.size(1))
    edge_attr = torch.randn(edge_index.size(1), 4)

    for edge_dim, fill_value, attr in [(1, 0.5, edge_weight), (1, 'mean', edge_weight),
                                       (4, 0.5, edge_attr), (4, 'mean', edge_attr)]:
        conv = GATConv(8, 32, heads=2, edge_dim=edge_dim, fill_value=fill_value)
        out = conv(x, edge_index, attr)
        assert out.size() == (4, 64)
        # gatlib == PyG, weights copied:
        ref = PygGATConv(8, 32, heads=2, edge_dim=edge_dim, fill_value=fill_value)
        assert torch.allclose(GATConv.from_pyg(ref)(x, edge_index, attr),
                              ref(x, edge_index, attr), atol=1e-5)


@withPackage('torch_sparse')
def test_gat_conv_with_edge_attr_sparse_tensor():
    # PyG: a SparseTensor carrying edge features is refused with NotImplementedError.
    x = torch.randn(4, 8)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 1, 1]])
    edge_weight = torch.randn(edge_index.size(1))
    edge_attr = torch.randn(edge_index.size(1), 4)
    adj1 = SparseTensor.from_edge_index(edge_index, edge_weight, (4, 4))
    adj2 = SparseTensor.from_edge_index(edge_index, edge_attr, (4, 4))
    for edge_dim, fill_value, adj in [(1, 0.5, adj1), (1, 'mean', adj1),
                                      (4, 0.5, adj2), (4, 'mean', adj2)]:
        conv = GATConv(8, 32, heads=2, edge_dim=edge_dim, fill_value=fill_value)
        with pytest.raises(NotImplementedError):
            conv(x, adj.t())


@withDevice
def test_gat_conv_empty_edge_index(device):
    x = torch.randn(0, 8, device=device)
    edge_index = torch.empty(2, 0, dtype=torch.long, device=device)

    conv = GATConv(8, 32, heads=2).to(device)
    out = conv(x, edge_index)
    assert out.size() == (0, 64)


# ---------------------------------------------------------------------------------------------
# gatlib extras (issue 16): not in PyG's test file.
# ---------------------------------------------------------------------------------------------

def test_gat_conv_edge_index_and_coo():
    """gatlib extra: PyG's EdgeIndex and a COO ``adj.t()`` give the edge_index answer, and
    return the attention weights in PyG's form."""
    x1 = torch.randn(4, 8)
    edge_index = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    ref = PygGATConv(8, 32, heads=2)
    conv = GATConv.from_pyg(ref)
    out = conv(x1, edge_index)

    ei = EdgeIndex(edge_index, sparse_size=(4, 4), sort_order='col')
    assert torch.allclose(conv(x1, ei), out, atol=1e-6)
    result = conv(x1, ei, return_attention_weights=True)
    assert torch.allclose(result[0], out, atol=1e-6)
    assert result[1][0].size() == (2, 7) and result[1][1].size() == (7, 2)
    assert _same_weights(result, ref(x1, ei, return_attention_weights=True), 4, 4)

    coo = to_torch_coo_tensor(edge_index, size=(4, 4)).t()
    assert torch.allclose(conv(x1, coo), out, atol=1e-6)
    result = conv(x1, coo, return_attention_weights=True)
    assert torch.allclose(result[0], out, atol=1e-6)
    assert result[1][0].layout == torch.sparse_coo
    assert result[1][0].size() == torch.Size([4, 4, 2]) and result[1][0]._nnz() == 7
    assert _same_weights(result, ref(x1, coo, return_attention_weights=True), 4, 4)


def test_gat_conv_lazy():
    """gatlib extra: ``in_channels=-1`` and ``(-1, -1)`` initialise on the first call, as PyG."""
    check_lazy(GATConv)


def test_gat_conv_assert_module():
    """gatlib extra: PyG's ``assert_module`` (edge permutation, CSC and COO ``adj.t()``)."""
    check_module(GATConv(8, 16, heads=3))


def test_gat_conv_matches_pyg_float64(graph_factory):
    """gatlib extra: on a random multigraph (self-loops, duplicates, isolated nodes, a hub) with
    edge features, in float64, gatlib with copied weights equals PyG to 1e-10."""
    edge_index = graph_factory(12, 40, seed=3)
    x = torch.randn(12, 8, dtype=torch.float64)
    edge_attr = torch.randn(edge_index.size(1), 3, dtype=torch.float64)
    for concat in (True, False):
        ref = PygGATConv(8, 5, heads=3, concat=concat, edge_dim=3).double()
        conv = GATConv.from_pyg(ref).double()
        assert torch.allclose(conv(x, edge_index, edge_attr), ref(x, edge_index, edge_attr),
                              atol=1e-10)
    # Bipartite, x_dst given and x_dst None:
    edge_index = graph_factory(12, 30, seed=4, num_dst=5)
    x_dst = torch.randn(5, 6, dtype=torch.float64)
    ref = PygGATConv((8, 6), 5, heads=2).double()
    conv = GATConv.from_pyg(ref).double()
    assert torch.allclose(conv((x, x_dst), edge_index), ref((x, x_dst), edge_index), atol=1e-10)
    assert torch.allclose(conv((x, None), edge_index, size=(12, 5)),
                          ref((x, None), edge_index, size=(12, 5)), atol=1e-10)
