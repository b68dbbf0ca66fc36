"""gatlib's neighbour sampler: fanout distribution, edges that exist, seeds first, exact k-hop
neighbourhoods, PyG's loader machinery, and bad input."""
import itertools
from collections import Counter

import pytest
import torch
from scipy.stats import chisquare
from torch_geometric.data import Data
from torch_geometric.loader import NeighborLoader, NodeLoader
from torch_geometric.utils import k_hop_subgraph

from gatlib.graph import to_csr
from gatlib.loader import NeighborSampler, neighbor_loader, sample_neighbors
from gatlib.loader import loader as loader_module
from ..conftest import random_graph


@pytest.fixture(autouse=True, params=["native", "torch"])
def path(request, monkeypatch):
    """Every test runs on both ways of sampling a hop: the native pass (``sample.h``) and the
    torch ops (no compiler, or GATLIB_NATIVE=0)."""
    from gatlib import native
    from gatlib.loader import sampler as smod
    if request.param == "native" and not native.available():
        pytest.skip(native.status())
    if request.param == "torch":
        monkeypatch.setattr(smod, "_native_lib", lambda: None)
    return request.param


def star(num_leaves: int) -> torch.Tensor:
    """Every leaf 1..D points at the centre 0 (edge leaf -> 0); edge id e is leaf e + 1."""
    leaves = torch.arange(1, num_leaves + 1)
    return torch.stack([leaves, torch.zeros_like(leaves)])


def random_data(num_nodes=60, num_edges=300, seed=0, edge_dim=3):
    g = torch.Generator().manual_seed(seed)
    edge_index = random_graph(num_nodes, num_edges, seed=seed)
    return Data(x=torch.randn(num_nodes, 5, generator=g), edge_index=edge_index,
                edge_attr=torch.randn(edge_index.size(1), edge_dim, generator=g),
                y=torch.arange(num_nodes), num_nodes=num_nodes)


# ------------------------------------------------------------------------- distribution

@pytest.mark.parametrize("D, k", [(5, 2), (5, 3), (6, 2), (4, 1)])
def test_star_without_replacement_uniform_over_leaves_and_subsets(D, k):
    """Both ways of drawing k of deg distinct in-edges: a shuffle (deg <= k^2: (5, 3)) and
    Floyd's algorithm (deg > k^2: (5, 2), (6, 2), (4, 1))."""
    trials = 4000
    graph = to_csr(star(D), D + 1)
    # Duplicate seeds are sampled independently: one call draws `trials` neighbourhoods.
    out = sample_neighbors(graph, torch.zeros(trials, dtype=torch.long), [k],
                           generator=torch.Generator().manual_seed(0))
    assert out.num_sampled_edges == [trials * k]
    leaves, subsets = Counter(), Counter()
    cols = out.col.view(trials, k)              # edges are grouped by target, k per seed copy
    assert (cols == torch.arange(trials).view(-1, 1)).all()
    src = out.node[out.row].view(trials, k)
    for row in src.tolist():
        assert len(set(row)) == k               # no duplicate edge per target
        leaves.update(row)
        subsets[tuple(sorted(row))] += 1
    assert set(leaves) == set(range(1, D + 1))
    assert chisquare([leaves[i] for i in range(1, D + 1)]).pvalue > 1e-3
    all_subsets = list(itertools.combinations(range(1, D + 1), k))
    assert set(subsets) == set(all_subsets)    # every k-subset reachable...
    assert chisquare([subsets[c] for c in all_subsets]).pvalue > 1e-3   # ...equally often
    # The edge ids are the caller's: leaf l is edge l - 1.
    assert torch.equal(out.edge.view(trials, k) + 1, src)


@pytest.mark.parametrize("D, k", [(80, 70), (300, 2), (90, 65)])
def test_large_fanouts_and_hubs_uniform_over_leaves(D, k):
    """Fanouts past the native pass's Floyd range (k > 64: selection sampling) and a hub far
    above its fanout: every leaf equally likely, k distinct ones per draw."""
    trials = 1500
    out = sample_neighbors(to_csr(star(D), D + 1), torch.zeros(trials, dtype=torch.long), [k],
                           generator=torch.Generator().manual_seed(2))
    src = out.node[out.row].view(trials, k)
    assert all(len(set(r)) == k for r in src.tolist())
    counts = torch.bincount(src.reshape(-1), minlength=D + 1)[1:]
    assert (counts > 0).all() and chisquare(counts.tolist()).pvalue > 1e-3
    # Pairs: leaf 1 and leaf 2 together as often as k (k - 1) / (D (D - 1)) says.
    both = int(((src == 1).any(1) & (src == 2).any(1)).sum())
    p = k * (k - 1) / (D * (D - 1))
    assert abs(both - trials * p) < 5 * (trials * p * (1 - p)) ** 0.5 + 1


