"""Backend choice, in one place.

Each backend declares what it supports; :func:`select` picks the first that fits the call. A
user forces one with the environment variable ``GATLIB_BACKEND`` or, within a block, with
``with gatlib.ops.use_backend("cpu"):``; a forced backend that does not fit raises an error
that lists why.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Iterator, List, Optional

import torch

__all__ = ["Backend", "register_backend", "available_backends", "get_backend", "select",
           "use_backend", "backend_op", "BackendError"]

OPS = ("segment_softmax", "sparse_attention", "gat_attention")


class BackendError(ValueError):
    """A forced backend cannot run the call (the message lists why)."""


@dataclass
class Backend:
    """What a backend can run.

    Args:
        name: the name users pass to ``GATLIB_BACKEND`` / ``use_backend``.
        devices: device types it runs on (``{"cpu"}``, ``{"cuda"}``), or None for any.
        dtypes: floating dtypes it accepts.
        ops: the ops it implements.
        available: a zero-argument check that the backend can be imported and used here
            (returns "" when it can, else the reason).
        max_head_dim: the largest head dim (``D`` or ``C``) it supports, or None.
        forced_only_devices: device types on which it runs only when forced
            (``GATLIB_BACKEND`` / ``use_backend``), never by automatic choice; e.g. Triton on
            CPU tensors, which runs under the interpreter, correct but slow.
        device_check: an extra condition per device (returns "" when it holds, else the
            reason), e.g. "on cpu it runs only under TRITON_INTERPRET=1".
    """

    name: str
    devices: Optional[FrozenSet[str]]
    dtypes: FrozenSet[torch.dtype]
    ops: FrozenSet[str]
    available: Callable[[], str] = field(default=lambda: "")
    max_head_dim: Optional[int] = None
    forced_only_devices: FrozenSet[str] = frozenset()
    device_check: Optional[Callable[[torch.device], str]] = None

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


_BACKENDS: Dict[str, Backend] = {}
# Backends forced by use_backend, innermost last (a plain list, which torch.compile can trace).
_FORCED: List[Optional[str]] = []
_FLOATS = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


def register_backend(backend: Backend, first: bool = False) -> None:
    """Add a backend to the search order (at the front with ``first=True``)."""
    items = [(k, b) for k, b in _BACKENDS.items() if k != backend.name]
    items = [(backend.name, backend)] + items if first else items + [(backend.name, backend)]
    _BACKENDS.clear()
    _BACKENDS.update(items)


def available_backends() -> List[str]:
    """Backend names in the order :func:`select` tries them."""
    return list(_BACKENDS)


def get_backend(name: str) -> Backend:
    """The registered backend called ``name``."""
    if name not in _BACKENDS:
        raise BackendError(f"unknown gatlib backend {name!r}; choose one of "
                           f"{available_backends()}")
    return _BACKENDS[name]


def _forced() -> Optional[str]:
    name = (_FORCED[-1] if _FORCED else None) or os.environ.get("GATLIB_BACKEND") or None
    if name is not None and name not in _BACKENDS:
        raise BackendError(f"unknown gatlib backend {name!r} (from GATLIB_BACKEND or "
                           f"use_backend); choose one of {available_backends()}")
    return name


def select(op: str, device: torch.device, dtype: torch.dtype, head_dim: int = 0) -> str:
    """Name of the backend that runs ``op`` for inputs on ``device`` of ``dtype``."""
    forced = _forced()
    if forced is not None:
        reasons = _BACKENDS[forced].why_not(op, device, dtype, head_dim, forced=True)
        if reasons:
            raise BackendError(f"backend {forced!r} was forced but cannot run {op} here: "
                               + "; ".join(reasons)
                               + ". Unset GATLIB_BACKEND or choose another backend.")
        return forced
    for name, backend in _BACKENDS.items():
        if not backend.why_not(op, device, dtype, head_dim):
            return name
    raise BackendError(f"no gatlib backend can run {op} on {device} with {dtype}")


def backend_op(backend: str, op: str):
    """The registered custom op of ``backend`` for ``op``: ``torch.ops.gatlib.<op>`` for the CPU
    backend, ``torch.ops.gatlib.<backend>_<op>`` for the others (e.g. ``triton_gat_attention``).
    The reference is plain PyTorch and has no registered op. In plain eager mode the CPU
    backend runs its attention ops without the dispatcher (``cpu.ops.eager_op``)."""
    if backend == "cpu":
        from .cpu.ops import eager_op
        return eager_op(op)
    return getattr(torch.ops.gatlib, f"{backend}_{op}")


@contextlib.contextmanager
def use_backend(name: Optional[str]) -> Iterator[None]:
    """Force a backend inside a ``with`` block (``None`` restores automatic choice)."""
    if name is not None and name not in _BACKENDS:
        raise BackendError(f"unknown gatlib backend {name!r}; choose one of "
                           f"{available_backends()}")
    _FORCED.append(name)
    try:
        yield
    finally:
        _FORCED.pop()


# The CPU backend: torch's sparse CSR kernels over the cached CSR view.
register_backend(Backend("cpu", frozenset({"cpu"}), _FLOATS, frozenset(OPS)))
# The reference: pure PyTorch, any device, the spec. Always last.
register_backend(Backend("reference", None, _FLOATS, frozenset(OPS)))
