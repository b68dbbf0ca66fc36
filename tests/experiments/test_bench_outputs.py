"""Benchmarks leave the checkout clean: by default every script writes under results/, which
git ignores (the committed figures in experiments/results/ change only with --out); and
`make test` names each group of tests before it runs."""
import shutil
import subprocess
from pathlib import Path

import pytest

from .scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ["bench_gat", "bench_gpu", "dense_batches", "scaling", "sparse_features"]


def _git_ignored(path: Path) -> bool:
    res = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)])
    return res.returncode == 0


@pytest.mark.parametrize("name", SCRIPTS)
def test_default_outputs_are_git_ignored(name):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = Path(load_benchmark(name).RESULTS)
    assert out == ROOT / "results" or ROOT / "results" in out.parents
    assert _git_ignored(out / "anything.json")
    assert not _git_ignored(ROOT / "experiments" / "results" / "anything.json")


def test_bench_gat_writes_to_its_default_folder(monkeypatch, tmp_path):
    """The default stem is RESULTS/bench_gat_<what>_<device> (a tiny run, RESULTS redirected)."""
    mod = load_benchmark("bench_gat")
    monkeypatch.setattr(mod, "RESULTS", tmp_path)
    monkeypatch.setattr(mod, "measure", lambda *a, **k: {
        "status": "ok", "time_s": 1e-3, "peak_bytes": 2**20, "message": ""})
    mod.main(["--nodes", "30", "--edges", "90", "--heads", "2", "--channels", "4",
              "--repeats", "1", "--impls", "gatlib,reference"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bench_gat_attention_cpu.json", "bench_gat_attention_cpu.md"]


def test_make_test_names_its_groups():
    text = (ROOT / "Makefile").read_text()
    recipe = text[text.index("\ntest:"):text.index("\nbench:")]
    groups = [ln for ln in recipe.splitlines() if "echo \"== make test" in ln]
    assert len(groups) == 3
    assert recipe.count("$(PYTEST)") == 3 and "--durations=5" in text
    # The groups together are the whole suite: the core folders, the rest, then training.
    assert "--ignore=tests/experiments" in recipe and "$(PYTEST) tests/experiments" in recipe
    assert "$(addprefix --ignore=,$(CORE))" in recipe
    assert "make test" in (ROOT / ".ci" / "run").read_text()
