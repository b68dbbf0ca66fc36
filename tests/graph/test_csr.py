"""Tests for gatlib.graph.csr: the CSR view against a brute-force construction, the structures
derived from it and kept on it, and the validation of every GraphCSR."""
import gc

import pytest
import torch

import gatlib.graph.csr as csr_module
from gatlib.graph import GraphCSR, path_graph, to_csr

FIELDS = ("rowptr", "col", "row", "perm", "rowptr_t", "col_t", "perm_t")


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


# ---------------------------------------------------------------- no hidden cache

def test_no_module_level_cache():
    """Nothing is kept under a tensor's id, data pointer or version: the module has no cache."""
    for name in ("_CACHE", "cache_get", "cache_put", "clear_csr_cache"):
        assert not hasattr(csr_module, name)
    import gatlib.graph
    assert not hasattr(gatlib.graph, "clear_csr_cache")


def test_plain_tensor_is_converted_on_every_call():
    edge_index = random_graph(1, 9)
    a, b = to_csr(edge_index, num_nodes=9), to_csr(edge_index, num_nodes=9)
    assert a is not b
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert to_csr(a) is a                                    # a GraphCSR passes through


def test_node_counts_are_per_call():
    edge_index = random_graph(2, 9)
    a = to_csr(edge_index, num_nodes=9)
    b = to_csr(edge_index, num_nodes=12)
    assert b.num_nodes == 12 and a.num_nodes == 9
    assert_matches_brute(b, edge_index, 12, 12)
    c = to_csr(edge_index, num_nodes=9, num_dst_nodes=10)
    assert c.num_dst == 10 and c.rowptr.numel() == 11
    assert_matches_brute(c, edge_index, 9, 10)


def _edit_routes():
    """Ways of writing into an edge_index, some of which do not bump its version counter."""
    def plain(t):
        t[0, 0] = 3

    def numpy_view(t):
        t.numpy()[0, 0] = 3

    def data(t):
        t.data[0, 0] = 3

    def view_op(t):
        t[1].zero_()
    return {"plain": plain, "numpy": numpy_view, "data": data, "view": view_op}


@pytest.mark.parametrize("route", ["plain", "numpy", "data", "view"])
def test_in_place_edit_by_any_route_gives_the_new_graph(route):
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    assert_matches_brute(to_csr(edge_index, num_nodes=4), edge_index, 4, 4)
    _edit_routes()[route](edge_index)
    assert_matches_brute(to_csr(edge_index, num_nodes=4), edge_index, 4, 4)


def test_refilled_from_numpy_buffer_gives_the_new_graph():
    import numpy as np
    buf = np.array([[0, 1, 2, 3], [1, 2, 3, 0]], dtype=np.int64)
    edge_index = torch.from_numpy(buf)
    to_csr(edge_index, num_nodes=4)
    buf[:] = np.array([[3, 3, 0, 0], [0, 1, 1, 2]])           # same memory, new graph
    assert_matches_brute(to_csr(edge_index, num_nodes=4), edge_index, 4, 4)


def test_held_graph_does_not_follow_edits_of_its_edge_index():
    """A GraphCSR owns its indices: editing the tensor it was built from changes nothing."""
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    graph = to_csr(edge_index, num_nodes=4)
    before = {name: getattr(graph, name).clone() for name in FIELDS}
    edge_index.numpy()[0, 0] = 10**6
    for name in FIELDS:
        assert torch.equal(getattr(graph, name), before[name]), name


def test_in_place_edit_out_of_range_is_caught():
    edge_index = torch.tensor([[0, 1], [1, 0]])
    to_csr(edge_index, num_nodes=2)
    edge_index.numpy()[0, 0] = 7
    with pytest.raises(ValueError, match="num_nodes"):
        to_csr(edge_index, num_nodes=2)


def test_fresh_tensor_with_equal_values():
    edge_index = random_graph(3, 9)
    first = to_csr(edge_index, num_nodes=9)
    twin = edge_index.clone()
    csr = to_csr(twin, num_nodes=9)
    assert_matches_brute(csr, twin, 9, 9)
    assert_matches_brute(first, edge_index, 9, 9)


def test_id_reuse_never_gives_a_stale_view():
    # Freed tensors' ids get reused; a new tensor with another graph must never get a stale view.
    for seed in range(30):
        edge_index = random_graph(seed, 7)
        assert_matches_brute(to_csr(edge_index, num_nodes=7), edge_index, 7, 7)
        del edge_index
        gc.collect()


def test_no_unvalidated_construction():
    edge_index = random_graph(4, 6)
    with pytest.raises(TypeError):
        to_csr(edge_index, num_nodes=6, validate=False)
    with pytest.raises(TypeError):
        to_csr(edge_index, num_nodes=6, cache=False)


# ---------------------------------------------------------------- derived structures

