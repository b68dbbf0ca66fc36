"""Tests for gatlib.graph.validate: bad input fails early with an error naming the argument."""
import pytest
import torch

from gatlib.graph import check_edge_index, check_num_nodes, check_same_device, check_tensor


# ---------------------------------------------------------------- check_edge_index

def test_check_edge_index_accepts_and_infers():
    edge_index = torch.tensor([[0, 1, 4], [1, 2, 0]])
    assert check_edge_index(edge_index) == 5
    assert check_edge_index(edge_index, num_nodes=7) == 7
    assert check_edge_index(edge_index.int()) == 5
    assert check_edge_index(torch.empty(2, 0, dtype=torch.long)) == 0
    assert check_edge_index(torch.empty(2, 0, dtype=torch.long), num_nodes=3) == 3
    assert check_edge_index(edge_index, num_nodes=torch.tensor(5)) == 5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_check_edge_index_float_is_type_error(dtype):
    with pytest.raises(TypeError, match=r"edge_index.*edge_index\.long\(\)"):
        check_edge_index(torch.tensor([[0, 1], [1, 0]]).to(dtype))


def test_check_edge_index_not_a_tensor():
    with pytest.raises(TypeError, match="edge_index"):
        check_edge_index([[0, 1], [1, 0]])


def test_check_edge_index_transposed_is_value_error():
    edge_index = torch.tensor([[0, 1], [1, 2], [2, 0], [0, 2], [1, 1]])   # [E, 2]
    with pytest.raises(ValueError, match=r"\[2, E\].*edge_index\.t\(\)"):
        check_edge_index(edge_index)
    for bad in (torch.tensor([0, 1, 2]), torch.zeros(2, 3, 1, dtype=torch.long)):
        with pytest.raises(ValueError, match="edge_index"):
            check_edge_index(bad)


def test_check_edge_index_sparse_is_type_error():
    with pytest.raises(TypeError, match="dense"):
        check_edge_index(torch.tensor([[0, 1], [1, 0]]).to_sparse())


def test_check_edge_index_negative_is_value_error():
    with pytest.raises(ValueError, match="negative"):
        check_edge_index(torch.tensor([[0, -1], [1, 0]]))
    with pytest.raises(ValueError, match="negative"):
        check_edge_index(torch.tensor([[0, 1], [1, -3]]), num_nodes=4)


def test_check_edge_index_out_of_range_is_value_error():
    with pytest.raises(ValueError, match=r"edge_index\[0\].*num_nodes"):
        check_edge_index(torch.tensor([[0, 5], [1, 0]]), num_nodes=5)
    with pytest.raises(ValueError, match=r"edge_index\[1\].*num_nodes"):
        check_edge_index(torch.tensor([[0, 1], [1, 3]]), num_nodes=3)
    with pytest.raises(ValueError, match="num_nodes"):
        check_edge_index(torch.tensor([[0], [0]]), num_nodes=0)


def test_check_edge_index_bipartite():
    edge_index = torch.tensor([[0, 4, 2], [1, 0, 1]])          # 5 sources, 2 targets
    assert check_edge_index(edge_index, num_nodes=5, num_dst_nodes=2) == 5
    with pytest.raises(ValueError, match="target"):
        check_edge_index(edge_index, num_nodes=5, num_dst_nodes=1)
    with pytest.raises(ValueError, match="num_dst_nodes"):
        check_edge_index(edge_index, num_nodes=5, num_dst_nodes=-1)


def test_check_edge_index_uses_given_name():
    with pytest.raises(TypeError, match="my_edges"):
        check_edge_index(torch.zeros(2, 2), name="my_edges")


def test_check_edge_index_negative_num_nodes_is_value_error():
    with pytest.raises(ValueError, match="num_nodes"):
        check_edge_index(torch.empty(2, 0, dtype=torch.long), num_nodes=-1)


# ---------------------------------------------------------------- check_num_nodes

def test_check_num_nodes():
    assert check_num_nodes(0) == 0 and check_num_nodes(12) == 12
    assert check_num_nodes(torch.tensor(3)) == 3
    assert type(check_num_nodes(torch.tensor([3]))) is int
    with pytest.raises(ValueError, match="num_nodes"):
        check_num_nodes(-1)
    for bad in (2.0, True, "3", None, torch.tensor(2.0), torch.tensor([1, 2])):
        with pytest.raises(TypeError, match="num_nodes"):
            check_num_nodes(bad)
    with pytest.raises(ValueError, match="height"):
        check_num_nodes(-4, name="height")


# ---------------------------------------------------------------- check_tensor / devices

def test_check_tensor():
    x = torch.zeros(4, 3)
    assert check_tensor(x, "x", dim=2, shape=(None, 3)) is x
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        check_tensor([1.0], "x")
    with pytest.raises(ValueError, match=r"x must be 3-dimensional \[\*, 3, \*\]"):
        check_tensor(x, "x", dim=3, shape=(None, 3, None))
    with pytest.raises(TypeError, match=r"x\.float\(\)"):
        check_tensor(torch.zeros(4, dtype=torch.long), "x")
    assert check_tensor(torch.zeros(4, dtype=torch.long), "x", floating=False).dtype == torch.long
    with pytest.raises(ValueError, match=r"size 3 != 5 in dim 1"):
        check_tensor(x, "x", shape=(4, 5))


def test_check_same_device():
    a, b = torch.zeros(1), torch.zeros(2)
    assert check_same_device(a=a, b=b, c=None) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"a on cpu, b on meta"):
        check_same_device(a=a, b=torch.zeros(1, device="meta"))


# ---------------------------------------------------------------- numbers, sparse, compile

def test_check_real():
    from gatlib.graph.validate import check_real
    assert check_real(2, "scale") == 2.0 and check_real(torch.tensor(0.5), "scale") == 0.5
    with pytest.raises(ValueError, match="scale must be a number, got nan"):
        check_real(float("nan"), "scale")
    with pytest.raises(ValueError, match="scale must be finite"):
        check_real(float("inf"), "scale")
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="scale must be > 0"):
            check_real(bad, "scale", positive=True)
    assert check_real(-0.5, "negative_slope") == -0.5
    for bad in ("0.2", True, None, torch.ones(2)):
        with pytest.raises(TypeError, match="negative_slope must be a number"):
            check_real(bad, "negative_slope")


def test_check_edge_index_sparse_gets_no_long_advice():
    adj = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).to_sparse_csr()
    with pytest.raises(TypeError) as info:
        check_edge_index(adj)
    assert ".long()" not in str(info.value) and "sparse" in str(info.value)


def test_check_edge_index_under_compile_checks_without_graph_break():
    """Under torch.compile the range check is a graph op: fullgraph traces it, a good input
    passes and a bad one still raises, naming the argument."""
    def f(edge_index, x):
        check_edge_index(edge_index, x.size(0))
        return x[edge_index[0]].sum()

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    x = torch.randn(5, 3)
    good = torch.tensor([[0, 4], [1, 2]])
    torch.testing.assert_close(compiled(good, x), f(good, x))
    with pytest.raises(RuntimeError, match=r"edge_index\[0\] \(sources\) holds a node index"):
        compiled(torch.tensor([[0, 5], [1, 2]]), x)
