"""The native CPU kernels are safe against any graph a careless or hostile caller can hand them:
each case below crashed the process (SIGSEGV) or answered wrongly before, and must now answer
right or raise a ValueError/TypeError naming what is wrong. Each runs in a subprocess, so a
crash fails the test instead of killing the test run."""
import os
import subprocess
import sys
import textwrap

import pytest

from gatlib import native

pytestmark = pytest.mark.skipif(not native.available(), reason=native.status())

# Shared set-up of every case: a graph where every edge comes from source 0 (so that a column
# read past its one real entry, or with the wrong stride, is caught by comparing answers), the
# GAT inputs, and the answer on the well-built graph.
_SETUP = """
import torch
from gatlib.graph import GraphCSR, to_csr
from gatlib.ops import gat_attention, use_backend
from gatlib.ops.graph_args import graph_tensors
torch.manual_seed(0)
N, E, H, C = 400, 100_000, 2, 8
ei = torch.stack([torch.randint(1, N, (E,)), torch.randint(0, N, (E,))])
ei[0, :E // 2] = 0
g = to_csr(ei, N)
a_src, a_dst, v = torch.randn(N, H), torch.randn(N, H), torch.randn(N, H, C)
def run(graph):
    with use_backend("cpu"):
        return gat_attention(a_src, a_dst, v, graph)
want = run(g)
fields = [f.clone() for f in graph_tensors(g)]
"""

