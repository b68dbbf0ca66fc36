"""GATConv, GATv2Conv and GraphTransformerConv against PyG's layers with copied weights."""
import pytest
import torch
import torch_geometric.nn as pyg_nn

from gatlib.nn.conv import GATConv, GATv2Conv, GraphTransformerConv

from ..conftest import edit_in_place, random_graph

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


def test_structure_is_built_once_per_held_graph():
    """Held GraphCSR: the self-loop graph is built on the first call and kept on it."""
    from gatlib.graph import to_csr
    x, ei, _, _ = _data(False, None)
    graph = to_csr(ei, 20)
    layer = GATConv(6, 4, heads=2)
    out = layer(x, graph)
    loops = graph.with_self_loops()
    assert graph.derived("self_loops", lambda: None) is loops
    torch.testing.assert_close(layer(x, graph), out)
    assert graph.with_self_loops() is loops
    torch.testing.assert_close(layer(x, ei), out)


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
    # A pair with one in_channels shares the map between sources and targets, as PyG's.
    torch.testing.assert_close(layer((x, x), ei), layer(x, ei))
    with pytest.raises(ValueError, match="x must be"):
        layer(x[0], ei)


def test_value_dropout_drops_the_summed_features_only():
    """value_dropout (the GAT authors' dropout on W x_j): the scores come from the features
    before dropout, the weighted sum uses the dropped ones; nothing changes in eval mode."""
    from gatlib.graph import to_csr
    from gatlib.nn._dropout import dropout
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
    graph = to_csr(ei, 7).with_self_loops()
    want = gat_attention(a_src, a_dst, values, graph).reshape(7, 6) + layer.bias
    torch.testing.assert_close(out, want)
    assert not torch.allclose(out, plain.train()(x, ei))
    with pytest.raises(ValueError, match="value_dropout"):
        GATConv(5, 3, value_dropout=1.0)


# ------------------------------------------------------------------ PyG's inputs and signature

SMALL_EI = torch.tensor([[0, 1, 2, 3, 3], [0, 0, 1, 1, 2]])


def _pyg_pair(kind, in_ch=8, **kw):
    torch.manual_seed(0)
    pyg_cls, cls = PAIRS[kind]
    pyg_layer = pyg_cls(in_ch, 16, heads=2, **kw)
    with torch.no_grad():
        for p in pyg_layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return pyg_layer, cls.from_pyg(pyg_layer)


def _sparse_forms(ei, S, T):
    from torch_geometric.utils import (to_torch_coo_tensor, to_torch_csc_tensor,
                                       to_torch_csr_tensor)
    return {"coo": to_torch_coo_tensor(ei, size=(S, T)).t(),
            "csr": to_torch_csc_tensor(ei, size=(S, T)).t(),
            "csc": to_torch_csr_tensor(ei, size=(S, T)).t()}


@pytest.mark.parametrize("kind", ["gat", "gatv2", "transformer"])
def test_every_adjacency_and_pyg_signature(kind):
    from torch_geometric import EdgeIndex
    from gatlib.graph import to_csr
    pyg_layer, ours = _pyg_pair(kind)
    x = torch.randn(4, 8)
    want = pyg_layer(x, SMALL_EI)
    # forward(x, edge_index, edge_attr, size, return_attention_weights) positionally, as PyG.
    torch.testing.assert_close(ours(x, SMALL_EI, None, (4, 4)), want, rtol=1e-5, atol=1e-6)
    forms = dict(_sparse_forms(SMALL_EI, 4, 4), graph=to_csr(SMALL_EI, 4),
                 edge_index_obj=EdgeIndex(SMALL_EI, sparse_size=(4, 4)).sort_by("col")[0])
    for name, adj in forms.items():
        torch.testing.assert_close(ours(x, adj), want, rtol=1e-5, atol=1e-6, msg=name)
    # Attention weights in the input's form.
    for name in ("coo", "csr", "csc"):
        adj = forms[name]
        out, (w_adj, alpha) = ours(x, adj, return_attention_weights=True)
        n_loops = 0 if kind == "transformer" else 4 - 1      # (0, 0) was there already
        assert w_adj.layout == adj.layout and w_adj.shape == (4, 4, 2)
        assert w_adj._nnz() == SMALL_EI.size(1) + n_loops == alpha.size(0)
        dense = w_adj.to_dense()                             # [T, S, H]
        torch.testing.assert_close(dense.sum(1)[:2], torch.ones(2, 2))  # rows sum to 1
        if name in ("coo", "csr") and kind != "transformer":  # PyG returns its weights too
            _, (p_adj, _) = pyg_layer(x, adj, return_attention_weights=True)
            torch.testing.assert_close(dense, p_adj.to_dense(), rtol=1e-5, atol=1e-6)
    out, (ret, alpha) = ours(x, forms["edge_index_obj"], return_attention_weights=True)
    assert isinstance(ret, EdgeIndex) and ret.size(1) == alpha.size(0)


