"""What a backend is: a table of kernels with one shape, and what it can run.

Every backend (``reference``, ``cpu``, ``triton``) is a module that builds one :class:`Backend`
with :func:`gatlib.ops.factory.make_backend` from a table ``{op: Kernels(forward, backward)}``.
The kernels of an op have the same arguments on every backend (see
:data:`gatlib.ops.factory.ATTENTION_OPS`); the factory turns them into the callables the public
ops run (:meth:`Backend.call`). :mod:`gatlib.ops.dispatch` lists the backend modules and picks
one per call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, NamedTuple, Optional

import torch
from torch import Tensor

from .graph_args import graph_tensors

__all__ = ["Backend", "Kernels", "FLOATS"]

FLOATS = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


class Kernels(NamedTuple):
    """One op of a backend: ``forward`` with the op's arguments, returning its outputs;
    ``backward`` with the arguments of the op's backward (see ``gatlib.ops.factory``), or None
    when ``forward`` is plain differentiable PyTorch (the reference)."""

    forward: Callable
    backward: Optional[Callable] = None


def _seven(graph, heads: int) -> List[Tensor]:
    return graph_tensors(graph)


@dataclass
class Backend:
    """A backend: what it can run, and its table.

    Args:
        name: the name users pass to ``GATLIB_BACKEND`` / ``use_backend``.
        devices: device types it runs on (``{"cpu"}``, ``{"cuda"}``), or None for any.
        dtypes: floating dtypes it accepts.
        ops: the ops it implements (default: those of ``calls``).
        available: a zero-argument check that the backend can be imported and used here
            (returns "" when it can, else the reason).
        max_head_dim: the largest head dim (``D`` or ``C``) it supports, or None.
        forced_only_devices: device types on which it runs only when forced
            (``GATLIB_BACKEND`` / ``use_backend``), never by automatic choice; e.g. Triton on
            CPU tensors, which runs under the interpreter, correct but slow.
        device_check: an extra condition per device (returns "" when it holds, else the
            reason), e.g. "on cpu it runs only under TRITON_INTERPRET=1".
        calls: ``{op: callable}`` with the op's arguments and outputs (built by the factory).
        kernels: the table the calls were made from, ``{op: Kernels(forward, backward)}``.
        graph_args: ``(GraphCSR, heads) -> Tensor[]``: the graph argument of its ops (the seven
            CSR tensors, plus what the backend derives and keeps on the ``GraphCSR``).
        self_check: ``(op, device, dtype) -> str``, asked by automatic choice (never when the
            backend is forced) after :meth:`why_not` found nothing: ``""`` when its kernels for
            ``op`` are trusted there, else why not (see :mod:`gatlib.ops.selfcheck`).
    """

    name: str
    devices: Optional[FrozenSet[str]]
    dtypes: FrozenSet[torch.dtype]
    ops: FrozenSet[str] = frozenset()
    available: Callable[[], str] = field(default=lambda: "")
    max_head_dim: Optional[int] = None
    forced_only_devices: FrozenSet[str] = frozenset()
    device_check: Optional[Callable[[torch.device], str]] = None
    calls: Dict[str, Callable] = field(default_factory=dict)
    graph_args: Callable = _seven
    kernels: Dict[str, Kernels] = field(default_factory=dict)
    self_check: Optional[Callable[[str, torch.device, torch.dtype], str]] = None

    def __post_init__(self) -> None:
        if not self.ops:
            self.ops = frozenset(self.calls)

    def call(self, op: str) -> Callable:
        """The callable that runs ``op`` (arguments and outputs as the op's kernels)."""
        return self.calls[op]

    def why_not(self, op: str, device: torch.device, dtype: torch.dtype,
                head_dim: int = 0, forced: bool = False) -> List[str]:
        """Reasons this backend cannot run the call (empty when it can). ``forced``: the user
        asked for this backend (``forced_only_devices`` then count as supported)."""
        reasons = []
        missing = self.available()
        if missing:
            reasons.append(missing)
        if op not in self.ops:
            reasons.append(f"it does not implement {op}")
        if self.devices is not None and device.type not in self.devices:
            reasons.append(f"it runs on {sorted(self.devices)}, the inputs are on {device}")
        elif device.type in self.forced_only_devices and not forced:
            reasons.append(f"on {device.type} it runs only when forced (use_backend"
                           f"({self.name!r}) or GATLIB_BACKEND={self.name})")
        if self.device_check is not None and (self.devices is None
                                              or device.type in self.devices):
            why = self.device_check(device)
            if why:
                reasons.append(why)
        if dtype not in self.dtypes:
            reasons.append(f"it does not support dtype {dtype}")
        if self.max_head_dim is not None and head_dim > self.max_head_dim:
            reasons.append(f"head dim {head_dim} exceeds its maximum {self.max_head_dim}")
        return reasons
