"""The CPU backend: gatlib's native fused kernels (:mod:`gatlib.ops.cpu.fused`) or torch's
sparse CSR kernels (MKL on x86) over the CSR view of a graph, as a table of kernels registered
as ``torch.library`` custom ops ``gatlib::<op>`` (no prefix: the CPU ops carry the plain names,
e.g. ``torch.ops.gatlib.gat_attention``), and GATv2's native score (``"gatv2_score"``,
:mod:`gatlib.ops.cpu.gatv2`: an eager autograd function, not a registered op)."""
from __future__ import annotations

from typing import List

from torch import Tensor

from ..._checks import compiling
from ..backend import FLOATS, Kernels
from ..factory import make_backend
from ..graph_args import graph_tensors
from . import fused, gatv2, kernels, ops

__all__ = ["BACKEND", "eager_op"]


def _graph_args(graph, heads: int) -> List[Tensor]:
    """The seven tensors of the ``GraphCSR`` (all the fused kernels read), followed, for
    torch's kernels on a small graph, by its head-folded copy (built once per head count and
    kept on the graph). Under torch.compile the op folds
    inside, since the folded graph's sizes depend on the degrees."""
    tensors = graph_tensors(graph)
    if compiling() or fused.fits(tensors[1].numel() * heads):
        return tensors                     # the fused kernels read the CSR tensors as they are
    return kernels.folded_graph_args(graph, tensors, heads)


KERNELS = {
    "gat_attention": Kernels(ops.gat_forward, ops.gat_backward),
    "sparse_attention": Kernels(ops.dot_forward, ops.dot_backward),
    "attend": Kernels(ops.attend_forward, ops.attend_backward),
    "segment_softmax": Kernels(ops.softmax_forward, ops.softmax_backward),
}

BACKEND = make_backend("cpu", KERNELS, op_prefix="", device_types="cpu", eager=True,
                       extra_calls={"gatv2_score": gatv2.gatv2_score},
                       devices=frozenset({"cpu"}), dtypes=FLOATS, graph_args=_graph_args)


def eager_op(op: str):
    """The callable the CPU backend runs for ``op`` (for the attention ops in plain eager mode
    one autograd node over the kernels, else the registered ``torch.ops.gatlib.<op>``)."""
    return BACKEND.call(op)
