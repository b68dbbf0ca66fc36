"""The dense-versus-sparse comparison: variants, budgets, scoring, resumable runs, report, CLI."""
import json

import pytest
import torch

from gatlib.cli import main
from gatlib.data import DatasetNotFound
from gatlib.experiments import compare as cmp


@pytest.fixture(scope="module")
def pattern_task():
    task = cmp.build_task("pattern", quick=True)
    task.epochs = 2
    return task


@pytest.fixture(scope="module")
def small_task(pattern_task):
    """The pattern task with a tenth of its graphs: for the tests of the driver (caching,
    reports), where the size of the data only costs time."""
    import dataclasses
    return dataclasses.replace(pattern_task, splits={
        s: g[: max(len(g) // 10, 4)] for s, g in pattern_task.splits.items()})


def test_parse_variant():
    assert cmp.parse_variant("sparse") == ("sparse", False, None)
    assert cmp.parse_variant("dense+lap") == ("dense", True, None)
    assert cmp.parse_variant("sparse[bigbird]+lap") == ("sparse", True, "bigbird")
    for bad in ("mlp", "dense[window]", "sparse+pe", "gps[bigbird]"):
        with pytest.raises(ValueError, match="variant must be"):
            cmp.parse_variant(bad)


def test_width_for_budget_is_nearest(pattern_task):
    budget = 15_000
    for v in ("sparse", "dense", "gps+lap"):
        width, params = cmp.width_for_budget(pattern_task, v, budget)
        assert width % 4 == 0
        count = lambda w: sum(p.numel() for p in cmp._build_model(pattern_task, v, w).parameters())  # noqa: E731
        assert count(width) == params
        # The neighbours on the width grid are no closer to the budget.
        for w in (width - 4, width + 4):
            if w >= 4:
                assert abs(count(w) - budget) >= abs(params - budget)
    # The hybrid has two branches per layer, so it gets the narrower width.
    assert cmp.width_for_budget(pattern_task, "gps", budget)[0] < \
        cmp.width_for_budget(pattern_task, "dense", budget)[0]


def test_balanced_accuracy_is_chance_for_majority_guess():
    y = torch.tensor([0] * 90 + [1] * 10)
    pred = torch.zeros(100, dtype=torch.long)
    assert cmp._score("accuracy", pred, y, 2) == pytest.approx(0.9)
    assert cmp._score("balanced_accuracy", pred, y, 2) == pytest.approx(0.5)
    pred = y.clone()
    pred[:45] = 1
    assert cmp._score("balanced_accuracy", pred, y, 2) == pytest.approx((0.5 + 1.0) / 2)


def test_tasks_have_pe_and_consistent_shapes(pattern_task):
    for split in ("train", "val", "test"):
        for d in pattern_task.splits[split][:5]:
            assert d.pe.shape == (d.num_nodes, 8)
            assert d.x.size(1) == pattern_task.num_features
    sizes = [len(pattern_task.splits[s]) for s in ("train", "val", "test")]
    assert sum(sizes) == 300 and sizes[0] == 240


def test_train_variant_reads_test_at_best_val(small_task):
    width, _ = cmp.width_for_budget(small_task, "sparse", 5_000)
    out = cmp.train_variant(small_task, "sparse+lap", width, 3e-3, seed=0)
    assert len(out["curve"]) == 2
    best = max(out["curve"], key=lambda r: r["val"])
    assert out["val"] == best["val"]
    assert out["test"] == out["curve"][out["best_epoch"]]["test"]
    assert 0.0 <= out["test"] <= 1.0
    assert out["time_per_epoch_s"] > 0
    # CPU time of the epoch (with this process's threads) and the load beside it.
    assert out["cpu_per_epoch_s"] > 0
    assert out["load_avg"] >= 0
    assert out["peak_memory_bytes"] is None or out["peak_memory_bytes"] >= 0
    # Same seed, same result.
    again = cmp.train_variant(small_task, "sparse+lap", width, 3e-3, seed=0)
    assert again["curve"] == out["curve"]


def test_sequence_patterns_replace_the_edges():
    task = cmp.TASKS["sequence"](True)          # the edges only: no encodings needed
    from gatlib.graph import path_graph
    L = task.splits["train"][0].num_nodes
    protocol = cmp.make_protocol(task, "sparse[global]", 0)
    b = next(iter(protocol.loaders["val"]))
    assert isinstance(protocol, cmp.BatchProtocol)
    first = b.edge_index[:, b.edge_index.max(0).values < L]
    # Node 0 (the read-out token) receives from every position with the global pattern.
    assert set(first[0, first[1] == 0].tolist()) == set(range(L))
    protocol = cmp.make_protocol(task, "sparse[window]", 0)
    b = next(iter(protocol.loaders["val"]))
    first = b.edge_index[:, b.edge_index.max(0).values < L]
    assert torch.equal(first, path_graph(L, 2, self_loops=True))
    with pytest.raises(ValueError, match="has no pattern 'foo'"):
        cmp.make_protocol(task, "sparse[foo]", 0)


def test_compare_resumes_and_reports(tmp_path, small_task, monkeypatch):
    monkeypatch.setitem(cmp.TASKS, "tiny", lambda quick: small_task)
    calls = []
    real = cmp.train_variant

    def counting(*args, **kwargs):
        calls.append(args[1:5])
        return real(*args, **kwargs)
    monkeypatch.setattr(cmp, "train_variant", counting)
    kw = dict(tasks=["tiny"], variants=["sparse", "dense"], seeds=[0, 1], budget=5_000,
              lrs=[1e-3, 3e-3], results=tmp_path / "runs", progress=False)
    rows = cmp.compare(**kw)
    # Two learning rates on seed 0, then the chosen one on seed 1, for each variant.
    assert len(calls) == 6
    assert [r["variant"] for r in rows] == ["sparse", "dense"]
    for r in rows:
        assert r["seeds"] == 2 and r["lr"] in (1e-3, 3e-3)
        assert abs(r["params"] - 5_000) < 2_500
        runs = sorted((tmp_path / "runs" / "pattern" / r["variant"]).glob("*/lr=*/seed=*.json"))
        assert len(runs) == 3
        chosen = [json.loads(p.read_text()) for p in runs if p.parent.name == f"lr={r['lr']:g}"]
        assert {c["seed"] for c in chosen} == {0, 1}
        tests = torch.tensor([c["test"] for c in chosen], dtype=torch.float64) * 100
        assert r["test_mean"] == pytest.approx(tests.mean().item())
    # A second call finds every run on disk and trains nothing.
    calls.clear()
    assert cmp.compare(**kw) == rows
    assert calls == []
    # Another width (budget) or number of epochs is another run, not a cached one.
    assert cmp.compare(**{**kw, "budget": 9_000, "variants": ["sparse"], "seeds": [0]})
    assert len(calls) == 2
    calls.clear()
    cmp.compare(**{**kw, "variants": ["sparse"], "seeds": [0], "epochs": 1})
    assert len(calls) == 2
    text = cmp.write_report(rows, tmp_path / "out", "Settings: test.")
    assert "| pattern | balanced accuracy |" in text and "Settings: test." in text
    assert text.count("**") >= 2                     # the best cell of the row is bold
    for name in ("compare.md", "compare.json", "compare_accuracy.png", "compare_cost.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_cli_compare_rejects_unknown_task(capsys):
    assert main(["compare", "--tasks", "pattern,nope"]) == 2
    assert "unknown task(s) nope" in capsys.readouterr().err


def test_cli_compare_end_to_end(tmp_path, small_task, monkeypatch, capsys):
    monkeypatch.setitem(cmp.TASKS, "pattern", lambda quick: small_task)
    code = main(["compare", "--tasks", "pattern", "--variants", "sparse,dense+lap",
                 "--seeds", "0", "--lrs", "0.003", "--epochs", "1", "--budget", "3000",
                 "--quiet", "--jobs", "1", "--results", str(tmp_path / "r"),
                 "--out", str(tmp_path / "o")])
    assert code == 0
    out = capsys.readouterr().out
    assert "| task | metric | sparse | dense+lap |" in out
    assert ("gatlib compare --tasks pattern --seeds 0 --variants sparse,dense+lap "
            "--budget 3000 --epochs 1`") in out
    rows = json.loads((tmp_path / "o" / "compare.json").read_text())
    assert [r["variant"] for r in rows] == ["sparse", "dense+lap"]


def test_balanced_tasks_weight_the_loss_by_class_rarity(pattern_task):
    """PATTERN's loss weighs class c by (n - n_c) / n (Dwivedi et al.): with 3 of 4 nodes in
    class 0, a node of class 1 weighs three times one of class 0."""
    out = torch.randn(4, 2, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1])
    w = torch.tensor([0.25, 0.75], dtype=torch.float64)
    want = torch.nn.functional.cross_entropy(out, y, weight=w)
    assert cmp._loss(pattern_task, out, y).item() == pytest.approx(want.item())
    per = torch.nn.functional.cross_entropy(out, y, reduction="none")
    assert want.item() == pytest.approx(((per * w[y]).sum() / w[y].sum()).item())
    # Plain accuracy tasks keep the plain loss.
    plain = cmp.Task("t", "graph", {}, 1, 2, "", metric="accuracy")
    assert cmp._loss(plain, out, y).item() == pytest.approx(
        torch.nn.functional.cross_entropy(out, y).item())


def test_citation_tasks_get_a_larger_budget():
    """Cora's 1,433 input features would leave a width of a few channels at 20,000
    parameters: its budget is 100,000, and the width it buys is a real hidden layer."""
    from gatlib.data import DatasetNotFound
    assert cmp.Task("t", "graph", {}, 1, 2, "").budget == 20_000
    try:
        cora = cmp.build_task("cora", quick=True)
    except DatasetNotFound as exc:
        pytest.skip(f"Cora is not available here: {exc}")
    assert cora.budget == 100_000
    width, params = cmp.width_for_budget(cora, "sparse", cora.budget)
    assert width >= 32 and abs(params - 100_000) < 0.2 * 100_000


def test_parallel_jobs_give_the_same_runs(tmp_path):
    """Two worker processes train the same runs as one process does (one thread each)."""
    kw = dict(tasks=["pattern"], variants=["sparse", "dense"], seeds=[0, 1], budget=3_000,
              lrs=[3e-3], quick=True, epochs=1, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = cmp.compare(results=tmp_path / "one", **kw)
    finally:
        torch.set_num_threads(threads)
    two = cmp.compare(results=tmp_path / "two", jobs=2, **kw)
    assert [r["variant"] for r in two] == ["sparse", "dense"]
    for a, b in zip(one, two):
        assert a["width"] == b["width"] and a["seeds"] == b["seeds"] == 2
        assert a["test_mean"] == pytest.approx(b["test_mean"], abs=1e-6)
    assert len(list((tmp_path / "two").rglob("seed=*.json"))) == 4
    with pytest.raises(ValueError, match="jobs"):
        cmp.compare(results=tmp_path / "x", jobs=0, **kw)


def test_cli_defaults_are_the_small_set():
    """`gatlib compare` with no option is the README's small set: the default tasks, small
    sizes, two seeds, one learning rate, a worker process per core (up to four)."""
    from gatlib.cli import _COMPARE_TASKS, build_parser
    args = build_parser().parse_args(["compare"])
    assert _COMPARE_TASKS == ",".join(cmp.DEFAULT_TASKS)
    assert (args.tasks, args.full, args.preset, args.seeds, args.lrs) == (
        None, False, None, None, None)
    small = cmp.PRESETS["small"]            # what the CLI falls back to
    assert (small.size, small.tasks, small.seeds, small.lrs) == (
        "small", cmp.DEFAULT_TASKS, "0-1", (0.003,))
    assert 1 <= args.jobs <= 4


def test_masked_node_task_is_evaluated_with_one_forward(monkeypatch):
    """On one graph split by masks, val and test come from a single forward pass, with the
    same scores and losses as evaluating each split alone."""
    from gatlib.data import csbm
    data = csbm(200, num_classes=3, feature_dim=8, seed=0)
    data.pe = torch.zeros(200, 8)
    task = cmp.Task("toy", "node", {s: [data] for s in ("train", "val", "test")}, 8, 3, "toy",
                    masks=True)
    torch.manual_seed(0)
    model = cmp._build_model(task, "sparse", 16)
    protocol = cmp.make_protocol(task, "sparse", 0)
    assert isinstance(protocol, cmp.NodeProtocol)
    alone = [protocol.evaluate(model, (s,))[s] for s in ("val", "test")]
    calls = []
    real = protocol.forward
    monkeypatch.setattr(protocol, "forward", lambda *a: calls.append(1) or real(*a))
    scores = protocol.evaluate(model, ("val", "test"))
    both = [scores["val"], scores["test"]]
    assert len(calls) == 1
    for got, want in zip(both, alone):
        assert got == pytest.approx(want)
    assert alone[0] != alone[1]


# ------------------------------------------------------------------ data, identity, locks

@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """No dataset anywhere: an empty local root and no mirror."""
    import gatlib.data.root
    monkeypatch.setattr(gatlib.data.root, "mirror_roots", lambda: [])
    monkeypatch.setenv("GATLIB_DATA", str(tmp_path / "empty-root"))


def _no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a model was trained")
    monkeypatch.setattr(cmp, "train_variant", refuse)


def test_compare_checks_every_dataset_before_training(tmp_path, no_data, monkeypatch, capsys):
    """Before, a missing MUTAG was found after the other tasks had trained (12 minutes), in a
    line among progress bars, with exit 0 and a table without MUTAG."""
    _no_training(monkeypatch)
    code = main(["compare", "--tasks", "pattern,mutag,cora", "--seeds", "0", "--quiet",
                 "--jobs", "1", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 3 and "Traceback" not in "".join(err)
    assert "MUTAG (task mutag), Cora (task cora); nothing was trained" in err[0]
    assert "MUTAG: not in" in err[1] and "GATLIB_OFFLINE" in err[1] and "MUTAG.zip" in err[1]
    assert "`gatlib data fetch MUTAG Cora`" in err[2] and "--mirror DIR" in err[2]
    assert "--skip-missing" in err[2]
    assert not (tmp_path / "o").exists()
    with pytest.raises(DatasetNotFound, match="mutag .MUTAG, not found.*nothing was trained"):
        cmp.compare(["pattern", "mutag"], results=tmp_path / "r", progress=False)


def test_compare_skip_missing_names_the_skipped_tasks(tmp_path, small_task, no_data,
                                                      monkeypatch, capsys):
    monkeypatch.setitem(cmp.TASKS, "tiny", lambda quick: small_task)
    code = main(["compare", "--tasks", "tiny,mutag", "--variants", "sparse", "--seeds", "0",
                 "--lrs", "0.003", "--epochs", "1", "--budget", "3000", "--quiet", "--jobs",
                 "1", "--skip-missing", "--results", str(tmp_path / "r"), "--out",
                 str(tmp_path / "o")])
    assert code == 0
    assert "skipping mutag (MUTAG: not found) (--skip-missing)" in capsys.readouterr().err
    text = (tmp_path / "o" / "compare.md").read_text()
    assert "| pattern | balanced accuracy |" in text
    assert "| mutag | skipped: dataset MUTAG not available (not found) |" in text
    assert "- **mutag**: not run, dataset MUTAG not available (not found)." in text


def test_a_cached_run_of_other_settings_is_run_again(tmp_path, small_task, monkeypatch,
                                                    capsys):
    """A run file is reused only for the same settings, data and gatlib version."""
    monkeypatch.setitem(cmp.TASKS, "tiny", lambda quick: small_task)
    calls = []
    real = cmp.train_variant
    monkeypatch.setattr(cmp, "train_variant",
                        lambda *a, **k: calls.append(a[1:5]) or real(*a, **k))
    kw = dict(tasks=["tiny"], variants=["sparse"], seeds=[0], budget=3_000, lrs=[3e-3],
              results=tmp_path / "runs", progress=False, epochs=1)
    first = cmp.compare(**kw)
    run_file = next((tmp_path / "runs").rglob("seed=0.json"))
    rec = json.loads(run_file.read_text())
    assert rec["run_hash"] and rec["run"]["gatlib"] == cmp.__version__
    assert rec["run"]["device"] == "cpu" and rec["run"]["width"] == first[0]["width"]
    assert cmp.compare(**kw) == first and len(calls) == 1       # cached
    monkeypatch.setattr(cmp, "__version__", "9.9.9")
    capsys.readouterr()
    cmp.compare(**kw)
    assert len(calls) == 2
    assert f"gatlib: '{rec['run']['gatlib']}' -> '9.9.9'" in capsys.readouterr().err
    assert json.loads(run_file.read_text())["run"]["gatlib"] == "9.9.9"


def test_one_comparison_per_results_folder(tmp_path, monkeypatch):
    from gatlib.utils import FolderLock, FolderLocked
    _no_training(monkeypatch)
    with FolderLock(tmp_path / "r"):
        with pytest.raises(FolderLocked, match="in use by process"):
            cmp.compare(["pattern"], results=tmp_path / "r", progress=False)


def test_ctrl_c_in_compare_exits_130_and_keeps_finished_runs(tmp_path, small_task,
                                                             monkeypatch, capsys):
    monkeypatch.setitem(cmp.TASKS, "tiny", lambda quick: small_task)
    real, calls = cmp.train_variant, []

    def second_is_interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(cmp, "train_variant", second_is_interrupted)
    args = ["compare", "--tasks", "tiny", "--variants", "sparse", "--seeds", "0-1", "--lrs",
            "0.003", "--epochs", "1", "--budget", "3000", "--quiet", "--jobs", "1",
            "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o")]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted; re-run the same command to resume" in err and "Traceback" not in err
    assert len(list((tmp_path / "r").rglob("seed=*.json"))) == 1     # the finished run kept
    assert main(args) == 0 and len(calls) == 3                      # only the rest is run
