"""The GPU backend: fused graph attention and segment softmax in Triton, registered as
``torch.library`` custom ops (``gatlib::triton_*``).

It is first in the search order: inputs on a CUDA device run here automatically. On CPU tensors
it runs only when forced (``use_backend("triton")`` or ``GATLIB_BACKEND=triton``) and only
under Triton's interpreter (``TRITON_INTERPRET=1``, set before gatlib is imported): that is how
the kernels are tested without a GPU, never a path chosen for speed.

All kernels are free of atomics, so results are bitwise reproducible run to run (also under
``torch.use_deterministic_algorithms(True)``); see :mod:`gatlib.ops.triton.kernels`.
"""
from __future__ import annotations

import torch

from ..dispatch import OPS, Backend, register_backend

__all__ = ["TRITON_AVAILABLE"]

_FLOATS = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})

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


if TRITON_AVAILABLE:
    from . import kernels, ops  # noqa: F401  (ops registers the custom ops)

register_backend(Backend("triton", frozenset({"cuda", "cpu"}), _FLOATS, frozenset(OPS),
                         available=_available, max_head_dim=256,
                         forced_only_devices=frozenset({"cpu"}), device_check=_device_check),
                 first=True)
