"""Layer-wise inference: chunked by targets, equal to the full-graph forward pass, with every
call bounded by its chunk's in-edges."""
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from gatlib.graph import to_csr
from gatlib.nn import GATConv, GraphClassifier, NodeClassifier
from gatlib.nn.inference import (GraphStep, NodeStep, forward_blocks, layer_steps,
                                 layerwise_inference)

from ..conftest import random_graph


def cora_or_random() -> Data:
    from gatlib.data import DatasetNotFound, load_dataset
    try:
        return load_dataset("Cora")[0]
    except DatasetNotFound:                      # no dataset mirror here: a graph of Cora's shape
        g = torch.Generator().manual_seed(0)
        edge_index = random_graph(2708, 10556, seed=0, hub=False)
        return Data(x=torch.randn(2708, 50, generator=g), edge_index=edge_index,
                    y=torch.randint(0, 7, (2708,), generator=g))


@pytest.fixture(scope="module")
def cora():
    return cora_or_random()


def close(a, b):
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


class CallLog:
    """Records the edges and rows every graph layer call sees (forward pre-hooks)."""

    def __init__(self, modules):
        self.calls = []
        self.handles = [m.register_forward_pre_hook(self.hook, with_kwargs=True)
                        for m in modules]

    def hook(self, module, args, kwargs):
        x, edge_index = args[0], args[1]
        rows = x[0].size(0) if isinstance(x, tuple) else x.size(0)
        self.calls.append((edge_index.size(1), rows, kwargs.get("size")))

    def remove(self):
        for h in self.handles:
            h.remove()


def test_node_classifier_defaults_on_cora(cora):
    torch.manual_seed(0)
    model = NodeClassifier(cora.num_features, 8, 7).eval()
    full = model(cora.x, cora.edge_index)
    close(layerwise_inference(model, cora.x, cora.edge_index, chunk_size=500), full)
    # One chunk, and chunks capped by in-edges, give the same answer.
    close(layerwise_inference(model, cora.x, cora.edge_index, chunk_size=10 ** 6), full)
    close(layerwise_inference(model, cora.x, cora.edge_index, max_edges=300, device="cpu"), full)


def test_plain_gatconv_stack_on_cora(cora):
    torch.manual_seed(0)
    conv1, conv2 = GATConv(cora.num_features, 8, heads=8), GATConv(64, 7, concat=False)
    stack = torch.nn.ModuleList([conv1, torch.nn.ELU(), conv2]).eval()
    full = conv2(F.elu(conv1(cora.x, cora.edge_index)), cora.edge_index)
    close(layerwise_inference(stack, cora.x, cora.edge_index, chunk_size=256), full)
    close(layerwise_inference([conv1, torch.nn.ELU(), conv2], cora.x, cora.edge_index), full)


def test_every_call_is_bounded_by_its_chunk(cora):
    torch.manual_seed(0)
    model = NodeClassifier(cora.num_features, 8, 7).eval()
    graph = to_csr(cora.edge_index, cora.num_nodes)
    log = CallLog(model.convs)
    chunk = 200
    layerwise_inference(model, cora.x, graph, chunk_size=chunk)
    log.remove()
    deg = graph.in_degree()
    chunk_edges = [int(deg[a:a + chunk].sum()) for a in range(0, cora.num_nodes, chunk)]
    assert len(log.calls) == 2 * len(chunk_edges)
    for k, (edges, rows, size) in enumerate(log.calls):
        c = k % len(chunk_edges)
        T = min(chunk, cora.num_nodes - c * chunk)
        assert edges == chunk_edges[c]               # exactly the chunk's in-edges
        assert size == (rows, T) and rows <= T + edges
    assert max(e for e, _, _ in log.calls) < cora.edge_index.size(1) // 5
    # Capped by in-edges: no call sees more than max_edges (Cora's largest in-degree is lower).
    log = CallLog(model.convs)
    layerwise_inference(model, cora.x, graph, max_edges=256)
    log.remove()
    assert int(deg.max()) <= 256 and max(e for e, _, _ in log.calls) <= 256


