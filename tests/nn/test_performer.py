"""PerformerAttention (FAVOR+): against its own O(N^2) reference, against exact softmax attention
with many features, padding, redraws, and PyG's PerformerAttention with copied weights."""
import math

import pytest
import torch
from torch_geometric.utils import to_dense_batch

from gatlib.nn import PerformerAttention, RedrawProjection
from gatlib.nn.performer import orthogonal_random_features

C, H = 16, 2
SIZES = [3, 7, 1, 5]


def _batch(sizes=SIZES, channels=C, seed=0, scale=1.0, dtype=torch.float32):
    """Dense batch of graphs: x [B, N_max, F], mask [B, N_max], and the flat x [N, F], batch."""
    g = torch.Generator().manual_seed(seed)
    flat = scale * torch.randn(sum(sizes), channels, generator=g, dtype=dtype)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    x, mask = to_dense_batch(flat, batch)
    return x, mask, flat, batch


def _module(seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs.setdefault("head_channels", 8)
    return PerformerAttention(C, H, **kwargs)


def reference_quadratic(module, x, mask):
    """O(N^2) pure PyTorch in float64: A = phi(q) phi(k)^T over the valid keys of each graph,
    row-normalised, times v; phi without any stabiliser (the textbook formula)."""
    m = module.double()
    B, N, _ = x.shape
    D, Hh = m.head_channels, m.heads
    x = x.double()
    q = m.q(x).view(B, N, Hh, D).transpose(1, 2)                       # [B, H, N, D]
    k = m.k(x).view(B, N, Hh, D).transpose(1, 2)
    v = m.v(x).view(B, N, Hh, D).transpose(1, 2)
    w = m.projection_matrix.double()                                   # [M, D]
    if m.softmax_kernel:
        def phi(t):
            t = t * D ** -0.25
            return torch.exp(t @ w.t() - 0.5 * (t * t).sum(-1, keepdim=True)) / math.sqrt(
                w.size(0))
    else:
        def phi(t):
            return torch.relu(t @ w.t()) + 1e-3
    a = phi(q) @ phi(k).transpose(-2, -1)                              # [B, H, N, N]
    a = a * mask[:, None, None, :]                                     # only valid keys
    a = a / a.sum(-1, keepdim=True)
    out = (a @ v).transpose(1, 2).reshape(B, N, Hh * D)
    return m.attn_out(out)                                             # [B, N, F]


# --------------------------------------------------------------- (a) the O(N^2) reference

@pytest.mark.parametrize("kernel", ["softmax", "relu"])
def test_linear_time_equals_quadratic_reference(kernel):
    x, mask, _, _ = _batch(scale=2.0)
    module = _module(kernel=kernel, qkv_bias=True, num_features=24).eval()
    ref = reference_quadratic(module, x, mask)                          # float64 module now
    out64 = module(x.double(), mask)
    torch.testing.assert_close(out64[mask], ref[mask], rtol=1e-10, atol=1e-10)
    out32 = module.float()(x, mask)
    torch.testing.assert_close(out32[mask], ref[mask].float(), rtol=1e-5, atol=1e-5)
    assert torch.isfinite(out32).all()


def test_stabilisers_survive_large_norms():
    # Feature logits down to about -200: exp underflows to 0 in float32 without stabilisers.
    x, mask, _, _ = _batch(scale=12.0)
    module = _module(num_features=32).eval()
    with torch.no_grad():
        k = module.k(x).view(*x.shape[:2], H, 8) * 8 ** -0.25
        naive = torch.exp(k @ module.projection_matrix.t() - 0.5 * (k * k).sum(-1, keepdim=True))
        assert (naive[mask] == 0).all(-1).any()          # some key would vanish entirely
        out = module(x, mask)
    assert torch.isfinite(out).all()
    ref = reference_quadratic(module, x, mask)                          # float64: no underflow
    torch.testing.assert_close(out.double()[mask], ref[mask], rtol=1e-4, atol=1e-4)


# ------------------------------------------------------ (b) many features -> exact softmax

def exact_softmax_attention(module, x, mask):
    B, N, _ = x.shape
    D, Hh = module.head_channels, module.heads
    q = module.q(x).view(B, N, Hh, D).transpose(1, 2)
    k = module.k(x).view(B, N, Hh, D).transpose(1, 2)
    v = module.v(x).view(B, N, Hh, D).transpose(1, 2)
    s = q @ k.transpose(-2, -1) / math.sqrt(D)
    s = s.masked_fill(~mask[:, None, None, :], -math.inf)
    out = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, N, Hh * D)
    return module.attn_out(out)


