"""NodeClassifier and GraphClassifier: the GAT paper's Cora model against PyG, every layer kind
forward and backward, positional encodings, dropout, training, argument checks, compile."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GATConv as PyGGATConv

from gatlib.nn.conv import GATConv
from gatlib.nn.models import GraphClassifier, NodeClassifier

LAYERS = ["gat", "gatv2", "transformer", "dense", "gps"]
F_IN, EDGE_DIM, K = 6, 3, 4


class PyGGAT(nn.Module):
    """The GAT paper's Cora model written with PyG's GATConv (as in PyG's examples/gat.py)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = PyGGATConv(in_channels, 8, heads=8, dropout=0.6)
        self.conv2 = PyGGATConv(64, out_channels, heads=1, concat=False, dropout=0.6)

    def forward(self, x, edge_index):
        x = F.dropout(x, 0.6, self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, 0.6, self.training)
        return self.conv2(x, edge_index)


def _graph(num_nodes: int = 12, num_edges: int = 30, seed: int = 0, pe: bool = True) -> Data:
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    return Data(x=torch.randn(num_nodes, F_IN, generator=g), edge_index=edge_index,
                edge_attr=torch.randn(num_edges, EDGE_DIM, generator=g),
                pe=torch.randn(num_nodes, K, generator=g) if pe else None)


def _batch(sizes=(5, 9, 3, 7)) -> Batch:
    return Batch.from_data_list([_graph(n, 3 * n, seed=i) for i, n in enumerate(sizes)])


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# The default NodeClassifier is the GAT paper's Cora model


def test_default_node_classifier_is_the_pyg_gat():
    torch.manual_seed(0)
    ours, theirs = NodeClassifier(1433, 8, 7), PyGGAT(1433, 7)
    assert _num_params(ours) == _num_params(theirs) == 92_373
    assert [type(c) for c in ours.convs] == [GATConv, GATConv]
    assert [(c.heads, c.concat, c.dropout) for c in ours.convs] == [(8, True, 0.6),
                                                                    (1, False, 0.6)]
    assert isinstance(ours.act, nn.ELU) and ours.lin_in is None and ours.res is None


def test_default_node_classifier_matches_pyg_with_copied_weights(graph_factory):
    torch.manual_seed(0)
    F_cora, C = 1433, 7
    theirs = PyGGAT(F_cora, C).eval()
    x = torch.randn(40, F_cora)
    edge_index = graph_factory(40, 150, seed=3)        # isolated nodes, loops, duplicates
    expected = theirs(x, edge_index)
    # Layer by layer: the same state dict ...
    ours = NodeClassifier(F_cora, 8, C).eval()
    ours.convs[0].load_state_dict(theirs.conv1.state_dict())
    ours.convs[1].load_state_dict(theirs.conv2.state_dict())
    torch.testing.assert_close(ours(x, edge_index), expected, atol=1e-5, rtol=1e-5)
    # ... or the layers converted with from_pyg.
    other = NodeClassifier(F_cora, 8, C)
    other.convs[0] = GATConv.from_pyg(theirs.conv1)
    other.convs[1] = GATConv.from_pyg(theirs.conv2)
    other.eval()
    torch.testing.assert_close(other(x, edge_index), expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Every layer kind: shapes, gradients, positional encodings


def _check_all_grads(model: nn.Module) -> None:
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("pe", [None, "lap", "rw"])
@pytest.mark.parametrize("layer", LAYERS)
def test_node_classifier_forward_backward(layer, pe):
    torch.manual_seed(0)
    data = _batch()
    edge_dim = None if layer == "dense" else EDGE_DIM
    pe_kw = {} if pe is None else dict(pe_dim=K, pe_channels=5, pe=pe)
    model = NodeClassifier(F_IN, 4, 3, num_layers=3, layer=layer, heads=2, edge_dim=edge_dim,
                           residual=True, norm="batch", **pe_kw)
    out = model(data.x, data.edge_index, data.batch,
                edge_attr=None if edge_dim is None else data.edge_attr,
                pe=None if pe is None else data.pe)
    assert out.shape == (data.num_nodes, 3)
    out.square().sum().backward()
    _check_all_grads(model)
    if pe is not None:
        assert model.pe_encoder is not None
        width = model.lin_in.in_features if model.lin_in is not None else \
            model.convs[0].in_channels
        assert width == F_IN + 5


@pytest.mark.parametrize("pe", [None, "lap", "rw"])
@pytest.mark.parametrize("layer", LAYERS)
def test_graph_classifier_forward_backward(layer, pe):
    torch.manual_seed(0)
    data = _batch()
    edge_dim = None if layer == "dense" else EDGE_DIM
    pe_kw = {} if pe is None else dict(pe_dim=K, pe_channels=5, pe=pe)
    model = GraphClassifier(F_IN, 8, 2, num_layers=2, layer=layer, heads=2, edge_dim=edge_dim,
                            dropout=0.1, **pe_kw)
    out = model(data.x, data.edge_index, data.batch,
                edge_attr=None if edge_dim is None else data.edge_attr,
                pe=None if pe is None else data.pe)
    assert out.shape == (data.num_graphs, 2)
    out.square().sum().backward()
    _check_all_grads(model)
    if layer in ("gat", "gatv2", "transformer"):       # heads of 8 // 2 features, concatenated
        assert all(c.out_channels == 4 and c.heads == 2 and c.concat for c in model.convs)


@pytest.mark.parametrize("pool", ["mean", "sum", "max"])
def test_graph_classifier_pools_per_graph(pool):
    """Each graph's logits depend on that graph alone: batching changes nothing."""
    torch.manual_seed(0)
    graphs = [_graph(n, 3 * n, seed=i, pe=False) for i, n in enumerate((4, 7, 5))]
    model = GraphClassifier(F_IN, 8, 3, layer="gat", heads=2, pool=pool).eval()
    batch = Batch.from_data_list(graphs)
    together = model(batch.x, batch.edge_index, batch.batch)
    alone = torch.cat([model(g.x, g.edge_index) for g in graphs])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_dense_attention_stays_within_each_graph():
    torch.manual_seed(0)
    graphs = [_graph(n, 2 * n, seed=i, pe=False) for i, n in enumerate((6, 4))]
    model = NodeClassifier(F_IN, 4, 3, layer="dense", heads=2).eval()
    batch = Batch.from_data_list(graphs)
    together = model(batch.x, batch.edge_index, batch.batch)
    alone = torch.cat([model(g.x, g.edge_index) for g in graphs])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_pe_is_required_exactly_when_configured():
    data = _graph()
    with pytest.raises(ValueError, match="pe is required"):
        NodeClassifier(F_IN, 4, 3, pe_dim=K, pe_channels=2)(data.x, data.edge_index)
    with pytest.raises(ValueError, match="pe_dim=0"):
        NodeClassifier(F_IN, 4, 3)(data.x, data.edge_index, pe=data.pe)


# ---------------------------------------------------------------------------------------------
# Dropout, training, reset


@pytest.mark.parametrize("model", [
    NodeClassifier(F_IN, 4, 3, heads=2),
    NodeClassifier(F_IN, 4, 3, layer="gps", heads=2, pe_dim=K, pe_channels=2),
    GraphClassifier(F_IN, 8, 3, layer="transformer", heads=2, dropout=0.5, attn_dropout=0.5),
], ids=repr)
def test_eval_is_deterministic_and_training_dropout_is_not(model):
    torch.manual_seed(0)
    data = _batch()
    args = (data.x, data.edge_index, data.batch)
    kw = {"pe": data.pe} if model.pe_encoder is not None else {}
    model.eval()
    torch.testing.assert_close(model(*args, **kw), model(*args, **kw), atol=0, rtol=0)
    model.train()
    assert not torch.allclose(model(*args, **kw), model(*args, **kw))


def test_node_classifier_overfits_a_tiny_task():
    """Labels = sign of the first feature, on a graph that links same-label nodes."""
    torch.manual_seed(0)
    N = 40
    x = torch.randn(N, 4)
    y = (x[:, 0] > 0).long()
    src, dst = torch.randint(0, N, (2, 200))
    keep = y[src] == y[dst]
    edge_index = torch.stack([src[keep], dst[keep]])
    model = NodeClassifier(4, 8, 2)                     # the paper's model, dropout 0.6
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    for _ in range(100):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x, edge_index), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x, edge_index).argmax(-1) == y).float().mean().item()
    assert acc >= 0.95


