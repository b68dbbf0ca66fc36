"""PyG's explainers on models of gatlib's layers: edge masks in explain mode (as PyG's
``propagate`` applies them), ``AttentionExplainer`` and ``GNNExplainer``, written from what PyG's
own explainer tests check, with gatlib's layers in the models."""
import pytest
import torch
import torch_geometric.nn as pyg_nn
from torch_geometric.explain import AttentionExplainer, Explainer, GNNExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_masks
from torch_geometric.utils import k_hop_subgraph

from gatlib.nn import GATConv, GATv2Conv, TransformerConv

LAYERS = {"gat": (GATConv, pyg_nn.GATConv), "gatv2": (GATv2Conv, pyg_nn.GATv2Conv),
          "transformer": (TransformerConv, pyg_nn.TransformerConv)}

# PyG's explainer tests' graph: a path of 8 nodes, both directions.
X = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
EDGE_INDEX = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7],
                           [1, 0, 2, 1, 3, 2, 4, 3, 5, 4, 6, 5, 7, 6]])
# The same with two self-loops and a duplicate edge (the mask of a loop the layer replaces by
# its own has no effect; a duplicate edge has a mask entry of its own).
EDGE_INDEX_LOOPS = torch.cat([EDGE_INDEX, torch.tensor([[2, 5, 1], [2, 5, 2]])], dim=1)


class TwoLayers(torch.nn.Module):
    """PyG's explainer-test model (3 -> 4 heads x 16 -> 7), with the layer class given."""

    def __init__(self, cls, **kw):
        super().__init__()
        self.conv1 = cls(3, 16, heads=4, **kw)
        self.conv2 = cls(4 * 16, 7, heads=1, **kw)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index)


def _pair(kind, edge_dim=None):
    """A gatlib layer and the PyG layer it was copied from (non-zero biases)."""
    ours, theirs = LAYERS[kind]
    pyg_layer = theirs(3, 5, heads=2, edge_dim=edge_dim)
    with torch.no_grad():
        for p in pyg_layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return ours.from_pyg(pyg_layer).double(), pyg_layer.double()


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("edge_index", [EDGE_INDEX, EDGE_INDEX_LOOPS], ids=["plain", "loops"])
@pytest.mark.parametrize("sigmoid", [True, False])
@pytest.mark.parametrize("edge_dim", [None, 2])
def test_edge_mask_multiplies_messages_as_pyg(kind, edge_index, sigmoid, edge_dim):
    """``set_masks`` puts a layer in explain mode: its output and the mask's gradient equal
    those of PyG's layer (same weights, same mask) in explain mode."""
    ours, theirs = _pair(kind, edge_dim)
    x = X.double()
    ea = None if edge_dim is None else torch.randn(edge_index.size(1), 2, dtype=torch.float64)
    kw = {} if ea is None else {"edge_attr": ea}
    values = torch.randn(edge_index.size(1), dtype=torch.float64)
    results = []
    for layer in (ours, theirs):
        mask = torch.nn.Parameter(values.clone())
        set_masks(layer, mask, edge_index, apply_sigmoid=sigmoid)
        assert layer.explain is True
        out = layer(x, edge_index, **kw)
        w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        (out * w).sum().backward()
        clear_masks(layer)
        results.append((out.detach(), mask.grad))
    (out_g, grad_g), (out_p, grad_p) = results
    torch.testing.assert_close(out_g, out_p)
    torch.testing.assert_close(grad_g, grad_p)
    assert grad_g.abs().sum() > 0
    # Out of explain mode again: the mask no longer counts.
    assert ours.explain is None and ours._edge_mask is None
    torch.testing.assert_close(ours(x, edge_index, **kw), theirs(x, edge_index, **kw))


