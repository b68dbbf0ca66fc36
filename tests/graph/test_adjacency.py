"""Tests for gatlib.graph.adjacency: every adjacency PyG accepts becomes the same checked graph,
in its own stored edge order, and attention weights go back into the caller's form."""
import pytest
import torch
import torch_geometric.utils as pyg_utils
from torch_geometric import EdgeIndex
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csc_tensor, to_torch_csr_tensor

from gatlib.graph import as_adjacency, to_csr
from gatlib.graph.adjacency import sparse_weights

from .test_csr import FIELDS, assert_matches_brute


def edges(seed, S, T, E=12):
    """Random distinct edges in random order (PyG's sparse builders merge duplicates), with a
    self-loop when square."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(S * T, generator=g)[:E]
    ei = torch.stack([pick // T, pick % T])                 # [2, E]
    if S == T and not bool((ei[0] == ei[1]).any()):
        ei[:, 0] = 1
    return ei


def csr_rows(ptr):
    """Row of each stored entry of compressed offsets, written without gatlib."""
    return torch.cat([torch.full((int(n),), i) for i, n in enumerate(ptr.diff().tolist())]
                     + [torch.empty(0, dtype=torch.long)])


def expected_edges(adj):
    """The caller-order [source, target] edges of a sparse adjacency [T, S]: its stored order."""
    if adj.layout == torch.sparse_coo:
        idx = adj._indices()
        return torch.stack([idx[1], idx[0]])
    if adj.layout == torch.sparse_csr:
        return torch.stack([adj.col_indices(), csr_rows(adj.crow_indices())])
    return torch.stack([csr_rows(adj.ccol_indices()), adj.row_indices()])


SIZES = [(6, 6), (7, 4), (3, 5)]


@pytest.mark.parametrize("S,T", SIZES)
@pytest.mark.parametrize("make", [to_torch_coo_tensor, to_torch_csc_tensor, to_torch_csr_tensor,
                                  "coalesced_coo"])
def test_torch_sparse_adjacency_in_pyg_layout(make, S, T):
    ei = edges(0, S, T)
    if make == "coalesced_coo":
        adj = to_torch_coo_tensor(ei, size=(S, T)).t().coalesce()
    else:
        adj = make(ei, size=(S, T)).t()                     # PyG's layout: [T, S], row = target
    a = as_adjacency(adj)
    assert a.kind == "sparse" and (a.num_src, a.num_dst) == (S, T)
    want = expected_edges(adj)
    assert torch.equal(a.edge_index(), want)
    assert_matches_brute(a.graph(), want, S, T)
    # The same multiset of edges as the edge_index it was made from.
    key = lambda e: sorted(zip(*e.tolist()))                # noqa: E731
    assert key(want) == key(ei)
    assert a.values is not None and a.values.shape == (ei.size(1),)


@pytest.mark.parametrize("S,T", SIZES)
@pytest.mark.parametrize("order", [None, "row", "col"])
def test_pyg_edge_index(order, S, T):
    ei = edges(1, S, T)
    e = EdgeIndex(ei, sparse_size=(S, T))
    if order is not None:
        e = e.sort_by(order)[0]
    a = as_adjacency(e)
    assert a.kind == "pyg_edge_index" and (a.num_src, a.num_dst) == (S, T)
    plain = e.as_tensor()
    assert torch.equal(a.edge_index(), plain)
    graph = a.graph()
    # Every field is consistent (the constructor checked them) and describes the same edges.
    assert torch.equal(graph.edge_index(), plain)
    assert torch.equal(graph.in_degree(), torch.bincount(plain[1], minlength=T))
    if order == "col":          # sorted by target already: the CSC cache is the CSR view
        assert torch.equal(graph.perm, torch.arange(ei.size(1)))


def test_pyg_edge_index_sort_caches_are_used(monkeypatch):
    """A row-sorted EdgeIndex sorts by target once (its own cache); the next call reuses it."""
    e = EdgeIndex(edges(2, 6, 6), sparse_size=(6, 6)).sort_by("row")[0]
    calls = []
    real = pyg_utils.index_sort

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(pyg_utils, "index_sort", counting)
    first = as_adjacency(e).graph()
    assert len(calls) == 1
    second = as_adjacency(e).graph()
    assert len(calls) == 1
    for name in FIELDS:
        assert torch.equal(getattr(first, name), getattr(second, name))


def test_graph_from_pyg_edge_index_owns_its_memory():
    e = EdgeIndex(edges(3, 5, 5), sparse_size=(5, 5)).sort_by("col")[0]
    graph = to_csr(e)
    before = {name: getattr(graph, name).clone() for name in FIELDS}
    e.as_tensor().numpy()[0, :] = 4                         # edit the EdgeIndex in place
    for name in FIELDS:
        assert torch.equal(getattr(graph, name), before[name]), name


def test_pyg_edge_index_without_sizes_and_unsorted():
    ei = edges(4, 6, 6)
    a = as_adjacency(EdgeIndex(ei))
    assert a.num_src == int(ei.max()) + 1
    a = as_adjacency(EdgeIndex(ei), 9, 9)
    assert (a.num_src, a.num_dst) == (9, 9)
    assert_matches_brute(a.graph(), ei, 9, 9)


def test_plain_graph_and_int32_forms():
    ei = edges(5, 6, 6)
    a = as_adjacency(ei, 6)
    assert a.kind == "edge_index" and a.edge_index() is ei
    assert_matches_brute(as_adjacency(ei.int(), 6).graph(), ei, 6, 6)
    graph = to_csr(ei, 6)
    b = as_adjacency(graph)
    assert b.kind == "graph" and b.graph() is graph and (b.num_src, b.num_dst) == (6, 6)
    assert as_adjacency(graph).with_self_loops() is graph.with_self_loops()


@pytest.mark.parametrize("kind", ["graph", "edge_index_obj", "sparse"])
def test_node_counts_that_disagree_are_named(kind):
    ei = edges(6, 5, 5)
    adj = {"graph": to_csr(ei, 5), "edge_index_obj": EdgeIndex(ei, sparse_size=(5, 5)),
           "sparse": to_torch_coo_tensor(ei, size=(5, 5)).t()}[kind]
    with pytest.raises(ValueError, match=r"edge_index is .* 5 source nodes, but x_src = 6"):
        as_adjacency(adj, 6, 5, count_names=("x_src", "x_dst"))
    with pytest.raises(ValueError, match=r"5 target nodes, but num_dst = 3"):
        as_adjacency(adj, 5, 3)


def test_unsupported_inputs_list_the_accepted_kinds():
    ei = edges(7, 4, 4)
    with pytest.raises(TypeError, match="torch.sparse adjacency.*SparseTensor"):
        as_adjacency(ei.tolist())
    with pytest.raises(TypeError, match="adj.to_sparse"):
        as_adjacency(torch.rand(4, 4))                          # a dense adjacency matrix
    dense = torch.zeros(4, 4)
    dense[0, 1] = 1
    with pytest.raises(TypeError, match="layout"):
        as_adjacency(dense.to_sparse_bsr((2, 2)))
    with pytest.raises(ValueError, match="sparse dims"):
        as_adjacency(torch.zeros(2, 2, 2).to_sparse())
    # A float sparse adjacency is not told to call .long() (it is accepted as it is).
    a = as_adjacency(to_torch_csr_tensor(ei, size=(4, 4)).t().to(torch.float64))
    assert a.num_src == 4


def test_bad_compressed_offsets_are_caught_before_use():
    adj = torch.sparse_csr_tensor(torch.tensor([0, 5]), torch.tensor([0]), torch.ones(1),
                                  size=(1, 1), check_invariants=False)
    with pytest.raises(ValueError, match=r"crow_indices\(\) must rise"):
        as_adjacency(adj)
    adj = torch.sparse_csr_tensor(torch.tensor([0, 1]), torch.tensor([3]), torch.ones(1),
                                  size=(1, 2), check_invariants=False)
    with pytest.raises(ValueError, match="node index 3"):
        as_adjacency(adj)


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr, torch.sparse_csc])
def test_sparse_weights_put_each_weight_at_its_edge(layout):
    ei = torch.tensor([[0, 2, 1, 3, 0], [1, 1, 2, 0, 3]])
    graph = to_csr(ei, 4)
    alpha = torch.arange(10, dtype=torch.float).view(5, 2)   # [E, H]
    adj = sparse_weights(graph, alpha, layout)
    assert adj.layout == layout and adj.shape == (4, 4, 2)
    want = torch.zeros(4, 4, 2)
    want[ei[1], ei[0]] = alpha                               # row = target, column = source
    torch.testing.assert_close(adj.to_dense(), want)
    if layout == torch.sparse_coo:
        assert adj.is_coalesced()


@pytest.mark.parametrize("kind", ["edge_index", "graph", "pyg", "sparse_csr", "sparse_coo"])
def test_attention_weights_in_the_callers_form(kind):
    ei = torch.tensor([[0, 2, 1, 3], [1, 1, 2, 0]])
    src = {"edge_index": ei, "graph": to_csr(ei, 4), "pyg": EdgeIndex(ei, sparse_size=(4, 4)),
           "sparse_csr": to_torch_csc_tensor(ei, size=(4, 4)).t(),
           "sparse_coo": to_torch_coo_tensor(ei, size=(4, 4)).t()}[kind]
    a = as_adjacency(src)
    used = a.with_self_loops()
    alpha = torch.rand(used.num_edges, 3)
    ret, weights = a.attention_weights(used, alpha, loops_added=True)
    assert weights is alpha
    if kind.startswith("sparse"):
        assert ret.layout == src.layout and ret.shape == (4, 4, 3)
        assert ret._nnz() == used.num_edges
    else:
        assert torch.equal(ret, used.edge_index())
        assert isinstance(ret, EdgeIndex) == (kind == "pyg")
    if kind in ("edge_index", "pyg"):                       # no loops added: the input itself
        assert a.attention_weights(a.graph(), alpha[:4], loops_added=False)[0] is src


def test_torch_sparse_sparse_tensor():
    torch_sparse = pytest.importorskip("torch_sparse")
    ei = edges(8, 5, 3)
    value = torch.randn(ei.size(1), 4)
    adj = torch_sparse.SparseTensor.from_edge_index(ei, value, sparse_sizes=(5, 3)).t()
    a = as_adjacency(adj)
    assert a.kind == "sparse_tensor" and (a.num_src, a.num_dst) == (5, 3)
    row, col, val = adj.coo()
    assert torch.equal(a.edge_index(), torch.stack([col, row]))
    assert torch.equal(a.values, val)
    used = a.graph()
    out = a.attention_weights(used, torch.rand(used.num_edges, 2), loops_added=False)
    assert isinstance(out, torch_sparse.SparseTensor) and out.sizes() == [3, 5, 2]


def test_no_unchecked_way_in():
    """Only the checking entry points build what reaches the kernels."""
    import gatlib.graph as graph_pkg
    from gatlib.graph import Adjacency
    bad = torch.tensor([[10**6], [0]])
    with pytest.raises(TypeError, match="as_adjacency"):
        Adjacency("edge_index", bad, 2, 2, edge_index=bad)
    assert not hasattr(graph_pkg, "build_csr") and not hasattr(graph_pkg, "self_looped")
    with pytest.raises(ValueError, match="node index 1000000"):
        as_adjacency(bad, 2, 2)
