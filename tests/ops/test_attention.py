"""Every backend of sparse_attention and gat_attention against the reference, forward and
backward, on graphs with isolated nodes, self-loops, duplicate edges, a hub, E = 0 and N = 0."""
import math

import pytest
import torch

from gatlib.graph import to_csr
from gatlib.ops import gat_attention, reference, sparse_attention, use_backend

from ..conftest import backends_under_test, edit_in_place, random_graph
from .helpers import attention_inputs, grads, run_attention

BACKENDS = backends_under_test()

# (num_src, num_dst, num_edges): ordinary graphs, a hub-heavy one, bipartite, empty ones.
CASES = [(20, 20, 60), (60, 60, 500), (15, 7, 40), (12, 12, 0), (1, 1, 1), (0, 0, 0)]


def _inputs(op, S, T, E, H=3, D=5, C=4, dtype=torch.float64, seed=0, with_term=True):
    ei = random_graph(S, E, seed=seed, num_dst=T)
    return attention_inputs(op, ei, S, T, H, D, C, dtype, seed + 1, with_term)


_run, _grads = run_attention, grads


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["sparse", "gat"])
@pytest.mark.parametrize("S,T,E", CASES)
@pytest.mark.parametrize("with_term", [True, False])
def test_backend_matches_reference(backend, op, S, T, E, with_term):
    inputs = _inputs(op, S, T, E, with_term=with_term)
    out, alpha = _run(op, backend, inputs)
    ref_out, ref_alpha = _run(op, "reference", inputs)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-10, atol=1e-10)
    # Gradients through both outputs (the attention weights are differentiable too).
    for got, want in zip(_grads(inputs, (out, alpha)), _grads(inputs, (ref_out, ref_alpha))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_float32_matches_reference(backend, op):
    inputs = _inputs(op, 60, 60, 500, dtype=torch.float32)
    out, alpha = _run(op, backend, inputs)
    ref_out, ref_alpha = _run(op, "reference", inputs)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-5, atol=1e-6)
    for got, want in zip(_grads(inputs, (out,)), _grads(inputs, (ref_out,))):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["sparse", "gat"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_tolerance_rule(backend, op, dtype):
    """Error against the fp32 reference <= 2 x the error of the reference run in `dtype`."""
    inputs32 = _inputs(op, 60, 60, 500, dtype=torch.float32, seed=7)
    inputs_lp = {k: (v.detach().to(dtype).requires_grad_() if v.dtype.is_floating_point else v)
                 for k, v in inputs32.items() if v is not None}
    ref32, _ = _run(op, "reference", inputs32)
    ref_lp, _ = _run(op, "reference", inputs_lp)
    out, _ = _run(op, backend, inputs_lp)
    assert out.dtype == dtype
    err = (out.float() - ref32).abs().max().item()
    ref_err = (ref_lp.float() - ref32).abs().max().item()
    assert err <= 2 * ref_err + 1e-3, (err, ref_err)
    g32 = _grads(inputs32, (ref32,))
    g_ref = _grads(inputs_lp, (ref_lp,))
    g_out = _grads(inputs_lp, (out,))
    for want, lp, got in zip(g32, g_ref, g_out):
        assert got.dtype == dtype
        err = (got.float() - want).abs().max().item()
        ref_err = (lp.float() - want).abs().max().item()
        assert err <= 2 * ref_err + 1e-3, (err, ref_err)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_dropout_matches_reference_with_same_seed(backend, op):
    inputs = _inputs(op, 30, 30, 200)
    torch.manual_seed(11)
    out, _ = _run(op, backend, inputs, dropout=0.4)
    torch.manual_seed(11)
    ref, _ = _run(op, "reference", inputs, dropout=0.4)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(_grads(inputs, (out,)), _grads(inputs, (ref,))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    # Not training: no dropout at all, whatever the probability.
    eval_out, _ = _run(op, backend, inputs, dropout=0.4, training=False)
    plain, _ = _run(op, backend, inputs)
    torch.testing.assert_close(eval_out, plain)
    assert not torch.allclose(out, plain)


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_isolated_nodes_and_masks_give_zeros_not_nan(backend, op):
    # Node 3 has no in-edges; node 2's only in-edges are masked with -inf.
    ei = torch.tensor([[0, 1, 2, 0, 1], [1, 0, 0, 2, 2]])
    H = 2
    term = torch.zeros(5, H, dtype=torch.float64)
    term[3:] = -math.inf
    if op == "sparse":
        inputs = dict(q=torch.randn(4, H, 3, dtype=torch.float64, requires_grad=True),
                      k=torch.randn(4, H, 3, dtype=torch.float64, requires_grad=True),
                      v=torch.randn(4, H, 2, dtype=torch.float64, requires_grad=True),
                      edge_index=ei, bias=term)
    else:
        inputs = dict(a_src=torch.randn(4, H, dtype=torch.float64, requires_grad=True),
                      a_dst=torch.randn(4, H, dtype=torch.float64, requires_grad=True),
                      v=torch.randn(4, H, 2, dtype=torch.float64, requires_grad=True),
                      edge_index=ei, edge_score=term)
    out, alpha = _run(op, backend, inputs)
    assert torch.equal(out[2:], torch.zeros_like(out[2:]))
    assert torch.isfinite(alpha).all() and torch.equal(alpha[3:], torch.zeros_like(alpha[3:]))
    torch.testing.assert_close(alpha[1:2] + alpha[2:3], torch.ones_like(alpha[:1]))
    torch.testing.assert_close(alpha[0], torch.ones_like(alpha[0]))
    for g in _grads({k: v for k, v in inputs.items() if k != "edge_index"}, (out,)):
        assert torch.isfinite(g).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_gradcheck_float64(backend, op):
    inputs = _inputs(op, 8, 8, 20, H=2, D=3, C=2)
    names = [k for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.requires_grad]
    fn = sparse_attention if op == "sparse" else gat_attention

    def f(*tensors):
        kw = dict(inputs, **dict(zip(names, tensors)))
        with use_backend(backend):
            out, alpha = fn(**kw, return_attention=True)
        return out, alpha
    # Under Triton's CPU interpreter every call costs ~0.1 s: fast mode checks one random
    # projection of the Jacobian instead of every column.
    assert torch.autograd.gradcheck(f, [inputs[n] for n in names],
                                    fast_mode=backend == "triton")


@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_edge_term_per_edge_shared_by_heads(op):
    inputs = _inputs(op, 20, 20, 60, with_term=False)
    term = torch.randn(inputs["edge_index"].size(1), dtype=torch.float64, requires_grad=True)
    name = "bias" if op == "sparse" else "edge_score"
    for backend in BACKENDS:
        out = _run(op, backend, dict(inputs, **{name: term}))[0]
        ref = _run(op, "reference", dict(inputs, **{name: term.unsqueeze(-1).expand(-1, 3)}))[0]
        torch.testing.assert_close(out, ref)
        (g,) = torch.autograd.grad(out.sum(), term)
        (g_ref,) = torch.autograd.grad(ref.sum(), term)
        torch.testing.assert_close(g, g_ref)


def test_hand_computed_gat():
    # Target 0 receives from 1 and 2; one head; a_src = [0, 1, 2], a_dst = [0.5, 0, 0].
    ei = torch.tensor([[1, 2], [0, 0]])
    a_src = torch.tensor([[0.0], [1.0], [-2.0]])
    a_dst = torch.tensor([[0.5], [0.0], [0.0]])
    v = torch.tensor([[[0.0]], [[1.0]], [[3.0]]])
    s1, s2 = 1.5, 0.2 * (-1.5)                  # leaky_relu(1 + 0.5), leaky_relu(-2 + 0.5)
    w1 = math.exp(s1) / (math.exp(s1) + math.exp(s2))
    for backend in BACKENDS + ["reference"]:
        with use_backend(backend):
            out, alpha = gat_attention(a_src, a_dst, v, ei, return_attention=True)
        torch.testing.assert_close(alpha, torch.tensor([[w1], [1 - w1]]))
        torch.testing.assert_close(out[0, 0, 0], torch.tensor(w1 * 1 + (1 - w1) * 3))
        assert out[1:].abs().sum() == 0


def test_hand_computed_dot_product():
    # Target 0 attends over itself and node 1 with q = [1, 0], k0 = [2, 0], k1 = [0, 5].
    ei = torch.tensor([[0, 1], [0, 0]])
    q = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]])
    k = torch.tensor([[[2.0, 0.0]], [[0.0, 5.0]]])
    v = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    s0, s1 = 2.0 / math.sqrt(2), 0.0
    w0 = math.exp(s0) / (math.exp(s0) + math.exp(s1))
    for backend in BACKENDS + ["reference"]:
        with use_backend(backend):
            out = sparse_attention(q, k, v, ei)
        torch.testing.assert_close(out[0, 0], torch.tensor([w0, 1 - w0]))
        torch.testing.assert_close(out[1], torch.zeros(1, 2))


