"""The native CPU code (``gatlib.native``): the fused attention kernels give torch's kernels'
answers on every op and option, the size-and-type rule, the counting-sort CSR builder gives the
sorts' arrays, and the build: cached per source version, skipped with a reason (and torch's
kernels used) without a compiler or with ``GATLIB_NATIVE=0``."""
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

from gatlib import native
from gatlib.graph import csr as csr_module
from gatlib.graph import to_csr
from gatlib.ops import attend, gat_attention, sparse_attention, use_backend
from gatlib.ops.cpu import fused
from gatlib.ops.graph_args import graph_tensors

from ..conftest import random_graph
from .helpers import attention_inputs, grads

pytestmark = pytest.mark.skipif(not native.available(), reason=native.status())


def test_built_wherever_a_compiler_is():
    """CI has a C compiler: the fused path must not be lost silently there."""
    if shutil.which(os.environ.get("CC", "cc")) and os.environ.get("GATLIB_NATIVE") != "0":
        assert native.available(), native.status()
        assert "loaded from" in native.status()


def _both(fn, monkeypatch):
    """``fn()`` on the fused kernels, then on torch's kernels (native switched off)."""
    with use_backend("cpu"):
        got = fn()
        with monkeypatch.context() as m:
            m.setattr(fused, "NATIVE_MAX_ENTRIES", -1)
            plain = fn()
    return got, plain


def _close(a, b, tol=1e-12):
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
        else:
            torch.testing.assert_close(x, y, rtol=tol, atol=tol, equal_nan=True)


@pytest.mark.parametrize("op", ["sparse", "gat", "attend"])
@pytest.mark.parametrize("S,T,E", [(20, 20, 80), (15, 7, 40), (6, 6, 0), (3, 3, 30)])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_fused_equals_torch_kernels(op, S, T, E, dropout, monkeypatch):
    """Outputs, weights and the gradients of every input (through the output and through the
    weights), with a per-edge term and dropout, on hubs, bipartite graphs, empty graphs and
    multigraphs: the fused kernels equal torch's to fp64 rounding."""
    ei = random_graph(S, E, seed=3, num_dst=T)
    inputs = attention_inputs("gat" if op == "gat" else "sparse", ei, S, T, seed=4)
    if op == "attend":
        g = torch.Generator().manual_seed(9)
        inputs = dict(score=torch.randn(ei.size(1), 3, generator=g, dtype=torch.float64,
                                        requires_grad=True),
                      v=inputs["v"], edge_index=ei)
    fn = {"sparse": sparse_attention, "gat": gat_attention, "attend": attend}[op]

    def run():
        torch.manual_seed(11)                 # the same dropout mask both times
        out, alpha = fn(**inputs, return_attention=True, dropout=dropout, training=True)
        return (out, alpha) + tuple(grads(inputs, (out, alpha)))
    fused, plain = _both(run, monkeypatch)
    _close(fused, plain)


@pytest.mark.parametrize("op", ["sparse", "gat", "attend"])
@pytest.mark.parametrize("threads", [2, 3])
def test_threads_give_the_one_thread_answer_bit_for_bit(op, threads, monkeypatch):
    """Split over an OpenMP team (forced on a small graph), every output and gradient equals
    the one-thread call's exactly: each row is computed by one thread in the same order."""
    ei = random_graph(50, 400, seed=8)
    inputs = attention_inputs("gat" if op == "gat" else "sparse", ei, 50, 50, seed=2)
    if op == "attend":
        g = torch.Generator().manual_seed(1)
        inputs = dict(score=torch.randn(ei.size(1), 3, generator=g, dtype=torch.float64,
                                        requires_grad=True), v=inputs["v"], edge_index=ei)
    fn = {"sparse": sparse_attention, "gat": gat_attention, "attend": attend}[op]

    def run():
        torch.manual_seed(4)
        out, alpha = fn(**inputs, return_attention=True, dropout=0.2, training=True)
        return (out, alpha) + tuple(grads(inputs, (out, alpha)))
    before = torch.get_num_threads()
    try:
        with use_backend("cpu"):
            torch.set_num_threads(1)
            one = run()
            torch.set_num_threads(threads)
            monkeypatch.setattr(fused, "PARALLEL_MIN_ENTRIES", 1)
            many = run()
    finally:
        torch.set_num_threads(before)
    _close(one, many, tol=0)


