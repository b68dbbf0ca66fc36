"""Synthetic generators: CSBM, PATTERN and CLUSTER graphs from a seed."""
import pytest
import torch
from torch_geometric.loader import DataLoader
from torch_geometric.utils import contains_self_loops, homophily, is_undirected

from gatlib.data import csbm, sbm_cluster, sbm_pattern


def _check_structure(data):
    ei = data.edge_index
    assert ei.dtype == torch.long and ei.dim() == 2 and ei.size(0) == 2
    assert int(ei.max()) < data.num_nodes
    assert is_undirected(ei, num_nodes=data.num_nodes)          # both directions present
    assert not contains_self_loops(ei)
    assert torch.unique(ei, dim=1).size(1) == ei.size(1)      # no duplicate edges


def _equal(a, b):
    if sorted(a.keys()) != sorted(b.keys()):
        return False
    return all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k]
               for k in a.keys())


# ------------------------------------------------------------------------------ CSBM

def test_csbm_reproducible_with_a_seed():
    a, b, c = csbm(300, seed=3), csbm(300, seed=3), csbm(300, seed=4)
    assert _equal(a, b)
    assert not torch.equal(a.x, c.x) and not torch.equal(a.edge_index, c.edge_index)


@pytest.mark.parametrize("h", [0.1, 0.5, 0.9])
def test_csbm_homophily_degree_and_structure(h):
    n, C, d = 3000, 3, 8.0
    data = csbm(n, C, d, homophily=h, feature_dim=16, seed=0)
    _check_structure(data)
    assert homophily(data.edge_index, data.y, method="edge") == pytest.approx(h, abs=0.03)
    assert data.num_edges / n == pytest.approx(d, rel=0.06)
    assert torch.bincount(data.y).tolist() == [1000, 1000, 1000]       # balanced classes
    assert tuple(data.x.shape) == (n, 16)


def test_csbm_lambda_and_probabilities():
    n, d, lam = 4000, 9.0, 1.5
    data = csbm(n, 2, d, lam=lam, seed=1)
    # Two classes: edge homophily = 1/2 + lam / (2 sqrt(d)) = 0.75.
    assert homophily(data.edge_index, data.y, method="edge") == pytest.approx(0.75, abs=0.03)
    dense = csbm(200, 2, p=0.2, q=0.0, seed=1)                     # no edges across classes
    src, dst = dense.edge_index
    assert bool((dense.y[src] == dense.y[dst]).all()) and dense.num_edges > 0
    _check_structure(dense)


def test_csbm_masks_disjoint_stratified_and_features_carry_signal():
    data = csbm(1000, 2, 5.0, feature_dim=50, mu=50.0, seed=2)
    masks = torch.stack([data.train_mask, data.val_mask, data.test_mask]).long()
    assert int(masks.sum(0).max()) == 1 and int(masks.sum()) == 1000         # disjoint, cover
    assert [int(m.sum()) for m in masks] == [600, 200, 200]
    for c in (0, 1):
        assert int((data.train_mask & (data.y == c)).sum()) == 300
    # Strong signal: the class means are far apart compared with their spread.
    m0, m1 = data.x[data.y == 0].mean(0), data.x[data.y == 1].mean(0)
    assert float((m0 - m1).norm()) > 0.3 and float((m0 + m1).norm()) < 0.1   # +-u, antipodal
    weak = csbm(1000, 2, 5.0, feature_dim=50, mu=0.0, seed=2)
    w0, w1 = weak.x[weak.y == 0].mean(0), weak.x[weak.y == 1].mean(0)
    assert float((w0 - w1).norm()) < 0.1


def test_csbm_rejects_bad_arguments():
    with pytest.raises(ValueError, match="one way"):
        csbm(100, homophily=0.5, lam=1.0)
    with pytest.raises(ValueError, match="p and q go together"):
        csbm(100, p=0.1)
    with pytest.raises(ValueError, match="intra-class edge probability.*homophily=1.0"):
        csbm(20, 2, avg_degree=15.0, homophily=1.0)
    with pytest.raises(ValueError, match="num_nodes"):
        csbm(1, num_classes=2)
    with pytest.raises(ValueError, match="homophily must be a probability"):
        csbm(100, homophily=1.5)


