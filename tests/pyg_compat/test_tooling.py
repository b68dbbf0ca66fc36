"""PyG's model tooling on gatlib's layers: ``to_hetero`` (the OGB-MAG recipe of PyG's docs),
``HeteroConv``, ``summary`` and ``Sequential``, written from what PyG's own tests of them check,
with gatlib's layers in the models; each compared with the same model of PyG's layers."""
import sys

import pytest
import torch
import torch_geometric.nn as pyg_nn
from torch_geometric.datasets import FakeHeteroDataset
from torch_geometric.nn import HeteroConv, Linear, Sequential, to_hetero

from gatlib.nn import GATConv, GATv2Conv, TransformerConv

LAYERS = {"gat": (GATConv, pyg_nn.GATConv), "gatv2": (GATv2Conv, pyg_nn.GATv2Conv),
          "transformer": (TransformerConv, pyg_nn.TransformerConv)}
# Self-loops make no sense between node types: the GAT family is built without them.
NO_LOOPS = {"gat": {"add_self_loops": False}, "gatv2": {"add_self_loops": False},
            "transformer": {}}


@pytest.fixture(scope="module")
def hetero_data():
    """PyG's FakeHeteroDataset: two node types (features of different widths), four edge types
    (both directions between the types and within each)."""
    torch.manual_seed(0)
    return FakeHeteroDataset(num_graphs=1, num_node_types=2, num_edge_types=4,
                             avg_num_nodes=30, avg_degree=3)[0]


class GNN(torch.nn.Module):
    """The model of PyG's to_hetero guide: two attention layers with lazy bipartite inputs
    ``(-1, -1)``, each beside a lazy linear skip."""

    def __init__(self, cls, **kw):
        super().__init__()
        self.conv1 = cls((-1, -1), 16, heads=2, **kw)
        self.lin1 = Linear(-1, 32)
        self.conv2 = cls((-1, -1), 8, heads=1, **kw)
        self.lin2 = Linear(-1, 8)

    def forward(self, x, edge_index):
        x = (self.conv1(x, edge_index) + self.lin1(x)).relu()
        return self.conv2(x, edge_index) + self.lin2(x)


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("aggr", ["sum", "mean"])
def test_to_hetero_equals_pyg(hetero_data, kind, aggr):
    """``to_hetero`` turns a model of gatlib's layers into one layer per edge type, called on
    ``(x_src, x_dst)`` pairs of different sizes; the result equals the same heterogeneous model
    of PyG's layers with the same weights (float64), outputs and input gradients."""
    ours_cls, pyg_cls = LAYERS[kind]
    data = hetero_data
    x_dict = {k: v.double() for k, v in data.x_dict.items()}
    theirs = to_hetero(GNN(pyg_cls, **NO_LOOPS[kind]), data.metadata(), aggr=aggr).double()
    ours = to_hetero(GNN(ours_cls, **NO_LOOPS[kind]), data.metadata(), aggr=aggr).double()
    with torch.no_grad():                       # lazy shapes fixed, then PyG's weights copied
        theirs(x_dict, data.edge_index_dict)
        ours(x_dict, data.edge_index_dict)
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))   # non-zero biases, so that they count
    ours.load_state_dict(theirs.state_dict())
    # One gatlib layer per edge type, named as PyG names its own.
    assert isinstance(ours.conv1["v0__e0__v1"], ours_cls)
    results = []
    for model in (ours, theirs):
        xs = {k: v.clone().requires_grad_() for k, v in x_dict.items()}
        out = model(xs, data.edge_index_dict)
        loss = sum((v * torch.linspace(-1, 1, v.numel(), dtype=v.dtype).view_as(v)).sum()
                   for v in out.values())
        results.append((out, torch.autograd.grad(loss, list(xs.values()))))
    (out_g, grad_g), (out_p, grad_p) = results
    assert out_g.keys() == out_p.keys() == set(data.node_types)
    for k in out_p:
        assert out_g[k].shape == (data[k].num_nodes, 8)
        torch.testing.assert_close(out_g[k], out_p[k])
    for a, b in zip(grad_g, grad_p):
        torch.testing.assert_close(a, b)


