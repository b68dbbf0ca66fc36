"""GPSLayer: shapes, local branches, equivariance under reordering graphs, batch vs per-graph."""
import pytest
import torch
from torch import nn

from gatlib.graph import path_graph
from gatlib.nn.dense import DenseGraphAttention
from gatlib.nn.gps import GPSLayer

SIZES = [3, 7, 1, 12]
C, H = 16, 4


class MeanConv(nn.Module):
    """Minimal message passing: x_i W_r + mean_{j -> i} x_j W_n (+ mean of the edge features)."""

    def __init__(self, channels: int, edge_dim: int = 0) -> None:
        super().__init__()
        self.lin_root = nn.Linear(channels, channels)
        self.lin_nbr = nn.Linear(channels, channels, bias=False)
        self.lin_edge = nn.Linear(edge_dim, channels, bias=False) if edge_dim else None
        self.calls = 0

    def reset_parameters(self) -> None:
        self.lin_root.reset_parameters()
        self.lin_nbr.reset_parameters()
        self.calls = 0

    def forward(self, x, edge_index, edge_attr=None):
        self.calls += 1
        src, dst = edge_index
        msg = x[src]                                                         # [E, F]
        if edge_attr is not None:
            msg = msg + self.lin_edge(edge_attr)
        agg = x.new_zeros(x.shape).index_add(0, dst, msg)                   # [N, F]
        deg = x.new_zeros(x.size(0)).index_add(0, dst, x.new_ones(dst.numel()))
        return self.lin_root(x) + self.lin_nbr(agg / deg.clamp(min=1).unsqueeze(-1))

    def __repr__(self) -> str:
        return f"MeanConv({self.lin_root.in_features})"


class TwoArgConv(nn.Module):
    """A local module that takes exactly (x, edge_index)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.inner = MeanConv(channels)

    def forward(self, x, edge_index):
        return self.inner(x, edge_index)


def _graphs(sizes=SIZES, seed=1):
    """A batch of path graphs (disjoint union): x [N, C], edge_index [2, E], batch [N]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(sizes), C, generator=g)
    parts, offset = [], 0
    for n in sizes:
        parts.append(path_graph(n) + offset)
        offset += n
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return x, torch.cat(parts, dim=1), batch


def _layer(local="mean", seed=0, **kwargs):
    torch.manual_seed(seed)
    module = MeanConv(C) if local == "mean" else local
    return GPSLayer(C, module, heads=H, **kwargs)


@pytest.mark.parametrize("norm", ["batch", "layer", None])
def test_shape_and_local_branch(norm):
    x, ei, batch = _graphs()
    layer = _layer(norm=norm)
    out = layer(x, ei, batch)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert layer.local.calls == 1
    # The local branch matters: without it the output differs.
    no_local = _layer(local=None, norm=norm)
    no_local.load_state_dict({k: v for k, v in layer.state_dict().items()
                              if not k.startswith("local.")})
    assert not torch.allclose(no_local(x, ei, batch), out)


def test_local_none_matches_formula():
    x, ei, batch = _graphs()
    layer = _layer(local=None, norm="layer").eval()
    h = layer.norm_attn(x + layer.attn(x, batch))
    ref = layer.norm_ff(h + layer.ff(h))
    torch.testing.assert_close(layer(x, ei, batch), ref, rtol=1e-6, atol=1e-6)


def test_local_branch_matches_formula_and_edge_attr_passing():
    x, ei, batch = _graphs()
    torch.manual_seed(0)
    layer = GPSLayer(C, MeanConv(C, edge_dim=3), heads=H, norm="layer").eval()
    edge_attr = torch.randn(ei.size(1), 3)
    h_local = layer.norm_local(x + layer.local(x, ei, edge_attr))
    h_global = layer.norm_attn(x + layer.attn(x, batch))
    h = h_local + h_global
    ref = layer.norm_ff(h + layer.ff(h))
    torch.testing.assert_close(layer(x, ei, batch, edge_attr=edge_attr), ref,
                               rtol=1e-6, atol=1e-6)
    # A two-argument local module works when no edge_attr is given.
    two = GPSLayer(C, TwoArgConv(C), heads=H)
    assert two(x, ei, batch).shape == x.shape
    with pytest.raises(TypeError):
        two(x, ei, batch, edge_attr=edge_attr)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_permuting_graphs_permutes_output(norm):
    x, ei, batch = _graphs()
    layer = _layer(norm=norm)                          # training mode: batch statistics too
    out = layer(x, ei, batch)
    order = [2, 0, 3, 1]
    sizes = torch.tensor(SIZES)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    perm = torch.cat([torch.arange(ptr[g], ptr[g + 1]) for g in order])     # new -> old node
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())                                   # old -> new node
    new_sizes = [SIZES[g] for g in order]
    new_batch = torch.repeat_interleave(torch.arange(len(order)), torch.tensor(new_sizes))
    out_p = layer(x[perm], inv[ei], new_batch)
    torch.testing.assert_close(out_p, out[perm], rtol=1e-5, atol=1e-5)