def test_graph_csr_is_reused_and_accepted():
    inputs = _inputs("gat", 30, 30, 100)
    ei = inputs["edge_index"]
    # The structure is reused by holding the GraphCSR (no cache keyed by the tensor).
    csr = to_csr(ei, 30)
    assert to_csr(csr, 30) is csr
    a = gat_attention(**inputs)
    b = gat_attention(**dict(inputs, edge_index=csr))
    torch.testing.assert_close(a, b)


# ------------------------------------------------------------------ masking for every slope

@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
@pytest.mark.parametrize("slope", [0.0, -0.5, 0.2, 1.0])
def test_minus_inf_masks_an_edge_for_every_negative_slope(backend, slope):
    """A -inf edge score drops the edge, whatever the slope (0 * -inf and -0.5 * -inf made
    nan and +inf): the answer is that of the graph without the masked edges."""
    ei = random_graph(10, 40, seed=4)
    E, H = ei.size(1), 2
    g = torch.Generator().manual_seed(2)
    masked = torch.rand(E, generator=g) < 0.3
    term = torch.randn(E, H, generator=g, dtype=torch.float64)
    term[masked] = -math.inf
    a_src, a_dst = (torch.randn(10, H, generator=g, dtype=torch.float64).requires_grad_()
                    for _ in range(2))
    v = torch.randn(10, H, 3, generator=g, dtype=torch.float64).requires_grad_()
    with use_backend(backend):
        out, alpha = gat_attention(a_src, a_dst, v, ei, edge_score=term, negative_slope=slope,
                                   return_attention=True)
    keep = ~masked
    want, want_alpha = reference.gat_attention_ref(a_src, a_dst, v, ei[:, keep], term[keep],
                                                   slope)
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-10)
    assert torch.equal(alpha[masked], torch.zeros_like(alpha[masked]))
    torch.testing.assert_close(alpha[keep], want_alpha, rtol=1e-10, atol=1e-10)
    got = torch.autograd.grad(out.sum(), (a_src, a_dst, v))
    ref = torch.autograd.grad(want.sum(), (a_src, a_dst, v))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------ every adjacency form

