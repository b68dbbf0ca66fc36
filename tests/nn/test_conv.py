"""GATConv, GATv2Conv and GraphTransformerConv against PyG's layers with copied weights."""
import pytest
import torch
import torch_geometric.nn as pyg_nn

from gatlib.nn.conv import GATConv, GATv2Conv, GraphTransformerConv

from ..conftest import random_graph

PAIRS = {"gat": (pyg_nn.GATConv, GATConv), "gatv2": (pyg_nn.GATv2Conv, GATv2Conv),
         "transformer": (pyg_nn.TransformerConv, GraphTransformerConv)}


def _data(bipartite, edge_dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    S, T = (13, 9) if bipartite else (20, 20)
    ei = random_graph(S, 70, seed=seed, num_dst=T, hub=True)
    if bipartite:
        x = (torch.randn(S, 6, generator=g, requires_grad=True),
             torch.randn(T, 5, generator=g, requires_grad=True))
        in_ch = (6, 5)
    else:
        x = torch.randn(S, 6, generator=g, requires_grad=True)
        in_ch = 6
    ea = (torch.randn(ei.size(1), edge_dim, generator=g, requires_grad=True)
          if edge_dim else None)
    return x, ei, ea, in_ch


def _inputs(x):
    return list(x) if isinstance(x, tuple) else [x]


def _compare(pyg_layer, ours, x, ei, ea):
    kw = {} if ea is None else {"edge_attr": ea}
    want, (ei_p, alpha_p) = pyg_layer(x, ei, return_attention_weights=True, **kw)
    got, (ei_g, alpha_g) = ours(x, ei, return_attention_weights=True, **kw)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(ei_g, ei_p)
    torch.testing.assert_close(alpha_g, alpha_p, rtol=1e-5, atol=1e-5)
    leaves = _inputs(x) + ([ea] if ea is not None else [])
    w = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad((got * w).sum() + alpha_g.sum(), leaves),
                    torch.autograd.grad((want * w).sum() + alpha_p.sum(), leaves)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["gat", "gatv2"])
@pytest.mark.parametrize("heads,concat", [(1, True), (3, True), (3, False)])
@pytest.mark.parametrize("edge_dim", [None, 4])
@pytest.mark.parametrize("bipartite", [False, True])
@pytest.mark.parametrize("self_loops", [True, False])
def test_gat_family_matches_pyg(kind, heads, concat, edge_dim, bipartite, self_loops):
    torch.manual_seed(heads * 7 + bool(edge_dim))
    x, ei, ea, in_ch = _data(bipartite, edge_dim)
    pyg_cls, cls = PAIRS[kind]
    pyg_layer = pyg_cls(in_ch, 4, heads=heads, concat=concat, edge_dim=edge_dim,
                        add_self_loops=self_loops)
    with torch.no_grad():                       # non-zero biases so that they are checked
        for p in pyg_layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    _compare(pyg_layer, cls.from_pyg(pyg_layer), x, ei, ea)


@pytest.mark.parametrize("heads,concat", [(1, True), (2, True), (2, False)])
@pytest.mark.parametrize("edge_dim", [None, 3])
@pytest.mark.parametrize("bipartite", [False, True])
@pytest.mark.parametrize("beta,root_weight", [(False, True), (True, True), (False, False)])
def test_transformer_matches_pyg(heads, concat, edge_dim, bipartite, beta, root_weight):
    torch.manual_seed(heads)
    x, ei, ea, in_ch = _data(bipartite, edge_dim)
    pyg_layer = pyg_nn.TransformerConv(in_ch, 4, heads=heads, concat=concat, beta=beta,
                                       edge_dim=edge_dim, root_weight=root_weight)
    _compare(pyg_layer, GraphTransformerConv.from_pyg(pyg_layer), x, ei, ea)


def test_gatv2_shared_weights_and_residual():
    x, ei, _, _ = _data(False, None)
    pyg_layer = pyg_nn.GATv2Conv(6, 5, heads=2, share_weights=True, residual=True)
    _compare(pyg_layer, GATv2Conv.from_pyg(pyg_layer), x, ei, None)
    pyg_layer = pyg_nn.GATConv(6, 5, heads=2, residual=True)
    _compare(pyg_layer, GATConv.from_pyg(pyg_layer), x, ei, None)


