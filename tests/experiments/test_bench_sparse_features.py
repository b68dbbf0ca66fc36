"""The sparse-features benchmark's pieces on a stand-in for Cora (no timings asserted): every
candidate builds the same model, CSR and dense features give the same logits, one epoch trains,
and the script writes its table with a stand-in for ``measure``."""
import json

import pytest
import torch
from torch_geometric.data import Data

import gatlib.data
from gatlib.experiments import bench as benchmarks
from gatlib.experiments.bench_graphs import (PLANETOID_IMPLS, planetoid_epoch_step,
                                             planetoid_model)

from .scripts import load_benchmark


@pytest.fixture
def tiny_planetoid(monkeypatch):
    g = torch.Generator().manual_seed(0)
    n = 60
    x = (torch.rand(n, 40, generator=g) < 0.1).float()
    mask = torch.zeros(n, dtype=torch.bool)
    mask[:20] = True
    data = Data(x=x, y=torch.arange(n) % 3, edge_index=torch.randint(0, n, (2, 200), generator=g),
                train_mask=mask)
    monkeypatch.setattr(gatlib.data, "load_dataset", lambda name, **_: [data.clone()])


@pytest.mark.parametrize("layer", ["gat", "gatv2", "transformer"])
def test_candidates_share_sizes_and_csr_matches_dense(tiny_planetoid, layer):
    models = {impl: planetoid_model(impl, "tiny", layer) for impl in PLANETOID_IMPLS}
    sizes = {impl: sum(p.numel() for p in m.parameters()) for impl, (m, _, _) in models.items()}
    assert sizes["gatlib-dense"] == sizes["gatlib-csr"] == sizes["pyg"]
    (dense, x, data), (csr, xs, _) = models["gatlib-dense"], models["gatlib-csr"]
    assert xs.layout == torch.sparse_csr and x.layout == torch.strided
    dense.eval(), csr.eval()
    torch.testing.assert_close(csr(xs, data.edge_index), dense(x, data.edge_index))


def test_epoch_step_trains(tiny_planetoid):
    step = planetoid_epoch_step("gatlib-csr", "tiny")
    before = [p.detach().clone() for p in step.model.parameters()]
    step()
    assert all(not torch.equal(a, b) for a, b in zip(before, step.model.parameters()))
    assert not step.model.training                  # it ends with the evaluation pass
    with pytest.raises(ValueError, match="impl"):
        planetoid_model("cuda-magic", "tiny")


def test_script_end_to_end(tiny_planetoid, tmp_path, monkeypatch):
    mod = load_benchmark("sparse_features")
    calls = []

    def fake_measure(target, kwargs, repeats=5, **_):
        calls.append(kwargs["impl"])
        planetoid_epoch_step(**kwargs)()            # the step must run
        return {"status": "ok", "time_s": {"gatlib-dense": 0.3, "gatlib-csr": 0.1,
                                           "pyg": 0.2}[kwargs["impl"]], "peak_bytes": 2**20}
    monkeypatch.setattr(benchmarks, "measure", fake_measure)
    out = tmp_path / "sf"
    mod.main(["--datasets", "tiny", "--layers", "gat", "--repeats", "1", "--out", str(out)])
    assert calls == list(PLANETOID_IMPLS)
    table = (tmp_path / "sf.md").read_text()
    assert "| tiny | gat | 300 | 100 | 200 | 3.0x | 2.0x | 1 / 1 / 1 |" in table
    assert json.loads((tmp_path / "sf.json").read_text())["rows"][0]["max_error"] < 1e-5