def test_edge_index_is_built_once():
    graph = to_csr(random_graph(5, 8), num_nodes=8)
    assert graph.edge_index() is graph.edge_index()


def test_derived_slot_builds_once_per_key():
    graph = to_csr(random_graph(6, 8), num_nodes=8)
    calls = []

    def build(tag):
        calls.append(tag)
        return [tag]
    a = graph.derived(("plan", 4), lambda: build(4))
    assert graph.derived(("plan", 4), lambda: build(4)) is a
    b = graph.derived(("plan", 8), lambda: build(8))
    assert b == [8] and calls == [4, 8]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sizes", [(7, 7), (7, 4), (3, 6)])
def test_with_self_loops_is_pyg_remove_then_add(seed, sizes):
    S, T = sizes
    edge_index = random_graph(seed, S, T)
    if S == T and edge_index.numel():
        edge_index = torch.cat([edge_index, torch.tensor([[1], [1]])], dim=1)
    graph = to_csr(edge_index, num_nodes=S, num_dst_nodes=T)
    loops = graph.with_self_loops()
    assert graph.with_self_loops() is loops                  # built once, kept on the graph
    from torch_geometric.utils import add_self_loops, remove_self_loops
    want, _ = remove_self_loops(edge_index)
    want, _ = add_self_loops(want, num_nodes=(S, T))         # PyG: loops for min(S, T) nodes
    assert torch.equal(loops.edge_index(), want)
    assert_matches_brute(loops, want, S, T)
    keep = (edge_index[0] != edge_index[1]).nonzero().view(-1)
    assert torch.equal(loops.kept_edges, keep)
    assert graph.kept_edges is None


def test_with_self_loops_ignores_edits_of_the_handed_out_edge_index():
    graph = to_csr(torch.tensor([[0, 1, 2], [1, 2, 0]]), num_nodes=3)
    handed = graph.edge_index()
    handed[0, 0] = 10**6                                     # a caller scribbles on it
    loops = graph.with_self_loops()
    assert int(loops.col.max()) < 3
    assert_matches_brute(loops, torch.tensor([[0, 1, 2, 0, 1, 2], [1, 2, 0, 0, 1, 2]]), 3, 3)


def test_to_device_keeps_fields_and_kept_edges():
    loops = to_csr(random_graph(7, 6), num_nodes=6).with_self_loops()
    moved = loops.to("cpu")
    for name in FIELDS:
        assert torch.equal(getattr(moved, name), getattr(loops, name))
    assert torch.equal(moved.kept_edges, loops.kept_edges)


def test_fields_are_read_only():
    graph = to_csr(random_graph(8, 6), num_nodes=6)
    with pytest.raises(AttributeError):
        graph.col = torch.zeros(graph.num_edges, dtype=torch.long)


def test_from_edge_index():
    edge_index = random_graph(9, 7)
    graph = GraphCSR.from_edge_index(edge_index, 7)
    assert_matches_brute(graph, edge_index, 7, 7)
    with pytest.raises(ValueError, match="num_nodes"):
        GraphCSR.from_edge_index(edge_index, 2)


# ---------------------------------------------------------------- validation of hand-built graphs

def _fields(edge_index, S, T=None):
    graph = to_csr(edge_index, num_nodes=S, num_dst_nodes=T)
    return {name: getattr(graph, name).clone() for name in FIELDS}


def test_hand_built_graph_is_checked_and_accepted_when_valid():
    edge_index = random_graph(10, 9)
    fields = _fields(edge_index, 9)
    graph = GraphCSR(**fields, num_src=9, num_dst=9)
    assert_matches_brute(graph, edge_index, 9, 9)


def _corrupt(name, fn):
    fields = _fields(torch.tensor([[0, 1, 2, 3, 3], [1, 2, 3, 0, 1]]), 4)
    fn(fields[name])
    return fields


@pytest.mark.parametrize("name,edit,match", [
    ("col", lambda t: t.__setitem__(0, 10**6), r"col \(sources\) contains node index 1000000"),
    ("col", lambda t: t.__setitem__(0, -1), "col .*negative"),
    ("row", lambda t: t.__setitem__(0, 9), "row"),
    ("col_t", lambda t: t.__setitem__(0, 9), "col_t"),
    ("perm", lambda t: t.__setitem__(0, 10**6), "perm"),
    ("perm", lambda t: t.__setitem__(0, int(t[1])), "perm must be a permutation"),
    ("perm_t", lambda t: t.__setitem__(0, 99), "perm_t"),
    ("rowptr", lambda t: t.__setitem__(-1, 99), "rowptr must rise"),
    ("rowptr", lambda t: t.__setitem__(1, 4), "rowptr"),
    ("rowptr_t", lambda t: t.__setitem__(0, 1), "rowptr_t must rise"),
])
def test_hand_built_graph_with_a_bad_field_raises(name, edit, match):
    with pytest.raises(ValueError, match=match):
        GraphCSR(**_corrupt(name, edit))


