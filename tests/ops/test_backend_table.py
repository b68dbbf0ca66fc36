"""A backend is a table: a new one made from kernels alone (here the CPU's, under another name
and op prefix) is registered by the factory (custom ops, fakes, autograd) and chosen by
dispatch like the built-in ones; no caller knows its name."""
import pytest
import torch

from gatlib.graph import to_csr
from gatlib.ops import attend, gat_attention, segment_softmax, sparse_attention, use_backend
from gatlib.ops import dispatch
from gatlib.ops.backend import FLOATS, Kernels
from gatlib.ops.cpu import KERNELS
from gatlib.ops.factory import make_backend
from gatlib.ops.graph_args import graph_tensors

from ..conftest import random_graph
from .helpers import attention_inputs, grads


@pytest.fixture(scope="module")
def twin():
    """The CPU kernels as a backend "twin" (ops gatlib::twin_*), last in the search order."""
    if not hasattr(torch.ops.gatlib, "twin_attend"):
        backend = make_backend("twin", dict(KERNELS), op_prefix="twin_", device_types="cpu",
                               devices=frozenset({"cpu"}), dtypes=FLOATS)
    else:                                      # registered by an earlier run in this process
        backend = dispatch._BACKENDS.get("twin")
    dispatch.register_backend(backend)
    yield backend
    dispatch._BACKENDS.pop("twin", None)


def test_the_new_backend_runs_every_op_as_the_cpu_does(twin):
    ei = random_graph(15, 50, seed=3)
    for op, fn in (("sparse", sparse_attention), ("gat", gat_attention)):
        inputs = attention_inputs(op, ei, 15, 15)
        outs = {}
        for name in ("twin", "cpu"):
            with use_backend(name):
                out, alpha = fn(**inputs, return_attention=True)
            outs[name] = (out, alpha, grads(inputs, (out, alpha)))
        for a, b in zip(outs["twin"][:2] + tuple(outs["twin"][2]),
                        outs["cpu"][:2] + tuple(outs["cpu"][2])):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    score = torch.randn(ei.size(1), 2, dtype=torch.float64)
    v = torch.randn(15, 2, 3, dtype=torch.float64)
    with use_backend("twin"):
        a = attend(score, v, ei)
        s = segment_softmax(score, ei[1], 15)
    torch.testing.assert_close(a, attend(score, v, ei), rtol=0, atol=0)
    torch.testing.assert_close(s, segment_softmax(score, ei[1], 15), rtol=0, atol=0)


def test_the_new_backend_ops_are_registered_custom_ops(twin):
    g = graph_tensors(to_csr(random_graph(10, 30, seed=1), 10))
    E = g[1].numel()
    score = torch.randn(E, 2, dtype=torch.float64, requires_grad=True)
    v = torch.randn(10, 2, 3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.gatlib.twin_attend.default, (score, v, g, None, 0.0, True))
    assert twin.call("segment_softmax") is torch.ops.gatlib.twin_segment_softmax
    assert dispatch.select("attend", torch.device("cpu"), torch.float32) == "cpu"  # cpu first


def test_a_table_without_backward_kernels_is_called_as_plain_pytorch():
    calls = []

    def softmax(src, index, num_nodes):
        calls.append(num_nodes)
        return torch.softmax(src, 0)

    backend = make_backend("plain", {"segment_softmax": Kernels(softmax)}, devices=None,
                           dtypes=FLOATS)
    assert backend.call("segment_softmax") is softmax and backend.ops == {"segment_softmax"}
    assert backend.kernels["segment_softmax"].backward is None
    assert "it does not implement attend" in backend.why_not("attend", torch.device("cpu"),
                                                             torch.float32)