def test_sparse_values_serve_as_edge_features():
    """As PyG: with no edge_attr, a sparse adjacency's [E, F] values are the edge features."""
    pyg_layer, ours = _pyg_pair("transformer", edge_dim=3)
    x, ea = torch.randn(4, 8), torch.randn(SMALL_EI.size(1), 3)
    want = pyg_layer(x, SMALL_EI, ea)
    adj = torch.sparse_coo_tensor(SMALL_EI.flip(0), ea, (4, 4, 3))   # [T, S, F], stored order
    torch.testing.assert_close(ours(x, adj), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours(x, adj, ea), want, rtol=1e-5, atol=1e-6)


def test_bipartite_size_and_missing_target_features():
    pyg_layer, ours = _pyg_pair("gat", in_ch=(8, 6))
    x_src, x_dst = torch.randn(4, 8), torch.randn(2, 6)
    ei = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    want = pyg_layer((x_src, x_dst), ei)
    torch.testing.assert_close(ours((x_src, x_dst), ei, size=(4, 2)), want, rtol=1e-5,
                               atol=1e-6)
    # x_dst = None: no target half of the score, no residual (PyG's maths).
    want = pyg_layer((x_src, None), ei, size=(4, 2))
    torch.testing.assert_close(ours((x_src, None), ei, size=(4, 2)), want, rtol=1e-5, atol=1e-6)
    adj = _sparse_forms(ei, 4, 2)["csr"]                     # the adjacency knows T = 2
    torch.testing.assert_close(ours((x_src, None), adj), want, rtol=1e-5, atol=1e-6)
    for kind in ("gatv2", "transformer"):
        layer = PAIRS[kind][1]((8, 6), 16)
        with pytest.raises(ValueError, match="x_dst"):
            layer((x_src, None), ei, size=(4, 2))


@pytest.mark.parametrize("kind", ["gat", "gatv2", "transformer"])
def test_neighbor_loader_mini_batch_with_size(kind):
    """x holds S sampled nodes whose first T are the targets; size=(S, T) says so."""
    pyg_layer, ours = _pyg_pair(kind)
    S, T = 9, 3
    x = torch.randn(S, 8)
    ei = random_graph(S, 30, seed=1, num_dst=T)
    want = pyg_layer((x, x[:T]), ei)
    got = ours(x, ei, size=(S, T))
    assert got.shape == (T, 32)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours((x, x[:T]), ei, size=(S, T)), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="size"):
        ours(x, ei, size=(S + 1, T))
    with pytest.raises(ValueError, match="size"):
        ours(x, ei, size=(S, S + 1))


