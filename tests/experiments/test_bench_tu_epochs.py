"""The TU epoch-time benchmark's pieces (no timings asserted): a worker trains a config's model
on fold 0 of a stand-in dataset and reports its path, and the script writes its table from the
workers' records, refusing a worker that ran on the wrong path."""
import json

import pytest
import torch
from torch_geometric.data import Data

import gatlib.data

from .scripts import load_benchmark


@pytest.fixture(scope="module")
def tu():
    return load_benchmark("tu_epochs")


class _Stand(list):
    """Forty small labelled graphs with the attributes the graph loader reads."""
    num_classes = 2


@pytest.fixture
def tiny_tu(monkeypatch):
    g = torch.Generator().manual_seed(0)
    graphs = _Stand()
    for i in range(40):
        n = 5 + i % 4
        ei = torch.randint(0, n, (2, 3 * n), generator=g)
        graphs.append(Data(x=torch.randn(n, 7, generator=g), edge_index=ei,
                           y=torch.tensor([i % 2])))
    monkeypatch.setattr(gatlib.data, "load_dataset", lambda name, **_: graphs)


@pytest.mark.parametrize("config", ["mutag-gat", "mutag-transformer", "mutag-gps+lap"])
def test_worker_trains_fold_zero(tu, tiny_tu, config):
    got = tu.worker(config, epochs=2, warmup=0)
    assert got["config"] == config and got["epochs"] == 2
    assert got["seconds"] > 0 and got["train_graphs"] == 32          # 40 - 4 test - 4 val
    from gatlib import native
    assert got["native"] == native.available()


def test_table_from_worker_records(tu, tmp_path, monkeypatch):
    def fake(config, path, epochs, warmup):
        return {"config": config, "seconds": 0.2 if path == "native" else 0.5,
                "train_graphs": 150, "native": path == "native", "load": 0.5}
    monkeypatch.setattr(tu, "run_worker", fake)
    monkeypatch.setattr("sys.argv", ["tu_epochs.py", "--datasets", "mutag", "--layers",
                                     "gat,transformer", "--out", str(tmp_path / "t")])
    tu.main()
    table = (tmp_path / "t.md").read_text()
    assert "| mutag-gat | 150 | 0.200 | 0.500 | **2.50x** |" in table
    rows = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert [r["config"] for r in rows] == ["mutag-gat", "mutag-transformer"]


def test_unknown_config_and_bad_epochs_are_refused(tu, monkeypatch, capsys):
    for argv in (["--datasets", "nosuch"], ["--epochs", "0"]):
        monkeypatch.setattr("sys.argv", ["tu_epochs.py", *argv])
        with pytest.raises(SystemExit) as exc:
            tu.main()
        assert exc.value.code == 2
    assert "no config experiments/configs/nosuch-gat.yaml" in capsys.readouterr().err