def test_hand_built_graph_owns_contiguous_copies():
    """Any strides in (expanded, sliced from a table), contiguous int64 copies kept: the
    kernels read them as contiguous, and the caller's later edits reach nothing."""
    ei = torch.tensor([[0, 0, 0, 0], [1, 2, 3, 0]])
    f = {n: getattr(to_csr(ei, 4), n).clone() for n in FIELDS}
    f["col"] = torch.zeros(1, dtype=torch.long).expand(4)                 # stride 0
    f["row"] = torch.stack([f["row"], -f["row"]], dim=1)[:, 0]            # stride 2
    g = GraphCSR(**f)
    for name in FIELDS:
        t = getattr(g, name)
        assert t.is_contiguous() and t.dtype == torch.long, name
        assert t.data_ptr() != f[name].data_ptr(), name
    f["perm"][0] = 1 << 40                                                # the caller's copy
    assert torch.equal(g.edge_index(), ei)


def test_in_place_edit_of_a_field_is_caught_at_the_next_use():
    g = to_csr(torch.tensor([[0, 1, 2], [1, 2, 0]]), 3)
    g.tensors()
    g.col[0] = 2
    with pytest.raises(ValueError, match="field col was edited in place"):
        g.tensors()
    with pytest.raises(ValueError, match="field col was edited in place"):
        g.with_self_loops()


def test_csr_and_adjacency_do_not_import_each_other():
    """graph/csr.py is below graph/adjacency.py: to_csr lives with as_adjacency."""
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(csr_module))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any("adjacency" in (m or "") for m in imported)
    from gatlib.graph import adjacency
    assert to_csr is adjacency.to_csr


def test_hand_built_graph_inconsistent_orders_raise():
    fields = _fields(torch.tensor([[0, 1, 2, 3, 3], [1, 2, 3, 0, 1]]), 4)
    fields["col_t"] = fields["col_t"].flip(0)
    with pytest.raises(ValueError, match="col_t"):
        GraphCSR(**fields)
    fields = _fields(torch.tensor([[0, 1, 2, 3, 3], [1, 2, 3, 0, 1]]), 4)
    fields["perm_t"] = torch.arange(5)
    with pytest.raises(ValueError, match="perm_t"):
        GraphCSR(**fields)


def test_hand_built_graph_types_lengths_and_counts():
    fields = _fields(torch.tensor([[0, 1], [1, 0]]), 2)
    with pytest.raises(TypeError, match="col must be a 1-D torch.long"):
        GraphCSR(**dict(fields, col=fields["col"].int()))
    with pytest.raises(ValueError, match="row must have one entry per edge"):
        GraphCSR(**dict(fields, row=fields["row"][:1]))
    with pytest.raises(ValueError, match="num_src=5"):
        GraphCSR(**fields, num_src=5)
    with pytest.raises(TypeError, match="perm"):
        GraphCSR(**dict(fields, perm=[0, 1]))


def test_source_index_far_out_of_range_never_reaches_a_kernel():
    """The issue's case: a source index of 10**6 used to read out of bounds and crash."""
    from gatlib.ops import gat_attention, sparse_attention
    fields = _fields(torch.tensor([[0, 1, 2], [1, 2, 0]]), 3)
    fields["col"][0] = 10**6
    with pytest.raises(ValueError, match="col"):
        graph = GraphCSR(**fields)
        gat_attention(torch.randn(3, 1), torch.randn(3, 1), torch.randn(3, 1, 2), graph)
    q = torch.randn(3, 1, 2)
    with pytest.raises(ValueError, match="edge_index"):
        sparse_attention(q, q, q, torch.tensor([[0, 10**6], [1, 2]]))


@pytest.mark.parametrize("n", [1, 5, 300, 1 << 16, (1 << 16) + 1, 5_000_000])
@pytest.mark.parametrize("E", [0, 1, 7, 10_000])
def test_stable_argsort_equals_torchs(n, E):
    """The CPU radix path (one or two 16-bit passes) gives torch's stable order exactly."""
    from gatlib.graph.csr import _stable_argsort
    idx = torch.randint(0, n, (E,), generator=torch.Generator().manual_seed(E + n))
    got = _stable_argsort(idx, n)
    assert got.dtype == torch.long and torch.equal(got, torch.argsort(idx, stable=True))


def test_offsets_equal_searchsorted():
    from gatlib.graph.csr import _offsets
    idx = torch.sort(torch.randint(0, 50, (400,), generator=torch.Generator().manual_seed(0)))[0]
    for n in (50, 80):
        want = torch.searchsorted(idx, torch.arange(n + 1))
        assert torch.equal(_offsets(idx, n), want)
    assert torch.equal(_offsets(idx[:0], 3), torch.zeros(4, dtype=torch.long))
