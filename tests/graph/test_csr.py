"""Tests for gatlib.graph.csr: the CSR view against a brute-force construction, and its cache."""
import gc

import pytest
import torch

from gatlib.graph import GraphCSR, clear_csr_cache, path_graph, to_csr


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_csr_cache()
    yield
    clear_csr_cache()


def brute_csr(edge_index, num_src, num_dst):
    """Every field of GraphCSR, built with Python lists and sorts."""
    src, dst = edge_index.tolist()
    E = len(src)
    perm = sorted(range(E), key=lambda e: (dst[e], e))       # stable sort by target
    col = [src[e] for e in perm]
    row = [dst[e] for e in perm]
    rowptr = [sum(1 for t in dst if t < i) for i in range(num_dst + 1)]
    perm_t = sorted(range(E), key=lambda p: (col[p], p))     # stable sort by source
    col_t = [row[p] for p in perm_t]
    rowptr_t = [sum(1 for s in src if s < j) for j in range(num_src + 1)]
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)
    return dict(rowptr=as_long(rowptr), col=as_long(col), row=as_long(row), perm=as_long(perm),
                rowptr_t=as_long(rowptr_t), col_t=as_long(col_t), perm_t=as_long(perm_t))


def assert_matches_brute(csr, edge_index, num_src, num_dst):
    want = brute_csr(edge_index, num_src, num_dst)
    for name, value in want.items():
        got = getattr(csr, name)
        assert got.dtype == torch.long, name
        assert torch.equal(got, value), name
    assert csr.num_src == num_src and csr.num_dst == num_dst
    assert csr.num_edges == edge_index.size(1)
    assert torch.equal(csr.edge_index(), edge_index.long())
    assert torch.equal(csr.in_degree(), torch.bincount(edge_index[1].long(), minlength=num_dst))


def random_graph(seed, num_src, num_dst=None, max_edges=40):
    """Random edges with duplicates, self-loops and (usually) isolated nodes."""
    num_dst = num_src if num_dst is None else num_dst
    g = torch.Generator().manual_seed(seed)
    E = int(torch.randint(0, max_edges + 1, (1,), generator=g)) if num_src and num_dst else 0
    # Sample from a few nodes only, so that the rest stay isolated and edges repeat.
    hi_src = num_src - 2 if num_src > 3 else max(num_src, 1)
    hi_dst = num_dst - 2 if num_dst > 3 else max(num_dst, 1)
    src = torch.randint(0, hi_src, (E,), generator=g)
    dst = torch.randint(0, hi_dst, (E,), generator=g)
    edge_index = torch.stack([src, dst])                     # [2, E]
    if E and num_src == num_dst:
        # Repeat three edges and add two self-loops.
        edge_index = torch.cat([edge_index, edge_index[:, :3], src[:2].expand(2, -1)], dim=1)
    return edge_index


# ---------------------------------------------------------------- structure

@pytest.mark.parametrize("seed", range(20))
def test_to_csr_matches_brute_force(seed):
    n = [0, 1, 2, 5, 9, 17][seed % 6]
    edge_index = random_graph(seed, n)
    assert_matches_brute(to_csr(edge_index, num_nodes=n), edge_index, n, n)


def test_to_csr_edge_cases():
    for n in (0, 1, 4):
        empty = torch.empty(2, 0, dtype=torch.long)
        csr = to_csr(empty, num_nodes=n)
        assert_matches_brute(csr, empty, n, n)
        assert torch.equal(csr.rowptr, torch.zeros(n + 1, dtype=torch.long))
    # Inferred node count, self-loops and duplicates only.
    edge_index = torch.tensor([[2, 2, 0, 2], [2, 2, 0, 2]])
    csr = to_csr(edge_index)
    assert csr.num_nodes == 3
    assert_matches_brute(csr, edge_index, 3, 3)
    assert torch.equal(csr.rowptr, torch.tensor([0, 1, 1, 4]))
    # int32 input gives int64 fields.
    assert_matches_brute(to_csr(edge_index.int(), num_nodes=5), edge_index, 5, 5)


def test_to_csr_keeps_caller_order_within_target():
    edge_index = torch.tensor([[3, 1, 2, 0, 1], [1, 0, 1, 1, 0]])
    csr = to_csr(edge_index, num_nodes=4)
    assert torch.equal(csr.perm, torch.tensor([1, 4, 0, 2, 3]))
    assert torch.equal(csr.col, torch.tensor([1, 1, 3, 2, 0]))
    assert torch.equal(csr.rowptr, torch.tensor([0, 2, 5, 5, 5]))


def test_to_csr_of_path_graph_is_already_sorted():
    edge_index = path_graph(50, window=3, self_loops=True)
    csr = to_csr(edge_index, num_nodes=50)
    assert torch.equal(csr.perm, torch.arange(edge_index.size(1)))
    assert torch.equal(csr.col, edge_index[0])


