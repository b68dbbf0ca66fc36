"""DenseGraphAttention: equal to sparse attention over the disjoint union of complete graphs
(the library's central identity, at layer level), no leakage between graphs, attention bias."""
import pytest
import torch

from gatlib.graph import complete_graph
from gatlib.nn.dense import DenseGraphAttention
from gatlib.ops import sparse_attention

SIZES = [3, 7, 1, 12]
C, H = 16, 4


def _batch(sizes=SIZES):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))   # [N]


def _union_of_complete_graphs(sizes=SIZES):
    parts, offset = [], 0
    for n in sizes:
        parts.append(complete_graph(n, self_loops=True) + offset)
        offset += n
    return torch.cat(parts, dim=1)                                                   # [2, E]


def _sparse_forward(layer, x, edge_index, bias=None):
    """The layer's maths with its own weights, through gatlib.ops.sparse_attention."""
    N, D = x.size(0), C // H
    q = layer.lin_q(x).view(N, H, D)
    k = layer.lin_k(x).view(N, H, D)
    v = layer.lin_v(x).view(N, H, D)
    out = sparse_attention(q, k, v, edge_index, bias=bias)                           # [N, H, D]
    return layer.lin_out(out.reshape(N, C))


def _layer(seed=0, **kwargs):
    torch.manual_seed(seed)
    layer = DenseGraphAttention(C, heads=H, **kwargs)
    # Non-zero biases so that they are covered by the comparisons.
    with torch.no_grad():
        for lin in (layer.lin_q, layer.lin_k, layer.lin_v, layer.lin_out):
            lin.bias.normal_()
    return layer


def _x(n=sum(SIZES), seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, C, generator=g).requires_grad_()


def _grads(out, x, layer, g):
    return torch.autograd.grad((out * g).sum(), [x, *layer.parameters()])


