"""Tests for gatlib.graph.patterns: exact edges against brute-force sets built from each
definition, the edge counts stated in the docstrings, ordering and dtype, seeds, regularity and
connectivity of expanders, uniformity of random attention, and argument checks."""
import itertools
import math
from collections import Counter

import networkx as nx
import numpy as np
import pytest
import torch

from gatlib.graph import complete_graph, path_graph
from gatlib.graph import patterns
from gatlib.graph.patterns import (bigbird, expander_edges, global_tokens, pattern_density,
                                   random_edges, union, virtual_nodes)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------- helpers

def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


def as_edge_index(edges):
    """Sorted by target, then source, from a set of (src, dst) pairs."""
    edges = sorted(edges, key=lambda e: (e[1], e[0]))
    return torch.tensor(edges, dtype=torch.long).view(-1, 2).t()


def assert_well_formed(edge_index, num_nodes, device="cpu"):
    """[2, E] int64 on ``device``, ids in range, strictly sorted by (target, source): sorted
    and without duplicates."""
    assert isinstance(edge_index, torch.Tensor)
    assert edge_index.dtype == torch.int64
    assert edge_index.dim() == 2 and edge_index.size(0) == 2
    assert edge_index.device.type == torch.device(device).type
    ei = edge_index.cpu()
    if ei.size(1) == 0:
        return
    assert int(ei.min()) >= 0 and int(ei.max()) < num_nodes
    key = ei[1] * num_nodes + ei[0]
    assert bool((key[1:] > key[:-1]).all()), "not strictly sorted by (target, source)"


def in_degree(edge_index, n):
    return torch.bincount(edge_index[1].cpu(), minlength=n)


def out_degree(edge_index, n):
    return torch.bincount(edge_index[0].cpu(), minlength=n)


def brute_global(n, glob, self_loops=False):
    glob = set(glob)
    return {(j, i) for i in range(n) for j in range(n)
            if (i == j and self_loops) or (i != j and (i in glob or j in glob))}


def brute_window(n, window):
    """path_graph(n, window, self_loops=True): |i - j| <= window."""
    return {(j, i) for i in range(n) for j in range(n) if abs(i - j) <= window}


# ---------------------------------------------------------------- global_tokens