# ------------------------------------------------------------------------------ PATTERN

def test_pattern_reproducible_structure_and_class_balance():
    graphs = sbm_pattern(40, seed=0)
    again, other = sbm_pattern(40, seed=0), sbm_pattern(10, seed=1)
    assert len(graphs) == 40
    assert all(_equal(a, b) for a, b in zip(graphs, again))
    assert not all(_equal(a, b) for a, b in zip(graphs, other))
    for g in graphs:
        _check_structure(g)
        assert int(g.y.sum()) == 10                                   # the planted pattern
        assert 5 * 5 + 10 <= g.num_nodes <= 5 * 15 + 10
        assert tuple(g.x.shape) == (g.num_nodes, 3) and bool((g.x.sum(1) == 1).all())
    # Minority class (pattern nodes): about 1/6 of all nodes, documented range 10%-30%.
    frac = sum(int(g.y.sum()) for g in graphs) / sum(g.num_nodes for g in graphs)
    assert 0.10 <= frac <= 0.30


def test_pattern_nodes_share_their_pattern_and_are_denser():
    graphs = sbm_pattern(20, seed=5, num_patterns=2, one_hot=False)
    assert [int(g.pattern) for g in graphs[:4]] == [0, 1, 0, 1]
    # Same pattern -> same multiset of pattern tokens and same number of pattern-internal edges.
    def summary(g):
        inside = g.y.bool()
        src, dst = g.edge_index
        return (sorted(g.x[inside].tolist()), int((inside[src] & inside[dst]).sum()))
    assert summary(graphs[0]) == summary(graphs[2]) == summary(graphs[4])
    # Pattern nodes link to half of all nodes (q_P = 0.5 > q = 0.35): higher mean degree.
    deg_p, deg_g = [], []
    for g in graphs:
        deg = torch.bincount(g.edge_index[1], minlength=g.num_nodes).float()
        deg_p.append(deg[g.y == 1].mean())
        deg_g.append(deg[g.y == 0].mean())
    assert float(torch.stack(deg_p).mean()) > float(torch.stack(deg_g).mean())


# ------------------------------------------------------------------------------ CLUSTER

def test_cluster_reproducible_structure_labels_and_balance():
    graphs = sbm_cluster(40, seed=0)
    again, other = sbm_cluster(40, seed=0), sbm_cluster(10, seed=1)
    assert all(_equal(a, b) for a, b in zip(graphs, again))
    assert not all(_equal(a, b) for a, b in zip(graphs, other))
    for g in graphs:
        _check_structure(g)
        assert 6 * 5 <= g.num_nodes <= 6 * 15
        tok = g.x.argmax(1)
        assert tuple(g.x.shape) == (g.num_nodes, 7)
        # One seed node per cluster, whose token is its cluster id + 1; the rest are 0.
        seeds = tok.nonzero().view(-1)
        assert sorted(tok[seeds].tolist()) == [1, 2, 3, 4, 5, 6]
        assert torch.equal(tok[seeds] - 1, g.y[seeds])
    counts = torch.bincount(torch.cat([g.y for g in graphs]), minlength=6).float()
    assert float(counts.min() / counts.max()) > 0.8                     # roughly balanced
    # Communities: more edges inside clusters than the block sizes alone would give.
    h = sum(homophily(g.edge_index, g.y, method="edge") for g in graphs) / len(graphs)
    assert 0.25 < h < 0.5


def test_lists_work_with_the_pyg_loader():
    loader = DataLoader(sbm_cluster(10, seed=0), batch_size=4)
    batch = next(iter(loader))
    assert batch.num_graphs == 4 and batch.x.size(0) == batch.y.size(0) == batch.num_nodes
    batch = next(iter(DataLoader(sbm_pattern(6, seed=0), batch_size=3)))
    assert batch.pattern.tolist() == [0, 1, 2]


def test_generators_reject_bad_arguments():
    with pytest.raises(ValueError, match="community_size"):
        sbm_pattern(2, community_size=(10, 5))
    with pytest.raises(ValueError, match="q must be a probability"):
        sbm_cluster(2, q=1.5)
    assert sbm_cluster(0) == []