@pytest.mark.parametrize("kwargs", [
    dict(layer="gatv2", residual=True, norm="batch", edge_dim=3),
    dict(layer="transformer", project_input=True, norm="layer", act="relu", pe_dim=4,
         pe_channels=3, pe="rw"),
    dict(layer="gat", num_layers=3, residual=True, pe_dim=4, pe_channels=2, pe="lap",
         edge_dim=3),
    dict(layer="gat", project_input=True, num_layers=1, norm="batch"),
])
def test_node_classifier_variants_on_a_hard_random_graph(kwargs):
    """Isolated nodes, self-loops, duplicate edges and a hub of a third of all edges."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    n = 90
    edge_index = random_graph(n, 400, seed=3)
    x = torch.randn(n, 6, generator=g)
    edge_attr = torch.randn(edge_index.size(1), 3, generator=g)
    pe = torch.randn(n, 4, generator=g) if kwargs.get("pe_dim") else None
    model = NodeClassifier(6, 4, 5, heads=2, **kwargs)
    if kwargs.get("norm") == "batch" or kwargs.get("pe") == "rw":
        model.train()
        for _ in range(3):      # non-trivial running statistics
            model(x, edge_index, edge_attr=edge_attr, pe=pe)
    model.eval()
    ea = edge_attr if kwargs.get("edge_dim") else None
    full = model(x, edge_index, edge_attr=ea, pe=pe)
    for chunk in (7, 1000):
        close(layerwise_inference(model, x, edge_index, edge_attr=ea, pe=pe, chunk_size=chunk),
              full)


def test_sparse_features(cora):
    torch.manual_seed(0)
    model = NodeClassifier(cora.num_features, 8, 7).eval()
    full = model(cora.x, cora.edge_index)
    close(layerwise_inference(model, cora.x.to_sparse_csr(), cora.edge_index, chunk_size=700),
          full)


def test_pyg_layers_stack(cora):
    """PyG's own layers get PyG's bipartite pair (x_src, x_dst) per chunk."""
    from torch_geometric.nn import GATConv as PyGGATConv
    torch.manual_seed(0)
    conv1, conv2 = PyGGATConv(cora.num_features, 8, heads=4), PyGGATConv(32, 7, concat=False)
    stack = [conv1.eval(), torch.nn.ELU(), conv2.eval()]
    full = conv2(F.elu(conv1(cora.x, cora.edge_index)), cora.edge_index)
    close(layerwise_inference(stack, cora.x, cora.edge_index, chunk_size=400), full)


def test_graph_without_edges_and_the_protocol():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)
            self.conv = GATConv(3, 2, heads=2)

        def forward(self, x, edge_index):
            return self.conv(self.lin(x).relu(), edge_index)

        def layerwise_steps(self):
            return [NodeStep(lambda h, idx: self.lin(h).relu()), self.conv]

    torch.manual_seed(0)
    model = Model().eval()
    x = torch.randn(10, 4)
    for edge_index in (torch.empty(2, 0, dtype=torch.long), random_graph(10, 30, seed=1)):
        close(layerwise_inference(model, x, edge_index, chunk_size=3), model(x, edge_index))
    assert [type(s) for s in layer_steps(model)] == [NodeStep, GraphStep]


def test_forward_blocks_of_the_whole_graph_equals_forward():
    """Blocks built by hand: a single block over the whole graph is the ordinary forward."""
    torch.manual_seed(0)
    model = NodeClassifier(5, 4, 3, heads=2, residual=True).eval()
    x = torch.randn(30, 5)
    edge_index = random_graph(30, 90, seed=4)
    block = (edge_index, (30, 30), edge_index.size(1))
    close(forward_blocks(model, x, [block, block]), model(x, edge_index))


def test_unsupported_models_and_bad_input(cora):
    x, edge_index = torch.randn(12, 4), random_graph(12, 30, seed=0)
    for layer in ("dense", "gps"):
        model = NodeClassifier(4, 4, 3, layer=layer, heads=2).eval()
        with pytest.raises(ValueError, match="not chunkable by targets"):
            layerwise_inference(model, x, edge_index)
    with pytest.raises(TypeError, match="GraphClassifier"):
        layerwise_inference(GraphClassifier(4, 4, 3).eval(), x, edge_index)
    model = NodeClassifier(4, 4, 3, heads=2)
    with pytest.raises(ValueError, match="eval"):
        layerwise_inference(model, x, edge_index)
    model.eval()
    with pytest.raises(ValueError, match="chunk_size"):
        layerwise_inference(model, x, edge_index, chunk_size=0)
    with pytest.raises(ValueError, match="max_edges"):
        layerwise_inference(model, x, edge_index, max_edges=-3)
    with pytest.raises(ValueError, match="edge_attr"):
        layerwise_inference(model, x, edge_index, edge_attr=torch.randn(3, 2))
    with pytest.raises(ValueError, match="pe was given"):
        layerwise_inference(model, x, edge_index, pe=torch.randn(12, 2))
    with pytest.raises(ValueError, match="pe is required"):
        layerwise_inference(NodeClassifier(4, 4, 3, pe_dim=2, pe_channels=2).eval(), x,
                            edge_index)
    with pytest.raises(TypeError, match="wrap a function"):
        layerwise_inference([lambda h: h], x, edge_index)
    with pytest.raises(TypeError, match="layerwise_steps"):
        layerwise_inference(torch.nn.Linear(4, 3).eval(), x, edge_index)
    with pytest.raises(ValueError, match="num_nodes is 12"):
        layerwise_inference(model, x, random_graph(20, 30, seed=0))
    with pytest.raises(ValueError, match="x has 12 rows"):
        layerwise_inference(model, x, to_csr(random_graph(20, 30, seed=0), 20))
