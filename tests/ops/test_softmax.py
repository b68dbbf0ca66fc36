import math

import pytest
import torch

from gatlib.ops import reference, segment_softmax, use_backend

from ..conftest import backends_under_test

BACKENDS = backends_under_test()


def test_hand_computed():
    src = torch.tensor([1.0, 2.0, 3.0, 0.0])
    index = torch.tensor([0, 0, 2, 0])
    z = math.exp(1) + math.exp(2) + 1
    want = torch.tensor([math.exp(1) / z, math.exp(2) / z, 1.0, 1 / z])
    for backend in BACKENDS + ["reference"]:
        with use_backend(backend):
            torch.testing.assert_close(segment_softmax(src, index, 3), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(0,), (7,), (50, 3), (50, 2, 2)])
def test_matches_reference_forward_backward(backend, shape):
    g = torch.Generator().manual_seed(0)
    E = shape[0]
    src = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 9, (E,), generator=g)
    if E:
        src.data[:3] = -math.inf if len(shape) == 1 else src.data[:3]
    with use_backend(backend):
        out = segment_softmax(src, index, 10)
    ref = reference.segment_softmax_ref(src, index, 10)
    torch.testing.assert_close(out, ref)
    if E:
        w = torch.randn(shape, generator=g, dtype=torch.float64)
        (a,) = torch.autograd.grad((out * w).sum(), src)
        (b,) = torch.autograd.grad((ref * w).sum(), src)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck(backend):
    src = torch.randn(12, 2, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 0, 1, 3, 3, 3, 0, 1, 1, 3, 0, 0])
    with use_backend(backend):
        assert torch.autograd.gradcheck(lambda s: segment_softmax(s, index, 5), (src,))


def test_all_masked_segment_gives_zeros():
    src = torch.tensor([-math.inf, -math.inf, 0.5])
    index = torch.tensor([0, 0, 1])
    for backend in BACKENDS + ["reference"]:
        with use_backend(backend):
            out = segment_softmax(src, index, 2)
        torch.testing.assert_close(out, torch.tensor([0.0, 0.0, 1.0]))


def test_bad_input():
    src = torch.randn(4)
    with pytest.raises(ValueError, match="index"):
        segment_softmax(src, torch.tensor([0, 1, 5, 0]), 3)
    with pytest.raises(ValueError, match="index"):
        segment_softmax(src, torch.tensor([0, -1, 0, 0]), 3)
    with pytest.raises(TypeError, match="index"):
        segment_softmax(src, torch.tensor([0.0, 1, 0, 0]), 3)
    with pytest.raises(ValueError, match="index must have shape"):
        segment_softmax(src, torch.tensor([0, 1]), 3)
    with pytest.raises(TypeError, match="src"):
        segment_softmax(torch.arange(4), torch.tensor([0, 1, 0, 0]), 3)
    with pytest.raises(ValueError, match="num_nodes"):
        segment_softmax(src, torch.tensor([0, 1, 0, 0]), -1)
