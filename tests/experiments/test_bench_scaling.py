"""The scaling study's pieces: setup functions on tiny sizes, the log-log fit and crossover
helpers on synthetic data, and the script end to end with a stand-in for ``measure`` (no
timings are asserted)."""
import json
import math

import pytest
import torch

from gatlib.experiments.bench import (attention_inputs, crossover, crossovers,
                                     dense_attention_step, extrapolate, fit_loglog,
                                     scaling_graph, sparse_attention_step)

from .scripts import load_benchmark


# ----------------------------------------------------------------------------- setup functions

def test_scaling_graph_sizes():
    assert scaling_graph(50, 4).shape == (2, 200)
    assert scaling_graph(50, 2.5).shape == (2, 125)
    # Degree N (or more): the complete graph with self-loops, every ordered pair once.
    ei = scaling_graph(7, 7)
    assert ei.shape == (2, 49)
    assert len(set(map(tuple, ei.t().tolist()))) == 49


def test_steps_run_and_fill_gradients():
    for step in (sparse_attention_step(40, 4, heads=2, dim=8),
                 sparse_attention_step(12, 12, heads=2, dim=8),
                 dense_attention_step(40, heads=2, dim=8)):
        step()
        step()  # gradients are reset between calls, not accumulated into stale tensors


def test_sparse_step_on_complete_graph_matches_dense():
    from gatlib.graph import to_csr
    from gatlib.ops import dense_attention, sparse_attention
    q, k, v, _ = attention_inputs(16, 2, 8, seed=3)
    graph = to_csr(scaling_graph(16, 16), 16)
    torch.testing.assert_close(sparse_attention(q, k, v, graph), dense_attention(q, k, v),
                               atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- helpers

def test_fit_loglog_exact_power_law():
    x = [10, 100, 1000, 10_000]
    slope, intercept = fit_loglog(x, [3.0 * a ** 1.5 for a in x])
    assert slope == pytest.approx(1.5, abs=1e-12)
    assert math.exp(intercept) == pytest.approx(3.0, rel=1e-12)


def test_fit_loglog_drops_unusable_points_and_needs_two():
    slope, _ = fit_loglog([1, 2, 4, 8], [None, 4, 16, 0])
    assert slope == pytest.approx(2.0)
    with pytest.raises(ValueError):
        fit_loglog([5, 5], [1, 2])


def test_extrapolate_follows_the_last_two_points():
    assert extrapolate([1, 10, 100], [7, 2, 20], 1000) == pytest.approx(200)
    assert extrapolate([10, 100], [5, 1], 1000) == pytest.approx(1)   # never shrinks
    assert extrapolate([10], [5], 100) is None


def test_crossover_of_two_power_laws_is_exact():
    # a = x^2 / 100, b = x: they cross at x = 100, between grid points.
    x = [10, 31.6, 316, 1000]
    a = [v * v / 100 for v in x]
    assert crossover(x, a, x) == pytest.approx(100)


def test_crossover_of_a_line_and_a_constant():
    x = [1e-3, 1e-2, 1e-1, 1]
    sparse = [5 * d for d in x]                 # time linear in density
    dense = [0.2] * 4                           # dense: a horizontal line
    assert crossover(x, sparse, dense) == pytest.approx(0.04)


def test_crossover_none_touching_and_last():
    assert crossover([1, 2, 3], [1, 1, 1], [2, 2, 2]) is None
    assert crossover([1, 10, 100], [1, 10, 100], [10, 10, 10]) == pytest.approx(10)
    # Noise at small sizes: several crossings; the last one holds to the end.
    x, a, b = [1, 10, 100, 1000], [1, 3, 1, 10], [2, 2, 2, 2]
    assert len(crossovers(x, a, b)) == 3
    assert crossover(x, a, b) == max(crossovers(x, a, b))
    assert crossover([1, 10, None, 100], [1, 1, 1, 1], [2, None, 0.5, 0.5]) == pytest.approx(10)


# ----------------------------------------------------------------------------- the script

def _load_script():
    return load_benchmark("scaling")


def test_script_end_to_end_with_synthetic_costs(tmp_path, monkeypatch):
    """Costs sparse ~ E, dense ~ N^2 (memory too), one dense size out of memory: the fits find
    the slopes, the crossovers are where the synthetic curves cross, nothing crashes."""
    mod = _load_script()

    def fake_measure(target, kwargs, device, repeats, warmup, timeout):
        n = kwargs["num_nodes"]
        if target.endswith("dense_attention_step"):
            if n >= 5000:
                return {"status": "oom", "message": "worker died with exit code -9"}
            cost = n * n
        else:
            d = kwargs["avg_degree"]
            cost = 100 * n * min(d, n)
        return {"status": "ok", "time_s": cost * 1e-7, "times_s": [cost * 1e-7],
                "peak_bytes": cost * 10}
    monkeypatch.setattr(mod, "measure", fake_measure)
    mod.main(["--out", str(tmp_path), "--min-nodes", "100", "--max-nodes-sparse", "100000",
              "--max-nodes-dense", "100000", "--density-nodes", "256", "--fit-min-nodes", "100",
              "--fit-min-ms", "0", "--max-seconds", "10"])
    for name in ("scaling_cpu.json", "scaling_cpu.md", "scaling_cpu_nodes.png",
                 "scaling_cpu_density.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "scaling_cpu.json").read_text())
    assert saved["fits"]["sparse"]["time"]["slope"] == pytest.approx(1.0)
    assert saved["fits"]["dense"]["time"]["slope"] == pytest.approx(2.0)
    # dense = N^2 against sparse = 1600 N cross at N = 1600.
    assert saved["crossovers"]["crossover_nodes"]["time"] == pytest.approx(1600, rel=1e-6)
    # N = 256: dense 256^2 against sparse 100 * 256 * d cross at d = 2.56, density 0.01.
    assert saved["crossovers"]["crossover_density"]["time"] == pytest.approx(0.01, rel=1e-6)
    dense = [r["dense"]["status"] for r in saved["nodes_sweep"]]
    assert "oom" in dense and dense[-1] == "skipped"
    # Sparse at N = 100,000 would take 16 s a step > --max-seconds 10: skipped, not run.
    last = saved["nodes_sweep"][-1]["sparse"]
    assert last["status"] == "skipped" and last["predicted"]["time_s"] == pytest.approx(16)
    assert "oom" in (tmp_path / "scaling_cpu.md").read_text()


def test_script_check_exits_on_disagreement(monkeypatch):
    mod = _load_script()
    dense = mod.dense_attention
    monkeypatch.setattr(mod, "dense_attention", lambda q, k, v: 2 * dense(q, k, v))
    with pytest.raises(SystemExit):
        mod.check(8, 2, 4, 0, "cpu")