@pytest.mark.parametrize("kind", ["gat", "gatv2", "transformer"])
def test_lazy_in_channels(kind):
    pyg_cls, cls = PAIRS[kind]
    x, x_dst = torch.randn(5, 7), torch.randn(3, 4)
    ei = random_graph(5, 12, seed=2, num_dst=3)
    layer = cls(-1, 6, heads=2)
    assert repr(layer) == f"{cls.__name__}(-1, 6, heads=2)"
    layer.reset_parameters()                                 # before the width is known
    out = layer(x, random_graph(5, 12, seed=2))
    assert out.shape == (5, 12)
    before = [p.detach().clone() for p in layer.parameters()]
    layer.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, layer.parameters()))
    pair = cls((-1, -1), 6, heads=2)
    assert pair((x, x_dst), ei).shape == (3, 12)
    # A lazily built PyG layer, once run, copies over.
    torch.manual_seed(3)
    pyg_layer = pyg_cls(-1, 6, heads=2)
    want = pyg_layer(x, ei[:, ei[1] < 3])
    got = cls.from_pyg(pyg_layer)(x, ei[:, ei[1] < 3])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [GATConv, GATv2Conv, GraphTransformerConv])
@pytest.mark.parametrize("concat", [True, False])
def test_empty_graph(cls, concat):
    layer = cls(8, 4, heads=2, concat=concat)
    x = torch.randn(0, 8, requires_grad=True)
    out = layer(x, torch.empty(2, 0, dtype=torch.long))
    assert out.shape == (0, 8 if concat else 4)
    out.sum().backward()
    assert x.grad.shape == (0, 8)
    # Nodes without edges (but nodes): a finite output for each.
    out = layer(torch.randn(3, 8), torch.empty(2, 0, dtype=torch.long))
    assert out.shape == (3, 8 if concat else 4) and torch.isfinite(out).all()


def test_sparse_tensor_input():
    torch_sparse = pytest.importorskip("torch_sparse")
    pyg_layer, ours = _pyg_pair("gat")
    x = torch.randn(4, 8)
    adj = torch_sparse.SparseTensor.from_edge_index(SMALL_EI, sparse_sizes=(4, 4)).t()
    torch.testing.assert_close(ours(x, adj), pyg_layer(x, SMALL_EI), rtol=1e-5, atol=1e-6)
    out, w = ours(x, adj, return_attention_weights=True)
    assert isinstance(w, torch_sparse.SparseTensor) and w.sizes() == [4, 4, 2]


# ------------------------------------------------------------------ explicit structure

@pytest.mark.parametrize("route", ["plain", "numpy", "data", "from_numpy"])
def test_in_place_edit_of_edge_index_through_gatconv(route):
    import numpy as np
    torch.manual_seed(0)
    layer = GATConv(6, 4, heads=2).eval()
    x = torch.randn(8, 6)
    base = np.array([[0, 1, 2, 3, 4, 6], [1, 2, 3, 4, 5, 1]])
    ei = torch.from_numpy(base.copy()) if route == "from_numpy" else torch.tensor(base)
    before = layer(x, ei)
    edit_in_place(route, ei)
    after = layer(x, ei)
    assert torch.equal(after, layer(x, ei.clone()))
    assert not torch.allclose(after, before)


def test_out_of_range_held_graph_never_reaches_the_layer():
    from gatlib.graph import GraphCSR, to_csr
    g = to_csr(torch.tensor([[0, 1, 2], [1, 2, 0]]), 3)
    fields = [getattr(g, n).clone() for n in ("rowptr", "col", "row", "perm", "rowptr_t",
                                              "col_t", "perm_t")]
    fields[1][0] = 10**6
    with pytest.raises(ValueError, match="col"):
        GraphCSR(*fields)


# ------------------------------------------------------------------ compile and autocast

class _TwoLayerGAT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = GATConv(6, 4, heads=2)
        self.conv2 = GATConv(8, 3, heads=1, concat=False)

    def forward(self, x, edge_index):
        return self.conv2(torch.relu(self.conv1(x, edge_index)), edge_index)


