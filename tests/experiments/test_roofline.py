"""The roofline of the attention op (gatlib.experiments.roofline) and bench_gat's roofline and
conversion lines: present and positive (no timing is asserted)."""
import json

import pytest
import torch

from gatlib.experiments.roofline import attention_bound, format_bound
from gatlib.graph import to_csr

from .scripts import load_benchmark


def test_bound_parts_and_sums():
    ei = torch.randint(0, 50, (2, 300), generator=torch.Generator().manual_seed(0))
    g = to_csr(ei, 50)
    b = attention_bound(g.col, g.col_t, g.num_src, g.num_dst, heads=2, channels=4, repeats=2)
    parts = b["parts_s"]
    # Forward: two gathers (values, source scores), the output, the exponentials; backward:
    # the gathers again, the output gradient gathered in source order, gradients written once.
    assert {"gather0", "gather1", "out", "exp", "bwd_gather0_again", "bwd_gather1_again",
            "bwd_gather_grad_out", "bwd_grad_src0", "bwd_grad_src1", "bwd_grad_dst",
            "bwd_exp_again"} == set(parts)
    assert all(v > 0 for v in parts.values())
    fwd = sum(v for k, v in parts.items() if not k.startswith("bwd_"))
    assert b["fwd_s"] == pytest.approx(fwd) and b["fwd_bwd_s"] == pytest.approx(sum(parts.values()))
    assert 0 < b["fwd_s"] < b["fwd_bwd_s"] and 0 < b["fwd_warm_s"] < b["fwd_bwd_warm_s"]
    text = format_bound(2 * b["fwd_bwd_s"], b)
    assert "gatlib / bound 2.00x" in text


def test_candidates_are_timed_in_the_same_rounds():
    ei = torch.randint(0, 30, (2, 100), generator=torch.Generator().manual_seed(1))
    g = to_csr(ei, 30)
    calls = []
    b = attention_bound(g.col, g.col_t, 30, 30, heads=1, channels=2, repeats=3,
                        candidates={"mine": lambda: calls.append(1)})
    assert len(calls) == 2 * (3 + 1)           # both columns, a warm-up round and 3 timed
    assert b["candidates_s"]["mine"] > 0 and "mine" not in b["parts_s"]


def test_empty_graph_has_a_bound():
    g = to_csr(torch.zeros(2, 0, dtype=torch.long), 5)
    b = attention_bound(g.col, g.col_t, 5, 5, heads=1, channels=2, repeats=1,
                        linear=[(5, 3, 2)])
    assert b["fwd_bwd_s"] > 0 and "linear0" in b["parts_s"] and "bwd_linear0_grad_w" in b["parts_s"]


@pytest.mark.parametrize("what", ["attention", "layer"])
def test_bench_gat_prints_the_roofline(what, tmp_path, capsys):
    pytest.importorskip("torch_geometric")
    mod = load_benchmark("bench_gat")
    stem = tmp_path / "b"
    rec = mod.main(["--what", what, "--nodes", "40", "--edges", "160", "--heads", "2",
                    "--channels", "4", "--in-channels", "6", "--repeats", "1",
                    "--impls", "gatlib", "--out", str(stem)])
    roof, conv = rec["roofline"], rec["conversion"]
    for key in ("fwd", "fwd_bwd"):
        assert roof[key + "_s"] > 0 and roof["bound"][key + "_s"] > 0
        assert roof[key + "_ratio"] > 0 and roof[key + "_ratio_warm"] > 0
    assert conv["time_s"] > 0 and conv["threads"] >= 1
    # gatlib's steps were timed in the bound's rounds; the fresh-process figures are kept too.
    assert set(roof["bound"]["candidates_s"]) == {"fwd", "fwd_bwd"}
    assert roof["fwd_bwd_s"] == roof["bound"]["candidates_s"]["fwd_bwd"]
    assert all(t > 0 for t in roof["fresh_process_s"].values())
    # The self-loop graph of the layer has one more edge per node than it lost.
    assert roof["num_edges"] >= (40 if what == "layer" else 160)
    out = capsys.readouterr().out
    assert "roofline, gatlib forward+backward" in out and "conversion of the raw edge_index" in out
    table = (tmp_path / "b.md").read_text()
    assert "| forward+backward |" in table and "gatlib / bound" in table
    assert json.loads((tmp_path / "b.json").read_text())["roofline"]["fwd_bwd_ratio"] > 0


def test_conversion_script_checks_and_times_every_route(capsys):
    mod = load_benchmark("conversion")
    res = mod.main(["--nodes", "50", "--edges", "400", "--threads", "2", "--repeats", "2"])
    assert set(res) == {"native, 1 chunk", "native, 2 chunks", "torch sorts"}
    assert all(v["wall_ms"] > 0 and v["cpu_ms"] >= 0 for v in res.values())
    assert "torch sorts" in capsys.readouterr().out