def test_star_with_replacement_uniform_and_exact_count():
    D, k, trials = 6, 4, 3000
    graph = to_csr(star(D), D + 1)
    out = sample_neighbors(graph, torch.zeros(trials, dtype=torch.long), [k], replace=True,
                           generator=torch.Generator().manual_seed(1))
    assert out.num_sampled_edges == [trials * k]
    counts = torch.bincount(out.node[out.row], minlength=D + 1)[1:]
    assert chisquare(counts.tolist()).pvalue > 1e-3
    # With replacement some neighbourhood repeats a leaf (probability 1 - 6*5*4*3/6^4 each).
    src = out.node[out.row].view(trials, k)
    repeats = sum(len(set(r)) < k for r in src.tolist())
    assert 0.6 * trials < repeats < 0.8 * trials


def test_fanout_larger_than_degree_and_zero():
    graph = to_csr(star(3), 4)
    out = sample_neighbors(graph, torch.tensor([0]), [10])
    assert sorted(out.node[out.row].tolist()) == [1, 2, 3]
    out = sample_neighbors(graph, torch.tensor([0]), [10], replace=True)
    assert out.num_sampled_edges == [10]       # with replacement: always k draws (as PyG)
    out = sample_neighbors(graph, torch.tensor([0]), [0, 2])
    assert out.num_sampled_edges == [0, 0] and out.num_sampled_nodes == [1, 0, 0]


# ------------------------------------------------------------------------- structure

@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("fanouts", [[3, 2], [-1, 4], [2, 2, 2]])
def test_every_sampled_edge_exists_and_seeds_come_first(replace, fanouts):
    data = random_data()
    seeds = torch.tensor([5, 0, 17, 59, 3])      # 0 is a hub, 59 is isolated
    loader = neighbor_loader(data, fanouts, batch_size=5, input_nodes=seeds, replace=replace,
                             seed=3)
    assert isinstance(loader, NodeLoader) and not isinstance(loader, NeighborLoader)
    (batch,) = list(loader)
    assert batch.batch_size == 5
    assert torch.equal(batch.n_id[:5], seeds) and torch.equal(batch.input_id, torch.arange(5))
    assert torch.equal(batch.y, batch.n_id) and torch.equal(batch.x, data.x[batch.n_id])
    # Map back: every sampled edge is that edge of the graph, with its features.
    assert torch.equal(batch.n_id[batch.edge_index], data.edge_index[:, batch.e_id])
    assert torch.equal(batch.edge_attr, data.edge_attr[batch.e_id])
    assert batch.n_id.unique().numel() == batch.n_id.numel()
    assert sum(batch.num_sampled_nodes) == batch.num_nodes
    assert sum(batch.num_sampled_edges) == batch.edge_index.size(1)
    deg = to_csr(data.edge_index, data.num_nodes).in_degree()
    # Hop by hop: targets are the previous hop's new nodes, each with min(k, deg) in-edges
    # (k with replacement), distinct without replacement.
    starts = [0] + torch.tensor(batch.num_sampled_nodes).cumsum(0).tolist()
    e0 = 0
    for hop, k in enumerate(fanouts):
        e1 = e0 + batch.num_sampled_edges[hop]
        tgt = batch.edge_index[1, e0:e1]
        assert ((tgt >= starts[hop]) & (tgt < starts[hop + 1])).all()
        assert (batch.edge_index[0, e0:e1] < starts[hop + 2]).all()
        for t in range(starts[hop], starts[hop + 1]):
            ids = batch.e_id[e0:e1][tgt == t]
            d = int(deg[batch.n_id[t]])
            want = d if k == -1 else (k if replace and d > 0 else min(k, d))
            assert ids.numel() == want
            if not replace:
                assert ids.unique().numel() == ids.numel()
        e0 = e1


