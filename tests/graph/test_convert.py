"""Tests for gatlib.graph.convert: edge_index <-> networkx."""
import networkx as nx
import pytest
import torch

from gatlib.graph import from_networkx, grid_graph, path_graph, to_networkx


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


# ---------------------------------------------------------------- to_networkx

def test_to_networkx_directed():
    edge_index = torch.tensor([[0, 1, 1, 3], [1, 2, 0, 3]])
    G = to_networkx(edge_index, num_nodes=6)
    assert isinstance(G, nx.DiGraph)
    assert list(G.nodes) == list(range(6))                   # isolated 4, 5 included
    assert set(G.edges) == {(0, 1), (1, 2), (1, 0), (3, 3)}
    assert G.has_edge(0, 1) and G.has_edge(1, 0) and not G.has_edge(2, 1)


def test_to_networkx_undirected_and_duplicates():
    edge_index = torch.tensor([[0, 1, 0, 2], [1, 0, 1, 1]])
    G = to_networkx(edge_index, directed=False)
    assert type(G) is nx.Graph
    assert G.number_of_nodes() == 3
    assert {frozenset(e) for e in G.edges} == {frozenset((0, 1)), frozenset((1, 2))}
    D = to_networkx(edge_index)
    assert D.number_of_edges() == 3                          # the duplicate (0, 1) collapses


def test_to_networkx_empty_and_validation():
    G = to_networkx(torch.empty(2, 0, dtype=torch.long), num_nodes=3)
    assert list(G.nodes) == [0, 1, 2] and G.number_of_edges() == 0
    assert to_networkx(torch.empty(2, 0, dtype=torch.long)).number_of_nodes() == 0
    with pytest.raises(ValueError, match="num_nodes"):
        to_networkx(torch.tensor([[0, 5], [1, 0]]), num_nodes=3)
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        to_networkx(torch.tensor([[0, 1], [1, 2], [2, 0]]))


def test_to_networkx_matches_networkx_builders():
    G = to_networkx(path_graph(6), directed=False)
    assert nx.utils.graphs_equal(G, nx.path_graph(6))
    H = to_networkx(grid_graph(3, 4), directed=False)
    want = nx.convert_node_labels_to_integers(nx.grid_2d_graph(3, 4), ordering="sorted")
    assert set(map(frozenset, H.edges)) == set(map(frozenset, want.edges))


# ---------------------------------------------------------------- from_networkx

def test_from_networkx_directed_node_order():
    G = nx.DiGraph()
    G.add_nodes_from(["c", "a", "z", "b"])                   # z stays isolated
    G.add_edges_from([("a", "b"), ("b", "c"), ("c", "a")])
    edge_index, n = from_networkx(G)
    assert n == 4 and edge_index.dtype == torch.long
    ids = {"c": 0, "a": 1, "z": 2, "b": 3}
    want = [(ids[u], ids[v]) for u, v in G.edges()]
    assert edge_index.t().tolist() == [list(e) for e in want]


def test_from_networkx_undirected_gives_both_directions():
    G = nx.Graph([(0, 1), (1, 2), (2, 2)])
    edge_index, n = from_networkx(G)
    assert n == 3
    # Both directions of each edge; the self-loop appears once.
    assert sorted(map(tuple, edge_index.t().tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1),
                                                          (2, 2)]


def test_from_networkx_multigraph_keeps_duplicates():
    M = nx.MultiDiGraph([(0, 1), (0, 1), (1, 0)])
    edge_index, n = from_networkx(M)
    assert n == 2 and sorted(map(tuple, edge_index.t().tolist())) == [(0, 1), (0, 1), (1, 0)]
    U = nx.MultiGraph([(0, 1), (0, 1), (1, 1), (1, 1)])
    edge_index, _ = from_networkx(U)
    assert sorted(map(tuple, edge_index.t().tolist())) == [(0, 1), (0, 1), (1, 0), (1, 0),
                                                          (1, 1), (1, 1)]


def test_from_networkx_empty_and_bad_input():
    edge_index, n = from_networkx(nx.Graph())
    assert edge_index.shape == (2, 0) and edge_index.dtype == torch.long and n == 0
    G = nx.empty_graph(5)
    edge_index, n = from_networkx(G)
    assert edge_index.shape == (2, 0) and n == 5
    with pytest.raises(TypeError, match="networkx"):
        from_networkx(torch.tensor([[0], [1]]))


@pytest.mark.parametrize("seed", range(5))
def test_round_trip(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 15, (1,), generator=g))
    edge_index = torch.randint(0, n, (2, 40), generator=g)
    edge_index = torch.unique(edge_index, dim=1)             # simple graph: no duplicates
    back, m = from_networkx(to_networkx(edge_index, num_nodes=n))
    assert m == n and edge_set(back) == edge_set(edge_index)
    assert back.size(1) == edge_index.size(1)
    # Through an undirected graph: the symmetrised edge set.
    back, _ = from_networkx(to_networkx(edge_index, num_nodes=n, directed=False))
    assert edge_set(back) == edge_set(edge_index) | edge_set(edge_index.flip(0))
    # And from networkx: a random undirected graph comes back unchanged.
    gnp = nx.gnp_random_graph(n, 0.3, seed=seed)
    G = to_networkx(*from_networkx(gnp), directed=False)
    assert list(G.nodes) == list(gnp.nodes)
    assert set(map(frozenset, G.edges)) == set(map(frozenset, gnp.edges))