def test_equals_sparse_attention_over_complete_graphs_with_grads():
    layer, x, batch = _layer(), _x(), _batch()
    dense = layer(x, batch)
    sparse = _sparse_forward(layer, x, _union_of_complete_graphs())
    assert dense.shape == (sum(SIZES), C)
    torch.testing.assert_close(dense, sparse, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(dense)
    for a, b in zip(_grads(dense, x, layer, g), _grads(sparse, x, layer, g)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_batch_equals_each_graph_alone_no_leakage():
    layer, x, batch = _layer(), _x(), _batch()
    together = layer(x, batch)
    alone = torch.cat([layer(xs) for xs in x.split(SIZES)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(together)
    for a, b in zip(_grads(together, x, layer, g), _grads(alone, x, layer, g)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # Changing the features of one graph leaves the others untouched.
    x2 = x.detach().clone()
    x2[batch == 1] += 10.0
    out2 = layer(x2, batch)
    keep = batch != 1
    torch.testing.assert_close(out2[keep], together[keep], rtol=0, atol=0)


def test_zero_bias_equals_no_bias():
    layer, x, batch = _layer(), _x(), _batch()
    N = x.size(0)
    ref = layer(x, batch)
    torch.testing.assert_close(layer(x, batch, attn_bias=torch.zeros(N, N)), ref,
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer(x, batch, attn_bias=torch.zeros(H, N, N)), ref,
                               rtol=1e-5, atol=1e-5)


def test_bias_equals_sparse_attention_bias():
    layer, x, batch = _layer(), _x(), _batch()
    N = x.size(0)
    bias = torch.randn(H, N, N, generator=torch.Generator().manual_seed(3))
    ei = _union_of_complete_graphs()
    dense = layer(x, batch, attn_bias=bias)
    sparse = _sparse_forward(layer, x, ei, bias=bias[:, ei[1], ei[0]].t())           # [E, H]
    torch.testing.assert_close(dense, sparse, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(dense)
    for a, b in zip(_grads(dense, x, layer, g), _grads(sparse, x, layer, g)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_neg_inf_bias_masks_a_pair():
    layer, x, batch = _layer(), _x(), _batch()
    N = x.size(0)
    ei = _union_of_complete_graphs()
    # Mask the pair (target i=5, source j=8), both in graph 1, and every key of node 0.
    bias = torch.zeros(N, N)
    bias[5, 8] = float("-inf")
    bias[0, :] = float("-inf")
    edge_bias = bias[ei[1], ei[0]]                                                   # [E]
    kept = ei[:, torch.isfinite(edge_bias)]
    dense = layer(x, batch, attn_bias=bias)
    assert torch.isfinite(dense).all()
    torch.testing.assert_close(dense, _sparse_forward(layer, x, kept), rtol=1e-5, atol=1e-5)
    # Node 0 attends to nothing: its attention output is zero, so the layer gives lin_out's bias.
    torch.testing.assert_close(dense[0], layer.lin_out.bias, rtol=0, atol=1e-6)
    # Gradients of target 5 ignore the masked source 8, as in the graph without that edge.
    x2 = x.detach().clone()
    x2[8] += 100.0
    x2.requires_grad_()
    (gx,) = torch.autograd.grad(layer(x2, batch, attn_bias=bias)[5].sum(), x2)
    assert torch.isfinite(gx).all()
    (gx_ref,) = torch.autograd.grad(_sparse_forward(layer, x2, kept)[5].sum(), x2)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"channels \(10\).*heads \(4\)"):
        DenseGraphAttention(10, heads=4)
    with pytest.raises(ValueError, match="heads"):
        DenseGraphAttention(8, heads=0)
    with pytest.raises(ValueError, match="dropout"):
        DenseGraphAttention(8, dropout=1.0)
    layer = DenseGraphAttention(8, heads=2)
    with pytest.raises(ValueError, match="x"):
        layer(torch.randn(5, 7))
    with pytest.raises(ValueError, match="attn_bias"):
        layer(torch.randn(5, 8), attn_bias=torch.zeros(3, 5, 5))


def test_reset_parameters_and_repr():
    layer = DenseGraphAttention(C, heads=H, dropout=0.1)
    assert repr(layer) == "DenseGraphAttention(16, heads=4, dropout=0.1)"
    assert repr(DenseGraphAttention(8)) == "DenseGraphAttention(8, heads=1)"
    for lin in (layer.lin_q, layer.lin_k, layer.lin_v, layer.lin_out):
        assert isinstance(lin, torch.nn.Linear) and lin.weight.shape == (C, C)
    before = [p.detach().clone() for p in layer.parameters()]
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(1.0)
    torch.manual_seed(0)
    layer.reset_parameters()
    for p in (layer.lin_q.bias, layer.lin_out.bias):
        assert torch.equal(p, torch.zeros_like(p))
    assert all(a.shape == b.shape for a, b in zip(before, layer.parameters()))
    assert not torch.equal(layer.lin_q.weight, before[0] + 1.0)


def test_dropout_only_in_training():
    layer, x, batch = _layer(dropout=0.5), _x(), _batch()
    layer.eval()
    torch.testing.assert_close(layer(x, batch), layer(x, batch), rtol=0, atol=0)
    layer.train()
    torch.manual_seed(0)
    a = layer(x, batch)
    assert not torch.allclose(a, _layer()(x, batch))


@pytest.mark.parametrize("with_bias", [False, True])
def test_torch_compile_matches_eager(with_bias):
    layer, x, batch = _layer(), _x(), _batch()
    N = x.size(0)
    kwargs = {"attn_bias": torch.randn(N, N)} if with_bias else {}
    eager = layer(x, batch, **kwargs)
    compiled = torch.compile(layer, backend="aot_eager")(x, batch, **kwargs)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(eager)
    (ge,) = torch.autograd.grad((eager * g).sum(), x)
    (gc,) = torch.autograd.grad((compiled * g).sum(), x)
    torch.testing.assert_close(gc, ge, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("with_bias", [False, True])
def test_autocast_bf16(with_bias):
    layer, x, batch = _layer(), _x(), _batch()
    N = x.size(0)
    kwargs = {"attn_bias": torch.randn(H, N, N)} if with_bias else {}
    ref = layer(x, batch, **kwargs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x, batch, **kwargs)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2 * ref.abs().max().item())


# ------------------------------------------------------------------ per-graph bias and weights

def _per_graph_reference(layer, x, sizes, bias):
    """The exact reference: a Python loop over the graphs, each graph's scores
    ``q k^T / sqrt(D) + bias[b, :, :n, :n]`` softmaxed over its keys (a row whose keys are all
    ``-inf`` gets zero weights); returns ``(out [N, F], weights [B, H, L, L])``."""
    N, D, L = x.size(0), C // H, max(sizes)
    q = layer.lin_q(x).view(N, H, D).transpose(0, 1)                   # [H, N, D]
    k = layer.lin_k(x).view(N, H, D).transpose(0, 1)
    v = layer.lin_v(x).view(N, H, D).transpose(0, 1)
    outs, weights, start = [], x.new_zeros(len(sizes), H, L, L), 0
    for b, n in enumerate(sizes):
        sl = slice(start, start + n)
        s = q[:, sl] @ k[:, sl].transpose(-1, -2) / D ** 0.5           # [H, n, n]
        if bias is not None:
            s = s + bias[b, :, :n, :n]
        dead = torch.isneginf(s).all(-1, keepdim=True)                 # all keys masked
        w = torch.softmax(s.masked_fill(dead, 0.0), dim=-1) * ~dead    # (no NaN gradient)
        weights[b, :, :n, :n] = w
        outs.append((w @ v[:, sl]).transpose(0, 1).reshape(n, C))     # [n, F]
        start += n
    return layer.lin_out(torch.cat(outs)), weights


def _padded_bias(sizes=SIZES, seed=2, heads=H):
    g = torch.Generator().manual_seed(seed)
    L = max(sizes)
    bias = torch.randn(len(sizes), heads, L + 2, L + 2, generator=g, dtype=torch.float64)
    bias[0, :, 1, 2] = float("-inf")                                   # one masked pair
    bias[1, :, 3, :] = float("-inf")                                   # a node with no keys
    return bias.requires_grad_()


@pytest.mark.parametrize("shared", [False, True])
def test_per_graph_bias_and_weights_equal_the_exact_reference(shared):
    """A padded per-graph bias ``[B, H, L', L']`` (or ``[B, 1, L', L']``, shared by the heads;
    ``L'`` past the largest graph) and the returned weights ``[B, H, L, L]`` equal a loop over
    the graphs, outputs, weights and gradients (x, bias, parameters), in float64."""
    layer = _layer().double()
    x = _x().double().detach().requires_grad_()
    bias = _padded_bias(heads=1 if shared else H)
    out, weights = layer(x, _batch(), attn_bias=bias, return_attention_weights=True)
    ref_bias = bias.expand(-1, H, -1, -1)
    want, want_w = _per_graph_reference(layer, x, SIZES, ref_bias)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(weights, want_w)
    assert weights.shape == (len(SIZES), H, max(SIZES), max(SIZES))
    g = torch.randn_like(out)
    leaves = [x, bias, *layer.parameters()]
    got_g = torch.autograd.grad((out * g).sum() + weights.sum(), leaves)
    want_g = torch.autograd.grad((want * g).sum() + want_w.sum(), leaves)
    for a, b in zip(got_g, want_g):
        torch.testing.assert_close(a, b)
    # Rows of real nodes sum to 1 (0 for the node whose keys are all masked), padding is 0.
    sums = weights.sum(-1)
    assert torch.all(((sums - 1).abs() < 1e-12) | (sums == 0))
    assert sums[1, :, 3].eq(0).all() and sums[2, :, 1:].eq(0).all()


def test_node_bias_forms_give_the_per_graph_weights():
    """A bias over the batch's nodes ``[H, N, N]`` (the fused path without weights) and the same
    bias per graph give one function; with the weights asked for, the same weights."""
    layer = _layer().double()
    x = _x().double().detach()
    padded = _padded_bias()
    N = x.size(0)
    node_bias = torch.randn(H, N, N, dtype=torch.float64)             # cross-graph entries unused
    start = 0
    for b, n in enumerate(SIZES):
        node_bias[:, start:start + n, start:start + n] = padded[b, :, :n, :n].detach()
        start += n
    fused = layer(x, _batch(), attn_bias=node_bias)
    out, weights = layer(x, _batch(), attn_bias=node_bias, return_attention_weights=True)
    want, want_w = _per_graph_reference(layer, x, SIZES, padded.detach())
    torch.testing.assert_close(fused, want)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(weights, want_w)
    # [N, N], shared by the heads, and no bias at all.
    out2, w2 = layer(x, _batch(), attn_bias=node_bias[0], return_attention_weights=True)
    torch.testing.assert_close(out2, layer(x, _batch(), attn_bias=node_bias[0]))
    torch.testing.assert_close(w2[:, 1], _per_graph_reference(
        layer, x, SIZES, padded.detach()[:, :1].expand(-1, H, -1, -1))[1][:, 1])
    out3, w3 = layer(x, None, return_attention_weights=True)
    torch.testing.assert_close(out3, layer(x))
    assert w3.shape == (1, H, N, N)


def test_per_graph_bias_bad_shapes_and_empty_input():
    layer = _layer()
    x = _x().detach()
    L = max(SIZES)
    for shape in [(len(SIZES) + 1, H, L, L), (len(SIZES), 2, L, L), (len(SIZES), H, L - 1, L - 1),
                  (len(SIZES), H, L, L + 1)]:
        with pytest.raises(ValueError, match="per-graph attn_bias must have shape"):
            layer(x, _batch(), attn_bias=torch.zeros(shape))
    with pytest.raises(ValueError, match="attn_bias must have shape"):
        layer(x, _batch(), attn_bias=torch.zeros(3, 5), return_attention_weights=True)
    empty = torch.zeros(0, C, requires_grad=True)
    out, weights = layer(empty, None, return_attention_weights=True)
    assert out.shape == (0, C) and weights.shape == (0, H, 0, 0)
    out.sum().backward()
    assert empty.grad.shape == (0, C)