def test_masked_rows_and_infinite_scores(monkeypatch):
    """Rows whose scores are all -inf, or hold +inf or nan, and isolated targets: the fused
    kernels give what torch's kernels give (zeros for no mass, nan where torch has nan)."""
    ei = torch.tensor([[0, 1, 2, 0, 1, 2, 3], [0, 0, 0, 1, 1, 2, 2]])
    score = torch.randn(7, 2, dtype=torch.float64)
    score[0:3, 0] = -math.inf                  # target 0, head 0: no mass
    score[3, 1] = math.nan                     # target 1, head 1: a nan score
    score[5, 0] = math.inf                     # target 2, head 0: an infinite score
    score.requires_grad_()
    v = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)

    def run():
        out, alpha = attend(score, v, ei, return_attention=True)
        return (out, alpha) + tuple(grads([score, v], (out, alpha)))
    fused, plain = _both(run, monkeypatch)
    _close(fused[:2], plain[:2])
    assert torch.count_nonzero(fused[0][3]) == 0 and torch.count_nonzero(fused[0][4]) == 0
    assert torch.isfinite(fused[0][0, 0]).all()   # the masked row is zeros, not nan


@pytest.mark.parametrize("slope", [0.2, 0.0, -0.5])
def test_gat_masked_edges_any_slope(slope, monkeypatch):
    ei = random_graph(12, 50, seed=2)
    inputs = attention_inputs("gat", ei, 12, 12, seed=6)
    with torch.no_grad():
        inputs["edge_score"][::3] = -math.inf

    def run():
        out, alpha = gat_attention(**inputs, negative_slope=slope, return_attention=True)
        return (out, alpha) + tuple(grads(inputs, (out, alpha)))
    fused, plain = _both(run, monkeypatch)
    _close(fused, plain)
    assert torch.isfinite(fused[0]).all()


def test_size_and_dtype_rule(monkeypatch):
    x32, x64 = torch.ones(1), torch.ones(1, dtype=torch.float64)
    assert fused.handles(100, x32, x32) and fused.handles(100, x64)
    assert fused.handles(100, x32, x32.bfloat16())            # bf16 is computed in fp32
    assert not fused.handles(100, x32, x64)                   # mixed: torch's kernels
    assert not fused.handles(fused.NATIVE_MAX_ENTRIES + 1, x32)
    monkeypatch.setattr(fused, "NATIVE_MAX_ENTRIES", 10)
    assert fused.handles(10, x32) and not fused.handles(11, x32)


@pytest.mark.parametrize("S,T,E", [(20, 20, 90), (15, 7, 40), (6, 6, 0), (1, 1, 1),
                                   (3, 3, 30), (300, 300, 2000), (7, 15, 40), (200, 200, 9)])
@pytest.mark.parametrize("loops", [False, True])
@pytest.mark.parametrize("chunks", [None, 1, 2, 3, 8])
def test_counting_sort_csr_equals_the_sorts(S, T, E, loops, chunks, monkeypatch):
    """The native builder's seven arrays (and kept edges) are the stable sorts' own, index for
    index, with and without the layers' self-loops, on hubs, multigraphs with loops and
    duplicates, bipartite, empty graphs and graphs of mostly isolated nodes, whatever the
    number of chunks (threads) the counting sort is cut into (more chunks than edges
    included)."""
    ei = random_graph(S, E, seed=5, num_dst=T)
    if chunks is not None:
        monkeypatch.setattr(csr_module, "_csr_threads", lambda E, n: chunks)

    def build():
        g = to_csr(ei, S, T)
        return g.with_self_loops() if loops else g
    got = build()
    with monkeypatch.context() as m:
        m.setattr(csr_module, "_native_csr", lambda *a, **k: None)
        want = build()
    for a, b in zip(graph_tensors(got), graph_tensors(want)):
        assert a.dtype == b.dtype == torch.long and torch.equal(a, b)
    if loops:
        assert torch.equal(got.kept_edges, want.kept_edges)
        assert torch.equal(got.edge_index(), want.edge_index())


