"""The layers' fused pieces (gatlib.nn._fused): the GAT score halves as one product, and the
GATv2 score with its hand-written backward (native kernels, or torch's) against the layer's
chunked autograd path."""
import pytest
import torch

from gatlib import native
from gatlib.graph import to_csr
from gatlib.nn import GATv2Conv
from gatlib.nn import _fused
from gatlib.nn._fused import gatv2_score, head_dots
from gatlib.ops.cpu import gatv2 as cpu_gatv2

from ..conftest import random_graph


def test_head_dots_equal_broadcast_sums():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(11, 3, 5, generator=g, dtype=torch.float64)
    h2 = torch.randn(7, 3, 5, generator=g, dtype=torch.float64)
    a, b = (torch.randn(1, 3, 5, generator=g, dtype=torch.float64) for _ in range(2))
    x, y = head_dots(h, a, h, b)                                   # one product
    torch.testing.assert_close(x, (h * a).sum(-1))
    torch.testing.assert_close(y, (h * b).sum(-1))
    x, y = head_dots(h, a, h2, b)                                  # two products
    torch.testing.assert_close(x, (h * a).sum(-1))
    torch.testing.assert_close(y, (h2 * b).sum(-1))


def _setup(slope, edge_dim, bipartite, seed=0):
    torch.manual_seed(seed)
    S, T = (9, 6) if bipartite else (9, 9)
    layer = GATv2Conv((4, 3) if bipartite else 4, 5, heads=2, negative_slope=slope,
                      edge_dim=edge_dim).double()
    ei = random_graph(S, 30, seed=seed, num_dst=T)
    h_src = torch.randn(S, 2, 5, dtype=torch.float64, requires_grad=True)
    h_dst = torch.randn(T, 2, 5, dtype=torch.float64, requires_grad=True)
    ea = (torch.randn(ei.size(1), edge_dim, dtype=torch.float64, requires_grad=True)
          if edge_dim else None)
    return layer, ei, to_csr(ei, S, T), h_src, h_dst, ea


@pytest.fixture(params=["native", "torch"])
def score_path(request, monkeypatch):
    """GATv2's fused score by the native kernels, or by torch's (native switched off); the
    list records which class computed each score."""
    used = []
    if request.param == "native":
        if not native.available():
            pytest.skip(native.status())
    else:
        monkeypatch.setattr(_fused, "offered", lambda *a: None)
    for cls in (cpu_gatv2._NativeGATv2Score, _fused._GATv2Score):
        real = cls.apply
        monkeypatch.setattr(cls, "apply", lambda *a, real=real, cls=cls:
                            used.append(cls.__name__) or real(*a))
    return request.param, used


@pytest.mark.parametrize("slope", [0.2, 0.0, -0.3])
@pytest.mark.parametrize("edge_dim", [None, 3])
@pytest.mark.parametrize("bipartite", [False, True])
def test_gatv2_fused_score_equals_chunked_path(slope, edge_dim, bipartite, score_path):
    layer, ei, csr, h_src, h_dst, ea = _setup(slope, edge_dim, bipartite)
    fused = gatv2_score(layer, h_src, h_dst, ei, csr, ea)
    path, used = score_path
    assert used == ["_NativeGATv2Score" if path == "native" else "_GATv2Score"]
    plain = layer._scores(h_src, h_dst, ei[0], ei[1], ea)
    torch.testing.assert_close(fused, plain)
    leaves = [t for t in (h_src, h_dst, layer.att, ea,
                          layer.lin_edge.weight if edge_dim else None) if t is not None]
    g = torch.randn_like(fused)
    for a, b in zip(torch.autograd.grad(fused, leaves, g), torch.autograd.grad(plain, leaves, g)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("edge_dim", [None, 3])
def test_gatv2_fused_score_gradcheck(edge_dim, score_path):
    layer, ei, csr, h_src, h_dst, ea = _setup(-0.3 if edge_dim else 0.2, edge_dim, False)

    def f(h_src, h_dst, *ea):
        return gatv2_score(layer, h_src, h_dst, ei, csr, ea[0] if ea else None)
    assert torch.autograd.gradcheck(f, (h_src, h_dst) + ((ea,) if ea is not None else ()))
    assert score_path[1] and set(score_path[1]) == {
        "_NativeGATv2Score" if score_path[0] == "native" else "_GATv2Score"}


def test_gatv2_size_rule_falls_back_to_chunks(monkeypatch, score_path):
    """Above GATV2_FUSED_MAX the torch path (which keeps [E, H, C] activations) takes the
    layer's chunks; the native path keeps nothing [E, H, C] and takes any size, except with
    edge features (their projection is [E, H, C])."""
    path, _ = score_path
    for edge_dim in (None, 3):
        layer, ei, csr, h_src, h_dst, ea = _setup(0.2, edge_dim, False)
        calls = []
        real = layer._scores
        monkeypatch.setattr(layer, "_scores", lambda *a: calls.append(1) or real(*a))
        monkeypatch.setattr(_fused, "GATV2_FUSED_MAX", 10 ** 9)
        gatv2_score(layer, h_src, h_dst, ei, csr, ea)
        assert calls == []                                         # small: fused
        monkeypatch.setattr(_fused, "GATV2_FUSED_MAX", ei.size(1) * 2 * 5 - 1)
        gatv2_score(layer, h_src, h_dst, ei, csr, ea)
        # One element over: chunks, but for the native path without edge features.
        assert calls == ([] if path == "native" and edge_dim is None else [1])
