"""DenseGraphAttention equals GraphTransformerConv's attention over complete graphs (self-loops
included) with the same weights, for a batch of graphs of different sizes."""
import torch

from gatlib.graph import complete_graph
from gatlib.nn import DenseGraphAttention, GraphTransformerConv


def test_dense_layer_equals_transformer_conv_on_complete_graphs():
    torch.manual_seed(0)
    sizes, H, C = [4, 1, 9, 6], 3, 5
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    offsets = torch.tensor([0] + sizes[:-1]).cumsum(0)
    edge_index = torch.cat([complete_graph(n) + o for n, o in zip(sizes, offsets.tolist())], 1)
    x = torch.randn(sum(sizes), H * C, requires_grad=True)

    sparse = GraphTransformerConv(H * C, C, heads=H, root_weight=False)
    dense = DenseGraphAttention(H * C, heads=H)
    with torch.no_grad():
        for a, b in (("lin_q", "lin_query"), ("lin_k", "lin_key"), ("lin_v", "lin_value")):
            getattr(dense, a).weight.copy_(getattr(sparse, b).weight)
            getattr(dense, a).bias.copy_(getattr(sparse, b).bias)
        dense.lin_out.weight.copy_(torch.eye(H * C))
        dense.lin_out.bias.zero_()

    got, want = dense(x, batch), sparse(x, edge_index)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    w = torch.randn_like(want)
    (g1,) = torch.autograd.grad((got * w).sum(), x)
    (g2,) = torch.autograd.grad((want * w).sum(), x)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5)