@pytest.mark.parametrize("self_loops", [False, True])
@pytest.mark.parametrize("n", [0, 1, 2, 5, 9])
def test_global_tokens_first_k_matches_definition_and_count(n, self_loops):
    """First-k global tokens: the edge set of the definition and E = k(2n - k - 1) (+ n)."""
    for k in sorted({0, 1, 2, n // 2, n - 1, n}):
        if not 0 <= k <= n:
            continue
        ei = global_tokens(n, k, self_loops=self_loops)
        assert_well_formed(ei, max(n, 1))
        assert ei.size(1) == k * (2 * n - k - 1) + (n if self_loops else 0)
        assert edge_set(ei) == brute_global(n, range(k), self_loops)
        assert torch.equal(ei, as_edge_index(brute_global(n, range(k), self_loops)))


@pytest.mark.parametrize("self_loops", [False, True])
def test_global_tokens_by_ids_list_and_tensor(self_loops):
    """Named global ids (list, int64 or int32 tensor, repeats count once) give the same graph."""
    n, ids = 11, [7, 2, 7, 10]
    want = as_edge_index(brute_global(n, ids, self_loops))
    k = len(set(ids))
    for tokens in (ids, tuple(ids), torch.tensor(ids), torch.tensor(ids, dtype=torch.int32)):
        ei = global_tokens(n, tokens, self_loops=self_loops)
        assert_well_formed(ei, n)
        assert torch.equal(ei, want)
        assert ei.size(1) == k * (2 * n - k - 1) + (n if self_loops else 0)
    # A list of the first k ids equals the int k; an empty list has no global node.
    assert torch.equal(global_tokens(n, [0, 1, 2]), global_tokens(n, 3))
    assert global_tokens(n, []).size(1) == 0
    assert torch.equal(global_tokens(n, torch.empty(0, dtype=torch.long), self_loops=True),
                       torch.arange(n).expand(2, n))


def test_global_tokens_non_global_nodes_do_not_attend_to_each_other():
    """Only pairs touching a global node are edges; every node reaches every global one."""
    n, ids = 12, [3, 8]
    ei = global_tokens(n, ids)
    src, dst = ei
    touches = torch.isin(src, torch.tensor(ids)) | torch.isin(dst, torch.tensor(ids))
    assert bool(touches.all())
    assert not bool((src == dst).any())
    deg = in_degree(ei, n)
    assert deg[ids].tolist() == [n - 1] * 2                               # from everyone else
    rest = [i for i in range(n) if i not in ids]
    assert deg[rest].tolist() == [len(ids)] * len(rest)                   # from the globals


@pytest.mark.parametrize("device", DEVICES)
def test_global_tokens_device(device):
    """The result is on ``device`` and equals the CPU one."""
    ei = global_tokens(7, [1, 5], self_loops=True, device=device)
    assert_well_formed(ei, 7, device)
    assert torch.equal(ei.cpu(), global_tokens(7, [1, 5], self_loops=True))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(n=-1, tokens=0), ValueError, "n must be"),
    (dict(n=2.0, tokens=0), TypeError, "n must be"),
    (dict(n=4, tokens=-1), ValueError, "tokens"),
    (dict(n=4, tokens=5), ValueError, "tokens"),
    (dict(n=4, tokens=[0, 4]), ValueError, "tokens"),
    (dict(n=4, tokens=[-1]), ValueError, "tokens"),
    (dict(n=4, tokens=torch.tensor([4])), ValueError, "tokens"),
    (dict(n=4, tokens=1.5), TypeError, "tokens"),
    (dict(n=4, tokens=True), TypeError, "tokens"),
    (dict(n=4, tokens=[0.0]), TypeError, "tokens"),
    (dict(n=4, tokens=[True]), TypeError, "tokens"),
    (dict(n=4, tokens="0"), TypeError, "tokens"),
    (dict(n=4, tokens=torch.tensor([0.0])), TypeError, "tokens"),
    (dict(n=4, tokens=torch.tensor([[0, 1]])), TypeError, "tokens"),
    (dict(n=4, tokens=torch.tensor(1)), TypeError, "tokens"),
])
def test_global_tokens_bad_arguments(kwargs, error, match):
    """Bad n or tokens raise an error naming the argument."""
    with pytest.raises(error, match=match):
        global_tokens(**kwargs)


# ---------------------------------------------------------------- random_edges

def _candidates(i, n, causal):
    return list(range(i)) if causal else [j for j in range(n) if j != i]


