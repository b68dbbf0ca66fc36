"""`gatlib compare --preset medium`: the paper's generators, the medium task's model settings,
the Exphormer-style and linear variants, and resuming after an interruption."""
import json

import pytest
import torch

import gatlib.experiments.compare as cmp
import gatlib.experiments.tasks as tasks
from gatlib.cli import main
from gatlib.data import sbm_cluster, sbm_pattern


@pytest.mark.parametrize("kind", ["pattern", "cluster"])
def test_paper_generators_match_the_papers_statistics(kind):
    """Mean nodes and edges (both directions) per graph within 5% of the paper's datasets."""
    make = sbm_pattern if kind == "pattern" else sbm_cluster
    graphs = make(num_graphs=400, seed=1, **tasks.PAPER_SBM[kind])
    nodes = sum(g.num_nodes for g in graphs) / len(graphs)
    edges = sum(g.edge_index.size(1) for g in graphs) / len(graphs)
    want_nodes, want_edges = tasks.PAPER_SBM_STATS[kind]
    assert abs(nodes / want_nodes - 1) < 0.05, nodes
    assert abs(edges / want_edges - 1) < 0.05, edges


@pytest.fixture
def tiny_medium(monkeypatch):
    """The medium size with a few graphs per split (the generators and settings unchanged)."""
    monkeypatch.setitem(tasks.SBM_SPLITS, "medium", {"pattern": (12, 4, 4),
                                                     "cluster": (12, 4, 4)})


def test_medium_task_has_the_papers_settings(tiny_medium):
    for kind, k in (("pattern", 2), ("cluster", 10)):
        task = cmp.build_task(kind, size="medium")
        assert [len(task.splits[s]) for s in ("train", "val", "test")] == [12, 4, 4]
        assert (task.norm, task.num_layers, task.pe_dim, task.patience) == ("batch", 4, k, 8)
        g = task.splits["train"][0]
        assert g.pe.shape == (g.num_nodes, k)
        model = cmp._build_model(task, "sparse+lap", 32)
        assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    # Other tasks read the medium size as full.
    assert cmp.build_task("sequence", size="medium").epochs == cmp.build_task("sequence").epochs
    with pytest.raises(ValueError, match="size must be one of"):
        cmp.build_task("pattern", size="huge")


def test_exphormer_variant_is_sparse_attention_on_the_union_graph(tiny_medium):
    """The protocol's batches hold each graph + its expander + a virtual node, typed; the model
    scores real nodes only; and its output is the graph transformer's over that union graph,
    built here independently."""
    from torch_geometric.data import Batch

    from gatlib.graph import expander_edges, union, virtual_nodes
    task = cmp.build_task("pattern", size="medium")
    protocol = cmp.make_protocol(task, "sparse[exphormer]+lap", seed=0)
    batch = next(iter(protocol.loaders["val"]))
    originals = task.splits["val"][:batch.num_graphs]
    assert batch.num_nodes == sum(g.num_nodes + 1 for g in originals)
    edges, types, x, pe, offset = [], [], [], [], 0
    for i, g in enumerate(originals):
        n = g.num_nodes
        parts = [g.edge_index, expander_edges(n, 4, seed=(1 << 32) + i), virtual_nodes(n, 1)]
        ei = union(*parts, num_nodes=n + 1)
        keys = ei[1] * (n + 1) + ei[0]
        types.append(torch.stack([torch.isin(keys, p[1] * (n + 1) + p[0]) for p in parts],
                                 1).float())
        edges.append(ei + offset)
        offset += n + 1
        x.append(torch.cat([torch.cat([g.x, torch.zeros(n, 1)], 1),
                            torch.eye(g.x.size(1) + 1)[-1:]]))
        pe.append(torch.cat([g.pe, torch.zeros(1, g.pe.size(1))]))
    assert torch.equal(batch.edge_index, torch.cat(edges, 1))
    assert torch.equal(batch.edge_attr, torch.cat(types))
    assert torch.equal(batch.x, torch.cat(x)) and torch.equal(batch.pe, torch.cat(pe))

    torch.manual_seed(0)
    model = cmp._build_model(task, "sparse[exphormer]+lap", 32).eval()
    assert model.edge_dim == 3 and model.in_channels == task.num_features + 1
    out, y = protocol.forward(model, batch)
    assert out.shape[0] == y.numel() == sum(g.num_nodes for g in originals)
    full = model(torch.cat(x), torch.cat(edges, 1), batch.batch, edge_attr=torch.cat(types),
                 pe=torch.cat(pe))
    real = torch.cat([torch.arange(g.num_nodes) + sum(h.num_nodes + 1 for h in originals[:i])
                      for i, g in enumerate(originals)])
    torch.testing.assert_close(out, full[real])
    assert torch.equal(y, Batch.from_data_list(originals).y)


