"""The Triton backend's own checks: the split path for huge-degree nodes (forward and backward,
target and source side), empty graphs and masks, the fp16/bf16 tolerance rule, determinism,
head dims, opcheck on every custom op, and when dispatch may choose it.

Runs on a GPU natively, or without one under Triton's interpreter (``TRITON_INTERPRET=1`` set
before the run, CPU tensors, tiny inputs); skipped otherwise.
"""
import math
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")
from gatlib.graph import to_csr  # noqa: E402
from gatlib.ops import reference, segment_softmax, select, use_backend  # noqa: E402
from gatlib.ops.graph_args import graph_tensors  # noqa: E402
from gatlib.ops.dispatch import Backend, get_backend  # noqa: E402
from gatlib.ops.triton import kernels  # noqa: E402

from .helpers import attention_inputs, grads, run_attention  # noqa: E402

if not (torch.cuda.is_available() or kernels.interpreted()):
    pytest.skip("Triton needs a CUDA device or TRITON_INTERPRET=1 (set before the run)",
                allow_module_level=True)

DEVICE = "cpu" if kernels.interpreted() else "cuda"


def hub_graph(n=12, hub_in=50, hub_out=40, extra=30, seed=0):
    """Node 0 receives ``hub_in`` edges, node 1 sends ``hub_out``, ``extra`` random edges, and
    node ``n - 1`` is isolated. Returns edge_index [2, E] on DEVICE."""
    g = torch.Generator().manual_seed(seed)
    src = torch.cat([torch.randint(0, n - 1, (hub_in,), generator=g),
                     torch.ones(hub_out, dtype=torch.long),
                     torch.randint(0, n - 1, (extra,), generator=g)])
    dst = torch.cat([torch.zeros(hub_in, dtype=torch.long),
                     torch.randint(0, n - 1, (hub_out,), generator=g),
                     torch.randint(0, n - 1, (extra,), generator=g)])
    order = torch.randperm(src.numel(), generator=g)      # the caller's order is arbitrary
    return torch.stack([src[order], dst[order]]).to(DEVICE)


def make_inputs(op, ei, n, H=2, D=4, C=3, dtype=torch.float64, seed=1, with_term=True):
    return attention_inputs(op, ei, n, n, H, D, C, dtype, seed, with_term, DEVICE)


run = run_attention


@pytest.fixture
def split(monkeypatch):
    """Lower the row split so that small graphs take the split-and-merge path."""
    def set_split(n):
        monkeypatch.setattr("gatlib.ops.triton.plan.SPLIT", n)
        return n
    return set_split


# ------------------------------------------------------------------------------ splitting

def test_row_plan_covers_every_edge_once():
    rowptr = torch.tensor([0, 0, 3, 23, 24, 24, 41], device=DEVICE)
    plan = kernels.row_plan(rowptr, split=5)
    covered = torch.cat([torch.arange(int(s), int(e)) for s, e in
                         zip(plan.chunk_start.tolist(), plan.chunk_end.tolist())])
    assert torch.equal(covered, torch.arange(41))
    assert (plan.chunk_end - plan.chunk_start).max() <= 5
    assert plan.split_row.tolist() == [2, 5]                  # 20 and 17 edges
    assert plan.split_ptr.tolist() == [0, 4, 8]
    # Whole rows (empty ones included) write directly; split rows through the workspace.
    assert plan.chunk_slot[plan.chunk_row == 0].tolist() == [-1]
    assert plan.chunk_slot[plan.chunk_row == 5].tolist() == [4, 5, 6, 7]
    assert plan.slot_row.tolist() == [2, 2, 2, 2, 5, 5, 5, 5]  # row of each workspace slot
    assert plan.num_slots == 8 and plan.num_chunks == plan.chunk_row.numel()


