"""Linear (kernelised) attention over all nodes of each graph: its O(N) form equals the
explicit all-pairs form, forward and backward, and the layer fits the model stack."""
import pytest
import torch
import torch.nn.functional as F

from gatlib.nn import GraphClassifier, LinearGraphAttention, NodeClassifier
from gatlib.nn.linear import linear_attention


def all_pairs(q, k, v, batch):
    """The spec: each node's weights over the nodes of its graph, phi(q_i).phi(k_j) normalised
    to sum to one, formed as an explicit [n, n] matrix per graph and head."""
    out = torch.zeros_like(v)
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    for b in batch.unique():
        idx = (batch == b).nonzero().view(-1)
        for h in range(q.size(1)):
            w = fq[idx, h] @ fk[idx, h].T                                  # [n, n]
            out[idx, h] = (w / w.sum(1, keepdim=True)) @ v[idx, h]
    return out


def test_linear_attention_equals_all_pairs_forward_and_backward():
    g = torch.Generator().manual_seed(0)
    batch = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 2, 4, 4])   # graph 1 has one node, 3 none
    N, H, D = batch.numel(), 3, 5
    q, k, v = (torch.randn(N, H, D, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    out = linear_attention(q, k, v, batch)
    ref = all_pairs(q, k, v, batch)
    torch.testing.assert_close(out, ref)
    w = torch.randn(N, H, D, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((out * w).sum(), (q, k, v))
    refs = torch.autograd.grad((ref * w).sum(), (q, k, v))
    for a, b in zip(grads, refs):
        torch.testing.assert_close(a, b)
    # A one-node graph attends to itself only.
    torch.testing.assert_close(out[3], v[3])


def test_linear_attention_one_graph_and_no_nodes():
    q, k, v = (torch.randn(6, 2, 4, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(linear_attention(q, k, v), all_pairs(q, k, v, torch.zeros(6)))
    e = torch.zeros(0, 2, 4, requires_grad=True)
    out = linear_attention(e, e, e, torch.zeros(0, dtype=torch.long))
    assert out.shape == (0, 2, 4) and out.requires_grad


def test_layer_is_its_maps_around_the_op():
    torch.manual_seed(0)
    layer = LinearGraphAttention(8, heads=2).double()
    x = torch.randn(7, 8, dtype=torch.float64)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    q, k, v = (lin(x).view(7, 2, 4) for lin in (layer.lin_q, layer.lin_k, layer.lin_v))
    expect = layer.lin_out(all_pairs(q, k, v, batch).reshape(7, 8))
    torch.testing.assert_close(layer(x, batch), expect)
    # Permuting the graphs' order changes nothing but the order (global, per graph).
    perm = torch.tensor([3, 4, 5, 6, 0, 1, 2])
    torch.testing.assert_close(layer(x[perm], torch.tensor([0, 0, 0, 0, 1, 1, 1])),
                               layer(x, batch)[perm])


def test_layer_rejects_bad_input():
    layer = LinearGraphAttention(8, heads=2)
    with pytest.raises(ValueError, match="divisible by heads"):
        LinearGraphAttention(7, heads=2)
    with pytest.raises(ValueError, match="x"):
        layer(torch.randn(4, 6))
    with pytest.raises(TypeError, match="dtype"):
        layer(torch.randn(4, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="sorted"):
        layer(torch.randn(4, 8), torch.tensor([1, 0, 0, 1]))


def test_models_stack_linear_layers():
    torch.manual_seed(0)
    x, batch = torch.randn(9, 5), torch.tensor([0] * 4 + [1] * 5)
    ei = torch.tensor([[0, 1], [1, 0]])
    node = NodeClassifier(5, 4, 3, num_layers=2, layer="linear", heads=2, attn_dropout=0.0,
                          dropout=0.0)
    assert node(x, ei, batch).shape == (9, 3)
    graph = GraphClassifier(5, 8, 2, layer="linear", heads=2)
    assert graph(x, ei, batch).shape == (2, 2)
    # Attention over all nodes ignores the edges.
    torch.testing.assert_close(graph(x, ei, batch), graph(x, ei[:, :0], batch))
    with pytest.raises(ValueError, match="attn_dropout must be 0 with layer='linear'"):
        NodeClassifier(5, 4, 3, layer="linear", attn_dropout=0.5)
    with pytest.raises(ValueError, match="edge_dim is not supported with layer='linear'"):
        GraphClassifier(5, 8, 2, layer="linear", edge_dim=3)