@pytest.mark.parametrize("self_loops", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n", [0, 1, 2, 5, 13])
def test_random_edges_counts_and_sources(n, causal, self_loops):
    """In-degree min(per_node, C_i) (+1), the documented E, sources among the candidates."""
    for per_node in sorted({0, 1, 3, max(n - 1, 0), n, n + 4}):
        ei = random_edges(n, per_node, seed=per_node, causal=causal, self_loops=self_loops)
        assert_well_formed(ei, max(n, 1))
        loops = 1 if self_loops else 0
        want = [min(per_node, len(_candidates(i, n, causal))) + loops for i in range(n)]
        assert in_degree(ei, n).tolist() == want
        p = min(per_node, n)
        closed = (p * (p - 1) // 2 + (n - p) * p if causal
                  else n * min(per_node, max(n - 1, 0)))
        assert ei.size(1) == sum(want) == closed + loops * n
        src, dst = ei
        if causal:                                       # only earlier sources (or the loop)
            assert bool((src <= dst).all() if self_loops else (src < dst).all())
        assert int((src == dst).sum()) == (n if self_loops else 0)


@pytest.mark.parametrize("causal", [False, True])
def test_random_edges_with_enough_budget_take_every_candidate(causal):
    """per_node >= C_i gives all candidates: the complete graph, or all j < i when causal."""
    n = 9
    for per_node in (n - 1, n, 3 * n):
        ei = random_edges(n, per_node, seed=3, causal=causal)
        want = {(j, i) for i in range(n) for j in _candidates(i, n, causal)}
        assert torch.equal(ei, as_edge_index(want))
    assert torch.equal(random_edges(n, n, causal=False, self_loops=True), complete_graph(n))


@pytest.mark.parametrize("causal", [False, True])
def test_random_edges_seed(causal):
    """Same seed, same graph (default seed is 0); another seed, another graph."""
    n, k = 40, 3
    a = random_edges(n, k, seed=7, causal=causal)
    assert torch.equal(a, random_edges(n, k, seed=7, causal=causal))
    assert torch.equal(random_edges(n, k, causal=causal), random_edges(n, k, 0, causal=causal))
    others = [random_edges(n, k, seed=s, causal=causal) for s in (8, 9, 123456789)]
    assert all(not torch.equal(a, b) for b in others)
    # Self loops are added on top of the same random draw.
    b = random_edges(n, k, seed=7, causal=causal, self_loops=True)
    assert edge_set(b) == edge_set(a) | {(i, i) for i in range(n)}


@pytest.mark.parametrize("device", DEVICES)
def test_random_edges_device(device):
    """Drawn on the CPU, moved to ``device``: the same graph on every device."""
    ei = random_edges(17, 4, seed=2, self_loops=True, device=device)
    assert_well_formed(ei, 17, device)
    assert torch.equal(ei.cpu(), random_edges(17, 4, seed=2, self_loops=True))


def _subset_chi2(n, per_node, causal, draws):
    """Chi-square statistic and number of cells of the sources of each target over ``draws``
    seeds: every min(per_node, C_i)-subset of the candidates should be equally likely."""
    counts = [Counter() for _ in range(n)]
    for seed in range(draws):
        ei = random_edges(n, per_node, seed=seed, causal=causal)
        sources = [[] for _ in range(n)]
        for j, i in ei.t().tolist():
            sources[i].append(j)
        for i in range(n):
            counts[i][tuple(sources[i])] += 1
    stats = []
    for i in range(n):
        cand = _candidates(i, n, causal)
        subsets = list(itertools.combinations(cand, min(per_node, len(cand))))
        assert set(counts[i]) <= set(subsets)                # nothing outside the candidates
        expected = draws / len(subsets)
        stat = sum((counts[i][s] - expected) ** 2 / expected for s in subsets)
        stats.append((stat, len(subsets)))
    return stats


def _chi2_bound(cells):
    """A generous bound for a chi-square with ``cells - 1`` degrees of freedom: the mean plus
    eight standard deviations (p < 1e-6 for the sizes used here)."""
    dof = cells - 1
    return dof + 8 * math.sqrt(2 * dof)


@pytest.mark.parametrize("causal", [False, True])
def test_random_edges_sampling_is_uniform(causal):
    """Over 1500 seeds on 6 nodes, every subset of sources is about equally frequent."""
    for stat, cells in _subset_chi2(6, 2, causal, draws=1500):
        assert stat <= _chi2_bound(cells), (stat, cells)


@pytest.mark.parametrize("causal", [False, True])
def test_random_edges_floyd_sampling_is_uniform(monkeypatch, causal):
    """Floyd's algorithm (the large-graph path, forced here on 6 nodes) is uniform too."""
    monkeypatch.setattr(patterns, "_TOPK_MAX_PAIRS", 0)
    for stat, cells in _subset_chi2(6, 2, causal, draws=1500):
        assert stat <= _chi2_bound(cells), (stat, cells)


@pytest.mark.parametrize("causal", [False, True])
def test_random_edges_large_graph_path(causal):
    """Above 2**22 candidate pairs (Floyd's path), counts and properties still hold."""
    n, k = 2100, 3
    assert n * (n - 1) > patterns._TOPK_MAX_PAIRS
    ei = random_edges(n, k, seed=1, causal=causal)
    assert_well_formed(ei, n)
    want = torch.arange(n).clamp(max=k) if causal else torch.full((n,), k)
    assert torch.equal(in_degree(ei, n), want)
    assert bool((ei[0] < ei[1]).all() if causal else (ei[0] != ei[1]).all())
    assert torch.equal(ei, random_edges(n, k, seed=1, causal=causal))
    assert not torch.equal(ei, random_edges(n, k, seed=2, causal=causal))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(n=-1, per_node=1), ValueError, "n must be"),
    (dict(n=3.0, per_node=1), TypeError, "n must be"),
    (dict(n=4, per_node=-1), ValueError, "per_node"),
    (dict(n=4, per_node=1.5), TypeError, "per_node"),
    (dict(n=4, per_node=1, seed=1.0), TypeError, "seed"),
    (dict(n=4, per_node=1, seed=None), TypeError, "seed"),
    (dict(n=4, per_node=1, seed=True), TypeError, "seed"),
])
def test_random_edges_bad_arguments(kwargs, error, match):
    """Bad n, per_node or seed raise an error naming the argument."""
    with pytest.raises(error, match=match):
        random_edges(**kwargs)


