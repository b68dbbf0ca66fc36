"""Bad input gets a ValueError/TypeError that names the argument, never a crash deep inside."""
import pytest
import torch

from gatlib.ops import gat_attention, sparse_attention

N, H, D, C = 6, 2, 4, 3
EI = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])


def qkv():
    return torch.randn(N, H, D), torch.randn(N, H, D), torch.randn(N, H, C)


@pytest.mark.parametrize("edge_index,exc,match", [
    (torch.tensor([[0, 1], [1, 6]]), ValueError, r"edge_index\[1\].*6"),
    (torch.tensor([[0, 9], [1, 2]]), ValueError, r"edge_index\[0\].*9"),
    (torch.tensor([[0, -1], [1, 2]]), ValueError, "negative"),
    (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), TypeError, "edge_index"),
    (torch.tensor([[0, 1, 2]]), ValueError, r"edge_index must have shape \[2, E\]"),
    (torch.tensor([[0, 1], [1, 2], [2, 3]]), ValueError, "edge_index"),
    ([[0, 1], [1, 2]], TypeError, "edge_index"),
])
def test_bad_edge_index(edge_index, exc, match):
    q, k, v = qkv()
    with pytest.raises(exc, match=match):
        sparse_attention(q, k, v, edge_index)
    with pytest.raises(exc, match=match):
        gat_attention(torch.randn(N, H), torch.randn(N, H), v, edge_index)


def test_bad_shapes_and_dtypes():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="k must have shape"):
        sparse_attention(q, k[:, :1], v, EI)
    with pytest.raises(ValueError, match="v must have shape"):
        sparse_attention(q, k, v[:4], EI)
    with pytest.raises(ValueError, match="q must be 3-dimensional"):
        sparse_attention(q[0], k, v, EI)
    with pytest.raises(TypeError, match="q: torch.float64"):
        sparse_attention(q.double(), k, v, EI)
    with pytest.raises(TypeError, match="q must be a floating-point"):
        sparse_attention(q.long(), k, v, EI)
    with pytest.raises(ValueError, match="bias must have shape"):
        sparse_attention(q, k, v, EI, bias=torch.randn(3, H))
    with pytest.raises(ValueError, match="bias must have shape"):
        sparse_attention(q, k, v, EI, bias=torch.randn(4, H + 1))
    with pytest.raises(ValueError, match="num_nodes"):
        sparse_attention(q, k, v, EI, num_nodes=N + 1)
    with pytest.raises(ValueError, match="dropout"):
        sparse_attention(q, k, v, EI, dropout=1.0)
    with pytest.raises(ValueError, match="a_dst must have shape"):
        gat_attention(torch.randn(N, H), torch.randn(N, H + 1), v, EI)
    with pytest.raises(ValueError, match="edge_score must have shape"):
        gat_attention(torch.randn(N, H), torch.randn(N, H), v, EI, edge_score=torch.randn(5))


def test_mismatched_devices_are_named():
    q, k, v = qkv()
    meta = torch.randn(N, H, C, device="meta")
    with pytest.raises(ValueError, match="v on meta"):
        sparse_attention(q, k, meta, EI)
    with pytest.raises(ValueError, match="edge_index on meta"):
        sparse_attention(q, k, v, EI.to("meta"))


def test_bipartite_counts():
    # 5 sources, 3 targets: a target index of 3 is out of range even though sources reach 4.
    k, v = torch.randn(5, H, D), torch.randn(5, H, C)
    q = torch.randn(3, H, D)
    ok = torch.tensor([[4, 0], [2, 1]])
    assert sparse_attention(q, k, v, ok).shape == (3, H, C)
    with pytest.raises(ValueError, match="target"):
        sparse_attention(q, k, v, torch.tensor([[0], [3]]))


# ---------------------------------------------------------------- numbers and adjacency kinds

@pytest.mark.parametrize("scale,match", [(float("nan"), "scale must be a number, got nan"),
                                         (0.0, "scale must be > 0"), (-1.0, "scale must be > 0"),
                                         (float("inf"), "scale must be finite")])
def test_bad_scale_is_named(scale, match):
    from gatlib.ops import dense_attention
    q, k, v = qkv()
    with pytest.raises(ValueError, match=match):
        sparse_attention(q, k, v, EI, scale=scale)
    with pytest.raises(ValueError, match=match):
        dense_attention(q, k, v, scale=scale)


@pytest.mark.parametrize("slope", [float("nan"), float("inf"), "0.2"])
def test_bad_negative_slope_is_named(slope):
    v = torch.randn(N, H, C)
    with pytest.raises((ValueError, TypeError), match="negative_slope"):
        gat_attention(torch.randn(N, H), torch.randn(N, H), v, EI, negative_slope=slope)


def test_sparse_adjacency_is_accepted_and_unknown_kinds_are_listed():
    from torch_geometric.utils import to_torch_csc_tensor
    q, k, v = qkv()
    adj = to_torch_csc_tensor(EI, size=(N, N)).t()          # float values, PyG's layout
    torch.testing.assert_close(sparse_attention(q, k, v, adj), sparse_attention(q, k, v, EI))
    for bad in ({"edge_index": EI}, torch.rand(N, N), (EI[0], EI[1])):
        with pytest.raises(TypeError, match="torch.sparse adjacency") as info:
            sparse_attention(q, k, v, bad)
        assert ".long()" not in str(info.value)


def test_dense_attention_n0_is_in_autograd():
    from gatlib.ops import dense_attention
    q, k, v = (torch.randn(0, H, D, requires_grad=True) for _ in range(3))
    out = dense_attention(q, k, v)
    assert out.shape == (0, H, D) and out.requires_grad
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    assert all(g.shape == (0, H, D) for g in grads)
    batch = torch.empty(0, dtype=torch.long)
    assert dense_attention(q, k, v, batch=batch).requires_grad


def test_dense_layer_names_a_wrong_dtype_of_x():
    from gatlib.nn import DenseGraphAttention
    layer = DenseGraphAttention(8, heads=2)
    with pytest.raises(TypeError, match=r"x has dtype torch.float64 .*float32"):
        layer(torch.randn(5, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        layer(torch.randint(0, 3, (5, 8)))
    with pytest.raises(ValueError, match=r"x must have shape \[\*, 8\]"):
        layer(torch.randn(5, 7))
    with torch.autocast("cpu", dtype=torch.bfloat16):    # autocast casts x itself: allowed
        assert layer(torch.randn(5, 8, dtype=torch.float64).float()).dtype == torch.bfloat16
