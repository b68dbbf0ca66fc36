"""Sampled batches feed the layers as one subgraph and as per-layer bipartite blocks; with full
fanout both give the full-graph output on the seeds."""
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from gatlib.loader import Block, neighbor_loader, to_blocks
from gatlib.nn import GATConv, NodeClassifier
from gatlib.nn.inference import forward_blocks

from ..conftest import random_graph
from ..nn.test_inference import cora_or_random


@pytest.fixture(scope="module")
def data():
    return cora_or_random()


class TwoLayerGAT(torch.nn.Module):
    def __init__(self, f, c):
        super().__init__()
        self.conv1 = GATConv(f, 8, heads=4)
        self.conv2 = GATConv(32, c, heads=1, concat=False)

    def forward(self, x, edge_index):
        return self.conv2(F.elu(self.conv1(x, edge_index)), edge_index)

    def forward_blocks(self, x, blocks):
        (ei1, size1, _), (ei2, size2, _) = blocks
        h = F.elu(self.conv1(x[:size1[0]], ei1, size=size1))      # [T_1, 32]
        return self.conv2(h[:size2[0]], ei2, size=size2)           # [B, C]


def test_blocks_sizes_and_edges(data):
    loader = neighbor_loader(data, [4, 3, 2], 16, seed=0)
    batch = next(iter(loader))
    blocks = to_blocks(batch)
    assert all(isinstance(b, Block) for b in blocks) and len(blocks) == 3
    n, e = batch.num_sampled_nodes, batch.num_sampled_edges
    assert [b.size for b in blocks] == [(sum(n), sum(n[:3])), (sum(n[:3]), sum(n[:2])),
                                        (sum(n[:2]), n[0])]
    assert [b.num_edges for b in blocks] == [sum(e), sum(e[:2]), e[0]]
    for b in blocks:
        S, T = b.size
        assert (b.edge_index[0] < S).all() and (b.edge_index[1] < T).all()
        assert torch.equal(b.edge_index, batch.edge_index[:, :b.num_edges])
    # The edges dropped at each layer are exactly those into nodes no later layer reads.
    for b in blocks:
        rest = batch.edge_index[1, b.num_edges:]
        assert (rest >= b.size[1]).all()
    assert blocks[-1].size[1] == batch.batch_size
    # Fewer layers than hops: the innermost hops.
    two = to_blocks(batch, num_layers=2)
    assert [b.size for b in two] == [(sum(n[:3]), sum(n[:2])), (sum(n[:2]), n[0])]


def test_subgraph_and_blocks_equal_full_graph_with_full_fanout(data):
    torch.manual_seed(0)
    model = TwoLayerGAT(data.num_features, 7).eval()
    full = model(data.x, data.edge_index)
    seeds = torch.randperm(data.num_nodes)[:96]
    loader = neighbor_loader(data, [-1, -1], 48, input_nodes=seeds, seed=0)
    count = 0
    for batch in loader:
        want = full[batch.n_id[:batch.batch_size]]
        # (a) the batch as one subgraph
        sub = model(batch.x, batch.edge_index)[:batch.batch_size]
        torch.testing.assert_close(sub, want, atol=1e-5, rtol=1e-5)
        # (b) bipartite blocks, size=(S, T) per layer
        blk = model.forward_blocks(batch.x, to_blocks(batch))
        assert blk.shape == (batch.batch_size, 7)
        torch.testing.assert_close(blk, want, atol=1e-5, rtol=1e-5)
        count += 1
    assert count == 2


def test_node_classifier_on_blocks_equals_full_graph(data):
    torch.manual_seed(1)
    model = NodeClassifier(data.num_features, 8, 7, residual=True, norm="layer").eval()
    full = model(data.x, data.edge_index)
    batch = next(iter(neighbor_loader(data, [-1, -1], 64, shuffle=True, seed=2)))
    want = full[batch.n_id[:64]]
    torch.testing.assert_close(model(batch.x, batch.edge_index)[:64], want, atol=1e-5,
                               rtol=1e-5)
    out = forward_blocks(model, batch.x, to_blocks(batch))
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)


def test_sampled_training_step_runs_and_learns(data):
    """A few lines of training on sampled blocks: the loss goes down on a fixed batch."""
    torch.manual_seed(0)
    model = NodeClassifier(data.num_features, 8, int(data.y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    batch = next(iter(neighbor_loader(data, [5, 5], 128, seed=0)))
    blocks = to_blocks(batch)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        out = forward_blocks(model, batch.x, blocks)
        loss = torch.nn.functional.cross_entropy(out, batch.y[:batch.batch_size])
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_blocks_bad_input(data):
    batch = next(iter(neighbor_loader(data, [2, 2], 8, seed=0)))
    with pytest.raises(ValueError, match="num_layers"):
        to_blocks(batch, num_layers=3)
    with pytest.raises(ValueError, match="num_sampled_nodes"):
        to_blocks(Data(edge_index=batch.edge_index))
    model = NodeClassifier(data.num_features, 8, 7, num_layers=3)
    with pytest.raises(ValueError, match="3 message-passing layers but 2 blocks"):
        forward_blocks(model, batch.x, to_blocks(batch))