def test_many_features_approach_softmax_attention():
    x, mask, _, _ = _batch(scale=0.5, seed=3)
    errors = []
    for m in (8, 64, 512, 8192):
        module = _module(seed=1, head_channels=4, num_features=m).double().eval()
        torch.manual_seed(2)
        module.redraw_projection_matrix()
        with torch.no_grad():
            out = module(x.double(), mask)
            exact = exact_softmax_attention(module, x.double(), mask)
        errors.append(float((out - exact)[mask].abs().max() / exact[mask].abs().max()))
    assert errors[-1] < 0.01, errors                     # close with many features
    assert errors[-1] < errors[0] / 4, errors            # and the error shrinks with m


def test_orthogonal_random_features():
    g = torch.Generator().manual_seed(0)
    w = orthogonal_random_features(10, 4, scaled=False, generator=g)
    assert w.shape == (10, 4)
    for lo in (0, 4):                                    # full blocks: orthonormal rows
        block = w[lo:lo + 4]
        torch.testing.assert_close(block @ block.t(), torch.eye(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(w[8:] @ w[8:].t(), torch.eye(2), atol=1e-5, rtol=0)
    ws = orthogonal_random_features(4, 4, scaled=True, generator=g)
    gram = ws @ ws.t()                                   # orthogonal, chi-distributed norms
    torch.testing.assert_close(gram - torch.diag(gram.diagonal()), torch.zeros(4, 4),
                               atol=1e-5, rtol=0)
    assert not torch.allclose(gram.diagonal(), torch.ones(4))
    # Rows of the scaled version have N(0, I) marginals: mean square norm ~ d.
    big = orthogonal_random_features(4000, 4, scaled=True,
                                     generator=torch.Generator().manual_seed(1))
    assert abs(float((big ** 2).sum(1).mean()) - 4.0) < 0.2


# ------------------------------------------------------------------------ (c) padding

def test_padding_does_not_leak_between_graphs():
    x, mask, flat, batch = _batch()
    module = _module().eval()
    out = module(x, mask)[mask]                                        # [N, F]
    # Each graph alone (no padding at all).
    parts, lo = [], 0
    for n in SIZES:
        parts.append(module(flat[lo:lo + n][None])[0])
        lo += n
    torch.testing.assert_close(out, torch.cat(parts), rtol=1e-5, atol=1e-5)
    # Garbage (even inf/nan-free huge values) in the padding changes nothing.
    x_bad = x.clone()
    x_bad[~mask] = 1e3 * torch.randn(int((~mask).sum()), C)
    torch.testing.assert_close(module(x_bad, mask)[mask], out, rtol=1e-5, atol=1e-5)


def test_padding_gets_no_gradient_and_no_nan():
    x, mask, _, _ = _batch()
    x = x.clone().requires_grad_()
    module = _module()
    # A graph without nodes in the batch (an all-padding row) must not give NaN either.
    mask = torch.cat([mask, torch.zeros(1, mask.size(1), dtype=torch.bool)])
    x_in = torch.cat([x, torch.zeros(1, *x.shape[1:])])
    out = module(x_in, mask)
    assert torch.isfinite(out).all()
    out[mask].square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[~mask[:-1]] == 0).all()


def test_gradcheck_float64():
    x, mask, _, _ = _batch(sizes=[3, 2], channels=C)
    module = _module(num_features=6).double().eval()
    x = x.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: module(t, mask)[mask], (x,))


# ------------------------------------------------------------------------ (d) redraw

def test_redraw_changes_features_keeps_shape():
    x, mask, _, _ = _batch()
    module = _module().eval()
    before = module.projection_matrix.clone()
    out_before = module(x, mask)
    module.redraw_projection_matrix()
    assert module.projection_matrix.shape == before.shape
    assert not torch.equal(module.projection_matrix, before)
    out_after = module(x, mask)
    assert out_after.shape == out_before.shape
    assert not torch.allclose(out_after, out_before)
    # A generator makes a redraw reproducible.
    module.redraw_projection_matrix(torch.Generator().manual_seed(5))
    w = module.projection_matrix.clone()
    module.redraw_projection_matrix(torch.Generator().manual_seed(5))
    assert torch.equal(module.projection_matrix, w)
    # The matrix is a buffer: saved and loaded with the weights.
    assert "projection_matrix" in module.state_dict()