@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_work_lists_are_kept_on_the_held_graph(op, split):
    """The plans live on the caller's GraphCSR, one per row split, built once; a plain
    edge_index gets fresh ones every call, and the answer is the same either way."""
    split(7)
    ei = hub_graph(seed=2)
    csr = to_csr(ei, 12)
    inputs = make_inputs(op, ei, 12)
    out_plain, alpha_plain = run(op, "triton", inputs)
    assert ("triton_plans", 7) not in csr._derived
    out, alpha = run(op, "triton", dict(inputs, edge_index=csr))
    plans = csr._derived[("triton_plans", 7)]
    assert len(plans) == kernels.PLANNED_GRAPH_TENSORS
    run(op, "triton", dict(inputs, edge_index=csr))
    assert csr._derived[("triton_plans", 7)] is plans           # built once, then reused
    torch.testing.assert_close(out, out_plain, rtol=0, atol=0)
    torch.testing.assert_close(alpha, alpha_plain, rtol=0, atol=0)
    want = kernels.graph_plans(graph_tensors(csr), 7)
    for got, expect in zip(plans[7:], want):
        assert torch.equal(got, expect)
    split(9)                                                    # another split: another plan
    run(op, "triton", dict(inputs, edge_index=csr))
    assert ("triton_plans", 9) in csr._derived