def _distinct_graph(S, T, E, seed=0):
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(S * T, generator=g)[:E]
    return torch.stack([pick // T, pick % T])               # [2, E], unsorted, no duplicates


def _forms(ei, S, T):
    from torch_geometric import EdgeIndex
    from torch_geometric.utils import (to_torch_coo_tensor, to_torch_csc_tensor,
                                       to_torch_csr_tensor)
    return {
        "graph": to_csr(ei, S, T),
        "EdgeIndex": EdgeIndex(ei, sparse_size=(S, T)),
        "EdgeIndex_by_row": EdgeIndex(ei, sparse_size=(S, T)).sort_by("row")[0],
        "EdgeIndex_by_col": EdgeIndex(ei, sparse_size=(S, T)).sort_by("col")[0],
        "coo": to_torch_coo_tensor(ei, size=(S, T)).t(),
        "csr": to_torch_csc_tensor(ei, size=(S, T)).t(),
        "csc": to_torch_csr_tensor(ei, size=(S, T)).t(),
    }


def _order_of(form_edges, ei):
    """Position in ``ei`` of each edge of ``form_edges`` (both hold the same distinct edges)."""
    T = int(max(ei[1].max(), form_edges[1].max())) + 1
    key, form_key = ei[0] * T + ei[1], form_edges[0] * T + form_edges[1]
    return torch.argsort(key)[torch.searchsorted(key.sort().values, form_key)]


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("op", ["sparse", "gat"])
@pytest.mark.parametrize("S,T", [(9, 9), (11, 6)])
def test_every_adjacency_form_gives_the_edge_index_answer(backend, op, S, T):
    from gatlib.graph import as_adjacency
    ei = _distinct_graph(S, T, 30)
    inputs = _inputs(op, S, T, 0)
    E = ei.size(1)
    term_name = "bias" if op == "sparse" else "edge_score"
    term = torch.randn(E, 3, dtype=torch.float64)
    want, want_alpha = _run(op, backend, dict(inputs, edge_index=ei, **{term_name: term}))
    for name, form in _forms(ei, S, T).items():
        order = _order_of(as_adjacency(form).edge_index(), ei)   # the form's own edge order
        got, alpha = _run(op, backend, dict(inputs, edge_index=form,
                                            **{term_name: term[order]}))
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=name)
        torch.testing.assert_close(alpha, want_alpha[order], rtol=1e-12, atol=1e-12, msg=name)


# ------------------------------------------------------------------ in-place edits

@pytest.mark.parametrize("route", ["plain", "numpy", "data", "view", "from_numpy"])
@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_editing_edge_index_in_place_gives_the_new_graphs_answer(route, op):
    inputs = _inputs(op, 8, 8, 0, with_term=False)
    base = torch.tensor([[0, 1, 2, 3, 4, 6], [1, 2, 3, 4, 5, 1]])
    edge_index = torch.from_numpy(base.numpy().copy()) if route == "from_numpy" else base.clone()
    before, _ = _run(op, "cpu", dict(inputs, edge_index=edge_index))
    edit_in_place(route, edge_index)
    fresh = edge_index.clone()
    assert int(fresh[0, 0]) == 5
    after, _ = _run(op, "cpu", dict(inputs, edge_index=edge_index))
    want, _ = _run(op, "cpu", dict(inputs, edge_index=fresh))
    assert torch.equal(after, want)
    assert not torch.allclose(after, before)