@pytest.mark.parametrize("model", ["gat2", "transformer", "gatv2"])
@pytest.mark.parametrize("structure", ["edge_index", "graph"])
def test_compile_fullgraph_dynamic_without_recompiles(model, structure):
    """fullgraph: the validation traces (no graph break); dynamic: mini-batches of other sizes
    reuse the graph (at most one recompile)."""
    from torch._dynamo.testing import CompileCounterWithBackend
    from gatlib.graph import to_csr
    torch.manual_seed(0)
    module = {"gat2": _TwoLayerGAT, "transformer": lambda: GraphTransformerConv(6, 4, heads=2),
              "gatv2": lambda: GATv2Conv(6, 4, heads=2)}[model]()
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(module, backend=counter, fullgraph=True, dynamic=True)
    frames = []
    for i, (n, e) in enumerate([(20, 60), (31, 90), (45, 200)]):
        x = torch.randn(n, 6, requires_grad=True)
        ei = random_graph(n, e, seed=i)
        graph = ei if structure == "edge_index" else to_csr(ei, n)
        got, want = compiled(x, graph), module(x, graph)
        torch.testing.assert_close(got, want)
        g1 = torch.autograd.grad(got.sum(), x)[0]
        g2 = torch.autograd.grad(want.sum(), x)[0]
        torch.testing.assert_close(g1, g2)
        frames.append(counter.frame_count)
    assert frames[2] - frames[0] <= 1, frames


def test_compiled_layer_still_rejects_bad_indices():
    layer = GATConv(6, 4)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x = torch.randn(5, 6)
    compiled(x, torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(RuntimeError, match="out of range"):
        compiled(x, torch.tensor([[0, 7], [1, 2]]))


@pytest.mark.parametrize("edge_dim", [None, 3])
def test_autocast_gives_one_dtype_for_all_three_layers(edge_dim):
    x, ei, _, _ = _data(False, None)
    ea = torch.randn(ei.size(1), 3) if edge_dim else None
    dtypes = set()
    for cls, kw in ((GATConv, {}), (GATv2Conv, {}), (GraphTransformerConv, {}),
                    (GraphTransformerConv, {"beta": True}), (GATConv, {"residual": True})):
        layer = cls(6, 4, heads=2, edge_dim=edge_dim, **kw)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x, ei, ea)
        dtypes.add(out.dtype)
        assert torch.isfinite(out).all()
        assert layer(x, ei, ea).dtype == torch.float32      # outside autocast
    assert dtypes == {torch.bfloat16}


# ------------------------------------------------------------------ bad input, named

@pytest.mark.parametrize("cls", [GATConv, GATv2Conv, GraphTransformerConv])
def test_bad_input_names_the_argument(cls):
    layer = cls(6, 4, heads=2)
    x, ei, _, _ = _data(False, None)
    with pytest.raises(ValueError, match=r"x has 5 features per node but the layer expects 6"):
        layer(x[:, :5], ei)
    with pytest.raises(TypeError, match=r"x has dtype torch.float64"):
        layer(x.double(), ei)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        layer(x.long(), ei)
    bip = cls((6, 5), 4)
    with pytest.raises(ValueError, match=r"x_dst has 6 features per node .* expects 5"):
        bip((x, x), ei)
    for kwargs, name in (({"heads": 0}, "heads"), ({"out_channels": 0}, "out_channels"),
                         ({"in_channels": 0}, "in_channels"), ({"edge_dim": 0}, "edge_dim"),
                         ({"dropout": 1.0}, "dropout")):
        args = dict(dict(in_channels=6, out_channels=4), **kwargs)
        with pytest.raises(ValueError, match=name):
            cls(**args)
    if cls is not GraphTransformerConv:
        with pytest.raises(ValueError, match="negative_slope must be a number, got nan"):
            cls(6, 4, negative_slope=float("nan"))
    with pytest.raises(TypeError, match="edge_index must be"):
        layer(x, ei.tolist())
    with pytest.raises(ValueError, match="edge_index"):
        layer(x, ei + 100)