@pytest.mark.parametrize("op", ["sparse", "gat"])
@pytest.mark.parametrize("split_at", [7, 32])
def test_split_rows_match_reference(op, split_at, split):
    split(split_at)
    ei = hub_graph()
    csr = to_csr(ei, 12)
    # Both sides take the split path: node 0's in-edges and node 1's out-edges.
    assert kernels.row_plan(csr.rowptr).num_split >= 1
    assert kernels.row_plan(csr.rowptr_t).num_split >= 1
    inputs = make_inputs(op, ei, 12)
    out, alpha = run(op, "triton", inputs)
    ref_out, ref_alpha = run(op, "reference", inputs)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-10, atol=1e-10)
    for got, want in zip(grads(inputs, (out, alpha)), grads(inputs, (ref_out, ref_alpha))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_split_rows_with_dropout_match_reference(op, split):
    split(9)
    inputs = make_inputs(op, hub_graph(seed=4), 12, with_term=False)
    torch.manual_seed(5)
    out, _ = run(op, "triton", inputs, dropout=0.3)
    torch.manual_seed(5)
    ref, _ = run(op, "reference", inputs, dropout=0.3)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(grads(inputs, (out,)), grads(inputs, (ref,))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_split_rows_with_masked_chunks(op, split):
    """-inf scores across whole chunks of a split row, and a split row masked entirely."""
    split(6)
    ei = hub_graph(hub_in=30, hub_out=0, extra=0)                      # all 30 edges into node 0
    ei = torch.cat([ei, torch.tensor([[3] * 14, [2] * 14], device=DEVICE)], dim=1)
    E = ei.size(1)
    inputs = make_inputs(op, ei, 12, with_term=False)
    term = torch.zeros(E, 2, dtype=torch.float64, device=DEVICE)
    term[:20] = -math.inf                  # 20 of node 0's 30 in-edges, spread over its chunks
    term[30:] = -math.inf                  # every in-edge of node 2
    inputs["bias" if op == "sparse" else "edge_score"] = term
    out, alpha = run(op, "triton", inputs)
    ref_out, ref_alpha = run(op, "reference", inputs)
    assert torch.equal(out[2], torch.zeros_like(out[2]))
    assert torch.equal(alpha[:20], torch.zeros_like(alpha[:20]))
    assert torch.equal(alpha[30:], torch.zeros_like(alpha[30:]))
    torch.testing.assert_close(alpha[:30].sum(0), torch.ones(2).to(alpha))
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-10, atol=1e-10)
    for got, want in zip(grads(inputs, (out, alpha)), grads(inputs, (ref_out, ref_alpha))):
        if got is None:
            continue
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_segment_softmax_split_matches_reference(split):
    split(8)
    g = torch.Generator().manual_seed(0)
    index = torch.cat([torch.zeros(50, dtype=torch.long), torch.randint(1, 9, (30,), generator=g),
                       torch.full((20,), 9)])
    index = index[torch.randperm(index.numel(), generator=g)].to(DEVICE)
    src = torch.randn(100, 3, generator=g, dtype=torch.float64).to(DEVICE)
    src[index == 9] = -math.inf            # a split segment masked entirely: zeros
    src.requires_grad_()
    with use_backend("triton"):
        out = segment_softmax(src, index, 11)
    ref = reference.segment_softmax_ref(src, index, 11)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(out[index == 9], torch.zeros_like(out[index == 9]))
    w = torch.randn(100, 3, generator=g, dtype=torch.float64).to(DEVICE)
    (a,) = torch.autograd.grad((out * w).sum(), src)
    (b,) = torch.autograd.grad((ref * w).sum(), src)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- edge cases

@pytest.mark.parametrize("op", ["sparse", "gat"])
@pytest.mark.parametrize("n,E", [(0, 0), (5, 0)])
def test_empty_graphs(op, n, E, split):
    split(4)
    ei = torch.empty(2, E, dtype=torch.long, device=DEVICE)
    inputs = make_inputs(op, ei, n)
    out, alpha = run(op, "triton", inputs)
    assert out.shape == (n, 2, 3) and alpha.shape == (0, 2)
    assert torch.equal(out, torch.zeros_like(out))
    for g in grads(inputs, (out,)):
        assert g is None or torch.equal(g, torch.zeros_like(g))


def test_segment_softmax_empty_and_isolated():
    with use_backend("triton"):
        empty = segment_softmax(torch.empty(0, 2, device=DEVICE), torch.empty(0, dtype=torch.long,
                                                                               device=DEVICE), 4)
        out = segment_softmax(torch.tensor([1.0, 2.0], device=DEVICE),
                              torch.tensor([3, 3], device=DEVICE), 6)
    assert empty.shape == (0, 2)
    torch.testing.assert_close(out, torch.softmax(torch.tensor([1.0, 2.0]), 0).to(DEVICE))


# ---------------------------------------------------------------------------- precision

@pytest.mark.parametrize("op", ["sparse", "gat"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_tolerance_rule_on_split_rows(op, dtype, split):
    """Error against the fp32 reference <= 2 x the error of the reference run in `dtype`."""
    split(8)
    inputs32 = make_inputs(op, hub_graph(seed=2), 12, dtype=torch.float32, seed=9)
    inputs_lp = {k: (v.detach().to(dtype).requires_grad_() if v.dtype.is_floating_point else v)
                 for k, v in inputs32.items()}
    ref32, _ = run(op, "reference", inputs32)
    ref_lp, _ = run(op, "reference", inputs_lp)
    out, alpha = run(op, "triton", inputs_lp)
    assert out.dtype == dtype and alpha.dtype == dtype
    err = (out.float() - ref32).abs().max().item()
    assert err <= 2 * (ref_lp.float() - ref32).abs().max().item() + 1e-3
    for want, lp, got in zip(grads(inputs32, (ref32,)), grads(inputs_lp, (ref_lp,)),
                             grads(inputs_lp, (out,))):
        assert got.dtype == dtype
        err = (got.float() - want).abs().max().item()
        assert err <= 2 * (lp.float() - want).abs().max().item() + 1e-3, err


@pytest.mark.parametrize("D,C", [(16, 16), (64, 32)])
def test_sparse_attention_head_dims(D, C):
    ei = hub_graph(n=10, hub_in=20, hub_out=10, extra=20)
    inputs = make_inputs("sparse", ei, 10, H=2, D=D, C=C, dtype=torch.float32)
    out, alpha = run("sparse", "triton", inputs)
    ref, ref_alpha = run("sparse", "reference", inputs)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads(inputs, (out,)), grads(inputs, (ref,))):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------------------- determinism

@pytest.mark.parametrize("op", ["sparse", "gat"])
def test_bitwise_deterministic(op, split):
    split(8)
    inputs = make_inputs(op, hub_graph(seed=6), 12, dtype=torch.float32)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        results = []
        for _ in range(2):
            torch.manual_seed(0)
            out, alpha = run(op, "triton", inputs, dropout=0.2)
            results.append([out, alpha, *grads(inputs, (out, alpha))])
    finally:
        torch.use_deterministic_algorithms(was)
    for a, b in zip(*results):
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------ opcheck

def _graph():
    from ..conftest import random_graph
    return graph_tensors(to_csr(random_graph(8, 20, seed=2).to(DEVICE), 8))


def _r(*shape, grad=True):
    return torch.randn(*shape, dtype=torch.float64, device=DEVICE, requires_grad=grad)


@pytest.mark.parametrize("with_term,dropout,return_attention",
                         [(True, 0.0, True), (False, 0.3, False)])
def test_opcheck_attention(with_term, dropout, return_attention):
    g = _graph()
    E = g[1].numel()
    mask = (torch.rand(E, 2, device=DEVICE) >= dropout) if dropout else None
    term = _r(E, 2) if with_term else None
    torch.library.opcheck(torch.ops.gatlib.triton_gat_attention.default,
                          (_r(8, 2), _r(8, 2), _r(8, 2, 3), g, term, mask, 0.2, dropout,
                           return_attention))
    torch.library.opcheck(torch.ops.gatlib.triton_sparse_attention.default,
                          (_r(8, 2, 4), _r(8, 2, 4), _r(8, 2, 3), g, term, mask, 0.5, dropout,
                           return_attention))


def test_opcheck_with_the_graphs_work_lists():
    """The ops take the graph followed by its work lists (how a held GraphCSR passes them)."""
    g = _graph()
    g = g + kernels.graph_plans(g)
    assert len(g) == kernels.PLANNED_GRAPH_TENSORS
    E = g[1].numel()
    torch.library.opcheck(torch.ops.gatlib.triton_gat_attention.default,
                          (_r(8, 2), _r(8, 2), _r(8, 2, 3), g, _r(E, 2), None, 0.2, 0.0, True))
    torch.library.opcheck(torch.ops.gatlib.triton_sparse_attention.default,
                          (_r(8, 2, 4), _r(8, 2, 4), _r(8, 2, 3), g, None, None, 0.5, 0.0,
                           False))


def test_opcheck_backward_ops_and_softmax():
    g = _graph()
    E = g[1].numel()
    a_src, a_dst, v = _r(8, 2, grad=False), _r(8, 2, grad=False), _r(8, 2, 3, grad=False)
    _, lse, _ = torch.ops.gatlib.triton_gat_attention(a_src, a_dst, v, g, None, None, 0.2, 0.0,
                                                      False)
    torch.library.opcheck(torch.ops.gatlib.triton_gat_attention_backward.default,
                          (_r(8, 2, 3, grad=False), None, a_src, a_dst, v, lse, g,
                           _r(E, 2, grad=False), None, 0.2, 0.0))
    q, k = _r(8, 2, 4, grad=False), _r(8, 2, 4, grad=False)
    _, lse, _ = torch.ops.gatlib.triton_sparse_attention(q, k, v, g, None, None, 0.5, 0.0, False)
    torch.library.opcheck(torch.ops.gatlib.triton_sparse_attention_backward.default,
                          (_r(8, 2, 3, grad=False), _r(E, 2, grad=False), q, k, v, lse, g,
                           None, None, 0.5, 0.0))
    index = torch.randint(0, 5, (20,), device=DEVICE)
    torch.library.opcheck(torch.ops.gatlib.triton_segment_softmax.default, (_r(20, 3), index, 6))
    y = torch.softmax(torch.randn(20, 3, dtype=torch.float64, device=DEVICE), 0)
    torch.library.opcheck(torch.ops.gatlib.triton_segment_softmax_backward.default,
                          (torch.randn_like(y), y, index, 6))


# ------------------------------------------------------------------------------ dispatch

def test_dispatch_on_cpu_needs_force_and_says_why():
    cpu = torch.device("cpu")
    assert select("gat_attention", cpu, torch.float32) != "triton"   # never automatic on CPU
    reasons = get_backend("triton").why_not("gat_attention", cpu, torch.float32)
    assert any("runs only when forced" in r for r in reasons)
    if kernels.interpreted():
        with use_backend("triton"):
            assert select("gat_attention", cpu, torch.float32) == "triton"
    if torch.cuda.is_available():
        assert select("gat_attention", torch.device("cuda"), torch.float16) == "triton"


def test_forced_on_cpu_without_interpreter_explains():
    # A fresh interpreter without TRITON_INTERPRET: forcing triton on CPU tensors must fail
    # with the reason, not run compiled GPU kernels on host memory.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = ("import torch, gatlib\n"
            "from gatlib.ops import gat_attention, use_backend, BackendError\n"
            "try:\n"
            "    with use_backend('triton'):\n"
            "        gat_attention(torch.ones(2, 1), torch.ones(2, 1), torch.ones(2, 1, 1),\n"
            "                      torch.tensor([[0], [1]]))\n"
            "except BackendError as e:\n"
            "    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert "on cpu it runs only under TRITON_INTERPRET=1" in res.stdout, res.stdout + res.stderr


def test_forced_only_devices_mechanism():
    b = Backend("x", frozenset({"cpu"}), frozenset({torch.float32}),
                frozenset({"gat_attention"}), forced_only_devices=frozenset({"cpu"}),
                device_check=lambda d: "needs a flag")
    cpu = torch.device("cpu")
    assert b.why_not("gat_attention", cpu, torch.float32, forced=True) == ["needs a flag"]
    assert len(b.why_not("gat_attention", cpu, torch.float32)) == 2
