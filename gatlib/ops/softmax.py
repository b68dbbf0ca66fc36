"""Segment softmax: the public entry point (PyG's ``torch_geometric.utils.softmax`` signature)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .._checks import check_num_nodes, check_same_device, check_tensor
from .dispatch import select_backend

__all__ = ["segment_softmax"]


def segment_softmax(src: Tensor, index: Optional[Tensor] = None, ptr: Optional[Tensor] = None,
                    num_nodes: Optional[int] = None, dim: int = 0) -> Tensor:
    r"""Softmax of ``src`` over the entries (along ``dim``) that share a segment.

    .. math::
        \mathrm{out}_e = \frac{\exp(s_e)}{\sum_{e' : \mathrm{seg}(e') = \mathrm{seg}(e)}
        \exp(s_{e'})}

    The segments are given either by ``index`` (the segment of each entry, any order) or by
    ``ptr`` (CSR offsets: entries ``ptr[b]:ptr[b + 1]`` along ``dim`` form segment ``b``), as in
    PyG's ``torch_geometric.utils.softmax``. When both are given ``ptr`` is used (as PyG). The
    old gatlib call ``segment_softmax(src, index, num_nodes)`` still works: an int (or a 0-dim
    tensor) in the third place is read as ``num_nodes``, a 1-D tensor as ``ptr``.
    The result is exact: no ``1e-16`` is added to the denominator, and a segment whose scores
    are all ``-inf`` gets zeros, not NaN.

    Args:
        src (Tensor): the scores, e.g. ``[E]`` or ``[E, H]``.
        index (LongTensor [E], default None): the segment (target node) of each entry along
            ``dim``, in ``[0, num_nodes)``; need not be sorted.
        ptr (LongTensor [B + 1], default None): CSR offsets of sorted segments along ``dim``:
            ``ptr[0] == 0``, non-decreasing, ``ptr[-1] == src.size(dim)``.
        num_nodes (int, default None): number of segments with ``index``; None infers
            ``index.max() + 1`` (which reads the index on the host; pass it to avoid that).
            Ignored with ``ptr`` (the segments are ``len(ptr) - 1``).
        dim (int, default 0): the dimension of ``src`` that the segments run along (negative
            counts from the end).

    Shapes:
        src ``[E, *]`` (``E`` at position ``dim``), index ``[E]`` or ptr ``[B + 1]`` -> same
        shape as ``src``.
    """
    if (isinstance(ptr, int) and not isinstance(ptr, bool)) or (isinstance(ptr, Tensor)
                                                                and ptr.dim() == 0):
        # The old gatlib call segment_softmax(src, index, num_nodes): an int (or 0-dim tensor)
        # in the third place is a segment count, never CSR offsets.
        if num_nodes is not None:
            raise TypeError(f"ptr must be a LongTensor [num_segments + 1], got "
                            f"{type(ptr).__name__} (and num_nodes was given too)")
        ptr, num_nodes = None, ptr
    check_tensor(src, "src")
    if src.dim() == 0:
        raise ValueError("src must have at least one dimension (one row per edge), got a scalar")
    dim = _check_dim(dim, src.dim())
    E = src.size(dim)
    if ptr is not None:
        index, num_nodes = _index_from_ptr(ptr, E, src)
    elif index is None:
        raise ValueError("segment_softmax needs the segments: pass index (the segment of each "
                         "entry, e.g. edge_index[1]) or ptr (CSR offsets of sorted segments)")
    else:
        check_tensor(index, "index", dim=1, floating=False, shape=(E,))
        if index.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"index must be an integer tensor (torch.long), got {index.dtype}")
        check_same_device(src=src, index=index)
        lo, hi = (int(index.min()), int(index.max())) if E > 0 else (0, -1)
        if num_nodes is None:
            num_nodes = hi + 1                      # PyG's inference: max + 1 (0 when empty)
        num_nodes = check_num_nodes(num_nodes)
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"index holds values in [{lo}, {hi}] but num_nodes is {num_nodes}; "
                             f"every index must lie in [0, num_nodes)")
        index = index.long()
    x = src.movedim(dim, 0) if dim != 0 else src                          # [E, *]
    backend = select_backend("segment_softmax", x.device, x.dtype)
    out = backend.call("segment_softmax")(x, index, num_nodes)            # [E, *]
    return out.movedim(0, dim) if dim != 0 else out


def _check_dim(dim, ndim: int) -> int:
    """``dim`` as a non-negative int below ``ndim``, or a clear error."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"dim must lie in [{-ndim}, {ndim - 1}] for src of {ndim} dimensions, "
                         f"got {dim}")
    return dim % ndim


def _index_from_ptr(ptr: Tensor, E: int, src: Tensor):
    """Validate CSR offsets ``ptr [B + 1]`` over ``E`` entries; return ``(index [E], B)``."""
    if not isinstance(ptr, Tensor):
        raise TypeError(f"ptr must be a LongTensor [num_segments + 1], got {type(ptr).__name__}")
    if ptr.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"ptr must be an integer tensor (torch.long), got {ptr.dtype}")
    if ptr.dim() != 1 or ptr.numel() == 0:
        raise ValueError(f"ptr must be 1-dimensional [num_segments + 1] (at least [0]), got "
                         f"shape {tuple(ptr.shape)}")
    check_same_device(src=src, ptr=ptr)
    first, last = int(ptr[0]), int(ptr[-1])
    if first != 0 or last != E:
        raise ValueError(f"ptr must start at 0 and end at src.size(dim) = {E} (CSR offsets of "
                         f"the segments), got ptr[0] = {first}, ptr[-1] = {last}")
    counts = ptr[1:] - ptr[:-1]                                            # [B]
    if ptr.numel() > 1 and int(counts.min()) < 0:
        raise ValueError("ptr must be non-decreasing (segment b is ptr[b]:ptr[b + 1]); sort "
                         "the entries by segment and build ptr from the segment sizes' cumsum")
    B = ptr.numel() - 1
    index = torch.repeat_interleave(torch.arange(B, device=ptr.device), counts.long(),
                                    output_size=E)                         # [E]
    return index, B
