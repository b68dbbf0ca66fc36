"""The GPU backend: fused graph attention and segment softmax in Triton, as a table of kernels
registered as ``torch.library`` custom ops ``gatlib::triton_<op>``.

It is first in the search order: inputs on a CUDA device run here automatically. On CPU tensors
it runs only when forced (``use_backend("triton")`` or ``GATLIB_BACKEND=triton``) and only
under Triton's interpreter (``TRITON_INTERPRET=1``, set before gatlib is imported): that is how
the kernels are tested without a GPU, never a path chosen for speed. Without triton installed
the backend is listed with that reason and runs nothing.

All kernels are free of atomics, so results are bitwise reproducible run to run (also under
``torch.use_deterministic_algorithms(True)``); see :mod:`gatlib.ops.triton.kernels`.

Before automatic choice runs a kernel family on a device model and dtype for the first time, the
backend's self-check (:data:`SELF_CHECK`, :mod:`gatlib.ops.selfcheck`) compares it with the
reference on a small built-in graph; its verdicts are kept in ``gatlib-selfcheck/`` beside
Triton's cache folder (``$TRITON_CACHE_DIR``, default ``~/.triton/cache``). A forced backend is
not checked.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

import torch
from torch import Tensor

from ..._checks import compiling
from ..._private import private_folder
from ..backend import FLOATS, Backend
from ..factory import ATTENTION_OPS, make_backend
from ..graph_args import graph_tensors
from ..selfcheck import SelfCheck, describe_device, source_digest

__all__ = ["BACKEND", "TRITON_AVAILABLE", "SELF_CHECK", "CHECK_SPLIT", "verdict_folder"]

try:
    import triton
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


# The self-check cuts rows longer than this into chunks, so that its small graph's hubs take the
# split-and-merge path of the kernels too.
CHECK_SPLIT = 8


def _check_graph_args(graph, heads: int) -> List[Tensor]:
    tensors = graph_tensors(graph)
    return tensors + plan.graph_plans(tensors, CHECK_SPLIT)


def triton_cache_dir() -> Path:
    """Triton's cache folder (``$TRITON_CACHE_DIR``, default ``~/.triton/cache``)."""
    try:
        from triton import knobs
        return Path(knobs.cache.dir)
    except (ImportError, AttributeError):
        return Path(os.environ.get("TRITON_CACHE_DIR")
                    or os.path.join(os.path.expanduser("~"), ".triton", "cache"))


def verdict_folder() -> Path:
    """The self-check's verdicts: ``gatlib-selfcheck/`` beside Triton's cache folder, private
    (created 0700; refused, for a private temporary folder, when others can write it)."""
    return private_folder("gatlib-selfcheck", root=triton_cache_dir().parent)


def _environment(device: torch.device) -> dict:
    env = {"triton": triton.__version__, "tile_budget": str(launch.TILE_BUDGET)}
    if device.type == "cpu":
        env["device"] = "Triton interpreter, " + describe_device(device)
    return env


_CAPABILITIES = dict(devices=frozenset({"cuda", "cpu"}), dtypes=FLOATS,
                     ops=frozenset(ATTENTION_OPS) | {"segment_softmax"}, available=_available,
                     max_head_dim=256, forced_only_devices=frozenset({"cpu"}),
                     device_check=_device_check)

if TRITON_AVAILABLE:
    from . import kernels, launch, plan
    from .table import KERNELS
    SELF_CHECK = SelfCheck("triton", KERNELS, graph_args=_check_graph_args,
                           environment=_environment, folder=verdict_folder,
                           digest=source_digest(Path(__file__).resolve().parent))
    BACKEND = make_backend("triton", KERNELS, op_prefix="triton_", device_types=None,
                           graph_args=_graph_args, self_check=SELF_CHECK, **_CAPABILITIES)
else:  # pragma: no cover
    SELF_CHECK = None
    BACKEND = Backend("triton", **_CAPABILITIES)
