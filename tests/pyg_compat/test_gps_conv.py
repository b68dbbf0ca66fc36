"""PyG's ``test/nn/conv/test_gps_conv.py`` (PyG 2.8) against ``gatlib.nn.GPSConv`` (PyG's name
for gatlib's ``GPSLayer``: the same layer, which keeps the local branch as passed, as PyG's).

Every assertion of PyG's test is kept, on the same inputs (``norm`` in ``[None, 'batch_norm',
'layer_norm']`` x ``attn_type`` in ``['multihead', 'performer']``), with the import swapped; the
local layer is PyG's ``SAGEConv``, as in PyG's test.

Adapted, and why:
- ``torch_sparse.SparseTensor`` blocks: moved to ``test_gps_conv_sparse_tensor``, skipped when
  ``torch_sparse`` is not installed (as PyG skips them).
- ``test_gps_conv_mha_fastpath`` of PyG's master branch is left out: it tests a fix made after
  PyG 2.8.1 (whose ``GPSConv`` has no such code), on CUDA, through
  ``torch.nn.MultiheadAttention`` internals.

PyG's test compares no numbers with another implementation. Extra (marked ``gatlib extra``):
where ``GPSConv`` offers ``from_pyg``, the copied layer is compared with PyG's ``GPSConv``
(float32, atol 1e-5); without ``from_pyg`` that test is skipped, saying so.
"""
import copy

import pytest
import torch
from torch_geometric.nn import GPSConv as PygGPSConv
from torch_geometric.nn import SAGEConv
from torch_geometric.testing import withPackage
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import to_torch_csc_tensor

from gatlib.nn import GPSConv, GPSLayer


@pytest.mark.parametrize('attn_type', ['multihead', 'performer'])
@pytest.mark.parametrize('norm', [None, 'batch_norm', 'layer_norm'])
def test_gps_conv(norm, attn_type):
    x = torch.randn(4, 16)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    batch = torch.tensor([0, 0, 1, 1])
    adj1 = to_torch_csc_tensor(edge_index, size=(4, 4))

    conv = GPSConv(16, conv=SAGEConv(16, 16), heads=4, norm=norm, attn_type=attn_type)
    conv.reset_parameters()
    assert str(conv) == (f'GPSConv(16, conv=SAGEConv(16, 16, aggr=mean), '
                         f'heads=4, attn_type={attn_type})')

    out = conv(x, edge_index)
    assert out.size() == (4, 16)
    assert torch.allclose(conv(x, adj1.t()), out, atol=1e-6)

    out = conv(x, edge_index, batch)
    assert out.size() == (4, 16)
    assert torch.allclose(conv(x, adj1.t(), batch), out, atol=1e-6)


@withPackage('torch_sparse')
@pytest.mark.parametrize('attn_type', ['multihead', 'performer'])
@pytest.mark.parametrize('norm', [None, 'batch_norm', 'layer_norm'])
def test_gps_conv_sparse_tensor(norm, attn_type):
    # PyG's `if torch_geometric.typing.WITH_TORCH_SPARSE:` blocks of test_gps_conv.
    x = torch.randn(4, 16)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    batch = torch.tensor([0, 0, 1, 1])
    conv = GPSConv(16, conv=SAGEConv(16, 16), heads=4, norm=norm, attn_type=attn_type)
    conv.reset_parameters()
    adj2 = SparseTensor.from_edge_index(edge_index, sparse_sizes=(4, 4))

    out = conv(x, edge_index)
    assert torch.allclose(conv(x, adj2.t()), out, atol=1e-6)
    out = conv(x, edge_index, batch)
    assert torch.allclose(conv(x, adj2.t(), batch), out, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# gatlib extra: not in PyG's test file.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('attn_type', ['multihead', 'performer'])
@pytest.mark.parametrize('norm', [None, 'batch_norm', 'layer_norm'])
def test_gps_conv_matches_pyg(norm, attn_type):
    """gatlib extra: ``GPSConv.from_pyg`` of a PyG ``GPSConv`` computes PyG's function (train
    and eval mode, one graph and a batch of two).

    For ``'performer'`` the two graphs have the same size: PyG's ``PerformerAttention`` masks
    only the values of the padding slots of its dense batch, so their keys still enter the
    normaliser of the graphs that are padded, and its answer then depends on the padding
    (gatlib's is exact per graph). With no padding the two must agree."""
    if not hasattr(GPSConv, 'from_pyg'):
        pytest.skip('GPSConv has no from_pyg; PyG\'s own GPS test compares no numbers')
    x = torch.randn(8, 16)
    edge_index = torch.tensor([[0, 1, 2, 4, 5, 6, 7, 5], [1, 2, 0, 5, 6, 7, 4, 7]])
    if attn_type == 'multihead':
        batch = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])   # 3 + 5 nodes: padded dense batch
    else:
        batch = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])   # 4 + 4 nodes: no padding
    ref = PygGPSConv(16, conv=SAGEConv(16, 16), heads=4, norm=norm, attn_type=attn_type)
    conv = GPSConv.from_pyg(copy.deepcopy(ref))
    for training in (True, False):
        ref.train(training)
        conv.train(training)
        for b in (None, batch):
            assert torch.allclose(conv(x, edge_index, b), ref(x, edge_index, b), atol=1e-5)


def test_gps_conv_keeps_its_conv_and_gps_layer_resets_it():
    """gatlib extra: ``GPSConv`` keeps the local branch as passed (as PyG's); ``GPSLayer``, as
    gatlib always did, resets it; ``reset_parameters`` resets it in both."""
    conv = SAGEConv(16, 16)
    before = copy.deepcopy(conv.state_dict())
    layer = GPSConv(16, conv=conv, heads=4)
    assert all(torch.equal(before[k], v) for k, v in layer.conv.state_dict().items())
    layer.reset_parameters()
    assert not all(torch.equal(before[k], v) for k, v in layer.conv.state_dict().items())
    other = SAGEConv(16, 16)
    before = copy.deepcopy(other.state_dict())
    GPSLayer(16, conv=other, heads=4)
    assert not all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    assert str(GPSLayer(16, conv=None, heads=4)).startswith('GPSLayer(16, conv=None')