def test_redraw_interval_and_redraw_helper():
    x, mask, _, _ = _batch()
    module = _module(redraw_interval=2)
    seen = []
    for _ in range(5):
        module(x, mask)
        seen.append(module.projection_matrix.clone())
    # Calls 1-2 share a matrix, 3-4 a new one, 5 another.
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[2], seen[3])
    assert not torch.equal(seen[1], seen[2]) and not torch.equal(seen[3], seen[4])
    module.eval()
    w = module.projection_matrix.clone()
    for _ in range(4):
        module(x, mask)
    assert torch.equal(module.projection_matrix, w)     # never in eval mode
    # PyG's RedrawProjection protocol, for gatlib's and PyG's modules alike.
    from torch_geometric.nn.attention import PerformerAttention as PyGPerformer
    model = torch.nn.ModuleList([_module(), PyGPerformer(C, H, head_channels=8)]).train()
    helper = RedrawProjection(model, redraw_interval=1)
    w0 = [m.projection_matrix.clone() for m in (model[0], model[1].fast_attn)]
    helper.redraw_projections()                          # counts
    assert torch.equal(model[0].projection_matrix, w0[0])
    helper.redraw_projections()                          # redraws both
    assert not torch.equal(model[0].projection_matrix, w0[0])
    assert not torch.equal(model[1].fast_attn.projection_matrix, w0[1])


# ------------------------------------------------------------------------ (e) PyG

@pytest.mark.parametrize("qkv_bias", [False, True])
def test_matches_pyg_performer_with_copied_weights(qkv_bias):
    from torch_geometric.nn.attention import PerformerAttention as PyGPerformer
    torch.manual_seed(0)
    theirs = PyGPerformer(C, H, head_channels=8, qkv_bias=qkv_bias).eval()
    ours = PerformerAttention.from_pyg(theirs)
    assert ours.kernel_name == "relu" and ours.num_features == theirs.fast_attn.num_rows
    torch.testing.assert_close(ours.projection_matrix, theirs.fast_attn.projection_matrix)
    # Equal-size graphs (no padding: PyG counts padded keys in its normaliser).
    x, mask, _, _ = _batch(sizes=[6, 6, 6])
    torch.testing.assert_close(ours(x, mask), theirs(x, mask.clone()), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    # Gradients too.
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    ours(xa, mask).sum().backward()
    theirs(xb, mask.clone()).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-5)


def test_bad_arguments_and_repr():
    with pytest.raises(ValueError, match="kernel"):
        PerformerAttention(C, H, kernel="cosine")
    with pytest.raises(TypeError, match="kernel"):
        PerformerAttention(C, H, kernel=3)
    with pytest.raises(ValueError, match="heads"):
        PerformerAttention(C, 0)
    with pytest.raises(ValueError, match="divisible"):
        PerformerAttention(10, 4, head_channels=None)
    with pytest.raises(ValueError, match="dropout"):
        PerformerAttention(C, H, dropout=1.0)
    module = PerformerAttention(C, H, head_channels=None)
    assert module.head_channels == 8 and module.num_features == int(8 * math.log(8))
    assert PerformerAttention(C, H).head_channels == 64                  # PyG's default
    with pytest.raises(ValueError, match="x"):
        module(torch.randn(5, C))
    with pytest.raises(TypeError, match="mask"):
        module(torch.randn(1, 5, C), torch.ones(1, 5))
    assert (repr(module) == "PerformerAttention(16, heads=2, head_channels=8, "
                            "kernel='softmax', num_features=16)")
    with pytest.raises(TypeError, match="PerformerAttention"):
        PerformerAttention.from_pyg(torch.nn.Linear(2, 2))


def test_autocast_bf16_finite_and_close():
    x, mask, _, _ = _batch()
    module = _module().eval()
    ref = module(x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float()[mask], ref[mask], rtol=5e-2,
                               atol=5e-2 * ref.abs().max().item())
