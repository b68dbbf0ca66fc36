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


# ------------------------------------------------------------ PyG's signature: ptr, dim, None

def _pyg_softmax(*args, **kwargs):
    from torch_geometric.utils import softmax
    return softmax(*args, **kwargs)


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
def test_ptr_equals_index_and_pyg(backend):
    g = torch.Generator().manual_seed(3)
    sizes = torch.tensor([3, 0, 5, 1, 0, 4])                 # empty segments included
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    index = torch.repeat_interleave(torch.arange(6), sizes)
    src = torch.randn(13, 2, generator=g, dtype=torch.float64)
    with use_backend(backend):
        by_ptr = segment_softmax(src, ptr=ptr)
        by_pos = segment_softmax(src, None, ptr)            # PyG's positional order
    ref = reference.segment_softmax_ref(src, index, 6)
    torch.testing.assert_close(by_ptr, ref)
    torch.testing.assert_close(by_pos, ref)
    torch.testing.assert_close(by_ptr, _pyg_softmax(src, None, ptr))
    # Segment sums are one.
    sums = torch.zeros(6, 2, dtype=src.dtype).index_add_(0, index, by_ptr)
    torch.testing.assert_close(sums[sizes > 0], torch.ones(4, 2, dtype=src.dtype))


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
@pytest.mark.parametrize("dim", [1, -1, 2])
def test_dim_other_than_zero_matches_pyg_forward_backward(backend, dim):
    g = torch.Generator().manual_seed(4)
    shape = [3, 11, 2]                                       # the segment axis is `dim`
    src = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    E = src.size(dim)
    index = torch.randint(0, 4, (E,), generator=g)
    with use_backend(backend):
        out = segment_softmax(src, index, num_nodes=4, dim=dim)
    ref = _pyg_softmax(src, index, num_nodes=4, dim=dim)
    torch.testing.assert_close(out, ref)
    # The same as moving the axis to the front by hand.
    moved = reference.segment_softmax_ref(src.detach().movedim(dim, 0), index, 4)
    torch.testing.assert_close(out.detach(), moved.movedim(0, dim))
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    (a,) = torch.autograd.grad((out * w).sum(), src)
    (b,) = torch.autograd.grad((ref * w).sum(), src)
    torch.testing.assert_close(a, b)


def test_dim_with_ptr_matches_pyg():
    src = torch.randn(4, 6, dtype=torch.float64)
    ptr = torch.tensor([0, 2, 6])
    # (PyG itself needs torch-scatter for ptr with dim != 0; its index path is the same maths.)
    torch.testing.assert_close(segment_softmax(src, ptr=ptr, dim=1),
                               _pyg_softmax(src, torch.tensor([0, 0, 1, 1, 1, 1]), dim=1))
    torch.testing.assert_close(segment_softmax(src, ptr=ptr, dim=-1)[:, :2],
                               torch.softmax(src[:, :2], dim=1))


def test_num_nodes_none_is_inferred_as_max_plus_one():
    src = torch.tensor([1.0, 2.0, 3.0, 0.0])
    index = torch.tensor([0, 0, 2, 0])
    torch.testing.assert_close(segment_softmax(src, index), segment_softmax(src, index, 3))
    torch.testing.assert_close(segment_softmax(src, index), _pyg_softmax(src, index))
    assert segment_softmax(torch.empty(0, 3), torch.empty(0, dtype=torch.long)).shape == (0, 3)
    # A larger num_nodes (trailing empty segments) changes nothing.
    torch.testing.assert_close(segment_softmax(src, index, 10), segment_softmax(src, index))


def test_old_positional_num_nodes_still_works():
    src = torch.tensor([1.0, 2.0, 3.0, 0.0])
    index = torch.tensor([0, 0, 2, 0])
    want = segment_softmax(src, index, num_nodes=3)
    torch.testing.assert_close(segment_softmax(src, index, 3), want)
    torch.testing.assert_close(segment_softmax(src, index, torch.tensor(3)), want)
    with pytest.raises(ValueError, match="num_nodes is 2"):
        segment_softmax(src, index, 2)


def test_ptr_and_index_together_use_ptr_as_pyg():
    src = torch.tensor([1.0, 2.0, 3.0])
    ptr = torch.tensor([0, 1, 3])
    wrong_index = torch.tensor([0, 0, 0])
    torch.testing.assert_close(segment_softmax(src, wrong_index, ptr),
                               _pyg_softmax(src, wrong_index, ptr))
    assert segment_softmax(src, wrong_index, ptr)[0] == 1.0


def test_bad_combinations():
    src = torch.randn(4, 2)
    with pytest.raises(ValueError, match="index.*or ptr"):
        segment_softmax(src)
    with pytest.raises(ValueError, match="ptr must start at 0 and end at src.size"):
        segment_softmax(src, ptr=torch.tensor([0, 2, 3]))            # ends before E
    with pytest.raises(ValueError, match="ptr must start at 0"):
        segment_softmax(src, ptr=torch.tensor([1, 2, 4]))
    with pytest.raises(ValueError, match="non-decreasing"):
        segment_softmax(src, ptr=torch.tensor([0, 3, 1, 4]))
    with pytest.raises(ValueError, match="ptr must be 1-dimensional"):
        segment_softmax(src, ptr=torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match="ptr must be 1-dimensional"):
        segment_softmax(src, ptr=torch.empty(0, dtype=torch.long))
    with pytest.raises(TypeError, match="ptr must be an integer"):
        segment_softmax(src, ptr=torch.tensor([0.0, 4.0]))
    with pytest.raises(TypeError, match="ptr must be a LongTensor"):
        segment_softmax(src, ptr=[0, 4])
    with pytest.raises(TypeError, match="ptr must be a LongTensor"):
        segment_softmax(src, torch.tensor([0, 1, 0, 0]), 2, num_nodes=2)
    with pytest.raises(ValueError, match="ptr must start at 0 and end at src.size"):
        segment_softmax(src, ptr=torch.tensor([0, 4]), dim=1)        # dim 1 has 2 entries
    with pytest.raises(ValueError, match="dim must lie in"):
        segment_softmax(src, torch.tensor([0, 1, 0, 0]), dim=2)
    with pytest.raises(TypeError, match="dim must be an int"):
        segment_softmax(src, torch.tensor([0, 1, 0, 0]), dim=0.0)
    with pytest.raises(ValueError, match="index must have shape"):
        segment_softmax(src, torch.tensor([0, 1, 0, 0]), dim=1)      # index is along dim 0
    with pytest.raises(ValueError, match="index holds values"):
        segment_softmax(src, torch.tensor([0, 1, -1, 0]))            # inferred num_nodes
