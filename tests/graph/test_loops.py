"""Tests for gatlib.graph.loops: adding, removing and detecting self-loops."""
import pytest
import torch

from gatlib.graph import add_self_loops, contains_self_loops, path_graph, remove_self_loops


@pytest.fixture
def graph():
    # 4 nodes; node 3 is isolated (no in-edges), node 1 has a self-loop and a duplicate edge.
    edge_index = torch.tensor([[0, 1, 2, 1, 0, 0],
                               [1, 1, 0, 2, 2, 2]])
    return edge_index, 4


# ---------------------------------------------------------------- add_self_loops

def test_add_self_loops_appends_at_end(graph):
    edge_index, n = graph
    out, attr = add_self_loops(edge_index, num_nodes=n)
    E = edge_index.size(1)
    assert attr is None
    assert out.shape == (2, E + n)
    assert torch.equal(out[:, :E], edge_index)
    assert torch.equal(out[:, E:], torch.arange(n).expand(2, n))
    # The loop already present on node 1 is kept: that node now has two.
    assert int(((out[0] == 1) & (out[1] == 1)).sum()) == 2


def test_add_self_loops_infers_num_nodes():
    edge_index = torch.tensor([[0, 2], [1, 0]])
    out, _ = add_self_loops(edge_index)
    assert torch.equal(out[:, 2:], torch.tensor([[0, 1, 2], [0, 1, 2]]))


def test_add_self_loops_empty_and_dtype():
    empty = torch.empty(2, 0, dtype=torch.long)
    out, _ = add_self_loops(empty, num_nodes=3)
    assert torch.equal(out, torch.tensor([[0, 1, 2], [0, 1, 2]]))
    out, attr = add_self_loops(empty, edge_attr=torch.empty(0, 5))
    assert out.shape == (2, 0) and attr.shape == (0, 5)
    out32, _ = add_self_loops(torch.tensor([[0], [1]], dtype=torch.int32))
    assert out32.dtype == torch.int32
    assert torch.equal(out32.long(), torch.tensor([[0, 0, 1], [1, 0, 1]]))


def test_add_self_loops_fill_none_is_zeros(graph):
    edge_index, n = graph
    attr = torch.randn(edge_index.size(1), 3)
    out, out_attr = add_self_loops(edge_index, n, edge_attr=attr)
    assert out_attr.shape == (out.size(1), 3) and out_attr.dtype == attr.dtype
    assert torch.equal(out_attr[:6], attr)
    assert torch.equal(out_attr[6:], torch.zeros(n, 3))


@pytest.mark.parametrize("value", [1.5, -2, 0.0])
def test_add_self_loops_fill_number(graph, value):
    edge_index, n = graph
    attr = torch.randn(edge_index.size(1))                   # 1-D edge features
    _, out_attr = add_self_loops(edge_index, n, edge_attr=attr, fill_value=value)
    assert out_attr.shape == (edge_index.size(1) + n,)
    assert torch.equal(out_attr[6:], torch.full((n,), float(value)))


@pytest.mark.parametrize("shape", [(6,), (6, 3), (6, 2, 4)])
def test_add_self_loops_fill_mean(graph, shape):
    edge_index, n = graph
    attr = torch.randn(shape, dtype=torch.float64)
    _, out_attr = add_self_loops(edge_index, n, edge_attr=attr, fill_value="mean")
    for i in range(n):
        incoming = attr[edge_index[1] == i]
        want = incoming.mean(0) if len(incoming) else torch.zeros(shape[1:], dtype=attr.dtype)
        torch.testing.assert_close(out_attr[6 + i], want)
    assert torch.equal(out_attr[6 + 3], torch.zeros(shape[1:], dtype=attr.dtype))  # isolated


def test_add_self_loops_fill_mean_gradient(graph):
    edge_index, n = graph
    attr = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    _, out_attr = add_self_loops(edge_index, n, edge_attr=attr, fill_value="mean")
    torch.autograd.gradcheck(
        lambda a: add_self_loops(edge_index, n, edge_attr=a, fill_value="mean")[1], (attr,))
    assert out_attr.requires_grad