@pytest.mark.parametrize("num_hops", [1, 2, 3])
def test_full_fanout_is_the_exact_k_hop_neighbourhood(num_hops):
    data = random_data(num_nodes=80, num_edges=200, seed=2)
    seeds = torch.tensor([1, 7, 40])
    out = sample_neighbors(to_csr(data.edge_index, 80), seeds, [-1] * num_hops)
    subset, _, _, _ = k_hop_subgraph(seeds, num_hops, data.edge_index, num_nodes=80,
                                     flow="source_to_target")
    assert set(out.node.tolist()) == set(subset.tolist())
    # The edges: every in-edge of every node within num_hops - 1 hops.
    inner, _, _, _ = k_hop_subgraph(seeds, num_hops - 1, data.edge_index, num_nodes=80,
                                    flow="source_to_target")
    want = torch.isin(data.edge_index[1], inner).nonzero().view(-1)
    assert sorted(out.edge.tolist()) == want.tolist()


def test_isolated_and_duplicate_seeds_handled_as_pyg():
    data = random_data()
    deg = to_csr(data.edge_index, data.num_nodes).in_degree()
    seeds = torch.tensor([59, 4, 4, 0, 4])        # 59 isolated; 4 three times
    (batch,) = list(neighbor_loader(data, [-1], 5, input_nodes=seeds))
    # Duplicates are kept, each copy a seed row with its own in-edges (PyG's pyg-lib does so).
    assert torch.equal(batch.n_id[:5], seeds) and batch.batch_size == 5
    for pos, node in enumerate(seeds.tolist()):
        assert int((batch.edge_index[1] == pos).sum()) == int(deg[node])
    assert int(deg[59]) == 0


def test_empty_input():
    data = random_data()
    loader = neighbor_loader(data, [2, 2], 4, input_nodes=torch.tensor([], dtype=torch.long))
    assert len(loader) == 0 and list(loader) == []
    out = sample_neighbors(to_csr(data.edge_index, data.num_nodes),
                           torch.tensor([], dtype=torch.long), [3, -1])
    assert out.node.numel() == 0 and out.row.numel() == 0 and out.edge.numel() == 0
    assert out.num_sampled_nodes == [0, 0, 0] and out.num_sampled_edges == [0, 0]
    # A graph without edges: seeds alone.
    out = sample_neighbors(to_csr(torch.empty(2, 0, dtype=torch.long), 4), torch.tensor([2, 1]),
                           [3])
    assert out.node.tolist() == [2, 1] and out.num_sampled_edges == [0]


def test_mask_input_nodes_and_batches_cover_the_seeds():
    data = random_data()
    mask = torch.zeros(data.num_nodes, dtype=torch.bool)
    mask[::3] = True
    loader = neighbor_loader(data, [2], 7, input_nodes=mask, shuffle=True, seed=0)
    seen = torch.cat([b.n_id[:b.batch_size] for b in loader])
    assert sorted(seen.tolist()) == mask.nonzero().view(-1).tolist()


# ------------------------------------------------------------------------- reproducibility

def test_seed_makes_batches_reproducible():
    data = random_data()

    def run(seed):
        loader = neighbor_loader(data, [3, 2], 8, shuffle=True, seed=seed)
        return [torch.cat([b.n_id, b.e_id]) for b in loader]

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, c))


def test_worker_processes_sample_valid_batches():
    data = random_data()
    loader = neighbor_loader(data, [3, 2], 16, seed=0, num_workers=2)
    batches = list(loader)
    assert len(batches) == 4
    for batch in batches:
        assert torch.equal(batch.n_id[batch.edge_index], data.edge_index[:, batch.e_id])


# ------------------------------------------------------------------------- backend choice

def test_pyg_loader_is_used_where_pyg_can_sample(monkeypatch):
    data = random_data()
    monkeypatch.setattr(loader_module, "pyg_can_sample", lambda: True)
    assert type(neighbor_loader(data, [2], 4)) is NeighborLoader
    # A seed asks for gatlib's reproducible sampler; backend='gatlib' forces it.
    assert isinstance(neighbor_loader(data, [2], 4, seed=0).node_sampler, NeighborSampler)
    assert isinstance(neighbor_loader(data, [2], 4, backend="gatlib").node_sampler,
                      NeighborSampler)
    with pytest.raises(ValueError, match="seed"):
        neighbor_loader(data, [2], 4, backend="pyg", seed=0)
    monkeypatch.setattr(loader_module, "pyg_can_sample", lambda: False)
    assert isinstance(neighbor_loader(data, [2], 4).node_sampler, NeighborSampler)
    with pytest.raises(ImportError, match="pyg-lib"):
        neighbor_loader(data, [2], 4, backend="pyg")


