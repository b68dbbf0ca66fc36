"""``gatlib train`` on a heterogeneous graph (``dataset: mag_synthetic``): the synthetic graph of
OGB-MAG's types, the ``to_hetero`` GAT of gatlib's layers, the committed config."""
import json
from pathlib import Path

import pytest
import torch

from gatlib import cli
from gatlib.experiments import load_config
from gatlib.experiments.config import ConfigError
from gatlib.experiments.hetero import HeteroNodeClassifier, synthetic_mag
from gatlib.nn import GATConv

CONFIG = Path(__file__).resolve().parents[2] / "experiments/configs/mag_synthetic-gat.yaml"


def test_synthetic_mag_has_ogb_mag_types_and_valid_edges():
    data = synthetic_mag(200, num_classes=3, feature_dim=8, seed=1)
    assert set(data.node_types) == {"paper", "author", "institution", "field_of_study"}
    rels = {rel for _, rel, _ in data.edge_types}
    assert rels == {"cites", "writes", "affiliated_with", "has_topic", "rev_writes",
                    "rev_affiliated_with", "rev_has_topic"}
    data.validate(raise_on_error=True)             # indices within each type's node count
    for src, rel, dst in data.edge_types:
        if rel.startswith("rev_"):
            fwd = data[dst, rel[4:], src].edge_index
            assert torch.equal(data[src, rel, dst].edge_index, fwd.flip(0))
    paper = data["paper"]
    assert paper.y.shape == (200,) and int(paper.y.max()) == 2
    assert not (paper.train_mask & paper.test_mask).any()
    # Every paper has an author and a field; the same seed draws the same graph.
    assert data["author", "writes", "paper"].edge_index[1].unique().numel() == 200
    again = synthetic_mag(200, num_classes=3, feature_dim=8, seed=1)
    assert torch.equal(again["author", "writes", "paper"].edge_index,
                       data["author", "writes", "paper"].edge_index)


def test_hetero_classifier_is_gatlib_layers_per_edge_type_and_eval_is_deterministic():
    data = synthetic_mag(120, num_classes=3, feature_dim=8, seed=0)
    model = HeteroNodeClassifier(data.metadata(), data.x_dict, data.edge_index_dict, 3,
                                 hidden_channels=4, heads=2, dropout=0.5, attn_dropout=0.5)
    convs = [m for m in model.modules() if isinstance(m, GATConv)]
    assert len(convs) == 2 * len(data.edge_types)
    model.eval()                                   # dropout modules follow eval()
    a = model(data.x_dict, data.edge_index_dict)
    assert a.shape == (120, 3)
    assert torch.equal(a, model(data.x_dict, data.edge_index_dict))


def test_mag_synthetic_trains_through_gatlib_train(tmp_path):
    res = tmp_path / "res"
    code = cli.main(["train", "--config", str(CONFIG), "--results", str(res), "--quiet",
                     "synthetic.num_nodes=300", "train.epochs=3", "model.heads=2"])
    assert code == 0
    metrics = json.loads((res / "mag_synthetic-gat" / "0" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["dataset"] == "mag_synthetic"
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


@pytest.mark.parametrize("override,named", [("model.layer=dense", "model.layer=dense"),
                                            ("loader.kind=neighbor", "loader.kind=neighbor"),
                                            ("pe.type=lap", "pe.type=lap")])
def test_mag_synthetic_refuses_what_it_cannot_train(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(CONFIG, [override])
