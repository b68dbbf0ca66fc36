"""The command line end to end on tiny data: train, resume after an interruption, summarize."""
import json

import pytest
import torch
from torch_geometric.data import Data

import gatlib.data
from gatlib import cli
from gatlib.experiments import apply_overrides, load_config, parse_seeds
from gatlib.experiments import supervised as run_mod
from gatlib.data.splits import stratified_folds
from gatlib.experiments.metrics import roc_auc
from gatlib.experiments.protocols import BatchProtocol


def _toy_node_dataset():
    g = torch.Generator().manual_seed(0)
    n = 40
    y = torch.arange(n) % 2
    x = torch.randn(n, 5, generator=g) + y.view(-1, 1).float()
    ei = torch.randint(0, n, (2, 160), generator=g)
    idx = torch.randperm(n, generator=g)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    masks[0][idx[:20]] = True
    masks[1][idx[20:30]] = True
    masks[2][idx[30:]] = True
    return [Data(x=x, y=y, edge_index=ei, train_mask=masks[0], val_mask=masks[1],
                 test_mask=masks[2])]


class _ToyGraphs(list):
    num_classes = 2


def _toy_graph_dataset():
    g = torch.Generator().manual_seed(1)
    out = _ToyGraphs()
    for i in range(40):
        n = 5 + i % 4
        label = i % 2
        out.append(Data(x=torch.randn(n, 3, generator=g) + label,
                        edge_index=torch.randint(0, n, (2, 3 * n), generator=g),
                        y=torch.tensor([label])))
    return out


@pytest.fixture
def toy(monkeypatch):
    def load(name, **_):
        return _toy_node_dataset() if name == "toy" else _toy_graph_dataset()
    monkeypatch.setattr(gatlib.data, "load_dataset", load, raising=False)


def _config(tmp_path, **extra):
    text = ("dataset: toy\ntask: node\nmetric: accuracy\n"
            "model: {layer: gat, hidden_channels: 4, heads: 2, dropout: 0.2, attn_dropout: 0.2}\n"
            "train: {epochs: 30, patience: 1000, checkpoint_every: 5}\n")
    for k, v in extra.items():
        text += f"{k}: {v}\n"
    path = tmp_path / "toy-gat.yaml"
    path.write_text(text)
    return path


def test_train_end_to_end_and_summary(toy, tmp_path, capsys):
    cfg = _config(tmp_path, published='"50.0 ± 1.0"')
    res = tmp_path / "results"
    assert cli.main(["train", "--config", str(cfg), "--seeds", "0-1", "--results", str(res),
                     "--quiet"]) == 0
    for seed in (0, 1):
        m = json.loads((res / "toy-gat" / str(seed) / "metrics.json").read_text())
        assert 0.0 <= m["test_accuracy"] <= 1.0 and m["epochs_run"] == 30
        assert not (res / "toy-gat" / str(seed) / "checkpoint.pt").exists()
        lines = (res / "toy-gat" / str(seed) / "log.jsonl").read_text().splitlines()
        assert [json.loads(ln)["epoch"] for ln in lines] == list(range(30))
    summary = (res / "summary.md").read_text()
    assert "| toy-gat | toy | accuracy |" in summary and "50.0 ± 1.0" in summary
    assert (res / "toy-gat" / "curves.png").stat().st_size > 0
    capsys.readouterr()
    assert cli.main(["summarize", str(res), "--no-plots"]) == 0
    assert "toy-gat" in capsys.readouterr().out


def _interrupt_on_call(monkeypatch, name: str, n: int):
    """Make ``run_mod.<name>`` raise KeyboardInterrupt on its n-th call; return the original.
    ``_evaluate``: a graph run's per-epoch evaluation (the calls with the validation split;
    the extra test-split calls of best epochs, which depend on the draws, are not counted)."""
    calls = {"n": 0}
    where, attr = (BatchProtocol, "evaluate") if name == "_evaluate" else (run_mod, name)
    real = getattr(where, attr)

    def flaky(*args):
        if name == "_evaluate" and "val" not in args[-1]:
            return real(*args)
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*args)
    monkeypatch.setattr(where, attr, flaky)
    return real