def test_batch_equals_each_graph_alone_in_eval_with_layer_norm():
    x, ei, batch = _graphs()
    layer = _layer(norm="layer", dropout=0.3, attn_dropout=0.2).eval()
    together = layer(x, ei, batch)
    parts, offset = [], 0
    for g, n in enumerate(SIZES):
        mask = batch[ei[1]] == g
        parts.append(layer(x[offset:offset + n], ei[:, mask] - offset))
        offset += n
    torch.testing.assert_close(together, torch.cat(parts), rtol=1e-5, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"channels \(10\).*heads \(4\)"):
        GPSLayer(10, None, heads=4)
    with pytest.raises(ValueError, match="norm"):
        GPSLayer(8, None, norm="group")
    with pytest.raises(ValueError, match="act"):
        GPSLayer(8, None, act="swishy")
    with pytest.raises(ValueError, match="dropout"):
        GPSLayer(8, None, dropout=-0.1)
    with pytest.raises(TypeError, match="local"):
        GPSLayer(8, lambda x, ei: x)
    layer = GPSLayer(8, None, heads=2)
    with pytest.raises(ValueError, match="x"):
        layer(torch.randn(4, 5), torch.zeros(2, 0, dtype=torch.long))


def test_reset_parameters_and_repr():
    layer = _layer()
    # PyG's GPSConv form.
    assert repr(layer) == "GPSLayer(16, conv=MeanConv(16), heads=4, attn_type=multihead)"
    assert repr(GPSLayer(8, None)) == "GPSLayer(8, conv=None, heads=1, attn_type=multihead)"
    assert isinstance(layer.attn, DenseGraphAttention)
    x, ei, batch = _graphs()
    # gatlib's 'batch' (BatchNorm1d) and PyG's default 'batch_norm' (BatchNorm wrapping one).
    for layer, unwrap in ((_layer(norm="batch"), lambda n: n), (layer, lambda n: n.module)):
        layer(x, ei, batch)                            # updates BatchNorm running stats
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(1.0)
        layer.reset_parameters()
        for norm in (layer.norm_local, layer.norm_attn, layer.norm_ff):
            norm = unwrap(norm)
            assert torch.equal(norm.weight, torch.ones(C))
            assert torch.equal(norm.bias, torch.zeros(C))
            assert torch.equal(norm.running_mean, torch.zeros(C))
            assert int(norm.num_batches_tracked) == 0
        assert layer.local.calls == 0                  # the local module was reset
        assert torch.equal(layer.attn.lin_q.bias, torch.zeros(C))


@pytest.mark.parametrize("local", ["mean", None])
def test_torch_compile_matches_eager(local):
    x, ei, batch = _graphs()
    layer = _layer(local=local, norm="layer")
    x = x.requires_grad_()
    eager = layer(x, ei, batch)
    compiled = torch.compile(layer, backend="aot_eager")(x, ei, batch)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(eager)
    (ge,) = torch.autograd.grad((eager * g).sum(), x)
    (gc,) = torch.autograd.grad((compiled * g).sum(), x)
    torch.testing.assert_close(gc, ge, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "layer", None])
def test_autocast_bf16(norm):
    x, ei, batch = _graphs()
    layer = _layer(norm=norm).eval()
    ref = layer(x, ei, batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x, ei, batch)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2 * ref.abs().max().item())


# ------------------------------------------------------------------ PyG's GPSConv interface

def _pyg_gps(norm, attn_type="multihead", conv="sage", seed=0, **kwargs):
    from torch_geometric.nn import GINEConv, GPSConv, SAGEConv
    torch.manual_seed(seed)
    local = (SAGEConv(C, C) if conv == "sage" else
             GINEConv(nn.Sequential(nn.Linear(C, C), nn.ReLU(), nn.Linear(C, C)), edge_dim=3)
             if conv == "gine" else None)
    return GPSConv(C, local, heads=H, norm=norm, attn_type=attn_type, **kwargs)