def test_graph_classifier_overfits_a_tiny_task():
    """Graph label = sign of the mean of the first feature, 16 small graphs."""
    torch.manual_seed(0)
    graphs = []
    for i in range(16):
        g = _graph(6, 12, seed=100 + i, pe=False)
        g.x[:, 0] += 1.0 if i % 2 else -1.0
        g.y = torch.tensor([i % 2])
        graphs.append(g)
    data = Batch.from_data_list(graphs)
    model = GraphClassifier(F_IN, 16, 2, num_layers=2, heads=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(data.x, data.edge_index, data.batch), data.y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(data.x, data.edge_index, data.batch).argmax(-1)
    assert (pred == data.y).float().mean().item() >= 0.95


@pytest.mark.parametrize("cls", [NodeClassifier, GraphClassifier])
def test_reset_parameters_restores_the_initial_distribution(cls):
    torch.manual_seed(0)
    model = cls(F_IN, 8, 3, layer="gps", heads=2, pe_dim=K, pe_channels=2)
    for p in model.parameters():
        nn.init.constant_(p, 0.5)
    model.reset_parameters()
    assert not all(torch.all(p == 0.5) for p in model.parameters())
    weights = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2]
    assert all(not torch.all(p == 0.5) for p in weights)


# ---------------------------------------------------------------------------------------------
# Arguments and repr