def test_interrupted_run_resumes_to_the_same_result(toy, tmp_path, monkeypatch):
    cfg = _config(tmp_path)
    full = tmp_path / "full"
    cli.main(["train", "--config", str(cfg), "--results", str(full), "--quiet"])
    want = json.loads((full / "toy-gat" / "0" / "metrics.json").read_text())

    real = _interrupt_on_call(monkeypatch, "_metric", 3 * 13)  # 3 metrics an epoch: epoch 12
    part = tmp_path / "part"
    assert cli.main(["train", "--config", str(cfg), "--results", str(part), "--quiet"]) == 130
    seed_dir = part / "toy-gat" / "0"
    assert (seed_dir / "checkpoint.pt").exists() and not (seed_dir / "metrics.json").exists()
    with open(seed_dir / "log.jsonl", "a") as f:
        f.write('{"epoch": 12, "train_lo')                   # as if killed while appending
    monkeypatch.setattr(run_mod, "_metric", real)
    cli.main(["train", "--config", str(cfg), "--results", str(part), "--quiet"])
    got = json.loads((seed_dir / "metrics.json").read_text())
    for key in ("test_accuracy", "val_accuracy", "best_epoch", "epochs_run"):
        assert got[key] == want[key], key
    epochs = [json.loads(ln)["epoch"] for ln in (seed_dir / "log.jsonl").read_text().splitlines()]
    assert epochs == list(range(30))
    # Killed in its first epoch (no checkpoint yet): the rerun starts the log afresh.
    first = tmp_path / "first"
    _interrupt_on_call(monkeypatch, "_metric", 2)
    assert cli.main(["train", "--config", str(cfg), "--results", str(first), "--quiet"]) == 130
    first_dir = first / "toy-gat" / "0"
    assert not (first_dir / "checkpoint.pt").exists()
    (first_dir / "log.jsonl").write_text('{"epoch": 0, "train_loss": 1.0}\n{"epo')
    monkeypatch.setattr(run_mod, "_metric", real)
    cli.main(["train", "--config", str(cfg), "--results", str(first), "--quiet"])
    epochs = [json.loads(ln)["epoch"]
              for ln in (first_dir / "log.jsonl").read_text().splitlines()]
    assert epochs == list(range(30))
    # A finished run is not run again.
    cli.main(["train", "--config", str(cfg), "--results", str(part), "--quiet"])
    assert json.loads((seed_dir / "metrics.json").read_text()) == got


def _graph_config(tmp_path, layer: str, epochs: int, patience: int):
    path = tmp_path / "toy-graphs.yaml"
    path.write_text("dataset: toygraphs\ntask: graph\nprotocol: cv10\n"
                    f"model: {{layer: {layer}, hidden_channels: 8, heads: 2, norm: batch}}\n"
                    f"train: {{epochs: {epochs}, patience: {patience}, batch_size: 16}}\n")
    return path


def test_graph_classification_ten_folds(toy, tmp_path):
    path = _graph_config(tmp_path, "transformer", epochs=2, patience=5)
    res = tmp_path / "res"
    cli.main(["train", "--config", str(path), "--results", str(res), "--quiet"])
    m = json.loads((res / "toy-graphs" / "0" / "metrics.json").read_text())
    assert len(m["test_accuracy_folds"]) == 10
    assert len(m["best_epoch_folds"]) == 10 and all(0 <= e < 2 for e in m["best_epoch_folds"])
    assert abs(m["test_accuracy"] - sum(m["test_accuracy_folds"]) / 10) < 1e-9


