"""The GPU backend: fused graph attention and segment softmax in Triton, as a table of kernels
registered as ``torch.library`` custom ops ``gatlib::triton_<op>``.

It is first in the search order: inputs on a CUDA device run here automatically. On CPU tensors
it runs only when forced (``use_backend("triton")`` or ``GATLIB_BACKEND=triton``) and only
under Triton's interpreter (``TRITON_INTERPRET=1``, set before gatlib is imported): that is how
the kernels are tested without a GPU, never a path chosen for speed. Without triton installed
the backend is listed with that reason and runs nothing.

All kernels are free of atomics, so results are bitwise reproducible run to run (also under
``torch.use_deterministic_algorithms(True)``); see :mod:`gatlib.ops.triton.kernels`.
"""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor

from ..._checks import compiling
from ..backend import FLOATS, Backend
from ..factory import ATTENTION_OPS, make_backend
from ..graph_args import graph_tensors

__all__ = ["BACKEND", "TRITON_AVAILABLE"]

try:
    import triton  # noqa: F401
    TRITON_AVAILABLE = True
except ImportError:
    TRITON_AVAILABLE = False


def _available() -> str:
    return "" if TRITON_AVAILABLE else "triton is not installed (pip install triton)"


def _device_check(device: torch.device) -> str:
    if device.type == "cpu" and TRITON_AVAILABLE and not kernels.interpreted():
        return ("on cpu it runs only under TRITON_INTERPRET=1 (set in the environment before "
                "gatlib is imported)")
    return ""


def _graph_args(graph, heads: int) -> List[Tensor]:
    """The seven tensors of the ``GraphCSR`` followed by its work lists, built once per graph
    and row split and kept on it. Under torch.compile the op builds them inside, since their
    sizes depend on the degrees."""
    tensors = graph_tensors(graph)
    if compiling():
        return tensors
    split = plan.SPLIT
    return graph.derived(("triton_plans", split),
                         lambda: tensors + plan.graph_plans(tensors, split))


_CAPABILITIES = dict(devices=frozenset({"cuda", "cpu"}), dtypes=FLOATS,
                     ops=frozenset(ATTENTION_OPS) | {"segment_softmax"}, available=_available,
                     max_head_dim=256, forced_only_devices=frozenset({"cpu"}),
                     device_check=_device_check)

if TRITON_AVAILABLE:
    from . import kernels, plan
    from .table import KERNELS
    BACKEND = make_backend("triton", KERNELS, op_prefix="triton_", device_types=None,
                           graph_args=_graph_args, **_CAPABILITIES)
else:  # pragma: no cover
    BACKEND = Backend("triton", **_CAPABILITIES)