# ---------------------------------------------------------------- expander_edges

def _assert_regular_simple_symmetric(ei, n, d):
    assert_well_formed(ei, max(n, 1))                                       # no duplicates
    assert ei.size(1) == n * d
    assert in_degree(ei, n).tolist() == [d] * n
    assert out_degree(ei, n).tolist() == [d] * n
    assert not bool((ei[0] == ei[1]).any())
    assert edge_set(ei) == {(i, j) for j, i in edge_set(ei)}


def _is_connected(ei, n):
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(ei.t().tolist())
    return nx.is_connected(g)


@pytest.mark.parametrize("n,d", [
    (0, 0), (1, 0), (5, 0), (2, 1), (10, 1), (3, 2), (5, 2), (8, 3), (9, 4), (50, 3),
    (50, 4), (51, 6), (100, 5), (6, 3), (7, 4), (10, 6), (11, 8), (16, 7), (12, 11),
])
def test_expander_is_regular_simple_symmetric(n, d):
    """E = n d, every in- and out-degree d, symmetric, no self-loop or duplicate, any seed."""
    for seed in range(3):
        _assert_regular_simple_symmetric(expander_edges(n, d, seed=seed), n, d)


@pytest.mark.parametrize("n,d", [(3, 2), (8, 3), (9, 4), (40, 2), (50, 3), (60, 4), (51, 6),
                                 (7, 4), (10, 6), (16, 7)])
def test_expander_is_connected(n, d):
    """For d >= 2 (direct and complement constructions) the graph is connected."""
    for seed in range(3):
        assert _is_connected(expander_edges(n, d, seed=seed), n)


def test_expander_degree_one_is_a_perfect_matching():
    """d = 1: every node has exactly one partner (n / 2 components)."""
    ei = expander_edges(10, 1, seed=4)
    partner = dict(edge_set(ei))
    assert sorted(partner) == list(range(10))
    assert all(partner[partner[i]] == i and partner[i] != i for i in range(10))


@pytest.mark.parametrize("n", [2, 3, 6, 9])
def test_expander_with_degree_n_minus_1_is_complete(n):
    """d = n - 1 gives the complete graph without self-loops."""
    assert torch.equal(expander_edges(n, n - 1, seed=5), complete_graph(n, self_loops=False))


@pytest.mark.parametrize("d", [3, 4, 6])
def test_expander_has_a_spectral_gap(d):
    """The second largest adjacency eigenvalue of a random d-regular graph on 200 nodes is
    near the Ramanujan bound 2 sqrt(d - 1) (within 0.5), far from d."""
    n = 200
    ei = expander_edges(n, d, seed=0)
    a = np.zeros((n, n))
    a[ei[1].numpy(), ei[0].numpy()] = 1.0
    eig = np.sort(np.linalg.eigvalsh(a))[::-1]
    assert abs(eig[0] - d) < 1e-9
    assert max(eig[1], -eig[-1]) <= 2 * math.sqrt(d - 1) + 0.5


def test_expander_seed():
    """Same seed, same graph (default 0); another seed, another graph."""
    a = expander_edges(50, 4, seed=11)
    assert torch.equal(a, expander_edges(50, 4, seed=11))
    assert torch.equal(expander_edges(50, 4), expander_edges(50, 4, seed=0))
    assert not torch.equal(a, expander_edges(50, 4, seed=12))
    # Also through the complement construction.
    assert torch.equal(expander_edges(16, 9, seed=3), expander_edges(16, 9, seed=3))
    assert not torch.equal(expander_edges(16, 9, seed=3), expander_edges(16, 9, seed=4))


