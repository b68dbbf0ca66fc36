"""Attention over pattern graphs is masked dense attention: sparse attention over dilated and
causal windows, global tokens, BigBird, random edges and grid neighbourhoods equals
``scaled_dot_product_attention`` under the boolean mask ``mask[i, j] = (j -> i is an edge)``
built by hand from positions, forward and backward, in float64; complete graphs over a batch
equal dense attention; and on images, attention over the complete graph of patches is a plain
transformer over the patch sequence."""
import math

import pytest
import torch
import torch.nn.functional as F

from gatlib.graph import complete_graph, grid_graph, path_graph
from gatlib.graph.patterns import bigbird, global_tokens, random_edges, union
from gatlib.nn import DenseGraphAttention, GraphTransformerConv
from gatlib.ops import dense_attention, sparse_attention, use_backend

from ..conftest import backends_under_test

BACKENDS = backends_under_test()
TOL = dict(rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- helpers

def _qkv(N, H=2, D=4, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(N, H, d, generator=g, dtype=torch.float64).requires_grad_()
            for d in (D, D, C)]


def _adjacency(edge_index, n):
    """``mask[i, j] = (j -> i is an edge)`` of a graph, ``[N, N]`` bool."""
    mask = torch.zeros(n, n, dtype=torch.bool)
    mask[edge_index[1], edge_index[0]] = True
    return mask


def _masked_sdpa(q, k, v, mask):
    """SDPA on ``[H, N, D]`` under ``mask [N, N]``; a row with no key gives zero (the graph
    convention for a node without in-edges), computed so that it stays out of the gradients."""
    empty = ~mask.any(dim=1)                                               # [N]
    out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1),
                                         v.transpose(0, 1),
                                         attn_mask=mask | empty.view(-1, 1))  # [H, N, C]
    return out.transpose(0, 1).masked_fill(empty.view(-1, 1, 1), 0.0)     # [N, H, C]


def assert_equals_masked_sdpa(backend, edge_index, mask, seed=0):
    """The graph's adjacency is ``mask``, and sparse attention over it equals masked SDPA,
    forward and gradients of q, k, v."""
    n = mask.size(0)
    assert torch.equal(_adjacency(edge_index, n), mask)
    q, k, v = _qkv(n, seed=seed)
    want = _masked_sdpa(q, k, v, mask)
    with use_backend(backend):
        got = sparse_attention(q, k, v, edge_index, num_nodes=n)
    torch.testing.assert_close(got, want, **TOL)
    g = torch.randn(want.shape, generator=torch.Generator().manual_seed(seed + 1),
                    dtype=want.dtype)
    grads_got = torch.autograd.grad((got * g).sum(), (q, k, v))
    grads_want = torch.autograd.grad((want * g).sum(), (q, k, v))
    for a, b in zip(grads_got, grads_want):
        torch.testing.assert_close(a, b, **TOL)


def _diff(n):
    i = torch.arange(n)
    return i.view(-1, 1) - i.view(1, -1)                                   # [N, N] query i - key j


def _block_diagonal(sizes):
    """``mask[i, j]``: i and j belong to the same sequence."""
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return batch, batch.view(-1, 1) == batch.view(1, -1)


def _batched(parts):
    """Disjoint union of per-sequence edge_index tensors (PyG's batching)."""
    out, offset = [], 0
    for ei, n in parts:
        out.append(ei + offset)
        offset += n
    return torch.cat(out, dim=1)


# ---------------------------------------------------------------- sequences

