"""The registered custom ops: opcheck on each, and torch.compile through them."""
import pytest
import torch

from gatlib.graph import to_csr
from gatlib.ops import gat_attention, sparse_attention
from gatlib.ops.graph_args import graph_tensors

from ..conftest import random_graph


def _graph():
    return graph_tensors(to_csr(random_graph(12, 40, seed=2), 12))


def _r(*shape, grad=True):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("with_term", [True, False])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("return_attention", [True, False])
def test_opcheck_gat(with_term, dropout, return_attention):
    g = _graph()
    E = g[1].numel()
    mask = torch.rand(E, 2) >= dropout if dropout else None
    term = _r(E, 2) if with_term else None
    args = (_r(12, 2), _r(12, 2), _r(12, 2, 3), g, term, mask, 0.2, dropout, return_attention)
    torch.library.opcheck(torch.ops.gatlib.gat_attention.default, args)


@pytest.mark.parametrize("with_term", [True, False])
@pytest.mark.parametrize("return_attention", [True, False])
def test_opcheck_sparse(with_term, return_attention):
    g = _graph()
    E = g[1].numel()
    term = _r(E, 2) if with_term else None
    args = (_r(12, 2, 4), _r(12, 2, 4), _r(12, 2, 3), g, term, None, 0.5, 0.0,
            return_attention)
    torch.library.opcheck(torch.ops.gatlib.sparse_attention.default, args)


def test_opcheck_segment_softmax():
    args = (_r(30, 3), torch.randint(0, 6, (30,)), 7)
    torch.library.opcheck(torch.ops.gatlib.segment_softmax.default, args)


def test_opcheck_backward_ops():
    g = _graph()
    E = g[1].numel()
    a_src, a_dst, v = _r(12, 2, grad=False), _r(12, 2, grad=False), _r(12, 2, 3, grad=False)
    _, lse, _ = torch.ops.gatlib.gat_attention(a_src, a_dst, v, g, None, None, 0.2, 0.0, False)
    torch.library.opcheck(torch.ops.gatlib.gat_attention_backward.default,
                          (_r(12, 2, 3, grad=False), None, a_src, a_dst, v, lse, g,
                           _r(E, 2, grad=False), None, 0.2, 0.0))
    q, k = _r(12, 2, 4, grad=False), _r(12, 2, 4, grad=False)
    _, lse, _ = torch.ops.gatlib.sparse_attention(q, k, v, g, None, None, 0.5, 0.0, False)
    torch.library.opcheck(torch.ops.gatlib.sparse_attention_backward.default,
                          (_r(12, 2, 3, grad=False), _r(E, 2, grad=False), q, k, v, lse, g,
                           None, None, 0.5, 0.0))
    y = torch.softmax(torch.randn(30, 3, dtype=torch.float64), 0)
    torch.library.opcheck(torch.ops.gatlib.segment_softmax_backward.default,
                          (torch.randn_like(y), y, torch.randint(0, 6, (30,)), 7))


def test_torch_compile_through_registered_ops():
    csr = to_csr(random_graph(40, 200, seed=5), 40)

    def layer(x, w_src, w_dst, w_v):
        v = (x @ w_v).view(-1, 2, 4)                               # [N, H, C]
        a_src, a_dst = x @ w_src, x @ w_dst                        # [N, H]
        out = gat_attention(a_src, a_dst, v, csr)
        q = out                                                    # [N, H, C]
        return sparse_attention(q, q, v, csr).sum(-1)

    x = torch.randn(40, 6)
    ws = [torch.randn(6, 2, requires_grad=True), torch.randn(6, 2, requires_grad=True),
          torch.randn(6, 8, requires_grad=True)]
    eager = layer(x, *ws)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)(x, *ws)
    torch.testing.assert_close(compiled, eager)
    g1 = torch.autograd.grad(eager.sum(), ws)
    g2 = torch.autograd.grad(compiled.sum(), ws)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