@pytest.mark.parametrize("device", DEVICES)
def test_expander_device(device):
    """On ``device``, the same graph as on the CPU (also for d = 0 and the complement)."""
    for n, d in ((20, 3), (10, 7), (5, 0)):
        ei = expander_edges(n, d, seed=1, device=device)
        assert_well_formed(ei, n, device)
        assert torch.equal(ei.cpu(), expander_edges(n, d, seed=1))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(n=-2, degree=0), ValueError, "n must be"),
    (dict(n=4, degree=-1), ValueError, "degree"),
    (dict(n=4, degree=2.0), TypeError, "degree"),
    (dict(n=4, degree=4), ValueError, "degree must be < n"),
    (dict(n=0, degree=1), ValueError, "degree must be < n"),
    (dict(n=5, degree=3), ValueError, r"n \* degree must be even"),
    (dict(n=7, degree=1), ValueError, r"n \* degree must be even"),
    (dict(n=6, degree=2, seed=0.5), TypeError, "seed"),
])
def test_expander_bad_arguments(kwargs, error, match):
    """Bad n, degree (>= n, odd n * degree) or seed raise an error naming the argument."""
    with pytest.raises(error, match=match):
        expander_edges(**kwargs)


# ---------------------------------------------------------------- virtual_nodes

@pytest.mark.parametrize("n", [0, 1, 4, 7])
@pytest.mark.parametrize("k", [0, 1, 3])
def test_virtual_nodes_matches_definition(n, k):
    """Virtual ids n..n+k-1 joined both ways to every real node, not to each other, no loops;
    E = 2 n k on n + k nodes."""
    ei = virtual_nodes(n, k)
    assert_well_formed(ei, max(n + k, 1))
    assert ei.size(1) == 2 * n * k
    virt = range(n, n + k)
    want = {(v, i) for i in range(n) for v in virt} | {(i, v) for i in range(n) for v in virt}
    assert torch.equal(ei, as_edge_index(want))
    deg = in_degree(ei, n + k)
    assert deg[:n].tolist() == [k] * n and deg[n:].tolist() == [n] * k


def test_virtual_nodes_default_is_one_master_node():
    """k defaults to 1: node n is a hub joined to every node."""
    assert torch.equal(virtual_nodes(5), virtual_nodes(5, 1))
    assert edge_set(virtual_nodes(5)) == brute_global(6, [5]) - {(5, 5)}


@pytest.mark.parametrize("device", DEVICES)
def test_virtual_nodes_device(device):
    """The result is on ``device``."""
    ei = virtual_nodes(4, 2, device=device)
    assert_well_formed(ei, 6, device)
    assert torch.equal(ei.cpu(), virtual_nodes(4, 2))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(n=-1), ValueError, "n must be"),
    (dict(n=3, k=-1), ValueError, "k must be"),
    (dict(n=3, k=1.0), TypeError, "k must be"),
])
def test_virtual_nodes_bad_arguments(kwargs, error, match):
    """Bad n or k raise an error naming the argument."""
    with pytest.raises(error, match=match):
        virtual_nodes(**kwargs)


# ---------------------------------------------------------------- union