@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
@pytest.mark.parametrize("window,dilation,causal,self_loops", [
    (2, 2, False, True), (3, 2, True, True), (2, 3, False, False), (2, 3, True, False),
])
def test_dilated_window_equals_dilated_sdpa(backend, window, dilation, causal, self_loops):
    """path_graph(n, window, dilation, causal) is the mask |i-j| = d * dilation, d <= window
    (j <= i when causal): sparse attention equals SDPA under it; nodes without key are zero."""
    n = 19
    diff = _diff(n)
    mask = ((diff.abs() % dilation == 0) & (diff.abs() // dilation <= window)
            & (diff != 0 if not self_loops else True) & (diff >= 0 if causal else True))
    ei = path_graph(n, window=window, dilation=dilation, causal=causal, self_loops=self_loops)
    assert_equals_masked_sdpa(backend, ei, mask)


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
def test_window_plus_global_tokens_equals_longformer_sdpa(backend):
    """union(window, global tokens) is Longformer's mask: |i-j| <= w, or i or j global."""
    n, w, ids = 20, 2, [0, 9, 16]
    ei = union(path_graph(n, w, self_loops=True), global_tokens(n, ids), num_nodes=n)
    is_global = torch.zeros(n, dtype=torch.bool)
    is_global[ids] = True
    mask = (_diff(n).abs() <= w) | is_global.view(-1, 1) | is_global.view(1, -1)
    assert_equals_masked_sdpa(backend, ei, mask)


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
def test_bigbird_equals_bigbird_sdpa(backend):
    """bigbird is window + global + random: SDPA under that mask, in any edge order."""
    n, w, g, r, seed = 20, 2, 2, 3, 5
    ei = bigbird(n, window=w, num_global=g, num_random=r, seed=seed)
    first = torch.arange(n) < g
    mask = ((_diff(n).abs() <= w) | first.view(-1, 1) | first.view(1, -1)
            | _adjacency(random_edges(n, r, seed=seed), n))
    assert_equals_masked_sdpa(backend, ei, mask)
    # The caller's edge order does not matter.
    perm = torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(0))
    assert_equals_masked_sdpa(backend, ei[:, perm], mask)


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
@pytest.mark.parametrize("causal", [False, True])
def test_random_edges_equal_sdpa(backend, causal):
    """Random attention with self loops equals SDPA under the mask of the drawn sources
    plus the diagonal (each row has per_node sources, or all j < i when causal)."""
    n, per_node = 16, 4
    ei = random_edges(n, per_node, seed=2, causal=causal, self_loops=True)
    rand = _adjacency(random_edges(n, per_node, seed=2, causal=causal), n)
    assert rand.sum(1).tolist() == [min(per_node, i if causal else n - 1) for i in range(n)]
    assert_equals_masked_sdpa(backend, ei, rand | torch.eye(n, dtype=torch.bool))


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
def test_complete_graphs_over_a_batch_equal_dense_attention(backend):
    """Sparse attention over one complete graph per sequence equals dense_attention(q, k, v,
    batch) and SDPA under the block-diagonal mask, forward and backward, in float64."""
    sizes = [5, 1, 7, 3]
    batch, mask = _block_diagonal(sizes)
    ei = _batched([(complete_graph(n), n) for n in sizes])
    assert torch.equal(_adjacency(ei, sum(sizes)), mask)
    q, k, v = _qkv(sum(sizes), seed=3)
    dense = dense_attention(q, k, v, batch)
    torch.testing.assert_close(dense, _masked_sdpa(q, k, v, mask), **TOL)
    with use_backend(backend):
        sparse = sparse_attention(q, k, v, ei)
    torch.testing.assert_close(sparse, dense, **TOL)
    g = torch.randn(dense.shape, generator=torch.Generator().manual_seed(4), dtype=dense.dtype)
    for a, b in zip(torch.autograd.grad((sparse * g).sum(), (q, k, v)),
                    torch.autograd.grad((dense * g).sum(), (q, k, v))):
        torch.testing.assert_close(a, b, **TOL)


# ---------------------------------------------------------------- grids and images

@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
@pytest.mark.parametrize("height,width,radius,diagonal,self_loops", [
    (4, 4, 1, False, False), (4, 5, 1, True, True), (5, 3, 2, False, True), (3, 4, 2, True, False),
])
def test_grid_graph_equals_neighbourhood_sdpa(backend, height, width, radius, diagonal,
                                              self_loops):
    """grid_graph is the mask of (row, col) neighbours: Chebyshev distance <= radius (square),
    or same row / column within radius (plus); sparse attention equals SDPA under it."""
    n = height * width
    r, c = torch.arange(n) // width, torch.arange(n) % width               # node id r * w + c
    dr = (r.view(-1, 1) - r.view(1, -1)).abs()
    dc = (c.view(-1, 1) - c.view(1, -1)).abs()
    near = torch.maximum(dr, dc) <= radius
    if not diagonal:
        near &= torch.minimum(dr, dc) == 0
    mask = near & ((dr + dc > 0) | self_loops)
    ei = grid_graph(height, width, radius=radius, diagonal=diagonal, self_loops=self_loops)
    assert_equals_masked_sdpa(backend, ei, mask)