def test_masked_gat_output_by_hand():
    """GAT in explain mode: ``x_i' = ||_h sum_e m_e alpha_e^h W^h x_j + b``, the weights those
    the layer returns, ``m`` the mask of each kept edge and 1 for each added self-loop."""
    layer, _ = _pair("gat")
    x = X.double()
    _, (ei, alpha) = layer(x, EDGE_INDEX_LOOPS, return_attention_weights=True)
    mask = torch.rand(EDGE_INDEX_LOOPS.size(1), dtype=torch.float64)
    kept = EDGE_INDEX_LOOPS[0] != EDGE_INDEX_LOOPS[1]
    m = torch.cat([mask[kept], torch.ones(8, dtype=torch.float64)])        # [E' + 8]
    v = layer.lin(x).view(8, 2, 5)                                         # [N, H, C]
    msg = m.view(-1, 1, 1) * alpha.unsqueeze(-1) * v[ei[0]]                # [E' + 8, H, C]
    want = torch.zeros(8, 2, 5, dtype=torch.float64).index_add_(0, ei[1], msg)
    set_masks(layer, mask, EDGE_INDEX_LOOPS, apply_sigmoid=False)
    got = layer(x, EDGE_INDEX_LOOPS)
    clear_masks(layer)
    torch.testing.assert_close(got, want.view(8, 10) + layer.bias)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_message_hook_sees_the_attention_weights(kind):
    """PyG's message hooks run (AttentionExplainer reads ``alpha`` through one): they see the
    attention weights of every edge the layer attends over, those it returns."""
    ours, _ = _pair(kind)
    seen = []
    handle = ours.register_message_forward_hook(
        lambda module, inputs, out: seen.append((inputs[0]["alpha"], out)))
    out, (ei, alpha) = ours(X.double(), EDGE_INDEX, return_attention_weights=True)
    handle.remove()
    assert len(seen) == 1
    torch.testing.assert_close(seen[0][0], alpha)
    assert seen[0][1].shape == (ei.size(1), 2, 5)              # messages [E, H, C]
    # Without the hook the fused path gives the same output.
    torch.testing.assert_close(ours(X.double(), EDGE_INDEX), out)


def _hard_mask(index, edge_index, directed, num_hops=2):
    """The edges of the explained nodes' 2-hop subgraph (all edges when index is None):
    directed, those whose messages reach the nodes in two layers (where a gradient flows);
    else every edge between the subgraph's nodes (AttentionExplainer's hard mask)."""
    if index is None:
        return torch.ones(edge_index.size(1), dtype=torch.bool)
    return k_hop_subgraph(index, num_hops, edge_index, num_nodes=8, directed=directed)[3]


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("index", [None, 2, torch.arange(3)])
def test_attention_explainer(kind, index):
    """PyG's ``test_attention_explainer`` with gatlib's layers: an ``[E]`` mask in [0, 1] that
    is, exactly, the maximum over layers and heads of the attention weights the layers return
    (the first E of each layer's, as AttentionExplainer takes them), zero outside the
    explained nodes' 2-hop subgraph."""
    model = TwoLayers(LAYERS[kind][0])
    explainer = Explainer(model=model, algorithm=AttentionExplainer(),
                          explanation_type="model", edge_mask_type="object",
                          model_config=dict(mode="multiclass_classification",
                                            task_level="node", return_type="raw"))
    explanation = explainer(X, EDGE_INDEX, index=index)
    mask = explanation.edge_mask
    E = EDGE_INDEX.size(1)
    assert mask.shape == (E,)
    assert mask.min() >= 0 and mask.max() <= 1
    # The reference: each layer's weights, max over heads, then over the two layers.
    with torch.no_grad():
        h, (_, a1) = model.conv1(X, EDGE_INDEX, return_attention_weights=True)
        _, (_, a2) = model.conv2(h.relu(), EDGE_INDEX, return_attention_weights=True)
    want = torch.maximum(a1[:E].max(-1).values, a2[:E].max(-1).values)
    hard = _hard_mask(index, EDGE_INDEX, directed=False)
    torch.testing.assert_close(mask, torch.where(hard, want, torch.zeros_like(want)))
    assert (mask[hard] > 0).all()


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("edge_index", [EDGE_INDEX, EDGE_INDEX_LOOPS], ids=["plain", "loops"])
def test_gnn_explainer_edge_mask_object(kind, edge_index):
    """PyG's GNNExplainer with ``edge_mask_type='object'`` (its node-level classification
    case): the mask's gradients reach the layers, so the explanation is an ``[E]`` mask in
    [0, 1], non-zero on the edges whose messages reach node 2 in two layers, zero elsewhere."""
    torch.manual_seed(1)
    model = TwoLayers(LAYERS[kind][0]).eval()
    target = model(X, edge_index).argmax(-1)
    explainer = Explainer(model=model, algorithm=GNNExplainer(epochs=20),
                          explanation_type="phenomenon", edge_mask_type="object",
                          model_config=dict(mode="multiclass_classification",
                                            task_level="node", return_type="raw"))
    explanation = explainer(X, edge_index, target=target, index=2)
    mask = explanation.edge_mask
    assert mask.shape == (edge_index.size(1),)
    assert mask.min() >= 0 and mask.max() <= 1
    hard = _hard_mask(2, edge_index, directed=True)
    # A self-loop the layer replaces by its own gets no gradient (GAT's, GATv2's), as in PyG.
    replaced = (edge_index[0] == edge_index[1]) & (kind != "transformer")
    assert (mask[hard & ~replaced] > 0).all()
    assert (mask[~hard | replaced] == 0).all()
    # The explainer leaves the model out of explain mode.
    assert model.conv1.explain is None and model.conv1._edge_mask is None


