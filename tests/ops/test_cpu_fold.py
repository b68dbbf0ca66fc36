"""The CPU backend's three paths: the fused kernels (``gatlib.ops.cpu.fused``), and torch's
kernels either side of the fold's size rule: heads folded into one CSR (``E * H <=
FOLD_MAX_ENTRIES``) and one CSR call per head (above it); the folded graph itself; and the eager
autograd path against the registered ops."""
import pytest
import torch

from gatlib.graph import to_csr
from gatlib.ops import gat_attention, sparse_attention, use_backend
from gatlib import native
from gatlib.ops.cpu import eager_op, fused, kernels
from gatlib.ops.graph_args import graph_tensors

from ..conftest import random_graph
from .helpers import attention_inputs, grads, run_attention

# (num_src, num_dst, num_edges): a hub, a bipartite graph, E = 0, one edge, a multigraph with
# more edges than node pairs (sampled_addmm's fallback).
CASES = [(20, 20, 60), (15, 7, 40), (12, 12, 0), (1, 1, 1), (3, 3, 30)]


@pytest.fixture(params=["native", "folded", "per-head"])
def path(request, monkeypatch):
    """Run the test on one path of the CPU backend (and check that path is the one taken):
    the fused kernels, or torch's kernels either side of the fold's size rule."""
    if request.param == "native":
        if not native.available():
            pytest.skip(native.status())
        return request.param
    monkeypatch.setattr(fused, "NATIVE_MAX_ENTRIES", -1)
    if request.param == "per-head":
        monkeypatch.setattr(kernels, "FOLD_MAX_ENTRIES", -1)
    return request.param


def _inputs(op, S, T, E, H=3, D=5, C=4, dtype=torch.float64, seed=0, term=True):
    ei = random_graph(S, E, seed=seed, num_dst=T)
    return attention_inputs(op, ei, S, T, H, D, C, dtype, seed + 1, term)


_run, _grads = run_attention, grads


def test_fold_is_h_disjoint_copies_of_the_graph():
    """The folded graph equals the CSR view of the explicitly built graph whose edge
    ``e * H + h`` links node ``j * H + h`` to node ``i * H + h``, index for index."""
    S, T, H = 9, 7, 3
    ei = random_graph(S, 50, seed=4, num_dst=T)
    folded = kernels.fold_heads(graph_tensors(to_csr(ei, S, T)), H)
    h = torch.arange(H)
    big = torch.stack([(ei[0].view(-1, 1) * H + h).reshape(-1),
                       (ei[1].view(-1, 1) * H + h).reshape(-1)])            # [2, E * H]
    want = graph_tensors(to_csr(big, S * H, T * H))
    names = ["rowptr", "col", "row", "perm", "rowptr_t", "col_t", "perm_t"]
    for name, got, exp in zip(names, folded, want):
        assert torch.equal(got.long(), exp), name
    assert folded[1].dtype == torch.int32 and folded[3].dtype == torch.int64


def test_fold_is_kept_on_the_graph_per_heads():
    ei = random_graph(10, 30, seed=1)
    csr = to_csr(ei, 10)
    g = graph_tensors(csr)
    a = kernels.folded_graph_args(csr, g, 2)
    assert len(a) == 14 and kernels.folded_graph_args(csr, g, 2) is a
    assert kernels.folded_graph_args(csr, g, 3) is not a
    assert kernels.fold_heads(a, 2) == a[7:]                               # passed on, not rebuilt
    # Nothing is kept under the edge tensor: a new GraphCSR of the same edges folds afresh.
    other = to_csr(ei, 10)
    assert kernels.folded_graph_args(other, graph_tensors(other), 2) is not a


def test_size_rule_boundary(monkeypatch):
    g = graph_tensors(to_csr(random_graph(10, 30, seed=1), 10))
    E = g[1].numel()
    monkeypatch.setattr(kernels, "FOLD_MAX_ENTRIES", 4 * E)
    assert kernels.fold_heads(g, 4) is not None                            # E * H == limit
    assert kernels.fold_heads(g, 5) is None                                # one head over it