@pytest.fixture(scope="module")
def patch_batch():
    """The first two digits as graphs of 2x2 patches on the complete graph (a plain
    transformer over 16 patches), batched PyG-style, with the patch sequences cut by hand."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from torch_geometric.data import Batch

    from gatlib.data.tasks import digits_graphs

    data, _ = digits_graphs(patch=2, full=True)
    batch = Batch.from_data_list(data[:2])
    images = torch.as_tensor(sklearn_datasets.load_digits().images[:2]) / 16.0  # [B, 8, 8]
    # Patch (pr, pc) holds pixels (2 pr + a, 2 pc + b), row-major over (a, b).
    patches = images.view(2, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(2, 16, 4)  # [B, P, 4]
    return batch, patches


def _vit_attention(x, lin_q, lin_k, lin_v, heads):
    """Plain multi-head attention over each sequence of ``x [B, P, F]``: softmax(QK^T/sqrt(D))V
    per image and head, heads concatenated. Returns ``[B, P, H * D]``."""
    B, P, _ = x.shape
    q, k, v = (lin(x).view(B, P, heads, -1).transpose(1, 2) for lin in (lin_q, lin_k, lin_v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))               # [B, H, P, P]
    out = scores.softmax(dim=-1) @ v                                       # [B, H, P, D]
    return out.transpose(1, 2).reshape(B, P, -1)                           # [B, P, H * D]


def test_patch_nodes_are_the_image_patches(patch_batch):
    """digits_graphs(patch=2, full=True): node features are the row-major patches (then the
    patch coordinates), and each image's graph is the complete graph on its 16 patches."""
    batch, patches = patch_batch
    assert batch.num_graphs == 2 and batch.num_nodes == 32
    torch.testing.assert_close(batch.x[:, :4].view(2, 16, 4), patches.float(), rtol=0, atol=1e-7)
    _, block = _block_diagonal([16, 16])
    assert torch.equal(_adjacency(batch.edge_index, 32), block)


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
def test_transformer_conv_on_complete_patch_graphs_is_a_vit_attention(patch_batch, backend):
    """GraphTransformerConv over the batched complete patch graphs equals multi-head attention
    over each image's patch sequence with the layer's own weights, plus its skip map;
    forward and the gradient of the input."""
    batch, _ = patch_batch
    torch.manual_seed(0)
    H, C = 2, 3
    conv = GraphTransformerConv(batch.x.size(1), C, heads=H).double()
    x = batch.x.double().requires_grad_()                                  # [B * P, F]
    with use_backend(backend):
        got = conv(x, batch.edge_index)                                    # [B * P, H * C]
    xs = x.view(2, 16, -1)                                                 # [B, P, F]
    want = (_vit_attention(xs, conv.lin_query, conv.lin_key, conv.lin_value, H)
            + conv.lin_skip(xs)).reshape(32, H * C)
    torch.testing.assert_close(got, want, **TOL)
    g = torch.randn(want.shape, generator=torch.Generator().manual_seed(1), dtype=want.dtype)
    (g1,) = torch.autograd.grad((got * g).sum(), x)
    (g2,) = torch.autograd.grad((want * g).sum(), x)
    torch.testing.assert_close(g1, g2, **TOL)


def test_dense_graph_attention_on_patches_is_a_vit_attention(patch_batch):
    """DenseGraphAttention over the patches (batch vector) equals multi-head attention over
    each image's patch sequence followed by its output map, and equals GraphTransformerConv
    over the complete patch graphs with the same q/k/v weights (then the output map)."""
    batch, _ = patch_batch
    torch.manual_seed(1)
    H, F_in = 2, batch.x.size(1)                                           # F = 6: 4 pixels + 2
    dense = DenseGraphAttention(F_in, heads=H).double()
    x = batch.x.double().requires_grad_()
    got = dense(x, batch.batch)                                            # [B * P, F]
    xs = x.view(2, 16, F_in)
    want = dense.lin_out(_vit_attention(xs, dense.lin_q, dense.lin_k, dense.lin_v, H))
    torch.testing.assert_close(got, want.reshape(32, F_in), **TOL)

    conv = GraphTransformerConv(F_in, F_in // H, heads=H, root_weight=False).double()
    with torch.no_grad():
        for a, b in (("lin_q", "lin_query"), ("lin_k", "lin_key"), ("lin_v", "lin_value")):
            getattr(conv, b).weight.copy_(getattr(dense, a).weight)
            getattr(conv, b).bias.copy_(getattr(dense, a).bias)
    sparse = dense.lin_out(conv(x, batch.edge_index))
    torch.testing.assert_close(sparse, got, **TOL)
    g = torch.randn(got.shape, generator=torch.Generator().manual_seed(2), dtype=got.dtype)
    (g1,) = torch.autograd.grad((got * g).sum(), x)
    (g2,) = torch.autograd.grad((sparse * g).sum(), x)
    torch.testing.assert_close(g1, g2, **TOL)
