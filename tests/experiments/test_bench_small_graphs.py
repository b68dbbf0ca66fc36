"""The small-graphs benchmark's pieces (no timings asserted): the batches have the shapes they
claim, each layer pair computes the same function, and the script writes its table."""
import json

import pytest
import torch

from .scripts import load_benchmark


@pytest.fixture(scope="module")
def sg():
    return load_benchmark("small_graphs")


def test_molecule_like_graph(sg):
    g = torch.Generator().manual_seed(0)
    ei = sg.molecule_like(30, 32, g)
    assert ei.shape == (2, 64)
    assert (ei[0] != ei[1]).all()                                    # no self-loops
    pairs = set(map(tuple, ei.t().tolist()))
    assert len(pairs) == 64 and all((b, a) in pairs for a, b in pairs)  # undirected, no dups
    # Connected: the spanning tree reaches every node from node 0.
    adj = {i: set() for i in range(30)}
    for a, b in pairs:
        adj[a].add(b)
    seen, todo = {0}, [0]
    while todo:
        for b in adj[todo.pop()] - seen:
            seen.add(b)
            todo.append(b)
    assert len(seen) == 30
    assert sg.molecule_like(4, 100, g).size(1) == 12                 # capped at the full graph


@pytest.mark.parametrize("shape", ["NCI1", "PROTEINS", "ZINC", "CLUSTER"])
def test_batch_shapes(sg, shape):
    ei, N, M = sg.graph_batch(shape, 16, seed=1)
    assert ei.size(1) == 2 * M and int(ei.max()) < N
    if shape != "CLUSTER":
        n, m = sg.SHAPES[shape]
        assert 0.5 * n * 16 <= N <= 1.5 * n * 16
        assert 0.4 * m * 16 <= M <= 1.6 * m * 16
    else:
        assert 30 * 16 <= N <= 90 * 16 and M > 5 * N                  # dense-ish SBM graphs
    ei2, N2, _ = sg.graph_batch(shape, 16, seed=1)
    assert N2 == N and torch.equal(ei2, ei)
    with pytest.raises(ValueError, match="shape"):
        sg.graph_batch("QM9", 4)


@pytest.mark.parametrize("layer", ["gat", "gatv2", "transformer"])
def test_layer_pairs_agree(sg, layer):
    ei, N, _ = sg.graph_batch("ZINC", 8)
    x = torch.randn(N, 12, requires_grad=True)
    grad = torch.randn(N, 2 * 5)
    pyg, ours = sg.layer_pair(layer, 12, 2, 5)
    steps = {"pyg": sg.make_step(pyg, x, ei, grad), "gatlib": sg.make_step(ours, x, ei, grad)}
    assert sg.check(steps, x) < 1e-5
    wall, cpu = sg.alternate(steps, warmup=1, n=3)
    assert set(wall) == set(cpu) == set(steps)
    assert all(t > 0 for t in wall.values()) and all(t >= 0 for t in cpu.values())


def test_script_end_to_end(sg, tmp_path):
    out = tmp_path / "sg"
    res = sg.main(["--shapes", "ZINC", "--batch-sizes", "4", "--threads", "1",
                   "--layers", "gat,transformer", "--warmup", "1", "--steps", "2",
                   "--out", str(out)])
    assert [r["layer"] for r in res["rows"]] == ["gat", "transformer"]
    table = (tmp_path / "sg.md").read_text()
    assert "| ZINC x 4 |" in table and "GATConv / GATConv" in table and "x** |" in table
    record = json.loads((tmp_path / "sg.json").read_text())
    assert record["heads"] == 4 and record["channels"] == 16 and record["torch_geometric"]
    assert "graph built once" in table
    assert all(r["max_error"] < 1e-4 and len(r["load"]) == 2 and r["speedup_cpu"] > 0
               and r["speedup_graph"] > 0
               for r in record["rows"])


def test_rows_carry_the_roofline(sg, tmp_path):
    """Each row has the bound of the same work and the ratio gatlib / bound, both positive."""
    res = sg.main(["--shapes", "NCI1", "--batch-sizes", "3", "--threads", "1",
                   "--layers", "gat,gatv2,transformer", "--warmup", "1", "--steps", "2",
                   "--out", str(tmp_path / "sg")])
    for r in res["rows"]:
        assert r["bound_ms"] > 0 and r["bound_warm_ms"] > 0
        assert r["ratio_bound"] > 0 and r["ratio_bound_warm"] > 0
        # The ratio is gatlib's step timed in the bound's own rounds over the bound.
        assert r["bound_round_ms"] > 0
        assert abs(r["ratio_bound"] * r["bound_ms"] - r["bound_round_ms"]) < 1e-6 * r["bound_ms"]
    table = (tmp_path / "sg.md").read_text()
    assert "bound ms, 1 thr" in table and "gatlib / bound, 1 thr" in table


def test_layer_bound_counts_the_layers_linear_maps(sg):
    """The bound of a layer includes one matmul per weight reading the input features."""
    ei, N, _ = sg.graph_batch("ZINC", 4)
    x = torch.randn(N, 12)
    _, gat = sg.layer_pair("gat", 12, 2, 5)
    _, tr = sg.layer_pair("transformer", 12, 2, 5)
    b_gat = sg.layer_bound("gat", gat, x, ei, 2, 5, repeats=1)
    b_tr = sg.layer_bound("transformer", tr, x, ei, 2, 5, repeats=1)
    lin = lambda b: sorted(k for k in b["parts_s"] if k.startswith("linear"))   # noqa: E731
    assert len(lin(b_gat)) == 1 and len(lin(b_tr)) >= 3          # q, k, v (+ skip)
    assert all(v > 0 for v in b_gat["parts_s"].values())