def test_attention_explainer_on_a_to_hetero_model():
    """AttentionExplainer on a ``to_hetero`` model of gatlib's layers: one mask per edge type,
    each the maximum over layers and heads of that edge type's layers' attention weights."""
    from torch_geometric.datasets import FakeHeteroDataset
    from torch_geometric.nn import to_hetero

    class GAT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first = GATConv((-1, -1), 8, heads=2, add_self_loops=False)
            self.second = GATConv((-1, -1), 4, heads=1, add_self_loops=False)

        def forward(self, x, edge_index):
            return self.second(self.first(x, edge_index).relu(), edge_index)

    class Target(torch.nn.Module):                 # the explained node type's output
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x_dict, edge_index_dict):
            return self.net(x_dict, edge_index_dict)["v0"]

    # (Layer names without the type names in them: PyG finds a layer's edge type by looking
    # for the type names in the layer's name, and 'conv1' holds 'v1'.)
    torch.manual_seed(0)
    data = FakeHeteroDataset(num_graphs=1, num_node_types=2, num_edge_types=4,
                             avg_num_nodes=20)[0]
    net = to_hetero(GAT(), data.metadata())
    model = Target(net)
    model(data.x_dict, data.edge_index_dict)        # lazy shapes
    inputs = {}                                     # each layer's input, per edge type
    handles = [m.register_forward_pre_hook(lambda mod, args, name=name: inputs.setdefault(
        name, args)) for name, m in net.named_modules() if isinstance(m, GATConv)]
    model(data.x_dict, data.edge_index_dict)
    for h in handles:
        h.remove()
    explainer = Explainer(model=model, algorithm=AttentionExplainer(),
                          explanation_type="model", edge_mask_type="object",
                          model_config=dict(mode="multiclass_classification",
                                            task_level="node", return_type="raw"))
    explanation = explainer(data.x_dict, data.edge_index_dict)
    masks = explanation.edge_mask_dict
    assert set(masks) == set(data.edge_types)
    for et in data.edge_types:
        key = "__".join(et)
        with torch.no_grad():
            alphas = [net.get_submodule(f"{name}.{key}")(
                *inputs[f"{name}.{key}"], return_attention_weights=True)[1][1]
                for name in ("first", "second")]
        want = torch.maximum(alphas[0].max(-1).values, alphas[1].max(-1).values)
        torch.testing.assert_close(masks[et], want)


def test_edge_mask_reaches_a_subclass_made_after_its_base():
    """``TransformerConv`` (a subclass of ``GraphTransformerConv``) made after a base layer
    still applies the edge mask: explain mode switches to PyG's own ``propagate``, never to one
    inherited from the base class."""
    from gatlib.nn import GraphTransformerConv
    GraphTransformerConv(3, 5, heads=2)(X, EDGE_INDEX)
    ours, theirs = _pair("transformer")
    mask = torch.randn(EDGE_INDEX.size(1), dtype=torch.float64)
    outs = []
    for layer in (ours, theirs):
        set_masks(layer, mask, EDGE_INDEX, apply_sigmoid=True)
        outs.append(layer(X.double(), EDGE_INDEX))
        clear_masks(layer)
    torch.testing.assert_close(outs[0], outs[1])
