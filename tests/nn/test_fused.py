"""The layers' fused pieces (gatlib.nn._fused): the GAT score halves as one product, and the
GATv2 score with its hand-written backward against the layer's chunked autograd path."""
import pytest
import torch

from gatlib.graph import to_csr
from gatlib.nn import GATv2Conv
from gatlib.nn import _fused
from gatlib.nn._fused import gatv2_score, head_dots

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


@pytest.mark.parametrize("slope", [0.2, 0.0, -0.3])
@pytest.mark.parametrize("edge_dim", [None, 3])
@pytest.mark.parametrize("bipartite", [False, True])
def test_gatv2_fused_score_equals_chunked_path(slope, edge_dim, bipartite):
    layer, ei, csr, h_src, h_dst, ea = _setup(slope, edge_dim, bipartite)
    fused = gatv2_score(layer, h_src, h_dst, ei, csr, ea)
    plain = layer._scores(h_src, h_dst, ei[0], ei[1], ea)
    torch.testing.assert_close(fused, plain)
    leaves = [t for t in (h_src, h_dst, layer.att, ea,
                          layer.lin_edge.weight if edge_dim else None) if t is not None]
    g = torch.randn_like(fused)
    for a, b in zip(torch.autograd.grad(fused, leaves, g), torch.autograd.grad(plain, leaves, g)):
        torch.testing.assert_close(a, b)


def test_gatv2_fused_score_gradcheck():
    layer, ei, csr, h_src, h_dst, ea = _setup(0.2, 3, False)

    def f(h_src, h_dst, ea):
        return gatv2_score(layer, h_src, h_dst, ei, csr, ea)
    assert torch.autograd.gradcheck(f, (h_src, h_dst, ea))


def test_gatv2_size_rule_falls_back_to_chunks(monkeypatch):
    layer, ei, csr, h_src, h_dst, ea = _setup(0.2, None, False)
    calls = []
    real = layer._scores
    monkeypatch.setattr(layer, "_scores", lambda *a: calls.append(1) or real(*a))
    gatv2_score(layer, h_src, h_dst, ei, csr, ea)
    assert calls == []                                             # small: fused
    monkeypatch.setattr(_fused, "GATV2_FUSED_MAX", ei.size(1) * 2 * 5 - 1)
    gatv2_score(layer, h_src, h_dst, ei, csr, ea)
    assert calls == [1]                                            # one element over: chunks