CASES = {
    # An expanded (stride-0) col: read as contiguous it ran past its one element.
    "expanded_col": """
E0 = 1000
ei0 = torch.stack([torch.zeros(E0, dtype=torch.long), torch.randint(0, N, (E0,))])
g0 = to_csr(ei0, N)
f = [t.clone() for t in graph_tensors(g0)]
f[1] = torch.zeros(1, dtype=torch.long).expand(E0)
got = run(GraphCSR(*f))
torch.testing.assert_close(got, run(g0))
print("OK")
""",
    # A col sliced from an [E, 2] table (stride 2): a silently wrong answer before.
    "strided_col": """
table = torch.stack([fields[1], torch.full_like(fields[1], 10 ** 9)], dim=1)   # [E, 2]
f = list(fields)
f[1] = table[:, 0]
assert f[1].stride() == (2,)
torch.testing.assert_close(run(GraphCSR(*f)), want)
print("OK")
""",
    # The caller's tensors edited after construction: the graph owns copies.
    "caller_edits_its_tensor": """
f = [t.clone() for t in fields]
h = GraphCSR(*f)
f[1][0] = 1 << 40
torch.testing.assert_close(run(h), want)
print("OK")
""",
    # A field edited through the graph's own property: caught before any kernel.
    "field_edited_in_place": """
h = GraphCSR(*fields)
h.col[0] = 1 << 40
try:
    run(h)
except ValueError as exc:
    assert "field col was edited in place" in str(exc), exc
    print("OK")
""",
    # An edit the version counter cannot see (through NumPy): the kernel's own check.
    "field_edited_behind_torch": """
h = GraphCSR(*fields)
h.col.numpy()[5] = 1 << 40
try:
    run(h)
except ValueError as exc:
    assert "col" in str(exc) and "outside [0, S)" in str(exc), exc
    print("OK")
""",
    # An edit between the forward and the backward pass.
    "edited_between_passes": """
a = a_src.clone().requires_grad_()
h = GraphCSR(*fields)
with use_backend("cpu"):
    out = gat_attention(a, a_dst, v, h)
h.perm[0] = 1 << 40
try:
    out.sum().backward()
except ValueError as exc:
    assert "edited in place" in str(exc), exc
    print("OK")
""",
    # The registered op, called directly: int32 graph tensors.
    "op_int32_graph": """
gt = [t.int() for t in fields]
try:
    torch.ops.gatlib.gat_attention(a_src, a_dst, v, gt, None, None, 0.2, 0.0, False)
except TypeError as exc:
    assert "graph field rowptr must be a 1-D int64 tensor" in str(exc), exc
    print("OK")
""",
    # The registered op, called directly: a source index out of range.
    "op_source_out_of_range": """
gt = list(fields)
gt[1] = gt[1].clone()
gt[1][7] = 1 << 40
try:
    torch.ops.gatlib.gat_attention(a_src, a_dst, v, gt, None, None, 0.2, 0.0, False)
except ValueError as exc:
    assert "col has a source index outside [0, S)" in str(exc), exc
    print("OK")
""",
    # rowptr claiming more edges than col has (scratch was sized from col, reads from rowptr).
    "op_rowptr_past_the_edges": """
gt = list(fields)
gt[0] = gt[0].clone()
gt[0][-1] = E + 1000
try:
    torch.ops.gatlib.gat_attention(a_src, a_dst, v, gt, None, None, 0.2, 0.0, False)
except ValueError as exc:
    assert "rowptr must rise from 0 to E" in str(exc), exc
    print("OK")
""",
    # Wrong-shape lse / grad_out / dropout mask given to the registered ops.
    "op_wrong_shapes": """
out, lse, _ = torch.ops.gatlib.gat_attention(a_src, a_dst, v, fields, None, None, 0.2, 0.0,
                                             False)
bad = {
    "lse": lambda: torch.ops.gatlib.gat_attention_backward(out, None, a_src, a_dst, v, lse[:, :3],
                                                           fields, None, None, 0.2, 0.0),
    "grad_out": lambda: torch.ops.gatlib.gat_attention_backward(out[:5], None, a_src, a_dst, v,
                                                                lse, fields, None, None, 0.2, 0.0),
    "dropout_mask": lambda: torch.ops.gatlib.gat_attention(
        a_src, a_dst, v, fields, None, torch.ones(7, H, dtype=torch.bool), 0.2, 0.5, False),
}
for name, call in bad.items():
    try:
        call()
        raise SystemExit(f"{name}: no error")
    except ValueError as exc:
        assert name in str(exc), exc
print("OK")
""",
    # GATv2's native score with CPU features and a graph on another device (meta: no CUDA
    # here; its data_ptr() is no CPU address either).
    "gatv2_graph_on_another_device": """
from gatlib.nn import GATv2Conv
from gatlib.nn._fused import gatv2_score
layer = GATv2Conv(4, 8, heads=2)
h_src = torch.randn(N, 2, 8)
gm = g.to("meta")
try:
    gatv2_score(layer, h_src, h_src, ei, gm, None)
except ValueError as exc:
    assert "graph on meta" in str(exc), exc
    print("OK")
""",
    # The neighbour sampler's kept index tensors edited by hand: each broken array named by
    # the native hop (sample.h) or the size count before it, nothing read out of bounds.
    "sampler_fields_edited": """
from gatlib.loader import NeighborSampler
from gatlib.native.abi import NativeIndexError
seeds = torch.arange(0, N, 7)
edits = {"col": ("col", 3, 1 << 40), "perm": ("perm", 3, -5), "rowptr": ("rowptr", 1, 1 << 40),
         "falling rowptr": ("rowptr", 2, -1)}
for name, (field, at, value) in edits.items():
    s = NeighborSampler(ei, [-1, 2], num_nodes=N, seed=0)      # -1: every edge read
    t = getattr(s, field).clone()
    t[at] = value
    setattr(s, field, t)
    try:
        s.sample_from_nodes(type("I", (), {"node": seeds, "input_type": None, "time": None,
                                           "input_id": None})())
        raise SystemExit(f"{name}: no error")
    except NativeIndexError as exc:
        assert field in str(exc), (name, exc)
print("OK")
""",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_graph_never_crashes_or_answers_wrong(case):
    code = _SETUP + textwrap.dedent(CASES[case])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert res.returncode == 0, f"{case}: exit {res.returncode}\n{res.stderr[-2000:]}"
    assert res.stdout.strip().endswith("OK"), res.stdout + res.stderr[-2000:]