def test_to_hetero_refuses_self_loops_between_types(hetero_data):
    """As for PyG's GATConv: ``add_self_loops=True`` on edges between two node types is
    refused by ``to_hetero`` (PyG reads the layer's ``add_self_loops``)."""
    with pytest.raises(ValueError, match="add_self_loops"):
        to_hetero(GNN(GATConv), hetero_data.metadata())


@pytest.mark.parametrize("kind", list(LAYERS))
def test_hetero_conv_equals_pyg(hetero_data, kind):
    """``HeteroConv`` of one layer per edge type, bipartite ones on ``(x_src, x_dst)``, equals
    the same ``HeteroConv`` of PyG's layers with copied weights."""
    ours_cls, pyg_cls = LAYERS[kind]
    data = hetero_data
    width = {k: v.size(1) for k, v in data.x_dict.items()}
    pyg_convs, our_convs = {}, {}
    for et in data.edge_types:
        src, _, dst = et
        kw = dict(NO_LOOPS[kind]) if src != dst else {}
        pyg_convs[et] = pyg_cls((width[src], width[dst]), 8, heads=2, **kw)
        our_convs[et] = ours_cls.from_pyg(pyg_convs[et])
    theirs, ours = HeteroConv(pyg_convs, aggr="sum"), HeteroConv(our_convs, aggr="sum")
    want = theirs(data.x_dict, data.edge_index_dict)
    got = ours(data.x_dict, data.edge_index_dict)
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-5)


def _summary_rows(model, *args):
    """The rows ``torch_geometric.nn.summary`` tabulates (its table printer needs the optional
    ``tabulate`` package, so the rows are taken before they are printed)."""
    module = sys.modules["torch_geometric.nn.summary"]
    rows = []

    def capture(info_list, max_depth):
        rows.extend(info_list)
        return ""

    original = module.make_table
    module.make_table = capture
    try:
        module.summary(model, *args)
    finally:
        module.make_table = original
    return rows


def test_summary_treats_the_layers_as_pyg_layers():
    """``summary`` stops at message-passing layers (its ``leaf_module``): one row per gatlib
    layer, with its input and output shapes and parameter count, and none for its maps."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = GATConv(16, 8, heads=2)
            self.conv2 = TransformerConv(16, 4)

        def forward(self, x, edge_index):
            return self.conv2(self.conv1(x, edge_index).relu(), edge_index)

    model = Net()
    x, edge_index = torch.randn(10, 16), torch.randint(0, 10, (2, 30))
    rows = _summary_rows(model, x, edge_index)
    assert [r["name"] for r in rows] == ["Net", "├─(conv1)GATConv", "├─(conv2)TransformerConv"]
    assert rows[1]["input_shape"] == "[10, 16], [2, 30]"
    assert rows[1]["output_shape"] == "[10, 16]"
    assert rows[2]["output_shape"] == "[10, 4]"
    count = sum(p.numel() for p in model.conv1.parameters())
    assert rows[1]["#param"] == f"{count:,}"


def test_sequential_with_gatlib_layers():
    """PyG's ``Sequential`` with its ``'x, edge_index -> x'`` signatures runs gatlib's layers,
    and equals the same model of PyG's layers with copied weights."""
    pyg1, pyg2 = pyg_nn.GATConv(16, 8, heads=2), pyg_nn.TransformerConv(16, 4, heads=2)
    layers = {"ours": (GATConv.from_pyg(pyg1), TransformerConv.from_pyg(pyg2)),
              "pyg": (pyg1, pyg2)}
    outs = {}
    x, edge_index = torch.randn(10, 16), torch.randint(0, 10, (2, 30))
    for name, (a, b) in layers.items():
        model = Sequential("x, edge_index", [(a, "x, edge_index -> x"), torch.nn.ReLU(),
                                             (b, "x, edge_index -> x")])
        outs[name] = model(x, edge_index)
    assert outs["ours"].shape == (10, 8)
    torch.testing.assert_close(outs["ours"], outs["pyg"], rtol=1e-5, atol=1e-5)