def test_add_self_loops_fill_tensor(graph):
    edge_index, n = graph
    attr = torch.randn(6, 3)
    row = torch.tensor([1.0, 2.0, 3.0])
    _, out_attr = add_self_loops(edge_index, n, edge_attr=attr, fill_value=row)
    assert torch.equal(out_attr[6:], row.expand(n, 3))
    per_node = torch.randn(n, 3)
    _, out_attr = add_self_loops(edge_index, n, edge_attr=attr, fill_value=per_node)
    assert torch.equal(out_attr[6:], per_node)
    # A scalar tensor and another dtype are broadcast and cast.
    _, out_attr = add_self_loops(edge_index, n, edge_attr=attr, fill_value=torch.tensor(7))
    assert out_attr.dtype == torch.float32 and bool((out_attr[6:] == 7).all())
    with pytest.raises(ValueError, match="fill_value"):
        add_self_loops(edge_index, n, edge_attr=attr, fill_value=torch.ones(2))


def test_add_self_loops_fill_ignored_without_edge_attr(graph):
    edge_index, n = graph
    out, attr = add_self_loops(edge_index, n, fill_value="mean")
    assert attr is None and out.size(1) == 6 + n


def test_add_self_loops_bad_arguments(graph):
    edge_index, n = graph
    with pytest.raises(ValueError, match="fill_value"):
        add_self_loops(edge_index, n, edge_attr=torch.ones(6), fill_value="max")
    with pytest.raises(TypeError, match="fill_value"):
        add_self_loops(edge_index, n, edge_attr=torch.ones(6), fill_value=[1.0])
    with pytest.raises(TypeError, match="edge_attr.float"):
        add_self_loops(edge_index, n, edge_attr=torch.ones(6, dtype=torch.long),
                       fill_value="mean")
    with pytest.raises(ValueError, match="edge_attr"):
        add_self_loops(edge_index, n, edge_attr=torch.ones(5, 2))
    with pytest.raises(ValueError, match="edge_attr"):
        add_self_loops(edge_index, n, edge_attr=torch.tensor(1.0))
    with pytest.raises(TypeError, match="edge_attr"):
        add_self_loops(edge_index, n, edge_attr=[1.0] * 6)
    with pytest.raises(TypeError, match="edge_index"):
        add_self_loops(edge_index.float(), n)
    with pytest.raises(ValueError, match="num_nodes"):
        add_self_loops(edge_index, num_nodes=2)


# ---------------------------------------------------------------- remove / contains

def test_remove_self_loops(graph):
    edge_index, _ = graph
    attr = torch.arange(6.0).view(6, 1)
    out, out_attr = remove_self_loops(edge_index, attr)
    assert torch.equal(out, torch.tensor([[0, 2, 1, 0, 0], [1, 0, 2, 2, 2]]))
    assert torch.equal(out_attr, torch.tensor([[0.0], [2.0], [3.0], [4.0], [5.0]]))
    out, out_attr = remove_self_loops(edge_index)
    assert out_attr is None and not contains_self_loops(out)


def test_remove_undoes_add():
    edge_index = path_graph(9, window=2)
    attr = torch.randn(edge_index.size(1), 4)
    looped, looped_attr = add_self_loops(edge_index, 9, attr, fill_value=1.0)
    assert contains_self_loops(looped)
    back, back_attr = remove_self_loops(looped, looped_attr)
    assert torch.equal(back, edge_index) and torch.equal(back_attr, attr)


def test_remove_self_loops_empty_and_bad_arguments():
    out, attr = remove_self_loops(torch.empty(2, 0, dtype=torch.long), torch.empty(0))
    assert out.shape == (2, 0) and attr.shape == (0,)
    loops_only = torch.tensor([[0, 1], [0, 1]])
    assert remove_self_loops(loops_only)[0].shape == (2, 0)
    with pytest.raises(ValueError, match="edge_attr"):
        remove_self_loops(loops_only, torch.ones(3))
    with pytest.raises(ValueError, match="edge_index"):
        remove_self_loops(torch.tensor([[0, 1, 2]]))


def test_contains_self_loops():
    assert contains_self_loops(torch.tensor([[0, 1], [1, 1]]))
    assert not contains_self_loops(torch.tensor([[0, 1], [1, 0]]))
    assert not contains_self_loops(torch.empty(2, 0, dtype=torch.long))
    assert isinstance(contains_self_loops(path_graph(3, self_loops=True)), bool)
    with pytest.raises(TypeError, match="edge_index"):
        contains_self_loops(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