# ------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("fanouts, err, match", [
    ([2.5], TypeError, r"num_neighbors\[0\]"),
    ([2, "3"], TypeError, r"num_neighbors\[1\]"),
    ([True], TypeError, r"num_neighbors\[0\]"),
    ([3, -2], ValueError, r"num_neighbors\[1\] = -2"),
    (5, TypeError, "list of ints"),
])
def test_bad_fanouts(fanouts, err, match):
    data = random_data()
    with pytest.raises(err, match=match):
        neighbor_loader(data, fanouts, 4)
    with pytest.raises(err, match=match):
        NeighborSampler(data, fanouts)


def test_bad_seeds_and_arguments():
    data = random_data()
    graph = to_csr(data.edge_index, data.num_nodes)
    with pytest.raises(ValueError, match=r"node id 60, outside \[0, 60\)"):
        neighbor_loader(data, [2], 4, input_nodes=torch.tensor([1, 60]))
    with pytest.raises(ValueError, match="node id -1"):
        sample_neighbors(graph, torch.tensor([-1, 2]), [2])
    with pytest.raises(TypeError, match="integer node ids"):
        sample_neighbors(graph, torch.tensor([1.0]), [2])
    with pytest.raises(ValueError, match="one entry per node"):
        neighbor_loader(data, [2], 4, input_nodes=torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch_size"):
        neighbor_loader(data, [2], 0)
    with pytest.raises(ValueError, match="backend"):
        neighbor_loader(data, [2], 4, backend="dgl")
    with pytest.raises(TypeError, match="replace"):
        neighbor_loader(data, [2], 4, replace=1)
    with pytest.raises(NotImplementedError, match="seed nodes only"):
        NeighborSampler(data, [2]).sample_from_edges(None)


def test_distributed_sampler_splits_the_seeds_between_ranks():
    """Under DDP each rank passes a DistributedSampler over the seed positions (no process
    group needed to build one): the ranks' seeds partition input_nodes, epoch by epoch."""
    from torch.utils.data.distributed import DistributedSampler
    data = random_data()
    train = torch.arange(0, data.num_nodes, 2)
    for epoch in (0, 1):
        seen = []
        for rank in (0, 1):
            split = DistributedSampler(range(train.numel()), num_replicas=2, rank=rank,
                                       shuffle=True, seed=0)
            split.set_epoch(epoch)
            loader = neighbor_loader(data, [3, 2], 4, input_nodes=train, sampler=split,
                                     seed=10 * epoch + rank)
            for batch in loader:
                assert torch.equal(batch.n_id[batch.edge_index],
                                   data.edge_index[:, batch.e_id])
                assert torch.equal(train[batch.input_id], batch.n_id[:batch.batch_size])
                seen.append(batch.n_id[:batch.batch_size])
        assert sorted(torch.cat(seen).tolist()) == train.tolist()


# ------------------------------------------------------------------------- relabelling

def _reference_sample(graph, seeds, fanouts, replace, seed):
    """The sampler's output semantics in plain Python over the same draws: local ids are the
    seeds' positions (a repeated seed's first), then new nodes numbered in order of first
    appearance hop by hop; edges grouped by target, hop after hop."""
    from gatlib.loader import sampler as smod
    gen = torch.Generator().manual_seed(seed)
    local = {}
    for i, s in enumerate(seeds.tolist()):
        local.setdefault(s, i)
    nodes, rows, cols, edges = list(seeds.tolist()), [], [], []
    counts_n, counts_e = [seeds.numel()], []
    frontier, begin = seeds, 0
    for k in fanouts:
        start = graph.rowptr[frontier]
        deg = graph.rowptr[frontier + 1] - start
        seg, pos = smod._pick(start, deg, k, replace, gen)
        new = []
        for j in graph.col[pos].tolist():
            if j not in local:
                local[j] = len(nodes) + len(new)
                new.append(j)
            rows.append(local[j])
        cols += (begin + seg).tolist()
        edges += graph.perm[pos].tolist()
        counts_e.append(pos.numel())
        counts_n.append(len(new))
        begin = len(nodes)
        nodes += new
        frontier = torch.tensor(new, dtype=torch.long)
    return nodes, rows, cols, edges, counts_n, counts_e


def _reference_from_choice(edge_index, graph, seeds, fanouts, replace, out):
    """The output the sampler's semantics define given the edges ``out`` chose for each target
    (read from ``out.col`` / ``out.edge``, checked to be in-edges of that target, as many as
    the fanout gives, distinct and in CSR order without replacement): everything else (node
    order, local ids, grouping, counts) recomputed in plain Python."""
    deg = graph.in_degree()
    local = {}
    for i, s in enumerate(seeds.tolist()):
        local.setdefault(s, i)
    nodes, rows, cols, edges = list(seeds.tolist()), [], [], []
    counts_n, counts_e = [seeds.numel()], []
    frontier, begin, e0 = seeds.tolist(), 0, 0
    chosen_col, chosen_edge = out.col.tolist(), out.edge.tolist()
    for k in fanouts:
        new = []
        for t, node in enumerate(frontier):
            d = int(deg[node])
            want = d if k < 0 else (k if replace and d > 0 else (0 if replace else min(k, d)))
            mine = chosen_edge[e0:e0 + want]
            assert chosen_col[e0:e0 + want] == [begin + t] * want
            assert all(int(edge_index[1, e]) == node for e in mine)
            if not replace:              # distinct edges, in the graph's CSR order
                pos = [int((graph.perm == e).nonzero()) for e in mine]
                assert pos == sorted(set(pos))
            for e in mine:
                j = int(edge_index[0, e])
                if j not in local:
                    local[j] = len(nodes) + len(new)
                    new.append(j)
                rows.append(local[j])
                cols.append(begin + t)
                edges.append(e)
            e0 += want
        counts_e.append(len(edges) - sum(counts_e))
        counts_n.append(len(new))
        begin = len(nodes)
        nodes += new
        frontier = new
    return nodes, rows, cols, edges, counts_n, counts_e


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("fanouts", [[3, 2], [-1, -1], [5, 0, 4], [1]])
@pytest.mark.parametrize("case", ["plain", "duplicate_seeds", "isolated", "self_loops"])
def test_node_indexed_relabelling_equals_the_reference(replace, fanouts, case, path):
    """The node-indexed relabelling gives exactly the output the sampler's semantics define
    (the torch path: on the same draws; the native path: on the edges it chose), with repeated
    seeds, isolated nodes, self-loops and duplicate edges."""
    n = 80
    ei = random_graph(n, 400, seed=3)
    if case == "self_loops":
        ei = torch.cat([ei, torch.arange(0, n, 3).repeat(2, 1), ei[:, :50]], 1)  # loops, dups
    if case == "isolated":
        ei = ei[:, (ei < 60).all(0)]                               # nodes 60.. have no edges
    graph = to_csr(ei, n)
    seeds = {"plain": torch.tensor([4, 9, 17, 33, 70]),
             "duplicate_seeds": torch.tensor([4, 9, 4, 17, 9, 9]),
             "isolated": torch.tensor([61, 5, 75, 62, 5]),
             "self_loops": torch.tensor([0, 3, 6, 7])}[case]
    out = sample_neighbors(graph, seeds, fanouts, replace,
                           generator=torch.Generator().manual_seed(11))
    if path == "torch":
        nodes, rows, cols, edges, counts_n, counts_e = _reference_sample(graph, seeds, fanouts,
                                                                          replace, 11)
    else:
        nodes, rows, cols, edges, counts_n, counts_e = _reference_from_choice(
            ei, graph, seeds, fanouts, replace, out)
    assert out.node.tolist() == nodes and out.row.tolist() == rows
    assert out.col.tolist() == cols and out.edge.tolist() == edges
    assert out.num_sampled_nodes == counts_n and out.num_sampled_edges == counts_e


def test_sampling_runs_on_one_thread_and_restores_the_count(monkeypatch):
    """Sampling a batch runs on one torch thread; the caller's thread count comes back, also
    when sampling raises."""
    from gatlib.loader import sampler as smod
    graph = to_csr(random_graph(30, 90, seed=1), 30)
    before = torch.get_num_threads()
    seen = []
    real = smod._sample

    def spy(*args):
        seen.append(torch.get_num_threads())
        return real(*args)
    monkeypatch.setattr(smod, "_sample", spy)
    torch.set_num_threads(2)
    try:
        sample_neighbors(graph, torch.tensor([1, 2]), [2, 2])
        assert seen == [1] and torch.get_num_threads() == 2
        monkeypatch.setattr(smod, "_sample", lambda *a: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            sample_neighbors(graph, torch.tensor([1]), [2])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
