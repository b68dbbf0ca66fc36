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
    assert repr(layer) == "GPSLayer(16, local=MeanConv(16), heads=4)"
    assert repr(GPSLayer(8, None)) == "GPSLayer(8, local=None, heads=1)"
    assert (repr(GPSLayer(8, None, heads=2, norm="layer", act="gelu"))
            == "GPSLayer(8, local=None, heads=2, norm='layer', act='gelu')")
    assert isinstance(layer.attn, DenseGraphAttention)
    x, ei, batch = _graphs()
    layer(x, ei, batch)                                # updates BatchNorm running stats
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(1.0)
    layer.reset_parameters()
    for norm in (layer.norm_local, layer.norm_attn, layer.norm_ff):
        assert torch.equal(norm.weight, torch.ones(C)) and torch.equal(norm.bias, torch.zeros(C))
        assert torch.equal(norm.running_mean, torch.zeros(C))
        assert int(norm.num_batches_tracked) == 0
    assert layer.local.calls == 0                      # the local module was reset
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
