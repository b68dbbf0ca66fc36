"""attend(score, v, graph): softmax over given per-edge scores and the weighted sum, on every
backend against the reference (forward and backward, both CPU paths either side of the head
folding rule), on graphs with isolated nodes, self-loops, duplicate edges, a hub, E = 0 and
N = 0; masks, dropout (drawn and given), bad input, opcheck and torch.compile."""
import math

import pytest
import torch

from gatlib.graph import to_csr
from gatlib.ops import attend, reference, sparse_attention, use_backend
from gatlib.ops.cpu import kernels
from gatlib.ops.graph_args import graph_tensors

from ..conftest import backends_under_test, random_graph
from .helpers import attention_inputs, grads, run_attention

BACKENDS = backends_under_test()
CASES = [(20, 20, 60), (60, 60, 500), (15, 7, 40), (12, 12, 0), (1, 1, 1), (0, 0, 0)]


def _inputs(S, T, E, H=3, C=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed + 1)
    ei = random_graph(S, E, seed=seed, num_dst=T)
    score = torch.randn(ei.size(1), H, generator=g, dtype=dtype).requires_grad_()
    v = torch.randn(S, H, C, generator=g, dtype=dtype).requires_grad_()
    return score, v, ei


_grads = grads


def _check(backend, score, v, ei, T, **kw):
    with use_backend(backend):
        out, alpha = attend(score, v, ei, num_nodes=T, return_attention=True, **kw)
    ref_out, ref_alpha = reference.attend_ref(score, v, ei, T)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-10, atol=1e-10)
    for got, want in zip(_grads([score, v], (out, alpha)),
                         _grads([score, v], (ref_out, ref_alpha))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("S,T,E", CASES)
def test_attend_matches_reference(backend, S, T, E):
    score, v, ei = _inputs(S, T, E)
    _check(backend, score, v, ei, T)


@pytest.mark.parametrize("S,T,E", CASES[:3])
def test_attend_cpu_per_head_path(S, T, E, monkeypatch):
    monkeypatch.setattr(kernels, "FOLD_MAX_ENTRIES", -1)
    score, v, ei = _inputs(S, T, E)
    _check("cpu", score, v, ei, T)


def test_attend_hand_computed():
    """Two edges into node 0 with scores 0 and log 3: weights 1/4 and 3/4; node 1 isolated."""
    ei = torch.tensor([[0, 1], [0, 0]])
    score = torch.tensor([[0.0], [math.log(3.0)]], dtype=torch.float64)
    v = torch.tensor([[[4.0]], [[8.0]]], dtype=torch.float64)
    for backend in BACKENDS + ["reference"]:
        with use_backend(backend):
            out, alpha = attend(score, v, ei, num_nodes=2, return_attention=True)
        torch.testing.assert_close(alpha, torch.tensor([[0.25], [0.75]], dtype=torch.float64))
        torch.testing.assert_close(out, torch.tensor([[[7.0]], [[0.0]]], dtype=torch.float64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_attend_equals_sparse_attention_with_bias_only(backend):
    """attend(s) is sparse_attention over zero-width queries and keys with bias s."""
    score, v, ei = _inputs(20, 20, 60)
    with use_backend(backend):
        a = attend(score, v, ei)
        b = sparse_attention(v.new_zeros(20, 3, 0), v.new_zeros(20, 3, 0), v, ei, bias=score)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_attend_masked_edges_and_all_masked_target(backend):
    score, v, ei = _inputs(20, 20, 60)
    s = score.detach().clone()
    s[ei[1] == 0] = -math.inf                          # node 0 (the hub): every edge masked
    s[::7] = -math.inf
    s.requires_grad_()
    with use_backend(backend):
        out, alpha = attend(s, v, ei, return_attention=True)
    ref_out, ref_alpha = reference.attend_ref(s, v, ei, 20)
    assert torch.isfinite(out).all() and torch.count_nonzero(out[0]) == 0
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-10, atol=1e-10)
    g = torch.autograd.grad(out.sum(), [s, v])
    assert all(torch.isfinite(t).all() for t in g)


@pytest.mark.parametrize("backend", BACKENDS)
def test_attend_given_dropout_mask(backend):
    """A given keep mask is the dropout: the output equals the reference with that mask, and
    no random numbers are drawn for it."""
    score, v, ei = _inputs(20, 20, 60)
    mask = torch.rand(ei.size(1), 3, generator=torch.Generator().manual_seed(4)) >= 0.4
    state = torch.get_rng_state()
    with use_backend(backend):
        out = attend(score, v, ei, dropout=0.4, dropout_mask=mask)
    assert torch.equal(torch.get_rng_state(), state)
    ref, _ = reference.attend_ref(score, v, ei, 20, mask, 0.4)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(_grads([score, v], (out,)), _grads([score, v], (ref,))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    with use_backend(backend):                         # eval: the mask is not used
        torch.testing.assert_close(attend(score, v, ei, dropout=0.4, dropout_mask=mask,
                                          training=False), attend(score, v, ei))


@pytest.mark.parametrize("backend", BACKENDS)
def test_attend_drawn_dropout_matches_reference_with_same_seed(backend):
    score, v, ei = _inputs(30, 30, 200, dtype=torch.float32)
    torch.manual_seed(5)
    with use_backend(backend):
        out = attend(score, v, ei, dropout=0.3)
    torch.manual_seed(5)
    with use_backend("reference"):
        ref = attend(score, v, ei, dropout=0.3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_attend_gradcheck_cpu():
    score, v, ei = _inputs(8, 8, 20, H=2, C=2)
    csr = to_csr(ei, 8)

    def f(s, vv):
        with use_backend("cpu"):
            return attend(s, vv, csr, return_attention=True)
    assert torch.autograd.gradcheck(f, (score, v))


def test_attend_bad_input():
    score, v, ei = _inputs(10, 10, 30)
    with pytest.raises(ValueError, match="score must have one row per edge"):
        attend(score[:-1], v, ei)
    with pytest.raises(ValueError, match="v must have shape"):
        attend(score, v[:, :2], ei)
    with pytest.raises(TypeError, match="share one floating dtype"):
        attend(score.float(), v, ei)
    with pytest.raises(ValueError, match="dropout must lie in"):
        attend(score, v, ei, dropout=1.0)
    with pytest.raises(ValueError, match="dropout_mask must have shape"):
        attend(score, v, ei, dropout=0.5, dropout_mask=torch.ones(3, 3, dtype=torch.bool))


@pytest.mark.parametrize("return_attention", [True, False])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_opcheck_attend(return_attention, dropout):
    g = graph_tensors(to_csr(random_graph(12, 40, seed=2), 12))
    E = g[1].numel()
    mask = torch.rand(E, 2) >= dropout if dropout else None
    score = torch.randn(E, 2, dtype=torch.float64, requires_grad=True)
    v = torch.randn(12, 2, 3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.gatlib.attend.default,
                          (score, v, g, mask, dropout, return_attention))
    _, lse, _ = torch.ops.gatlib.attend(score.detach(), v.detach(), g, None, 0.0, False)
    torch.library.opcheck(torch.ops.gatlib.attend_backward.default,
                          (torch.randn(12, 2, 3, dtype=torch.float64),
                           torch.randn(E, 2, dtype=torch.float64), score.detach(), v.detach(),
                           lse, g, mask, dropout))


def test_torch_compile_through_attend():
    csr = to_csr(random_graph(30, 120, seed=5), 30)

    def f(score, v):
        return attend(score, v, csr).sum(-1)

    score = torch.randn(csr.num_edges, 2, requires_grad=True)
    v = torch.randn(30, 2, 4, requires_grad=True)
    eager = f(score, v)
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)(score, v)
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(torch.autograd.grad(eager.sum(), [score, v]),
                    torch.autograd.grad(compiled.sum(), [score, v])):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_given_dropout_mask_in_the_other_ops(backend, op):
    """sparse_attention and gat_attention take a given keep mask too (as attend)."""
    ei = random_graph(20, 60, seed=1)
    inputs = attention_inputs(op, ei, 20, 20)
    mask = torch.rand(ei.size(1), 3, generator=torch.Generator().manual_seed(2)) >= 0.3
    state = torch.get_rng_state()
    out, _ = run_attention(op, backend, inputs, dropout=0.3, dropout_mask=mask)
    assert torch.equal(torch.get_rng_state(), state)
    ref, _ = run_attention(op, "reference", inputs, dropout=0.3, dropout_mask=mask)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(grads(inputs, (out,)), grads(inputs, (ref,))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
