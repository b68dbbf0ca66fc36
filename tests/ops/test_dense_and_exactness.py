"""Dense attention, and the central exactness tests: sparse attention over the complete graph
equals dense attention; over a sliding-window path graph it equals banded SDPA."""
import pytest
import torch
import torch.nn.functional as F

from gatlib.graph import complete_graph, path_graph
from gatlib.ops import dense_attention, reference, sparse_attention, use_backend

from ..conftest import backends_under_test

BACKENDS = backends_under_test()


def _qkv(N, H=4, D=8, C=6, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(N, H, d, generator=g, dtype=dtype).requires_grad_() for d in (D, D, C)]


def _batched_complete_graph(sizes):
    parts, offset = [], 0
    for n in sizes:
        parts.append(complete_graph(n) + offset)
        offset += n
    return torch.cat(parts, dim=1)


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
def test_sparse_on_complete_graph_equals_dense(backend):
    q, k, v = _qkv(33)
    dense = dense_attention(q, k, v)
    with use_backend(backend):
        sparse = sparse_attention(q, k, v, complete_graph(33))
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=2e-6)
    g = torch.randn_like(dense)
    grads_dense = torch.autograd.grad((dense * g).sum(), (q, k, v))
    grads_sparse = torch.autograd.grad((sparse * g).sum(), (q, k, v))
    for a, b in zip(grads_sparse, grads_dense):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_complete_graphs_equal_batched_dense(backend):
    sizes = [5, 1, 17, 9]
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    q, k, v = _qkv(sum(sizes))
    dense = dense_attention(q, k, v, batch)
    with use_backend(backend):
        sparse = sparse_attention(q, k, v, _batched_complete_graph(sizes))
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(dense, reference.dense_attention_ref(q, k, v, batch),
                               rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
@pytest.mark.parametrize("window,causal", [(1, False), (3, False), (4, True)])
def test_sliding_window_equals_banded_sdpa(backend, window, causal):
    n = 40
    q, k, v = _qkv(n, dtype=torch.float64)
    ei = path_graph(n, window=window, causal=causal, self_loops=True)
    i = torch.arange(n)
    diff = i.view(-1, 1) - i.view(1, -1)                  # query i minus key j
    band = (diff.abs() <= window) & ((diff >= 0) if causal else True)
    want = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1),
                                          v.transpose(0, 1), attn_mask=band).transpose(0, 1)
    with use_backend(backend):
        got = sparse_attention(q, k, v, ei)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_dense_batch_with_empty_graph_and_gradients():
    # Graph ids 0 and 2 have nodes; graph 1 is empty.
    batch = torch.tensor([0, 0, 0, 2, 2])
    q, k, v = _qkv(5, dtype=torch.float64)
    out = dense_attention(q, k, v, batch)
    ref = reference.dense_attention_ref(q, k, v, batch)
    torch.testing.assert_close(out, ref)
    assert torch.autograd.gradcheck(lambda q, k, v: dense_attention(q, k, v, batch), (q, k, v))


def test_dense_rejects_bad_batch():
    q, k, v = _qkv(4)
    with pytest.raises(ValueError, match="batch must be sorted"):
        dense_attention(q, k, v, torch.tensor([1, 0, 0, 1]))
    with pytest.raises(ValueError, match="batch"):
        dense_attention(q, k, v, torch.tensor([0, 0, 1]))
    with pytest.raises(TypeError, match="batch"):
        dense_attention(q, k, v, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="k must have shape"):
        dense_attention(q, k[:3], v)


def test_dense_empty_input():
    q, k, v = _qkv(0)
    assert dense_attention(q, k, v).shape == (0, 4, 6)


@pytest.mark.parametrize("with_bias", [False, True])
def test_dense_batch_of_mixed_sizes_matches_reference(with_bias):
    """Graphs of 1 to 60 nodes fall in several size groups, each padded to its own largest graph;
    out of order group membership must still put every output back on its node."""
    sizes = [60, 1, 3, 2, 0, 17, 4, 33, 5, 1, 9, 16]
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    N, H = int(sum(sizes)), 4
    q, k, v = _qkv(N, H=H, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    bias = torch.randn(H, N, N, generator=g, dtype=torch.float64) if with_bias else None
    out = dense_attention(q, k, v, batch, attn_bias=bias)
    same = batch.view(-1, 1) == batch.view(1, -1)
    score = torch.einsum("ihd,jhd->hij", q, k) / 8 ** 0.5 + (bias if with_bias else 0)
    want = torch.einsum("hij,jhc->ihc", torch.softmax(score.masked_fill(~same, -1e300), -1), v)
    torch.testing.assert_close(out, want)
    if not with_bias:
        torch.testing.assert_close(out, reference.dense_attention_ref(q, k, v, batch))
    grad = torch.randn_like(out)
    got = torch.autograd.grad((out * grad).sum(), (q, k, v))
    ref = torch.autograd.grad((want * grad).sum(), (q, k, v))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b)
