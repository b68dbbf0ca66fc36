"""Segment softmax: the public entry point."""
from __future__ import annotations

import torch
from torch import Tensor

from ..graph.validate import check_num_nodes, check_same_device, check_tensor
from . import reference
from .dispatch import backend_op, select

__all__ = ["segment_softmax"]


def segment_softmax(src: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    r"""Softmax of ``src`` over the entries that share a segment (target node) in ``index``.

    .. math::
        \mathrm{out}_e = \frac{\exp(s_e)}{\sum_{e' : \mathrm{index}_{e'} = \mathrm{index}_e}
        \exp(s_{e'})}

    Args:
        src: scores, one row per edge (any trailing dims, e.g. heads).
        index: the segment (target node) of each edge, in ``[0, num_nodes)``; need not be sorted.
        num_nodes (int): number of segments. Passed explicitly, never inferred.

    Shapes:
        src ``[E]`` or ``[E, H]``, index ``[E]`` -> ``[E]`` or ``[E, H]``. A segment whose scores
        are all ``-inf`` gets zeros, not NaN.
    """
    check_tensor(src, "src")
    if src.dim() == 0:
        raise ValueError("src must have at least one dimension (one row per edge), got a scalar")
    check_tensor(index, "index", dim=1, floating=False, shape=(src.size(0),))
    if index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"index must be an integer tensor (torch.long), got {index.dtype}")
    num_nodes = check_num_nodes(num_nodes)
    check_same_device(src=src, index=index)
    if index.numel() > 0:
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"index holds values in [{lo}, {hi}] but num_nodes is {num_nodes}; "
                             f"every index must lie in [0, num_nodes)")
    index = index.long()
    backend = select("segment_softmax", src.device, src.dtype)
    if backend == "reference":
        return reference.segment_softmax_ref(src, index, num_nodes)
    return backend_op(backend, "segment_softmax")(src, index, num_nodes)