@pytest.mark.parametrize("order", [None, "row", "col"])
def test_compile_fullgraph_with_pyg_edge_index(order):
    """PyG's EdgeIndex traces too (its caches are left alone inside the compiled region)."""
    from torch_geometric import EdgeIndex
    torch.manual_seed(0)
    layer = GATConv(6, 4, heads=2)
    x, ei = torch.randn(10, 6), random_graph(10, 30, seed=5)
    e = EdgeIndex(ei, sparse_size=(10, 10))
    if order is not None:
        e = e.sort_by(order)[0]
    torch._dynamo.reset()
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, e), layer(x, ei))


@pytest.mark.parametrize("bipartite", [False, True])
def test_transformer_edge_features_with_dropout_equal_the_explicit_formula(bipartite,
                                                                            monkeypatch):
    """With edge features the layer builds no [E, H, C] tensor; in training, one keep mask
    drops the weights of both sums (values and edge features), as
    ``out_i = sum_j w_ij (W_v x_j + W_e e_ij)`` with ``w = dropout(alpha)``."""
    import gatlib.nn.transformer as tr
    x, ei, ea, in_ch = _data(bipartite, 3, seed=2)
    x = tuple(t.double() for t in x) if bipartite else x.double()
    ea = ea.double()
    layer = GraphTransformerConv(in_ch, 4, heads=2, dropout=0.4, edge_dim=3,
                                 root_weight=False).double().train()
    E, H, C = ei.size(1), 2, 4
    mask = torch.rand(E, H, generator=torch.Generator().manual_seed(1)) >= 0.4
    monkeypatch.setattr(tr, "keep_mask", lambda shape, p, device: mask)
    out = layer(x, ei, ea)
    x_src, x_dst = x if bipartite else (x, x)
    q = layer.lin_query(x_dst).view(-1, H, C)
    k = layer.lin_key(x_src).view(-1, H, C)
    v = layer.lin_value(x_src).view(-1, H, C)
    e = layer.lin_edge(ea).view(-1, H, C)                                  # [E, H, C]
    src, dst = ei
    score = (q[dst] * (k[src] + e)).sum(-1) / C ** 0.5                     # [E, H]
    from gatlib.ops import reference
    alpha = reference.segment_softmax_ref(score, dst, q.size(0))
    w = alpha * mask / 0.6
    want = torch.zeros(q.size(0), H, C, dtype=q.dtype).index_add_(
        0, dst, (v[src] + e) * w.unsqueeze(-1)).view(-1, H * C)
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-10)
    leaves = _inputs(x) + [ea] + list(layer.parameters())
    for a, b in zip(torch.autograd.grad(out.sum(), leaves, allow_unused=True),
                    torch.autograd.grad(want.sum(), leaves, allow_unused=True)):
        if b is None:
            assert a is None or torch.count_nonzero(a) == 0
        else:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["gatv2", "transformer"])
@pytest.mark.parametrize("num_nodes", [0, 5])
def test_edge_features_on_an_edgeless_graph_match_pyg(kind, num_nodes):
    """The attend / edge-feature paths with E = 0 (N = 0 too): PyG's output and gradients."""
    pyg_cls, cls = PAIRS[kind]
    torch.manual_seed(3)
    kw = {"add_self_loops": False} if kind == "gatv2" else {}
    pyg_layer = pyg_cls(6, 4, heads=2, edge_dim=3, **kw)
    ours = cls.from_pyg(pyg_layer)
    x = torch.randn(num_nodes, 6, requires_grad=True)
    ei = torch.empty(2, 0, dtype=torch.long)
    ea = torch.randn(0, 3, requires_grad=True)
    got, want = ours(x, ei, ea), pyg_layer(x, ei, ea)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    if num_nodes:
        for a, b in zip(torch.autograd.grad(got.sum(), [x]), torch.autograd.grad(want.sum(), [x])):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ PyG's propagate path