@pytest.mark.parametrize("seed", range(8))
def test_to_csr_bipartite(seed):
    num_src, num_dst = [(5, 2), (2, 7), (1, 1), (0, 3), (6, 0), (9, 4), (3, 3), (11, 1)][seed]
    edge_index = random_graph(seed, num_src, num_dst)
    csr = to_csr(edge_index, num_nodes=num_src, num_dst_nodes=num_dst)
    assert csr.rowptr.numel() == num_dst + 1 and csr.rowptr_t.numel() == num_src + 1
    assert_matches_brute(csr, edge_index, num_src, num_dst)
    assert csr.num_nodes == num_dst


def test_to_csr_bad_input():
    with pytest.raises(ValueError, match="target"):
        to_csr(torch.tensor([[0, 4], [1, 2]]), num_nodes=5, num_dst_nodes=2)
    with pytest.raises(TypeError, match="edge_index"):
        to_csr(torch.tensor([[0.0], [1.0]]))
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        to_csr(torch.tensor([[0, 1], [1, 2], [2, 0]]))
    with pytest.raises(ValueError, match="num_nodes"):
        to_csr(torch.tensor([[0, 3], [1, 2]]), num_nodes=3)


def test_graph_csr_passthrough_and_helpers():
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
    csr = to_csr(edge_index, num_nodes=3)
    assert to_csr(csr) is csr and to_csr(csr, num_nodes=3, num_dst_nodes=3) is csr
    with pytest.raises(ValueError, match="num_nodes"):
        to_csr(csr, num_nodes=4)
    with pytest.raises(ValueError, match="num_dst_nodes"):
        to_csr(csr, num_dst_nodes=2)
    assert isinstance(csr, GraphCSR)
    assert repr(csr) == "GraphCSR(num_nodes=3, num_edges=3, device=cpu)"
    bip = to_csr(edge_index, num_nodes=3, num_dst_nodes=4)
    assert repr(bip) == "GraphCSR(num_src=3, num_dst=4, num_edges=3, device=cpu)"
    moved = csr.to("cpu")
    assert moved.device == torch.device("cpu") and torch.equal(moved.perm_t, csr.perm_t)


# ---------------------------------------------------------------- cache

def test_cache_returns_same_object_for_same_tensor():
    edge_index = random_graph(1, 9)
    csr = to_csr(edge_index, num_nodes=9)
    assert to_csr(edge_index, num_nodes=9) is csr
    assert to_csr(edge_index, 9) is csr
    inferred = to_csr(edge_index)
    assert to_csr(edge_index) is inferred


def test_cache_distinguishes_node_counts():
    edge_index = random_graph(2, 9)
    a = to_csr(edge_index, num_nodes=9)
    b = to_csr(edge_index, num_nodes=12)
    assert b is not a and b.num_nodes == 12
    assert_matches_brute(b, edge_index, 12, 12)
    c = to_csr(edge_index, num_nodes=9, num_dst_nodes=10)
    assert c.num_dst == 10 and c.rowptr.numel() == 11
    assert_matches_brute(c, edge_index, 9, 10)


def test_cache_rebuilds_after_in_place_edit():
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    old = to_csr(edge_index, num_nodes=4)
    edge_index[0, 0] = 3                                     # in place: same id, new contents
    new = to_csr(edge_index, num_nodes=4)
    assert new is not old
    assert_matches_brute(new, edge_index, 4, 4)
    assert to_csr(edge_index, num_nodes=4) is new
    edge_index[1].zero_()                                    # an in-place op on a view
    assert_matches_brute(to_csr(edge_index, num_nodes=4), edge_index, 4, 4)


def test_cache_in_place_edit_out_of_range_is_caught():
    edge_index = torch.tensor([[0, 1], [1, 0]])
    to_csr(edge_index, num_nodes=2)
    edge_index[0, 0] = 7
    with pytest.raises(ValueError, match="num_nodes"):
        to_csr(edge_index, num_nodes=2)


def test_cache_fresh_tensor_with_equal_values():
    edge_index = random_graph(3, 9)
    first = to_csr(edge_index, num_nodes=9)
    twin = edge_index.clone()
    csr = to_csr(twin, num_nodes=9)
    assert_matches_brute(csr, twin, 9, 9)
    assert_matches_brute(first, edge_index, 9, 9)


def test_cache_survives_id_reuse():
    # Freed tensors' ids get reused; a new tensor with another graph must never get a stale view.
    for seed in range(30):
        edge_index = random_graph(seed, 7)
        assert_matches_brute(to_csr(edge_index, num_nodes=7), edge_index, 7, 7)
        del edge_index
        gc.collect()


def test_cache_opt_out():
    edge_index = random_graph(4, 6)
    a = to_csr(edge_index, num_nodes=6, cache=False)
    b = to_csr(edge_index, num_nodes=6, cache=False)
    assert a is not b
    assert_matches_brute(a, edge_index, 6, 6)
    c = to_csr(edge_index, num_nodes=6, validate=False)
    assert_matches_brute(c, edge_index, 6, 6)
    assert to_csr(edge_index, num_nodes=6) is not c          # unvalidated views are not cached


def test_clear_csr_cache():
    edge_index = random_graph(5, 6)
    csr = to_csr(edge_index, num_nodes=6)
    clear_csr_cache()
    again = to_csr(edge_index, num_nodes=6)
    assert again is not csr
    assert_matches_brute(again, edge_index, 6, 6)