def test_graph_run_logs_every_fold_and_resumes_mid_fold(toy, tmp_path, monkeypatch):
    path = _graph_config(tmp_path, "gat", epochs=3, patience=100)
    full = tmp_path / "full"
    cli.main(["train", "--config", str(path), "--results", str(full), "--quiet"])
    want = json.loads((full / "toy-graphs" / "0" / "metrics.json").read_text())
    rows = [json.loads(ln) for ln in
            (full / "toy-graphs" / "0" / "log.jsonl").read_text().splitlines()]
    assert [(r["fold"], r["epoch"]) for r in rows] == [(k, e) for k in range(10)
                                                       for e in range(3)]
    assert all(r["train_loss"] > 0 and 0 <= r["val"] <= 1 for r in rows)
    assert (full / "toy-graphs" / "curves.png").stat().st_size > 0

    real = _interrupt_on_call(monkeypatch, "_evaluate", 4 * 3 + 3)  # dies in fold 4, epoch 2
    part = tmp_path / "part"
    assert cli.main(["train", "--config", str(path), "--results", str(part), "--quiet"]) == 130
    seed_dir = part / "toy-graphs" / "0"
    finished = len(json.loads((seed_dir / "folds.json").read_text()))
    logged = len((seed_dir / "log.jsonl").read_text().splitlines())
    assert finished < 10 and logged > 3 * finished      # it died inside a fold
    with open(seed_dir / "log.jsonl", "a") as f:
        f.write('{"fold": 4, "epoch": 2, "tra')             # as if killed while appending
    monkeypatch.setattr(BatchProtocol, "evaluate", real)
    cli.main(["train", "--config", str(path), "--results", str(part), "--quiet"])
    got = json.loads((seed_dir / "metrics.json").read_text())
    assert got["test_accuracy_folds"] == want["test_accuracy_folds"]
    keys = [(json.loads(ln)["fold"], json.loads(ln)["epoch"])
            for ln in (seed_dir / "log.jsonl").read_text().splitlines()]
    assert keys == [(k, e) for k in range(10) for e in range(3)]     # no fold logged twice


def test_folds_are_stratified_and_disjoint():
    y = torch.tensor([0] * 30 + [1] * 10)
    folds = stratified_folds(y, 10, seed=0)
    assert sorted(torch.cat(folds).tolist()) == list(range(40))
    assert all(int((y[f] == 1).sum()) == 1 for f in folds)


def test_config_errors_and_overrides(tmp_path):
    cfg = load_config(_config(tmp_path), ["model.heads=4", "optim.lr=0.01"])
    assert cfg["model"]["heads"] == 4 and cfg["optim"]["lr"] == 0.01
    with pytest.raises(ValueError, match="unknown config key 'model.head'"):
        apply_overrides(cfg, ["model.head=4"])
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(cfg, ["model.heads"])
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("5,1") == [1, 5]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("3-1")


def test_roc_auc_matches_pairwise_definition():
    g = torch.Generator().manual_seed(0)
    score = torch.randint(0, 5, (60,), generator=g).float()     # many ties
    y = torch.randint(0, 2, (60,), generator=g)
    pos, neg = score[y == 1], score[y == 0]
    gt = (pos.view(-1, 1) > neg.view(1, -1)).double()
    pairs = gt + 0.5 * (pos.view(-1, 1) == neg.view(1, -1)).double()
    assert abs(roc_auc(score, y) - pairs.mean().item()) < 1e-12


