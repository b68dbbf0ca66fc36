"""The benchmarks of a sampled step's parts: ``step_parts.py`` (sampling and input dropout,
native against torch routes) and ``scaling_out.py --breakdown`` (an epoch's seconds per part
beside its work). Timings are never asserted; what is checked is that the scripts run, check
their candidates, and attribute the profiled time to the right part."""
import pytest
import torch

from gatlib import native

from .scripts import load_benchmark


@pytest.mark.skipif(not native.available(), reason=native.status())
def test_step_parts_times_both_routes_of_both_parts(capsys):
    res = load_benchmark("step_parts").main(["--nodes", "3000", "--batches", "2",
                                              "--threads", "1"])
    assert set(res) == {f"{j} ({r})" for j in ("sample a batch", "input dropout")
                        for r in ("native", "torch")}
    assert all(v > 0 for v in res.values())
    assert "fanouts [10, 10]" in capsys.readouterr().out


def test_step_parts_rejects_a_broken_batch():
    mod = load_benchmark("step_parts")
    from gatlib.graph import to_csr
    from gatlib.loader import sample_neighbors
    ei = torch.tensor([[1, 2, 3], [0, 0, 1]])
    seeds = torch.tensor([0, 1])
    out = sample_neighbors(to_csr(ei, 4), seeds, [2])
    mod._check_batch(out, ei, seeds)                        # a true batch passes
    out.edge = out.edge.flip(0)                              # edges no longer match the nodes
    with pytest.raises(SystemExit, match="not a subgraph"):
        mod._check_batch(out, ei, seeds)


def test_breakdown_attributes_the_profiled_parts():
    mod = load_benchmark("scaling_out")
    a, b = torch.randn(300, 300), torch.randn(300, 300)
    res = mod._breakdown(lambda: [a @ b for _ in range(20)], {"input_rows": 7,
                                                              "layer_edges_with_loops": [3, 2]})
    parts = res["parts_s"]
    assert parts["linear maps (mm, fwd + bwd)"] > 0
    assert parts["attention ops (fwd + bwd)"] == 0 and parts["dropout (fwd + bwd)"] == 0
    assert sum(parts.values()) == pytest.approx(res["profiled_epoch_s"])
    rows = [{"case": "full-gatlib", "breakdown": res},
            {"case": "sampled-gatlib", "breakdown": {**res, "work": {
                "input_rows": 70, "layer_edges_with_loops": [30, 1]}}}]
    md = mod._breakdown_markdown(rows)
    assert "| input rows (layer 1's sources) | 7 | 70 | 10.0x |" in md
    assert "| edges of layer 2 (with self-loops) | 2 | 1 | 0.5x |" in md
    assert mod._breakdown_markdown([{"case": "full-gatlib"}]) == ""
