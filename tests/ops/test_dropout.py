"""Dropout masks from random bytes (gatlib.ops.dropout): the threshold of each probability,
the keep rate and independence of the mask (fixed generators: these tests cannot flake), the
scaling and gradient of ``dropout``, and the fall-backs to ``F.dropout``."""
import math

import pytest
import torch
import torch.nn.functional as F

from gatlib.nn._dropout import Dropout
from gatlib.ops.dropout import _fill, _threshold, _ties, dropout, keep_factor, keep_mask

N = 1 << 20                   # mask elements per statistical check


@pytest.fixture(autouse=True, params=["native", "torch"])
def path(request, monkeypatch):
    """Every test runs on both ways of drawing a mask: the native pass (``dropout.h``) and
    torch's generator and ops."""
    from gatlib import native
    from gatlib.ops import dropout as dmod
    if request.param == "native" and not native.available():
        pytest.skip(native.status())
    if request.param == "torch":
        monkeypatch.setattr(dmod, "_native_lib", lambda: None)
    return request.param


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("p", [0.5, 0.25, 0.125, 0.75, 3 / 1024, 0.1, 0.6, 1 / 3, 1e-6])
def test_threshold_gives_keep_probability(p):
    """P(drop) = a / 256 + b / 2**40 equals p to 2**-41, with no tie part (b = 0) exactly
    when p is a multiple of 1/256."""
    a, b = _threshold(p)
    assert 0 <= a < 256 and 0 <= b < 2 ** 32
    assert abs(a / 256 + b / 2 ** 40 - p) <= 2.0 ** -41
    assert (b == 0) == ((p * 256).is_integer())