@pytest.mark.parametrize("chunks", [1, 2, 4])
def test_counting_sort_guards_its_ranges(chunks, monkeypatch):
    """The kernel checks every index itself (the Python check runs before it): an edge out of
    range is reported, not written out of bounds; with the edges cut into chunks, the first
    bad edge of all is the one named."""
    from gatlib.graph.csr import _native_csr
    monkeypatch.setattr(csr_module, "_csr_threads", lambda E, n: chunks)
    with pytest.raises(ValueError, match="edge 1 has an index out of range"):
        _native_csr(torch.tensor([0, 5]), torch.tensor([1, 1]), 3, 3, loops=False)
    with pytest.raises(ValueError, match="edge 0 has an index out of range"):
        _native_csr(torch.tensor([0]), torch.tensor([-1]), 3, 3, loops=True)
    src, dst = torch.zeros(9, dtype=torch.long), torch.zeros(9, dtype=torch.long)
    src[7], dst[3] = 3, -2                           # the chunk of edge 3 comes first
    with pytest.raises(ValueError, match="edge 3 has an index out of range"):
        _native_csr(src, dst, 3, 3, loops=True)


@pytest.mark.skipif(not native.available(), reason=native.status())
def test_counting_sort_in_parallel_on_a_large_graph(monkeypatch):
    """Above the parallel threshold, with torch's threads: the same arrays as the sorts."""
    S = 3000
    E = csr_module.CSR_PARALLEL_MIN_EDGES + 1234
    ei = random_graph(S, E, seed=2)
    got = to_csr(ei, S).with_self_loops()
    with monkeypatch.context() as m:
        m.setattr(csr_module, "_native_csr", lambda *a, **k: None)
        want = to_csr(ei, S).with_self_loops()
    for a, b in zip(graph_tensors(got), graph_tensors(want)):
        assert torch.equal(a, b)
    assert torch.equal(got.kept_edges, want.kept_edges)


def _status_in_subprocess(env_update, tmp_path):
    env = dict(os.environ, GATLIB_CACHE_DIR=str(tmp_path), **env_update)
    code = ("import torch; from gatlib import native; print(native.status()); "
            "from gatlib.ops import sparse_attention as f; "
            "q = torch.randn(4, 2, 3); ei = torch.tensor([[0, 1, 2], [1, 2, 3]]); "
            "print(f(q, q, q, ei).shape)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_switched_off_by_environment(tmp_path):
    out = _status_in_subprocess({"GATLIB_NATIVE": "0"}, tmp_path)
    assert "not used (RuntimeError: disabled by GATLIB_NATIVE=0)" in out
    assert "torch.Size([4, 2, 3])" in out                     # torch's kernels answer
    assert not list(tmp_path.rglob("*.so"))


def test_without_a_compiler_torch_kernels_answer(tmp_path):
    out = _status_in_subprocess({"CC": "no-such-compiler-gatlib"}, tmp_path)
    assert "no C compiler" in out and "torch.Size([4, 2, 3])" in out


def test_built_once_into_the_cache_folder(tmp_path):
    out = _status_in_subprocess({}, tmp_path)
    libs = list(tmp_path.rglob("libgatlib_native-*.so"))
    assert len(libs) == 1 and str(libs[0]) in out
    stamp = libs[0].stat().st_mtime_ns
    _status_in_subprocess({}, tmp_path)                       # loaded, not rebuilt
    assert libs[0].stat().st_mtime_ns == stamp
    # Nothing else but the build lock and notes of variants this machine cannot build.
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p not in libs
                and not p.name.endswith(".failed") and p.name != "build.lock"]


def test_a_variant_that_fails_gives_way_to_the_next(tmp_path):
    """A build variant the compiler refuses leaves a note (so later processes skip it at once)
    and the next variant is built and loaded."""
    env = dict(os.environ, GATLIB_CACHE_DIR=str(tmp_path))
    code = ("from gatlib import native; "
            "native._VARIANTS = (('-fno-such-flag-gatlib',), ()); print(native.status())")
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, timeout=300)
        assert res.returncode == 0 and "loaded from" in res.stdout, res.stdout + res.stderr
    notes = list(tmp_path.rglob("*.failed"))
    assert len(notes) == 1 and "-fno-such-flag-gatlib" in notes[0].read_text()
    assert len(list(tmp_path.rglob("libgatlib_native-*.so"))) == 1