def test_gatv2_chunks_give_the_same_answer():
    x, ei, ea, _ = _data(False, 4)
    layer = GATv2Conv(6, 4, heads=2, edge_dim=4)
    small = GATv2Conv(6, 4, heads=2, edge_dim=4, edge_chunk=7)
    small.load_state_dict(layer.state_dict())
    a, b = layer(x, ei, ea), small(x, ei, ea)
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a.sum(), [x, ea])
    gb = torch.autograd.grad(b.sum(), [x, ea])
    for u, w in zip(ga, gb):
        torch.testing.assert_close(u, w)


@pytest.mark.parametrize("cls", [GATConv, GATv2Conv, GraphTransformerConv])
def test_repr_reset_compile_and_autocast(cls):
    layer = cls(6, 4, heads=2)
    assert repr(layer) == f"{cls.__name__}(6, 4, heads=2)"
    x, ei, _, _ = _data(False, None)
    before = [p.detach().clone() for p in layer.parameters()]
    layer.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, layer.parameters()))
    eager = layer(x, ei)
    compiled = torch.compile(layer, backend="aot_eager")(x, ei)
    torch.testing.assert_close(compiled, eager)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = layer(x, ei)
    assert torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), eager, rtol=0.05, atol=0.05)


def test_structure_is_built_once_per_graph():
    from gatlib.graph.csr import cache_get
    x, ei, _, _ = _data(False, None)
    layer = GATConv(6, 4, heads=2)
    layer(x, ei)
    loops = cache_get(ei, "self_loops", (20, 20))
    assert loops is not None
    layer(x, ei)
    assert cache_get(ei, "self_loops", (20, 20)) is loops


def test_dropout_only_in_training():
    x, ei, _, _ = _data(False, None)
    for cls in (GATConv, GATv2Conv, GraphTransformerConv):
        layer = cls(6, 4, heads=2, dropout=0.5).eval()
        torch.testing.assert_close(layer(x, ei), layer(x, ei))
        layer.train()
        assert not torch.allclose(layer(x, ei), layer(x, ei))


def test_bad_input():
    layer = GATConv(6, 4)
    x, ei, _, _ = _data(False, None)
    with pytest.raises(ValueError, match="edge_index"):
        layer(x, ei + 100)
    with pytest.raises(ValueError, match="in_channels"):
        layer((x, x), ei)
    with pytest.raises(ValueError, match="x must be"):
        layer(x[0], ei)


def test_value_dropout_drops_the_summed_features_only():
    """value_dropout (the GAT authors' dropout on W x_j): the scores come from the features
    before dropout, the weighted sum uses the dropped ones; nothing changes in eval mode."""
    from gatlib.nn._dropout import dropout
    from gatlib.nn.conv import _prepare_graph
    from gatlib.ops import gat_attention
    torch.manual_seed(0)
    x = torch.randn(7, 5)
    ei = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 1], [1, 2, 3, 4, 5, 6, 0, 0]])
    layer = GATConv(5, 3, heads=2, value_dropout=0.5)
    plain = GATConv(5, 3, heads=2)
    plain.load_state_dict(layer.state_dict())
    layer.eval(), plain.eval()
    torch.testing.assert_close(layer(x, ei), plain(x, ei))
    layer.train()
    torch.manual_seed(1)
    out = layer(x, ei)
    torch.manual_seed(1)
    h = layer.lin(x).view(-1, 2, 3)                                       # [N, H, C]
    a_src, a_dst = (h * layer.att_src).sum(-1), (h * layer.att_dst).sum(-1)
    values = dropout(h, 0.5, True)                 # the layer's dropout (gatlib's mask)
    _, graph, _ = _prepare_graph(x, x, ei, None, True, "mean")
    want = gat_attention(a_src, a_dst, values, graph).reshape(7, 6) + layer.bias
    torch.testing.assert_close(out, want)
    assert not torch.allclose(out, plain.train()(x, ei))
    with pytest.raises(ValueError, match="value_dropout"):
        GATConv(5, 3, value_dropout=1.0)