@pytest.mark.parametrize("op", ["sparse", "gat"])
@pytest.mark.parametrize("S,T,E", CASES)
@pytest.mark.parametrize("term", [True, False])
def test_both_paths_match_reference(path, op, S, T, E, term, monkeypatch):
    calls = []
    real = kernels.fold_heads
    monkeypatch.setattr("gatlib.ops.cpu.ops.fold_heads",
                        lambda g, H: calls.append(real(g, H)) or calls[-1])
    inputs = _inputs(op, S, T, E, term=term)
    out, alpha = _run(op, "cpu", inputs)
    folded = [c is not None for c in calls]
    if path == "native":
        assert not calls                                   # no fold: the CSR as it is
    else:
        assert folded and all(f == (path == "folded") for f in folded)
    ref_out, ref_alpha = _run(op, "reference", inputs)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-10, atol=1e-10)
    for got, want in zip(_grads(inputs, (out, alpha)), _grads(inputs, (ref_out, ref_alpha))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_both_paths_float32_and_dropout(path, op):
    inputs = _inputs(op, 60, 60, 500, dtype=torch.float32)
    torch.manual_seed(5)
    out, _ = _run(op, "cpu", inputs, dropout=0.3)
    torch.manual_seed(5)
    ref, _ = _run(op, "reference", inputs, dropout=0.3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(_grads(inputs, (out,)), _grads(inputs, (ref,))):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_both_paths_gradcheck(path, op):
    inputs = _inputs(op, 8, 8, 20, H=2, D=3, C=2)
    names = [k for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.requires_grad]
    fn = sparse_attention if op == "sparse" else gat_attention

    def f(*tensors):
        with use_backend("cpu"):
            return fn(**dict(inputs, **dict(zip(names, tensors))), return_attention=True)
    assert torch.autograd.gradcheck(f, [inputs[n] for n in names])


@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_both_paths_low_precision(path, op):
    inputs32 = _inputs(op, 60, 60, 500, dtype=torch.float32, seed=7)
    lp = {k: (v.detach().bfloat16().requires_grad_() if v.dtype.is_floating_point else v)
          for k, v in inputs32.items() if v is not None}
    out, _ = _run(op, "cpu", lp)
    ref32, _ = _run(op, "reference", inputs32)
    ref_lp, _ = _run(op, "reference", lp)
    assert out.dtype == torch.bfloat16
    err, ref_err = [(o.float() - ref32).abs().max().item() for o in (out, ref_lp)]
    assert err <= 2 * ref_err + 1e-3


@pytest.mark.parametrize("op", ["sparse", "gat"])
@pytest.mark.parametrize("return_attention", [True, False])
def test_eager_path_equals_registered_op(path, op, return_attention):
    """The public entry's eager autograd path and the registered op (with its registered
    autograd) give the same outputs and gradients, through the output and the weights."""
    inputs = _inputs(op, 20, 20, 60)
    csr = to_csr(inputs["edge_index"], 20, 20)
    g = graph_tensors(csr)
    E = g[1].numel()
    torch.manual_seed(0)
    mask = torch.rand(E, 3) >= 0.25
    if op == "sparse":
        args = (inputs["q"], inputs["k"], inputs["v"], g, inputs["bias"], mask, 0.4, 0.25,
                return_attention)
        name = "sparse_attention"
    else:
        args = (inputs["a_src"], inputs["a_dst"], inputs["v"], g, inputs["edge_score"], mask,
                0.2, 0.25, return_attention)
        name = "gat_attention"
    eager = eager_op(name)(*args)
    registered = getattr(torch.ops.gatlib, name)(*args)
    assert eager_op(name) is not getattr(torch.ops.gatlib, name)
    for a, b in zip(eager, registered):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    used = (eager[0], eager[2]) if return_attention else (eager[0],)
    used_r = (registered[0], registered[2]) if return_attention else (registered[0],)
    for a, b in zip(_grads(inputs, used), _grads(inputs, used_r)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_eager_path_weights_only_gradient():
    """Only the weights used (as GraphTransformerConv with edge features uses them): the
    output's gradient is taken as zero, on a bipartite graph (T != S)."""
    inputs = _inputs("sparse", 15, 7, 40)
    _, alpha = _run("sparse", "cpu", inputs)
    _, ref_alpha = _run("sparse", "reference", inputs)
    for got, want in zip(_grads(inputs, (alpha,)), _grads(inputs, (ref_alpha,))):
        if want is None:
            assert got is None or torch.count_nonzero(got) == 0
        else:
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_eager_path_only_for_attention_ops():
    assert eager_op("segment_softmax") is torch.ops.gatlib.segment_softmax


def test_size_rule_keeps_folded_ids_in_int32():
    """Folded node ids are i * H + h in int32 (MKL's index width): a graph whose N * H would
    overflow them takes the per-head path, however few its edges."""
    assert kernels._folds(4, 10, 100, 100)
    assert not kernels._folds(4, 10, 2 ** 29, 100)            # (2**29 + 1) * 4 > 2**31 - 1
    assert not kernels._folds(4, 10, 100, 2 ** 29)
    assert kernels._folds(1, 10, 2 ** 30, 2 ** 30)
    assert not kernels._folds(0, 10, 100, 100)
    assert not kernels._folds(2, kernels.FOLD_MAX_ENTRIES, 100, 100)


def test_large_graph_folds_from_its_second_use(monkeypatch):
    """A graph above the first-use limit runs per head on its first call (a raw edge_index is
    a new graph every call: folding would cost more than it saves) and folded from its second
    call on (the fold then kept on the GraphCSR); results equal either way."""
    monkeypatch.setattr(kernels, "FOLD_FIRST_USE_MAX_ENTRIES", 10)
    csr = to_csr(random_graph(10, 30, seed=1), 10)
    g = graph_tensors(csr)
    first = kernels.folded_graph_args(csr, g, 2)
    assert len(first) == 8 and first[7].numel() == 0                      # the marker
    assert kernels.fold_heads(first, 2) is None                            # ops do not fold
    second = kernels.folded_graph_args(csr, g, 2)
    assert len(second) == 14 and kernels.folded_graph_args(csr, g, 2) is second
    small = to_csr(torch.tensor([[0, 1], [1, 2]]), 3)                      # E * H = 4 <= 10
    assert len(kernels.folded_graph_args(small, graph_tensors(small), 2)) == 14
    inputs = _inputs("gat", 10, 10, 30)
    outs = [_run("gat", "cpu", inputs)[0] for _ in range(2)]               # fresh graph each
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