def _random_multigraph(n, e, seed, dtype=torch.long):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    return torch.cat([ei, ei[:, : e // 4]], dim=1).to(dtype)               # with duplicates


def test_union_is_the_coalesced_set_union():
    """Unsorted inputs with duplicates (int64 and int32): the set union, sorted, once each."""
    parts = [_random_multigraph(15, 40, 0), _random_multigraph(15, 25, 1, torch.int32),
             path_graph(15, 2), torch.empty(2, 0, dtype=torch.long)]
    ei = union(*parts)
    assert_well_formed(ei, 15)
    want = set().union(*(edge_set(p) for p in parts))
    assert torch.equal(ei, as_edge_index(want))
    assert ei.size(1) <= sum(p.size(1) for p in parts)
    assert torch.equal(union(*parts[::-1]), ei)                          # order-free
    assert torch.equal(union(ei, ei), ei)                                # idempotent
    assert torch.equal(union(parts[0]), as_edge_index(edge_set(parts[0])))


def test_union_of_window_and_global_tokens_is_longformer():
    """union(window, global tokens) is the band plus every pair touching a global node."""
    n, w, ids = 20, 2, [0, 13]
    ei = union(path_graph(n, w, self_loops=True), global_tokens(n, ids), num_nodes=n)
    want = brute_window(n, w) | brute_global(n, ids)
    assert torch.equal(ei, as_edge_index(want))


def test_union_with_virtual_nodes_and_num_nodes():
    """num_nodes covers the virtual ids; a pattern on fewer nodes joins one on more."""
    n, k = 6, 2
    ei = union(path_graph(n), virtual_nodes(n, k), num_nodes=n + k)
    want = edge_set(path_graph(n)) | edge_set(virtual_nodes(n, k))
    assert torch.equal(ei, as_edge_index(want))
    with pytest.raises(ValueError, match=r"edge_indices\[1\]"):
        union(path_graph(n), virtual_nodes(n, k), num_nodes=n)


def test_union_empty():
    """No input, or only empty inputs: an empty int64 [2, 0] on the CPU."""
    for ei in (union(), union(torch.empty(2, 0, dtype=torch.long)),
               union(torch.empty(2, 0, dtype=torch.int32), num_nodes=4)):
        assert ei.shape == (2, 0) and ei.dtype == torch.int64 and ei.device.type == "cpu"


@pytest.mark.parametrize("device", DEVICES)
def test_union_device(device):
    """The result stays on the inputs' device."""
    ei = union(path_graph(5, device=device), global_tokens(5, 1, device=device))
    assert_well_formed(ei, 5, device)


@pytest.mark.parametrize("args,kwargs,error,match", [
    ((path_graph(4), [[0, 1], [1, 0]]), {}, TypeError, r"edge_indices\[1\]"),
    ((torch.zeros(3, 2, dtype=torch.long),), {}, ValueError, r"edge_indices\[0\]"),
    ((torch.zeros(2, 2),), {}, TypeError, r"edge_indices\[0\]"),
    ((torch.tensor([[0, -1], [1, 0]]),), {}, ValueError, r"edge_indices\[0\]"),
    ((path_graph(3), path_graph(5)), dict(num_nodes=4), ValueError, r"edge_indices\[1\]"),
    ((path_graph(3),), dict(num_nodes=-1), ValueError, "num_nodes"),
    ((path_graph(3),), dict(num_nodes=3.0), TypeError, "num_nodes"),
])
def test_union_bad_arguments(args, kwargs, error, match):
    """Bad inputs raise an error naming the offending argument."""
    with pytest.raises(error, match=match):
        union(*args, **kwargs)


# ---------------------------------------------------------------- bigbird

@pytest.mark.parametrize("n", [0, 1, 2, 5, 16, 40])
@pytest.mark.parametrize("window,num_global,num_random", [(3, 2, 3), (0, 0, 0), (1, 0, 2),
                                                          (0, 3, 0), (2, 50, 1)])
def test_bigbird_is_window_global_random_union(n, window, num_global, num_random):
    """The union of the band |i-j| <= window, the first min(num_global, n) global tokens (with
    loops) and random_edges(n, num_random, seed); count between the largest part and the sum."""
    seed = 3
    ei = bigbird(n, window, num_global, num_random, seed=seed)
    assert_well_formed(ei, max(n, 1))
    rand = random_edges(n, num_random, seed=seed)
    parts = [brute_window(n, window), brute_global(n, range(min(num_global, n)), True),
             edge_set(rand)]
    assert torch.equal(ei, as_edge_index(set().union(*parts)))
    assert max(map(len, parts)) <= ei.size(1) <= sum(map(len, parts))
    assert bool((in_degree(ei, n) >= 1).all())                           # every node self-loops


def test_bigbird_defaults_and_seed():
    """Defaults window=3, num_global=2, num_random=3, seed=0; the seed moves only the random
    part."""
    n = 48
    assert torch.equal(bigbird(n), bigbird(n, 3, 2, 3, seed=0))
    a, b = bigbird(n, seed=1), bigbird(n, seed=2)
    assert torch.equal(a, bigbird(n, seed=1))
    assert not torch.equal(a, b)
    fixed = brute_window(n, 3) | brute_global(n, [0, 1], True)
    assert fixed <= edge_set(a) and fixed <= edge_set(b)


@pytest.mark.parametrize("device", DEVICES)
def test_bigbird_device(device):
    """On ``device``, the same graph as on the CPU."""
    ei = bigbird(20, seed=4, device=device)
    assert_well_formed(ei, 20, device)
    assert torch.equal(ei.cpu(), bigbird(20, seed=4))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(n=-1), ValueError, "n must be"),
    (dict(n=8, window=-1), ValueError, "window"),
    (dict(n=8, num_global=-1), ValueError, "num_global"),
    (dict(n=8, num_global=1.0), TypeError, "num_global"),
    (dict(n=8, seed="0"), TypeError, "seed"),
    (dict(n=8, num_random=-1), ValueError, "num_random"),
])
def test_bigbird_bad_arguments(kwargs, error, match):
    """Bad arguments raise an error naming the argument the caller passed."""
    with pytest.raises(error, match=match):
        bigbird(**kwargs)