def _hooked(layer, hook=lambda module, inputs, out: None):
    """The layer with a (no-op) message hook: PyG's propagate path."""
    return layer.register_message_forward_hook(hook)


@pytest.mark.parametrize("kind", ["gat", "gatv2", "transformer"])
@pytest.mark.parametrize("edge_dim", [None, 3])
@pytest.mark.parametrize("bipartite", [False, True])
@pytest.mark.parametrize("num_edges", [0, 70])
def test_propagate_path_equals_the_fused_path(kind, edge_dim, bipartite, num_edges):
    """Under a message hook (what PyG's explainers register) a layer runs PyG's propagate; it
    computes the fused path's function: outputs, weights and gradients, float64, on a random
    multigraph (isolated nodes, self-loops, duplicate edges, a hub) and on an empty graph."""
    torch.manual_seed(3)
    S, T = (13, 9) if bipartite else (20, 20)
    ei = random_graph(S, num_edges, seed=1, num_dst=T)
    xs = torch.randn(S, 6, dtype=torch.float64)
    x = (xs, torch.randn(T, 5, dtype=torch.float64)) if bipartite else xs
    ea = None if edge_dim is None else torch.randn(ei.size(1), edge_dim, dtype=torch.float64)
    layer = PAIRS[kind][1]((6, 5) if bipartite else 6, 4, heads=2, edge_dim=edge_dim).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    results = []
    for hooked in (False, True):
        handle = _hooked(layer) if hooked else None
        leaves = [t.clone().requires_grad_() for t in _inputs(x)]
        xin = tuple(leaves) if bipartite else leaves[0]
        out, (ei_used, alpha) = layer(xin, ei, ea, return_attention_weights=True)
        w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        grads = torch.autograd.grad((out * w).sum() + alpha.sum(), leaves + list(
            layer.parameters()), allow_unused=True)
        results.append((out, ei_used, alpha, grads))
        if handle is not None:
            handle.remove()
    (out_f, ei_f, a_f, g_f), (out_p, ei_p, a_p, g_p) = results
    torch.testing.assert_close(out_p, out_f)
    assert torch.equal(ei_p, ei_f)
    torch.testing.assert_close(a_p, a_f)
    for a, b in zip(g_p, g_f):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cls", [GATConv, GATv2Conv, GraphTransformerConv])
def test_fused_path_outside_explain_mode(cls, monkeypatch):
    """Only PyG's tooling (explain mode, hooks) sends a layer through ``propagate``; every other
    call, training included, runs on the fused operators."""
    layer = cls(6, 4, heads=2)
    x, ei, _, _ = _data(False, None)
    calls = []
    monkeypatch.setattr(layer, "propagate", lambda *a, **k: calls.append(1) or 1 / 0)
    layer(x, ei).sum().backward()
    layer.eval()
    layer(x, ei, return_attention_weights=True)
    assert calls == []
    assert not layer._inspected()
    handle = _hooked(layer)
    assert layer._inspected()
    with pytest.raises(ZeroDivisionError):
        layer(x, ei)
    handle.remove()
    assert not layer._inspected()


def test_bipartite_gat_given_one_x_maps_targets_by_lin_dst():
    """A GATConv built bipartite (``(F_s, F_t)``, ``lin_src``/``lin_dst``) and given one ``x``
    (PyG's HeteroConv does so for edges within one node type) scores the targets from
    ``lin_dst(x)``, as PyG's layer."""
    torch.manual_seed(4)
    ref = pyg_nn.GATConv((6, 6), 4, heads=2)
    layer = GATConv.from_pyg(ref)
    x, ei, _, _ = _data(False, None)
    torch.testing.assert_close(layer(x, ei), ref(x, ei), rtol=1e-5, atol=1e-5)
    sub = ei[:, ei[1] < 12]
    torch.testing.assert_close(layer(x, sub, size=(20, 12)), ref((x, x[:12]), sub),
                               rtol=1e-5, atol=1e-5)