def test_summarize_without_runs(tmp_path, capsys):
    from gatlib.experiments import summarize
    with pytest.raises(FileNotFoundError, match="no finished runs"):
        summarize(tmp_path)
    assert cli.main(["summarize", str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err


def _expected_stop(rows, patience, stop_on):
    """Replay the early-stopping rule on a log: (kept epoch, epochs run)."""
    best_val, best_loss, kept, bad = -float("inf"), float("inf"), -1, 0
    for r in rows:
        up, down = r["val"] >= best_val, r["val_loss"] <= best_loss
        if stop_on == "val":
            down = up
        if up and down:
            kept = r["epoch"]
        if up or down:
            best_val, best_loss, bad = max(best_val, r["val"]), min(best_loss, r["val_loss"]), 0
        else:
            bad += 1
        if bad >= patience:
            return kept, r["epoch"] + 1
    return kept, len(rows)


@pytest.mark.parametrize("stop_on", ["val_or_loss", "val"])
def test_early_stopping_rules(toy, tmp_path, stop_on):
    """Both rules (the GAT code's for Cora, the authors' for CiteSeer) keep the epoch and stop
    where a replay of the rule on the per-epoch log says."""
    cfg = _config(tmp_path)
    res = tmp_path / stop_on
    assert cli.main(["train", "--config", str(cfg), "--results", str(res), "--quiet",
                     "train.patience=3", "train.epochs=60", f"train.stop_on={stop_on}"]) == 0
    seed_dir = res / "toy-gat" / "0"
    rows = [json.loads(ln) for ln in (seed_dir / "log.jsonl").read_text().splitlines()]
    m = json.loads((seed_dir / "metrics.json").read_text())
    kept, run = _expected_stop(rows, 3, stop_on)
    assert (m["best_epoch"], m["epochs_run"]) == (kept, run)
    assert m["test_accuracy"] == rows[kept]["test"]


def test_bad_stop_on_is_named(toy, tmp_path, capsys):
    with pytest.raises(ValueError, match="train.stop_on"):
        load_config(_config(tmp_path), ["train.stop_on=loss"])
    assert cli.main(["train", "--config", str(_config(tmp_path)), "--results",
                     str(tmp_path / "r"), "--quiet", "train.stop_on=loss"]) == 2
    assert "train.stop_on" in capsys.readouterr().err


@pytest.mark.parametrize("setting,expected", [("auto", True), ("true", True), ("false", False)])
def test_sparse_features_setting(toy, tmp_path, monkeypatch, setting, expected):
    """auto stores bag-of-words features (at most 10% non-zero) as CSR; the model sees it."""
    def sparse_toy(name, **_):
        data = _toy_node_dataset()[0]
        data.x = (data.x > 2.2).float()                       # ~5% non-zero
        return [data]
    monkeypatch.setattr(gatlib.data, "load_dataset", sparse_toy, raising=False)
    seen = []
    original = run_mod._build_node_model

    def build(*args, **kwargs):
        model = original(*args, **kwargs)
        model.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].layout))
        return model
    monkeypatch.setattr(run_mod, "_build_node_model", build)
    res = tmp_path / setting
    assert cli.main(["train", "--config", str(_config(tmp_path)), "--results", str(res),
                     "--quiet", "train.epochs=3", f"sparse_features={setting}"]) == 0
    m = json.loads((res / "toy-gat" / "0" / "metrics.json").read_text())
    assert m["sparse_features"] is expected
    layout = torch.sparse_csr if expected else torch.strided
    assert seen and all(s == layout for s in seen)


def test_sparse_features_auto_keeps_dense_features_dense(toy, tmp_path):
    res = tmp_path / "r"
    assert cli.main(["train", "--config", str(_config(tmp_path)), "--results", str(res),
                     "--quiet", "train.epochs=2"]) == 0
    assert json.loads((res / "toy-gat" / "0" / "metrics.json").read_text())[
        "sparse_features"] is False


def test_bad_sparse_features_is_named(toy, tmp_path, capsys):
    with pytest.raises(ValueError, match="sparse_features"):
        load_config(_config(tmp_path), ["sparse_features=maybe"])
    with pytest.raises(ValueError, match="sparse_features=true cannot"):
        load_config(_config(tmp_path), ["sparse_features=true", "pe.type=lap", "pe.dim=2",
                                        "pe.channels=2"])
    assert cli.main(["train", "--config", str(_config(tmp_path)), "--results",
                     str(tmp_path / "r"), "--quiet", "sparse_features=maybe"]) == 2
    assert "sparse_features" in capsys.readouterr().err
    assert cli.main(["train", "--config", str(_config(tmp_path)), "--results",
                     str(tmp_path / "s"), "--quiet", "sparse_features=true", "pe.type=lap",
                     "pe.dim=2", "pe.channels=2"]) == 2
    assert "sparse_features=true cannot" in capsys.readouterr().err


def test_graphs_without_features_get_capped_one_hot_degrees(monkeypatch):
    """IMDB-BINARY has no node features and degrees above the cap: every degree of the cap or
    more shares the last slot instead of failing."""
    class _NoFeatures(list):
        num_classes = 2
    star = Data(edge_index=torch.stack([torch.arange(1, 80), torch.zeros(79, dtype=torch.long)]),
                num_nodes=80, y=torch.tensor([0]))
    pair = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=3, y=torch.tensor([1]))
    monkeypatch.setattr(gatlib.data, "load_dataset", lambda name, **_: _NoFeatures([star, pair]),
                        raising=False)
    cfg = {"dataset": "x", "pe": {"type": None}}
    data, num_classes = run_mod._graph_dataset(cfg)
    cap = run_mod.MAX_DEGREE_FEATURE
    assert num_classes == 2 and data[0].x.shape == (80, cap + 1)
    assert data[0].x[0].argmax() == cap and data[0].x[1:, 0].all()
    assert data[1].x.argmax(1).tolist() == [1, 1, 0]
    assert torch.equal(data[0].x.sum(1), torch.ones(80))
