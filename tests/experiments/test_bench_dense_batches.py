"""The dense-batches benchmark's pieces (no timings asserted): the padded peer computes the same
attention as gatlib's size groups, each step runs forward and backward, and the script writes
its table with a stand-in for ``measure``."""
import json

import pytest
import torch
from torch_geometric.data import Data

import gatlib.data
from gatlib.experiments import bench as benchmarks
from gatlib.experiments.bench import attention_inputs
from gatlib.experiments.bench_graphs import (DENSE_BATCH_IMPLS, dense_batch_step,
                                             graph_batch_sizes, padded_dense_attention)
from gatlib.ops import dense_attention, reference

from .scripts import load_benchmark


@pytest.fixture
def tiny_tu(monkeypatch):
    graphs = [Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=n)
              for n in (3, 40, 7, 1, 12, 5, 9, 2)]
    monkeypatch.setattr(gatlib.data, "load_dataset", lambda name, **_: graphs)


def test_padded_peer_equals_gatlib_and_reference():
    sizes = [30, 2, 1, 9, 14, 4]
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    q, k, v, grad = attention_inputs(sum(sizes), 2, 4, dtype=torch.float64)
    ours, peer = dense_attention(q, k, v, batch), padded_dense_attention(q, k, v, batch)
    torch.testing.assert_close(peer, ours)
    torch.testing.assert_close(peer, reference.dense_attention_ref(q, k, v, batch))
    g_ours = torch.autograd.grad(ours, (q, k, v), grad)
    g_peer = torch.autograd.grad(peer, (q, k, v), grad)
    for a, b in zip(g_ours, g_peer):
        torch.testing.assert_close(a, b)


def test_batch_sizes_and_steps(tiny_tu):
    sizes = graph_batch_sizes("tiny", 5, seed=1)
    assert len(sizes) == 5 and set(sizes) <= {3, 40, 7, 1, 12, 5, 9, 2}
    assert graph_batch_sizes("tiny", 5, seed=1) == sizes
    for impl in DENSE_BATCH_IMPLS:
        step = dense_batch_step(impl, sizes, heads=2, dim=4)
        step()                                           # forward and backward run
    with pytest.raises(ValueError, match="impl"):
        dense_batch_step("flash-magic", sizes)


def test_script_end_to_end(tiny_tu, tmp_path, monkeypatch):
    mod = load_benchmark("dense_batches")
    calls = []

    def fake_measure(target, kwargs, repeats=5, device="cpu", **_):
        calls.append(kwargs["impl"])
        dense_batch_step(**kwargs)()                     # the step must run
        return {"status": "ok", "time_s": {"gatlib": 0.01, "padded": 0.04}[kwargs["impl"]],
                "peak_bytes": 2**20 * (1 if kwargs["impl"] == "gatlib" else 3)}
    monkeypatch.setattr(benchmarks, "measure", fake_measure)
    out = tmp_path / "db"
    mod.main(["--datasets", "tiny", "--batch-size", "8", "--repeats", "1", "--out", str(out)])
    assert calls == list(DENSE_BATCH_IMPLS)
    table = (tmp_path / "db.md").read_text()
    # 8 graphs, 79 nodes, largest 40: 8 * 1600 padded pairs against 1913 exact ones.
    assert "| tiny | 79 | 40 | 6.7x | 10.0 | 40.0 | 4.0x | 1.0 / 3.0 | 3.0x |" in table
    row = json.loads((tmp_path / "db.json").read_text())["rows"][0]
    assert row["max_error"] < 1e-5 and row["pairs_exact"] == 1913
