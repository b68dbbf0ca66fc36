"""The GPU benchmark's pieces on the CPU (no timings asserted: ``measure`` is replaced by a
stand-in): every subject and dtype is checked against the reference before it is timed, a wrong
candidate is caught and not timed, the tile-budget sweep runs the Triton kernels (under the
interpreter) with other block sizes, bad arguments are refused, and the device script parses."""
import json
import re
import shutil
import subprocess
from argparse import Namespace

import pytest
import torch

from .scripts import BENCHMARKS, load_benchmark

TIMING = {"status": "ok", "time_s": 1e-3, "peak_bytes": 2**20, "message": ""}


@pytest.fixture
def bg(monkeypatch):
    mod = load_benchmark("bench_gpu")
    calls = []

    def fake_measure(target, kwargs, **kw):
        calls.append((target, kwargs))
        return dict(TIMING)
    monkeypatch.setattr(mod, "measure", fake_measure)
    mod.calls = calls
    return mod


def _interpreted() -> bool:
    try:
        from gatlib.ops.triton import kernels
    except ImportError:
        return False
    return kernels.interpreted()


def test_every_subject_and_dtype_is_checked_then_timed(bg, tmp_path):
    res = bg.main(["--dry-run", "--no-products", "--sizes", "400", "--dtypes",
                   "float32,bfloat16", "--subjects", "gat,gatv2,transformer,softmax",
                   "--out-dir", str(tmp_path), "--tag", "t"])
    rows = res["rows"]
    subjects = [r["subject"] for r in rows if r["impl"] == "gatlib"]
    assert subjects == ["gat", "gatv2", "transformer", "softmax", "gat (bf16)", "gatv2 (bf16)",
                        "transformer (bf16)", "softmax (bf16)"]
    assert all(r["check"]["status"] == "ok" for r in rows), [r["check"] for r in rows]
    # bf16 is held to the tests' rule (twice the reference's own bf16 error, plus 1e-3).
    for r in rows:
        tol = r["check"]["tolerance"]
        assert tol == 1e-4 if r["dtype"] == "float32" else tol > 1e-3
    # Each timed candidate got its dtype and implementation; the layers their kind.
    timed = [kw for _, kw in bg.calls if kw.get("backward", True)]
    assert len(timed) == len(rows)
    assert {(kw.get("kind", "softmax"), kw["impl"], kw["dtype"]) for kw in timed} == {
        (r["kind"], r["impl"], r["dtype"]) for r in rows}
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["bench_gpu_cpu_t.json", "bench_gpu_cpu_t.md", "bench_gpu_cpu_t.png"]
    table = (tmp_path / "bench_gpu_cpu_t.md").read_text()
    assert "| gatv2 (bf16) | power law | 40 | 400 | pyg | ok (" in table
    assert "fp32, bf16" in table
    record = json.loads((tmp_path / "bench_gpu_cpu_t.json").read_text())
    assert record["backend"] == {"float32": "cpu", "bfloat16": "cpu"}
    assert record["self_check"] == {}                 # nothing self-checked on the CPU


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_wrong_candidate_is_caught_and_not_timed(bg, monkeypatch, dtype):
    real = bg.segment_softmax
    monkeypatch.setattr(bg, "segment_softmax", lambda *a, **k: real(*a, **k) * 1.02)
    args = Namespace(device="cpu", heads=2, channels=4, seed=0, backend=None, check_tol=1e-4)
    size = dict(name="power law", num_nodes=40, num_edges=400, in_channels=8)
    res = bg.check("softmax", size, ["gatlib", "pyg"], args, dtype)
    assert res["gatlib"]["status"] == "mismatch" and res["gatlib"]["error"] > 0.01
    assert res["pyg"]["status"] == "ok"
    rows = bg._run_subject("softmax", size, dtype, [], Namespace(
        **vars(args), impls="gatlib,pyg", repeats=1, warmup=1, timeout=10.0), None)
    assert rows[0]["timing"] == {"status": "not timed (mismatch)"}
    assert [kw["impl"] for _, kw in bg.calls] == ["pyg", "pyg"]     # fwd+bwd, then fwd


def test_tile_budget_sets_and_restores_the_block_sizes(bg):
    pytest.importorskip("triton")
    from gatlib.ops.triton import launch
    default = launch.blocks(8, 16, 16)
    with bg.tile_budget("8192"):
        assert launch.TILE_BUDGET == 8192
        bigger = launch.blocks(8, 16, 16)
    with bg.tile_budget(""):
        assert launch.blocks(8, 16, 16) == default
    assert launch.TILE_BUDGET == 2048 and default == (8, 8)
    assert bigger[0] * bigger[1] == 4 * default[0] * default[1]


@pytest.mark.skipif(not _interpreted(), reason="the Triton path on the CPU needs "
                    "TRITON_INTERPRET=1")
def test_tile_budget_sweep_runs_the_triton_kernels(bg, tmp_path):
    res = bg.main(["--dry-run", "--no-products", "--sizes", "200", "--subjects", "gat",
                   "--backend", "triton", "--tile-budgets", "1024,8192", "--impls", "gatlib",
                   "--out-dir", str(tmp_path)])
    assert [r["impl"] for r in res["rows"]] == ["gatlib", "gatlib@1024", "gatlib@8192"]
    assert all(r["check"]["status"] == "ok" for r in res["rows"])
    assert res["backend"] == {"float32": "triton"}
    from gatlib.ops.triton import launch
    assert launch.TILE_BUDGET == 2048                     # restored after every step


@pytest.mark.parametrize("argv,message", [
    (["--dtypes", "float8"], "--dtypes must be"),
    (["--subjects", "gin"], "--subjects must be"),
    (["--tile-budgets", "big"], "--tile-budgets must be"),
])
def test_bad_arguments_are_refused(bg, argv, message):
    with pytest.raises(SystemExit, match=message):
        bg.main(["--dry-run"] + argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_cuda_without_a_gpu_is_refused(bg):
    with pytest.raises(SystemExit, match="CUDA is not available"):
        bg.main(["--device", "cuda"])


def test_device_script_parses_and_names_existing_options(bg):
    script = BENCHMARKS / "gpu_session.sh"
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    # Every option the script passes to bench_gpu.py is one of its options.
    lines = [ln for ln in text.splitlines()
             if ln.lstrip().startswith(("BENCH=(", "SIZES_", "step bench_", "--"))]
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", " ".join(lines)))
    assert {"--subjects", "--dtypes", "--tile-budgets", "--impls", "--no-products"} <= options
    known = bg.build_parser()._option_string_actions
    assert [o for o in sorted(options) if o not in known] == []
    assert "gatlib.cli doctor" in text and "TRITON_CACHE_DIR" in text
    assert script.stat().st_mode & 0o111