# ---------------------------------------------------------------- pattern_density

def test_pattern_density():
    """E / N^2 as a float: 1 for the complete graph with loops, (n-1)/n without, 0 for N=0,
    duplicates counted."""
    d = pattern_density(complete_graph(6), 6)
    assert isinstance(d, float) and d == 1.0
    assert pattern_density(complete_graph(6, self_loops=False), 6) == pytest.approx(5 / 6)
    assert pattern_density(torch.empty(2, 0, dtype=torch.long), 0) == 0.0
    assert pattern_density(torch.empty(2, 0, dtype=torch.long), 5) == 0.0
    ei = path_graph(10, 2)
    assert pattern_density(ei, 10) == pytest.approx(ei.size(1) / 100)
    assert pattern_density(torch.cat([ei, ei], 1), 10) == pytest.approx(2 * ei.size(1) / 100)
    # Isolated nodes past the largest id count in N.
    assert pattern_density(global_tokens(4, 1), 8) == pytest.approx(6 / 64)
    assert pattern_density(expander_edges(20, 4), 20) == pytest.approx(4 / 20)


@pytest.mark.parametrize("args,error,match", [
    ((complete_graph(3), 2), ValueError, "num_nodes"),
    ((complete_graph(3), -1), ValueError, "num_nodes"),
    ((complete_graph(3), 3.0), TypeError, "num_nodes"),
    ((complete_graph(3).t(), 3), ValueError, r"shape \[2, E\]"),
    (([[0], [1]], 3), TypeError, "edge_index"),
])
def test_pattern_density_bad_arguments(args, error, match):
    """Bad edge_index or num_nodes raise an error naming the argument."""
    with pytest.raises(error, match=match):
        pattern_density(*args)


# ------------------------------------------------------------------------------ exphormer

def test_exphormer_is_the_union_of_its_parts_with_their_types():
    from gatlib.graph import exphormer
    g = torch.Generator().manual_seed(3)
    n = 23
    src, dst = torch.randint(n, (2, 60), generator=g)
    graph = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])     # undirected, dups
    edge_index, edge_type = exphormer(graph, n, degree=4, num_virtual=2, seed=5)
    parts = [graph, expander_edges(n, 4, seed=5), virtual_nodes(n, 2)]
    assert torch.equal(edge_index, union(*parts, num_nodes=n + 2))
    assert edge_type.shape == (edge_index.size(1), 3)
    keys = edge_index[1] * (n + 2) + edge_index[0]
    for t, part in enumerate(parts):
        inside = torch.isin(keys, part[1] * (n + 2) + part[0])
        assert torch.equal(edge_type[:, t].bool(), inside)
    assert bool((edge_type.sum(1) >= 1).all())
    # Every real node has the expander's 4 far neighbours and the 2 virtual nodes among its
    # sources; each virtual node receives from every real node.
    into_real = edge_index[1] < n
    assert torch.equal(torch.bincount(edge_index[1][into_real & (edge_type[:, 1] == 1)],
                                      minlength=n), torch.full((n,), 4))
    assert torch.equal(torch.bincount(edge_index[1][~into_real] - n), torch.tensor([n, n]))


def test_exphormer_small_graphs_lower_the_degree():
    from gatlib.graph import exphormer
    empty = torch.empty(2, 0, dtype=torch.long)
    # (nodes, degree asked, degree drawn): below n, and n * d even.
    for n, asked, d in ((0, 4, 0), (1, 4, 0), (2, 4, 1), (3, 4, 2), (5, 4, 4), (5, 3, 2)):
        ei, et = exphormer(empty, n, degree=asked, num_virtual=1)
        assert int(et[:, 1].sum()) == n * d                     # the expander's edges
        assert int(et[:, 2].sum()) == 2 * n                     # to and from the virtual node
    with pytest.raises(ValueError, match="edge_index"):
        exphormer(torch.tensor([[0, 7], [1, 0]]), 3)