def _perturb(module):
    """Non-trivial norm affines and running statistics, so copying them is tested."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
        for name, b in module.named_buffers():
            if "running_var" in name:
                b.uniform_(0.5, 2.0)
            elif "running_mean" in name:
                b.normal_()


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm", "graph_norm", "instance_norm",
                                  None])
@pytest.mark.parametrize("training", [False, True])
def test_from_pyg_matches_gpsconv(norm, training):
    x, ei, batch = _graphs()
    theirs = _pyg_gps(norm)
    _perturb(theirs)
    theirs.train(training)
    ours = GPSLayer.from_pyg(theirs)
    assert ours.training == training and ours.norm == norm
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, out_b = ours(xa, ei, batch), theirs(xb, ei, batch)
    torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-5)
    w = torch.randn_like(out_a)
    (out_a * w).sum().backward()
    (out_b * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-4)
    # batch=None: one graph.
    torch.testing.assert_close(ours(x, ei), theirs(x, ei), rtol=1e-5, atol=1e-5)


def test_from_pyg_with_edge_attr_kwargs_and_no_local():
    x, ei, batch = _graphs()
    edge_attr = torch.randn(ei.size(1), 3)
    theirs = _pyg_gps("batch_norm", conv="gine").eval()
    ours = GPSLayer.from_pyg(theirs)
    torch.testing.assert_close(ours(x, ei, batch, edge_attr=edge_attr),
                               theirs(x, ei, batch, edge_attr=edge_attr), rtol=1e-5, atol=1e-5)
    # The old positional edge_attr (fourth place, as gatlib's models call it) still works.
    torch.testing.assert_close(ours(x, ei, batch, edge_attr),
                               theirs(x, ei, batch, edge_attr=edge_attr), rtol=1e-5, atol=1e-5)
    no_local = _pyg_gps("layer_norm", conv=None).eval()
    torch.testing.assert_close(GPSLayer.from_pyg(no_local)(x, ei, batch),
                               no_local(x, ei, batch), rtol=1e-5, atol=1e-5)


def test_kwargs_reach_the_conv():
    from torch_geometric.nn import GCNConv
    x, ei, batch = _graphs()
    torch.manual_seed(0)
    layer = GPSLayer(C, GCNConv(C, C), heads=H, norm="layer_norm").eval()
    w = torch.rand(ei.size(1))
    out_w = layer(x, ei, batch, edge_weight=w)
    assert not torch.allclose(out_w, layer(x, ei, batch))
    h_local = layer.norm_local(x + layer.conv(x, ei, edge_weight=w), batch=batch)
    h = h_local + layer.norm_attn(x + layer.attn(x, batch), batch=batch)
    torch.testing.assert_close(out_w, layer.norm_ff(h + layer.ff(h), batch=batch),
                               rtol=1e-6, atol=1e-6)


def test_pyg_norm_names_resolve_as_pyg():
    from torch_geometric.nn.norm import BatchNorm, GraphNorm, InstanceNorm, LayerNorm
    for name, cls in (("batch_norm", BatchNorm), ("layer_norm", LayerNorm),
                      ("graph_norm", GraphNorm), ("instance_norm", InstanceNorm)):
        layer = GPSLayer(C, None, heads=H, norm=name)
        assert all(type(n) is cls for n in (layer.norm_local, layer.norm_attn, layer.norm_ff))
    assert GPSLayer(C, None, norm="layer_norm").norm_ff.mode == "graph"    # graph-wise
    assert GPSLayer(C, None, norm="layer_norm").norm_with_batch
    assert not GPSLayer(C, None, norm="batch_norm").norm_with_batch
    # gatlib's old names keep their meaning.
    assert type(GPSLayer(C, None, norm="batch").norm_ff) is nn.BatchNorm1d
    assert type(GPSLayer(C, None, norm="layer").norm_ff) is nn.LayerNorm
    assert type(GPSLayer(C, None, norm=None).norm_ff) is nn.Identity
    # norm_kwargs and act_kwargs reach the modules.
    layer = GPSLayer(C, None, norm="batch_norm", norm_kwargs={"eps": 1e-3},
                     act="leaky_relu", act_kwargs={"negative_slope": 0.3})
    assert layer.norm_ff.module.eps == 1e-3
    assert isinstance(layer.ff[1], nn.LeakyReLU) and layer.ff[1].negative_slope == 0.3
    # 'layer_norm' normalises each graph over its nodes and features.
    x, ei, batch = _graphs()
    layer = GPSLayer(C, None, heads=H, norm="layer_norm").eval()
    with torch.no_grad():
        out = layer(x, ei, batch)
    for g in range(len(SIZES)):
        part = out[batch == g]
        assert abs(float(part.mean())) < 1e-5 and abs(float(part.std(unbiased=False)) - 1) < 1e-3


def test_conv_and_local_keywords():
    x, ei, batch = _graphs()
    torch.manual_seed(0)
    a = GPSLayer(C, conv=MeanConv(C), heads=H, norm="layer")
    torch.manual_seed(0)
    b = GPSLayer(C, local=MeanConv(C), heads=H, norm="layer")
    assert a.conv is a.local
    torch.testing.assert_close(a(x, ei, batch), b(x, ei, batch))
    with pytest.raises(TypeError, match="not both"):
        GPSLayer(C, MeanConv(C), local=MeanConv(C))
    with pytest.raises(TypeError, match="local branch"):
        GPSLayer(C)
    with pytest.raises(ValueError, match="attn_type"):
        GPSLayer(C, None, attn_type="bigbird")
    with pytest.raises(ValueError, match="attn_kwargs"):
        GPSLayer(C, None, attn_kwargs={"add_zero_attn": True})
    with pytest.raises(ValueError, match="disagree"):
        GPSLayer(C, None, attn_dropout=0.1, attn_kwargs={"dropout": 0.2})
    with pytest.raises(ValueError, match="attn_dropout"):
        GPSLayer(C, None, attn_type="performer", attn_dropout=0.1)
    assert GPSLayer(C, None, attn_kwargs={"dropout": 0.2}).attn.dropout == 0.2
    assert GPSLayer(C, None, attn_dropout=0.2).attn.dropout == 0.2
    assert GPSLayer(C, None, attn_kwargs={"bias": False}).attn.lin_q.bias is None
    with pytest.raises(TypeError, match="GPSConv"):
        GPSLayer.from_pyg(MeanConv(C))


# ------------------------------------------------------------------------- Performer branch

def test_performer_from_pyg_matches_gpsconv():
    from torch_geometric.nn.attention import PerformerAttention as PyGPerformer
    sizes = [5, 5, 5]                                    # equal sizes: PyG pads nothing
    x, ei, batch = _graphs(sizes)
    theirs = _pyg_gps("batch_norm", attn_type="performer",
                      attn_kwargs={"head_channels": 8}).eval()
    assert isinstance(theirs.attn, PyGPerformer)
    ours = GPSLayer.from_pyg(theirs)
    assert ours.attn_type == "performer" and ours.attn.kernel_name == "relu"
    torch.testing.assert_close(ours(x, ei, batch), theirs(x, ei, batch), rtol=1e-5, atol=1e-5)


def test_performer_layer_batch_equals_each_graph_alone():
    x, ei, batch = _graphs()
    torch.manual_seed(0)
    layer = GPSLayer(C, MeanConv(C), heads=H, norm="layer", attn_type="performer",
                     attn_kwargs={"head_channels": 4, "num_features": 32}).eval()
    assert repr(layer).endswith("attn_type=performer)")
    together = layer(x, ei, batch)
    assert together.shape == x.shape and torch.isfinite(together).all()
    parts, offset = [], 0
    for g, n in enumerate(SIZES):
        mask = batch[ei[1]] == g
        parts.append(layer(x[offset:offset + n], ei[:, mask] - offset))
        offset += n
    torch.testing.assert_close(together, torch.cat(parts), rtol=1e-5, atol=1e-5)
    # Training with redraws: gradients flow to every parameter.
    layer.train()
    layer.attn.redraw_interval = 1
    layer(x, ei, batch).square().sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


# ------------------------------------------------------------------ global attention bias

@pytest.mark.parametrize("local", ["mean", None])
def test_global_attention_bias_and_weights_reach_the_attention(local):
    """``attn_bias`` reaches the global attention and ``return_attention_weights`` returns its
    weights: the layer equals its formula with ``DenseGraphAttention`` given the same bias, and
    the weights are that module's."""
    x, ei, batch = _graphs()
    L = max(SIZES)
    bias = torch.randn(len(SIZES), H, L, L)
    bias[0, :, 0, 1] = float("-inf")
    layer = _layer(local if local is None else "mean", norm=None).eval()
    out, weights = layer(x, ei, batch, attn_bias=bias, return_attention_weights=True)
    h_attn, want_w = layer.attn(x, batch, attn_bias=bias, return_attention_weights=True)
    h = x + h_attn
    if layer.local is not None:
        h = h + x + layer.local(x, ei)
    torch.testing.assert_close(out, h + layer.ff(h))
    torch.testing.assert_close(weights, want_w)
    torch.testing.assert_close(layer(x, ei, batch, attn_bias=bias), out)
    assert not torch.allclose(layer(x, ei, batch), out)            # the bias counts


def test_global_attention_bias_needs_multihead():
    layer = GPSLayer(C, None, heads=H, attn_type="performer")
    x, ei, batch = _graphs()
    for kw in ({"attn_bias": torch.zeros(x.size(0), x.size(0))},
               {"return_attention_weights": True}):
        with pytest.raises(ValueError, match="attn_type='multihead'"):
            layer(x, ei, batch, **kw)