@pytest.mark.parametrize("cls", [NodeClassifier, GraphClassifier])
@pytest.mark.parametrize("kwargs, name", [
    (dict(layer="gcn"), "layer"),
    (dict(norm="group"), "norm"),
    (dict(act="swish"), "act"),
    (dict(num_layers=0), "num_layers"),
    (dict(heads=0), "heads"),
    (dict(dropout=1.0), "dropout"),
    (dict(attn_dropout=-0.1), "attn_dropout"),
    (dict(pe="spd", pe_dim=2, pe_channels=2), "pe"),
    (dict(pe_dim=2), "pe_channels"),
    (dict(layer="dense", edge_dim=3), "edge_dim"),
])
def test_bad_arguments_name_the_argument(cls, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        cls(F_IN, 8, 3, **kwargs)


def test_graph_classifier_checks_pool_and_divisibility():
    with pytest.raises(ValueError, match=r"^pool "):
        GraphClassifier(F_IN, 8, 3, pool="median")
    with pytest.raises(ValueError, match=r"^hidden_channels \(10\) must be divisible by heads"):
        GraphClassifier(F_IN, 10, 3, heads=4)


def test_repr():
    assert repr(NodeClassifier(1433, 8, 7)) == \
        "NodeClassifier(1433, 8, 7, layer='gat', num_layers=2, heads=8)"
    assert repr(NodeClassifier(16, 8, 4, layer="gatv2", residual=True, norm="layer")) == \
        "NodeClassifier(16, 8, 4, layer='gatv2', num_layers=2, heads=8, residual=True, " \
        "norm='layer')"
    assert repr(GraphClassifier(7, 64, 2)) == \
        "GraphClassifier(7, 64, 2, layer='gat', num_layers=3, heads=4)"
    assert repr(GraphClassifier(7, 64, 2, layer="gps", pool="sum", pe_dim=8, pe_channels=16,
                                pe="rw")) == \
        "GraphClassifier(7, 64, 2, layer='gps', num_layers=3, heads=4, pool='sum', pe_dim=8, " \
        "pe_channels=16, pe='rw')"


# ---------------------------------------------------------------------------------------------
# torch.compile


def test_compile_matches_eager():
    torch.manual_seed(0)
    data = _batch()
    model = NodeClassifier(F_IN, 4, 3, heads=2, edge_dim=EDGE_DIM, pe_dim=K,
                           pe_channels=2).eval()
    args = (data.x, data.edge_index, data.batch, data.edge_attr, data.pe)
    eager = model(*args)
    compiled = torch.compile(model, backend="aot_eager")(*args)
    torch.testing.assert_close(compiled, eager)


@pytest.mark.parametrize("layer", ["gat", "gatv2", "transformer"])
def test_project_input_gives_sparse_layers_the_dense_layout(layer):
    """With project_input, a sparse model is input map -> layers of width W -> output map, as a
    dense one is; it trains end to end and shows the flag in its repr."""
    torch.manual_seed(0)
    data = _batch()
    model = NodeClassifier(F_IN, 4, 3, num_layers=2, layer=layer, heads=2, project_input=True)
    dense = NodeClassifier(F_IN, 4, 3, num_layers=2, layer="dense", heads=2)
    for m in (model, dense):
        assert (m.lin_in.in_features, m.lin_in.out_features) == (F_IN, 8)
        assert (m.lin_out.in_features, m.lin_out.out_features) == (8, 3)
        assert len(m.convs) == 2
    out = model(data.x, data.edge_index, data.batch)
    assert out.shape == (data.num_nodes, 3)
    out.square().sum().backward()
    _check_all_grads(model)
    assert "project_input=True" in repr(model)
    plain = NodeClassifier(F_IN, 4, 3, num_layers=2, layer=layer, heads=2)
    assert plain.lin_in is None and "project_input" not in repr(plain)


def test_value_dropout_reaches_the_gat_layers_only():
    """NodeClassifier passes value_dropout to every GATConv; other layers refuse it by name."""
    model = NodeClassifier(F_IN, 4, 3, value_dropout=0.6)
    assert [c.value_dropout for c in model.convs] == [0.6, 0.6]
    assert "value_dropout=0.6" in repr(model)
    assert NodeClassifier(F_IN, 4, 3).convs[0].value_dropout == 0.0
    with pytest.raises(ValueError, match="value_dropout"):
        NodeClassifier(F_IN, 4, 3, layer="transformer", value_dropout=0.6)


# ------------------------------------------------------------------ sparse node features

def _bag_of_words(n: int = 30, f: int = 50, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < 0.08).float()
    x[3] = 0.0                                        # a node with no features at all
    return x / x.sum(1, keepdim=True).clamp(min=1)


@pytest.mark.parametrize("layout", ["csr", "coo"])
@pytest.mark.parametrize("layer,kwargs", [("gat", {"value_dropout": 0.3}), ("gatv2", {}),
                                          ("transformer", {"residual": True}),
                                          ("transformer", {"project_input": True}),
                                          ("dense", {})])
def test_sparse_features_give_the_dense_model(layout, layer, kwargs):
    """Eval mode: CSR / COO features give the dense features' logits and weight gradients."""
    x = _bag_of_words()
    xs = x.to_sparse_csr() if layout == "csr" else x.to_sparse()
    ei = torch.randint(0, 30, (2, 90), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = NodeClassifier(50, 4, 3, layer=layer, heads=2, **kwargs).double().eval()
    params = [p for p in model.parameters() if p.requires_grad]
    ref = model(x.double(), ei)
    got = model(xs.double(), ei)
    torch.testing.assert_close(got, ref)
    g_ref = torch.autograd.grad(ref.pow(2).sum(), params)
    g_got = torch.autograd.grad(got.pow(2).sum(), params)
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_sparse_dropout_is_dense_dropout_on_the_stored_entries(layout):
    from gatlib.nn.stack import feature_dropout as _dropout
    x = torch.rand(400, 300) * (torch.rand(400, 300) < 0.05)
    xs = x.to_sparse_csr() if layout == "csr" else x.to_sparse()
    torch.manual_seed(0)
    out = _dropout(xs, 0.6, True)
    assert out.layout == xs.layout
    dense = out.to_dense()
    kept = dense != 0
    assert not kept[x == 0].any()                                      # zeros stay zero
    torch.testing.assert_close(dense[kept], x[kept] / 0.4)             # kept entries scaled
    rate = kept.sum().item() / (x != 0).sum().item()
    assert abs(rate - 0.4) < 0.03                                      # ~6,000 entries
    assert _dropout(xs, 0.6, False) is xs and _dropout(xs, 0.0, True) is xs
    with pytest.raises(ValueError, match="layout"):
        _dropout(x.to_sparse_csc(), 0.5, True)


def test_sparse_features_and_pe_are_refused():
    x = _bag_of_words().to_sparse_csr()
    model = NodeClassifier(50, 4, 3, heads=2, pe_dim=4, pe_channels=2)
    with pytest.raises(ValueError, match="sparse node features"):
        model(x, torch.zeros(2, 0, dtype=torch.long), pe=torch.randn(30, 4))


# ---------------------------------------------------------------------------------------------
# One graph structure per forward pass, held across passes when the caller holds it


def _count_builds(monkeypatch):
    import gatlib.graph.adjacency as adjacency_module
    import gatlib.graph.csr as csr_module
    calls = []
    real = csr_module._build_csr

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(csr_module, "_build_csr", counting)
    monkeypatch.setattr(adjacency_module, "_build_csr", counting)
    return calls


@pytest.mark.parametrize("layer", ["gat", "gatv2", "transformer", "gps"])
def test_models_build_the_structure_once_per_forward(layer, monkeypatch):
    """A plain edge_index is converted once per forward and shared by every layer (with
    self-loops: the CSR view, then the self-loop graph); a held GraphCSR keeps what it built
    and the next forward builds nothing."""
    from gatlib.graph import to_csr
    data = _batch()
    kwargs = {"gps": dict(hidden_channels=8, heads=2)}.get(layer, dict(hidden_channels=4,
                                                                         heads=2))
    model = GraphClassifier(F_IN, out_channels=3, num_layers=3, layer=layer, **kwargs).eval()
    calls = _count_builds(monkeypatch)
    want = model(data.x, data.edge_index, data.batch)
    per_forward = 1 if layer == "transformer" else 2
    assert len(calls) == per_forward
    model(data.x, data.edge_index, data.batch)
    assert len(calls) == 2 * per_forward                   # no cache keyed by the tensor
    graph = to_csr(data.edge_index, data.num_nodes)
    calls.clear()
    torch.testing.assert_close(model(data.x, graph, data.batch), want)
    assert len(calls) == per_forward - 1                   # the self-loop graph, once
    model(data.x, graph, data.batch)
    assert len(calls) == per_forward - 1                   # kept on the held graph


def test_models_take_every_adjacency_form():
    from torch_geometric import EdgeIndex
    from torch_geometric.utils import to_torch_csc_tensor
    from torch_geometric.utils import coalesce
    data = _graph(pe=False)
    data.edge_index = coalesce(data.edge_index)             # PyG's sparse builders merge repeats
    model = NodeClassifier(F_IN, 4, 3, heads=2).eval()
    want = model(data.x, data.edge_index)
    N = data.num_nodes
    for adj in (EdgeIndex(data.edge_index, sparse_size=(N, N)),
                to_torch_csc_tensor(data.edge_index, size=(N, N)).t()):
        torch.testing.assert_close(model(data.x, adj), want)


@pytest.mark.parametrize("structure", ["edge_index", "graph"])
def test_node_classifier_compiles_fullgraph_and_dynamic(structure):
    from torch._dynamo.testing import CompileCounterWithBackend
    from gatlib.graph import to_csr
    torch.manual_seed(0)
    model = NodeClassifier(F_IN, 4, 3, heads=2).eval()
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True, dynamic=True)
    frames = []
    for seed, n in enumerate((12, 17, 25)):
        data = _graph(n, 3 * n, seed=seed, pe=False)
        graph = data.edge_index if structure == "edge_index" else to_csr(data.edge_index, n)
        torch.testing.assert_close(compiled(data.x, graph), model(data.x, graph))
        frames.append(counter.frame_count)
    assert frames[2] - frames[0] <= 1, frames