def test_medium_preset_resumes_after_an_interruption(tiny_medium, tmp_path, monkeypatch,
                                                     capsys):
    real, calls = cmp.train_variant, []

    def third_is_interrupted(*a, **k):
        calls.append(a[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(cmp, "train_variant", third_is_interrupted)
    args = ["compare", "--preset", "medium", "--tasks", "cluster", "--variants",
            "sparse[exphormer]+lap,linear+lap", "--seeds", "0-1", "--epochs", "2",
            "--budget", "4000", "--quiet", "--jobs", "1", "--results", str(tmp_path / "r"),
            "--out", str(tmp_path / "o")]
    assert main(args) == 130
    assert "interrupted; re-run the same command to resume" in capsys.readouterr().err
    assert len(list((tmp_path / "r").rglob("seed=*.json"))) == 2
    assert main(args) == 0
    assert len(calls) == 3 + 2                       # the interrupted run and the last one
    out = capsys.readouterr().out
    assert "| cluster | balanced accuracy |" in out and "preset medium" in out
    assert "gatlib compare --preset medium --tasks cluster --seeds 0-1" in out
    assert ("4 attention layers, 4 heads, batch norm, at most 2 epochs with early stopping "
            "after 8 without a better validation score, AdamW") in out
    rows = json.loads((tmp_path / "o" / "compare.json").read_text())
    assert {r["variant"] for r in rows} == {"sparse[exphormer]+lap", "linear+lap"}
    runs = [json.loads(p.read_text()) for p in (tmp_path / "r").rglob("seed=*.json")]
    assert {r["run"]["size"] for r in runs} == {"medium"}
    assert all(r["run"]["norm"] == "batch" and r["run"]["pe_dim"] == 10 for r in runs)


def test_pareto_front():
    from gatlib.experiments.report import pareto_front
    # (cost, score): b beats a; c is dearer but better; d is dearer and worse than c;
    # e ties c's cost with a lower score; f has no cost.
    costs = [2.0, 1.0, 3.0, 4.0, 3.0, None]
    scores = [50.0, 60.0, 70.0, 65.0, 69.0, 99.0]
    assert pareto_front(costs, scores) == [1, 2]
    assert pareto_front([], []) == []
    assert pareto_front([1.0, 1.0], [5.0, 5.0]) == [0]


def test_report_marks_each_tasks_front(tmp_path):
    def row(task, variant, score, ms, mib):
        return {"task": task, "description": task, "variant": variant, "metric": "accuracy",
                "params": 1000, "budget": 1000, "width": 8, "lr": 1e-3, "test_mean": score,
                "test_std": 1.0, "seeds": 3, "val_mean": score, "time_per_epoch_s": ms / 1000,
                "cpu_per_epoch_s": ms / 1000, "load_avg": 1.0,
                "peak_memory_bytes": mib * 2**20, "epochs": 5, "device": "cpu"}
    rows = [row("a", "sparse", 80, 10, 50), row("a", "dense", 60, 20, 40),
            row("a", "linear", 55, 30, 60), row("b", "sparse", 40, 10, 10),
            row("b", "dense", 45, 5, 20)]
    text = cmp.write_report(rows, tmp_path, "")
    line = {tuple(c.strip() for c in ln.split("|")[1:3]): ln.split("|")[-2].strip()
            for ln in text.splitlines() if ln.startswith("| a |") or ln.startswith("| b |")}
    assert line[("a", "sparse")] == "epoch, MiB" and line[("a", "dense")] == "MiB"
    assert line[("a", "linear")] == "-"
    assert line[("b", "dense")] == "epoch, MiB" and line[("b", "sparse")] == "MiB"
    assert (tmp_path / "compare_cost.png").stat().st_size > 0