def test_ties_found_word_by_word():
    """_ties finds exactly the bytes equal to a, below n, whatever n mod 8."""
    g = _gen(9)
    for n in (1, 7, 8, 9, 1000, 4099):
        u = torch.randint(0, 4, (8 * ((n + 7) // 8),), generator=g, dtype=torch.uint8)
        want = (u[:n] == 2).nonzero().view(-1)
        torch.testing.assert_close(torch.sort(_ties(u, 2, n)).values, want)


def test_ties_decided_by_the_32_bit_part():
    """Elements whose byte is the tie value a are kept with probability 1 - b / 2**32."""
    p = 0.1                                                          # a = 25, b / 2**32 = 0.6
    a, b = _threshold(p)
    n = 1 << 16
    u = torch.full((n,), a, dtype=torch.uint8)
    torch.manual_seed(0)
    out = _fill(torch.empty(n, dtype=torch.uint8), u, p, n, 1, None, None)
    q = 1 - b / 2 ** 32
    assert abs(out.double().mean().item() - q) < 6 * math.sqrt(q * (1 - q) / n)
    u = torch.tensor([a - 1, a + 1] + [0] * 6, dtype=torch.uint8)  # padded to a word
    assert _fill(torch.empty(2, dtype=torch.uint8), u, p, 2, 1, None, None).tolist() == [0, 1]


@pytest.mark.parametrize("p", [0.5, 0.25, 0.1, 0.6, 1 / 3])
def test_keep_rate(p):
    """Kept fraction of 2**20 draws within 6 standard deviations of 1 - p (fixed seed)."""
    m = keep_mask((N,), p, generator=_gen(1))
    assert m.dtype == torch.bool and m.shape == (N,)
    sd = math.sqrt(N * p * (1 - p))
    assert abs(m.sum().item() - N * (1 - p)) < 6 * sd


@pytest.mark.parametrize("p", [0.5, 0.1])
def test_independence(p):
    """Neighbouring elements (same random word and across words) and elements a word apart are
    kept together with probability (1 - p)**2; the mask is not a function of position."""
    m = keep_mask((N,), p, generator=_gen(2)).double()
    q = 1 - p
    for lag in (1, 2, 7, 8, 64):
        both = (m[:-lag] * m[lag:]).mean().item()
        sd = math.sqrt(q * q * (1 - q * q) / (N - lag))
        assert abs(both - q * q) < 8 * sd, lag
    # Each position within a word is kept at the same rate.
    per_pos = m.view(-1, 8).mean(0)
    sd = math.sqrt(p * q / (N // 8))
    assert (per_pos - q).abs().max().item() < 6 * sd


def test_fixed_generator_reproduces_and_seeds_differ():
    a = keep_mask((1000, 3), 0.3, generator=_gen(5))
    b = keep_mask((1000, 3), 0.3, generator=_gen(5))
    c = keep_mask((1000, 3), 0.3, generator=_gen(6))
    assert a.shape == (1000, 3) and torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(3)
    d = keep_mask((7,), 0.5)
    torch.manual_seed(3)
    assert torch.equal(d, keep_mask((7,), 0.5))             # the global generator by default


def test_keep_factor_is_the_scaled_mask():
    for p in (0.5, 0.1):
        m = keep_mask((999, 3), p, generator=_gen(4))
        f = keep_factor((999, 3), p, torch.float64, generator=_gen(4))
        assert f.dtype == torch.float64 and f.shape == (999, 3)
        torch.testing.assert_close(f, m.double() / (1 - p), rtol=0, atol=0)
    assert torch.equal(keep_factor((4,), 0.0), torch.ones(4))


def test_odd_sizes_and_empty():
    for shape in [(0,), (1,), (3, 5), (13,), (2, 0, 4)]:
        assert keep_mask(shape, 0.1).shape == shape
        assert keep_mask(shape, 0.5).shape == shape
    assert keep_mask((5,), 0.0).all()
    with pytest.raises(ValueError, match="p must lie in"):
        keep_mask((3,), 1.0)


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_dropout_scales_and_backpropagates_through_the_mask(p):
    x = torch.randn(300, 7, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(4)
    y = dropout(x, p, True)
    torch.manual_seed(4)
    keep = keep_mask(x.shape, p)
    torch.testing.assert_close(y, x * keep / (1 - p))
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(gx, g * keep / (1 - p))
    assert 0.5 * (1 - p) < keep.double().mean().item() < 1.5 * (1 - p)


def test_dropout_identity_and_fallbacks():
    x = torch.randn(20, 4)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))     # F.dropout's p = 1
    with pytest.raises(ValueError):
        dropout(x, 1.5, True)                                           # F.dropout rejects it
    ints = torch.arange(10)
    with pytest.raises(RuntimeError):
        dropout(ints, 0.5, True)                                        # as F.dropout


def test_dropout_leaves_other_layouts_to_f_dropout(monkeypatch):
    calls = []
    monkeypatch.setattr(F, "dropout", lambda x, p, training: calls.append(p) or x)
    sparse = torch.randn(4, 3).to_sparse()
    assert dropout(sparse, 0.5, True) is sparse and calls == [0.5]


def test_dropout_module_matches_nn_dropout_interface():
    m = Dropout(0.3)
    assert repr(m) == repr(torch.nn.Dropout(0.3)) and m.state_dict() == {}
    x = torch.ones(1000, 8)
    y = m(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    m.eval()
    assert torch.equal(m(x), x)
    inplace = Dropout(0.3, inplace=True)
    z = torch.ones(10, 4)
    assert inplace(z) is z                                              # nn.Dropout's own path


def test_dropout_same_distribution_as_f_dropout():
    """Kept fraction and kept values agree with F.dropout's on the same input."""
    x = torch.ones(N)
    torch.manual_seed(8)
    ours, theirs = dropout(x, 0.3, True), F.dropout(x, 0.3, True)
    sd = math.sqrt(N * 0.3 * 0.7)
    assert abs((ours != 0).sum().item() - (theirs != 0).sum().item()) < 12 * sd
    torch.testing.assert_close(ours.unique(), theirs.unique())


def test_same_mask_whatever_the_thread_count(path):
    """The native stream is counter-based: a mask big enough to be split between threads is the
    same on one thread; the factor is that mask scaled."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = keep_mask((1 << 18,), 0.3, generator=_gen(8))
        f = keep_factor((1 << 18,), 0.3, torch.float32, generator=_gen(8))
        torch.set_num_threads(1)
        one = keep_mask((1 << 18,), 0.3, generator=_gen(8))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)
    torch.testing.assert_close(f, two.float() / 0.7, rtol=0, atol=0)


def test_dropout_keeps_no_mask_on_the_native_path(path):
    """The native dropout saves nothing for the backward pass (the mask is made again from its
    seed); a non-contiguous float32 input gets the mask of its logical order; gradcheck."""
    saved = []
    x = torch.randn(64, 30, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = dropout(x.t(), 0.4, True, generator=_gen(3))                # [30, 64], strided
    keep = keep_mask((30, 64), 0.4, generator=_gen(3))
    torch.testing.assert_close(y, x.t() * keep / 0.6)
    (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    torch.testing.assert_close(gx, keep.t().float() / 0.6)
    assert (saved == []) == (path == "native")
    xd = torch.randn(9, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: dropout(t, 0.3, True, generator=_gen(1)), (xd,))
